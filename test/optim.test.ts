/**
 * Optimizers (SGD, Adam, AdamW), gradient clipping, LR schedules and weight EMA: against PyTorch
 * fixtures (test/fixtures/make_optim.py), fused GPU kernels vs the float64 CPU reference, the
 * optimizer API (groups, skipping, state dicts) and memory behaviour over many steps.
 *
 * Tolerances.
 * - CPU float64 vs float64 PyTorch: same formulas in the same order up to rounding; 5 steps of
 *   O(10) roundings of 2^-53 relative to values of magnitude <= ~50: atol 1e-12 * (1 + max|p|),
 *   rtol 1e-12 (measured: <= 2e-16 * (1 + max|p|)).
 *   Measured GPU error on the fixtures: <= 3e-7 * (1 + max|p|).
 * - GPU vs fixtures: inputs are f32-exact, so only the kernels' f32 arithmetic differs. Each step
 *   rounds ~10 times at 2^-24 relative to the largest quantity involved (|p|, lr * |update|,
 *   the momentum buffer); errors add over 5 steps: 5 * 10 * 6e-8 = 3e-6 relative to the largest
 *   magnitude a parameter reaches. Checked at atol 4e-6 * (1 + max|p|), rtol 4e-6. Adam's
 *   m / (sqrt(v) + eps) keeps relative accuracy even for gradients ~1e-6 (no underflow in f32).
 *   Moments are checked with the same bound relative to their own magnitude.
 * - Fused kernels on the GPU vs float64 on random data (one step): a handful of roundings:
 *   atol 1e-6 * (1 + |x|), rtol 1e-6.
 * - Norms: the sum of squares of n f32 values is accumulated in per-thread runs of <= ~10 values,
 *   then trees of depth 8 + 8: error <= ~30 ulp relative: rtol 1e-5 (the clipped gradients add one
 *   more rounding). Fixtures on float64: 1e-12 relative.
 * - Schedules vs torch (float64 recursive/chained formulas vs our closed form): 1e-12 relative.
 */
import { readFileSync } from 'node:fs';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import * as E from '../engine/index.js';
import {
  Adam, AdamW, EMA, SGD, Scheduler, clipGradNorm, constantLr, constantWithWarmupLr, gradNorm, isNoDecayParam, paramGroupsNoDecay, schedules, warmupCosineLr,
  type Optimizer, type OptimizerStateDict,
} from '../nn/optim/index.js';
import { requireGpu } from './helpers/backends.js';
import { expectClose, type Tol } from './helpers/compare.js';
import { f32, valuesArb } from './helpers/arbitrary.js';

const gpu = await requireGpu();
const cpu = E.cpuF64;
const backends: [string, E.Backend][] = [['cpu-f64', cpu], ...(gpu ? [['webgpu', gpu] as [string, E.Backend]] : [])];

interface Enc {
  shape: number[];
  data: number[];
}
interface OptCase {
  name: string;
  kind: 'sgd' | 'adam' | 'adamw';
  groups: { params: number[]; hyper: Record<string, unknown> }[];
  grads: (Enc | null)[][];
  history: Enc[][];
  state: Record<string, Enc | number>[];
}
interface ClipCase {
  max_norm: number;
  norm_type: number | 'inf';
  grads: Enc[];
  total_norm: number;
  clipped: Enc[];
}
interface SchedCase {
  name: string;
  base_lr: number;
  warmup: number;
  total?: number;
  min_lr?: number;
  lrs: number[];
}
const fx = JSON.parse(readFileSync(new URL('./fixtures/optim.json', import.meta.url), 'utf8')) as {
  names: string[];
  init: Enc[];
  cases: OptCase[];
  clip: ClipCase[];
  schedules: SchedCase[];
};

const mk = (e: Enc, backend: E.Backend) => E.tensor(e.data, e.shape, { backend });
const maxAbs = (xs: ArrayLike<number>) => Array.from(xs).reduce((a, b) => Math.max(a, Math.abs(b)), 0);

/** Torch hyperparameter names -> ours. */
function hyperOf(h: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(h)) out[k === 'weight_decay' ? 'weightDecay' : k] = v;
  return out;
}

function makeOptimizer(kind: OptCase['kind'], groups: unknown): Optimizer<{ lr: number }> {
  const g = groups as ConstructorParameters<typeof SGD>[0];
  if (kind === 'sgd') return new SGD(g);
  if (kind === 'adam') return new Adam(g as ConstructorParameters<typeof Adam>[0]);
  return new AdamW(g as ConstructorParameters<typeof AdamW>[0]);
}

async function read(t: E.Tensor): Promise<Float64Array> {
  return Float64Array.from(await t.toArray());
}

