/**
 * Method forms of the ops (x.add(y).relu().sum()), attached to Tensor.prototype. The functions
 * themselves live in engine/ops; this file only wires names.
 */
import type { Backend } from './backend.js';
import type { DType } from './dtype.js';
import { Tensor } from './tensor.js';
import { backward, type BackwardOptions } from './autograd.js';
import * as B from './ops/binary.js';
import * as U from './ops/unary.js';
import * as R from './ops/reduce.js';
import * as M from './ops/movement.js';
import { matmul } from './ops/matmul.js';
import { logSoftmax, softmax } from './ops/softmax.js';
import { indexSelect, takeAlongAxis } from './ops/indexing.js';
import { readContiguous, toBackend } from './ops/creation.js';

type Operand = Tensor | number;

declare module './tensor.js' {
  interface Tensor {
    add(o: Operand): Tensor;
    sub(o: Operand): Tensor;
    mul(o: Operand): Tensor;
    div(o: Operand): Tensor;
    pow(o: Operand): Tensor;
    maximum(o: Operand): Tensor;
    minimum(o: Operand): Tensor;
    eq(o: Operand): Tensor;
    ne(o: Operand): Tensor;
    lt(o: Operand): Tensor;
    le(o: Operand): Tensor;
    gt(o: Operand): Tensor;
    ge(o: Operand): Tensor;
    neg(): Tensor;
    exp(): Tensor;
    log(): Tensor;
    sqrt(): Tensor;
    rsqrt(): Tensor;
    abs(): Tensor;
    sign(): Tensor;
    tanh(): Tensor;
    sigmoid(): Tensor;
    relu(): Tensor;
    gelu(approximate?: 'none' | 'tanh'): Tensor;
    leakyRelu(negativeSlope?: number): Tensor;
    silu(): Tensor;
    sin(): Tensor;
    cos(): Tensor;
    square(): Tensor;
    floor(): Tensor;
    erf(): Tensor;
    reciprocal(): Tensor;
    sum(axes?: R.Axes, keepdim?: boolean): Tensor;
    mean(axes?: R.Axes, keepdim?: boolean): Tensor;
    max(axes?: R.Axes, keepdim?: boolean): Tensor;
    min(axes?: R.Axes, keepdim?: boolean): Tensor;
    argmax(axis?: number, keepdim?: boolean): Tensor;
    argmin(axis?: number, keepdim?: boolean): Tensor;
    var(axes?: R.Axes, opts?: R.VarianceOptions): Tensor;
    logsumexp(axes?: R.Axes, keepdim?: boolean): Tensor;
    reshape(shape: readonly number[]): Tensor;
    flatten(startDim?: number, endDim?: number): Tensor;
    permute(dims: readonly number[]): Tensor;
    transpose(dim0?: number, dim1?: number): Tensor;
    expand(shape: readonly number[]): Tensor;
    unsqueeze(dim: number): Tensor;
    squeeze(dim?: number): Tensor;
    slice(spec: M.SliceSpec): Tensor;
    contiguous(): Tensor;
    detach(): Tensor;
    cast(dtype: DType): Tensor;
    /** In-place copy of `value` into this tensor's memory (not recorded for autodiff). */
    assign(value: Tensor | number): Tensor;
    softmax(axis?: number): Tensor;
    logSoftmax(axis?: number): Tensor;
    matmul(o: Tensor): Tensor;
    indexSelect(axis: number, idx: Tensor): Tensor;
    takeAlongAxis(idx: Tensor, axis: number): Tensor;
    backward(gradOutput?: Tensor, opts?: BackwardOptions): void;
    /** Row-major elements (waits for the device). */
    toArray(): Promise<Float32Array | Float64Array | Int32Array>;
    /** Nested JS arrays (waits for the device). */
    toNested(): Promise<unknown>;
    /** The value of a one-element tensor. */
    item(): Promise<number>;
    to(backend: Backend): Promise<Tensor>;
  }
}

const P = Tensor.prototype;
for (const name of ['add', 'sub', 'mul', 'div', 'pow', 'maximum', 'minimum', 'eq', 'ne', 'lt', 'le', 'gt', 'ge'] as const) {
  const f = B[name];
  P[name] = function (this: Tensor, o: Operand) {
    return f(this, o);
  };
}
for (const name of ['neg', 'exp', 'log', 'sqrt', 'rsqrt', 'abs', 'sign', 'tanh', 'sigmoid', 'relu', 'silu', 'sin', 'cos', 'square', 'floor', 'erf', 'reciprocal'] as const) {
  const f = U[name];
  P[name] = function (this: Tensor) {
    return f(this);
  };
}
P.gelu = function (approximate) {
  return U.gelu(this, approximate);
};
P.leakyRelu = function (s) {
  return U.leakyRelu(this, s);
};
P.sum = function (a, k) {
  return R.sum(this, a, k);
};
P.mean = function (a, k) {
  return R.mean(this, a, k);
};
P.max = function (a, k) {
  return R.max(this, a, k);
};
P.min = function (a, k) {
  return R.min(this, a, k);
};
P.argmax = function (a, k) {
  return R.argmax(this, a, k);
};
P.argmin = function (a, k) {
  return R.argmin(this, a, k);
};
P.var = function (a, o) {
  return R.variance(this, a, o);
};
P.logsumexp = function (a, k) {
  return R.logsumexp(this, a, k);
};
P.reshape = function (s) {
  return M.reshape(this, s);
};
P.flatten = function (s, e) {
  return M.flatten(this, s, e);
};
P.permute = function (d) {
  return M.permute(this, d);
};
P.transpose = function (a, b) {
  return M.transpose(this, a, b);
};
P.expand = function (s) {
  return M.expand(this, s);
};
P.unsqueeze = function (d) {
  return M.unsqueeze(this, d);
};
P.squeeze = function (d) {
  return M.squeeze(this, d);
};
P.slice = function (s) {
  return M.slice(this, s);
};
P.contiguous = function () {
  return M.contiguous(this);
};
P.detach = function () {
  return M.detach(this);
};
P.cast = function (d) {
  return M.cast(this, d);
};
P.assign = function (v) {
  return M.assign(this, v);
};
P.matmul = function (o) {
  return matmul(this, o);
};
P.softmax = function (a) {
  return softmax(this, a);
};
P.logSoftmax = function (a) {
  return logSoftmax(this, a);
};
P.indexSelect = function (a, i) {
  return indexSelect(this, a, i);
};
P.takeAlongAxis = function (i, a) {
  return takeAlongAxis(this, i, a);
};
P.backward = function (g, o) {
  backward(this, g, o);
};
P.toArray = function () {
  return readContiguous(this);
};
P.toNested = async function () {
  const flat = Array.from(await readContiguous(this));
  const build = (dim: number, off: number): unknown => {
    if (dim === this.rank) return flat[off];
    const stride = this.shape.slice(dim + 1).reduce((a, b) => a * b, 1);
    return Array.from({ length: this.shape[dim]! }, (_, i) => build(dim + 1, off + i * stride));
  };
  return build(0, 0);
};
P.item = async function () {
  if (this.size !== 1) throw new Error(`item: ${this.describe()} has ${this.size} elements, expected 1`);
  return (await readContiguous(this))[0]!;
};
P.to = function (b) {
  return toBackend(this, b);
};
