/**
 * Fused row normalization (layer norm, group norm, RMS norm). The input is a contiguous
 * [rows, L] buffer; a group of `tpo` threads owns one row and computes its statistics with two
 * passes over the row (mean, then the mean of squared deviations: no cancellation), each a
 * strided per-thread fold plus a shared-memory tree, then writes
 *   y = (x - mean) * rstd * w[a] + b[a],   rstd = 1 / sqrt(var + eps)
 * where the affine index is a = (row % G) * CPG + j / HW (layer norm: G = 1, HW = 1, so a = j;
 * group norm: per channel). RMS norm skips the mean (var = mean(x^2)). Mean and rstd are saved
 * per row for the backward pass.
 */
import { defineKernel, read, rw } from '../engine/kernel.js';

export const NORM_WG = 256;

export interface NormShaderSpec {
  rms: boolean;
  hasWeight: boolean;
  hasBias: boolean;
  tpo: number;
}

export const normKernel = defineKernel<NormShaderSpec>({
  name: 'norm',
  key: (s) => `${s.rms}|${s.hasWeight}|${s.hasBias}|${s.tpo}`,
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

function normBody(s: NormShaderSpec): string {
  const tpo = s.tpo;
  // Sums `acc` over the group's threads; every thread of the group gets the total.
  const groupSum = (v: string) => `
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
  let affine = 'let xh = (v - mu) * rstd;\n      var o = xh;';
  if (s.hasWeight || s.hasBias) affine += '\n      let a = (row % P.groups) * P.cpg + j / P.hw;';
  if (s.hasWeight) affine += '\n      o = o * w[a];';
  if (s.hasBias) affine += '\n      o = o + bias[a];';
  return `
var<workgroup> sh: array<f32, ${NORM_WG}>;
@compute @workgroup_size(${NORM_WG})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
  let gid = linear_wg(wid, nwg) * ${NORM_WG}u + lid.x;
  let row = gid / ${tpo}u;
  let t = gid % ${tpo}u;
  let valid = row < P.rows;
  let L = P.L;
  let base = row * L;
  let invL = 1.0 / f32(L);
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
    for (var j = t; j < L; j += ${tpo}u) {
      let v = x[base + j];
      ${affine}
      y[base + j] = o;
    }
    if (t == 0u) {
      ${s.rms ? '' : 'mean_out[row] = mu;'}
      rstd_out[row] = rstd;
    }
  }
}
`;
}
