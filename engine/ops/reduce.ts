/**
 * Reductions over any axes with keepdim. sum/max/min/argmax/argmin are declared ops over one
 * strided kernel; mean, var and logsumexp are compositions (so their gradients come for free).
 */
import { cpuData, forEachStrided } from '../cpu/strided.js';
import { DTYPE_INFO } from '../dtype.js';
import { composite } from '../composite.js';
import { defineOp, type Op, type OpArgs } from '../op.js';
import { checkOptions } from '../options.js';
import { collapseDims, fmtShape, normAxes, reducedShape, shapesEqual, sizeOf } from '../shape.js';
import type { Storage } from '../backend.js';
import type { Tensor } from '../tensor.js';
import type { CpuBackend } from '../cpu/backend.js';
import type { WebGPUBackend } from '../webgpu/backend.js';
import { reduceKernel, REDUCE_WG, type ReduceKind } from '../../shaders/reduce.js';
import { add, div, eq, mul, sub } from './binary.js';
import { exp, log, square } from './unary.js';
import { detach, expand, reshape } from './movement.js';

export type Axes = number | readonly number[] | undefined;

/** Longest sequential fold per thread before the reduced range is split over several groups. */
const SEQ_MAX = 32;
/** Elements per thread in a pass whose range was split. */
const SEQ_SPLIT = 16;

function pow2ceil(n: number): number {
  let p = 1;
  while (p < n) p *= 2;
  return p;
}

export interface ReducePlan {
  /** Threads per group. */
  tpo: number;
  /** Lane layout: consecutive threads take consecutive outputs (else lanes of one output). */
  outer: boolean;
  /** Chunks the reduced range is split into (1 = this pass writes the final result). */
  nSplit: number;
  /** Reduced elements per chunk. */
  chunk: number;
}

/**
 * Invocations per workgroup of a reduction or softmax pass over rows of `n` elements (tuning.reduce
 * forces one). GPUs: 256. Software adapters, where every barrier of the shared-memory tree costs
 * more than a longer sequential fold: with contiguous rows (`inner`) the smallest workgroup (from
 * 8, one SIMD group) that still folds a row in one pass of at most `seqMax` elements per lane, or
 * 8 where the row takes several passes at any size; with strided rows 256, as on GPUs. Measured on
 * lavapipe, workgroups of 8 against 256 (`COMPARE_WG=8,256 BENCH_SMALL=1 npx tsx bench/reductions.ts`):
 * sum [16384, 64] axis 1 7.6 vs 13.7 ms, softmax [16384, 64] 15.6 vs 22.7, crossEntropy fwd+bwd
 * [512, 1000] 28.6 vs 38.4, sum of 2^20 5.9 vs 7.0; but softmax [256, 4096] 17.2 vs 10.5 (8 lanes
 * need a second pass there) and sum [256, 4096] axis 0 4.0 vs 2.8 (strided rows).
 */
export function rowReduceWorkgroup(gpu: WebGPUBackend, n: number, inner: boolean, seqMax: number): number {
  const forced = gpu.tuning.reduce.workgroup;
  if (forced !== null) {
    if (!Number.isInteger(forced) || forced < 8 || forced > REDUCE_WG || (forced & (forced - 1)) !== 0) {
      throw new RangeError(`reduce: tuning.reduce.workgroup must be a power of two from 8 to ${REDUCE_WG}, got ${forced}`);
    }
    return forced;
  }
  if (gpu.softwareAdapter === null || !inner) return REDUCE_WG;
  const onePass = pow2ceil(Math.ceil(n / seqMax));
  return onePass <= 8 || onePass > REDUCE_WG ? 8 : onePass;
}

/**
 * Longest contiguous row of a reduction or softmax that one invocation folds alone, in one pass
 * (lanePerRow). The choice depends on the row's length only, never on how many rows there are, so
 * a row gets the same bits in a batch of any size (evaluations accumulated batch by batch rely on it).
 */
export const LANE_ROW_MAX = 64;

/**
 * Whether short rows are each folded by one invocation (tuning.reduce.lanePerRow; by default on
 * software adapters with the automatic workgroup). A tree step costs a barrier there, which
 * outweighs the longer fold. Measured on lavapipe, one lane per row against the per-row workgroup
 * of 8 (interleaved in one process; `COMPARE_WG=auto,tree` in bench/reductions.ts): sum over axis
 * 1 of [16384, 64] 2.1 vs 7.4 ms, of [65536, 16] 2.7 vs 12.0; softmax [16384, 64] 5.1 vs 12.7 ms.
 * Longer rows gained less or lost (softmax [4096, 256] 13.2 vs 9.0: two passes), so they keep the tree.
 */
