/**
 * Tokenizer evaluation (browser-safe): given a VQ tokenizer, a feature network and batches of
 * validation images, computes
 *  - rFID: Fréchet distance between the features of the real images and of their clean
 *    reconstructions;
 *  - pFID(alpha, delta): the same for reconstructions from perturbed tokens, every image perturbed
 *    (beta = 1) at a fixed alpha and delta with no annealing (VQTokenizer.reconstruct), reported
 *    over a grid of alphas (default 0.1, 0.3, 0.5) at delta = the 'paper' preset's delta for the
 *    model's K (round(K * 100 / 4096)); the documented single-number pFID is alpha = 0.3
 *    (DEFAULT_PFID_ALPHA);
 *  - PSNR and SSIM of the clean reconstructions (on images mapped to [0, 1], data range 1;
 *    means of the per-image values);
 *  - codebook usage (% of the K codes used by the clean tokens of the validation set) and code
 *    perplexity;
 *  - an Inception-Score analogue of real images and clean reconstructions when the feature
 *    network has `logits`.
 * Features are accumulated batch by batch (FeatureStatsAccumulator, float64), so the set size is
 * not limited by memory. Reconstructions are clamped to the data range before any metric.
 * Seeded: pFID at each alpha draws from its own Generator(seed), so a run is reproducible, pFID at
 * alpha = 0 equals rFID exactly (slot 0 is the clean code), and the alphas share their random
 * numbers (a token replaced at a smaller alpha is replaced by the same code at a larger one, for
 * the same delta), which makes the grid less noisy than independent draws.
 */
import * as E from '../../engine/index.js';
import { CodeHistogram, frechetDistanceFromStats, ImageFeatureStats, msePerImage, pairedFidErrors, psnrFromMse, ssimPerImage, type BootstrapInterval, type FidErrorOptions, type ImageFeatureNet, type InceptionScore } from '../metrics/index.js';
import type { VQTokenizer } from './model.js';
import { resolvePerturbation } from './perturbation.js';

/** What the evaluation needs from a feature network (FeatNet, InceptionV3 wrapper, a stand-in). */

/** The documented single-number pFID: alpha = 0.3 at the paper's delta. */
export const DEFAULT_PFID_ALPHA = 0.3;
/** The default pFID grid over alpha. */
export const DEFAULT_PFID_ALPHAS: readonly number[] = Object.freeze([0.1, 0.3, 0.5]);

/** delta used by pFID by default: the 'paper' preset's delta for a codebook of K codes. */
export function defaultPfidDelta(codebookSize: number): number {
  return resolvePerturbation('paper', codebookSize).delta;
}

export interface TokenizerEvalOptions {
  /** pFID alphas (default DEFAULT_PFID_ALPHAS; the default alpha is added when missing). */
  alphas?: readonly number[];
  /** pFID delta (default defaultPfidDelta(K)). */
  delta?: number;
  /** Alpha of the reported single pFID (default DEFAULT_PFID_ALPHA). */
  defaultAlpha?: number;
  /** Seed of the perturbation generators (default 0). */
  seed?: number;
  /** Value range of the images and reconstructions (default [-1, 1]). */
  range?: readonly [number, number];
  /** Maps images (real and reconstructed, clamped) to the feature network's input; default identity. */
  featureInput?: (x: E.Tensor) => E.Tensor;
  /** Compute the Inception-Score analogue when the network has logits (default true). */
  inceptionScore?: boolean;
  /** Called after each batch with the number of images done so far. */
  onBatch?: (done: number) => void;
  /**
   * Sampling error of rFID and each pFID by the paired image bootstrap (pairedFidErrors; keeps
   * every feature row, 4 bytes per value). Default: none.
   */
  fidError?: FidErrorOptions;
}

export interface PfidEntry {
  alpha: number;
  delta: number;
  fid: number;
  /** Interval and standard error (with `fidError`). */
  error?: BootstrapInterval;
}

