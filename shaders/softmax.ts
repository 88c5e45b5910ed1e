/**
 * Fused softmax / log-softmax over one axis. A workgroup of `wg` threads (SOFTMAX_WG unless the
 * variant says) is cut into groups
 * of `tpo` threads (power of two); a group folds a strided part of a row into an online
 * (max, sum of exp) pair per thread, merges the pairs with a tree in shared memory, and writes its
 * elements normalized. Lane layouts as in shaders/reduce.ts: `outer` = false puts a group's
 * threads side by side (rows contiguous), `outer` = true puts consecutive rows side by side (the
 * softmax axis is strided and the rows are the contiguous ones).
 *
 * Modes: 'full': one group per row does everything (short or many rows; tpo = wg is one
 * workgroup per row). For few long rows the row is split into nSplit chunks: 'stats' writes each
 * chunk's (max, sum) pair, then 'apply' has every chunk's group merge its row's pairs and write
 * the chunk — two dispatches, the input read twice as in 'full'.
 */
import { defineKernel, read, rw, type BindingDecls } from '../engine/kernel.js';

export const SOFTMAX_WG = 256;

export interface SoftmaxShaderSpec {
  log: boolean;
  /** Rank of the (collapsed) row index space. */
  keptRank: number;
  tpo: number;
  outer: boolean;
  mode: 'full' | 'stats' | 'apply';
  /** Invocations per workgroup (a power of two >= tpo); absent: SOFTMAX_WG. */
  wg?: number;
}

/** 'stats' writes each chunk's (max, sum) pair; 'apply' reads them back. */
const BINDINGS: Record<SoftmaxShaderSpec['mode'], BindingDecls> = {
  full: { x: read(), y: rw() },
  stats: { x: read(), pm: rw(), ps: rw() },
  apply: { x: read(), pm: read(), ps: read(), y: rw() },
};

/**
 * Row r's element j is read at in_offset + kept(r) . kept_in + j * in_axis_stride and written at
 * kept(r) . kept_out + j * out_axis_stride. Group g takes row r and chunk c: outer layout
 * r = g % n_rows, c = g / n_rows, else r = g / n_split, c = g % n_split; chunk pairs are stored at g.
 */
export const softmaxKernel = defineKernel<SoftmaxShaderSpec>({
  name: 'softmax',
  key: (s) => `${s.log}|${s.keptRank}|${s.tpo}|${s.outer}|${s.mode}${s.wg && s.wg !== SOFTMAX_WG ? `|wg${s.wg}` : ''}`,
  signature: (s) => ({
    params: {
      n_groups: 'u32',
      L: 'u32',
      in_offset: 'u32',
      in_axis_stride: 'u32',
      out_axis_stride: 'u32',
      n_split: 'u32',
      chunk: 'u32',
      n_rows: 'u32',
      kept_shape: ['u32', s.keptRank],
      kept_in: ['u32', s.keptRank],
      kept_out: ['u32', s.keptRank],
    },
    bindings: BINDINGS[s.mode],
  }),
  body: softmaxBody,
});

function softmaxBody(s: SoftmaxShaderSpec): string {
  const K = s.keptRank;
  const tpo = s.tpo;
  const WG = s.wg ?? SOFTMAX_WG;
  if (tpo > WG) throw new Error(`softmax: ${tpo} threads per group exceed the workgroup of ${WG}`);
  const rpw = WG / tpo;
  const offs: string[] = ['var ib = P.in_offset;', 'var ob = 0u;'];
  if (K > 0) {
    offs.push('var rem = row;');
    for (let d = K - 1; d >= 0; d--) {
      offs.push(`{ let dim = P.kept_shape_${d}; let id = rem % dim; rem = rem / dim; ib += id * P.kept_in_${d}; ob += id * P.kept_out_${d}; }`);
    }
  }
  const result = s.log ? 'v - m - log(ssum)' : 'exp(v - m) / ssum';
  const ids = s.outer
    ? `let g = linear_wg(wid, nwg) * ${rpw}u + lid.x % ${rpw}u;\n  let t = lid.x / ${rpw}u;\n  let leader = lid.x % ${rpw}u;`
    : `let gid = linear_wg(wid, nwg) * ${WG}u + lid.x;\n  let g = gid / ${tpo}u;\n  let t = gid % ${tpo}u;\n  let leader = lid.x - t;`;
  const mapping = s.outer ? 'let row = min(g % nRows, nRows - 1u); let c = g / nRows;' : 'let row = min(g / nSplit, nRows - 1u); let c = g % nSplit;';
  const partner = s.outer ? `lid.x + step * ${rpw}u` : 'lid.x + step';
  const pairIndex = s.outer ? 'k * nRows + row' : 'row * nSplit + k';
  const fold =
    s.mode === 'apply'
      ? `for (var k = t; k < nSplit; k += ${tpo}u) {
      let q = ${pairIndex};
      let mm = max(m, pm[q]);
      ssum = ssum * exp(m - mm) + ps[q] * exp(pm[q] - mm);
      m = mm;
    }`
      : `for (var j = j0 + t; j < j1; j += ${tpo}u) {
      let v = x[ib + j * sx];
      if (v > m) {
        ssum = ssum * exp(m - v) + 1.0;
        m = v;
      } else {
        ssum += exp(v - m);
      }
    }`;
  const finish =
    s.mode === 'stats'
      ? `if (valid && t == 0u) {
    pm[g] = m;
    ps[g] = ssum;
  }`
      : `if (valid) {
    for (var j = j0 + t; j < j1; j += ${tpo}u) {
      let v = x[ib + j * sx];
      y[ob + j * sy] = ${result};
    }
  }`;
  // One thread per group (tpo 1) holds its row's statistics already: no shared memory, no barrier.
  const combine =
    tpo === 1
      ? ''
      : `sm[lid.x] = m;
  ss[lid.x] = ssum;
  workgroupBarrier();
  for (var step = ${tpo >> 1}u; step > 0u; step = step / 2u) {
    if (t < step) {
      let m2 = sm[${partner}];
      let s2 = ss[${partner}];
      let mm = max(m, m2);
      ssum = ssum * exp(m - mm) + s2 * exp(m2 - mm);
      m = mm;
      sm[lid.x] = m;
      ss[lid.x] = ssum;
    }
    workgroupBarrier();
  }
  m = sm[leader];
  ssum = ss[leader];`;
  return `${tpo === 1 ? '' : `
var<workgroup> sm: array<f32, ${WG}>;
var<workgroup> ss: array<f32, ${WG}>;`}
@compute @workgroup_size(${WG})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
  ${ids}
  let valid = g < P.n_groups;
  let L = P.L;
  let sx = P.in_axis_stride;
  let sy = P.out_axis_stride;
  let nSplit = P.n_split;
  let nRows = P.n_rows;
  ${mapping}
  ${offs.join('\n  ')}
  let j0 = c * P.chunk;
  let j1 = min(j0 + P.chunk, L);
  // Online max / sum of exp; -FLT_MAX (not -inf) keeps exp(m - m') finite for empty lanes.
  var m: f32 = -3.402823e38;
  var ssum: f32 = 0.0;
  if (valid) {
    ${fold}
  }
  ${combine}
  ${finish}
}
`;
}