export function lanePerRow(gpu: WebGPUBackend): boolean {
  return gpu.tuning.reduce.lanePerRow ?? (gpu.softwareAdapter !== null && gpu.tuning.reduce.workgroup === null);
}

/**
 * How one pass reduces nOut outputs of nRed elements each. `inner`: the reduced elements of one
 * output are the contiguous ones, so a group's threads sit side by side; otherwise the kept dims
 * are, and consecutive threads take consecutive outputs (coalesced loads), with up to 8 lanes per
 * output when there are few outputs. Sequential folds are kept short (accuracy and parallelism):
 * longer ranges are split into chunks of tpo * SEQ_SPLIT and reduced again. With `oneLane`
 * (lanePerRow), a contiguous row of at most LANE_ROW_MAX elements is one thread's, in one pass.
 */
export function reducePlan(nOut: number, nRed: number, inner: boolean, wg = REDUCE_WG, oneLane = false): ReducePlan {
  if (inner && oneLane && nRed <= LANE_ROW_MAX) return { tpo: 1, outer: false, nSplit: 1, chunk: Math.max(nRed, 1) };
  const tpo = inner
    ? Math.min(wg, pow2ceil(Math.ceil(nRed / 4)))
    : Math.min(8, pow2ceil(Math.ceil(wg / nOut)), pow2ceil(Math.ceil(nRed / SEQ_SPLIT)));
  const outer = !inner;
  if (Math.ceil(nRed / tpo) <= SEQ_MAX) return { tpo, outer, nSplit: 1, chunk: Math.max(nRed, 1) };
  const chunk = tpo * SEQ_SPLIT;
  return { tpo, outer, nSplit: Math.ceil(nRed / chunk), chunk };
}

interface ReduceAttrs {
  /** Sorted, distinct, non-negative axes to reduce. */
  axes: number[];
  keepdim: boolean;
}

const isArgKind = (k: ReduceKind) => k === 'argmax' || k === 'argmin';

/** One pass's input: the tensor itself, or the previous pass's partials (and their indices). */
interface ReduceSource {
  x: Tensor | Storage;
  /** Partials of the previous pass (freed once this pass is recorded). */
  partials: Storage | null;
  idx: Storage | null;
  offset: number;
  keptShape: number[];
  keptStrides: number[];
  redShape: number[];
  redStrides: number[];
  inner: boolean;
}

function reduceGpu(kind: ReduceKind, gpu: WebGPUBackend, { inputs: [x], outputs: [out], attrs }: OpArgs<ReduceAttrs>): void {
  const isArg = isArgKind(kind);
  const axes = attrs.axes;
  const kept = x!.shape.map((_, i) => i).filter((i) => !axes.includes(i));
  const nOut = out!.size;
  const k = collapseDims(kept.map((i) => x!.shape[i]!), [kept.map((i) => x!.strides[i]!)]);
  // Reduced dims in any order for sum/max/min: largest stride first lets more of them merge and
  // makes the fastest-varying one the densest. Arg-reductions keep the row-major index order.
  const red = [...axes];
  if (!isArg) red.sort((a, b) => Math.abs(x!.strides[b]!) - Math.abs(x!.strides[a]!));
  const r = collapseDims(red.map((i) => x!.shape[i]!), [red.map((i) => x!.strides[i]!)]);
  const keptStrides = k.strides[0]!;
  const redStrides = r.strides[0]!;
  const noKept = k.shape.length === 1 && k.shape[0] === 1;
  const minStride = (ss: number[]) => Math.min(...ss.map((v) => (v === 0 ? Infinity : Math.abs(v))));
  let src: ReduceSource = {
    x: x!,
    partials: null,
    idx: null,
    offset: x!.offset,
    keptShape: k.shape,
    keptStrides,
    redShape: r.shape,
    redStrides,
    inner: noKept || minStride(redStrides) < minStride(keptStrides),
  };
  let curRed = sizeOf(axes.map((a) => x!.shape[a]!));
  const inType = DTYPE_INFO[x!.dtype].wgsl;
  const oneLane = lanePerRow(gpu);
  for (;;) {
    const wg = rowReduceWorkgroup(gpu, curRed, src.inner, SEQ_MAX);
    const plan = reducePlan(nOut, curRed, src.inner, wg, oneLane);
    const partial = plan.nSplit > 1;
    const nGroups = nOut * plan.nSplit;
    const dst = partial ? gpu.alloc(nGroups, x!.dtype) : null;
    const dstIdx = partial && isArg ? gpu.alloc(nGroups, 'i32') : null;
    const outType = partial ? inType : DTYPE_INFO[out!.dtype].wgsl;
    const argIn = src.idx !== null;
    // Two reduced dims in one chunk, the inner one at least a group wide: nested loops, no
    // per-element index division (bias gradients sum(gy, [0, 2, 3]) are this case).
    const nested = src.redShape.length === 2 && !partial && src.redShape[1]! >= plan.tpo;
    const variant = { kind, inType, outType, keptRank: src.keptShape.length, redRank: src.redShape.length, tpo: plan.tpo, outer: plan.outer, argIn, partial, nested, wg };
    const bindings: Record<string, Tensor | Storage> = { x: src.x, out: dst ?? out! };
    if (src.idx) bindings.xi = src.idx;
    if (dstIdx) bindings.outi = dstIdx;
    gpu.run(reduceKernel, variant, {
      params: {
        n_groups: nGroups,
        n_red: curRed,
        n_split: plan.nSplit,
        chunk: plan.chunk,
        n_out: nOut,
        offset: src.offset,
        kept_shape: src.keptShape,
        kept_strides: src.keptStrides,
        red_shape: src.redShape,
        red_strides: src.redStrides,
      },
      bindings,
      workgroups: Math.ceil((nGroups * plan.tpo) / wg),
    });
    if (src.partials) gpu.free(src.partials);
    if (src.idx) gpu.free(src.idx);
    if (!dst) return;
    // The partials are a contiguous [nSplit, nOut] (outer layout) or [nOut, nSplit] buffer.
    const outerSplit = plan.outer;
    src = {
      x: dst,
      partials: dst,
      idx: dstIdx,
      offset: 0,
      keptShape: [nOut],
      keptStrides: [outerSplit ? 1 : plan.nSplit],
      redShape: [plan.nSplit],
      redStrides: [outerSplit ? nOut : 1],
      inner: !outerSplit || nOut === 1,
    };
    curRed = plan.nSplit;
  }
}

