/**
 * One tokenizer optimization step (browser-safe): forward with the perturbation schedule,
 * backward of the total loss, optimizer update; optionally with the perceptual loss and the
 * hinge GAN (taming-transformers' VQLPIPSWithDiscriminator):
 *
 *   generator:     total = rec + codebook + commit + pw * perceptual + d_weight * g_loss
 *                  d_weight = adaptive weight (discriminator.ts) * discWeight, 0 before `start`
 *   discriminator: hinge loss on the real batch and the step's reconstructions (detached), its
 *                  own optimizer; from step `start` on.
 *
 * The discriminator scores the reconstructions the generator step computed (before the generator
 * update), as TiTok/MaskGIT-style trainers do; taming runs a second autoencoder forward instead.
 * The step is its own scope: the graph and every temporary are freed when it returns; the
 * returned terms are detached scalars the caller owns.
 */
import * as E from '../../engine/index.js';
import type { Optimizer } from '../../nn/index.js';
import { adaptiveGanWeight, discriminatorStep, hingeGLoss, type PatchDiscriminator } from './discriminator.js';
import type { ExtraLosses, VQTokenizer } from './model.js';
import type { PerceptualLoss } from './perceptual.js';
import { annealFactor } from './perturbation.js';

export interface TokenizerGanOptions {
  discriminator: PatchDiscriminator;
  /** The discriminator's optimizer. */
  optimizer: Optimizer<{ lr: number }>;
  /** taming's discriminator_weight: multiplies the adaptive weight. */
  weight: number;
  /** 1-based step from which the GAN term and the discriminator updates are on (default 1: always; taming's disc_start). */
  start?: number;
}

export interface TokenizerStepOptions {
  /** 1-based step and total steps (the perturbation's annealing schedule; the GAN's start). */
  step?: number;
  totalSteps?: number;
  extraLosses?: ExtraLosses;
  /** Perceptual loss and its weight (term `perceptual` is the unweighted loss). */
  perceptual?: { loss: PerceptualLoss; weight: number };
  /** Hinge GAN with the adaptive weight (terms g_loss, d_weight, d_loss, logits_real, logits_fake; 0 before `start`). */
  gan?: TokenizerGanOptions;
}

/** Whether the GAN is on at `step` (no step given: on). */
export function ganActive(gan: Pick<TokenizerGanOptions, 'start'>, step: number | undefined): boolean {
  return step === undefined || step >= (gan.start ?? 1);
}

/**
 * The host values a tokenizer step at `o.step` depends on, as a captured step's key
 * (E.captureStep's `key`): the annealing factor of the perturbation / latent-noise schedule,
 * whether the GAN is on, and the step itself when extra losses see it. Steps with equal keys run
 * the same ops with the same constants, so one capture serves them.
 */
export function tokenizerStepKey(o: TokenizerStepOptions): string {
  const anneal = o.step !== undefined && o.totalSteps !== undefined ? annealFactor(o.step, o.totalSteps) : 1;
  return `${anneal}|${o.gan ? ganActive(o.gan, o.step) : '-'}|${o.extraLosses ? o.step : '-'}`;
}

export function tokenizerTrainStep(model: VQTokenizer, optimizer: Optimizer<{ lr: number }>, x: E.Tensor, o: TokenizerStepOptions = {}): Record<string, E.Tensor> {
  return E.tidy(() => {
    const out = model.forward(x, {
      ...(o.step !== undefined ? { step: o.step } : {}),
      ...(o.totalSteps !== undefined ? { totalSteps: o.totalSteps } : {}),
      ...(o.extraLosses ? { extraLosses: o.extraLosses } : {}),
    });
    const terms: Record<string, E.Tensor> = {};
    for (const [k, v] of Object.entries(out.losses)) if (v) terms[k] = v;
    let total = out.losses.total;
    // taming's nll_loss: what the adaptive weight balances the GAN term against.
    let nll = out.losses.rec;
    if (o.perceptual && o.perceptual.weight !== 0) {
      const p = o.perceptual.loss.forward(out.recon, x);
      terms.perceptual = p;
      const pw = p.mul(o.perceptual.weight);
      nll = nll.add(pw);
      total = total.add(pw);
    }
    const gan = o.gan;
    const ganOn = !!gan && ganActive(gan, o.step);
    if (gan && ganOn) {
      const disc = gan.discriminator;
      // The discriminator's parameters take no gradient from the generator's loss.
      const dParams = disc.parameters();
      for (const p of dParams) p.requireGrad(false);
      let g: E.Tensor;
      try {
        g = hingeGLoss(disc.forward(out.recon));
      } finally {
        for (const p of dParams) p.requireGrad(true);
      }
      const w = adaptiveGanWeight(nll, g, model.decoder.lastLayer, gan.weight);
      terms.g_loss = g;
      terms.d_weight = w;
      total = total.add(g.mul(w));
    }
    terms.total = total;
    optimizer.zeroGrad();
    total.backward();
    optimizer.step();
    if (gan) {
      if (ganOn) Object.assign(terms, discriminatorStep(gan.discriminator, gan.optimizer, x, out.recon));
      else {
        const zero = E.full([], 0, { backend: x.backend });
        for (const k of ['g_loss', 'd_weight', 'd_loss', 'logits_real', 'logits_fake']) terms[k] = zero;
      }
    }
    return Object.fromEntries(Object.entries(terms).map(([k, v]) => [k, v.detach()]));
  });
}
