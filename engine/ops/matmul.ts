/**
 * Matrix multiplication with NumPy/PyTorch semantics (1-D operands promoted, batch dims
 * broadcast), `linear` (x @ w^T + b, PyTorch's Linear convention), the CPU reference and the GPU
 * dispatch (tiled kernel in shaders/matmul.ts), and the gradient rule
 *   dA = g @ B^T,  dB = A^T @ g   (unbroadcast with sumTo),
 * built from matmul/transpose so grad-of-grad works. Transposed views are read in place by the
 * kernel (no contiguous() copies), so the gradient's `transpose()` inputs cost nothing extra.
 */
import { CpuBackend, CpuStorage } from '../cpu/backend.js';
import { cpuData, forEachStrided } from '../cpu/strided.js';
import { noGrad, record } from '../grad-mode.js';
import { broadcastStrides, collapseDims, contiguousStrides, fmtShape, sizeOf } from '../shape.js';
import { isTensor, Tensor } from '../tensor.js';
import { GpuStorage, ParamBuilder, WebGPUBackend } from '../webgpu/backend.js';
import { MATMUL_P, matmulRowShader, matmulSimpleShader, matmulTiledShader, SIMPLE_TILE, tileConfigError, tiledThreads, type MatmulTileConfig, type MatmulTiledSpec } from '../../shaders/matmul.js';
import { checkSameBackend } from './elementwise.js';
import { add } from './binary.js';
import { sum, sumTo } from './reduce.js';
import { contiguous, reshape, transpose } from './movement.js';

export { tileConfigError, type MatmulTileConfig } from '../../shaders/matmul.js';

/** Options of the tiled kernel (see shaders/matmul.ts). */
export interface MatmulTiledOptions {
  /** Register prefetch of the next K tile (default true). */
  prefetch?: boolean;
  /** Two shared-memory buffers, one barrier per K tile (default false; needs 2x workgroup memory). */
  doubleBuffer?: boolean;
  /** One vec4 of padding per shared row (default false). */
  pad?: boolean;
  /** Grouped tile order for L2 reuse (default 1 = row-major tile order). */
  groupM?: number;
}

/** Which kernel runs a problem. */
export type MatmulPlan =
  /** One output per thread, any strides (tiny products). */
  | { kernel: 'simple' }
  /** Workgroup-memory tiled kernel with block/micro tile sizes (GPUs). */
  | ({ kernel: 'tiled'; tile: MatmulTileConfig } & MatmulTiledOptions)
  /**
   * Register-blocked, no workgroup memory: TM rows x (WG*TN) cols per workgroup (CPU-like adapters).
   * `subgroups` (default true) uses subgroup shuffles for A when the device has the feature.
   */
  | { kernel: 'rows'; WG: number; TM: number; TN: number; subgroups?: boolean };

/** What the config picker may need to know about the device. */
export interface MatmulDeviceCaps {
  /** maxComputeWorkgroupStorageSize (bytes). */
  maxWorkgroupStorage: number;
  /** maxComputeInvocationsPerWorkgroup. */
  maxInvocations: number;
  /** A software rasterizer that runs invocations as CPU SIMD lanes (lavapipe/llvmpipe, SwiftShader). */
  software?: boolean;
}

export type MatmulConfigPicker = (M: number, N: number, K: number, batch: number, caps: MatmulDeviceCaps) => MatmulPlan;

