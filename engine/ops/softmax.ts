/**
 * softmax / logSoftmax along one axis: one fused kernel per call (row max, sum of exp and the
 * normalized write), reading strided inputs directly and writing a new contiguous tensor. The
 * gradients are compositions of differentiable ops, so grad-of-grad works:
 *   softmax:     dx = y * (g - sum(g * y))
 *   log_softmax: dx = g - exp(y) * sum(g)
 */
import { CpuBackend, CpuStorage } from '../cpu/backend.js';
import { cpuData, forEachStrided } from '../cpu/strided.js';
import { record } from '../grad-mode.js';
import { collapseDims, contiguousStrides, normAxis, sizeOf } from '../shape.js';
import { Tensor } from '../tensor.js';
import { GpuStorage, ParamBuilder, WebGPUBackend } from '../webgpu/backend.js';
import { softmaxShader, SOFTMAX_WG } from '../../shaders/softmax.js';
import { checkSameBackend } from './elementwise.js';
import { mul, sub } from './binary.js';
import { exp } from './unary.js';
import { sum } from './reduce.js';

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
export function softmaxPlan(nRows: number, L: number, inner: boolean): SoftmaxPlan {
  const tpo = inner ? Math.min(SOFTMAX_WG, pow2ceil(Math.ceil(L / 4))) : Math.min(8, pow2ceil(Math.ceil(SOFTMAX_WG / nRows)), pow2ceil(Math.ceil(L / 16)));
  const outer = !inner;
  if (Math.ceil(L / tpo) <= 64 || nRows * tpo >= 32768) return { tpo, outer, nSplit: 1, chunk: L };
  const chunk = Math.max(tpo * 16, Math.ceil(L / 256));
  return { tpo, outer, nSplit: Math.ceil(L / chunk), chunk };
}

function softmaxKernel(op: string, x: Tensor, axis: number, log: boolean): Tensor {
  checkSameBackend(op, [x]);
  if (x.dtype !== 'f32') throw new TypeError(`${op}: expected an f32 tensor, got ${x.describe()}`);
  const shape = x.rank === 0 ? [1] : [...x.shape];
  const inStrides = x.rank === 0 ? [1] : [...x.strides];
  const ax = normAxis(axis, shape.length, op);
  const y = new Tensor(x.backend.alloc(x.size, 'f32'), x.shape, 'f32', op);
  if (x.size === 0) return y;
  const outStrides = contiguousStrides(shape);
  const L = shape[ax]!;
  const kept = shape.map((_, i) => i).filter((i) => i !== ax);
  const keptShape = kept.map((i) => shape[i]!);
  const nRows = sizeOf(keptShape);
  if (x.backend instanceof CpuBackend) {
    const src = cpuData(x);
    const o = (y.storage as CpuStorage).data;
    const sx = inStrides[ax]!;
    const so = outStrides[ax]!;
    forEachStrided(keptShape, [kept.map((i) => inStrides[i]!), kept.map((i) => outStrides[i]!)], [x.offset, 0], (_r, offs) => {
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
    return y;
  }
  const gpu = x.backend as WebGPUBackend;
  const c = collapseDims(keptShape, [kept.map((i) => inStrides[i]!), kept.map((i) => outStrides[i]!)]);
  const K = c.shape.length;
  const minKept = Math.min(...c.strides[0]!.map((v) => (v === 0 ? Infinity : Math.abs(v))));
  const inner = nRows === 1 || Math.abs(inStrides[ax]!) < minKept;
  const plan = softmaxPlan(nRows, L, inner);
  const nGroups = nRows * plan.nSplit;
  const p = new ParamBuilder().u32(nGroups, L, x.offset, inStrides[ax]!, outStrides[ax]!, plan.nSplit, plan.chunk, nRows, ...c.shape, ...c.strides[0]!, ...c.strides[1]!);
  const spec = { log, keptRank: K, tpo: plan.tpo, outer: plan.outer };
  const key = `softmax|${log}|${K}|${plan.tpo}|${plan.outer}`;
  const xb = { storage: x.storage as GpuStorage, access: 'read' as const };
  const yb = { storage: y.storage as GpuStorage, access: 'read_write' as const };
  const workgroups = Math.ceil((nGroups * plan.tpo) / SOFTMAX_WG);
  if (plan.nSplit === 1) {
    gpu.dispatch({ key: `${key}|full`, code: () => softmaxShader({ ...spec, mode: 'full' }), buffers: [xb, yb], params: p.words, workgroups });
    return y;
  }
  const pm = gpu.alloc(nGroups, 'f32');
  const ps = gpu.alloc(nGroups, 'f32');
  gpu.dispatch({
    key: `${key}|stats`,
    code: () => softmaxShader({ ...spec, mode: 'stats' }),
    buffers: [xb, { storage: pm, access: 'read_write' }, { storage: ps, access: 'read_write' }],
    params: p.words,
    workgroups,
  });
  gpu.dispatch({
    key: `${key}|apply`,
    code: () => softmaxShader({ ...spec, mode: 'apply' }),
    buffers: [xb, { storage: pm, access: 'read' }, { storage: ps, access: 'read' }, yb],
    params: p.words,
    workgroups,
  });
  gpu.free(pm);
  gpu.free(ps);
  return y;
}

/** exp(x) / sum(exp(x)) along `axis` (default: the last). */
export function softmax(x: Tensor, axis = -1): Tensor {
  const y = softmaxKernel('softmax', x, axis, false);
  if (x.rank === 0) return record(y, 'softmax', [x], (g) => [mul(g, 0)]);
  const ax = normAxis(axis, x.rank, 'softmax');
  return record(y, 'softmax', [x], (g) => [mul(y, sub(g, sum(mul(g, y), ax, true)))]);
}

/** x - logsumexp(x) along `axis` (default: the last), computed without forming softmax. */
export function logSoftmax(x: Tensor, axis = -1): Tensor {
  const y = softmaxKernel('log_softmax', x, axis, true);
  if (x.rank === 0) return record(y, 'log_softmax', [x], (g) => [mul(g, 0)]);
  const ax = normAxis(axis, x.rank, 'log_softmax');
  return record(y, 'log_softmax', [x], (g) => [sub(g, mul(exp(y), sum(g, ax, true)))]);
}
