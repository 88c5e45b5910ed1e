/**
 * softmax / logSoftmax along one axis: one fused kernel per call (row max, sum of exp and the
 * normalized write), reading strided inputs directly and writing a new contiguous tensor. The
 * gradients are compositions of differentiable ops, so grad-of-grad works:
 *   softmax:     dx = y * (g - sum(g * y))
 *   log_softmax: dx = g - exp(y) * sum(g)
 */
import { cpuData, forEachStrided } from '../cpu/strided.js';
import { defineOp, type OpArgs } from '../op.js';
import { collapseDims, contiguousStrides, normAxis, sizeOf } from '../shape.js';
import type { Tensor } from '../tensor.js';
import type { WebGPUBackend } from '../webgpu/backend.js';
import { softmaxKernel, SOFTMAX_WG, type SoftmaxShaderSpec } from '../../shaders/softmax.js';
import { mul, sub } from './binary.js';
import { exp } from './unary.js';
import { LANE_ROW_MAX, lanePerRow, rowReduceWorkgroup, sum } from './reduce.js';

function pow2ceil(n: number): number {
  let p = 1;
  while (p < n) p *= 2;
  return p;
}

export interface SoftmaxPlan {
  tpo: number;
  outer: boolean;
  /** Chunks per row (1: one fused dispatch; > 1: a stats pass and an apply pass). */
  nSplit: number;
  chunk: number;
}

/**
 * Threads per row and lane layout (as reducePlan in ops/reduce.ts): a group sized to the row when
 * rows are contiguous (`inner`), else consecutive threads on consecutive rows with up to 8 lanes
 * per row. Few long rows (too few threads to fill a GPU, long sequential folds) are split into at
 * most 256 chunks handled by separate groups.
 */
/** Elements one lane folds at most in a single pass (unless the rows alone fill the device). */
const SEQ_MAX = 64;

export function softmaxPlan(nRows: number, L: number, inner: boolean, wg = SOFTMAX_WG, oneLane = false): SoftmaxPlan {
  // One lane per row (lanePerRow in ops/reduce.ts): by the row's length alone, in one pass.
  const tpo = inner && oneLane && L <= LANE_ROW_MAX ? 1 : inner ? Math.min(wg, pow2ceil(Math.ceil(L / 4))) : Math.min(8, pow2ceil(Math.ceil(wg / nRows)), pow2ceil(Math.ceil(L / 16)));
  const outer = !inner;
  if (Math.ceil(L / tpo) <= SEQ_MAX || nRows * tpo >= 32768) return { tpo, outer, nSplit: 1, chunk: L };
  const chunk = Math.max(tpo * 16, Math.ceil(L / 256));
  return { tpo, outer, nSplit: Math.ceil(L / chunk), chunk };
}

interface SoftmaxAttrs {
  /** The normalized axis (0 for a scalar, which is viewed as [1]). */
  axis: number;
}

/** The row space of x around `axis`: a scalar is one row of one element. */
function rowSpace(x: Tensor, axis: number) {
  const shape = x.rank === 0 ? [1] : x.shape;
  const inStrides = x.rank === 0 ? [1] : x.strides;
  const outStrides = contiguousStrides(shape);
  const kept = shape.map((_, i) => i).filter((i) => i !== axis);
  return { L: shape[axis]!, inStrides, outStrides, kept, keptShape: kept.map((i) => shape[i]!) };
}

function softmaxCpu(log: boolean, { inputs: [x], outputs: [y], attrs: { axis } }: OpArgs<SoftmaxAttrs>): void {
  const { L, inStrides, outStrides, kept, keptShape } = rowSpace(x!, axis);
  const src = cpuData(x!);
  const o = cpuData(y!);
  const sx = inStrides[axis]!;
  const so = outStrides[axis]!;
  forEachStrided(keptShape, [kept.map((i) => inStrides[i]!), kept.map((i) => outStrides[i]!)], [x!.offset, 0], (_r, offs) => {
    const ib = offs[0]!;
    const ob = offs[1]!;
    let m = -Infinity;
    for (let j = 0; j < L; j++) m = Math.max(m, src[ib + j * sx]!);
    let s = 0;
    for (let j = 0; j < L; j++) s += Math.exp(src[ib + j * sx]! - m);
    const ls = Math.log(s);
    for (let j = 0; j < L; j++) {
      const v = src[ib + j * sx]!;
      o[ob + j * so] = log ? v - m - ls : Math.exp(v - m) / s;
    }
  });
}

