/**
 * The two matmul epilogues a convolution's columns route uses: matmulSumTo (a product summed over
 * batch dims inside one GEMM: a shared weight's gradient) and matmulRowBias (a bias per output row
 * added where the kernel stores). GPU vs the float64 reference under every kernel family, with the
 * summed range split or not; the row bias bit for bit against the product followed by an add;
 * gradients and grad-of-grad vs central finite differences (float64); the GPU split policy.
 *
 * Tolerance of matmulSumTo: each output is one f32 accumulation of K * nSum products (plus, when
 * split, the f32 sum of the splits' partial sums: fewer roundings, not more), so the bound of
 * test/matmul.test.ts applies with K * nSum terms: |err| <= 4*sqrt(K*nSum + 1)*u*(|A|@|B| summed).
 */
import { describe, expect, it } from 'vitest';
import * as E from '../engine/index.js';
import { requireGpu } from './helpers/backends.js';
import { expectGradMatchesFD } from './helpers/compare.js';
import { uniformValues } from './helpers/prng.js';

const gpu = await requireGpu();
const U = 2 ** -24;
const values = (n: number, seed: number): number[] => uniformValues(n, seed >>> 0 || 1, -2, 2);
const size = (s: readonly number[]) => s.reduce((p, d) => p * d, 1);

/** An operand: stored shape, read transposed (last two dims swapped) or with a leading offset. */
interface Spec {
  stored: number[];
  transpose?: boolean;
  /** Elements skipped before the view (an offset that breaks 4-alignment when odd). */
  offset?: number;
}

function build(s: Spec, seed: number, backend: E.Backend): E.Tensor {
  const off = s.offset ?? 0;
  let t = E.tensor(values(size(s.stored) + off, seed), [size(s.stored) + off], { backend });
  t = E.reshape(E.slice(t, [[off, off + size(s.stored)]]), s.stored);
  return s.transpose ? E.transpose(t) : t;
}

/** Plans forced through the picker: every kernel family, vec4 and scalar paths, each split or not. */
const PLANS: [string, E.MatmulPlan][] = [
  ['simple', { kernel: 'simple' }],
  ['rows 3x2', { kernel: 'rows', WG: 8, TM: 3, TN: 2 }],
  ['rows 2x4 vec4 B', { kernel: 'rows', WG: 8, TM: 2, TN: 4 }],
  ['tiled 16x16x4 prefetch', { kernel: 'tiled', tile: { BM: 16, BN: 16, BK: 4, TM: 4, TN: 4 }, prefetch: true }],
  ['tiled 32x16x8 double-buffered, padded, grouped', { kernel: 'tiled', tile: { BM: 32, BN: 16, BK: 8, TM: 4, TN: 4 }, doubleBuffer: true, pad: true, groupM: 3 }],
  ['tiled 32x8x4 no prefetch', { kernel: 'tiled', tile: { BM: 32, BN: 8, BK: 4, TM: 4, TN: 4 }, prefetch: false }],
];

async function withPlan<T>(plan: E.MatmulPlan, fn: () => Promise<T>): Promise<T> {
  const restore = gpu!.tune({ matmul: { picker: () => plan } });
  try {
    return await fn();
  } finally {
    restore();
  }
}

/** [what, a, b, target shape]: which batch dims are summed, broadcast operands, layouts. */
const SUM_CASES: [string, Spec, Spec, number[]][] = [
  // A conv weight gradient: gy [N, M, L] @ cols^T (cols [N, K, L] read transposed), summed over N.
  ['conv weight gradient: leading dim dropped, B transposed', { stored: [3, 16, 20] }, { stored: [3, 24, 20], transpose: true }, [16, 24]],
  ['grouped: [N, g] batch, N summed (kept as 1), ragged sizes', { stored: [3, 2, 13, 9] }, { stored: [3, 2, 7, 9], transpose: true }, [1, 2, 13, 7]],
  ['middle dim summed, B broadcast over it, vec4-aligned', { stored: [2, 3, 8, 12] }, { stored: [2, 1, 12, 16] }, [2, 1, 8, 16]],
  ['two non-adjacent summed dims, A transposed, offset views', { stored: [2, 3, 2, 5, 9], transpose: true, offset: 3 }, { stored: [2, 3, 2, 5, 6], offset: 1 }, [1, 3, 1, 9, 6]],
  ['A broadcast over the summed dim', { stored: [1, 10, 7] }, { stored: [5, 7, 33] }, [10, 33]],
  // 72 rows and a transposed B: the rows kernel with 4-column lanes multiplies a contiguous copy of B.
  ['B transposed with many rows (copied by the rows kernel)', { stored: [2, 72, 40] }, { stored: [2, 96, 40], transpose: true }, [72, 96]],
];

