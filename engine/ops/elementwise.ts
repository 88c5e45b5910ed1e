/**
 * The elementwise kernels: one computation over broadcast inputs, given as a WGSL expression and
 * its CPU twin. Every unary, binary, comparison, `where`, cast and copy op declares itself with
 * these kernels (see unary.ts, binary.ts); `elementwise()` runs an undeclared expression (copies,
 * fills) through the same runner.
 */
import { cpuData, forEachStrided } from '../cpu/strided.js';
import type { CpuBackend } from '../cpu/backend.js';
import { DTYPE_INFO, type DType } from '../dtype.js';
import { defineKernel, read, rw, type ParamDecls, type BindingDecls } from '../kernel.js';
import { defineOp, setDenseCopy, type OpArgs, type OpKernels, type OutputSpec } from '../op.js';
import { broadcastShapes, broadcastStrides, collapseDims, fmtShape, shapesEqual } from '../shape.js';
import type { Tensor } from '../tensor.js';
import type { WebGPUBackend } from '../webgpu/backend.js';
import { EW_NAMES, EW_WG, elementwiseBody, elementwiseVec4Body, type ElementwiseVariant } from '../../shaders/elementwise.js';
import { MATH_WGSL } from '../../shaders/math.js';

export { checkSameBackend } from '../op.js';

export interface ElementwiseSpec {
  /** WGSL expression over a, b, c... and s0, s1... */
  expr: string;
  /** CPU reference of the same expression. */
  cpu: (...args: number[]) => number;
  outDtype: DType;
  scalars?: readonly number[];
  /** dtype of the scalars (default: the first input's dtype). */
  scalarDtype?: DType;
  /** Write into this (possibly strided) view instead of a new tensor; its shape is the output shape. */
  into?: Tensor;
}

/** Copy expressions per dtype (copies into views, dense copies). */
export const COPY: Record<DType, ElementwiseSpec> = {
  f32: { expr: 'a', cpu: (a) => a, outDtype: 'f32' },
  i32: { expr: 'a', cpu: (a) => a, outDtype: 'i32' },
};
/** Zero fills per dtype. */
export const ZERO: Record<DType, ElementwiseSpec> = {
  f32: { expr: 's0', cpu: (v) => v, outDtype: 'f32', scalars: [0] },
  i32: { expr: 's0', cpu: (v) => v, outDtype: 'i32', scalars: [0] },
};

/** The broadcast output of an elementwise op, checked (or the `into` view it writes). */
export function elementwiseOutputs(op: string, inputs: readonly Tensor[], spec: ElementwiseSpec): OutputSpec[] {
  let shape: number[] = [];
  if (spec.into) shape = [...spec.into.shape];
  else for (const t of inputs) shape = broadcastShapes(shape, t.shape, op);
  for (const t of inputs) {
    if (!shapesEqual(broadcastShapes(t.shape, shape, op), shape)) throw new Error(`${op}: cannot broadcast ${fmtShape(t.shape)} to ${fmtShape(shape)}`);
  }
  if (spec.into) {
    if (spec.into.dtype !== spec.outDtype) throw new TypeError(`${op}: cannot write ${spec.outDtype} into ${spec.into.describe()}`);
    return [{ into: spec.into }];
  }
  return [{ shape, dtype: spec.outDtype, name: op }];
}

const ewKernel = defineKernel<ElementwiseVariant>({
  name: 'elementwise',
  key: (v) => `${v.vec4 ? 'v4' : `r${v.rank}`}|${v.expr}|${v.inTypes.join(',')}|${v.outType}|${v.scalarType}|${v.nScalars}`,
  signature: (v) => {
    const params: Record<string, ParamDecls[string]> = { n: 'u32' };
    if (!v.vec4) params.shape = ['u32', v.rank];
    const bindings: Record<string, BindingDecls[string]> = {};
    const elem = (t: string) => (v.vec4 ? `vec4<${t}>` : t);
    v.inTypes.forEach((t, k) => {
      params[`off${k}`] = 'u32';
      if (!v.vec4) params[`st${k}`] = ['u32', v.rank];
      bindings[`in${k}`] = read(elem(t));
    });
    params.off_out = 'u32';
    if (!v.vec4) params.st_out = ['u32', v.rank];
    params.s = [v.scalarType as 'f32' | 'i32', v.nScalars];
    bindings.out = rw(elem(v.outType));
    return { params, bindings };
  },
  body: (v) => MATH_WGSL + (v.vec4 ? elementwiseVec4Body(v) : elementwiseBody(v)),
});

