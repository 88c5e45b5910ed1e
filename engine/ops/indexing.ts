/**
 * Indexing with integer tensors: gathers (indexSelect, embedding, takeAlongAxis) and their
 * adjoints, the scatter-adds (indexAdd, scatterAdd). Each gradient is another op of this file, so
 * gradients of gradients work: indexSelect <-> indexAdd, takeAlongAxis <-> scatterAdd.
 *
 * Index tensors are i32. Valid indices are 0 <= i < size (no negative indexing, as in
 * torch.index_select / torch.gather). On the CPU backend an out-of-range index throws a RangeError
 * naming the op. On WebGPU the values are not inspected (that would need a readback per op): a
 * gather yields 0 for an out-of-range index and a scatter-add drops the element.
 *
 * GPU float scatter-adds accumulate with atomic compare-exchange, so repeated indices are summed
 * in a scheduling-dependent order (results may differ in the last bits from run to run); see
 * shaders/indexing.ts. Float indexAdd (the backward of indexSelect / embedding) first sums rows
 * that share a target within 64-row tiles, so heavily repeated indices stay fast.
 */
import { CpuBackend } from '../cpu/backend.js';
import { cpuData, forEachStrided } from '../cpu/strided.js';
import { DTYPE_INFO } from '../dtype.js';
import { record } from '../grad-mode.js';
import { checkShape, collapseDims, contiguousStrides, fmtShape, normAxis, shapesEqual, sizeOf } from '../shape.js';
import { isTensor, Tensor } from '../tensor.js';
import { GpuStorage, ParamBuilder, WebGPUBackend } from '../webgpu/backend.js';
import { gatherScatterParamWords, gatherScatterShader, IA_COLS, IA_ROWS, INDEX_WG, indexAddTiledShader } from '../../shaders/indexing.js';
import { checkSameBackend, elementwise } from './elementwise.js';
import { full } from './creation.js';
import { reshape, slice } from './movement.js';

function checkIndex(op: string, idx: Tensor): void {
  if (!isTensor(idx)) throw new TypeError(`${op}: indices must be an i32 Tensor, got ${String(idx)}`);
  if (idx.dtype !== 'i32') throw new TypeError(`${op}: indices must have dtype i32, got ${idx.describe()}`);
}

/** Word lists of an iteration space, collapsed so the kernel divides as little as possible. */
interface Space {
  shape: number[];
  /** Three stride lists over `shape` (see shaders/indexing.ts for their roles). */
  strides: [number[], number[], number[]];
  offsets: [number, number, number];
  axisSize: number;
  axisStride: number;
}

function rangeError(op: string, j: number, axis: number, size: number): RangeError {
  return new RangeError(`${op}: index ${j} is out of range for axis ${axis} of size ${size}`);
}

/**
 * Gather: out[c] = x[c with c_axis := idx[c]] over the iteration space `shape`, where x is read
 * through `xStrides` (axis zeroed) and idx through `idxStrides`. Returns a new contiguous tensor.
 */
function gatherKernel(op: string, x: Tensor, axis: number, idx: Tensor, shape: number[], xStrides: number[], idxStrides: number[]): Tensor {
  checkSameBackend(op, [x, idx]);
  const n = sizeOf(shape);
  const out = new Tensor(x.backend.alloc(n, x.dtype), shape, x.dtype, op);
  if (n === 0) return out;
  const space: Space = {
    shape,
    strides: [xStrides, idxStrides, contiguousStrides(shape)],
    offsets: [x.offset, idx.offset, 0],
    axisSize: x.shape[axis]!,
    axisStride: x.strides[axis]!,
  };
  if (x.backend instanceof CpuBackend) {
    const xd = cpuData(x);
    const id = cpuData(idx);
    const o = cpuData(out);
    forEachStrided(shape, space.strides, space.offsets, (i, offs) => {
      const j = id[offs[1]!]!;
      if (j < 0 || j >= space.axisSize) throw rangeError(op, j, axis, space.axisSize);
      o[i] = xd[offs[0]! + j * space.axisStride]!;
    });
    return out;
  }
  dispatchGatherScatter('gather', op, space, x.dtype === 'i32' ? 'i32' : 'f32', [x, idx, out]);
  return out;
}