/** Tile configs from large to small (all use 256 or fewer invocations). */
export const MATMUL_TILES = {
  /** 128x256 block, BK 16, 8x16 per thread, 256 threads, 24 KiB shared: 42.7 TFLOP/s at 4096 on an H100. */
  xl: { BM: 128, BN: 256, BK: 16, TM: 8, TN: 16 },
  /** 128x128 block, BK 16, 8x8 per thread, 256 threads, 16 KiB shared (32+ KiB double-buffered). */
  large: { BM: 128, BN: 128, BK: 16, TM: 8, TN: 8 },
  /** 128x64 block, BK 16, 8x8 per thread, 128 threads: twice the blocks of `large` for mid sizes. */
  wide: { BM: 128, BN: 64, BK: 16, TM: 8, TN: 8 },
  /** 64x64 block, BK 16, 4x4 per thread, 256 threads, 8 KiB shared. */
  medium: { BM: 64, BN: 64, BK: 16, TM: 4, TN: 4 },
  /** 32x32 block, BK 16, 4x4 per thread, 64 threads, 4 KiB shared. */
  small: { BM: 32, BN: 32, BK: 16, TM: 4, TN: 4 },
} as const satisfies Record<string, MatmulTileConfig>;

/** Workgroup memory of the tiled kernel in bytes. */
export function tiledSharedBytes(t: MatmulTileConfig, o: MatmulTiledOptions = {}): number {
  const pad = o.pad ? 4 : 0;
  return (o.doubleBuffer ? 2 : 1) * 4 * t.BK * (t.BM + pad + t.BN + pad);
}

function fits(t: MatmulTileConfig, caps: MatmulDeviceCaps, o: MatmulTiledOptions = {}): boolean {
  return tiledThreads(t) <= caps.maxInvocations && tiledSharedBytes(t, o) <= caps.maxWorkgroupStorage;
}

const DEFAULT_CAPS: MatmulDeviceCaps = { maxWorkgroupStorage: 16384, maxInvocations: 256 };

/**
 * Default choice of kernel and tile by problem size and device:
 *  - tiny products: the one-output-per-thread kernel;
 *  - software adapters (lavapipe): the register-blocked 'rows' kernel, 16 rows x 16 columns per
 *    invocation, 8 invocations (one SIMD subgroup) per workgroup: the best of the variants measured
 *    on llvmpipe (see shaders/matmul.ts: loads cost per instruction there, and workgroup memory and
 *    barriers only add cost);
 *  - GPUs: the largest block tile that still gives >= 128 workgroups (enough to fill a ~132-SM
 *    H100; 128x128 blocks from ~1.5k x 1.5k up), double-buffered when the workgroup memory allows,
 *    with grouped tile order; smaller tiles for small problems.
 */
export function pickMatmulConfig(M: number, N: number, K: number, batch = 1, caps: MatmulDeviceCaps = DEFAULT_CAPS): MatmulPlan {
  if (M * N * K * batch <= 16 * 16 * 16 || M * N * batch <= 64) return { kernel: 'simple' };
  if (caps.software) {
    // (K <= 2 too: the simple kernel ran a [144, 1] @ [32, 1, 1, 256] outer product 5x slower.)
    // A 1..4-row A (a 1-channel conv) gets a 4-row tile: a 16-row one repeats its rows' work.
    if (N >= 64 && M <= 4) return { kernel: 'rows', WG: 8, TM: 4, TN: 16 };
    if (N >= 64) return { kernel: 'rows', WG: 8, TM: 16, TN: 16 };
    // Narrow N (conv columns at small spatial sizes): 8 lanes x TN columns should not overshoot N
    // much; 16 rows per workgroup halves the B loads per FMA of 8 (measured on lavapipe at the
    // CNN tokenizer's conv shapes, bench/conv-small.ts: 1.3-3x faster than TM 8 x TN 4).
    return N <= 16 ? { kernel: 'rows', WG: 8, TM: 16, TN: 2 } : { kernel: 'rows', WG: 8, TM: 16, TN: 4 };
  }
  if (K <= 2) return { kernel: 'simple' };
  const blocks = (t: MatmulTileConfig) => Math.ceil(M / t.BM) * Math.ceil(N / t.BN) * batch;
  // Measured on an H100 (bench/matmul-gflops.ts, MM_PLAN sweeps): single-buffered tiles with
  // register prefetch, padded shared rows and grouped tile order beat double buffering (40.0 vs
  // 30.9 TFLOP/s at N=4096), and 8x16 outputs per thread beat 8x8 (42.7 vs 40.0) where the
  // workgroup memory allows; with few blocks, smaller tiles keep more of the 132 SMs busy.
  for (const [t, minBlocks] of [[MATMUL_TILES.xl, 128], [MATMUL_TILES.large, 256], [MATMUL_TILES.wide, 128], [MATMUL_TILES.medium, 0]] as const) {
    if (!fits(t, caps) || blocks(t) < minBlocks || K < 2 * t.BK) continue;
    for (const o of [{ prefetch: true, pad: true }, { prefetch: true }] as MatmulTiledOptions[]) {
      if (fits(t, caps, o)) return { kernel: 'tiled', tile: t, ...o, groupM: 16 };
    }
  }
  if (fits(MATMUL_TILES.small, caps)) return { kernel: 'tiled', tile: MATMUL_TILES.small, prefetch: true };
  return { kernel: 'simple' };
}

