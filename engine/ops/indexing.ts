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
 * GPU float scatter-adds are deterministic (no float atomics): repeated indices are summed in
 * source order, the CPU backend's order, so a training run gives the same bits every time (the
 * gradients of embeddings and codebooks are such sums); see shaders/indexing.ts.
 */
import { cpuContiguous, cpuData, forEachStrided } from '../cpu/strided.js';
import { composite } from '../composite.js';
import { DTYPE_INFO, type DType } from '../dtype.js';
import { defineOp, type OpKernels, type OutputSpec } from '../op.js';
import { checkShape, collapseDims, contiguousStrides, fmtShape, normAxis, shapesEqual, sizeOf } from '../shape.js';
import { isTensor, type Tensor } from '../tensor.js';
import type { WebGPUBackend } from '../webgpu/backend.js';
import { GATHER_SCATTER_MAX_RANK, gatherScatterKernel, INDEX_WG, scatterCsrKernel, scatterCsrSize, scatterSumKernel } from '../../shaders/indexing.js';
import { COPY, elementwiseKernels, ZERO } from './elementwise.js';
import { reshape, slice } from './movement.js';

function checkIndex(op: string, idx: Tensor): void {
  if (!isTensor(idx)) throw new TypeError(`${op}: indices must be an i32 Tensor, got ${String(idx)}`);
  if (idx.dtype !== 'i32') throw new TypeError(`${op}: indices must have dtype i32, got ${idx.describe()}`);
}

function rangeError(op: string, j: number, axis: number, size: number): RangeError {
  return new RangeError(`${op}: index ${j} is out of range for axis ${axis} of size ${size}`);
}

/**
 * An iteration space and three stride lists over it, each with its base offset (their roles are
 * described in shaders/indexing.ts), plus the indexed axis's size and stride in the data tensor.
 */
interface Space {
  shape: readonly number[];
  strides: [number[], number[], number[]];
  offsets: [number, number, number];
  axisSize: number;
  axisStride: number;
}

/** The attributes of every indexing op: the (normalized) axis. */
interface AxisAttrs {
  axis: number;
}

interface ScatterAttrs extends AxisAttrs {
  /** Shape of the result (the target's, or the zeros' it starts from). */
  outShape: number[];
  hasBase: boolean;
}

/**
 * How idx is read over the iteration space: `slices` ops take a 1-D idx that picks whole slices
 * along the axis (indexSelect, indexAdd); the others read idx elementwise (takeAlongAxis, scatterAdd).
 */
function idxStrides(idx: Tensor, axis: number, rank: number, slices: boolean): number[] {
  return slices ? Array.from({ length: rank }, (_, d) => (d === axis ? idx.strides[0]! : 0)) : [...idx.strides];
}

const zeroAxis = (strides: readonly number[], axis: number) => strides.map((s, d) => (d === axis ? 0 : s));

/** Gather: out[c] = x[c with c_axis := idx[c]] over the output's shape. Inputs [x, idx]. */
function gatherSpace(x: Tensor, idx: Tensor, out: Tensor, axis: number, slices: boolean): Space {
  return {
    shape: out.shape,
    strides: [zeroAxis(x.strides, axis), idxStrides(idx, axis, out.rank, slices), contiguousStrides(out.shape)],
    offsets: [x.offset, idx.offset, 0],
    axisSize: x.shape[axis]!,
    axisStride: x.strides[axis]!,
  };
}

/** Scatter-add: out[c with c_axis := idx[c]] += src[c] over src's shape. Inputs [idx, src, base?]. */
function scatterSpace(idx: Tensor, src: Tensor, axis: number, outShape: readonly number[], slices: boolean): Space {
  const outStrides = contiguousStrides(outShape);
  return {
    shape: src.shape,
    strides: [zeroAxis(outStrides, axis), idxStrides(idx, axis, src.rank, slices), [...src.strides]],
    offsets: [0, idx.offset, src.offset],
    axisSize: outShape[axis]!,
    axisStride: outStrides[axis]!,
  };
}

