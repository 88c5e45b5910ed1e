/**
 * Fused attention kernels (FlashAttention-2 style, one row per thread group):
 *
 *  - forward: a workgroup takes ATT_WG / S query rows of one (batch, head); each row is handled by
 *    S threads that split the keys. Key/value tiles are staged in workgroup memory (or read straight
 *    from global memory when a workgroup has so few rows that staging buys no reuse: `direct`); each
 *    thread keeps its query, running max m, running sum l and output accumulator privately and
 *    folds one tile at a time with the online softmax (rescale once per tile). The S partial states
 *    of a row are merged through workgroup memory at the end. The score matrix is never written;
 *    the per-row logsumexp is saved for the backward.
 *  - dq: same layout as the forward; probabilities are recomputed from the saved logsumexp:
 *    p = exp(s - lse), dp = dO . v, ds = p (dp - delta) with delta = dO . O, dq += ds k.
 *  - dk/dv: a workgroup takes ATT_WG / S keys; each key is handled by S threads that split the
 *    queries; query / dO tiles (and their lse / delta) are staged; dv += p dO, dk += ds q.
 *
 * Rows (queries, or keys for dk/dv) map to threads as t = row * S + split. Private arrays have a
 * compile-time size (the head dim rounded up to a bucket of at least ATT_ARRAY_MIN) while loops
 * run to the runtime head dims (plus a runtime zero, so they are not unrolled). Measured on
 * llvmpipe (lavapipe): with exact compile-time head dims and constant loop bounds a first compile
 * took 5-15 s for D <= 16 (0.3-0.7 s at D = 64); this way every variant compiles in ~0.3-1.6 s
 * (then Mesa's disk cache holds it). Causality and the leading rank are runtime parameters too,
 * so few shader variants exist. Everything is f32.
 *
 * Parameters (declared in `attnParams`, shared by the three kernels): BH, Lq, Lk, blocks per
 * (batch, head), scale, causal_off = Lk - Lq, neg_inf (-inf from the host: WGSL constants cannot
 * be infinite), the leading (batch) shape lead_0..2 (collapsed, padded with 1s), then per operand
 * X of q, k, v, the mask (when there is one) and x (o for the forward, dO for the backward):
 * X_off, X_lead_0..2 (leading strides), X_sL (row stride), X_sD (column stride); then D, Dv,
 * zero (a runtime 0 added to loop bounds so they are not unrolled) and causal (0/1).
 * Leading index bh in [0, BH) is decoded row-major over the (collapsed) leading shape.
 */
import { defineKernel, read, rw, type BindingDecls, type ParamDecls } from '../engine/kernel.js';

export const ATT_WG = 64;
/** Floats of workgroup memory for tiles (15 KiB; plus 256 B of reduction scratch < 16 KiB). */
export const ATT_TILE_FLOATS = 3840;
/** Largest head dim the GPU kernels take (private arrays per thread). */
export const ATT_MAX_D = 128;

/** Smallest private-array size (small arrays made llvmpipe compiles slow, see above). */
export const ATT_ARRAY_MIN = 64;

/** The compile-time array size for a head dim d. */
export function attnBucket(d: number): number {
  let b = ATT_ARRAY_MIN;
  while (b < d) b *= 2;
  return b;
}

export type AttnMaskKind = 'none' | 'f32' | 'i32';

export interface AttnShaderSpec {
  /** Array size for head dims of q and k (attnBucket). */
  D: number;
  /** Array size for the head dim of v (and the output). */
  DV: number;
  /** Threads per row (power of two dividing ATT_WG). */
  S: number;
  /** Tile length along the looped axis (keys for forward / dq, queries for dk/dv). */
  BT: number;
  /** Read the looped operands from global memory instead of staging tiles. */
  direct: boolean;
  mask: AttnMaskKind;
}

const NEG_BIG = '-3.402823e38';

/** The operands addressed through an operand record: q, k, v, the mask, and o / dO. */
const OPERANDS = ['q', 'k', 'v', 'm', 'x'] as const;

