/**
 * unfold/fold (the two convolution kernels), conv2d and convTranspose2d.
 *
 * Tolerances:
 * - unfold is a pure copy: GPU == float64 reference exactly (f32 inputs, no arithmetic).
 * - fold sums at most kh*kw <= 16 f32 values of magnitude <= 3: rounding <= 16 * 2^-24 * 48
 *   ~ 5e-5 worst case, ~1e-6 in practice; atol 1e-5 + rtol 1e-6.
 * - <fold(y), x> = <y, unfold(x)>: in float64 both sides are the same sum in a different order,
 *   so they agree to ~1e-13 relative; on the GPU the f32 inner products of <= 2000 terms are
 *   compared with a 1e-4 relative bound (the float64 reduction of f32 outputs is exact enough).
 * - conv vs PyTorch (float64 oracle on the same f32 inputs): float64 CPU to 1e-9 relative (the
 *   fixture keeps 12 significant digits). GPU: every output/gradient element is an f32 dot
 *   product of n <= 180 terms (gw sums over N*Ho*Wo) whose absolute sum S is <= ~10 here; the
 *   expected rounding error ~ sqrt(n) * 2^-24 * S <= 1e-5, so atol 5e-5 + rtol 1e-4 leaves margin
 *   without hiding indexing bugs (those give O(0.1) errors).
 * - finite differences in float64: conv is linear in each argument, so central differences are
 *   exact up to rounding (~1e-16/eps relative): the default 1e-6 + 1e-5 relative is generous.
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

interface Geom {
  N: number;
  C: number;
  H: number;
  W: number;
  kh: number;
  kw: number;
  sh: number;
  sw: number;
  ph: number;
  pw: number;
  dh: number;
  dw: number;
}

const blocks = (size: number, k: number, s: number, p: number, d: number) => Math.floor((size + 2 * p - d * (k - 1) - 1) / s) + 1;

/** Sizes 1-9 (non-square), kernels 1-4, strides 1-3, padding 0-2, dilation 1-2; only geometries with >= 1 block. */
const geomArb: fc.Arbitrary<Geom> = fc
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
    dh: fc.integer({ min: 1, max: 2 }),
    dw: fc.integer({ min: 1, max: 2 }),
  })
  .filter((g) => blocks(g.H, g.kh, g.sh, g.ph, g.dh) >= 1 && blocks(g.W, g.kw, g.sw, g.pw, g.dw) >= 1);

const opts = (g: Geom) => ({ stride: [g.sh, g.sw] as [number, number], padding: [g.ph, g.pw] as [number, number], dilation: [g.dh, g.dw] as [number, number] });
const colsShape = (g: Geom) => [g.N, g.C * g.kh * g.kw, blocks(g.H, g.kh, g.sh, g.ph, g.dh) * blocks(g.W, g.kw, g.sw, g.pw, g.dw)];
const prod = (s: number[]) => s.reduce((a, b) => a * b, 1);

/** The definition of F.unfold written out directly (independent of the engine). */
function naiveUnfold(x: number[], g: Geom): number[] {
  const Hb = blocks(g.H, g.kh, g.sh, g.ph, g.dh);
  const Wb = blocks(g.W, g.kw, g.sw, g.pw, g.dw);
  const R = g.C * g.kh * g.kw;
  const out = new Array<number>(g.N * R * Hb * Wb).fill(0);
  for (let n = 0; n < g.N; n++)
    for (let c = 0; c < g.C; c++)
      for (let ki = 0; ki < g.kh; ki++)
        for (let kj = 0; kj < g.kw; kj++)
          for (let l = 0; l < Hb * Wb; l++) {
            const h = Math.floor(l / Wb) * g.sh - g.ph + ki * g.dh;
            const w = (l % Wb) * g.sw - g.pw + kj * g.dw;
            const row = c * g.kh * g.kw + ki * g.kw + kj;
            if (h >= 0 && h < g.H && w >= 0 && w < g.W) out[(n * R + row) * Hb * Wb + l] = x[((n * g.C + c) * g.H + h) * g.W + w]!;
          }
  return out;
}

const withData = (g: Geom, shape: number[]) => valuesArb(prod(shape)).map((data) => ({ g, x: { shape, data } }));
const unfoldCaseArb = geomArb.chain((g) => withData(g, [g.N, g.C, g.H, g.W]));
const foldCaseArb = geomArb.chain((g) => withData(g, colsShape(g)));

