/**
 * matmul / linear: GPU vs float64 reference over generated shapes (1-D operands, batch
 * broadcasting, transposed and offset views, every kernel variant), fixed larger cases, gradients
 * and grad-of-grad vs central finite differences (float64), and PyTorch fixtures.
 *
 * Tolerance: each output is a length-K dot product accumulated in f32. With u = 2^-24, the
 * rounding error of recursive summation is bounded by ~K*u*sum_k |a_ik||b_kj| in the worst case
 * and behaves like sqrt(K)*u*sum_k |a_ik||b_kj| for independent roundings (Higham, probabilistic
 * bound). We allow |err| <= 4*sqrt(K+1)*u*(|A|@|B|)_ij, computed per element from the float64
 * reference of |A| @ |B|: a factor ~4 above the typical error, far below the O(|A||B|) error of
 * any indexing bug (a wrong or missing term). The +1 covers the rounding of the product itself
 * when K = 1.
 */
import fc from 'fast-check';
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import * as E from '../engine/index.js';
import { requireGpu } from './helpers/backends.js';
import { expectClose, expectGradMatchesFD } from './helpers/compare.js';
import { broadcastPairArb } from './helpers/arbitrary.js';
import { uniformValues } from './helpers/prng.js';

const gpu = await requireGpu();
const U = 2 ** -24;

/** Deterministic f32 values in [-2, 2) from a seed (big inputs without giant fast-check arrays). */
const values = (n: number, seed: number): number[] => uniformValues(n, seed >>> 0 || 1, -2, 2);

/** How an operand is built: stored shape, data, then turned into the view that is multiplied. */
interface OperandSpec {
  stored: number[];
  data: number[];
  /** Swap the last two dims after creation (the kernel reads it transposed in place). */
  transpose?: boolean;
  /** Slice off the first `skip` rows of the second-to-last stored dim (a view with an offset). */
  skip?: number;
  /** Take every other element of the last two stored dims (strided in both matrix dims). */
  step2?: boolean;
}

function build(s: OperandSpec, backend: E.Backend): E.Tensor {
  let t = E.tensor(s.data, s.stored, { backend });
  if (s.skip) t = t.slice([...s.stored.slice(0, -2).map(() => null), [s.skip, s.stored[s.stored.length - 2]!], null]);
  if (s.step2) t = t.slice([...s.stored.slice(0, -2).map(() => null), [0, s.stored[s.stored.length - 2]!, 2], [0, s.stored[s.stored.length - 1]!, 2]]);
  if (s.transpose) t = t.transpose();
  return t;
}

/** Operand spec whose view has shape batch + [rows, cols] (or [cols] when vector). */
function operand(batch: number[], rows: number, cols: number, opts: { vector?: boolean; transpose?: boolean; skip?: number; step2?: boolean }, seed: number): OperandSpec {
  // A vector stands for the shared K dim: a 1-D A has length cols (= K), a 1-D B length rows (= K).
  if (opts.vector) return { stored: [rows === 1 ? cols : rows], data: values(rows === 1 ? cols : rows, seed) };
  const [r, c] = opts.transpose ? [cols, rows] : [rows, cols];
  const skip = opts.step2 ? 0 : (opts.skip ?? 0);
  const stored = opts.step2 ? [...batch, 2 * r - 1, 2 * c - 1] : [...batch, r + skip, c];
  return { stored, data: values(stored.reduce((p, d) => p * d, 1), seed), transpose: opts.transpose, skip, step2: opts.step2 };
}

