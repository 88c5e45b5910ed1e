/**
 * layerNorm / groupNorm / rmsNorm: fused forward kernels vs PyTorch fixtures
 * (test/fixtures/make_norm.py), vs the composite formula built from mean/var ops, GPU vs float64
 * reference over generated shapes, and gradients (w.r.t. x, weight, bias, and gradients of
 * gradients) vs finite differences.
 *
 * Tolerances: on float64 the fused forward and the fixtures (float64 PyTorch) agree to rounding:
 * 1e-10. On the GPU, xhat = (x - mean) * rstd carries the f32 error of the mean and of x - mean,
 * about 2^-24 * (|mean| + |x|) / std relative to xhat's scale, plus the row sums' error
 * (< 3e-6): checked to 3e-5 * cond absolute + 3e-5 relative, where cond = 1 + max |x| / std of
 * the case (1..~10 for generated data, ~1e4 for the fixture with mean 100 and std 0.01).
 * Gradients from fixtures on the GPU: same bound times 4 (they chain a few more f32 ops).
 * Finite differences: float64, eps 1e-6: 1e-5 relative + 1e-6 absolute.
 */
import { readFileSync } from 'node:fs';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import * as E from '../engine/index.js';
import { requireGpu } from './helpers/backends.js';
import { expectClose, expectGradMatchesFD, make, type InputSpec } from './helpers/compare.js';
import { valuesArb } from './helpers/arbitrary.js';

const gpu = await requireGpu();
const ref = E.cpuF64;

interface Enc {
  shape: number[];
  data: number[];
}
interface NormFixture {
  op: 'layer_norm' | 'group_norm';
  eps: number;
  normalized_shape?: number[];
  num_groups?: number;
  x: Enc;
  weight?: Enc;
  bias?: Enc;
  gy: Enc;
  y: Enc;
  gx: Enc;
  gw?: Enc;
  gb?: Enc;
}
const fixtures = JSON.parse(readFileSync(new URL('./fixtures/norm.json', import.meta.url), 'utf8')) as { cases: NormFixture[] };

/** 1 + max|x| / (smallest row std): how much f32 rounding of x is amplified by the normalization. */
function conditionOf(data: number[], rows: number): number {
  const L = data.length / rows;
  let worst = 1;
  for (let r = 0; r < rows; r++) {
    const row = data.slice(r * L, (r + 1) * L);
    const mu = row.reduce((a, b) => a + b, 0) / L;
    const sd = Math.sqrt(row.reduce((a, b) => a + (b - mu) ** 2, 0) / L) + 1e-30;
    worst = Math.max(worst, 1 + Math.max(...row.map(Math.abs)) / sd);
  }
  return worst;
}

function rowsOf(c: NormFixture): number {
  if (c.op === 'layer_norm') return c.x.shape.slice(0, c.x.shape.length - c.normalized_shape!.length).reduce((a, b) => a * b, 1);
  return c.x.shape[0]! * c.num_groups!;
}

function runFixture(c: NormFixture, b: E.Backend): { y: E.Tensor; grads: E.Tensor[] } {
  return E.tidy(() => {
    const x = make(c.x, b).requireGrad();
    const w = c.weight ? make(c.weight, b).requireGrad() : null;
    const bias = c.bias ? make(c.bias, b).requireGrad() : null;
    const y = c.op === 'layer_norm' ? E.layerNorm(x, c.normalized_shape!, { weight: w, bias, eps: c.eps }) : E.groupNorm(x, c.num_groups!, { weight: w, bias, eps: c.eps });
    const grads = E.gradients(E.sum(E.mul(y, make(c.gy, b))), [x, ...(w ? [w] : []), ...(bias ? [bias] : [])]);
    return { y: E.detach(y), grads };
  });
}

async function checkFixture(c: NormFixture, b: E.Backend, tol: { atol: number; rtol: number }, gtol: { atol: number; rtol: number }): Promise<void> {
  const what = `${c.op} x${JSON.stringify(c.x.shape)}`;
  const { y, grads } = runFixture(c, b);
  expectClose(await y.toArray(), c.y.data, tol, `${what} y`);
  const want = [c.gx, ...(c.gw ? [c.gw] : []), ...(c.gb ? [c.gb] : [])];
  for (let k = 0; k < want.length; k++) expectClose(await grads[k]!.toArray(), want[k]!.data, gtol, `${what} grad #${k}`);
  for (const t of [y, ...grads]) t.dispose();
}

describe('norms: PyTorch fixtures', () => {
  it('has layer_norm and group_norm cases', () => {
    expect(fixtures.cases.filter((c) => c.op === 'layer_norm').length).toBeGreaterThanOrEqual(5);
    expect(fixtures.cases.filter((c) => c.op === 'group_norm').length).toBeGreaterThanOrEqual(5);
  });
  it('float64 reference matches PyTorch (outputs and gradients of x, weight, bias)', async () => {
    for (const c of fixtures.cases) await checkFixture(c, ref, { atol: 1e-10, rtol: 1e-10 }, { atol: 1e-9, rtol: 1e-9 });
  });
  it.runIf(gpu)('GPU matches PyTorch', async () => {
    for (const c of fixtures.cases) {
      const cond = conditionOf(c.x.data, rowsOf(c));
      await checkFixture(c, gpu!, { atol: 3e-5 * cond, rtol: 3e-5 }, { atol: 1.2e-4 * cond, rtol: 1.2e-4 });
    }
  });
});

type LNCase = { x: InputSpec; k: number; w: InputSpec | null; b: InputSpec | null; permuted: boolean };

