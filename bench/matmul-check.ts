/**
 * Spot-checks the matmul kernel the picker chooses at large sizes on the current adapter: 512
 * sampled entries of A @ B against float64 dot products (a full CPU reference would take minutes).
 *   npx tsx bench/matmul-check.ts            MM_SIZES=1024,2048,4096
 */
import { getDevice } from '../node/index.js';
import * as E from '../engine/index.js';

const backend = await getDevice({ requireWebGPU: true });
const sizes = (process.env.MM_SIZES ?? '1024,2048,4096').split(',').map(Number);
const gen = new E.Generator(42);
for (const n of sizes) {
  const a = E.randn([n, n], { backend, generator: gen });
  const b = E.randn([n, n], { backend, generator: gen });
  const c = E.matmul(a, b);
  const [A, B, C] = await Promise.all([a.toArray(), b.toArray(), c.toArray()]);
  let worst = 0;
  for (let s = 0; s < 512; s++) {
    const i = (s * 7919) % n;
    const j = (s * 104729 + 13) % n;
    let dot = 0;
    let mag = 0;
    for (let k = 0; k < n; k++) {
      dot += A[i * n + k]! * B[k * n + j]!;
      mag += Math.abs(A[i * n + k]! * B[k * n + j]!);
    }
    worst = Math.max(worst, Math.abs(C[i * n + j]! - dot) / mag);
  }
  // f32 accumulation: error ~ sqrt(n) * 2^-24 relative to sum |a_k b_k|.
  const bound = 4 * Math.sqrt(n) * 2 ** -24;
  console.log(`N=${n}: max |err| / sum|a b| over 512 entries = ${worst.toExponential(2)} (bound ${bound.toExponential(2)}) ${worst <= bound ? 'OK' : 'FAIL'}`);
  for (const t of [a, b, c]) t.dispose();
}
process.exit(0);
