/**
 * The lifetime rule. Every tensor belongs to the innermost open scope (`tidy`, a Module call, a
 * composite op) that was open when it was made. When a scope ends it frees its tensors except
 * what it returns and what was `keep()`-ed, unless what it returns is on the autodiff tape: then
 * the returned tensors' backward closures may read any of them, so they all move to the enclosing
 * scope, which frees them when it ends without a recorded result (a training step's scope returns
 * detached values, after backward and the optimizer step).
 *
 * With no enclosing scope, the two kinds differ: `tidy` is the scope a caller opens (a step, an
 * evaluation), so the outermost one frees everything but its result; `composite` (ops made of
 * ops, model helpers, Module forwards) leaves a recorded result's graph to its caller, as a plain
 * function would.
 *
 * Tensors that must cross an `await` (scopes are synchronous) are held with `using` (a Tensor is
 * Disposable; `disposable(value)` makes an array or object of tensors one) or disposed by their owner.
 * Also keeps the live counts of `memoryStats()`.
 */
import type { Tensor } from './tensor.js';
import type { Backend } from './backend.js';

/** Tensors of the open scopes in creation order (null where one was kept); marks[i] starts scope i. */
const tracked: (Tensor | null)[] = [];
const marks: number[] = [];
let liveTensors = 0;
let liveBytes = 0;
let peakLiveBytes = 0;
const backendsSeen = new Set<Backend>();
let lastBackend: Backend | null = null;

let creationHook: ((t: Tensor) => void) | null = null;

/**
 * Calls `hook` with every tensor created until the returned function is called (which restores
 * the previous hook). The backward pass uses it to find the tensors sharing a gradient's storage.
 */
export function onTensorCreated(hook: (t: Tensor) => void): () => void {
  const prev = creationHook;
  creationHook = hook;
  return () => {
    creationHook = prev;
  };
}

export function trackNew(t: Tensor, newStorageBytes: number): void {
  creationHook?.(t);
  liveTensors++;
  liveBytes += newStorageBytes;
  if (liveBytes > peakLiveBytes) peakLiveBytes = liveBytes;
  if (t.backend !== lastBackend) {
    lastBackend = t.backend;
    backendsSeen.add(lastBackend);
  }
  if (marks.length > 0) tracked.push(t);
}

export function trackDisposed(freedStorageBytes: number): void {
  liveTensors--;
  liveBytes -= freedStorageBytes;
}

/** Exempts a tensor from disposal by the enclosing scopes (parameters, optimizer state, caches). */
export function keep<T extends Tensor>(t: T): T {
  // Kept tensors are nearly always the newest: search from the end.
  for (let i = tracked.length - 1; i >= 0; i--) {
    if (tracked[i] === t) {
      tracked[i] = null;
      break;
    }
  }
  return t;
}

/** Every tensor in `value`: itself, or inside arrays, plain objects and Maps (8 levels deep). */
export function tensorsIn(value: unknown, out: Set<Tensor> = new Set(), depth = 0): Set<Tensor> {
  if (value === null || value === undefined || depth > 8 || typeof value !== 'object') return out;
  if ((value as { __isTensor?: boolean }).__isTensor) out.add(value as Tensor);
  else if (Array.isArray(value)) for (const v of value) tensorsIn(v, out, depth + 1);
  else if (value instanceof Map) for (const v of value.values()) tensorsIn(v, out, depth + 1);
  else if (Object.getPrototypeOf(value) === Object.prototype) for (const v of Object.values(value)) tensorsIn(v, out, depth + 1);
  return out;
}

/** Opens a scope; pair with `closeScope` or `abortScope`. */
export function openScope(): number {
  marks.push(tracked.length);
  return marks.length;
}

/** Frees every tensor of the innermost scope (the function running in it threw). */
export function abortScope(depth: number): void {
  while (marks.length >= depth) {
    const start = marks.pop()!;
    for (let i = start; i < tracked.length; i++) tracked[i]?.dispose();
    tracked.length = start;
  }
}

/**
 * Closes the innermost scope by the rule above; returns `result`. `owner`: with no enclosing
 * scope, free a recorded result's graph (tidy) rather than leave it to the caller (composite).
 */
