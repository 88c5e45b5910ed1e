/**
 * nearestCodes: the k nearest codebook rows per query row.
 * - PyTorch fixtures (test/fixtures/make_indexing.py: float64 distances, stable sort, gradients of
 *   the selected distances) on the float64 CPU branch to 1e-12 and on the GPU.
 * - The float64 CPU branch vs a brute-force sort written here (all distances, full sort by
 *   (distance, index)).
 * - GPU vs the float64 CPU branch. With integer-valued data every distance is an integer below
 *   2^24, exact in f32 in any summation order, so indices and distances must match exactly —
 *   including the many exact ties (smaller index first) such data produces.
 * - With real-valued data the GPU's f32 sum of d squares has relative error <= d * 2^-24
 *   (~1.5e-5 at d = 256); tolerance rtol 2e-5 + atol 1e-6. Indices are then checked up to
 *   near-ties: every returned index must be distinct and its float64 distance must equal the
 *   reference distance of its slot within that tolerance.
 * - Gradient of the distances vs central finite differences in float64 (eps 1e-6, quadratic
 *   function, so FD is exact up to rounding): atol 1e-6, rtol 1e-6.
 */
import { readFileSync } from 'node:fs';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import * as E from '../engine/index.js';
import { requireGpu } from './helpers/backends.js';
import { expectClose, expectGradMatchesFD } from './helpers/compare.js';
import { mulberry32 } from './helpers/prng.js';

const gpu = await requireGpu();
const cpu = E.cpuF64;
const tol = { atol: 1e-6, rtol: 2e-5 };

/** Deterministic pseudo-random values (mulberry32): integers in [-r, r] or f32 reals in (-1, 1). */
function values(n: number, seed: number, intRange = 0): number[] {
  const r = mulberry32(seed);
  return Array.from({ length: n }, () => {
    const x = r();
    return intRange > 0 ? Math.floor(x * (2 * intRange + 1)) - intRange : Math.fround(2 * x - 1);
  });
}

/** Brute force: all distances in float64, sorted by (distance, index). */
function bruteForce(z: number[], cb: number[], N: number, K: number, d: number, k: number) {
  const I: number[] = [];
  const D: number[] = [];
  for (let n = 0; n < N; n++) {
    const dist = Array.from({ length: K }, (_, c) => {
      let s = 0;
      for (let j = 0; j < d; j++) s += (z[n * d + j]! - cb[c * d + j]!) ** 2;
      return s;
    });
    const order = dist.map((_, c) => c).sort((a, b) => dist[a]! - dist[b]! || a - b);
    for (let s = 0; s < k; s++) {
      I.push(order[s]!);
      D.push(dist[order[s]!]!);
    }
  }
  return { I, D };
}

interface Case {
  N: number;
  K: number;
  d: number;
  k: number;
  seed: number;
}

const caseArb = (maxN: number, maxK: number, maxD: number, maxk = 512) =>
  fc
    .record({
      N: fc.integer({ min: 1, max: maxN }),
      K: fc.integer({ min: 1, max: maxK }),
      d: fc.integer({ min: 1, max: maxD }),
      kSel: fc.oneof(fc.constant(1), fc.constant(-1), fc.integer({ min: 2, max: 40 })),
      seed: fc.nat(10000),
    })
    .map(({ N, K, d, kSel, seed }): Case => ({ N, K, d, k: kSel === -1 ? Math.min(K, maxk) : Math.min(kSel, K), seed }));

async function run(backend: E.Backend, z: number[], cb: number[], c: Case) {
  const zt = E.tensor(z, [c.N, c.d], { backend });
  const et = E.tensor(cb, [c.K, c.d], { backend });
  const r = E.nearestCodes(zt, et, c.k);
  expect(r.indices.shape).toEqual([c.N, c.k]);
  expect(r.indices.dtype).toBe('i32');
  expect(r.distances.shape).toEqual([c.N, c.k]);
  const out = { I: Array.from(await r.indices.toArray()), D: Array.from(await r.distances.toArray()) };
  for (const t of [zt, et, r.indices, r.distances]) t.dispose();
  return out;
}

