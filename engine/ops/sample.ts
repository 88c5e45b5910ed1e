/**
 * sampleLogits: draws token ids from logits rows on the device (temperature, top-k, top-p), driven
 * by the engine's Philox Generator, so autoregressive sampling never reads logits back to the host.
 *
 * Algorithm (identical on the CPU reference and the GPU kernel, shaders/sample.ts; per row x of V
 * logits):
 *  1. m = max x (ties: lowest index = the argmax). temperature 0 (or one that rounds to 0 in f32)
 *     is greedy: the result is the argmax and the generator is not advanced.
 *  2. e_j = exp((x_j - m) / T) (d = 0 where x_j == m, so +inf logits and all -inf rows are
 *     defined: the tokens equal to the max share the mass).
 *  3. top-k (0 < k < V): the threshold tk is the k-th largest logit (counted with multiplicity);
 *     kept = {j : x_j >= tk}. Ties at the threshold are ALL kept, so more than k tokens survive
 *     exactly when logits tie at the k-th place (HF transformers' rule).
 *  4. top-p (p < 1): S = sum of e over kept; the threshold tp is the largest logit value such that
 *     the mass of kept tokens with x_j >= tp is >= p * S; nucleus = {j kept : x_j >= tp}: the
 *     smallest set of largest-probability tokens with mass >= p, again keeping all ties at tp.
 *  5. One uniform u per row: u = (w >>> 8) * 2^-24 with w the Philox word of row b (the call takes
 *     B words from the generator: row b uses word b % 4 of block offset + floor(b / 4), as rand()).
 *     The id is the first j in index order with cumsum_{i <= j, i in nucleus} e_i > u * Z, Z the
 *     nucleus mass (the last nucleus index if rounding leaves none).
 * The GPU selects thresholds exactly (bisection over the order-preserving u32 keys of the f32
 * logits, 2 bits per pass) and sums in f32; the reference uses float64. The sets of step 3 agree
 * exactly; step 4's set and step 5's pick can differ only when p * S or u * Z lies within f32
 * rounding of a cumulative-mass boundary. -0 and +0 compare equal; NaN logits give unspecified
 * (but in-range) ids.
 */
import { cpuData } from '../cpu/strided.js';
import { defineOp } from '../op.js';
import { Tensor } from '../tensor.js';
import { defaultGenerator, Generator, philox4x32 } from '../random.js';
import { sampleKernel, sampleWorkgroup } from '../../shaders/sample.js';

export interface SampleOptions {
  /** Default 1; 0 means greedy (argmax). */
  temperature?: number;
  /** Default 0 = off; keep the k largest logits (all ties at the k-th value are kept). */
  topK?: number;
  /** Default 1 = off; keep the smallest set of largest-probability tokens whose mass >= topP (after temperature and top-k). */
  topP?: number;
  /** engine/random.ts Generator; default the default generator. */
  generator?: Generator;
}

const INV_2_24 = 2 ** -24;

/** The uniform of row b from the counter range that starts at `counter`. */
export function sampleUniform(key: readonly [number, number], counter: readonly [number, number, number, number], b: number): number {
  const blk = Math.floor(b / 4);
  const c0 = (counter[0] + blk) >>> 0;
  const c1 = (counter[1] + (c0 < blk ? 1 : 0)) >>> 0;
  const w = philox4x32([c0, c1, counter[2], counter[3]], key);
  return (w[b % 4]! >>> 8) * INV_2_24;
}

/**
 * One row of the float64 reference: `x` holds the V logits; `u` is the row's uniform (ignored when
 * greedy). Returns the token id.
 */
export function sampleRowReference(x: ArrayLike<number>, T: number, k: number, p: number, u: number): number {
  const V = x.length;
  let m = -Infinity;
  let am = 0;
  for (let j = 0; j < V; j++) {
    if (x[j]! > m) {
      m = x[j]!;
      am = j;
    }
  }
  if (T === 0) return am;
  const e = new Float64Array(V);
  for (let j = 0; j < V; j++) e[j] = x[j] === m ? 1 : Math.exp((x[j]! - m) / T);
  const sorted = Float64Array.from(x).sort().reverse(); // descending
  let lo = -Infinity;
  if (k > 0 && k < V) lo = sorted[k - 1]!;
  if (p < 1) {
    let S = 0;
    for (let j = 0; j < V; j++) if (x[j]! >= lo) S += e[j]!;
    const target = p * S;
    // Walk distinct values downwards; the first whose cumulative mass (ties included) reaches the target.
    const idx = Array.from({ length: V }, (_, j) => j).filter((j) => x[j]! >= lo);
    idx.sort((a, b) => (x[a]! < x[b]! ? 1 : x[a]! > x[b]! ? -1 : a - b)); // (no NaN from -inf - -inf)
    let cum = 0;
    for (let i = 0; i < idx.length; ) {
      const v = x[idx[i]!]!;
      while (i < idx.length && x[idx[i]!]! === v) cum += e[idx[i++]!]!;
      if (cum >= target) {
        lo = v;
        break;
      }
    }
  }
  let Z = 0;
  let last = am;
  for (let j = 0; j < V; j++) {
    if (x[j]! >= lo) {
      Z += e[j]!;
      last = j;
    }
  }
  const t = u * Z;
  let acc = 0;
  for (let j = 0; j < V; j++) {
    if (x[j]! >= lo) {
      acc += e[j]!;
      if (acc > t) return j;
    }
  }
  return last;
}