/** Compares backend's a @ b with the float64 reference using the per-element bound above. */
async function expectMatmulMatches(backend: E.Backend, sa: OperandSpec, sb: OperandSpec, what = ''): Promise<void> {
  const refA = build(sa, E.cpuF64);
  const refB = build(sb, E.cpuF64);
  const expected = E.matmul(refA, refB);
  const bound = E.matmul(E.abs(refA), E.abs(refB));
  const K = refA.shape[refA.rank - 1]!;
  const a = build(sa, backend);
  const b = build(sb, backend);
  const y = E.matmul(a, b);
  expect(y.shape, `${what} shape`).toEqual(expected.shape);
  const got = await y.toArray();
  const exp = await expected.toArray();
  const bnd = await bound.toArray();
  const c = 4 * Math.sqrt(K + 1) * U;
  expect(got.length).toBe(exp.length);
  for (let i = 0; i < exp.length; i++) {
    const err = Math.abs(got[i]! - exp[i]!);
    if (!(err <= c * bnd[i]! + 1e-30)) {
      expect.fail(`${what} [${i}] of ${E.fmtShape(y.shape)}: got ${got[i]}, expected ${exp[i]} (|err| ${err.toExponential(3)} > ${(c * bnd[i]!).toExponential(3)})`);
    }
  }
  for (const t of [refA, refB, expected, bound, a, b, y]) t.dispose();
}

interface Case {
  M: number;
  N: number;
  K: number;
  batch: [number[], number[]];
  aVec: boolean;
  bVec: boolean;
  ta: boolean;
  tb: boolean;
  skipA: number;
  seed: number;
}

const dim = fc.oneof(fc.integer({ min: 1, max: 70 }), fc.constantFrom(1, 4, 16, 17, 32, 33, 64, 65));
const caseArb: fc.Arbitrary<Case> = fc.record({
  M: dim,
  N: dim,
  K: dim,
  batch: broadcastPairArb(2, 3),
  aVec: fc.integer({ min: 0, max: 9 }).map((v) => v < 2),
  bVec: fc.integer({ min: 0, max: 9 }).map((v) => v < 2),
  ta: fc.boolean(),
  tb: fc.boolean(),
  skipA: fc.constantFrom(0, 0, 1, 4),
  seed: fc.integer({ min: 1, max: 2 ** 31 - 1 }),
});

function specs(c: Case): [OperandSpec, OperandSpec] {
  const sa = operand(c.batch[0], c.aVec ? 1 : c.M, c.K, { vector: c.aVec, transpose: c.ta, skip: c.skipA }, c.seed);
  const sb = operand(c.batch[1], c.K, c.bVec ? 1 : c.N, { vector: c.bVec, transpose: c.tb }, c.seed + 1);
  return [sa, sb];
}

/**
 * Kernel plans forced through the config picker so every code path runs at small sizes. The
 * shader generators are size-generic (all tile loops are unrolled in JS), so small tiles exercise
 * the same indexing as the production configs while compiling quickly on a software adapter;
 * the production tile configs run in the fixed cases below.
 */
const PLANS: [string, E.MatmulPlan | null][] = [
  ['default picker', null],
  ['simple kernel', { kernel: 'simple' }],
  ['rows kernel 8 lanes, 3x2', { kernel: 'rows', WG: 8, TM: 3, TN: 2 }],
  ['tiled 16x16x4 4x4 prefetch', { kernel: 'tiled', tile: { BM: 16, BN: 16, BK: 4, TM: 4, TN: 4 }, prefetch: true }],
  // Double-buffered, padded, grouped tile order, two K tiles per 16: several tiles in flight.
  ['tiled 32x16x8 4x4 double-buffered, padded, grouped', { kernel: 'tiled', tile: { BM: 32, BN: 16, BK: 8, TM: 4, TN: 4 }, doubleBuffer: true, pad: true, groupM: 3 }],
  // Non-square, no prefetch, and fewer B loads than threads (the guarded load round).
  ['tiled 32x8x4 4x4 no prefetch', { kernel: 'tiled', tile: { BM: 32, BN: 8, BK: 4, TM: 4, TN: 4 }, prefetch: false }],
];

