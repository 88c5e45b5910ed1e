/**
 * avgPool2d, maxPool2d, adaptive/global average pooling and nearest upsampling.
 *
 * Tolerances:
 * - vs PyTorch on the float64 CPU backend: the fixture keeps 12 significant digits -> 1e-10 + 1e-9 rel.
 * - GPU vs float64 (fixture or CPU reference): max pooling and upsampling select/copy values
 *   (exact); their gradients add at most kh*kw upstream values. Average pooling sums <= 16 f32
 *   terms of magnitude <= 3 and scales by 1/n: rounding < 16 * 2^-24 * 3 ~ 3e-6 worst case, so
 *   atol 5e-6 + rtol 1e-6 for everything.
 * - finite differences in float64: pooling is piecewise linear (max pooling is linear away from
 *   ties, and inputs are distinct values spaced >> eps), so the default 1e-6 + 1e-5 rel is generous.
 */
import { readFileSync } from 'node:fs';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import * as E from '../engine/index.js';
import { requireGpu } from './helpers/backends.js';
import { expectClose, expectGradMatchesFD, expectMatchesReference, type InputSpec } from './helpers/compare.js';
import { valuesArb } from './helpers/arbitrary.js';

const gpu = await requireGpu();
const cpu = E.cpuF64;
const gpuTol = { atol: 5e-6, rtol: 1e-6 };

interface Entry {
  shape: number[];
  data: number[];
}
interface Case {
  name: string;
  op: string;
  opts: Record<string, number | number[]>;
  x: Entry;
  y: Entry;
  gy: Entry;
  gx: Entry;
}

const fixture = JSON.parse(readFileSync(new URL('./fixtures/conv.json', import.meta.url), 'utf8')) as { cases: Case[] };
const poolCases = fixture.cases.filter((c) => c.op !== 'conv2d' && c.op !== 'conv_transpose2d');
type P2 = number | [number, number];

function runPool(c: Case, x: E.Tensor): E.Tensor {
  const o = c.opts;
  switch (c.op) {
    case 'avg_pool2d':
      return E.avgPool2d(x, o.kernel_size as P2, { stride: o.stride as P2 | undefined, padding: (o.padding as P2) ?? 0 });
    case 'max_pool2d':
      return E.maxPool2d(x, o.kernel_size as P2, { stride: o.stride as P2 | undefined, padding: (o.padding as P2) ?? 0, dilation: (o.dilation as P2) ?? 1 });
    case 'upsample_nearest2d':
      return E.upsampleNearest2d(x, o.scale_factor as P2);
    case 'adaptive_avg_pool2d':
      return E.adaptiveAvgPool2d(x, o.output_size as P2);
  }
  throw new Error(`unknown op ${c.op}`);
}

async function checkPoolCase(c: Case, backend: E.Backend, tol: { atol: number; rtol: number }): Promise<void> {
  const x = E.tensor(c.x.data.map(Math.fround), c.x.shape, { backend }).requireGrad();
  const y = runPool(c, x);
  expect(y.shape, `${c.name}: output shape`).toEqual(c.y.shape);
  expectClose(await y.toArray(), c.y.data, tol, `${c.name}: y`);
  const gy = E.tensor(c.gy.data.map(Math.fround), c.gy.shape, { backend });
  const [gx] = E.gradients(y, [x], { gradOutput: gy });
  expectClose(await gx!.toArray(), c.gx.data, tol, `${c.name}: dx`);
  for (const t of [x, y, gy, gx!]) t.dispose();
}

describe('pooling / upsampling vs PyTorch (float64 CPU)', () => {
  for (const c of poolCases) {
    it(`${c.op}: ${c.name}`, async () => {
      await checkPoolCase(c, cpu, { atol: 1e-10, rtol: 1e-9 });
    });
  }
});

describe.runIf(gpu)('pooling / upsampling vs PyTorch (GPU)', () => {
  for (const c of poolCases) {
    it(`${c.op}: ${c.name}`, async () => {
      await checkPoolCase(c, gpu!, gpuTol);
    });
  }
});

