/**
 * Implicit-GEMM convolution kernels (groups = 1): the three products of a convolution computed
 * without materializing the unfolded columns (im2col) of shaders/conv.ts.
 *
 *   fwd  y[n, co, p]        = sum_{c,ki,kj} w[co, c, ki, kj] * x[n, c, h(p,ki), w(p,kj)]   (+ bias[co])
 *   dx   dx[n, c, h, w]     = sum_{co,ki,kj} w[co, c, ki, kj] * dy[n, co, oh, ow]
 *                             over the taps with oh*sh - ph + ki*dh = h (same along w)
 *   dw   dw[co, c, ki, kj]  = sum_{n,oh,ow} dy[n, co, oh, ow] * x[n, c, oh*sh - ph + ki*dh, ow*sw - pw + kj*dw]
 *
 * Each is a GEMM  out[m, j] = sum_k A[m, k] * B[k, j]  whose B operand is gathered through the
 * unfold index arithmetic (out-of-image taps read 0):
 *   fwd: m = co, j = (n, oh, ow), k = (ki, kj) outer x c inner; A = w, B = x
 *   dx:  m = c,  j = (n, h, w),   k = (ki, kj) outer x co inner; A = w (read as [c, co]), B = dy
 *   dw:  m = co, j = (c, ki, kj), k = (n, oh, ow);               A = dy, B = x
 * The reduction is split so that the index arithmetic of a column (divisions, bounds) happens once
 * per tap (fwd, dx) or once per column (dw), and the innermost loop only adds a stride.
 *
 * Two kernels: implicitTiledKernel (GPUs: workgroup-memory tiles, see its comment) and
 * implicitRowsKernel (software adapters), described here.
 * Register blocking without workgroup memory (like matmulRowShader): a workgroup computes TM rows
 * x WG*TN columns; invocation `l` owns columns n0 + l + WG*g (consecutive invocations read
 * consecutive pixels: coalesced on GPUs for stride 1), accumulates TM*TN outputs in registers, and
 * reads the TM A values of each k (the same for all invocations: a broadcast load on GPUs) and
 * its TN gathered B values. Loads use clamped, always valid indices; out-of-image taps are
 * zeroed with select(). On software adapters (lavapipe) every non-constant integer division is a
 * scalar loop over the SIMD lanes; here the divisions happen once per thread (column setup) or
 * once per tap (strided dx), never in the inner loops, so the geometry is read from the params by
 * default (one pipeline per mode and block shape). It can be baked into the WGSL as literals
 * (`bake: IMPLICIT_GEOMETRY`, as shaders/conv.ts does on software adapters): measured no gain on
 * lavapipe and ~3 s of compilation per geometry and kernel there.
 * With `subgroups` (software adapters with the feature) the A values of WG consecutive channels
 * (fwd, dx) or output columns (dw) are loaded once per chunk, one per lane, and broadcast with
 * subgroupShuffle (TM loads per WG reduction steps instead of TM per step); the remainder runs
 * the plain loop.
 *
 * Parameters: the batch N and the geometry (IMPLICIT_GEOMETRY, bakeable), the tile grid (tilesM,
 * tilesN), the images per split of dw (per_split), offsets and 4-D strides of A and B, and the
 * bias offset and stride. Bindings: A, B, BIAS (fwd with `bias`), OUT. dw with splits writes
 * [splits, Cout, C*kh*kw] partial sums, which splitSumKernel (shaders/matmul.ts) adds.
 */
import { defineKernel, read, rw, type BindingDecls, type KernelSignature, type ParamDecls } from '../engine/kernel.js';
import { GEOM_PARAMS } from './conv.js';

export type ImplicitConvMode = 'fwd' | 'dx' | 'dw';

const IMPLICIT_PARAMS = {
  N: 'u32',
  ...GEOM_PARAMS,
  Cout: 'u32',
  tilesM: 'u32',
  tilesN: 'u32',
  per_split: 'u32',
  a_off: 'u32',
  a_st: ['u32', 4],
  b_off: 'u32',
  b_st: ['u32', 4],
  bias_off: 'u32',
  bias_st: 'u32',
} as const satisfies ParamDecls;

