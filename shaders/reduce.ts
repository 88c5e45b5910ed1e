/**
 * Strided reduction: each output element reduces over the `reduced` dims of the input. Small
 * reductions use one thread per output; large ones one workgroup per output with a shared-memory
 * tree. Arg-reductions carry the index (first occurrence wins, as in PyTorch).
 */
export const REDUCE_WG = 256;

export type ReduceKind = 'sum' | 'max' | 'min' | 'argmax' | 'argmin';

export interface ReduceShaderSpec {
  kind: ReduceKind;
  inType: string;
  outType: string;
  keptRank: number;
  redRank: number;
  /** true: one workgroup per output; false: one thread per output. */
  perWorkgroup: boolean;
}

/** Params: [nOut, nRed, inOffset, keptShape.., keptStrides.., redShape.., redStrides..]. */
export function reduceShader(s: ReduceShaderSpec): string {
  const K = s.keptRank;
  const Rr = s.redRank;
  const keptShape = 3;
  const keptStrides = 3 + K;
  const redShape = 3 + 2 * K;
  const redStrides = 3 + 2 * K + Rr;
  const isArg = s.kind === 'argmax' || s.kind === 'argmin';
  const T = s.inType;
  const init = s.kind === 'sum' ? `${T}(0)` : s.kind === 'max' || s.kind === 'argmax' ? (T === 'f32' ? '-3.402823e38' : '-2147483647 - 1') : T === 'f32' ? '3.402823e38' : '2147483647';
  // better(v, j, acc, accIdx): whether (v, j) replaces (acc, accIdx); index ties keep the smaller index.
  const better =
    s.kind === 'max' || s.kind === 'argmax'
      ? '(v > acc || (v == acc && j < accIdx) || (v != v && acc == acc))'
      : '(v < acc || (v == acc && j < accIdx) || (v != v && acc == acc))';
  const combine = s.kind === 'sum' ? 'acc = acc + v;' : `if (${better}) { acc = v; accIdx = j; }`;
  // The long sequential loop of a float sum uses Kahan compensation: long rows otherwise lose
  // ~1e-4 relative accuracy in f32.
  const seqCombine = s.kind === 'sum' && T === 'f32' ? '{ let yk = v - comp; let tk = acc + yk; comp = (tk - acc) - yk; acc = tk; }' : combine;
  const keptOffset = (idxVar: string) => {
    const l = [`var rem_k = ${idxVar};`, 'var base = pu(2u);'];
    for (let d = K - 1; d >= 0; d--) l.push(`{ let dim = pu(${keptShape + d}u); base += (rem_k % dim) * pu(${keptStrides + d}u); rem_k = rem_k / dim; }`);
    return l.join('\n  ');
  };
  const redOffset = ['var rem_r = j;', 'var off = base;'];
  for (let d = Rr - 1; d >= 0; d--) redOffset.push(`{ let dim = pu(${redShape + d}u); off += (rem_r % dim) * pu(${redStrides + d}u); rem_r = rem_r / dim; }`);
  const decl = `
@group(0) @binding(1) var<storage, read> x: array<${T}>;
@group(0) @binding(2) var<storage, read_write> out: array<${s.outType}>;
`;
  const result = isArg ? `${s.outType}(accIdx)` : `${s.outType}(acc)`;
  if (!s.perWorkgroup) {
    return `${decl}
@compute @workgroup_size(${REDUCE_WG})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
  let o = linear_wg(wid, nwg) * ${REDUCE_WG}u + lid.x;
  if (o >= pu(0u)) { return; }
  ${keptOffset('o')}
  var acc: ${T} = ${init};
  var accIdx: u32 = 0xffffffffu;
  var comp: ${T} = ${T}(0);
  for (var j = 0u; j < pu(1u); j++) {
    ${redOffset.join('\n    ')}
    let v = x[off];
    ${seqCombine}
  }
  out[o] = ${result};
}
`;
  }
  return `${decl}
var<workgroup> sv: array<${T}, ${REDUCE_WG}>;
var<workgroup> si: array<u32, ${REDUCE_WG}>;
@compute @workgroup_size(${REDUCE_WG})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
  let o = linear_wg(wid, nwg);
  if (o >= pu(0u)) { return; }
  ${keptOffset('o')}
  var acc: ${T} = ${init};
  var accIdx: u32 = 0xffffffffu;
  var comp: ${T} = ${T}(0);
  for (var j = lid.x; j < pu(1u); j += ${REDUCE_WG}u) {
    ${redOffset.join('\n    ')}
    let v = x[off];
    ${seqCombine}
  }
  sv[lid.x] = acc;
  si[lid.x] = accIdx;
  workgroupBarrier();
  for (var step = ${REDUCE_WG / 2}u; step > 0u; step = step / 2u) {
    if (lid.x < step) {
      let v = sv[lid.x + step];
      let j = si[lid.x + step];
      acc = sv[lid.x];
      accIdx = si[lid.x];
      ${combine}
      sv[lid.x] = acc;
      si[lid.x] = accIdx;
    }
    workgroupBarrier();
  }
  if (lid.x == 0u) {
    acc = sv[0];
    accIdx = si[0];
    out[o] = ${result};
  }
}
`;
}
