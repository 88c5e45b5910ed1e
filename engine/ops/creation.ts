/** Creation ops: from data, constants, ranges, and moving between backends. */
import type { Backend } from '../backend.js';
import { getBackend } from '../default-backend.js';
import { checkDType, type DType } from '../dtype.js';
import { checkShape, fmtShape, sizeOf, type Shape } from '../shape.js';
import { Tensor } from '../tensor.js';
import { elementwise, type ElementwiseSpec } from './elementwise.js';

export interface CreateOptions {
  dtype?: DType;
  backend?: Backend;
}

type Nested = number | boolean | Nested[];

function flattenNested(data: Nested, shape: number[], out: number[], depth: number): void {
  if (Array.isArray(data)) {
    if (shape.length === depth) shape.push(data.length);
    else if (shape[depth] !== data.length) throw new Error(`tensor: ragged nested array (expected length ${shape[depth]} at depth ${depth}, got ${data.length})`);
    for (const d of data) flattenNested(d, shape, out, depth + 1);
  } else {
    if (shape.length !== depth) throw new Error(`tensor: ragged nested array (scalar at depth ${depth}, expected an array)`);
    out.push(Number(data));
  }
}

/**
 * Creates a tensor from a typed array / flat array plus `shape`, or from a nested array.
 * Int32Array data defaults to i32, everything else to f32.
 */
export function tensor(data: Nested | ArrayLike<number>, shapeOrOpts?: Shape | CreateOptions, maybeOpts: CreateOptions = {}): Tensor {
  const opts = Array.isArray(shapeOrOpts) || shapeOrOpts === undefined ? maybeOpts : (shapeOrOpts as CreateOptions);
  let shape = Array.isArray(shapeOrOpts) ? checkShape(shapeOrOpts as Shape, 'tensor') : undefined;
  let flat: ArrayLike<number>;
  if (ArrayBuffer.isView(data)) {
    flat = data as unknown as ArrayLike<number>;
    shape ??= [flat.length];
  } else if (typeof data === 'number' || typeof data === 'boolean') {
    flat = [Number(data)];
    shape ??= [];
  } else {
    const inferred: number[] = [];
    const values: number[] = [];
    flattenNested(data as Nested, inferred, values, 0);
    flat = values;
    shape ??= inferred;
  }
  if (sizeOf(shape) !== flat.length) throw new Error(`tensor: ${flat.length} values do not fill shape ${fmtShape(shape)} (needs ${sizeOf(shape)})`);
  const dtype = checkDType(opts.dtype ?? (data instanceof Int32Array ? 'i32' : 'f32'), 'tensor');
  const backend = opts.backend ?? getBackend();
  return new Tensor(backend.fromArray(flat, dtype), shape, dtype, 'tensor');
}

/** A tensor filled with `value`, computed on the device (no upload). */
export function full(shape: Shape, value: number, opts: CreateOptions = {}): Tensor {
  const s = checkShape(shape, 'full');
  const dtype = checkDType(opts.dtype ?? 'f32', 'full');
  const backend = opts.backend ?? getBackend();
  const out = new Tensor(backend.alloc(sizeOf(s), dtype), s, dtype, 'full');
  return elementwise('full', [], { expr: 's0', cpu: (v) => v, outDtype: dtype, scalars: [value], into: out });
}

export const zeros = (shape: Shape, opts: CreateOptions = {}) => full(shape, 0, opts);
export const ones = (shape: Shape, opts: CreateOptions = {}) => full(shape, 1, opts);

export function zerosLike(t: Tensor, dtype: DType = t.dtype): Tensor {
  return full(t.shape, 0, { dtype, backend: t.backend });
}

export function onesLike(t: Tensor, dtype: DType = t.dtype): Tensor {
  return full(t.shape, 1, { dtype, backend: t.backend });
}

export function fullLike(t: Tensor, value: number, dtype: DType = t.dtype): Tensor {
  return full(t.shape, value, { dtype, backend: t.backend });
}

/** Integers (or floats) start, start+step, ... below end. */
export function arange(start: number, end?: number, step = 1, opts: CreateOptions = {}): Tensor {
  if (end === undefined) [start, end] = [0, start];
  if (step === 0) throw new RangeError('arange: step must be non-zero');
  const n = Math.max(0, Math.ceil((end - start) / step));
  const values = new Array<number>(n);
  for (let i = 0; i < n; i++) values[i] = start + i * step;
  const dtype = opts.dtype ?? (Number.isInteger(start) && Number.isInteger(step) ? 'i32' : 'f32');
  return tensor(values, [n], { ...opts, dtype });
}

/** Copies a tensor to another backend (e.g. GPU -> float64 CPU reference). */
export async function toBackend(t: Tensor, backend: Backend): Promise<Tensor> {
  if (t.backend === backend) return t;
  const data = await readContiguous(t);
  return new Tensor(backend.fromArray(data, t.dtype), t.shape, t.dtype, 'to');
}

/** The elements of `t` in row-major order, as a typed array (waits for the GPU). */
export async function readContiguous(t: Tensor): Promise<Float32Array | Float64Array | Int32Array> {
  t.storage; // clear error if disposed
  if (t.isContiguous) return t.backend.read(t.storage, t.offset, t.size, t.dtype);
  // Scopes are synchronous and the copy crosses the await: `using` frees it.
  using c = elementwise('contiguous', [t], COPY[t.dtype]);
  return await c.backend.read(c.storage, 0, c.size, c.dtype);
}

const COPY: Record<DType, ElementwiseSpec> = {
  f32: { expr: 'a', cpu: (a) => a, outDtype: 'f32' },
  i32: { expr: 'a', cpu: (a) => a, outDtype: 'i32' },
};
