/**
 * Fused optimizer kernels. Each update kernel reads a gradient and rewrites a parameter and its
 * moment buffers in place, one thread per element, with every hyperparameter (learning rate, bias
 * corrections, decay factors) passed as a parameter so one compiled pipeline serves every step.
 * Also: per-tensor partial norms, their final reduction, and the clip scaling for gradient clipping.
 * Offsets (`pOff`, ...) are element offsets of each binding's tensor in its storage.
 */
import { defineKernel, read, rw, type BindingSpec } from '../engine/kernel.js';

export const OPTIM_WG = 256;

const HEAD = `@compute @workgroup_size(${OPTIM_WG})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
  let i = linear_wg(wid, nwg) * ${OPTIM_WG}u + lid.x;
  if (i >= P.n) { return; }`;

/**
 * Adam / AdamW (PyTorch semantics), with AMSGrad's running maximum `vmax` when `amsgrad`:
 *   g' = g + l2 * p                       (Adam's L2 weight decay; l2 = 0 for AdamW)
 *   p' = p * decay                        (AdamW's decoupled decay 1 - lr * wd; 1 for Adam)
 *   m  = beta1 * m + (1 - beta1) * g'
 *   v  = beta2 * v + (1 - beta2) * g'^2   (vmax = max(vmax, v) with amsgrad, used below instead of v)
 *   p  = p' - stepSize * m / (sqrt(v) / bc2Sqrt + eps), stepSize = lr / (1 - beta1^t), bc2Sqrt = sqrt(1 - beta2^t)
 *
 * Multi-tensor: one dispatch updates `k` parameters (bindings p0, g0, m0, v0, p1, ...). Each
 * parameter gets its own whole workgroups (wgEnd_t: the end of tensor t's workgroup range), so
 * the branch that picks the tensor is uniform per workgroup; the step-dependent scalars are per
 * tensor (a parameter's step count is its own), the rest are the parameter group's.
 */
export interface AdamKernelSpec {
  /** Parameters per dispatch. */
  k: number;
  amsgrad: boolean;
}

/** Storage bindings per parameter of adamKernel. */
export const adamBindingsPerTensor = (amsgrad: boolean) => (amsgrad ? 5 : 4);

/** Parameter words of adamKernel for k tensors (must fit the 64-word parameter slot). */
export const adamParamWords = (k: number, amsgrad: boolean) => k * (amsgrad ? 10 : 9) + 5;

export const adamKernel = defineKernel<AdamKernelSpec>({
  name: 'optim_adam',
  key: (v) => `${v.amsgrad}${v.k === 1 ? '' : `|${v.k}`}`,
  signature: (v) => {
    const u = ['u32', v.k] as const;
    const f = ['f32', v.k] as const;
    const bindings: Record<string, BindingSpec> = {};
    for (let t = 0; t < v.k; t++) {
      Object.assign(bindings, { [`p${t}`]: rw(), [`g${t}`]: read(), [`m${t}`]: rw(), [`v${t}`]: rw() });
      if (v.amsgrad) bindings[`vmax${t}`] = rw();
    }
    return {
      params: {
        n: u, wgEnd: u, pOff: u, gOff: u, mOff: u, vOff: u, ...(v.amsgrad ? { vmaxOff: u } : {}), stepSize: f, bc2Sqrt: f,
        beta1: 'f32', beta2: 'f32', eps: 'f32', l2: 'f32', decay: 'f32',
      },
      bindings,
    };
  },
  body: (v) => {
    // Locals are named so that they cannot collide with the per-tensor bindings (p0, m1, v1, ...).
    const update = (t: number) => `
    let i = (wgi - ${t === 0 ? '0u' : `P.wgEnd_${t - 1}`}) * ${OPTIM_WG}u + lid.x;
    if (i < P.n_${t}) {
      let pi = P.pOff_${t} + i;
      let mi = P.mOff_${t} + i;
      let vi = P.vOff_${t} + i;
      let p_old = p${t}[pi];
      let gr = g${t}[P.gOff_${t} + i] + P.l2 * p_old;
      let m_new = b1 * m${t}[mi] + (1.0 - b1) * gr;
      let v_new = b2 * v${t}[vi] + (1.0 - b2) * (gr * gr);
      m${t}[mi] = m_new;
      v${t}[vi] = v_new;
      ${v.amsgrad ? `let wi = P.vmaxOff_${t} + i; let vd = max(vmax${t}[wi], v_new); vmax${t}[wi] = vd;` : 'let vd = v_new;'}
      let denom = sqrt(vd) / P.bc2Sqrt_${t} + P.eps;
      p${t}[pi] = p_old * P.decay - P.stepSize_${t} * (m_new / denom);
    }`;
    const branches = Array.from({ length: v.k }, (_, t) => `if (wgi < P.wgEnd_${t}) {${update(t)}
  }`).join(' else ');
    return `
@compute @workgroup_size(${OPTIM_WG})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
  let wgi = linear_wg(wid, nwg);
  let b1 = P.beta1;
  let b2 = P.beta2;
  ${branches}
}
`;
  },
});

/**
 * SGD (PyTorch semantics), with the momentum buffer `buf` when `momentum`:
 *   d = g + wd * p;  buf = first ? d : momentum * buf + (1 - dampening) * d
 *   d = nesterov ? d + momentum * buf : buf;  p = p - lr * d
 * `first` and `nesterov` are 0 / 1.
 */