/** The production tile configs, checked on fixed shapes (aligned and ragged, both layouts). */
const PRODUCTION: [string, E.MatmulPlan][] = [
  ['xl 128x256x16 8x16, prefetch, padded, grouped 16 (the H100 pick)', { kernel: 'tiled', tile: E.MATMUL_TILES.xl, prefetch: true, pad: true, groupM: 16 }],
  ['large 128x128x16 8x8, prefetch, padded, grouped 16', { kernel: 'tiled', tile: E.MATMUL_TILES.large, prefetch: true, pad: true, groupM: 16 }],
  ['wide 128x64x16 8x8, prefetch, padded, grouped 16', { kernel: 'tiled', tile: E.MATMUL_TILES.wide, prefetch: true, pad: true, groupM: 16 }],
  ['large 128x128x16 8x8, double-buffered (32 KiB)', { kernel: 'tiled', tile: E.MATMUL_TILES.large, doubleBuffer: true, groupM: 8 }],
  ['medium 64x64x16 4x4, double-buffered, padded', { kernel: 'tiled', tile: E.MATMUL_TILES.medium, doubleBuffer: true, pad: true, groupM: 8 }],
  ['rows 16x16 (software adapters)', { kernel: 'rows', WG: 8, TM: 16, TN: 16 }],
  ['rows 8x8 without subgroups', { kernel: 'rows', WG: 8, TM: 8, TN: 8, subgroups: false }],
];

function withPlan<T>(plan: E.MatmulPlan | null, fn: () => Promise<T>): Promise<T> {
  if (!plan) return fn();
  const restore = gpu!.tune({ matmul: { picker: () => plan } });
  return fn().finally(restore);
}

const DEFAULT_TEST_CAPS = { maxWorkgroupStorage: 16384, maxInvocations: 256 };

