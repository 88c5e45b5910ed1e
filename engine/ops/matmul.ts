/**
 * Matrix multiplication with NumPy/PyTorch semantics (1-D operands promoted, batch dims
 * broadcast) and `linear` (x @ w^T + b, PyTorch's Linear convention): their declarations, the CPU
 * reference and the GPU kernels (shaders/matmul.ts, chosen per problem by the device's picker,
 * engine/ops/matmul-plan.ts), and the gradient rule
 *   dA = g @ B^T,  dB = A^T @ g   (unbroadcast with sumTo),
 * built from matmul/transpose so grad-of-grad works. Transposed views are read in place by the
 * kernels (no contiguous() copies), so the gradient's `transpose()` inputs cost nothing extra.
 */
import type { CpuBackend } from '../cpu/backend.js';
import { cpuData, forEachStrided } from '../cpu/strided.js';
import { noGrad } from '../grad-mode.js';
import { PARAM_WORDS } from '../kernel.js';
import { defineOp } from '../op.js';
import { tidy } from '../scope.js';
import { broadcastStrides, collapseDims, contiguousStrides, fmtShape, sizeOf } from '../shape.js';
import { isTensor, Tensor } from '../tensor.js';
import type { WebGPUBackend } from '../webgpu/backend.js';
import { MATMUL_BIAS_WORDS, MATMUL_FIXED_WORDS, matmulRowsKernel, matmulSimpleKernel, matmulTiledKernel, SIMPLE_TILE, tileConfigError, tiledThreads, type MatmulTiledSpec } from '../../shaders/matmul.js';
import { matmulDeviceCaps, pickMatmulConfig, tiledSharedBytes, tileFits, type MatmulPlan } from './matmul-plan.js';
import { elementwise } from './elementwise.js';
import { sum, sumTo } from './reduce.js';
import { contiguous, reshape, transpose } from './movement.js';

export { tileConfigError, type MatmulTileConfig } from '../../shaders/matmul.js';
export { MATMUL_TILES, matmulDeviceCaps, pickMatmulConfig, tiledSharedBytes, type MatmulConfigPicker, type MatmulDeviceCaps, type MatmulPlan, type MatmulTiledOptions } from './matmul-plan.js';

/** How one operand is addressed: matrix dims (rows, cols) and strides. */
interface Operand {
  t: Tensor;
  rows: number;
  cols: number;
  sR: number;
  sC: number;
}

/** A product's operands and the strides of its (broadcast) batch dims. */
interface Geometry {
  A: Operand;
  B: Operand;
  batchShape: number[];
  aBatch: number[];
  bBatch: number[];
}

/** The geometry of a @ b written to `out` (1-D a is a row, 1-D b a column). */
function geometry(a: Tensor, b: Tensor, out: Tensor): Geometry {
  const batchShape = out.shape.slice(0, out.rank - (a.rank === 1 ? 0 : 1) - (b.rank === 1 ? 0 : 1));
  const A: Operand = { t: a, rows: a.rank === 1 ? 1 : a.shape[a.rank - 2]!, cols: a.shape[a.rank - 1]!, sR: a.rank === 1 ? 0 : a.strides[a.rank - 2]!, sC: a.strides[a.rank - 1]! };
  const B: Operand = { t: b, rows: A.cols, cols: b.rank === 1 ? 1 : b.shape[b.rank - 1]!, sR: b.rank === 1 ? b.strides[0]! : b.strides[b.rank - 2]!, sC: b.rank === 1 ? 0 : b.strides[b.rank - 1]! };
  const lead = (t: Tensor) => Math.max(t.rank - 2, 0);
  const aBatch = broadcastStrides(a.shape.slice(0, lead(a)), a.strides.slice(0, lead(a)), batchShape);
  const bBatch = broadcastStrides(b.shape.slice(0, lead(b)), b.strides.slice(0, lead(b)), batchShape);
  return { A, B, batchShape, aBatch, bBatch };
}

