/**
 * The study report's statistical sections: the verdict per claim, the correlations of each
 * tokenizer metric with gFID (bootstrap intervals over tokenizers, permutation p-values, the
 * paired comparison with rFID) with scatter plots carrying gFID's sampling error, the
 * post-training comparison with error bars and paired differences, and the class consistency of
 * every generator's samples with the grids of the best AR and diffusion generators.
 */
import { readFileSync } from 'node:fs';
import { normalQuantile, type BootstrapInterval, type ClassConsistency } from '../../models/metrics/index.js';
import { errorBarScatter, intervalChart, type Report, type Row } from '../../node/report/index.js';
import type { StudyConfig } from './config.js';
import type { StudyResults } from './report.js';
import { allReplicates, meanSdText } from './replicates.js';
import { studyStats, type PostTrainComparison, type SampleScores } from './sample-scores.js';
import type { ArmStatistics, StudyStatistics } from './statistics.js';
import { verdictRule, type ClaimVerdict } from './verdicts.js';

/** The class-consistency level the issue asks of the best AR and diffusion generators. */
export const CLASS_CONSISTENCY_TARGET = 0.8;

const f2 = (v: number) => (Number.isFinite(v) ? v.toFixed(2) : 'n/a');
const f3 = (v: number) => (Number.isFinite(v) ? v.toFixed(3) : 'n/a');
const ci = (iv: BootstrapInterval, f = f3) => `${f(iv.estimate)} [${f(iv.low)}, ${f(iv.high)}]`;
/** "12.34 ± 0.56" with a recorded bootstrap error, else the number alone. */
export const withError = (v: number, e: BootstrapInterval | undefined): number | string => (e && Number.isFinite(v) ? `${v.toFixed(2)} ± ${e.standardError.toFixed(2)}` : v);
const pct = (v: number) => (Number.isFinite(v) ? `${(100 * v).toFixed(1)}%` : 'n/a');

export function addVerdicts(rep: Report, cfg: StudyConfig, verdicts: readonly ClaimVerdict[]): void {
  rep.section('Verdicts');
  rep.paragraph(verdictRule(cfg));
  rep.table(verdicts.map((v) => ({ claim: v.claim, statement: v.statement, verdict: v.verdict, evidence: v.evidence })));
}

function correlationTable(arm: ArmStatistics): Row[] {
  const rows: Row[] = arm.metrics.map((m) => ({
    metric: `${m.metric} vs gFID`,
    Spearman: ci(m.spearman.interval),
    'Spearman p (perm.)': m.spearman.permutation.p,
    Pearson: ci(m.pearson.interval),
    'Pearson p (perm.)': m.pearson.permutation.p,
    'dropped resamples': m.spearman.interval.dropped,
  }));
  if (arm.comparison) {
    const c = arm.comparison;
    rows.push({ metric: `rho(${c.metric}) - rho(rFID)`, Spearman: ci(c.spearman.difference), Pearson: ci(c.pearson.difference), 'dropped resamples': c.spearman.difference.dropped });
  }
  return rows;
}