describe.runIf(gpu)('matmul: GPU vs float64 reference', () => {
  for (const [name, plan] of PLANS) {
    it(`generated shapes, views and broadcasts (${name})`, async () => {
      await withPlan(plan, () =>
        fc.assert(
          fc.asyncProperty(caseArb, async (c) => {
            const [sa, sb] = specs(c);
            await expectMatmulMatches(gpu!, sa, sb, JSON.stringify(c));
          }),
          { numRuns: plan ? 10 : 15 },
        ),
      );
      // A cold shader cache on a software adapter compiles each kernel variant for seconds.
    }, 600_000);
  }

  it('fixed larger cases (tile edges, aligned, transposed, vec4 and scalar paths)', async () => {
    const cases: [string, number, number, number, boolean, boolean][] = [
      ['129x257x65', 129, 257, 65, false, false],
      ['129x257x65 A^T B^T', 129, 257, 65, true, true],
      ['256^3 aligned, A^T', 256, 256, 256, true, false],
      ['1x300x513 (row vector as matrix)', 1, 300, 513, false, false],
    ];
    for (const [name, M, N, K, ta, tb] of cases) {
      await expectMatmulMatches(gpu!, operand([], M, K, { transpose: ta }, M + K), operand([], K, N, { transpose: tb }, N + 7), name);
    }
    // Batched with a broadcast batch dim and an offset view.
    await expectMatmulMatches(gpu!, operand([3, 1], 130, 70, { skip: 3 }, 1), operand([1, 2], 70, 66, {}, 2), 'batched broadcast');
  });

  for (const [name, plan] of PRODUCTION) {
    it(`production config: ${name}`, async () => {
      await withPlan(plan, async () => {
        // Aligned (unchecked, vec4) and ragged (checked, scalar loads) with transposed operands.
        await expectMatmulMatches(gpu!, operand([], 256, 256, {}, 31), operand([], 256, 128, {}, 32), `${name} aligned`);
        await expectMatmulMatches(gpu!, operand([2], 131, 67, { transpose: true }, 33), operand([], 67, 133, { transpose: true }, 34), `${name} ragged`);
        // x @ w^T, big enough that the rows kernel multiplies a contiguous copy of w^T.
        if (plan.kernel === 'rows') await expectMatmulMatches(gpu!, operand([], 130, 64, {}, 35), operand([], 64, 128, { transpose: true }, 36), `${name} B^T copied`);
      });
    });
  }

  it("software adapters' picks for conv shapes: few rows, narrow N, K <= 2, B^T read in place", async () => {
    // The software picker's choices (forced here so they also run on real GPUs): 1-4 rows with wide
    // N, narrow N (TN 2 scalar / TN 4), K <= 2 (an outer product), and small M with a transposed B,
    // which the rows kernel reads in place with TM = M (<= 4), 16 or 32 rows and 2 scalar columns
    // per lane (a conv weight gradient gy @ cols^T) instead of copying it.
    const soft: E.MatmulConfigPicker = (M, N, K, batch, caps) => E.pickMatmulConfig(M, N, K, batch, { ...caps, software: true });
    const restore = gpu!.tune({ matmul: { picker: soft } });
    try {
      const cases: [string, number[], number, number, number, boolean][] = [
        ['1 row, wide N (conv to 1 channel)', [3], 1, 260, 37, false],
        ['3 rows, wide N', [2], 3, 130, 19, false],
        ['narrow N = 13', [2], 37, 13, 40, false],
        ['N = 40', [], 70, 40, 33, false],
        ['K = 1 outer product', [5], 145, 130, 1, false],
        ['K = 2', [], 33, 70, 2, false],
        ['B^T in place, M = 1', [8], 1, 144, 256, true],
        ['B^T in place, M = 3', [4], 3, 147, 255, true],
        ['B^T in place, M = 16', [], 16, 144, 256, true],
        ['B^T in place, M = 33 (two 32-row tiles)', [], 33, 41, 257, true],
        ['B^T in place, M = 64', [], 64, 66, 70, true],
      ];
      for (const [name, batch, M, N, K, tb] of cases) {
        await expectMatmulMatches(gpu!, operand(batch, M, K, {}, M + N), operand(batch, K, N, { transpose: tb }, K + 3), name);
      }
    } finally {
      restore();
    }
    expect(E.pickMatmulConfig(16, 144, 256, 32, { ...DEFAULT_TEST_CAPS, software: true })).toMatchObject({ kernel: 'rows', TM: 16, TN: 16 });
    expect(E.pickMatmulConfig(16, 16, 288, 32, { ...DEFAULT_TEST_CAPS, software: true })).toMatchObject({ kernel: 'rows', TM: 16, TN: 2 });
    expect(E.pickMatmulConfig(1, 256, 144, 32, { ...DEFAULT_TEST_CAPS, software: true })).toMatchObject({ kernel: 'rows', TM: 4 });
    expect(E.pickMatmulConfig(144, 256, 1, 32, { ...DEFAULT_TEST_CAPS, software: true })).toMatchObject({ kernel: 'rows' });
    // GPUs keep the simple kernel for K <= 2.
    expect(E.pickMatmulConfig(144, 256, 1, 32)).toEqual({ kernel: 'simple' });
  }, 600_000);

  it('operands strided in both matrix dims (copied) and vectors of every kind', async () => {
    await expectMatmulMatches(gpu!, operand([2], 40, 33, { step2: true }, 3), operand([], 33, 50, { step2: true }, 4), 'step-2 views');
    await expectMatmulMatches(gpu!, operand([], 1, 300, { vector: true }, 5), operand([4], 300, 130, {}, 6), 'vector @ batched');
    await expectMatmulMatches(gpu!, operand([2, 3], 130, 300, {}, 7), operand([], 300, 1, { vector: true }, 8), 'batched @ vector');
    await expectMatmulMatches(gpu!, operand([], 1, 1000, { vector: true }, 9), operand([], 1000, 1, { vector: true }, 10), 'dot product');
  });

  it('empty dims: K = 0 gives zeros, M = 0 an empty result', async () => {
    const y = E.matmul(E.zeros([3, 0], { backend: gpu! }), E.zeros([0, 5], { backend: gpu! }));
    expect(y.shape).toEqual([3, 5]);
    expect(Array.from(await y.toArray())).toEqual(new Array(15).fill(0));
    // Reuse of a pooled (dirty) buffer must still give zeros for K = 0.
    const big = E.matmul(E.full([70, 0], 1, { backend: gpu! }), E.full([0, 70], 1, { backend: gpu! }));
    expect(Math.max(...Array.from(await big.toArray()).map(Math.abs))).toBe(0);
    expect(E.matmul(E.zeros([0, 4], { backend: gpu! }), E.zeros([4, 6], { backend: gpu! })).shape).toEqual([0, 6]);
  });

  it('backward on the GPU matches the float64 reference (transposed views in the gradient)', async () => {
    const sa = operand([2, 1], 37, 45, {}, 11);
    const sb = operand([3], 45, 29, {}, 12);
    const grads = (be: E.Backend) =>
      E.tidy(() => {
        const a = build(sa, be).requireGrad();
        const b = build(sb, be).requireGrad();
        const y = E.matmul(a, b);
        const w = E.tensor(values(y.size, 13), [...y.shape], { backend: be });
        return E.gradients(y.mul(w).sum(), [a, b]);
      });
    const ref = grads(E.cpuF64);
    const got = grads(gpu!);
    // dA sums 3 batches of 29-term products, dB 2 batches of 37-term products (values |.| <= 2):
    // 4*sqrt(n)*u*sum|.| with sum|.| <= 4 * n gives ~1e-4 absolute; use 2e-4 + 1e-5 relative.
    for (let k = 0; k < 2; k++) expectClose(await got[k]!.toArray(), await ref[k]!.toArray(), { atol: 2e-4, rtol: 1e-5 }, `grad ${k}`);
  });

  it('linear (x @ w^T + b) on the GPU matches the reference', async () => {
    const x = values(5 * 7 * 33, 21);
    const w = values(19 * 33, 22);
    const bias = values(19, 23);
    const run = (be: E.Backend) => E.linear(E.tensor(x, [5, 7, 33], { backend: be }), E.tensor(w, [19, 33], { backend: be }), E.tensor(bias, [19], { backend: be }));
    // 33-term dot products of values in [-2, 2]: 4*sqrt(34)*u*33*4 < 2e-4.
    expectClose(await run(gpu!).toArray(), await run(E.cpuF64).toArray(), { atol: 2e-4, rtol: 0 }, 'linear');
  });

  it('linear bias epilogue is bit-identical to the product followed by a separate add, per kernel family', async () => {
    // The kernels add the bias to the f32 accumulator where they store it (one dispatch); that is
    // the same two roundings as matmul(x, w^T) then an f32 add, so the results must be equal bit
    // for bit under every plan. Shapes cover ragged / aligned N (scalar and vec4 stores), the rows
    // kernel's in-place B^T (few rows) and copied B^T (many rows), leading dims and a 1-D x; the
    // bias is contiguous or a strided view with an offset.
    const plans: [string, E.MatmulPlan][] = [
      ['simple', { kernel: 'simple' }],
      ['rows 3x2', { kernel: 'rows', WG: 8, TM: 3, TN: 2 }],
      ['rows 16x16', { kernel: 'rows', WG: 8, TM: 16, TN: 16 }],
      ['rows 8x8 without subgroups', { kernel: 'rows', WG: 8, TM: 8, TN: 8, subgroups: false }],
      ['tiled 16x16x4 prefetch', { kernel: 'tiled', tile: { BM: 16, BN: 16, BK: 4, TM: 4, TN: 4 }, prefetch: true }],
      ['tiled 32x16x8 double-buffered, padded, grouped', { kernel: 'tiled', tile: { BM: 32, BN: 16, BK: 8, TM: 4, TN: 4 }, doubleBuffer: true, pad: true, groupM: 3 }],
      ['tiled 32x8x4 no prefetch', { kernel: 'tiled', tile: { BM: 32, BN: 8, BK: 4, TM: 4, TN: 4 }, prefetch: false }],
    ];
    const shapes: [number[], number][] = [
      [[2, 5, 33], 19],
      [[70, 64], 128],
      [[16, 256], 144],
      [[32, 32], 32],
      [[37], 13],
    ];
    for (const [name, plan] of plans) {
      await withPlan(plan, async () => {
        for (const [xs, nOut] of shapes) {
          for (const strided of [false, true]) {
            const nIn = xs[xs.length - 1]!;
            const seed = nIn * 7 + nOut;
            const x = E.tensor(values(xs.reduce((p, q) => p * q, 1), seed), xs, { backend: gpu! });
            const w = E.tensor(values(nOut * nIn, seed + 1), [nOut, nIn], { backend: gpu! });
            const stored = E.tensor(values(2 * nOut + 1, seed + 2), [2 * nOut + 1], { backend: gpu! });
            const b = strided ? E.slice(stored, [[1, 2 * nOut + 1, 2]]) : E.slice(stored, [[0, nOut]]);
            const fused = await E.linear(x, w, b).toArray();
            const twoPass = await E.add(E.matmul(x, E.transpose(w)), b).toArray();
            const label = `${name}, x ${JSON.stringify(xs)}, ${nOut} outputs, ${strided ? 'strided' : 'contiguous'} bias`;
            expect(Array.from(fused), label).toEqual(Array.from(twoPass));
          }
        }
      });
    }
  }, 600_000);
});

