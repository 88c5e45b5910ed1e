/**
 * The VQ tokenizer: encoder -> l2-normalized vector quantizer -> (optional latent perturbation)
 * -> decoder, with the reconstruction (MSE or L1) and VQ losses, and a hook for extra losses
 * (perceptual, GAN) computed from the reconstruction. `arch` picks the encoder/decoder pair:
 * 'cnn' (default, VQGAN-style, cnn.ts) or 'vit' (patches + learnable latent tokens, vit.ts).
 * Both turn images into latent tokens [B, h*w, d] on an h x w grid and back, so codes are
 * i32 [B, h, w] either way.
 *
 * Parameter names: encoder.*, quantize.embedding.weight, decoder.* (taming-transformers style for
 * the CNN, TiTok style for the ViT).
 * Like the nn layers, forward/encode/decode do not free their intermediates: call them inside
 * E.tidy (trainLoop's step runs in one).
 */
import * as E from '../../engine/index.js';
import { Module, type InitOptions } from '../../nn/index.js';
import { Decoder, downFactor, Encoder, resolveCnnConfig, type CnnTokenizerConfig } from './cnn.js';
import { resolveVitConfig, VitDecoder, VitEncoder, type VitTokenizerConfig } from './vit.js';
import { annealedPerturbation, perturbLatents, resolvePerturbation, type PerturbationConfig, type PerturbationPreset, type ResolvedPerturbation } from './perturbation.js';
import { l2Normalize, VectorQuantizer } from './quantizer.js';

export type TokenizerArch = 'cnn' | 'vit';

/**
 * The fields of both architectures (inChannels, codebookSize and codeDim are shared; the others
 * are used by the `arch` they belong to, and all are validated). A config without `arch` is a CNN.
 */
export interface TokenizerConfig extends CnnTokenizerConfig, VitTokenizerConfig {
  /** Encoder/decoder architecture. */
  arch: TokenizerArch;
  /** Reconstruction loss. */
  recLoss: 'mse' | 'l1';
  /** Weight of the commitment term (0.25). */
  commitmentCost: number;
  /** Perturbation used by forward() in training mode. */
  perturbation: PerturbationPreset | PerturbationConfig;
  /** Seed of the perturbation's generator. */
  perturbSeed: number;
}

export const DEFAULT_TOKENIZER_CONFIG: Readonly<Omit<TokenizerConfig, keyof CnnTokenizerConfig | keyof VitTokenizerConfig>> = Object.freeze({
  arch: 'cnn',
  recLoss: 'mse',
  commitmentCost: 0.25,
  perturbation: 'none',
  perturbSeed: 0,
});

export interface ExtraLossContext {
  x: E.Tensor;
  recon: E.Tensor;
  step: number | undefined;
  model: VQTokenizer;
}

/** Extra loss terms (added to the total), e.g. perceptual or generator GAN losses. */
export type ExtraLosses = (ctx: ExtraLossContext) => Record<string, E.Tensor>;

export interface TokenizerForwardOptions {
  /** Perturbation to apply; default: the config's in training mode, none in eval mode. null: none. */
  perturb?: PerturbationPreset | PerturbationConfig | null;
  /** 1-based step and total steps for the annealing schedule (no annealing without them). */
  step?: number;
  totalSteps?: number;
  extraLosses?: ExtraLosses;
}

export interface TokenizerLosses {
  rec: E.Tensor;
  codebook: E.Tensor;
  commit: E.Tensor;
  total: E.Tensor;
  [extra: string]: E.Tensor;
}

export interface TokenizerForwardOutput {
  recon: E.Tensor;
  losses: TokenizerLosses;
  /** Clean code indices, i32 [B, h, w]. */
  indices: E.Tensor;
  /** The perturbation in effect this step (after annealing), or null. */
  perturbation: ResolvedPerturbation | null;
  /** Images whose latents were perturbed (the first ones of the batch). */
  perturbedImages: number;
}