/** Real-valued check: distances per slot within tol; indices valid up to near-ties. */
function expectNearest(got: { I: number[]; D: number[] }, want: { I: number[]; D: number[] }, z: number[], cb: number[], c: Case): void {
  expectClose(got.D, want.D, tol, 'distances');
  for (let n = 0; n < c.N; n++) {
    const row = got.I.slice(n * c.k, (n + 1) * c.k);
    expect(new Set(row).size, `row ${n} indices distinct`).toBe(c.k);
    row.forEach((i, s) => {
      expect(i >= 0 && i < c.K, `index ${i} in range`).toBe(true);
      let dist = 0;
      for (let j = 0; j < c.d; j++) dist += (z[n * c.d + j]! - cb[i * c.d + j]!) ** 2;
      expectClose([dist], [want.D[n * c.k + s]!], tol, `row ${n} slot ${s} (index ${i})`);
    });
  }
}

interface Enc {
  shape: number[];
  data: number[];
}
interface CodesFixture {
  op: string;
  k: number;
  z: Enc;
  codebook: Enc;
  indices: Enc;
  y: Enc;
  gy: Enc;
  grads: { z: Enc; codebook: Enc };
}
const fixtures = (JSON.parse(readFileSync(new URL('./fixtures/indexing.json', import.meta.url), 'utf8')) as { cases: CodesFixture[] }).cases.filter((c) => c.op === 'nearest_codes');

describe('PyTorch fixtures (test/fixtures/make_indexing.py: stable sort of float64 distances)', () => {
  it('float64 CPU: indices, distances and their gradient', async () => {
    expect(fixtures.length).toBe(4);
    for (const c of fixtures) {
      const z = E.tensor(c.z.data, c.z.shape, { backend: cpu }).requireGrad();
      const cb = E.tensor(c.codebook.data, c.codebook.shape, { backend: cpu }).requireGrad();
      const r = E.nearestCodes(z, cb, c.k);
      expect(Array.from(await r.indices.toArray())).toEqual(c.indices.data);
      expectClose(await r.distances.toArray(), c.y.data, { atol: 1e-12, rtol: 1e-12 }, 'distances');
      const [gz, gc] = E.gradients(E.sum(E.mul(r.distances, E.tensor(c.gy.data, c.gy.shape, { backend: cpu }))), [z, cb]);
      expectClose(await gz!.toArray(), c.grads.z.data, { atol: 1e-12, rtol: 1e-12 }, 'grad z');
      expectClose(await gc!.toArray(), c.grads.codebook.data, { atol: 1e-12, rtol: 1e-12 }, 'grad codebook');
    }
  });
  it.runIf(gpu)('GPU: same indices, distances within tolerance', async () => {
    for (const c of fixtures) {
      const r = E.nearestCodes(E.tensor(c.z.data, c.z.shape, { backend: gpu! }), E.tensor(c.codebook.data, c.codebook.shape, { backend: gpu! }), c.k);
      expect(Array.from(await r.indices.toArray())).toEqual(c.indices.data);
      expectClose(await r.distances.toArray(), c.y.data, tol, 'distances');
    }
  });
});

describe('CPU float64 branch vs brute force', () => {
  it('integer data with ties, k = 1 .. K', async () => {
    await fc.assert(
      fc.asyncProperty(caseArb(6, 40, 5, 40), async (c) => {
        const z = values(c.N * c.d, c.seed, 2);
        const cb = values(c.K * c.d, c.seed + 1, 2);
        const got = await run(cpu, z, cb, c);
        const want = bruteForce(z, cb, c.N, c.K, c.d, c.k);
        expect(got).toEqual(want);
      }),
      { numRuns: 60 },
    );
  });
});

