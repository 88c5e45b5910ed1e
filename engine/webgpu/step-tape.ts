/**
 * The tape of one recorded step: everything the WebGPU backend sent to the device while a
 * function ran (dispatches with their pipeline, bind group and parameter words, buffer writes,
 * host effects), enough to send the same commands again without running the function (replay).
 *
 * Buffers are named by role, not by id, when two tapes are compared: a buffer the step acquired
 * is named by the index of that acquisition within the step (its life), a buffer that existed
 * before by its id (parameters, optimizer state), an input by its argument position. Two steps of
 * a function with a fixed op sequence give equal tapes under these names even when the pool hands
 * them different buffers; a difference (another kernel, other parameter words, other data
 * uploaded, another pre-existing buffer) means the function is not the same from step to step.
 */
import type { KernelLayout } from '../kernel.js';
import type { PooledBuffer } from './pool.js';

/** Parameters computed when a dispatch is recorded and again at each replay (a step count, an RNG counter). */
export type DynamicParams = () => Readonly<Record<string, number | readonly number[]>>;

export interface TapeDispatch {
  readonly kind: 'dispatch';
  readonly layout: KernelLayout;
  readonly pipeline: GPUComputePipeline;
  readonly group: GPUBindGroup;
  readonly bufs: readonly PooledBuffer[];
  /** Each binding's role when the dispatch was recorded (see StepTape.role). */
  readonly roles: readonly string[];
  /** The packed parameter slot (zeros beyond the declared fields). */
  readonly words: Uint32Array;
  /** Set when part of the parameters is recomputed at each replay: the static part and the function. */
  readonly params: Readonly<Record<string, number | readonly number[]>> | null;
  readonly dynamic: DynamicParams | null;
  readonly grid: readonly [number, number, number];
}

export interface TapeWrite {
  readonly kind: 'write';
  readonly buf: PooledBuffer;
  readonly role: string;
  readonly byteOffset: number;
  readonly data: Uint8Array;
}

export interface TapeEffect {
  readonly kind: 'effect';
  readonly fn: () => void;
}

export type TapeEvent = TapeDispatch | TapeWrite | TapeEffect;

export class StepTape {
  readonly events: TapeEvent[] = [];
  /** Why this tape cannot be replayed (a readback during the step), or null. */
  invalid: string | null = null;
  /** Acquisition index per buffer id, for buffers acquired during the step (the latest life). */
  private readonly lives = new Map<number, number>();
  private acquisitions = 0;
  /** Buffer id -> input position, for the step's inputs. */
  private readonly inputs = new Map<number, number>();

  constructor(inputBufs: readonly PooledBuffer[]) {
    inputBufs.forEach((b, i) => this.inputs.set(b.id, i));
  }

  acquired(buf: PooledBuffer): void {
    this.lives.set(buf.id, this.acquisitions++);
  }

  /** The buffer's name for comparisons (see the file comment), as of now: a buffer reused within the step has one name per life. */
  role(buf: PooledBuffer): string {
    const input = this.inputs.get(buf.id);
    if (input !== undefined) return `input ${input}`;
    const life = this.lives.get(buf.id);
    return life === undefined ? `buffer #${buf.id}` : `step buffer ${life}`;
  }

  /** Every buffer the tape touches. */
  buffers(): Set<PooledBuffer> {
    const s = new Set<PooledBuffer>();
    for (const e of this.events) {
      if (e.kind === 'dispatch') for (const b of e.bufs) s.add(b);
      else if (e.kind === 'write') s.add(e.buf);
    }
    return s;
  }

  /** Counts of the tape's events, for reports. */
  counts(): { dispatches: number; writes: number; effects: number; dynamic: number } {
    const c = { dispatches: 0, writes: 0, effects: 0, dynamic: 0 };
    for (const e of this.events) {
      if (e.kind === 'dispatch') {
        c.dispatches++;
        if (e.dynamic) c.dynamic++;
      } else if (e.kind === 'write') c.writes++;
      else c.effects++;
    }
    return c;
  }
}

/**
 * Why two tapes of the same function differ (the first difference, in words), or null when they
 * are the same step: same events in order, same kernels, grids and buffer roles, the same
 * parameter words where no part is dynamic, the same data written.
 */
export function tapeDifference(a: StepTape, b: StepTape): string | null {
  if (a.invalid) return a.invalid;
  if (b.invalid) return b.invalid;
  const n = Math.min(a.events.length, b.events.length);
  for (let i = 0; i < n; i++) {
    const x = a.events[i]!;
    const y = b.events[i]!;
    const at = `event ${i}`;
    if (x.kind !== y.kind) return `${at}: a ${x.kind} in one step, a ${y.kind} in the other (the op sequence changed)`;
    if (x.kind === 'dispatch' && y.kind === 'dispatch') {
      const k = `${at} (kernel ${x.layout.kernel})`;
      if (x.layout !== y.layout || x.pipeline !== y.pipeline) return `${at}: kernel ${x.layout.kernel} in one step, ${y.layout.kernel} in the other (the op sequence changed)`;
      if (x.grid.some((g, j) => g !== y.grid[j])) return `${k}: workgroups ${x.grid.join('x')} vs ${y.grid.join('x')}`;
      for (let j = 0; j < x.bufs.length; j++) {
        const [rx, ry] = [x.roles[j]!, y.roles[j]!];
        if (rx !== ry) return `${k}: binding ${x.layout.bindingNames[j]} is ${rx} in one step, ${ry} in the other`;
      }
      if (!!x.dynamic !== !!y.dynamic) return `${k}: dynamic parameters in one step only`;
      if (!x.dynamic && !wordsEqual(x.words, y.words)) return `${k}: parameter values differ between steps (a per-step value the kernel call does not declare dynamic)`;
    } else if (x.kind === 'write' && y.kind === 'write') {
      const [rx, ry] = [x.role, y.role];
      if (rx !== ry || x.byteOffset !== y.byteOffset) return `${at}: data uploaded to ${rx} in one step, ${ry} in the other`;
      if (!bytesEqual(x.data, y.data)) return `${at}: the data uploaded to ${rx} differs between steps (host-computed per-step values)`;
    }
  }
  if (a.events.length !== b.events.length) return `one step recorded ${a.events.length} events, the other ${b.events.length} (the op sequence changed)`;
  return null;
}

function wordsEqual(a: Uint32Array, b: Uint32Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

function bytesEqual(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}
