/**
 * Runs one elementwise computation over broadcast inputs on either backend. Every unary, binary,
 * comparison, `where` and cast op is a call to `elementwise` with a WGSL expression and its CPU twin.
 */
import { CpuBackend, CpuStorage } from '../cpu/backend.js';
import { cpuData, forEachStrided } from '../cpu/strided.js';
import { DTYPE_INFO, type DType } from '../dtype.js';
import { broadcastShapes, broadcastStrides, collapseDims, fmtShape, shapesEqual, sizeOf } from '../shape.js';
import { Tensor } from '../tensor.js';
import { GpuStorage, ParamBuilder, WebGPUBackend } from '../webgpu/backend.js';
import { elementwiseShader, elementwiseVec4Shader, EW_WG } from '../../shaders/elementwise.js';
import { MATH_WGSL } from '../../shaders/math.js';

export interface ElementwiseSpec {
  /** WGSL expression over a, b, c... and s0, s1... */
  expr: string;
  /** CPU reference of the same expression. */
  cpu: (...args: number[]) => number;
  outDtype: DType;
  scalars?: number[];
  /** dtype of the scalars (default: the first input's dtype). */
  scalarDtype?: DType;
  /** Write into this (possibly strided) view instead of a new tensor; its shape is the output shape. */
  into?: Tensor;
}

export function checkSameBackend(op: string, inputs: Tensor[]): void {
  const b = inputs[0]!.backend;
  for (const t of inputs) {
    t.storage; // throws a clear error if disposed
    if (t.backend !== b) throw new Error(`${op}: inputs live on different backends (${b.name} and ${t.backend.name}); move them with .to(backend)`);
  }
}

export function elementwise(op: string, inputs: Tensor[], spec: ElementwiseSpec): Tensor {
  if (inputs.length === 0 && !spec.into) throw new Error(`${op}: elementwise needs an input or an output view`);
  if (inputs.length > 0) checkSameBackend(op, inputs);
  const backend = (inputs[0] ?? spec.into)!.backend;
  let shape: number[] = [];
  if (spec.into) shape = [...spec.into.shape];
  else for (const t of inputs) shape = broadcastShapes(shape, t.shape, op);
  for (const t of inputs) {
    if (!shapesEqual(broadcastShapes(t.shape, shape, op), shape)) throw new Error(`${op}: cannot broadcast ${fmtShape(t.shape)} to ${fmtShape(shape)}`);
  }
  const n = sizeOf(shape);
  if (spec.into && spec.into.dtype !== spec.outDtype) throw new TypeError(`${op}: cannot write ${spec.outDtype} into ${spec.into.describe()}`);
  if (spec.into) checkSameBackend(op, [inputs[0] ?? spec.into, spec.into]);
  const out = spec.into ?? new Tensor(backend.alloc(n, spec.outDtype), shape, spec.outDtype, op);
  const storage = out.storage;
  if (n === 0) return out;
  const strides = inputs.map((t) => broadcastStrides(t.shape, t.strides, shape));
  strides.push([...out.strides]);
  const scalars = spec.scalars ?? [];
  if (backend instanceof CpuBackend) {
    const o = (storage as CpuStorage).data;
    const datas = inputs.map(cpuData);
    const vals = new Array<number>(inputs.length + scalars.length);
    scalars.forEach((s, j) => (vals[inputs.length + j] = s));
    const isInt = spec.outDtype === 'i32';
    const m = datas.length;
    forEachStrided(shape, strides, [...inputs.map((t) => t.offset), out.offset], (_i, offs) => {
      for (let k = 0; k < m; k++) vals[k] = datas[k]![offs[k]!]!;
      const v = spec.cpu(...vals);
      o[offs[m]!] = isInt ? Math.trunc(v) : v;
    });
    return out;
  }
  const gpu = backend as WebGPUBackend;
  const c = collapseDims(shape, strides);
  const R = c.shape.length;
  const scalarType = spec.scalarDtype ?? inputs[0]?.dtype ?? spec.outDtype;
  const inTypes = inputs.map((t) => DTYPE_INFO[t.dtype].wgsl);
  const outType = DTYPE_INFO[spec.outDtype].wgsl;
  const offsets = [...inputs.map((t) => t.offset), out.offset];
  const buffers = [...inputs.map((t) => ({ storage: t.storage as GpuStorage, access: 'read' as const })), { storage: storage as GpuStorage, access: 'read_write' as const }];
  const code = { expr: spec.expr, inTypes, outType, scalarType: DTYPE_INFO[scalarType].wgsl, nScalars: scalars.length };
  const p = new ParamBuilder();
  if (R === 1 && n % 4 === 0 && c.strides.every((st) => st[0] === 1) && offsets.every((o) => o % 4 === 0)) {
    p.u32(n / 4, ...offsets.map((o) => o / 4));
    if (scalarType === 'i32') p.i32(...scalars);
    else p.f32(...scalars);
    gpu.dispatch({
      key: `ew4|${spec.expr}|${inTypes.join(',')}|${outType}|${scalarType}|${scalars.length}`,
      code: () => MATH_WGSL + elementwiseVec4Shader(code),
      buffers,
      params: p.words,
      workgroups: Math.ceil(n / 4 / EW_WG),
    });
    return out;
  }
  p.u32(n, ...c.shape);
  inputs.forEach((t, k) => p.u32(t.offset, ...c.strides[k]!));
  p.u32(out.offset, ...c.strides[inputs.length]!);
  if (scalarType === 'i32') p.i32(...scalars);
  else p.f32(...scalars);
  gpu.dispatch({
    key: `ew|${spec.expr}|${inTypes.join(',')}|${outType}|${scalarType}|${scalars.length}|${R}`,
    code: () => MATH_WGSL + elementwiseShader({ ...code, rank: R }),
    buffers,
    params: p.words,
    workgroups: Math.ceil(n / EW_WG),
  });
  return out;
}
