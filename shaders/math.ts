/** WGSL math helpers that WGSL lacks; their CPU twins are in engine/ops/math.ts. */
export const MATH_WGSL_BASE = /* wgsl */ `
fn erf_approx(x: f32) -> f32 {
  // erfc Chebyshev fit (Numerical Recipes erfcc), fractional error < 1.2e-7.
  let z = abs(x);
  let t = 1.0 / (1.0 + 0.5 * z);
  let r = t * exp(-z * z - 1.26551223 + t * (1.00002368 + t * (0.37409196 + t * (0.09678418 + t * (-0.18628806 +
          t * (0.27886807 + t * (-1.13520398 + t * (1.48851587 + t * (-0.82215223 + t * 0.17087277)))))))));
  return select(r - 1.0, 1.0 - r, x >= 0.0);
}
fn sigmoid_f(x: f32) -> f32 {
  // Split by sign so exp never overflows.
  if (x >= 0.0) { return 1.0 / (1.0 + exp(-x)); }
  let e = exp(x);
  return e / (1.0 + e);
}
fn tanh_f(x: f32) -> f32 {
  // WGSL tanh may be computed through exp and overflow to NaN for large |x| on some drivers.
  let e = exp(-2.0 * abs(x));
  return sign(x) * (1.0 - e) / (1.0 + e);
}
fn gelu_tanh_grad(x: f32) -> f32 {
  // d/dx of 0.5 x (1 + tanh(c (x + k x^3))), c = sqrt(2 / pi), k = 0.044715 (3k = 0.134145).
  let t = tanh_f(0.7978845608028654 * (x + 0.044715 * x * x * x));
  return 0.5 * (1.0 + t) + 0.5 * x * (1.0 - t * t) * 0.7978845608028654 * (1.0 + 0.134145 * x * x);
}
fn silu_grad(x: f32) -> f32 {
  let s = sigmoid_f(x);
  return s * (1.0 + x * (1.0 - s));
}
`;

export const POW_WGSL = /* wgsl */ `
fn pow_s(a: f32, p: f32) -> f32 {
  // WGSL pow is undefined for a < 0; integer exponents follow the real-valued definition.
  if (p == 0.0) { return 1.0; }
  if (p == floor(p)) {
    let r = pow(abs(a), p);
    if (a < 0.0 && abs(p % 2.0) == 1.0) { return -r; }
    return r;
  }
  return pow(a, p);
}
`;

export const MATH_WGSL = MATH_WGSL_BASE + POW_WGSL;