describe.each(backends)('optimizers vs PyTorch on %s', (bname, backend) => {
  const isCpu = bname === 'cpu-f64';
  const rel = isCpu ? 1e-12 : 4e-6;
  const absUnit = isCpu ? 1e-12 : 4e-6;
  it.each(fx.cases.map((c) => [c.name, c] as const))('%s', async (_n, c) => {
    const params = fx.init.map((e) => mk(e, backend).requireGrad());
    // Named groups for the AdamW case (as a model's namedParameters would give), plain lists otherwise.
    const named = c.kind === 'adamw';
    const groups = c.groups.map((g) => ({ params: g.params.map((i) => (named ? ([fx.names[i]!, params[i]!] as const) : params[i]!)), ...hyperOf(g.hyper) }));
    const opt = makeOptimizer(c.kind, groups);
    for (let s = 0; s < c.grads.length; s++) {
      params.forEach((p, i) => {
        const g = c.grads[s]![i];
        p.grad = g ? mk(g, backend) : null;
      });
      opt.step();
      opt.zeroGrad();
      for (let i = 0; i < params.length; i++) {
        const exp = c.history[s]![i]!;
        const scale = 1 + Math.max(...c.history.map((h) => maxAbs(h[i]!.data)));
        expectClose(await read(params[i]!), exp.data, { atol: absUnit * scale, rtol: rel }, `${c.name} step ${s} param ${i}`);
      }
    }
    const sd = opt.stateDict();
    for (let i = 0; i < params.length; i++) {
      const want = c.state[i]!;
      const got = sd.state[i];
      if ('step' in want) expect(got?.step, `step of param ${i}`).toBe(want.step);
      for (const [k, v] of Object.entries(want)) {
        if (k === 'step') continue;
        const e = v as Enc;
        const t = got?.[k];
        expect(E.isTensor(t), `${k} of param ${i}`).toBe(true);
        expect((t as E.Tensor).shape).toEqual(e.shape);
        expectClose(await read(t as E.Tensor), e.data, { atol: absUnit * (1 + maxAbs(e.data)), rtol: rel }, `${c.name} ${k} of param ${i}`);
      }
    }
    if (named) expect(sd.param_groups.map((g) => g.param_names)).toEqual(c.groups.map((g) => g.params.map((i) => fx.names[i])));
    opt.dispose();
    for (const p of params) p.dispose();
  });
});