describe('matmul gradients vs finite differences (float64)', () => {
  // Gradients are sums of products of the inputs: exact up to float64 rounding, while central
  // differences of a bilinear function are exact up to rounding ~1e-16/eps: 1e-6 is conservative.
  const tol = { atol: 1e-6, rtol: 1e-6 };
  const small = (shape: number[], seed: number) => ({ shape, data: values(shape.reduce((p, d) => p * d, 1), seed) });
  it('2-D, batched with broadcasting, and 1-D operands', async () => {
    await expectGradMatchesFD(E.matmul, [small([3, 4], 1), small([4, 2], 2)], tol);
    await expectGradMatchesFD(E.matmul, [small([2, 1, 3, 4], 3), small([3, 4, 2], 4)], tol);
    await expectGradMatchesFD(E.matmul, [small([4], 5), small([2, 4, 3], 6)], tol);
    await expectGradMatchesFD(E.matmul, [small([2, 3, 4], 7), small([4], 8)], tol);
    await expectGradMatchesFD(E.matmul, [small([5], 9), small([5], 10)], tol);
  });
  it('transposed views as inputs', async () => {
    await expectGradMatchesFD((a, b) => E.matmul(a.transpose(), b.transpose()), [small([4, 3], 11), small([2, 4], 12)], tol);
  });
  it('linear with and without bias', async () => {
    await expectGradMatchesFD((x, w, b) => E.linear(x, w, b), [small([2, 3, 4], 13), small([5, 4], 14), small([5], 15)], tol);
    await expectGradMatchesFD((x, w) => E.linear(x, w), [small([3, 4], 16), small([2, 4], 17)], tol);
  });
  it('grad of grad: d/d(A,B) of <dL/dA, W> for L = sum((A@B)^2), vs finite differences of the first gradient', async () => {
    // dL/dA = 2 (A@B) @ B^T is itself built from matmul/transpose; differentiating it again
    // exercises matmul's backward of a backward. The objective is cubic in the inputs, so central
    // differences have truncation error ~eps^2 * |f'''| ~ 1e-11: tolerance 1e-6 still holds.
    const firstGrad = (a: E.Tensor, b: E.Tensor) => {
      if (!a.requiresGrad) a.requireGrad();
      return E.gradients(E.sum(E.square(E.matmul(a, b))), [a], { createGraph: true })[0]!;
    };
    await expectGradMatchesFD(firstGrad, [small([3, 4], 18), small([4, 2], 19)], { atol: 1e-6, rtol: 1e-6 }, { eps: 1e-5 });
    await expectGradMatchesFD(firstGrad, [small([2, 3], 20), small([2, 3, 2], 21)], { atol: 1e-6, rtol: 1e-6 }, { eps: 1e-5 });
    // linear's single tape node: d/dw of sum(linear(x, w, b)^2), differentiated again w.r.t. x, w, b.
    const linearGrad = (x: E.Tensor, w: E.Tensor, b: E.Tensor) => {
      if (!w.requiresGrad) w.requireGrad();
      return E.gradients(E.sum(E.square(E.linear(x, w, b))), [w], { createGraph: true })[0]!;
    };
    await expectGradMatchesFD(linearGrad, [small([2, 3, 4], 22), small([2, 4], 23), small([2], 24)], { atol: 1e-6, rtol: 1e-6 }, { eps: 1e-5 });
  });
});

