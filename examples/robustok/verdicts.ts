/**
 * A plain-language verdict per claim of the papers, computed from the study's numbers with one
 * rule: each claim is a signed quantity with an interval at the study's confidence level;
 *  - holds: the interval excludes 0 on the side the claim predicts;
 *  - does not hold: the interval excludes 0 on the other side;
 *  - cannot tell at this scale: the interval contains 0, or the numbers needed are missing
 *    (e.g. fewer than 3 tokenizers, no control decoder).
 * A correlation claim also needs its permutation p-value below 1 - level to hold.
 * With one training seed per tokenizer the intervals cover the sampling error the study measures
 * (gFID's bootstrap over samples, the bootstrap over tokenizers), not seed-to-seed variance. With
 * several seeds (StudyConfig.seeds) the differences of claims 1 and 3 are taken over the seeds
 * (Welch's t interval of two means; the t interval of the mean per-seed difference), so the
 * spread between trainings is in them, and claim 2 correlates the variants' means over seeds.
 */
import { meanInterval, normalQuantile, welchInterval, type BootstrapInterval } from '../../models/metrics/index.js';
import type { StudyConfig } from './config.js';
import type { PostTrainComparison } from './sample-scores.js';
import { studyStats } from './sample-scores.js';
import type { ArmStatistics, StudyStatistics } from './statistics.js';
import type { StudyResults } from './report.js';
import { allReplicates, mean, sd, type ReplicateResults } from './replicates.js';

export type Verdict = 'holds' | 'does not hold' | 'cannot tell at this scale';

export interface ClaimVerdict {
  /** The paper's claim number (1: perturbation, 2: pFID predicts gFID, 3: post-training). */
  claim: 1 | 2 | 3;
  statement: string;
  verdict: Verdict;
  /** The numbers behind the verdict. */
  evidence: string;
  /** The signed quantity and its interval (null when missing). */
  interval: { estimate: number; low: number; high: number } | null;
}

/** The rule: `predicts` is the sign the claim gives the quantity. */
export function signVerdict(iv: { low: number; high: number } | null, predicts: 'negative' | 'positive'): Verdict {
  if (!iv || !Number.isFinite(iv.low) || !Number.isFinite(iv.high)) return 'cannot tell at this scale';
  if (iv.high < 0) return predicts === 'negative' ? 'holds' : 'does not hold';
  if (iv.low > 0) return predicts === 'positive' ? 'holds' : 'does not hold';
  return 'cannot tell at this scale';
}

const f2 = (v: number) => (Number.isFinite(v) ? v.toFixed(2) : 'n/a');
/** "12.34 ± 0.56" when the record has the bootstrap error of the number. */
const fe = (v: number, e?: { standardError: number }) => (e ? `${f2(v)} ± ${f2(e.standardError)}` : f2(v));
const ivText = (iv: { estimate: number; low: number; high: number }) => `${f2(iv.estimate)} [${f2(iv.low)}, ${f2(iv.high)}]`;

/** Difference of two independent gFIDs with a normal interval from their bootstrap standard errors. */
function gfidDifference(a: { gfid: number; se: number }, b: { gfid: number; se: number }, level: number) {
  const z = normalQuantile(1 - (1 - level) / 2);
  const d = a.gfid - b.gfid;
  const h = z * Math.hypot(a.se, b.se);
  return { estimate: d, low: d - h, high: d + h };
}

/** "12.34 ± 0.56 sd" of per-seed values. */
const msd = (v: readonly number[]) => `${f2(mean(v))} ± ${f2(sd(v))} sd`;
const perSeed = (v: readonly number[]) => `[${v.map(f2).join(', ')}]`;

/**
 * Claim 1 over seeds: Welch's interval of mean gFID (with) - mean gFID (without), when both
 * variants have at least 2 seeds; null otherwise (the single-seed rule applies).
 */
