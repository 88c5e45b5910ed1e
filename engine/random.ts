/**
 * Random numbers from the counter-based Philox4x32-10 generator (shaders/philox.ts).
 *
 * A `Generator` holds a 64-bit key (the seed) and a 64-bit counter offset, counted in 128-bit
 * blocks. A call that needs n numbers uses the ceil(n / 4) blocks starting at the offset (element
 * i comes from word i % 4 of block offset + floor(i / 4)) and advances the offset past them, so
 * consecutive calls give fresh numbers and a run is reproducible from (seed, offset). The stream
 * is defined by these integers alone: the CPU and WebGPU backends produce bit-identical u32 words,
 * identical uniform floats (top 24 bits times 2^-24, exact in f32) and identical integers; normals
 * (Box-Muller) agree to float rounding: the GPU computes log/sin/cos with its own series, not the
 * WGSL builtins, whose allowed error (up to 2^-11) would differ from device to device.
 */
import type { Backend } from './backend.js';
import { cpuData } from './cpu/strided.js';
import { getBackend } from './default-backend.js';
import type { DType } from './dtype.js';
import { checkShape, sizeOf, type Shape } from './shape.js';
import { isTensor, Tensor } from './tensor.js';
import { defineOp } from './op.js';
import { tidy } from './scope.js';
import { philoxKernel, PHILOX_WG, type PhiloxKind } from '../shaders/philox.js';
import { lt } from './ops/binary.js';

// ---- Philox4x32-10 on the CPU ----

const M0 = 0xd2511f53;
const M1 = 0xcd9e8d57;
const W0 = 0x9e3779b9;
const W1 = 0xbb67ae85;

/** High 32 bits of the 64-bit product of two u32 (16-bit limbs, every partial product exact). */
export function mulhi32(a: number, b: number): number {
  const al = a & 0xffff;
  const ah = a >>> 16;
  const bl = b & 0xffff;
  const bh = b >>> 16;
  const ll = al * bl;
  const lh = al * bh;
  const hl = ah * bl;
  const hh = ah * bh;
  const mid = (ll >>> 16) + (lh & 0xffff) + (hl & 0xffff);
  return (hh + (lh >>> 16) + (hl >>> 16) + (mid >>> 16)) >>> 0;
}

/** Philox4x32-10 of one counter block; writes the 4 output words into `out` at `at`. */
function philoxInto(c0: number, c1: number, c2: number, c3: number, k0: number, k1: number, out: Uint32Array, at: number): void {
  for (let r = 0; r < 10; r++) {
    if (r > 0) {
      k0 = (k0 + W0) >>> 0;
      k1 = (k1 + W1) >>> 0;
    }
    const hi0 = mulhi32(M0, c0);
    const lo0 = Math.imul(M0, c0) >>> 0;
    const hi1 = mulhi32(M1, c2);
    const lo1 = Math.imul(M1, c2) >>> 0;
    const n0 = (hi1 ^ c1 ^ k0) >>> 0;
    const n2 = (hi0 ^ c3 ^ k1) >>> 0;
    c0 = n0;
    c1 = lo1;
    c2 = n2;
    c3 = lo0;
  }
  out[at] = c0;
  out[at + 1] = c1;
  out[at + 2] = c2;
  out[at + 3] = c3;
}

/** Philox4x32-10 of one block: counter (4 u32 words) and key (2 u32 words) -> 4 u32 words. */
export function philox4x32(counter: readonly number[], key: readonly number[]): [number, number, number, number] {
  const out = new Uint32Array(4);
  philoxInto(counter[0]! >>> 0, counter[1]! >>> 0, counter[2]! >>> 0, counter[3]! >>> 0, key[0]! >>> 0, key[1]! >>> 0, out, 0);
  return [out[0]!, out[1]!, out[2]!, out[3]!];
}

