/**
 * Configurations of the RobusTok study (examples/robustok/run.ts): which tokenizers are trained,
 * how the generator is trained and sampled, how the best tokenizer's decoder is post-trained.
 * Two arms share the data, the feature network and the real side of every FID:
 *  - discrete: VQ tokenizers (with and without latent perturbation) -> AR generators;
 *  - continuous (`continuous`, optional): KL tokenizers (with and without noise-augmented
 *    decoding) -> flow-matching diffusion transformers over their normalized latents.
 *
 * `medium` (MEDIUM, below) is the study sized for this 2-core machine without a GPU (docs/study.md).
 * `demo` is the README's `npm run demo`: a small version of both arms that finishes in under
 * fifteen minutes on a 2-core machine with software WebGPU (16x16 images, 4x4 = 16 tokens or a
 * 4x4x4 latent grid). `full` is the study itself (32x32 Fashion-MNIST, 8x8 = 64 tokens, K = 1024,
 * 10 VQ tokenizers (CNN and ViT), 5 KL tokenizers, 10k generated images per gFID) and is meant for
 * a real GPU.
 */
import type { StudyStatsConfig } from './sample-scores.js';
import { DEFAULT_CNN_CONFIG, DEFAULT_KL_WEIGHT, downFactor, resolveLatentNoise, type LatentNoiseConfig, type LatentNoisePreset, type PerturbationConfig, type PerturbationPreset, type TokenizerConfig } from '../../models/tokenizer/index.js';

export interface TokenizerVariant {
  /** Short name (folder name and report label). */
  name: string;
  /** What it changes, for the report. */
  description: string;
  /** Overrides of the study's base tokenizer config. */
  config?: Partial<TokenizerConfig>;
  perturbation: PerturbationPreset | PerturbationConfig;
  /** Overrides the study's tokenizer training length. */
  epochs?: number;
}

/** A continuous (KL) tokenizer of the study. */
export interface ContinuousVariant {
  /** Short name (folder name and report label). */
  name: string;
  /** What it changes, for the report. */
  description: string;
  /** Overrides of the continuous base config (e.g. codeDim = latent channels, klWeight). */
  config?: Partial<TokenizerConfig>;
  latentNoise: LatentNoisePreset | LatentNoiseConfig;
  /** Overrides the arm's tokenizer training length. */
  epochs?: number;
}

/** The continuous arm: KL tokenizers, a diffusion generator per tokenizer, post-training. */
export interface ContinuousStudyConfig {
  tokenizer: {
    /** Base KL tokenizer config (quantizer 'kl'; codeDim = latent channels). */
    base: Partial<TokenizerConfig>;
    variants: ContinuousVariant[];
    /** KL weight unless a variant's config sets one. */
    klWeight: number;
    batchSize: number;
    epochs: number;
    lr: number;
  };
  eval: {
    /** nFID taus; `nfidTau` (one of them) is the study's single nFID. */
    taus: number[];
    nfidTau: number;
    /** iFID: neighbours K among the training latents. */
    ifidK: number;
    /** iFID: training latents searched (the first n training images). */
    ifidMaxTrain: number;
  };
  /** The class-conditional DiT (flow matching) over the normalized latent grid. */
  diffusion: {
    dim: number;
    depth: number;
    heads: number;
    /** Patch side over the latent grid (must divide it). */
    patchSize: number;
    classDropout: number;
    batchSize: number;
    epochs: number;
    lr: number;
    warmupSteps: number;
    emaDecay: number;
  };
  sampling: {
    /** Generated images per gFID (class-balanced). */
    numImages: number;
    batchSize: number;
    sampler: 'euler' | 'heun';
    /** ODE steps of a full [1, 0] run. */
    steps: number;
    cfgScale: number;
    /** Guide only for t in [lo, hi] (null: everywhere). */
    guidanceInterval: [number, number] | null;
  };
  posttrain: {
    /** Noise level t* of the post-training latents (the generator denoises them from t* to 0). */
    tStar: number;
    /** Training images whose latents are noised and denoised. */
    images: number;
    batchSize: number;
    epochs: number;
    lr: number;
    minLr: number;
    emaDecay: number;
    /** Also train a control decoder the same way on the clean latents (t* = 0). */
    control: boolean;
  };
}

