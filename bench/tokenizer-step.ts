/**
 * One tokenizer training step (forward, backward, AdamW) on the WebGPU device, default config
 * (32x32x1, ch 64, mult [1,2,2], K 1024, d 16 -- the reference model of torch_step_bench.py).
 *
 *   npx tsx bench/tokenizer-step.ts                       (batch 8, perturbation 'paper')
 *   BATCH=64 PERTURB=none STEPS=5 npx tsx bench/tokenizer-step.ts
 *   TINY=1 npx tsx bench/tokenizer-step.ts                (ch 8, K 32, 1 block per level; MULT=1,2 SIZE=16 to vary)
 *   CONV_IMPLICIT=0 npx tsx bench/tokenizer-step.ts       (convolutions through unfold + matmul instead of the implicit-GEMM kernels)
 *   STRIDED_DX=0|1 npx tsx bench/tokenizer-step.ts        (stride-2 input gradients through fold(w^T @ gy) | the implicit kernel)
 *   CAPTURE=1 npx tsx bench/tokenizer-step.ts             (steps captured and replayed: E.captureStep; 3 warm-up steps)
 *
 * On the lent GPU machine: bundle with esbuild as in bench/reductions.ts (entry
 * bench/tokenizer-step.ts, outfile bench/dist/tokenizer-step.mjs, external webgpu), then
 * device tool: carry [".gpu-bundle", "bench/dist"], `source .gpu-bundle/setup.sh && node bench/dist/tokenizer-step.mjs`.
 *
 * Prints one JSON line: ms per step (median of STEPS timed steps after 2 warm-up steps, each
 * step synced by reading back its loss), dispatches per step, and E.memoryStats() after the last
 * step (pooledMB: the buffer pool, i.e. the working set a step leaves behind; liveMB: live tensors).
 */
import * as E from '../node/index.js';
import { AdamW } from '../nn/index.js';
import { tokenizerStepKey, tokenizerTrainStep, VQTokenizer } from '../models/tokenizer/index.js';

const backend = (await E.getDevice({ setDefault: true, requireWebGPU: true, quiet: true })) as E.WebGPUBackend;
if (process.env.CONV_IMPLICIT !== undefined) backend.tune({ conv: { implicit: process.env.CONV_IMPLICIT === '1' } });
if (process.env.STRIDED_DX !== undefined) backend.tune({ conv: { implicitStridedDx: process.env.STRIDED_DX === '1' } });
const ck = backend.tuning.conv;
const B = Number(process.env.BATCH ?? 8);
const steps = Number(process.env.STEPS ?? 5);
const tiny = process.env.TINY === '1';
const size = Number(process.env.SIZE ?? 32);
const mult = process.env.MULT ? process.env.MULT.split(',').map(Number) : [1, 2, 2];
const perturbation = (process.env.PERTURB ?? 'paper') as 'paper' | 'none';
const cfg = tiny ? { ch: 8, chMult: mult, numResBlocks: 1, codebookSize: 32, codeDim: 8 } : {};
const model = new VQTokenizer({ ...cfg, perturbation }, { backend, generator: new E.Generator(0) });
const opt = new AdamW(model.parameters(), { lr: 1e-4 });
const x = E.rand([B, 1, size, size], { backend, generator: new E.Generator(1) });
const capture = process.env.CAPTURE === '1';
// A captured step replays from its fourth call (one eager, two recorded).
const warmup = capture ? 3 : 2;
let current = 0;
const options = () => ({ step: current, totalSteps: 1000 });
const eager = (xb: E.Tensor) => E.tidy(() => tokenizerTrainStep(model, opt, xb, options()));
const run = capture ? E.captureStep(eager, { key: () => tokenizerStepKey(options()) }) : eager;
const times: number[] = [];
let dispatches = 0;
for (let s = 1; s <= steps + warmup; s++) {
  const d0 = backend.counters.dispatches;
  const t0 = performance.now();
  current = s;
  const terms = run(x);
  await terms.total!.item();
  const dt = performance.now() - t0;
  if (s > warmup) {
    times.push(dt);
    dispatches = backend.counters.dispatches - d0;
  }
  for (const t of Object.values(terms)) t.dispose();
}
times.sort((a, b) => a - b);
const mem = E.memoryStats();
console.log(
  JSON.stringify({
    bench: 'tokenizer-step',
    tiny,
    size,
    batch: B,
    perturbation,
    capture: capture ? (run as E.CapturedStep<[E.Tensor], Record<string, E.Tensor>>).mode : false,
    convImplicit: ck.implicit ?? 'default',
    stridedDx: ck.implicitStridedDx ?? 'default',
    params: model.numParameters(),
    msPerStep: times[times.length >> 1],
    minMs: times[0],
    dispatchesPerStep: dispatches,
    pooledMB: +(mem.pooledBytes / 2 ** 20).toFixed(1),
    liveMB: +(mem.liveBytes / 2 ** 20).toFixed(1),
  }),
);