/** The geometry parameters (what `bake` may compile in; N stays a parameter). */
export const IMPLICIT_GEOMETRY = [...(Object.keys(GEOM_PARAMS) as (keyof typeof GEOM_PARAMS)[]), 'Cout'] as const;

function implicitSignature(bias: boolean): KernelSignature {
  const bindings: Record<string, BindingDecls[string]> = { A: read(), B: read() };
  if (bias) bindings.BIAS = read();
  bindings.OUT = rw();
  return { params: IMPLICIT_PARAMS, bindings };
}

export interface ImplicitRowsSpec {
  mode: ImplicitConvMode;
  /** Invocations per workgroup (lanes along the columns). */
  WG: number;
  /** Rows (output channels, or input channels for dx) per workgroup. */
  TM: number;
  /** Columns per invocation. */
  TN: number;
  /** fwd: add bias[co] (binding 3). */
  bias?: boolean;
  /** dx: stride > 1 along either dim (else the stride-1 tap test without divisions). */
  strided?: boolean;
  /** Subgroup broadcast of A over WG reduction steps (needs the feature and subgroup size WG). */
  subgroups?: boolean;
}

export const implicitRowsKernel = defineKernel<ImplicitRowsSpec>({
  name: 'conv',
  key: (s) => `implicit|${s.mode}|rows|${s.WG}x${s.TM}x${s.TN}|${+hasBias(s)}${+!!s.subgroups}${+!!s.strided}`,
  signature: (s) => implicitSignature(hasBias(s)),
  directives: (s) => (s.subgroups ? 'enable subgroups;' : ''),
  body: implicitRowsBody,
});

const hasBias = (s: { mode: ImplicitConvMode; bias?: boolean }) => s.mode === 'fwd' && !!s.bias;

