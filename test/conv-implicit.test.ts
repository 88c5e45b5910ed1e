/**
 * Implicit-GEMM convolution (groups = 1): conv2d forward, input gradient and weight gradient as
 * the kernels of shaders/conv-implicit.ts (no unfolded column tensor) vs the float64 CPU reference
 * (unfold/fold + matmul), both block-shape families (software adapters / GPUs), geometry baked
 * into the WGSL or read from the params, views as inputs; the path is checked to be taken; the
 * gradient rules of the three ops (each other's gradients) vs finite differences in float64, and
 * second derivatives on the GPU vs float64.
 *
 * Tolerances (GPU vs float64): every output is an f32 sum of at most C*kh*kw <= 144 (forward),
 * Cout*kh*kw <= 320 (input gradient) or N*Hb*Wb <= 363 (weight gradient) products of values in
 * [-3, 3] (output gradient in [-1, 1]); rounding error ~ sqrt(n) * 2^-24 * sum|terms| <= ~1e-4 for
 * sum|terms| <= ~1e3 (the worst case here, rarely reached), while an indexing error changes an
 * output by a whole term (>= ~1e-2 for nonzero data): atol 1e-3 + rtol 1e-4.
 * Implicit vs the unfold path, both on the GPU: the same sums in a different order, same tolerance.
 * Finite differences in float64: the ops are linear in each argument, so central differences are
 * exact up to rounding: the default 1e-6 + 1e-5 relative.
 */
import fc from 'fast-check';
import { afterEach, describe, expect, it } from 'vitest';
import * as E from '../engine/index.js';
import { requireGpu } from './helpers/backends.js';
import { expectClose, expectGradMatchesFD, expectMatchesReference, make, type InputSpec } from './helpers/compare.js';
import { valuesArb } from './helpers/arbitrary.js';

const gpu = await requireGpu();
const TOL = { atol: 1e-3, rtol: 1e-4 };

interface Case {
  N: number;
  C: number;
  Cout: number;
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
  bias: boolean;
  /** x, w and the output gradient given as transposed views. */
  views: boolean;
}

const blocks = (size: number, k: number, s: number, p: number, d: number) => Math.floor((size + 2 * p - d * (k - 1) - 1) / s) + 1;

const caseArb: fc.Arbitrary<Case> = fc
  .record({
    N: fc.integer({ min: 1, max: 3 }),
    C: fc.integer({ min: 1, max: 9 }),
    Cout: fc.integer({ min: 1, max: 20 }),
    H: fc.integer({ min: 1, max: 11 }),
    W: fc.integer({ min: 1, max: 11 }),
    kh: fc.constantFrom(1, 3, 4),
    kw: fc.constantFrom(1, 3, 4),
    sh: fc.integer({ min: 1, max: 2 }),
    sw: fc.integer({ min: 1, max: 2 }),
    ph: fc.integer({ min: 0, max: 1 }),
    pw: fc.integer({ min: 0, max: 1 }),
    dh: fc.integer({ min: 1, max: 2 }),
    dw: fc.integer({ min: 1, max: 2 }),
    bias: fc.boolean(),
    views: fc.boolean(),
  })
  .filter((c) => blocks(c.H, c.kh, c.sh, c.ph, c.dh) >= 1 && blocks(c.W, c.kw, c.sw, c.pw, c.dw) >= 1);

const withData = (c: Case) =>
  fc.tuple(fc.constant(c), valuesArb(c.N * c.C * c.H * c.W), valuesArb(c.Cout * c.C * c.kh * c.kw), valuesArb(c.Cout)).map(([g, x, w, b]) => ({
    c: g,
    // With views, x is stored as [N, C, W, H] and w as [C, Cout, kh, kw] and transposed back.
    x: { shape: g.views ? [g.N, g.C, g.W, g.H] : [g.N, g.C, g.H, g.W], data: x } as InputSpec,
    w: { shape: g.views ? [g.C, g.Cout, g.kh, g.kw] : [g.Cout, g.C, g.kh, g.kw], data: w } as InputSpec,
    b: { shape: [g.Cout], data: b } as InputSpec,
  }));

