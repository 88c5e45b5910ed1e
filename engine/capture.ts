/**
 * Captured steps: a function with a fixed op sequence (a training step) recorded once and then
 * replayed, sending the same dispatches on the same buffers without running the function, its
 * autodiff or its ops on the host again. Replayed steps give bit-identical results to eager ones.
 *
 *   const step = captureStep((x) => { opt.zeroGrad(); const loss = ...; backward(loss); opt.step(); return loss; });
 *   for (...) { const loss = step(batch); ... }
 *
 * How: the first `warmup` calls run eagerly (optimizer state is made there); then each call runs
 * eagerly while the backend records its commands (engine/webgpu/step-tape.ts), until two
 * consecutive tapes are the same step (same kernels, parameter words, uploads, and buffers by
 * role); later calls replay the last tape. Values that change every step are declared where they
 * are made (KernelCall.dynamic: RNG counters, Adam's bias corrections and learning rate) and host
 * state that advances with them by stepEffect(); anything else that differs between two steps
 * keeps the step eager, with the reason in `reason`. Host values that change rarely and that the
 * step's ops depend on (a schedule reaching its next phase) go in `key`. Every `verifyEvery` replays one call runs
 * eagerly, recorded, and is compared with the captured tape again (a value that changes rarely,
 * e.g. a schedule not declared dynamic, drops the capture there).
 *
 * What the function may do: take tensors (each call's arguments must have the shapes and dtypes
 * of the capture, else that call runs eagerly) and return a tensor, an array of tensors or an
 * object of tensors, made during the call. It must not read data back (a readback keeps it eager)
 * and its op sequence must not depend on host values that change (a branch on the step number).
 * Results are returned as new tensors each call. Tensors made during the step that outlive it
 * other than through the result (a parameter's .grad) share buffers with later replays: read them
 * before the next call.
 */
import type { Backend, Storage } from './backend.js';
import { getBackend } from './default-backend.js';
import { Tensor } from './tensor.js';
import { isWebGPU, type WebGPUBackend } from './webgpu/backend.js';
import { tapeDifference, type StepTape } from './webgpu/step-tape.js';

export interface CaptureOptions {
  /** Eager calls before recording starts (default 1: lazily made state such as optimizer moments appears there). */
  warmup?: number;
  /** Recorded calls before giving up on a function whose consecutive steps differ (default 4). */
  attempts?: number;
  /** One eager, recorded and compared call per this many replays (default 100; 0: never). */
  verifyEvery?: number;
  /**
   * The host values the step depends on that may change between calls (a schedule's current
   * value, a training phase), as a string or number: a call whose key differs from the capture's
   * runs eagerly, and a new key that stays is captured again. Arguments' shapes and dtypes are
   * always part of the key.
   */
  key?: () => string | number;
}

/** What a captured function returns. */
export type StepResult = Tensor | Tensor[] | Record<string, Tensor>;

export interface CapturedStep<A extends Tensor[], R extends StepResult> {
  (...args: A): R;
  /** How the last call ran. */
  readonly mode: 'eager' | 'recorded' | 'replay';
  /** Why calls run eagerly (null while replaying or still recording). */
  readonly reason: string | null;
  /** Calls by how they ran; captures made, verifications passed, dispatches of the captured step. */
  readonly stats: { eager: number; recorded: number; replays: number; captures: number; verified: number; dispatches: number };
  /** Drops the capture and returns its buffers to the pool. */
  dispose(): void;
}

/** One output of the captured step: where its values are. */
interface OutputSpec {
  storage: Storage;
  offset: number;
  shape: readonly number[];
  dtype: Tensor['dtype'];
}

interface Capture {
  gpu: WebGPUBackend;
  tape: StepTape;
  key: string;
  inputs: { storage: Storage; offset: number }[];
  outputs: { spec: OutputSpec[]; rebuild: (ts: Tensor[]) => StepResult };
  pinned: Set<import('./webgpu/pool.js').PooledBuffer>;
  sinceVerify: number;
}

/** Runs `fn` now and, when a step is being recorded on `backend`, again at each of its replays (host state that advances per step). */
export function stepEffect(backend: Backend, fn: () => void): void {
  if (isWebGPU(backend)) backend.effect(fn);
  else fn();
}

