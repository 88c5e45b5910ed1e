/**
 * Matrix multiplication with NumPy/PyTorch semantics (1-D operands promoted, batch dims
 * broadcast) and `linear` (x @ w^T + b, PyTorch's Linear convention): their declarations, the CPU
 * reference and the GPU kernels (shaders/matmul.ts, chosen per problem by the device's picker,
 * engine/ops/matmul-plan.ts), and the gradient rule
 *   dA = g @ B^T,  dB = A^T @ g   (unbroadcast by matmulSumTo: summed batch dims reduced in the GEMM),
 * built from matmul/transpose so grad-of-grad works. Also matmulRowBias (a @ b + a bias per row, a
 * convolution's columns route). Transposed views are read in place by the
 * kernels (no contiguous() copies), so the gradient's `transpose()` inputs cost nothing extra.
 */
import type { CpuBackend } from '../cpu/backend.js';
import { cpuData, forEachStrided } from '../cpu/strided.js';
import { noGrad } from '../grad-mode.js';
import { PARAM_WORDS, type Kernel } from '../kernel.js';
import type { Storage } from '../backend.js';
import { defineOp } from '../op.js';
import { tidy } from '../scope.js';
import { broadcastStrides, collapseDims, contiguousStrides, fmtShape, shapesEqual, sizeOf } from '../shape.js';
import { isTensor, Tensor } from '../tensor.js';
import type { WebGPUBackend } from '../webgpu/backend.js';
import { MATMUL_FIXED_WORDS, matmulBiasWords, matmulRowsKernel, matmulSimpleKernel, matmulSumWords, matmulTiledKernel, SIMPLE_TILE, SPLIT_SUM_WG, splitSumKernel, tileConfigError, tiledThreads, type MatmulBias, type MatmulVariant } from '../../shaders/matmul.js';
import { matmulDeviceCaps, pickMatmulConfig, sumSplits, tiledSharedBytes, tileFits, type MatmulPlan } from './matmul-plan.js';
import { elementwise } from './elementwise.js';
import { sum, sumTo } from './reduce.js';
import { contiguous, expand, reshape, transpose } from './movement.js';

export { tileConfigError, type MatmulTileConfig } from '../../shaders/matmul.js';
export { MATMUL_TILES, matmulDeviceCaps, pickMatmulConfig, sumSplits, tiledSharedBytes, type MatmulConfigPicker, type MatmulDeviceCaps, type MatmulPlan, type MatmulTiledOptions } from './matmul-plan.js';

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

