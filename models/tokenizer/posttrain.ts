/**
 * Decoder post-training ("Image Tokenizer Needs Post-Training", arXiv 2509.12474), browser-safe.
 * (Continuous tokenizers: the latents come from models/diffusion/posttrain.ts and the decoder
 * trains through DecoderPostTrainer.stepLatents.)
 *
 * Data: real images are encoded to their ground-truth tokens; the trained AR generator then runs
 * in raster order conditioned on the image's class, and at every step samples a token (guidance
 * on) and keeps the ground-truth token with probability sigma (the preservation ratio), else the
 * sampled one. Later steps condition on this mixed prefix, so the mixed sequences carry the
 * generator's own errors in context. The decoder is then trained to map mixed tokens back to the
 * source images with the main training's reconstruction loss; encoder, codebook and generator
 * stay frozen and no latent perturbation is applied.
 */
import * as E from '../../engine/index.js';
import { AdamW, EMA } from '../../nn/index.js';
import type { ARTransformer } from '../ar/model.js';
import { sampleTokens, type ARSampleOptions } from '../ar/sample.js';
import type { VQTokenizer } from './model.js';

export interface MixedTokenOptions extends Omit<ARSampleOptions, 'override' | 'prefix'> {
  /** Probability of keeping the ground-truth token at each position (paper default 0.7). */
  sigma?: number;
  /** Draws the keep/replace choices (default: `generator`, else the default generator). */
  keepGenerator?: E.Generator;
}

export const DEFAULT_SIGMA = 0.7;

export interface MixedTokens {
  /** The mixed sequences, i32 [B, L]. */
  tokens: E.Tensor;
  /** 1 where the ground-truth token was kept, f32 [B, L]. */
  kept: E.Tensor;
}

/**
 * Mixed token sequences for a batch: ground-truth tokens i32 [B, L] (raster order, as the
 * generator was trained) and their classes; the generator runs with `opts` (temperature, top-k,
 * top-p, guidance). Nothing is read back.
 */
export function buildMixedTokens(generator: ARTransformer, gtTokens: E.Tensor, classes: E.Tensor | readonly number[], opts: MixedTokenOptions = {}): MixedTokens {
  const sigma = opts.sigma ?? DEFAULT_SIGMA;
  if (!(sigma >= 0 && sigma <= 1)) throw new RangeError(`buildMixedTokens: sigma must be in [0, 1], got ${sigma}`);
  if (gtTokens.rank !== 2 || gtTokens.dtype !== 'i32') throw new Error(`buildMixedTokens: ground-truth tokens must be i32 [B, L], got ${gtTokens.describe()}`);
  const [B, L] = gtTokens.shape as [number, number];
  if (L !== generator.seqLen) throw new Error(`buildMixedTokens: the generator makes ${generator.seqLen} tokens, the ground truth has ${L}`);
  const keepGen = opts.keepGenerator ?? opts.generator;
  return E.tidy(() => {
    const kept = E.zeros([B, L], { backend: gtTokens.backend });
    const { sigma: _s, keepGenerator: _k, ...sampleOpts } = opts;
    const tokens = sampleTokens(generator, classes, {
      ...sampleOpts,
      override: (t, sampled) => {
        const keep = E.bernoulli(sigma, [B], { backend: gtTokens.backend, ...(keepGen ? { generator: keepGen } : {}) });
        E.assign(kept.slice([null, [t, t + 1]]), keep.reshape([B, 1]));
        return E.where(keep, gtTokens.slice([null, [t, t + 1]]).reshape([B]), sampled);
      },
    });
    return { tokens, kept };
  });
}

export interface DecoderPostTrainOptions {
  lr?: number;
  /** AdamW betas (paper: 0.9, 0.95). */
  betas?: [number, number];
  weightDecay?: number;
  /** EMA decay of the decoder weights (0: no EMA). */
  emaDecay?: number;
}

/**
 * The decoder's trainer: AdamW over the decoder parameters only, an EMA of them, and a step that
 * decodes mixed tokens and regresses the source images with the tokenizer's reconstruction loss
 * (plus its extra losses, e.g. perceptual, when set). The codebook lookup is detached, so no
 * gradient reaches the codebook or the encoder.
 */
export class DecoderPostTrainer {
  readonly optimizer: AdamW;
  readonly ema: EMA | null;

  constructor(
    readonly tokenizer: VQTokenizer,
    opts: DecoderPostTrainOptions = {},
  ) {
    const named = tokenizer.decoder.namedParameters().map(([n, p]) => [`decoder.${n}`, p] as const);
    this.optimizer = new AdamW(named, { lr: opts.lr ?? 5e-5, betas: opts.betas ?? [0.9, 0.95], weightDecay: opts.weightDecay ?? 0 });
    const decay = opts.emaDecay ?? 0.999;
    this.ema = decay > 0 ? new EMA(named, { decay }) : null;
  }

  /** One step on images [B, C, H, W] and their mixed tokens i32 [B, h, w]; returns the detached loss (the step is its own scope). */
  step(images: E.Tensor, mixed: E.Tensor): E.Tensor {
    const tok = this.tokenizer;
    tok.decoder.train();
    return E.tidy(() => {
      const q = E.noGrad(() => tok.vq.lookup(mixed)); // [B, h, w, d], no path to the codebook
      return this.fit(images, tok.decode(q.permute([0, 3, 1, 2])), 'step');
    });
  }

  /**
   * KL tokenizer: one step on images and normalized latents [B, C, h, w] (e.g. denoised by a
   * diffusion generator, models/diffusion/posttrain.ts); returns the detached loss (the step is its own scope).
   */
  stepLatents(images: E.Tensor, latents: E.Tensor): E.Tensor {
    const tok = this.tokenizer;
    tok.decoder.train();
    return E.tidy(() => this.fit(images, tok.decodeLatents(latents.detach()), 'stepLatents'));
  }

  private fit(images: E.Tensor, recon: E.Tensor, what: string): E.Tensor {
    const tok = this.tokenizer;
    if (recon.shape.join() !== images.shape.join()) throw new Error(`DecoderPostTrainer.${what}: decoded ${E.fmtShape(recon.shape)} for images ${E.fmtShape(images.shape)}`);
    let loss = tok.cfg.recLoss === 'mse' ? E.mseLoss(recon, images) : E.l1Loss(recon, images);
    if (tok.extraLosses) for (const v of Object.values(tok.extraLosses({ x: images, recon, step: undefined, model: tok }))) loss = loss.add(v);
    this.optimizer.zeroGrad();
    loss.backward();
    this.optimizer.step();
    this.ema?.update();
    return loss.detach();
  }
}
