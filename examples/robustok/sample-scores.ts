/**
 * What the study measures on every set of generated samples (each generator, each post-trained
 * decoder): gFID with its sampling error (the bootstrap over generated and real feature rows,
 * models/metrics/fid-bootstrap.ts), the IS analogue, and class consistency (the shipped FeatNet's
 * accuracy at classifying each sample as the class it was conditioned on). Several decoders of
 * the same samples are scored together so their gFID differences get paired intervals.
 */
import { bootstrapFids, classConsistency, fidInterval, ResamplableFeatures, type BootstrapInterval, type ClassConsistency, type ImageFeatureStats } from '../../models/metrics/index.js';
import type { StudyConfig } from './config.js';
import type { StudyContext } from './context.js';

/** Resampling settings of the study's statistics (defaults: DEFAULT_STUDY_STATS). */
export interface StudyStatsConfig {
  /** Bootstrap replicates per gFID (each: one D x D covariance per set). */
  fidResamples: number;
  /** Bootstrap resamples of the tokenizers for correlation intervals. */
  correlationResamples: number;
  /** Random permutations when a permutation test is not exact (n > 8). */
  permutationResamples: number;
  /** Confidence level of every interval. */
  level: number;
}

export const DEFAULT_STUDY_STATS: StudyStatsConfig = { fidResamples: 200, correlationResamples: 4000, permutationResamples: 9999, level: 0.95 };

export const studyStats = (c: StudyConfig): StudyStatsConfig => ({ ...DEFAULT_STUDY_STATS, ...c.stats });

export interface SampleScores {
  gfid: number;
  /** Percentile interval and standard error of gFID over bootstrap replicates of generated and real rows. */
  gfidError: BootstrapInterval;
  inceptionScore: number | null;
  classConsistency: ClassConsistency;
}

/** Bootstrap settings of the tokenizers' rFID / pFID / nFID / iFID errors (the paired image bootstrap). */
export const reconstructionFidError = (c: StudyConfig) => {
  const s = studyStats(c);
  return { resamples: s.fidResamples, seed: c.seed + 4421, level: s.level };
};

/** Class consistency of samples from their feature statistics (logits kept in order) and conditioning labels. */
export function sampleClassConsistency(ctx: StudyContext, stats: ImageFeatureStats, labels: ArrayLike<number>): ClassConsistency {
  const l = stats.logits();
  if (!l) throw new Error('study: the feature network has no class logits, so class consistency cannot be measured');
  return classConsistency(l.values, l.numClasses, labels, studyStats(ctx.cfg).level);
}

/**
 * Scores of paired sample sets (the same samples, row for row, e.g. decoded by several
 * decoders; a single set is the common case): each set's scores, and the bootstrap to take
 * paired differences from (`fidInterval(bootstrap, k, j)`).
 */
export function scorePairedSamples(ctx: StudyContext, sets: readonly ImageFeatureStats[], labels: ArrayLike<number>, seedOffset = 0): { scores: SampleScores[]; bootstrap: ReturnType<typeof bootstrapFids> } {
  const s = studyStats(ctx.cfg);
  const rows = sets.map((st) => {
    const f = st.features();
    return new ResamplableFeatures(f.rows, f.dim);
  });
  const bootstrap = bootstrapFids(rows, ctx.realRows, { resamples: s.fidResamples, seed: ctx.cfg.seed + 7919 + seedOffset });
  const scores = sets.map((st, k) => ({
    gfid: st.fid(ctx.realStats),
    gfidError: fidInterval(bootstrap, k, undefined, s.level),
    inceptionScore: st.inceptionScore()?.mean ?? null,
    classConsistency: sampleClassConsistency(ctx, st, labels),
  }));
  return { scores, bootstrap };
}

export function scoreSamples(ctx: StudyContext, stats: ImageFeatureStats, labels: ArrayLike<number>): SampleScores {
  return scorePairedSamples(ctx, [stats], labels).scores[0]!;
}

/** "12.34 ± 0.56" (gFID and its bootstrap standard error). */
export const fmtFid = (s: Pick<SampleScores, 'gfid' | 'gfidError'>) => `${s.gfid.toFixed(2)} ± ${s.gfidError.standardError.toFixed(2)}`;

/** Paired gFID differences of a post-training run: sets scored in the order before, after, control. */
export interface PostTrainComparison {
  afterMinusBefore: BootstrapInterval;
  controlMinusBefore: BootstrapInterval | null;
  afterMinusControl: BootstrapInterval | null;
}

export function postTrainComparison(ctx: StudyContext, b: ReturnType<typeof bootstrapFids>): PostTrainComparison {
  const level = studyStats(ctx.cfg).level;
  const control = b.fids.length > 2;
  return {
    afterMinusBefore: fidInterval(b, 1, 0, level),
    controlMinusBefore: control ? fidInterval(b, 2, 0, level) : null,
    afterMinusControl: control ? fidInterval(b, 1, 2, level) : null,
  };
}
