/**
 * Binary elementwise ops with NumPy broadcasting; either side may be a JS number (baked into the
 * kernel's parameters, not uploaded). Gradients are unbroadcast back to each input's shape.
 */
import { defineOp, type Op } from '../op.js';
import { isTensor, type Tensor } from '../tensor.js';
import { elementwiseKernels, elementwiseOutputs, type ElementwiseSpec } from './elementwise.js';
import { sumTo } from './reduce.js';
import { log, neg, powScalar, square } from './unary.js';

type Operand = Tensor | number;

interface BinaryDef {
  wgsl: string;
  cpu: (a: number, b: number) => number;
  /** Gradients w.r.t. a and b (before unbroadcasting); null = not differentiable. */
  /** Gradients for a and b; `need` says which are used (a JS-number side or a constant needs none). */
  grad: ((a: Tensor, b: Tensor, y: Tensor, g: Tensor, need: readonly [boolean, boolean]) => [Tensor | null, Tensor | null]) | null;
  /** Result is f32 0/1 (comparisons). */
  compare?: boolean;
  /** Also defined on i32. */
  int?: boolean;
  /** An interval for both operands where the op is defined and smooth (what its numeric tests sample). */
  domain: readonly [number, number];
}

export type BinaryName = 'add' | 'sub' | 'mul' | 'div' | 'pow' | 'maximum' | 'minimum' | 'eq' | 'ne' | 'lt' | 'le' | 'gt' | 'ge';

export const BINARY: Record<BinaryName, BinaryDef> = {
  add: { wgsl: 'a + b', cpu: (a, b) => a + b, grad: (_a, _b, _y, g) => [g, g], int: true, domain: [-3, 3] },
  sub: { wgsl: 'a - b', cpu: (a, b) => a - b, grad: (_a, _b, _y, g) => [g, neg(g)], int: true, domain: [-3, 3] },
  mul: { wgsl: 'a * b', cpu: (a, b) => a * b, grad: (a, b, _y, g, need) => [need[0] ? mul(g, b) : null, need[1] ? mul(g, a) : null], int: true, domain: [-3, 3] },
  // b may be a JS number (x.div(2)): then it has no gradient.
  div: { wgsl: 'a / b', cpu: (a, b) => a / b, grad: (a, b, _y, g, need) => [need[0] ? div(g, b) : null, need[1] && isTensor(b) ? neg(div(mul(g, a), square(b))) : null], domain: [0.5, 3] },
  pow: { wgsl: 'pow_s(a, b)', cpu: Math.pow, grad: (a, b, y, g, need) => [need[0] ? mul(g, mul(b, pow(a, sub(b, 1)))) : null, need[1] ? mul(g, mul(y, log(a))) : null], domain: [0.5, 2] },
  // Ties split the gradient evenly, as PyTorch does.
  maximum: { wgsl: 'max(a, b)', cpu: Math.max, grad: (a, b, _y, g) => tieSplit(gt(a, b), eq(a, b), g), int: true, domain: [-3, 3] },
  minimum: { wgsl: 'min(a, b)', cpu: Math.min, grad: (a, b, _y, g) => tieSplit(lt(a, b), eq(a, b), g), int: true, domain: [-3, 3] },
  eq: { wgsl: 'select(0.0, 1.0, a == b)', cpu: (a, b) => +(a === b), grad: null, compare: true, int: true, domain: [-3, 3] },
  ne: { wgsl: 'select(0.0, 1.0, a != b)', cpu: (a, b) => +(a !== b), grad: null, compare: true, int: true, domain: [-3, 3] },
  lt: { wgsl: 'select(0.0, 1.0, a < b)', cpu: (a, b) => +(a < b), grad: null, compare: true, int: true, domain: [-3, 3] },
  le: { wgsl: 'select(0.0, 1.0, a <= b)', cpu: (a, b) => +(a <= b), grad: null, compare: true, int: true, domain: [-3, 3] },
  gt: { wgsl: 'select(0.0, 1.0, a > b)', cpu: (a, b) => +(a > b), grad: null, compare: true, int: true, domain: [-3, 3] },
  ge: { wgsl: 'select(0.0, 1.0, a >= b)', cpu: (a, b) => +(a >= b), grad: null, compare: true, int: true, domain: [-3, 3] },
};


