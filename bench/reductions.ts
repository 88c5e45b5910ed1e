/**
 * Reductions, softmax, norms and cross-entropy: time per op and effective bandwidth (bytes that
 * must move at least: input read once + output written) on the WebGPU device.
 *
 *   npx tsx bench/reductions.ts                 (JSON lines to stdout)
 *   BENCH_SMALL=1 npx tsx bench/reductions.ts   (smaller shapes, for software adapters)
 *   REDUCE_WG=256 ...                            (reductions/softmax in workgroups of 256, the
 *                                                 GPUs' layout, on any adapter: tuning.reduce)
 *   COMPARE_WG=auto,8,256 ...                    (each case timed at each workgroup, alternating
 *                                                 over 3 rounds in this process: gpuMs per workgroup;
 *                                                 auto: the adapter's own choice per row length;
 *                                                 tree: auto without one lane per row, for
 *                                                 reductions, softmax and norms: tuning lanePerRow)
 *
 * On the lent GPU machine (see bench/README.md): bundle with esbuild, then run the bundle there:
 *   node -e "import('esbuild').then(e => e.build({entryPoints: ['bench/reductions.ts'], outfile: 'bench/dist/reductions.mjs',
 *     bundle: true, platform: 'node', format: 'esm', target: 'node20', external: ['webgpu']}))"
 *   device tool: carry [".gpu-bundle", "bench/dist"], command:
 *   source .gpu-bundle/setup.sh && node bench/dist/reductions.mjs
 *
 * Each case: 3 warm-up ops, then batches of R ops with one sync per batch (R calibrated to about
 * 30 ms per batch), median of 5 batches / R. JavaScript records the work and the GPU runs it at
 * the batch's submit, so gpuMs = ms - jsMs estimates device time per op (GB/s uses it).
 */
import * as E from '../node/index.js';

const backend = await E.getDevice({ setDefault: true, requireWebGPU: true, quiet: true });
const gpu = backend as E.WebGPUBackend;
const small = process.env.BENCH_SMALL === '1';
if (process.env.REDUCE_WG) gpu.tune({ reduce: { workgroup: Number(process.env.REDUCE_WG) } });
const S = (n: number) => (small ? Math.max(1, Math.floor(n / 16)) : n);

function rand(n: number, seed = 1): Float32Array {
  const a = new Float32Array(n);
  let s = seed >>> 0;
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    a[i] = (s / 4294967296) * 4 - 2;
  }
  return a;
}

/** Median wall time per op (ms) over batches with one sync each, and the JavaScript part of it. */
async function time(run: () => void): Promise<{ ms: number; jsMs: number }> {
  for (let i = 0; i < 3; i++) run();
  await gpu.sync();
  let reps = 1;
  for (;;) {
    const t0 = performance.now();
    for (let i = 0; i < reps; i++) run();
    await gpu.sync();
    const dt = performance.now() - t0;
    if (dt > 30 || reps >= 256) break;
    reps *= 2;
  }
  const times: number[] = [];
  const js: number[] = [];
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
  return { ms: times[2]!, jsMs: js[2]! };
}

const results: Record<string, unknown>[] = [];
/**
 * Work is recorded by JavaScript and only runs on the GPU at the batch's submit, so
 * gpuMs = ms - jsMs estimates the device time per op; GB/s uses it.
 */
const compare = (process.env.COMPARE_WG ?? '').split(',').filter(Boolean);
/** The tuning of one COMPARE_WG entry. */
function compareTuning(w: string): E.TuningOverrides {
  if (w === 'auto') return { reduce: { workgroup: null } };
  if (w === 'tree') return { reduce: { workgroup: null, lanePerRow: false }, norm: { lanePerRow: false } };
  const n = Number(w);
  if (!Number.isInteger(n)) throw new Error(`COMPARE_WG: expected auto, tree or a workgroup size, got '${w}'`);
  return { reduce: { workgroup: n } };
}

async function bench(name: string, bytes: number, f: () => E.Tensor | E.Tensor[]): Promise<void> {
  const once = () => {
    const r = E.tidy(f);
    for (const t of Array.isArray(r) ? r : [r]) t.dispose();
  };
  if (compare.length) {
    // Alternating rounds: the machine's drift lands on every workgroup alike.
    const gpuMs: Record<string, number[]> = {};
    for (let round = 0; round < 3; round++) {
      for (const w of compare) {
        const restore = gpu.tune(compareTuning(w));
        try {
          const { ms, jsMs } = await time(once);
          (gpuMs[w] ??= []).push(Math.max(ms - jsMs, 1e-6));
        } finally {
          restore();
        }
      }
    }
    const row: Record<string, unknown> = { name };
    for (const w of compare) row[`gpuMs_wg_${w}`] = +[...gpuMs[w]!].sort((a, b) => a - b)[1]!.toFixed(4);
    results.push(row);
    console.log(JSON.stringify(row));
    return;
  }
  const { ms, jsMs } = await time(once);
  const gpuMs = Math.max(ms - jsMs, 1e-6);
  const row = { name, ms: +ms.toFixed(4), jsMs: +jsMs.toFixed(4), gpuMs: +gpuMs.toFixed(4), GBps: +(bytes / gpuMs / 1e6).toFixed(1), dispatchesPerOp: 0 };
  const d0 = gpu.counters.dispatches;
  const r = E.tidy(f);
  for (const t of Array.isArray(r) ? r : [r]) t.dispose();
  row.dispatchesPerOp = gpu.counters.dispatches - d0;
  results.push(row);
  console.log(JSON.stringify(row));
}