function checkOperand(op: string, t: unknown, which: string): asserts t is Tensor {
  if (!isTensor(t)) throw new TypeError(`${op}: ${which} must be a Tensor, got ${typeof t}`);
  if (t.dtype !== 'f32') throw new TypeError(`${op}: expected f32 tensors, got dtype ${t.dtype} (${t.describe()})`);
  if (t.rank === 0) throw new Error(`${op}: ${which} must have at least 1 dimension, got a scalar ${t.describe()}`);
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

const matmulOp = defineOp({
  name: 'matmul',
  outputs: ([a, b]) => {
    checkOperand('matmul', a, 'a');
    checkOperand('matmul', b, 'b');
    return [{ shape: matmulShape(a.shape, b.shape), dtype: 'f32' }];
  },
  kernels: {
    cpu: (cpu, { inputs: [a, b], outputs: [out] }) => productCpu(cpu, a!, b!, out!),
    webgpu: (gpu, { inputs: [a, b], outputs: [out] }) => productGpu(gpu, a!, b!, out!),
  },
  grad: (g, { inputs: [a, b] }) => {
    // Promote 1-D operands to matrices, take the matrix gradients, and fold them back.
    const a2 = a!.rank === 1 ? reshape(a!, [1, a!.shape[0]!]) : a!;
    const b2 = b!.rank === 1 ? reshape(b!, [b!.shape[0]!, 1]) : b!;
    const g2 = reshape(g, matmulShape(a2.shape, b2.shape));
    const ga = a!.requiresGrad ? reshape(sumTo(matmul(g2, transpose(b2)), a2.shape), a!.shape) : null;
    const gb = b!.requiresGrad ? reshape(sumTo(matmul(transpose(a2), g2), b2.shape), b!.shape) : null;
    return [ga, gb];
  },
});

/**
 * a @ b like torch.matmul: 1-D a is a row vector (its dim dropped from the result), 1-D b a column
 * vector; leading (batch) dims broadcast. f32 only.
 */
export function matmul(a: Tensor, b: Tensor): Tensor {
  return matmulOp([a, b])[0]!;
}

const linearOp = defineOp({
  name: 'linear',
  outputs: ([x, w, b]) => {
    checkOperand('linear', x, 'x');
    checkOperand('linear', w, 'w');
    if (b) checkOperand('linear', b, 'b');
    if (w.rank !== 2) throw new Error(`linear: weight must be 2-D [out, in], got ${fmtShape(w.shape)}`);
    const [nOut, nIn] = w.shape as [number, number];
    if (x.shape[x.rank - 1] !== nIn) throw new Error(`linear: input ${fmtShape(x.shape)} has ${x.shape[x.rank - 1]} features but weight ${fmtShape(w.shape)} expects ${nIn}`);
    if (b && (b.rank !== 1 || b.shape[0] !== nOut)) throw new Error(`linear: bias ${fmtShape(b.shape)} does not match weight ${fmtShape(w.shape)} (expected [${nOut}])`);
    return [{ shape: [...x.shape.slice(0, -1), nOut], dtype: 'f32' }];
  },
  kernels: {
    cpu: (cpu, { inputs: [x, w, b], outputs: [y] }) => linearInto(cpu, productCpu, x!, w!, b, y!),
    webgpu: (gpu, { inputs: [x, w, b], outputs: [y] }) => linearGpu(gpu, x!, w!, b, y!),
  },
  // One tape node: gx = g @ w, gw = g^T @ x (leading dims folded), gb = sum of g over leading dims.
  grad: (g, { inputs: [x, w, b] }) => {
    const [nOut, nIn] = w!.shape as [number, number];
    const P = sizeOf(x!.shape.slice(0, -1));
    const g2 = reshape(g, [P, nOut]);
    const gx = x!.requiresGrad ? matmul(g, w!) : null;
    const gw = w!.requiresGrad ? matmul(transpose(g2), reshape(x!, [P, nIn])) : null;
    const gb = b && b.requiresGrad ? sum(g2, 0) : null;
    return b ? [gx, gw, gb] : [gx, gw];
  },
});

/**
 * y = x @ w^T + b with w of shape [out, in] and b of shape [out] (torch.nn.functional.linear).
 * One tape node: w^T is read in place (a transposed view that never reaches the tape), and the
 * gradients are built from differentiable ops.
 */
export function linear(x: Tensor, w: Tensor, b?: Tensor | null): Tensor {
  return linearOp(b ? [x, w, b] : [x, w])[0]!;
}

/** w^T as a transposed view of w (read in place by the kernels). */
function transposedWeight(w: Tensor): Tensor {
  return new Tensor(w.storage, [w.shape[1]!, w.shape[0]!], 'f32', 'linear', [w.strides[1]!, w.strides[0]!], w.offset);
}

/**
 * x @ w^T (+ b) into y in one dispatch: the kernels add the bias where they store the result. A
 * contiguous x's leading dims are read as one row dim (one [P, in] @ [in, out] product instead of a
 * batch of short ones: the kernel picker sees all P rows; measured on lavapipe for the four linear
 * shapes of bench:train's GPT at batch 8 x 64 tokens: 25-29 -> 33-36 GFLOP/s).
 */
function linearGpu(gpu: WebGPUBackend, x: Tensor, w: Tensor, b: Tensor | undefined, y: Tensor): void {
  const wt = transposedWeight(w);
  const flat = x.rank > 2 && x.isContiguous;
  const P = sizeOf(x.shape.slice(0, -1));
  const x2 = flat ? new Tensor(x.storage, [P, x.shape[x.rank - 1]!], 'f32', 'linear', [x.shape[x.rank - 1]!, 1], x.offset) : x;
  const y2 = flat ? new Tensor(y.storage, [P, y.shape[y.rank - 1]!], 'f32', 'linear', [y.shape[y.rank - 1]!, 1], y.offset) : y;
  try {
    productGpu(gpu, x2, wt, y2, b);
  } finally {
    wt.dispose();
    if (flat) {
      x2.dispose();
      y2.dispose();
    }
  }
}

/** CPU reference of x @ w^T (+ b) into y: the product (float64 accumulation) and the bias add are two passes. */
function linearInto<B>(backend: B, product: (backend: B, a: Tensor, b: Tensor, out: Tensor) => void, x: Tensor, w: Tensor, b: Tensor | undefined, y: Tensor): void {
  const wt = transposedWeight(w);
  try {
    if (!b) return product(backend, x, wt, y);
    const xw = new Tensor(y.backend.alloc(y.size, 'f32'), y.shape, 'f32', 'linear');
    try {
      product(backend, x, wt, xw);
      elementwise('linear', [xw, b], { expr: 'a + b', cpu: addF, outDtype: 'f32', into: y });
    } finally {
      xw.dispose();
    }
  } finally {
    wt.dispose();
  }
}

const addF = (p: number, q: number) => p + q;

/** Multiplies copies made by `fn` (dense or contiguous views), freeing them afterwards. */
function withCopies(fn: () => void): void {
  noGrad(() => tidy(fn));
}

// ---------------------------------------------------------------------------------------------
// CPU reference: float64 accumulation (exact products on an f64 backend), any strides.

function productCpu(_cpu: CpuBackend, a: Tensor, b: Tensor, out: Tensor): void {
  const { A, B, batchShape, aBatch, bBatch } = geometry(a, b, out);
  const [M, K, N] = [A.rows, A.cols, B.cols];
  const ad = cpuData(a);
  const bd = cpuData(b);
  const o = cpuData(out);
  const acc = new Float64Array(N);
  forEachStrided(batchShape, [aBatch, bBatch], [a.offset, b.offset], (bi, offs) => {
    const aB = offs[0]!;
    const bB = offs[1]!;
    for (let m = 0; m < M; m++) {
      acc.fill(0);
      const aRow = aB + m * A.sR;
      for (let k = 0; k < K; k++) {
        const av = ad[aRow + k * A.sC]!;
        const bRow = bB + k * B.sR;
        for (let n = 0; n < N; n++) acc[n]! += av * bd[bRow + n * B.sC]!;
      }
      o.set(acc, (bi * M + m) * N);
    }
  });
}

// ---------------------------------------------------------------------------------------------
// GPU kernels.

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

/**
 * Writes a @ b into the contiguous `out` (shapes already checked) with the kernel the device's
 * picker chooses; with `bias` (1-D, one value per output column) out = a @ b + bias, the bias added
 * by the kernel to the f32 accumulator (the roundings of the product followed by an f32 add).
 */
export function productGpu(gpu: WebGPUBackend, a: Tensor, b: Tensor, out: Tensor, bias?: Tensor): void {
  const { A, B, batchShape, aBatch, bBatch } = geometry(a, b, out);
  const [M, K, N] = [A.rows, A.cols, B.cols];
  const nBatch = sizeOf(batchShape);
  const col = collapseDims(batchShape, [aBatch, bBatch, contiguousStrides(batchShape)]);
  let R = col.shape.length;
  let bShape = col.shape;
  let [aBS, bBS] = col.strides as [number[], number[]];
  if (R === 1 && bShape[0] === 1) ((R = 0), (bShape = []), (aBS = []), (bBS = []));
  // Batch rank 1 runs as rank 2 (a leading size-1 dim): one shader variant fewer to compile, which
  // matters on software adapters where a register-blocked kernel takes seconds to compile.
  if (R === 1) ((R = 2), (bShape = [1, ...bShape]), (aBS = [0, ...aBS]), (bBS = [0, ...bBS]));
  if (MATMUL_FIXED_WORDS + 3 * R + (bias ? MATMUL_BIAS_WORDS : 0) > PARAM_WORDS) throw new Error(`matmul: too many non-mergeable batch dims (${R})`);
  const caps = matmulDeviceCaps(gpu);
  const plan = (gpu.tuning.matmul.picker ?? pickMatmulConfig)(M, N, K, nBatch, caps);
  const bindings: Bindings = bias ? { A: a, B: b, C: out, Bias: bias } : { A: a, B: b, C: out };
  if (plan.kernel === 'simple') {
    const tilesM = Math.ceil(M / SIMPLE_TILE);
    const tilesN = Math.ceil(N / SIMPLE_TILE);
    const params = withBiasParams({ M, N, K, a_off: a.offset, b_off: b.offset, aSM: A.sR, aSK: A.sC, bSK: B.sR, bSN: B.sC, tilesM, tilesN, nbatch: nBatch, bshape: bShape, a_bstride: aBS, b_bstride: bBS }, bias);
    return gpu.run(matmulSimpleKernel, { batchRank: R, bias: !!bias }, { params, bindings, workgroups: tilesM * tilesN * nBatch });
  }
  if (plan.kernel === 'rows') {
    if (plan.WG > caps.maxInvocations) throw new Error(`matmul: rows plan with ${plan.WG} invocations exceeds the device limit ${caps.maxInvocations}`);
    const { TN } = plan;
    // vec4 B loads: unit stride along N, 4-aligned leading dim / offset / batch strides, N % 4 == 0.
    const vecB = TN % 4 === 0 && N % 4 === 0 && (B.sC === 1 || N === 1) && (B.sR % 4 === 0 || K === 1) && b.offset % 4 === 0 && bBS.every((x) => x % 4 === 0);
    // A transposed B (x @ w^T) cannot use vec4 loads here and runs ~2x slower; for anything but a
    // small product a contiguous copy of B costs less (O(K*N) vs O(M*N*K)). (A transposed A reads
    // cache lines as well as a contiguous one in this kernel: measured no gain from copying it.)
    // With few rows (M <= 64, e.g. a conv weight gradient gy @ cols^T) the copy costs more than
    // the product: read B in place with scalar loads, 2 columns per lane, all rows in one or two
    // workgroup row tiles (lavapipe, 16->16 3x3 conv at 16x16, batch 32: 20 ms -> 4.6 ms).
    const big = M * N * K * nBatch >= 64 * 64 * 64;
    if (!vecB && !b.isContiguous && M <= 64 && TN % 4 === 0 && big) {
      return dispatchRows(gpu, { ...plan, TM: M <= 4 ? M : M <= 16 ? 16 : 32, TN: 2 }, A, B, M, N, K, nBatch, R, bShape, aBS, bBS, bindings, false, bias);
    }
    if (!vecB && TN % 4 === 0 && N % 4 === 0 && !b.isContiguous && big) return withCopies(() => productGpu(gpu, a, contiguous(b), out, bias));
    return dispatchRows(gpu, plan, A, B, M, N, K, nBatch, R, bShape, aBS, bBS, bindings, vecB, bias);
  }
  const t = plan.tile;
  const err = tileConfigError(t) ?? (tileFits(t, caps, plan) ? null : `needs ${tiledThreads(t)} invocations and ${tiledSharedBytes(t, plan)} bytes of workgroup memory; the device allows ${caps.maxInvocations} and ${caps.maxWorkgroupStorage}`);
  if (err) throw new Error(`matmul: bad tile config ${JSON.stringify(plan)} from the config picker: ${err}`);
  // An in-place layout per operand, preferring one that allows vec4 loads.
  const lsA = layouts(A);
  const lsB = layouts(B);
  const la = lsA.find((l) => vecOk(A, l, aBS)) ?? lsA[0];
  const lb = lsB.find((l) => vecOk(B, l, bBS)) ?? lsB[0];
  // Strided in both matrix dims (rare: e.g. a stepped slice): multiply contiguous copies.
  if (!la || !lb) return withCopies(() => productGpu(gpu, la ? a : contiguous(a), lb ? b : contiguous(b), out, bias));
  const tilesM = Math.ceil(M / t.BM);
  const tilesN = Math.ceil(N / t.BN);
  const doubleBuffer = plan.doubleBuffer ?? false;
  const spec: MatmulTiledSpec = {
    ...t,
    aT: la.trans,
    bT: lb.trans,
    vecA: vecOk(A, la, aBS),
    vecB: vecOk(B, lb, bBS),
    vecC: N % 4 === 0,
    checked: M % t.BM !== 0 || N % t.BN !== 0 || K % t.BK !== 0,
    prefetch: doubleBuffer || (plan.prefetch ?? true),
    doubleBuffer,
    pad: plan.pad ?? false,
    groupM: Math.max(1, Math.floor(plan.groupM ?? 1)),
    batchRank: R,
    bias: !!bias,
  };
  // The leading dimension goes in the non-unit stride, 1 in the unit one.
  const params = withBiasParams({
    M, N, K, a_off: a.offset, b_off: b.offset,
    aSM: la.trans ? 1 : la.ld, aSK: la.trans ? la.ld : 1, bSK: lb.trans ? 1 : lb.ld, bSN: lb.trans ? lb.ld : 1,
    tilesM, tilesN, nbatch: nBatch, bshape: bShape, a_bstride: aBS, b_bstride: bBS,
  }, bias);
  gpu.run(matmulTiledKernel, spec, { params, bindings, workgroups: tilesM * tilesN * nBatch });
}

type RowsPlan = Extract<MatmulPlan, { kernel: 'rows' }>;
type Bindings = { A: Tensor; B: Tensor; C: Tensor; Bias?: Tensor };
type Params = Record<string, number | number[]>;

/** Adds the bias view's offset and stride (the epilogue's parameters) when there is a bias. */
function withBiasParams<P extends Params>(params: P, bias: Tensor | undefined): P {
  if (bias) {
    const p: Params = params;
    p.bias_off = bias.offset;
    p.bias_stride = bias.strides[0]!;
  }
  return params;
}

function dispatchRows(gpu: WebGPUBackend, plan: RowsPlan, A: Operand, B: Operand, M: number, N: number, K: number, nBatch: number, R: number, bShape: number[], aBS: number[], bBS: number[], bindings: Bindings, vecB: boolean, bias: Tensor | undefined): void {
  const { WG, TM, TN } = plan;
  const subgroups = (plan.subgroups ?? true) && gpu.features.has('subgroups');
  const tilesM = Math.ceil(M / TM);
  const tilesN = Math.ceil(N / (WG * TN));
  const params = withBiasParams({ M, N, K, a_off: A.t.offset, b_off: B.t.offset, aSM: A.sR, aSK: A.sC, bSK: B.sR, bSN: B.sC, tilesM, tilesN, nbatch: nBatch, bshape: bShape, a_bstride: aBS, b_bstride: bBS }, bias);
  gpu.run(matmulRowsKernel, { WG, TM, TN, vecB, subgroups, batchRank: R, bias: !!bias }, { params, bindings, workgroups: tilesM * tilesN * nBatch });
}