/** Kernels 1-4, strides 1-3, padding <= kernel/2 (PyTorch's rule), sizes 1-9 with >= 1 window. */
const poolGeomArb = fc
  .record({
    N: fc.integer({ min: 1, max: 2 }),
    C: fc.integer({ min: 1, max: 3 }),
    H: fc.integer({ min: 1, max: 9 }),
    W: fc.integer({ min: 1, max: 9 }),
    kh: fc.integer({ min: 1, max: 4 }),
    kw: fc.integer({ min: 1, max: 4 }),
    sh: fc.integer({ min: 1, max: 3 }),
    sw: fc.integer({ min: 1, max: 3 }),
    ph: fc.integer({ min: 0, max: 2 }),
    pw: fc.integer({ min: 0, max: 2 }),
  })
  .filter((g) => g.ph <= g.kh / 2 && g.pw <= g.kw / 2 && g.kh <= g.H + 2 * g.ph && g.kw <= g.W + 2 * g.pw);

const poolCaseArb = poolGeomArb.chain((g) => valuesArb(g.N * g.C * g.H * g.W).map((data) => ({ g, x: { shape: [g.N, g.C, g.H, g.W], data } })));

describe.runIf(gpu)('pooling: GPU vs float64 reference over generated geometries', () => {
  it('avgPool2d', async () => {
    await fc.assert(
      fc.asyncProperty(poolCaseArb, async ({ g, x }) => {
        await expectMatchesReference((t) => E.avgPool2d(t, [g.kh, g.kw], { stride: [g.sh, g.sw], padding: [g.ph, g.pw] }), [x], gpu!, gpuTol, 'avgPool2d');
      }),
      { numRuns: 30 },
    );
  });
  it('maxPool2d (values and gradient)', async () => {
    await fc.assert(
      fc.asyncProperty(poolCaseArb, async ({ g, x }) => {
        const f = (t: E.Tensor) => {
          const leaf = E.detach(t).requireGrad();
          const y = E.maxPool2d(leaf, [g.kh, g.kw], { stride: [g.sh, g.sw], padding: [g.ph, g.pw] });
          const [gx] = E.gradients(E.sum(E.mul(y, y)), [leaf]);
          return [y, gx!];
        };
        await expectMatchesReference(f, [x], gpu!, gpuTol, 'maxPool2d');
      }),
      { numRuns: 30 },
    );
  });
  it('upsampleNearest2d on a strided view', async () => {
    const x: InputSpec = { shape: [3, 2, 4, 5], data: Array.from({ length: 120 }, (_, i) => Math.fround(Math.sin(i))) };
    await expectMatchesReference((t) => E.upsampleNearest2d(E.permute(t, [1, 0, 3, 2]), [2, 3]), [x], gpu!, { atol: 0, rtol: 0 });
  });
});

describe('pooling gradients vs finite differences (float64)', () => {
  /** Distinct values 0.1 apart (shuffled), so no max-pool window has a near-tie. */
  const distinct = (n: number) => Array.from({ length: n }, (_, i) => ((i * 37) % n) * 0.1 - n * 0.05);
  const smooth = (n: number) => Array.from({ length: n }, (_, i) => Math.sin(0.7 * i + 0.2));
  it('avgPool2d with padding and overlapping windows', async () => {
    await expectGradMatchesFD((x) => E.avgPool2d(x, 3, { stride: 2, padding: 1 }), [{ shape: [1, 2, 5, 6], data: smooth(60) }]);
    await expectGradMatchesFD((x) => E.avgPool2d(x, [2, 3], { stride: [1, 2] }), [{ shape: [2, 1, 4, 5], data: smooth(40) }]);
  });
  it('maxPool2d: tiles, and overlapping windows with padding and dilation', async () => {
    await expectGradMatchesFD((x) => E.maxPool2d(x, 2), [{ shape: [1, 2, 4, 6], data: distinct(48) }]);
    await expectGradMatchesFD((x) => E.maxPool2d(x, 3, { stride: 1, padding: 1 }), [{ shape: [1, 2, 5, 4], data: distinct(40) }]);
    await expectGradMatchesFD((x) => E.maxPool2d(x, [2, 3], { stride: [2, 1], padding: [1, 1], dilation: [2, 1] }), [{ shape: [2, 1, 6, 5], data: distinct(60) }]);
  });
  it('upsampleNearest2d, adaptiveAvgPool2d, globalAvgPool2d', async () => {
    await expectGradMatchesFD((x) => E.upsampleNearest2d(x, [2, 3]), [{ shape: [1, 2, 3, 2], data: smooth(12) }]);
    await expectGradMatchesFD((x) => E.adaptiveAvgPool2d(x, [2, 1]), [{ shape: [2, 1, 4, 3], data: smooth(24) }]);
    await expectGradMatchesFD((x) => E.globalAvgPool2d(x), [{ shape: [2, 2, 3, 2], data: smooth(24) }]);
  });
});