export const sgdKernel = defineKernel<{ momentum: boolean }>({
  name: 'optim_sgd',
  key: (v) => `${v.momentum}`,
  signature: (v) => ({
    params: { n: 'u32', pOff: 'u32', gOff: 'u32', bufOff: 'u32', lr: 'f32', wd: 'f32', momentum: 'f32', dampening: 'f32', first: 'u32', nesterov: 'u32' },
    bindings: { p: rw(), g: read(), ...(v.momentum ? { buf: rw() } : {}) },
  }),
  body: (v) => `
${HEAD}
  let pi = P.pOff + i;
  let p0 = p[pi];
  var d = g[P.gOff + i] + P.wd * p0;
  ${
    v.momentum
      ? `let mom = P.momentum;
  let bi = P.bufOff + i;
  var b = d;
  if (P.first == 0u) { b = mom * buf[bi] + (1.0 - P.dampening) * d; }
  buf[bi] = b;
  if (P.nesterov != 0u) { d = d + mom * b; } else { d = b; }`
      : ''
  }
  p[pi] = p0 - P.lr * d;
}
`,
});

/** Exponential moving average in place: s = decay * s + (1 - decay) * x. */
export const emaKernel = defineKernel({
  name: 'optim_ema',
  key: () => '',
  signature: () => ({ params: { n: 'u32', sOff: 'u32', xOff: 'u32', decay: 'f32' }, bindings: { s: rw(), x: read() } }),
  body: () => `
${HEAD}
  let d = P.decay;
  let si = P.sOff + i;
  s[si] = d * s[si] + (1.0 - d) * x[P.xOff + i];
}
`,
});

/** Folds two partial results: sums of squares, or maxima of |x| for the infinity norm. */
const combine = (inf: boolean) => (inf ? 'max(sh[lid.x], sh[lid.x + s])' : 'sh[lid.x] + sh[lid.x + s]');

/**
 * Partial norms of one tensor: each of `groups` workgroups folds a grid-strided share of the
 * elements (sum of squares, or max |x| for the infinity norm) and writes one partial to
 * part[partOff + workgroup].
 */
export const normPartialKernel = defineKernel<{ inf: boolean }>({
  name: 'optim_norm_partial',
  key: (v) => `${v.inf}`,
  signature: () => ({ params: { n: 'u32', xOff: 'u32', partOff: 'u32', groups: 'u32' }, bindings: { x: read(), part: rw() } }),
  body: ({ inf }) => `
var<workgroup> sh: array<f32, ${OPTIM_WG}>;
@compute @workgroup_size(${OPTIM_WG})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
  let w = linear_wg(wid, nwg);
  let n = P.n;
  let groups = P.groups;
  var acc = 0.0;
  if (w < groups) {
    for (var i = w * ${OPTIM_WG}u + lid.x; i < n; i += groups * ${OPTIM_WG}u) {
      let v = x[P.xOff + i];
      ${inf ? 'acc = max(acc, abs(v));' : 'acc = acc + v * v;'}
    }
  }
  sh[lid.x] = acc;
  workgroupBarrier();
  for (var s = ${OPTIM_WG / 2}u; s > 0u; s = s / 2u) {
    if (lid.x < s) { sh[lid.x] = ${combine(inf)}; }
    workgroupBarrier();
  }
  if (lid.x == 0u && w < groups) { part[P.partOff + w] = sh[0]; }
}
`,
});

/** The norm from all `count` partials, in one workgroup: sqrt(sum) (or max for the infinity norm). */
export const normFinalKernel = defineKernel<{ inf: boolean }>({
  name: 'optim_norm_final',
  key: (v) => `${v.inf}`,
  signature: () => ({ params: { count: 'u32' }, bindings: { part: read(), out: rw() } }),
  body: ({ inf }) => `
var<workgroup> sh: array<f32, ${OPTIM_WG}>;
@compute @workgroup_size(${OPTIM_WG})
fn main(@builtin(local_invocation_id) lid: vec3<u32>) {
  var acc = 0.0;
  for (var i = lid.x; i < P.count; i += ${OPTIM_WG}u) { ${inf ? 'acc = max(acc, part[i]);' : 'acc = acc + part[i];'} }
  sh[lid.x] = acc;
  workgroupBarrier();
  for (var s = ${OPTIM_WG / 2}u; s > 0u; s = s / 2u) {
    if (lid.x < s) { sh[lid.x] = ${combine(inf)}; }
    workgroupBarrier();
  }
  if (lid.x == 0u) { out[0] = ${inf ? 'sh[0]' : 'sqrt(sh[0])'}; }
}
`,
});

/** Clip scaling in place: x *= min(1, maxNorm / (norm + 1e-6)), the norm read from nrm[normOff]. */
export const clipScaleKernel = defineKernel({
  name: 'optim_clip_scale',
  key: () => '',
  signature: () => ({ params: { n: 'u32', xOff: 'u32', normOff: 'u32', maxNorm: 'f32' }, bindings: { x: rw(), nrm: read() } }),
  body: () => `
${HEAD}
  let c = min(1.0, P.maxNorm / (nrm[P.normOff] + 1e-6));
  let xi = P.xOff + i;
  x[xi] = x[xi] * c;
}
`,
});