/** u32 words of blocks start, start+1, ... (64-bit counter in words 0-1, words 2-3 fixed). */
function philoxWords(n: number, key: readonly [number, number], ctr: readonly [number, number, number, number]): Uint32Array {
  const blocks = Math.ceil(n / 4);
  const out = new Uint32Array(blocks * 4);
  for (let t = 0; t < blocks; t++) {
    const c0 = (ctr[0] + t) >>> 0;
    const c1 = (ctr[1] + (c0 < t ? 1 : 0)) >>> 0;
    philoxInto(c0, c1, ctr[2], ctr[3], key[0], key[1], out, 4 * t);
  }
  return out;
}

// ---- generators ----

/** A generator's checkpoint: the key (seed) and the offset in blocks, as u32 words (JSON-safe). */
export interface GeneratorState {
  key: [number, number];
  offset: [number, number];
}

/** The seed of the module's default generator until manualSeed() is called (PyTorch's default). */
export const DEFAULT_SEED = 67280421310721n;

function isU32(v: unknown): v is number {
  return typeof v === 'number' && Number.isInteger(v) && v >= 0 && v <= 0xffffffff;
}

export class Generator {
  private k0 = 0;
  private k1 = 0;
  private off0 = 0;
  private off1 = 0;

  constructor(seed: number | bigint = DEFAULT_SEED) {
    this.manualSeed(seed);
  }

  /** Re-seeds (the key is the seed's low 64 bits, two's complement for negatives) and rewinds. */
  manualSeed(seed: number | bigint): this {
    if (typeof seed === 'number' && !Number.isSafeInteger(seed)) throw new TypeError(`manualSeed: seed must be an integer (or a bigint), got ${seed}`);
    if (typeof seed !== 'number' && typeof seed !== 'bigint') throw new TypeError(`manualSeed: seed must be a number or bigint, got ${typeof seed}`);
    const s = BigInt.asUintN(64, BigInt(seed));
    this.k0 = Number(s & 0xffffffffn);
    this.k1 = Number(s >> 32n);
    this.off0 = 0;
    this.off1 = 0;
    return this;
  }

  /** The seed as a non-negative bigint. */
  get seed(): bigint {
    return (BigInt(this.k1) << 32n) | BigInt(this.k0);
  }

  /** Blocks consumed so far. */
  get offset(): bigint {
    return (BigInt(this.off1) << 32n) | BigInt(this.off0);
  }

  state(): GeneratorState {
    return { key: [this.k0, this.k1], offset: [this.off0, this.off1] };
  }

  setState(s: GeneratorState): this {
    const ok = s && Array.isArray(s.key) && Array.isArray(s.offset) && s.key.length === 2 && s.offset.length === 2 && [...s.key, ...s.offset].every(isU32);
    if (!ok) throw new TypeError(`Generator.setState: expected {key: [u32, u32], offset: [u32, u32]}, got ${JSON.stringify(s)}`);
    [this.k0, this.k1] = s.key;
    [this.off0, this.off1] = s.offset;
    return this;
  }

  /** An independent copy (same seed and offset). */
  clone(): Generator {
    return new Generator(0).setState(this.state());
  }

  /**
   * Reserves the counter blocks for `n` numbers: returns the key and first counter and moves the
   * offset past them.
   */
  take(n: number): { key: [number, number]; counter: [number, number, number, number] } {
    const counter: [number, number, number, number] = [this.off0, this.off1, 0, 0];
    const blocks = Math.ceil(n / 4);
    const lo = this.off0 + blocks;
    this.off0 = lo >>> 0;
    this.off1 = (this.off1 + Math.floor(lo / 0x100000000)) >>> 0;
    return { key: [this.k0, this.k1], counter };
  }
}

let defaultGen = new Generator(DEFAULT_SEED);

/** The generator used when an op is given none. */
export function defaultGenerator(): Generator {
  return defaultGen;
}

/** Seeds (and rewinds) the default generator; returns it. */
export function manualSeed(seed: number | bigint): Generator {
  return defaultGen.manualSeed(seed);
}

// ---- sampling ----

export interface RandomOptions {
  generator?: Generator;
  backend?: Backend;
}

const TWO_PI = 2 * Math.PI;
const INV_2_24 = 2 ** -24;