export interface StudyConfig {
  name: 'demo' | 'full' | string;
  dataset: 'fashion-mnist' | 'mnist';
  /** Image side: 32 (MNIST-style images padded 28 -> 32) or 16 (the padded images area-resized). */
  imageSize: 16 | 32;
  /** Training images used (first n of the seeded split; null: all 60k - val). */
  trainImages: number | null;
  /** Validation images used for rFID / pFID / the real side of gFID. */
  valImages: number;
  seed: number;
  /**
   * Training seeds per variant (absent: 1). Replicate r trains and samples every tokenizer and
   * generator with seed `seed + r` (the data split and the real images are shared), in
   * `<out>/seeds/seed-<seed + r>` for r >= 1; the statistics then work on each variant's mean
   * over its seeds, and the claims' intervals include the seed-to-seed spread.
   */
  seeds?: number;
  tokenizer: {
    base: Partial<TokenizerConfig>;
    variants: TokenizerVariant[];
    batchSize: number;
    epochs: number;
    lr: number;
  };
  eval: {
    /** pFID alphas; the first one listed in `pfidAlpha` is the study's single pFID. */
    alphas: number[];
    pfidAlpha: number;
    batchSize: number;
  };
  ar: {
    dim: number;
    depth: number;
    heads: number;
    batchSize: number;
    epochs: number;
    lr: number;
    warmupSteps: number;
    weightDecay: number;
  };
  sampling: {
    /** Generated images per gFID (class-balanced). */
    numImages: number;
    batchSize: number;
    temperature: number;
    topK: number;
    topP: number;
    cfgScale: number;
    cfgSchedule: 'constant' | 'rar';
  };
  posttrain: {
    /** Preservation ratio: probability of keeping the ground-truth token at each step. */
    sigma: number;
    /** Training images turned into mixed token sequences. */
    images: number;
    batchSize: number;
    epochs: number;
    lr: number;
    minLr: number;
    emaDecay: number;
    /** Also train a control decoder the same way on clean tokens (sigma = 1). */
    control: boolean;
  };
  /** The continuous arm (absent: the discrete arm only). */
  continuous?: ContinuousStudyConfig;
  /** Resampling settings of the statistics (absent: DEFAULT_STUDY_STATS). */
  stats?: Partial<StudyStatsConfig>;
}

const K_DEMO = 128;
/** The demo's CNN widths, shared by its VQ and KL tokenizers. */
const CNN_DEMO = { ch: 16, chMult: [1, 2, 2], numResBlocks: 1, normGroups: 8 };

export const DEMO: StudyConfig = {
  name: 'demo',
  dataset: 'fashion-mnist',
  imageSize: 16,
  trainImages: 2048,
  valImages: 512,
  seed: 0,
  tokenizer: {
    base: { ...CNN_DEMO, codebookSize: K_DEMO, codeDim: 8 },
    variants: [
      { name: 'baseline', description: 'no latent perturbation (alpha = beta = 0)', perturbation: 'none' },
      { name: 'perturbed', description: "latent perturbation, the paper's preset (alpha 1, beta 0.1, delta 2.4% of K, annealed)", perturbation: 'paper' },
      { name: 'perturbed-strong', description: 'stronger perturbation: beta 0.3, otherwise the paper preset', perturbation: { alpha: 1, beta: 0.3, delta: Math.round((K_DEMO * 100) / 4096) || 1, anneal: true } },
    ],
    batchSize: 32,
    epochs: 2,
    lr: 1e-3,
  },
  eval: { alphas: [0.1, 0.3, 0.5], pfidAlpha: 0.3, batchSize: 128 },
  ar: { dim: 64, depth: 2, heads: 4, batchSize: 64, epochs: 4, lr: 2e-3, warmupSteps: 10, weightDecay: 0.05 },
  sampling: { numImages: 512, batchSize: 128, temperature: 1, topK: 0, topP: 1, cfgScale: 1.5, cfgSchedule: 'constant' },
  posttrain: { sigma: 0.7, images: 1024, batchSize: 32, epochs: 2, lr: 2e-4, minLr: 5e-5, emaDecay: 0.99, control: true },
  continuous: {
    tokenizer: {
      // The VQ arm's widths and training; a 4x4 grid of 4 channels (64 numbers per image).
      base: { ...CNN_DEMO, quantizer: 'kl', codeDim: 4 },
      variants: [
        { name: 'kl-baseline', description: 'no latent noise', latentNoise: 'none' },
        { name: 'kl-noised', description: "noise-augmented decoding, the 'paper-continuous' preset (beta 0.1, tau ~ U(0, 1), gamma 3, annealed)", latentNoise: 'paper-continuous' },
        { name: 'kl-noised-strong', description: "stronger noise: beta 0.3, otherwise 'paper-continuous'", latentNoise: { beta: 0.3, tauMax: 1, gamma: 3, anneal: true } },
      ],
      // The default weight's pixel-noise sigma (2 sigma^2 / N) at N = 16 x 16 pixels instead of 32 x 32.
      klWeight: DEFAULT_KL_WEIGHT * 4,
      batchSize: 32,
      epochs: 2,
      lr: 1e-3,
    },
    eval: { taus: [0.1, 0.2, 0.3], nfidTau: 0.2, ifidK: 10, ifidMaxTrain: 2048 },
    // The AR generator's width and training (128 steps of 64), so the arms get the same budget; a
    // DiT step costs about an AR step here (~0.25 s), and 10 Euler steps with CFG sample 512
    // latents in ~12 s. Sized so that the whole demo, both arms, stays under 15 minutes.
    diffusion: { dim: 64, depth: 2, heads: 4, patchSize: 1, classDropout: 0.1, batchSize: 64, epochs: 4, lr: 2e-3, warmupSteps: 10, emaDecay: 0.99 },
    sampling: { numImages: 512, batchSize: 128, sampler: 'euler', steps: 10, cfgScale: 1.5, guidanceInterval: null },
    posttrain: { tStar: 0.3, images: 1024, batchSize: 32, epochs: 2, lr: 2e-4, minLr: 5e-5, emaDecay: 0.99, control: true },
  },
};

