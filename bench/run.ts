/**
 * Benchmark suite: webgpu-tok vs TensorFlow.js (WebGPU backend) vs jax-js (WebGPU device), in one
 * Node process on the same Dawn adapter. See bench/README.md.
 *
 *   npm run bench                       # tsx bench/run.ts
 *   BENCH_LARGE=1 npm run bench         # adds N = 4096 (for real GPUs)
 *   node bench/build.mjs && node bench/dist/bench.mjs   # plain node, no tsx
 *
 * Environment: BENCH_LARGE=1, BENCH_LIBS=ours,tfjs,jax-js, BENCH_SECTIONS=matmul,add,overhead,mlp,
 * BENCH_SIZES=256,512, BENCH_MAX_SECONDS (global time budget), BENCH_OUT_DIR (default bench/results).
 */
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { errorMessage, fmtNum, randomData, slugify, timeAsync, timeOnce, timeOverridden, type Case, type Lib, type TimingOptions } from './common.js';
import { makeOurs } from './libs/ours.js';
import { loadTfjs } from './libs/tfjs.js';
import { loadJax } from './libs/jaxjs.js';
import { benchMlp, type MlpResult } from './mlp.js';

// ---------------------------------------------------------------- setup

declare const BENCH_BUNDLED_VERSIONS: Record<string, string> | undefined;

function repoRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 6; i++) {
    if (existsSync(join(dir, 'package.json')) && existsSync(join(dir, 'bench'))) return dir;
    dir = dirname(dir);
  }
  return process.cwd();
}
const ROOT = repoRoot();

function pkgVersion(name: string): string {
  if (typeof BENCH_BUNDLED_VERSIONS !== 'undefined' && BENCH_BUNDLED_VERSIONS[name]) return BENCH_BUNDLED_VERSIONS[name]!;
  try {
    const file = name === '.' ? join(ROOT, 'package.json') : join(ROOT, 'node_modules', name, 'package.json');
    return (JSON.parse(readFileSync(file, 'utf8')) as { version: string }).version;
  } catch {
    return '?';
  }
}

const env = process.env;
const LARGE = env.BENCH_LARGE === '1';
const listEnv = (name: string): string[] | undefined => env[name]?.split(',').map((s) => s.trim()).filter(Boolean);
const wantLibs = listEnv('BENCH_LIBS');
const wantSections = new Set(listEnv('BENCH_SECTIONS') ?? ['matmul', 'add', 'overhead', 'mlp']);
const startedAt = performance.now();
const elapsedS = () => (performance.now() - startedAt) / 1000;

const eng = await import('../node/index.js');
const gpu = await eng.nodeGPU();
if (!gpu) {
  console.error('bench: the `webgpu` package (Dawn) could not be loaded; nothing to benchmark');
  process.exit(1);
}
// tfjs-backend-webgpu registers itself at import time only if navigator.gpu exists; jax-js reads
// navigator.gpu in init(). Node 20 has no navigator, Node 21+ has one without gpu: define ours.
Object.defineProperty(globalThis, 'navigator', { value: { gpu, userAgent: 'node' }, configurable: true, writable: true });

const backendAny = await eng.getDevice({ gpu, requireWebGPU: true, powerPreference: 'high-performance', quiet: true });
if (!(backendAny instanceof eng.WebGPUBackend)) throw new Error('bench: expected a WebGPU backend');
const backend = backendAny;
const info = backend.info;
// Dawn's device string is already slug-like (e.g. nvidia-h100-80gb-hbm3, llvmpipe-llvm-15-0-6-256-bits).
const adapterSlug = slugify(info.device || info.description || `${info.vendor}-${info.architecture}`);
const software = info.architecture === 'software' || /llvmpipe|lavapipe|swiftshader|software/i.test(`${info.description} ${info.device} ${info.vendor}`);
const MAX_SECONDS = Number(env.BENCH_MAX_SECONDS ?? (software ? 270 : 400));