function lnCaseArb(maxDim = 7, longDims = false): fc.Arbitrary<LNCase> {
  const dim = longDims ? fc.oneof(fc.integer({ min: 1, max: 5 }), fc.integer({ min: 50, max: 2000 })) : fc.integer({ min: 1, max: maxDim });
  return fc
    .array(dim, { minLength: 1, maxLength: 4 })
    .filter((s) => s.reduce((a, b) => a * b, 1) <= 60_000)
    .chain((shape) =>
      fc.integer({ min: 1, max: shape.length }).chain((k) => {
        const ns = shape.slice(shape.length - k);
        const m = ns.reduce((a, b) => a * b, 1);
        return fc.record({
          x: valuesArb(shape.reduce((a, b) => a * b, 1), -3, 3).map((data) => ({ shape, data })),
          k: fc.constant(k),
          w: fc.option(valuesArb(m, -2, 2).map((data) => ({ shape: ns, data }))),
          b: fc.option(valuesArb(m, -2, 2).map((data) => ({ shape: ns, data }))),
          permuted: fc.boolean(),
        });
      }),
    );
}

/** x given in transposed storage and permuted back: a non-contiguous view of the same values. */
function xOf(spec: InputSpec, permuted: boolean, b: E.Backend): E.Tensor {
  if (!permuted || spec.shape.length < 2) return make(spec, b);
  const [r, ...rest] = spec.shape;
  const cols = rest.reduce((a, d) => a * d, 1);
  const t = new Array<number>(spec.data.length);
  for (let i = 0; i < r!; i++) for (let j = 0; j < cols; j++) t[j * r! + i] = spec.data[i * cols + j]!;
  return E.reshape(E.transpose(E.tensor(t, [cols, r!], { backend: b }), 0, 1), spec.shape);
}

function lnComposite(x: E.Tensor, k: number, w: E.Tensor | null, b: E.Tensor | null, eps: number): E.Tensor {
  const axes = Array.from({ length: k }, (_, i) => x.rank - k + i);
  const mu = E.mean(x, axes, true);
  const v = E.variance(x, axes, { keepdim: true, correction: 0 });
  let y = E.mul(E.sub(x, mu), E.rsqrt(E.add(v, eps)));
  if (w) y = E.mul(y, w);
  if (b) y = E.add(y, b);
  return y;
}

type GNCase = { x: InputSpec; G: number; w: InputSpec | null; b: InputSpec | null };

function gnCaseArb(): fc.Arbitrary<GNCase> {
  return fc
    .tuple(fc.integer({ min: 1, max: 3 }), fc.integer({ min: 1, max: 4 }), fc.integer({ min: 1, max: 3 }), fc.array(fc.integer({ min: 1, max: 9 }), { maxLength: 2 }))
    .chain(([N, G, cpg, spatial]) => {
      const C = G * cpg;
      const shape = [N, C, ...spatial];
      return fc.record({
        x: valuesArb(shape.reduce((a, b) => a * b, 1), -3, 3).map((data) => ({ shape, data })),
        G: fc.constant(G),
        w: fc.option(valuesArb(C, -2, 2).map((data) => ({ shape: [C], data }))),
        b: fc.option(valuesArb(C, -2, 2).map((data) => ({ shape: [C], data }))),
      });
    });
}

function gnComposite(x: E.Tensor, G: number, w: E.Tensor | null, b: E.Tensor | null, eps: number): E.Tensor {
  const [N, C] = [x.shape[0]!, x.shape[1]!];
  const xg = E.reshape(x, [N, G, -1]);
  const y0 = E.reshape(lnComposite(xg, 1, null, null, eps), x.shape);
  const view = [C, ...x.shape.slice(2).map(() => 1)];
  let y = y0;
  if (w) y = E.mul(y, E.reshape(w, view));
  if (b) y = E.add(y, E.reshape(b, view));
  return y;
}

function rmsComposite(x: E.Tensor, w: E.Tensor | null, eps: number): E.Tensor {
  const k = w ? w.rank : 1;
  const axes = Array.from({ length: k }, (_, i) => x.rank - k + i);
  const y = E.mul(x, E.rsqrt(E.add(E.mean(E.square(x), axes, true), eps)));
  return w ? E.mul(y, w) : y;
}

async function compare(f: (b: E.Backend) => E.Tensor, g: (b: E.Backend) => E.Tensor, b: E.Backend, tol: { atol: number; rtol: number }, what: string): Promise<void> {
  const a = E.tidy(() => f(b));
  const e = E.tidy(() => g(ref));
  expect(a.shape).toEqual(e.shape);
  expectClose(await a.toArray(), await e.toArray(), tol, what);
  a.dispose();
  e.dispose();
}

const lnRun = (c: LNCase, b: E.Backend, eps: number) =>
  E.layerNorm(xOf(c.x, c.permuted, b), c.x.shape.slice(c.x.shape.length - c.k), { weight: c.w && make(c.w, b), bias: c.b && make(c.b, b), eps });

describe('norms: fused forward vs the composite (mean/var ops)', () => {
  const t64 = { atol: 1e-11, rtol: 1e-11 };
  it('layerNorm (float64)', async () => {
    await fc.assert(
      fc.asyncProperty(lnCaseArb(), async (c) => {
        await compare((b) => lnRun(c, b, 1e-5), (b) => lnComposite(xOf(c.x, c.permuted, b), c.k, c.w && make(c.w, b), c.b && make(c.b, b), 1e-5), ref, t64, 'layerNorm');
      }),
      { numRuns: 20 },
    );
  });
  it('groupNorm (float64)', async () => {
    await fc.assert(
      fc.asyncProperty(gnCaseArb(), async (c) => {
        await compare(
          (b) => E.groupNorm(make(c.x, b), c.G, { weight: c.w && make(c.w, b), bias: c.b && make(c.b, b), eps: 1e-4 }),
          (b) => gnComposite(make(c.x, b), c.G, c.w && make(c.w, b), c.b && make(c.b, b), 1e-4),
          ref,
          t64,
          'groupNorm',
        );
      }),
      { numRuns: 20 },
    );
  });
  it('rmsNorm (float64)', async () => {
    await fc.assert(
      fc.asyncProperty(lnCaseArb(), async (c) => {
        await compare((b) => E.rmsNorm(xOf(c.x, c.permuted, b), { weight: c.w && make(c.w, b), eps: 1e-6 }), (b) => rmsComposite(xOf(c.x, c.permuted, b), c.w && make(c.w, b), 1e-6), ref, t64, 'rmsNorm');
      }),
      { numRuns: 20 },
    );
  });
});