let picker: MatmulConfigPicker = pickMatmulConfig;

/** Replaces the kernel/tile chooser (per device tuning); returns the previous one. */
export function setMatmulConfigPicker(p: MatmulConfigPicker): MatmulConfigPicker {
  const prev = picker;
  picker = p;
  return prev;
}

/** How one operand is addressed: matrix dims (rows, cols), strides, and the batch strides. */
interface Operand {
  t: Tensor;
  rows: number;
  cols: number;
  sR: number;
  sC: number;
}

/** In-place layouts of a matrix view: unit stride along cols (row-major) or along rows (transposed). */
interface Layout {
  trans: boolean;
  /** Leading dimension: stride of the non-unit dim (0 when that dim has size 1). */
  ld: number;
}

function layouts(o: Operand): Layout[] {
  const out: Layout[] = [];
  if (o.cols === 1 || o.sC === 1) out.push({ trans: false, ld: o.rows === 1 ? 0 : o.sR });
  if (o.rows === 1 || o.sR === 1) out.push({ trans: true, ld: o.cols === 1 ? 0 : o.sC });
  return out;
}

function vecOk(o: Operand, l: Layout, batchStrides: readonly number[]): boolean {
  const ext = l.trans ? o.rows : o.cols;
  return ext % 4 === 0 && l.ld % 4 === 0 && o.t.offset % 4 === 0 && batchStrides.every((s) => s % 4 === 0);
}

function checkOperand(t: unknown, which: string): asserts t is Tensor {
  if (!isTensor(t)) throw new TypeError(`matmul: ${which} must be a Tensor, got ${typeof t}`);
  if (t.dtype !== 'f32') throw new TypeError(`matmul: expected f32 tensors, got dtype ${t.dtype} (${t.describe()})`);
  if (t.rank === 0) throw new Error(`matmul: ${which} must have at least 1 dimension, got a scalar ${t.describe()}`);
}

/** Output shape of a @ b (after 1-D promotion and batch broadcasting); the error names both shapes. */
export function matmulShape(a: readonly number[], b: readonly number[]): number[] {
  const bad = (why: string) => new Error(`matmul: shapes ${fmtShape(a)} and ${fmtShape(b)} are incompatible (${why})`);
  const K1 = a[a.length - 1]!;
  const K2 = b.length === 1 ? b[0]! : b[b.length - 2]!;
  if (K1 !== K2) throw bad(`inner dims ${K1} vs ${K2}`);
  const ab = a.length >= 2 ? a.slice(0, -2) : [];
  const bb = b.length >= 2 ? b.slice(0, -2) : [];
  const n = Math.max(ab.length, bb.length);
  const batch: number[] = [];
  for (let i = 0; i < n; i++) {
    const da = ab[ab.length - n + i] ?? 1;
    const db = bb[bb.length - n + i] ?? 1;
    if (da !== db && da !== 1 && db !== 1) throw bad(`batch dims ${fmtShape(ab)} and ${fmtShape(bb)} do not broadcast`);
    batch.push(da === 1 ? db : da);
  }
  return [...batch, ...(a.length >= 2 ? [a[a.length - 2]!] : []), ...(b.length >= 2 ? [b[b.length - 1]!] : [])];
}