describe.runIf(gpu)('GPU vs float64 reference', () => {
  it('integer data: exact indices and distances, ties to the smaller index (k = 1, 2..40, K)', async () => {
    await fc.assert(
      fc.asyncProperty(caseArb(70, 300, 20), async (c) => {
        const z = values(c.N * c.d, c.seed, 2);
        const cb = values(c.K * c.d, c.seed + 1, 2);
        expect(await run(gpu!, z, cb, c)).toEqual(await run(cpu, z, cb, c));
      }),
      { numRuns: 25 },
    );
  });
  it('real data: distances within tolerance, indices up to near-ties', async () => {
    await fc.assert(
      fc.asyncProperty(caseArb(70, 300, 40), async (c) => {
        const z = values(c.N * c.d, c.seed);
        const cb = values(c.K * c.d, c.seed + 1);
        expectNearest(await run(gpu!, z, cb, c), await run(cpu, z, cb, c), z, cb, c);
      }),
      { numRuns: 20 },
    );
  });
  it('the argmin path (k = 1) agrees with slot 0 of the selection path', async () => {
    const c = { N: 130, K: 517, d: 9, k: 3, seed: 5 };
    const z = values(c.N * c.d, 1, 3);
    const cb = values(c.K * c.d, 2, 3);
    const one = await run(gpu!, z, cb, { ...c, k: 1 });
    const three = await run(gpu!, z, cb, c);
    expect(one.I).toEqual(three.I.filter((_, i) => i % 3 === 0));
    expect(one.D).toEqual(three.D.filter((_, i) => i % 3 === 0));
  });
  it('all-equal codes: the k smallest indices (tie resolution at the threshold)', async () => {
    for (const [K, k] of [[50, 7], [300, 256], [9000, 33]] as const) {
      const c = { N: 3, K, d: 4, k, seed: 0 };
      const z = [1, 2, 3, 4, 0, 0, 0, 0, -1, 5, 2, 2];
      const cb = Array.from({ length: K * 4 }, (_, i) => [1, 1, 1, 1][i % 4]!);
      // Make code K-1 strictly nearest to row 0 so the tie is for the remaining k-1 slots.
      cb.splice((K - 1) * 4, 4, 1, 2, 3, 4);
      const got = await run(gpu!, z, cb, c);
      expect(got).toEqual(await run(cpu, z, cb, c));
      expect(got.I.slice(0, k)).toEqual([K - 1, ...Array.from({ length: k - 1 }, (_, i) => i)]);
    }
  });
  it('K = 16384, d = 16, N = 256, k = 100 (codebook too large for the workgroup key cache)', async () => {
    const c = { N: 256, K: 16384, d: 16, k: 100, seed: 3 };
    const z = values(c.N * c.d, 10);
    const cb = values(c.K * c.d, 11);
    expectNearest(await run(gpu!, z, cb, c), await run(cpu, z, cb, c), z, cb, c);
  });
  it('vec4 and scalar code reads, cached and uncached (exact, with ties)', async () => {
    for (const vec4 of [true, false]) {
      const restore = gpu!.tune({ vq: { vec4 } });
      try {
        for (const c of [
          { N: 24, K: 16384, d: 16, k: 100, seed: 0 }, // uncached
          { N: 30, K: 1000, d: 12, k: 9, seed: 0 }, // cached
          { N: 2, K: 9000, d: 260, k: 7, seed: 1 }, // uncached, query row in global memory, all codes equal
        ]) {
          const z = values(c.N * c.d, 12 + c.seed, 1);
          const cb = c.seed === 1 ? Array.from({ length: c.K * c.d }, (_, i) => ((i % c.d) % 3) - 1) : values(c.K * c.d, 13, 1);
          expect(await run(gpu!, z, cb, c), `vec4 ${vec4} K=${c.K}`).toEqual(await run(cpu, z, cb, c));
        }
      } finally {
        restore();
      }
    }
  });
  it('d > 256 (query row read from global memory) and k = 512', async () => {
    const c = { N: 5, K: 700, d: 300, k: 512, seed: 0 };
    const z = values(c.N * c.d, 20, 1);
    const cb = values(c.K * c.d, 21, 1);
    expect(await run(gpu!, z, cb, c)).toEqual(await run(cpu, z, cb, c));
  });
  it('N spanning a 2D dispatch grid for the selection kernel', async () => {
    const c = { N: 65537, K: 3, d: 2, k: 2, seed: 0 };
    const z = values(c.N * c.d, 30, 2);
    const cb = [0, 0, 1, 1, -1, 2];
    expect(await run(gpu!, z, cb, c)).toEqual(await run(cpu, z, cb, c));
  });
  it('argmin without codebook splitting (many row tiles) and with many splits (one row tile)', async () => {
    // 513 row tiles: no split, 3 code tiles swept by each workgroup.
    const a = { N: 64 * 513 - 5, K: 130, d: 3, k: 1, seed: 0 };
    const za = values(a.N * a.d, 31, 2);
    const ca = values(a.K * a.d, 32, 2);
    expect(await run(gpu!, za, ca, a)).toEqual(await run(cpu, za, ca, a));
    // One row tile, 16384 codes: 256 splits of 64 codes, merged by the reduce kernel.
    const b = { N: 7, K: 16384, d: 5, k: 1, seed: 0 };
    const zb = values(b.N * b.d, 33, 3);
    const cbb = values(b.K * b.d, 34, 3);
    expect(await run(gpu!, zb, cbb, b)).toEqual(await run(cpu, zb, cbb, b));
  });
  it('non-contiguous inputs and leading dims', async () => {
    const zd = values(2 * 3 * 5, 40);
    const cd = values(5 * 11, 41);
    const res = async (b: E.Backend) => {
      const z = E.permute(E.tensor(zd, [3, 2, 5], { backend: b }), [1, 0, 2]); // [2, 3, 5] view
      const cb = E.transpose(E.tensor(cd, [5, 11], { backend: b })); // [11, 5] view
      const r = E.nearestCodes(z, cb, 4);
      expect(r.indices.shape).toEqual([2, 3, 4]);
      return { I: Array.from(await r.indices.toArray()), D: Array.from(await r.distances.toArray()) };
    };
    const g = await res(gpu!);
    const w = await res(cpu);
    expect(g.I).toEqual(w.I);
    expectClose(g.D, w.D, tol);
  });
});