/** The kernel parameters that describe an iteration space (its collapsed shape and three operands' walks). */
function spaceParams(space: Space, c: { shape: number[]; strides: number[][] }, n: number) {
  return {
    n,
    axis_size: space.axisSize,
    axis_stride: space.axisStride,
    shape: c.shape,
    off0: space.offsets[0],
    st0: c.strides[0]!,
    off1: space.offsets[1],
    st1: c.strides[1]!,
    off2: space.offsets[2],
    st2: c.strides[2]!,
  };
}

function runGatherScatter(gpu: WebGPUBackend, mode: 'gather' | 'scatter', op: string, space: Space, bindings: Record<string, Tensor>, dtype: DType): void {
  const c = collapseDims(space.shape, space.strides);
  const R = c.shape.length;
  if (R > GATHER_SCATTER_MAX_RANK) throw new Error(`${op}: iteration space of rank ${R} is too large for the kernel parameters (max ${GATHER_SCATTER_MAX_RANK} after collapsing)`);
  const n = sizeOf(space.shape);
  gpu.run(gatherScatterKernel, { mode, type: DTYPE_INFO[dtype].wgsl, rank: R }, {
    params: spaceParams(space, c, n),
    bindings,
    workgroups: Math.ceil(n / INDEX_WG),
  });
}

function gatherKernels(op: string, slices: boolean): OpKernels<AxisAttrs> {
  return {
    cpu: (_b, { inputs: [x, idx], outputs: [out], attrs: { axis } }) => {
      const space = gatherSpace(x!, idx!, out!, axis, slices);
      const xd = cpuData(x!);
      const id = cpuData(idx!);
      const o = cpuData(out!);
      forEachStrided(space.shape, space.strides, space.offsets, (i, offs) => {
        const j = id[offs[1]!]!;
        if (j < 0 || j >= space.axisSize) throw rangeError(op, j, axis, space.axisSize);
        o[i] = xd[offs[0]! + j * space.axisStride]!;
      });
    },
    webgpu: (gpu, { inputs: [x, idx], outputs: [out], attrs: { axis } }) => {
      runGatherScatter(gpu, 'gather', op, gatherSpace(x!, idx!, out!, axis, slices), { x: x!, idx: idx!, out: out! }, x!.dtype);
    },
  };
}


/**
 * Scatter-add kernels: out = the base (or zeros) plus src added at idx. f32 sums are
 * deterministic on the GPU (shaders/indexing.ts): a plain scatter where targets cannot collide
 * (`slices` false and idx of length 1 along the axis), else buckets built by one workgroup and
 * summed per output element in source order. i32 uses atomic adds (exact in any order).
 */
function scatterKernels(op: string, slices: boolean): OpKernels<ScatterAttrs> {
  return {
    cpu: (_b, { inputs: [idx, src, base], outputs: [out], attrs: { axis, outShape } }) => {
      const o = cpuData(out!);
      if (base) o.set(cpuContiguous(base));
      else o.fill(0);
      const space = scatterSpace(idx!, src!, axis, outShape, slices);
      const sd = cpuData(src!);
      const id = cpuData(idx!);
      forEachStrided(space.shape, space.strides, space.offsets, (_i, offs) => {
        const j = id[offs[1]!]!;
        if (j < 0 || j >= space.axisSize) throw rangeError(op, j, axis, space.axisSize);
        o[offs[0]! + j * space.axisStride]! += sd[offs[2]!]!;
      });
    },
    webgpu: (gpu, { inputs: [idx, src, base], outputs: [out], attrs: { axis, outShape } }) => {
      const space = scatterSpace(idx!, src!, axis, outShape, slices);
      const bucketed = src!.dtype === 'f32' && src!.size > 0 && (slices || idx!.shape[axis]! > 1);
      // The bucketed sum writes every output element, so only a base needs copying first.
      if (base || !bucketed) elementwiseKernels.webgpu!(gpu, { inputs: base ? [base] : [], outputs: [out!], attrs: (base ? COPY : ZERO)[out!.dtype] });
      if (src!.size === 0) return;
      if (!bucketed) runGatherScatter(gpu, 'scatter', op, space, { src: src!, idx: idx!, out: out! }, src!.dtype);
      else if (slices) indexAddBucketed(gpu, idx!, src!, out!, axis, outShape, base !== undefined);
      else scatterAddBucketed(gpu, op, space, idx!, src!, out!, base !== undefined);
    },
  };
}

