/**
 * Unary elementwise ops. Each entry is the whole op: WGSL expression, CPU reference and gradient
 * rule (built from differentiable ops, so second derivatives work).
 */
import { defineOp, type Op } from '../op.js';
import type { Tensor } from '../tensor.js';
import { elementwiseKernels, type ElementwiseSpec } from './elementwise.js';
import { erf as erfCpu, sigmoid as sigmoidCpu } from './math.js';
import { add, div, gt, maximum, minimum, mul, sub } from './binary.js';
import { composite } from '../composite.js';
import { shapesEqual } from '../shape.js';

interface UnaryDef {
  wgsl: string;
  cpu: (x: number) => number;
  /** Gradient w.r.t. x given input x, output y and output gradient g; null = not differentiable. */
  grad: ((x: Tensor, y: Tensor, g: Tensor) => Tensor) | null;
  /** Also defined on i32 (result keeps the dtype). */
  int?: boolean;
  /** An input interval where the op is defined and smooth (what its numeric tests sample). */
  domain: readonly [number, number];
  /**
   * f'(x) as one kernel, for ops whose derivative would otherwise be a chain of 6-20 elementwise
   * kernels over the full activation (GELU, SiLU: the widest tensors of an MLP's backward):
   * WGSL over `a` (= x), its CPU twin, and f''(x) composed of differentiable ops (the gradient of
   * the gradient). The op's gradient is then `<name>_backward(x, g)` = g * f'(x).
   */
  derivative?: { wgsl: string; cpu: (x: number) => number; second: (x: Tensor) => Tensor };
}

const SQRT1_2 = Math.SQRT1_2;
const INV_SQRT_2PI = 1 / Math.sqrt(2 * Math.PI);
const GELU_C = Math.sqrt(2 / Math.PI);

export type UnaryName = 'neg' | 'exp' | 'log' | 'sqrt' | 'rsqrt' | 'abs' | 'sign' | 'tanh' | 'sigmoid' | 'relu' | 'gelu' | 'gelu_tanh' | 'erf' | 'silu' | 'sin' | 'cos' | 'square' | 'reciprocal' | 'floor';

