/**
 * Rectified flow / flow matching objective (browser-safe). Rectified flow (Liu et al. 2022,
 * arXiv 2209.03003) and flow matching with the linear path (Lipman et al. 2022, arXiv 2210.02747;
 * SiT's "Linear" interpolant), in the time convention of SD3 (Esser et al. 2024, arXiv 2403.03206)
 * and cloneofsimo/minRF rf.py: t = 0 is data, t = 1 is noise (SiT runs time the other way).
 *  1. x_t = (1 - t) x + t eps, eps ~ N(0, I)          (minRF: zt = (1 - texp) * x + texp * z1)
 *  2. the regression target is the path's velocity dx_t/dt = eps - x   (minRF: z1 - x)
 *  3. t ~ logit-normal: t = sigmoid(n), n ~ N(mean, std^2) (SD3 sec. 3.1, default mean 0, std 1:
 *     weight on the middle of the path, where the velocity is hardest to predict), or U(0, 1)
 *     as SiT / minRF's default;
 *  4. loss = mean over all elements of (v_theta(x_t, t, y) - (eps - x))^2.
 * Draw order from the generator: t (B numbers), then eps (x.size numbers), so a run is reproducible
 * from the generator state alone. Class dropout is the model's (model.ts).
 */
import * as E from '../../engine/index.js';

export type TimeSampling = 'logit-normal' | 'uniform';

export interface FlowTimeOptions {
  /** 'logit-normal' (default, SD3) or 'uniform' (SiT). */
  timeSampling?: TimeSampling;
  /** Location of the logit-normal (default 0). */
  timeMean?: number;
  /** Scale of the logit-normal (default 1). */
  timeStd?: number;
}

/** Anything that predicts a velocity: forward(x_t [B, ...], t f32 [B], y i32 [B]) -> [B, ...]. */
export interface VelocityModel {
  forward(x: E.Tensor, t: E.Tensor, y: E.Tensor): E.Tensor;
}

/** n training times t in (0, 1) (f32 [n]) drawn from `generator` on `backend`. */
export function sampleFlowTimes(n: number, generator: E.Generator, backend: E.Backend, o: FlowTimeOptions = {}): E.Tensor {
  const kind = o.timeSampling ?? 'logit-normal';
  if (kind === 'uniform') return E.rand([n], { generator, backend });
  if (kind !== 'logit-normal') throw new Error(`sampleFlowTimes: timeSampling must be 'logit-normal' or 'uniform', got ${String(kind)}`);
  const mean = o.timeMean ?? 0;
  const std = o.timeStd ?? 1;
  if (!Number.isFinite(mean) || !(std > 0 && Number.isFinite(std))) throw new RangeError(`sampleFlowTimes: need a finite timeMean and timeStd > 0, got ${mean}, ${std}`);
  return E.randn([n], { generator, backend, mean, std }).sigmoid();
}

/** t [B] as [B, 1, ..., 1] to broadcast over x of rank r. */
function perSample(t: E.Tensor, rank: number): E.Tensor {
  return t.reshape([t.size, ...Array.from({ length: rank - 1 }, () => 1)]);
}

/** The path at t: x_t = (1 - t) x + t eps and its velocity eps - x (x, eps [B, ...], t f32 [B]). */
export function flowInterpolate(x: E.Tensor, t: E.Tensor, eps: E.Tensor): { xt: E.Tensor; target: E.Tensor } {
  const B = x.shape[0];
  if (t.rank !== 1 || t.shape[0] !== B) throw new Error(`flowInterpolate: t must be [${B}] for x ${E.fmtShape(x.shape)}, got ${E.fmtShape(t.shape)}`);
  if (eps.shape.length !== x.shape.length || eps.shape.some((d, i) => d !== x.shape[i])) {
    throw new Error(`flowInterpolate: eps ${E.fmtShape(eps.shape)} does not match x ${E.fmtShape(x.shape)}`);
  }
  const tb = perSample(t, x.rank);
  return { xt: x.mul(tb.neg().add(1)).add(eps.mul(tb)), target: eps.sub(x) };
}

export interface FlowPairs {
  /** Noisy inputs x_t [B, ...]. */
  xt: E.Tensor;
  /** Times f32 [B]. */
  t: E.Tensor;
  /** Velocity targets eps - x [B, ...]. */
  target: E.Tensor;
  /** The noise [B, ...]. */
  eps: E.Tensor;
}

/** Draws t then eps from `generator` (on x's backend) and builds the training pairs for clean latents x [B, ...]. */
export function flowMatchingPairs(x: E.Tensor, generator: E.Generator, o: FlowTimeOptions = {}): FlowPairs {
  if (x.dtype !== 'f32' || x.rank < 2) throw new Error(`flowMatchingPairs: x must be f32 [B, ...], got ${x.describe()}`);
  const t = sampleFlowTimes(x.shape[0]!, generator, x.backend, o);
  const eps = E.randn(x.shape, { generator, backend: x.backend });
  return { ...flowInterpolate(x, t, eps), t, eps };
}

/** Flow-matching loss: mean over all elements of (model(x_t, t, y) - (eps - x))^2 (differentiable scalar). */
export function flowMatchingLoss(model: VelocityModel, x: E.Tensor, y: E.Tensor, generator: E.Generator, o: FlowTimeOptions = {}): E.Tensor {
  const { xt, t, target } = flowMatchingPairs(x, generator, o);
  return E.mseLoss(model.forward(xt, t, y), target);
}