/** Correlation table and one scatter plot per metric (gFID error bars: estimate +- z SE). */
export function addCorrelations(rep: Report, cfg: StudyConfig, arm: ArmStatistics, label: string): void {
  const s = studyStats(cfg);
  const z = normalQuantile(1 - (1 - s.level) / 2);
  const perm = arm.metrics[0]?.spearman.permutation;
  rep.section(`Correlation with gFID, with intervals (${label})`);
  const seeded = arm.gfidSeeds.some((v) => v.length > 1);
  const seedNote = seeded ? ` (each point the mean over its ${[...new Set(arm.gfidSeeds.map((v) => v.length))].join(' / ')} training seeds; the bootstrap resamples tokenizers with their seeds)` : '';
  rep.table(correlationTable(arm), {
    caption: `n = ${arm.names.length} tokenizers${seedNote}. Coefficient [${Math.round(100 * s.level)}% BCa bootstrap interval over ${s.correlationResamples} resamples of the tokenizers]; permutation p-values two-sided (${perm?.exact ? `exact, all ${perm.permutations} orderings` : `Monte Carlo, ${s.permutationResamples} permutations`}). Resamples with a constant metric have no correlation and are dropped. The last row is the paired comparison over the same resamples.`,
  });
  const rho = (label: string, iv: BootstrapInterval) => ({ label, value: iv.estimate, low: iv.low, high: iv.high });
  const rows = [...arm.metrics.map((m) => rho(`${m.metric}`, m.spearman.interval)), ...(arm.comparison ? [rho(`rho(${arm.comparison.metric}) - rho(rFID)`, arm.comparison.spearman.difference)] : [])];
  rep.svg(intervalChart(rows, { title: `Spearman rho with gFID (${label})`, xLabel: 'Spearman rho', reference: 0 }), `${Math.round(100 * s.level)}% bootstrap intervals over the tokenizers; the last row is the paired difference (above 0: the robustness metric predicts gFID better than rFID)`);
  for (const m of arm.metrics) {
    const note = `Spearman ${ci(m.spearman.interval, f2)}, p = ${m.spearman.permutation.p.toPrecision(2)}`;
    if (seeded) {
      // Several seeds: the bars are the range of the per-seed values around their mean.
      const pts = arm.names.map((name, i) => ({ x: m.x[i]!, y: arm.gfid[i]!, yLow: Math.min(...arm.gfidSeeds[i]!), yHigh: Math.max(...arm.gfidSeeds[i]!), xLow: Math.min(...m.xSeeds[i]!), xHigh: Math.max(...m.xSeeds[i]!), label: name }));
      rep.svg(errorBarScatter(pts, { title: `${m.metric} vs gFID (${label})`, xLabel: m.metric, yLabel: 'gFID', note }), `points: means over the training seeds; error bars: the range of the per-seed values (lowest to highest seed), gFID vertical, ${m.metric} horizontal`);
      continue;
    }
    const pts = arm.names.map((name, i) => ({ x: m.x[i]!, y: arm.gfid[i]!, yLow: arm.gfid[i]! - z * arm.gfidError[i]!, yHigh: arm.gfid[i]! + z * arm.gfidError[i]!, xLow: m.x[i]! - z * m.xError[i]!, xHigh: m.x[i]! + z * m.xError[i]!, label: name }));
    const xBars = m.xError.some(Number.isFinite) ? `; horizontal: ${m.metric} +- ${z.toFixed(2)} bootstrap SE (resampling the validation images, shared by the real and decoded sets)` : '';
    rep.svg(errorBarScatter(pts, { title: `${m.metric} vs gFID (${label})`, xLabel: m.metric, yLabel: 'gFID', note }), `error bars: vertical: gFID +- ${z.toFixed(2)} bootstrap SE (sampling error of the samples and the real set)${xBars}`);
  }
}

/** gFID with its sampling error per generator of an arm. */
export function addSamplingError(rep: Report, rows: readonly { name: string; scores: Pick<SampleScores, 'gfid' | 'gfidError'> }[], label: string): void {
  rep.heading(`gFID sampling error (${label})`, 3);
  rep.table(
    rows.map((r) => ({ generator: r.name, gFID: r.scores.gfid, 'bootstrap SE': r.scores.gfidError?.standardError, 'percentile interval': r.scores.gfidError ? `[${f2(r.scores.gfidError.low)}, ${f2(r.scores.gfidError.high)}]` : 'n/a', replicates: r.scores.gfidError?.resamples })),
    { caption: 'bootstrap over the generated and the real feature rows; the bootstrap distribution of a FID sits above the estimate (duplicated rows), so read the SE as the sampling error and the interval as its spread' },
  );
}

/** The post-training comparison: gFID of before / after / control with error bars, and the paired differences. */
export function addPostTrainErrors(rep: Report, cfg: StudyConfig, p: { before: SampleScores; after: SampleScores; control: SampleScores | null; comparison?: PostTrainComparison }, label: string): void {
  if (!p.comparison || !p.before.gfidError) return;
  const z = normalQuantile(1 - (1 - studyStats(cfg).level) / 2);
  const bar = (name: string, s: SampleScores) => ({ label: name, value: s.gfid, low: s.gfid - z * s.gfidError.standardError, high: s.gfid + z * s.gfidError.standardError });
  rep.svg(intervalChart([bar('before', p.before), bar('after', p.after), ...(p.control ? [bar('control', p.control)] : [])], { title: `gFID by decoder (${label})`, xLabel: 'gFID' }), `gFID +- ${z.toFixed(2)} bootstrap SE each; the three decode the same samples, so compare them with the paired differences below`);
  const c = p.comparison;
  const diff = (name: string, iv: BootstrapInterval | null) => (iv ? [{ label: name, value: iv.estimate, low: iv.low, high: iv.high }] : []);
  rep.svg(intervalChart([...diff('after - before', c.afterMinusBefore), ...diff('control - before', c.controlMinusBefore), ...diff('after - control', c.afterMinusControl)], { title: `paired gFID differences (${label})`, xLabel: 'gFID difference', reference: 0 }), 'percentile intervals over one bootstrap draw of sample and real rows shared by every decoder; below 0: the first decoder is better');
}