const K_FULL = 1024;
const paperDelta = (K: number) => Math.max(1, Math.round((K * 100) / 4096));

export const FULL: StudyConfig = {
  name: 'full',
  dataset: 'fashion-mnist',
  imageSize: 32,
  trainImages: null,
  valImages: 10000,
  seed: 0,
  tokenizer: {
    base: { codebookSize: K_FULL, codeDim: 16 },
    variants: [
      { name: 'baseline', description: 'no latent perturbation (alpha = beta = 0)', perturbation: 'none' },
      { name: 'paper', description: "the paper's preset: alpha 1, beta 0.1, delta 2.4% of K, annealed", perturbation: 'paper' },
      { name: 'beta0.3', description: 'beta 0.3 (three times as many perturbed images)', perturbation: { alpha: 1, beta: 0.3, delta: paperDelta(K_FULL), anneal: true } },
      { name: 'delta4x', description: 'delta 4x the preset (replacements from a wider neighbourhood)', perturbation: { alpha: 1, beta: 0.1, delta: 4 * paperDelta(K_FULL), anneal: true } },
      { name: 'alpha0.5', description: 'alpha 0.5 (half the token positions eligible)', perturbation: { alpha: 0.5, beta: 0.1, delta: paperDelta(K_FULL), anneal: true } },
      { name: 'baseline-K4096', description: 'no perturbation, K = 4096', config: { codebookSize: 4096 }, perturbation: 'none' },
      { name: 'paper-K4096', description: "the paper's preset at K = 4096 (delta 100, as in the paper)", config: { codebookSize: 4096 }, perturbation: 'paper' },
      { name: 'baseline-short', description: 'no perturbation, a third of the epochs', perturbation: 'none', epochs: 4 },
      { name: 'vit-baseline', description: 'ViT tokenizer (4x4 patches + 64 learnable latent tokens, width 192, depth 4), no perturbation', config: { arch: 'vit' }, perturbation: 'none' },
      { name: 'vit-paper', description: "ViT tokenizer (RobusTok's design) with the paper's preset", config: { arch: 'vit' }, perturbation: 'paper' },
    ],
    batchSize: 128,
    epochs: 12,
    lr: 4e-4,
  },
  eval: { alphas: [0.1, 0.3, 0.5], pfidAlpha: 0.3, batchSize: 500 },
  ar: { dim: 256, depth: 8, heads: 8, batchSize: 256, epochs: 20, lr: 6e-4, warmupSteps: 500, weightDecay: 0.05 },
  sampling: { numImages: 10000, batchSize: 500, temperature: 1, topK: 0, topP: 1, cfgScale: 2, cfgSchedule: 'constant' },
  posttrain: { sigma: 0.7, images: 20000, batchSize: 128, epochs: 2, lr: 5e-5, minLr: 1e-5, emaDecay: 0.999, control: true },
  continuous: {
    tokenizer: {
      // The default CNN (the VQ arm's widths); an 8x8 grid of 4 channels (256 numbers per image).
      base: { quantizer: 'kl', codeDim: 4 },
      variants: [
        { name: 'kl-baseline', description: 'no latent noise', latentNoise: 'none' },
        { name: 'kl-paper', description: "the 'paper-continuous' preset: beta 0.1, tau ~ U(0, 1), gamma 3, annealed", latentNoise: 'paper-continuous' },
        { name: 'kl-beta0.3', description: "beta 0.3 (three times as many noised images), otherwise 'paper-continuous'", latentNoise: { beta: 0.3, tauMax: 1, gamma: 3, anneal: true } },
        { name: 'kl-paper-kl1e-4', description: "'paper-continuous' with a 10x KL weight (1e-4)", config: { klWeight: 1e-4 }, latentNoise: 'paper-continuous' },
        { name: 'kl-paper-c8', description: "'paper-continuous' with 8 latent channels", config: { codeDim: 8 }, latentNoise: 'paper-continuous' },
      ],
      klWeight: DEFAULT_KL_WEIGHT,
      batchSize: 128,
      epochs: 12,
      lr: 4e-4,
    },
    eval: { taus: [0.1, 0.2, 0.3], nfidTau: 0.2, ifidK: 10, ifidMaxTrain: 50000 },
    diffusion: { dim: 256, depth: 8, heads: 8, patchSize: 1, classDropout: 0.1, batchSize: 256, epochs: 40, lr: 2e-4, warmupSteps: 500, emaDecay: 0.999 },
    sampling: { numImages: 10000, batchSize: 500, sampler: 'euler', steps: 50, cfgScale: 1.5, guidanceInterval: null },
    posttrain: { tStar: 0.3, images: 20000, batchSize: 128, epochs: 2, lr: 5e-5, minLr: 1e-5, emaDecay: 0.999, control: true },
  },
  // A FID bootstrap replicate over 10k + 10k rows is about 1e8 multiply-adds on the CPU: 50 per gFID
  // keep the bootstrap to minutes while the SE stays within ~10% of itself.
  stats: { fidResamples: 50 },
};

