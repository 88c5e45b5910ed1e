/**
 * How recognizable a tokenizer's reconstructions and a generator's samples are, before a study is
 * sized around them: the shipped FeatNet's accuracy on real validation images, on their
 * reconstructions through --tokenizer, and the class consistency of class-balanced samples of an
 * AR (--ar) or diffusion (--dit) generator at each CFG scale of --cfg (FeatNet's accuracy at
 * classifying each sample as the class it was conditioned on, with a Wilson interval).
 *
 *   npx tsx examples/robustok/probe-class-consistency.ts --preset medium --tokenizer runs/tok/checkpoint.safetensors \
 *     [--ar runs/ar/checkpoint.safetensors | --dit runs/dit/checkpoint.safetensors] [--cfg 2,3,4] [--num 500]
 *
 * Images come from the preset's data (its size and validation split); samples are drawn with
 * seed 1000, temperature 1 and no top-k/top-p (AR), or the preset's sampler and step count (DiT).
 */
import * as E from '../../engine/index.js';
import { decodedFeatureStats, generateClassBalanced } from '../../models/ar/index.js';
import { decodedLatentFeatureStats, generateLatentsClassBalanced } from '../../models/diffusion/index.js';
import { classConsistency, type ClassConsistency } from '../../models/metrics/index.js';
import { getDevice } from '../../node/index.js';
import { loadARCheckpoint } from '../../node/train-ar.js';
import { loadContinuousTokenizer, loadDiffusionCheckpoint } from '../../node/train-diffusion.js';
import { loadTokenizerCheckpoint } from '../../node/train-tokenizer.js';
import { PRESETS } from './config.js';
import { loadStudyFeatNet } from './context.js';
import { featureInputFor, imagesTensor, loadStudyData } from './data.js';

const FLAGS = ['preset', 'tokenizer', 'ar', 'dit', 'cfg', 'num'];

function parseArgs(argv: string[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (let i = 0; i < argv.length; i += 2) {
    const k = argv[i]!.replace(/^--/, '');
    const v = argv[i + 1];
    if (!argv[i]!.startsWith('--') || !FLAGS.includes(k)) throw new Error(`probe: unknown argument '${argv[i]}' (flags: ${FLAGS.map((f) => `--${f}`).join(', ')})`);
    if (v === undefined || v.startsWith('--')) throw new Error(`probe: --${k} needs a value`);
    out[k] = v;
  }
  if (!out.tokenizer) throw new Error('probe: --tokenizer FILE is required');
  if (out.ar && out.dit) throw new Error('probe: give --ar or --dit, not both');
  return out;
}

const fmt = (c: ClassConsistency) => `${(100 * c.accuracy).toFixed(1)}% [${(100 * c.low).toFixed(1)}, ${(100 * c.high).toFixed(1)}]; per class ${c.perClass.map((r) => (100 * r.accuracy).toFixed(0)).join(' ')}`;

const args = parseArgs(process.argv.slice(2));
const cfg = PRESETS[args.preset ?? 'medium'];
if (!cfg) throw new Error(`probe: unknown --preset '${args.preset}' (${Object.keys(PRESETS).join(', ')})`);
const num = Number(args.num ?? 500);
if (!(Number.isInteger(num) && num >= 10)) throw new Error(`probe: --num must be an integer >= 10, got ${args.num}`);
const scales = (args.cfg ?? '1,2,3,4').split(',').map(Number);
if (scales.some((s) => !(s >= 0))) throw new Error(`probe: --cfg must be a comma-separated list of scales >= 0, got ${args.cfg}`);

const backend = await getDevice({ setDefault: true, quiet: true });
const data = loadStudyData(cfg);
const featnet = loadStudyFeatNet(cfg.dataset, backend).net;
const toFeatures = featureInputFor(cfg.imageSize);
const n = Math.min(num, data.val.shape[0]);
const labels = data.val.labels.subarray(0, n);
const batch = 100;

/** FeatNet logits of images made batch by batch from validation images [i, i + b). */
async function logitsOf(make: (x: E.Tensor) => E.Tensor): Promise<Float32Array> {
  const out = new Float32Array(n * featnet.cfg.numClasses);
  for (let i = 0; i < n; i += batch) {
    const b = Math.min(batch, n - i);
    using x = imagesTensor(data.val, i, i + b, backend);
    using lg = E.noGrad(() =>
      E.tidy(() => {
        const img = make(x);
        return featnet.logits(toFeatures ? toFeatures(img) : img);
      }),
    );
    out.set((await lg.toArray()) as Float32Array, i * featnet.cfg.numClasses);
  }
  return out;
}

const nc = featnet.cfg.numClasses;
console.log(`real validation images (${n}, ${cfg.imageSize}x${cfg.imageSize}): FeatNet accuracy ${fmt(classConsistency(await logitsOf((x) => x), nc, labels))}`);
const tokenizer = args.dit ? await loadContinuousTokenizer(args.tokenizer!, backend) : (await loadTokenizerCheckpoint(args.tokenizer!, backend)).model;
console.log(`reconstructions through ${args.tokenizer}: FeatNet accuracy ${fmt(classConsistency(await logitsOf((x) => tokenizer.reconstruct(x)), nc, labels))}`);

for (const cfgScale of scales) {
  const t0 = performance.now();
  let stats;
  let sampleLabels: Int32Array;
  if (args.ar) {
    const ar = (await loadARCheckpoint(args.ar, backend)).model;
    const ds = await generateClassBalanced(ar, { numImages: num, numClasses: nc, batchSize: 250, temperature: 1, topK: 0, topP: 1, cfgScale, cfgSchedule: 'constant', generator: new E.Generator(1000) });
    sampleLabels = ds.labels;
    stats = await decodedFeatureStats(featnet, tokenizer, ds, { backend, batchSize: batch, keepFeatures: false, ...(toFeatures ? { featureInput: toFeatures } : {}) });
    ar.dispose();
  } else if (args.dit) {
    const dit = (await loadDiffusionCheckpoint(args.dit, backend, { ema: true })).model;
    const s = cfg.continuous?.sampling;
    const ds = await generateLatentsClassBalanced(dit, { numImages: num, numClasses: nc, batchSize: 250, sampler: s?.sampler ?? 'euler', steps: s?.steps ?? 20, cfgScale, guidanceInterval: null, generator: new E.Generator(1000) });
    sampleLabels = ds.labels;
    stats = await decodedLatentFeatureStats(featnet, tokenizer, ds, { backend, batchSize: batch, keepFeatures: false, ...(toFeatures ? { featureInput: toFeatures } : {}) });
    dit.dispose();
  } else break;
  const l = stats.logits()!;
  console.log(`${args.ar ? 'AR' : 'DiT'} samples (${num}), CFG ${cfgScale}: class consistency ${fmt(classConsistency(l.values, l.numClasses, sampleLabels))} (${((performance.now() - t0) / 1000).toFixed(0)} s)`);
}
