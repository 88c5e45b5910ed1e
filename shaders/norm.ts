/**
 * Fused row normalization (layer norm, group norm, RMS norm). The input is a contiguous
 * [rows, L] buffer; a group of `tpo` threads owns one row and computes its statistics with two
 * passes over the row (mean, then the mean of squared deviations: no cancellation), each a
 * strided per-thread fold plus a shared-memory tree, then writes
 *   y = (x - mean) * rstd * w[a] + b[a],   rstd = 1 / sqrt(var + eps)
 * where the affine index is a = (row % G) * CPG + j / HW (layer norm: G = 1, HW = 1, so a = j;
 * group norm: per channel). RMS norm skips the mean (var = mean(x^2)). Mean and rstd are saved
 * per row for the backward pass. With `silu`, the kernel writes silu(y) = y * sigmoid(y) instead
 * and the backward kernels scale g by silu'(y), recomputing y from x, mean, rstd, w and b.
 */
import { defineKernel, read, rw } from '../engine/kernel.js';
import { MATH_WGSL_BASE } from './math.js';

/** Workgroup size on GPUs; software adapters run one SIMD group per workgroup (see normLayout). */
export const NORM_WG = 256;

/** How the row kernels split work: invocations per workgroup and per row, and the element loop. */
export interface NormLayout {
  /** Invocations per workgroup (a multiple of tpo). */
  wg: number;
  /** Invocations sharing one row. */
  tpo: number;
  /**
   * Walk a row channel by channel (`hw` positions each, strided over the row's invocations), so the
   * affine index is known per channel instead of divided out per element (group norm with hw >= tpo).
   */
  channelLoop: boolean;
}

export interface NormShaderSpec extends NormLayout {
  rms: boolean;
  hasWeight: boolean;
  hasBias: boolean;
  /** Apply SiLU to the normalized output. */
  silu: boolean;
}

/**
 * WGSL statements defining `gv`, the output gradient `g` at element `e` taken back through the
 * activation: with silu, g * silu'(n) (ordered as the silu op's rule) where n = xh * w[a] + b[a]
 * is recomputed as the forward computed it (needs `xh` and `a` in scope).
 */
function gradThroughAct(silu: boolean, g: string, hasWeight: boolean, hasBias: boolean): string {
  if (!silu) return `let gv = ${g};`;
  return `var n = xh;${hasWeight ? ' n = n * w[a];' : ''}${hasBias ? ' n = n + bias[a];' : ''}
      let sg = sigmoid_f(n);
      let gv = ${g} * (sg * (n * (1.0 - sg) + 1.0));`;
}

export const normKernel = defineKernel<NormShaderSpec>({
  name: 'norm',
  key: (s) => `${s.rms}|${s.hasWeight}|${s.hasBias}|${s.silu}|${layoutKey(s)}`,
  signature: (s) => ({
    params: { rows: 'u32', L: 'u32', groups: 'u32', cpg: 'u32', hw: 'u32', eps: 'f32' },
    bindings: {
      x: read(),
      ...(s.hasWeight ? { w: read() } : {}),
      ...(s.hasBias ? { bias: read() } : {}),
      y: rw(),
      ...(s.rms ? {} : { mean_out: rw() }),
      rstd_out: rw(),
    },
  }),
  body: normBody,
});

const layoutKey = (l: NormLayout) => `${l.tpo}${l.wg === NORM_WG ? '' : `/${l.wg}`}${l.channelLoop ? 'c' : ''}`;

/**
 * WGSL opening a row kernel: the shared array of the group sums (element type `shared`), `main`,
 * and the invocation's row, its index `t` among the row's tpo invocations, `valid`, `L`, `base`
 * (the row's first element) and `invL`.
 */
function rowKernelHead(l: NormLayout, shared: string): string {
  return `var<workgroup> sh: array<${shared}, ${l.wg}>;
@compute @workgroup_size(${l.wg})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
  let gid = linear_wg(wid, nwg) * ${l.wg}u + lid.x;
  let row = gid / ${l.tpo}u;
  let t = gid % ${l.tpo}u;
  let valid = row < P.rows;
  let L = P.L;
  let base = row * L;
  let invL = 1.0 / f32(L);`;
}

/**
 * WGSL running `body` for every element j of row `row` that invocation t (of tpo) owns, with the
 * affine index `a` in scope when `affine`: channel by channel (channelLoop; a = the row's first
 * channel + c) or flat (a divided out of j per element).
 */