export function closeScope<T>(depth: number, result: T, owner: boolean): T {
  if (marks.length !== depth) throw new Error(`scope: closed out of order (depth ${marks.length}, expected ${depth})`);
  const start = marks.pop()!;
  if (result instanceof Promise) {
    // The tensors made after an await would land in whatever scope is open then; refuse.
    if (marks.length === 0) tracked.length = 0;
    throw new Error('tidy(fn): fn returned a Promise; tidy only supports synchronous functions (await outside of it)');
  }
  // The common results: one tensor, or none, need no set.
  const single = (result as { __isTensor?: boolean } | null)?.__isTensor ? (result as unknown as Tensor) : null;
  const returned = single || result === null || typeof result !== 'object' ? null : tensorsIn(result);
  let onTape = single ? single.node !== null : false;
  if (returned) for (const t of returned) onTape ||= t.node !== null;
  if (onTape && (marks.length > 0 || !owner)) {
    // The tensors now belong to the enclosing scope; with none open, to the caller.
    if (marks.length === 0) tracked.length = 0;
    return result;
  }
  let w = start;
  for (let i = start; i < tracked.length; i++) {
    const t = tracked[i];
    if (t === null || t === undefined) continue;
    if (t === single || returned?.has(t)) tracked[w++] = t;
    else t.dispose();
  }
  tracked.length = marks.length ? w : 0;
  return result;
}

function run<T>(fn: () => T, owner: boolean): T {
  const depth = openScope();
  let result: T;
  try {
    result = fn();
  } catch (e) {
    abortScope(depth);
    throw e;
  }
  return closeScope(depth, result, owner);
}

/**
 * Runs `fn` in a scope: the tensors it makes are freed when it returns, except those found in its
 * return value (directly, or inside arrays / plain objects / Maps), which move to the enclosing
 * scope, and kept ones. When the returned value is on the autodiff tape, the scope's tensors move
 * to the enclosing scope with it; the outermost tidy frees them (return detached values from a
 * training step). If `fn` throws, all of them are freed. `fn` must be synchronous: tensors made
 * after an `await` would escape the scope.
 */
export function tidy<T>(fn: () => T): T {
  return run(fn, true);
}

/**
 * The scope of code made of ops (composite ops, model helpers; Module forwards run in one): like
 * tidy, except that outside any scope a recorded result's graph stays alive for the caller's
 * backward instead of being freed.
 */
export function composite<T>(fn: () => T): T {
  return run(fn, false);
}

/** A step of `chain`: a function of one tensor, or anything with such a `forward` (a layer). */
export type ChainStep = ((h: Tensor) => Tensor) | { forward(h: Tensor): Tensor };

/**
 * Applies `steps` to `x` in order, step n in a scope that holds step n - 1's output, so each
 * output is freed as soon as the next one exists (when nothing is recorded): a chain of layers
 * holds at most two activations at a time instead of all of them.
 */
export function chain(x: Tensor, steps: readonly ChainStep[]): Tensor {
  const apply = (n: number): Tensor => {
    if (n === 0) return x;
    const s = steps[n - 1]!;
    return composite(() => (typeof s === 'function' ? s(apply(n - 1)) : s.forward(apply(n - 1))));
  };
  return apply(steps.length);
}

/** Frees every tensor in `value` (a tensor, or arrays / plain objects / Maps of them). */
export function disposeAll(value: unknown): void {
  for (const t of tensorsIn(value)) t.dispose();
}

/**
 * Makes an array or plain object of tensors Disposable, so that `using held = disposable(...)`
 * frees every tensor in it (as found when the block ends) where the block ends; for values that
 * cross an `await`, which no scope can hold.
 */
export function disposable<T extends object>(value: T): T & Disposable {
  Object.defineProperty(value, Symbol.dispose, { value: () => disposeAll(value), configurable: true });
  return value as T & Disposable;
}

export interface MemoryStats {
  liveTensors: number;
  /** Bytes of the storages live tensors hold (all backends). */
  liveBytes: number;
  /** The most liveBytes has been since the process started or the last resetPeakMemory(). */
  peakLiveBytes: number;
  /** Bytes of freed buffers the backends keep for reuse. */
  pooledBytes: number;
  /** Of pooledBytes, those captured steps keep for their replays (their intermediates). */
  capturedBytes: number;
  /**
   * The most device memory a step has used since the last resetPeakMemory(): peakLiveBytes, or
   * liveBytes + capturedBytes when that is more. A replayed step creates no tensors (so it does
   * not move peakLiveBytes); its intermediates stay allocated in the captured buffers instead.
   */
  peakBytes: number;
}

export function memoryStats(): MemoryStats {
  let pooled = 0;
  let captured = 0;
  for (const b of backendsSeen) {
    pooled += b.pooledBytes();
    captured += b.capturedBytes?.() ?? 0;
  }
  return { liveTensors, liveBytes, peakLiveBytes, pooledBytes: pooled, capturedBytes: captured, peakBytes: Math.max(peakLiveBytes, liveBytes + captured) };
}

/** Starts a new peak: peakLiveBytes becomes the current liveBytes (e.g. at the start of a step). */
export function resetPeakMemory(): void {
  peakLiveBytes = liveBytes;
}