function implicitRowsBody(s: ImplicitRowsSpec): string {
  const { mode, WG, TM, TN } = s;
  const L: string[] = [];
  const emit = (x: string) => L.push(x);
  const bias = hasBias(s);
  emit(`@compute @workgroup_size(${WG})`);
  emit(
    `fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) tid: u32${s.subgroups ? ', @builtin(subgroup_size) sgs: u32, @builtin(subgroup_invocation_id) sid: u32' : ''}) {`,
  );
  emit(`  let NB = P.N;`);
  emit(`  let C = P.C; let H = P.H; let W = P.W; let CO = P.Cout;`);
  emit(`  let kh = P.kh; let kw = P.kw; let sh = P.sh; let sw = P.sw;`);
  emit(`  let ph = P.ph; let pw = P.pw; let dh = P.dh; let dw = P.dw;`);
  emit(`  let Hb = P.Hb; let Wb = P.Wb;`);
  emit(`  let wgi = linear_wg(wid, nwg);`);
  emit(`  let tilesM = P.tilesM; let tilesN = P.tilesN;`);
  emit(`  let perSplit = tilesM * tilesN;`);
  emit(`  let split = wgi / perSplit;`);
  emit(`  let tile = wgi % perSplit;`);
  emit(`  let tm = tile / tilesN; let tn = tile % tilesN;`);
  emit(`  let aOff = P.a_off; let as0 = P.a_st_0; let as1 = P.a_st_1; let as2 = P.a_st_2; let as3 = P.a_st_3;`);
  emit(`  let bOff = P.b_off; let bs0 = P.b_st_0; let bs1 = P.b_st_1; let bs2 = P.b_st_2; let bs3 = P.b_st_3;`);
  // Rows (M) and columns (NC) of the product.
  const M = mode === 'dx' ? 'C' : 'CO';
  const NC = mode === 'fwd' ? 'NB * Hb * Wb' : mode === 'dx' ? 'NB * H * W' : 'C * kh * kw';
  emit(`  let M = ${M};`);
  emit(`  let NC = ${NC};`);
  if (mode === 'dw') {
    emit(`  let n0img = split * P.per_split;`);
    emit(`  let n1img = min(NB, n0img + P.per_split);`);
  } else {
    emit(`  if (split > 0u) { return; }`);
  }
  emit(`  let m0 = tm * ${TM}u;`);
  emit(`  let c0 = tn * ${WG * TN}u;`);
  const G = TN;
  const col = (g: number) => `c0 + tid + ${g * WG}u`;
  // Per-column setup.
  for (let g = 0; g < G; g++) {
    emit(`  let jc${g} = min(${col(g)}, NC - 1u);`);
    if (mode === 'fwd') {
      emit(`  let n${g} = jc${g} / (Hb * Wb); let p${g} = jc${g} % (Hb * Wb);`);
      emit(`  let ih${g} = i32((p${g} / Wb) * sh) - ph; let iw${g} = i32((p${g} % Wb) * sw) - pw;`);
      emit(`  let bb${g} = bOff + n${g} * bs0;`);
    } else if (mode === 'dx') {
      emit(`  let n${g} = jc${g} / (H * W); let q${g} = jc${g} % (H * W);`);
      emit(`  let th${g} = i32(q${g} / W) + ph; let tw${g} = i32(q${g} % W) + pw;`);
      emit(`  let bb${g} = bOff + n${g} * bs0;`);
    } else {
      emit(`  let cc${g} = jc${g} / (kh * kw); let t${g} = jc${g} % (kh * kw);`);
      emit(`  let ho${g} = i32((t${g} / kw) * dh) - ph; let wo${g} = i32((t${g} % kw) * dw) - pw;`);
      emit(`  let bb${g} = bOff + cc${g} * bs1;`);
    }
  }
  // Row bases of A.
  for (let i = 0; i < TM; i++) {
    const rowStride = mode === 'dx' ? 'as1' : mode === 'fwd' ? 'as0' : 'as1';
    emit(`  let pa${i} = aOff + min(m0 + ${i}u, M - 1u) * ${rowStride};`);
  }
  for (let i = 0; i < TM; i++) {
    for (let g = 0; g < G; g++) emit(`  var acc${i}_${g} = ${bias ? `BIAS[P.bias_off + min(m0 + ${i}u, M - 1u) * P.bias_st]` : '0.0'};`);
  }
  const fma = (ind: string, aExpr: (i: number) => string) => {
    for (let i = 0; i < TM; i++) emit(`${ind}let a${i} = ${aExpr(i)};`);
    for (let i = 0; i < TM; i++) for (let g = 0; g < G; g++) emit(`${ind}acc${i}_${g} += a${i} * b${g};`);
  };
  if (mode === 'fwd' || mode === 'dx') {
    // k = (ki, kj) outer, channel inner. A[m, ch] at tap (ki, kj): w[co, c, ki, kj].
    //   fwd: m = co (stride as0), ch = c (stride as1);  dx: m = c (as1), ch = co (as0).
    const chCount = mode === 'fwd' ? 'C' : 'CO';
    const aCh = mode === 'fwd' ? 'as1' : 'as0';
    emit(`  for (var ki = 0u; ki < kh; ki++) {`);
    emit(`    for (var kj = 0u; kj < kw; kj++) {`);
    for (let g = 0; g < G; g++) {
      if (mode === 'fwd') {
        emit(`      let h${g} = ih${g} + i32(ki * dh); let w${g} = iw${g} + i32(kj * dw);`);
        emit(`      let ok${g} = h${g} >= 0 && h${g} < i32(H) && w${g} >= 0 && w${g} < i32(W);`);
        emit(`      var pb${g} = select(bb${g}, bb${g} + u32(h${g}) * bs2 + u32(w${g}) * bs3, ok${g});`);
      } else {
        emit(`      let eh${g} = th${g} - i32(ki * dh); let ew${g} = tw${g} - i32(kj * dw);`);
        if (s.strided) {
          emit(`      let oh${g} = u32(max(eh${g}, 0)) / sh; let ow${g} = u32(max(ew${g}, 0)) / sw;`);
          emit(
            `      let ok${g} = eh${g} >= 0 && ew${g} >= 0 && u32(eh${g}) == oh${g} * sh && u32(ew${g}) == ow${g} * sw && oh${g} < Hb && ow${g} < Wb;`,
          );
        } else {
          emit(`      let oh${g} = u32(max(eh${g}, 0)); let ow${g} = u32(max(ew${g}, 0));`);
          emit(`      let ok${g} = eh${g} >= 0 && ew${g} >= 0 && oh${g} < Hb && ow${g} < Wb;`);
        }
        emit(`      var pb${g} = select(bb${g}, bb${g} + oh${g} * bs2 + ow${g} * bs3, ok${g});`);
      }
    }
    emit(`      let ta = ki * as2 + kj * as3;`);
    for (let i = 0; i < TM; i++) emit(`      var qa${i} = pa${i} + ta;`);
    const bload = (ind: string) => {
      for (let g = 0; g < G; g++) emit(`${ind}let b${g} = select(0.0, B[pb${g}], ok${g}); pb${g} += bs1;`);
    };
    emit(`      var ch = 0u;`);
    if (s.subgroups) {
      emit(`      if (sgs == ${WG}u) {`);
      emit(`        for (; ch + ${WG}u <= ${chCount}; ch += ${WG}u) {`);
      for (let i = 0; i < TM; i++) emit(`          let av${i} = A[qa${i} + sid * ${aCh}];`);
      for (let i = 0; i < TM; i++) emit(`          qa${i} += ${WG}u * ${aCh};`);
      emit(`          for (var v = 0u; v < ${WG}u; v++) {`);
      bload('            ');
      fma('            ', (i) => `subgroupShuffle(av${i}, v)`);
      emit(`          }`);
      emit(`        }`);
      emit(`      }`);
    }
    emit(`      for (; ch < ${chCount}; ch++) {`);
    bload('        ');
    fma('        ', (i) => `A[qa${i}]`);
    for (let i = 0; i < TM; i++) emit(`        qa${i} += ${aCh};`);
    emit(`      }`);
    emit(`    }`);
    emit(`  }`);
  } else {
    // dw: reduction over images n (this split's range), output rows oh, output cols ow.
    // A[co, (n, oh, ow)] = dy[n, co, oh, ow]; B[(n, oh, ow), (c, ki, kj)] = x[n, c, h, w].
    emit(`  for (var n = n0img; n < n1img; n++) {`);
    for (let i = 0; i < TM; i++) emit(`    let qn${i} = pa${i} + n * as0;`);
    for (let g = 0; g < G; g++) emit(`    let xb${g} = bb${g} + n * bs0;`);
    emit(`    for (var oh = 0u; oh < Hb; oh++) {`);
    for (let g = 0; g < G; g++) {
      emit(`      let h${g} = i32(oh * sh) + ho${g};`);
      emit(`      let rok${g} = h${g} >= 0 && h${g} < i32(H);`);
      emit(`      let xr${g} = select(xb${g}, xb${g} + u32(h${g}) * bs2, rok${g});`);
    }
    for (let i = 0; i < TM; i++) emit(`      var qa${i} = qn${i} + oh * as2;`);
    const bload = (ind: string) => {
      for (let g = 0; g < G; g++) {
        emit(`${ind}let w${g} = i32(ow * sw) + wo${g};`);
        emit(`${ind}let ok${g} = rok${g} && w${g} >= 0 && w${g} < i32(W);`);
        emit(`${ind}let b${g} = select(0.0, B[select(xr${g}, xr${g} + u32(w${g}) * bs3, ok${g})], ok${g});`);
      }
    };
    emit(`      var ow = 0u;`);
    if (s.subgroups) {
      emit(`      if (sgs == ${WG}u) {`);
      emit(`        for (; ow + ${WG}u <= Wb; ) {`);
      for (let i = 0; i < TM; i++) emit(`          let av${i} = A[qa${i} + sid * as3];`);
      for (let i = 0; i < TM; i++) emit(`          qa${i} += ${WG}u * as3;`);
      emit(`          for (var v = 0u; v < ${WG}u; v++) {`);
      bload('            ');
      fma('            ', (i) => `subgroupShuffle(av${i}, v)`);
      emit(`            ow++;`);
      emit(`          }`);
      emit(`        }`);
      emit(`      }`);
    }
    emit(`      for (; ow < Wb; ow++) {`);
    bload('        ');
    fma('        ', (i) => `A[qa${i}]`);
    for (let i = 0; i < TM; i++) emit(`        qa${i} += as3;`);
    emit(`      }`);
    emit(`    }`);
    emit(`  }`);
  }
  // Epilogue.
  emit(`  let outBase = ${mode === 'dw' ? 'split * M * NC' : '0u'};`);
  for (let g = 0; g < G; g++) {
    emit(`  if (${col(g)} < NC) {`);
    for (let i = 0; i < TM; i++) {
      let addr: string;
      if (mode === 'fwd') addr = `(n${g} * CO + m0 + ${i}u) * (Hb * Wb) + p${g}`;
      else if (mode === 'dx') addr = `(n${g} * C + m0 + ${i}u) * (H * W) + q${g}`;
      else addr = `outBase + (m0 + ${i}u) * NC + jc${g}`;
      emit(`    if (m0 + ${i}u < M) { OUT[${addr}] = acc${i}_${g}; }`);
    }
    emit(`  }`);
  }
  emit(`}`);
  return L.join('\n');
}