/** GPU f32 indexAdd: rows of the dense src [outer, T, inner] bucketed by target, summed in row order. */
function indexAddBucketed(gpu: WebGPUBackend, idx: Tensor, src: Tensor, out: Tensor, axis: number, outShape: readonly number[], hasBase: boolean): void {
  const K = outShape[axis]!;
  const T = idx.shape[0]!;
  const inner = sizeOf(outShape.slice(axis + 1));
  const csr = gpu.alloc(scatterCsrSize(K, T), 'i32');
  gpu.run(scatterCsrKernel, { mode: 'slices', rank: 0 }, { params: { n: T, idx_offset: idx.offset, idx_stride: idx.strides[0]!, K }, bindings: { idx, csr }, workgroups: 1 });
  const total = out.size;
  gpu.run(scatterSumKernel, { mode: 'slices' }, {
    params: { total, K, n: T, has_base: hasBase ? 1 : 0, inner, src_offset: src.offset },
    bindings: { src, csr, out },
    workgroups: Math.ceil(total / INDEX_WG),
  });
  gpu.free(csr);
}

/** GPU f32 scatterAdd where targets may repeat: source elements bucketed by output element, summed in source order. */
function scatterAddBucketed(gpu: WebGPUBackend, op: string, space: Space, idx: Tensor, src: Tensor, out: Tensor, hasBase: boolean): void {
  const c = collapseDims(space.shape, space.strides);
  const R = c.shape.length;
  if (R > GATHER_SCATTER_MAX_RANK) throw new Error(`${op}: iteration space of rank ${R} is too large for the kernel parameters (max ${GATHER_SCATTER_MAX_RANK} after collapsing)`);
  const n = sizeOf(space.shape);
  const K = out.size;
  const csr = gpu.alloc(scatterCsrSize(K, n), 'i32');
  gpu.run(scatterCsrKernel, { mode: 'elements', rank: R }, {
    params: Object.assign({}, spaceParams(space, c, n), { K }),
    bindings: { idx, csr },
    workgroups: 1,
  });
  gpu.run(scatterSumKernel, { mode: 'elements' }, { params: { total: K, K, n, has_base: hasBase ? 1 : 0 }, bindings: { src, csr, out }, workgroups: Math.ceil(K / INDEX_WG) });
  gpu.free(csr);
}

/**
 * A scatter into an empty axis from a non-empty source: every index is out of range. No kernel
 * runs for an empty result, so the CPU reference reports the first index here (GPU: nothing is added).
 */
function checkEmptyTarget(op: string, idx: Tensor, src: Tensor, axis: number, outShape: readonly number[], slices: boolean): void {
  if (src.size === 0 || sizeOf(outShape) > 0 || idx.backend.kind !== 'cpu') return;
  const id = cpuData(idx);
  forEachStrided(src.shape, [idxStrides(idx, axis, src.rank, slices)], [idx.offset], (_i, offs) => {
    throw rangeError(op, id[offs[0]!]!, axis, outShape[axis]!);
  });
}

function scatterOutputs(op: string, slices: boolean) {
  return ([idx, src, base]: readonly Tensor[], { axis, outShape }: ScatterAttrs): OutputSpec[] => {
    if (base && base.dtype !== src!.dtype) throw new TypeError(`${op}: dtype mismatch, ${base.describe()} vs ${src!.describe()}`);
    checkEmptyTarget(op, idx!, src!, axis, outShape, slices);
    return [{ shape: outShape, dtype: src!.dtype, name: op }];
  };
}

