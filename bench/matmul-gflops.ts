/**
 * Quick matmul throughput probe (not a test): GFLOP/s of C = A @ B for square N x N f32 matrices,
 * synchronizing with backend.sync(). Optionally forces a kernel plan to compare tile configs.
 *
 *   npx tsx bench/matmul-gflops.ts                 # N = 256, 512, 1024 with the default picker
 *   MM_SIZES=1024,2048 npx tsx bench/matmul-gflops.ts
 *   MM_PLAN=128x128x16:8x8 npx tsx bench/matmul-gflops.ts     # BMxBNxBK:TMxTN (tiled, prefetch)
 *   MM_PLAN=64x64x16:4x4:noprefetch ...   MM_PLAN=128x128x16:8x8:db:pad:g8 ...
 *   MM_PLAN=rows:8:8x8 (register-blocked, no workgroup memory)   MM_PLAN=simple ...
 *   MM_TRANS=tn|nt|tt                              # read A and/or B transposed (views)
 *   MM_SECONDS=2                                   # time budget per size
 */
import { readdirSync, readFileSync } from 'node:fs';
import { getDevice } from '../node/index.js';
import * as E from '../engine/index.js';

const backend = await getDevice({ setDefault: false, quiet: true });
if (!(backend instanceof E.WebGPUBackend)) throw new Error('no WebGPU adapter');
const gpu = backend;

function parsePlan(s: string | undefined): E.MatmulPlan | null {
  if (!s) return null;
  if (s === 'simple') return { kernel: 'simple' };
  const r = /^rows:(\d+):(\d+)x(\d+)$/.exec(s);
  if (r) return { kernel: 'rows', WG: +r[1]!, TM: +r[2]!, TN: +r[3]! };
  const m = /^(\d+)x(\d+)x(\d+):(\d+)x(\d+)((?::\w+)*)$/.exec(s);
  if (!m) throw new Error(`MM_PLAN: expected BMxBNxBK:TMxTN[:noprefetch][:db][:pad][:gN], rows:WG:TMxTN or simple, got ${s}`);
  const [BM, BN, BK, TM, TN] = m.slice(1, 6).map(Number) as [number, number, number, number, number];
  const opts = m[6]!.split(':').filter(Boolean);
  const g = opts.find((o) => /^g\d+$/.test(o));
  return { kernel: 'tiled', tile: { BM, BN, BK, TM, TN }, prefetch: !opts.includes('noprefetch'), doubleBuffer: opts.includes('db'), pad: opts.includes('pad'), groupM: g ? Number(g.slice(1)) : 1 };
}

/**
 * CPU ticks (1/100 s) of every thread but the main one (Linux /proc; 0 elsewhere). On a software
 * adapter these are the rasterizer's worker threads: their CPU time per op is a measure of the
 * kernel that does not depend on how busy the machine is (the main thread mostly polls).
 */
function workerTicks(): number {
  let t = 0;
  try {
    for (const id of readdirSync('/proc/self/task')) {
      if (Number(id) === process.pid) continue;
      const st = readFileSync(`/proc/self/task/${id}/stat`, 'utf8').split(') ')[1]!.split(' ');
      t += Number(st[11]) + Number(st[12]);
    }
  } catch {
    return 0;
  }
  return t;
}

const plan = parsePlan(process.env.MM_PLAN);
if (plan) gpu.tune({ matmul: { picker: () => plan } });
const sizes = (process.env.MM_SIZES ?? '256,512,1024').split(',').map(Number);
const trans = process.env.MM_TRANS ?? 'nn';
const budget = Number(process.env.MM_SECONDS ?? 2);

console.log(`${gpu.name}  plan=${process.env.MM_PLAN ?? 'default'} layout=${trans}`);
for (const n of sizes) {
  const data = Float32Array.from({ length: n * n }, (_, i) => Math.sin(i * 0.37) * 0.5);
  const a0 = E.tensor(data, [n, n], { backend: gpu });
  const b0 = E.tensor(data, [n, n], { backend: gpu });
  const a = trans[0] === 't' ? a0.transpose() : a0;
  const b = trans[1] === 't' ? b0.transpose() : b0;
  const t0 = performance.now();
  E.matmul(a, b).dispose();
  await gpu.sync();
  const first = performance.now() - t0;
  // Batches of `reps` dispatches, one sync per batch; grow reps until a batch takes >= 0.2 s.
  let reps = 1;
  let best = Infinity;
  let ops = 0;
  const w0 = workerTicks();
  const start = performance.now();
  while (performance.now() - start < budget * 1000) {
    const s = performance.now();
    for (let r = 0; r < reps; r++) E.matmul(a, b).dispose();
    await gpu.sync();
    ops += reps;
    const per = (performance.now() - s) / reps;
    best = Math.min(best, per);
    if (per * reps < 200) reps *= 2;
  }
  const workerMsPerOp = ((workerTicks() - w0) * 10) / ops;
  const gflops = (2 * n ** 3) / (best * 1e6);
  const perCpu = workerMsPerOp > 0 ? `  [${((2 * n ** 3) / (workerMsPerOp * 1e6)).toFixed(2)} GFLOP per worker-thread CPU-second]` : '';
  console.log(`N=${n}: ${best.toFixed(2)} ms/op  ${gflops.toFixed(2)} GFLOP/s${perCpu}  (first call incl. compile ${first.toFixed(0)} ms, plan ${JSON.stringify(plan ?? E.pickMatmulConfig(n, n, n, 1, E.matmulDeviceCaps(gpu)))})`);
  for (const t of [a, b, a0, b0]) t.dispose();
}
gpu.destroy();
