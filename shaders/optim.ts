/**
 * Fused optimizer kernels. Each update kernel reads a gradient and rewrites a parameter and its
 * moment buffers in place, one thread per element, with every hyperparameter (learning rate, bias
 * corrections, decay factors) passed as parameter words so one compiled pipeline serves every step.
 * Also: per-tensor partial norms, their final reduction, and the clip scaling for gradient clipping.
 */
export const OPTIM_WG = 256;

const HEAD = `@compute @workgroup_size(${OPTIM_WG})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
  let i = linear_wg(wid, nwg) * ${OPTIM_WG}u + lid.x;
  if (i >= pu(0u)) { return; }`;

/**
 * Adam / AdamW (PyTorch semantics). Bindings: p (rw), g, m (rw), v (rw) [, vmax (rw) with amsgrad].
 * Params: [n, pOff, gOff, mOff, vOff, vmaxOff, beta1, beta2, eps, l2, decay, stepSize, bc2Sqrt].
 *   g' = g + l2 * p                       (Adam's L2 weight decay; l2 = 0 for AdamW)
 *   p' = p * decay                        (AdamW's decoupled decay 1 - lr * wd; 1 for Adam)
 *   m  = beta1 * m + (1 - beta1) * g'
 *   v  = beta2 * v + (1 - beta2) * g'^2   (vmax = max(vmax, v) with amsgrad, used below instead of v)
 *   p  = p' - stepSize * m / (sqrt(v) / bc2Sqrt + eps), stepSize = lr / (1 - beta1^t), bc2Sqrt = sqrt(1 - beta2^t)
 */
export function adamShader(amsgrad: boolean): string {
  return `
@group(0) @binding(1) var<storage, read_write> p: array<f32>;
@group(0) @binding(2) var<storage, read> g: array<f32>;
@group(0) @binding(3) var<storage, read_write> m: array<f32>;
@group(0) @binding(4) var<storage, read_write> v: array<f32>;
${amsgrad ? '@group(0) @binding(5) var<storage, read_write> vmax: array<f32>;' : ''}
${HEAD}
  let b1 = pf(6u);
  let b2 = pf(7u);
  let pi = pu(1u) + i;
  let mi = pu(3u) + i;
  let vi = pu(4u) + i;
  let p0 = p[pi];
  let gr = g[pu(2u) + i] + pf(9u) * p0;
  let m1 = b1 * m[mi] + (1.0 - b1) * gr;
  let v1 = b2 * v[vi] + (1.0 - b2) * (gr * gr);
  m[mi] = m1;
  v[vi] = v1;
  ${amsgrad ? 'let wi = pu(5u) + i; let vd = max(vmax[wi], v1); vmax[wi] = vd;' : 'let vd = v1;'}
  let denom = sqrt(vd) / pf(12u) + pf(8u);
  p[pi] = p0 * pf(10u) - pf(11u) * (m1 / denom);
}
`;
}

/**
 * SGD (PyTorch semantics). Bindings: p (rw), g [, buf (rw) with momentum].
 * Params: [n, pOff, gOff, bufOff, lr, wd, momentum, dampening, first (u32), nesterov (u32)].
 *   d = g + wd * p;  buf = first ? d : momentum * buf + (1 - dampening) * d
 *   d = nesterov ? d + momentum * buf : buf;  p = p - lr * d
 */
export function sgdShader(hasMomentum: boolean): string {
  return `
@group(0) @binding(1) var<storage, read_write> p: array<f32>;
@group(0) @binding(2) var<storage, read> g: array<f32>;
${hasMomentum ? '@group(0) @binding(3) var<storage, read_write> buf: array<f32>;' : ''}
${HEAD}
  let pi = pu(1u) + i;
  let p0 = p[pi];
  var d = g[pu(2u) + i] + pf(5u) * p0;
  ${
    hasMomentum
      ? `let mom = pf(6u);
  let bi = pu(3u) + i;
  var b = d;
  if (pu(8u) == 0u) { b = mom * buf[bi] + (1.0 - pf(7u)) * d; }
  buf[bi] = b;
  if (pu(9u) != 0u) { d = d + mom * b; } else { d = b; }`
      : ''
  }
  p[pi] = p0 - pf(4u) * d;
}
`;
}