export interface TokenizerEvalResult {
  /** Images evaluated. */
  count: number;
  rfid: number;
  /** Interval and standard error of rFID (with `fidError`). */
  rfidError?: BootstrapInterval;
  /** pFID over the alpha grid (ascending alpha). */
  pfid: PfidEntry[];
  /** The documented single pFID (alpha = defaultAlpha). */
  pfidDefault: PfidEntry;
  /** Mean per-image PSNR (dB) of clean reconstructions, images in [0, 1]. */
  psnr: number;
  /** Mean per-image SSIM of clean reconstructions. */
  ssim: number;
  /** 'valid' for images of at least 11x11, else 'same' (zero padding). */
  ssimPadding: 'valid' | 'same';
  /** % (0..100) of the codebook used by the clean validation tokens. */
  usage: number;
  usedCodes: number;
  codebookSize: number;
  /** exp(entropy) of the clean code distribution (1..K). */
  perplexity: number;
  featureDim: number;
  seed: number;
  /** Inception-Score analogue (when the feature network has logits). */
  inceptionScore?: { real: InceptionScore; recon: InceptionScore };
}

function checkAlpha(a: number, what: string): number {
  if (!(typeof a === 'number' && a >= 0 && a <= 1)) throw new RangeError(`evaluateTokenizer: ${what} must be in [0, 1], got ${a}`);
  return a;
}

/**
 * Evaluates `model` on `batches` of images [B, C, H, W] (in opts.range; not disposed here).
 * The model runs in eval mode (restored afterwards); nothing is trained.
 */