describe('matmul: PyTorch fixtures', () => {
  interface Entry {
    shape: number[];
    data: number[];
  }
  type Fixture = { name: string; op: 'matmul'; transposeA: boolean; transposeB: boolean; a: Entry; b: Entry; y: Entry; gy: Entry; ga: Entry; gb: Entry } | { name: string; op: 'linear'; x: Entry; w: Entry; b?: Entry; y: Entry; gy: Entry; gx: Entry; gw: Entry; gb?: Entry };
  const fixtures = JSON.parse(readFileSync(new URL('./fixtures/matmul.json', import.meta.url), 'utf8')) as { cases: Fixture[] };
  const f32e = (e: Entry) => ({ shape: e.shape, data: e.data.map(Math.fround) });
  /** Forward + backward for one fixture on a backend: [y, grads...]. */
  const run = (c: Fixture, be: E.Backend) =>
    E.tidy(() => {
      const mk = (e: Entry) => E.tensor(f32e(e).data, e.shape, { backend: be }).requireGrad();
      let inputs: E.Tensor[];
      let y: E.Tensor;
      if (c.op === 'matmul') {
        inputs = [mk(c.a), mk(c.b)];
        const a = c.transposeA ? inputs[0]!.transpose() : inputs[0]!;
        const b = c.transposeB ? inputs[1]!.transpose() : inputs[1]!;
        y = E.matmul(a, b);
      } else {
        inputs = [mk(c.x), mk(c.w), ...(c.b ? [mk(c.b)] : [])];
        y = E.linear(inputs[0]!, inputs[1]!, inputs[2]);
      }
      const gy = E.tensor(f32e(c.gy).data, c.gy.shape, { backend: be });
      return [y, ...E.gradients(y, inputs, { gradOutput: gy })];
    });
  const expectedOf = (c: Fixture): Entry[] => (c.op === 'matmul' ? [c.y, c.ga, c.gb] : [c.y, c.gx, c.gw, ...(c.gb ? [c.gb] : [])]);
  const backends: [string, E.Backend | null][] = [
    ['cpu float64', E.cpuF64],
    ['gpu', gpu],
  ];
  for (const [bname, be] of backends) {
    it.runIf(be)(`${bname}: every fixture case (forward and gradients)`, async () => {
      expect(fixtures.cases.length).toBeGreaterThanOrEqual(10);
      for (const c of fixtures.cases) {
        const outs = run(c, be!);
        const exp = expectedOf(c);
        // float64: exact up to rounding of the stored 12-digit values. GPU: f32 dot products of
        // <= 70 standard-normal terms, 4*sqrt(71)*u*sum|ab| with sum|ab| <~ 70*3 => ~4e-4.
        const tol = be === E.cpuF64 ? { atol: 1e-9, rtol: 1e-9 } : { atol: 4e-4, rtol: 1e-5 };
        for (let k = 0; k < exp.length; k++) {
          expect(outs[k]!.shape, `${c.name} #${k} shape`).toEqual(exp[k]!.shape);
          expectClose(await outs[k]!.toArray(), exp[k]!.data, tol, `${c.name} #${k}`);
        }
        for (const t of outs) t.dispose();
      }
    });
  }
});