async function expectSumMatches(a: Spec, b: Spec, shape: number[], what: string): Promise<void> {
  const refA = build(a, 1, E.cpuF64);
  const refB = build(b, 2, E.cpuF64);
  const expected = E.sumTo(E.matmul(refA, refB), shape);
  const bound = E.sumTo(E.matmul(E.abs(refA), E.abs(refB)), shape);
  const terms = (refA.shape[refA.rank - 1]! * size(E.matmulShape(refA.shape, refB.shape))) / size(shape);
  const y = E.matmulSumTo(build(a, 1, gpu!), build(b, 2, gpu!), shape);
  expect(y.shape, what).toEqual(shape);
  const [got, exp, bnd] = [await y.toArray(), await expected.toArray(), await bound.toArray()];
  const c = 4 * Math.sqrt(terms + 1) * U;
  for (let i = 0; i < exp.length; i++) {
    const err = Math.abs(got[i]! - exp[i]!);
    if (!(err <= c * bnd[i]! + 1e-30)) expect.fail(`${what} [${i}]: got ${got[i]}, expected ${exp[i]} (|err| ${err.toExponential(3)} > ${(c * bnd[i]!).toExponential(3)})`);
  }
}

describe.runIf(gpu)('matmulSumTo on the GPU vs float64 (one GEMM over the summed batch dims)', () => {
  for (const [name, plan] of PLANS) {
    it(name, async () => {
      for (const splits of [1, 2]) {
        await withPlan({ ...plan, sumSplits: splits }, async () => {
          for (const [what, a, b, shape] of SUM_CASES) await expectSumMatches(a, b, shape, `${name}, ${splits} split(s): ${what}`);
        });
      }
    }, 300_000);
  }

  it('the summed product is one matmul dispatch, plus one split-sum dispatch when split', async () => {
    for (const splits of [1, 3]) {
      await withPlan({ kernel: 'tiled', tile: { BM: 16, BN: 16, BK: 4, TM: 4, TN: 4 }, sumSplits: splits }, async () => {
        const a = build({ stored: [4, 16, 20] }, 1, gpu!);
        const b = build({ stored: [4, 20, 16] }, 2, gpu!);
        const d0 = gpu!.counters.dispatches;
        E.matmulSumTo(a, b, [16, 16]).dispose();
        expect(gpu!.counters.dispatches - d0, `${splits} split(s)`).toBe(splits === 1 ? 1 : 2);
      });
    }
  }, 120_000);

  // A kernel that cannot read an operand in place multiplies a contiguous copy: the copy must be
  // freed once the product is recorded (a leaked copy of each transposed weight grew a GPT
  // step's peak by 42 MB), for plain and summed products, with copies of B or of both operands.
  it('operand copies are freed: only the output stays live', async () => {
    const cases: [string, E.MatmulPlan, Spec, Spec, number[] | null][] = [
      ['rows, B transposed (copy of B)', { kernel: 'rows', WG: 8, TM: 2, TN: 4 }, { stored: [72, 40] }, { stored: [96, 40], transpose: true }, null],
      ['rows, B transposed, summed (copy of B)', { kernel: 'rows', WG: 8, TM: 2, TN: 4 }, { stored: [2, 72, 40] }, { stored: [2, 96, 40], transpose: true }, [72, 96]],
      ['tiled, both strided in both dims (copies of A and B)', { kernel: 'tiled', tile: { BM: 16, BN: 16, BK: 4, TM: 4, TN: 4 } }, { stored: [16, 24] }, { stored: [24, 16] }, null],
    ];
    for (const [what, plan, sa, sb, shape] of cases) {
      await withPlan(plan, async () => {
        let [a, b] = [build(sa, 1, gpu!), build(sb, 2, gpu!)];
        // [24, 8] @ [8, 24], each a stepped slice of a transpose: no unit stride in either dim.
        if (what.startsWith('tiled')) [a, b] = [E.slice(E.transpose(E.reshape(a, [16, 24])), [null, [0, 16, 2]]), E.slice(E.transpose(E.reshape(b, [24, 16])), [[0, 16, 2], null])];
        const base = E.memoryStats().liveBytes;
        const y = shape ? E.matmulSumTo(a, b, shape) : E.matmul(a, b);
        expect(E.memoryStats().liveBytes - base, what).toBe(y.size * 4);
        y.dispose();
      });
    }
  }, 120_000);
});