function seededGfidDifference<Ev extends { rfid: number }>(reps: readonly ReplicateResults[], arm: (x: ReplicateResults) => { tokenizers: readonly { name: string; eval: Ev }[]; generators: readonly { tokenizer: string; gfid: number }[] } | null, robust: (e: Ev) => number, withName: string, withoutName: string, level: number): { iv: ReturnType<typeof welchInterval>; evidence: string } | null {
  const rows = (name: string) => reps.flatMap((x) => {
    const a = arm(x);
    const g = a?.generators.find((q) => q.tokenizer === name);
    const t = a?.tokenizers.find((q) => q.name === name);
    return g && t ? [{ gfid: g.gfid, rfid: t.eval.rfid, robust: robust(t.eval) }] : [];
  });
  const a = rows(withName);
  const b = rows(withoutName);
  if (a.length < 2 || b.length < 2) return null;
  const iv = welchInterval(a.map((x) => x.gfid), b.map((x) => x.gfid), level);
  const col = (v: typeof a, k: 'gfid' | 'rfid' | 'robust') => v.map((x) => x[k]);
  return { iv, evidence: `mean gFID ${withName} - ${withoutName} = ${ivText(iv)} (Welch t over ${a.length} and ${b.length} training seeds, df ${iv.df.toFixed(1)}; gFID per seed ${perSeed(col(a, 'gfid'))} vs ${perSeed(col(b, 'gfid'))}); rFID ${msd(col(b, 'rfid'))} -> ${msd(col(a, 'rfid'))}, robustness metric ${msd(col(b, 'robust'))} -> ${msd(col(a, 'robust'))}` };
}

function perturbationClaim(r: StudyResults, level: number): ClaimVerdict[] {
  const out: ClaimVerdict[] = [];
  const reps = allReplicates(r);
  const plain = (v: { config?: object }) => !v.config || Object.keys(v.config).length === 0;
  const vs = r.cfg.tokenizer.variants;
  const none = vs.find((v) => v.perturbation === 'none' && plain(v) && v.epochs === undefined);
  const paper = vs.find((v) => v.perturbation === 'paper' && plain(v) && v.epochs === undefined);
  const statement = "Latent perturbation (the paper's preset) gives a better gFID than no perturbation, at a small rFID cost and a much better pFID (discrete)";
  const g = (n: string | undefined) => r.generators.find((x) => x.tokenizer === n);
  const t = (n: string | undefined) => r.tokenizers.find((x) => x.name === n);
  const [gn, gp, tn, tp] = [g(none?.name), g(paper?.name), t(none?.name), t(paper?.name)];
  const a = r.cfg.eval.pfidAlpha;
  const seeded = none && paper ? seededGfidDifference(reps, (x) => x, (e) => e.pfid.find((q) => q.alpha === a)?.fid ?? NaN, paper.name, none.name, level) : null;
  if (seeded) out.push({ claim: 1, statement, verdict: signVerdict(seeded.iv, 'negative'), interval: seeded.iv, evidence: seeded.evidence.replace('robustness metric', `pFID (alpha ${a})`) });
  else if (gn && gp && tn && tp) {
    const iv = gfidDifference({ gfid: gp.gfid, se: gp.gfidError?.standardError ?? NaN }, { gfid: gn.gfid, se: gn.gfidError?.standardError ?? NaN }, level);
    const pf = (x: typeof tn) => {
      const p = x.eval.pfid.find((q) => q.alpha === a);
      return p ? fe(p.fid, p.error) : 'n/a';
    };
    out.push({ claim: 1, statement, verdict: signVerdict(iv, 'negative'), interval: iv, evidence: `gFID ${gp.tokenizer} - ${gn.tokenizer} = ${ivText(iv)}; rFID ${fe(tn.eval.rfid, tn.eval.rfidError)} -> ${fe(tp.eval.rfid, tp.eval.rfidError)}, pFID (alpha ${a}) ${pf(tn)} -> ${pf(tp)}` });
  } else out.push({ claim: 1, statement, verdict: 'cannot tell at this scale', interval: null, evidence: "the study needs a tokenizer with perturbation 'none' and one with 'paper' (same config), each with a generator" });
  const k = r.cfg.continuous;
  const c = r.continuous;
  if (k && c) {
    const cs = "Noise-augmented decoding ('paper-continuous') gives a better gFID than no latent noise (continuous)";
    const kn = k.tokenizer.variants.find((v) => v.latentNoise === 'none' && plain(v));
    const kp = k.tokenizer.variants.find((v) => v.latentNoise === 'paper-continuous' && plain(v));
    const cg = (n: string | undefined) => c.generators.find((x) => x.tokenizer === n);
    const [a, b] = [cg(kp?.name), cg(kn?.name)];
    const seededK = kn && kp ? seededGfidDifference(reps, (x) => x.continuous, (e) => e.nfidDefault.fid, kp.name, kn.name, level) : null;
    if (seededK) out.push({ claim: 1, statement: cs, verdict: signVerdict(seededK.iv, 'negative'), interval: seededK.iv, evidence: seededK.evidence.replace('robustness metric', 'nFID') });
    else if (a && b) {
      const iv = gfidDifference({ gfid: a.gfid, se: a.gfidError?.standardError ?? NaN }, { gfid: b.gfid, se: b.gfidError?.standardError ?? NaN }, level);
      const ta = c.tokenizers.find((x) => x.name === a.tokenizer)!.eval;
      const tb = c.tokenizers.find((x) => x.name === b.tokenizer)!.eval;
      out.push({ claim: 1, statement: cs, verdict: signVerdict(iv, 'negative'), interval: iv, evidence: `gFID ${a.tokenizer} - ${b.tokenizer} = ${ivText(iv)}; rFID ${fe(tb.rfid, tb.rfidError)} -> ${fe(ta.rfid, ta.rfidError)}, nFID ${fe(tb.nfidDefault.fid, tb.nfidDefault.error)} -> ${fe(ta.nfidDefault.fid, ta.nfidDefault.error)}` });
    } else out.push({ claim: 1, statement: cs, verdict: 'cannot tell at this scale', interval: null, evidence: "the continuous arm needs a tokenizer with latent noise 'none' and one with 'paper-continuous', each with a generator" });
  }
  return out;
}

