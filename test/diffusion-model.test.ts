/**
 * The diffusion transformer (models/diffusion/model.ts) and its guided sampler:
 *  - config validation, DiT's state-dict names, the 2D sin-cos table against hand-computed values,
 *    patchify / unpatchify (layout and round trip);
 *  - a fresh model predicts exactly 0 (zero final layer) for patch 1 and 2;
 *  - class dropout from the model's seeded generator;
 *  - gradients of the input and of every parameter vs central finite differences (float64 CPU);
 *  - guidance: scale 1 is conditional sampling with one forward of B per evaluation; an interval
 *    holding none of the evaluation times is conditional sampling; the guided velocity is
 *    v_u + s (v_c - v_u);
 *  - seeded sampling is reproducible and agrees between the float64 CPU reference and the GPU.
 * Tiny models (dim 16..32, depth 1..2, 4 x 4 grids): lavapipe runs on 2 CPU cores.
 *
 * Tolerances. Finite differences in float64 with eps 1e-6: truncation ~eps^2 |f'''| and rounding
 * ~1e-16 |f| / eps, both < 1e-8 here; checked to 1e-6 absolute + 1e-5 relative (as
 * test/transformer.test.ts; measured errors ~5e-9 on gradients of size 1e-2..10). Patchify, zero
 * outputs, scale-1 and interval equalities are exact (the same kernels on the same numbers). The
 * guided velocity read back after one Euler step (x_0 = x_1 - v) vs u + s (c - u) from separate
 * forwards of B rows: the batched forward of 2B rows may sum in another order, ~1e-6 relative per
 * value, amplified by s = 3; measured 2e-7 for |v| up to 4; checked to 1e-4 * (1 + |v|).
 * CPU vs GPU sampling: the models get the same seeded weights (uniform draws identical, normal
 * draws equal to f32 rounding), the noise is the same seeded draw; a depth-2 model in f32 (matmuls
 * with K <= 128, LayerNorms, attention) differs from float64 by ~1e-6 relative per forward, over 7
 * Heun evaluations with guidance scale 2: measured max |diff| 2.6e-6 for outputs up to 5; checked
 * to 1e-4 * (1 + |x|).
 */
import { describe, expect, it } from 'vitest';
import * as E from '../engine/index.js';
import {
  DEFAULT_DIFFUSION_CONFIG,
  DiffusionTransformer,
  guidedVelocity,
  patchifyLatents,
  buildDenoisedLatents,
  createDiffusionOptimizer,
  diffusionTrainStep,
  resolveDiffusionConfig,
  sampleDiffusion,
  sampleFlowODE,
  sincos2d,
  unpatchifyLatents,
  type DiffusionConfigInput,
} from '../models/diffusion/index.js';
import { requireGpu } from './helpers/backends.js';
import { expectClose, expectGradMatchesFD } from './helpers/compare.js';
import { uniformValues } from './helpers/prng.js';
import { expectNoLeaks } from './helpers/leak-check.js';

const gpu = await requireGpu();
const ref = E.cpuF64;
const TINY: DiffusionConfigInput = { latentChannels: 2, grid: [4, 4], numClasses: 3, patchSize: 2, dim: 32, depth: 2, heads: 2 };

/** Every parameter gets noise (std 1/sqrt(fan-in) for matrices, 0.1 for vectors) so no path is trivially zero (final layer, adaLN). */
function randomize(model: DiffusionTransformer, seed: number): void {
  const g = new E.Generator(seed);
  E.noGrad(() =>
    E.tidy(() => {
      for (const p of model.parameters()) {
        const std = p.rank >= 2 ? 1 / Math.sqrt(p.shape[p.rank - 1]!) : 0.1;
        p.assign(p.add(E.randn(p.shape, { std, generator: g, backend: p.backend })));
      }
    }),
  );
}

function maxAbs(a: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]!));
  return m;
}

/** Counts model.forward calls and their batch sizes. */
function countForwards(model: DiffusionTransformer): number[] {
  const batches: number[] = [];
  const orig = model.forward.bind(model);
  model.forward = (x, t, y) => {
    batches.push(x.shape[0]!);
    return orig(x, t, y);
  };
  return batches;
}