export const UNARY: Record<UnaryName, UnaryDef> = {
  neg: { wgsl: '-a', cpu: (x) => -x, grad: (_x, _y, g) => neg(g), int: true, domain: [-3, 3] },
  exp: { wgsl: 'exp(a)', cpu: Math.exp, grad: (_x, y, g) => mul(g, y), domain: [-3, 3] },
  log: { wgsl: 'log(a)', cpu: Math.log, grad: (x, _y, g) => div(g, x), domain: [0.1, 5] },
  sqrt: { wgsl: 'sqrt(a)', cpu: Math.sqrt, grad: (_x, y, g) => div(mul(g, 0.5), y), domain: [0.1, 5] },
  rsqrt: { wgsl: 'inverseSqrt(a)', cpu: (x) => 1 / Math.sqrt(x), grad: (_x, y, g) => mul(g, mul(mul(y, mul(y, y)), -0.5)), domain: [0.1, 5] },
  abs: { wgsl: 'abs(a)', cpu: Math.abs, grad: (x, _y, g) => mul(g, sign(x)), int: true, domain: [0.1, 3] },
  sign: { wgsl: 'sign(a)', cpu: Math.sign, grad: null, int: true, domain: [-3, 3] },
  tanh: { wgsl: 'tanh_f(a)', cpu: Math.tanh, grad: (_x, y, g) => mul(g, sub(1, square(y))), domain: [-3, 3] },
  sigmoid: { wgsl: 'sigmoid_f(a)', cpu: sigmoidCpu, grad: (_x, y, g) => mul(g, mul(y, sub(1, y))), domain: [-6, 6] },
  relu: { wgsl: 'max(a, 0.0)', cpu: (x) => (x > 0 ? x : 0), grad: (x, _y, g) => mul(g, gt(x, 0)), domain: [0.1, 3] },
  // GELU, exact form: x * Phi(x).  d/dx = Phi(x) + x * phi(x).
  gelu: {
    domain: [-3, 3],
    wgsl: '0.5 * a * (1.0 + erf_approx(a * 0.70710678118654752))',
    cpu: (x) => 0.5 * x * (1 + erfCpu(x * SQRT1_2)),
    grad: (x, _y, g) => unaryBackward('gelu', x, g),
    // f'' = phi(x) (2 - x^2), phi the standard normal density.
    derivative: {
      wgsl: `0.5 * (1.0 + erf_approx(a * 0.70710678118654752)) + a * exp(-0.5 * a * a) * ${INV_SQRT_2PI}`,
      cpu: (x) => 0.5 * (1 + erfCpu(x * SQRT1_2)) + x * Math.exp(-0.5 * x * x) * INV_SQRT_2PI,
      second: (x) => mul(mul(exp(mul(square(x), -0.5)), INV_SQRT_2PI), sub(2, square(x))),
    },
  },
  // GELU, tanh approximation: 0.5 x (1 + tanh(c (x + 0.044715 x^3))).
  gelu_tanh: {
    domain: [-3, 3],
    wgsl: '0.5 * a * (1.0 + tanh_f(0.7978845608028654 * (a + 0.044715 * a * a * a)))',
    cpu: (x) => 0.5 * x * (1 + Math.tanh(GELU_C * (x + 0.044715 * x * x * x))),
    grad: (x, _y, g) => unaryBackward('gelu_tanh', x, g),
    // With u = c (x + k x^3), t = tanh(u): f' = (1 + t) / 2 + x (1 - t^2) u' / 2, u' = c (1 + 3k x^2);
    // f'' = (1 - t^2) (u' + x (u'' - 2 t u'^2) / 2), u'' = 6 c k x.
    derivative: {
      wgsl: `gelu_tanh_grad(a)`,
      cpu: (x) => {
        const t = Math.tanh(GELU_C * (x + 0.044715 * x * x * x));
        return 0.5 * (1 + t) + 0.5 * x * (1 - t * t) * GELU_C * (1 + 3 * 0.044715 * x * x);
      },
      second: (x) => {
        const t = tanh(mul(add(x, mul(mul(x, square(x)), 0.044715)), GELU_C));
        const du = mul(add(mul(square(x), 3 * 0.044715), 1), GELU_C);
        const d2u = mul(x, 6 * 0.044715 * GELU_C);
        return mul(sub(1, square(t)), add(du, mul(mul(x, sub(d2u, mul(mul(t, square(du)), 2))), 0.5)));
      },
    },
  },
  erf: { wgsl: 'erf_approx(a)', cpu: erfCpu, grad: (x, _y, g) => mul(g, mul(exp(neg(square(x))), 2 / Math.sqrt(Math.PI))), domain: [-3, 3] },
  silu: {
    wgsl: 'a * sigmoid_f(a)',
    cpu: (x) => x * sigmoidCpu(x),
    grad: (x, _y, g) => unaryBackward('silu', x, g),
    domain: [-4, 4],
    // s = sigmoid(x): f' = s (1 + x (1 - s)), f'' = s (1 - s) (2 + x (1 - 2 s)).
    derivative: {
      wgsl: 'silu_grad(a)',
      cpu: (x) => {
        const s = sigmoidCpu(x);
        return s * (1 + x * (1 - s));
      },
      second: (x) => {
        const s = sigmoid(x);
        return mul(mul(s, sub(1, s)), add(mul(x, sub(1, mul(s, 2))), 2));
      },
    },
  },
  sin: { wgsl: 'sin(a)', cpu: Math.sin, grad: (x, _y, g) => mul(g, cos(x)), domain: [-3, 3] },
  cos: { wgsl: 'cos(a)', cpu: Math.cos, grad: (x, _y, g) => neg(mul(g, sin(x))), domain: [-3, 3] },
  square: { wgsl: 'a * a', cpu: (x) => x * x, grad: (x, _y, g) => mul(g, mul(x, 2)), int: true, domain: [-3, 3] },
  reciprocal: { wgsl: '1.0 / a', cpu: (x) => 1 / x, grad: (_x, y, g) => neg(mul(g, square(y))), domain: [0.2, 3] },
  floor: { wgsl: 'floor(a)', cpu: Math.floor, grad: null, domain: [-3, 3] },
};


function declareUnary(name: UnaryName, def: UnaryDef): Op<ElementwiseSpec> {
  const grad = def.grad;
  return defineOp<ElementwiseSpec>({
    name,
    outputs: ([x], spec) => {
      if (x!.dtype !== 'f32' && !def.int) throw new TypeError(`${name}: expected an f32 tensor, got ${x!.describe()}`);
      return [{ shape: x!.shape, dtype: spec.outDtype }];
    },
    kernels: elementwiseKernels,
    grad: grad ? (g, { inputs, outputs }) => [grad(inputs[0]!, outputs[0]!, g)] : undefined,
  });
}

/** g * f'(x) in one kernel (UnaryDef.derivative); its gradient: g * f''(x) for x, f'(x) for g. */
function declareUnaryBackward(name: UnaryName, d: NonNullable<UnaryDef['derivative']>): Op<ElementwiseSpec> {
  const op: Op<ElementwiseSpec> = defineOp<ElementwiseSpec>({
    name: `${name}_backward`,
    outputs: (inputs, spec) => {
      const [x, g] = inputs;
      if (x!.dtype !== 'f32' || g!.dtype !== 'f32' || !shapesEqual(x!.shape, g!.shape)) throw new TypeError(`${name}_backward: expected two f32 tensors of one shape, got ${x!.describe()} and ${g!.describe()}`);
      return [{ shape: x!.shape, dtype: spec.outDtype }];
    },
    kernels: elementwiseKernels,
    grad: (gg, { inputs, attrs }) => {
      const [x, g] = inputs as [Tensor, Tensor];
      return [x.requiresGrad ? mul(gg, mul(g, d.second(x))) : null, g.requiresGrad ? op([x, gg], attrs)[0]! : null];
    },
  });
  return op;
}

