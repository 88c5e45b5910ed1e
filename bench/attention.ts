/**
 * Fused attention (engine scaledDotProductAttention) vs the composite softmax(q k^T * scale) v
 * built from matmul / softmax / masking ops: forward, and forward + backward, per call.
 *
 *   npx tsx bench/attention.ts                      (default: B=8, H=6, L=64, D=64, causal)
 *   BENCH_ATTN="8,6,64,64;1,8,1024,64" npx tsx bench/attention.ts   (B,H,L,D cases; L=Lq=Lk)
 *   BENCH_DECODE=1 ...                              (also Lq = 1 against Lk = L keys)
 *
 * Each measurement: 2 warm-up calls, then `reps` calls each followed by one sync; the median is
 * reported (wall ms per call, including the sync), with dispatches per call.
 * On the lent GPU machine: bundle with esbuild as described in bench/reductions.ts.
 */
import * as E from '../node/index.js';

const backend = (await E.getDevice({ setDefault: true, requireWebGPU: true, quiet: true })) as E.WebGPUBackend;
const reps = Number(process.env.BENCH_REPS ?? 9);

function rand(n: number, seed: number): Float32Array {
  const a = new Float32Array(n);
  let s = seed >>> 0;
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    a[i] = (s / 4294967296) * 2 - 1;
  }
  return a;
}

async function median(run: () => void): Promise<{ ms: number; dispatches: number }> {
  for (let i = 0; i < 2; i++) {
    run();
    await backend.sync();
  }
  const times: number[] = [];
  let dispatches = 0;
  for (let i = 0; i < reps; i++) {
    const d0 = backend.counters.dispatches;
    const t0 = performance.now();
    run();
    await backend.sync();
    times.push(performance.now() - t0);
    dispatches = backend.counters.dispatches - d0;
  }
  times.sort((a, b) => a - b);
  return { ms: times[Math.floor(times.length / 2)]!, dispatches };
}

type Attn = typeof E.scaledDotProductAttention;

async function measure(label: string, B: number, H: number, Lq: number, Lk: number, D: number): Promise<void> {
  const q = E.tensor(rand(B * H * Lq * D, 1), [B, H, Lq, D]).requireGrad();
  const k = E.tensor(rand(B * H * Lk * D, 2), [B, H, Lk, D]).requireGrad();
  const v = E.tensor(rand(B * H * Lk * D, 3), [B, H, Lk, D]).requireGrad();
  const g = E.tensor(rand(B * H * Lq * D, 4), [B, H, Lq, D]);
  const row: Record<string, unknown> = { case: label, B, H, Lq, Lk, D, causal: true, adapter: backend.name };
  for (const [name, f] of [
    ['fused', E.scaledDotProductAttention],
    ['composite', E.scaledDotProductAttentionComposite],
  ] as [string, Attn][]) {
    const fwd = await median(() => E.tidy(() => void E.noGrad(() => f(q, k, v, { causal: true }))));
    const fb = await median(() =>
      E.tidy(() => {
        const o = f(q, k, v, { causal: true });
        E.gradients(o, [q, k, v], { gradOutput: g });
      }),
    );
    row[`${name}_fwd_ms`] = +fwd.ms.toFixed(2);
    row[`${name}_fwd_bwd_ms`] = +fb.ms.toFixed(2);
    row[`${name}_dispatches_fwd_bwd`] = fb.dispatches;
  }
  // Correctness on this adapter: fused vs composite (output and gradients), max |diff|.
  const both = [E.scaledDotProductAttention, E.scaledDotProductAttentionComposite].map((f) =>
    E.tidy(() => {
      const o = f(q, k, v, { causal: true });
      return [o, ...E.gradients(o, [q, k, v], { gradOutput: g })];
    }),
  );
  let maxDiff = 0;
  for (let i = 0; i < 4; i++) {
    const [a, b] = [await both[0]![i]!.toArray(), await both[1]![i]!.toArray()];
    for (let j = 0; j < a.length; j++) maxDiff = Math.max(maxDiff, Math.abs(a[j]! - b[j]!));
  }
  for (const ts of both) for (const t of ts) t.dispose();
  row.max_abs_diff_fused_vs_composite = +maxDiff.toExponential(2);
  row.speedup_fwd = +((row.composite_fwd_ms as number) / (row.fused_fwd_ms as number)).toFixed(2);
  row.speedup_fwd_bwd = +((row.composite_fwd_bwd_ms as number) / (row.fused_fwd_bwd_ms as number)).toFixed(2);
  console.log(JSON.stringify(row));
  for (const t of [q, k, v, g]) t.dispose();
}

const cases = (process.env.BENCH_ATTN ?? '8,6,64,64').split(';').map((s) => s.split(',').map(Number) as [number, number, number, number]);
for (const [B, H, L, D] of cases) {
  await measure('self-attention', B, H, L, L, D);
  if (process.env.BENCH_DECODE === '1') await measure('decode', B, H, 1, L, D);
}
process.exit(0);