export class VQTokenizer extends Module {
  readonly cfg: TokenizerConfig;
  /** Both kinds map images to latent tokens: encodeTokens(x) -> { z: [B, h*w, d], h, w }. */
  readonly encoder: Encoder | VitEncoder;
  readonly quantize: VectorQuantizer;
  /** Both kinds have decodeTokens(z [B, h*w, d], h, w) and lastLayer (the GAN adaptive weight's). */
  readonly decoder: Decoder | VitDecoder;
  /** Drives the perturbation's random choices; save it with the training state to resume exactly. */
  readonly perturbGenerator: E.Generator;
  extraLosses: ExtraLosses | null = null;

  constructor(config: Partial<TokenizerConfig> = {}, init: InitOptions = {}) {
    super();
    const arch = config.arch ?? DEFAULT_TOKENIZER_CONFIG.arch;
    if (arch !== 'cnn' && arch !== 'vit') throw new Error(`tokenizer config: arch must be 'cnn' or 'vit', got '${String(arch)}'`);
    const cnn = resolveCnnConfig(config);
    const vit = resolveVitConfig(config);
    this.cfg = { ...DEFAULT_TOKENIZER_CONFIG, ...config, ...cnn, ...vit, arch };
    if (this.cfg.recLoss !== 'mse' && this.cfg.recLoss !== 'l1') throw new Error(`tokenizer config: recLoss must be 'mse' or 'l1', got '${String(this.cfg.recLoss)}'`);
    resolvePerturbation(this.cfg.perturbation, cnn.codebookSize); // validate early
    this.encoder = this.module('encoder', arch === 'vit' ? new VitEncoder(vit, init) : new Encoder(cnn, init));
    this.quantize = this.module('quantize', new VectorQuantizer(cnn.codebookSize, cnn.codeDim, this.cfg.commitmentCost, init));
    this.decoder = this.module('decoder', arch === 'vit' ? new VitDecoder(vit, init) : new Decoder(cnn, init));
    this.perturbGenerator = new E.Generator(this.cfg.perturbSeed);
  }

  /**
   * Downsampling factor (tokens per side = image side / factor). ViT: imageSize / token-grid side
   * when the grid is square and its side divides imageSize (64 tokens of a 32x32 image: 4), else
   * NaN (the latent tokens are not a spatial downsampling).
   */
  get factor(): number {
    if (this.cfg.arch !== 'vit') return downFactor(this.cfg);
    const [h, w] = this.cfg.tokenGrid;
    return h === w && this.cfg.imageSize % h === 0 ? this.cfg.imageSize / h : NaN;
  }

  /** The token grid [h, w] of images of size height x width (ViT: the configured latent grid). */
  tokenGrid(height: number, width: number): [number, number] {
    if (this.cfg.arch === 'vit') return [this.cfg.tokenGrid[0], this.cfg.tokenGrid[1]];
    const f = this.factor;
    return [height / f, width / f];
  }

  private checkInput(x: E.Tensor): void {
    if (this.cfg.arch === 'vit') {
      const { inChannels: C, imageSize: S } = this.cfg;
      if (x.rank !== 4 || x.shape[1] !== C || x.shape[2] !== S || x.shape[3] !== S) {
        throw new Error(`VQTokenizer: expected images [B, ${C}, ${S}, ${S}] (the ViT tokenizer takes exactly imageSize x imageSize), got ${E.fmtShape(x.shape)}`);
      }
      return;
    }
    const f = this.factor;
    if (x.rank !== 4 || x.shape[1] !== this.cfg.inChannels || x.shape[2]! % f || x.shape[3]! % f) {
      throw new Error(`VQTokenizer: expected images [B, ${this.cfg.inChannels}, H, W] with H, W multiples of ${f}, got ${E.fmtShape(x.shape)}`);
    }
  }

  /** Encoder latents as tokens: [B, h*w, d] (and h, w). */
  private latents(x: E.Tensor): { z: E.Tensor; h: number; w: number } {
    this.checkInput(x);
    return this.encoder.encodeTokens(x);
  }

  private toImageLayout(zt: E.Tensor, h: number, w: number): E.Tensor {
    const [B, , d] = zt.shape as [number, number, number];
    return zt.reshape([B, h, w, d]).permute([0, 3, 1, 2]);
  }

