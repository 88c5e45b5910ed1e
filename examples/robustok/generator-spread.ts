/**
 * How much of a study's run-to-run spread is the generator's own: AR generators trained on one
 * finished tokenizer of a study with several training seeds (the tokenizer fixed), scored as the
 * study scores them (gFID with its bootstrap SE, class consistency). Compare their spread with the
 * spread of the same variant across `--seeds` replicates, where tokenizer and generator both change.
 *
 *   npx tsx examples/robustok/generator-spread.ts --preset medium --out runs/robustok-medium-capture --variant baseline --seeds 100,101
 *   ... --ar-epochs 12      (the generators trained for 12 epochs instead of the preset's)
 *
 * Generator seed s trains in <out>/generator-spread/<variant>/seed-<s>/generators/<variant> (resumable
 * like a study stage; with --ar-epochs N in <out>/generator-spread/<variant>-ar<N>ep/...); the
 * tokenizer is <out>/tokenizers/<variant> (the study's first seed).
 */
import { join, resolve } from 'node:path';
import { formatDuration } from '../../nn/train/progress.js';
import { getDevice } from '../../node/index.js';
import { loadTokenizerCheckpoint } from '../../node/train-tokenizer.js';
import { PRESETS } from './config.js';
import { finishedRecord, loadStudyFeatNet, realFeatureStats, type StudyContext } from './context.js';
import { loadStudyData } from './data.js';
import { runGenerator } from './generators.js';
import { mean, sd } from './replicates.js';
import type { TokenizerRecord } from './tokenizers.js';

const FLAGS = ['preset', 'out', 'variant', 'seeds', 'ar-epochs'];

function fail(message: string): never {
  console.error(`generator-spread: ${message}`);
  process.exit(2);
}

function parseArgs(argv: string[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (let i = 0; i < argv.length; i += 2) {
    const k = argv[i]!.replace(/^--/, '');
    const v = argv[i + 1];
    if (!argv[i]!.startsWith('--') || !FLAGS.includes(k)) fail(`unknown argument '${argv[i]}' (flags: ${FLAGS.map((f) => `--${f}`).join(', ')})`);
    if (v === undefined || v.startsWith('--')) fail(`--${k} needs a value`);
    out[k] = v;
  }
  for (const k of ['out', 'variant', 'seeds']) if (!out[k]) fail(`--${k} is required`);
  return out;
}

const args = parseArgs(process.argv.slice(2));
const preset = PRESETS[args.preset ?? 'medium'] ?? fail(`unknown --preset '${args.preset}' (${Object.keys(PRESETS).join(', ')})`);
const arEpochs = args['ar-epochs'] === undefined ? null : Number(args['ar-epochs']);
if (arEpochs !== null && !(Number.isInteger(arEpochs) && arEpochs >= 1)) fail(`--ar-epochs must be a positive integer, got '${args['ar-epochs']}'`);
const cfg = arEpochs === null ? preset : { ...preset, ar: { ...preset.ar, epochs: arEpochs } };
const spreadName = arEpochs === null ? args.variant! : `${args.variant!}-ar${arEpochs}ep`;
const seeds = args.seeds!.split(',').map(Number);
if (!seeds.length || seeds.some((s) => !Number.isInteger(s) || s < 0)) fail(`--seeds must be non-negative integers separated by commas, got '${args.seeds}'`);
const outDir = resolve(args.out!);
const tokDir = join(outDir, 'tokenizers', args.variant!);
const tok = finishedRecord<TokenizerRecord>(tokDir, () => true, ['checkpoint.safetensors']) ?? fail(`no finished tokenizer '${args.variant}' in ${tokDir}`);

const backend = await getDevice();
const t0 = performance.now();
const data = loadStudyData(cfg);
const { net: featnet } = loadStudyFeatNet(cfg.dataset, backend);
const real = await realFeatureStats(cfg, data, featnet, backend);
const progress = { resumed: () => {}, skip: () => {}, done: () => {} };
using tokenizer = (await loadTokenizerCheckpoint(tok.checkpoint, backend)).model;
tokenizer.eval();
const rows: { seed: number; gfid: number; se: number; cc: number }[] = [];
for (const seed of seeds) {
  const ctx: StudyContext = { cfg: { ...cfg, seed }, backend, data, outDir: join(outDir, 'generator-spread', spreadName, `seed-${seed}`), log: (l) => console.log(`[seed ${seed}] ${l}`), featnet, realStats: real.stats, realRows: real.rows, progress, capture: true };
  const g = await runGenerator(ctx, tok, tokenizer);
  g.model.dispose();
  rows.push({ seed, gfid: g.record.gfid, se: g.record.gfidError.standardError, cc: g.record.classConsistency.accuracy });
}
featnet.dispose();
console.log(`tokenizer ${args.variant} (${tok.dir}); generators by seed (${cfg.ar.epochs} AR epochs):`);
const study = finishedRecord<{ gfid: number; gfidError?: { standardError: number } }>(join(outDir, 'generators', args.variant!), () => true);
if (study) console.log(`  the study's own generator (seed ${cfg.seed}): gFID ${study.gfid.toFixed(2)}${study.gfidError ? ` ± ${study.gfidError.standardError.toFixed(2)}` : ''}`);
for (const r of rows) console.log(`  seed ${r.seed}: gFID ${r.gfid.toFixed(2)} ± ${r.se.toFixed(2)}, class consistency ${(100 * r.cc).toFixed(1)}%`);
const g = rows.map((r) => r.gfid);
console.log(`gFID mean ${mean(g).toFixed(2)}, sd over generator seeds ${sd(g).toFixed(2)} (${rows.length} seeds); ${formatDuration((performance.now() - t0) / 1000)}`);
process.exit(0);