async function dot(a: E.Tensor, b: E.Tensor): Promise<number> {
  const [x, y] = [await a.toArray(), await b.toArray()];
  let s = 0;
  for (let i = 0; i < x.length; i++) s += x[i]! * y[i]!;
  return s;
}

describe('unfold / fold on the float64 CPU backend', () => {
  it('unfold matches the definition of F.unfold', async () => {
    await fc.assert(
      fc.asyncProperty(unfoldCaseArb, async ({ g, x }) => {
        const y = E.unfold(E.tensor(x.data, x.shape, { backend: cpu }), [g.kh, g.kw], opts(g));
        expect(y.shape).toEqual(colsShape(g));
        expectClose(await y.toArray(), naiveUnfold(x.data, g), { atol: 0, rtol: 0 }, 'unfold');
      }),
      { numRuns: 60 },
    );
  });

  it('fold is the adjoint of unfold: <fold(y), x> = <y, unfold(x)>', async () => {
    await fc.assert(
      fc.asyncProperty(
        geomArb.chain((g) => fc.tuple(fc.constant(g), valuesArb(g.N * g.C * g.H * g.W), valuesArb(prod(colsShape(g))))),
        async ([g, xd, yd]) => {
          const x = E.tensor(xd, [g.N, g.C, g.H, g.W], { backend: cpu });
          const y = E.tensor(yd, colsShape(g), { backend: cpu });
          const lhs = await dot(E.fold(y, [g.H, g.W], [g.kh, g.kw], opts(g)), x);
          const rhs = await dot(y, E.unfold(x, [g.kh, g.kw], opts(g)));
          expect(Math.abs(lhs - rhs)).toBeLessThanOrEqual(1e-12 * (1 + Math.abs(rhs)));
        },
      ),
      { numRuns: 60 },
    );
  });

  it('fold of unfold counts how many blocks cover each pixel', async () => {
    // 4x4 image, 2x2 kernel, stride 1: corners in 1 block, edges in 2, interior in 4.
    const x = E.ones([1, 1, 4, 4], { backend: cpu });
    const y = E.fold(E.unfold(x, 2), [4, 4], 2);
    expect(Array.from(await y.toArray())).toEqual([1, 2, 2, 1, 2, 4, 4, 2, 2, 4, 4, 2, 1, 2, 2, 1]);
  });

  it('unfold/fold gradients vs finite differences', async () => {
    const g: Geom = { N: 1, C: 2, H: 4, W: 5, kh: 2, kw: 3, sh: 2, sw: 1, ph: 1, pw: 1, dh: 1, dw: 2 };
    const xd = Array.from({ length: 40 }, (_, i) => Math.sin(i * 0.7));
    await expectGradMatchesFD((x) => E.unfold(x, [2, 3], opts(g)), [{ shape: [1, 2, 4, 5], data: xd }]);
    const cs = colsShape(g);
    const cd = Array.from({ length: prod(cs) }, (_, i) => Math.cos(i * 0.3));
    await expectGradMatchesFD((c) => E.fold(c, [4, 5], [2, 3], opts(g)), [{ shape: cs, data: cd }]);
  });
});