// Timing knobs: real GPUs get longer runs; software adapters are capped to keep `npm run bench` short.
const T = software
  ? { targetBatchMs: 40, maxReps: 16, timeMs: 250, iterations: 2, warmup: 1, maxOpSeconds: 6 }
  : { targetBatchMs: 25, maxReps: 64, timeMs: 600, iterations: 5, warmup: 2, maxOpSeconds: 10 };

const sizes = (listEnv('BENCH_SIZES')?.map(Number) ?? [256, 512, 1024, 2048, ...(LARGE ? [4096] : [])]).filter((n) => n > 0);
const ADD_N = Number(env.BENCH_ADD_N ?? 1 << 24);
const OVERHEAD_N = 4096;
const OVERHEAD_OPS = 1000;

console.log(`webgpu-tok bench — adapter: ${backend.name}`);
console.log(`  vendor=${info.vendor} architecture=${info.architecture} device=${info.device} features=[${info.features.join(', ')}]`);
console.log(`  node ${process.version}, ${software ? 'SOFTWARE adapter: absolute numbers are CPU numbers, only ratios mean something' : 'hardware adapter'}`);

// ---------------------------------------------------------------- libraries

interface LibEntry {
  id: string;
  lib?: Lib;
  error?: string;
  label: string;
}

const libs: LibEntry[] = [];
const ourVersion = pkgVersion('.');
libs.push({ id: 'ours', lib: makeOurs(eng, backend, ourVersion), label: `webgpu-tok ${ourVersion}` });
async function tryLoad(id: string, label: string, load: () => Promise<Lib>): Promise<void> {
  if (wantLibs && !wantLibs.includes(id)) return;
  try {
    const t0 = performance.now();
    const lib = await load();
    libs.push({ id, lib, label: lib.label });
    console.log(`  loaded ${lib.label} in ${((performance.now() - t0) / 1000).toFixed(1)} s (adapter: ${lib.adapter})`);
  } catch (e) {
    libs.push({ id, label, error: errorMessage(e) });
    console.log(`  FAILED to load ${label}: ${errorMessage(e)}`);
  }
}
await tryLoad('tfjs', `@tensorflow/tfjs-backend-webgpu ${pkgVersion('@tensorflow/tfjs-backend-webgpu')}`, loadTfjs);
await tryLoad('jax-js', `@jax-js/jax ${pkgVersion('@jax-js/jax')}`, () => loadJax(pkgVersion('@jax-js/jax')));
if (wantLibs && !wantLibs.includes('ours')) libs.splice(0, 1);

// ---------------------------------------------------------------- measurement helpers

interface Measurement {
  lib: string;
  /** Median ms per single op (batch time / reps). */
  msPerOp?: number;
  reps?: number;
  samples?: number;
  /** Max |x - ref| / max |ref| against a float64 CPU reference, where checked. */
  relErr?: number;
  error?: string;
  skipped?: string;
}

function outOfTime(): boolean {
  return elapsedS() > MAX_SECONDS;
}

/**
 * Calibrates a batch size R so one batch (R ops + one sync) takes about targetBatchMs, then times
 * batches with tinybench. Returns ms per op (median batch / R).
 */
async function measureCase(name: string, c: Case): Promise<{ msPerOp: number; reps: number; samples: number }> {
  const first = await timeOnce(() => c.batch(1)); // includes pipeline compilation
  let est = first;
  if (first < 1000) est = await timeOnce(() => c.batch(1));
  const slow = est > 1000;
  let reps = Math.max(1, Math.min(T.maxReps, Math.round(T.targetBatchMs / est)));
  if (reps > 1) {
    const t = await timeOnce(() => c.batch(reps));
    reps = Math.max(1, Math.min(T.maxReps, Math.round((T.targetBatchMs * reps) / t)));
  }
  const opts: TimingOptions = slow ? { iterations: 2, timeMs: 0, warmupIterations: 0 } : { iterations: T.iterations, timeMs: T.timeMs, warmupIterations: T.warmup };
  const t = await timeAsync(name, () => c.batch(reps), opts);
  return { msPerOp: t.medianMs / reps, reps, samples: t.samples };
}

