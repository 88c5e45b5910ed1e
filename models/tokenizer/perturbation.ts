/**
 * Latent perturbation (RobusTok, "Robust Latent Matters", arXiv 2503.08354; its
 * latent_perturbation.py `add_perturbation`), on the GPU with no readbacks:
 *  1. the normalized latents' delta nearest normalized codes (nearestCodes top-k; slot 0 = the
 *     clean code);
 *  2. per token, with probability alpha a slot drawn uniformly from 0..delta-1, else slot 0
 *     (as the paper: u = rand(), s = randint(0, delta), s = 0 where u > alpha);
 *  3. that code, l2-normalized, with the straight-through estimator z + sg(e - z);
 *  4. only the first floor(beta * B) images of the batch take it (the paper's
 *     `arange(B) < int(B * beta)`: the batch is shuffled, so this is a random subset of exactly
 *     floor(beta * B) images; note that with beta = 0.1 a batch below 10 images has none), the
 *     others keep the clean z_q;
 *  5. the caller applies it after the codebook/commitment losses, so it only changes what the
 *     decoder sees (reconstruction, perceptual and GAN losses);
 *  6. annealing: r(t) = 1 for the first 20% of training, linear to 0.5 at 60%, then 0.5;
 *     delta_t = int(r * delta), alpha_t = r * alpha.
 * A token keeps its clean code when slot 0 is drawn, so the expected fraction of replaced tokens
 * is alpha * (delta - 1) / delta.
 */
import * as E from '../../engine/index.js';
import { l2Normalize } from './quantizer.js';

export interface PerturbationConfig {
  /** Per-token probability of drawing a random slot. */
  alpha: number;
  /** Fraction of the images of a batch that are perturbed. */
  beta: number;
  /** Number of nearest codes to draw from; when absent, round(deltaFraction * K). */
  delta?: number;
  /** delta as a fraction of the codebook size (default 100 / 4096, the paper's ratio). */
  deltaFraction?: number;
  /** Apply the annealing schedule r(t) (default true). */
  anneal?: boolean;
}

export type PerturbationPreset = 'none' | 'paper';

/** The paper's delta / K: 100 codes of 4096. */
export const PAPER_DELTA_FRACTION = 100 / 4096;

export const PERTURBATION_PRESETS: Record<PerturbationPreset, PerturbationConfig> = {
  none: { alpha: 0, beta: 0, deltaFraction: PAPER_DELTA_FRACTION, anneal: true },
  paper: { alpha: 1, beta: 0.1, deltaFraction: PAPER_DELTA_FRACTION, anneal: true },
};

export interface ResolvedPerturbation {
  alpha: number;
  beta: number;
  delta: number;
  anneal: boolean;
}

/** A preset name or config -> concrete {alpha, beta, delta, anneal} for a codebook of K codes. */
export function resolvePerturbation(p: PerturbationPreset | PerturbationConfig, K: number): ResolvedPerturbation {
  const c = typeof p === 'string' ? PERTURBATION_PRESETS[p] : p;
  if (!c) throw new Error(`perturbation: unknown preset '${String(p)}' (use ${Object.keys(PERTURBATION_PRESETS).join(', ')} or a config)`);
  const delta = c.delta ?? Math.max(1, Math.round((c.deltaFraction ?? PAPER_DELTA_FRACTION) * K));
  if (!(c.alpha >= 0 && c.alpha <= 1)) throw new RangeError(`perturbation: alpha must be in [0, 1], got ${c.alpha}`);
  if (!(c.beta >= 0 && c.beta <= 1)) throw new RangeError(`perturbation: beta must be in [0, 1], got ${c.beta}`);
  if (!(Number.isInteger(delta) && delta >= 1 && delta <= K)) throw new RangeError(`perturbation: delta must be an integer in [1, K = ${K}], got ${delta}`);
  if (delta > E.NEAREST_CODES_MAX_K_GPU) throw new RangeError(`perturbation: delta = ${delta} exceeds nearestCodes' GPU limit of ${E.NEAREST_CODES_MAX_K_GPU}`);
  return { alpha: c.alpha, beta: c.beta, delta, anneal: c.anneal ?? true };
}