/**
 * a @ b like torch.matmul: 1-D a is a row vector (its dim dropped from the result), 1-D b a column
 * vector; leading (batch) dims broadcast. f32 only.
 */
export function matmul(a: Tensor, b: Tensor): Tensor {
  checkOperand(a, 'a');
  checkOperand(b, 'b');
  checkSameBackend('matmul', [a, b]);
  const outShape = matmulShape(a.shape, b.shape);
  const M = a.rank === 1 ? 1 : a.shape[a.rank - 2]!;
  const K = a.shape[a.rank - 1]!;
  const N = b.rank === 1 ? 1 : b.shape[b.rank - 1]!;
  const batchShape = outShape.slice(0, outShape.length - (a.rank === 1 ? 0 : 1) - (b.rank === 1 ? 0 : 1));
  const out = new Tensor(a.backend.alloc(sizeOf(outShape), 'f32'), outShape, 'f32', 'matmul');
  if (out.size > 0) compute(a, b, out, batchShape);
  return record(out, 'matmul', [a, b], (g) => {
    // Promote 1-D operands to matrices, take the matrix gradients, and fold them back.
    const a2 = a.rank === 1 ? reshape(a, [1, K]) : a;
    const b2 = b.rank === 1 ? reshape(b, [K, 1]) : b;
    const g2 = reshape(g, [...batchShape, M, N]);
    const ga = a.requiresGrad ? reshape(sumTo(matmul(g2, transpose(b2)), a2.shape), a.shape) : null;
    const gb = b.requiresGrad ? reshape(sumTo(matmul(transpose(a2), g2), b2.shape), b.shape) : null;
    return [ga, gb];
  });
}

/**
 * y = x @ w^T + b with w of shape [out, in] and b of shape [out] (torch.nn.functional.linear).
 * One tape node: w^T is read in place (a transposed view that never reaches the tape) and the
 * gradients are gx = g @ w, gw = g^T @ x (leading dims folded), gb = sum of g over leading dims,
 * all built from differentiable ops.
 */
export function linear(x: Tensor, w: Tensor, b?: Tensor | null): Tensor {
  checkOperand(x, 'x');
  checkOperand(w, 'w');
  if (b != null) checkOperand(b, 'b');
  checkSameBackend('linear', b ? [x, w, b] : [x, w]);
  if (w.rank !== 2) throw new Error(`linear: weight must be 2-D [out, in], got ${fmtShape(w.shape)}`);
  const [nOut, nIn] = w.shape as [number, number];
  if (x.shape[x.rank - 1] !== nIn) throw new Error(`linear: input ${fmtShape(x.shape)} has ${x.shape[x.rank - 1]} features but weight ${fmtShape(w.shape)} expects ${nIn}`);
  if (b && (b.rank !== 1 || b.shape[0] !== nOut)) throw new Error(`linear: bias ${fmtShape(b.shape)} does not match weight ${fmtShape(w.shape)} (expected [${nOut}])`);
  const lead = x.shape.slice(0, -1);
  const wt = new Tensor(w.storage, [nIn, nOut], 'f32', 'linear', [w.strides[1]!, w.strides[0]!], w.offset);
  let y = new Tensor(x.backend.alloc(sizeOf(lead) * nOut, 'f32'), [...lead, nOut], 'f32', 'linear');
  if (y.size > 0) compute(x, wt, y, lead.slice(0, -1));
  wt.dispose();
  if (b) {
    const yb = noGrad(() => add(y, b));
    y.dispose();
    y = yb;
  }
  const inputs = b ? [x, w, b] : [x, w];
  return record(y, 'linear', inputs, (g) => {
    const P = sizeOf(lead);
    const g2 = reshape(g, [P, nOut]);
    const gx = x.requiresGrad ? matmul(g, w) : null;
    const gw = w.requiresGrad ? matmul(transpose(g2), reshape(x, [P, nIn])) : null;
    const gb = b && b.requiresGrad ? sum(g2, 0) : null;
    return b ? [gx, gw, gb] : [gx, gw];
  });
}