function relError(got: Float32Array, ref: Float64Array): number {
  if (got.length !== ref.length) return Infinity;
  let maxRef = 0;
  let maxDiff = 0;
  for (let i = 0; i < ref.length; i++) {
    maxRef = Math.max(maxRef, Math.abs(ref[i]!));
    const d = Math.abs(got[i]! - ref[i]!);
    if (!(d <= maxDiff)) maxDiff = Number.isNaN(d) ? Infinity : Math.max(maxDiff, d);
  }
  return maxDiff / (maxRef || 1);
}

function matmulRef(a: Float32Array, b: Float32Array, n: number): Float64Array {
  const c = new Float64Array(n * n);
  for (let i = 0; i < n; i++) {
    for (let k = 0; k < n; k++) {
      const aik = a[i * n + k]!;
      const row = k * n;
      const out = i * n;
      for (let j = 0; j < n; j++) c[out + j] += aik * b[row + j]!;
    }
  }
  return c;
}

// ---------------------------------------------------------------- 1. matmul

interface MatmulRow {
  n: number;
  results: Measurement[];
}
const matmulRows: MatmulRow[] = [];
const CHECK_N = 256;

if (wantSections.has('matmul')) {
  console.log(`\n[matmul] square f32, N = ${sizes.join(', ')}`);
  // Libraries that became too slow (or failed) stop at the size where that happened.
  const stopped = new Map<string, string>();
  const lastOpMs = new Map<string, { n: number; ms: number }>();
  for (const n of sizes) {
    const a = randomData(n * n, 1);
    const b = randomData(n * n, 2);
    const ref = n === CHECK_N ? matmulRef(a, b, n) : undefined;
    const row: MatmulRow = { n, results: [] };
    for (const entry of libs) {
      const m: Measurement = { lib: entry.id };
      row.results.push(m);
      if (!entry.lib) {
        m.error = `load failed: ${entry.error}`;
        continue;
      }
      if (stopped.has(entry.id)) {
        m.skipped = stopped.get(entry.id);
        continue;
      }
      if (outOfTime()) {
        m.skipped = `global time budget (${MAX_SECONDS} s) used up`;
        continue;
      }
      const prev = lastOpMs.get(entry.id);
      if (prev) {
        const predicted = (prev.ms * (n / prev.n) ** 3) / 1000;
        if (predicted > T.maxOpSeconds) {
          m.skipped = `predicted ${predicted.toFixed(1)} s per matmul on this adapter (> ${T.maxOpSeconds} s cap)`;
          stopped.set(entry.id, `skipped after N=${prev.n} (too slow on this adapter)`);
          continue;
        }
      }
      let c: Case | undefined;
      try {
        c = await entry.lib.matmul(a, b, n);
        if (ref && c.result) m.relErr = relError(await c.result(), ref);
        const r = await measureCase(`matmul-${entry.id}-${n}`, c);
        Object.assign(m, r);
        lastOpMs.set(entry.id, { n, ms: r.msPerOp });
      } catch (e) {
        m.error = errorMessage(e);
        stopped.set(entry.id, `not run after an error at N=${n}`);
      } finally {
        try {
          c?.dispose();
        } catch {
          /* ignore */
        }
      }
      const gf = m.msPerOp ? (2 * n ** 3) / (m.msPerOp * 1e6) : undefined;
      console.log(`  N=${n} ${entry.id}: ${m.error ? `error: ${m.error}` : m.skipped ? `skipped: ${m.skipped}` : `${fmtNum(gf)} GFLOP/s (${fmtNum(m.msPerOp)} ms/op, R=${m.reps})`}${m.relErr !== undefined ? `, rel err ${m.relErr.toExponential(1)}` : ''}`);
    }
    matmulRows.push(row);
  }
}

