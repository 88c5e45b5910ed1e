/**
 * sampleLogits (engine/ops/sample.ts): token ids from logits with temperature / top-k / top-p.
 * - The CPU path (float64) and the GPU kernel (f32) draw the same uniform per row from the same
 *   Generator, so they return the same ids. They may differ only when a float rounding decides:
 *   u lies within 1e-5 of a boundary of the reference CDF, or top-p lies within 1e-5 of a
 *   cumulative sorted mass (f32 sums over up to 16k terms are ~1e-6 relative off the float64
 *   ones). Such mismatches are checked to be exactly these cases (they are rare: probability
 *   ~2e-5 per row).
 * - Top-k and top-p sets are checked against sets computed here in float64 (ties at the threshold
 *   are kept, the documented rule); temperature 0 against argmax (lowest index on ties).
 * - Empirical distributions over 4096 rows with fixed seeds: every token count within 5 standard
 *   deviations of N p (binomial), chi-square below df + 5 sqrt(2 df), nothing outside the nucleus.
 *   Fixed seeds make the run deterministic; a false failure would have probability < 1e-5.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import * as E from '../engine/index.js';
import { requireGpu } from './helpers/backends.js';
import { mulberry32 } from './helpers/prng.js';

const gpu = await requireGpu();
const cpu = E.cpuF64;

interface Opts {
  temperature: number;
  topK: number;
  topP: number;
}

/** f32 logits uniform in [-scale, scale). */
function logitsData(n: number, seed: number, scale: number): Float32Array {
  const r = mulberry32(seed);
  return Float32Array.from({ length: n }, () => (2 * r() - 1) * scale);
}

/** The float64 sampling distribution of one row: probability per token (0 outside the nucleus). */
function distribution(x: ArrayLike<number>, o: Opts): { probs: Float64Array; pBoundaries: number[] } {
  const V = x.length;
  const T = Math.fround(o.temperature);
  const m = Math.max(...Array.from(x));
  const e = Array.from(x, (v) => (v === m ? 1 : Math.exp((v - m) / T)));
  const order = Array.from({ length: V }, (_, j) => j).sort((a, b) => (x[a]! < x[b]! ? 1 : x[a]! > x[b]! ? -1 : a - b));
  const k = o.topK > 0 && o.topK < V ? o.topK : V;
  const tk = x[order[k - 1]!]!;
  const kept = order.filter((j) => x[j]! >= tk);
  const S = kept.reduce((s, j) => s + e[j]!, 0);
  // Cumulative mass fractions after each group of equal values, in decreasing value order.
  const pBoundaries: number[] = [];
  let cum = 0;
  let th = tk;
  let found = o.topP >= 1;
  for (let i = 0; i < kept.length; ) {
    const v = x[kept[i]!]!;
    while (i < kept.length && x[kept[i]!]! === v) cum += e[kept[i++]!]!;
    pBoundaries.push(cum / S);
    if (!found && cum >= Math.fround(o.topP) * S) {
      th = v;
      found = true;
    }
  }
  const probs = new Float64Array(V);
  let Z = 0;
  for (let j = 0; j < V; j++) if (x[j]! >= th) Z += e[j]!;
  for (let j = 0; j < V; j++) if (x[j]! >= th) probs[j] = e[j]! / Z;
  return { probs, pBoundaries };
}

/** True when a rounding difference may legitimately change the pick for uniform u. */
function nearBoundary(x: ArrayLike<number>, o: Opts, u: number, eps = 1e-5): boolean {
  const { probs, pBoundaries } = distribution(x, o);
  if (o.topP < 1 && pBoundaries.some((c) => Math.abs(c - Math.fround(o.topP)) < eps)) return true;
  let F = 0;
  for (const q of probs) {
    F += q;
    if (q > 0 && Math.abs(F - u) < eps) return true;
  }
  return false;
}

function rowOf(data: ArrayLike<number>, V: number, b: number): number[] {
  return Array.from({ length: V }, (_, j) => data[b * V + j]!);
}