/** The geometry of a @ b, whose shape is `full` (1-D a is a row, 1-D b a column). */
function geometry(a: Tensor, b: Tensor, full: readonly number[]): Geometry {
  const batchShape = full.slice(0, full.length - (a.rank === 1 ? 0 : 1) - (b.rank === 1 ? 0 : 1));
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
const incompatible = (a: readonly number[], b: readonly number[], why: string) => new Error(`matmul: shapes ${fmtShape(a)} and ${fmtShape(b)} are incompatible (${why})`);

export function matmulShape(a: readonly number[], b: readonly number[]): number[] {
  const K1 = a[a.length - 1]!;
  const K2 = b.length === 1 ? b[0]! : b[b.length - 2]!;
  if (K1 !== K2) throw incompatible(a, b, `inner dims ${K1} vs ${K2}`);
  const ab = a.length >= 2 ? a.slice(0, -2) : [];
  const bb = b.length >= 2 ? b.slice(0, -2) : [];
  const n = Math.max(ab.length, bb.length);
  const batch: number[] = [];
  for (let i = 0; i < n; i++) {
    const da = ab[ab.length - n + i] ?? 1;
    const db = bb[bb.length - n + i] ?? 1;
    if (da !== db && da !== 1 && db !== 1) throw incompatible(a, b, `batch dims ${fmtShape(ab)} and ${fmtShape(bb)} do not broadcast`);
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
    const ga = a!.requiresGrad ? reshape(matmulSumTo(g2, transpose(b2), a2.shape), a!.shape) : null;
    const gb = b!.requiresGrad ? reshape(matmulSumTo(transpose(a2), g2, b2.shape), b!.shape) : null;
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

/** Checks that `shape` is the product shape `full` with some batch dims summed (size 1, or dropped from the front). */
function checkSumShape(full: readonly number[], shape: readonly number[]): void {
  const lead = full.length - shape.length;
  const ok = lead >= 0 && shape.length >= 2 && shape.every((d, i) => d === full[lead + i] || (i < shape.length - 2 && d === 1));
  if (!ok) throw new Error(`matmulSumTo: cannot sum the product's shape ${fmtShape(full)} to ${fmtShape(shape)} (only batch dims are summed)`);
}

const matmulSumOp = defineOp<{ shape: number[] }>({
  name: 'matmul_sum',
  outputs: ([a, b], { shape }) => {
    checkOperand('matmulSumTo', a, 'a');
    checkOperand('matmulSumTo', b, 'b');
    if (a.rank < 2 || b.rank < 2) throw new Error(`matmulSumTo: operands must be matrices (rank >= 2), got ${fmtShape(a.shape)} and ${fmtShape(b.shape)}`);
    checkSumShape(matmulShape(a.shape, b.shape), shape);
    return [{ shape, dtype: 'f32' }];
  },
  kernels: {
    cpu: (cpu, { inputs: [a, b], outputs: [out] }) => productCpu(cpu, a!, b!, out!),
    webgpu: (gpu, { inputs: [a, b], outputs: [out] }) => productGpu(gpu, a!, b!, out!),
  },
  // The output gradient is read broadcast (a stride-0 view) over the summed dims.
  grad: (g, { inputs: [a, b] }) => {
    const gf = expand(g, matmulShape(a!.shape, b!.shape));
    return [a!.requiresGrad ? matmulSumTo(gf, transpose(b!), a!.shape) : null, b!.requiresGrad ? matmulSumTo(transpose(a!), gf, b!.shape) : null];
  },
});

/**
 * sumTo(a @ b, shape) for matrices a, b (rank >= 2) in one GEMM: the summed batch dims (size 1 in
 * `shape`, or dropped from its front) are reduced inside the kernel's accumulation, as one
 * reduction of K times their size, instead of per-product outputs followed by a sum. This is the
 * gradient of an operand broadcast over batch dims (a conv's weight, shared by the images).
 */
export function matmulSumTo(a: Tensor, b: Tensor, shape: readonly number[]): Tensor {
  if (shapesEqual(matmulShape(a.shape, b.shape), shape)) return matmul(a, b);
  return matmulSumOp([a, b], { shape: [...shape] })[0]!;
}

const matmulRowBiasOp = defineOp({
  name: 'matmul_row_bias',
  outputs: ([a, b, bias]) => {
    checkOperand('matmulRowBias', a, 'a');
    checkOperand('matmulRowBias', b, 'b');
    checkOperand('matmulRowBias', bias, 'bias');
    if (a.rank < 2 || b.rank < 2) throw new Error(`matmulRowBias: operands must be matrices (rank >= 2), got ${fmtShape(a.shape)} and ${fmtShape(b.shape)}`);
    const shape = matmulShape(a.shape, b.shape);
    const rows = shape.slice(0, -1);
    const lead = rows.length - bias.rank;
    if (lead < 0 || bias.shape.some((d, i) => d !== rows[lead + i] && !(d === 1 && i < bias.rank - 1))) {
      throw new Error(`matmulRowBias: bias ${fmtShape(bias.shape)} does not broadcast to the product's rows ${fmtShape(rows)} (one value per row)`);
    }
    return [{ shape, dtype: 'f32' }];
  },
  kernels: {
    cpu: (cpu, { inputs: [a, b, bias], outputs: [y] }) => {
      productCpu(cpu, a!, b!, y!);
      const N = y!.shape[y!.rank - 1]!;
      const rows = y!.shape.slice(0, -1);
      const bs = broadcastStrides(bias!.shape, bias!.strides, rows);
      const o = cpuData(y!);
      const bd = cpuData(bias!);
      forEachStrided(rows, [bs], [bias!.offset], (r, offs) => {
        for (let n = 0; n < N; n++) o[r * N + n]! += bd[offs[0]!]!;
      });
    },
    webgpu: (gpu, { inputs: [a, b, bias], outputs: [y] }) => productGpu(gpu, a!, b!, y!, { t: bias!, along: 'rows' }),
  },
  grad: (g, { inputs: [a, b, bias] }) => [
    a!.requiresGrad ? matmulSumTo(g, transpose(b!), a!.shape) : null,
    b!.requiresGrad ? matmulSumTo(transpose(a!), g, b!.shape) : null,
    bias!.requiresGrad ? reshape(sumTo(g, [...bias!.shape, 1]), bias!.shape) : null,
  ],
});

/**
 * a @ b + bias[..., None] for matrices a, b (rank >= 2): one bias value per output row (bias
 * [..., M], its leading dims broadcast against the product's batch dims), added by the kernel where
 * it stores the result (one dispatch, the same roundings as the product followed by an add). A
 * convolution's columns route: W @ unfold(x) + b, the bias per output channel.
 */
export function matmulRowBias(a: Tensor, b: Tensor, bias: Tensor): Tensor {
  return matmulRowBiasOp([a, b, bias])[0]!;
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
    productGpu(gpu, x2, wt, y2, b && { t: b, along: 'cols' });
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

/** a @ b into `out`, which may sum batch dims of the full product away (see productGpu). */
function productCpu(_cpu: CpuBackend, a: Tensor, b: Tensor, out: Tensor): void {
  const full = matmulShape(a.shape, b.shape);
  const { A, B, batchShape, aBatch, bBatch } = geometry(a, b, full);
  const [M, K, N] = [A.rows, A.cols, B.cols];
  const outBatch = shapesEqual(out.shape, full) ? batchShape : out.shape.slice(0, -2);
  // Output batch strides in matrices (0 along summed dims).
  const oBatch = broadcastStrides(outBatch, contiguousStrides(outBatch), batchShape);
  const ad = cpuData(a);
  const bd = cpuData(b);
  const res = new Float64Array(out.size);
  forEachStrided(batchShape, [aBatch, bBatch, oBatch], [a.offset, b.offset, 0], (_bi, offs) => {
    const aB = offs[0]!;
    const bB = offs[1]!;
    for (let m = 0; m < M; m++) {
      const aRow = aB + m * A.sR;
      const oRow = (offs[2]! * M + m) * N;
      for (let k = 0; k < K; k++) {
        const av = ad[aRow + k * A.sC]!;
        const bRow = bB + k * B.sR;
        for (let n = 0; n < N; n++) res[oRow + n]! += av * bd[bRow + n * B.sC]!;
      }
    }
  });
  cpuData(out).set(res);
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

/** A bias the kernel adds to the f32 accumulator where it stores an output (one f32 add, as a separate add would do). */
export interface ProductBias {
  /** 'cols': 1-D, one value per output column (linear); 'rows': [..., M], one value per output row, its leading dims broadcast against the product's batch dims (a conv's output channels). */
  t: Tensor;
  along: MatmulBias;
}

/**
 * The batch dims of a product, collapsed: those the output keeps (R dims, nBatch products) and
 * those it sums (S dims, nSum products per output), with the operands' strides along each.
 */
interface Batches {
  R: number;
  shape: number[];
  aBS: number[];
  bBS: number[];
  /** A 'rows' bias's strides along the kept dims. */
  biasBS: number[];
  nBatch: number;
  S: number;
  sShape: number[];
  aSS: number[];
  bSS: number[];
  nSum: number;
}

const pick = (st: readonly number[], idx: readonly number[]) => idx.map((i) => st[i]!);

/**
 * Splits the batch dims of a product into the dims the output's batch dims `outBatch` keep and
 * the dims it sums (size 1 in `outBatch`, or missing from its front), each group collapsed.
 */
function batches(g: Geometry, outBatch: readonly number[], rowBias: Tensor | undefined): Batches {
  const { batchShape, aBatch, bBatch } = g;
  const n = batchShape.length;
  const lead = n - outBatch.length;
  const kept: number[] = [];
  const summed: number[] = [];
  for (let i = 0; i < n; i++) {
    const o = i < lead ? 1 : outBatch[i - lead]!;
    (o === batchShape[i] ? kept : summed).push(i);
  }
  const keptShape = pick(batchShape, kept);
  const biasBatch = rowBias ? broadcastStrides(rowBias.shape.slice(0, -1), rowBias.strides.slice(0, -1), batchShape) : new Array<number>(n).fill(0);
  const col = collapseDims(keptShape, [pick(aBatch, kept), pick(bBatch, kept), contiguousStrides(keptShape), pick(biasBatch, kept)]);
  let R = col.shape.length;
  let shape = col.shape;
  let [aBS, bBS, , biasBS] = col.strides as [number[], number[], number[], number[]];
  if (R === 1 && shape[0] === 1) ((R = 0), (shape = []), (aBS = []), (bBS = []), (biasBS = []));
  // Batch rank 1 runs as rank 2 (a leading size-1 dim): one shader variant fewer to compile, which
  // matters on software adapters where a register-blocked kernel takes seconds to compile.
  if (R === 1) ((R = 2), (shape = [1, ...shape]), (aBS = [0, ...aBS]), (bBS = [0, ...bBS]), (biasBS = [0, ...biasBS]));
  const sumShape = pick(batchShape, summed);
  const sc = sumShape.length ? collapseDims(sumShape, [pick(aBatch, summed), pick(bBatch, summed)]) : { shape: [], strides: [[], []] };
  const [aSS, bSS] = sc.strides as [number[], number[]];
  return { R, shape, aBS, bBS, biasBS, nBatch: sizeOf(keptShape), S: sc.shape.length, sShape: sc.shape, aSS, bSS, nSum: sizeOf(sumShape) };
}

/**
 * Writes a @ b into the contiguous `out` (shapes already checked) with the kernel the device's
 * picker chooses. `out` may drop or keep at size 1 some batch dims of the full product (the
 * reduction of a broadcast operand's gradient): those are summed inside the same GEMM, the summed
 * products accumulated into the same registers (a split of their range adds a second kernel on
 * GPUs, matmul-plan.ts sumSplits). With `bias` the kernel adds it to the accumulator.
 */
export function productGpu(gpu: WebGPUBackend, a: Tensor, b: Tensor, out: Tensor, bias?: ProductBias): void {
  const full = matmulShape(a.shape, b.shape);
  const g = geometry(a, b, full);
  const { A, B } = g;
  const [M, K, N] = [A.rows, A.cols, B.cols];
  // A summed product's operands and output are matrices (rank >= 2) with the same last two dims.
  const outBatch = shapesEqual(out.shape, full) ? g.batchShape : out.shape.slice(0, -2);
  const bt = batches(g, outBatch, bias?.along === 'rows' ? bias.t : undefined);
  const { R, nBatch, S, nSum } = bt;
  if (S > 0 && bias) throw new Error('matmul: a bias epilogue cannot be combined with summed batch dims');
  if (MATMUL_FIXED_WORDS + 3 * R + matmulBiasWords(bias?.along, R) + matmulSumWords(S) > PARAM_WORDS) throw new Error(`matmul: too many non-mergeable batch dims (${R} kept, ${S} summed)`);
  const caps = matmulDeviceCaps(gpu);
  // The picker sees the products one by one (nBatch * nSum of them); sumSplits decides how the summed ones share workgroups.
  const plan = (gpu.tuning.matmul.picker ?? pickMatmulConfig)(M, N, K, nBatch * nSum, caps);
  const tile = planTile(plan);
  const splits = S > 0 ? splitCount(nSum, plan.sumSplits ?? sumSplits(M, N, K, nBatch, nSum, tile, caps)) : 1;
  const parts = splits > 1 ? new Tensor(gpu.alloc(splits * out.size, 'f32') as Storage, [splits, out.size], 'f32', 'matmul') : null;
  try {
    const run: Run = { gpu, a, b, g, bt, bias, splits, bindings: { A: a, B: b, C: parts ?? out, ...(bias ? { Bias: bias.t } : {}) } };
    // (A plan that needs copies of the operands multiplies them by a call of its own, into `out`.)
    if (dispatchPlan(run, plan, M, N, K, out) && parts) gpu.run(splitSumKernel, undefined, { params: { n: out.size, splits }, bindings: { parts, out }, workgroups: Math.ceil(out.size / SPLIT_SUM_WG) });
  } finally {
    parts?.dispose();
  }
}

/** The summed products per split run, and the split count that gives. */
function splitCount(nSum: number, splits: number): number {
  const per = Math.ceil(nSum / Math.max(1, Math.floor(splits)));
  return Math.ceil(nSum / per);
}

/** Rows x columns of the output block one workgroup of the plan computes. */
function planTile(plan: MatmulPlan): [number, number] {
  if (plan.kernel === 'tiled') return [plan.tile.BM, plan.tile.BN];
  if (plan.kernel === 'rows') return [plan.TM, plan.WG * plan.TN];
  return [SIMPLE_TILE, SIMPLE_TILE];
}

/** One product's dispatch: the operands, their batches, the bias and the split of the summed dims. */
interface Run {
  gpu: WebGPUBackend;
  a: Tensor;
  b: Tensor;
  g: Geometry;
  bt: Batches;
  bias: ProductBias | undefined;
  splits: number;
  bindings: Bindings;
}

/** Multiplies the copies `copies` makes into `out` (made inside withCopies' scope, which frees them once the product is recorded); false for dispatchPlan. */
function redo(run: Run, out: Tensor, copies: () => [Tensor, Tensor]): false {
  withCopies(() => productGpu(run.gpu, ...copies(), out, run.bias));
  return false;
}

/** Dispatches the plan's kernel into the run's target; false when it multiplied copies into `out` instead. */
function dispatchPlan(run: Run, plan: MatmulPlan, M: number, N: number, K: number, out: Tensor): boolean {
  const { gpu, a, b, bt } = run;
  const { A, B } = run.g;
  const { aBS, bBS, aSS, bSS } = bt;
  const caps = matmulDeviceCaps(gpu);
  if (plan.kernel === 'simple') return dispatch(run, matmulSimpleKernel, {}, [SIMPLE_TILE, SIMPLE_TILE], { aSM: A.sR, aSK: A.sC, bSK: B.sR, bSN: B.sC }, M, N, K);
  if (plan.kernel === 'rows') {
    if (plan.WG > caps.maxInvocations) throw new Error(`matmul: rows plan with ${plan.WG} invocations exceeds the device limit ${caps.maxInvocations}`);
    const { TN } = plan;
    // vec4 B loads: unit stride along N, 4-aligned leading dim / offset / batch strides, N % 4 == 0.
    const vecB = TN % 4 === 0 && N % 4 === 0 && (B.sC === 1 || N === 1) && (B.sR % 4 === 0 || K === 1) && b.offset % 4 === 0 && [...bBS, ...bSS].every((x) => x % 4 === 0);
    // A transposed B (x @ w^T) cannot use vec4 loads here and runs ~2x slower; for anything but a
    // small product a contiguous copy of B costs less (O(K*N) vs O(M*N*K)). (A transposed A reads
    // cache lines as well as a contiguous one in this kernel: measured no gain from copying it.)
    // With few rows (M <= 64, e.g. a conv weight gradient gy @ cols^T) the copy costs more than
    // the product: read B in place with scalar loads, 2 columns per lane, all rows in one or two
    // workgroup row tiles (lavapipe, 16->16 3x3 conv at 16x16, batch 32: 20 ms -> 4.6 ms).
    const big = M * N * K * bt.nBatch * bt.nSum >= 64 * 64 * 64;
    if (!vecB && !b.isContiguous && M <= 64 && TN % 4 === 0 && big) return dispatchRows(run, { ...plan, TM: M <= 4 ? M : M <= 16 ? 16 : 32, TN: 2 }, M, N, K, false);
    if (!vecB && TN % 4 === 0 && N % 4 === 0 && !b.isContiguous && big) return redo(run, out, () => [a, contiguous(b)]);
    return dispatchRows(run, plan, M, N, K, vecB);
  }
  const t = plan.tile;
  const err = tileConfigError(t) ?? (tileFits(t, caps, plan) ? null : `needs ${tiledThreads(t)} invocations and ${tiledSharedBytes(t, plan)} bytes of workgroup memory; the device allows ${caps.maxInvocations} and ${caps.maxWorkgroupStorage}`);
  if (err) throw new Error(`matmul: bad tile config ${JSON.stringify(plan)} from the config picker: ${err}`);
  // An in-place layout per operand, preferring one that allows vec4 loads.
  const lsA = layouts(A);
  const lsB = layouts(B);
  const aStrides = [...aBS, ...aSS];
  const bStrides = [...bBS, ...bSS];
  const la = lsA.find((l) => vecOk(A, l, aStrides)) ?? lsA[0];
  const lb = lsB.find((l) => vecOk(B, l, bStrides)) ?? lsB[0];
  // Strided in both matrix dims (rare: e.g. a stepped slice): multiply contiguous copies.
  if (!la || !lb) return redo(run, out, () => [la ? a : contiguous(a), lb ? b : contiguous(b)]);
  const doubleBuffer = plan.doubleBuffer ?? false;
  const spec = {
    ...t,
    aT: la.trans,
    bT: lb.trans,
    vecA: vecOk(A, la, aStrides),
    vecB: vecOk(B, lb, bStrides),
    vecC: N % 4 === 0,
    checked: M % t.BM !== 0 || N % t.BN !== 0 || K % t.BK !== 0,
    prefetch: doubleBuffer || (plan.prefetch ?? true),
    doubleBuffer,
    pad: plan.pad ?? false,
    groupM: Math.max(1, Math.floor(plan.groupM ?? 1)),
  };
  // The leading dimension goes in the non-unit stride, 1 in the unit one.
  const strides = { aSM: la.trans ? 1 : la.ld, aSK: la.trans ? la.ld : 1, bSK: lb.trans ? 1 : lb.ld, bSN: lb.trans ? lb.ld : 1 };
  return dispatch(run, matmulTiledKernel, spec, [t.BM, t.BN], strides, M, N, K);
}

type RowsPlan = Extract<MatmulPlan, { kernel: 'rows' }>;
type Bindings = Record<string, Tensor>;
type Params = Record<string, number | number[]>;
type MatrixStrides = { aSM: number; aSK: number; bSK: number; bSN: number };

/**
 * Runs one kernel of the family over the tile grid (block bm x bn) of every kept batch and split,
 * with the parameters every variant shares: sizes, offsets, strides, batches, bias, summed dims.
 */
function dispatch<V extends object>(run: Run, kernel: Kernel<V & MatmulVariant>, spec: V, [bm, bn]: [number, number], st: MatrixStrides, M: number, N: number, K: number): true {
  const { bt, bias, splits } = run;
  const tilesM = Math.ceil(M / bm);
  const tilesN = Math.ceil(N / bn);
  const params: Params = { M, N, K, a_off: run.a.offset, b_off: run.b.offset, ...st, tilesM, tilesN, nbatch: bt.nBatch, bshape: bt.shape, a_bstride: bt.aBS, b_bstride: bt.bBS };
  if (bt.S > 0) Object.assign(params, { nsum: bt.nSum, sum_per: Math.ceil(bt.nSum / splits), splits, sshape: bt.sShape, a_sstride: bt.aSS, b_sstride: bt.bSS });
  if (bias) {
    params.bias_off = bias.t.offset;
    params.bias_stride = bias.t.strides[bias.t.rank - 1]!;
    if (bias.along === 'rows') params.bias_bstride = bt.biasBS;
  }
  const variant = Object.assign({}, spec, { batchRank: bt.R, bias: bias?.along, sumRank: bt.S }) as V & MatmulVariant;
  run.gpu.run(kernel, variant, { params, bindings: run.bindings, workgroups: tilesM * tilesN * bt.nBatch * splits });
  return true;
}

function dispatchRows(run: Run, plan: RowsPlan, M: number, N: number, K: number, vecB: boolean): true {
  const { WG, TM, TN } = plan;
  const subgroups = (plan.subgroups ?? true) && run.gpu.features.has('subgroups');
  const { A, B } = run.g;
  return dispatch(run, matmulRowsKernel, { WG, TM, TN, vecB, subgroups }, [TM, WG * TN], { aSM: A.sR, aSK: A.sC, bSK: B.sR, bSN: B.sC }, M, N, K);
}