describe.runIf(gpu)('matmulRowBias on the GPU: bit-identical to the product followed by an add', () => {
  // The kernels add the row's bias to the f32 accumulator where they store it: the same two
  // roundings as matmul then an f32 add, so every plan must agree bit for bit.
  const cases: [string, Spec, Spec, (be: E.Backend) => E.Tensor][] = [
    ['[M] bias, conv shape W [1, M, K] @ cols [N, 1, K, L]', { stored: [1, 19, 27] }, { stored: [3, 1, 27, 36] }, (be) => build({ stored: [19] }, 3, be)],
    ['grouped [g, M] bias over [N, g] batches, ragged', { stored: [2, 5, 9] }, { stored: [3, 2, 9, 13] }, (be) => build({ stored: [2, 5] }, 4, be)],
    ['strided bias view with an offset, vec4-aligned product', { stored: [16, 8] }, { stored: [8, 32] }, (be) => E.slice(build({ stored: [33] }, 5, be), [[1, 33, 2]])],
  ];
  for (const [name, plan] of PLANS) {
    it(name, async () => {
      await withPlan(plan, async () => {
        for (const [what, a, b, bias] of cases) {
          const [x, y, c] = [build(a, 1, gpu!), build(b, 2, gpu!), bias(gpu!)];
          const fused = await E.matmulRowBias(x, y, c).toArray();
          const twoPass = await E.add(E.matmul(x, y), E.unsqueeze(c, -1)).toArray();
          expect(Array.from(fused), `${name}: ${what}`).toEqual(Array.from(twoPass));
          for (const t of [x, y, c]) t.dispose();
        }
      });
    }, 300_000);
  }
});

describe('matmulSumTo / matmulRowBias gradients vs finite differences (float64)', () => {
  const seq = (n: number, f: number) => Array.from({ length: n }, (_, i) => Math.sin(f * i + 0.3));
  it('matmulSumTo in both operands (summed leading dim, kept dim, broadcast B)', async () => {
    await expectGradMatchesFD((a, b) => E.matmulSumTo(a, b, [1, 2, 3, 4]), [
      { shape: [3, 2, 3, 5], data: seq(90, 0.7) },
      { shape: [3, 1, 5, 4], data: seq(60, 1.1) },
    ]);
  });
  it('matmulRowBias in all three operands (bias broadcast over the leading batch dim)', async () => {
    await expectGradMatchesFD((a, b, c) => E.matmulRowBias(a, b, c), [
      { shape: [2, 3, 4], data: seq(24, 0.9) },
      { shape: [2, 2, 4, 5], data: seq(80, 0.4) },
      { shape: [2, 3], data: seq(6, 1.7) },
    ]);
  });
  it('grad of grad through matmulSumTo: d/d(a, b) of |d/da sum((a @ b)^2)|^2 with a broadcast', async () => {
    await expectGradMatchesFD(
      (a, b) => {
        const [ga] = E.grad((aa) => E.sum(E.square(E.matmul(aa, b))))(a);
        return E.square(ga!);
      },
      [
        { shape: [3, 4], data: seq(12, 0.8) },
        { shape: [2, 4, 3], data: seq(24, 0.5) },
      ],
      { atol: 1e-5, rtol: 1e-5 },
    );
  });
  it('shapes that are not a sum over batch dims are refused, naming both shapes', () => {
    const z = (s: number[]) => E.zeros(s, { backend: E.cpuF64 });
    expect(() => E.matmulSumTo(z([2, 3, 4]), z([2, 4, 5]), [3, 1])).toThrow(/matmulSumTo: cannot sum the product's shape \[2, 3, 5\] to \[3, 1\]/);
    expect(() => E.matmulRowBias(z([3, 4]), z([4, 5]), z([5]))).toThrow(/matmulRowBias: bias \[5\] does not broadcast to the product's rows \[3\]/);
  });
});

describe('split policy of summed products (sumSplits)', () => {
  const gpuCaps = { maxWorkgroupStorage: 16384, maxInvocations: 256 };
  it('software adapters never split; GPUs split only big reductions over few workgroups, within the summed count', () => {
    // A 64 -> 64 3x3 conv weight gradient at 32x32, batch 8: 9 tiles of 64x64, 8 images of 1024 positions.
    expect(E.sumSplits(64, 576, 1024, 1, 8, [64, 64], { ...gpuCaps, software: true })).toBe(1);
    expect(E.sumSplits(64, 576, 1024, 1, 8, [64, 64], gpuCaps)).toBe(8);
    // At 8x8 (64 positions per image) one workgroup's share is 2^21 multiply-adds: unsplit.
    expect(E.sumSplits(128, 1152, 64, 1, 8, [64, 64], gpuCaps)).toBe(1);
    // Enough workgroups already: unsplit however long the reduction.
    expect(E.sumSplits(512, 4608, 4096, 1, 256, [64, 64], gpuCaps)).toBe(1);
    // Batch 256 at 32x32: split up to the 128-workgroup target.
    expect(E.sumSplits(64, 576, 1024, 1, 256, [64, 64], gpuCaps)).toBe(15);
  });
});