function rowLoop(l: NormLayout, affine: boolean, body: string): string {
  if (l.channelLoop) {
    return `for (var c = 0u; c < P.cpg; c++) {
      ${affine ? 'let a = (row % P.groups) * P.cpg + c;' : ''}
      for (var p = t; p < P.hw; p += ${l.tpo}u) {
        let j = c * P.hw + p;
        ${body}
      }
    }`;
  }
  return `for (var j = t; j < L; j += ${l.tpo}u) {
      ${affine ? 'let a = (row % P.groups) * P.cpg + j / P.hw;' : ''}
      ${body}
    }`;
}

/**
 * WGSL summing `acc` over a group of `tpo` threads (thread `t` of the group, shared array `sh`);
 * every thread of the group gets the total as `v`.
 */
function groupSumWgsl(tpo: number, v: string): string {
  // A row's only thread holds its sum already: no shared memory round trip, no barrier.
  if (tpo === 1) return `
  let ${v} = acc;`;
  return `
  sh[lid.x] = acc;
  workgroupBarrier();
  for (var step = ${tpo >> 1}u; step > 0u; step = step / 2u) {
    if (t < step) {
      acc = acc + sh[lid.x + step];
      sh[lid.x] = acc;
    }
    workgroupBarrier();
  }
  let ${v} = sh[lid.x - t];
  workgroupBarrier();`;
}

function normBody(s: NormShaderSpec): string {
  const tpo = s.tpo;
  const groupSum = (v: string) => groupSumWgsl(tpo, v);
  let affine = 'let xh = (v - mu) * rstd;\n      var o = xh;';
  if (s.hasWeight) affine += '\n      o = o * w[a];';
  if (s.hasBias) affine += '\n      o = o + bias[a];';
  if (s.silu) affine += '\n      o = o * sigmoid_f(o);';
  return `${s.silu ? MATH_WGSL_BASE : ''}
${rowKernelHead(s, 'f32')}
  var acc = 0.0;
${
  s.rms
    ? '  let mu = 0.0;'
    : `  if (valid) {
    for (var j = t; j < L; j += ${tpo}u) { acc += x[base + j]; }
  }
${groupSum('total')}
  let mu = total * invL;
  acc = 0.0;`
}
  if (valid) {
    for (var j = t; j < L; j += ${tpo}u) { let d = x[base + j] - mu; acc += d * d; }
  }
${groupSum('sq')}
  let rstd = inverseSqrt(sq * invL + P.eps);
  if (valid) {
    ${rowLoop(s, s.hasWeight || s.hasBias, `let v = x[base + j];
      ${affine}
      y[base + j] = o;`)}
    if (t == 0u) {
      ${s.rms ? '' : 'mean_out[row] = mu;'}
      rstd_out[row] = rstd;
    }
  }
}
`;
}

/**
 * Backward of the row norms, for x's gradient: a group of `tpo` threads per row recomputes
 *   xhat = (x - mean) * rstd,  dxhat = g * w[a]
 * sums s1 = sum(dxhat) and s2 = sum(dxhat * xhat) over the row (one strided fold and one
 * shared-memory tree for both), then writes
 *   dx = rstd * (dxhat - (xhat * s2 / L + s1 / L))     (RMS norm: no mean, no s1 term).
 */
export interface NormBackwardSpec extends NormLayout {
  rms: boolean;
  hasWeight: boolean;
  /** The forward applied SiLU; `bias`: it added a bias (read only to recompute silu's input). */
  silu: boolean;
  bias: boolean;
  /** dx = gacc + the gradient (x's partial gradient summed so far, added in the kernel). */
  accumulate?: boolean;
}

/** WGSL storing dx at `at`: the value, or with `accumulate` gacc + the value (the engine's add, here). */
function dxStore(at: string, value: string, accumulate: boolean): string {
  return accumulate ? `var dxv = ${value};
      dx[${at}] = gacc[${at}] + dxv;` : `dx[${at}] = ${value};`;
}

