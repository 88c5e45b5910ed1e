/**
 * Configurations of the RobusTok study (examples/robustok/run.ts): which tokenizers are trained,
 * how the generator is trained and sampled, how the best tokenizer's decoder is post-trained.
 *
 * `demo` is the README's `npm run demo`: a small version of the whole pipeline that finishes in
 * about ten minutes on a 2-core machine with software WebGPU (16x16 images, 4x4 = 16 tokens).
 * `full` is the study itself (32x32 Fashion-MNIST, 8x8 = 64 tokens, K = 1024, 10 tokenizers (CNN and ViT),
 * 10k generated images per gFID) and is meant for a real GPU.
 */
import type { PerturbationConfig, PerturbationPreset, TokenizerConfig } from '../../models/tokenizer/index.js';

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
}

const K_DEMO = 128;

export const DEMO: StudyConfig = {
  name: 'demo',
  dataset: 'fashion-mnist',
  imageSize: 16,
  trainImages: 2048,
  valImages: 512,
  seed: 0,
  tokenizer: {
    base: { ch: 16, chMult: [1, 2, 2], numResBlocks: 1, normGroups: 8, codebookSize: K_DEMO, codeDim: 8 },
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
};

export const PRESETS: Record<string, StudyConfig> = { demo: DEMO, full: FULL };

/** Checks a study config; throws one error listing every problem. */
export function validateStudy(c: StudyConfig): StudyConfig {
  const bad: string[] = [];
  const posInt = (v: unknown) => Number.isInteger(v) && (v as number) > 0;
  if (c.imageSize !== 16 && c.imageSize !== 32) bad.push(`imageSize must be 16 or 32, got ${c.imageSize}`);
  if (c.trainImages !== null && !posInt(c.trainImages)) bad.push(`trainImages must be a positive integer or null, got ${c.trainImages}`);
  if (!posInt(c.valImages) || c.valImages < 2) bad.push(`valImages must be an integer >= 2, got ${c.valImages}`);
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
  if (bad.length) throw new Error(`study config '${c.name}': ${bad.join('; ')}`);
  return c;
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
};

PRESETS.tiny = TINY;
