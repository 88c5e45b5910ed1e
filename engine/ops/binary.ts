/**
 * Binary elementwise ops with NumPy broadcasting; either side may be a JS number (baked into the
 * kernel's parameters, not uploaded). Gradients are unbroadcast back to each input's shape.
 */
import { record } from '../grad-mode.js';
import { isTensor, type Tensor } from '../tensor.js';
import { elementwise } from './elementwise.js';
import { sumTo } from './reduce.js';
import { log, neg, powScalar, square } from './unary.js';

type Operand = Tensor | number;

interface BinaryDef {
  wgsl: string;
  cpu: (a: number, b: number) => number;
  /** Gradients w.r.t. a and b (before unbroadcasting); null = not differentiable. */
  grad: ((a: Tensor, b: Tensor, y: Tensor, g: Tensor) => [Tensor | null, Tensor | null]) | null;
  /** Result is f32 0/1 (comparisons). */
  compare?: boolean;
  /** Also defined on i32. */
  int?: boolean;
}

export type BinaryName = 'add' | 'sub' | 'mul' | 'div' | 'pow' | 'maximum' | 'minimum' | 'eq' | 'ne' | 'lt' | 'le' | 'gt' | 'ge';

export const BINARY: Record<BinaryName, BinaryDef> = {
  add: { wgsl: 'a + b', cpu: (a, b) => a + b, grad: (_a, _b, _y, g) => [g, g], int: true },
  sub: { wgsl: 'a - b', cpu: (a, b) => a - b, grad: (_a, _b, _y, g) => [g, neg(g)], int: true },
  mul: { wgsl: 'a * b', cpu: (a, b) => a * b, grad: (a, b, _y, g) => [mul(g, b), mul(g, a)], int: true },
  // b may be a JS number (x.div(2)): then it has no gradient.
  div: { wgsl: 'a / b', cpu: (a, b) => a / b, grad: (a, b, _y, g) => [div(g, b), isTensor(b) ? neg(div(mul(g, a), square(b))) : null] },
  pow: { wgsl: 'pow_s(a, b)', cpu: Math.pow, grad: (a, b, y, g) => [mul(g, mul(b, pow(a, sub(b, 1)))), mul(g, mul(y, log(a)))] },
  // Ties split the gradient evenly, as PyTorch does.
  maximum: { wgsl: 'max(a, b)', cpu: Math.max, grad: (a, b, _y, g) => tieSplit(gt(a, b), eq(a, b), g), int: true },
  minimum: { wgsl: 'min(a, b)', cpu: Math.min, grad: (a, b, _y, g) => tieSplit(lt(a, b), eq(a, b), g), int: true },
  eq: { wgsl: 'select(0.0, 1.0, a == b)', cpu: (a, b) => +(a === b), grad: null, compare: true, int: true },
  ne: { wgsl: 'select(0.0, 1.0, a != b)', cpu: (a, b) => +(a !== b), grad: null, compare: true, int: true },
  lt: { wgsl: 'select(0.0, 1.0, a < b)', cpu: (a, b) => +(a < b), grad: null, compare: true, int: true },
  le: { wgsl: 'select(0.0, 1.0, a <= b)', cpu: (a, b) => +(a <= b), grad: null, compare: true, int: true },
  gt: { wgsl: 'select(0.0, 1.0, a > b)', cpu: (a, b) => +(a > b), grad: null, compare: true, int: true },
  ge: { wgsl: 'select(0.0, 1.0, a >= b)', cpu: (a, b) => +(a >= b), grad: null, compare: true, int: true },
};


function tieSplit(win: Tensor, tie: Tensor, g: Tensor): [Tensor, Tensor] {
  const wa = add(win, mul(tie, 0.5));
  return [mul(g, wa), mul(g, sub(1, wa))];
}

/** Rewrites an expression in a,b for a scalar operand s0 on the given side. */
function withScalar(expr: string, side: 'a' | 'b'): string {
  return expr.replace(new RegExp(`\\b${side}\\b`, 'g'), 's0');
}

export function binary(name: BinaryName, a: Operand, b: Operand): Tensor {
  const def: BinaryDef = BINARY[name];
  if (!isTensor(a) && !isTensor(b)) throw new TypeError(`${name}: at least one operand must be a Tensor`);
  const ref = (isTensor(a) ? a : b) as Tensor;
  if (isTensor(a) && isTensor(b) && a.dtype !== b.dtype) {
    throw new TypeError(`${name}: dtype mismatch, ${a.describe()} vs ${b.describe()}; cast one with .cast()`);
  }
  if (ref.dtype !== 'f32' && !def.int) throw new TypeError(`${name}: expected f32 tensors, got ${ref.describe()}`);
  const outDtype = def.compare ? 'f32' : ref.dtype;
  let y: Tensor;
  if (isTensor(a) && isTensor(b)) {
    y = elementwise(name, [a, b], { expr: def.wgsl, cpu: def.cpu, outDtype });
  } else if (isTensor(a)) {
    const s = b as number;
    y = elementwise(name, [a], { expr: withScalar(def.wgsl, 'b'), cpu: (x, sv) => def.cpu(x, sv!), outDtype, scalars: [s] });
  } else {
    const s = a as number;
    y = elementwise(name, [b as Tensor], { expr: def.wgsl.replace(/\ba\b/g, '__S__').replace(/\bb\b/g, 'a').replace(/__S__/g, 's0'), cpu: (x, sv) => def.cpu(sv!, x), outDtype, scalars: [s] });
  }
  const grad = def.grad;
  if (grad) {
    const ta = isTensor(a) ? a : null;
    const tb = isTensor(b) ? b : null;
    const inputs = [ta, tb].filter((t): t is Tensor => t !== null);
    record(y, name, inputs, (g) => {
      const [ga, gb] = grad(ta ?? (a as unknown as Tensor), tb ?? (b as unknown as Tensor), y, g);
      const out: (Tensor | null)[] = [];
      if (ta) out.push(ga && sumTo(ga, ta.shape));
      if (tb) out.push(gb && sumTo(gb, tb.shape));
      return out;
    });
  }
  return y;
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

/** where(cond, a, b): a where cond != 0 else b. cond is an f32 0/1 mask (comparison output). */
export function where(cond: Tensor, a: Operand, b: Operand): Tensor {
  const ta = isTensor(a) ? a : null;
  const tb = isTensor(b) ? b : null;
  const dtype = (ta ?? tb)?.dtype ?? 'f32';
  if (ta && tb && ta.dtype !== tb.dtype) throw new TypeError(`where: dtype mismatch, ${ta.describe()} vs ${tb.describe()}`);
  const inputs = [cond, ...(ta ? [ta] : []), ...(tb ? [tb] : [])];
  const scalars: number[] = [];
  const av = ta ? 'b' : ((scalars.push(a as number), `s${scalars.length - 1}`));
  const bv = tb ? (ta ? 'c' : 'b') : ((scalars.push(b as number), `s${scalars.length - 1}`));
  const zero = cond.dtype === 'i32' ? '0' : '0.0';
  const y = elementwise('where', inputs, {
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
  });
  if (dtype === 'f32' && ((ta && ta.requiresGrad) || (tb && tb.requiresGrad))) {
    const ins = [...(ta ? [ta] : []), ...(tb ? [tb] : [])];
    record(y, 'where', ins, (g) => {
      const out: Tensor[] = [];
      if (ta) out.push(sumTo(where(cond, g, 0), ta.shape));
      if (tb) out.push(sumTo(where(cond, 0, g), tb.shape));
      return out;
    });
  }
  return y;
}
