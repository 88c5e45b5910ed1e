/**
 * Strided reduction kernel. A workgroup of `wg` threads (REDUCE_WG unless the variant says) is cut
 * into groups of `tpo` threads (a power of two, 1..wg); each group reduces one chunk of one output's reduced range:
 * every thread folds a strided subset of the chunk sequentially, then the group combines its
 * threads with a tree in shared memory. Two lane layouts: `outer` = false puts a group's threads
 * side by side (they read consecutive elements when the reduced dims are the contiguous ones);
 * `outer` = true puts consecutive groups side by side (consecutive outputs read consecutive
 * elements when the kept dims are the contiguous ones). tpo = wg is one workgroup per output.
 *
 * With `nSplit` > 1 the reduced range is cut into nSplit chunks handled by different groups, and
 * the kernel writes partial results (plus, for arg-reductions, the winning index) that a further
 * pass over a contiguous [nOut, nSplit] or [nSplit, nOut] buffer reduces. Arg-reductions carry the
 * index; ties keep the smaller index and NaN wins (the first NaN), as in PyTorch.
 *
 * Group g covers output o and chunk s: outer layout o = g % nOut, s = g / nOut (adjacent groups
 * take adjacent outputs), else o = g / nSplit, s = g % nSplit. The partial of group g is stored at
 * g. Output o's element j of the reduced range is read at
 * offset + kept(o) . kept_strides + red(j) . red_strides.
 */
import { defineKernel, read, rw } from '../engine/kernel.js';

export const REDUCE_WG = 256;

/** NaN test on the bits: `v != v` may be folded away by compilers that assume no NaNs. */
export const ISNAN_WGSL = 'fn isnan_f(v: f32) -> bool { return (bitcast<u32>(v) & 0x7fffffffu) > 0x7f800000u; }';

export type ReduceKind = 'sum' | 'max' | 'min' | 'argmax' | 'argmin';

export interface ReduceShaderSpec {
  kind: ReduceKind;
  inType: string;
  /** Element type of the main output (i32 index for a final arg pass, else inType). */
  outType: string;
  keptRank: number;
  redRank: number;
  /** Threads per group (power of two, <= the workgroup). */
  tpo: number;
  /** Invocations per workgroup (a power of two >= tpo); absent: REDUCE_WG. */
  wg?: number;
  /** Consecutive threads take consecutive groups (else consecutive lanes of one group). */
  outer: boolean;
  /** Arg-reduction reading candidate indices from a second input buffer (a later pass). */
  argIn: boolean;
  /** Writes partials: values to `out` and (arg kinds) indices to a second output. */
  partial: boolean;
  /**
   * Two reduced dims walked as nested loops (the outer one whole, the inner one strided over the
   * group's threads) instead of one flat index divided back into coordinates per element: for
   * redRank 2 without chunks (software adapters pay a scalar loop per vector division).
   */
  nested?: boolean;
}

const isArgKind = (k: ReduceKind) => k === 'argmax' || k === 'argmin';

export const reduceKernel = defineKernel<ReduceShaderSpec>({
  name: 'reduce',
  key: (s) => `${s.kind}|${s.inType}|${s.outType}|${s.keptRank}|${s.redRank}|${s.tpo}|${s.outer}|${s.argIn}|${s.partial}${s.nested ? '|nested' : ''}${s.wg && s.wg !== REDUCE_WG ? `|wg${s.wg}` : ''}`,
  signature: (s) => ({
    params: {
      n_groups: 'u32',
      n_red: 'u32',
      n_split: 'u32',
      chunk: 'u32',
      n_out: 'u32',
      offset: 'u32',
      kept_shape: ['u32', s.keptRank],
      kept_strides: ['u32', s.keptRank],
      red_shape: ['u32', s.redRank],
      red_strides: ['u32', s.redRank],
    },
    bindings: {
      x: read(s.inType),
      ...(s.argIn ? { xi: read('i32') } : {}),
      out: rw(s.outType),
      ...(s.partial && isArgKind(s.kind) ? { outi: rw('i32') } : {}),
    },
  }),
  body: reduceBody,
});