const BACKWARD_OPS = new Map<UnaryName, { op: Op<ElementwiseSpec>; spec: ElementwiseSpec }>();
for (const [name, def] of Object.entries(UNARY) as [UnaryName, UnaryDef][]) {
  const d = def.derivative;
  if (!d) continue;
  BACKWARD_OPS.set(name, { op: declareUnaryBackward(name, d), spec: { expr: `b * (${d.wgsl})`, cpu: (x, g) => g! * d.cpu(x!), outDtype: 'f32' } });
}

/** g * f'(x) for a unary op with a fused derivative (UnaryDef.derivative). */
export function unaryBackward(name: UnaryName, x: Tensor, g: Tensor): Tensor {
  const b = BACKWARD_OPS.get(name);
  if (!b) throw new Error(`unaryBackward: '${name}' has no fused derivative`);
  return b.op([x, g], b.spec)[0]!;
}

const UNARY_OPS = Object.fromEntries(Object.entries(UNARY).map(([name, def]) => [name, declareUnary(name as UnaryName, def)])) as Record<UnaryName, Op<ElementwiseSpec>>;
const SPECS = { f32: new Map<UnaryName, ElementwiseSpec>(), i32: new Map<UnaryName, ElementwiseSpec>() };

export function unary(name: UnaryName, x: Tensor): Tensor {
  let spec = SPECS[x.dtype].get(name);
  if (!spec) {
    const def = UNARY[name];
    spec = { expr: def.wgsl, cpu: def.cpu, outDtype: x.dtype };
    SPECS[x.dtype].set(name, spec);
  }
  return UNARY_OPS[name]([x], spec)[0]!;
}

export const neg = (x: Tensor): Tensor => unary('neg', x);
export const exp = (x: Tensor): Tensor => unary('exp', x);
export const log = (x: Tensor): Tensor => unary('log', x);
export const sqrt = (x: Tensor): Tensor => unary('sqrt', x);
export const rsqrt = (x: Tensor): Tensor => unary('rsqrt', x);
export const abs = (x: Tensor): Tensor => unary('abs', x);
export const sign = (x: Tensor): Tensor => unary('sign', x);
export const tanh = (x: Tensor): Tensor => unary('tanh', x);
export const sigmoid = (x: Tensor): Tensor => unary('sigmoid', x);
export const relu = (x: Tensor): Tensor => unary('relu', x);
export const erf = (x: Tensor): Tensor => unary('erf', x);
export const silu = (x: Tensor): Tensor => unary('silu', x);
export const sin = (x: Tensor): Tensor => unary('sin', x);
export const cos = (x: Tensor): Tensor => unary('cos', x);
export const square = (x: Tensor): Tensor => unary('square', x);
export const reciprocal = (x: Tensor): Tensor => unary('reciprocal', x);
export const floor = (x: Tensor): Tensor => unary('floor', x);

/** GELU; `approximate: 'tanh'` selects the tanh form (as in PyTorch). */
export function gelu(x: Tensor, approximate: 'none' | 'tanh' = 'none'): Tensor {
  return unary(approximate === 'tanh' ? 'gelu_tanh' : 'gelu', x);
}

/**
 * LeakyReLU (F.leaky_relu): x where x >= 0, negativeSlope * x elsewhere. Composed as
 * max(x, slope * x) for slopes up to 1 (min above), which is exact for every slope.
 */
export function leakyRelu(x: Tensor, negativeSlope = 0.01): Tensor {
  if (!Number.isFinite(negativeSlope)) throw new RangeError(`leakyRelu: negativeSlope must be a finite number, got ${negativeSlope}`);
  return composite([x], () => (negativeSlope <= 1 ? maximum : minimum)(x, mul(x, negativeSlope)));
}

const powScalarOp = defineOp<ElementwiseSpec>({
  name: 'pow_scalar',
  outputs: ([x]) => {
    if (x!.dtype !== 'f32') throw new TypeError(`pow: expected an f32 tensor, got ${x!.describe()}`);
    return [{ shape: x!.shape, dtype: 'f32', name: 'pow' }];
  },
  kernels: elementwiseKernels,
  grad: (g, { inputs: [x], attrs }) => {
    const p = attrs.scalars![0]!;
    return [p === 0 ? mul(g, 0) : mul(g, mul(powScalar(x!, p - 1), p))];
  },
});

const powCpu = (a: number, s: number) => Math.pow(a, s);

/** x ** p for a scalar exponent p. */
export function powScalar(x: Tensor, p: number): Tensor {
  return powScalarOp([x], { expr: 'pow_s(a, s0)', cpu: powCpu, outDtype: 'f32', scalars: [p] })[0]!;
}