/**
 * Scatter-add: out = copy of `base` (or zeros of `outShape`); out[c with c_axis := idx[c]] += src[c]
 * over the iteration space `shape` (src read through `srcStrides`, idx through `idxStrides`).
 */
function scatterKernel(op: string, base: Tensor | null, outShape: number[], axis: number, idx: Tensor, src: Tensor, shape: number[], srcStrides: number[], idxStrides: number[]): Tensor {
  checkSameBackend(op, base ? [src, idx, base] : [src, idx]);
  const out = base
    ? elementwise(op, [base], { expr: 'a', cpu: (a) => a, outDtype: src.dtype })
    : full(outShape, 0, { dtype: src.dtype, backend: src.backend });
  const n = sizeOf(shape);
  if (n === 0 || out.size === 0) {
    if (n > 0 && src.backend instanceof CpuBackend) {
      // Every index is out of range of an empty axis: report it like any other bad index.
      const id = cpuData(idx);
      forEachStrided(shape, [idxStrides], [idx.offset], (_i, offs) => {
        throw rangeError(op, id[offs[0]!]!, axis, outShape[axis]!);
      });
    }
    return out;
  }
  const outStrides = contiguousStrides(outShape);
  const space: Space = {
    shape,
    strides: [outStrides.map((s, d) => (d === axis ? 0 : s)), idxStrides, srcStrides],
    offsets: [0, idx.offset, src.offset],
    axisSize: outShape[axis]!,
    axisStride: outStrides[axis]!,
  };
  if (src.backend instanceof CpuBackend) {
    const sd = cpuData(src);
    const id = cpuData(idx);
    const o = cpuData(out);
    forEachStrided(shape, space.strides, space.offsets, (_i, offs) => {
      const j = id[offs[1]!]!;
      if (j < 0 || j >= space.axisSize) throw rangeError(op, j, axis, space.axisSize);
      o[offs[0]! + j * space.axisStride]! += sd[offs[2]!]!;
    });
    return out;
  }
  dispatchGatherScatter('scatter', op, space, src.dtype === 'i32' ? 'i32' : 'f32', [src, idx, out]);
  return out;
}

function dispatchGatherScatter(mode: 'gather' | 'scatter', op: string, space: Space, type: 'f32' | 'i32', tensors: [Tensor, Tensor, Tensor]): void {
  const gpu = tensors[0].backend as WebGPUBackend;
  const c = collapseDims(space.shape, space.strides);
  const R = c.shape.length;
  if (gatherScatterParamWords(R) > 64) throw new Error(`${op}: iteration space of rank ${R} is too large for the kernel parameters (max 14 after collapsing)`);
  const n = sizeOf(space.shape);
  const p = new ParamBuilder().u32(n, space.axisSize, space.axisStride, ...c.shape);
  for (let k = 0; k < 3; k++) p.u32(space.offsets[k]!, ...c.strides[k]!);
  const wgsl = DTYPE_INFO[type].wgsl;
  gpu.dispatch({
    key: `${mode}|${wgsl}|${R}`,
    code: () => gatherScatterShader({ mode, type: wgsl, rank: R }),
    buffers: [
      { storage: tensors[0].storage as GpuStorage, access: 'read' },
      { storage: tensors[1].storage as GpuStorage, access: 'read' },
      { storage: tensors[2].storage as GpuStorage, access: 'read_write' },
    ],
    params: p.words,
    workgroups: Math.ceil(n / INDEX_WG),
  });
}

/** Strides that read a 1-D index tensor along `axis` of a rank-`rank` space. */
function axisOnly(idx: Tensor, axis: number, rank: number): number[] {
  return Array.from({ length: rank }, (_, d) => (d === axis ? idx.strides[0]! : 0));
}

/**
 * Selects entries of `x` along `axis` at the positions in the 1-D i32 tensor `idx`
 * (torch.index_select). Output shape: x.shape with shape[axis] = idx.length. Repeats allowed.
 */
export function indexSelect(x: Tensor, axis: number, idx: Tensor): Tensor {
  checkIndex('indexSelect', idx);
  if (idx.rank !== 1) throw new Error(`indexSelect: indices must be 1-D, got ${idx.describe()}`);
  if (x.rank === 0) throw new Error(`indexSelect: cannot index a scalar ${x.describe()}`);
  const ax = normAxis(axis, x.rank, 'indexSelect');
  const shape = [...x.shape];
  shape[ax] = idx.shape[0]!;
  const y = gatherKernel('indexSelect', x, ax, idx, shape, x.strides.map((s, d) => (d === ax ? 0 : s)), axisOnly(idx, ax, x.rank));
  return record(y, 'indexSelect', [x], (g) => [indexAdd(x.shape, ax, idx, g)]);
}

