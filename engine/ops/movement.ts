/**
 * Shape and layout ops. reshape/permute/expand/slice/squeeze are views (no copy) when the layout
 * allows, recorded on the tape by hand (they run no kernel); contiguous, cast, concat and the
 * slice adjoint are declared ops that copy through the elementwise kernels.
 */
import type { CpuBackend } from '../cpu/backend.js';
import { checkDType, type DType } from '../dtype.js';
import { composite } from '../composite.js';
import { record } from '../grad-mode.js';
import { defineOp, type OpArgs, type OpKernels } from '../op.js';
import { contiguousStrides, fmtShape, normAxis, sizeOf } from '../shape.js';
import { Tensor } from '../tensor.js';
import type { WebGPUBackend } from '../webgpu/backend.js';
import { COPY, elementwise, elementwiseKernels, ZERO, type ElementwiseSpec } from './elementwise.js';
import { sumTo } from './reduce.js';

/** A view sharing `x`'s storage. */
function view(x: Tensor, op: string, shape: readonly number[], strides: readonly number[], offset: number): Tensor {
  return new Tensor(x.storage, shape, x.dtype, op, strides, offset);
}

const CAST: Record<DType, ElementwiseSpec> = {
  f32: { expr: 'f32(a)', cpu: (a) => a, outDtype: 'f32' },
  i32: { expr: 'i32(a)', cpu: Math.trunc, outDtype: 'i32' },
};

/** Runs elementwise `spec` over `inputs` into `out` (a new tensor or a view of one). */
type Copy = (inputs: Tensor[], out: Tensor, spec: ElementwiseSpec) => void;

/** Kernels written once over the elementwise kernel of whichever backend runs them. */
function viaElementwise<A>(kernel: (copy: Copy, args: OpArgs<A>) => void): OpKernels<A> {
  const cpu = elementwiseKernels.cpu!;
  const webgpu = elementwiseKernels.webgpu!;
  return {
    cpu: (b: CpuBackend, args) => kernel((inputs, out, attrs) => cpu(b, { inputs, outputs: [out], attrs }), args),
    webgpu: (gpu: WebGPUBackend, args) => kernel((inputs, out, attrs) => webgpu(gpu, { inputs, outputs: [out], attrs }), args),
  };
}

const contiguousOp = defineOp<ElementwiseSpec>({
  name: 'contiguous',
  outputs: ([x]) => [{ shape: x!.shape, dtype: x!.dtype }],
  kernels: elementwiseKernels,
  grad: (g) => [g],
});

/** A contiguous copy (or `x` itself, as a new view, when already contiguous). */
export function contiguous(x: Tensor): Tensor {
  if (!x.isContiguous) return contiguousOp([x], COPY[x.dtype])[0]!;
  return record(view(x, 'contiguous', x.shape, x.strides, x.offset), 'contiguous', [x], (g) => [g]);
}

/** A view that shares storage but is cut from the tape. */
export function detach(x: Tensor): Tensor {
  return view(x, 'detach', x.shape, x.strides, x.offset);
}

/** Strides that let `x` be viewed with `shape` without copying, or null. */
function viewStrides(x: Tensor, shape: readonly number[]): number[] | null {
  return x.isContiguous ? contiguousStrides(shape) : null;
}

export function reshape(x: Tensor, shape: readonly number[]): Tensor {
  const s = [...shape];
  const infer = s.indexOf(-1);
  if (infer >= 0) {
    if (s.indexOf(-1, infer + 1) >= 0) throw new Error(`reshape: only one -1 allowed in ${fmtShape(shape)}`);
    const rest = sizeOf(s.filter((_, i) => i !== infer));
    if (rest === 0 || x.size % rest !== 0) throw new Error(`reshape: cannot reshape ${fmtShape(x.shape)} to ${fmtShape(shape)}`);
    s[infer] = x.size / rest;
  }
  if (s.some((d) => !Number.isInteger(d) || d < 0) || sizeOf(s) !== x.size) {
    throw new Error(`reshape: cannot reshape ${x.describe()} (${x.size} elements) to ${fmtShape(shape)}`);
  }
  const strides = viewStrides(x, s);
  let y: Tensor;
  if (strides) y = view(x, 'reshape', s, strides, x.offset);
  else {
    // An unrecorded copy (this op records the one node from x); the view keeps its storage.
    using c = elementwise('reshape', [x], COPY[x.dtype]);
    y = view(c, 'reshape', s, contiguousStrides(s), 0);
  }
  return record(y, 'reshape', [x], (g) => [reshape(g, x.shape)]);
}

export function flatten(x: Tensor, startDim = 0, endDim = -1): Tensor {
  if (x.rank === 0) return reshape(x, [1]);
  const s = normAxis(startDim, x.rank, 'flatten');
  const e = normAxis(endDim, x.rank, 'flatten');
  const shape = [...x.shape.slice(0, s), sizeOf(x.shape.slice(s, e + 1)), ...x.shape.slice(e + 1)];
  return reshape(x, shape);
}