// ---------------------------------------------------------------- 2. elementwise add

const addResults: Measurement[] = [];
if (wantSections.has('add')) {
  console.log(`\n[add] f32, n = ${ADD_N} (${((3 * 4 * ADD_N) / 1e6).toFixed(0)} MB moved per op)`);
  const a = randomData(ADD_N, 3);
  const b = randomData(ADD_N, 4);
  const CHECK = 4096;
  for (const entry of libs) {
    const m: Measurement = { lib: entry.id };
    addResults.push(m);
    if (!entry.lib) {
      m.error = `load failed: ${entry.error}`;
      continue;
    }
    if (outOfTime()) {
      m.skipped = `global time budget (${MAX_SECONDS} s) used up`;
      continue;
    }
    let c: Case | undefined;
    try {
      c = await entry.lib.add(a, b);
      if (c.result) {
        const got = await c.result();
        const ref = new Float64Array(CHECK);
        for (let i = 0; i < CHECK; i++) ref[i] = a[i]! + b[i]!;
        m.relErr = got.length === ADD_N ? relError(got.subarray(0, CHECK), ref) : Infinity;
      }
      Object.assign(m, await measureCase(`add-${entry.id}`, c));
    } catch (e) {
      m.error = errorMessage(e);
    } finally {
      try {
        c?.dispose();
      } catch {
        /* ignore */
      }
    }
    const gbs = m.msPerOp ? (3 * 4 * ADD_N) / (m.msPerOp * 1e6) : undefined;
    console.log(`  ${entry.id}: ${m.error ? `error: ${m.error}` : m.skipped ? `skipped: ${m.skipped}` : `${fmtNum(gbs)} GB/s (${fmtNum(m.msPerOp)} ms/op, R=${m.reps})`}`);
  }
}

// ---------------------------------------------------------------- 3. host overhead

interface OverheadResult {
  lib: string;
  usPerOp?: number;
  dispatchesPerOp?: number;
  error?: string;
  skipped?: string;
}
const overheadResults: OverheadResult[] = [];
let mlp: (MlpResult & { error?: undefined }) | { error: string } | undefined;
if (wantSections.has('overhead')) {
  console.log(`\n[overhead] host time to record + submit ${OVERHEAD_OPS} adds of ${OVERHEAD_N} f32 (no wait inside)`);
  const x = randomData(OVERHEAD_N, 5);
  for (const entry of libs) {
    const r: OverheadResult = { lib: entry.id };
    overheadResults.push(r);
    if (!entry.lib) {
      r.error = `load failed: ${entry.error}`;
      continue;
    }
    if (outOfTime()) {
      r.skipped = `global time budget (${MAX_SECONDS} s) used up`;
      continue;
    }
    try {
      const c = await entry.lib.overhead(x);
      try {
        c.record(50); // compile
        await c.sync();
        const t = await timeOverridden(
          `overhead-${entry.id}`,
          async () => {
            const t0 = performance.now();
            c.record(OVERHEAD_OPS);
            const dt = performance.now() - t0;
            await c.sync();
            return dt;
          },
          { iterations: software ? 5 : 10, timeMs: software ? 200 : 500, warmupIterations: 1 },
        );
        r.usPerOp = (t.medianMs * 1000) / OVERHEAD_OPS;
        r.dispatchesPerOp = c.dispatchesPerOp?.();
      } finally {
        c.dispose();
      }
    } catch (e) {
      r.error = errorMessage(e);
    }
    console.log(`  ${entry.id}: ${r.error ? `error: ${r.error}` : r.skipped ? `skipped: ${r.skipped}` : `${fmtNum(r.usPerOp)} µs/op`}`);
  }
}
if (wantSections.has('mlp') && (!wantLibs || wantLibs.includes('ours'))) {
  console.log('\n[mlp] ours: 2->64->64->1 MLP, batch 256, forward + backward + SGD, one sync per step');
  try {
    mlp = await benchMlp(eng, backend, software ? { iterations: 5, timeMs: 300, warmupIterations: 1 } : { iterations: 20, timeMs: 1000, warmupIterations: 2 });
    console.log(`  ${mlp.dispatchesPerStep} dispatches, ${mlp.submitsPerStep} submits, ${fmtNum(mlp.msPerStep)} ms per step (loss ${fmtNum(mlp.lossFirst)} -> ${fmtNum(mlp.lossLast)})`);
  } catch (e) {
    mlp = { error: errorMessage(e) };
    console.log(`  error: ${mlp.error}`);
  }
}