/** The [B, V] logits as a contiguous tensor, a transposed view, or a sliced view (offset, row stride V + 3). */
function makeLogits(data: Float32Array, B: number, V: number, layout: 'contig' | 'transposed' | 'sliced', backend: E.Backend): E.Tensor {
  if (layout === 'contig') return E.tensor(data, [B, V], { backend });
  if (layout === 'transposed') {
    const t = new Float32Array(B * V);
    for (let b = 0; b < B; b++) for (let j = 0; j < V; j++) t[j * B + b] = data[b * V + j]!;
    return E.tensor(t, [V, B], { backend }).transpose(0, 1);
  }
  const W = V + 3;
  const t = new Float32Array((B + 1) * W).fill(99);
  for (let b = 0; b < B; b++) for (let j = 0; j < V; j++) t[(b + 1) * W + 2 + j] = data[b * V + j]!;
  return E.tensor(t, [B + 1, W], { backend }).slice([[1, B + 1], [2, V + 2]]);
}

const ids = async (t: E.Tensor) => Array.from(await t.toArray());

describe('sampleLogits: validation and shapes', () => {
  const x = E.tensor([0, 1, 2], [1, 3], { backend: cpu });
  it('rejects bad inputs with errors naming the op', () => {
    expect(() => E.sampleLogits(E.tensor(1, [], { backend: cpu }))).toThrow(/sampleLogits.*\[B, V\]/);
    expect(() => E.sampleLogits(E.zeros([2, 2, 2], { backend: cpu }))).toThrow(/sampleLogits.*\[B, V\]/);
    expect(() => E.sampleLogits(E.zeros([2, 0], { backend: cpu }))).toThrow(/sampleLogits.*>= 1/);
    expect(() => E.sampleLogits(E.zeros([2, 3], { backend: cpu, dtype: 'i32' }))).toThrow(/sampleLogits.*i32/);
    expect(() => E.sampleLogits(x, { temperature: -1 })).toThrow(/sampleLogits: temperature/);
    expect(() => E.sampleLogits(x, { temperature: Infinity })).toThrow(/sampleLogits: temperature/);
    expect(() => E.sampleLogits(x, { temperature: NaN })).toThrow(/sampleLogits: temperature/);
    expect(() => E.sampleLogits(x, { topK: -1 })).toThrow(/sampleLogits: topK/);
    expect(() => E.sampleLogits(x, { topK: 1.5 })).toThrow(/sampleLogits: topK/);
    expect(() => E.sampleLogits(x, { topP: 0 })).toThrow(/sampleLogits: topP/);
    expect(() => E.sampleLogits(x, { topP: 1.01 })).toThrow(/sampleLogits: topP/);
    expect(() => E.sampleLogits(x, { topP: NaN })).toThrow(/sampleLogits: topP/);
    expect(() => E.sampleLogits(x, { generator: {} as E.Generator })).toThrow(/sampleLogits: generator/);
  });
  it('[B, V] -> i32 [B]; [V] -> i32 scalar; B = 0 -> [0] without drawing', async () => {
    const g = new E.Generator(1);
    const y = E.sampleLogits(E.zeros([5, 7], { backend: cpu }), { generator: g });
    expect([y.shape, y.dtype]).toEqual([[5], 'i32']);
    expect(g.offset).toBe(2n); // 5 uniforms = 2 Philox blocks
    const s = E.sampleLogits(E.zeros([7], { backend: cpu }), { generator: g });
    expect([s.shape, s.dtype]).toEqual([[], 'i32']);
    expect(g.offset).toBe(3n);
    const z = E.sampleLogits(E.zeros([0, 7], { backend: cpu }), { generator: g });
    expect(z.shape).toEqual([0]);
    expect(g.offset).toBe(3n);
    expect(E.sampleLogits(E.zeros([1], { backend: cpu })).shape).toEqual([]);
  });
  it('the CPU path uses the uniforms rand() would draw, and the float64 inverse CDF', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.record({
          B: fc.integer({ min: 1, max: 6 }),
          V: fc.integer({ min: 1, max: 40 }),
          T: fc.double({ min: 0.1, max: 3, noNaN: true }),
          topK: fc.integer({ min: 0, max: 45 }),
          topP: fc.oneof(fc.constant(1), fc.double({ min: 0.05, max: 0.99, noNaN: true })),
          seed: fc.integer(),
        }),
        async ({ B, V, T, topK, topP, seed }) => {
          const data = logitsData(B * V, seed, 3);
          const o = { temperature: T, topK, topP };
          const u = await ids(E.rand([B], { generator: new E.Generator(seed), backend: cpu }));
          const got = await ids(E.sampleLogits(E.tensor(data, [B, V], { backend: cpu }), { ...o, generator: new E.Generator(seed) }));
          for (let b = 0; b < B; b++) {
            const { probs } = distribution(rowOf(data, V, b), o);
            let F = 0;
            let want = -1;
            for (let j = 0; j < V && want < 0; j++) if (probs[j]! > 0 && (F += probs[j]!) > u[b]!) want = j;
            if (want < 0) for (let j = 0; j < V; j++) if (probs[j]! > 0) want = j;
            if (got[b] !== want) expect(nearBoundary(rowOf(data, V, b), o, u[b]!, 1e-12)).toBe(true);
          }
        },
      ),
      { numRuns: 60 },
    );
  });
});