/** Writes a @ b into the contiguous `out` (shapes already checked). */
function compute(a: Tensor, b: Tensor, out: Tensor, batchShape: number[]): void {
  const M = a.rank === 1 ? 1 : a.shape[a.rank - 2]!;
  const K = a.shape[a.rank - 1]!;
  const N = b.rank === 1 ? 1 : b.shape[b.rank - 1]!;
  const A: Operand = { t: a, rows: M, cols: K, sR: a.rank === 1 ? 0 : a.strides[a.rank - 2]!, sC: a.strides[a.rank - 1]! };
  const B: Operand = { t: b, rows: K, cols: N, sR: b.rank === 1 ? b.strides[0]! : b.strides[b.rank - 2]!, sC: b.rank === 1 ? 0 : b.strides[b.rank - 1]! };
  const lead = (t: Tensor) => Math.max(t.rank - 2, 0);
  const aBatch = broadcastStrides(a.shape.slice(0, lead(a)), a.strides.slice(0, lead(a)), batchShape);
  const bBatch = broadcastStrides(b.shape.slice(0, lead(b)), b.strides.slice(0, lead(b)), batchShape);
  if (a.backend instanceof CpuBackend) matmulCpu(A, B, out, M, N, K, batchShape, aBatch, bBatch);
  else matmulGpu(A, B, out, M, N, K, batchShape, aBatch, bBatch);
}

// ---------------------------------------------------------------------------------------------
// CPU reference: float64 accumulation (exact products on an f64 backend), any strides.

function matmulCpu(A: Operand, B: Operand, out: Tensor, M: number, N: number, K: number, batchShape: number[], aBatch: number[], bBatch: number[]): void {
  const a = cpuData(A.t);
  const b = cpuData(B.t);
  const o = (out.storage as CpuStorage).data;
  const acc = new Float64Array(N);
  forEachStrided(batchShape, [aBatch, bBatch], [A.t.offset, B.t.offset], (bi, offs) => {
    const aB = offs[0]!;
    const bB = offs[1]!;
    for (let m = 0; m < M; m++) {
      acc.fill(0);
      const aRow = aB + m * A.sR;
      for (let k = 0; k < K; k++) {
        const av = a[aRow + k * A.sC]!;
        const bRow = bB + k * B.sR;
        for (let n = 0; n < N; n++) acc[n]! += av * b[bRow + n * B.sC]!;
      }
      o.set(acc, (bi * M + m) * N);
    }
  });
}

// ---------------------------------------------------------------------------------------------
// GPU dispatch.

/** The device facts the config picker sees for a WebGPU backend. */
export function matmulDeviceCaps(gpu: WebGPUBackend): MatmulDeviceCaps {
  const l = gpu.device.limits;
  return { maxWorkgroupStorage: l.maxComputeWorkgroupStorageSize, maxInvocations: l.maxComputeInvocationsPerWorkgroup, software: gpu.softwareAdapter !== null };
}

