/**
 * Noise-augmented decoding: the continuous analogue of RobusTok's latent perturbation, after
 * l-DeTok ("Latent Denoising Makes Good Visual Tokenizers", arXiv 2507.15856), which trains the
 * decoder to reconstruct the clean image from interpolated-noise latents
 *   z' = (1 - tau) * z + tau * gamma * eps,   eps ~ N(0, I),  tau ~ U(0, tau_max) per image
 * (l-DeTok: tau ~ U(0, 1) and gamma = 3 on every image). Here, as the VQ perturbation does:
 *  1. only the first floor(beta * B) images of the (shuffled) batch are noised (perturbation.ts
 *     step 4), so the decoder keeps seeing clean latents too;
 *  2. tau_max is annealed with the VQ schedule r(t) (1 for 20% of training, linear to 0.5 at
 *     60%, then 0.5): tau_max_t = r(t) * tau_max;
 *  3. gamma is in units of the batch's latent standard deviation (detached), so the noise has
 *     the same relative strength whatever scale the KL weight leaves the latents at (l-DeTok's
 *     latents are unit-scale by construction, our KL tokenizer's need not be);
 *  4. it is applied after the KL term, so it only changes what the decoder sees; the gradient
 *     reaches the encoder through (1 - tau) * z, as in l-DeTok.
 * Validation reconstructs the clean latents (eval mode applies no noise).
 *
 * Presets: 'none'; 'paper-continuous' = { beta 0.1 (RobusTok's fraction of perturbed images),
 * tauMax 1 and gamma 3 (l-DeTok's noise), annealed }.
 */
import * as E from '../../engine/index.js';
import { annealFactor, numPerturbedImages } from './perturbation.js';

export interface LatentNoiseConfig {
  /** Fraction of the images of a batch whose latents are noised. */
  beta: number;
  /** tau ~ U(0, tauMax) per noised image; tau = 1 is pure noise. */
  tauMax: number;
  /** Noise scale in units of the batch's latent std. */
  gamma: number;
  /** Anneal tauMax with r(t) (default true). */
  anneal?: boolean;
}

export type LatentNoisePreset = 'none' | 'paper-continuous';

export const LATENT_NOISE_PRESETS: Record<LatentNoisePreset, Required<LatentNoiseConfig>> = {
  none: { beta: 0, tauMax: 0, gamma: 3, anneal: true },
  'paper-continuous': { beta: 0.1, tauMax: 1, gamma: 3, anneal: true },
};

/** A preset name or config -> a validated config with every field set. */
export function resolveLatentNoise(n: LatentNoisePreset | LatentNoiseConfig): Required<LatentNoiseConfig> {
  const c = typeof n === 'string' ? LATENT_NOISE_PRESETS[n] : n;
  if (!c || typeof c !== 'object') throw new Error(`latent noise: unknown preset '${String(n)}' (use ${Object.keys(LATENT_NOISE_PRESETS).join(', ')} or a config)`);
  const r = { beta: c.beta, tauMax: c.tauMax, gamma: c.gamma, anneal: c.anneal ?? true };
  if (!(typeof r.beta === 'number' && r.beta >= 0 && r.beta <= 1)) throw new RangeError(`latent noise: beta must be in [0, 1], got ${r.beta}`);
  if (!(typeof r.tauMax === 'number' && r.tauMax >= 0 && r.tauMax <= 1)) throw new RangeError(`latent noise: tauMax must be in [0, 1], got ${r.tauMax}`);
  if (!(typeof r.gamma === 'number' && Number.isFinite(r.gamma) && r.gamma >= 0)) throw new RangeError(`latent noise: gamma must be a finite number >= 0, got ${r.gamma}`);
  if (typeof r.anneal !== 'boolean') throw new RangeError(`latent noise: anneal must be a boolean, got ${String(r.anneal)}`);
  return r;
}

/** The schedule at a step: tauMax_t = r(t) * tauMax (no step: unchanged). */
export function annealedLatentNoise(n: Required<LatentNoiseConfig>, step?: number, totalSteps?: number): Required<LatentNoiseConfig> {
  if (!n.anneal || step === undefined || totalSteps === undefined) return n;
  return { ...n, tauMax: annealFactor(step, totalSteps) * n.tauMax };
}

export interface LatentNoiseResult {
  /** [B, T, C]: the first `numImages` images noised, the rest as given. */
  z: E.Tensor;
  numImages: number;
  /** f32 [numImages]: tau per noised image; null when none. */
  tau: E.Tensor | null;
}

/** Noises the first floor(beta * B) images of latents z [B, T, C] (random numbers from `generator`). */
export function noiseLatents(z: E.Tensor, n: Pick<LatentNoiseConfig, 'beta' | 'tauMax' | 'gamma'>, generator: E.Generator): LatentNoiseResult {
  if (z.rank !== 3) throw new Error(`noiseLatents: expected latents [B, T, C], got ${E.fmtShape(z.shape)}`);
  const B = z.shape[0]!;
  const m = numPerturbedImages(B, n.beta);
  if (m === 0 || n.tauMax === 0 || z.size === 0) return { z, numImages: 0, tau: null };
  const backend = z.backend;
  const [, T, C] = z.shape as [number, number, number];
  const tau = E.rand([m], { generator, backend, high: n.tauMax });
  const eps = E.randn([m, T, C], { generator, backend });
  // Scalar std of the whole batch's latents, no gradient (a noise scale, not a learned quantity).
  const scale = E.noGrad(() => z.detach().var().add(1e-12).sqrt().mul(n.gamma));
  const t3 = tau.reshape([m, 1, 1]);
  const head = z.slice([[0, m]]);
  const noised = head.mul(t3.neg().add(1)).add(eps.mul(scale).mul(t3));
  return { z: m === B ? noised : E.concat([noised, z.slice([[m, B]])], 0), numImages: m, tau };
}