describe.runIf(gpu)('unfold / fold: GPU vs float64 reference', () => {
  it('unfold (exact)', async () => {
    await fc.assert(
      fc.asyncProperty(unfoldCaseArb, async ({ g, x }) => {
        await expectMatchesReference((t) => E.unfold(t, [g.kh, g.kw], opts(g)), [x], gpu!, { atol: 0, rtol: 0 }, 'unfold');
      }),
      { numRuns: 40 },
    );
  });

  it('fold', async () => {
    await fc.assert(
      fc.asyncProperty(foldCaseArb, async ({ g, x }) => {
        await expectMatchesReference((t) => E.fold(t, [g.H, g.W], [g.kh, g.kw], opts(g)), [x], gpu!, { atol: 1e-5, rtol: 1e-6 }, 'fold');
      }),
      { numRuns: 40 },
    );
  });

  it('adjoint identity holds on the GPU', async () => {
    await fc.assert(
      fc.asyncProperty(
        geomArb.chain((g) => fc.tuple(fc.constant(g), valuesArb(g.N * g.C * g.H * g.W), valuesArb(prod(colsShape(g))))),
        async ([g, xd, yd]) => {
          const x = E.tensor(xd, [g.N, g.C, g.H, g.W], { backend: gpu! });
          const y = E.tensor(yd, colsShape(g), { backend: gpu! });
          const f = E.fold(y, [g.H, g.W], [g.kh, g.kw], opts(g));
          const u = E.unfold(x, [g.kh, g.kw], opts(g));
          const lhs = await dot(f, x);
          const rhs = await dot(y, u);
          expect(Math.abs(lhs - rhs)).toBeLessThanOrEqual(1e-4 * (1 + Math.abs(rhs)));
          for (const t of [x, y, f, u]) t.dispose();
        },
      ),
      { numRuns: 20 },
    );
  });

  it('strided (non-contiguous) inputs are read through their strides', async () => {
    // x is a permuted + sliced view; cols is a transposed view.
    const xs: InputSpec = { shape: [5, 2, 7, 3], data: Array.from({ length: 210 }, (_, i) => Math.fround(Math.sin(i))) };
    const g = { stride: 2, padding: 1, dilation: [1, 2] as [number, number] };
    await expectMatchesReference((t) => E.unfold(E.slice(E.permute(t, [3, 1, 0, 2]), [null, null, [1, 5]]), [3, 2], g), [xs], gpu!, { atol: 0, rtol: 0 });
    // cols for N=2, C=2, kernel 2x2 on a 5x4 image, stride 1: [2, 8, 12]; given as a [2, 12, 8] transposed.
    const cs: InputSpec = { shape: [2, 12, 8], data: Array.from({ length: 192 }, (_, i) => Math.fround(Math.cos(i))) };
    await expectMatchesReference((t) => E.fold(E.transpose(t, 1, 2), [5, 4], 2), [cs], gpu!, { atol: 1e-5, rtol: 1e-6 });
  });

  it('unfold / fold with the geometry baked into the WGSL (software adapters) and as params (GPUs)', async () => {
    // Both shader forms run on whatever adapter the tests have; the default picks one of them.
    for (const bake of [true, false]) {
      const restore = gpu!.tune({ conv: { bakeGeometry: bake } });
      try {
        await fc.assert(
          fc.asyncProperty(unfoldCaseArb, async ({ g, x }) => {
            await expectMatchesReference((t) => E.unfold(t, [g.kh, g.kw], opts(g)), [x], gpu!, { atol: 0, rtol: 0 }, `unfold bake=${bake}`);
          }),
          { numRuns: 15 },
        );
        await fc.assert(
          fc.asyncProperty(foldCaseArb, async ({ g, x }) => {
            await expectMatchesReference((t) => E.fold(t, [g.H, g.W], [g.kh, g.kw], opts(g)), [x], gpu!, { atol: 1e-5, rtol: 1e-6 }, `fold bake=${bake}`);
          }),
          { numRuns: 15 },
        );
      } finally {
        restore();
      }
    }
  }, 600_000);

  it('large unfold spanning a 2D dispatch grid (> 65535 workgroups)', async () => {
    // 1 x 100 x 140 x 140, 3x3, padding 1: 100*9*140*140 = 17.6M outputs = 68.9k workgroups of 256.
    const x = E.full([1, 100, 140, 140], 1, { backend: gpu! });
    const y = E.unfold(x, 3, { padding: 1 });
    const s = E.sum(y, [0, 2]); // per row (c, ki, kj): the number of in-image taps, exact in f32
    const got = await s.toArray();
    const expected: number[] = [];
    for (let c = 0; c < 100; c++) for (let a = 0; a < 3; a++) for (let b = 0; b < 3; b++) expected.push((140 - Math.abs(a - 1)) * (140 - Math.abs(b - 1)));
    expectClose(got, expected, { atol: 0, rtol: 0 }, 'row sums');
    for (const t of [x, y, s]) t.dispose();
  });
});

// ---------------------------------------------------------------------------------------------
// conv2d / convTranspose2d vs PyTorch

interface Entry {
  shape: number[];
  data: number[];
}
interface Case {
  name: string;
  op: string;
  opts: Record<string, number | number[] | string>;
  x: Entry;
  w?: Entry;
  b?: Entry;
  y: Entry;
  gy: Entry;
  gx: Entry;
  gw?: Entry;
  gb?: Entry;
}

const fixture = JSON.parse(readFileSync(new URL('./fixtures/conv.json', import.meta.url), 'utf8')) as { cases: Case[] };
const convCases = fixture.cases.filter((c) => c.op === 'conv2d' || c.op === 'conv_transpose2d');

