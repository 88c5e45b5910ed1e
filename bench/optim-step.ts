/**
 * Optimizer step cost on the WebGPU device: the fused AdamW kernel (nn/optim, one dispatch per
 * parameter) vs the same update written with engine ops (as examples/spiral.ts does: ~12
 * elementwise dispatches and temporaries per parameter), plus clipGradNorm and the EMA update.
 * A transformer-like parameter set: L blocks of [d,3d] [3d] [d,d] [d] [d,4d] [4d] [4d,d] [d] + 2 norms.
 *
 *   npx tsx bench/optim-step.ts                 (JSON lines to stdout)
 *   BENCH_SMALL=1 npx tsx bench/optim-step.ts   (d = 128, for software adapters)
 *
 * On the lent GPU machine: bundle with esbuild as in bench/reductions.ts (entry bench/optim-step.ts,
 * outfile bench/dist/optim-step.mjs) and run `source .gpu-bundle/setup.sh && node bench/dist/optim-step.mjs`.
 * Each case: 3 warm-up steps, then batches of R steps with one sync per batch (R calibrated to
 * ~30 ms), median of 5 batches / R (jsMs: the JavaScript part, recording the dispatches). GB/s counts the bytes the fused update must move:
 * read p, g, m, v and write p, m, v (28 bytes per element).
 */
import * as E from '../node/index.js';
import { AdamW, EMA, clipGradNorm } from '../nn/optim/index.js';

const backend = await E.getDevice({ setDefault: true, requireWebGPU: true, quiet: true });
const gpu = backend as E.WebGPUBackend;
const small = process.env.BENCH_SMALL === '1';
const d = small ? 128 : 1024;
const L = small ? 2 : 12;

function shapes(): number[][] {
  const out: number[][] = [];
  for (let l = 0; l < L; l++) out.push([d, 3 * d], [3 * d], [d, d], [d], [d, 4 * d], [4 * d], [4 * d, d], [d], [d], [d]);
  return out;
}

async function time(run: () => void): Promise<{ ms: number; jsMs: number; dispatches: number }> {
  for (let i = 0; i < 3; i++) run();
  await gpu.sync();
  let reps = 1;
  for (;;) {
    const t0 = performance.now();
    for (let i = 0; i < reps; i++) run();
    await gpu.sync();
    if (performance.now() - t0 > 30 || reps >= 64) break;
    reps *= 2;
  }
  const times: number[] = [];
  const js: number[] = [];
  const c0 = gpu.counters.dispatches;
  for (let k = 0; k < 5; k++) {
    const t0 = performance.now();
    for (let i = 0; i < reps; i++) run();
    const t1 = performance.now();
    await gpu.sync();
    times.push((performance.now() - t0) / reps);
    js.push((t1 - t0) / reps);
  }
  times.sort((a, b) => a - b);
  js.sort((a, b) => a - b);
  return { ms: times[2]!, jsMs: js[2]!, dispatches: (gpu.counters.dispatches - c0) / (5 * reps) };
}

const params = shapes().map((s, i) => E.full(s, 0.01 * (i % 7), { backend }).requireGrad());
const n = params.reduce((a, p) => a + p.size, 0);
const setGrads = () => params.forEach((p) => (p.grad = E.keep(E.fullLike(p, 0.001))));
setGrads();
await gpu.sync();

const opt = new AdamW(params, { lr: 1e-3 });
const fused = await time(() => opt.step());
console.log(JSON.stringify({ case: 'adamw fused', params: params.length, elements: n, ms: fused.ms, jsMs: fused.jsMs, dispatchesPerStep: fused.dispatches, GBps: (28 * n) / (fused.ms * 1e6) }));

const m = params.map((p) => E.keep(E.zerosLike(p)));
const v = params.map((p) => E.keep(E.zerosLike(p)));
let t = 0;
const composite = await time(() => {
  t++;
  E.tidy(() => E.noGrad(() => {
    const c1 = 1 - 0.9 ** t;
    const c2 = 1 - 0.999 ** t;
    params.forEach((p, i) => {
      const g = p.grad!;
      p.assign(p.mul(1 - 1e-3 * 1e-2));
      m[i]!.assign(m[i]!.mul(0.9).add(g.mul(0.1)));
      v[i]!.assign(v[i]!.mul(0.999).add(g.square().mul(0.001)));
      p.assign(p.sub(m[i]!.div(c1).div(v[i]!.div(c2).sqrt().add(1e-8)).mul(1e-3)));
    });
  }));
});
console.log(JSON.stringify({ case: 'adamw composite (engine ops)', params: params.length, elements: n, ms: composite.ms, jsMs: composite.jsMs, dispatchesPerStep: composite.dispatches, speedup: composite.ms / fused.ms }));

const clip = await time(() => clipGradNorm(params, 1e9).dispose());
console.log(JSON.stringify({ case: 'clipGradNorm', elements: n, ms: clip.ms, jsMs: clip.jsMs, dispatchesPerStep: clip.dispatches, GBps: (12 * n) / (clip.ms * 1e6) }));

const ema = new EMA(params);
const emaT = await time(() => ema.update(0.999));
console.log(JSON.stringify({ case: 'ema update', elements: n, ms: emaT.ms, jsMs: emaT.jsMs, dispatchesPerStep: emaT.dispatches, GBps: (12 * n) / (emaT.ms * 1e6) }));
// Reference: the engine's elementwise add over the same number of elements (12 bytes per element).
const xa = E.full([n], 1, { backend });
const xb = E.full([n], 2, { backend });
const addT = await time(() => E.add(xa, xb).dispose());
console.log(JSON.stringify({ case: 'reference: elementwise add', elements: n, ms: addT.ms, jsMs: addT.jsMs, GBps: (12 * n) / (addT.ms * 1e6) }));
process.exit(0);