function reduceBody(s: ReduceShaderSpec): string {
  const K = s.keptRank;
  const Rr = s.redRank;
  const isArg = isArgKind(s.kind);
  const isSum = s.kind === 'sum';
  const T = s.inType;
  const tpo = s.tpo;
  const isMax = s.kind === 'max' || s.kind === 'argmax';
  // combine(v, jv): fold candidate (v, jv) into (acc, accIdx). NONE marks "no element yet".
  const cmp = isMax ? 'v > acc' : 'v < acc';
  const nan = T === 'f32';
  const better = nan
    ? `jv != NONE && (accIdx == NONE || (isnan_f(v) && (!isnan_f(acc) || jv < accIdx)) || (!isnan_f(acc) && (${cmp} || (v == acc && jv < accIdx))))`
    : `jv != NONE && (accIdx == NONE || ${cmp} || (v == acc && jv < accIdx))`;
  const combine = isSum ? 'acc = acc + v;' : `if (${better}) { acc = v; accIdx = jv; }`;
  const keptOffset: string[] = ['var base = P.offset;'];
  if (K > 0) {
    keptOffset.push('var rem_k = o;');
    for (let d = K - 1; d >= 0; d--) keptOffset.push(`{ let dim = P.kept_shape_${d}; base += (rem_k % dim) * P.kept_strides_${d}; rem_k = rem_k / dim; }`);
  }
  const redOffset: string[] = [];
  if (Rr === 1) redOffset.push('let off = base + j * P.red_strides_0;');
  else {
    redOffset.push('var rem_r = j;', 'var off = base;');
    for (let d = Rr - 1; d >= 0; d--) redOffset.push(`{ let dim = P.red_shape_${d}; off += (rem_r % dim) * P.red_strides_${d}; rem_r = rem_r / dim; }`);
  }
  const flatLoop = `let j0 = sc * P.chunk;
    let j1 = min(j0 + P.chunk, P.n_red);
    for (var j = j0 + t; j < j1; j += ${tpo}u) {
      ${redOffset.join('\n      ')}
      let v = x[off];
      ${isSum ? '' : s.argIn ? 'let jv = u32(xi[off]);' : 'let jv = j;'}
      ${combine}
    }`;
  // The whole reduced range (one chunk), row by row; j is the row-major index for arg kinds.
  const nestedLoop = `let n1 = P.red_shape_1;
    for (var i0 = 0u; i0 < P.red_shape_0; i0++) {
      let row = base + i0 * P.red_strides_0;
      for (var i1 = t; i1 < n1; i1 += ${tpo}u) {
        let off = row + i1 * P.red_strides_1;
        let v = x[off];
        ${isSum ? '' : s.argIn ? 'let jv = u32(xi[off]);' : 'let jv = i0 * n1 + i1;'}
        ${combine}
      }
    }`;
  if (s.nested && (Rr !== 2 || s.partial)) throw new Error('reduce: the nested loop needs two reduced dims and one chunk');
  const idxOut = s.partial && isArg;
  const mapping = s.outer ? 'let o = g % P.n_out; let sc = g / P.n_out;' : 'let o = g / P.n_split; let sc = g % P.n_split;';
  const WG = s.wg ?? REDUCE_WG;
  if (tpo > WG) throw new Error(`reduce: ${tpo} threads per group exceed the workgroup of ${WG}`);
  const rpw = WG / tpo;
  const partner = s.outer ? `lid.x + step * ${rpw}u` : 'lid.x + step';
  let write: string;
  if (!s.partial) write = isArg ? 'out[g] = i32(accIdx);' : `out[g] = ${s.outType}(acc);`;
  else write = idxOut ? 'out[g] = acc; outi[g] = i32(accIdx);' : 'out[g] = acc;';
  const tree =
    tpo === 1
      ? ''
      : `
  sv[lid.x] = acc;${isSum ? '' : '\n  si[lid.x] = accIdx;'}
  workgroupBarrier();
  for (var step = ${tpo / 2}u; step > 0u; step = step / 2u) {
    if (t < step) {
      let v = sv[${partner}];${isSum ? '' : `\n      let jv = si[${partner}];`}
      ${combine}
      sv[lid.x] = acc;${isSum ? '' : '\n      si[lid.x] = accIdx;'}
    }
    workgroupBarrier();
  }`;
  const shared = tpo === 1 ? '' : `var<workgroup> sv: array<${T}, ${WG}>;\n${isSum ? '' : `var<workgroup> si: array<u32, ${WG}>;\n`}`;
  return `
${shared}const NONE: u32 = 0xffffffffu;
${nan && !isSum ? ISNAN_WGSL : ''}
@compute @workgroup_size(${WG})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
  ${
    s.outer
      ? `let g = linear_wg(wid, nwg) * ${rpw}u + lid.x % ${rpw}u;\n  let t = lid.x / ${rpw}u;`
      : `let gid = linear_wg(wid, nwg) * ${WG}u + lid.x;\n  let g = gid / ${tpo}u;\n  let t = gid % ${tpo}u;`
  }
  let valid = g < P.n_groups;
  var acc: ${T} = ${T}(0);
  var accIdx: u32 = NONE;
  if (valid) {
    ${mapping}
    ${keptOffset.join('\n    ')}
    ${s.nested ? nestedLoop : flatLoop}
  }${tree}
  if (valid && t == 0u) {
    ${write}
  }
}
`;
}