describe.runIf(gpu)('norms: GPU vs float64 reference', () => {
  const tolFor = (spec: InputSpec, rows: number) => {
    const cond = conditionOf(spec.data, rows);
    return { atol: 3e-5 * cond, rtol: 3e-5 };
  };
  for (const [label, long] of [
    ['short rows', false],
    ['long rows', true],
  ] as const) {
    it(`layerNorm (${label})`, async () => {
      await fc.assert(
        fc.asyncProperty(lnCaseArb(7, long), async (c) => {
          const rows = c.x.shape.slice(0, c.x.shape.length - c.k).reduce((a, d) => a * d, 1);
          await compare((b) => lnRun(c, b, 1e-5), (b) => lnRun(c, b, 1e-5), gpu!, tolFor(c.x, rows), 'layerNorm');
        }),
        { numRuns: 12 },
      );
    });
    it(`rmsNorm (${label})`, async () => {
      await fc.assert(
        fc.asyncProperty(lnCaseArb(7, long), async (c) => {
          const run = (b: E.Backend) => E.rmsNorm(xOf(c.x, c.permuted, b), { weight: c.w && make(c.w, b) });
          await compare(run, run, gpu!, { atol: 3e-5, rtol: 3e-5 }, 'rmsNorm');
        }),
        { numRuns: 12 },
      );
    });
  }
  it('groupNorm', async () => {
    await fc.assert(
      fc.asyncProperty(gnCaseArb(), async (c) => {
        const run = (b: E.Backend) => E.groupNorm(make(c.x, b), c.G, { weight: c.w && make(c.w, b), bias: c.b && make(c.b, b) });
        await compare(run, run, gpu!, tolFor(c.x, c.x.shape[0]! * c.G), 'groupNorm');
      }),
      { numRuns: 16 },
    );
  });
  it('groupNorm with large groups (one workgroup per row) and a sliced input', async () => {
    const shape = [2, 8, 40, 50];
    const data = Array.from({ length: 2 * 8 * 2000 }, (_, i) => Math.sin(i * 0.013) * 2 + (i % 7) * 0.1);
    const run = (b: E.Backend) => E.groupNorm(E.slice(make({ shape, data }, b), [null, null, [1, 40, 2]]), 2, { weight: make({ shape: [8], data: [1, 2, 3, 4, -1, -2, 0.5, 0] }, b), bias: null });
    await compare(run, run, gpu!, tolFor({ shape, data }, 4), 'groupNorm sliced');
  });
  it('gradients on the GPU match float64 (layerNorm with affine)', async () => {
    const shape = [5, 37];
    const xs = { shape, data: Array.from({ length: 185 }, (_, i) => Math.cos(i * 0.9) * 2) };
    const ws = { shape: [37], data: Array.from({ length: 37 }, (_, i) => 1 + 0.1 * Math.sin(i)) };
    const grads = (b: E.Backend) =>
      E.tidy(() => {
        const x = make(xs, b).requireGrad();
        const w = make(ws, b).requireGrad();
        const bias = make(ws, b).requireGrad();
        const gy = make({ shape, data: xs.data.map((v) => Math.sin(v * 3)) }, b);
        return E.gradients(E.sum(E.mul(E.layerNorm(x, 37, { weight: w, bias }), gy)), [x, w, bias]);
      });
    const a = grads(gpu!);
    const e = grads(ref);
    for (let k = 0; k < 3; k++) expectClose(await a[k]!.toArray(), await e[k]!.toArray(), { atol: 2e-4, rtol: 1e-4 }, `grad #${k}`);
  });
});

/**
 * The fused backward (row_norm_backward, used when the backward is not recorded) against the
 * composite rule (the one recorded for gradients of gradients: `createGraph`). On float64 both
 * sum in the same order: 1e-10. On the GPU against float64: the GPU gradient tolerance above,
 * 2e-4 absolute + 1e-4 relative (dw/db sum up to 16384 terms here; their f32 tree sums err by
 * ~log2(n) 2^-24 sum|terms|, under 1e-4 relative of sums of same-signed terms).
 */
