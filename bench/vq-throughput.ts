/**
 * Rough throughput of nearestCodes (the VQ hot path) on the WebGPU device, plus the float64 CPU
 * reference for scale. Not a timed test: run by hand.
 *
 *   npx tsx bench/vq-throughput.ts [N,K,d] [k1,k2,...] [reps]
 *   (default: 4096,1024,16  1,25,100  5)
 *
 * Reports wall time per call (after a warm-up call that compiles the pipeline), and the process
 * CPU time per call, which on software Vulkan (lavapipe runs the kernel on this process's threads)
 * is less sensitive to other load on the machine.
 */
import { getDevice } from '../node/index.js';
import * as E from '../engine/index.js';

const [N, K, d] = (process.argv[2] ?? '4096,1024,16').split(',').map(Number) as [number, number, number];
const ks = (process.argv[3] ?? '1,25,100').split(',').map(Number);
const reps = Number(process.argv[4] ?? 5);

const gpu = await getDevice({ setDefault: false, quiet: true });
if (!(gpu instanceof E.WebGPUBackend)) throw new Error('no WebGPU adapter');
console.log(`device: ${gpu.name}`);
const g = new E.Generator(0);
const z = E.randn([N, d], { generator: g, backend: gpu });
const cb = E.randn([K, d], { generator: g, backend: gpu });

for (const k of ks) {
  let r = E.nearestCodes(z, cb, k);
  await r.distances.toArray();
  r.indices.dispose();
  r.distances.dispose();
  const c0 = process.cpuUsage();
  const t0 = performance.now();
  for (let i = 0; i < reps; i++) {
    r = E.nearestCodes(z, cb, k);
    if (i < reps - 1) {
      r.indices.dispose();
      r.distances.dispose();
    }
  }
  await r.distances.toArray();
  const ms = (performance.now() - t0) / reps;
  const cu = process.cpuUsage(c0);
  const cpuMs = (cu.user + cu.system) / 1000 / reps;
  r.indices.dispose();
  r.distances.dispose();
  const gflops = (3 * N * K * d) / ms / 1e6;
  console.log(`N=${N} K=${K} d=${d} k=${k}: ${ms.toFixed(1)} ms/call wall (${cpuMs.toFixed(0)} ms process CPU), ${((N / ms) * 1000).toFixed(0)} rows/s, ${gflops.toFixed(2)} GFLOP/s counting 3*N*K*d`);
}

// The float64 CPU reference, for scale (one call, largest k).
const zc = await z.to(E.cpuF64);
const cc = await cb.to(E.cpuF64);
const t0 = performance.now();
E.nearestCodes(zc, cc, ks[ks.length - 1]!);
console.log(`float64 CPU reference, k=${ks[ks.length - 1]}: ${(performance.now() - t0).toFixed(0)} ms`);
process.exit(0);