// ---------------------------------------------------------------- report

const libIds = libs.map((l) => l.id);
const others = libIds.filter((id) => id !== 'ours');

function cell(m: Measurement | undefined, value: (m: Measurement) => number | undefined): string {
  if (!m) return '-';
  if (m.error) return `error: ${m.error.length > 60 ? `${m.error.slice(0, 57)}...` : m.error}`;
  if (m.skipped) return 'skipped';
  return fmtNum(value(m));
}
function ratio(ours: number | undefined, theirs: number | undefined): string {
  return ours && theirs ? `${(ours / theirs).toFixed(2)}x` : '-';
}
function table(header: string[], rows: string[][]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (r: string[]) => `| ${r.map((c, i) => c.padEnd(widths[i]!)).join(' | ')} |`;
  return [line(header), `|${widths.map((w) => '-'.repeat(w + 2)).join('|')}|`, ...rows.map(line)].join('\n');
}

const out: string[] = [];
out.push(`\n## webgpu-tok bench: ${backend.name} (${new Date().toISOString().slice(0, 10)})`);
if (software) out.push('Software adapter (CPU): absolute numbers are not GPU numbers; only the ratios are meaningful.');
out.push(`Libraries: ${libs.map((l) => (l.error ? `${l.label} (FAILED: ${l.error})` : l.label)).join('; ')}`);