interface SampleAttrs {
  B: number;
  V: number;
  T: number;
  greedy: boolean;
  k: number;
  p: number;
  key: readonly [number, number];
  counter: readonly [number, number, number, number];
}

const GREEDY_KEY = [0, 0] as const;
const GREEDY_COUNTER = [0, 0, 0, 0] as const;

/** Input: logits [B, V] or [V] (validated by sampleLogits before the generator advances). */
const sampleOp = defineOp<SampleAttrs>({
  name: 'sample_logits',
  outputs: ([logits], a) => [{ shape: logits!.rank === 2 ? [a.B] : [], dtype: 'i32', name: 'sampleLogits' }],
  kernels: {
    cpu: (_b, { inputs: [logits], outputs: [out], attrs: a }) => {
      const x = logits!;
      const rs = x.rank === 2 ? x.strides[0]! : 0;
      const cs = x.strides[x.rank - 1]!;
      const src = cpuData(x);
      const o = cpuData(out!);
      const row = new Float64Array(a.V);
      for (let b = 0; b < a.B; b++) {
        const base = x.offset + b * rs;
        for (let j = 0; j < a.V; j++) row[j] = src[base + j * cs]!;
        o[b] = sampleRowReference(row, a.T, a.k, a.p, a.greedy ? 0 : sampleUniform(a.key, a.counter, b));
      }
    },
    webgpu: (gpu, { inputs: [x], outputs: [out], attrs: a }) => {
      const { key, counter } = a;
      gpu.run(sampleKernel, { wg: sampleWorkgroup(a.V) }, {
        params: {
          B: a.B, V: a.V, offset: x!.offset, rowStride: x!.rank === 2 ? x!.strides[0]! : 0, colStride: x!.strides[x!.rank - 1]!, k: a.k,
          key0: key[0], key1: key[1], ctr0: counter[0], ctr1: counter[1], ctr2: counter[2], ctr3: counter[3],
          greedy: a.greedy ? 1 : 0, T: a.greedy ? 1 : a.T, p: a.p,
        },
        bindings: { x: x!, out: out! },
        workgroups: a.B,
      });
    },
  },
});

/** logits f32 [B, V] (or [V]) -> i32 [B] (or scalar [] for [V]) token ids; no gradient. */
export function sampleLogits(logits: Tensor, opts: SampleOptions = {}): Tensor {
  const op = 'sampleLogits';
  if (!(logits instanceof Tensor)) throw new TypeError(`${op}: logits must be a Tensor`);
  if (logits.dtype !== 'f32') throw new TypeError(`${op}: logits must be f32, got dtype ${logits.dtype} (${logits.describe()})`);
  if (logits.rank !== 1 && logits.rank !== 2) throw new Error(`${op}: logits must have shape [B, V] or [V], got [${logits.shape.join(', ')}]`);
  const V = logits.shape[logits.rank - 1]!;
  const B = logits.rank === 2 ? logits.shape[0]! : 1;
  if (V < 1) throw new Error(`${op}: the vocabulary dimension must be >= 1, got shape [${logits.shape.join(', ')}]`);
  const temperature = opts.temperature ?? 1;
  const topK = opts.topK ?? 0;
  const topP = opts.topP ?? 1;
  if (typeof temperature !== 'number' || !Number.isFinite(temperature) || temperature < 0) throw new RangeError(`${op}: temperature must be a finite number >= 0, got ${temperature}`);
  if (typeof topK !== 'number' || !Number.isSafeInteger(topK) || topK < 0) throw new RangeError(`${op}: topK must be an integer >= 0, got ${topK}`);
  if (typeof topP !== 'number' || !(topP > 0 && topP <= 1)) throw new RangeError(`${op}: topP must be in (0, 1], got ${topP}`);
  const gen = opts.generator ?? defaultGenerator();
  if (!(gen instanceof Generator)) throw new TypeError(`${op}: generator must be a Generator`);

  // The GPU receives f32 parameters; the reference uses the same values.
  const T = Math.fround(temperature);
  const greedy = T === 0;
  const k = topK >= V ? 0 : topK;
  const p = Math.fround(topP) >= 1 ? 1 : Math.fround(topP);
  const { key, counter } = greedy ? { key: GREEDY_KEY, counter: GREEDY_COUNTER } : gen.take(B);
  return sampleOp([logits], { B, V, T, greedy, k, p, key, counter })[0]!;
}