/** The float64-capable reference: one sequential fold per output, in row-major order. */
function reduceCpu(kind: ReduceKind, _b: CpuBackend, { inputs: [x], outputs: [out], attrs: { axes } }: OpArgs<ReduceAttrs>): void {
  const isArg = isArgKind(kind);
  const kept = x!.shape.map((_, i) => i).filter((i) => !axes.includes(i));
  const redShape = axes.map((i) => x!.shape[i]!);
  const redStrides = axes.map((i) => x!.strides[i]!);
  const src = cpuData(x!);
  const o = cpuData(out!);
  const isMax = kind === 'max' || kind === 'argmax';
  forEachStrided(kept.map((i) => x!.shape[i]!), [kept.map((i) => x!.strides[i]!)], [x!.offset], (oi, ko) => {
    let acc = kind === 'sum' ? 0 : NaN;
    let ai = -1;
    forEachStrided(redShape, [redStrides], [ko[0]!], (j, ro) => {
      const v = src[ro[0]!]!;
      if (kind === 'sum') acc += v;
      else if (ai < 0 || (Number.isNaN(v) && !Number.isNaN(acc)) || (!Number.isNaN(acc) && (isMax ? v > acc : v < acc))) {
        acc = v;
        ai = j;
      }
    });
    o[oi] = isArg ? ai : acc;
  });
}

/** Broadcasts a reduced gradient (keepdim or not) back to the input shape. */
function expandBack(g: Tensor, shape: readonly number[], axes: number[]): Tensor {
  return expand(reshape(g, reducedShape(shape, axes, true)), shape);
}

function declareReduce(kind: ReduceKind, grad?: (g: Tensor, args: OpArgs<ReduceAttrs>) => (Tensor | null)[]): Op<ReduceAttrs> {
  const outDtype = isArgKind(kind) ? 'i32' : null;
  return defineOp<ReduceAttrs>({
    name: kind,
    outputs: ([x], { axes, keepdim }) => {
      if (kind !== 'sum' && axes.some((a) => x!.shape[a] === 0)) throw new Error(`${kind}: cannot reduce over an empty dimension of ${x!.describe()}`);
      return [{ shape: reducedShape(x!.shape, axes, keepdim), dtype: outDtype ?? x!.dtype }];
    },
    kernels: {
      cpu: (b, args) => reduceCpu(kind, b, args),
      webgpu: (gpu, args) => reduceGpu(kind, gpu, args),
    },
    grad,
  });
}

const sumOp = declareReduce('sum', (g, { inputs: [x], attrs }) => [expandBack(g, x!.shape, attrs.axes)]);