function cpuKernel(_b: CpuBackend, { inputs, outputs, attrs: spec }: OpArgs<ElementwiseSpec>): void {
  const out = outputs[0]!;
  const shape = out.shape;
  const strides = inputs.map((t) => broadcastStrides(t.shape, t.strides, shape));
  strides.push([...out.strides]);
  const scalars = spec.scalars ?? [];
  const o = cpuData(out);
  const datas = inputs.map(cpuData);
  const vals = new Array<number>(inputs.length + scalars.length);
  scalars.forEach((s, j) => (vals[inputs.length + j] = s));
  const isInt = spec.outDtype === 'i32';
  const m = datas.length;
  const f = spec.cpu;
  forEachStrided(shape, strides, [...inputs.map((t) => t.offset), out.offset], (_i, offs) => {
    for (let k = 0; k < m; k++) vals[k] = datas[k]![offs[k]!]!;
    const v = f(...vals);
    o[offs[m]!] = isInt ? Math.trunc(v) : v;
  });
}

// Parameter and binding names per input, made once (a template string per dispatch is a new string to hash).
const OFF_NAMES = EW_NAMES.map((_, k) => `off${k}`);
const ST_NAMES = EW_NAMES.map((_, k) => `st${k}`);
const IN_NAMES = EW_NAMES.map((_, k) => `in${k}`);

function gpuKernel(gpu: WebGPUBackend, { inputs, outputs, attrs: spec }: OpArgs<ElementwiseSpec>): void {
  const out = outputs[0]!;
  const shape = out.shape;
  const n = out.size;
  const strides = inputs.map((t) => broadcastStrides(t.shape, t.strides, shape));
  strides.push([...out.strides]);
  const c = collapseDims(shape, strides);
  const R = c.shape.length;
  const scalars = spec.scalars ?? [];
  const scalarType = spec.scalarDtype ?? inputs[0]?.dtype ?? spec.outDtype;
  const offsets = [...inputs.map((t) => t.offset), out.offset];
  const vec4 = R === 1 && n % 4 === 0 && c.strides.every((st) => st[0] === 1) && offsets.every((o) => o % 4 === 0);
  const variant: ElementwiseVariant = {
    vec4,
    rank: R,
    expr: spec.expr,
    inTypes: inputs.map((t) => DTYPE_INFO[t.dtype].wgsl),
    outType: DTYPE_INFO[spec.outDtype].wgsl,
    scalarType: DTYPE_INFO[scalarType].wgsl,
    nScalars: scalars.length,
  };
  const params: Record<string, number | readonly number[]> = { n: vec4 ? n / 4 : n, off_out: vec4 ? out.offset / 4 : out.offset, s: scalars };
  const bindings: Record<string, Tensor> = { out };
  for (let k = 0; k < inputs.length; k++) {
    const t = inputs[k]!;
    params[OFF_NAMES[k]!] = vec4 ? t.offset / 4 : t.offset;
    if (!vec4) params[ST_NAMES[k]!] = c.strides[k]!;
    bindings[IN_NAMES[k]!] = t;
  }
  if (!vec4) {
    params.shape = c.shape;
    params.st_out = c.strides[inputs.length]!;
  }
  gpu.run(ewKernel, variant, { params, bindings, workgroups: Math.ceil((vec4 ? n / 4 : n) / EW_WG) });
}

/** Kernels of every op that is one elementwise expression (its attrs are the expression). */
export const elementwiseKernels: OpKernels<ElementwiseSpec> = { cpu: cpuKernel, webgpu: gpuKernel };

interface NamedSpec extends ElementwiseSpec {
  op: string;
}

const elementwiseOp = defineOp<NamedSpec>({
  name: 'elementwise',
  outputs: (inputs, spec) => {
    if (inputs.length > EW_NAMES.length) throw new Error(`${spec.op}: elementwise takes at most ${EW_NAMES.length} inputs`);
    return elementwiseOutputs(spec.op, inputs, spec);
  },
  kernels: elementwiseKernels as OpKernels<NamedSpec>,
});

/** Runs one elementwise expression (no gradient is recorded: callers record their own). */
export function elementwise(op: string, inputs: Tensor[], spec: ElementwiseSpec): Tensor {
  return elementwiseOp(inputs, Object.assign({}, spec, { op }))[0]!;
}

const identity = (a: number) => a;
setDenseCopy((t) => elementwise('dense_copy', [t], { expr: 'a', cpu: identity, outDtype: t.dtype }));