describe.runIf(gpu)('fused update kernels: GPU vs float64 reference', () => {
  const tol = (x: ArrayLike<number>): Tol => ({ atol: 1e-6 * (1 + maxAbs(x)), rtol: 1e-6 });
  // Sizes around and beyond the workgroup (256), 1 and 0; the parameter may sit at an offset in its storage.
  const sizeArb = fc.oneof(fc.integer({ min: 0, max: 5 }), fc.integer({ min: 250, max: 600 }), fc.constant(70001));
  type Kind = 'adam' | 'adamw' | 'amsgrad' | 'sgd' | 'sgd-mom' | 'nesterov' | 'ema';
  const kindArb = fc.constantFrom<Kind>('adam', 'adamw', 'amsgrad', 'sgd', 'sgd-mom', 'nesterov', 'ema');

  /** One update of every kind from the same state on a backend; returns [p, m, v, vmax | buf]. */
  async function runKind(kind: Kind, backend: E.Backend, n: number, data: number[][], step: number, strided: boolean, offset: boolean): Promise<Float64Array[]> {
    const [pd, gd, md, vd] = data as [number[], number[], number[], number[]];
    // p: rows 1.. of a [n+1]-long buffer when `offset` (a contiguous view at offset 1).
    const pBase = E.tensor([0.5, ...pd], [n + 1], { backend });
    const p = offset ? pBase.slice([[1, n + 1]]) : E.tensor(pd, [n], { backend });
    // g: a strided view (every other element of a 2n buffer) when `strided`.
    const gBase = strided ? E.tensor(gd.flatMap((v) => [v, 9]), [n, 2], { backend }) : E.tensor(gd, [n], { backend });
    const g = strided ? gBase.slice([null, [0, 1]]).reshape([n]) : gBase;
    const m = E.tensor(md, [n], { backend });
    const v = E.tensor(vd.map(Math.abs), [n], { backend });
    const w = E.tensor(vd.map((x) => Math.abs(x) * 1.5), [n], { backend });
    const h = { lr: 0.03, beta1: 0.85, beta2: 0.99, eps: 1e-7, weightDecay: 0.07, step };
    if (kind === 'adam' || kind === 'adamw' || kind === 'amsgrad') E.adamUpdate(p, g, m, v, { ...h, decoupled: kind === 'adamw' }, kind === 'amsgrad' ? w : null);
    else if (kind === 'ema') E.emaUpdate(p, g, 0.93);
    else E.sgdUpdate(p, g, m, { lr: 0.07, momentum: kind === 'sgd' ? 0 : 0.9, dampening: kind === 'sgd-mom' ? 0.2 : 0, nesterov: kind === 'nesterov', weightDecay: 0.03, first: step === 1 });
    const out = [await read(p), await read(m), await read(v), await read(w)];
    if (offset) expect((await pBase.toArray())[0]).toBe(0.5); // the element before the view is untouched
    for (const t of [pBase, p, gBase, g, m, v, w]) if (!t.isDisposed) t.dispose();
    return out;
  }

  it('adam / adamw / amsgrad / sgd / nesterov / ema match float64', async () => {
    await fc.assert(
      fc.asyncProperty(
        kindArb,
        sizeArb.chain((n) => fc.tuple(fc.constant(n), fc.array(valuesArb(n), { minLength: 4, maxLength: 4 }))),
        fc.integer({ min: 1, max: 20 }),
        fc.boolean(),
        fc.boolean(),
        async (kind, [n, data], step, strided, offset) => {
          const want = await runKind(kind, cpu, n, data, step, strided, offset);
          const got = await runKind(kind, gpu!, n, data, step, strided, offset);
          want.forEach((w, k) => expectClose(got[k]!, w, tol(w), `${kind} n=${n} output ${k}`));
        },
      ),
      { numRuns: 40 },
    );
  });

  it('many parameters per dispatch (adamUpdateMany) equal one update per parameter, bit for bit', async () => {
    const sizes = [0, 1, 255, 256, 257, 1000, 3, 70001, 31, 512, 9];
    for (const amsgrad of [false, true]) {
      /** Parameters (p at an offset for some, two of them views of one shared buffer), gradients strided for some. */
      const setup = (backend: E.Backend) => {
        const shared = E.tensor(Array.from({ length: 40 }, (_, i) => Math.sin(i) * 0.5), [40], { backend });
        return sizes.map((n, t) => {
          const vals = (s: number) => Array.from({ length: n }, (_, i) => Math.sin(i * 0.37 + t + s) * (1 + s));
          const p = t === 6 ? shared.slice([[0, 3]]) : t === 8 ? shared.slice([[5, 36]]) : t % 3 === 1 ? E.tensor([7, ...vals(0)], [n + 1], { backend }).slice([[1, n + 1]]) : E.tensor(vals(0), [n], { backend });
          const g = t % 2 === 0 ? E.tensor(vals(1).flatMap((v) => [v, 99]), [n, 2], { backend }).slice([null, [0, 1]]).reshape([n]) : E.tensor(vals(1), [n], { backend });
          const m = E.tensor(vals(2), [n], { backend });
          const v = E.tensor(vals(3).map(Math.abs), [n], { backend });
          const vmax = amsgrad ? E.tensor(vals(3).map((x) => Math.abs(x) * 1.2), [n], { backend }) : null;
          return { p, g, m, v, vmax, step: 1 + ((t * 7) % 13) };
        });
      };
      const h = { lr: 0.03, beta1: 0.85, beta2: 0.99, eps: 1e-7, weightDecay: 0.07, decoupled: true };
      for (const backend of [gpu!, E.cpuF64]) {
        const one = setup(backend);
        for (const it of one) E.adamUpdate(it.p, it.g, it.m, it.v, { ...h, step: it.step }, it.vmax);
        const many = setup(backend);
        const before = gpu!.counters.dispatches;
        E.adamUpdateMany(many, h);
        if (backend === gpu) {
          // Two parameters share a buffer: they go to separate dispatches, so at most one more.
          const k = E.adamTensorsPerDispatch(gpu!, amsgrad);
          const dispatches = gpu!.counters.dispatches - before;
          expect(dispatches).toBeGreaterThanOrEqual(Math.ceil(sizes.length / k));
          expect(dispatches).toBeLessThanOrEqual(Math.ceil(sizes.length / k) + 1);
        }
        for (let t = 0; t < sizes.length; t++) {
          for (const key of ['p', 'm', 'v', 'vmax'] as const) {
            const a = one[t]![key];
            const b = many[t]![key];
            if (!a || !b) continue;
            expect(Array.from(await b.toArray()), `amsgrad=${amsgrad} ${backend.name} parameter ${t} (n=${sizes[t]}) ${key}`).toEqual(Array.from(await a.toArray()));
          }
        }
      }
    }
    expect(() => E.adamUpdateMany([{ p: E.ones([2], { backend: gpu! }), g: E.ones([2], { backend: gpu! }), m: E.zeros([2], { backend: gpu! }), v: E.zeros([2], { backend: gpu! }), step: 1 }, { p: E.ones([2], { backend: gpu! }), g: E.ones([2], { backend: gpu! }), m: E.zeros([2], { backend: gpu! }), v: E.zeros([2], { backend: gpu! }), vmax: E.zeros([2], { backend: gpu! }), step: 1 }], { lr: 0.1, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0, decoupled: true })).toThrow(/either every parameter has max_exp_avg_sq \(AMSGrad\) or none/);
  });

  it('parameters per dispatch, no submit, no new buffers once warm', async () => {
    const ps = [E.ones([300], { backend: gpu! }).requireGrad(), E.ones([7, 3], { backend: gpu! }).requireGrad()];
    const opt = new AdamW(ps);
    const setGrads = () => ps.forEach((p) => (p.grad = E.keep(E.fullLike(p, 0.5))));
    setGrads();
    opt.step();
    opt.zeroGrad();
    await gpu!.sync();
    setGrads();
    await gpu!.sync();
    const c0 = { ...gpu!.counters };
    const alloc = gpu!.pool.allocatedBytes;
    opt.step();
    expect(gpu!.counters.dispatches - c0.dispatches).toBe(Math.ceil(ps.length / E.adamTensorsPerDispatch(gpu!, false)));
    expect(gpu!.counters.submits - c0.submits).toBe(0);
    expect(gpu!.pool.allocatedBytes).toBe(alloc);
    opt.zeroGrad();
    opt.dispose();
    for (const p of ps) p.dispose();
  });
});

