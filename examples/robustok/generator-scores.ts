/**
 * Every generator a study folder holds, scored side by side: the study's own (each training seed),
 * and those of generator-spread.ts (other generator seeds on one tokenizer), AR and diffusion, with
 * gFID ± its sampling SE, class consistency and the final training loss; then how well class
 * consistency alone predicts gFID across them (Spearman and Pearson, bootstrap interval over the
 * generators, permutation p-value). At a scale where gFID moves with the generator's seed more
 * than with the tokenizer, this says what the gFID differences are made of.
 *
 *   npx tsx examples/robustok/generator-scores.ts runs/robustok-medium-capture
 *
 * Reads <dir>/[seeds/seed-<s>/][continuous/]generators/<variant>/record.json and
 * <dir>/generator-spread/<variant>/seed-<s>/generators/<variant>/record.json.
 */
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { readJsonIfExists } from './context.js';
import { correlationSummary, type CorrelationSummary } from '../../models/metrics/correlation-stats.js';

export interface GeneratorScore {
  arm: 'AR' | 'diffusion';
  /** Where it comes from: the study's training seed, or a generator-spread seed. */
  source: string;
  tokenizer: string;
  gfid: number;
  gfidSe: number | null;
  classConsistency: number;
  finalLoss: number;
}

const subdirs = (dir: string): string[] => (existsSync(dir) ? readdirSync(dir, { withFileTypes: true }).filter((e) => e.isDirectory()).map((e) => e.name).sort() : []);

/** The finished generators under one generators/ folder. */
function scoresIn(dir: string, arm: GeneratorScore['arm'], source: string): GeneratorScore[] {
  const out: GeneratorScore[] = [];
  for (const v of subdirs(dir)) {
    const r = readJsonIfExists(join(dir, v, 'record.json'), 'generator-scores');
    const cc = (r?.classConsistency as { accuracy?: number } | undefined)?.accuracy;
    if (!r || typeof r.gfid !== 'number' || typeof cc !== 'number') continue;
    const se = (r.gfidError as { standardError?: number } | undefined)?.standardError;
    out.push({ arm, source, tokenizer: String(r.tokenizer ?? v), gfid: r.gfid, gfidSe: typeof se === 'number' ? se : null, classConsistency: cc, finalLoss: Number(r.finalLoss) });
  }
  return out;
}

/** Every finished generator of a study folder (all training seeds, and generator-spread's). */
export function collectGeneratorScores(dir: string): GeneratorScore[] {
  if (!existsSync(dir)) throw new Error(`generator-scores: no folder ${dir}`);
  const first = readJsonIfExists(join(dir, 'results.json'), 'generator-scores')?.cfg as { seed?: number } | undefined;
  const firstSource = typeof first?.seed === 'number' ? `study seed ${first.seed}` : 'study first seed';
  const seedDirs: [string, string][] = [[firstSource, dir], ...subdirs(join(dir, 'seeds')).map((s): [string, string] => [`study ${s.replace('-', ' ')}`, join(dir, 'seeds', s)])];
  const out: GeneratorScore[] = [];
  for (const [source, d] of seedDirs) {
    out.push(...scoresIn(join(d, 'generators'), 'AR', source));
    out.push(...scoresIn(join(d, 'continuous', 'generators'), 'diffusion', source));
  }
  for (const v of subdirs(join(dir, 'generator-spread'))) {
    for (const s of subdirs(join(dir, 'generator-spread', v))) out.push(...scoresIn(join(dir, 'generator-spread', v, s, 'generators'), 'AR', `spread ${v} ${s.replace('-', ' ')}`));
  }
  return out;
}

/** Class consistency against gFID over the given generators (needs at least 4). */
export function consistencyVsGfid(rows: readonly GeneratorScore[], seed = 0): { spearman: CorrelationSummary; pearson: CorrelationSummary } | null {
  if (rows.length < 4) return null;
  const cc = rows.map((r) => r.classConsistency);
  const g = rows.map((r) => r.gfid);
  const o = { bootstrap: { resamples: 4000, seed }, permutation: { resamples: 9999, seed } };
  return { spearman: correlationSummary('spearman', cc, g, o), pearson: correlationSummary('pearson', cc, g, o) };
}

export function scoresMarkdown(rows: readonly GeneratorScore[]): string {
  const lines = ['| arm | source | tokenizer | gFID | class consistency | final loss |', '|---|---|---|---|---|---|'];
  for (const r of rows) lines.push(`| ${r.arm} | ${r.source} | ${r.tokenizer} | ${r.gfid.toFixed(2)}${r.gfidSe !== null ? ` ± ${r.gfidSe.toFixed(2)}` : ''} | ${(100 * r.classConsistency).toFixed(1)}% | ${r.finalLoss.toFixed(3)} |`);
  return lines.join('\n');
}

function summaryLine(label: string, s: CorrelationSummary): string {
  const i = s.interval;
  return `${label}: ${i.estimate.toFixed(2)} [${i.low.toFixed(2)}, ${i.high.toFixed(2)}], permutation p = ${s.permutation.p.toPrecision(2)} (n = ${s.n})`;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const dir = process.argv[2];
  if (!dir || process.argv.length > 3) {
    console.error('generator-scores: usage: generator-scores.ts STUDY_DIR');
    process.exit(2);
  }
  let rows: GeneratorScore[];
  try {
    rows = collectGeneratorScores(dir);
  } catch (e) {
    console.error((e as Error).message);
    process.exit(2);
  }
  if (!rows.length) {
    console.error(`generator-scores: no finished generator records under ${dir}`);
    process.exit(2);
  }
  console.log(scoresMarkdown(rows));
  for (const arm of ['AR', 'diffusion'] as const) {
    const c = consistencyVsGfid(rows.filter((r) => r.arm === arm));
    if (!c) continue;
    console.log(`\n${arm} generators, class consistency vs gFID:`);
    console.log(summaryLine('  Spearman', c.spearman));
    console.log(summaryLine('  Pearson', c.pearson));
  }
}