export const normBackwardKernel = defineKernel<NormBackwardSpec>({
  name: 'norm_backward',
  key: (s) => `${s.rms}|${s.hasWeight}|${s.silu}|${s.bias}|${layoutKey(s)}${s.accumulate ? '|acc' : ''}`,
  signature: (s) => ({
    params: { rows: 'u32', L: 'u32', groups: 'u32', cpg: 'u32', hw: 'u32' },
    bindings: {
      g: read(),
      x: read(),
      ...(s.hasWeight ? { w: read() } : {}),
      ...(s.bias ? { bias: read() } : {}),
      ...(s.rms ? {} : { mean: read() }),
      rstd: read(),
      ...(s.accumulate ? { gacc: read() } : {}),
      dx: rw(),
    },
  }),
  body: normBackwardBody,
});

function normBackwardBody(s: NormBackwardSpec): string {
  const tpo = s.tpo;
  const affine = s.hasWeight || s.silu;
  const perElement = `let xh = (x[base + j] - mu) * rs;
      ${gradThroughAct(s.silu, 'g[base + j]', s.hasWeight, s.bias)}
      let dxh = ${s.hasWeight ? 'gv * w[a]' : 'gv'};`;
  const inner = s.rms ? 'xh * m2' : 'xh * m2 + m1';
  return `${s.silu ? MATH_WGSL_BASE : ''}
${rowKernelHead(s, 'vec2<f32>')}
  let r = min(row, P.rows - 1u);
  let mu = ${s.rms ? '0.0' : 'mean[r]'};
  let rs = rstd[r];
  var acc = vec2<f32>(0.0, 0.0);
  if (valid) {
    ${rowLoop(s, affine, `${perElement}
      acc += vec2<f32>(dxh, dxh * xh);`)}
  }
${groupSumWgsl(tpo, 'total')}
  let m1 = total.x * invL;
  let m2 = total.y * invL;
  if (valid) {
    ${rowLoop(s, affine, `${perElement}
      ${dxStore('base + j', `rs * (dxh - (${inner}))`, !!s.accumulate)}`)}
  }
}
`;
}

/**
 * Backward of the row norms, for the affine weight and bias: one workgroup per affine index a
 * sums dw[a] = sum(g * xhat) and db[a] = sum(g) over the positions that index scales. Those are
 * e = n * A * inner + a * inner + k for n < outer, k < inner (layer norm: inner = 1, outer = rows;
 * group norm: inner = the spatial size, outer = N), each thread folding a strided share before a
 * shared-memory tree.
 */
export interface NormAffineBackwardSpec {
  /** Invocations per workgroup (one workgroup per affine index). */
  wg: number;
  /**
   * Walk image by image (outer serial), the `inner` positions strided over the invocations, so the
   * row of each element is known per image (group norm with inner >= wg); else one flat strided
   * loop with the element's position divided out.
   */
  spatial: boolean;
  rms: boolean;
  hasWeight: boolean;
  hasBias: boolean;
  /** The forward applied SiLU: g is scaled by silu'(xhat * w + b), so both sums read xhat, w and b. */
  silu: boolean;
}

export const normAffineBackwardKernel = defineKernel<NormAffineBackwardSpec>({
  name: 'norm_affine_backward',
  key: (s) => `${s.rms}|${s.hasWeight}|${s.hasBias}|${s.silu}${s.wg === NORM_WG ? '' : `|${s.wg}`}${s.spatial ? '|s' : ''}`,
  signature: (s) => ({
    params: { A: 'u32', inner: 'u32', outer: 'u32', L: 'u32' },
    bindings: {
      g: read(),
      // Without silu only the weight's gradient reads xhat.
      ...(s.hasWeight || s.silu ? { x: read(), ...(s.rms ? {} : { mean: read() }), rstd: read() } : {}),
      ...(s.silu && s.hasWeight ? { w: read() } : {}),
      ...(s.silu && s.hasBias ? { bias: read() } : {}),
      ...(s.hasWeight ? { dw: rw() } : {}),
      ...(s.hasBias ? { db: rw() } : {}),
    },
  }),
  body: normAffineBackwardBody,
});