const K_MEDIUM = 512;
/** The medium preset's CNN at 32x32: two downsamplings, so an 8x8 grid (64 tokens / latent positions). */
const CNN_MEDIUM = { ch: 16, chMult: [1, 2, 2], numResBlocks: 1, normGroups: 8 };

/**
 * `medium`: the study at the geometry where the papers' effects appear (32x32 images, 8x8 tokens),
 * sized for a 2-core machine without a GPU (at most 2.5 hours of wall time, measured with
 * `--estimate`; docs/study.md): 8 VQ tokenizers spanning perturbation strength (none, the
 * paper's preset, beta, alpha and delta variations, codebook sizes 128 / 512 / 2048) with an AR
 * generator each, 4 KL tokenizers (no noise, noise-augmented at three strengths) with a
 * diffusion generator each, 2000 samples per gFID (with its bootstrap sampling error), and
 * post-training with a control for the best generator of each arm. The generators' training
 * lengths and CFG scale come from a pilot (docs/study.md): 6 AR epochs and 18 DiT epochs are what
 * made samples FeatNet classifies as their class at least 80% of the time.
 */
export const MEDIUM: StudyConfig = {
  name: 'medium',
  dataset: 'fashion-mnist',
  imageSize: 32,
  trainImages: 6400,
  valImages: 2000,
  seed: 0,
  tokenizer: {
    base: { ...CNN_MEDIUM, codebookSize: K_MEDIUM, codeDim: 8 },
    variants: [
      { name: 'baseline', description: 'no latent perturbation (alpha = beta = 0)', perturbation: 'none' },
      { name: 'paper', description: "the paper's preset: alpha 1, beta 0.1, delta 2.4% of K, annealed", perturbation: 'paper' },
      { name: 'beta0.3', description: 'beta 0.3 (three times as many perturbed images)', perturbation: { alpha: 1, beta: 0.3, delta: paperDelta(K_MEDIUM), anneal: true } },
      { name: 'alpha0.5', description: 'alpha 0.5 (half the token positions eligible)', perturbation: { alpha: 0.5, beta: 0.1, delta: paperDelta(K_MEDIUM), anneal: true } },
      { name: 'delta4x', description: 'delta 4x the preset (replacements from a wider neighbourhood)', perturbation: { alpha: 1, beta: 0.1, delta: 4 * paperDelta(K_MEDIUM), anneal: true } },
      { name: 'baseline-K128', description: 'no perturbation, K = 128', config: { codebookSize: 128 }, perturbation: 'none' },
      { name: 'paper-K128', description: "the paper's preset at K = 128 (delta 3)", config: { codebookSize: 128 }, perturbation: 'paper' },
      { name: 'paper-K2048', description: "the paper's preset at K = 2048 (delta 50)", config: { codebookSize: 2048 }, perturbation: 'paper' },
    ],
    batchSize: 32,
    epochs: 2,
    lr: 1e-3,
  },
  eval: { alphas: [0.1, 0.3, 0.5], pfidAlpha: 0.3, batchSize: 250 },
  ar: { dim: 64, depth: 2, heads: 4, batchSize: 64, epochs: 6, lr: 2e-3, warmupSteps: 10, weightDecay: 0.05 },
  sampling: { numImages: 2000, batchSize: 250, temperature: 1, topK: 0, topP: 1, cfgScale: 3, cfgSchedule: 'constant' },
  posttrain: { sigma: 0.7, images: 1600, batchSize: 32, epochs: 1, lr: 2e-4, minLr: 5e-5, emaDecay: 0.99, control: true },
  continuous: {
    tokenizer: {
      base: { ...CNN_MEDIUM, quantizer: 'kl', codeDim: 4 },
      variants: [
        { name: 'kl-baseline', description: 'no latent noise', latentNoise: 'none' },
        { name: 'kl-paper', description: "the 'paper-continuous' preset: beta 0.1, tau ~ U(0, 1), gamma 3, annealed", latentNoise: 'paper-continuous' },
        { name: 'kl-beta0.3', description: "beta 0.3 (three times as many noised images), otherwise 'paper-continuous'", latentNoise: { beta: 0.3, tauMax: 1, gamma: 3, anneal: true } },
        { name: 'kl-tau0.5', description: "weaker noise: tau ~ U(0, 0.5), otherwise 'paper-continuous'", latentNoise: { beta: 0.1, tauMax: 0.5, gamma: 3, anneal: true } },
      ],
      klWeight: DEFAULT_KL_WEIGHT,
      batchSize: 32,
      epochs: 1,
      lr: 1e-3,
    },
    eval: { taus: [0.1, 0.2, 0.3], nfidTau: 0.2, ifidK: 10, ifidMaxTrain: 2000 },
    diffusion: { dim: 64, depth: 2, heads: 4, patchSize: 2, classDropout: 0.1, batchSize: 64, epochs: 18, lr: 2e-3, warmupSteps: 10, emaDecay: 0.99 },
    sampling: { numImages: 2000, batchSize: 250, sampler: 'euler', steps: 20, cfgScale: 3, guidanceInterval: null },
    posttrain: { tStar: 0.3, images: 1600, batchSize: 32, epochs: 1, lr: 2e-4, minLr: 5e-5, emaDecay: 0.99, control: true },
  },
  stats: { fidResamples: 100, correlationResamples: 4000, permutationResamples: 9999, level: 0.95 },
};