/** Class consistency per generator (overall with its Wilson interval, per class) and the best generators' grids. */
export function addClassConsistency(rep: Report, classes: readonly string[], rows: readonly { generator: string; arm: string; cc: ClassConsistency | undefined; gfid: number }[], grids: readonly { title: string; path: string; width: number; cc: ClassConsistency | undefined }[]): void {
  rep.section('Class consistency of the samples');
  rep.paragraph(`The shipped FeatNet classifies every generated sample; class consistency is the fraction classified as the class the sample was conditioned on (FeatNet's accuracy on real validation images: about 90%; unrelated samples: ${pct(1 / Math.max(1, classes.length))}). Target for the best AR and the best diffusion generator: ${pct(CLASS_CONSISTENCY_TARGET)}.`);
  const names = classes.length ? classes : rows[0]?.cc?.perClass.map((c) => String(c.class)) ?? [];
  rep.table(
    rows.map((r) => {
      const row: Row = { generator: r.generator, arm: r.arm, gFID: r.gfid, overall: r.cc ? `${pct(r.cc.accuracy)} [${pct(r.cc.low)}, ${pct(r.cc.high)}]` : 'n/a' };
      r.cc?.perClass.forEach((c, i) => (row[names[i] ?? String(c.class)] = pct(c.accuracy)));
      return row;
    }),
    { caption: 'overall with its Wilson score interval, then per conditioning class' },
  );
  // Shown 4x (pixelated): a grid is a few hundred pixels wide at most.
  for (const g of grids) rep.paragraph(`${g.title}: ${targetText(g.cc)}`);
  for (const g of grids) rep.image(g.path, { alt: g.title, width: 4 * g.width, caption: `${g.title}: one row per class, in class order (${names.join(', ')})` });
}

/** Whether a class consistency reaches the target, by its Wilson interval. */
export function targetText(cc: ClassConsistency | undefined): string {
  if (!cc) return 'not measured';
  const t = pct(CLASS_CONSISTENCY_TARGET);
  if (cc.low >= CLASS_CONSISTENCY_TARGET) return `reaches the ${t} target (interval [${pct(cc.low)}, ${pct(cc.high)}])`;
  if (cc.high < CLASS_CONSISTENCY_TARGET) return `below the ${t} target (interval [${pct(cc.low)}, ${pct(cc.high)}])`;
  return `cannot tell whether it reaches ${t} (interval [${pct(cc.low)}, ${pct(cc.high)}] contains it)`;
}

/** Pixel width of a PNG (its IHDR chunk), 0 when unreadable. */
function gridWidth(path: string): number {
  try {
    return readFileSync(path).readUInt32BE(16);
  } catch {
    return 0;
  }
}

/** Per variant, its values over the training seeds: mean ± sd and each seed's value (gFID, the metrics). */
function seedTable(arm: ArmStatistics): Row[] {
  return arm.names.map((name, i) => {
    const row: Row = { tokenizer: name, seeds: arm.gfidSeeds[i]!.length, 'gFID mean ± sd': meanSdText(arm.gfidSeeds[i]!), 'gFID per seed': arm.gfidSeeds[i]!.map(f2).join(', ') };
    for (const m of arm.metrics) row[`${m.metric} mean ± sd`] = meanSdText(m.xSeeds[i]!);
    return row;
  });
}