function attnParams(s: AttnShaderSpec): ParamDecls {
  const p: Record<string, ParamDecls[string]> = { BH: 'u32', Lq: 'u32', Lk: 'u32', blocks: 'u32', scale: 'f32', causal_off: 'i32', neg_inf: 'f32', lead: ['u32', 3] };
  for (const o of OPERANDS) {
    if (o === 'm' && s.mask === 'none') continue;
    Object.assign(p, { [`${o}_off`]: 'u32', [`${o}_lead`]: ['u32', 3], [`${o}_sL`]: 'u32', [`${o}_sD`]: 'u32' });
  }
  return { ...p, D: 'u32', Dv: 'u32', zero: 'u32', causal: 'u32' };
}

/** Bindings: the inputs (read), the optional mask after them, then the rest (`outputs`: written). */
function attnBindings(s: AttnShaderSpec, inputs: string[], reads: string[], outputs: string[]): BindingDecls {
  const b: Record<string, BindingDecls[string]> = {};
  for (const n of inputs) b[n] = read();
  if (s.mask !== 'none') b.M = read(s.mask);
  for (const n of reads) b[n] = read();
  for (const n of outputs) b[n] = rw();
  return b;
}

const specKey = (kind: string) => (s: AttnShaderSpec) => `${kind}|${s.D}|${s.DV}|${s.S}|${s.BT}|${s.direct}|${s.mask}`;

function header(s: AttnShaderSpec): string {
  const NSC = Math.ceil(s.BT / s.S);
  return `
const DA: u32 = ${s.D}u;
const DVA: u32 = ${s.DV}u;
const S: u32 = ${s.S}u;
const ROWS: u32 = ${ATT_WG / s.S}u;
const BT: u32 = ${s.BT}u;
const NSC: u32 = ${NSC}u;
const NSCA: u32 = ${Math.max(NSC, ATT_ARRAY_MIN)}u;
const WG: u32 = ${ATT_WG}u;
var<workgroup> sh: array<f32, ${ATT_TILE_FLOATS}>;
var<workgroup> red: array<f32, ${ATT_WG}>;
fn base_of(bh: u32, off: u32, s0: u32, s1: u32, s2: u32) -> u32 {
  var r = bh;
  var o = off;
  o += (r % P.lead_2) * s2;
  r = r / P.lead_2;
  o += (r % P.lead_1) * s1;
  r = r / P.lead_1;
  o += (r % P.lead_0) * s0;
  return o;
}
`;
}

/** Mask term for (query row i, key j): added to the score. */
function maskTerm(s: AttnShaderSpec, i: string, j: string): string {
  if (s.mask === 'none') return '';
  const at = `M[mB + (${i}) * P.m_sL + (${j}) * P.m_sD]`;
  return s.mask === 'f32' ? ` + ${at}` : ` + select(NEG_INF, 0.0, ${at} != 0)`;
}

const baseOf = (o: string) => `base_of(bh, P.${o}_off, P.${o}_lead_0, P.${o}_lead_1, P.${o}_lead_2)`;

/** Common prologue: ids, sizes and operand bases. */
function prologue(s: AttnShaderSpec): string {
  return `
  let w = linear_wg(wid, nwg);
  let nb = P.blocks;
  let bh = w / nb;
  if (bh >= P.BH) { return; }
  let blk = w % nb;
  let t = lid.x;
  let r = t / S;
  let s = t % S;
  let Lq = P.Lq;
  let Lk = P.Lk;
  let scale = P.scale;
  let off = P.causal_off;
  let NEG_INF = P.neg_inf;
  let D = P.D;
  let DV = P.Dv;
  let Z = P.zero;
  let causal = P.causal != 0u;
  let qB = ${baseOf('q')};
  let qL = P.q_sL;
  let qD = P.q_sD;
  let kB = ${baseOf('k')};
  let kL = P.k_sL;
  let kD = P.k_sD;
  let vB = ${baseOf('v')};
  let vL = P.v_sL;
  let vD = P.v_sD;
  let xB = ${baseOf('x')};
  let xL = P.x_sL;
  let xD = P.x_sD;${s.mask !== 'none' ? `\n  let mB = ${baseOf('m')};` : ''}`;
}

/**
 * Sums `arr` (N = runtime length `n`, array size `na`) over the S threads of each row and hands the
 * sum for row rr, element d to `write` (a statement using `rr`, `d` and `val`); each thread's
 * contribution is scaled by `mult`. S = 1: each thread writes its own row (if `rowOk`).
 */