describe('config, names and tables (host / float64)', () => {
  it('defaults and one-line validation errors naming the field', () => {
    const c = resolveDiffusionConfig({ latentChannels: 4, grid: [8, 8], numClasses: 10 });
    expect(c).toMatchObject({ ...DEFAULT_DIFFUSION_CONFIG, latentChannels: 4, grid: [8, 8], numClasses: 10 });
    expect(c).toMatchObject({ patchSize: 2, classDropout: 0.1, timeScale: 1000, freqDim: 256 });
    const bad: [Partial<DiffusionConfigInput>, RegExp][] = [
      [{ latentChannels: 0 }, /latentChannels must be a positive integer, got 0/],
      [{ grid: [4] as unknown as [number, number] }, /grid must be \[h, w\] of positive integers, got \[4\]/],
      [{ grid: [4, 6], patchSize: 4 }, /grid \[4, 6\] is not divisible by patchSize 4/],
      [{ heads: 3 }, /dim 32 is not divisible by 3 heads/],
      [{ dim: 18, heads: 2 }, /dim must be a multiple of 4/],
      [{ freqDim: 7 }, /freqDim must be even, got 7/],
      [{ classDropout: 1 }, /classDropout must be in \[0, 1\), got 1/],
      [{ timeScale: 0 }, /timeScale must be finite and > 0/],
      [{ mlpRatio: 0 }, /mlpRatio must be > 0/],
      [{ dropSeed: 0.5 }, /dropSeed must be an integer/],
    ];
    for (const [patch, re] of bad) {
      let msg = '';
      try {
        resolveDiffusionConfig({ ...TINY, ...patch });
      } catch (e) {
        msg = (e as Error).message;
      }
      expect(msg).toMatch(re);
      expect(msg).toMatch(/^Diffusion config: [^\n]+$/);
    }
  });

  it("DiT's parameter names; the positions are not in the state dict", () => {
    const m = new DiffusionTransformer({ ...TINY, depth: 1 }, { backend: ref, generator: new E.Generator(0) });
    expect(Object.keys(m.stateDict()).sort()).toEqual(
      [
        'x_embedder.proj.weight',
        'x_embedder.proj.bias',
        't_embedder.mlp.0.weight',
        't_embedder.mlp.0.bias',
        't_embedder.mlp.2.weight',
        't_embedder.mlp.2.bias',
        'y_embedder.embedding_table.weight',
        'blocks.0.attn.qkv.weight',
        'blocks.0.attn.qkv.bias',
        'blocks.0.attn.proj.weight',
        'blocks.0.attn.proj.bias',
        'blocks.0.mlp.fc1.weight',
        'blocks.0.mlp.fc1.bias',
        'blocks.0.mlp.fc2.weight',
        'blocks.0.mlp.fc2.bias',
        'blocks.0.adaLN_modulation.1.weight',
        'blocks.0.adaLN_modulation.1.bias',
        'final_layer.linear.weight',
        'final_layer.linear.bias',
        'final_layer.adaLN_modulation.1.weight',
        'final_layer.adaLN_modulation.1.bias',
      ].sort(),
    );
    const sd = m.stateDict();
    expect(sd['x_embedder.proj.weight']!.shape).toEqual([32, 2 * 2 * 2]);
    expect(sd['y_embedder.embedding_table.weight']!.shape).toEqual([4, 32]);
    expect(sd['t_embedder.mlp.0.weight']!.shape).toEqual([32, 256]);
    expect(sd['final_layer.adaLN_modulation.1.weight']!.shape).toEqual([64, 32]);
    m.dispose();
  });

  it('2D sin-cos positions: column in the first half, row in the second, sin then cos (DiT)', () => {
    const dim = 8;
    const pe = sincos2d(dim, 2, 3); // 2 rows, 3 columns
    const row = (r: number, c: number) => Array.from(pe.subarray((r * 3 + c) * dim, (r * 3 + c + 1) * dim));
    expect(row(0, 0)).toEqual([0, 0, 1, 1, 0, 0, 1, 1]);
    const w = [1, 0.01]; // 10000^(-k / 2)
    const want = [Math.sin(2 * w[0]!), Math.sin(2 * w[1]!), Math.cos(2 * w[0]!), Math.cos(2 * w[1]!), Math.sin(1), Math.sin(0.01), Math.cos(1), Math.cos(0.01)];
    expectClose(row(1, 2), want, { atol: 1e-15, rtol: 0 }, 'pos (1, 2)');
    expect(() => sincos2d(6, 2, 2)).toThrow(/multiple of 4/);
  });
});

