/**
 * Where a training step's GPU time goes: per-kernel GPU times (timestamp queries, see
 * engine/webgpu/profiler.ts) for one step of the default VQ tokenizer or of the study's AR
 * transformer, next to the unprofiled wall time of the same step.
 *
 *   MODEL=tokenizer BATCH=128 npx tsx bench/profile-step.ts     (default config, perturbation 'paper')
 *   MODEL=ar BATCH=256 npx tsx bench/profile-step.ts            (dim 256, depth 8, heads 8, 64 tokens, K 1024)
 *   MODEL=ar BATCH=64 DIM=64 DEPTH=2 HEADS=4 VOCAB=512 ...      (the medium study's AR generator)
 *   MODEL=gpt BATCH=8 npx tsx bench/profile-step.ts             (bench:train's GPT: d 384, 6 layers, GELU, LayerNorm)
 *   TOP=40 ... to list more kernels; JSON=1 prints the report as one JSON line too.
 *   CAPTURE=1 ... runs the timed steps through E.captureStep (replayed once captured: the host
 *   time left is encoding alone); the profiled step itself runs eagerly.
 *   AS_GPU=1 ... picks kernels as on a hardware GPU (on a software adapter: for the dispatch
 *   count and kernel mix a GPU would run; its times mean nothing there).
 *
 * On a lent GPU: `npx esbuild bench/profile-step.ts --bundle --platform=node --format=esm
 * --external:webgpu --outfile=bench/dist/profile-step.mjs`, carry [".gpu-bundle", "bench/dist"].
 *
 * Wall time: median of 3 synced steps after 8 warm-up steps, and the part of it spent recording
 * the step on the host (before the submit). If the profiled GPU time is much below the wall time,
 * the gap is host time or GPU idle time between dispatches, not the kernels.
 */
import * as E from '../node/index.js';
import { AdamW } from '../nn/index.js';
import { tokenizerStepKey, tokenizerTrainStep, VQTokenizer } from '../models/tokenizer/index.js';
import { ARTransformer, arTrainStep, createAROptimizer } from '../models/ar/index.js';
import { gptReference } from './gpt-reference.js';

const backend = (await E.getDevice({ setDefault: true, requireWebGPU: true, quiet: true })) as E.WebGPUBackend;
// The kernel pickers branch on softwareAdapter; null makes them choose as on a GPU.
if (process.env.AS_GPU === '1') (backend as { softwareAdapter: E.WebGPUBackend['softwareAdapter'] }).softwareAdapter = null;
const model = process.env.MODEL ?? 'tokenizer';
const B = Number(process.env.BATCH ?? (model === 'ar' ? 256 : model === 'gpt' ? 8 : 128));
const top = Number(process.env.TOP ?? 25);
const capture = process.env.CAPTURE === '1';

/** Runs one step; returns the host time spent recording it (before the submit and the wait). */
let step: (s: number) => Promise<number>;
let params = 0;
if (model === 'tokenizer') {
  const m = new VQTokenizer({ perturbation: 'paper' }, { backend, generator: new E.Generator(0) });
  const opt = new AdamW(m.parameters(), { lr: 1e-4, betas: [0.5, 0.9] });
  const x = E.rand([B, 1, 32, 32], { backend, generator: new E.Generator(1), low: -1, high: 1 });
  params = m.numParameters();
  let current = 0;
  const eager = (xb: E.Tensor) => E.tidy(() => tokenizerTrainStep(m, opt, xb, { step: current, totalSteps: 1000 }));
  const run = capture ? E.captureStep(eager, { key: () => tokenizerStepKey({ step: current, totalSteps: 1000 }) }) : eager;
  step = async (s) => {
    const t0 = performance.now();
    current = s;
    const terms = run(x);
    const recordMs = performance.now() - t0;
    await terms.total!.item();
    for (const t of Object.values(terms)) t.dispose();
    return recordMs;
  };
} else if (model === 'ar') {
  const env = (k: string, d: number) => Number(process.env[k] ?? d);
  const V = env('VOCAB', 1024);
  const m = new ARTransformer({ vocabSize: V, numClasses: 10, seqLen: 64, grid: [8, 8], dim: env('DIM', 256), depth: env('DEPTH', 8), heads: env('HEADS', 8) }, { backend, generator: new E.Generator(0) });
  const { optimizer, scheduler } = createAROptimizer(m, { lr: 6e-4, totalSteps: 1000, warmupSteps: 10 });
  const g = new E.Generator(1);
  const classes = E.randint(0, 10, [B], { backend, generator: g });
  const tokens = E.randint(0, V, [B, 64], { backend, generator: g });
  params = m.numParameters();
  const eager = (c: E.Tensor, t: E.Tensor) => E.tidy(() => arTrainStep(m, optimizer, c, t, { scheduler, accuracy: false }));
  const run = capture ? E.captureStep(eager) : eager;
  step = async () => {
    const t0 = performance.now();
    const r = run(classes, tokens);
    const recordMs = performance.now() - t0;
    await r.loss.item();
    for (const t of Object.values(r)) t.dispose();
    return recordMs;
  };
} else if (model === 'gpt') {
  const gpt = gptReference(backend, B);
  params = gpt.model.numParameters();
  const run = capture ? E.captureStep(gpt.step) : gpt.step;
  step = async () => {
    const t0 = performance.now();
    const loss = run();
    const recordMs = performance.now() - t0;
    await loss.item();
    loss.dispose();
    return recordMs;
  };
} else throw new Error(`MODEL must be tokenizer, ar or gpt, got '${model}'`);

// Warm-up: pipelines compile, and the buffer pool settles so bind groups are cached.
for (let s = 1; s <= 8; s++) await step(s);
const wall: number[] = [];
const record: number[] = [];
for (let s = 9; s <= 11; s++) {
  const t0 = performance.now();
  record.push(await step(s));
  wall.push(performance.now() - t0);
}
wall.sort((a, b) => a - b);
record.sort((a, b) => a - b);
const d0 = backend.counters.dispatches;
backend.startProfiling();
const t0 = performance.now();
await step(12);
const profiledWall = performance.now() - t0;
const report = await backend.stopProfiling();
console.log(`${model} step, batch ${B}, ${params.toLocaleString('en-US')} parameters, ${backend.name}${process.env.AS_GPU === '1' ? ' (kernels picked as on a GPU)' : ''}${capture ? '; timed steps captured and replayed' : ''}`);
console.log(`wall ${wall[1]!.toFixed(1)} ms per step (median of 3), of which ${record[1]!.toFixed(1)} ms recording it on the host (JavaScript + encoding, before the submit); profiled step ${profiledWall.toFixed(1)} ms wall, ${backend.counters.dispatches - d0} dispatches`);
console.log(E.formatProfile(report, top));
if (process.env.JSON === '1') console.log(JSON.stringify({ model, batch: B, params, wallMs: wall[1], recordMs: record[1], profiledWallMs: profiledWall, report }));