export async function evaluateTokenizer(model: VQTokenizer, net: ImageFeatureNet, batches: Iterable<E.Tensor> | AsyncIterable<E.Tensor>, opts: TokenizerEvalOptions = {}): Promise<TokenizerEvalResult> {
  if (model.continuous) throw new Error('evaluateTokenizer: this is a continuous (KL) tokenizer; use evaluateContinuousTokenizer (nFID, iFID)');
  const K = model.cfg.codebookSize;
  const seed = opts.seed ?? 0;
  const defaultAlpha = checkAlpha(opts.defaultAlpha ?? DEFAULT_PFID_ALPHA, 'defaultAlpha');
  const alphas = [...new Set([...(opts.alphas ?? DEFAULT_PFID_ALPHAS), defaultAlpha])].map((a) => checkAlpha(a, 'alpha')).sort((a, b) => a - b);
  const delta = opts.delta ?? defaultPfidDelta(K);
  resolvePerturbation({ alpha: 0, beta: 1, delta, anneal: false }, K); // validates delta against K
  const [lo, hi] = opts.range ?? [-1, 1];
  if (!(Number.isFinite(lo) && Number.isFinite(hi) && hi > lo)) throw new RangeError(`evaluateTokenizer: range must be [lo, hi] with lo < hi, got [${lo}, ${hi}]`);
  const wantIs = (opts.inceptionScore ?? true) && typeof net.logits === 'function';
  const featIn = opts.featureInput ?? ((x: E.Tensor) => x);

  // Features of the real images, the clean reconstructions and the perturbed ones at each alpha;
  // every set is clamped to the range and mapped by featureInput before the network.
  const statsOpts = { range: [lo, hi] as const, featureInput: featIn, keepFeatures: opts.fidError !== undefined };
  const real = new ImageFeatureStats(net, { ...statsOpts, logits: wantIs });
  const recon = new ImageFeatureStats(net, { ...statsOpts, logits: wantIs });
  const pert = new Map(alphas.map((a) => [a, new ImageFeatureStats(net, { ...statsOpts, logits: false })] as const));
  const gens = new Map(alphas.map((a) => [a, new E.Generator(seed)] as const));
  const hist = new CodeHistogram(K);
  let psnrSum = 0;
  let ssimSum = 0;
  let count = 0;
  let ssimPadding: 'valid' | 'same' = 'valid';

  const wasTraining = model.training;
  model.eval();
  try {
    for await (const x of batches) {
      if (x.rank !== 4) throw new Error(`evaluateTokenizer: expected image batches [B, C, H, W], got ${E.fmtShape(x.shape)}`);
      const B = x.shape[0]!;
      if (B === 0) continue;
      ssimPadding = x.shape[2]! >= 11 && x.shape[3]! >= 11 ? 'valid' : 'same';
      const toUnit = (t: E.Tensor) => t.sub(lo).div(hi - lo);
      using out = E.disposable(E.noGrad(() => E.tidy(() => {
        const f = model.forward(x, { perturb: null });
        const rec = f.recon.maximum(lo).minimum(hi);
        const xi = toUnit(x);
        const ri = toUnit(rec);
        return { indices: f.indices!, rec, mse: msePerImage(xi, ri), ssim: ssimPerImage(xi, ri, { dataRange: 1, padding: ssimPadding }) };
      })));
      await real.add(x);
      await recon.add(out.rec);
      for (const a of alphas) {
        using r = model.reconstruct(x, { alpha: a, delta }, gens.get(a)!);
        await pert.get(a)!.add(r);
      }
      hist.add(await out.indices.toArray());
      const m = psnrFromMse(await out.mse.toArray(), 1);
      for (const v of m.perImage) psnrSum += v;
      for (const v of await out.ssim.toArray()) ssimSum += v;
      count += B;
      opts.onBatch?.(count);
    }
  } finally {
    model.train(wasTraining);
  }
  if (count < 2) throw new Error(`evaluateTokenizer: need at least 2 images, got ${count}`);
  const sReal = real.stats();
  const rfid = frechetDistanceFromStats(sReal, recon.stats());
  const errors = opts.fidError ? pairedFidErrors(real, [recon, ...alphas.map((a) => pert.get(a)!)], opts.fidError) : null;
  const pfid: PfidEntry[] = alphas.map((alpha, i) => ({ alpha, delta, fid: frechetDistanceFromStats(sReal, pert.get(alpha)!.stats()), ...(errors ? { error: errors[i + 1]! } : {}) }));
  const result: TokenizerEvalResult = {
    count,
    rfid,
    ...(errors ? { rfidError: errors[0]! } : {}),
    pfid,
    pfidDefault: pfid.find((p) => p.alpha === defaultAlpha)!,
    psnr: psnrSum / count,
    ssim: ssimSum / count,
    ssimPadding,
    usage: hist.usage(),
    usedCodes: hist.used,
    codebookSize: K,
    perplexity: hist.perplexity(),
    featureDim: sReal.dim,
    seed,
  };
  const isReal = real.inceptionScore(10);
  const isRecon = recon.inceptionScore(10);
  if (isReal && isRecon) result.inceptionScore = { real: isReal, recon: isRecon };
  return result;
}

/**
 * The reconstruction grid as one batch [(2 + alphas) * n, C, H, W], row by row: the n originals,
 * their clean reconstructions, then reconstructions from perturbed tokens at each alpha
 * (beta = 1, fixed delta, Generator(seed)), all clamped to `range`. Show it with n images per row.
 */
export function reconstructionGrid(model: VQTokenizer, x: E.Tensor, opts: { alphas?: readonly number[]; delta?: number; seed?: number; range?: readonly [number, number] } = {}): E.Tensor {
  const [lo, hi] = opts.range ?? [-1, 1];
  const alphas = opts.alphas ?? DEFAULT_PFID_ALPHAS;
  const delta = opts.delta ?? defaultPfidDelta(model.cfg.codebookSize);
  const wasTraining = model.training;
  model.eval();
  try {
    return E.noGrad(() => E.tidy(() => {
      const rows: E.Tensor[] = [model.reconstruct(x)];
      for (const a of alphas) rows.push(model.reconstruct(x, { alpha: checkAlpha(a, 'alpha'), delta }, new E.Generator(opts.seed ?? 0)));
      return E.concat([x, ...rows.map((r) => r.maximum(lo).minimum(hi))], 0);
    }));
  } finally {
    model.train(wasTraining);
  }
}