/** Block shape of the workgroup-memory tiled kernel (GPUs). */
export interface ImplicitTiledSpec {
  mode: ImplicitConvMode;
  /** Block tile rows / columns / reduction step. */
  BM: number;
  BN: number;
  BK: number;
  /** Outputs per invocation along rows / columns ((BM/TM) * (BN/TN) invocations). */
  TM: number;
  TN: number;
  bias?: boolean;
}

/**
 * The classic tiled GEMM with implicit operands (GPUs): a workgroup computes a BM x BN block of
 * the output; for each BK step of the reduction the invocations gather the A tile (BM x BK) and
 * the B tile (BK x BN) through the unfold index arithmetic into workgroup memory (zeros outside
 * the image / past the ends), then each accumulates TM x TN outputs (rows ty + i*BM/TM, columns
 * tx + j*BN/TN: conflict-free shared reads) from the shared tiles. The reduction index k is
 * decomposed per loaded element, so the geometry should be baked (constant divisors); the column
 * index of a thread's B loads is fixed and decomposed once. Same params and bindings as
 * implicitRowsKernel; dw reduces over this split's images.
 */
export const implicitTiledKernel = defineKernel<ImplicitTiledSpec>({
  name: 'conv',
  key: (s) => `implicit|${s.mode}|tiled|${s.BM}x${s.BN}x${s.BK}|${s.TM}x${s.TN}|${+hasBias(s)}`,
  signature: (s) => implicitSignature(hasBias(s)),
  body: implicitTiledBody,
});

