/**
 * The image tokenizer, discrete or continuous by `quantizer`:
 *  - 'vq' (default): encoder -> l2-normalized vector quantizer -> (optional latent perturbation)
 *    -> decoder, with the reconstruction (MSE or L1) and VQ losses;
 *  - 'kl': encoder (2C outputs: mean and log-variance, gaussian.ts) -> z = mean + std * eps in
 *    training, the mean in evaluation -> (optional noise-augmented decoding, latent-noise.ts) ->
 *    decoder, with the reconstruction loss + klWeight * KL; per-channel latent statistics
 *    (latent-stats.ts) normalize the latents a generator sees (encodeLatents / decodeLatents).
 * Both take a hook for extra losses (perceptual, GAN) computed from the reconstruction. `arch` picks the encoder/decoder pair:
 * 'cnn' (default, VQGAN-style, cnn.ts) or 'vit' (patches + learnable latent tokens, vit.ts).
 * Both turn images into latent tokens [B, h*w, d] on an h x w grid and back, so codes are
 * i32 [B, h, w] either way.
 *
 * Parameter names: encoder.*, quantize.embedding.weight (VQ) or latent_stats.{mean,std} (KL
 * buffers), decoder.* (taming-transformers style for the CNN, TiTok style for the ViT).
 * forward, encode and decode run in composite scopes (engine/scope.ts): without gradient recording their
 * intermediates are freed on return; while recording, the training step's scope frees them.
 */
import * as E from '../../engine/index.js';
import { Module, type InitOptions } from '../../nn/index.js';
import { Decoder, downFactor, Encoder, resolveCnnConfig, type CnnTokenizerConfig } from './cnn.js';
import { resolveVitConfig, VitDecoder, VitEncoder, type VitTokenizerConfig } from './vit.js';
import { annealedPerturbation, perturbLatents, resolvePerturbation, type PerturbationConfig, type PerturbationPreset, type ResolvedPerturbation } from './perturbation.js';
import { l2Normalize, VectorQuantizer } from './quantizer.js';
import { gaussianPosterior, klDivergence, samplePosterior } from './gaussian.js';
import { annealedLatentNoise, noiseLatents, resolveLatentNoise, type LatentNoiseConfig, type LatentNoisePreset } from './latent-noise.js';
import { LatentStats } from './latent-stats.js';

export type TokenizerArch = 'cnn' | 'vit';
export type QuantizerKind = 'vq' | 'kl';

/**
 * Default KL weight (KL summed over the latent, averaged over the batch; the reconstruction loss
 * is a mean over pixels). With MSE on N pixels, klWeight = 2 sigma^2 / N makes the loss the exact
 * negative ELBO of a VAE with Gaussian pixel noise of std sigma; 1e-5 at N = 32 * 32 is sigma =
 * 0.072 (3.6% of the [-1, 1] range), near the error of the converged default tokenizer on
 * Fashion-MNIST (PSNR 26.5 dB: sigma 0.095 on [-1, 1]): a beta = 1 VAE at its own noise level.
 * Measured (docs/results.md, short runs, one seed): 1e-5 gave better rFID, nFID, iFID and PSNR
 * than 1e-6 and 1e-4. ldm's 1e-6 with summed losses would be ~1e-9 here.
 */
export const DEFAULT_KL_WEIGHT = 1e-5;

/**
 * The fields of both architectures (inChannels, codebookSize and codeDim are shared; the others
 * are used by the `arch` they belong to, and all are validated). A config without `arch` is a CNN.
 */
export interface TokenizerConfig extends CnnTokenizerConfig, VitTokenizerConfig {
  /** Encoder/decoder architecture. */
  arch: TokenizerArch;
  /** Bottleneck: vector quantizer (codebookSize codes of codeDim) or KL (codeDim latent channels). */
  quantizer: QuantizerKind;
  /** KL tokenizer: weight of the KL term (DEFAULT_KL_WEIGHT). */
  klWeight: number;
  /** KL tokenizer: noise-augmented decoding used by forward() in training mode. */
  latentNoise: LatentNoisePreset | LatentNoiseConfig;
  /** Reconstruction loss. */
  recLoss: 'mse' | 'l1';
  /** Weight of the commitment term (0.25). */
  commitmentCost: number;
  /** VQ tokenizer: perturbation used by forward() in training mode. */
  perturbation: PerturbationPreset | PerturbationConfig;
  /** Seed of the generator behind the perturbation (VQ) or posterior samples and noise (KL). */
  perturbSeed: number;
}