/** The gpu preset's CNN: the medium one at twice the width. */
const CNN_GPU = { ...CNN_MEDIUM, ch: 32 };

/**
 * `gpu`: the medium study at a larger scale for one 9-minute call of a lent GPU (H200 or H100;
 * tools/pack-gpu-study.sh bundles it, docs/study.md has the device command): 3x the training
 * images, 2.5x the validation images and samples per gFID (a smaller sampling error), twice the
 * tokenizer width, generators of width 128 and depth 4, the same tokenizer variants. Sized from
 * the H100's measured fixed costs (tens of ms per training step of models this small, where host
 * recording dominates; docs/results.md), so the step counts stay close to medium's while each
 * step sees more images. Not yet run on a GPU: `--estimate` on the device says whether it fits.
 */
export const GPU: StudyConfig = {
  ...MEDIUM,
  name: 'gpu',
  trainImages: 19200,
  valImages: 5000,
  tokenizer: { ...MEDIUM.tokenizer, base: { ...MEDIUM.tokenizer.base, ...CNN_GPU }, batchSize: 128, epochs: 2, lr: 1e-3 },
  eval: { ...MEDIUM.eval, batchSize: 1000 },
  ar: { dim: 128, depth: 4, heads: 4, batchSize: 256, epochs: 6, lr: 1e-3, warmupSteps: 30, weightDecay: 0.05 },
  sampling: { ...MEDIUM.sampling, numImages: 5000, batchSize: 1000 },
  posttrain: { ...MEDIUM.posttrain, images: 5000, batchSize: 128 },
  continuous: {
    ...MEDIUM.continuous!,
    tokenizer: { ...MEDIUM.continuous!.tokenizer, base: { ...MEDIUM.continuous!.tokenizer.base, ...CNN_GPU }, batchSize: 128 },
    eval: { ...MEDIUM.continuous!.eval, ifidMaxTrain: 5000 },
    diffusion: { ...MEDIUM.continuous!.diffusion, dim: 128, depth: 4, heads: 4, batchSize: 256, epochs: 16, lr: 1e-3, warmupSteps: 30 },
    sampling: { ...MEDIUM.continuous!.sampling, numImages: 5000, batchSize: 1000 },
    posttrain: { ...MEDIUM.continuous!.posttrain, images: 5000, batchSize: 128 },
  },
  // A replicate over 5000 + 5000 rows is ~4e7 multiply-adds per set on one CPU core: 50 keep the
  // bootstraps to about two minutes of the call.
  stats: { ...MEDIUM.stats, fidResamples: 50 },
};

