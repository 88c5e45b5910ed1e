/**
 * Timing of the float64 metrics linear algebra (models/metrics): symmetric eigendecomposition
 * (values only, and with vectors) and the Fréchet distance (both factorizations) at D x D.
 *
 *   npx tsx bench/metrics-fid.ts [sizes, default 64,512,2048] [methods, default cholesky,eig]
 *
 * Prints wall and process CPU time (the CPU time is the number to compare on a shared machine).
 * Matrices: S = X X^T / n with X uniform in [-0.5, 0.5) (full rank).
 */
import { frechetDistance, symEig } from '../models/metrics/index.js';

function rnd(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296 - 0.5;
  };
}

function spd(n: number, seed: number): Float64Array {
  const r = rnd(seed);
  const x = Float64Array.from({ length: n * n }, r);
  const a = new Float64Array(n * n);
  for (let i = 0; i < n; i++) for (let k = 0; k < n; k++) {
    const v = x[i * n + k]! / n;
    for (let j = 0; j < n; j++) a[i * n + j] += v * x[j * n + k]!;
  }
  return a;
}

const cpuMs = () => {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1000;
};

function time<T>(label: string, fn: () => T): T {
  const c = cpuMs();
  const w = performance.now();
  const out = fn();
  console.log(`${label.padEnd(34)} wall ${(performance.now() - w).toFixed(0).padStart(7)} ms   cpu ${(cpuMs() - c).toFixed(0).padStart(7)} ms`);
  return out;
}

const sizes = (process.argv[2] ?? '64,512,2048').split(',').map(Number);
const methods = (process.argv[3] ?? 'cholesky,eig').split(',') as ('cholesky' | 'eig')[];
for (const n of sizes) {
  const a = spd(n, n);
  const b = spd(n, n + 1);
  const zero = new Float64Array(n);
  time(`D=${n} eigenvalues`, () => symEig(a, n));
  time(`D=${n} eigenvalues+vectors`, () => symEig(a, n, { vectors: true }));
  for (const method of methods) {
    const f = time(`D=${n} frechetDistance (${method})`, () => frechetDistance(zero, a, zero, b, { method }));
    console.log(`  = ${f}`);
  }
}