export const DEFAULT_TOKENIZER_CONFIG: Readonly<Omit<TokenizerConfig, keyof CnnTokenizerConfig | keyof VitTokenizerConfig>> = Object.freeze({
  arch: 'cnn',
  quantizer: 'vq',
  klWeight: DEFAULT_KL_WEIGHT,
  latentNoise: 'none',
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

/** The latent-noise settings of a KL forward (after annealing), as forward() reports them. */
export type ResolvedLatentNoise = Required<LatentNoiseConfig>;

/** Extra loss terms (added to the total), e.g. perceptual or generator GAN losses. */
export type ExtraLosses = (ctx: ExtraLossContext) => Record<string, E.Tensor>;

export interface TokenizerForwardOptions {
  /**
   * Perturbation to apply (VQ: a perturbation, KL: a latent-noise setting); default: the config's
   * in training mode, none in eval mode. null: none.
   */
  perturb?: PerturbationPreset | PerturbationConfig | LatentNoisePreset | LatentNoiseConfig | null;
  /** 1-based step and total steps for the annealing schedule (no annealing without them). */
  step?: number;
  totalSteps?: number;
  extraLosses?: ExtraLosses;
}

export interface TokenizerLosses {
  rec: E.Tensor;
  /** VQ only. */
  codebook?: E.Tensor;
  /** VQ only. */
  commit?: E.Tensor;
  /** KL only: the unweighted KL term (total adds klWeight * kl). */
  kl?: E.Tensor;
  total: E.Tensor;
  [extra: string]: E.Tensor | undefined;
}

export interface TokenizerForwardOutput {
  recon: E.Tensor;
  losses: TokenizerLosses;
  /** Clean code indices, i32 [B, h, w] (VQ); null for a KL tokenizer. */
  indices: E.Tensor | null;
  /** The VQ perturbation in effect this step (after annealing), or null. */
  perturbation: ResolvedPerturbation | null;
  /** The KL latent noise in effect this step (after annealing), or null. */
  noise: ResolvedLatentNoise | null;
  /** Images whose latents were perturbed or noised (the first ones of the batch). */
  perturbedImages: number;
}

export class VQTokenizer extends Module {
  readonly cfg: TokenizerConfig;
  /** Both kinds map images to latent tokens: encodeTokens(x) -> { z: [B, h*w, d], h, w }. */
  readonly encoder: Encoder | VitEncoder;
  /** The vector quantizer (VQ); null for a KL tokenizer. */
  readonly quantize: VectorQuantizer | null;
  /** Per-channel latent statistics (KL); null for a VQ tokenizer. */
  readonly latent_stats: LatentStats | null;
  /** Both kinds have decodeTokens(z [B, h*w, d], h, w) and lastLayer (the GAN adaptive weight's). */
  readonly decoder: Decoder | VitDecoder;
  /** Drives the perturbation's (KL: posterior samples' and noise's) random choices; save it with the training state to resume exactly. */
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
    const kind = this.cfg.quantizer;
    if (kind !== 'vq' && kind !== 'kl') throw new Error(`tokenizer config: quantizer must be 'vq' or 'kl', got '${String(kind)}'`);
    if (!(typeof this.cfg.klWeight === 'number' && Number.isFinite(this.cfg.klWeight) && this.cfg.klWeight >= 0)) throw new Error(`tokenizer config: klWeight must be a finite number >= 0, got ${String(this.cfg.klWeight)}`);
    // validate early
    resolvePerturbation(this.cfg.perturbation, cnn.codebookSize);
    resolveLatentNoise(this.cfg.latentNoise);
    if (kind === 'kl' && this.cfg.perturbation !== 'none') throw new Error(`tokenizer config: perturbation is for VQ tokenizers; a KL tokenizer takes latentNoise (got perturbation ${JSON.stringify(this.cfg.perturbation)})`);
    if (kind === 'vq' && this.cfg.latentNoise !== 'none') throw new Error(`tokenizer config: latentNoise is for KL tokenizers; a VQ tokenizer takes perturbation (got latentNoise ${JSON.stringify(this.cfg.latentNoise)})`);
    const encOut = kind === 'kl' ? 2 * cnn.codeDim : cnn.codeDim;
    this.encoder = this.module('encoder', arch === 'vit' ? new VitEncoder(vit, init, encOut) : new Encoder(cnn, init, encOut));
    this.quantize = kind === 'vq' ? this.module('quantize', new VectorQuantizer(cnn.codebookSize, cnn.codeDim, this.cfg.commitmentCost, init)) : null;
    this.latent_stats = kind === 'kl' ? this.module('latent_stats', new LatentStats(cnn.codeDim, init)) : null;
    this.decoder = this.module('decoder', arch === 'vit' ? new VitDecoder(vit, init) : new Decoder(cnn, init));
    this.perturbGenerator = new E.Generator(this.cfg.perturbSeed);
  }

  /** Whether this is a continuous (KL) tokenizer. */
  get continuous(): boolean {
    return this.cfg.quantizer === 'kl';
  }

  /** The vector quantizer; throws for a KL tokenizer (for VQ-only paths: codes, pFID, AR). */
  get vq(): VectorQuantizer {
    if (!this.quantize) throw new Error('this is a continuous (KL) tokenizer: it has no codebook (use encodeLatents / decodeLatents)');
    return this.quantize;
  }

  /** The latent statistics; throws for a VQ tokenizer. */
  get latentStats(): LatentStats {
    if (!this.latent_stats) throw new Error('this is a VQ tokenizer: it has no continuous latents (use encode / decodeIndices)');
    return this.latent_stats;
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

  /** z: the l2-normalized continuous latents [B, d, h, w]; indices: nearest codes i32 [B, h, w]. VQ only. */
  encode(x: E.Tensor): { z: E.Tensor; indices: E.Tensor } {
    const vq = this.vq;
    return E.composite(() => {
      const { z, h, w } = this.latents(x);
      const B = z.shape[0]!;
      const indices = vq.nearest(z).reshape([B, h, w]);
      return { z: this.toImageLayout(l2Normalize(z), h, w), indices };
    });
  }

  /** Images from code indices i32 [B, h, w]. */
  decodeIndices(indices: E.Tensor): E.Tensor {
    if (indices.rank !== 3 || indices.dtype !== 'i32') throw new Error(`decodeIndices: expected i32 indices [B, h, w], got ${indices.describe()}`);
    return E.composite(() => {
      const q = this.vq.lookup(indices); // [B, h, w, d]
      const [B, h, w, d] = q.shape as [number, number, number, number];
      return this.decoder.decodeTokens(q.reshape([B, h * w, d]), h, w);
    });
  }

  /**
   * KL: the posterior means, normalized by the latent statistics, [B, C, h, w]: what a generator
   * models. Deterministic (the posterior's mode, as evaluation decodes it).
   */
  encodeLatents(x: E.Tensor): E.Tensor {
    const stats = this.latentStats;
    return E.composite(() => {
      const { z, h, w } = this.latents(x);
      return stats.normalize(this.toImageLayout(gaussianPosterior(z).mean, h, w));
    });
  }

  /** KL: images from normalized latents [B, C, h, w] (denormalized, then decoded). */
  decodeLatents(z: E.Tensor): E.Tensor {
    const stats = this.latentStats;
    if (z.rank !== 4 || z.shape[1] !== this.cfg.codeDim) throw new Error(`decodeLatents: expected normalized latents [B, ${this.cfg.codeDim}, h, w], got ${E.fmtShape(z.shape)}`);
    return E.composite(() => this.decode(stats.denormalize(z)));
  }

  /** Images from (raw, unnormalized) latents [B, d, h, w]: quantized (VQ) or continuous (KL). */
  decode(zq: E.Tensor): E.Tensor {
    if (this.decoder instanceof Decoder) return this.decoder.forward(zq);
    if (zq.rank !== 4) throw new Error(`decode: expected quantized latents [B, d, h, w], got ${E.fmtShape(zq.shape)}`);
    const [B, d, h, w] = zq.shape as [number, number, number, number];
    const decoder = this.decoder;
    return E.composite(() => decoder.decodeTokens(zq.permute([0, 2, 3, 1]).reshape([B, h * w, d]), h, w));
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
      const q = this.vq.forward(z);
      const p = resolvePerturbation({ alpha: perturb.alpha, beta: 1, delta: perturb.delta, anneal: false }, this.cfg.codebookSize);
      const r = perturbLatents(q.zn, q.zq, this.vq.codebook, p, generator ?? new E.Generator(0));
      return this.decoder.decodeTokens(r.z, h, w);
    }));
  }

  /** Reconstruction (optionally from perturbed latents) and the loss terms. */
  forward(x: E.Tensor, opts: TokenizerForwardOptions = {}): TokenizerForwardOutput {
    return this.quantize ? this.forwardVQ(x, this.quantize, opts) : this.forwardKL(x, opts);
  }

  private forwardKL(x: E.Tensor, opts: TokenizerForwardOptions): TokenizerForwardOutput {
    const { z: moments, h, w } = this.latents(x);
    const post = gaussianPosterior(moments);
    const kl = klDivergence(post);
    let z = this.training ? samplePosterior(post, this.perturbGenerator) : post.mean;
    const spec = opts.perturb === undefined ? (this.training ? this.cfg.latentNoise : null) : opts.perturb;
    if (spec !== null && typeof spec === 'object' && !('tauMax' in spec)) throw new Error('VQTokenizer (KL): perturb must be a latent-noise preset or config ({ beta, tauMax, gamma }), got a VQ perturbation');
    let noise: ResolvedLatentNoise | null = null;
    let perturbedImages = 0;
    if (spec !== null) {
      noise = annealedLatentNoise(resolveLatentNoise(spec as LatentNoisePreset | LatentNoiseConfig), opts.step, opts.totalSteps);
      // After the KL term: it only changes what the decoder sees.
      const r = noiseLatents(z, noise, this.perturbGenerator);
      z = r.z;
      perturbedImages = r.numImages;
    }
    const recon = this.decoder.decodeTokens(z, h, w);
    const rec = this.cfg.recLoss === 'mse' ? E.mseLoss(recon, x) : E.l1Loss(recon, x);
    const losses: TokenizerLosses = { rec, kl, total: rec.add(kl.mul(this.cfg.klWeight)) };
    this.addExtraLosses(losses, x, recon, opts);
    return { recon, losses, indices: null, perturbation: null, noise, perturbedImages };
  }

  private addExtraLosses(losses: TokenizerLosses, x: E.Tensor, recon: E.Tensor, opts: TokenizerForwardOptions): void {
    const extra = opts.extraLosses ?? this.extraLosses;
    if (!extra) return;
    for (const [k, v] of Object.entries(extra({ x, recon, step: opts.step, model: this }))) {
      if (k in losses) throw new Error(`VQTokenizer: extra loss '${k}' clashes with a built-in term`);
      losses[k] = v;
      losses.total = losses.total.add(v);
    }
  }

  private forwardVQ(x: E.Tensor, quantize: VectorQuantizer, opts: TokenizerForwardOptions): TokenizerForwardOutput {
    const { z, h, w } = this.latents(x);
    const B = z.shape[0]!;
    const q = quantize.forward(z);
    const spec = opts.perturb === undefined ? (this.training ? this.cfg.perturbation : null) : opts.perturb;
    if (spec !== null && (spec === 'paper-continuous' || (typeof spec === 'object' && 'tauMax' in spec))) throw new Error('VQTokenizer: perturb must be a VQ perturbation preset or config ({ alpha, beta, delta }), got a latent-noise setting');
    let pert: ResolvedPerturbation | null = null;
    let zdec = q.zq;
    let perturbedImages = 0;
    if (spec !== null) {
      pert = annealedPerturbation(resolvePerturbation(spec as PerturbationPreset | PerturbationConfig, this.cfg.codebookSize), opts.step, opts.totalSteps);
      // After the VQ losses: it only changes what the decoder sees.
      if (pert.alpha > 0 && pert.beta > 0) {
        const r = perturbLatents(q.zn, q.zq, quantize.codebook, pert, this.perturbGenerator);
        zdec = r.z;
        perturbedImages = r.numImages;
      }
    }
    const recon = this.decoder.decodeTokens(zdec, h, w);
    const rec = this.cfg.recLoss === 'mse' ? E.mseLoss(recon, x) : E.l1Loss(recon, x);
    const losses: TokenizerLosses = { rec, codebook: q.codebookLoss, commit: q.commitLoss, total: rec.add(q.codebookLoss).add(q.commitLoss) };
    this.addExtraLosses(losses, x, recon, opts);
    return { recon, losses, indices: q.indices.reshape([B, h, w]), perturbation: pert, noise: null, perturbedImages };
  }
}