const f32In = (e: Entry): InputSpec => ({ shape: e.shape, data: e.data.map(Math.fround) });
type P2 = number | [number, number];

function runConv(c: Case, x: E.Tensor, w: E.Tensor, b: E.Tensor | null): E.Tensor {
  const o = c.opts;
  if (c.op === 'conv2d') {
    return E.conv2d(x, w, b, { stride: o.stride as P2, padding: o.padding as P2 | 'same', dilation: o.dilation as P2, groups: o.groups as number });
  }
  return E.convTranspose2d(x, w, b, { stride: o.stride as P2, padding: o.padding as P2, outputPadding: o.output_padding as P2, dilation: o.dilation as P2, groups: o.groups as number });
}

async function checkConvCase(c: Case, backend: E.Backend, tol: { atol: number; rtol: number }): Promise<void> {
  const mk = (e: Entry) => E.tensor(f32In(e).data, e.shape, { backend });
  const x = mk(c.x).requireGrad();
  const w = mk(c.w!).requireGrad();
  const b = c.b ? mk(c.b).requireGrad() : null;
  const y = runConv(c, x, w, b);
  expect(y.shape, `${c.name}: output shape`).toEqual(c.y.shape);
  expectClose(await y.toArray(), c.y.data, tol, `${c.name}: y`);
  const leaves = b ? [x, w, b] : [x, w];
  const gy = mk(c.gy);
  const grads = E.gradients(y, leaves, { gradOutput: gy });
  expectClose(await grads[0]!.toArray(), c.gx.data, tol, `${c.name}: dx`);
  expectClose(await grads[1]!.toArray(), c.gw!.data, tol, `${c.name}: dw`);
  if (b) expectClose(await grads[2]!.toArray(), c.gb!.data, tol, `${c.name}: db`);
  for (const t of [x, w, y, gy, ...grads, ...(b ? [b] : [])]) t.dispose();
}

describe('conv2d / convTranspose2d vs PyTorch (float64 CPU)', () => {
  for (const c of convCases) {
    it(`${c.op}: ${c.name}`, async () => {
      await checkConvCase(c, cpu, { atol: 1e-10, rtol: 1e-9 });
    });
  }
});

describe.runIf(gpu)('conv2d / convTranspose2d vs PyTorch (GPU)', () => {
  for (const c of convCases) {
    it(`${c.op}: ${c.name}`, async () => {
      await checkConvCase(c, gpu!, { atol: 5e-5, rtol: 1e-4 });
    });
  }
});

describe.runIf(gpu)("conv2d at the CNN tokenizer's shapes: GPU values and gradients vs float64", () => {
  // Small channel counts, 3x3 padding 1, stride 1 and 2, 1-channel input/output convs: the
  // software adapter's matmul picks for these shapes (4-row tiles, narrow N, B^T read in place for
  // the weight gradient) and the baked unfold/fold run here; any adapter runs the same checks.
  // Tolerance: f32 sums of <= 288 products (forward, dx) or 3*64 (dw) of values in [-1, 1]:
  // atol 2e-4 + rtol 1e-4 leaves a wide margin over the ~1e-5 rounding error.
  const cases: [string, number[], number[], number][] = [
    ['16->16, 8x8', [3, 16, 8, 8], [16, 16, 3, 3], 1],
    ['16->16, 8x8, stride 2 (N = 16 columns)', [3, 16, 8, 8], [16, 16, 3, 3], 2],
    ['32->32, 4x4', [2, 32, 4, 4], [32, 32, 3, 3], 1],
    ['1->16, 8x8 (conv_in)', [3, 1, 8, 8], [16, 1, 3, 3], 1],
    ['16->1, 8x8 (conv_out)', [3, 16, 8, 8], [1, 16, 3, 3], 1],
    ['16->3, 7x5, odd sizes', [3, 16, 7, 5], [3, 16, 3, 3], 1],
  ];
  for (const [name, xs, ws, stride] of cases) {
    it(name, async () => {
      const gen = new E.Generator(xs[1]! * 31 + ws[0]!);
      const xd = await E.rand(xs, { backend: cpu, generator: gen, low: -1, high: 1 }).toArray();
      const wd = await E.rand(ws, { backend: cpu, generator: gen, low: -1, high: 1 }).toArray();
      const bd = await E.rand([ws[0]!], { backend: cpu, generator: gen, low: -1, high: 1 }).toArray();
      const run = async (backend: E.Backend) => {
        const x = E.tensor(Array.from(xd), xs, { backend }).requireGrad();
        const w = E.tensor(Array.from(wd), ws, { backend }).requireGrad();
        const b = E.tensor(Array.from(bd), [ws[0]!], { backend }).requireGrad();
        const y = E.conv2d(x, w, b, { stride, padding: 1 });
        const gy = E.tensor(Array.from({ length: y.size }, (_, i) => Math.fround(Math.sin(i * 0.37))), y.shape, { backend });
        const [gx, gw, gb] = E.gradients(y, [x, w, b], { gradOutput: gy });
        return Promise.all([y, gx!, gw!, gb!].map((t) => t.toArray()));
      };
      const [got, want] = [await run(gpu!), await run(cpu)];
      ['y', 'dx', 'dw', 'db'].forEach((n, i) => expectClose(got[i]!, want[i]!, { atol: 2e-4, rtol: 1e-4 }, `${name} ${n}`));
    }, 120_000);
  }
});

