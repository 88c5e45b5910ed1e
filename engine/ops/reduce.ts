/**
 * Reductions over any axes with keepdim. sum/max/min/argmax/argmin are kernels; mean, var and
 * logsumexp are compositions (so their gradients come for free).
 */
import { CpuBackend, CpuStorage } from '../cpu/backend.js';
import { cpuData, forEachStrided } from '../cpu/strided.js';
import { DTYPE_INFO, type DType } from '../dtype.js';
import { record } from '../grad-mode.js';
import { composite } from '../composite.js';
import { collapseDims, fmtShape, normAxes, reducedShape, shapesEqual, sizeOf } from '../shape.js';
import { Tensor } from '../tensor.js';
import { GpuStorage, ParamBuilder, WebGPUBackend } from '../webgpu/backend.js';
import { reduceShader, REDUCE_WG, type ReduceKind } from '../../shaders/reduce.js';
import { checkSameBackend } from './elementwise.js';
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
 * How one pass reduces nOut outputs of nRed elements each. `inner`: the reduced elements of one
 * output are the contiguous ones, so a group's threads sit side by side; otherwise the kept dims
 * are, and consecutive threads take consecutive outputs (coalesced loads), with up to 8 lanes per
 * output when there are few outputs. Sequential folds are kept short (accuracy and parallelism):
 * longer ranges are split into chunks of tpo * SEQ_SPLIT and reduced again.
 */
export function reducePlan(nOut: number, nRed: number, inner: boolean): ReducePlan {
  const tpo = inner
    ? Math.min(REDUCE_WG, pow2ceil(Math.ceil(nRed / 4)))
    : Math.min(8, pow2ceil(Math.ceil(REDUCE_WG / nOut)), pow2ceil(Math.ceil(nRed / SEQ_SPLIT)));
  const outer = !inner;
  if (Math.ceil(nRed / tpo) <= SEQ_MAX) return { tpo, outer, nSplit: 1, chunk: Math.max(nRed, 1) };
  const chunk = tpo * SEQ_SPLIT;
  return { tpo, outer, nSplit: Math.ceil(nRed / chunk), chunk };
}

interface ReduceSource {
  storage: GpuStorage;
  idx: GpuStorage | null;
  offset: number;
  keptShape: number[];
  keptStrides: number[];
  redShape: number[];
  redStrides: number[];
  inner: boolean;
}