const indexSelectOp = defineOp<AxisAttrs>({
  name: 'index_select',
  outputs: ([x, idx], { axis }) => {
    const shape = [...x!.shape];
    shape[axis] = idx!.shape[0]!;
    return [{ shape, dtype: x!.dtype }];
  },
  kernels: gatherKernels('indexSelect', true),
  nondiff: [1],
  grad: (g, { inputs: [x, idx], attrs: { axis } }) => [indexAdd(x!.shape, axis, idx!, g), null],
});

const takeAlongAxisOp = defineOp<AxisAttrs>({
  name: 'take_along_axis',
  outputs: ([x, idx]) => [{ shape: idx!.shape, dtype: x!.dtype }],
  kernels: gatherKernels('takeAlongAxis', false),
  nondiff: [1],
  grad: (g, { inputs: [x, idx], attrs: { axis } }) => [scatterAdd(x!.shape, axis, idx!, g), null],
});

const indexAddOp = defineOp<ScatterAttrs>({
  name: 'index_add',
  outputs: scatterOutputs('indexAdd', true),
  // The bucketed GPU sum reads src as a dense [outer, T, inner] block.
  dense: [1],
  kernels: scatterKernels('indexAdd', true),
  nondiff: [0],
  grad: (g, { inputs: [idx], attrs: { axis, hasBase } }) => [null, indexSelect(g, axis, idx!), ...(hasBase ? [g] : [])],
});

const scatterAddOp = defineOp<ScatterAttrs>({
  name: 'scatter_add',
  outputs: scatterOutputs('scatterAdd', false),
  kernels: scatterKernels('scatterAdd', false),
  nondiff: [0],
  grad: (g, { inputs: [idx], attrs: { axis, hasBase } }) => [null, takeAlongAxis(g, idx!, axis), ...(hasBase ? [g] : [])],
});

/**
 * Selects entries of `x` along `axis` at the positions in the 1-D i32 tensor `idx`
 * (torch.index_select). Output shape: x.shape with shape[axis] = idx.length. Repeats allowed.
 */
export function indexSelect(x: Tensor, axis: number, idx: Tensor): Tensor {
  checkIndex('indexSelect', idx);
  if (idx.rank !== 1) throw new Error(`indexSelect: indices must be 1-D, got ${idx.describe()}`);
  if (x.rank === 0) throw new Error(`indexSelect: cannot index a scalar ${x.describe()}`);
  return indexSelectOp([x, idx], { axis: normAxis(axis, x.rank, 'indexSelect') })[0]!;
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
  return indexAddOp(base ? [idx, src, base] : [idx, src], { axis: ax, outShape, hasBase: base !== null })[0]!;
}

/**
 * Embedding lookup: rows of `weight` [V, D] at the i32 `ids` (any shape) -> ids.shape + [D].
 * The gradient w.r.t. the weight is an indexAdd of the output gradient rows.
 */
export function embedding(weight: Tensor, ids: Tensor): Tensor {
  checkIndex('embedding', ids);
  if (weight.rank !== 2) throw new Error(`embedding: weight must be [V, D], got ${weight.describe()}`);
  return composite([weight], () => reshape(indexSelect(weight, 0, reshape(ids, [ids.size])), [...ids.shape, weight.shape[1]!]));
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
  return takeAlongAxisOp([x, idx], { axis: ax })[0]!;
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
  const attrs = { axis: ax, outShape, hasBase: base !== null };
  if (shapesEqual(src.shape, idx.shape)) return scatterAddOp(base ? [idx, src, base] : [idx, src], attrs)[0]!;
  // Only the idx-shaped block of src takes part: a slice view makes the gradient w.r.t. src
  // the right shape (zeros outside the block) with no special case.
  return composite([src, base], () => {
    const s = slice(src, idx.shape.map((d) => [0, d] as [number, number]));
    return scatterAddOp(base ? [idx, s, base] : [idx, s], attrs)[0]!;
  });
}