function normAffineBackwardBody(s: NormAffineBackwardSpec): string {
  const WG = s.wg;
  const perElement = `${s.hasWeight || s.silu ? `let xh = (x[e] - ${s.rms ? '0.0' : 'mean[row]'}) * rstd[row];` : ''}
      ${gradThroughAct(s.silu, 'g[e]', s.hasWeight, s.hasBias)}
      ${s.hasWeight ? 'acc += vec2<f32>(gv * xh, gv);' : 'acc += vec2<f32>(0.0, gv);'}`;
  const loop = s.spatial
    ? `for (var n = 0u; n < P.outer; n++) {
      let e0 = n * stride + a * inner;
      let row = e0 / P.L;
      for (var k = t; k < inner; k += ${WG}u) {
        let e = e0 + k;
        ${perElement}
      }
    }`
    : `for (var i = t; i < count; i += ${WG}u) {
      let e = (i / inner) * stride + a * inner + i % inner;
      let row = e / P.L;
      ${perElement}
    }`;
  return `${s.silu ? MATH_WGSL_BASE : ''}
var<workgroup> sh: array<vec2<f32>, ${WG}>;
@compute @workgroup_size(${WG})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
  let a = linear_wg(wid, nwg);
  let t = lid.x;
  let inner = P.inner;
  let stride = P.A * inner;
  let count = P.outer * inner;
  var acc = vec2<f32>(0.0, 0.0);
  if (a < P.A) {
    ${loop}
  }
  sh[t] = acc;
  workgroupBarrier();
  for (var step = ${WG >> 1}u; step > 0u; step = step / 2u) {
    if (t < step) {
      acc = acc + sh[t + step];
      sh[t] = acc;
    }
    workgroupBarrier();
  }
  if (t == 0u && a < P.A) {
    ${s.hasWeight ? 'dw[a] = acc.x;' : ''}
    ${s.hasBias ? 'db[a] = acc.y;' : ''}
  }
}
`;
}

/**
 * The whole backward of the row norms in one dispatch: one workgroup per set of rows sharing
 * affine indices (group norm: the rows of group s of every sample, r = n * G + s; layer and RMS
 * norm: G = 1, every row), so the weight's and bias's sums need no second kernel and no atomics.
 * The workgroup walks its rows one after another, each as `normBackward` does with the whole
 * workgroup on the row (dx), then sums the affine gradients of its indices in a fixed order:
 * with hw = 1 (layer norm, group norm on [N, C]) each invocation owns columns j and folds them
 * over the rows; with hw > 1 (group norm) channel by channel, the rows' positions strided over
 * the invocations and a shared-memory tree per channel. Every sum has one order: deterministic.
 * It reads g and x three times, as the two-kernel form does, but runs only G workgroups: it is
 * chosen where G is large enough or the rows are few (engine/ops/norm.ts).
 */
export interface NormBackwardFusedSpec {
  /** Invocations per workgroup (all on one row at a time). */
  wg: number;
  /** Walk a row channel by channel (group norm with hw >= wg), as NormLayout.channelLoop. */
  channelLoop: boolean;
  rms: boolean;
  hasWeight: boolean;
  hasBias: boolean;
  /** The forward applied SiLU (g is scaled by silu'(xhat * w + b), recomputed). */
  silu: boolean;
  /** hw = 1: affine index a = s * cpg + j, owned per invocation (no tree). */
  columns: boolean;
  /** dx = gacc + the gradient (as NormBackwardSpec.accumulate). */
  accumulate?: boolean;
  /**
   * With channelLoop and cpg <= channelSums: each invocation adds its affine terms per channel in
   * registers during the first pass over the rows (the same terms in the same order as a separate
   * pass: rows, then positions), so g and x are read twice instead of three times. 0: a third pass.
   */
  channelSums?: number;
}

export const normBackwardFusedKernel = defineKernel<NormBackwardFusedSpec>({
  name: 'norm_backward_fused',
  key: (s) => `${s.rms}|${s.hasWeight}|${s.hasBias}|${s.silu}|${s.wg}${s.channelLoop ? 'c' : ''}${s.columns ? '|cols' : ''}${s.channelSums ? `|cs${s.channelSums}` : ''}${s.accumulate ? '|acc' : ''}`,
  signature: (s) => ({
    params: { rows: 'u32', L: 'u32', groups: 'u32', cpg: 'u32', hw: 'u32' },
    bindings: {
      g: read(),
      x: read(),
      ...(s.hasWeight ? { w: read() } : {}),
      ...(s.silu && s.hasBias ? { bias: read() } : {}),
      ...(s.rms ? {} : { mean: read() }),
      rstd: read(),
      ...(s.accumulate ? { gacc: read() } : {}),
      dx: rw(),
      ...(s.hasWeight ? { dw: rw() } : {}),
      ...(s.hasBias ? { db: rw() } : {}),
    },
  }),
  body: normBackwardFusedBody,
});

