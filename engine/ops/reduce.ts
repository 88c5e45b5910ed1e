/**
 * Reductions over any axes with keepdim. sum/max/min/argmax/argmin are kernels; mean, var and
 * logsumexp are compositions (so their gradients come for free).
 */
import { CpuBackend, CpuStorage } from '../cpu/backend.js';
import { cpuData, forEachStrided } from '../cpu/strided.js';
import { DTYPE_INFO, type DType } from '../dtype.js';
import { record } from '../grad-mode.js';
import { fmtShape, normAxes, reducedShape, shapesEqual, sizeOf } from '../shape.js';
import { Tensor } from '../tensor.js';
import { GpuStorage, ParamBuilder, WebGPUBackend } from '../webgpu/backend.js';
import { reduceShader, REDUCE_WG, type ReduceKind } from '../../shaders/reduce.js';
import { checkSameBackend } from './elementwise.js';
import { add, div, eq, mul, sub } from './binary.js';
import { exp, log, square } from './unary.js';
import { detach, expand, reshape } from './movement.js';

export type Axes = number | readonly number[] | undefined;

/** Threads-per-output below this reduction size, workgroup-per-output above. */
const PER_THREAD_MAX = 64;

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
  const keptShape = kept.map((i) => x.shape[i]!);
  const keptStrides = kept.map((i) => x.strides[i]!);
  const redShape = axes.map((i) => x.shape[i]!);
  const redStrides = axes.map((i) => x.strides[i]!);
  if (x.backend instanceof CpuBackend) {
    const src = cpuData(x);
    const o = (out.storage as CpuStorage).data;
    const accs = new Float64Array(nOut);
    const idxs = new Int32Array(nOut).fill(-1);
    accs.fill(kind === 'sum' ? 0 : kind === 'max' || kind === 'argmax' ? -Infinity : Infinity);
    const isMax = kind === 'max' || kind === 'argmax';
    // Outer loop over kept positions, inner over reduced positions: same order as the kernel.
    forEachStrided(keptShape, [keptStrides], [x.offset], (oi, ko) => {
      let acc = accs[oi]!;
      let ai = idxs[oi]!;
      forEachStrided(redShape, [redStrides], [ko[0]!], (j, ro) => {
        const v = src[ro[0]!]!;
        if (kind === 'sum') acc += v;
        else if (ai < 0 || (isMax ? v > acc : v < acc) || (Number.isNaN(v) && !Number.isNaN(acc))) {
          acc = v;
          ai = j;
        }
      });
      accs[oi] = acc;
      idxs[oi] = ai;
    });
    for (let i = 0; i < nOut; i++) o[i] = isArg ? idxs[i]! : accs[i]!;
    return out;
  }
  const gpu = x.backend as WebGPUBackend;
  const perWorkgroup = nRed > PER_THREAD_MAX;
  const p = new ParamBuilder().u32(nOut, nRed, x.offset, ...keptShape, ...keptStrides, ...redShape, ...redStrides);
  const inType = DTYPE_INFO[x.dtype].wgsl;
  const outType = DTYPE_INFO[outDtype].wgsl;
  gpu.dispatch({
    key: `reduce|${kind}|${inType}|${kept.length}|${axes.length}|${perWorkgroup}`,
    code: () => reduceShader({ kind, inType, outType, keptRank: kept.length, redRank: axes.length, perWorkgroup }),
    buffers: [
      { storage: x.storage as GpuStorage, access: 'read' },
      { storage: out.storage as GpuStorage, access: 'read_write' },
    ],
    params: p.words,
    workgroups: perWorkgroup ? nOut : Math.ceil(nOut / REDUCE_WG),
  });
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

export function mean(x: Tensor, axes?: Axes, keepdim = false): Tensor {
  const ax = normAxes(axes, x.rank, 'mean');
  const n = sizeOf(ax.map((a) => x.shape[a]!));
  return mul(sum(x, ax, keepdim), 1 / n);
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
  const ax = normAxes(axes, x.rank, 'var');
  const n = sizeOf(ax.map((a) => x.shape[a]!));
  const d = sub(x, mean(x, ax, true));
  return mul(sum(square(d), ax, keepdim), 1 / Math.max(n - correction, 0));
}

/** log(sum(exp(x))) computed stably by shifting with the (detached) maximum. */
export function logsumexp(x: Tensor, axes?: Axes, keepdim = false): Tensor {
  const ax = normAxes(axes, x.rank, 'logsumexp');
  const m = detach(max(x, ax, true));
  const s = log(sum(exp(sub(x, m)), ax, true));
  const y = add(s, m);
  return keepdim ? y : reshape(y, reducedShape(x.shape, ax, false));
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