describe('lifetimes (float64 CPU)', () => {
  it('leaves no tensor behind: forward without recording, training steps, Heun sampling with guidance, denoised latents', async () => {
    const m = new DiffusionTransformer(TINY, { backend: ref, generator: new E.Generator(1) });
    randomize(m, 2);
    const { optimizer } = createDiffusionOptimizer(m, {});
    const x = E.randn([3, 2, 4, 4], { backend: ref, generator: new E.Generator(3) });
    const y = E.tensor([0, 1, 2], [3], { backend: ref, dtype: 'i32' });
    (await expectNoLeaks(() => E.noGrad(() => m.forward(x, 0.5, y)), 'forward without recording')).dispose();
    // The first step creates the optimizer state and the gradients; later steps replace them.
    E.disposeAll(diffusionTrainStep(m, optimizer, x, y));
    E.disposeAll(await expectNoLeaks(() => diffusionTrainStep(m, optimizer, x, y), 'training step'));
    const o = { steps: 3, sampler: 'heun' as const, cfgScale: 2, guidanceInterval: [0.2, 0.9] as const };
    (await expectNoLeaks(() => sampleDiffusion(m, [0, 1, 2], { ...o, generator: new E.Generator(4) }), 'sampling')).dispose();
    (await expectNoLeaks(() => buildDenoisedLatents(m, x, [0, 1, 2], { ...o, tStar: 0.5, generator: new E.Generator(5) }), 'denoised latents')).dispose();
    for (const t of [x, y]) t.dispose();
    optimizer.dispose();
    m.dispose();
  });
});

describe('patches, outputs and class dropout', () => {
  it.runIf(gpu)('patchify puts x[b, c, i p + a, j p + q] at patch (i, j), index (a p + q) C + c; unpatchify inverts it', async () => {
    const be = gpu!;
    const [B, C, h, w] = [2, 3, 4, 6];
    const xs = uniformValues(B * C * h * w, 4);
    const x = E.tensor(xs, [B, C, h, w], { backend: be });
    for (const p of [1, 2]) {
      const P = await patchifyLatents(x, p).toArray();
      const [H, W] = [h / p, w / p];
      for (let b = 0; b < B; b++) {
        for (let c = 0; c < C; c++) {
          for (let r = 0; r < h; r++) {
            for (let s = 0; s < w; s++) {
              const [i, a, j, q] = [Math.floor(r / p), r % p, Math.floor(s / p), s % p];
              const at = ((b * H * W + i * W + j) * p * p + a * p + q) * C + c;
              expect(P[at]).toBe(xs[((b * C + c) * h + r) * w + s]);
            }
          }
        }
      }
      const back = unpatchifyLatents(patchifyLatents(x, p), p, C, [h, w]);
      expect(back.shape).toEqual([B, C, h, w]);
      expect(Array.from(await back.toArray())).toEqual(Array.from(await x.toArray()));
    }
    expect(() => patchifyLatents(x, 4)).toThrow(/grid 4 x 6 is not divisible by patch size 4/);
    expect(() => unpatchifyLatents(E.zeros([1, 5, 12], { backend: be }), 2, 3, [4, 6])).toThrow(/expected \[B, 6, 12\]/);
  });

  it.runIf(gpu)('a fresh model predicts exactly 0, shape [B, C, h, w], for patch 1 and 2; input errors', async () => {
    const be = gpu!;
    for (const p of [1, 2]) {
      const m = new DiffusionTransformer({ ...TINY, grid: [4, 6], patchSize: p }, { backend: be, generator: new E.Generator(p) });
      const x = E.randn([3, 2, 4, 6], { backend: be, generator: new E.Generator(1) });
      const live = E.memoryStats().liveTensors;
      const v = E.tidy(() => m.forward(x, E.tensor([0.1, 0.5, 0.9], [3], { backend: be }), [0, 1, 3]));
      expect(E.memoryStats().liveTensors).toBe(live + 1);
      expect(v.shape).toEqual([3, 2, 4, 6]);
      expect(maxAbs(await v.toArray())).toBe(0);
      // Randomized (eval mode: no class dropout), the output depends on t and on each sample's own y.
      randomize(m, 3);
      m.eval();
      const a = await E.tidy(() => m.forward(x, 0.5, [0, 1, 2])).toArray();
      const b = await E.tidy(() => m.forward(x, 0.25, [0, 1, 2])).toArray();
      const c = await E.tidy(() => m.forward(x, 0.5, [1, 1, 2])).toArray();
      expect(maxAbs(a)).toBeGreaterThan(0.1);
      expect(maxAbs(a.map((v, i) => v - b[i]!))).toBeGreaterThan(1e-3);
      expect(maxAbs(a.slice(0, 48).map((v, i) => v - c[i]!))).toBeGreaterThan(1e-3);
      expect(maxAbs(a.slice(48).map((v, i) => v - c[48 + i]!))).toBe(0);
      expect(() => m.forward(E.zeros([3, 2, 4, 4], { backend: be }), 0.5, [0, 1, 2])).toThrow(/x must be f32 \[B, 2, 4, 6\]/);
      expect(() => m.forward(x, 0.5, [0, 1])).toThrow(/2 class ids for a batch of 3/);
      expect(() => m.forward(x, 0.5, [0, 1, 4])).toThrow(/class id 4 outside \[0, 3\]/);
      expect(() => m.forward(x, E.zeros([2], { backend: be }), [0, 1, 2])).toThrow(/t must be f32 \[3\]/);
      m.dispose();
    }
  });

  it.runIf(gpu)('class dropout: null class with probability classDropout in training, from model.generator; none in eval', async () => {
    const be = gpu!;
    const mk = () => new DiffusionTransformer({ ...TINY, classDropout: 0.3, dropSeed: 42 }, { backend: be, generator: new E.Generator(0) });
    const [a, b] = [mk(), mk()];
    const y = E.tensor(Int32Array.from({ length: 4000 }, (_, i) => i % 3), [4000], { backend: be });
    const da = await a.dropClasses(y).toArray();
    const db = await b.dropClasses(y).toArray();
    expect(Array.from(da)).toEqual(Array.from(db));
    const dropped = da.filter((v) => v === 3).length;
    expect(Math.abs(dropped / 4000 - 0.3)).toBeLessThan(4 * Math.sqrt((0.3 * 0.7) / 4000));
    expect(da.every((v, i) => v === 3 || v === i % 3)).toBe(true);
    a.eval();
    expect(a.dropClasses(y)).toBe(y);
    a.dispose();
    b.dispose();
  });
});