/** r(t): 1 up to 20% of training, linear down to 0.5 at 60%, then 0.5. */
export function annealFactor(step: number, totalSteps: number): number {
  if (!(totalSteps > 0)) return 1;
  const t = step / totalSteps;
  if (t <= 0.2) return 1;
  if (t >= 0.6) return 0.5;
  return 1 - (0.5 * (t - 0.2)) / 0.4;
}

/** The schedule at a step: alpha_t = r * alpha, delta_t = int(r * delta) (at least 1). */
export function annealedPerturbation(p: ResolvedPerturbation, step?: number, totalSteps?: number): ResolvedPerturbation {
  if (!p.anneal || step === undefined || totalSteps === undefined) return p;
  const r = annealFactor(step, totalSteps);
  return Object.assign({}, p, { alpha: r * p.alpha, delta: Math.max(1, Math.trunc(r * p.delta)) });
}

/** Images of a batch of B that are perturbed: the paper's int(B * beta). */
export function numPerturbedImages(B: number, beta: number): number {
  return Math.floor(B * beta);
}

export interface PerturbationResult {
  /** [B, T, d]: the first `numImages` images perturbed (straight-through to zn), the rest zq. */
  z: E.Tensor;
  numImages: number;
  /** i32 [numImages, T]: the drawn slot (0 = clean) per perturbed token; null when numImages is 0. */
  slots: E.Tensor | null;
  /** i32 [numImages, T]: the code used per perturbed token. */
  codes: E.Tensor | null;
  /** i32 [numImages, T, delta]: the delta nearest codes per perturbed token. */
  candidates: E.Tensor | null;
}

/**
 * Perturbs quantized latents. zn: l2-normalized continuous latents [B, T, d] (with gradient);
 * zq: the clean straight-through quantized latents [B, T, d]; codebook: the raw codebook [K, d]
 * (normalized here, no gradient). Random numbers come from `generator` on zn's device.
 */
export function perturbLatents(zn: E.Tensor, zq: E.Tensor, codebook: E.Tensor, p: Pick<ResolvedPerturbation, 'alpha' | 'beta' | 'delta'>, generator: E.Generator): PerturbationResult {
  if (zn.rank !== 3 || !E.shapesEqual(zn.shape, zq.shape) || codebook.rank !== 2 || codebook.shape[1] !== zn.shape[2]) {
    throw new Error(`perturbLatents: expected zn and zq [B, T, d] and codebook [K, d], got ${E.fmtShape(zn.shape)}, ${E.fmtShape(zq.shape)}, ${E.fmtShape(codebook.shape)}`);
  }
  const [B, T, d] = [zn.shape[0]!, zn.shape[1]!, zn.shape[2]!];
  const K = codebook.shape[0]!;
  if (!(Number.isInteger(p.delta) && p.delta >= 1 && p.delta <= K)) throw new RangeError(`perturbLatents: delta must be an integer in [1, ${K}], got ${p.delta}`);
  const m = numPerturbedImages(B, p.beta);
  if (m === 0 || T === 0) return { z: zq, numImages: 0, slots: null, codes: null, candidates: null };
  const n = m * T;
  const backend = zn.backend;
  const zp = zn.slice([[0, m]]).reshape([n, d]);
  // Steps 1-2 and the drawn code, without gradient (the straight-through step 3 carries it).
  const { slots, codes, candidates, e } = E.noGrad(() => E.tidy(() => {
    const near = E.nearestCodes(zp.detach(), l2Normalize(codebook.detach()), p.delta);
    const u = E.rand([n], { generator, backend });
    const r = E.randint(0, p.delta, [n], { generator, backend });
    const s = E.where(u.gt(p.alpha), 0, r);
    const chosen = near.indices.takeAlongAxis(s.reshape([n, 1]), 1).reshape([n]);
    return { slots: s, codes: chosen, candidates: near.indices, e: l2Normalize(E.indexSelect(codebook.detach(), 0, chosen)) };
  }));
  const zpert = zp.add(e.sub(zp).detach()).reshape([m, T, d]);
  const z = m === B ? zpert : E.concat([zpert, zq.slice([[m, B]])], 0);
  return { z, numImages: m, slots: slots.reshape([m, T]), codes: codes.reshape([m, T]), candidates: candidates.reshape([m, T, p.delta]) };
}