describe('fused update op validation', () => {
  it('rejects non-contiguous targets, aliasing, wrong shapes and dtypes, step < 1', () => {
    const p = E.ones([2, 3], { backend: cpu });
    const g = E.ones([2, 3], { backend: cpu });
    const m = E.zeros([2, 3], { backend: cpu });
    const v = E.zeros([2, 3], { backend: cpu });
    const h = { lr: 0.1, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0, decoupled: true, step: 1 };
    const pt = p.transpose();
    expect(() => E.adamUpdate(pt, g.transpose(), m.transpose(), v.transpose(), h)).toThrow(/adamw: param .* must be contiguous/);
    expect(() => E.adamUpdate(p, g, m, m, h)).toThrow(/exp_avg_sq and exp_avg share memory/);
    expect(() => E.adamUpdate(p, E.ones([3, 2], { backend: cpu }), m, v, h)).toThrow(/adamw: grad has shape \[3, 2\], expected \[2, 3\]/);
    expect(() => E.adamUpdate(p, g, m, v, { ...h, step: 0 })).toThrow(/step must be >= 1/);
    expect(() => E.sgdUpdate(p, g, null, { lr: 1, momentum: 0.9, dampening: 0, nesterov: false, weightDecay: 0, first: true })).toThrow(/momentum buffer/);
    expect(() => E.emaUpdate(p, E.ones([2, 3], { backend: cpu, dtype: 'i32' }), 0.9)).toThrow(/source must be f32/);
    expect(() => E.totalNorm([p], 1)).toThrow(/normType must be 2 or Infinity/);
    expect(() => E.totalNorm([])).toThrow(/no tensors and no backend/);
  });
});

describe.each(backends)('clipGradNorm on %s', (bname, backend) => {
  const isCpu = bname === 'cpu-f64';
  it.each(fx.clip.map((c, i) => [i, c] as const))('vs torch.nn.utils.clip_grad_norm_ #%i', async (_i, c) => {
    const tolN: Tol = isCpu ? { atol: 0, rtol: 1e-12 } : { atol: 0, rtol: 1e-5 };
    const ps = c.grads.map((g) => E.zeros(g.shape, { backend }).requireGrad());
    ps.forEach((p, i) => (p.grad = mk(c.grads[i]!, backend)));
    const normType = c.norm_type === 'inf' ? Infinity : c.norm_type;
    const total = clipGradNorm(ps, c.max_norm, normType);
    expect(total.shape).toEqual([]);
    expectClose([await total.item()], [c.total_norm], tolN, 'total norm');
    for (let i = 0; i < ps.length; i++) {
      const e = c.clipped[i]!.data;
      expectClose(await read(ps[i]!.grad!), e, { atol: tolN.rtol * maxAbs(e), rtol: tolN.rtol }, `clipped grad ${i}`);
    }
    total.dispose();
    for (const p of ps) (p.grad?.dispose(), p.dispose());
  });

  it('large gradients (many partial groups), empty and size-1 tensors, gradNorm without clipping', async () => {
    const sizes = [600_001, 3, 0, 1, 2049];
    const datas = sizes.map((n, k) => Array.from({ length: n }, (_, i) => f32(Math.sin(i * 0.37 + k) * (k + 1))));
    let sq = 0;
    let mx = 0;
    for (const d of datas) for (const x of d) (sq += x * x, (mx = Math.max(mx, Math.abs(x))));
    const norm2 = Math.sqrt(sq);
    const ps = sizes.map((n) => E.zeros([n], { backend }).requireGrad());
    ps.forEach((p, k) => (p.grad = E.tensor(datas[k]!, [sizes[k]!], { backend })));
    const rtol = isCpu ? 1e-12 : 1e-5;
    const n2 = gradNorm(ps);
    const ninf = gradNorm(ps, Infinity);
    expectClose([await n2.item(), await ninf.item()], [norm2, mx], { atol: 0, rtol }, 'norms');
    const maxNorm = norm2 / 3;
    const total = clipGradNorm(ps, maxNorm);
    const coef = maxNorm / (norm2 + 1e-6);
    for (const k of [0, 3, 4]) expectClose(await read(ps[k]!.grad!), datas[k]!.map((x) => x * coef), { atol: 1e-6 * maxAbs(datas[k]!), rtol }, `grad ${k}`);
    const after = gradNorm(ps);
    expectClose([await after.item()], [norm2 * coef], { atol: 0, rtol: isCpu ? 1e-12 : 2e-5 }, 'norm after clipping');
    for (const t of [n2, ninf, total, after]) t.dispose();
    for (const p of ps) (p.grad?.dispose(), p.dispose());
  });

  it('shared and strided gradients from backward are each scaled once; params without grad are ignored', async () => {
    // (a + b).sum(): backward gives a and b the same expanded (stride-0) gradient tensor.
    const a = E.zeros([3, 2], { backend }).requireGrad();
    const b = E.zeros([3, 2], { backend }).requireGrad();
    const c = E.zeros([2], { backend }).requireGrad();
    E.tidy(() => a.add(b).mul(2).sum().backward());
    expect(a.grad).not.toBeNull();
    const total = clipGradNorm([a, b, c], 1);
    const norm = Math.sqrt(12 * 4);
    expectClose([await total.item()], [norm], { atol: 0, rtol: 1e-6 }, 'norm');
    for (const p of [a, b]) expectClose(await read(p.grad!), new Array(6).fill((2 * 1) / (norm + 1e-6)), { atol: 0, rtol: 1e-6 }, 'clipped');
    expect(c.grad).toBeNull();
    total.dispose();
    for (const p of [a, b, c]) (p.grad?.dispose(), p.dispose());
  });

  it('no gradients: norm 0', async () => {
    const p = E.zeros([2], { backend });
    const t = clipGradNorm([p], 1);
    expect(await t.item()).toBe(0);
    t.dispose();
    p.dispose();
    expect(() => clipGradNorm([], -1)).toThrow(/maxNorm/);
  });
});