/** The training-seed replicates: each variant's spread over seeds, and post-training per seed. */
export function addSeedSpread(rep: Report, r: StudyResults, s: StudyStatistics): void {
  const reps = allReplicates(r);
  if (reps.length < 2) return;
  const seeds = reps.map((x) => x.seed);
  rep.section('Training seeds');
  rep.paragraph(`Every variant was trained ${reps.length} times (training seeds ${seeds.join(', ')}; the data split and the real images are the same). The tables above show seed ${seeds[0]}; the correlations use each variant's mean over its seeds, and the verdicts of claims 1 and 3 use t intervals over the seeds.`);
  if (s.discrete) rep.table(seedTable(s.discrete), { caption: 'discrete arm: mean ± standard deviation over the seeds (sd: the spread of one training run)' });
  if (s.continuous) rep.table(seedTable(s.continuous), { caption: 'continuous arm: mean ± standard deviation over the seeds' });
  const post = (label: string, list: readonly ({ tokenizer: string; before: SampleScores; after: SampleScores; control: SampleScores | null } | null)[]) => {
    const rows = list.flatMap((p, i) => (p ? [{ seed: seeds[i]!, tokenizer: p.tokenizer, before: p.before.gfid, after: p.after.gfid, control: p.control?.gfid ?? NaN, 'after - before': p.after.gfid - p.before.gfid, 'after - control': p.control ? p.after.gfid - p.control.gfid : NaN }] : []));
    if (rows.length) rep.table(rows, { caption: `post-training per seed (${label}): gFID of each seed's generated samples decoded by each decoder` });
  };
  post('AR', reps.map((x) => x.posttrain));
  post('diffusion', reps.map((x) => x.continuous?.posttrain ?? null));
}

/** Every statistical section, in report order after the arms' own sections. */
export function addStatisticsSections(rep: Report, rel: (p: string) => string, r: StudyResults, s: StudyStatistics): void {
  const c = r.cfg;
  if (s.discrete) {
    addCorrelations(rep, c, s.discrete, 'discrete');
    addSamplingError(rep, r.generators.map((g) => ({ name: g.tokenizer, scores: g })), 'AR generators');
  }
  if (s.continuous && r.continuous) {
    addCorrelations(rep, c, s.continuous, 'continuous');
    addSamplingError(rep, r.continuous.generators.map((g) => ({ name: g.tokenizer, scores: g })), 'diffusion generators');
  }
  addSeedSpread(rep, r, s);
  if (r.posttrain || r.continuous?.posttrain) {
    rep.section('Post-training with error bars');
    if (r.posttrain) addPostTrainErrors(rep, c, r.posttrain, `AR, ${r.posttrain.tokenizer}`);
    if (r.continuous?.posttrain) addPostTrainErrors(rep, c, r.continuous.posttrain, `diffusion, ${r.continuous.posttrain.tokenizer}`);
  }
  const gens = [...r.generators.map((g) => ({ generator: g.tokenizer, arm: 'AR', cc: g.classConsistency, gfid: g.gfid, grid: g.sampleGrid })), ...(r.continuous?.generators ?? []).map((g) => ({ generator: g.tokenizer, arm: 'diffusion', cc: g.classConsistency, gfid: g.gfid, grid: g.sampleGrid }))];
  const post = (arm: string, p: { tokenizer: string; before: SampleScores; after: SampleScores; control: SampleScores | null } | null | undefined) =>
    p ? [{ generator: `${p.tokenizer}, post-trained decoder`, arm, cc: p.after.classConsistency, gfid: p.after.gfid }, ...(p.control ? [{ generator: `${p.tokenizer}, control decoder`, arm, cc: p.control.classConsistency, gfid: p.control.gfid }] : [])] : [];
  if (gens.length) {
    const best = (arm: string) => gens.filter((g) => g.arm === arm).reduce<(typeof gens)[number] | null>((a, b) => (!a || b.gfid < a.gfid ? b : a), null);
    const grids = ['AR', 'diffusion'].flatMap((arm) => {
      const b = best(arm);
      return b ? [{ title: `best ${arm} generator (${b.generator}, class consistency ${b.cc ? pct(b.cc.accuracy) : 'n/a'})`, path: rel(b.grid), width: gridWidth(b.grid), cc: b.cc }] : [];
    });
    addClassConsistency(rep, r.classes ?? [], [...gens, ...post('AR', r.posttrain), ...post('diffusion', r.continuous?.posttrain)], grids);
  }
}
