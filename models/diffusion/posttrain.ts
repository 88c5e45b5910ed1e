/**
 * Decoder post-training data from a diffusion generator (browser-safe): the continuous analogue of
 * "Image Tokenizer Needs Post-Training" (arXiv 2509.12474), whose decoder learns the generator's
 * output distribution with encoder and generator frozen. For discrete tokens the paper keeps each
 * ground-truth token with probability sigma (the preservation ratio) and lets the AR generator
 * fill in the rest (models/tokenizer/posttrain.ts). For continuous latents the same idea, a latent
 * that is partly the image's own and partly the generator's, is SDEdit-like:
 *   z_{t*} = (1 - t*) z + t* eps        (the latent noised to t*; t* plays 1 - sigma's role),
 *   z'     = ODE(z_{t*}; t* -> 0)       (the frozen generator denoises it, guided, for the image's class),
 * and the decoder is trained to map z' back to the source image with the main training's
 * reconstruction losses (DecoderPostTrainer.stepLatents). Default t* = 0.3 (the latent keeps
 * ~70% of its signal amplitude; the noise std is 0.3 of a unit-std normalized latent, the
 * signal-to-noise ratio (0.7 / 0.3)^2 ~ 5.4). t* = 0 returns the clean latent exactly.
 * The ODE takes round(steps * t*) steps of the [t*, 0] interval (at least 1), so a partial
 * trajectory has the step size of a full `steps`-step sampling run.
 */
import * as E from '../../engine/index.js';
import type { DiffusionTransformer } from './model.js';
import { guidedVelocity, sampleFlowODE, type DiffusionGuidanceOptions, type ODESampler } from './sample.js';

/** The default noise level t* of the post-training latents. */
export const DEFAULT_POSTTRAIN_T = 0.3;

export interface DenoisedLatentOptions extends DiffusionGuidanceOptions {
  /** Noise level t* in [0, 1] (default DEFAULT_POSTTRAIN_T). */
  tStar?: number;
  /** Steps of a full [1, 0] run; the partial run takes round(steps * t*) (default 50). */
  steps?: number;
  sampler?: ODESampler;
  /** Source of eps (default: the engine's default generator). */
  generator?: E.Generator;
}

/**
 * Noises clean normalized latents z [B, C, h, w] to t* and lets the frozen `model` denoise them
 * back to t = 0 conditioned on `classes`; returns the latents (a new tensor, no gradient).
 */
export function buildDenoisedLatents(model: DiffusionTransformer, z: E.Tensor, classes: E.Tensor | readonly number[], o: DenoisedLatentOptions = {}): E.Tensor {
  const tStar = o.tStar ?? DEFAULT_POSTTRAIN_T;
  if (!(tStar >= 0 && tStar <= 1)) throw new RangeError(`buildDenoisedLatents: tStar must be in [0, 1], got ${tStar}`);
  const shape = [z.shape[0]!, ...model.latentShape];
  if (z.rank !== 4 || z.shape.some((d, i) => d !== shape[i])) throw new Error(`buildDenoisedLatents: expected latents ${E.fmtShape(shape)}, got ${E.fmtShape(z.shape)}`);
  if (tStar === 0) return E.noGrad(() => E.tidy(() => z.detach().contiguous()));
  const steps = Math.max(1, Math.round((o.steps ?? 50) * tStar));
  const wasTraining = model.training;
  model.eval();
  try {
    return E.noGrad(() => E.tidy(() => {
      const cls = model.classTensor(classes, 'buildDenoisedLatents');
      const eps = E.randn(z.shape, { backend: z.backend, ...(o.generator ? { generator: o.generator } : {}) });
      const zt = z.detach().mul(1 - tStar).add(eps.mul(tStar));
      return sampleFlowODE(guidedVelocity(model, cls, o), zt, { steps, tStart: tStar, ...(o.sampler ? { sampler: o.sampler } : {}) });
    }));
  } finally {
    model.train(wasTraining);
  }
}