describe('conv gradients vs finite differences (float64)', () => {
  const seq = (n: number, f: number) => Array.from({ length: n }, (_, i) => Math.sin(f * i + 0.5));
  it('conv2d: stride 2, padding 1, groups 2, dilation [1, 2], bias', async () => {
    await expectGradMatchesFD(
      (x, w, b) => E.conv2d(x, w, b, { stride: 2, padding: 1, groups: 2, dilation: [1, 2] }),
      [
        { shape: [2, 4, 5, 6], data: seq(240, 0.37) },
        { shape: [4, 2, 2, 3], data: seq(48, 0.91) },
        { shape: [4], data: [0.1, -0.2, 0.3, 0.05] },
      ],
    );
  });
  it('conv2d with a residual: gradients of x, w, b and the residual, fused (implicit route) and added after (columns route)', async () => {
    for (const implicit of [true, false]) {
      const restore = E.cpuF64.tune({ conv: { implicit } });
      try {
        await expectGradMatchesFD(
          (x, w, b, r) => E.conv2d(x, w, b, { padding: 1, residual: r }),
          [
            { shape: [2, 3, 5, 4], data: seq(120, 0.41) },
            { shape: [4, 3, 3, 3], data: seq(108, 0.83) },
            { shape: [4], data: [0.2, -0.1, 0.05, 0.3] },
            { shape: [2, 4, 5, 4], data: seq(160, 0.67) },
          ],
        );
      } finally {
        restore();
      }
    }
    const x = E.zeros([1, 2, 4, 4], { backend: E.cpuF64 });
    const w = E.zeros([3, 2, 3, 3], { backend: E.cpuF64 });
    expect(() => E.conv2d(x, w, null, { padding: 1, residual: E.zeros([1, 3, 4, 5], { backend: E.cpuF64 }) })).toThrow(/residual must be an f32 tensor of the output's shape \[1, 3, 4, 4\]/);
  });
  it("conv2d: padding 'same' with an even kernel", async () => {
    await expectGradMatchesFD((x, w) => E.conv2d(x, w, null, { padding: 'same' }), [
      { shape: [1, 2, 4, 3], data: seq(24, 0.53) },
      { shape: [3, 2, 2, 2], data: seq(24, 1.3) },
    ]);
  });
  it('convTranspose2d: stride [2, 1], padding 1, output padding [1, 0], groups 2, bias', async () => {
    await expectGradMatchesFD(
      (x, w, b) => E.convTranspose2d(x, w, b, { stride: [2, 1], padding: 1, outputPadding: [1, 0], groups: 2 }),
      [
        { shape: [2, 4, 3, 4], data: seq(96, 0.29) },
        { shape: [4, 1, 3, 3], data: seq(36, 0.77) },
        { shape: [2], data: [0.4, -0.1] },
      ],
    );
  });
  it('second derivatives: d/dx and d/dw of |dL/dw|^2 (grad of grad through fold/unfold/matmul)', async () => {
    await expectGradMatchesFD(
      (x, w) => {
        // grad() keeps the graph when w is itself on the tape (the analytic pass).
        const [gw] = E.grad((ww) => E.sum(E.square(E.conv2d(x, ww, null, { stride: 2, padding: 1 }))))(w);
        return E.square(gw!);
      },
      [
        { shape: [1, 2, 4, 4], data: seq(32, 0.61) },
        { shape: [2, 2, 3, 3], data: seq(36, 0.43) },
      ],
      { atol: 1e-5, rtol: 1e-5 },
    );
  });
});

describe('conv edge cases', () => {
  it('empty batch gives an empty output of the right shape', async () => {
    const y = E.conv2d(E.zeros([0, 3, 5, 5], { backend: cpu }), E.zeros([2, 3, 3, 3], { backend: cpu }), null, { padding: 1 });
    expect(y.shape).toEqual([0, 2, 5, 5]);
    const t = E.convTranspose2d(E.zeros([0, 3, 5, 5], { backend: cpu }), E.zeros([3, 2, 3, 3], { backend: cpu }), null, { stride: 2 });
    expect(t.shape).toEqual([0, 2, 11, 11]);
  });
  it.runIf(gpu)('conv2d on the GPU with inputs that are views (permuted x, sliced w)', async () => {
    const x: InputSpec = { shape: [6, 5, 3, 2], data: Array.from({ length: 180 }, (_, i) => Math.fround(Math.sin(i * 0.3))) };
    const w: InputSpec = { shape: [4, 3, 3, 3], data: Array.from({ length: 108 }, (_, i) => Math.fround(Math.cos(i * 0.2))) };
    await expectMatchesReference(
      (a, b) => E.conv2d(E.permute(a, [3, 2, 1, 0]), E.slice(b, [[1, 4]]), null, { padding: [1, 0] }),
      [x, w],
      gpu!,
      { atol: 5e-5, rtol: 1e-4 },
    );
  });
});

describe('conv errors name the op and the shapes', () => {
  const z = (s: number[]) => E.zeros(s, { backend: cpu });
  it('rank', () => {
    expect(() => E.conv2d(z([3, 8, 8]), z([4, 3, 3, 3]))).toThrow(/conv2d: expected a rank-4 input \[N, C, H, W\].*\[3, 8, 8\]/);
    expect(() => E.conv2d(z([1, 3, 8, 8]), z([4, 3, 3]))).toThrow(/conv2d: expected a rank-4 weight/);
    expect(() => E.unfold(z([8, 8]), 3)).toThrow(/unfold: expected a rank-4 input/);
  });
  it('channels and groups', () => {
    expect(() => E.conv2d(z([1, 6, 8, 8]), z([4, 3, 3, 3]), null, { groups: 4 })).toThrow(/conv2d: input channels 6 \(input \[1, 6, 8, 8\]\) are not divisible by groups=4/);
    expect(() => E.conv2d(z([1, 6, 8, 8]), z([3, 3, 3, 3]), null, { groups: 2 })).toThrow(/output channels 3 \(weight \[3, 3, 3, 3\]\) are not divisible by groups=2/);
    expect(() => E.conv2d(z([1, 5, 8, 8]), z([4, 3, 3, 3]))).toThrow(/weight \[4, 3, 3, 3\] expects 3 input channels.*input \[1, 5, 8, 8\] has 5/);
    expect(() => E.convTranspose2d(z([1, 5, 8, 8]), z([4, 3, 3, 3]))).toThrow(/convTranspose2d: weight \[4, 3, 3, 3\] expects 4 input channels/);
  });
  it('kernel larger than the padded input', () => {
    expect(() => E.conv2d(z([1, 1, 4, 8]), z([1, 1, 5, 3]))).toThrow(/conv2d: kernel height 5 .* larger than the padded input height 4 \(input \[1, 1, 4, 8\], padding 0\)/);
    expect(() => E.conv2d(z([1, 1, 4, 4]), z([1, 1, 3, 3]), null, { dilation: 2 })).toThrow(/dilation 2, spanning 5\) is larger than the padded input height 4/);
    expect(() => E.unfold(z([1, 1, 2, 2]), 4, { padding: 0 })).toThrow(/unfold: kernel height 4/);
  });
  it('bias, options, output padding', () => {
    expect(() => E.conv2d(z([1, 3, 8, 8]), z([4, 3, 3, 3]), z([3]))).toThrow(/conv2d: bias must have shape \[4\].*got \[3\]/);
    expect(() => E.conv2d(z([1, 3, 8, 8]), z([4, 3, 3, 3]), null, { stride: 0 })).toThrow(/conv2d: stride must be positive/);
    expect(() => E.conv2d(z([1, 3, 8, 8]), z([4, 3, 3, 3]), null, { padding: 'same', stride: 2 })).toThrow(/padding='same' needs stride 1/);
    expect(() => E.convTranspose2d(z([1, 3, 8, 8]), z([3, 3, 3, 3]), null, { stride: 2, outputPadding: 2 })).toThrow(/output padding 2x2 must be smaller than either stride 2x2 or dilation 1x1/);
    expect(() => E.fold(z([1, 4, 5]), [4, 4], 2)).toThrow(/fold: columns \[1, 4, 5\] have 5 blocks, but output size 4x4 with kernel 2x2 gives 3\*3 = 9/);
  });
  it('dtype', () => {
    expect(() => E.conv2d(E.zeros([1, 1, 3, 3], { backend: cpu, dtype: 'i32' }), z([1, 1, 1, 1]))).toThrow(/conv2d: expected an f32 input, got dtype i32/);
  });
});