function implicitTiledBody(s: ImplicitTiledSpec): string {
  const { mode, BM, BN, BK, TM, TN } = s;
  const NT = (BM / TM) * (BN / TN);
  if (BM % TM || BN % TN || (BM * BK) % NT || (BK * BN) % NT || NT % BK || NT % BN) throw new Error(`conv: bad tiled block ${JSON.stringify(s)}`);
  const bias = hasBias(s);
  const L: string[] = [];
  const emit = (x: string) => L.push(x);
  emit(`var<workgroup> As: array<f32, ${BK * BM}>;`);
  emit(`var<workgroup> Bs: array<f32, ${BK * BN}>;`);
  emit(`@compute @workgroup_size(${NT})`);
  emit(`fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) tid: u32) {`);
  emit(`  let NB = P.N;`);
  emit(`  let C = P.C; let H = P.H; let W = P.W; let CO = P.Cout;`);
  emit(`  let kh = P.kh; let kw = P.kw; let sh = P.sh; let sw = P.sw;`);
  emit(`  let ph = P.ph; let pw = P.pw; let dh = P.dh; let dw = P.dw;`);
  emit(`  let Hb = P.Hb; let Wb = P.Wb;`);
  emit(`  let HWb = Hb * Wb; let KK = kh * kw;`);
  emit(`  let wgi = linear_wg(wid, nwg);`);
  emit(`  let tilesM = P.tilesM; let tilesN = P.tilesN;`);
  emit(`  let perSplit = tilesM * tilesN;`);
  emit(`  let split = wgi / perSplit;`);
  emit(`  let tile = wgi % perSplit;`);
  emit(`  let m0 = (tile / tilesN) * ${BM}u; let c0 = (tile % tilesN) * ${BN}u;`);
  emit(`  let aOff = P.a_off; let as0 = P.a_st_0; let as1 = P.a_st_1; let as2 = P.a_st_2; let as3 = P.a_st_3;`);
  emit(`  let bOff = P.b_off; let bs0 = P.b_st_0; let bs1 = P.b_st_1; let bs2 = P.b_st_2; let bs3 = P.b_st_3;`);
  emit(`  let M = ${mode === 'dx' ? 'C' : 'CO'};`);
  emit(`  let NC = ${mode === 'fwd' ? 'NB * HWb' : mode === 'dx' ? 'NB * H * W' : 'C * KK'};`);
  if (mode === 'dw') {
    emit(`  let kBeg = split * P.per_split * HWb;`);
    emit(`  let kEnd = min(NB, (split + 1u) * P.per_split) * HWb;`);
  } else {
    emit(`  if (split > 0u) { return; }`);
    emit(`  let kBeg = 0u;`);
    emit(`  let kEnd = ${mode === 'fwd' ? 'C' : 'CO'} * KK;`);
  }
  // A loads: element e = tid + NT*r -> row e / BK, k offset e % BK (= tid % BK: fixed).
  // B loads: element e -> k offset e / BN, column e % BN (= tid % BN: fixed).
  const nA = (BM * BK) / NT;
  const nB = (BK * BN) / NT;
  emit(`  let akk = tid % ${BK}u;`);
  emit(`  let bjj = tid % ${BN}u;`);
  emit(`  let bj = min(c0 + bjj, NC - 1u);`);
  emit(`  let bjOk = c0 + bjj < NC;`);
  // Per-thread fixed column decomposition of B.
  if (mode === 'fwd') {
    emit(`  let bn = bj / HWb; let bp = bj % HWb;`);
    emit(`  let bih = i32((bp / Wb) * sh) - ph; let biw = i32((bp % Wb) * sw) - pw;`);
    emit(`  let bBase = bOff + bn * bs0;`);
  } else if (mode === 'dx') {
    emit(`  let bn = bj / (H * W); let bq = bj % (H * W);`);
    emit(`  let bth = i32(bq / W) + ph; let btw = i32(bq % W) + pw;`);
    emit(`  let bBase = bOff + bn * bs0;`);
  } else {
    emit(`  let bc = bj / KK; let bt = bj % KK;`);
    emit(`  let bho = i32((bt / kw) * dh) - ph; let bwo = i32((bt % kw) * dw) - pw;`);
    emit(`  let bBase = bOff + bc * bs1;`);
  }
  emit(`  let TX = ${BN / TN}u;`);
  emit(`  let tx = tid % TX; let ty = tid / TX;`);
  for (let i = 0; i < TM; i++) for (let j = 0; j < TN; j++) emit(`  var acc${i}_${j} = 0.0;`);
  emit(`  for (var k0 = kBeg; k0 < kEnd; k0 += ${BK}u) {`);
  // ---- A tile ----
  emit(`    {`);
  emit(`      let k = k0 + akk;`);
  emit(`      let kOk = k < kEnd;`);
  emit(`      let kc = min(k, kEnd - 1u);`);
  if (mode === 'fwd' || mode === 'dx') {
    // k = (ch, ki, kj) with ch the reduced channel; A[m, k] = w[co, c, ki, kj].
    emit(`      let ch = kc / KK; let t = kc % KK; let ki = t / kw; let kj = t % kw;`);
    emit(`      let ak = aOff + ch * ${mode === 'fwd' ? 'as1' : 'as0'} + ki * as2 + kj * as3;`);
  } else {
    emit(`      let an = kc / HWb; let ap = kc % HWb;`);
    emit(`      let ak = aOff + an * as0 + (ap / Wb) * as2 + (ap % Wb) * as3;`);
  }
  const aRow = mode === 'dx' ? 'as1' : mode === 'fwd' ? 'as0' : 'as1';
  for (let r = 0; r < nA; r++) {
    emit(`      { let mm = tid / ${BK}u + ${(r * NT) / BK}u; let m = m0 + mm;`);
    emit(`        As[akk * ${BM}u + mm] = select(0.0, A[ak + min(m, M - 1u) * ${aRow}], kOk && m < M); }`);
  }
  emit(`    }`);
  // ---- B tile ----
  for (let r = 0; r < nB; r++) {
    emit(`    {`);
    emit(`      let kk = tid / ${BN}u + ${(r * NT) / BN}u;`);
    emit(`      let k = k0 + kk;`);
    emit(`      let kc = min(k, kEnd - 1u);`);
    if (mode === 'fwd') {
      emit(`      let c = kc / KK; let t = kc % KK;`);
      emit(`      let h = bih + i32((t / kw) * dh); let w = biw + i32((t % kw) * dw);`);
      emit(`      let ok = bjOk && k < kEnd && h >= 0 && h < i32(H) && w >= 0 && w < i32(W);`);
      emit(`      let addr = select(bBase, bBase + c * bs1 + u32(h) * bs2 + u32(w) * bs3, ok);`);
    } else if (mode === 'dx') {
      emit(`      let co = kc / KK; let t = kc % KK;`);
      emit(`      let eh = bth - i32((t / kw) * dh); let ew = btw - i32((t % kw) * dw);`);
      emit(`      let oh = u32(max(eh, 0)) / sh; let ow = u32(max(ew, 0)) / sw;`);
      emit(`      let ok = bjOk && k < kEnd && eh >= 0 && ew >= 0 && u32(eh) == oh * sh && u32(ew) == ow * sw && oh < Hb && ow < Wb;`);
      emit(`      let addr = select(bBase, bBase + co * bs1 + oh * bs2 + ow * bs3, ok);`);
    } else {
      emit(`      let n = kc / HWb; let p = kc % HWb;`);
      emit(`      let h = i32((p / Wb) * sh) + bho; let w = i32((p % Wb) * sw) + bwo;`);
      emit(`      let ok = bjOk && k < kEnd && h >= 0 && h < i32(H) && w >= 0 && w < i32(W);`);
      emit(`      let addr = select(bBase, bBase + n * bs0 + u32(h) * bs2 + u32(w) * bs3, ok);`);
    }
    emit(`      Bs[kk * ${BN}u + bjj] = select(0.0, B[addr], ok);`);
    emit(`    }`);
  }
  emit(`    workgroupBarrier();`);
  emit(`    for (var kk = 0u; kk < ${BK}u; kk++) {`);
  for (let i = 0; i < TM; i++) emit(`      let a${i} = As[kk * ${BM}u + ty + ${(i * BM) / TM}u];`);
  for (let j = 0; j < TN; j++) emit(`      let b${j} = Bs[kk * ${BN}u + tx + ${(j * BN) / TN}u];`);
  for (let i = 0; i < TM; i++) for (let j = 0; j < TN; j++) emit(`      acc${i}_${j} += a${i} * b${j};`);
  emit(`    }`);
  emit(`    workgroupBarrier();`);
  emit(`  }`);
  // ---- epilogue ----
  emit(`  let outBase = ${mode === 'dw' ? 'split * M * NC' : '0u'};`);
  for (let j = 0; j < TN; j++) {
    emit(`  {`);
    emit(`    let jj = c0 + tx + ${(j * BN) / TN}u;`);
    emit(`    if (jj < NC) {`);
    let addr: (m: string) => string;
    if (mode === 'fwd') {
      emit(`      let n = jj / HWb; let p = jj % HWb;`);
      addr = (m) => `(n * CO + ${m}) * HWb + p`;
    } else if (mode === 'dx') {
      emit(`      let n = jj / (H * W); let q = jj % (H * W);`);
      addr = (m) => `(n * C + ${m}) * (H * W) + q`;
    } else addr = (m) => `outBase + ${m} * NC + jj`;
    for (let i = 0; i < TM; i++) {
      emit(`      { let m = m0 + ty + ${(i * BM) / TM}u;`);
      emit(`        if (m < M) { OUT[${addr('m')}] = acc${i}_${j}${bias ? ' + BIAS[P.bias_off + m * P.bias_st]' : ''}; } }`);
    }
    emit(`    }`);
    emit(`  }`);
  }
  emit(`}`);
  return L.join('\n');
}