const t = (shape: number[], seed = 1) => E.tensor(rand(shape.reduce((a, b) => a * b, 1), seed), shape);
const B = 4;

console.log(JSON.stringify({ adapter: gpu.name, small, reduceWorkgroup: gpu.tuning.reduce.workgroup }));
const tiny = t([1000]);
await bench('sum all [1000] (per-op floor)', 4000, () => E.sum(tiny));
const n16 = S(1 << 24);
const big = t([n16]);
await bench(`sum all [${n16}]`, n16 * B, () => E.sum(big));
await bench(`max all [${n16}]`, n16 * B, () => E.max(big));
await bench(`argmax all [${n16}]`, n16 * B, () => E.argmax(big));
const R4 = S(4096);
const sq = t([R4, 4096]);
await bench(`sum [${R4},4096] axis 1`, R4 * 4096 * B, () => E.sum(sq, 1));
await bench(`sum [${R4},4096] axis 0`, R4 * 4096 * B, () => E.sum(sq, 0));
await bench(`argmax [${R4},4096] axis 1`, R4 * 4096 * B, () => E.argmax(sq, 1));
const nShort = S(262144);
const shortRows = t([nShort, 64]);
await bench(`sum [${nShort},64] axis 1`, nShort * 64 * B, () => E.sum(shortRows, 1));
const tall = t([nShort, 64]);
await bench(`sum [${nShort},64] axis 0`, nShort * 64 * B, () => E.sum(tall, 0));
const perm = E.permute(t([64, 64, S(4096)]), [2, 0, 1]);
await bench(`sum permuted [${S(4096)},64,64] axes [1,2]`, 64 * 64 * S(4096) * B, () => E.sum(perm, [1, 2]));

await bench(`softmax [${R4},4096]`, 2 * R4 * 4096 * B, () => E.softmax(sq));
await bench(`logSoftmax [${R4},4096]`, 2 * R4 * 4096 * B, () => E.logSoftmax(sq));
await bench(`softmax [${nShort},64]`, 2 * nShort * 64 * B, () => E.softmax(shortRows));
await bench(`softmax [${nShort},64] axis 0`, 2 * nShort * 64 * B, () => E.softmax(tall, 0));
const longRows = t([32, S(524288)]);
await bench(`softmax [32,${S(524288)}]`, 2 * 32 * S(524288) * B, () => E.softmax(longRows));

const ln = t([S(8192), 1024]);
const w = t([1024], 2);
const bb = t([1024], 3);
await bench(`layerNorm [${S(8192)},1024] affine`, 2 * S(8192) * 1024 * B, () => E.layerNorm(ln, 1024, { weight: w, bias: bb }));
await bench(`rmsNorm [${S(8192)},1024] weight`, 2 * S(8192) * 1024 * B, () => E.rmsNorm(ln, { weight: w }));
const gnx = t([S(16), 256, 64, 64]);
const gw = t([256], 4);
await bench(`groupNorm [${S(16)},256,64,64] G=32 affine`, 2 * S(16) * 256 * 4096 * B, () => E.groupNorm(gnx, 32, { weight: gw, bias: gw }));
const lnx = t([S(8192), 1024]).requireGrad();
const wg = t([1024], 2).requireGrad();
const gy = t([S(8192), 1024], 5);
await bench(`layerNorm fwd+bwd [${S(8192)},1024]`, 5 * S(8192) * 1024 * B, () => E.gradients(E.sum(E.mul(E.layerNorm(lnx, 1024, { weight: wg, bias: wg }), gy)), [lnx, wg]));
// Short rows, as in the study's small transformers (dim 64).
const lns = t([S(65536), 64]).requireGrad();
const ws = t([64], 2).requireGrad();
const gys = t([S(65536), 64], 5);
await bench(`layerNorm fwd+bwd [${S(65536)},64]`, 5 * S(65536) * 64 * B, () => E.gradients(E.sum(E.mul(E.layerNorm(lns, 64, { weight: ws, bias: ws }), gys)), [lns, ws]));
await bench(`rmsNorm fwd+bwd [${S(65536)},64]`, 4 * S(65536) * 64 * B, () => E.gradients(E.sum(E.mul(E.rmsNorm(lns, { weight: ws }), gys)), [lns, ws]));

const logits = t([S(8192), 1000]).requireGrad();
const targets = E.tensor(Int32Array.from({ length: S(8192) }, (_, i) => (i * 37) % 1000), [S(8192)], { dtype: 'i32' });
await bench(`crossEntropy [${S(8192)},1000]`, S(8192) * 1000 * B, () => E.crossEntropy(logits, targets));
await bench(`crossEntropy fwd+bwd [${S(8192)},1000]`, 2 * S(8192) * 1000 * B, () => E.gradients(E.crossEntropy(logits, targets), [logits]));
process.exit(0);
