/**
 * The RobusTok study at small scale, one command:
 *   npx tsx examples/robustok/run.ts [--preset demo|medium|gpu|full|tiny] [--out DIR] [--featnet FILE] [--estimate] [--seeds N]
 * `npm run demo` runs the demo preset, both arms (under fifteen minutes on a 2-core machine without
 * a GPU), and prints its total wall time at the end. The other presets print their expected
 * duration on this device (measured over a few steps) first, and use it for the progress line's
 * ETA; --estimate prints it and stops. Re-running with the same --out continues an interrupted
 * run. `medium` is the study sized for a 2-core machine without a GPU (docs/study.md).
 * --capture trains every stage with captured, replayed steps (E.captureStep: results bit-identical
 * to eager steps, less host time per step). --report-only writes DIR/partial/report.html and results.json from the finished stages' records
 * (a run still going on, or stopped) without running anything. --seeds N trains every variant with
 * N training seeds (the preset's seed, +1, ...; replicates past the first in DIR/seeds/seed-<s>), so
 * the verdicts include the spread between trainings; an existing single-seed run in DIR is
 * replicate 0 and is reused. A bad flag prints one line and exits with code 2.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { getDevice } from '../../node/index.js';
import { formatDuration } from '../../nn/train/progress.js';
import { PRESETS } from './config.js';
import { loadStudyData } from './data.js';
import { estimateStudy, type PlannedStage } from './estimate.js';
import { finishedStageResults } from './finished-stages.js';
import { writeStudyReport } from './report.js';
import { studyStatistics } from './statistics.js';
import { runStudy } from './study.js';
import { studyVerdicts } from './verdicts.js';

/** Bad input: one line naming the problem, exit code 2. */
function fail(message: string): never {
  console.error(`robustok: ${message}`);
  process.exit(2);
}

function parseArgs(argv: string[]): Record<string, string | true> {
  const out: Record<string, string | true> = {};
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (!a.startsWith('--')) fail(`unexpected argument '${a}' (flags: --preset demo|medium|gpu|full|tiny, --out DIR, --featnet FILE, --estimate, --tokenizers-only, --report-only, --capture, --seeds N)`);
    const [k, v] = a.slice(2).split('=', 2) as [string, string | undefined];
    if (v !== undefined) out[k] = v;
    else if (i + 1 < argv.length && !argv[i + 1]!.startsWith('--')) out[k] = argv[++i]!;
    else out[k] = true;
  }
  const known = new Set(['preset', 'out', 'featnet', 'estimate', 'tokenizers-only', 'report-only', 'capture', 'seeds']);
  for (const k of Object.keys(out)) if (!known.has(k)) fail(`unknown flag --${k} (flags: ${[...known].map((f) => `--${f}`).join(', ')})`);
  return out;
}

const args = parseArgs(process.argv.slice(2));
const preset = typeof args.preset === 'string' ? args.preset : 'demo';
const presetCfg = PRESETS[preset];
if (!presetCfg) fail(`unknown --preset '${preset}' (${Object.keys(PRESETS).join(', ')})`);
let cfg = presetCfg;
if (args.seeds !== undefined) {
  const n = Number(args.seeds);
  if (typeof args.seeds !== 'string' || !Number.isInteger(n) || n < 1) fail(`--seeds must be a positive integer, got '${String(args.seeds)}'`);
  cfg = { ...cfg, seeds: n };
}
const outDir = resolve(typeof args.out === 'string' ? args.out : `runs/robustok-${preset}`);
if (args['report-only']) {
  // A report of the finished stages (a run in progress or stopped) without running anything.
  const r = finishedStageResults(cfg, outDir, `npx tsx examples/robustok/run.ts ${process.argv.slice(2).join(' ')}`.trim());
  if (r.tokenizers.length === 0) throw new Error(`robustok: --report-only found no finished stage in ${outDir}`);
  const dir = join(outDir, 'partial');
  mkdirSync(dir, { recursive: true });
  const statistics = studyStatistics(r);
  const verdicts = studyVerdicts(r, statistics);
  writeFileSync(join(dir, 'results.json'), JSON.stringify({ ...r, statistics, verdicts }, null, 2));
  console.log(`finished stages: ${r.tokenizers.length} tokenizers, ${r.generators.length} generators${r.posttrain ? ', post-training' : ''}${r.continuous ? `; continuous: ${r.continuous.tokenizers.length} tokenizers, ${r.continuous.generators.length} generators${r.continuous.posttrain ? ', post-training' : ''}` : ''}`);
  console.log(`report: ${writeStudyReport(dir, r, { statistics, verdicts })}; results ${join(dir, 'results.json')}`);
  process.exit(0);
}
const backend = await getDevice();
console.log(`device: ${backend.name}`);
let plan: PlannedStage[] | undefined;
if (preset !== 'demo' || args.estimate) {
  const trainImages = cfg.trainImages ?? loadStudyData(cfg).train.shape[0];
  const e = await estimateStudy(cfg, backend, trainImages);
  plan = e.plan;
  const parts = Object.entries(e.stages).map(([k, s]) => `${k} ${formatDuration(s)}`).join(', ');
  const ms = (v: number | undefined) => (v === undefined ? 'n/a' : `${(v * 1000).toFixed(0)} ms`);
  const t = e.times;
  console.log(`expected duration of '${preset}' on this device: ${formatDuration(e.totalSeconds)} (${parts}; measured: tokenizer step ${ms(t.tokenizerStep)}, AR step ${ms(t.arStep)}, AR sampling batch ${ms(t.arSampleBatch)}, eval batch ${ms(t.evalBatch)}, FID bootstrap replicate ${ms(t.fidReplicate)}, KL tokenizer step ${ms(t.klTokenizerStep)}, DiT step ${ms(t.ditStep)}, DiT evaluation ${ms(t.ditEval)})`);
  if (args.estimate) {
    for (const s of e.plan) console.log(`  ${s.name}: ${formatDuration(s.seconds)}`);
    process.exit(0);
  }
}
const command = `npx tsx examples/robustok/run.ts ${process.argv.slice(2).join(' ')}`.trim();
const r = await runStudy({ backend, cfg, outDir, command, ...(typeof args.featnet === 'string' ? { featnetPath: args.featnet } : {}), tokenizersOnly: args['tokenizers-only'] === true, capture: args.capture === true, ...(plan ? { plan } : {}) });
// performance.now() counts from the process start: the wall time includes loading and the device.
console.log(`total wall time: ${formatDuration(performance.now() / 1000)} (the study itself ${formatDuration(r.seconds)}); results ${resolve(outDir, 'results.json')}`);
process.exit(0);