function tieSplit(win: Tensor, tie: Tensor, g: Tensor): [Tensor, Tensor] {
  const wa = add(win, mul(tie, 0.5));
  return [mul(g, wa), mul(g, sub(1, wa))];
}

interface BinarySpec extends ElementwiseSpec {
  /** The JS-number operand, baked in as scalar s0, and its side; absent when both are tensors. */
  scalarSide?: 'a' | 'b';
}

function declareBinary(name: BinaryName, def: BinaryDef): Op<BinarySpec> {
  const grad = def.grad;
  return defineOp<BinarySpec>({
    name,
    outputs: (inputs, spec) => {
      const [a, b] = inputs;
      if (b && a!.dtype !== b.dtype) throw new TypeError(`${name}: dtype mismatch, ${a!.describe()} vs ${b.describe()}; cast one with .cast()`);
      if (a!.dtype !== 'f32' && !def.int) throw new TypeError(`${name}: expected f32 tensors, got ${a!.describe()}`);
      return elementwiseOutputs(name, inputs, spec);
    },
    kernels: elementwiseKernels,
    grad: grad
      ? (g, { inputs, outputs, attrs }) => {
          const side = attrs.scalarSide;
          const s = attrs.scalars?.[0] as unknown as Tensor;
          const ta = side === 'a' ? null : inputs[0]!;
          const tb = side === 'b' ? null : side === 'a' ? inputs[0]! : inputs[1]!;
          const [ga, gb] = grad(ta ?? s, tb ?? s, outputs[0]!, g, [!!ta?.requiresGrad, !!tb?.requiresGrad]);
          const out: (Tensor | null)[] = [];
          if (ta) out.push(ga && sumTo(ga, ta.shape));
          if (tb) out.push(gb && sumTo(gb, tb.shape));
          return out;
        }
      : undefined,
  });
}

const BINARY_OPS = Object.fromEntries(Object.entries(BINARY).map(([name, def]) => [name, declareBinary(name as BinaryName, def)])) as Record<BinaryName, Op<BinarySpec>>;

/** Expressions and CPU twins per (op, which side is a JS number), built once. */
const EXPRS = new Map<string, { expr: string; cpu: (...v: number[]) => number }>();

function exprFor(name: BinaryName, side: 'a' | 'b' | undefined): { expr: string; cpu: (...v: number[]) => number } {
  const key = `${name}|${side ?? ''}`;
  let e = EXPRS.get(key);
  if (!e) {
    const def = BINARY[name];
    if (side === 'b') e = { expr: def.wgsl.replace(/\bb\b/g, 's0'), cpu: (x, sv) => def.cpu(x!, sv!) };
    else if (side === 'a') e = { expr: def.wgsl.replace(/\ba\b/g, '__S__').replace(/\bb\b/g, 'a').replace(/__S__/g, 's0'), cpu: (x, sv) => def.cpu(sv!, x!) };
    else e = { expr: def.wgsl, cpu: def.cpu as (...v: number[]) => number };
    EXPRS.set(key, e);
  }
  return e;
}

export function binary(name: BinaryName, a: Operand, b: Operand): Tensor {
  const def: BinaryDef = BINARY[name];
  if (!isTensor(a) && !isTensor(b)) throw new TypeError(`${name}: at least one operand must be a Tensor`);
  const ref = (isTensor(a) ? a : b) as Tensor;
  const outDtype = def.compare ? 'f32' : ref.dtype;
  const side = isTensor(a) ? (isTensor(b) ? undefined : 'b') : 'a';
  const { expr, cpu } = exprFor(name, side);
  const inputs = side === undefined ? [a as Tensor, b as Tensor] : [ref];
  const spec: BinarySpec = side === undefined ? { expr, cpu, outDtype } : { expr, cpu, outDtype, scalars: [side === 'a' ? (a as number) : (b as number)], scalarSide: side };
  return BINARY_OPS[name](inputs, spec)[0]!;
}