describe.runIf(gpu)('clipGradNorm on the GPU: no readback, 2 dispatches per gradient + 1', () => {
  it('counts', async () => {
    const ps = [E.ones([1000], { backend: gpu! }), E.ones([5], { backend: gpu! }), E.ones([40000], { backend: gpu! })];
    ps.forEach((p) => (p.grad = E.keep(E.fullLike(p, 2))));
    await gpu!.sync();
    const c0 = { ...gpu!.counters };
    const total = clipGradNorm(ps, 1);
    expect(gpu!.counters.submits - c0.submits).toBe(0);
    expect(gpu!.counters.dispatches - c0.dispatches).toBe(2 * ps.length + 1);
    expectClose([await total.item()], [2 * Math.sqrt(41005)], { atol: 0, rtol: 1e-5 }, 'norm');
    total.dispose();
    for (const p of ps) (p.grad?.dispose(), p.dispose());
  });
});

describe('optimizer API', () => {
  const P = (shape: number[], v = 1) => E.full(shape, v, { backend: cpu }).requireGrad();

  it('skips parameters whose grad is null (their state does not advance); zeroGrad disposes and nulls grads', async () => {
    const a = P([2]);
    const b = P([3]);
    const opt = new Adam([a, b], { lr: 0.1 });
    a.grad = E.full([2], 1, { backend: cpu });
    const g = a.grad;
    opt.step();
    expect(opt.stateOf(a)?.step).toBe(1);
    expect(opt.stateOf(b)).toBeUndefined();
    expect(Array.from(await b.toArray())).toEqual([1, 1, 1]);
    opt.zeroGrad();
    expect(a.grad).toBeNull();
    expect(g.isDisposed).toBe(true);
    b.grad = E.full([3], 1, { backend: cpu });
    opt.step();
    expect(opt.stateOf(a)?.step).toBe(1);
    expect(opt.stateOf(b)?.step).toBe(1);
    opt.zeroGrad();
    opt.dispose();
  });

  it('per-group hyperparameters and lr are settable; lr setter sets all groups', async () => {
    const a = P([1]);
    const b = P([1]);
    const opt = new SGD([{ params: [a] }, { params: [b], lr: 0.5 }], { lr: 0.1 });
    expect(opt.paramGroups.map((g) => g.lr)).toEqual([0.1, 0.5]);
    opt.paramGroups[0]!.lr = 0.25;
    a.grad = E.full([1], 1, { backend: cpu });
    b.grad = E.full([1], 1, { backend: cpu });
    opt.step();
    expect((await a.toArray())[0]).toBeCloseTo(0.75, 14);
    expect((await b.toArray())[0]).toBeCloseTo(0.5, 14);
    opt.lr = 0.01;
    expect(opt.paramGroups.map((g) => g.lr)).toEqual([0.01, 0.01]);
    opt.zeroGrad();
  });

  it('an optimizer is Disposable: `using` frees its state at the end of the block', () => {
    const a = P([3]);
    a.grad = E.keep(E.ones([3], { backend: cpu }));
    const before = E.memoryStats().liveTensors;
    {
      using opt = new AdamW([a]);
      opt.step();
      expect(E.memoryStats().liveTensors).toBeGreaterThan(before); // its moments
    }
    expect(E.memoryStats().liveTensors).toBe(before);
  });

  it('validates construction and steps with clear messages', () => {
    const a = P([2]);
    expect(() => new AdamW([])).toThrow(/empty parameter list/);
    expect(() => new AdamW([{ params: [a], weight_decay: 0.1 } as never])).toThrow(/unknown option 'weight_decay'/);
    expect(() => new AdamW([{ params: [a] }, { params: [a] }])).toThrow(/appears more than once/);
    expect(() => new SGD([E.ones([2], { backend: cpu, dtype: 'i32' })])).toThrow(/only f32/);
    expect(() => new SGD([a.mul(2)])).toThrow(/not a leaf/);
    expect(() => new SGD([a], { lr: -1 })).toThrow(/invalid learning rate/);
    expect(() => new SGD([a], { nesterov: true })).toThrow(/Nesterov/);
    expect(() => new Adam([a], { betas: [0.9, 1] })).toThrow(/beta parameter at index 1/);
    expect(() => new AdamW([a, { params: [] }] as never)).toThrow(/mixes/);
    const opt = new AdamW([['enc.w', a]]);
    a.grad = E.ones([3], { backend: cpu });
    expect(() => opt.step()).toThrow(/gradient of 'enc.w' \(group 0\) has shape \[3\], the parameter \[2\]/);
    opt.zeroGrad();
    opt.paramGroups[0]!.lr = NaN;
    a.grad = E.ones([2], { backend: cpu });
    expect(() => opt.step()).toThrow(/invalid learning rate NaN/);
    opt.zeroGrad();
  });

  it('paramGroupsNoDecay puts biases, norm weights and 1-D params in a group without decay', () => {
    const named: [string, E.Tensor][] = [
      ['enc.conv.weight', P([4, 3, 3, 3])],
      ['enc.conv.bias', P([4])],
      ['blocks.0.norm1.weight', P([4])],
      ['blocks.0.ln_1.weight', P([2, 2])],
      ['head.weight', P([3, 4])],
      ['pos_scale', P([])],
      ['kilnbias_free.weight', P([2, 2])],
    ];
    const [decay, none] = paramGroupsNoDecay(named, 0.05);
    expect(decay.weightDecay).toBe(0.05);
    expect(none.weightDecay).toBe(0);
    expect(decay.params.map((x) => x[0])).toEqual(['enc.conv.weight', 'head.weight']);
    expect(none.params.map((x) => x[0])).toEqual(['enc.conv.bias', 'blocks.0.norm1.weight', 'blocks.0.ln_1.weight', 'pos_scale', 'kilnbias_free.weight']);
    expect(isNoDecayParam('lnx.weight', P([2, 2]))).toBe(true);
    expect(isNoDecayParam('kiln.weight', P([2, 2]))).toBe(false);
    const opt = new AdamW(paramGroupsNoDecay(named, 0.05), { lr: 1e-3 });
    expect(opt.paramGroups.map((g) => g.weightDecay)).toEqual([0.05, 0]);
    expect(opt.paramGroups[1]!.paramNames).toEqual(none.params.map((x) => x[0]));
  });

  it('loadStateDict rejects mismatched groups, names, shapes and missing state, changing nothing', () => {
    const a = P([2]);
    const b = P([3]);
    const opt = new Adam([['a', a], ['b', b]]);
    a.grad = E.ones([2], { backend: cpu });
    b.grad = E.ones([3], { backend: cpu });
    opt.step();
    opt.zeroGrad();
    const sd = opt.stateDict();
    const other = new Adam([['a', a], ['c', b]]);
    expect(() => other.loadStateDict(sd)).toThrow(/parameter 1 is 'b' in the state dict, 'c' here/);
    const two = new Adam([{ params: [a] }, { params: [b] }]);
    expect(() => two.loadStateDict(sd)).toThrow(/1 parameter groups, this optimizer 2/);
    const badShape: OptimizerStateDict = { ...sd, state: { ...sd.state, 1: { ...sd.state[1]!, exp_avg: E.zeros([4], { backend: cpu }) } } };
    expect(() => opt.loadStateDict(badShape)).toThrow(/'exp_avg' of parameter 1 has shape \[4\], the parameter has shape \[3\]/);
    const missing = { ...sd, state: { 0: { step: 1, exp_avg: sd.state[0]!.exp_avg! } } };
    expect(() => opt.loadStateDict(missing)).toThrow(/parameter 0 lacks state 'exp_avg_sq'/);
    const extra = { ...sd, state: { 0: { ...sd.state[0]!, momentum_buffer: E.zeros([2], { backend: cpu }) } } };
    expect(() => opt.loadStateDict(extra)).toThrow(/unexpected state 'momentum_buffer'/);
    expect(() => opt.loadStateDict({ ...sd, state: { 7: sd.state[0]! } })).toThrow(/index 7, which no group lists/);
    expect(opt.stateOf(a)?.step).toBe(1);
    expect(opt.stateOf(b)?.buffers.exp_avg!.isDisposed).toBe(false);
  });
});