/**
 * Exponential moving average in place. Bindings: s (rw), x. Params: [n, sOff, xOff, decay].
 *   s = decay * s + (1 - decay) * x
 */
export function emaShader(): string {
  return `
@group(0) @binding(1) var<storage, read_write> s: array<f32>;
@group(0) @binding(2) var<storage, read> x: array<f32>;
${HEAD}
  let d = pf(3u);
  let si = pu(1u) + i;
  s[si] = d * s[si] + (1.0 - d) * x[pu(2u) + i];
}
`;
}

/**
 * Partial norms of one tensor: each of `groups` workgroups folds a grid-strided share of the
 * elements (sum of squares, or max |x| for the infinity norm) and writes one partial.
 * Bindings: x, partials (rw). Params: [n, xOff, partOff, groups].
 */
export function normPartialShader(inf: boolean): string {
  const fold = inf ? 'acc = max(acc, abs(v));' : 'acc = acc + v * v;';
  const comb = inf ? 'max(sh[lid.x], sh[lid.x + s])' : 'sh[lid.x] + sh[lid.x + s]';
  return `
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> part: array<f32>;
var<workgroup> sh: array<f32, ${OPTIM_WG}>;
@compute @workgroup_size(${OPTIM_WG})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
  let w = linear_wg(wid, nwg);
  let n = pu(0u);
  let groups = pu(3u);
  var acc = 0.0;
  if (w < groups) {
    for (var i = w * ${OPTIM_WG}u + lid.x; i < n; i += groups * ${OPTIM_WG}u) {
      let v = x[pu(1u) + i];
      ${fold}
    }
  }
  sh[lid.x] = acc;
  workgroupBarrier();
  for (var s = ${OPTIM_WG / 2}u; s > 0u; s = s / 2u) {
    if (lid.x < s) { sh[lid.x] = ${comb}; }
    workgroupBarrier();
  }
  if (lid.x == 0u && w < groups) { part[pu(2u) + w] = sh[0]; }
}
`;
}

/**
 * Final norm from all partials, in one workgroup: sqrt(sum) (or max for the infinity norm).
 * Bindings: partials, out (rw, one element). Params: [count].
 */
export function normFinalShader(inf: boolean): string {
  const fold = inf ? 'acc = max(acc, part[i]);' : 'acc = acc + part[i];';
  const comb = inf ? 'max(sh[lid.x], sh[lid.x + s])' : 'sh[lid.x] + sh[lid.x + s]';
  return `
@group(0) @binding(1) var<storage, read> part: array<f32>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;
var<workgroup> sh: array<f32, ${OPTIM_WG}>;
@compute @workgroup_size(${OPTIM_WG})
fn main(@builtin(local_invocation_id) lid: vec3<u32>) {
  var acc = 0.0;
  for (var i = lid.x; i < pu(0u); i += ${OPTIM_WG}u) { ${fold} }
  sh[lid.x] = acc;
  workgroupBarrier();
  for (var s = ${OPTIM_WG / 2}u; s > 0u; s = s / 2u) {
    if (lid.x < s) { sh[lid.x] = ${comb}; }
    workgroupBarrier();
  }
  if (lid.x == 0u) { out[0] = ${inf ? 'sh[0]' : 'sqrt(sh[0])'}; }
}
`;
}

/**
 * Clip scaling in place: x *= min(1, maxNorm / (norm + 1e-6)), the norm read from a device buffer.
 * Bindings: x (rw), norm. Params: [n, xOff, normOff, maxNorm].
 */
export function clipScaleShader(): string {
  return `
@group(0) @binding(1) var<storage, read_write> x: array<f32>;
@group(0) @binding(2) var<storage, read> nrm: array<f32>;
${HEAD}
  let c = min(1.0, pf(3u) / (nrm[pu(2u)] + 1e-6));
  let xi = pu(1u) + i;
  x[xi] = x[xi] * c;
}
`;
}