describe('norms: fused backward vs the composite rule', () => {
  type Case = { label: string; x: number[]; aff?: number[]; w?: boolean; b?: boolean; view?: 'permuted' | 'sliced'; gView?: boolean; run: (x: E.Tensor, w: E.Tensor | null, b: E.Tensor | null) => E.Tensor };
  const cases: Case[] = [
    { label: 'layerNorm affine, L = 7', x: [3, 7], aff: [7], w: true, b: true, run: (x, w, b) => E.layerNorm(x, 7, { weight: w, bias: b }) },
    { label: 'layerNorm, one row, L = 1029', x: [1, 1029], run: (x) => E.layerNorm(x, 1029) },
    { label: 'layerNorm weight only over [3, 5], permuted x', x: [2, 3, 5], aff: [3, 5], w: true, view: 'permuted', run: (x, w) => E.layerNorm(x, [3, 5], { weight: w }) },
    { label: 'layerNorm bias only, sliced x, strided g', x: [6, 9], aff: [9], b: true, view: 'sliced', gView: true, run: (x, _w, b) => E.layerNorm(x, 9, { bias: b }) },
    { label: 'layerNorm affine, 300 rows of 64', x: [300, 64], aff: [64], w: true, b: true, run: (x, w, b) => E.layerNorm(x, 64, { weight: w, bias: b }) },
    { label: 'groupNorm affine, [2, 6, 5, 3] in 3 groups', x: [2, 6, 5, 3], aff: [6], w: true, b: true, run: (x, w, b) => E.groupNorm(x, 3, { weight: w, bias: b }) },
    { label: 'groupNorm, one sample, L = 2 * 33 * 35', x: [1, 4, 33, 35], run: (x) => E.groupNorm(x, 2) },
    { label: 'groupNorm weight only, sliced x', x: [3, 4, 7], aff: [4], w: true, view: 'sliced', run: (x, w) => E.groupNorm(x, 4, { weight: w }) },
    { label: 'groupNorm bias only, strided g', x: [2, 8, 3], aff: [8], b: true, gView: true, run: (x, _w, b) => E.groupNorm(x, 2, { bias: b }) },
    { label: 'groupNorm affine, [4, 32, 16, 8] in 8 groups', x: [4, 32, 16, 8], aff: [32], w: true, b: true, run: (x, w, b) => E.groupNorm(x, 8, { weight: w, bias: b }) },
    { label: 'groupNorm affine, [3, 4, 20, 15] in 2 groups (hw 300: channel loop on every layout)', x: [3, 4, 20, 15], aff: [4], w: true, b: true, run: (x, w, b) => E.groupNorm(x, 2, { weight: w, bias: b }) },
    { label: 'groupNorm affine, [2, 18, 4, 4] in 1 group (18 channels per group: the affine sums in a third pass)', x: [2, 18, 4, 4], aff: [18], w: true, b: true, run: (x, w, b) => E.groupNorm(x, 1, { weight: w, bias: b }) },
    { label: 'groupNorm affine on [5, 6] in 3 groups (hw 1)', x: [5, 6], aff: [6], w: true, b: true, gView: true, run: (x, w, b) => E.groupNorm(x, 3, { weight: w, bias: b }) },
    { label: 'rmsNorm weight, L = 13', x: [4, 13], aff: [13], w: true, run: (x, w) => E.rmsNorm(x, { weight: w }) },
    { label: 'rmsNorm, one row, L = 1500, permuted x', x: [1500, 1], view: 'permuted', run: (x) => E.rmsNorm(x) },
    { label: 'rmsNorm weight over [2, 3], sliced x, strided g', x: [5, 2, 3], aff: [2, 3], w: true, view: 'sliced', gView: true, run: (x, w) => E.rmsNorm(x, { weight: w }) },
  ];
  const values = (n: number, s: number) => Array.from({ length: n }, (_, i) => Math.sin(i * 0.37 * s + s) * 2 + Math.cos(i * 0.011) * 0.5);
  /** x as a view: transposed storage permuted back, or a slice of a larger buffer (offset, strides). */
  const xView = (c: Case, b: E.Backend): E.Tensor => {
    const data = values(c.x.reduce((a, d) => a * d, 1), 1);
    if (c.view === 'permuted') return xOf({ shape: c.x, data }, true, b);
    if (c.view === 'sliced') {
      const [r, ...rest] = c.x;
      const big = E.tensor([...values(rest.reduce((a, d) => a * d, 1) * (2 * r! + 1), 9)], [2 * r! + 1, ...rest], { backend: b });
      return E.slice(big, [[1, 2 * r! + 1, 2]]);
    }
    return E.tensor(data, c.x, { backend: b });
  };
  /** With `residual`, x is also used directly (loss + sum(x * d)), so x's gradient has a partial sum before the norm's rule runs. */
  const grads = (c: Case, b: E.Backend, createGraph: boolean, residual = false) =>
    E.tidy(() => {
      const x = xView(c, b).requireGrad();
      const m = c.aff ? c.aff.reduce((a, d) => a * d, 1) : 0;
      const w = c.w ? E.tensor(values(m, 5).map((v) => 1 + 0.2 * v), c.aff!, { backend: b }).requireGrad() : null;
      const bias = c.b ? E.tensor(values(m, 7), c.aff!, { backend: b }).requireGrad() : null;
      const y = c.run(x, w, bias);
      const n = y.size;
      // A strided output gradient: the loss reads y through a transpose.
      const loss = c.gView
        ? E.sum(E.mul(E.transpose(E.reshape(y, [y.shape[0]!, -1]), 0, 1), E.tensor(values(n, 3), [n / y.shape[0]!, y.shape[0]!], { backend: b })))
        : E.sum(E.mul(y, E.tensor(values(n, 3), [...y.shape], { backend: b })));
      const total = residual ? E.add(loss, E.sum(E.mul(x, E.tensor(values(x.size, 11), [...x.shape], { backend: b })))) : loss;
      return E.gradients(total, [x, ...(w ? [w] : []), ...(bias ? [bias] : [])], { createGraph }).map((g) => E.detach(g));
    });
  const check = async (c: Case, b: E.Backend, tol: { atol: number; rtol: number }, residual = false) => {
    const a = grads(c, b, false, residual);
    const e = grads(c, ref, true, residual);
    expect(a.length).toBe(e.length);
    for (let k = 0; k < a.length; k++) expectClose(await a[k]!.toArray(), await e[k]!.toArray(), tol, `${c.label} grad #${k}`);
    for (const t of [...a, ...e]) t.dispose();
  };
  it('float64: same sums in the same order', async () => {
    for (const c of cases) await check(c, ref, { atol: 1e-10, rtol: 1e-10 });
  });
  it.runIf(gpu)('GPU vs the float64 composite', async () => {
    for (const c of cases) await check(c, gpu!, { atol: 2e-4, rtol: 1e-4 });
  });
  it.runIf(gpu)('GPU vs the float64 composite with every workgroup layout (one SIMD group, small, one row per workgroup or several), in two kernels and in one', async () => {
    // 8: one row per workgroup, channel loop where hw >= 8; 32: likewise; 256: the GPU layout
    // (tpo up to 256 lanes per row, several rows per workgroup for short rows). fusedBackward:
    // dx, dw and db in one dispatch (a workgroup per group of rows) or dw/db in a second kernel.
    for (const workgroup of [8, 32, 256]) {
      for (const fusedBackward of [false, true]) {
        const restore = gpu!.tune({ norm: { workgroup, fusedBackward } });
        try {
          // Without affine parameters there is nothing to fold: the one-kernel form is never picked.
          for (const c of cases.filter((c) => !fusedBackward || c.w || c.b)) await check({ ...c, label: `${c.label} (workgroup ${workgroup}, fusedBackward ${fusedBackward})` }, gpu!, { atol: 2e-4, rtol: 1e-4 });
        } finally {
          restore();
        }
      }
    }
    const restore = gpu!.tune({ norm: { workgroup: 12 } });
    try {
      expect(() => E.groupNorm(E.ones([1, 2, 3], { backend: gpu! }), 1)).toThrow(/tuning.norm.workgroup must be a power of two from 8 to 256, got 12/);
    } finally {
      restore();
    }
  });
  // x also used directly: its gradient's partial sum is added into dx by the norm's backward kernel
  // (GradNode.accumulates) instead of a separate add; the composite rule (createGraph) adds it.
  it('with a residual use of x: the partial gradient added in the backward (float64, and on the GPU in one and two kernels)', async () => {
    for (const c of cases) await check({ ...c, label: `${c.label} (residual)` }, ref, { atol: 1e-10, rtol: 1e-10 }, true);
    if (!gpu) return;
    for (const fusedBackward of [false, true]) {
      const restore = gpu.tune({ norm: { fusedBackward } });
      try {
        for (const c of cases.filter((c) => !fusedBackward || c.w || c.b)) await check({ ...c, label: `${c.label} (residual, fusedBackward ${fusedBackward})` }, gpu, { atol: 2e-4, rtol: 1e-4 }, true);
      } finally {
        restore();
      }
    }
    // The add is in the kernel: no elementwise a + b dispatch, an '|acc' variant instead.
    const keys: string[] = [];
    const run = gpu.run.bind(gpu);
    gpu.run = (kernel, variant, call) => (keys.push(kernel.layout(variant).key), run(kernel, variant, call));
    try {
      for (const t of grads(cases[9]!, gpu, false, true)) t.dispose();
    } finally {
      gpu.run = run;
    }
    expect(keys.some((k) => k.startsWith('norm_backward') && k.endsWith('|acc'))).toBe(true);
    expect(keys.filter((k) => k.includes('|a + b|'))).toHaveLength(1); // the loss's two terms, in the forward
  });
  it.runIf(gpu)('the fused backward runs (fewer dispatches than the composite rule)', () => {
    for (const c of [cases[0]!, cases[5]!]) {
      const count = (createGraph: boolean) => {
        const before = gpu!.counters.dispatches;
        for (const t of grads(c, gpu!, createGraph)) t.dispose();
        return gpu!.counters.dispatches - before;
      };
      expect(count(false), c.label).toBeLessThan(count(true) - 8);
    }
  });
  it.runIf(gpu)('the affine sums kept per channel in the first pass equal a third pass bit for bit (one-dispatch backward, channel loop)', async () => {
    const run = (channelSums: boolean) => {
      const restore = gpu!.tune({ norm: { workgroup: 8, fusedBackward: true, channelSums } });
      const keys: string[] = [];
      const original = gpu!.run.bind(gpu);
      gpu!.run = (kernel, variant, call) => (keys.push(kernel.layout(variant).key), original(kernel, variant, call));
      try {
        return { keys, grads: E.tidy(() => {
          const leaf = (shape: number[], s: number) => E.tensor(values(shape.reduce((a, d) => a * d, 1), s), shape, { backend: gpu! }).requireGrad();
          const [x, w, b] = [leaf([3, 12, 6, 5], 1), leaf([12], 2), leaf([12], 3)];
          const y = E.groupNorm(x, 4, { weight: w, bias: b, act: 'silu' });
          const loss = E.sum(E.mul(y, E.tensor(values(y.size, 5), [...y.shape], { backend: gpu! })));
          return E.gradients(loss, [x, w, b]).map((g) => E.detach(g));
        }) };
      } finally {
        gpu!.run = original;
        restore();
      }
    };
    const on = run(true);
    const off = run(false);
    expect(on.keys.filter((k) => k.startsWith('norm_backward_fused') && k.includes('|cs4'))).toHaveLength(1);
    expect(off.keys.filter((k) => k.includes('|cs'))).toHaveLength(0);
    for (let k = 0; k < 3; k++) expect(Array.from((await on.grads[k]!.toArray()) as Float32Array), `grad #${k}`).toEqual(Array.from((await off.grads[k]!.toArray()) as Float32Array));
    for (const t of [...on.grads, ...off.grads]) t.dispose();
  });
  it.runIf(gpu)('the affine gradients fold into one backward dispatch where the groups give the workgroups (the tokenizer at batch 8), not for a large layer norm', () => {
    const backwardDispatches = (x: number[], run: (x: E.Tensor, w: E.Tensor, b: E.Tensor) => E.Tensor, fusedBackward: boolean | null) => {
      const restore = gpu!.tune({ norm: { fusedBackward } });
      try {
        return E.tidy(() => {
          const leaf = (shape: number[]) => E.ones(shape, { backend: gpu! }).requireGrad();
          const [xt, w, b] = [leaf(x), leaf([x[1]!]), leaf([x[1]!])];
          const loss = E.sum(run(xt, w, b));
          const before = gpu!.counters.dispatches;
          E.gradients(loss, [xt, w, b]);
          return gpu!.counters.dispatches - before;
        });
      } finally {
        restore();
      }
    };
    const gn = (x: E.Tensor, w: E.Tensor, b: E.Tensor) => E.groupNorm(x, 32, { weight: w, bias: b, act: 'silu' });
    const tok = [8, 64, 32, 32];
    expect(backwardDispatches(tok, gn, true)).toBe(backwardDispatches(tok, gn, false) - 1);
    expect(backwardDispatches(tok, gn, null)).toBe(backwardDispatches(tok, gn, true));
    // Layer norm has one set of rows: one workgroup would walk all 512 rows of 384.
    const ln = (x: E.Tensor, w: E.Tensor, b: E.Tensor) => E.layerNorm(x, 384, { weight: w, bias: b });
    const lnX = [512, 384];
    expect(backwardDispatches(lnX, ln, null)).toBe(backwardDispatches(lnX, ln, false));
    expect(backwardDispatches(lnX, ln, true)).toBe(backwardDispatches(lnX, ln, false) - 1);
  });
});