describe.each(backends)('state dict round trip on %s', (_bname, backend) => {
  const grads = (k: number, shapes: number[][]) => shapes.map((s, j) => E.tensor(Array.from({ length: s.reduce((x, y) => x * y, 1) }, (_, i) => Math.sin(1.3 * i + 2.1 * j + 0.7 * k)), s, { backend }));
  const shapes = [[4, 3], [3], [5]];
  const cases: [string, (ps: E.Tensor[]) => Optimizer<{ lr: number }>][] = [
    ['AdamW (groups, amsgrad)', (ps) => new AdamW([{ params: [ps[0]!, ps[1]!], amsgrad: true }, { params: [ps[2]!], weightDecay: 0, lr: 0.02 }], { lr: 0.01 })],
    ['SGD nesterov', (ps) => new SGD(ps, { lr: 0.05, momentum: 0.9, nesterov: true, weightDecay: 0.01 })],
  ];
  it.each(cases)('%s: resumed steps are identical to uninterrupted ones', async (_n, make) => {
    const init = shapes.map((s, j) => Array.from({ length: s.reduce((x, y) => x * y, 1) }, (_, i) => Math.cos(i + j)));
    const mkParams = () => shapes.map((s, j) => E.tensor(init[j]!, s, { backend }).requireGrad());
    const pa = mkParams();
    const A = make(pa);
    const stepWith = (opt: Optimizer<{ lr: number }>, ps: E.Tensor[], k: number) => {
      const gs = grads(k, shapes);
      ps.forEach((p, j) => (p.grad = j === 1 && k === 1 ? (gs[j]!.dispose(), null) : gs[j]!));
      opt.step();
      opt.zeroGrad();
    };
    for (let k = 0; k < 3; k++) stepWith(A, pa, k);
    // Resume: fresh parameters holding A's current values, a fresh optimizer, A's state (via CPU copies on the GPU).
    const pb = await Promise.all(pa.map(async (p) => E.tensor(await p.toArray(), [...p.shape], { backend }).requireGrad()));
    const B = make(pb);
    const sd = A.stateDict();
    const copy: OptimizerStateDict = JSON.parse(JSON.stringify({ ...sd, state: {} }));
    for (const [k, st] of Object.entries(sd.state)) {
      const entry: Record<string, unknown> = { step: st.step };
      for (const [name, v] of Object.entries(st)) if (name !== 'step') entry[name] = backend === cpu ? v : await (v as E.Tensor).to(cpu);
      copy.state[Number(k)] = entry as OptimizerStateDict['state'][number];
    }
    B.paramGroups.forEach((g) => (g.lr = 123)); // restored from the dict
    B.loadStateDict(copy);
    expect(B.paramGroups.map((g) => g.lr)).toEqual(A.paramGroups.map((g) => g.lr));
    for (let k = 3; k < 6; k++) {
      stepWith(A, pa, k);
      stepWith(B, pb, k);
    }
    for (let j = 0; j < pa.length; j++) expect(Array.from(await pb[j]!.toArray())).toEqual(Array.from(await pa[j]!.toArray()));
    const sa = A.stateDict();
    const sb = B.stateDict();
    expect(Object.keys(sb.state)).toEqual(Object.keys(sa.state));
    for (const k of Object.keys(sa.state)) expect(sb.state[Number(k)]!.step).toBe(sa.state[Number(k)]!.step);
    A.dispose();
    B.dispose();
    for (const p of [...pa, ...pb]) p.dispose();
  });
});