function normBackwardFusedBody(s: NormBackwardFusedSpec): string {
  const WG = s.wg;
  const layout: NormLayout = { wg: WG, tpo: WG, channelLoop: s.channelLoop };
  const silu = gradThroughAct(s.silu, 'g[e]', s.hasWeight, s.silu && s.hasBias);
  const xhAt = `let xh = (x[e] - ${s.rms ? '0.0' : 'mean[row]'}) * rstd[row];`;
  const perElement = `let e = base + j;
      let xh = (x[e] - mu) * rs;
      ${silu}
      let dxh = ${s.hasWeight ? 'gv * w[a]' : 'gv'};`;
  const inner = s.rms ? 'xh * m2' : 'xh * m2 + m1';
  const affineTerm = `${xhAt}
        ${silu}
        acc += vec2<f32>(${s.hasWeight ? 'gv * xh' : '0.0'}, gv);`;
  const write = `${s.hasWeight ? 'dw[a] = acc.x;' : ''} ${s.hasBias ? 'db[a] = acc.y;' : ''}`;
  const CS = s.channelLoop && !s.columns ? (s.channelSums ?? 0) : 0;
  // The first pass's per-channel sums, when kept in registers (CS): the same terms as affineTerm.
  const channelTerm = CS ? `\n      cs[c] += vec2<f32>(${s.hasWeight ? 'gv * xh' : '0.0'}, gv);` : '';
  const affine = CS
    ? `for (var c = 0u; c < P.cpg; c++) {
    let a = gs * P.cpg + c;
    var acc = cs[c];
${groupSumWgsl(WG, 'sums')}
    if (valid && t == 0u) {
      acc = sums;
      ${write}
    }
  }`
    : s.columns
    ? `if (valid) {
    for (var j = t; j < L; j += ${WG}u) {
      let a = gs * P.cpg + j;
      var acc = vec2<f32>(0.0, 0.0);
      for (var n = 0u; n < N; n++) {
        let row = n * P.groups + gs;
        let e = row * L + j;
        ${affineTerm}
      }
      ${write}
    }
  }`
    : `for (var c = 0u; c < P.cpg; c++) {
    let a = gs * P.cpg + c;
    var acc = vec2<f32>(0.0, 0.0);
    if (valid) {
      ${
        s.channelLoop
          ? `for (var n = 0u; n < N; n++) {
        let row = n * P.groups + gs;
        let e0 = row * L + c * P.hw;
        for (var p = t; p < P.hw; p += ${WG}u) {
          let e = e0 + p;
          ${affineTerm}
        }
      }`
          : `for (var i = t; i < N * P.hw; i += ${WG}u) {
        let row = (i / P.hw) * P.groups + gs;
        let e = row * L + c * P.hw + i % P.hw;
        ${affineTerm}
      }`
      }
    }
${groupSumWgsl(WG, 'sums')}
    if (valid && t == 0u) {
      acc = sums;
      ${write}
    }
  }`;
  return `${s.silu ? MATH_WGSL_BASE : ''}
var<workgroup> sh: array<vec2<f32>, ${WG}>;
@compute @workgroup_size(${WG})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
  let wgi = linear_wg(wid, nwg);
  let valid = wgi < P.groups;
  let gs = min(wgi, P.groups - 1u);
  let t = lid.x;
  let L = P.L;
  let invL = 1.0 / f32(L);
  let N = P.rows / P.groups;${CS ? `
  var cs: array<vec2<f32>, ${CS}>;` : ''}
  for (var n = 0u; n < N; n++) {
    let row = n * P.groups + gs;
    let base = row * L;
    let mu = ${s.rms ? '0.0' : 'mean[row]'};
    let rs = rstd[row];
    var acc = vec2<f32>(0.0, 0.0);
    if (valid) {
      ${rowLoop(layout, true, `${perElement}
      acc += vec2<f32>(dxh, dxh * xh);${channelTerm}`)}
    }
${groupSumWgsl(WG, 'total')}
    let m1 = total.x * invL;
    let m2 = total.y * invL;
    if (valid) {
      ${rowLoop(layout, true, `${perElement}
      ${dxStore('e', `rs * (dxh - (${inner}))`, !!s.accumulate)}`)}
    }
  }
  ${affine}
}
`;
}