/**
 * `act: 'silu'`: the fused norm + SiLU (one forward kernel; silu' applied inside the fused backward
 * kernels, its input recomputed from the saved statistics) against the composition silu(norm(x)).
 * Float64: the same arithmetic in the same order (n is recomputed exactly as the forward computed
 * it): 1e-10. GPU against the float64 composition: the norm tolerances above carry over, since
 * |silu'| <= 1.1 scales the forward error of n by at most 1.1 and |silu''| <= 0.5 adds at most
 * 0.5 * |g| * err(n) ~ 1.5e-5 * cond to the scaled gradient, inside the margins: forward
 * 3e-5 * cond + 3e-5 relative, gradients 2e-4 + 1e-4 relative. Gradients of gradients
 * (createGraph: silu's rule then the norm's composite rule) against the composition on the same
 * backend: 1e-10 on float64, the gradient tolerance on the GPU.
 */
describe('norms: fused SiLU (act) vs silu(norm(x))', () => {
  type Case = { label: string; x: number[]; rows: number; aff?: number[]; w?: boolean; b?: boolean; view?: 'permuted'; run: (x: E.Tensor, w: E.Tensor | null, b: E.Tensor | null, act?: 'silu') => E.Tensor };
  const cases: Case[] = [
    { label: 'groupNorm affine, [2, 6, 5, 3] in 3 groups', rows: 6, x: [2, 6, 5, 3], aff: [6], w: true, b: true, run: (x, w, b, act) => E.groupNorm(x, 3, { weight: w, bias: b, act }) },
    { label: 'groupNorm affine, [4, 32, 16, 8] in 8 groups', rows: 32, x: [4, 32, 16, 8], aff: [32], w: true, b: true, run: (x, w, b, act) => E.groupNorm(x, 8, { weight: w, bias: b, act }) },
    { label: 'groupNorm, one sample, L = 2 * 33 * 35', rows: 2, x: [1, 4, 33, 35], run: (x, _w, _b, act) => E.groupNorm(x, 2, { act }) },
    { label: 'groupNorm affine, [2, 4, 16, 17] in 2 groups (hw 272)', rows: 4, x: [2, 4, 16, 17], aff: [4], w: true, b: true, run: (x, w, b, act) => E.groupNorm(x, 2, { weight: w, bias: b, act }) },
    { label: 'groupNorm weight only', rows: 12, x: [3, 4, 7], aff: [4], w: true, run: (x, w, _b, act) => E.groupNorm(x, 4, { weight: w, act }) },
    { label: 'groupNorm bias only', rows: 4, x: [2, 8, 3], aff: [8], b: true, run: (x, _w, b, act) => E.groupNorm(x, 2, { bias: b, act }) },
    { label: 'layerNorm affine, L = 7', rows: 3, x: [3, 7], aff: [7], w: true, b: true, run: (x, w, b, act) => E.layerNorm(x, 7, { weight: w, bias: b, act }) },
    { label: 'layerNorm affine over [3, 5], permuted x', rows: 2, x: [2, 3, 5], aff: [3, 5], w: true, b: true, view: 'permuted', run: (x, w, b, act) => E.layerNorm(x, [3, 5], { weight: w, bias: b, act }) },
    { label: 'layerNorm, one row, L = 1029', rows: 1, x: [1, 1029], run: (x, _w, _b, act) => E.layerNorm(x, 1029, { act }) },
    { label: 'rmsNorm weight, L = 13', rows: 4, x: [4, 13], aff: [13], w: true, run: (x, w, _b, act) => E.rmsNorm(x, { weight: w, act }) },
  ];
  const values = (n: number, s: number) => Array.from({ length: n }, (_, i) => Math.sin(i * 0.37 * s + s) * 2 + Math.cos(i * 0.011) * 0.5);
  const leaves = (c: Case, b: E.Backend) => {
    const data = values(c.x.reduce((a, d) => a * d, 1), 1);
    const x = (c.view === 'permuted' ? xOf({ shape: c.x, data }, true, b) : E.tensor(data, c.x, { backend: b })).requireGrad();
    const m = c.aff ? c.aff.reduce((a, d) => a * d, 1) : 0;
    const w = c.w ? E.tensor(values(m, 5).map((v) => 1 + 0.2 * v), c.aff!, { backend: b }).requireGrad() : null;
    const bias = c.b ? E.tensor(values(m, 7), c.aff!, { backend: b }).requireGrad() : null;
    return { x, w, bias, all: [x, ...(w ? [w] : []), ...(bias ? [bias] : [])] };
  };
  const apply = (c: Case, fused: boolean, x: E.Tensor, w: E.Tensor | null, bias: E.Tensor | null) => (fused ? c.run(x, w, bias, 'silu') : E.silu(c.run(x, w, bias)));
  /** [y, grads of sum(u * y)...] */
  const firstOrder = (c: Case, b: E.Backend, fused: boolean, createGraph: boolean) =>
    E.tidy(() => {
      const { x, w, bias, all } = leaves(c, b);
      const y = apply(c, fused, x, w, bias);
      const gs = E.gradients(E.sum(E.mul(y, E.tensor(values(y.size, 3), [...y.shape], { backend: b }))), all, { createGraph });
      return [E.detach(y), ...gs.map((g) => E.detach(g))];
    });
  /** Gradients of <v, d/dx sum(u * y)> with respect to x and the affine parameters. */
  const secondOrder = (c: Case, b: E.Backend, fused: boolean) =>
    E.tidy(() => {
      const { x, w, bias, all } = leaves(c, b);
      const y = apply(c, fused, x, w, bias);
      const [gx] = E.gradients(E.sum(E.mul(y, E.tensor(values(y.size, 3), [...y.shape], { backend: b }))), [x], { createGraph: true });
      return E.gradients(E.sum(E.mul(gx!, E.tensor(values(x.size, 11), [...x.shape], { backend: b }))), all).map((g) => E.detach(g));
    });
  const check = async (what: string, a: E.Tensor[], e: E.Tensor[], tols: { atol: number; rtol: number }[]) => {
    expect(a.length).toBe(e.length);
    for (let k = 0; k < a.length; k++) expectClose(await a[k]!.toArray(), await e[k]!.toArray(), tols[Math.min(k, tols.length - 1)]!, `${what} #${k}`);
    for (const t of [...a, ...e]) t.dispose();
  };
  const t64 = { atol: 1e-10, rtol: 1e-10 };
  const gradTol = { atol: 2e-4, rtol: 1e-4 };
  it('float64: forward and gradients (fused backward and createGraph) equal the composition', async () => {
    for (const c of cases) {
      for (const createGraph of [false, true]) await check(`${c.label} createGraph=${createGraph}`, firstOrder(c, ref, true, createGraph), firstOrder(c, ref, false, createGraph), [t64]);
    }
  });
  it('float64: gradients of gradients equal the composition', async () => {
    for (const c of cases.filter((c) => c.x.reduce((a, d) => a * d, 1) < 2000)) await check(`${c.label} 2nd order`, secondOrder(c, ref, true), secondOrder(c, ref, false), [t64]);
  });
  it('float64: gradients of gradients vs finite differences', async () => {
    const u = (b: E.Backend, shape: number[]) => E.tensor(Array.from({ length: shape.reduce((a, d) => a * d, 1) }, (_, i) => Math.cos(i * 0.77) + 0.3), shape, { backend: b });
    const second = (x: E.Tensor, w: E.Tensor, b: E.Tensor) =>
      E.grad((z: E.Tensor, ww: E.Tensor, bb: E.Tensor) => E.sum(E.mul(E.groupNorm(z, 2, { weight: ww, bias: bb, act: 'silu' }), u(E.cpuF64, [...z.shape]))))(x, w, b)[0]!;
    const gx = { shape: [2, 4, 3], data: Array.from({ length: 24 }, (_, i) => Math.sin(i * 1.7) * 1.5 + 0.2) };
    await expectGradMatchesFD(second, [gx, { shape: [4], data: [0.7, 1.3, -0.4, 1.0] }, { shape: [4], data: [0, 0.1, 0.2, 0.3] }], { atol: 1e-6, rtol: 1e-5 }, { wrt: [0, 1, 2] });
  });
  it.runIf(gpu)('GPU vs the float64 composition: forward and gradients (fused backward and createGraph), every workgroup layout', async () => {
    for (const [workgroup, fusedBackward] of [[null, null], [8, true], [8, false], [256, true], [256, false]] as const) {
      const restore = gpu!.tune({ norm: { workgroup, fusedBackward } });
      try {
        for (const c of cases.filter((c) => fusedBackward !== true || c.w || c.b)) {
          // RMS norm subtracts no mean: no cancellation to amplify (the flat 3e-5 of its test above).
          const cond = c.label.startsWith('rmsNorm') ? 1 : conditionOf(values(c.x.reduce((a, d) => a * d, 1), 1), c.rows);
          const fwd = { atol: 3e-5 * cond, rtol: 3e-5 };
          // createGraph records the composite rule: the backward kernels' layout does not apply.
          for (const createGraph of fusedBackward === null ? [false, true] : [false]) {
            await check(`${c.label} createGraph=${createGraph} workgroup=${workgroup} fusedBackward=${fusedBackward}`, firstOrder(c, gpu!, true, createGraph), firstOrder(c, ref, false, true), [fwd, gradTol]);
          }
        }
      } finally {
        restore();
      }
    }
  });
  it.runIf(gpu)('GPU: gradients of gradients equal the composition on the GPU', async () => {
    for (const c of cases.filter((c) => c.x.reduce((a, d) => a * d, 1) < 2000)) await check(`${c.label} 2nd order`, secondOrder(c, gpu!, true), secondOrder(c, gpu!, false), [gradTol]);
  });
  it.runIf(gpu)('the fused activation saves dispatches (forward and backward)', () => {
    const c = cases[0]!;
    const count = (fused: boolean) => {
      const before = gpu!.counters.dispatches;
      for (const t of firstOrder(c, gpu!, fused, false)) t.dispose();
      return gpu!.counters.dispatches - before;
    };
    // Unfused: silu's kernel forward and its fused derivative (silu_backward) backward.
    expect(count(true)).toBeLessThanOrEqual(count(false) - 2);
  });
});