/** The CPU twin of each kernel's output transform: words -> values (4 per block). */
function transformCpu(kind: PhiloxKind, w: Uint32Array, n: number, a: number, b: number, out: ArrayLike<number> & { [i: number]: number }): void {
  switch (kind) {
    case 'bits':
      for (let i = 0; i < n; i++) out[i] = w[i]! | 0;
      return;
    case 'uniform':
      for (let i = 0; i < n; i++) out[i] = a + (w[i]! >>> 8) * INV_2_24 * b;
      return;
    case 'bernoulli':
      for (let i = 0; i < n; i++) out[i] = (w[i]! >>> 8) * INV_2_24 < a ? 1 : 0;
      return;
    case 'randint':
      for (let i = 0; i < n; i++) out[i] = ((b === 0 ? w[i]! : mulhi32(w[i]!, b)) + a) | 0;
      return;
    case 'normal':
      for (let i = 0; i < n; i += 2) {
        const u1 = ((w[i]! >>> 8) + 1) * INV_2_24;
        const th = (w[i + 1]! >>> 8) * INV_2_24 * TWO_PI - Math.PI;
        const rad = Math.sqrt(-2 * Math.log(u1));
        out[i] = -rad * Math.cos(th) * b + a;
        if (i + 1 < n) out[i + 1] = -rad * Math.sin(th) * b + a;
      }
      return;
  }
}

interface PhiloxAttrs {
  kind: PhiloxKind;
  /** The new tensor the values are written into. */
  out: Tensor;
  key: readonly [number, number];
  counter: readonly [number, number, number, number];
  a: number;
  b: number;
  /** The generator the counter was taken from: a replayed captured step takes its next counter from it. */
  gen?: Generator;
}

/** Fills its output view with `kind` values from the counter range (no inputs). */
const philoxFill = defineOp<PhiloxAttrs>({
  name: 'philox_fill',
  outputs: (_inputs, a) => [{ into: a.out }],
  kernels: {
    cpu: (_b, { outputs: [out], attrs: { kind, key, counter, a, b } }) => {
      const n = out!.size;
      const w = philoxWords(n, key, counter);
      // The f32 kernel parameters are f32 values: use the same values here.
      const isF = kind === 'uniform' || kind === 'normal' || kind === 'bernoulli';
      transformCpu(kind, w, n, isF ? Math.fround(a) : a, isF ? Math.fround(b) : b, cpuData(out!));
    },
    webgpu: (gpu, { outputs: [out], attrs: { kind, key, counter, a, b, gen } }) => {
      const n = out!.size;
      // The counter taken when the op ran, then (replays of a captured step) the generator's next ones.
      let taken = true;
      const next = () => {
        if (taken) return ((taken = false), { ctr0: counter[0], ctr1: counter[1] });
        const c = gen!.take(n).counter;
        return { ctr0: c[0], ctr1: c[1] };
      };
      gpu.run(philoxKernel, kind, {
        params: { n, key0: key[0], key1: key[1], ctr0: counter[0], ctr1: counter[1], ctr2: counter[2], ctr3: counter[3], a, b },
        ...(gen ? { dynamic: next } : {}),
        bindings: { out: out! },
        workgroups: Math.ceil(Math.ceil(n / 4) / PHILOX_WG),
      });
    },
  },
});

/**
 * Fills a new tensor with `kind` values from the given counter range. `a`/`b` are the kind's
 * parameters (see shaders/philox.ts); for f32 parameters the GPU receives them rounded to f32.
 */
function sample(kind: PhiloxKind, shape: Shape, dtype: DType, key: readonly [number, number], counter: readonly [number, number, number, number], backend: Backend, a: number, b: number, gen?: Generator): Tensor {
  const out = new Tensor(backend.alloc(sizeOf(shape), dtype), shape, dtype, kind === 'uniform' ? 'rand' : kind === 'normal' ? 'randn' : kind);
  return philoxFill([], { kind, key, counter, a, b, out, ...(gen ? { gen } : {}) })[0]!;
}