const convOpts = (c: Case) => ({ stride: [c.sh, c.sw] as [number, number], padding: [c.ph, c.pw] as [number, number], dilation: [c.dh, c.dw] as [number, number] });

/** y, dx, dw (and db) of conv2d for a fixed output gradient (sin pattern, a transposed view with `views`). */
function convAndGrads(c: Case) {
  return (xi: E.Tensor, wi: E.Tensor, bi: E.Tensor): E.Tensor[] => {
    const x = (c.views ? E.transpose(xi, 2, 3) : xi).requireGrad();
    const w = (c.views ? E.transpose(wi, 0, 1) : wi).requireGrad();
    const b = c.bias ? bi.requireGrad() : null;
    const y = E.conv2d(x, w, b, convOpts(c));
    const [N, Co, Ho, Wo] = y.shape as [number, number, number, number];
    const gShape = c.views ? [N, Co, Wo, Ho] : [N, Co, Ho, Wo];
    const gd = Array.from({ length: y.size }, (_, i) => Math.fround(Math.sin(i * 0.37 + 0.1)));
    const g0 = E.tensor(gd, gShape, { backend: y.backend });
    const gy = c.views ? E.transpose(g0, 2, 3) : g0;
    const grads = E.gradients(y, b ? [x, w, b] : [x, w], { gradOutput: gy });
    return [y, ...grads.map((t) => t!)];
  };
}

type ConvTuning = NonNullable<Parameters<E.WebGPUBackend['tune']>[0]['conv']>;
const restores: (() => void)[] = [];
/** Overrides the GPU's conv tuning until the test ends. */
const tune = (conv: ConvTuning) => restores.push(gpu!.tune({ conv }));

afterEach(() => {
  while (restores.length > 0) restores.pop()!();
});