/** Captures `fn` (see the file comment). */
export function captureStep<A extends Tensor[], R extends StepResult>(fn: (...args: A) => R, opts: CaptureOptions = {}): CapturedStep<A, R> {
  const warmup = opts.warmup ?? 1;
  const attempts = opts.attempts ?? 4;
  const verifyEvery = opts.verifyEvery ?? 100;
  for (const [name, v] of [['warmup', warmup], ['attempts', attempts], ['verifyEvery', verifyEvery]] as const) {
    if (!Number.isInteger(v) || v < 0) throw new RangeError(`captureStep: ${name} must be a non-negative integer, got ${v}`);
  }
  let capture: Capture | null = null;
  let previous: { tape: StepTape; key: string } | null = null;
  let reason: string | null = null;
  let givenUp = false;
  /** Recorded calls since the last capture (or since it was dropped). */
  let tries = 0;
  let mode: CapturedStep<A, R>['mode'] = 'eager';
  const stats = { eager: 0, recorded: 0, replays: 0, captures: 0, verified: 0, dispatches: 0 };

  const drop = () => {
    if (capture) {
      capture.gpu.releaseTape(capture.tape);
      capture.gpu.pool.unpin(capture.pinned);
    }
    capture = null;
  };

  const call = (...args: A): R => {
    const gpu = (args[0]?.backend ?? getBackend()) as Backend;
    if (!isWebGPU(gpu)) {
      reason = `backend ${gpu.name} is not WebGPU: steps run eagerly`;
      return eager(args);
    }
    if (givenUp) return eager(args);
    const key = keyOf(args) + (opts.key ? `|${opts.key()}` : '');
    if (capture && capture.key === key) {
      if (gpu.isProfiling) return eager(args, 'the device is being profiled (each dispatch timed in a pass of its own): steps run eagerly meanwhile');
      const copies = inputCopies(capture, args);
      if (typeof copies === 'string') return eager(args, copies);
      if (verifyEvery === 0 || capture.sinceVerify < verifyEvery) {
        capture.sinceVerify++;
        return replay(capture, copies);
      }
      // A verification step: eager and recorded (the captured buffers stay pinned), then compared.
      // The same step becomes the capture (tensors it left behind, such as .grad, are in its
      // buffers, which the next replays must write); a different one drops it.
      const { out, tape, result } = record(gpu, args);
      const diff = tape instanceof Error ? tape.message : tapeDifference(capture.tape, tape);
      if (diff === null) {
        stats.verified++;
        return adopt(gpu, tape as StepTape, key, args, result!);
      }
      reason = `verification after ${verifyEvery} replays: ${diff}`;
      drop();
      tries = 1;
      previous = tape instanceof Error ? null : { tape, key };
      return out;
    }
    if (stats.eager + stats.recorded < warmup || gpu.isRecording) return eager(args);
    // Tries count steps of one key: a key that changes every call (a schedule in motion) is not the function failing.
    if (previous && previous.key !== key) tries = 0;
    if (tries > attempts) {
      givenUp = true;
      return eager(args);
    }
    tries++;
    const { out, tape, result } = record(gpu, args);
    if (tape instanceof Error) {
      reason = tape.message;
      givenUp = true;
      return out;
    }
    const diff = previous && previous.key === key ? tapeDifference(previous.tape, tape) : 'first recorded step';
    if (diff !== null) {
      reason = diff;
      previous = { tape, key };
      return out;
    }
    stats.captures++;
    return adopt(gpu, tape, key, args, result!);
  };

  /** Makes a recorded step the capture; its results come back as copies (replays reuse its buffers). */
  const adopt = (gpu: WebGPUBackend, tape: StepTape, key: string, args: A, result: { tensors: Tensor[]; rebuild: (ts: Tensor[]) => StepResult }): R => {
    drop();
    const spec = outputSpecs(result.tensors);
    const pinned = tape.buffers();
    for (const o of spec) pinned.add(gpuBuf(o.storage));
    const inputs = args.map((a) => ({ storage: a.storage, offset: a.offset }));
    for (const i of inputs) pinned.add(gpuBuf(i.storage));
    gpu.pool.pin(pinned);
    capture = { gpu, tape, key, inputs, outputs: { spec, rebuild: result.rebuild }, pinned, sinceVerify: 0 };
    previous = null;
    reason = null;
    tries = 0;
    stats.dispatches = tape.counts().dispatches;
    const copies = result.rebuild(spec.map((o) => copyOut(gpu, o)));
    for (const t of result.tensors) t.dispose();
    return copies as R;
  };

  const eager = (args: A, why?: string): R => {
    if (why) reason = why;
    mode = 'eager';
    stats.eager++;
    return fn(...args);
  };

  /** One eager call with its commands recorded; the tape is an Error when the result cannot be replayed. */
  const record = (gpu: WebGPUBackend, args: A): { out: R; tape: StepTape | Error; result?: { tensors: Tensor[]; rebuild: (ts: Tensor[]) => StepResult } } => {
    mode = 'recorded';
    stats.recorded++;
    const tape = gpu.beginRecording(args.map((a) => a.storage));
    let out: R;
    try {
      out = fn(...args);
    } finally {
      gpu.endRecording();
    }
    if (out instanceof Promise) return { out, tape: new Error('the function returns a Promise (a captured step must be synchronous)') };
    const result = flatten(out);
    if (typeof result === 'string') return { out, tape: new Error(result) };
    for (const t of result.tensors) {
      if (t.backend !== gpu) return { out, tape: new Error(`a result tensor lives on ${t.backend.name}, the step on ${gpu.name}`) };
      if (!t.isContiguous) return { out, tape: new Error(`result ${t.describe()} is a strided view (return a contiguous tensor)`) };
      if (!tape.role(gpuBuf(t.storage)).startsWith('step buffer')) return { out, tape: new Error(`result ${t.describe()} existed before the step (results must be made by it)`) };
    }
    if (!args.every((a) => a.isContiguous)) return { out, tape: new Error('an argument is a strided view (pass contiguous tensors)') };
    return { out, tape, result };
  };

  const replay = (c: Capture, copies: Parameters<WebGPUBackend['replay']>[1]): R => {
    mode = 'replay';
    reason = null;
    stats.replays++;
    c.gpu.replay(c.tape, copies);
    return c.outputs.rebuild(c.outputs.spec.map((o) => copyOut(c.gpu, o))) as R;
  };

  const step = call as CapturedStep<A, R>;
  Object.defineProperties(step, {
    mode: { get: () => mode },
    reason: { get: () => reason },
    stats: { get: () => ({ ...stats }) },
    dispose: {
      value: () => {
        drop();
        previous = null;
      },
    },
  });
  return step;
}