  /** z: the l2-normalized continuous latents [B, d, h, w]; indices: nearest codes i32 [B, h, w]. */
  encode(x: E.Tensor): { z: E.Tensor; indices: E.Tensor } {
    const { z, h, w } = this.latents(x);
    const B = z.shape[0]!;
    const indices = this.quantize.nearest(z).reshape([B, h, w]);
    const zn = this.toImageLayout(l2Normalize(z), h, w);
    return { z: zn, indices };
  }

  /** Images from code indices i32 [B, h, w]. */
  decodeIndices(indices: E.Tensor): E.Tensor {
    if (indices.rank !== 3 || indices.dtype !== 'i32') throw new Error(`decodeIndices: expected i32 indices [B, h, w], got ${indices.describe()}`);
    const q = this.quantize.lookup(indices); // [B, h, w, d]
    const [B, h, w, d] = q.shape as [number, number, number, number];
    return this.decoder.decodeTokens(q.reshape([B, h * w, d]), h, w);
  }

  /** Images from quantized latents [B, d, h, w]. */
  decode(zq: E.Tensor): E.Tensor {
    if (this.decoder instanceof Decoder) return this.decoder.forward(zq);
    if (zq.rank !== 4) throw new Error(`decode: expected quantized latents [B, d, h, w], got ${E.fmtShape(zq.shape)}`);
    const [B, d, h, w] = zq.shape as [number, number, number, number];
    return this.decoder.decodeTokens(zq.permute([0, 2, 3, 1]).reshape([B, h * w, d]), h, w);
  }

  /**
   * Reconstructions without gradient tracking: clean, or (pFID) with every image's tokens
   * perturbed at a fixed alpha and delta (beta = 1, no annealing), drawing from `generator`
   * (default: a fresh Generator(0), so evaluations are reproducible and leave training's stream alone).
   */
  reconstruct(x: E.Tensor, perturb: { alpha: number; delta: number } | null = null, generator?: E.Generator): E.Tensor {
    return E.noGrad(() => E.tidy(() => {
      if (!perturb) return this.forward(x, { perturb: null }).recon;
      const { z, h, w } = this.latents(x);
      const q = this.quantize.forward(z);
      const p = resolvePerturbation({ alpha: perturb.alpha, beta: 1, delta: perturb.delta, anneal: false }, this.cfg.codebookSize);
      const r = perturbLatents(q.zn, q.zq, this.quantize.codebook, p, generator ?? new E.Generator(0));
      return this.decoder.decodeTokens(r.z, h, w);
    }));
  }

  /** Reconstruction (optionally from perturbed latents) and the loss terms. */
  forward(x: E.Tensor, opts: TokenizerForwardOptions = {}): TokenizerForwardOutput {
    const { z, h, w } = this.latents(x);
    const B = z.shape[0]!;
    const q = this.quantize.forward(z);
    const spec = opts.perturb === undefined ? (this.training ? this.cfg.perturbation : null) : opts.perturb;
    let pert: ResolvedPerturbation | null = null;
    let zdec = q.zq;
    let perturbedImages = 0;
    if (spec !== null) {
      pert = annealedPerturbation(resolvePerturbation(spec, this.cfg.codebookSize), opts.step, opts.totalSteps);
      // After the VQ losses: it only changes what the decoder sees.
      if (pert.alpha > 0 && pert.beta > 0) {
        const r = perturbLatents(q.zn, q.zq, this.quantize.codebook, pert, this.perturbGenerator);
        zdec = r.z;
        perturbedImages = r.numImages;
      }
    }
    const recon = this.decoder.decodeTokens(zdec, h, w);
    const rec = this.cfg.recLoss === 'mse' ? E.mseLoss(recon, x) : E.l1Loss(recon, x);
    const losses: TokenizerLosses = { rec, codebook: q.codebookLoss, commit: q.commitLoss, total: rec.add(q.codebookLoss).add(q.commitLoss) };
    const extra = opts.extraLosses ?? this.extraLosses;
    if (extra) {
      for (const [k, v] of Object.entries(extra({ x, recon, step: opts.step, model: this }))) {
        if (k in losses) throw new Error(`VQTokenizer: extra loss '${k}' clashes with a built-in term`);
        losses[k] = v;
        losses.total = losses.total.add(v);
      }
    }
    return { recon, losses, indices: q.indices.reshape([B, h, w]), perturbation: pert, perturbedImages };
  }
}