function draw(kind: PhiloxKind, op: string, shape: Shape, dtype: DType, opts: RandomOptions, a: number, b: number): Tensor {
  const s = checkShape(shape, op);
  const gen = opts.generator ?? defaultGen;
  if (!(gen instanceof Generator)) throw new TypeError(`${op}: generator must be a Generator`);
  const { key, counter } = gen.take(sizeOf(s));
  return sample(kind, s, dtype, key, counter, opts.backend ?? getBackend(), a, b, gen);
}

/**
 * The raw Philox stream: n u32 words for an explicit 128-bit counter (words 0-1 are incremented
 * per block of 4) and 64-bit key, as an i32 tensor holding the bit patterns. For tests against
 * Random123's known-answer vectors and for custom streams.
 */
export function philoxStream(n: number, counter: readonly number[], key: readonly number[], backend: Backend = getBackend()): Tensor {
  if (counter.length !== 4 || key.length !== 2 || ![...counter, ...key].every(isU32)) {
    throw new TypeError(`philoxStream: counter must be 4 and key 2 u32 words, got ${JSON.stringify({ counter, key })}`);
  }
  return sample('bits', checkShape([n], 'philoxStream'), 'i32', [key[0]!, key[1]!], [counter[0]!, counter[1]!, counter[2]!, counter[3]!], backend, 0, 0);
}

/** Uniform random u32 words (as i32 bit patterns). */
export function randomBits(shape: Shape, opts: RandomOptions = {}): Tensor {
  return draw('bits', 'randomBits', shape, 'i32', opts, 0, 0);
}

/** Uniform floats in [low, high) (default [0, 1)), with 24 random bits each. */
export function rand(shape: Shape, opts: RandomOptions & { low?: number; high?: number } = {}): Tensor {
  const low = opts.low ?? 0;
  const high = opts.high ?? 1;
  if (!Number.isFinite(low) || !Number.isFinite(high) || !(high >= low)) throw new RangeError(`rand: need finite low <= high, got low=${low}, high=${high}`);
  return draw('uniform', 'rand', shape, 'f32', opts, low, high - low);
}

/** Normal samples N(mean, std^2) by the Box-Muller transform. */
export function randn(shape: Shape, opts: RandomOptions & { mean?: number; std?: number } = {}): Tensor {
  const mean = opts.mean ?? 0;
  const std = opts.std ?? 1;
  if (!Number.isFinite(mean) || !Number.isFinite(std) || std < 0) throw new RangeError(`randn: need finite mean and std >= 0, got mean=${mean}, std=${std}`);
  return draw('normal', 'randn', shape, 'f32', opts, mean, std);
}

/** Integers uniform in [low, high) as i32 (high word of a 32x32-bit product: bias < range / 2^32). */
export function randint(low: number, high: number, shape: Shape, opts: RandomOptions = {}): Tensor {
  if (!Number.isInteger(low) || !Number.isInteger(high) || low < -0x80000000 || high > 0x80000000 || high <= low) {
    throw new RangeError(`randint: need integers -2^31 <= low < high <= 2^31, got low=${low}, high=${high}`);
  }
  const range = high - low; // 1 .. 2^32; 2^32 is passed as 0
  return draw('randint', 'randint', shape, 'i32', opts, low >>> 0, range >>> 0);
}

/**
 * 0/1 floats with P(1) = p. `p` is a number, or a tensor of probabilities (then the result has
 * its shape, or `shape` if given and p broadcasts to it).
 */
export function bernoulli(p: number | Tensor, shape?: Shape, opts: RandomOptions = {}): Tensor {
  if (isTensor(p)) {
    if (p.dtype !== 'f32') throw new TypeError(`bernoulli: probabilities must be f32, got ${p.describe()}`);
    return tidy(() => lt(draw('uniform', 'bernoulli', shape ?? p.shape, 'f32', Object.assign({}, opts, { backend: opts.backend ?? p.backend }), 0, 1), p));
  }
  if (!(p >= 0 && p <= 1)) throw new RangeError(`bernoulli: p must be in [0, 1], got ${p}`);
  if (shape === undefined) throw new Error('bernoulli: a shape is required when p is a number');
  return draw('bernoulli', 'bernoulli', shape, 'f32', opts, p, 0);
}