/**
 * Adds slices of `src` into `target` (a tensor, or a shape meaning zeros) along `axis`:
 * out.select(axis, idx[i]) += src.select(axis, i) (torch.index_add, out of place). Repeated
 * indices accumulate. src.shape = target shape with shape[axis] = idx.length.
 */
export function indexAdd(target: Tensor | readonly number[], axis: number, idx: Tensor, src: Tensor): Tensor {
  checkIndex('indexAdd', idx);
  if (idx.rank !== 1) throw new Error(`indexAdd: indices must be 1-D, got ${idx.describe()}`);
  const base = isTensor(target) ? target : null;
  const outShape = base ? [...base.shape] : checkShape(target as readonly number[], 'indexAdd');
  if (outShape.length === 0) throw new Error('indexAdd: cannot index a scalar target');
  const ax = normAxis(axis, outShape.length, 'indexAdd');
  const want = [...outShape];
  want[ax] = idx.shape[0]!;
  if (!shapesEqual(src.shape, want)) {
    throw new Error(`indexAdd: source shape ${fmtShape(src.shape)} does not match target ${fmtShape(outShape)} with ${idx.shape[0]} indices along axis ${ax} (expected ${fmtShape(want)})`);
  }
  if (base && base.dtype !== src.dtype) throw new TypeError(`indexAdd: dtype mismatch, ${base.describe()} vs ${src.describe()}`);
  const y =
    src.backend instanceof WebGPUBackend && src.dtype === 'f32'
      ? indexAddTiled(base, outShape, ax, idx, src)
      : scatterKernel('indexAdd', base, outShape, ax, idx, src, want, [...src.strides], axisOnly(idx, ax, want.length));
  const inputs = base ? [base, src] : [src];
  return record(y, 'indexAdd', inputs, (g) => {
    const gs = indexSelect(g, ax, idx);
    return base ? [g, gs] : [gs];
  });
}

/** GPU f32 indexAdd through the pre-aggregating kernel (see shaders/indexing.ts). */
function indexAddTiled(base: Tensor | null, outShape: number[], axis: number, idx: Tensor, src: Tensor): Tensor {
  checkSameBackend('indexAdd', base ? [src, idx, base] : [src, idx]);
  const out = base
    ? elementwise('indexAdd', [base], { expr: 'a', cpu: (a) => a, outDtype: 'f32' })
    : full(outShape, 0, { dtype: 'f32', backend: src.backend });
  const outer = sizeOf(outShape.slice(0, axis));
  const inner = sizeOf(outShape.slice(axis + 1));
  const T = idx.shape[0]!;
  const V = outShape[axis]!;
  if (outer * T * inner === 0 || out.size === 0) return out;
  const sc = src.isContiguous ? null : elementwise('indexAdd', [src], { expr: 'a', cpu: (a) => a, outDtype: 'f32' });
  const s = sc ?? src;
  const rowBlocks = Math.ceil(T / IA_ROWS);
  const colBlocks = Math.ceil(inner / IA_COLS);
  const p = new ParamBuilder().u32(outer, T, inner, V, s.offset, idx.offset, idx.strides[0]!, rowBlocks, colBlocks);
  (src.backend as WebGPUBackend).dispatch({
    key: 'indexAdd-tiled',
    code: indexAddTiledShader,
    buffers: [
      { storage: s.storage as GpuStorage, access: 'read' },
      { storage: idx.storage as GpuStorage, access: 'read' },
      { storage: out.storage as GpuStorage, access: 'read_write' },
    ],
    params: p.words,
    workgroups: outer * rowBlocks * colBlocks,
  });
  sc?.dispose();
  return out;
}

/**
 * Embedding lookup: rows of `weight` [V, D] at the i32 `ids` (any shape) -> ids.shape + [D].
 * The gradient w.r.t. the weight is an indexAdd of the output gradient rows.
 */