describe.runIf(gpu)('implicit-GEMM conv2d on the GPU vs float64 (values and both gradients)', () => {
  // Every combination of block-shape family and geometry form runs on whatever adapter the tests
  // have (the defaults pick one of each); strided input gradients by the implicit kernel too.
  type Plan = E.ImplicitPlanOption | null;
  const configs: [string, Plan, boolean][] = [
    ['register-blocked, software blocks, baked geometry', 'software', true],
    ['register-blocked, software blocks, geometry in params', 'software', false],
    ['register-blocked, GPU blocks (dw split over images), geometry in params', 'gpu-rows', false],
    ['register-blocked, 64 invocations x 8 rows x 4 columns, dw in 2 splits', { WG: 64, TM: 8, TN: 4, splits: 2 }, false],
    ['register-blocked, 32 invocations x 5 rows x 2 columns, dw in 3 splits', { WG: 32, TM: 5, TN: 2, splits: 3 }, false],
    ['workgroup-memory tiles, GPU blocks (dw split over images), baked geometry', 'gpu', true],
    ['workgroup-memory tiles, GPU blocks, geometry in params', 'gpu', false],
    ['workgroup-memory tiles, 64x64x16 blocks, 4x4 per invocation, dw in 2 splits', { BM: 64, BN: 64, BK: 16, TM: 4, TN: 4, splits: 2 }, false],
    ['workgroup-memory tiles, 16x32x8 blocks, 2x2 per invocation, dw in 3 splits', { BM: 16, BN: 32, BK: 8, TM: 2, TN: 2, splits: 3 }, false],
  ];
  for (const [name, plan, bake] of configs) {
    it(name, async () => {
      tune({ implicitPlan: plan, bakeGeometry: bake, implicitStridedDx: true });
      await fc.assert(
        fc.asyncProperty(caseArb.chain(withData), async ({ c, x, w, b }) => {
          const before = { ...E.convImplicitCounters };
          await expectMatchesReference(convAndGrads(c), [x, w, b], gpu!, TOL, JSON.stringify(c));
          // The implicit kernels ran (one of each per conv).
          expect(E.convImplicitCounters.fwd - before.fwd).toBe(1);
          expect(E.convImplicitCounters.dx - before.dx).toBe(1);
          expect(E.convImplicitCounters.dw - before.dw).toBe(1);
        }),
        // A baked geometry compiles new pipelines per case (~1-3 s each on lavapipe): fewer runs.
        { numRuns: bake ? 4 : 15 },
      );
    }, 600_000);
  }

  // Winograd F(2x2, 3x3) and F(4x4, 3x3): 3x3 kernels, stride 1, dilation 1, padding 0..2, even
  // and odd output sizes (partial edge tiles), C != Cout, views. F(2x2)'s transforms add a few
  // roundings of sums of 4-16 terms (the direct sums' order of error); F(4x4)'s coefficients (1/24
  // .. 8) make it ~10x larger: measured up to 5e-5 absolute at C = 16 with values in [-1, 1],
  // inside the same tolerance (1e-3 + 1e-4 relative) for these sizes.
  const winogradArb: fc.Arbitrary<Case> = fc
    .record({
      N: fc.integer({ min: 1, max: 3 }),
      C: fc.integer({ min: 1, max: 9 }),
      Cout: fc.integer({ min: 1, max: 12 }),
      H: fc.integer({ min: 1, max: 11 }),
      W: fc.integer({ min: 1, max: 11 }),
      ph: fc.integer({ min: 0, max: 2 }),
      pw: fc.integer({ min: 0, max: 2 }),
      bias: fc.boolean(),
      views: fc.boolean(),
    })
    .map((r) => ({ ...r, kh: 3, kw: 3, sh: 1, sw: 1, dh: 1, dw: 1 }))
    .filter((c) => blocks(c.H, 3, 1, c.ph, 1) >= 1 && blocks(c.W, 3, 1, c.pw, 1) >= 1);
  it.each([2, 4] as const)('Winograd F(m x m, 3x3) with m = %i (forced): forward and both gradients', async (m) => {
    tune({ implicit: true, winograd: true, winogradTile: m });
    await fc.assert(
      fc.asyncProperty(winogradArb.chain(withData), async ({ c, x, w, b }) => {
        const before = { ...E.convImplicitCounters };
        await expectMatchesReference(convAndGrads(c), [x, w, b], gpu!, TOL, JSON.stringify(c));
        expect(E.convImplicitCounters.winograd - before.winograd).toBe(3);
      }),
      { numRuns: 30 },
    );
  }, 600_000);

  // A backward that needs dx and dw (and db) runs both gradients' transforms in one dispatch and
  // both outputs in another (convBackward): the same arithmetic as the separate ops, so the same bits.
  it.each([2, 4] as const)('Winograd m = %i: dx, dw, db from one backward equal the separate gradients bit for bit', async (m) => {
    tune({ implicit: true, winograd: true, winogradTile: m });
    await fc.assert(
      fc.asyncProperty(winogradArb.chain(withData), async ({ c, x, w, b }) => {
        const grads = async (wrt: ('x' | 'w')[]) => {
          const keys: string[] = [];
          const run = gpu!.run.bind(gpu!);
          gpu!.run = (kernel, variant, call) => (keys.push(kernel.layout(variant).key), run(kernel, variant, call));
          try {
            const out = E.tidy(() => {
              const xs = c.views ? E.transpose(make(x, gpu!), 2, 3) : make(x, gpu!);
              const ws = c.views ? E.transpose(make(w, gpu!), 0, 1) : make(w, gpu!);
              const xv = wrt.includes('x') ? xs.requireGrad() : xs;
              const wv = wrt.includes('w') ? ws.requireGrad() : ws;
              const bv = c.bias ? make(b, gpu!).requireGrad() : null;
              const y = E.conv2d(xv, wv, bv, convOpts(c));
              const gy = E.tensor(Array.from({ length: y.size }, (_, i) => Math.fround(Math.sin(i * 0.37 + 0.1))), y.shape, { backend: gpu! });
              return E.gradients(y, [...(wrt.includes('x') ? [xv] : []), ...(wrt.includes('w') ? [wv] : []), ...(bv ? [bv] : [])], { gradOutput: gy }).map((t) => t!);
            });
            return { values: await Promise.all(out.map((t) => t.toArray())), keys, dispose: () => out.forEach((t) => t.dispose()) };
          } finally {
            gpu!.run = run;
          }
        };
        const before = E.convImplicitCounters.backward;
        const both = await grads(['x', 'w']);
        expect(E.convImplicitCounters.backward - before).toBe(1);
        const onlyX = await grads(['x']);
        const onlyW = await grads(['w']);
        expect(E.convImplicitCounters.backward - before).toBe(1);
        expect(both.values[0]).toEqual(onlyX.values[0]); // dx
        expect(both.values.slice(1)).toEqual(onlyW.values); // dw (and db)
        // Fewer dispatches: the backward's transforms and outputs are one kernel each.
        const winograd = (k: string[]) => k.filter((s) => s.startsWith('winograd|')).length;
        expect(winograd(both.keys)).toBe(2 + 2); // forward: in + out; backward: in + out
        expect(winograd(onlyX.keys) + winograd(onlyW.keys) - 4).toBe(4); // each alone: forward 2 + its own 2
        for (const r of [both, onlyX, onlyW]) r.dispose();
      }),
      { numRuns: 12 },
    );
  }, 600_000);

  // A residual connection's add in the Winograd output kernel: the same bits as adding after, for
  // the output and every gradient, one dispatch fewer.
  it('Winograd: conv2d with a residual equals conv2d + residual bit for bit, in one dispatch less', async () => {
    tune({ implicit: true, winograd: true });
    await fc.assert(
      fc.asyncProperty(winogradArb.chain(withData), fc.integer({ min: 0, max: 1000 }), async ({ c, x, w, b }, seed) => {
        const run = async (fused: boolean) => {
          const keys: string[] = [];
          const runK = gpu!.run.bind(gpu!);
          gpu!.run = (kernel, variant, call) => (keys.push(kernel.layout(variant).key), runK(kernel, variant, call));
          try {
            const out = E.tidy(() => {
              const xs = (c.views ? E.transpose(make(x, gpu!), 2, 3) : make(x, gpu!)).requireGrad();
              const ws = (c.views ? E.transpose(make(w, gpu!), 0, 1) : make(w, gpu!)).requireGrad();
              const bs = c.bias ? make(b, gpu!).requireGrad() : null;
              const shape = E.conv2d(xs, ws, bs, convOpts(c)).shape;
              const r = E.randn(shape, { backend: gpu!, generator: new E.Generator(seed) }).requireGrad();
              const y = fused ? E.conv2d(xs, ws, bs, { ...convOpts(c), residual: r }) : E.add(E.conv2d(xs, ws, bs, convOpts(c)), r);
              const gy = E.tensor(Array.from({ length: y.size }, (_, i) => Math.fround(Math.cos(i * 0.29))), y.shape, { backend: gpu! });
              keys.length = 0;
              const grads = E.gradients(y, [xs, ws, r, ...(bs ? [bs] : [])], { gradOutput: gy }).map((t) => t!);
              return [y, ...grads];
            });
            const values = await Promise.all(out.map((t) => t.toArray()));
            out.forEach((t) => t.dispose());
            return { values, backwardKeys: keys.length };
          } finally {
            gpu!.run = runK;
          }
        };
        const fused = await run(true);
        const plain = await run(false);
        fused.values.forEach((v, i) => expect(v, `output ${i}`).toEqual(plain.values[i]));
        expect(fused.backwardKeys).toBeLessThanOrEqual(plain.backwardKeys);
      }),
      { numRuns: 10 },
    );
    // The forward: one dispatch fewer (no elementwise add).
    const count = (fused: boolean) => {
      const keys: string[] = [];
      const runK = gpu!.run.bind(gpu!);
      gpu!.run = (kernel, variant, call) => (keys.push(kernel.layout(variant).key), runK(kernel, variant, call));
      try {
        E.tidy(() => {
          const xs = E.ones([2, 3, 6, 6], { backend: gpu! });
          const ws = E.ones([4, 3, 3, 3], { backend: gpu! });
          const r = E.ones([2, 4, 6, 6], { backend: gpu! });
          return fused ? E.conv2d(xs, ws, null, { padding: 1, residual: r }) : E.add(E.conv2d(xs, ws, null, { padding: 1 }), r);
        }).dispose();
      } finally {
        gpu!.run = runK;
      }
      return keys;
    };
    const [f, p] = [count(true), count(false)];
    expect(f.length).toBe(p.length - 1);
    expect(f.some((k) => k.endsWith('|res'))).toBe(true);
  }, 600_000);

  it('Winograd on software adapters by default for large products only; never where it does not apply', async () => {
    tune({ implicit: true });
    const count = async (shape: number[], cout: number, opts: E.Conv2dOptions) => {
      const before = E.convImplicitCounters.winograd;
      E.tidy(() => {
        const x = E.ones(shape, { backend: gpu! }).requireGrad();
        const w = E.ones([cout, shape[1]!, 3, 3], { backend: gpu! }).requireGrad();
        E.sum(E.conv2d(x, w, null, opts)).backward();
        for (const t of [x, w]) t.grad?.dispose();
      });
      await gpu!.sync();
      return E.convImplicitCounters.winograd - before;
    };
    const software = gpu!.softwareAdapter !== null;
    expect(await count([8, 64, 32, 32], 64, { padding: 1 })).toBe(software ? 3 : 0);
    expect(await count([1, 8, 8, 8], 8, { padding: 1 })).toBe(0);
    tune({ winograd: true });
    expect(await count([2, 4, 9, 9], 4, { padding: 1, stride: 2 })).toBe(0);
    expect(await count([2, 4, 9, 9], 4, { padding: 1, dilation: 2 })).toBe(0);
    expect(await count([2, 4, 9, 9], 4, { padding: 3 })).toBe(0);
    expect(await count([2, 4, 9, 9], 4, { padding: 2 })).toBe(3);
  });

  it('implicit kernels vs the unfold + matmul path, both on the GPU (strided input gradient by either route)', async () => {
    await fc.assert(
      fc.asyncProperty(caseArb.chain(withData), fc.boolean(), async ({ c, x, w, b }, stridedDx) => {
        const run = (implicit: boolean) => {
          const restore = gpu!.tune({ conv: { implicit, implicitStridedDx: stridedDx } });
          try {
            return E.tidy(() => convAndGrads(c)(make(x, gpu!), make(w, gpu!), make(b, gpu!)));
          } finally {
            restore();
          }
        };
        const got = run(true);
        const want = run(false);
        for (let i = 0; i < want.length; i++) expectClose(await got[i]!.toArray(), await want[i]!.toArray(), TOL, `${JSON.stringify(c)} output ${i}`);
        for (const t of [...got, ...want]) t.dispose();
      }),
      { numRuns: 20 },
    );
  }, 600_000);

  it('a stride-1 conv2d and its gradients dispatch no unfold/fold kernel and no column-sized buffer', async () => {
    tune({ implicit: true }); // the default only on software adapters
    const gen = new E.Generator(5);
    const x = E.randn([4, 16, 12, 12], { backend: gpu!, generator: gen }).requireGrad();
    const w = E.randn([24, 16, 3, 3], { backend: gpu!, generator: gen }).requireGrad();
    const b = E.randn([24], { backend: gpu!, generator: gen }).requireGrad();
    const keys: string[] = [];
    const sizes: number[] = [];
    const run = gpu!.run.bind(gpu!);
    const alloc = gpu!.alloc.bind(gpu!);
    gpu!.run = (kernel, variant, call) => (keys.push(kernel.layout(variant).key), run(kernel, variant, call));
    gpu!.alloc = ((n: number, dt: E.DType) => (sizes.push(n), alloc(n, dt))) as typeof alloc;
    let grads: E.Tensor[];
    try {
      grads = E.tidy(() => {
        const y = E.conv2d(x, w, b, { padding: 1 });
        return E.gradients(E.sum(E.square(y)), [x, w, b]).map((t) => t!);
      });
    } finally {
      gpu!.run = run;
      gpu!.alloc = alloc;
    }
    expect(keys.some((k) => k.startsWith('conv|unfold') || k.startsWith('conv|fold'))).toBe(false);
    for (const m of ['fwd', 'dx', 'dw']) expect(keys.some((k) => k.startsWith(`conv|implicit|${m}`)), m).toBe(true);
    // The unfolded columns would be N * C*9 * H*W = 4 * 144 * 144 elements; the largest buffer is x-sized.
    expect(Math.max(...sizes)).toBeLessThanOrEqual(4 * 24 * 144);
    // And the values agree with the unfold path.
    tune({ implicit: false });
    const ref = E.tidy(() => E.gradients(E.sum(E.square(E.conv2d(x, w, b, { padding: 1 }))), [x, w, b]).map((t) => t!));
    for (let i = 0; i < 3; i++) expectClose(await grads[i]!.toArray(), await ref[i]!.toArray(), { atol: 1e-2, rtol: 1e-4 }, `grad ${i}`);
    for (const t of [x, w, b, ...grads, ...ref]) t.dispose();
  }, 120_000);

  it('the strided input gradient through fold(w^T @ gy) runs in batch chunks under a column limit, same values', async () => {
    tune({ implicit: true, implicitStridedDx: false });
    const gen = new E.Generator(6);
    const x = E.randn([5, 3, 9, 8], { backend: gpu!, generator: gen });
    const w = E.randn([4, 3, 3, 3], { backend: gpu!, generator: gen });
    const folds: number[] = [];
    const run = gpu!.run.bind(gpu!);
    gpu!.run = (kernel, variant, call) => (kernel.layout(variant).key.startsWith('conv|fold') && folds.push(1), run(kernel, variant, call));
    const dx = async () => {
      const xs = x.detach().requireGrad();
      const before = E.convImplicitCounters.dx;
      folds.length = 0;
      E.tidy(() => E.conv2d(xs, w, null, { stride: 2, padding: 1 }).sin().sum().backward());
      expect(E.convImplicitCounters.dx).toBe(before); // the fold route, not the dx kernel
      const r = await xs.grad!.toArray();
      xs.dispose();
      return { r, folds: folds.length };
    };
    try {
      const whole = await dx();
      expect(whole.folds).toBe(1);
      tune({ maxColumnElements: 2 * 27 * 20 }); // two images' columns (K 27, 5x4 outputs) per chunk
      const chunks = await dx();
      expect(chunks.folds).toBe(3); // 5 images in chunks of 2
      expectClose(chunks.r, whole.r, { atol: 1e-5, rtol: 1e-5 }, 'dx in chunks');
    } finally {
      gpu!.run = run;
    }
    x.dispose();
    w.dispose();
  });

  it('second derivatives on the GPU vs float64: d/dx, d/dw of |dL/dw|^2 and |dL/dx|^2', async () => {
    const seq = (n: number, f: number) => Array.from({ length: n }, (_, i) => Math.fround(Math.sin(f * i + 0.5)));
    for (const o of [{ padding: 1 }, { stride: 2, padding: 1, dilation: [1, 2] as [number, number] }]) {
      const fn = (xi: E.Tensor, wi: E.Tensor) => {
        const x = xi.requireGrad();
        const w = wi.requireGrad();
        const [gw] = E.grad((ww) => E.sum(E.square(E.conv2d(x, ww, null, o))))(w);
        const [gx] = E.grad((xx) => E.sum(E.sin(E.conv2d(xx, w, null, o))))(x);
        const z = E.add(E.sum(E.square(gw!)), E.sum(E.square(gx!)));
        return E.gradients(z, [x, w]).map((t) => t!);
      };
      await expectMatchesReference(fn, [{ shape: [2, 5, 7, 6], data: seq(420, 0.61) }, { shape: [9, 5, 3, 3], data: seq(405, 0.43) }], gpu!, { atol: 1e-2, rtol: 1e-3 }, JSON.stringify(o));
    }
  }, 120_000);
});