describe('LR schedules', () => {
  const tol: Tol = { atol: 1e-15, rtol: 1e-12 };
  it.each(fx.schedules.map((s) => [s.name, s] as const))('%s matches torch', (_n, s) => {
    const ours = s.lrs.map((_, step) =>
      s.total !== undefined ? warmupCosineLr(step, s.base_lr, { warmupSteps: s.warmup, totalSteps: s.total, minLr: s.min_lr! }) : constantWithWarmupLr(step, s.base_lr, { warmupSteps: s.warmup }),
    );
    expectClose(ours, s.lrs, tol, s.name);
  });

  it('closed forms: warmup never gives 0, floor after totalSteps, minLrRatio, constant', () => {
    expect(warmupCosineLr(0, 1, { warmupSteps: 4, totalSteps: 10 })).toBe(0.25);
    expect(warmupCosineLr(3, 1, { warmupSteps: 4, totalSteps: 10 })).toBe(1);
    expect(warmupCosineLr(4, 1, { warmupSteps: 4, totalSteps: 10 })).toBe(1);
    expect(warmupCosineLr(7, 1, { warmupSteps: 4, totalSteps: 10, minLr: 0.1 })).toBeCloseTo(0.55, 14);
    expect(warmupCosineLr(10, 1, { warmupSteps: 4, totalSteps: 10, minLr: 0.1 })).toBe(0.1);
    expect(warmupCosineLr(1000, 2, { totalSteps: 10, minLrRatio: 0.05 })).toBe(0.1);
    expect(warmupCosineLr(5, 2, { totalSteps: 10 })).toBeCloseTo(1, 14);
    expect(constantLr(99, 0.3)).toBe(0.3);
    expect(constantWithWarmupLr(1, 0.3, { warmupSteps: 3 })).toBeCloseTo(0.2, 15);
    expect(constantWithWarmupLr(0, 0.3)).toBe(0.3);
    expect(() => warmupCosineLr(-1, 1, { totalSteps: 3 })).toThrow(/non-negative integer/);
    expect(() => warmupCosineLr(0, 1, { warmupSteps: 5, totalSteps: 3 })).toThrow(/totalSteps \(3\) must be an integer >= warmupSteps \(5\)/);
  });

  it('Scheduler sets each group from its base lr, and its state restores the same lrs', () => {
    const a = E.ones([1], { backend: cpu });
    const b = E.ones([1], { backend: cpu });
    const opt = new AdamW([{ params: [a], lr: 0.1 }, { params: [b], lr: 0.01 }]);
    const sched = new Scheduler(opt, schedules.warmupCosine({ warmupSteps: 2, totalSteps: 10, minLrRatio: 0.1 }));
    expect(sched.lrs).toEqual([0.05, 0.005]);
    for (let i = 0; i < 5; i++) sched.step();
    expect(sched.currentStep).toBe(5);
    expectClose(sched.lrs, [warmupCosineLr(5, 0.1, { warmupSteps: 2, totalSteps: 10, minLr: 0.01 }), warmupCosineLr(5, 0.01, { warmupSteps: 2, totalSteps: 10, minLr: 0.001 })], tol, 'lrs');
    const st = sched.stateDict();
    const opt2 = new AdamW([{ params: [a], lr: 0.1 }, { params: [b], lr: 0.01 }]);
    const sched2 = new Scheduler(opt2, schedules.warmupCosine({ warmupSteps: 2, totalSteps: 10, minLrRatio: 0.1 }));
    sched2.loadStateDict(JSON.parse(JSON.stringify(st)));
    expect(sched2.lrs).toEqual(sched.lrs);
    sched.step();
    sched2.step();
    expect(sched2.lrs).toEqual(sched.lrs);
    expect(() => sched2.loadStateDict({ step: 1, base_lrs: [1] })).toThrow(/1 base lrs for 2 parameter groups/);
    const c = new Scheduler(new SGD([a], { lr: 0.2 }), schedules.constantWithWarmup({ warmupSteps: 4 }));
    expect(c.lrs).toEqual([0.05]);
    expect(new Scheduler(new SGD([a], { lr: 0.2 }), schedules.constant()).lrs).toEqual([0.2]);
  });
});