type InputCopy = Parameters<WebGPUBackend['replay']>[1][number];

function gpuBuf(s: Storage): import('./webgpu/pool.js').PooledBuffer {
  return (s as unknown as { buf: import('./webgpu/pool.js').PooledBuffer }).buf;
}

function keyOf(args: readonly Tensor[]): string {
  let k = '';
  for (const a of args) k += `${a.dtype}[${a.shape.join(',')}];`;
  return k;
}

/** The copies of each argument into the buffer the capture read it from, or why this call cannot replay. */
function inputCopies(c: Capture, args: readonly Tensor[]): Parameters<WebGPUBackend['replay']>[1] | string {
  const copies: InputCopy[] = [];
  for (let i = 0; i < args.length; i++) {
    const a = args[i]!;
    const to = c.inputs[i]!;
    if (a.backend !== c.gpu) return `argument ${i} lives on ${a.backend.name}, the capture on ${c.gpu.name}`;
    if (!a.isContiguous) return `argument ${i} ${a.describe()} is a strided view (pass contiguous tensors to replay)`;
    if (a.storage === to.storage && a.offset === to.offset) continue;
    if (gpuBuf(a.storage) === gpuBuf(to.storage)) return `argument ${i} shares a buffer with the captured argument at another offset`;
    copies.push({ from: a.storage, fromByte: a.offset * 4, to: to.storage, toByte: to.offset * 4, bytes: a.size * 4 });
  }
  return copies;
}

/** The result's tensors and how to put copies of them back in its shape; or why it is not a result. */
function flatten(out: unknown): { tensors: Tensor[]; rebuild: (ts: Tensor[]) => StepResult } | string {
  if (out instanceof Tensor) return { tensors: [out], rebuild: (ts) => ts[0]! };
  if (Array.isArray(out) && out.every((t) => t instanceof Tensor)) return { tensors: [...out], rebuild: (ts) => ts };
  if (out !== null && typeof out === 'object' && Object.getPrototypeOf(out) === Object.prototype && Object.values(out).every((t) => t instanceof Tensor)) {
    const keys = Object.keys(out);
    return { tensors: keys.map((k) => (out as Record<string, Tensor>)[k]!), rebuild: (ts) => Object.fromEntries(keys.map((k, i) => [k, ts[i]!])) };
  }
  return 'the function returns something other than a tensor, an array of tensors or an object of tensors';
}

function outputSpecs(ts: readonly Tensor[]): OutputSpec[] {
  return ts.map((t) => ({ storage: t.storage, offset: t.offset, shape: t.shape, dtype: t.dtype }));
}

/** A new tensor holding a copy of a captured output. */
function copyOut(gpu: WebGPUBackend, o: OutputSpec): Tensor {
  let n = 1;
  for (const d of o.shape) n *= d;
  const st = gpu.alloc(n, o.dtype);
  gpu.copy(o.storage, o.offset * 4, st, 0, n * 4);
  return new Tensor(st, o.shape, o.dtype, 'captureStep');
}