export function embedding(weight: Tensor, ids: Tensor): Tensor {
  checkIndex('embedding', ids);
  if (weight.rank !== 2) throw new Error(`embedding: weight must be [V, D], got ${weight.describe()}`);
  const ids1 = reshape(ids, [ids.size]);
  const flat = indexSelect(weight, 0, ids1);
  const out = reshape(flat, [...ids.shape, weight.shape[1]!]);
  // `out` shares flat's storage and the tape only reads flat's shape; ids1 is read by the
  // backward pass, so it stays alive when one was recorded.
  flat.dispose();
  if (!out.requiresGrad) ids1.dispose();
  return out;
}

function checkGatherShapes(op: string, what: string, idx: Tensor, shape: readonly number[], axis: number, includeAxis: boolean): void {
  if (idx.rank !== shape.length) throw new Error(`${op}: indices ${fmtShape(idx.shape)} must have the same rank as the ${what} ${fmtShape(shape)}`);
  for (let d = 0; d < shape.length; d++) {
    if ((includeAxis || d !== axis) && idx.shape[d]! > shape[d]!) {
      throw new Error(`${op}: indices ${fmtShape(idx.shape)} exceed the ${what} ${fmtShape(shape)} in dim ${d}`);
    }
  }
}

/**
 * torch.gather: out[i][j][k] = x[i][idx[i][j][k]][k] for axis 1 (likewise for any axis). idx has
 * the rank of x, idx.shape[d] <= x.shape[d] for d != axis, and the output has idx's shape.
 */
export function takeAlongAxis(x: Tensor, idx: Tensor, axis: number): Tensor {
  checkIndex('takeAlongAxis', idx);
  if (x.rank === 0) throw new Error(`takeAlongAxis: cannot index a scalar ${x.describe()}`);
  const ax = normAxis(axis, x.rank, 'takeAlongAxis');
  checkGatherShapes('takeAlongAxis', 'input', idx, x.shape, ax, false);
  const y = gatherKernel('takeAlongAxis', x, ax, idx, [...idx.shape], x.strides.map((s, d) => (d === ax ? 0 : s)), [...idx.strides]);
  return record(y, 'takeAlongAxis', [x], (g) => [scatterAdd(x.shape, ax, idx, g)]);
}

/**
 * torch.scatter_add, out of place: out = target (or zeros of the given shape);
 * out[i][idx[i][j][k]][k] += src[i][j][k] for axis 1. idx, src and target have the same rank;
 * idx.shape[d] <= src.shape[d] for every d and <= target.shape[d] for d != axis; only the leading
 * idx-shaped block of src is used. Repeated indices accumulate.
 */
export function scatterAdd(target: Tensor | readonly number[], axis: number, idx: Tensor, src: Tensor): Tensor {
  checkIndex('scatterAdd', idx);
  const base = isTensor(target) ? target : null;
  const outShape = base ? [...base.shape] : checkShape(target as readonly number[], 'scatterAdd');
  if (outShape.length === 0) throw new Error('scatterAdd: cannot index a scalar target');
  const ax = normAxis(axis, outShape.length, 'scatterAdd');
  if (src.rank !== outShape.length) throw new Error(`scatterAdd: source ${fmtShape(src.shape)} must have the rank of the target ${fmtShape(outShape)}`);
  checkGatherShapes('scatterAdd', 'source', idx, src.shape, ax, true);
  checkGatherShapes('scatterAdd', 'target', idx, outShape, ax, false);
  if (base && base.dtype !== src.dtype) throw new TypeError(`scatterAdd: dtype mismatch, ${base.describe()} vs ${src.describe()}`);
  // Only the idx-shaped block of src takes part: a slice view makes the gradient w.r.t. src
  // the right shape (zeros outside the block) with no special case.
  const s = shapesEqual(src.shape, idx.shape) ? src : slice(src, idx.shape.map((d) => [0, d] as [number, number]));
  const y = scatterKernel('scatterAdd', base, outShape, ax, idx, s, [...idx.shape], [...s.strides], [...idx.strides]);
  const inputs = base ? [base, s] : [s];
  record(y, 'scatterAdd', inputs, (g) => {
    const gs = takeAlongAxis(g, idx, ax);
    return base ? [g, gs] : [gs];
  });
  // The slice view only links the tape to src (its shape is all the backward pass reads).
  if (s !== src) s.dispose();
  return y;
}