/** The training seed of each replicate, in run order: seed, seed + 1, ... (`seeds` of them). */
export const studySeeds = (c: StudyConfig): number[] => Array.from({ length: c.seeds ?? 1 }, (_, r) => c.seed + r);

export const PRESETS: Record<string, StudyConfig> = { demo: DEMO, medium: MEDIUM, gpu: GPU, full: FULL };

/** Checks a study config; throws one error listing every problem. */
export function validateStudy(c: StudyConfig): StudyConfig {
  const bad: string[] = [];
  const posInt = (v: unknown) => Number.isInteger(v) && (v as number) > 0;
  if (c.imageSize !== 16 && c.imageSize !== 32) bad.push(`imageSize must be 16 or 32, got ${c.imageSize}`);
  if (c.trainImages !== null && !posInt(c.trainImages)) bad.push(`trainImages must be a positive integer or null, got ${c.trainImages}`);
  if (!posInt(c.valImages) || c.valImages < 2) bad.push(`valImages must be an integer >= 2, got ${c.valImages}`);
  if (c.seeds !== undefined && !posInt(c.seeds)) bad.push(`seeds must be a positive integer, got ${c.seeds}`);
  if (!c.tokenizer.variants.length) bad.push('at least one tokenizer variant is needed');
  const names = new Set<string>();
  for (const v of c.tokenizer.variants) {
    if (!/^[A-Za-z0-9._-]+$/.test(v.name)) bad.push(`tokenizer variant name '${v.name}' must be a plain folder name`);
    if (names.has(v.name)) bad.push(`tokenizer variant name '${v.name}' is used twice`);
    names.add(v.name);
  }
  for (const [k, v] of Object.entries({ 'tokenizer.batchSize': c.tokenizer.batchSize, 'tokenizer.epochs': c.tokenizer.epochs, 'ar.batchSize': c.ar.batchSize, 'ar.epochs': c.ar.epochs, 'sampling.numImages': c.sampling.numImages, 'sampling.batchSize': c.sampling.batchSize, 'posttrain.images': c.posttrain.images, 'posttrain.batchSize': c.posttrain.batchSize, 'posttrain.epochs': c.posttrain.epochs, 'eval.batchSize': c.eval.batchSize })) {
    if (!posInt(v)) bad.push(`${k} must be a positive integer, got ${v}`);
  }
  if (!(c.posttrain.sigma >= 0 && c.posttrain.sigma <= 1)) bad.push(`posttrain.sigma must be in [0, 1], got ${c.posttrain.sigma}`);
  if (!c.eval.alphas.includes(c.eval.pfidAlpha)) bad.push(`eval.pfidAlpha ${c.eval.pfidAlpha} must be one of eval.alphas [${c.eval.alphas.join(', ')}]`);
  if (c.continuous) validateContinuous(c, bad);
  if (c.stats) validateStats(c.stats, bad);
  if (bad.length) throw new Error(`study config '${c.name}': ${bad.join('; ')}`);
  return c;
}