/** Samples on `backend` and on the CPU with the same seed; asserts equal ids up to boundary cases. */
async function compareWithCpu(backend: E.Backend, data: Float32Array, B: number, V: number, o: Opts, seed: number, layout: 'contig' | 'transposed' | 'sliced'): Promise<number> {
  const x = makeLogits(data, B, V, layout, backend);
  const got = await ids(E.sampleLogits(x, { ...o, generator: new E.Generator(seed) }));
  const want = await ids(E.sampleLogits(E.tensor(data, [B, V], { backend: cpu }), { ...o, generator: new E.Generator(seed) }));
  const u = await ids(E.rand([B], { generator: new E.Generator(seed), backend: cpu }));
  x.dispose();
  let mismatches = 0;
  for (let b = 0; b < B; b++) {
    expect(got[b]).toBeGreaterThanOrEqual(0);
    expect(got[b]).toBeLessThan(V);
    if (got[b] !== want[b]) {
      mismatches++;
      expect(o.temperature !== 0 && nearBoundary(rowOf(data, V, b), o, u[b]!), `row ${b}: gpu ${got[b]} cpu ${want[b]} ${JSON.stringify(o)}`).toBe(true);
    }
  }
  return mismatches;
}

describe.runIf(gpu)('sampleLogits on the GPU', () => {
  it('gives the CPU reference ids for the same seed (random logits, options, layouts)', async () => {
    let rows = 0;
    let mismatches = 0;
    await fc.assert(
      fc.asyncProperty(
        fc.record({
          B: fc.integer({ min: 1, max: 5 }),
          V: fc.oneof({ arbitrary: fc.integer({ min: 1, max: 9 }), weight: 2 }, { arbitrary: fc.integer({ min: 10, max: 700 }), weight: 4 }, { arbitrary: fc.integer({ min: 2000, max: 5000 }), weight: 1 }),
          T: fc.oneof(fc.constant(1), fc.constant(0), fc.double({ min: 0.05, max: 3, noNaN: true })),
          k: fc.oneof(fc.constant(0), fc.integer({ min: 1, max: 8 }), fc.integer({ min: 1, max: 800 })),
          topP: fc.oneof(fc.constant(1), fc.double({ min: 0.05, max: 0.999, noNaN: true })),
          scale: fc.double({ min: 0.1, max: 12, noNaN: true }),
          layout: fc.constantFrom('contig' as const, 'transposed' as const, 'sliced' as const),
          seed: fc.integer(),
        }),
        async ({ B, V, T, k, topP, scale, layout, seed }) => {
          const data = logitsData(B * V, seed ^ 0x5bd1e995, scale);
          mismatches += await compareWithCpu(gpu!, data, B, V, { temperature: T, topK: k, topP }, seed, layout);
          rows += B;
        },
      ),
      { numRuns: 60 },
    );
    expect(mismatches).toBeLessThanOrEqual(Math.max(1, rows / 100));
  });

  it('V = 16384 + 3 and B = 64 rows (many chunks per thread, all option kinds)', async () => {
    const B = 64;
    const V = 16387;
    const data = logitsData(B * V, 7, 6);
    let mismatches = 0;
    for (const o of [
      { temperature: 1, topK: 0, topP: 1 },
      { temperature: 0.8, topK: 50, topP: 1 },
      { temperature: 1.2, topK: 0, topP: 0.9 },
      { temperature: 0.7, topK: 1000, topP: 0.5 },
      { temperature: 0, topK: 0, topP: 1 },
    ]) {
      mismatches += await compareWithCpu(gpu!, data, B, V, o, 11, 'contig');
    }
    expect(mismatches).toBeLessThanOrEqual(1);
  });

  it('V = 1 always gives 0; B = 1 and [V] input; V not a multiple of the workgroup', async () => {
    expect(await ids(E.sampleLogits(E.tensor([[3.5]], { backend: gpu! }), { topP: 0.3 }))).toEqual([0]);
    const s = E.sampleLogits(E.tensor([-1e9, 5, -1e9], { backend: gpu! }), { generator: new E.Generator(2) });
    expect(s.shape).toEqual([]);
    expect(await ids(s)).toEqual([1]);
    const data = logitsData(257, 3, 2);
    expect(await compareWithCpu(gpu!, data, 1, 257, { temperature: 1, topK: 0, topP: 1 }, 5, 'contig')).toBe(0);
  });

  it('temperature 0 is argmax with the lowest index on ties, and does not advance the generator', async () => {
    await fc.assert(
      fc.asyncProperty(fc.integer({ min: 1, max: 6 }), fc.integer({ min: 1, max: 600 }), fc.integer(), async (B, V, seed) => {
        const r = mulberry32(seed);
        const data = Float32Array.from({ length: B * V }, () => Math.floor(r() * 5)); // many ties
        const g = new E.Generator(seed);
        const got = await ids(E.sampleLogits(E.tensor(data, [B, V], { backend: gpu! }), { temperature: 0, topK: 3, topP: 0.5, generator: g }));
        expect(got).toEqual(await ids(E.argmax(E.tensor(data, [B, V], { backend: cpu }), 1)));
        expect(g.offset).toBe(0n);
      }),
      { numRuns: 15 },
    );
  });

  it('top-k samples are always among the k largest logits; top-p samples always in the nucleus', async () => {
    const N = 512;
    await fc.assert(
      fc.asyncProperty(
        fc.integer({ min: 2, max: 300 }),
        fc.integer({ min: 1, max: 20 }),
        fc.double({ min: 0.05, max: 0.95, noNaN: true }),
        fc.double({ min: 0.2, max: 3, noNaN: true }),
        fc.integer(),
        async (V, k, topP, T, seed) => {
          const data = logitsData(V, seed, 3);
          const row = E.tensor(data, [V], { backend: gpu! });
          const x = row.unsqueeze(0).expand([N, V]); // row stride 0
          const sorted = Array.from(data).sort((a, b) => b - a);
          const tk = sorted[Math.min(k, V) - 1]!;
          const gk = await ids(E.sampleLogits(x, { temperature: T, topK: k, generator: new E.Generator(seed) }));
          for (const id of gk) expect(data[id]!).toBeGreaterThanOrEqual(tk);
          const o = { temperature: T, topK: 0, topP };
          const { probs, pBoundaries } = distribution(data, o);
          if (pBoundaries.some((c) => Math.abs(c - Math.fround(topP)) < 1e-5)) return; // ambiguous nucleus
          const gp = await ids(E.sampleLogits(x, { ...o, generator: new E.Generator(seed) }));
          for (const id of gp) expect(probs[id]!).toBeGreaterThan(0);
          row.dispose();
        },
      ),
      { numRuns: 20 },
    );
  });

  it('-inf logits are never sampled', async () => {
    const V = 301;
    const data = logitsData(V, 9, 1).map((v, j) => (j % 3 === 0 ? v : -Infinity));
    const x = E.tensor(data, [V], { backend: gpu! }).unsqueeze(0).expand([256, V]);
    for (const o of [{}, { topK: 10 }, { topP: 0.5 }, { temperature: 3 }]) {
      const got = await ids(E.sampleLogits(x, { ...o, generator: new E.Generator(4) }));
      for (const id of got) expect(id % 3).toBe(0);
    }
    // Masked rows, an all -inf row (uniform over all tokens) and +inf logits (uniform over them)
    // give the CPU ids too.
    const rows = [data, new Float32Array(V).fill(-Infinity), data.map((v, j) => (j === 150 ? v : -Infinity)), data.map((v, j) => (j === 7 || j === 290 ? Infinity : v))];
    const all = new Float32Array(rows.length * V);
    rows.forEach((r, b) => all.set(r, b * V));
    for (const o of [{ temperature: 1, topK: 0, topP: 1 }, { temperature: 0.5, topK: 4, topP: 0.6 }]) {
      for (let seed = 0; seed < 4; seed++) expect(await compareWithCpu(gpu!, all, rows.length, V, o, seed, 'contig')).toBe(0);
    }
  });
});