function splitSum(s: AttnShaderSpec, arr: string, n: string, na: number, mult: string, write: string, rowOk: string): string {
  if (s.S === 1) {
    return `
  if (${rowOk}) {
    let rr = r;
    for (var d = 0u; d < ${n}; d++) {
      let val = ${arr}[d] * ${mult};
      ${write}
    }
  }`;
  }
  const CH = Math.min(na, Math.floor(ATT_TILE_FLOATS / ATT_WG));
  return `
  for (var d0 = 0u; d0 < ${n}; d0 += ${CH}u) {
    let ch = min(${CH}u, ${n} - d0);
    for (var c = 0u; c < ch; c++) { sh[t * ${CH}u + c] = ${arr}[d0 + c] * ${mult}; }
    workgroupBarrier();
    for (var e = t; e < ROWS * ch; e += WG) {
      let rr = e / ch;
      let c = e % ch;
      let d = d0 + c;
      var val = 0.0;
      for (var u = 0u; u < S + Z; u++) { val += sh[(rr * S + u) * ${CH}u + c]; }
      ${write}
    }
    workgroupBarrier();
  }`;
}

const MAIN_SIG = `@compute @workgroup_size(${ATT_WG})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>)`;

/** Key-tile loop bound for a workgroup whose query rows start at q0 (causal: the last row's horizon). */
const KEY_END = 'select(Lk, u32(clamp(i32(min(q0 + ROWS, Lq)) + off, 0, i32(Lk))), causal)';
/** Keys visible to query `row`. */
const ROW_END = 'select(Lk, u32(clamp(i32(row) + off + 1, 0, i32(Lk))), causal)';

/** Staged load of rows [tile0, tile0 + BT) of an operand (base, row stride, col stride) of `width` floats into sh[at..]. */
function loadTile(buf: string, base: string, sl: string, sd: string, width: string, at: string, limit: string): string {
  return `for (var e = t; e < BT * ${width}; e += WG) {
      let jj = e / ${width};
      let d = e % ${width};
      let j = tile0 + jj;
      var val = 0.0;
      if (j < ${limit}) { val = ${buf}[${base} + j * ${sl} + d * ${sd}]; }
      sh[${at} + e] = val;
    }`;
}

/** Key / value element d of key kj (tile slot jj). */
function keyAccess(s: AttnShaderSpec): { k: string; v: string; load: string } {
  if (s.direct) return { k: '(K[kB + kj * kL + d * kD])', v: '(V[vB + kj * vL + d * vD])', load: '' };
  return {
    k: 'sh[jj * D + d]',
    v: 'sh[BT * D + jj * DV + d]',
    load: `let tile0 = kt;
    ${loadTile('K', 'kB', 'kL', 'kD', 'D', '0u', 'Lk')}
    ${loadTile('V', 'vB', 'vL', 'vD', 'DV', 'BT * D', 'Lk')}
    workgroupBarrier();`,
  };
}

/** Forward: o (through its strides, operand x) and lse [BH, Lq]. Bindings: Q, K, V, [M], O, LSE. */
export const attnForwardKernel = defineKernel<AttnShaderSpec>({
  name: 'attn',
  key: specKey('fwd'),
  signature: (s) => ({ params: attnParams(s), bindings: attnBindings(s, ['Q', 'K', 'V'], [], ['O', 'LSE']) }),
  body: forwardBody,
});