const gflops = (n: number) => (m: Measurement) => (m.msPerOp ? (2 * n ** 3) / (m.msPerOp * 1e6) : undefined);
if (matmulRows.length) {
  out.push('\n### f32 matmul, square N x N, GFLOP/s (higher is better)');
  const header = ['N', ...libIds, ...others.map((o) => `ours/${o}`), `rel err @${CHECK_N} (${libIds.join(', ')})`];
  const rows = matmulRows.map((row) => {
    const get = (id: string) => row.results.find((r) => r.lib === id);
    const ours = get('ours');
    const oursV = ours && !ours.error && !ours.skipped ? gflops(row.n)(ours) : undefined;
    return [
      String(row.n),
      ...libIds.map((id) => cell(get(id), gflops(row.n))),
      ...others.map((o) => {
        const m = get(o);
        return ratio(oursV, m && !m.error && !m.skipped ? gflops(row.n)(m) : undefined);
      }),
      row.n === CHECK_N ? libIds.map((id) => (get(id)?.relErr !== undefined ? get(id)!.relErr!.toExponential(1) : '-')).join(', ') : '',
    ];
  });
  out.push(table(header, rows));
  const skips = matmulRows.flatMap((r) => r.results.filter((m) => m.skipped).map((m) => `N=${r.n} ${m.lib}: ${m.skipped}`));
  for (const s of skips) out.push(`- skipped ${s}`);
}
if (addResults.length) {
  out.push(`\n### elementwise add, f32, n = ${ADD_N}, GB/s (3 x 4 x n bytes per op; higher is better)`);
  const gbs = (m: Measurement) => (m.msPerOp ? (3 * 4 * ADD_N) / (m.msPerOp * 1e6) : undefined);
  const oursM = addResults.find((m) => m.lib === 'ours');
  const oursV = oursM && !oursM.error && !oursM.skipped ? gbs(oursM) : undefined;
  out.push(
    table(
      ['lib', 'GB/s', 'ms/op', 'ours/lib', 'rel err (first 4096)'],
      addResults.map((m) => [
        m.lib,
        cell(m, gbs),
        cell(m, (x) => x.msPerOp),
        m.lib === 'ours' ? '' : ratio(oursV, !m.error && !m.skipped ? gbs(m) : undefined),
        m.relErr !== undefined ? m.relErr.toExponential(1) : '-',
      ]),
    ),
  );
}
if (overheadResults.length || mlp) {
  out.push(`\n### host overhead (lower is better)`);
  if (overheadResults.length) {
    const oursUs = overheadResults.find((r) => r.lib === 'ours')?.usPerOp;
    out.push(
      table(
        ['lib', `µs per small op (${OVERHEAD_OPS} adds of ${OVERHEAD_N}, record+submit)`, 'dispatches/op', 'ours/lib (time: < 1 = ours faster)'],
        overheadResults.map((r) => [
          r.lib,
          r.error ? `error: ${r.error.slice(0, 60)}` : r.skipped ? 'skipped' : fmtNum(r.usPerOp),
          r.dispatchesPerOp !== undefined ? fmtNum(r.dispatchesPerOp) : '-',
          r.lib === 'ours' ? '' : ratio(oursUs, r.usPerOp),
        ]),
      ),
    );
  }
  if (mlp) {
    if (mlp.error !== undefined) out.push(`\nMLP training step (ours): error: ${mlp.error}`);
    else
      out.push(
        `\nMLP 2->64->64->1 training step (ours, batch ${mlp.batch}): ${fmtNum(mlp.dispatchesPerStep)} dispatches, ${fmtNum(mlp.submitsPerStep)} submits, ${fmtNum(mlp.msPerStep)} ms per step (incl. sync); loss ${fmtNum(mlp.lossFirst)} -> ${fmtNum(mlp.lossLast)}`,
      );
  }
}
out.push(`\nTotal time ${elapsedS().toFixed(0)} s.`);
const report = out.join('\n');
console.log(report);

const date = new Date().toISOString().slice(0, 10);
const outDir = resolve(env.BENCH_OUT_DIR ?? join(ROOT, 'bench', 'results'));
mkdirSync(outDir, { recursive: true });
const file = join(outDir, `${adapterSlug}-${date}.json`);
const json = {
  date: new Date().toISOString(),
  adapter: { ...info, name: backend.name, slug: adapterSlug, software },
  node: process.version,
  platform: `${process.platform}-${process.arch}`,
  env: { BENCH_LARGE: LARGE, BENCH_LIBS: wantLibs ?? null, BENCH_SECTIONS: [...wantSections], BENCH_MAX_SECONDS: MAX_SECONDS },
  libs: libs.map((l) => ({ id: l.id, label: l.label, adapter: l.lib?.adapter, error: l.error })),
  timing: T,
  matmul: matmulRows.map((r) => ({ n: r.n, results: r.results.map((m) => ({ ...m, gflops: m.msPerOp ? (2 * r.n ** 3) / (m.msPerOp * 1e6) : undefined })) })),
  add: { n: ADD_N, results: addResults.map((m) => ({ ...m, gbps: m.msPerOp ? (3 * 4 * ADD_N) / (m.msPerOp * 1e6) : undefined })) },
  overhead: { opsPerRecord: OVERHEAD_OPS, elements: OVERHEAD_N, results: overheadResults },
  mlp: mlp ?? null,
  totalSeconds: elapsedS(),
  report,
};
writeFileSync(file, `${JSON.stringify(json, null, 2)}\n`);
console.log(`\nsaved ${file}`);
// Dawn keeps the event loop alive while devices exist.
process.exit(0);
