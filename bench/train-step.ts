/**
 * Training step of the two reference models, this engine beside PyTorch on the same machine:
 *   tokenizer: VQ-CNN, 32x32x1, ch 64, mult [1,2,2], 2 res blocks per level, K 1024, d 16 (3.16M params)
 *   gpt:       class token + 63 tokens, d 384, 6 layers, 6 heads, LayerNorm, GELU MLP x4, learned
 *              positions (ARTransformer with mlp 'gelu', norm 'layer', pos 'learned', qkNorm null)
 * Each step: forward, backward, AdamW step (lr 1e-4, no clipping, no dropout), timed as
 * bench/reference/torch_step_bench.py times PyTorch's: warm-up steps, then the median of timed
 * steps, each ended by a sync (here: reading back the loss). The PyTorch script runs in the same
 * invocation when a python3 with torch is found (Debian: python3-torch and libopenblas0-pthread).
 *
 *   npm run bench:train                              # batch 8, both models, PyTorch on 2 threads
 *   BATCH=4 STEPS=3 MODELS=gpt npm run bench:train
 *   TORCH=0 npm run bench:train                      # ours only
 *   CAPTURE=1 npm run bench:train                    # our steps through E.captureStep (replayed)
 *
 * Prints per model: ms per step and the ratio to PyTorch (PyTorch time / ours: 1 = as fast),
 * dispatches and submits per step, host recording time per step (from the step's start until
 * every op is recorded, before the submit), the most memory live tensors held during a step
 * (peak), and device memory after a step (live tensors and the buffer pool of freed buffers). Writes bench/results/train-step-<adapter>-<date>.json.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import * as E from '../node/index.js';
import { AdamW } from '../nn/index.js';
import { tokenizerTrainStep, VQTokenizer } from '../models/tokenizer/index.js';
import { gptReference } from './gpt-reference.js';

const B = Number(process.env.BATCH ?? 8);
const steps = Number(process.env.STEPS ?? 5);
const capture = process.env.CAPTURE === '1';
// A captured step replays from its fourth call (one eager, two recorded).
const warmup = Number(process.env.WARMUP ?? (capture ? 3 : 2));
const threads = Number(process.env.THREADS ?? 2);
const models = (process.env.MODELS ?? 'tokenizer,gpt').split(',').map((s) => s.trim());
for (const m of models) if (m !== 'tokenizer' && m !== 'gpt') throw new Error(`MODELS: unknown model '${m}' (tokenizer, gpt)`);

const backend = (await E.getDevice({ setDefault: true, requireWebGPU: true, quiet: true })) as E.WebGPUBackend;
const adapter = backend.info.description || backend.info.device || backend.info.architecture;

interface OursResult {
  model: string;
  params: number;
  msPerStep: number;
  minMs: number;
  recordMs: number;
  dispatchesPerStep: number;
  submitsPerStep: number;
  liveMB: number;
  /** Most bytes held by live tensors during a timed step. */
  peakMB: number;
  pooledMB: number;
  loss: number;
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[xs.length >> 1]!;
const mb = (bytes: number) => +(bytes / 2 ** 20).toFixed(1);

/** Runs warm-up + timed steps of `step` (which records one step and returns its loss). */
async function timeSteps(model: string, params: number, step: () => E.Tensor): Promise<OursResult> {
  await backend.sync(); // trimming may destroy buffers that unsubmitted commands still use
  backend.pool.trim(); // the pool reported after a step is this model's working set only
  const times: number[] = [];
  const records: number[] = [];
  let dispatches = 0;
  let submits = 0;
  let loss = NaN;
  let peak = 0;
  for (let s = 0; s < warmup + steps; s++) {
    E.resetPeakMemory();
    const d0 = backend.counters.dispatches;
    const s0 = backend.counters.submits;
    const t0 = performance.now();
    const l = step();
    const t1 = performance.now();
    loss = await l.item();
    const t2 = performance.now();
    l.dispose();
    if (s >= warmup) {
      times.push(t2 - t0);
      records.push(t1 - t0);
      dispatches = backend.counters.dispatches - d0;
      submits = backend.counters.submits - s0;
      peak = Math.max(peak, E.memoryStats().peakBytes);
    }
  }
  const mem = E.memoryStats();
  const r = {
    model,
    params,
    msPerStep: +median(times).toFixed(1),
    minMs: +Math.min(...times).toFixed(1),
    recordMs: +median(records).toFixed(1),
    dispatchesPerStep: dispatches,
    submitsPerStep: submits,
    liveMB: mb(mem.liveBytes),
    peakMB: mb(peak),
    pooledMB: mb(mem.pooledBytes),
    loss,
  };
  console.log(`ours  ${model.padEnd(9)} ${r.msPerStep} ms/step (min ${r.minMs}), record ${r.recordMs} ms, ${r.dispatchesPerStep} dispatches, ${r.submitsPerStep} submits, live ${r.liveMB} MB, peak ${r.peakMB} MB, pool ${r.pooledMB} MB`);
  return r;
}