function correlationClaims(arm: ArmStatistics | null, label: string, level: number): ClaimVerdict[] {
  const robust = arm?.comparison?.metric ?? (label === 'discrete' ? 'pFID' : 'nFID');
  const s1 = `${robust} correlates positively with gFID across tokenizers (${label}; the paper: Spearman rho > 0.95)`;
  const s2 = `${robust} predicts gFID better than rFID (${label}): rho(${robust}, gFID) - rho(rFID, gFID) > 0`;
  const m = arm?.metrics.find((x) => x.metric === robust);
  if (!arm || !m || !arm.comparison || arm.names.length < 3) {
    const why = `${arm?.names.length ?? 0} tokenizers with generators: a correlation needs at least 3`;
    return [
      { claim: 2, statement: s1, verdict: 'cannot tell at this scale', interval: null, evidence: why },
      { claim: 2, statement: s2, verdict: 'cannot tell at this scale', interval: null, evidence: why },
    ];
  }
  const sp = m.spearman;
  let v1 = signVerdict(sp.interval, 'positive');
  if (v1 === 'holds' && !(sp.permutation.p < 1 - level)) v1 = 'cannot tell at this scale';
  const covers95 = sp.interval.high >= 0.95 ? 'the interval reaches 0.95' : 'the interval stays below 0.95';
  const d = arm.comparison.spearman.difference;
  const rf = arm.metrics.find((x) => x.metric === 'rFID')!;
  return [
    { claim: 2, statement: s1, verdict: v1, interval: sp.interval, evidence: `Spearman ${ivText(sp.interval)}, permutation p = ${sp.permutation.p.toPrecision(2)} (${sp.permutation.exact ? 'exact' : 'Monte Carlo'}), n = ${arm.names.length}; ${covers95}` },
    { claim: 2, statement: s2, verdict: signVerdict(d, 'positive'), interval: d, evidence: `Spearman difference ${ivText(d)}; rho(rFID, gFID) ${ivText(rf.spearman.interval)}, permutation p = ${rf.spearman.permutation.p.toPrecision(2)}` },
  ];
}