export const add = (a: Operand, b: Operand): Tensor => binary('add', a, b);
export const sub = (a: Operand, b: Operand): Tensor => binary('sub', a, b);
export const mul = (a: Operand, b: Operand): Tensor => binary('mul', a, b);
export const div = (a: Operand, b: Operand): Tensor => binary('div', a, b);
export const maximum = (a: Operand, b: Operand): Tensor => binary('maximum', a, b);
export const minimum = (a: Operand, b: Operand): Tensor => binary('minimum', a, b);
export const eq = (a: Operand, b: Operand): Tensor => binary('eq', a, b);
export const ne = (a: Operand, b: Operand): Tensor => binary('ne', a, b);
export const lt = (a: Operand, b: Operand): Tensor => binary('lt', a, b);
export const le = (a: Operand, b: Operand): Tensor => binary('le', a, b);
export const gt = (a: Operand, b: Operand): Tensor => binary('gt', a, b);
export const ge = (a: Operand, b: Operand): Tensor => binary('ge', a, b);

/** a ** b; a scalar exponent uses the cheaper powScalar. */
export function pow(a: Operand, b: Operand): Tensor {
  if (isTensor(a) && typeof b === 'number') return powScalar(a, b);
  return binary('pow', a, b);
}

interface WhereSpec extends ElementwiseSpec {
  hasA: boolean;
  hasB: boolean;
}

const whereOp = defineOp<WhereSpec>({
  name: 'where',
  outputs: (inputs, spec) => {
    const [, ta, tb] = inputs;
    if (ta && tb && ta.dtype !== tb.dtype) throw new TypeError(`where: dtype mismatch, ${ta.describe()} vs ${tb.describe()}`);
    return elementwiseOutputs('where', inputs, spec);
  },
  kernels: elementwiseKernels,
  nondiff: [0],
  grad: (g, { inputs, attrs }) => {
    const cond = inputs[0]!;
    const ta = attrs.hasA ? inputs[1]! : null;
    const tb = attrs.hasB ? inputs[attrs.hasA ? 2 : 1]! : null;
    if (ta?.dtype === 'i32' || tb?.dtype === 'i32') return [null, ...(ta ? [null] : []), ...(tb ? [null] : [])];
    return [null, ...(ta ? [sumTo(where(cond, g, 0), ta.shape)] : []), ...(tb ? [sumTo(where(cond, 0, g), tb.shape)] : [])];
  },
});

/** where(cond, a, b): a where cond != 0 else b. cond is an f32 0/1 mask (comparison output). */
export function where(cond: Tensor, a: Operand, b: Operand): Tensor {
  const ta = isTensor(a) ? a : null;
  const tb = isTensor(b) ? b : null;
  const dtype = (ta ?? tb)?.dtype ?? 'f32';
  const inputs = [cond, ...(ta ? [ta] : []), ...(tb ? [tb] : [])];
  const scalars: number[] = [];
  const av = ta ? 'b' : ((scalars.push(a as number), `s${scalars.length - 1}`));
  const bv = tb ? (ta ? 'c' : 'b') : ((scalars.push(b as number), `s${scalars.length - 1}`));
  const zero = cond.dtype === 'i32' ? '0' : '0.0';
  return whereOp(inputs, {
    expr: `select(${bv}, ${av}, a != ${zero})`,
    cpu: (...v) => {
      let k = 1;
      const va = ta ? v[k++]! : (a as number);
      const vb = tb ? v[k++]! : (b as number);
      return v[0] !== 0 ? va : vb;
    },
    outDtype: dtype,
    scalars,
    scalarDtype: dtype,
    hasA: ta !== null,
    hasB: tb !== null,
  })[0]!;
}
