/**
 * The KL tokenizer's bottleneck, as latent-diffusion's `DiagonalGaussianDistribution`
 * (ldm/modules/distributions/distributions.py):
 *   moments = encoder output [B, T, 2C] -> mean = moments[..., :C], logvar = moments[..., C:]
 *   logvar clamped to [-30, 20];  std = exp(logvar / 2)
 *   sample = mean + std * eps  (training);  mode = mean  (evaluation, encoding for the generator)
 *   KL(q || N(0, I)) = 0.5 * sum_{T, C} (mean^2 + var - 1 - logvar), averaged over the batch
 * (ldm sums over C, H, W and its loss divides by the batch size: the same number).
 * Our tokens are [B, T, C] (T = h * w positions) where ldm's moments are [B, 2C, h, w].
 */
import * as E from '../../engine/index.js';

export const LOGVAR_MIN = -30;
export const LOGVAR_MAX = 20;

export interface GaussianPosterior {
  /** [B, T, C] */
  mean: E.Tensor;
  /** [B, T, C], clamped to [LOGVAR_MIN, LOGVAR_MAX]. */
  logvar: E.Tensor;
}

/** Splits encoder moments [B, T, 2C] into the posterior's mean and clamped log-variance. */
export function gaussianPosterior(moments: E.Tensor): GaussianPosterior {
  if (moments.rank !== 3 || moments.shape[2]! % 2) throw new Error(`gaussianPosterior: expected moments [B, T, 2C], got ${E.fmtShape(moments.shape)}`);
  const C = moments.shape[2]! / 2;
  const mean = moments.slice([null, null, [0, C]]);
  const logvar = moments.slice([null, null, [C, 2 * C]]).maximum(LOGVAR_MIN).minimum(LOGVAR_MAX);
  return { mean, logvar };
}

/** mean + exp(logvar / 2) * eps, eps ~ N(0, I) from `generator` (the reparameterization trick). */
export function samplePosterior(p: GaussianPosterior, generator: E.Generator): E.Tensor {
  const eps = E.randn(p.mean.shape, { generator, backend: p.mean.backend });
  return p.mean.add(p.logvar.mul(0.5).exp().mul(eps));
}

/** 0.5 * sum over T and C of (mean^2 + var - 1 - logvar), averaged over the batch: a scalar. */
export function klDivergence(p: GaussianPosterior): E.Tensor {
  const B = p.mean.shape[0]!;
  const perElement = p.mean.square().add(p.logvar.exp()).sub(1).sub(p.logvar);
  return perElement.sum().mul(0.5 / Math.max(1, B));
}