function forwardBody(s: AttnShaderSpec): string {
  const a = keyAccess(s);
  const oWrite = 'O[xB + (q0 + rr) * xL + d * xD] = val;';
  const epilogue =
    s.S === 1
      ? `
  let wOut = select(0.0, 1.0 / l, l > 0.0);
  ${splitSum(s, 'acc', 'DV', s.DV, 'wOut', oWrite, 'live')}
  if (live) { LSE[bh * Lq + row] = select(NEG_INF, m + log(l), l > 0.0); }`
      : `
  red[t] = m;
  workgroupBarrier();
  var M = ${NEG_BIG};
  for (var u = 0u; u < S + Z; u++) { M = max(M, red[r * S + u]); }
  let f = exp(m - M);
  workgroupBarrier();
  red[t] = l * f;
  workgroupBarrier();
  var Lt = 0.0;
  for (var u = 0u; u < S + Z; u++) { Lt += red[r * S + u]; }
  let wOut = select(0.0, f / Lt, Lt > 0.0);
  ${splitSum(s, 'acc', 'DV', s.DV, 'wOut', `if (q0 + rr < Lq) { ${oWrite} }`, 'live')}
  if (live && s == 0u) { LSE[bh * Lq + row] = select(NEG_INF, M + log(Lt), Lt > 0.0); }`;
  return `
${header(s)}
${MAIN_SIG} {
  ${prologue(s)}
  let q0 = blk * ROWS;
  let row = q0 + r;
  let live = row < Lq;
  var qv: array<f32, DA>;
  var acc: array<f32, DVA>;
  var sc: array<f32, NSCA>;
  if (live) {
    for (var d = 0u; d < D; d++) { qv[d] = Q[qB + row * qL + d * qD] * scale; }
  }
  var m: f32 = ${NEG_BIG};
  var l: f32 = 0.0;
  let kEnd = ${KEY_END};
  let rowEnd = ${ROW_END};
  for (var kt = 0u; kt < kEnd; kt += BT) {
    ${a.load}
    if (live) {
      var mt = m;
      for (var c = 0u; c < NSC + Z; c++) {
        let jj = s + c * S;
        let kj = kt + jj;
        var x = NEG_INF;
        if (jj < BT && kj < rowEnd) {
          var dot = 0.0;
          for (var d = 0u; d < D; d++) { dot += qv[d] * ${a.k}; }
          x = dot${maskTerm(s, 'row', 'kj')};
        }
        sc[c] = x;
        mt = max(mt, x);
      }
      if (mt > m) {
        let al = exp(m - mt);
        l *= al;
        for (var d = 0u; d < DV; d++) { acc[d] *= al; }
        m = mt;
      }
      for (var c = 0u; c < NSC + Z; c++) {
        let p = exp(sc[c] - m);
        if (p > 0.0) {
          let jj = s + c * S;
          let kj = kt + jj;
          l += p;
          for (var d = 0u; d < DV; d++) { acc[d] += p * ${a.v}; }
        }
      }
    }${s.direct ? '' : '\n    workgroupBarrier();'}
  }${epilogue}
}
`;
}

/** dq [BH, Lq, D] (contiguous). Bindings: Q, K, V, DO, [M], LSE, DELTA, DQ. */
export const attnDqKernel = defineKernel<AttnShaderSpec>({
  name: 'attn',
  key: specKey('dq'),
  signature: (s) => ({ params: attnParams(s), bindings: attnBindings(s, ['Q', 'K', 'V', 'DO'], ['LSE', 'DELTA'], ['DQ']) }),
  body: dqBody,
});

function dqBody(s: AttnShaderSpec): string {
  const a = keyAccess(s);
  const write = `if (q0 + rr < Lq) { DQ[(bh * Lq + q0 + rr) * D + d] = val; }`;
  return `
${header(s)}
${MAIN_SIG} {
  ${prologue(s)}
  let q0 = blk * ROWS;
  let row = q0 + r;
  let live = row < Lq;
  var qv: array<f32, DA>;
  var dov: array<f32, DVA>;
  var dq: array<f32, DA>;
  var lse = NEG_INF;
  var delta = 0.0;
  if (live) {
    for (var d = 0u; d < D; d++) { qv[d] = Q[qB + row * qL + d * qD] * scale; }
    for (var d = 0u; d < DV; d++) { dov[d] = DO[xB + row * xL + d * xD]; }
    lse = LSE[bh * Lq + row];
    delta = DELTA[bh * Lq + row];
  }
  let rowOk = live && lse > ${NEG_BIG};
  let kEnd = ${KEY_END};
  let rowEnd = ${ROW_END};
  for (var kt = 0u; kt < kEnd; kt += BT) {
    ${a.load}
    if (rowOk) {
      for (var c = 0u; c < NSC + Z; c++) {
        let jj = s + c * S;
        let kj = kt + jj;
        if (jj < BT && kj < rowEnd) {
          var dot = 0.0;
          for (var d = 0u; d < D; d++) { dot += qv[d] * ${a.k}; }
          let p = exp(dot${maskTerm(s, 'row', 'kj')} - lse);
          if (p > 0.0) {
            var dp = 0.0;
            for (var d = 0u; d < DV; d++) { dp += dov[d] * ${a.v}; }
            let ds = p * (dp - delta);
            for (var d = 0u; d < D; d++) { dq[d] += ds * ${a.k}; }
          }
        }
      }
    }${s.direct ? '' : '\n    workgroupBarrier();'}
  }
  ${splitSum(s, 'dq', 'D', s.D, 'scale', write, 'live')}
}
`;
}