describe('sampleLogits: empirical distributions (4096 rows of the same logits)', () => {
  const V = 37;
  const N = 4096;
  const data = logitsData(V, 21, 2);
  const configs: Opts[] = [
    { temperature: 1, topK: 0, topP: 1 },
    { temperature: 0.5, topK: 5, topP: 1 },
    { temperature: 1, topK: 0, topP: 0.7 },
    { temperature: 2, topK: 10, topP: 0.8 },
  ];
  const backends: [string, E.Backend | null][] = [
    ['cpu', cpu],
    ['gpu', gpu],
  ];
  for (const [name, backend] of backends) {
    it.runIf(backend)(`${name}: counts match the softmax (after top-k / top-p renormalization)`, async () => {
      const x = E.tensor(data, [V], { backend: backend! }).unsqueeze(0).expand([N, V]);
      for (const [ci, o] of configs.entries()) {
        const got = await ids(E.sampleLogits(x, { ...o, generator: new E.Generator(1000 + ci) }));
        const { probs } = distribution(data, o);
        const n = new Array<number>(V).fill(0);
        for (const id of got) n[id]!++;
        let chi2 = 0;
        let df = -1;
        for (let j = 0; j < V; j++) {
          const q = probs[j]!;
          if (q === 0) {
            expect(n[j], `token ${j} outside the nucleus (${JSON.stringify(o)})`).toBe(0);
            continue;
          }
          expect(Math.abs(n[j]! - N * q), `token ${j}: ${n[j]} vs ${N * q} (${JSON.stringify(o)})`).toBeLessThanOrEqual(5 * Math.sqrt(N * q * (1 - q)) + 1e-9);
          chi2 += (n[j]! - N * q) ** 2 / (N * q);
          df++;
        }
        if (df > 0) expect(chi2).toBeLessThan(df + 5 * Math.sqrt(2 * df));
      }
    });
  }
});

describe('sampleLogits: generator use', () => {
  const backends: [string, E.Backend | null][] = [
    ['cpu', cpu],
    ['gpu', gpu],
  ];
  for (const [name, backend] of backends) {
    it.runIf(backend)(`${name}: same seed reproduces, other seeds and successive calls differ`, async () => {
      const x = E.zeros([64, 100], { backend: backend! });
      const a = await ids(E.sampleLogits(x, { generator: new E.Generator(5) }));
      expect(await ids(E.sampleLogits(x, { generator: new E.Generator(5) }))).toEqual(a);
      expect(await ids(E.sampleLogits(x, { generator: new E.Generator(6) }))).not.toEqual(a);
      const g = new E.Generator(5);
      const first = await ids(E.sampleLogits(x, { generator: g }));
      expect(first).toEqual(a);
      expect(g.offset).toBe(16n);
      expect(await ids(E.sampleLogits(x, { generator: g }))).not.toEqual(a);
      expect(g.offset).toBe(32n);
      // The default generator is used when none is given.
      E.manualSeed(5);
      expect(await ids(E.sampleLogits(x))).toEqual(a);
    });
  }
});
