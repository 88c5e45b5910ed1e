/**
 * Sampling error of reconstruction-style FIDs (rFID, pFID, nFID, iFID). Each compares N validation
 * images with N decodings made from those same images, row for row, so the bootstrap resamples
 * images: one draw of indices serves the real rows and every decoded set (bootstrapFids with
 * pairedReal). The decoded sets share the draw too, so differences between them (pFID - rFID) are
 * paired. Browser-safe apart from the feature statistics it reads.
 */
import type { BootstrapInterval } from './bootstrap.js';
import { bootstrapFids, fidInterval, ResamplableFeatures } from './fid-bootstrap.js';
import type { ImageFeatureStats } from './image-features.js';

export interface FidErrorOptions {
  /** Bootstrap replicates (default 200). */
  resamples?: number;
  /** Seed of the resampling (default 0). */
  seed?: number;
  /** Confidence level of the percentile interval (default 0.95). */
  level?: number;
}

/**
 * Percentile interval and standard error of FID(set_k, real) for each decoded set, by the paired
 * image bootstrap. Every set must have been built with `keepFeatures` from the same images in the
 * same order as `real`.
 */
export function pairedFidErrors(real: ImageFeatureStats, sets: readonly ImageFeatureStats[], o: FidErrorOptions = {}): BootstrapInterval[] {
  const rows = (s: ImageFeatureStats) => {
    const f = s.features();
    return new ResamplableFeatures(f.rows, f.dim);
  };
  const b = bootstrapFids(sets.map(rows), rows(real), { resamples: o.resamples ?? 200, seed: o.seed ?? 0, pairedReal: true });
  return sets.map((_, k) => fidInterval(b, k, undefined, o.level ?? 0.95));
}