/**
 * dk and dv into one buffer: dk [BH, Lk, D] at 0, dv [BH, Lk, DV] at BH * Lk * D.
 * Bindings: Q, K, V, DO, [M], LSE, DELTA, DKV. Here rows are keys and the looped axis is queries.
 */
export const attnDkDvKernel = defineKernel<AttnShaderSpec>({
  name: 'attn',
  key: specKey('dkdv'),
  signature: (s) => ({ params: attnParams(s), bindings: attnBindings(s, ['Q', 'K', 'V', 'DO'], ['LSE', 'DELTA'], ['DKV']) }),
  body: dkdvBody,
});

function dkdvBody(s: AttnShaderSpec): string {
  const qAt = s.direct ? '(Q[qB + qi * qL + d * qD])' : 'sh[ii * D + d]';
  const doAt = s.direct ? '(DO[xB + qi * xL + d * xD])' : 'sh[BT * D + ii * DV + d]';
  const lseAt = s.direct ? 'LSE[bh * Lq + qi]' : 'sh[BT * (D + DV) + ii]';
  const deltaAt = s.direct ? 'DELTA[bh * Lq + qi]' : 'sh[BT * (D + DV) + BT + ii]';
  const load = s.direct
    ? ''
    : `let tile0 = qt;
    ${loadTile('Q', 'qB', 'qL', 'qD', 'D', '0u', 'Lq')}
    ${loadTile('DO', 'xB', 'xL', 'xD', 'DV', 'BT * D', 'Lq')}
    for (var e = t; e < BT; e += WG) {
      let i = qt + e;
      var a = NEG_INF;
      var dl = 0.0;
      if (i < Lq) { a = LSE[bh * Lq + i]; dl = DELTA[bh * Lq + i]; }
      sh[BT * (D + DV) + e] = a;
      sh[BT * (D + DV) + BT + e] = dl;
    }
    workgroupBarrier();`;
  const dkWrite = `if (k0 + rr < Lk) { DKV[(bh * Lk + k0 + rr) * D + d] = val; }`;
  const dvWrite = `if (k0 + rr < Lk) { DKV[P.BH * Lk * D + (bh * Lk + k0 + rr) * DV + d] = val; }`;
  return `
${header(s)}
${MAIN_SIG} {
  ${prologue(s)}
  let k0 = blk * ROWS;
  let j = k0 + r;
  let live = j < Lk;
  var kv: array<f32, DA>;
  var vv: array<f32, DVA>;
  var dk: array<f32, DA>;
  var dv: array<f32, DVA>;
  if (live) {
    for (var d = 0u; d < D; d++) { kv[d] = K[kB + j * kL + d * kD] * scale; }
    for (var d = 0u; d < DV; d++) { vv[d] = V[vB + j * vL + d * vD]; }
  }
  // Causal: query i sees key j iff j <= i + off, so this block's first visible query is k0 - off.
  let qStart = select(0u, u32(clamp(i32(k0) - off, 0, i32(Lq))), causal);
  for (var qt = qStart; qt < Lq; qt += BT) {
    ${load}
    if (live) {
      for (var c = 0u; c < NSC + Z; c++) {
        let ii = s + c * S;
        let qi = qt + ii;
        if (ii < BT && qi < Lq && (!causal || i32(j) <= i32(qi) + off)) {
          let lse = ${lseAt};
          if (lse > ${NEG_BIG}) {
            var dot = 0.0;
            for (var d = 0u; d < D; d++) { dot += kv[d] * ${qAt}; }
            let p = exp(dot${maskTerm(s, 'qi', 'j')} - lse);
            if (p > 0.0) {
              var dp = 0.0;
              for (var d = 0u; d < DV; d++) {
                let g = ${doAt};
                dv[d] += p * g;
                dp += vv[d] * g;
              }
              let ds = p * (dp - ${deltaAt});
              for (var d = 0u; d < D; d++) { dk[d] += ds * ${qAt}; }
            }
          }
        }
      }
    }${s.direct ? '' : '\n    workgroupBarrier();'}
  }
  ${splitSum(s, 'dk', 'D', s.D, 'scale', dkWrite, 'live')}
  ${splitSum(s, 'dv', 'DV', s.DV, '1.0', dvWrite, 'live')}
}
`;
}