function validateStats(s: Partial<StudyStatsConfig>, bad: string[]): void {
  const known = new Set(['fidResamples', 'correlationResamples', 'permutationResamples', 'level']);
  for (const k of Object.keys(s)) if (!known.has(k)) bad.push(`stats.${k} is not a setting (${[...known].join(', ')})`);
  for (const k of ['fidResamples', 'correlationResamples', 'permutationResamples'] as const) {
    if (s[k] !== undefined && !(Number.isInteger(s[k]) && s[k]! > 0)) bad.push(`stats.${k} must be a positive integer, got ${s[k]}`);
  }
  if (s.level !== undefined && !(s.level > 0 && s.level < 1)) bad.push(`stats.level must be in (0, 1), got ${s.level}`);
}

function validateContinuous(c: StudyConfig, bad: string[]): void {
  const k = c.continuous!;
  const posInt = (v: unknown) => Number.isInteger(v) && (v as number) > 0;
  const unit = (v: unknown) => typeof v === 'number' && v >= 0 && v <= 1;
  if (!k.tokenizer.variants.length) bad.push('continuous: at least one tokenizer variant is needed');
  const names = new Set<string>();
  for (const v of k.tokenizer.variants) {
    if (!/^[A-Za-z0-9._-]+$/.test(v.name)) bad.push(`continuous tokenizer variant name '${v.name}' must be a plain folder name`);
    if (names.has(v.name)) bad.push(`continuous tokenizer variant name '${v.name}' is used twice`);
    names.add(v.name);
    const cfg = continuousVariantConfig(k, v);
    if (cfg.quantizer !== 'kl') bad.push(`continuous tokenizer variant '${v.name}' must have quantizer 'kl', got '${String(cfg.quantizer)}'`);
    if (!posInt(cfg.codeDim)) bad.push(`continuous tokenizer variant '${v.name}': codeDim (latent channels) must be a positive integer, got ${cfg.codeDim}`);
    if (!(typeof cfg.klWeight === 'number' && Number.isFinite(cfg.klWeight) && cfg.klWeight >= 0)) bad.push(`continuous tokenizer variant '${v.name}': klWeight must be a finite number >= 0, got ${cfg.klWeight}`);
    if (v.epochs !== undefined && !posInt(v.epochs)) bad.push(`continuous tokenizer variant '${v.name}': epochs must be a positive integer, got ${v.epochs}`);
    try {
      resolveLatentNoise(v.latentNoise);
    } catch (e) {
      bad.push(`continuous tokenizer variant '${v.name}': ${(e as Error).message}`);
    }
    if ((cfg.arch ?? 'cnn') === 'cnn') {
      const side = c.imageSize / downFactor({ chMult: cfg.chMult ?? DEFAULT_CNN_CONFIG.chMult });
      if (!Number.isInteger(side) || side % k.diffusion.patchSize !== 0) bad.push(`continuous tokenizer variant '${v.name}': its ${side}x${side} latent grid is not divisible by diffusion.patchSize ${k.diffusion.patchSize}`);
    }
  }
  const d = k.diffusion;
  const s = k.sampling;
  const p = k.posttrain;
  for (const [name, v] of Object.entries({ 'tokenizer.batchSize': k.tokenizer.batchSize, 'tokenizer.epochs': k.tokenizer.epochs, 'eval.ifidK': k.eval.ifidK, 'eval.ifidMaxTrain': k.eval.ifidMaxTrain, 'diffusion.dim': d.dim, 'diffusion.depth': d.depth, 'diffusion.heads': d.heads, 'diffusion.patchSize': d.patchSize, 'diffusion.batchSize': d.batchSize, 'diffusion.epochs': d.epochs, 'sampling.numImages': s.numImages, 'sampling.batchSize': s.batchSize, 'sampling.steps': s.steps, 'posttrain.images': p.images, 'posttrain.batchSize': p.batchSize, 'posttrain.epochs': p.epochs })) {
    if (!posInt(v)) bad.push(`continuous.${name} must be a positive integer, got ${v}`);
  }
  if (!(Number.isFinite(k.tokenizer.klWeight) && k.tokenizer.klWeight >= 0)) bad.push(`continuous.tokenizer.klWeight must be a finite number >= 0, got ${k.tokenizer.klWeight}`);
  if (!k.eval.taus.every(unit)) bad.push(`continuous.eval.taus must be in [0, 1], got [${k.eval.taus.join(', ')}]`);
  if (!k.eval.taus.includes(k.eval.nfidTau)) bad.push(`continuous.eval.nfidTau ${k.eval.nfidTau} must be one of continuous.eval.taus [${k.eval.taus.join(', ')}]`);
  if (posInt(k.eval.ifidK) && posInt(k.eval.ifidMaxTrain) && k.eval.ifidK > k.eval.ifidMaxTrain) bad.push(`continuous.eval.ifidK ${k.eval.ifidK} must be at most continuous.eval.ifidMaxTrain ${k.eval.ifidMaxTrain}`);
  if (c.trainImages !== null && posInt(k.eval.ifidK) && k.eval.ifidK > c.trainImages) bad.push(`continuous.eval.ifidK ${k.eval.ifidK} must be at most trainImages ${c.trainImages}`);
  if (posInt(d.dim) && posInt(d.heads) && (d.dim % d.heads !== 0 || d.dim % 4 !== 0)) bad.push(`continuous.diffusion.dim ${d.dim} must be a multiple of 4 and of heads ${d.heads}`);
  if (!(d.classDropout >= 0 && d.classDropout < 1)) bad.push(`continuous.diffusion.classDropout must be in [0, 1), got ${d.classDropout}`);
  if (!(d.emaDecay >= 0 && d.emaDecay < 1)) bad.push(`continuous.diffusion.emaDecay must be in [0, 1), got ${d.emaDecay}`);
  if (!(Number.isInteger(d.warmupSteps) && d.warmupSteps >= 0)) bad.push(`continuous.diffusion.warmupSteps must be an integer >= 0, got ${d.warmupSteps}`);
  if (!(d.lr > 0)) bad.push(`continuous.diffusion.lr must be > 0, got ${d.lr}`);
  if (s.sampler !== 'euler' && s.sampler !== 'heun') bad.push(`continuous.sampling.sampler must be 'euler' or 'heun', got '${String(s.sampler)}'`);
  if (!Number.isFinite(s.cfgScale)) bad.push(`continuous.sampling.cfgScale must be finite, got ${s.cfgScale}`);
  if (s.guidanceInterval !== null && !(s.guidanceInterval.length === 2 && s.guidanceInterval[0] <= s.guidanceInterval[1])) bad.push(`continuous.sampling.guidanceInterval must be null or [lo, hi] with lo <= hi, got ${JSON.stringify(s.guidanceInterval)}`);
  if (!unit(p.tStar)) bad.push(`continuous.posttrain.tStar must be in [0, 1], got ${p.tStar}`);
  if (!(p.emaDecay >= 0 && p.emaDecay < 1)) bad.push(`continuous.posttrain.emaDecay must be in [0, 1), got ${p.emaDecay}`);
}