function reduceGpu(kind: ReduceKind, gpu: WebGPUBackend, x: Tensor, out: Tensor, kept: number[], axes: number[], nOut: number, nRed: number): void {
  const isArg = kind === 'argmax' || kind === 'argmin';
  const k = collapseDims(kept.map((i) => x.shape[i]!), [kept.map((i) => x.strides[i]!)]);
  // Reduced dims in any order for sum/max/min: largest stride first lets more of them merge and
  // makes the fastest-varying one the densest. Arg-reductions keep the row-major index order.
  const red = [...axes];
  if (!isArg) red.sort((a, b) => Math.abs(x.strides[b]!) - Math.abs(x.strides[a]!));
  const r = collapseDims(red.map((i) => x.shape[i]!), [red.map((i) => x.strides[i]!)]);
  const keptStrides = k.strides[0]!;
  const redStrides = r.strides[0]!;
  const noKept = k.shape.length === 1 && k.shape[0] === 1;
  const minStride = (ss: number[]) => Math.min(...ss.map((v) => (v === 0 ? Infinity : Math.abs(v))));
  let src: ReduceSource = {
    storage: x.storage as GpuStorage,
    idx: null,
    offset: x.offset,
    keptShape: k.shape,
    keptStrides,
    redShape: r.shape,
    redStrides,
    inner: noKept || minStride(redStrides) < minStride(keptStrides),
  };
  let curRed = nRed;
  const inType = DTYPE_INFO[x.dtype].wgsl;
  for (;;) {
    const plan = reducePlan(nOut, curRed, src.inner);
    const partial = plan.nSplit > 1;
    const nGroups = nOut * plan.nSplit;
    const dst = partial ? gpu.alloc(nGroups, x.dtype) : (out.storage as GpuStorage);
    const dstIdx = partial && isArg ? gpu.alloc(nGroups, 'i32') : null;
    const outType = partial ? inType : DTYPE_INFO[out.dtype].wgsl;
    const K = src.keptShape.length;
    const Rr = src.redShape.length;
    const p = new ParamBuilder().u32(nGroups, curRed, plan.nSplit, plan.chunk, nOut, src.offset, ...src.keptShape, ...src.keptStrides, ...src.redShape, ...src.redStrides);
    const argIn = src.idx !== null;
    gpu.dispatch({
      key: `reduce|${kind}|${inType}|${outType}|${K}|${Rr}|${plan.tpo}|${plan.outer}|${argIn}|${partial}`,
      code: () => reduceShader({ kind, inType, outType, keptRank: K, redRank: Rr, tpo: plan.tpo, outer: plan.outer, argIn, partial }),
      buffers: [
        { storage: src.storage, access: 'read' },
        ...(src.idx ? [{ storage: src.idx, access: 'read' as const }] : []),
        { storage: dst, access: 'read_write' },
        ...(dstIdx ? [{ storage: dstIdx, access: 'read_write' as const }] : []),
      ],
      params: p.words,
      workgroups: Math.ceil((nGroups * plan.tpo) / REDUCE_WG),
    });
    if (src.storage !== x.storage) gpu.free(src.storage);
    if (src.idx) gpu.free(src.idx);
    if (!partial) return;
    // The partials are a contiguous [nSplit, nOut] (outer layout) or [nOut, nSplit] buffer.
    const outerSplit = plan.outer;
    src = {
      storage: dst,
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

function reduceKernel(kind: ReduceKind, x: Tensor, axes: number[], keepdim: boolean): Tensor {
  checkSameBackend(kind, [x]);
  const isArg = kind === 'argmax' || kind === 'argmin';
  const outDtype: DType = isArg ? 'i32' : x.dtype;
  const outShape = reducedShape(x.shape, axes, keepdim);
  const kept = x.shape.map((_, i) => i).filter((i) => !axes.includes(i));
  const nOut = sizeOf(outShape);
  const nRed = sizeOf(axes.map((a) => x.shape[a]!));
  if (nRed === 0 && kind !== 'sum') throw new Error(`${kind}: cannot reduce over an empty dimension of ${x.describe()}`);
  const out = new Tensor(x.backend.alloc(nOut, outDtype), outShape, outDtype, kind);
  if (nOut === 0) return out;
  if (x.backend instanceof CpuBackend) {
    const keptShape = kept.map((i) => x.shape[i]!);
    const keptStrides = kept.map((i) => x.strides[i]!);
    const redShape = axes.map((i) => x.shape[i]!);
    const redStrides = axes.map((i) => x.strides[i]!);
    const src = cpuData(x);
    const o = (out.storage as CpuStorage).data;
    const isMax = kind === 'max' || kind === 'argmax';
    forEachStrided(keptShape, [keptStrides], [x.offset], (oi, ko) => {
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
    return out;
  }
  reduceGpu(kind, x.backend as WebGPUBackend, x, out, kept, axes, nOut, nRed);
  return out;
}

/** Broadcasts a reduced gradient (keepdim or not) back to the input shape. */
function expandBack(g: Tensor, shape: readonly number[], axes: number[]): Tensor {
  return expand(reshape(g, reducedShape(shape, axes, true)), shape);
}

export function sum(x: Tensor, axes?: Axes, keepdim = false): Tensor {
  const ax = normAxes(axes, x.rank, 'sum');
  const y = reduceKernel('sum', x, ax, keepdim);
  return record(y, 'sum', [x], (g) => [expandBack(g, x.shape, ax)]);
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

function extremum(kind: 'max' | 'min', x: Tensor, axes: Axes, keepdim: boolean): Tensor {
  const ax = normAxes(axes, x.rank, kind);
  const y = reduceKernel(kind, x, ax, keepdim);
  // The gradient is shared evenly among tied extrema (like torch.amax).
  return record(y, kind, [x], (g) => {
    const yk = expandBack(detach(y), x.shape, ax);
    const mask = eq(x, yk);
    const count = sum(mask, ax, true);
    return [div(mul(mask, expandBack(g, x.shape, ax)), count)];
  });
}

export const max = (x: Tensor, axes?: Axes, keepdim = false) => extremum('max', x, axes, keepdim);
export const min = (x: Tensor, axes?: Axes, keepdim = false) => extremum('min', x, axes, keepdim);

/** Index of the largest element along `axis` (first on ties); i32. */
export function argmax(x: Tensor, axis?: number, keepdim = false): Tensor {
  if (axis === undefined) return reduceKernel('argmax', reshape(x, [x.size]), [0], false);
  return reduceKernel('argmax', x, normAxes(axis, x.rank, 'argmax'), keepdim);
}

export function argmin(x: Tensor, axis?: number, keepdim = false): Tensor {
  if (axis === undefined) return reduceKernel('argmin', reshape(x, [x.size]), [0], false);
  return reduceKernel('argmin', x, normAxes(axis, x.rank, 'argmin'), keepdim);
}

/** Variance; `correction` = 1 gives the unbiased estimator (PyTorch's default), 0 the population one. */
export function variance(x: Tensor, axes?: Axes, keepdim = false, correction = 1): Tensor {
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