describe('norms: gradients vs finite differences (float64)', () => {
  const tol = { atol: 1e-6, rtol: 1e-5 };
  const small = { shape: [2, 3, 4], data: Array.from({ length: 24 }, (_, i) => Math.sin(i * 1.7) * 1.5 + 0.2) };
  const w12 = { shape: [3, 4], data: Array.from({ length: 12 }, (_, i) => 0.5 + Math.cos(i)) };
  const b12 = { shape: [3, 4], data: Array.from({ length: 12 }, (_, i) => Math.sin(i * 0.3)) };
  it('layerNorm w.r.t. x, weight, bias (generated)', async () => {
    await fc.assert(
      fc.asyncProperty(lnCaseArb(4), async (c) => {
        const inputs = [c.x, ...(c.w ? [c.w] : []), ...(c.b ? [c.b] : [])];
        await expectGradMatchesFD(
          (x, ...rest) => {
            let k = 0;
            const w = c.w ? rest[k++]! : null;
            const b = c.b ? rest[k++]! : null;
            return E.layerNorm(x, c.x.shape.slice(c.x.shape.length - c.k), { weight: w, bias: b, eps: 1e-3 });
          },
          inputs,
          tol,
        );
      }),
      { numRuns: 10 },
    );
  });
  it('groupNorm w.r.t. x, weight, bias (generated)', async () => {
    await fc.assert(
      fc.asyncProperty(gnCaseArb(), async (c) => {
        const inputs = [c.x, ...(c.w ? [c.w] : []), ...(c.b ? [c.b] : [])];
        await expectGradMatchesFD(
          (x, ...rest) => {
            let k = 0;
            const w = c.w ? rest[k++]! : null;
            const b = c.b ? rest[k++]! : null;
            return E.groupNorm(x, c.G, { weight: w, bias: b, eps: 1e-3 });
          },
          inputs,
          tol,
        );
      }),
      { numRuns: 10 },
    );
  });
  it('rmsNorm w.r.t. x and weight', async () => {
    await expectGradMatchesFD((x, w) => E.rmsNorm(x, { weight: w }), [small, w12], tol);
    await expectGradMatchesFD((x) => E.rmsNorm(x), [small], tol);
  });
  it('gradients of gradients (layerNorm, groupNorm, rmsNorm)', async () => {
    // d/dx and d/dw of <v, d/dx sum(u * norm(x, w))>: the backward rule must itself be differentiable.
    const u = (b: E.Backend, shape: number[]) => E.tensor(Array.from({ length: shape.reduce((a, d) => a * d, 1) }, (_, i) => Math.cos(i * 0.77) + 0.3), shape, { backend: b });
    const second = (norm: (x: E.Tensor, w: E.Tensor, b: E.Tensor) => E.Tensor) => (x: E.Tensor, w: E.Tensor, b: E.Tensor) =>
      E.grad((z: E.Tensor, ww: E.Tensor, bb: E.Tensor) => E.sum(E.mul(norm(z, ww, bb), u(E.cpuF64, [...z.shape]))))(x, w, b)[0]!;
    await expectGradMatchesFD(second((x, w, b) => E.layerNorm(x, [3, 4], { weight: w, bias: b })), [small, w12, b12], tol, { wrt: [0, 1] });
    const gx = { shape: [2, 4, 3], data: small.data };
    const gw = { shape: [4], data: [0.7, 1.3, -0.4, 1.0] };
    await expectGradMatchesFD(second((x, w, b) => E.groupNorm(x, 2, { weight: w, bias: b })), [gx, gw, { shape: [4], data: [0, 0.1, 0.2, 0.3] }], tol, { wrt: [0, 1] });
    await expectGradMatchesFD(second((x, w) => E.rmsNorm(x, { weight: w })), [small, { shape: [4], data: [0.7, 1.3, -0.4, 1.0] }, b12], tol, { wrt: [0, 1] });
  });
});