describe.each(backends)('EMA on %s', (bname, backend) => {
  const tol = (isCpu: boolean): Tol => (isCpu ? { atol: 1e-14, rtol: 1e-12 } : { atol: 1e-6, rtol: 1e-6 });
  const isCpu = bname === 'cpu-f64';
  it('closed form for a constant target, and a varying sequence vs a float64 loop', async () => {
    const p0 = [0.5, -1, 2, 0, 3, -0.25, 1];
    const p = E.tensor(p0, [7], { backend });
    const ema = new EMA([['w', p]], { decay: 0.9 });
    const c = [1, 2, -3, 0.5, 0, 4, -2];
    p.assign(E.tensor(c, [7], { backend }));
    for (let k = 0; k < 6; k++) ema.update();
    expectClose(await read(ema.shadows[0]!), c.map((ci, i) => ci + 0.9 ** 6 * (p0[i]! - ci)), tol(isCpu), 'constant target');
    // Varying targets and decays.
    let s = await read(ema.shadows[0]!);
    for (let k = 0; k < 5; k++) {
      const x = c.map((ci, i) => f32(Math.sin(ci + i * k)));
      const tmp = E.tensor(x, [7], { backend });
      p.assign(tmp);
      tmp.dispose();
      const d = 0.5 + 0.1 * k;
      ema.update(d);
      s = s.map((si, i) => d * si + (1 - d) * x[i]!);
    }
    expectClose(await read(ema.shadows[0]!), s, tol(isCpu), 'varying');
    expect(ema.numUpdates).toBe(11);
    ema.dispose();
    p.dispose();
  });

  it('warmup decay, copyTo / copyFrom, state dict round trip', async () => {
    const p = E.tensor([1, 2, 3], [3], { backend });
    const q = E.tensor([[4, 5]], [1, 2], { backend });
    const ema = new EMA([p, q], { decay: 0.999, warmup: true });
    expect(ema.currentDecay()).toBeCloseTo(0.1, 15);
    ema.update();
    expect(ema.currentDecay()).toBeCloseTo(2 / 11, 15);
    p.assign(0);
    q.assign(0);
    ema.update(0.5);
    expectClose(await read(ema.shadows[0]!), [0.5, 1, 1.5], tol(isCpu), 'after update');
    ema.copyTo();
    expectClose(await read(p), [0.5, 1, 1.5], tol(isCpu), 'copyTo');
    const st = ema.stateDict();
    expect(Object.keys(st.shadow)).toEqual(['0', '1']);
    const p2 = E.zeros([3], { backend });
    const q2 = E.zeros([1, 2], { backend });
    const ema2 = new EMA([p2, q2]);
    ema2.loadStateDict({ ...st, shadow: { 0: Float64Array.from(await read(st.shadow['0']!)), 1: st.shadow['1']! } });
    expect(ema2.numUpdates).toBe(2);
    expect(ema2.decay).toBe(0.999);
    ema2.copyTo();
    expectClose(await read(q2), [2, 2.5], tol(isCpu), 'loaded shadow');
    q.assign(7);
    ema2.copyFrom([p, q]);
    expectClose(await read(ema2.shadows[1]!), [7, 7], tol(isCpu), 'copyFrom');
    expect(() => ema2.loadStateDict({ ...st, shadow: { 0: st.shadow['0']! } })).toThrow(/missing '1'/);
    expect(() => ema2.copyTo([p])).toThrow(/got 1 tensors, tracking 2/);
    for (const t of [p, q, p2, q2]) t.dispose();
    ema.dispose();
    ema2.dispose();
  });
});

describe.runIf(gpu)('training loop on the GPU: no allocation growth over 100 steps', () => {
  it('backward + clipGradNorm + AdamW + EMA + scheduler', async () => {
    const backend = gpu!;
    const gen = (n: number, s: number) => Array.from({ length: n }, (_, i) => Math.sin(i * 0.61 + s) * 0.3);
    const W = E.tensor(gen(8 * 16, 1), [8, 16], { backend }).requireGrad();
    const b = E.tensor(gen(16, 2), [16], { backend }).requireGrad();
    const x = E.tensor(gen(5 * 8, 3), [5, 8], { backend });
    const named: [string, E.Tensor][] = [['fc.weight', W], ['fc.bias', b]];
    const opt = new AdamW(paramGroupsNoDecay(named, 0.1), { lr: 0.01 });
    const sched = new Scheduler(opt, schedules.warmupCosine({ warmupSteps: 10, totalSteps: 100, minLrRatio: 0.1 }));
    const ema = new EMA(named, { decay: 0.99 });
    const losses: number[] = [];
    const step = async () => {
      const loss = E.tidy(() => {
        const l = x.matmul(W).add(b).tanh().sub(0.5).square().mean();
        l.backward();
        clipGradNorm(named, 0.5).dispose();
        opt.step();
        opt.zeroGrad();
        ema.update();
        sched.step();
        return l.detach();
      });
      losses.push(await loss.item());
      loss.dispose();
    };
    for (let i = 0; i < 3; i++) await step();
    const alloc = backend.pool.allocatedBytes;
    const live = E.memoryStats().liveTensors;
    const liveBytes = E.memoryStats().liveBytes;
    for (let i = 0; i < 100; i++) await step();
    expect(backend.pool.allocatedBytes).toBe(alloc);
    expect(E.memoryStats().liveTensors).toBe(live);
    expect(E.memoryStats().liveBytes).toBe(liveBytes);
    expect(losses[losses.length - 1]!).toBeLessThan(losses[0]!);
    ema.dispose();
    opt.dispose();
    for (const t of [W, b, x]) t.dispose();
  });
});