describe('gradient of the distances vs finite differences (float64)', () => {
  it('w.r.t. z and the codebook, k = 1 and k = 3 with shared codes', async () => {
    const z = { shape: [4, 3], data: values(12, 50) };
    const cb = { shape: [5, 3], data: values(15, 51) };
    for (const k of [1, 3]) await expectGradMatchesFD((a, b) => E.nearestCodes(a, b, k).distances, [z, cb], { atol: 1e-6, rtol: 1e-6 });
  });
  it('with leading dims, and second derivatives', async () => {
    const z = { shape: [2, 2, 3], data: values(12, 52) };
    const cb = { shape: [6, 3], data: values(18, 53) };
    await expectGradMatchesFD((a, b) => E.nearestCodes(a, b, 2).distances, [z, cb], { atol: 1e-6, rtol: 1e-6 });
    // d/dz of the gradient w.r.t. the codebook (a mixed second derivative).
    const cbT = E.tensor(cb.data, cb.shape, { backend: cpu });
    const mixed = (a: E.Tensor) => {
      const b = E.detach(cbT).requireGrad();
      const v = E.sum(E.square(E.nearestCodes(a, b, 2).distances));
      return E.gradients(v, [b], { createGraph: true })[0]!;
    };
    await expectGradMatchesFD(mixed, [z], { atol: 1e-6, rtol: 1e-6 });
  });
  it('indices carry no gradient', () => {
    const z = E.tensor(values(6, 54), [2, 3], { backend: cpu }).requireGrad();
    const r = E.nearestCodes(z, E.tensor(values(9, 55), [3, 3], { backend: cpu }), 2);
    expect(r.indices.requiresGrad).toBe(false);
    expect(r.distances.requiresGrad).toBe(true);
  });
});

describe('edge cases and errors', () => {
  it('no query rows', async () => {
    const r = E.nearestCodes(E.zeros([0, 3], { backend: cpu }), E.ones([4, 3], { backend: cpu }), 2);
    expect(r.indices.shape).toEqual([0, 2]);
    if (gpu) {
      const g = E.nearestCodes(E.zeros([0, 3], { backend: gpu }), E.ones([4, 3], { backend: gpu }), 2);
      expect((await g.distances.toArray()).length).toBe(0);
    }
  });
  it('leaves no live temporaries behind (leading dims, non-contiguous inputs, no gradients)', () => {
    const before = E.memoryStats().liveTensors;
    const z = E.permute(E.ones([3, 2, 5], { backend: cpu }), [1, 0, 2]);
    const cb = E.ones([4, 5], { backend: cpu });
    const r = E.nearestCodes(z, cb, 2);
    // ones, its permuted view, the codebook, and the two outputs.
    expect(E.memoryStats().liveTensors - before).toBe(5);
    expect(r.indices.shape).toEqual([2, 3, 2]);
  });
  it('bad arguments name the op', () => {
    const z = E.zeros([2, 3], { backend: cpu });
    expect(() => E.nearestCodes(z, E.zeros([4, 2], { backend: cpu }))).toThrow(/nearestCodes: expected z \[\.\.\., d\] and codebook \[K, d\], got \[2, 3\] and \[4, 2\]/);
    expect(() => E.nearestCodes(z, E.zeros([4, 3], { backend: cpu }), 5)).toThrow(/nearestCodes: k must be an integer in \[1, 4\]/);
    expect(() => E.nearestCodes(z, E.zeros([0, 3], { backend: cpu }))).toThrow(/codebook \[0, 3\] is empty/);
    expect(() => E.nearestCodes(z.cast('i32'), E.zeros([4, 3], { backend: cpu }))).toThrow(/nearestCodes: expected f32 tensors/);
  });
});