function postTrainClaims(label: string, p: { tokenizer: string; comparison?: PostTrainComparison } | null, seeds: readonly { before: { gfid: number }; after: { gfid: number }; control: { gfid: number } | null }[], level: number): ClaimVerdict[] {
  const s1 = `Decoder post-training lowers gFID (${label}, the same generated samples)`;
  const s2 = `Post-training on the generator's outputs lowers gFID more than the same training on clean inputs (${label}; the control)`;
  if (seeds.length >= 2) {
    // One paired difference per training seed (each on its own generated samples): their mean's t interval.
    const over = (statement: string, d: number[], what: string): ClaimVerdict => {
      const iv = meanInterval(d, level);
      return { claim: 3, statement, verdict: signVerdict(iv, 'negative'), interval: iv, evidence: `${what} = ${ivText(iv)} (tokenizer ${p?.tokenizer ?? '?'}, mean over ${d.length} training seeds, t interval; per seed ${perSeed(d)})` };
    };
    const withControl = seeds.filter((x) => x.control);
    return [
      over(s1, seeds.map((x) => x.after.gfid - x.before.gfid), 'gFID after - before'),
      withControl.length >= 2 ? over(s2, withControl.map((x) => x.after.gfid - x.control!.gfid), 'gFID after - control') : { claim: 3, statement: s2, verdict: 'cannot tell at this scale', interval: null, evidence: 'fewer than 2 seeds with a control decoder' },
    ];
  }
  const c = p?.comparison;
  const one = (statement: string, iv: BootstrapInterval | null | undefined, what: string): ClaimVerdict =>
    iv ? { claim: 3, statement, verdict: signVerdict(iv, 'negative'), interval: iv, evidence: `${what} = ${ivText(iv)} (tokenizer ${p!.tokenizer}, paired bootstrap)` } : { claim: 3, statement, verdict: 'cannot tell at this scale', interval: null, evidence: p ? 'no control decoder in this run' : 'no post-training in this run' };
  return [one(s1, c?.afterMinusBefore, 'gFID after - before'), one(s2, c?.afterMinusControl, 'gFID after - control')];
}

/** Every claim's verdict, in claim order. */
const present = <T>(xs: readonly (T | null)[]): T[] => xs.filter((x): x is T => x !== null);

export function studyVerdicts(r: StudyResults, s: StudyStatistics): ClaimVerdict[] {
  const level = studyStats(r.cfg).level;
  const reps = allReplicates(r);
  return [
    ...perturbationClaim(r, level),
    ...correlationClaims(s.discrete, 'discrete', level),
    ...(r.cfg.continuous ? correlationClaims(s.continuous, 'continuous', level) : []),
    ...postTrainClaims('AR', r.posttrain, present(reps.map((x) => x.posttrain)), level),
    ...(r.cfg.continuous ? postTrainClaims('diffusion', r.continuous?.posttrain ?? null, present(reps.map((x) => x.continuous?.posttrain ?? null)), level) : []),
  ];
}

export const verdictRule = (c: StudyConfig) =>
  `Rule: each claim is a signed quantity with a ${Math.round(100 * studyStats(c).level)}% interval. Holds: the interval excludes 0 on the side the claim predicts (a correlation also needs its permutation p below ${(1 - studyStats(c).level).toFixed(2)}); does not hold: it excludes 0 on the other side; cannot tell at this scale: it contains 0 or the numbers are missing. The intervals cover gFID's sampling error and which tokenizers were drawn, not training-seed variance, with one seed per tokenizer; with several seeds, claims 1 and 3 use t intervals over the seeds (the spread between trainings included) and claim 2 the variants' means.`;