export function permute(x: Tensor, dims: readonly number[]): Tensor {
  if (dims.length !== x.rank) throw new Error(`permute: ${dims.length} dims given for ${x.describe()}`);
  const d = dims.map((a) => normAxis(a, x.rank, 'permute'));
  if (new Set(d).size !== d.length) throw new Error(`permute: repeated dim in ${fmtShape(dims)}`);
  const y = view(x, 'permute', d.map((i) => x.shape[i]!), d.map((i) => x.strides[i]!), x.offset);
  const inv = new Array<number>(d.length);
  d.forEach((a, i) => (inv[a] = i));
  return record(y, 'permute', [x], (g) => [permute(g, inv)]);
}

/** Swaps two dims (default: the last two). */
export function transpose(x: Tensor, dim0 = -2, dim1 = -1): Tensor {
  const a = normAxis(dim0, x.rank, 'transpose');
  const b = normAxis(dim1, x.rank, 'transpose');
  const dims = x.shape.map((_, i) => i);
  [dims[a], dims[b]] = [dims[b]!, dims[a]!];
  return permute(x, dims);
}

/** Broadcasts size-1 dims (and new leading dims) to `shape` as a stride-0 view. -1 keeps a dim. */
export function expand(x: Tensor, shape: readonly number[]): Tensor {
  const lead = shape.length - x.rank;
  if (lead < 0) throw new Error(`expand: cannot expand ${fmtShape(x.shape)} to fewer dims ${fmtShape(shape)}`);
  const outShape: number[] = [];
  const strides: number[] = [];
  for (let i = 0; i < shape.length; i++) {
    const src = i >= lead ? x.shape[i - lead]! : 1;
    const want = shape[i] === -1 ? src : shape[i]!;
    if (src !== want && src !== 1) throw new Error(`expand: cannot expand ${fmtShape(x.shape)} to ${fmtShape(shape)} (dim ${i}: ${src} vs ${want})`);
    outShape.push(want);
    strides.push(i >= lead && src === want ? x.strides[i - lead]! : 0);
  }
  const y = view(x, 'expand', outShape, strides, x.offset);
  return record(y, 'expand', [x], (g) => [sumTo(g, x.shape)]);
}

export function unsqueeze(x: Tensor, dim: number): Tensor {
  const d = normAxis(dim, x.rank + 1, 'unsqueeze');
  const shape = [...x.shape];
  shape.splice(d, 0, 1);
  return reshape(x, shape);
}

export function squeeze(x: Tensor, dim?: number): Tensor {
  if (dim === undefined) return reshape(x, x.shape.filter((d) => d !== 1));
  const d = normAxis(dim, x.rank, 'squeeze');
  if (x.shape[d] !== 1) return reshape(x, x.shape);
  return reshape(x, x.shape.filter((_, i) => i !== d));
}

/** Per-axis [start, end) range (negative indices count from the end; null = whole axis). */
export type SliceSpec = ([number, number] | [number, number, number] | number | null)[];

interface Range {
  start: number;
  size: number;
  step: number;
}

function resolveRanges(shape: readonly number[], spec: SliceSpec): Range[] {
  if (spec.length > shape.length) throw new Error(`slice: ${spec.length} ranges for shape ${fmtShape(shape)}`);
  return shape.map((dim, i) => {
    const r = spec[i];
    if (r === null || r === undefined) return { start: 0, size: dim, step: 1 };
    if (typeof r === 'number') {
      const idx = r < 0 ? r + dim : r;
      if (idx < 0 || idx >= dim) throw new RangeError(`slice: index ${r} out of range for dim ${i} of size ${dim}`);
      return { start: idx, size: 1, step: 1 };
    }
    const step = r[2] ?? 1;
    if (!Number.isInteger(step) || step < 1) throw new RangeError(`slice: step must be a positive integer, got ${step}`);
    const clamp = (v: number) => Math.min(Math.max(v < 0 ? v + dim : v, 0), dim);
    const start = clamp(r[0]);
    const end = Math.max(clamp(r[1]), start);
    return { start, size: Math.ceil((end - start) / step), step };
  });
}

/** A strided view of a sub-block: slice(x, [[0, 2], null, [1, -1]]). Number entries keep a size-1 dim. */
export function slice(x: Tensor, spec: SliceSpec): Tensor {
  const ranges = resolveRanges(x.shape, spec);
  let offset = x.offset;
  ranges.forEach((r, i) => (offset += r.start * x.strides[i]!));
  const y = view(x, 'slice', ranges.map((r) => r.size), ranges.map((r, i) => r.step * x.strides[i]!), offset);
  return record(y, 'slice', [x], (g) => [padSlice(g, x.shape, ranges)]);
}

