/**
 * Sampling from a flow-matching model by integrating its probability-flow ODE dx/dt = v(x, t) from
 * t = 1 (noise) to t = 0 (data), on the device, batched and seeded (browser-safe).
 *  - Time grid: uniform in t, t_i = tStart (1 - i / N) for i = 0..N (tStart = 1 by default; a
 *    smaller start denoises a partly noised latent, models/diffusion/posttrain.ts) (rectified flow's straight paths make a
 *    uniform grid adequate; SD3's shifted grids are not offered).
 *  - 'euler': x_{i+1} = x_i + (t_{i+1} - t_i) v(x_i, t_i), N evaluations (minRF's sample loop).
 *  - 'heun': EDM's deterministic 2nd-order sampler (Karras et al. 2022, arXiv 2206.00364, Alg. 1):
 *    an Euler predictor, then the trapezoidal correction with v at the predicted point; the last
 *    step, into t = 0, stays an Euler step as in EDM, so 2N - 1 evaluations.
 *  - Classifier-free guidance (Ho & Salimans 2022, arXiv 2207.12598) on the velocity:
 *    v = v_u + s (v_c - v_u), computed as v_c + (s - 1)(v_c - v_u) (the same value; exactly v_c at
 *    s = 1), on all latent channels (DiT's forward_with_cfg guided only the first 3 by default).
 *    The conditional and null-class rows run as one forward of 2B. s = 1 runs the conditional
 *    forward alone.
 *  - Guidance interval (Kynkaanniemi et al. 2024, arXiv 2404.07724): guidance only where
 *    tLo <= t <= tHi for the t of an evaluation; elsewhere the conditional velocity alone (one
 *    forward of B).
 * Memory: each step runs in its own tidy, so only the current x outlives a step.
 */
import * as E from '../../engine/index.js';
import type { DiffusionTransformer } from './model.js';

export type ODESampler = 'euler' | 'heun';

/** A velocity field: x_t [B, ...] at time t -> v [B, ...] (x's shape). */
export type VelocityFn = (x: E.Tensor, t: number) => E.Tensor;

export interface ODEOptions {
  /** 'euler' (default) or 'heun'. */
  sampler?: ODESampler;
  /** Steps N of the uniform grid (default 50). */
  steps?: number;
  /**
   * Start time in (0, 1] (default 1: from pure noise). Below 1 the ODE runs from a partly noised
   * latent x_{tStart} = (1 - tStart) x + tStart eps (the caller builds it) over N steps of
   * [tStart, 0], as SDEdit-style editing and decoder post-training do.
   */
  tStart?: number;
}

/** The grid tStart = t_0 > t_1 > ... > t_N = 0, uniform in t (tStart default 1). */
export function flowTimeGrid(steps: number, tStart = 1): number[] {
  if (!Number.isInteger(steps) || steps < 1) throw new RangeError(`flowTimeGrid: steps must be a positive integer, got ${steps}`);
  if (!(tStart > 0 && tStart <= 1)) throw new RangeError(`flowTimeGrid: tStart must be in (0, 1], got ${tStart}`);
  return Array.from({ length: steps + 1 }, (_, i) => (i === steps ? 0 : tStart * (1 - i / steps)));
}

/** Velocity evaluations of a sampler over N steps: N (Euler) or 2N - 1 (Heun). */
export function odeEvaluations(sampler: ODESampler, steps: number): number {
  return sampler === 'heun' ? 2 * steps - 1 : steps;
}

function checkSampler(s: unknown): ODESampler {
  if (s !== 'euler' && s !== 'heun') throw new Error(`sampleFlowODE: sampler must be 'euler' or 'heun', got ${String(s)}`);
  return s;
}

/**
 * Integrates dx/dt = velocity(x, t) from t = tStart (default 1, x = noise; below 1 x is a partly
 * noised latent) to t = 0 and returns x_0 (a new tensor; `noise` is not consumed). Each step runs
 * in a scope that frees the previous x and what the velocity function made, so it may create
 * tensors freely.
 */