describe('pooling semantics', () => {
  it('max pooling ignores padding even when every real value is negative', async () => {
    const x = E.tensor([-5, -4, -3, -2], [1, 1, 2, 2], { backend: cpu });
    expect(Array.from(await E.maxPool2d(x, 2, { stride: 1, padding: 1 }).toArray())).toEqual([-5, -4, -4, -3, -2, -2, -3, -2, -2]);
  });
  it('average pooling counts the zero padding (count_include_pad=True)', async () => {
    const x = E.ones([1, 1, 2, 2], { backend: cpu });
    expect(Array.from(await E.avgPool2d(x, 2, { stride: 1, padding: 1 }).toArray())).toEqual([0.25, 0.5, 0.25, 0.5, 1, 0.5, 0.25, 0.5, 0.25]);
  });
  it('globalAvgPool2d keeps [N, C, 1, 1]', async () => {
    const y = E.globalAvgPool2d(E.tensor([1, 2, 3, 4, 5, 6, 7, 8], [1, 2, 2, 2], { backend: cpu }));
    expect(y.shape).toEqual([1, 2, 1, 1]);
    expect(Array.from(await y.toArray())).toEqual([2.5, 6.5]);
  });
  it('no temporaries are left behind without gradients', () => {
    const x = E.ones([1, 2, 5, 5], { backend: cpu });
    const before = E.memoryStats().liveTensors;
    const w = E.ones([3, 2, 3, 3], { backend: cpu });
    const wt = E.ones([2, 3, 3, 3], { backend: cpu });
    const b = E.ones([3], { backend: cpu });
    const ys = [E.maxPool2d(x, 3, { stride: 1, padding: 1 }), E.maxPool2d(x, 2, { stride: 2 }), E.avgPool2d(x, 2), E.avgPool2d(x, 3, { stride: 2, padding: 1 }), E.globalAvgPool2d(x), E.upsampleNearest2d(x, 2), E.conv2d(x, w, b), E.convTranspose2d(x, wt, b, { stride: 2 })];
    expect(E.memoryStats().liveTensors - before).toBe(ys.length + 3); // the outputs, plus w, wt, b
  });
});

describe('pooling errors name the op and the shapes', () => {
  const z = (s: number[]) => E.zeros(s, { backend: cpu });
  it('rank, padding, window size, adaptive sizes, scale', () => {
    expect(() => E.maxPool2d(z([2, 8, 8]), 2)).toThrow(/maxPool2d: expected a rank-4 input \[N, C, H, W\].*\[2, 8, 8\]/);
    expect(() => E.avgPool2d(z([1, 1, 8, 8]), 3, { stride: 1, padding: 2 })).toThrow(/avgPool2d: padding 2x2 must be at most half the kernel size 3x3 \(input \[1, 1, 8, 8\]\)/);
    expect(() => E.maxPool2d(z([1, 1, 2, 8]), 3)).toThrow(/maxPool2d: kernel height 3 .* larger than the padded input height 2 \(input \[1, 1, 2, 8\]/);
    expect(() => E.adaptiveAvgPool2d(z([1, 1, 7, 8]), 2)).toThrow(/adaptiveAvgPool2d: output size 2x2 must divide the input size 7x8/);
    expect(() => E.upsampleNearest2d(z([1, 1, 2, 2]), 1.5)).toThrow(/upsampleNearest2d: scale factor must be positive integer/);
  });
});
