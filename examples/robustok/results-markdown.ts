/**
 * Markdown tables of a finished study from its results.json, for docs/results.md: the numbers are
 * printed from the records, never typed by hand.
 *
 *   npx tsx examples/robustok/results-markdown.ts runs/robustok-medium/results.json > tables.md
 */
import { readFileSync } from 'node:fs';
import type { BootstrapInterval, ClassConsistency } from '../../models/metrics/index.js';
import type { StudyResults } from './report.js';
import { meanSdText } from './replicates.js';
import type { ArmStatistics, StudyStatistics } from './statistics.js';
import type { ClaimVerdict } from './verdicts.js';

type Results = StudyResults & { statistics: StudyStatistics; verdicts: ClaimVerdict[] };

const f2 = (v: number | null | undefined) => (typeof v === 'number' && Number.isFinite(v) ? v.toFixed(2) : 'n/a');
const f3 = (v: number) => (Number.isFinite(v) ? v.toFixed(3) : 'n/a');
const se = (v: number | null | undefined, e?: BootstrapInterval) => (e ? `${f2(v)} ± ${f2(e.standardError)}` : f2(v));
const pct = (v: number) => `${(100 * v).toFixed(1)}%`;
const cc = (c?: ClassConsistency) => (c ? `${pct(c.accuracy)} [${pct(c.low)}, ${pct(c.high)}]` : 'n/a');
const ci = (iv: { estimate: number; low: number; high: number }, f = f3) => `${f(iv.estimate)} [${f(iv.low)}, ${f(iv.high)}]`;
/** JSON writes NaN (no correlation for fewer than 3 points) as null. */
const pv = (p: number | null) => (typeof p === 'number' && Number.isFinite(p) ? p.toPrecision(2) : 'n/a');
const minutes = (s: number) => `${(s / 60).toFixed(1)} min`;

function table(head: string[], rows: (string | number)[][]): string {
  return [`| ${head.join(' | ')} |`, `|${head.map(() => '---').join('|')}|`, ...rows.map((r) => `| ${r.join(' | ')} |`)].join('\n');
}

function correlations(arm: ArmStatistics): string {
  const rows = arm.metrics.map((m) => [`${m.metric} vs gFID`, ci(m.spearman.interval), pv(m.spearman.permutation.p), ci(m.pearson.interval), pv(m.pearson.permutation.p)]);
  if (arm.comparison) {
    const c = arm.comparison;
    rows.push([`rho(${c.metric}) - rho(rFID)`, ci(c.spearman.difference), '', ci(c.pearson.difference), '']);
  }
  return table(['metric', 'Spearman [95% BCa]', 'p (perm.)', 'Pearson [95% BCa]', 'p (perm.)'], rows);
}

function postTrain(p: { tokenizer: string; before: { gfid: number; gfidError?: BootstrapInterval; classConsistency?: ClassConsistency }; after: { gfid: number; gfidError?: BootstrapInterval; classConsistency?: ClassConsistency }; control: { gfid: number; gfidError?: BootstrapInterval; classConsistency?: ClassConsistency } | null; comparison?: { afterMinusBefore: BootstrapInterval; controlMinusBefore: BootstrapInterval | null; afterMinusControl: BootstrapInterval | null } }): string {
  const rows: (string | number)[][] = [
    ['before', se(p.before.gfid, p.before.gfidError), cc(p.before.classConsistency)],
    ['after (generator outputs)', se(p.after.gfid, p.after.gfidError), cc(p.after.classConsistency)],
    ...(p.control ? [['control (clean inputs, same training)', se(p.control.gfid, p.control.gfidError), cc(p.control.classConsistency)]] : []),
  ];
  const c = p.comparison;
  const diffs = c ? `\n\nPaired differences (one bootstrap draw shared by the decoders, 95% percentile): after - before ${ci(c.afterMinusBefore, f2)}${c.controlMinusBefore ? `, control - before ${ci(c.controlMinusBefore, f2)}` : ''}${c.afterMinusControl ? `, after - control ${ci(c.afterMinusControl, f2)}` : ''}.` : '';
  return `Tokenizer \`${p.tokenizer}\`:\n\n${table(['decoder', 'gFID ± SE', 'class consistency [95%]'], rows)}${diffs}`;
}