describe('gradients vs finite differences (float64)', () => {
  for (const p of [1, 2]) {
    it(`patch ${p}: input and every parameter`, async () => {
      const cfg: DiffusionConfigInput = { latentChannels: 2, grid: [2, 4], numClasses: 2, patchSize: p, dim: 8, depth: 1, heads: 2, freqDim: 8, mlpRatio: 2 };
      const m = new DiffusionTransformer(cfg, { backend: ref, generator: new E.Generator(7) });
      m.eval();
      randomize(m, 8);
      const B = 2;
      const tv = E.tensor([0.3, 0.8], [B], { backend: ref });
      const y = [0, 2];
      const xSpec = { shape: [B, 2, 2, 4], data: uniformValues(B * 16, 9, -1.5, 1.5) };
      await expectGradMatchesFD((x) => m.forward(x, tv, y), [xSpec]);

      // Parameters: sum(forward * w) vs central differences at 3 elements of each parameter.
      const x = E.tensor(xSpec.data, xSpec.shape, { backend: ref });
      const wts = E.tensor(uniformValues(B * 16, 10, 0.5, 1.5), [B, 2, 2, 4], { backend: ref });
      const objective = () => m.forward(x, tv, y).mul(wts).sum();
      const params = m.namedParameters();
      const grads = E.tidy(() => E.gradients(objective(), params.map(([, t]) => t)));
      const value = async () => {
        const o = E.noGrad(() => E.tidy(objective));
        const r = await o.item();
        o.dispose();
        return r;
      };
      const eps = 1e-6;
      for (let k = 0; k < params.length; k++) {
        const [name, t] = params[k]!;
        const base = Float64Array.from(await t.toArray());
        const g = await grads[k]!.toArray();
        const idx = [0, Math.floor(base.length / 2), base.length - 1];
        const fd: number[] = [];
        for (const j of idx) {
          const at = async (d: number) => {
            const mod = base.slice();
            mod[j]! += d;
            E.noGrad(() => E.tidy(() => void t.assign(E.tensor(mod, t.shape, { backend: ref }))));
            return value();
          };
          fd.push(((await at(eps)) - (await at(-eps))) / (2 * eps));
          E.noGrad(() => E.tidy(() => void t.assign(E.tensor(base, t.shape, { backend: ref }))));
        }
        expectClose(idx.map((j) => g[j]!), fd, { atol: 1e-6, rtol: 1e-5 }, name);
      }
      m.dispose();
    });
  }
});