interface SliceBackwardAttrs {
  shape: readonly number[];
  ranges: Range[];
}

/** The adjoint of slice: zeros of `shape` with `g` written at `ranges`. */
const sliceBackwardOp = defineOp<SliceBackwardAttrs>({
  name: 'slice_backward',
  outputs: ([g], { shape }) => [{ shape, dtype: g!.dtype }],
  kernels: viaElementwise((copy, { inputs: [g], outputs: [out], attrs: { ranges } }) => {
    copy([], out!, ZERO[out!.dtype]);
    using region = sliceView(out!, ranges);
    copy([g!], region, COPY[g!.dtype]);
  }),
  grad: (gg, { attrs: { ranges } }) => [slice(gg, ranges.map((r) => [r.start, r.start + r.size * r.step, r.step]))],
});

function padSlice(g: Tensor, shape: readonly number[], ranges: Range[]): Tensor {
  return sliceBackwardOp([g], { shape, ranges })[0]!;
}

function sliceView(x: Tensor, ranges: Range[]): Tensor {
  let offset = x.offset;
  ranges.forEach((r, i) => (offset += r.start * x.strides[i]!));
  return view(x, 'slice', ranges.map((r) => r.size), ranges.map((r, i) => r.step * x.strides[i]!), offset);
}

const concatOp = defineOp<{ axis: number }>({
  name: 'concat',
  outputs: (xs, { axis }) => {
    const first = xs[0]!;
    for (const t of xs) {
      if (t.rank !== first.rank || t.dtype !== first.dtype || t.shape.some((d, i) => i !== axis && d !== first.shape[i])) {
        throw new Error(`concat: ${t.describe()} does not match ${first.describe()} outside axis ${axis}`);
      }
    }
    const shape = [...first.shape];
    shape[axis] = xs.reduce((s, t) => s + t.shape[axis]!, 0);
    return [{ shape, dtype: first.dtype }];
  },
  // Each input is copied into its block of the output, a strided view.
  kernels: viaElementwise((copy, { inputs, outputs: [out], attrs: { axis } }) => {
    let offset = out!.offset;
    for (const t of inputs) {
      if (t.size > 0) {
        using region = view(out!, 'concat', t.shape, out!.strides, offset);
        copy([t], region, COPY[t.dtype]);
      }
      offset += t.shape[axis]! * out!.strides[axis]!;
    }
  }),
  grad: (g, { inputs, attrs: { axis } }) => {
    let start = 0;
    return inputs.map((t) => {
      const end = start + t.shape[axis]!;
      const block = slice(g, g.shape.map((_, i) => (i === axis ? [start, end] : null)));
      start = end;
      return block;
    });
  },
});

/** Joins tensors along an existing axis. */
export function concat(xs: readonly Tensor[], axis = 0): Tensor {
  if (xs.length === 0) throw new Error('concat: needs at least one tensor');
  return concatOp(xs, { axis: normAxis(axis, xs[0]!.rank, 'concat') })[0]!;
}

/** Joins tensors along a new axis. */
export function stack(xs: readonly Tensor[], axis = 0): Tensor {
  if (xs.length === 0) throw new Error('stack: needs at least one tensor');
  const ax = normAxis(axis, xs[0]!.rank + 1, 'stack');
  for (const t of xs) if (t.shape.length !== xs[0]!.rank || t.shape.some((d, i) => d !== xs[0]!.shape[i])) throw new Error(`stack: ${t.describe()} does not match ${xs[0]!.describe()}`);
  return composite(xs, () => concat(xs.map((t) => unsqueeze(t, ax)), ax));
}

/** Converts between dtypes: not differentiable, so no gradient is recorded. */
const castOp = defineOp<ElementwiseSpec>({
  name: 'cast',
  outputs: ([x], spec) => [{ shape: x!.shape, dtype: spec.outDtype }],
  kernels: elementwiseKernels,
});

/** Converts dtype (f32 -> i32 truncates toward zero). Not differentiable across dtypes. */
export function cast(x: Tensor, dtype: DType): Tensor {
  checkDType(dtype, 'cast');
  if (dtype === x.dtype) return contiguous(x);
  return castOp([x], CAST[dtype])[0]!;
}

/**
 * Copies `value` (broadcast to target's shape) into `target`'s memory, in place. Not recorded on
 * the tape: it is for optimizer updates and buffers, not for differentiable code.
 */
export function assign(target: Tensor, value: Tensor | number): Tensor {
  if (typeof value === 'number') {
    return elementwise('assign', [], { expr: 's0', cpu: (v) => v, outDtype: target.dtype, scalars: [value], into: target });
  }
  if (value.dtype !== target.dtype) throw new TypeError(`assign: dtype mismatch, ${value.describe()} into ${target.describe()}`);
  return elementwise('assign', [value], { ...COPY[target.dtype], into: target });
}