/** Each variant's spread over training seeds (only when the study has more than one seed); JSON arms from before seeds have no gfidSeeds. */
function seedSpread(arm: ArmStatistics): string | null {
  const seeds = arm.gfidSeeds;
  if (!seeds?.some((v) => v.length > 1)) return null;
  const metrics = arm.metrics.filter((m) => m.metric === 'rFID' || m.metric === arm.comparison?.metric);
  return table(['tokenizer', 'seeds', 'gFID mean ± sd', 'gFID per seed', ...metrics.map((m) => `${m.metric} mean ± sd`)], arm.names.map((n, i) => [n, seeds[i]!.length, meanSdText(seeds[i]!), seeds[i]!.map(f2).join(', '), ...metrics.map((m) => meanSdText(m.xSeeds[i]!))]));
}

export function resultsMarkdown(r: Results): string {
  const out: string[] = [];
  out.push(`Run: \`${r.command}\` on ${r.device}; ${minutes(r.seconds)} in this process (stages loaded from an earlier run count as 0).`);
  out.push('### VQ tokenizers (rFID / pFID ± bootstrap SE over the validation images)');
  const alphas = r.tokenizers[0]?.eval.pfid.map((p) => p.alpha) ?? [];
  out.push(table(['tokenizer', 'perturbation', 'rFID', ...alphas.map((a) => `pFID a=${a}`), 'PSNR', 'SSIM', 'usage'], r.tokenizers.map((t) => [t.name, t.description, se(t.eval.rfid, t.eval.rfidError), ...t.eval.pfid.map((p) => se(p.fid, p.error)), f2(t.eval.psnr), f3(t.eval.ssim), `${t.eval.usage.toFixed(1)}%`])));
  out.push('### AR generators');
  out.push(table(['tokenizer', 'gFID ± SE', 'class consistency [95%]', 'IS', 'final loss', 'train s', 'sampling s'], r.generators.map((g) => [g.tokenizer, se(g.gfid, g.gfidError), cc(g.classConsistency), f2(g.inceptionScore), f3(g.finalLoss), g.trainSeconds.toFixed(0), g.sampleSeconds.toFixed(0)])));
  if (r.statistics.discrete) out.push('### Correlation with gFID (discrete)', correlations(r.statistics.discrete));
  const ds = r.statistics.discrete && seedSpread(r.statistics.discrete);
  if (ds) out.push('### Spread over training seeds (discrete; the tables above are the first seed)', ds);
  if (r.posttrain) out.push('### Decoder post-training (AR)', postTrain(r.posttrain));
  const k = r.continuous;
  if (k) {
    out.push('### KL tokenizers (rFID / nFID / iFID ± bootstrap SE)');
    const taus = k.tokenizers[0]?.eval.nfid.map((n) => n.tau) ?? [];
    out.push(table(['tokenizer', 'latent noise', 'rFID', ...taus.map((t) => `nFID t=${t}`), 'iFID', 'PSNR', 'SSIM'], k.tokenizers.map((t) => [t.name, t.description, se(t.eval.rfid, t.eval.rfidError), ...t.eval.nfid.map((n) => se(n.fid, n.error)), se(t.eval.ifid, t.eval.ifidError), f2(t.eval.psnr), f3(t.eval.ssim)])));
    out.push('### Diffusion generators');
    out.push(table(['tokenizer', 'gFID ± SE', 'class consistency [95%]', 'IS', 'final loss', 'train s', 'sampling s'], k.generators.map((g) => [g.tokenizer, se(g.gfid, g.gfidError), cc(g.classConsistency), f2(g.inceptionScore), f3(g.finalLoss), g.trainSeconds.toFixed(0), g.sampleSeconds.toFixed(0)])));
    if (r.statistics.continuous) out.push('### Correlation with gFID (continuous)', correlations(r.statistics.continuous));
    const cs = r.statistics.continuous && seedSpread(r.statistics.continuous);
    if (cs) out.push('### Spread over training seeds (continuous)', cs);
    if (k.posttrain) out.push('### Decoder post-training (diffusion)', postTrain(k.posttrain));
  }
  out.push('### Verdicts');
  out.push(table(['claim', 'statement', 'verdict', 'evidence'], r.verdicts.map((v) => [v.claim, v.statement, `**${v.verdict}**`, v.evidence.replaceAll('|', '\\|')])));
  return out.join('\n\n') + '\n';
}

const isMain = process.argv[1] && import.meta.url.endsWith(process.argv[1].replace(/^.*examples\//, 'examples/'));
if (isMain) {
  const file = process.argv[2];
  if (!file) {
    console.error('usage: npx tsx examples/robustok/results-markdown.ts <study>/results.json');
    process.exit(2);
  }
  let r: Results;
  try {
    r = JSON.parse(readFileSync(file, 'utf8')) as Results;
  } catch (e) {
    console.error(`results-markdown: cannot read ${file}: ${(e as Error).message}`);
    process.exit(2);
  }
  process.stdout.write(resultsMarkdown(r));
}