function matmulGpu(A: Operand, B: Operand, out: Tensor, M: number, N: number, K: number, batchShape: number[], aBatch: number[], bBatch: number[]): void {
  const gpu = A.t.backend as WebGPUBackend;
  const nBatch = sizeOf(batchShape);
  const col = collapseDims(batchShape, [aBatch, bBatch, contiguousStrides(batchShape)]);
  let R = col.shape.length;
  let bShape = col.shape;
  let [aBS, bBS] = col.strides as [number[], number[]];
  if (R === 1 && bShape[0] === 1) ((R = 0), (bShape = []), (aBS = []), (bBS = []));
  // Batch rank 1 runs as rank 2 (a leading size-1 dim): one shader variant fewer to compile, which
  // matters on software adapters where a register-blocked kernel takes seconds to compile.
  if (R === 1) ((R = 2), (bShape = [1, ...bShape]), (aBS = [0, ...aBS]), (bBS = [0, ...bBS]));
  if (MATMUL_P.batch + 3 * R > 64) throw new Error(`matmul: too many non-mergeable batch dims (${R})`);
  const caps = matmulDeviceCaps(gpu);
  const kernel = picker(M, N, K, nBatch, caps);
  let la: Layout | undefined;
  let lb: Layout | undefined;
  if (kernel.kernel === 'rows' && kernel.WG > caps.maxInvocations) throw new Error(`matmul: rows plan with ${kernel.WG} invocations exceeds the device limit ${caps.maxInvocations}`);
  if (kernel.kernel === 'tiled') {
    const err = tileConfigError(kernel.tile) ?? (fits(kernel.tile, caps, kernel) ? null : `needs ${tiledThreads(kernel.tile)} invocations and ${tiledSharedBytes(kernel.tile, kernel)} bytes of workgroup memory; the device allows ${caps.maxInvocations} and ${caps.maxWorkgroupStorage}`);
    if (err) throw new Error(`matmul: bad tile config ${JSON.stringify(kernel)} from the config picker: ${err}`);
    // An in-place layout per operand, preferring one that allows vec4 loads.
    const lsA = layouts(A);
    const lsB = layouts(B);
    la = lsA.find((l) => vecOk(A, l, aBS)) ?? lsA[0];
    lb = lsB.find((l) => vecOk(B, l, bBS)) ?? lsB[0];
    // Strided in both matrix dims (rare: e.g. a stepped slice): multiply contiguous copies.
    if (!la || !lb) {
      const ac = la ? A.t : contiguous(A.t);
      const bc = lb ? B.t : contiguous(B.t);
      compute(ac, bc, out, batchShape);
      if (ac !== A.t) ac.dispose();
      if (bc !== B.t) bc.dispose();
      return;
    }
  }
  const p = new ParamBuilder();
  const buffers = [
    { storage: A.t.storage as GpuStorage, access: 'read' as const },
    { storage: B.t.storage as GpuStorage, access: 'read' as const },
    { storage: out.storage as GpuStorage, access: 'read_write' as const },
  ];
  if (kernel.kernel === 'rows') {
    const { TN } = kernel;
    // vec4 B loads: unit stride along N, 4-aligned leading dim / offset / batch strides, N % 4 == 0.
    const vecB = TN % 4 === 0 && N % 4 === 0 && (B.sC === 1 || N === 1) && (B.sR % 4 === 0 || K === 1) && B.t.offset % 4 === 0 && bBS.every((x) => x % 4 === 0);
    // A transposed B (x @ w^T) cannot use vec4 loads here and runs ~2x slower; for anything but a
    // small product a contiguous copy of B costs less (O(K*N) vs O(M*N*K)). (A transposed A reads
    // cache lines as well as a contiguous one in this kernel: measured no gain from copying it.)
    // With few rows (M <= 64, e.g. a conv weight gradient gy @ cols^T) the copy costs more than
    // the product: read B in place with scalar loads, 2 columns per lane, all rows in one or two
    // workgroup row tiles (lavapipe, 16->16 3x3 conv at 16x16, batch 32: 20 ms -> 4.6 ms).
    if (!vecB && !B.t.isContiguous && M <= 64 && TN % 4 === 0 && M * N * K * nBatch >= 64 * 64 * 64) {
      return void dispatchRows(gpu, { ...kernel, TM: M <= 4 ? M : M <= 16 ? 16 : 32, TN: 2 }, A, B, M, N, K, nBatch, R, bShape, aBS, bBS, p, buffers, false);
    }
    if (!vecB && TN % 4 === 0 && N % 4 === 0 && !B.t.isContiguous && M * N * K * nBatch >= 64 * 64 * 64) {
      const bc = noGrad(() => contiguous(B.t));
      compute(A.t, bc, out, batchShape);
      bc.dispose();
      return;
    }
    dispatchRows(gpu, kernel, A, B, M, N, K, nBatch, R, bShape, aBS, bBS, p, buffers, vecB);
  } else if (kernel.kernel === 'simple') {
    const tilesM = Math.ceil(M / SIMPLE_TILE);
    const tilesN = Math.ceil(N / SIMPLE_TILE);
    p.u32(M, N, K, A.t.offset, B.t.offset, A.sR, A.sC, B.sR, B.sC, tilesM, tilesN, nBatch, ...bShape, ...aBS, ...bBS);
    gpu.dispatch({ key: `matmul|simple|${R}`, code: () => matmulSimpleShader(R), buffers, params: p.words, workgroups: tilesM * tilesN * nBatch });
  } else {
    const t = kernel.tile;
    const tilesM = Math.ceil(M / t.BM);
    const tilesN = Math.ceil(N / t.BN);
    const aT = la!.trans;
    const bT = lb!.trans;
    const doubleBuffer = kernel.doubleBuffer ?? false;
    const spec: MatmulTiledSpec = {
      ...t,
      aT,
      bT,
      vecA: vecOk(A, la!, aBS),
      vecB: vecOk(B, lb!, bBS),
      vecC: N % 4 === 0,
      checked: M % t.BM !== 0 || N % t.BN !== 0 || K % t.BK !== 0,
      prefetch: doubleBuffer || (kernel.prefetch ?? true),
      doubleBuffer,
      pad: kernel.pad ?? false,
      groupM: Math.max(1, Math.floor(kernel.groupM ?? 1)),
      batchRank: R,
    };
    // Params 5..8: the leading dimension goes in the non-unit stride slot, 1 in the unit one.
    const aSM = aT ? 1 : la!.ld;
    const aSK = aT ? la!.ld : 1;
    const bSK = bT ? 1 : lb!.ld;
    const bSN = bT ? lb!.ld : 1;
    p.u32(M, N, K, A.t.offset, B.t.offset, aSM, aSK, bSK, bSN, tilesM, tilesN, nBatch, ...bShape, ...aBS, ...bBS);
    const f = (b: boolean) => (b ? '1' : '0');
    const key = `matmul|tiled|${t.BM}x${t.BN}x${t.BK}|${t.TM}x${t.TN}|${f(aT)}${f(bT)}|${f(spec.vecA)}${f(spec.vecB)}${f(spec.vecC)}|${f(spec.checked)}${f(spec.prefetch)}${f(spec.doubleBuffer)}${f(spec.pad)}|g${spec.groupM}|${R}`;
    gpu.dispatch({ key, code: () => matmulTiledShader(spec), buffers, params: p.words, workgroups: tilesM * tilesN * nBatch });
  }
}

type RowsPlan = Extract<MatmulPlan, { kernel: 'rows' }>;

function dispatchRows(gpu: WebGPUBackend, kernel: RowsPlan, A: Operand, B: Operand, M: number, N: number, K: number, nBatch: number, R: number, bShape: number[], aBS: number[], bBS: number[], p: ParamBuilder, buffers: { storage: GpuStorage; access: 'read' | 'read_write' }[], vecB: boolean): void {
  const { WG, TM, TN } = kernel;
  const subgroups = (kernel.subgroups ?? true) && gpu.features.has('subgroups');
  const tilesM = Math.ceil(M / TM);
  const tilesN = Math.ceil(N / (WG * TN));
  p.u32(M, N, K, A.t.offset, B.t.offset, A.sR, A.sC, B.sR, B.sC, tilesM, tilesN, nBatch, ...bShape, ...aBS, ...bBS);
  const key = `matmul|rows|${WG}|${TM}x${TN}|${+vecB}${+subgroups}|${R}`;
  gpu.dispatch({ key, code: () => matmulRowShader({ WG, TM, TN, vecB, subgroups, batchRank: R }), buffers, params: p.words, workgroups: tilesM * tilesN * nBatch });
}