/** The gradient is shared evenly among tied extrema (like torch.amax). */
const extremumGrad = (g: Tensor, { inputs: [x], outputs: [y], attrs: { axes } }: OpArgs<ReduceAttrs>): Tensor[] => {
  const yk = expandBack(detach(y!), x!.shape, axes);
  const mask = eq(x!, yk);
  const count = sum(mask, axes, true);
  return [div(mul(mask, expandBack(g, x!.shape, axes)), count)];
};
const maxOp = declareReduce('max', extremumGrad);
const minOp = declareReduce('min', extremumGrad);
const argmaxOp = declareReduce('argmax');
const argminOp = declareReduce('argmin');

export function sum(x: Tensor, axes?: Axes, keepdim = false): Tensor {
  return sumOp([x], { axes: normAxes(axes, x.rank, 'sum'), keepdim })[0]!;
}

function checkFloat(op: string, x: Tensor): void {
  if (x.dtype !== 'f32') throw new TypeError(`${op}: expected an f32 tensor, got ${x.describe()}; cast it with .cast('f32')`);
}

export function mean(x: Tensor, axes?: Axes, keepdim = false): Tensor {
  checkFloat('mean', x);
  const ax = normAxes(axes, x.rank, 'mean');
  const n = sizeOf(ax.map((a) => x.shape[a]!));
  return composite([x], () => mul(sum(x, ax, keepdim), 1 / n));
}

export const max = (x: Tensor, axes?: Axes, keepdim = false): Tensor => maxOp([x], { axes: normAxes(axes, x.rank, 'max'), keepdim })[0]!;
export const min = (x: Tensor, axes?: Axes, keepdim = false): Tensor => minOp([x], { axes: normAxes(axes, x.rank, 'min'), keepdim })[0]!;

/**
 * Index of the largest element along `axis` (first on ties); i32. Without an axis: the row-major
 * index over all elements (arg-reductions number the reduced elements in row-major order).
 */
export function argmax(x: Tensor, axis?: number, keepdim = false): Tensor {
  return argmaxOp([x], { axes: normAxes(axis, x.rank, 'argmax'), keepdim: axis === undefined ? false : keepdim })[0]!;
}

export function argmin(x: Tensor, axis?: number, keepdim = false): Tensor {
  return argminOp([x], { axes: normAxes(axis, x.rank, 'argmin'), keepdim: axis === undefined ? false : keepdim })[0]!;
}

export interface VarianceOptions {
  keepdim?: boolean;
  /** Subtracted from the count: 1 (default) is the unbiased estimator, 0 the population one (PyTorch's unbiased=False). */
  correction?: number;
}

const VARIANCE_KEYS = ['keepdim', 'correction'] as const;

/** Variance over `axes` (all when omitted), as torch.var(x, dim, correction=, keepdim=). */
export function variance(x: Tensor, axes?: Axes, opts: VarianceOptions = {}): Tensor {
  const { keepdim = false, correction = 1 } = checkOptions('var', opts, VARIANCE_KEYS);
  checkFloat('var', x);
  const ax = normAxes(axes, x.rank, 'var');
  const n = sizeOf(ax.map((a) => x.shape[a]!));
  return composite([x], () => {
    const d = sub(x, mean(x, ax, true));
    return mul(sum(square(d), ax, keepdim), 1 / Math.max(n - correction, 0));
  });
}

/** log(sum(exp(x))) computed stably by shifting with the (detached) maximum. */
export function logsumexp(x: Tensor, axes?: Axes, keepdim = false): Tensor {
  checkFloat('logsumexp', x);
  const ax = normAxes(axes, x.rank, 'logsumexp');
  return composite([x], () => {
    const m = detach(max(x, ax, true));
    const s = log(sum(exp(sub(x, m)), ax, true));
    const y = add(s, m);
    return keepdim ? y : reshape(y, reducedShape(x.shape, ax, false));
  });
}

/** Sums `g` down to `shape` (undoes broadcasting); returns g itself when shapes match. */
export function sumTo(g: Tensor, shape: readonly number[]): Tensor {
  if (shapesEqual(g.shape, shape)) return g;
  const lead = g.rank - shape.length;
  if (lead < 0) throw new Error(`sumTo: cannot reduce ${fmtShape(g.shape)} to ${fmtShape(shape)}`);
  const axes: number[] = [];
  for (let i = 0; i < g.rank; i++) {
    if (i < lead) axes.push(i);
    else if (shape[i - lead] === 1 && g.shape[i] !== 1) axes.push(i);
    else if (shape[i - lead] !== g.shape[i]) throw new Error(`sumTo: cannot reduce ${fmtShape(g.shape)} to ${fmtShape(shape)}`);
  }
  return reshape(sum(g, axes, true), shape);
}