describe('batch chunking when the column buffer would exceed the binding limit', () => {
  const backends: [string, E.CpuBackend | E.WebGPUBackend][] = [['cpu-f64', E.cpuF64], ...(gpu ? [['webgpu', gpu] as [string, E.WebGPUBackend]] : [])];
  // The unfold + matmul path (groups > 1, or tuning conv.implicit = false) materializes
  // columns and chunks; the implicit-GEMM path (test/conv-implicit.test.ts) has none to chunk.
  it.each(backends)('the implicit path needs no chunks: a column limit of 10 elements changes nothing (%s)', async (_n, backend) => {
    const gen = new E.Generator(4);
    const x = E.randn([5, 3, 6, 6], { backend, generator: gen });
    const w = E.randn([4, 3, 3, 3], { backend, generator: gen });
    const restoreImplicit = backend.tune({ conv: { implicit: true } });
    const whole = await E.conv2d(x, w, null, { padding: 1 }).toArray();
    const restoreLimit = backend.tune({ conv: { maxColumnElements: 10 } });
    try {
      const limited = await E.conv2d(x, w, null, { padding: 1 }).toArray();
      expectClose(limited, whole, { atol: 0, rtol: 0 }, 'conv2d');
    } finally {
      restoreLimit();
      restoreImplicit();
    }
  });
  it.each(backends)('conv2d and convTranspose2d give the same values and gradients in chunks (%s)', async (_n, backend) => {
    const restore = backend.tune({ conv: { implicit: false } });
    try {
      await chunkedMatchesWhole(backend);
    } finally {
      restore();
    }
  });
  async function chunkedMatchesWhole(backend: E.CpuBackend | E.WebGPUBackend): Promise<void> {
    const gen = new E.Generator(3);
    const x = E.randn([5, 3, 6, 6], { backend, generator: gen });
    const w = E.randn([4, 3, 3, 3], { backend, generator: gen });
    const wt = E.randn([3, 2, 3, 3], { backend, generator: gen });
    const b = E.randn([4], { backend, generator: gen });
    const run = async () => {
      const xs = x.detach().requireGrad();
      const ws = w.detach().requireGrad();
      const y = E.conv2d(xs, ws, b, { padding: 1 }); // 972 column elements per image: chunks of 2
      const z = E.convTranspose2d(xs, wt, null, { stride: 2, padding: 1, outputPadding: 1 });
      E.tidy(() => y.square().sum().add(z.sin().sum()).backward());
      return [await y.toArray(), await z.toArray(), await xs.grad!.toArray(), await ws.grad!.toArray()];
    };
    const whole = await run();
    let restore = backend.tune({ conv: { maxColumnElements: 2 * 3 * 9 * 36 } }); // two images' columns per chunk
    try {
      const chunked = await run();
      const tol = backend === E.cpuF64 ? { atol: 1e-12, rtol: 1e-12 } : { atol: 1e-5, rtol: 1e-5 };
      chunked.forEach((c, i) => expectClose(c, whole[i]!, tol, `output ${i}`));
      restore();
      restore = backend.tune({ conv: { maxColumnElements: 10 } });
      expect(() => E.conv2d(x, w, b, { padding: 1 })).toThrow(/conv2d: one image of \[5, 3, 6, 6\] needs 972 column elements .* over the device's storage binding limit/);
    } finally {
      restore();
    }
  }
});