describe('implicit conv ops: gradient rules vs finite differences (float64)', () => {
  const seq = (n: number, f: number) => Array.from({ length: n }, (_, i) => Math.sin(f * i + 0.5));
  // x [2, 3, 5, 6], w [4, 3, 2, 3], stride [2, 1], padding [1, 0], dilation [1, 2]: y [2, 4, 3, 2].
  const g = { kh: 2, kw: 3, sh: 2, sw: 1, ph: 1, pw: 0, dh: 1, dw: 2, H: 5, W: 6, Hb: 3, Wb: 2 };
  it('convInputGrad(gy, w) in both arguments', async () => {
    await expectGradMatchesFD((gy, w) => E.convInputGrad(gy, w, g), [
      { shape: [2, 4, 3, 2], data: seq(48, 0.37) },
      { shape: [4, 3, 2, 3], data: seq(72, 0.91) },
    ]);
  });
  it('convWeightGrad(gy, x) in both arguments', async () => {
    await expectGradMatchesFD((gy, x) => E.convWeightGrad(gy, x, g), [
      { shape: [2, 4, 3, 2], data: seq(48, 0.53) },
      { shape: [2, 3, 5, 6], data: seq(180, 0.29) },
    ]);
  });
  it('operands that do not match the geometry are rejected, naming the op and the shapes', () => {
    const z = (s: number[]) => E.zeros(s, { backend: E.cpuF64 });
    expect(() => E.convInputGrad(z([2, 4, 3, 3]), z([4, 3, 2, 3]), g)).toThrow(/conv2dInputGrad: gy should have shape \[2, 4, 3, 2\].*got \[2, 4, 3, 3\]/);
    expect(() => E.convWeightGrad(z([2, 4, 3, 2]), z([2, 3, 5, 5]), g)).toThrow(/conv2dWeightGrad: x should have shape \[2, 3, 5, 6\]/);
    expect(() => E.convForward(z([2, 3, 5, 6]), z([4, 3, 2, 3]), z([3]), g)).toThrow(/conv2d: b should have shape \[4\]/);
  });
  it('convForward with bias, and conv2d gradients of gradients (d/dx of |dL/dx|^2)', async () => {
    await expectGradMatchesFD((x, w, b) => E.convForward(x, w, b, g), [
      { shape: [2, 3, 5, 6], data: seq(180, 0.71) },
      { shape: [4, 3, 2, 3], data: seq(72, 0.13) },
      { shape: [4], data: [0.1, -0.2, 0.3, 0.05] },
    ]);
    await expectGradMatchesFD(
      (x, w) => {
        const [gx] = E.grad((xx) => E.sum(E.sin(E.conv2d(xx, w, null, { stride: 2, padding: 1 }))))(x);
        return E.square(gx!);
      },
      [
        { shape: [1, 2, 5, 4], data: seq(40, 0.61) },
        { shape: [3, 2, 3, 3], data: seq(54, 0.43) },
      ],
      { atol: 1e-5, rtol: 1e-5 },
    );
  });
});

describe('implicit conv default per backend', () => {
  it('on by default only where measured faster (software adapters); never on the CPU backend', async () => {
    const x = E.zeros([1, 1, 4, 4], { backend: E.cpuF64 });
    expect(E.implicitConvByDefault(x)).toBe(false);
    x.dispose();
    if (gpu) {
      const y = E.zeros([1, 1, 4, 4], { backend: gpu });
      expect(E.implicitConvByDefault(y)).toBe(E.matmulDeviceCaps(gpu).software === true);
      y.dispose();
    }
  });
});
