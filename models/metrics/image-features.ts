/**
 * Feature statistics of a stream of image batches (browser-safe): the building block of gFID
 * (generated vs real images), also usable for any "FID between two image sets". Each batch is
 * clamped to the data range, optionally mapped to the network's input (e.g. upsampled), passed
 * through the feature network without gradients, and accumulated in float64; class logits are
 * kept for the Inception-Score analogue when the network has them.
 */
import * as E from '../../engine/index.js';
import { inceptionScore, type InceptionScore } from './codes.js';
import { FeatureStatsAccumulator, frechetDistanceFromStats, type FeatureStats } from './fid.js';

/** What is needed from a feature network (FeatNet, the Inception-v3 wrapper, a stand-in). */
export interface ImageFeatureNet {
  /** Features [N, D] of images [N, C, H, W]. */
  features(x: E.Tensor): E.Tensor;
  /** Class logits [N, K] (Inception-Score analogue). */
  logits?(x: E.Tensor): E.Tensor;
}

export interface ImageFeatureOptions {
  /** Value range of the images (default [-1, 1]); batches are clamped to it. */
  range?: readonly [number, number];
  /** Maps clamped images to the network's input (default identity). */
  featureInput?: (x: E.Tensor) => E.Tensor;
  /** Keep logits for the Inception-Score analogue when the network has them (default true). */
  logits?: boolean;
  /** Keep every feature row (for bootstrapping the FID; 4 bytes per feature value). Default false. */
  keepFeatures?: boolean;
}

/**
 * Images (or their features) hold NaN or Inf, e.g. decoded by a model whose weights diverged. Such
 * batches are refused instead of scored: the clamp to the value range would otherwise turn NaN
 * into a valid-looking constant image and give a meaningless, often flattering, FID.
 */
export class NonFiniteImagesError extends Error {
  override name = 'NonFiniteImagesError';
}

export class ImageFeatureStats {
  private acc: FeatureStatsAccumulator | null = null;
  private readonly logitRows: number[] = [];
  private readonly featureParts: Float32Array[] = [];
  private numClasses = 0;
  /** Batches added so far (named in errors). */
  private batches = 0;
  private readonly lo: number;
  private readonly hi: number;
  private readonly wantLogits: boolean;

  constructor(
    readonly net: ImageFeatureNet,
    readonly opts: ImageFeatureOptions = {},
  ) {
    [this.lo, this.hi] = opts.range ?? [-1, 1];
    if (!(Number.isFinite(this.lo) && Number.isFinite(this.hi) && this.hi > this.lo)) throw new RangeError(`ImageFeatureStats: range must be [lo, hi] with lo < hi, got [${this.lo}, ${this.hi}]`);
    this.wantLogits = (opts.logits ?? true) && typeof net.logits === 'function';
  }

  get count(): number {
    return this.acc?.count ?? 0;
  }

  /** Adds images [B, C, H, W] (not disposed here). */
  async add(x: E.Tensor): Promise<void> {
    if (x.rank !== 4) throw new Error(`ImageFeatureStats.add: expected images [B, C, H, W], got ${E.fmtShape(x.shape)}`);
    if (x.shape[0] === 0) return;
    using out = E.disposable(E.noGrad(() => E.tidy(() => {
      const xin = (this.opts.featureInput ?? ((t: E.Tensor) => t))(x.maximum(this.lo).minimum(this.hi));
      const f = this.net.features(xin);
      // x - x is 0 where x is finite and NaN where it is NaN or Inf: its sum flags the batch.
      return { f, l: this.wantLogits ? this.net.logits!(xin) : null, finiteCheck: x.sub(x).sum() };
    })));
    if (!Number.isFinite(await out.finiteCheck.item())) {
      throw new NonFiniteImagesError(`ImageFeatureStats: image batch ${this.batches + 1} (${x.shape[0]} images) holds NaN or Inf values: refused (the model that made them diverged?)`);
    }
    if (out.f.rank !== 2) throw new Error(`ImageFeatureStats: the feature network must return [N, D], got ${E.fmtShape(out.f.shape)}`);
    const D = out.f.shape[1]!;
    this.acc ??= new FeatureStatsAccumulator(D);
    if (this.acc.dim !== D) throw new Error(`ImageFeatureStats: feature dimension changed from ${this.acc.dim} to ${D}`);
    const f = (await out.f.toArray()) as Float32Array;
    for (let i = 0; i < f.length; i++) {
      if (!Number.isFinite(f[i]!)) throw new NonFiniteImagesError(`ImageFeatureStats: the feature network gave NaN or Inf features for image batch ${this.batches + 1}: refused`);
    }
    this.batches++;
    this.acc.add(f);
    if (this.opts.keepFeatures) this.featureParts.push(f);
    if (out.l) {
      this.numClasses = out.l.shape[1]!;
      for (const v of await out.l.toArray()) this.logitRows.push(v);
    }
  }

  stats(): FeatureStats {
    if (!this.acc || this.acc.count < 2) throw new Error(`ImageFeatureStats: need at least 2 images, got ${this.count}`);
    return this.acc.stats();
  }

  /** The class logits of every image added, in order, row-major [N, numClasses] (null without logits). */
  logits(): { values: Float64Array; numClasses: number } | null {
    return this.numClasses ? { values: Float64Array.from(this.logitRows), numClasses: this.numClasses } : null;
  }

  /** Every feature row added, in order, [N, D] (needs `keepFeatures`). */
  features(): { rows: Float32Array; dim: number } {
    if (!this.opts.keepFeatures) throw new Error('ImageFeatureStats.features: construct with { keepFeatures: true } to keep the feature rows');
    if (!this.acc) throw new Error('ImageFeatureStats.features: no images added');
    const rows = new Float32Array(this.featureParts.reduce((a, p) => a + p.length, 0));
    let o = 0;
    for (const p of this.featureParts) {
      rows.set(p, o);
      o += p.length;
    }
    return { rows, dim: this.acc.dim };
  }

  /** Inception-Score analogue over the images added (null without logits). */
  inceptionScore(splits = 10): InceptionScore | null {
    if (!this.numClasses) return null;
    const n = this.logitRows.length / this.numClasses;
    return inceptionScore(this.logitRows, this.numClasses, Math.max(1, Math.min(splits, n)));
  }

  /** Fréchet distance to another set (e.g. generated vs real). */
  fid(other: ImageFeatureStats | FeatureStats): number {
    return frechetDistanceFromStats(this.stats(), other instanceof ImageFeatureStats ? other.stats() : other);
  }
}