describe.runIf(gpu)('guided sampling on the GPU', () => {
  const be = gpu!;

  it('scale 1 is conditional sampling with one forward of B per evaluation', async () => {
    const m = new DiffusionTransformer(TINY, { backend: be, generator: new E.Generator(1) });
    randomize(m, 2);
    const noise = E.randn([3, 2, 4, 4], { backend: be, generator: new E.Generator(4) });
    const cls = E.tensor(Int32Array.from([0, 1, 2]), [3], { backend: be });
    const batches = countForwards(m);
    const live = E.memoryStats().liveTensors;
    const a = sampleDiffusion(m, cls, { cfgScale: 1, steps: 4, sampler: 'heun', noise });
    expect(E.memoryStats().liveTensors).toBe(live + 1);
    expect(batches).toEqual([3, 3, 3, 3, 3, 3, 3]);
    m.eval();
    const b = E.noGrad(() => sampleFlowODE((x, t) => m.forward(x, t, cls), noise, { steps: 4, sampler: 'heun' }));
    expect(Array.from(await a.toArray())).toEqual(Array.from(await b.toArray()));
    m.dispose();
  });

  it('an interval holding none of the evaluation times is conditional sampling; inside it the velocity is u + s (c - u)', async () => {
    const m = new DiffusionTransformer(TINY, { backend: be, generator: new E.Generator(1) });
    randomize(m, 2);
    m.train();
    const noise = E.randn([3, 2, 4, 4], { backend: be, generator: new E.Generator(4) });
    const batches = countForwards(m);
    const cond = sampleDiffusion(m, [0, 1, 2], { cfgScale: 1, steps: 4, sampler: 'heun', noise });
    expect(m.training).toBe(true); // restored after sampling
    // Grid 1, 0.75, 0.5, 0.25, 0: [0.8, 0.95] holds none of them.
    const outside = sampleDiffusion(m, [0, 1, 2], { cfgScale: 4, guidanceInterval: [0.8, 0.95], steps: 4, sampler: 'heun', noise });
    expect(Array.from(await outside.toArray())).toEqual(Array.from(await cond.toArray()));
    const guided = sampleDiffusion(m, [0, 1, 2], { cfgScale: 4, steps: 4, sampler: 'heun', noise });
    const gd = await guided.toArray();
    const cd = await cond.toArray();
    expect(maxAbs(gd.map((v, i) => v - cd[i]!))).toBeGreaterThan(1e-3);
    // Only t = 1 inside [0.9, 1]: one batch of 6, then batches of 3.
    batches.length = 0;
    sampleDiffusion(m, [0, 1, 2], { cfgScale: 4, guidanceInterval: [0.9, 1], steps: 4, sampler: 'heun', noise }).dispose();
    expect(batches).toEqual([6, 3, 3, 3, 3, 3, 3]);

    // One Euler step from t = 1: x_0 = x_1 - v(x_1, 1), v = u + s (c - u).
    const s = 3;
    const x0 = await sampleDiffusion(m, [0, 1, 2], { cfgScale: s, steps: 1, noise }).toArray();
    m.eval();
    const [c, u, x1] = await Promise.all([
      E.noGrad(() => m.forward(noise, 1, [0, 1, 2])).toArray(),
      E.noGrad(() => m.forward(noise, 1, [3, 3, 3])).toArray(),
      noise.toArray(),
    ]);
    const v = Array.from(c, (cv, i) => u[i]! + s * (cv - u[i]!));
    expectClose(Array.from(x1, (x, i) => x - x0[i]!), v, { atol: 1e-4, rtol: 1e-4 }, 'guided velocity');
    expect(maxAbs(v.map((vv, i) => vv - c[i]!))).toBeGreaterThan(1e-2); // guidance changed something
    expect(() => guidedVelocity(m, E.tensor(Int32Array.from([0]), [1], { backend: be }), { guidanceInterval: [0.5, 0.2] })).toThrow(/tLo <= tHi/);
    m.dispose();
  });

  it('seeded sampling is reproducible and matches the float64 CPU reference', async () => {
    const mk = (backend: E.Backend) => {
      const m = new DiffusionTransformer(TINY, { backend, generator: new E.Generator(5) });
      randomize(m, 6);
      return m;
    };
    const [mg, mc] = [mk(be), mk(ref)];
    const o = { cfgScale: 2, steps: 4, sampler: 'heun' as const };
    const a = await sampleDiffusion(mg, [0, 1, 2, 3], { ...o, generator: new E.Generator(7) }).toArray();
    const b = await sampleDiffusion(mg, [0, 1, 2, 3], { ...o, generator: new E.Generator(7) }).toArray();
    const c = await sampleDiffusion(mg, [0, 1, 2, 3], { ...o, generator: new E.Generator(8) }).toArray();
    expect(Array.from(a)).toEqual(Array.from(b));
    expect(maxAbs(a.map((v, i) => v - c[i]!))).toBeGreaterThan(0.1);
    const r = await sampleDiffusion(mc, [0, 1, 2, 3], { ...o, generator: new E.Generator(7) }).toArray();
    expect(maxAbs(r)).toBeGreaterThan(0.5);
    expectClose(a, r, { atol: 1e-4, rtol: 1e-4 }, 'GPU vs float64 samples');
    mg.dispose();
    mc.dispose();
  });
});