export function sampleFlowODE(velocity: VelocityFn, noise: E.Tensor, o: ODEOptions = {}): E.Tensor {
  const sampler = checkSampler(o.sampler ?? 'euler');
  const ts = flowTimeGrid(o.steps ?? 50, o.tStart ?? 1);
  const v = (x: E.Tensor, t: number): E.Tensor => {
    const out = velocity(x, t);
    if (!E.isTensor(out) || out.shape.length !== x.shape.length || out.shape.some((d, i) => d !== x.shape[i])) {
      throw new Error(`sampleFlowODE: the velocity at t = ${t} must have x's shape ${E.fmtShape(x.shape)}, got ${E.isTensor(out) ? E.fmtShape(out.shape) : String(out)}`);
    }
    return out;
  };
  const step = (t0: number, t1: number) => (x: E.Tensor): E.Tensor => {
    const h = t1 - t0;
    const d = v(x, t0);
    const euler = x.add(d.mul(h));
    if (sampler === 'euler' || t1 === 0) return euler;
    return x.add(d.add(v(euler, t1)).mul(h / 2));
  };
  return E.chain(noise, ts.slice(0, -1).map((t0, i) => step(t0, ts[i + 1]!)));
}

export interface DiffusionGuidanceOptions {
  /** Guidance scale s (default 1 = conditional sampling, one forward per evaluation). */
  cfgScale?: number;
  /** Guide only for tLo <= t <= tHi (default: everywhere). */
  guidanceInterval?: readonly [number, number] | null;
}

/**
 * The guided velocity of `model` for class ids `classes` (i32 [B]) as a VelocityFn. Inference
 * only: call it under noGrad with the model in eval mode (sampleDiffusion does).
 */
export function guidedVelocity(model: DiffusionTransformer, classes: E.Tensor, o: DiffusionGuidanceOptions = {}): VelocityFn {
  const s = o.cfgScale ?? 1;
  if (!Number.isFinite(s)) throw new RangeError(`guidedVelocity: cfgScale must be finite, got ${s}`);
  const [lo, hi] = o.guidanceInterval ?? [-Infinity, Infinity];
  if (!(lo <= hi)) throw new RangeError(`guidedVelocity: guidanceInterval must be [tLo, tHi] with tLo <= tHi, got [${lo}, ${hi}]`);
  const cls = model.classTensor(classes, 'guidedVelocity');
  const B = cls.shape[0]!;
  return (x, t) => {
    if (s === 1 || t < lo || t > hi) return model.forward(x, t, cls);
    const nul = E.full([B], model.nullClass, { backend: model.backend, dtype: 'i32' });
    const both = model.forward(E.concat([x, x], 0), t, E.concat([cls, nul], 0));
    const vc = both.slice([[0, B]]);
    const vu = both.slice([[B, 2 * B]]);
    return vc.add(vc.sub(vu).mul(s - 1));
  };
}

export interface DiffusionSampleOptions extends ODEOptions, DiffusionGuidanceOptions {
  /** Source of the starting noise (default: the engine's default generator). */
  generator?: E.Generator;
  /** Explicit starting noise x_1 [B, C, h, w] (then `generator` is not used). */
  noise?: E.Tensor;
}

/**
 * Samples normalized latents [B, C, h, w] for class ids `classes` (i32 [B] or numbers): noise
 * x_1 ~ N(0, I) from `generator` (B * C * h * w normals), then the ODE to t = 0. The model is put
 * in eval mode for the call (and restored); nothing is read back.
 */
export function sampleDiffusion(model: DiffusionTransformer, classes: E.Tensor | readonly number[], o: DiffusionSampleOptions = {}): E.Tensor {
  const wasTraining = model.training;
  model.eval();
  try {
    return E.noGrad(() => E.tidy(() => {
      const cls = model.classTensor(classes, 'sampleDiffusion');
      const shape = [cls.shape[0]!, ...model.latentShape];
      if (o.noise && (o.noise.shape.length !== 4 || o.noise.shape.some((d, i) => d !== shape[i]))) {
        throw new Error(`sampleDiffusion: noise must be ${E.fmtShape(shape)}, got ${E.fmtShape(o.noise.shape)}`);
      }
      const noise = o.noise ?? E.randn(shape, { backend: model.backend, ...(o.generator ? { generator: o.generator } : {}) });
      return sampleFlowODE(guidedVelocity(model, cls, o), noise, o);
    }));
  } finally {
    model.train(wasTraining);
  }
}