describe('norms: errors', () => {
  const x = E.zeros([2, 6, 3], { backend: ref });
  it('shape errors name the op and the shapes', () => {
    expect(() => E.layerNorm(x, [6])).toThrow(/layer_norm: normalizedShape \[6\] does not match the trailing dims/);
    expect(() => E.layerNorm(x, [3], { weight: E.zeros([4], { backend: ref }) })).toThrow(/layer_norm: weight shape \[4\] must equal normalizedShape \[3\]/);
    expect(() => E.groupNorm(x, 4)).toThrow(/group_norm: 6 channels .* cannot be split into 4 groups/);
    expect(() => E.groupNorm(x, 3, { weight: E.zeros([3], { backend: ref }) })).toThrow(/group_norm: weight shape \[3\] must be \[6\]/);
    expect(() => E.groupNorm(E.zeros([6], { backend: ref }), 3)).toThrow(/group_norm: expected an input of shape \[N, C, \.\.\.\]/);
    expect(() => E.rmsNorm(x, { weight: E.zeros([6], { backend: ref }) })).toThrow(/rms_norm: weight shape \[6\]/);
  });
  it('an unknown activation is refused with the op name', () => {
    expect(() => E.groupNorm(x, 3, { act: 'relu' as 'silu' })).toThrow(/group_norm: act must be 'silu'/);
  });
  it('dtype errors name the dtype', () => {
    expect(() => E.layerNorm(E.zeros([2, 3], { dtype: 'i32', backend: ref }), 3)).toThrow(/layer_norm: expected f32 tensors, got .*i32/);
  });
});
