/**
 * Lifetime management: every tensor is registered in the innermost `tidy` scope, which disposes
 * what it created when it ends, except what it returns and what was `keep()`-ed.
 * Also keeps live counts for `memoryStats()`.
 */
import type { Tensor } from './tensor.js';
import type { Backend } from './backend.js';

const scopes: Set<Tensor>[] = [];
let liveTensors = 0;
let liveBytes = 0;
const backendsSeen = new Set<Backend>();

export function trackNew(t: Tensor, newStorageBytes: number): void {
  liveTensors++;
  liveBytes += newStorageBytes;
  backendsSeen.add(t.backend);
  scopes[scopes.length - 1]?.add(t);
}

export function trackDisposed(freedStorageBytes: number): void {
  liveTensors--;
  liveBytes -= freedStorageBytes;
}

/** Exempts a tensor from disposal by the enclosing `tidy` scopes (e.g. parameters, gradients). */
export function keep<T extends Tensor>(t: T): T {
  for (const s of scopes) s.delete(t);
  return t;
}

function collectTensors(value: unknown, out: Set<Tensor>, depth = 0): void {
  if (value === null || value === undefined || depth > 8) return;
  if (typeof value !== 'object') return;
  if ((value as { __isTensor?: boolean }).__isTensor) {
    out.add(value as Tensor);
    return;
  }
  if (Array.isArray(value)) for (const v of value) collectTensors(v, out, depth + 1);
  else if (value instanceof Map) for (const v of value.values()) collectTensors(v, out, depth + 1);
  else if (Object.getPrototypeOf(value) === Object.prototype) for (const v of Object.values(value)) collectTensors(v, out, depth + 1);
}

/**
 * Runs `fn` and disposes every tensor it created except the tensors found in its return value
 * (directly, or inside arrays / plain objects / Maps), which move to the enclosing scope.
 * `fn` must be synchronous: tensors created after an `await` would escape the scope.
 */
export function tidy<T>(fn: () => T): T {
  const scope = new Set<Tensor>();
  scopes.push(scope);
  let result: T;
  try {
    result = fn();
  } catch (e) {
    scopes.pop();
    for (const t of scope) t.dispose();
    throw e;
  }
  scopes.pop();
  if (result instanceof Promise) {
    throw new Error('tidy(fn): fn returned a Promise; tidy only supports synchronous functions (await outside of it)');
  }
  const kept = new Set<Tensor>();
  collectTensors(result, kept);
  const parent = scopes[scopes.length - 1];
  for (const t of scope) {
    if (kept.has(t)) parent?.add(t);
    else t.dispose();
  }
  return result;
}

export interface MemoryStats {
  liveTensors: number;
  liveBytes: number;
  pooledBytes: number;
}

export function memoryStats(): MemoryStats {
  let pooled = 0;
  for (const b of backendsSeen) pooled += b.pooledBytes();
  return { liveTensors, liveBytes, pooledBytes: pooled };
}
