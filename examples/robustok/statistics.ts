/**
 * The study's statistics across tokenizers, computed from the stage records: for each tokenizer
 * metric (discrete: rFID, pFID at every alpha; continuous: rFID, nFID at every tau, iFID), its
 * Spearman and Pearson correlation with gFID over the generators, each with a bootstrap interval
 * (resampling tokenizers) and a permutation p-value; and the paired comparison "does the
 * robustness metric predict gFID better than rFID": the interval of rho(metric, gFID) -
 * rho(rFID, gFID) over the same resamples. One point per tokenizer: the intervals cover which
 * tokenizers happened to be in the study, not the metrics' own sampling errors (reported per
 * point, and drawn as error bars). With several training seeds (StudyConfig.seeds) a point is a
 * variant's mean over its seeds, so its own seed noise is in the spread the bootstrap over
 * variants resamples (the standard cluster bootstrap: variants resampled, seeds kept together).
 */
import { compareCorrelations, correlationSummary, type CorrelationComparison, type CorrelationKind, type CorrelationSummary } from '../../models/metrics/index.js';
import type { StudyConfig } from './config.js';
import type { ContinuousResults } from './report-continuous.js';
import { studyStats } from './sample-scores.js';
import type { StudyResults } from './report.js';
import { allReplicates, mean } from './replicates.js';

export interface MetricCorrelation {
  /** Metric label, e.g. 'rFID', 'pFID a=0.3', 'nFID t=0.2', 'iFID'. */
  metric: string;
  /** One value per generator, in generator order. */
  x: number[];
  /** Bootstrap standard error of each value (paired image bootstrap; NaN where not recorded). */
  xError: number[];
  /** Each point's values per seed (one each in a single-seed study); `x` holds their means. */
  xSeeds: number[][];
  spearman: CorrelationSummary;
  pearson: CorrelationSummary;
}

export interface ArmStatistics {
  /** Generator (tokenizer) names, the points. */
  names: string[];
  gfid: number[];
  /** Bootstrap standard error of each gFID (of seed 0's when there are several seeds). */
  gfidError: number[];
  /** Each point's gFID per seed; `gfid` holds their means. */
  gfidSeeds: number[][];
  metrics: MetricCorrelation[];
  /** The study's robustness metric (pFID at the study's alpha / nFID at the study's tau) against rFID. */
  comparison: { metric: string; spearman: CorrelationComparison; pearson: CorrelationComparison } | null;
}

export interface StudyStatistics {
  discrete: ArmStatistics | null;
  continuous: ArmStatistics | null;
}

type Point = { name: string; gfid: number; gfidError: number; metrics: Record<string, number>; metricErrors: Record<string, number> };
/** A variant over its seeds: per-seed points (seed order), the mean point. */
type SeededPoint = Point & { seeds: Point[] };

/** Groups one point per (seed, variant) by variant name, in first-seen order; values are means over seeds. */
function overSeeds(perSeed: readonly Point[][]): SeededPoint[] {
  const groups = new Map<string, Point[]>();
  for (const list of perSeed) for (const p of list) (groups.get(p.name) ?? groups.set(p.name, []).get(p.name)!).push(p);
  return [...groups.values()].map((ps) => {
    const first = ps[0]!;
    const metrics: Record<string, number> = {};
    for (const k of Object.keys(first.metrics)) metrics[k] = mean(ps.map((p) => p.metrics[k]!));
    return { name: first.name, gfid: mean(ps.map((p) => p.gfid)), gfidError: first.gfidError, metrics, metricErrors: first.metricErrors, seeds: ps };
  });
}

function armStatistics(cfg: StudyConfig, points: SeededPoint[], robust: string): ArmStatistics | null {
  if (points.length === 0) return null;
  const s = studyStats(cfg);
  const gfid = points.map((p) => p.gfid);
  const boot = { resamples: s.correlationResamples, level: s.level, seed: cfg.seed };
  const perm = { resamples: s.permutationResamples, seed: cfg.seed };
  const keys = Object.keys(points[0]!.metrics);
  const summary = (kind: CorrelationKind, x: number[]) => correlationSummary(kind, x, gfid, { bootstrap: boot, permutation: perm });
  const metrics = keys.map((metric) => {
    const x = points.map((p) => p.metrics[metric]!);
    return { metric, x, xError: points.map((p) => p.metricErrors[metric] ?? NaN), xSeeds: points.map((p) => p.seeds.map((q) => q.metrics[metric]!)), spearman: summary('spearman', x), pearson: summary('pearson', x) };
  });
  const rf = points.map((p) => p.metrics.rFID!);
  const rb = points.map((p) => p.metrics[robust]!);
  const comparison = keys.includes(robust) ? { metric: robust, spearman: compareCorrelations('spearman', rb, rf, gfid, boot), pearson: compareCorrelations('pearson', rb, rf, gfid, boot) } : null;
  return { names: points.map((p) => p.name), gfid, gfidError: points.map((p) => p.gfidError), gfidSeeds: points.map((p) => p.seeds.map((q) => q.gfid)), metrics, comparison };
}

/** A recorded bootstrap standard error, NaN when the record has none (records from before intervals existed). */
const se = (iv: { standardError: number } | undefined) => iv?.standardError ?? NaN;

export const pfidLabel = (alpha: number) => `pFID a=${alpha}`;
export const nfidLabel = (tau: number) => `nFID t=${tau}`;

function discretePoints(r: Pick<StudyResults, 'tokenizers' | 'generators'>): Point[] {
  const byName = new Map(r.tokenizers.map((t) => [t.name, t]));
  return r.generators.map((g) => {
    const e = byName.get(g.tokenizer)!.eval;
    const metrics: Record<string, number> = { rFID: e.rfid };
    const metricErrors: Record<string, number> = { rFID: se(e.rfidError) };
    for (const p of e.pfid) {
      metrics[pfidLabel(p.alpha)] = p.fid;
      metricErrors[pfidLabel(p.alpha)] = se(p.error);
    }
    return { name: g.tokenizer, gfid: g.gfid, gfidError: se(g.gfidError), metrics, metricErrors };
  });
}

function continuousPoints(c: ContinuousResults): Point[] {
  const byName = new Map(c.tokenizers.map((t) => [t.name, t]));
  return c.generators.map((g) => {
    const e = byName.get(g.tokenizer)!.eval;
    const metrics: Record<string, number> = { rFID: e.rfid };
    const metricErrors: Record<string, number> = { rFID: se(e.rfidError) };
    for (const n of e.nfid) {
      metrics[nfidLabel(n.tau)] = n.fid;
      metricErrors[nfidLabel(n.tau)] = se(n.error);
    }
    metrics.iFID = e.ifid ?? NaN;
    metricErrors.iFID = se(e.ifidError);
    return { name: g.tokenizer, gfid: g.gfid, gfidError: se(g.gfidError), metrics, metricErrors };
  });
}

export function studyStatistics(r: StudyResults): StudyStatistics {
  const c = r.cfg;
  const reps = allReplicates(r);
  return {
    discrete: armStatistics(c, overSeeds(reps.map(discretePoints)), pfidLabel(c.eval.pfidAlpha)),
    continuous: r.continuous && c.continuous ? armStatistics(c, overSeeds(reps.map((x) => (x.continuous ? continuousPoints(x.continuous) : []))), nfidLabel(c.continuous.eval.nfidTau)) : null,
  };
}