function softmaxGpu(log: boolean, gpu: WebGPUBackend, { inputs: [x], outputs: [y], attrs: { axis } }: OpArgs<SoftmaxAttrs>): void {
  const { L, inStrides, outStrides, kept, keptShape } = rowSpace(x!, axis);
  const nRows = sizeOf(keptShape);
  const c = collapseDims(keptShape, [kept.map((i) => inStrides[i]!), kept.map((i) => outStrides[i]!)]);
  const minKept = Math.min(...c.strides[0]!.map((v) => (v === 0 ? Infinity : Math.abs(v))));
  const inner = nRows === 1 || Math.abs(inStrides[axis]!) < minKept;
  const wg = rowReduceWorkgroup(gpu, L, inner, SEQ_MAX);
  const plan = softmaxPlan(nRows, L, inner, wg, lanePerRow(gpu));
  const nGroups = nRows * plan.nSplit;
  const params = {
    n_groups: nGroups,
    L,
    in_offset: x!.offset,
    in_axis_stride: inStrides[axis]!,
    out_axis_stride: outStrides[axis]!,
    n_split: plan.nSplit,
    chunk: plan.chunk,
    n_rows: nRows,
    kept_shape: c.shape,
    kept_in: c.strides[0]!,
    kept_out: c.strides[1]!,
  };
  const variant = (mode: SoftmaxShaderSpec['mode']): SoftmaxShaderSpec => ({ log, keptRank: c.shape.length, tpo: plan.tpo, outer: plan.outer, mode, wg });
  const workgroups = Math.ceil((nGroups * plan.tpo) / wg);
  if (plan.nSplit === 1) {
    gpu.run(softmaxKernel, variant('full'), { params, bindings: { x: x!, y: y! }, workgroups });
    return;
  }
  const pm = gpu.alloc(nGroups, 'f32');
  const ps = gpu.alloc(nGroups, 'f32');
  gpu.run(softmaxKernel, variant('stats'), { params, bindings: { x: x!, pm, ps }, workgroups });
  gpu.run(softmaxKernel, variant('apply'), { params, bindings: { x: x!, pm, ps, y: y! }, workgroups });
  gpu.free(pm);
  gpu.free(ps);
}

function declareSoftmax(name: string, log: boolean, grad: (g: Tensor, y: Tensor, axis: number) => Tensor) {
  return defineOp<SoftmaxAttrs>({
    name,
    outputs: ([x]) => {
      if (x!.dtype !== 'f32') throw new TypeError(`${name}: expected an f32 tensor, got ${x!.describe()}`);
      return [{ shape: x!.shape, dtype: 'f32' }];
    },
    kernels: {
      cpu: (_b, args) => softmaxCpu(log, args),
      webgpu: (gpu, args) => softmaxGpu(log, gpu, args),
    },
    grad: (g, { inputs: [x], outputs: [y], attrs: { axis } }) => [x!.rank === 0 ? mul(g, 0) : grad(g, y!, axis)],
  });
}

const softmaxOp = declareSoftmax('softmax', false, (g, y, ax) => mul(y, sub(g, sum(mul(g, y), ax, true))));
const logSoftmaxOp = declareSoftmax('log_softmax', true, (g, y, ax) => sub(g, mul(exp(y), sum(g, ax, true))));

/** exp(x) / sum(exp(x)) along `axis` (default: the last). */
export function softmax(x: Tensor, axis = -1): Tensor {
  return softmaxOp([x], { axis: normAxis(axis, Math.max(x.rank, 1), 'softmax') })[0]!;
}

/** x - logsumexp(x) along `axis` (default: the last), computed without forming softmax. */
export function logSoftmax(x: Tensor, axis = -1): Tensor {
  return logSoftmaxOp([x], { axis: normAxis(axis, Math.max(x.rank, 1), 'log_softmax') })[0]!;
}
