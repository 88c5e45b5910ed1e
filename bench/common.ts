/**
 * Shared pieces of the benchmark suite: the library adapter interface, deterministic data,
 * tinybench timing helpers, and small formatting utilities. Node-only (bench/ is not shipped).
 */
import { Bench } from 'tinybench';

/** One measured workload prepared on one library: inputs are already on the device. */
export interface Case {
  /** Records `reps` operations, then waits once for the GPU (one sync per batch). */
  batch(reps: number): Promise<void>;
  /** The result of one operation, read back to the host (for the correctness check). */
  result?(): Promise<Float32Array>;
  dispose(): void;
}

/** Small-op host overhead: `record` issues `count` ops and submits them, without waiting. */
export interface OverheadCase {
  record(count: number): void;
  /** Waits for everything recorded so far (not timed). */
  sync(): Promise<void>;
  /** Dispatches recorded by the last `record` call, where the library exposes a counter. */
  dispatchesPerOp?(): number | undefined;
  dispose(): void;
}

export interface Lib {
  id: string;
  /** Package name and version, e.g. "@tensorflow/tfjs-core 4.22.0". */
  label: string;
  /** Adapter description as this library's device reports it (to confirm the same adapter). */
  adapter: string;
  matmul(a: Float32Array, b: Float32Array, n: number): Promise<Case>;
  add(a: Float32Array, b: Float32Array): Promise<Case>;
  overhead(x: Float32Array): Promise<OverheadCase>;
}

/** Deterministic uniform [-1, 1) data (mulberry32). */
export function randomData(n: number, seed: number): Float32Array {
  const out = new Float32Array(n);
  let s = seed >>> 0;
  for (let i = 0; i < n; i++) {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    out[i] = (((t ^ (t >>> 14)) >>> 0) / 4294967296) * 2 - 1;
  }
  return out;
}

export function errorMessage(e: unknown): string {
  const m = e instanceof Error ? e.message : String(e);
  return m.replace(/\s+/g, ' ').trim();
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

export interface TimingOptions {
  /** Minimum measured iterations. */
  iterations: number;
  /** Minimum measured time in ms (tinybench keeps going until both minimums are met). */
  timeMs: number;
  warmupIterations: number;
}

export interface Timing {
  /** Median milliseconds per call of fn. */
  medianMs: number;
  meanMs: number;
  minMs: number;
  samples: number;
}

/** Times an async function with tinybench; throws the task's error if it failed. */
export async function timeAsync(name: string, fn: () => Promise<unknown>, o: TimingOptions): Promise<Timing> {
  const bench = new Bench({
    name,
    iterations: o.iterations,
    time: o.timeMs,
    warmup: o.warmupIterations > 0,
    warmupIterations: o.warmupIterations,
    warmupTime: 0,
    throws: true,
  });
  bench.add(name, async () => {
    await fn();
  });
  await bench.run();
  return taskTiming(bench, name);
}

/**
 * Times host-only work: `fn` returns the milliseconds that count (tinybench's
 * overriddenDuration), so untimed waits (GPU syncs) can run inside the iteration.
 */
export async function timeOverridden(name: string, fn: () => Promise<number>, o: TimingOptions): Promise<Timing> {
  const bench = new Bench({
    name,
    iterations: o.iterations,
    time: o.timeMs,
    warmup: o.warmupIterations > 0,
    warmupIterations: o.warmupIterations,
    warmupTime: 0,
    throws: true,
  });
  bench.add(name, async () => ({ overriddenDuration: await fn() }));
  await bench.run();
  return taskTiming(bench, name);
}

function taskTiming(bench: Bench, name: string): Timing {
  const task = bench.getTask(name);
  const r = task?.result;
  if (!r) throw new Error(`${name}: no result`);
  if (r.state === 'errored') throw r.error;
  if (r.state !== 'completed' && r.state !== 'aborted-with-statistics') throw new Error(`${name}: task ${r.state}`);
  return { medianMs: r.latency.p50, meanMs: r.latency.mean, minMs: r.latency.min, samples: r.latency.samplesCount ?? 0 };
}

/** Wall time of one awaited call, in ms. */
export async function timeOnce(fn: () => Promise<unknown>): Promise<number> {
  const t0 = performance.now();
  await fn();
  return performance.now() - t0;
}

export function slugify(s: string): string {
  return (
    s
      .toLowerCase()
      .replace(/\(.*?\)/g, ' ')
      .replace(/[^a-z0-9]+/g, '-')
      .replace(/^-+|-+$/g, '')
      .slice(0, 60) || 'unknown-adapter'
  );
}

export function fmtNum(x: number | undefined, digits = 3): string {
  if (x === undefined || !Number.isFinite(x)) return '-';
  if (x === 0) return '0';
  const a = Math.abs(x);
  if (a >= 1000) return x.toFixed(0);
  return x.toPrecision(digits);
}