/** A continuous variant's tokenizer config: the arm's base, its KL weight, the variant's overrides. */
export function continuousVariantConfig(k: ContinuousStudyConfig, v: ContinuousVariant): Partial<TokenizerConfig> {
  return { quantizer: 'kl', klWeight: k.tokenizer.klWeight, ...k.tokenizer.base, ...v.config };
}

/** The smallest run of every stage (the end-to-end test and a quick smoke check): about a minute. */
export const TINY: StudyConfig = {
  ...DEMO,
  name: 'tiny',
  trainImages: 128,
  valImages: 64,
  tokenizer: { ...DEMO.tokenizer, variants: DEMO.tokenizer.variants.slice(0, 2), epochs: 1, batchSize: 16 },
  eval: { ...DEMO.eval, batchSize: 64 },
  ar: { ...DEMO.ar, dim: 32, depth: 1, heads: 2, batchSize: 32, epochs: 1, warmupSteps: 1 },
  sampling: { ...DEMO.sampling, numImages: 40, batchSize: 20 },
  posttrain: { ...DEMO.posttrain, images: 32, batchSize: 16, epochs: 1 },
  continuous: tinyContinuous(DEMO.continuous!),
  // Few replicates: the statistics run end to end in the test, their precision does not matter there.
  stats: { fidResamples: 20, correlationResamples: 200, permutationResamples: 199 },
};

function tinyContinuous(c: ContinuousStudyConfig): ContinuousStudyConfig {
  return {
    tokenizer: { ...c.tokenizer, variants: c.tokenizer.variants.slice(0, 2), epochs: 1, batchSize: 16 },
    eval: { ...c.eval, ifidK: 4, ifidMaxTrain: 64 },
    diffusion: { ...c.diffusion, dim: 32, depth: 1, heads: 2, batchSize: 32, epochs: 1, warmupSteps: 1 },
    sampling: { ...c.sampling, numImages: 40, batchSize: 20, steps: 4 },
    posttrain: { ...c.posttrain, images: 32, batchSize: 16, epochs: 1 },
  };
}

PRESETS.tiny = TINY;