describe('matmul: API and errors', () => {
  const cpu = { backend: E.cpuF64 };
  it('method form and shapes of 1-D promotion', () => {
    const a = E.ones([2, 3], cpu);
    expect(a.matmul(E.ones([3, 4], cpu)).shape).toEqual([2, 4]);
    expect(E.matmul(E.ones([3], cpu), E.ones([3], cpu)).shape).toEqual([]);
    expect(E.matmul(E.ones([3], cpu), E.ones([5, 3, 2], cpu)).shape).toEqual([5, 2]);
    expect(E.matmul(E.ones([5, 2, 3], cpu), E.ones([3], cpu)).shape).toEqual([5, 2]);
    expect(E.matmul(E.ones([2, 1, 4, 3], cpu), E.ones([5, 3, 6], cpu)).shape).toEqual([2, 5, 4, 6]);
  });
  it('shape mismatch names both shapes', () => {
    expect(() => E.matmul(E.ones([2, 3], cpu), E.ones([4, 5], cpu))).toThrow(/matmul: shapes \[2, 3\] and \[4, 5\] are incompatible \(inner dims 3 vs 4\)/);
    expect(() => E.matmul(E.ones([2, 2, 3], cpu), E.ones([3, 3, 5], cpu))).toThrow(/matmul: shapes \[2, 2, 3\] and \[3, 3, 5\].*batch dims/);
    expect(() => E.matmul(E.ones([3], cpu), E.ones([4], cpu))).toThrow(/shapes \[3\] and \[4\]/);
    expect(() => E.matmul(E.tensor(2, cpu), E.ones([4], cpu))).toThrow(/at least 1 dimension/);
    expect(() => E.linear(E.ones([2, 3], cpu), E.ones([4, 5], cpu))).toThrow(/linear: input \[2, 3\] has 3 features but weight \[4, 5\]/);
  });
  it('dtype errors name the dtype', () => {
    const i = E.tensor([1, 2], [1, 2], { dtype: 'i32', backend: E.cpuF64 });
    expect(() => E.matmul(i, E.ones([2, 1], cpu))).toThrow(/matmul: expected f32 tensors, got dtype i32/);
  });
  it('the tile-config chooser gives valid plans', () => {
    const gpuCaps = { maxWorkgroupStorage: 49152, maxInvocations: 1024 };
    for (const n of [1, 8, 33, 256, 1024, 4096]) {
      for (const caps of [undefined, gpuCaps]) {
        const p = E.pickMatmulConfig(n, n, n, 1, caps);
        if (p.kernel === 'tiled') {
          expect(E.tileConfigError(p.tile)).toBeNull();
          expect(E.tiledSharedBytes(p.tile, p)).toBeLessThanOrEqual(caps?.maxWorkgroupStorage ?? 16384);
        }
      }
    }
    expect(E.pickMatmulConfig(4096, 4096, 4096, 1)).toMatchObject({ kernel: 'tiled', tile: E.MATMUL_TILES.large, prefetch: true });
    // The H100 sweep's winners: prefetch + padded rows + grouped order for big products, 128x64 at 1024.
    expect(E.pickMatmulConfig(4096, 4096, 4096, 1, gpuCaps)).toMatchObject({ kernel: 'tiled', tile: E.MATMUL_TILES.xl, prefetch: true, pad: true, groupM: 16 });
    expect(E.pickMatmulConfig(4096, 4096, 4096, 1, { maxWorkgroupStorage: 16384, maxInvocations: 256 })).toMatchObject({ kernel: 'tiled', tile: E.MATMUL_TILES.large, prefetch: true });
    expect(E.pickMatmulConfig(1024, 1024, 1024, 1, gpuCaps)).toMatchObject({ kernel: 'tiled', tile: E.MATMUL_TILES.wide });
    expect(E.pickMatmulConfig(256, 256, 256, 1, gpuCaps)).toMatchObject({ kernel: 'tiled', tile: E.MATMUL_TILES.medium });
    expect(E.pickMatmulConfig(1024, 1024, 1024, 1, { ...gpuCaps, software: true })).toMatchObject({ kernel: 'rows' });
    expect(E.pickMatmulConfig(4, 4, 4, 1)).toEqual({ kernel: 'simple' });
  });
  it('a plan the device cannot run is refused with a clear error', async () => {
    if (!gpu) return;
    const restore = gpu.tune({ matmul: { picker: () => ({ kernel: 'tiled', tile: { BM: 256, BN: 256, BK: 64, TM: 8, TN: 8 } }) } });
    try {
      expect(() => E.matmul(E.ones([300, 300], { backend: gpu }), E.ones([300, 300], { backend: gpu }))).toThrow(/matmul: bad tile config .* bytes of workgroup memory/);
    } finally {
      restore();
    }
  });
  it.each([['cpu', E.cpuF64], ['gpu', gpu]] as [string, E.Backend | null][])('no tensors leak from the copy path or linear (%s)', async (_n, be) => {
    if (!be) return;
    const cpu = { backend: be };
    const before = E.memoryStats().liveTensors;
    const x = E.tensor(values(12 * 10, 1), [12, 10], cpu);
    const w = E.tensor(values(6 * 10, 2), [6, 10], cpu);
    const b = E.tensor(values(6, 3), [6], cpu);
    const y = E.linear(x, w, b);
    const xs = x.slice([[0, 12, 2], [0, 10, 2]]);
    const ws = w.slice([[0, 6, 2], [0, 10, 2]]);
    const wt = ws.transpose();
    const z = E.matmul(xs, wt);
    expect(z.shape).toEqual([6, 3]);
    for (const t of [x, w, b, y, xs, ws, wt, z]) t.dispose();
    expect(E.memoryStats().liveTensors).toBe(before);
  });
});