/** How a captured step ran (its last call, the counts, why it is eager if it is), then drops it. */
function report(step: E.CapturedStep<E.Tensor[], E.StepResult>): void {
  console.log(`      captureStep: last step ${step.mode}${step.reason ? ` (${step.reason})` : ''}; ${JSON.stringify(step.stats)}`);
  step.dispose();
}

async function benchTokenizer(): Promise<OursResult> {
  const model = new VQTokenizer({ perturbation: 'none' }, { backend, generator: new E.Generator(0) });
  const opt = new AdamW(model.parameters(), { lr: 1e-4 });
  const x = E.rand([B, 1, 32, 32], { backend, generator: new E.Generator(1) });
  const eager = (xb: E.Tensor) => tokenizerTrainStep(model, opt, xb);
  const step = capture ? E.captureStep(eager) : eager;
  const r = await timeSteps('tokenizer', model.numParameters(), () => {
    const terms = step(x);
    for (const [k, t] of Object.entries(terms)) if (k !== 'total') t.dispose();
    return terms.total!;
  });
  if (capture) report(step as E.CapturedStep<[E.Tensor], Record<string, E.Tensor>>);
  x.dispose();
  opt.dispose();
  model.dispose();
  return r;
}

async function benchGpt(): Promise<OursResult> {
  const gpt = gptReference(backend, B);
  const step = capture ? E.captureStep(gpt.step) : gpt.step;
  const r = await timeSteps('gpt', gpt.model.numParameters(), step);
  if (capture) report(step as E.CapturedStep<[], E.Tensor>);
  gpt.dispose();
  return r;
}

/** PyTorch's numbers from the reference script, or null with the reason when it cannot run. */
function runTorch(): { results: Record<string, { ms_per_step: number; torch: string; threads: number }>; python: string } | { skipped: string } {
  if (process.env.TORCH === '0') return { skipped: 'TORCH=0' };
  const python = ['/usr/bin/python3', 'python3'].find((p) => spawnSync(p, ['-c', 'import torch'], { stdio: 'ignore' }).status === 0);
  if (!python) return { skipped: 'no python3 with torch (Debian: apt install python3-torch libopenblas0-pthread)' };
  const script = new URL('./reference/torch_step_bench.py', import.meta.url).pathname;
  const out = execFileSync(python, [script, '--device', 'cpu', '--batch', String(B), '--threads', String(threads), '--steps', String(steps)], { encoding: 'utf8' });
  const results: Record<string, { ms_per_step: number; torch: string; threads: number }> = {};
  for (const line of out.split('\n')) {
    if (!line.startsWith('{')) continue;
    const j = JSON.parse(line) as { model: string; ms_per_step: number; torch: string; threads: number };
    const key = j.model.startsWith('vq') ? 'tokenizer' : 'gpt';
    results[key] = j;
    console.log(`torch ${key.padEnd(9)} ${j.ms_per_step} ms/step (torch ${j.torch}, ${j.threads} threads)`);
  }
  return { results, python };
}

console.log(`adapter: ${adapter}; batch ${B}; ${warmup} warm-up + ${steps} timed steps`);
const torch = runTorch();
if ('skipped' in torch) console.log(`torch: skipped (${torch.skipped})`);
const ours: OursResult[] = [];
if (models.includes('tokenizer')) ours.push(await benchTokenizer());
if (models.includes('gpt')) ours.push(await benchGpt());

const rows = ours.map((o) => {
  const t = 'results' in torch ? torch.results[o.model] : undefined;
  return { ...o, torchMsPerStep: t?.ms_per_step ?? null, ratio: t ? +(t.ms_per_step / o.msPerStep).toFixed(3) : null };
});
console.log('\n| step (batch ' + B + ') | PyTorch CPU | ours | ratio | dispatches | submits | record | live | peak | pool |');
console.log('|---|---|---|---|---|---|---|---|---|---|');
for (const r of rows) {
  console.log(`| ${r.model} | ${r.torchMsPerStep ?? '-'} ms | ${r.msPerStep} ms | ${r.ratio ?? '-'}x | ${r.dispatchesPerStep} | ${r.submitsPerStep} | ${r.recordMs} ms | ${r.liveMB} MB | ${r.peakMB} MB | ${r.pooledMB} MB |`);
}
const date = new Date().toISOString().slice(0, 10);
const slug = adapter.toLowerCase().replace(/[^a-z0-9]+/g, '-').replace(/^-|-$/g, '').slice(0, 40);
const dir = new URL('./results/', import.meta.url).pathname;
if (!existsSync(dir)) mkdirSync(dir, { recursive: true });
const file = `${dir}train-step-${slug}-${date}.json`;
writeFileSync(file, `${JSON.stringify({ bench: 'train-step', date, adapter, batch: B, warmup, steps, capture, torch: 'skipped' in torch ? { skipped: torch.skipped } : { python: torch.python, threads }, rows }, null, 1)}\n`);
console.log(`\nwrote ${file}`);
process.exit(0);
