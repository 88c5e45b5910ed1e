/**
 * WGSL kernels for batched matrix multiplication C[b] = A[b] @ B[b], C contiguous.
 *
 * Parameters (declared once in `matmulSignature`, shared by the three kernels): sizes M, N, K;
 * element offsets a_off, b_off; matrix strides aSM, aSK (A along M and K), bSK, bSN; the tile
 * grid tilesM x tilesN; the batch count nbatch; and per batch dim d < R (R = batchRank, part of
 * the variant) bshape_d, a_bstride_d, b_bstride_d. With a bias epilogue (`bias` in the variant) also
 * a `Bias` binding: 'cols' (for `linear`) reads Bias[bias_off + n * bias_stride], 'rows' (a
 * convolution's output channels) Bias[bias_off + m * bias_stride + sum_d i_d * bias_bstride_d] (the
 * batch dims broadcast as for A and B); C = acc + bias, the f32 accumulator plus one f32 add,
 * bit-identical to the product followed by a separate add.
 * Workgroup w (linearized) computes tile (w % tilesN, (w / tilesN) % tilesM) of batch w / (tilesM * tilesN)
 * (the tiled kernel can reorder tiles within a batch in groups of GROUP_M rows).
 *
 * Summed batch dims (`sumRank` S > 0 in the variant: the reduction of a product over broadcast
 * batch dims, such as a conv weight gradient summed over images): C[b] = sum_s A[b, s] @ B[b, s],
 * the S summed dims (sshape_d, a_sstride_d, b_sstride_d) indexed by s < nsum, accumulated in the
 * same registers as the K loop (one long reduction of K * nsum terms). With splits > 1 the summed
 * range is cut into runs of sum_per: the batch index runs over splits * nbatch, batch / nbatch is
 * the split, and C holds [splits, nbatch, M, N] partial sums that `matmulSplitSumKernel` adds.
 *
 * Three kernels:
 *  - `matmulSimpleKernel`: one output per thread, any strides (tiny problems).
 *  - `matmulTiledKernel` (GPUs): block tile BM x BN per workgroup, K in steps of BK through
 *    workgroup memory, TM x TN outputs per thread, A tile stored k-major ("transposed") so a thread
 *    reads its TM rows as vec4s. Operands are read row-major or transposed in place (aT/bT), with
 *    vec4 global loads when the contiguous dimension, leading dimension and offsets are multiples
 *    of 4 (scalar loads otherwise). Optional register prefetch, double buffering (one barrier per
 *    K tile), row padding and grouped tile order. Every size is baked into the WGSL so loops
 *    unroll and indices fold; bounds checks only when M, N or K is not a tile multiple.
 *  - `matmulRowsKernel` (software adapters such as lavapipe): register blocking without workgroup
 *    memory, shaped around how a CPU SIMD implementation executes loads (see its comment).
 */
import { defineKernel, read, rw, type KernelSignature, type ParamSpec } from '../engine/kernel.js';

/** Parameter words besides the batch arrays (3 per batch dim) in the 64-word slot. */
export const MATMUL_FIXED_WORDS = 12;

/** Parameter words of a bias epilogue: bias_off, bias_stride, and for 'rows' one batch stride per batch dim. */
export const matmulBiasWords = (bias: MatmulBias | undefined, batchRank: number): number => (bias === 'rows' ? 2 + batchRank : bias ? 2 : 0);

/** Parameter words of S summed batch dims: nsum, sum_per, splits and 3 per dim. */
export const matmulSumWords = (sumRank: number): number => (sumRank > 0 ? 3 + 3 * sumRank : 0);

/** Which output elements share a bias value: one per column (linear's features) or per row (a conv's output channels). */
export type MatmulBias = 'cols' | 'rows';

/** What every kernel variant adds to the product: batch dims, a bias epilogue, summed batch dims. */
export interface MatmulVariant {
  batchRank: number;
  /** Epilogue C = acc + bias (one f32 add per output, as a separate add would do). */
  bias?: MatmulBias;
  /** Summed batch dims (0 or absent: none). Not combined with a bias. */
  sumRank?: number;
}

function matmulSignature(v: MatmulVariant, a: string, b: string, c: string): KernelSignature {
  const R = v.batchRank;
  const S = v.sumRank ?? 0;
  if (S > 0 && v.bias) throw new Error('matmul: a bias epilogue cannot be combined with summed batch dims');
  const params: Record<string, ParamSpec> = {
    M: 'u32', N: 'u32', K: 'u32', a_off: 'u32', b_off: 'u32', aSM: 'u32', aSK: 'u32', bSK: 'u32', bSN: 'u32', tilesM: 'u32', tilesN: 'u32', nbatch: 'u32',
    bshape: ['u32', R], a_bstride: ['u32', R], b_bstride: ['u32', R],
  };
  if (S > 0) Object.assign(params, { nsum: 'u32', sum_per: 'u32', splits: 'u32', sshape: ['u32', S], a_sstride: ['u32', S], b_sstride: ['u32', S] });
  if (!v.bias) return { params, bindings: { A: read(a), B: read(b), C: rw(c) } };
  Object.assign(params, { bias_off: 'u32', bias_stride: 'u32' });
  if (v.bias === 'rows') params.bias_bstride = ['u32', R];
  return { params, bindings: { A: read(a), B: read(b), C: rw(c), Bias: read('f32') } };
}

/** The bias of output column `n` (a u32 expression), read with the bias view's offset and stride. */
const biasAt = (n: string) => `Bias[P.bias_off + (${n}) * P.bias_stride]`;

/** The bias of output row `m` of this batch ('rows' epilogue; biasBase comes from batchOffsets). */
const rowBiasAt = (m: string) => `Bias[biasBase + (${m}) * P.bias_stride]`;

/** Key suffix of the epilogue and summed dims (empty for a plain product, as before either existed). */
const variantKey = (v: MatmulVariant) => `${v.bias === 'cols' ? '|bias' : v.bias === 'rows' ? '|rbias' : ''}${v.sumRank ? `|sum${v.sumRank}` : ''}`;

/** Tile sizes of the tiled kernel (chosen per device/problem by pickMatmulConfig). */
export interface MatmulTileConfig {
  /** Block tile rows/cols per workgroup. */
  BM: number;
  BN: number;
  /** K step staged through workgroup memory. */
  BK: number;
  /** Outputs per thread (multiples of 4). */
  TM: number;
  TN: number;
}

export interface MatmulTiledSpec extends MatmulTileConfig, MatmulVariant {
  /** A is read transposed: stored as [K, M] with unit stride along M (else [M, K], unit stride along K). */
  aT: boolean;
  /** B is read transposed: stored as [N, K] with unit stride along K (else [K, N], unit stride along N). */
  bT: boolean;
  /** vec4 global loads of A / B (contiguous extent, leading dim, offsets all multiples of 4). */
  vecA: boolean;
  vecB: boolean;
  /** vec4 stores of C (N multiple of 4). */
  vecC: boolean;
  /** Bounds checks (false only when M, N, K are multiples of BM, BN, BK). */
  checked: boolean;
  /** Register prefetch of the next K tile while computing the current one. */
  prefetch: boolean;
  /** Two shared buffers (implies prefetch): one barrier per K tile instead of two. */
  doubleBuffer: boolean;
  /** One vec4 of padding per shared row (fewer bank conflicts on transposing stores). */
  pad: boolean;
  /** Grouped tile order: GROUP_M row tiles per column sweep (1 = row-major order). */
  groupM?: number;
}

export function tiledThreads(c: MatmulTileConfig): number {
  return (c.BM / c.TM) * (c.BN / c.TN);
}

/** Why a config is unusable (or null when fine). */
export function tileConfigError(c: MatmulTileConfig): string | null {
  const ok = (v: number) => Number.isInteger(v) && v > 0;
  if (![c.BM, c.BN, c.BK, c.TM, c.TN].every(ok)) return 'sizes must be positive integers';
  if (c.TM % 4 || c.TN % 4) return 'TM and TN must be multiples of 4';
  if (c.BM % c.TM || c.BN % c.TN) return 'BM/BN must be multiples of TM/TN';
  if (c.BK % 4) return 'BK must be a multiple of 4';
  return null;
}

/**
 * Base offsets of A and B (and biasBase of a 'rows' bias) for this workgroup's batch; with summed
 * dims also the summed range [s0, s1) of its split.
 */
function batchOffsets(v: MatmulVariant): string {
  const R = v.batchRank;
  const rows = v.bias === 'rows';
  const l = ['var aBase = P.a_off;', 'var bBase = P.b_off;'];
  if (rows) l.push('var biasBase = P.bias_off;');
  if (R > 0) l.push(v.sumRank ? 'var rem = batch % P.nbatch;' : 'var rem = batch;');
  for (let d = R - 1; d >= 0; d--) {
    l.push(`{ let dim = P.bshape_${d}; let i = rem % dim; rem = rem / dim; aBase += i * P.a_bstride_${d}; bBase += i * P.b_bstride_${d};${rows ? ` biasBase += i * P.bias_bstride_${d};` : ''} }`);
  }
  if (v.sumRank) l.push('let s0 = (batch / P.nbatch) * P.sum_per;', 'let s1 = min(P.nsum, s0 + P.sum_per);');
  return l.join('\n  ');
}

/** Declares aS, bS: the bases of summed index `s` (a u32 expression) within this batch. */
function sumOffsets(S: number, s: string): string {
  const l = ['var aS = aBase;', 'var bS = bBase;', `var srem = ${s};`];
  for (let d = S - 1; d >= 0; d--) l.push(`{ let dim = P.sshape_${d}; let i = srem % dim; srem = srem / dim; aS += i * P.a_sstride_${d}; bS += i * P.b_sstride_${d}; }`);
  return l.join(' ');
}

/** Whole workgroups past the last batch (of the last split) exit. */
const batchGuard = (v: MatmulVariant) => (v.sumRank ? 'if (batch >= P.nbatch * P.splits) { return; }' : 'if (batch >= P.nbatch) { return; }');

const HEADER = `
  let w = linear_wg(wid, nwg);
  let M = P.M;
  let N = P.N;
  let K = P.K;
  let tilesM = P.tilesM;
  let tilesN = P.tilesN;
  let perBatch = tilesM * tilesN;
  let batch = w / perBatch;
  let tile = w % perBatch;
  let tm = tile / tilesN;
  let tn = tile % tilesN;`;

export const SIMPLE_TILE = 8;

/** Variant of the simple kernel. */
export type MatmulSimpleSpec = MatmulVariant;

/** One output per thread, 8x8 outputs per workgroup; A and B addressed with arbitrary strides. */
export const matmulSimpleKernel = defineKernel<MatmulSimpleSpec>({
  name: 'matmul',
  key: (s) => `simple|${s.batchRank}${variantKey(s)}`,
  signature: (s) => matmulSignature(s, 'f32', 'f32', 'f32'),
  body: simpleBody,
});

function simpleBody(s: MatmulSimpleSpec): string {
  const T = SIMPLE_TILE;
  const S = s.sumRank ?? 0;
  // One product's K loop from the bases aS, bS.
  const kLoop = (ind: string) => `${ind}var pa = aS + m * P.aSM;
${ind}var pb = bS + n * P.bSN;
${ind}for (var k = 0u; k < K; k++) {
${ind}  acc += A[pa] * B[pb];
${ind}  pa += aSK;
${ind}  pb += bSK;
${ind}}`;
  const body = S
    ? `  for (var s = s0; s < s1; s++) {
    ${sumOffsets(S, 's')}
${kLoop('    ')}
  }`
    : `  let aS = aBase;
  let bS = bBase;
${kLoop('  ')}`;
  const val = s.bias === 'cols' ? `acc + ${biasAt('n')}` : s.bias === 'rows' ? `acc + ${rowBiasAt('m')}` : 'acc';
  return `
@compute @workgroup_size(${T * T})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
  ${HEADER}
  ${batchGuard(s)}
  let m = tm * ${T}u + lid.x / ${T}u;
  let n = tn * ${T}u + lid.x % ${T}u;
  if (m >= M || n >= N) { return; }
  ${batchOffsets(s)}
  let aSK = P.aSK;
  let bSK = P.bSK;
  var acc = 0.0;
${body}
  C[(batch * M + m) * N + n] = ${val};
}
`;
}

const bit = (b: boolean) => (b ? '1' : '0');

/** The tiled kernel; see the file comment. */
export const matmulTiledKernel = defineKernel<MatmulTiledSpec>({
  name: 'matmul',
  key: (s) =>
    `tiled|${s.BM}x${s.BN}x${s.BK}|${s.TM}x${s.TN}|${bit(s.aT)}${bit(s.bT)}|${bit(s.vecA)}${bit(s.vecB)}${bit(s.vecC)}|${bit(s.checked)}${bit(s.prefetch)}${bit(s.doubleBuffer)}${bit(s.pad)}|g${s.groupM ?? 1}|${s.batchRank}${variantKey(s)}`,
  signature: (s) => {
    const v = (vec: boolean) => (vec ? 'vec4<f32>' : 'f32');
    return matmulSignature(s, v(s.vecA), v(s.vecB), v(s.vecC));
  },
  body: tiledBody,
});

function tiledBody(s: MatmulTiledSpec): string {
  const err = tileConfigError(s);
  if (err) throw new Error(`matmul: bad tile config ${JSON.stringify(s)}: ${err}`);
  const { BM, BN, BK, TM, TN } = s;
  const NT = tiledThreads(s);
  // Shared rows are BM/4 (BN/4) vec4s, plus one vec4 of padding when `pad` (fewer bank conflicts
  // on the transposing stores; reads stay aligned vec4s).
  const pad = s.pad ? 1 : 0;
  const RA = BM / 4 + pad;
  const RB = BN / 4 + pad;
  const TX = BN / TN; // threads along N
  const TY = BM / TM; // threads along M
  const chk = s.checked;
  const dbl = s.doubleBuffer;
  const G = s.groupM ?? 1;
  const L: string[] = [];
  const emit = (x: string) => L.push(x);

  // ---- global -> register loads; register -> workgroup stores ----
  // A tile: BM x BK elements; B tile: BK x BN. Load e of a thread covers tile coords (r, k).
  interface Plan {
    count: number; // loads per thread
    load: (i: number) => string[]; // statements loading register ra{i}/rb{i} from K offset k0 at bases aS, bS
    store: (i: number, buf: string) => string[];
  }
  const plan = (which: 'A' | 'B'): Plan => {
    const isA = which === 'A';
    const vec = isA ? s.vecA : s.vecB;
    const trans = isA ? s.aT : s.bT;
    const R = isA ? BM : BN; // tile extent along M (A) or N (B)
    const RS = isA ? RA : RB; // shared row stride in vec4s
    const arr = isA ? 'A' : 'B';
    const sh = isA ? 'As' : 'Bs';
    const reg = isA ? 'ra' : 'rb';
    const ext = isA ? 'M' : 'N';
    const r0 = isA ? 'm0' : 'n0';
    // Unit-stride dim is K when (A, !aT) or (B, bT); otherwise M (A) / N (B).
    const kContig = isA ? !trans : trans;
    const ld = isA ? (trans ? 'aSK' : 'aSM') : trans ? 'bSN' : 'bSK';
    const base = isA ? 'aS' : 'bS';
    const width = vec ? 4 : 1;
    const total = (R * BK) / width;
    const count = Math.ceil(total / NT);
    const guard = total % NT !== 0; // the last round is partial
    const coords = (i: number): { r: string; k: string; e: string } => {
      const e = `(tid + ${i * NT}u)`;
      if (kContig) {
        const per = BK / width; // loads per row along k
        return { e, r: `(${e} / ${per}u)`, k: `(${e} % ${per}u) * ${width}u` };
      }
      const per = R / width;
      return { e, k: `(${e} / ${per}u)`, r: `(${e} % ${per}u) * ${width}u` };
    };
    const wrap = (cond: string | null, stmts: string[]) => (cond ? [`if (${cond}) {`, ...stmts.map((x) => '  ' + x), '}'] : stmts);
    return {
      count,
      load: (i) => {
        const { r, k, e } = coords(i);
        const body = [`let lr = ${r}; let lk = ${k};`, `let gr = ${r0} + lr; let gk = k0 + lk;`];
        // Address: unit stride along the contiguous dim, ld along the other.
        const addr = kContig ? `${base} + gr * ${ld} + gk` : `${base} + gk * ${ld} + gr`;
        const load = vec ? `${arr}[(${addr}) / 4u]` : `${arr}[${addr}]`;
        if (chk) {
          body.push(`${reg}${i} = ${vec ? 'vec4<f32>(0.0)' : '0.0'};`);
          body.push(`if (gr < ${ext} && gk < K) { ${reg}${i} = ${load}; }`);
        } else body.push(`${reg}${i} = ${load};`);
        return ['{', ...wrap(guard ? `${e} < ${total}u` : null, body).map((x) => '  ' + x), '}'];
      },
      store: (i, buf) => {
        const { r, k, e } = coords(i);
        const body: string[] = [`let lr = ${r}; let lk = ${k};`];
        const at = (kk: string) => `(${buf}${kk}) * ${RS}u + lr / 4u`;
        if (vec && !kContig) {
          // 4 consecutive r at one k: a whole vec4 of the shared row.
          body.push(`${sh}[${at('lk')}] = ${reg}${i};`);
        } else if (vec) {
          // 4 consecutive k at one r: scatter into 4 shared rows (the transposition).
          for (let c = 0; c < 4; c++) body.push(`${sh}[${at(`(lk + ${c}u)`)}][lr % 4u] = ${reg}${i}[${c}];`);
        } else {
          body.push(`${sh}[${at('lk')}][lr % 4u] = ${reg}${i};`);
        }
        return ['{', ...wrap(guard ? `${e} < ${total}u` : null, body).map((x) => '  ' + x), '}'];
      },
    };
  };
  const pa = plan('A');
  const pb = plan('B');
  const nbuf = dbl ? 2 : 1;

  emit(`var<workgroup> As: array<vec4<f32>, ${nbuf * BK * RA}>;`);
  emit(`var<workgroup> Bs: array<vec4<f32>, ${nbuf * BK * RB}>;`);
  emit(`@compute @workgroup_size(${NT})`);
  emit(`fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) tid: u32) {`);
  emit(`  let w = linear_wg(wid, nwg);`);
  emit(`  let M = P.M; let N = P.N; let K = P.K;`);
  emit(`  let tilesM = P.tilesM; let tilesN = P.tilesN;`);
  emit(`  let perBatch = tilesM * tilesN;`);
  emit(`  let batch = w / perBatch;`);
  emit(`  let tile = w % perBatch;`);
  // Whole workgroups beyond the last batch exit together (uniform), before any barrier.
  emit(`  ${batchGuard(s)}`);
  if (G > 1) {
    // Grouped order: consecutive workgroups sweep G row-tiles for each column tile, so the
    // A and B panels in flight at once stay small (better L2 reuse on big GPUs).
    emit(`  let perGroup = ${G}u * tilesN;`);
    emit(`  let firstM = (tile / perGroup) * ${G}u;`);
    emit(`  let gsz = min(tilesM - firstM, ${G}u);`);
    emit(`  let tm = firstM + (tile % perGroup) % gsz;`);
    emit(`  let tn = (tile % perGroup) / gsz;`);
  } else {
    emit(`  let tm = tile / tilesN;`);
    emit(`  let tn = tile % tilesN;`);
  }
  emit(`  ${batchOffsets(s)}`);
  emit(`  let aSM = P.aSM; let aSK = P.aSK; let bSK = P.bSK; let bSN = P.bSN;`);
  emit(`  let m0 = tm * ${BM}u;`);
  emit(`  let n0 = tn * ${BN}u;`);
  emit(`  let tx = tid % ${TX}u;`);
  emit(`  let ty = tid / ${TX}u;`);
  const vt = (vec: boolean) => (vec ? 'vec4<f32>' : 'f32');
  for (let i = 0; i < pa.count; i++) emit(`  var ra${i}: ${vt(s.vecA)};`);
  for (let i = 0; i < pb.count; i++) emit(`  var rb${i}: ${vt(s.vecB)};`);
  for (let i = 0; i < TM; i++) for (let h = 0; h < TN / 4; h++) emit(`  var c${i}_${h} = vec4<f32>(0.0);`);
  // Loads of K tile `kt` (a u32 expression < nt). With summed dims the tiles run over the
  // products of the split's summed range, ntk tiles each.
  const S = s.sumRank ?? 0;
  const loads = (kt: string, ind: string) => {
    emit(`${ind}{`);
    if (S) emit(`${ind}  let st = ${kt}; let k0 = (st % ntk) * ${BK}u; ${sumOffsets(S, 's0 + st / ntk')}`);
    else emit(`${ind}  let k0 = (${kt}) * ${BK}u; let aS = aBase; let bS = bBase;`);
    for (let i = 0; i < pa.count; i++) pa.load(i).forEach((x) => emit(ind + '  ' + x));
    for (let i = 0; i < pb.count; i++) pb.load(i).forEach((x) => emit(ind + '  ' + x));
    emit(`${ind}}`);
  };
  // `buf` is a WGSL expression prefix like "" or "sbuf + " giving the first shared row.
  const stores = (buf: string, ind: string) => {
    for (let i = 0; i < pa.count; i++) pa.store(i, buf).forEach((x) => emit(ind + x));
    for (let i = 0; i < pb.count; i++) pb.store(i, buf).forEach((x) => emit(ind + x));
  };
  const compute = (abuf: string, bbuf: string, ind: string) => {
    for (let kk = 0; kk < BK; kk++) {
      emit(`${ind}{`);
      for (let g = 0; g < TM / 4; g++) emit(`${ind}  let a${g} = As[${abuf}${kk * RA + g * TY}u + ty];`);
      for (let h = 0; h < TN / 4; h++) emit(`${ind}  let b${h} = Bs[${bbuf}${kk * RB + h * TX}u + tx];`);
      for (let i = 0; i < TM; i++) {
        for (let h = 0; h < TN / 4; h++) emit(`${ind}  c${i}_${h} += b${h} * a${i >> 2}[${i & 3}];`);
      }
      emit(`${ind}}`);
    }
  };
  if (S) {
    emit(`  let ntk = (K + ${BK - 1}u) / ${BK}u;`);
    emit(`  let nt = ntk * (s1 - s0);`);
  } else emit(`  let nt = (K + ${BK - 1}u) / ${BK}u;`);
  if (dbl) {
    // Double-buffered: tile t is computed from buffer t % 2 while tile t + 1 is loaded into
    // registers and then stored into the other buffer; one barrier per tile.
    emit(`  if (nt > 0u) {`);
    loads('0u', '    ');
    stores('', '    ');
    emit(`  }`);
    emit(`  workgroupBarrier();`);
    emit(`  for (var t = 0u; t < nt; t++) {`);
    emit(`    let cur = (t % 2u) * ${BK}u;`);
    emit(`    let nxt = ${BK}u - cur;`);
    emit(`    let more = t + 1u < nt;`);
    emit(`    if (more) {`);
    loads('t + 1u', '      ');
    emit(`    }`);
    compute(`cur * ${RA}u + `, `cur * ${RB}u + `, '    ');
    emit(`    if (more) {`);
    stores('nxt + ', '      ');
    emit(`    }`);
    emit(`    workgroupBarrier();`);
    emit(`  }`);
  } else if (s.prefetch) {
    emit(`  if (nt > 0u) {`);
    loads('0u', '    ');
    emit(`  }`);
    emit(`  for (var t = 0u; t < nt; t++) {`);
    stores('', '    ');
    emit(`    workgroupBarrier();`);
    emit(`    if (t + 1u < nt) {`);
    loads('t + 1u', '      ');
    emit(`    }`);
    compute('', '', '    ');
    emit(`    workgroupBarrier();`);
    emit(`  }`);
  } else {
    emit(`  for (var t = 0u; t < nt; t++) {`);
    loads('t', '    ');
    stores('', '    ');
    emit(`    workgroupBarrier();`);
    compute('', '', '    ');
    emit(`    workgroupBarrier();`);
    emit(`  }`);
  }
  // ---- epilogue: thread's rows are 4*(g*TY + ty) + r, cols 4*(h*TX + tx) + c ----
  emit(`  let cBase = batch * M * N;`);
  if (s.bias === 'cols') {
    // The thread's 4 bias values per column group, read once (clamped: columns past N are not stored).
    for (let h = 0; h < TN / 4; h++) {
      const n = `n0 + (${h * TX}u + tx) * 4u`;
      const at = (c: number) => biasAt(chk ? `min(${n} + ${c}u, N - 1u)` : `${n} + ${c}u`);
      emit(`  let bv${h} = vec4<f32>(${at(0)}, ${at(1)}, ${at(2)}, ${at(3)});`);
    }
  }
  const val = (i: number, h: number) => (s.bias === 'cols' ? `(c${i}_${h} + bv${h})` : s.bias === 'rows' ? `(c${i}_${h} + rb)` : `c${i}_${h}`);
  for (let g = 0; g < TM / 4; g++) {
    for (let r = 0; r < 4; r++) {
      const i = g * 4 + r;
      emit(`  {`);
      emit(`    let m = m0 + (${g * TY}u + ty) * 4u + ${r}u;`);
      // The row's bias (clamped: rows past M are not stored).
      if (s.bias === 'rows') emit(`    let rb = ${rowBiasAt(chk ? 'min(m, M - 1u)' : 'm')};`);
      if (chk) emit(`    if (m < M) {`);
      for (let h = 0; h < TN / 4; h++) {
        emit(`    {`);
        emit(`      let n = n0 + (${h * TX}u + tx) * 4u;`);
        emit(`      let o = cBase + m * N + n;`);
        if (s.vecC) {
          emit(chk ? `      if (n < N) { C[o / 4u] = ${val(i, h)}; }` : `      C[o / 4u] = ${val(i, h)};`);
        } else {
          for (let c = 0; c < 4; c++) emit(chk ? `      if (n + ${c}u < N) { C[o + ${c}u] = ${val(i, h)}[${c}]; }` : `      C[o + ${c}u] = ${val(i, h)}[${c}];`);
        }
        emit(`    }`);
      }
      if (chk) emit(`    }`);
      emit(`  }`);
    }
  }
  emit(`}`);
  return L.join('\n');
}

/** Register-blocked kernel without workgroup memory (for CPU-like adapters such as lavapipe). */
export interface MatmulRowSpec extends MatmulVariant {
  /** Invocations per workgroup (lanes along N); also the K chunk of the subgroup path. */
  WG: number;
  /** Rows per workgroup (the same rows for every invocation). */
  TM: number;
  /** Columns per invocation (a multiple of 4 when vecB). */
  TN: number;
  /** B has unit stride along N, 4-aligned rows/offset and N % 4 == 0: vec4 loads of 4 columns. */
  vecB: boolean;
  /** Use subgroup shuffles for A (needs the `subgroups` feature; used when subgroup_size == WG). */
  subgroups: boolean;
}

/**
 * Written for implementations that run invocations as SIMD lanes of a CPU (lavapipe/llvmpipe),
 * where every load whose address is not a compile-time uniform becomes a loop over the lanes:
 * the cost is per load *instruction*, so this kernel issues as few as possible per FMA.
 *  - A workgroup computes TM rows x (WG*TN) cols. Scalar B: invocation `l` owns cols
 *    n0 + l + WG*j; vec4 B: cols n0 + 4*(l + WG*h) + 0..3 (one load fetches 4 columns).
 *  - A (subgroup path): for a chunk of WG k's, lane l loads A[m, k + l] (one load instruction
 *    for WG values), and the k loop gets A[m, k + u] with subgroupShuffle(.., u).
 *  - Loads use clamped indices (always in bounds, results discarded at the store), so the K loop
 *    has no branches. The inner loops are deliberately not unrolled (unrolling made LLVM spill
 *    and ran ~2x slower on llvmpipe). Any strides (vec4 B only when aligned).
 *  - What bounds it on llvmpipe (Mesa 25.0, LLVM 15; `GALLIVM_DEBUG=asm`, shader cache off): each
 *    accumulator update is vmulps + vaddps (no FMA contraction, not even for WGSL fma()) plus a
 *    load, a blend with the loop's lane mask and a store of the accumulator's stack slot, about 5
 *    instructions per 8-lane multiply-add at any tile size. Larger tiles only save the per-k loads
 *    and shuffles, so 16 x 16 stays the best: 23 GFLOP/s at 1024^3 against 6-8 for 6x4, 8x4 and
 *    12x2 (`MM_PLAN=rows:8:6x4 MM_SIZES=1024 npx tsx bench/matmul-gflops.ts`). Lanes sharing B
 *    columns with uniform B loads instead ran at ~3 GFLOP/s.
 *  - Also measured slower than 16 x 16 (a standalone WGSL prototype, 1024^3, min of 9 interleaved
 *    runs; 2026-12-06): the shuffle loop unrolled (accumulators then stay in registers, but the
 *    per-lane B loads remain: each is a loop over the lanes with a bounds check, ~9 instructions
 *    per lane value, and small tiles reuse a B value too few times), 16x8, 32x8, 8x16, 24x8 and
 *    64x4 tiles (16.9-13.1 vs 17.4 GFLOP/s), B read through a texture (textureLoad is a call into a
 *    separate sampler function, registers spilled around it), and LP_NATIVE_VECTOR_WIDTH=512 with
 *    16-lane workgroups (5 GFLOP/s).
 */
export const matmulRowsKernel = defineKernel<MatmulRowSpec>({
  name: 'matmul',
  key: (s) => `rows|${s.WG}|${s.TM}x${s.TN}|${+s.vecB}${+s.subgroups}|${s.batchRank}${variantKey(s)}`,
  signature: (s) => matmulSignature(s, 'f32', s.vecB ? 'vec4<f32>' : 'f32', 'f32'),
  directives: (s) => (s.subgroups ? 'enable subgroups;\n' : ''),
  body: rowsBody,
});

function rowsBody(s: MatmulRowSpec): string {
  const { WG, TM, TN, vecB } = s;
  if (vecB && TN % 4) throw new Error('matmul: rows kernel with vec4 B needs TN % 4 == 0');
  const G = vecB ? TN / 4 : TN; // B loads (column groups) per invocation
  const L: string[] = [];
  const emit = (x: string) => L.push(x);
  emit(`@compute @workgroup_size(${WG})`);
  emit(`fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) tid: u32${s.subgroups ? ', @builtin(subgroup_size) sgs: u32, @builtin(subgroup_invocation_id) sid: u32' : ''}) {`);
  emit(HEADER);
  emit(`  ${batchGuard(s)}`);
  emit(`  ${batchOffsets(s)}`);
  emit(`  let aSM = P.aSM; let aSK = P.aSK; let bSK = P.bSK; let bSN = P.bSN;`);
  emit(`  let m0 = tm * ${TM}u;`);
  emit(`  let n0 = tn * ${WG * TN}u;`);
  const col = (g: number) => (vecB ? `n0 + (tid + ${g * WG}u) * 4u` : `n0 + tid + ${g * WG}u`);
  const zero = vecB ? 'vec4<f32>(0.0)' : '0.0';
  const step = (aExpr: (i: number) => string, ind: string) => {
    for (let g = 0; g < G; g++) emit(`${ind}let b${g} = B[pb${g}]; pb${g} += bStep;`);
    for (let i = 0; i < TM; i++) emit(`${ind}let a${i} = ${aExpr(i)};`);
    for (let i = 0; i < TM; i++) for (let g = 0; g < G; g++) emit(`${ind}c${i}_${g} += b${g} * a${i};`);
  };
  // One product's K loop from the bases aS, bS into the accumulators.
  const product = (ind: string) => {
    for (let i = 0; i < TM; i++) emit(`${ind}let pa${i} = aS + min(m0 + ${i}u, M - 1u) * aSM;`);
    // vec4 B: indices in vec4 units (bS, bSK and the column are multiples of 4).
    for (let g = 0; g < G; g++) emit(vecB ? `${ind}var pb${g} = (bS + min(${col(g)}, N - 4u)) / 4u;` : `${ind}var pb${g} = bS + min(${col(g)}, N - 1u) * bSN;`);
    emit(`${ind}var k = 0u;`);
    if (s.subgroups) {
      emit(`${ind}if (sgs == ${WG}u) {`);
      emit(`${ind}  for (; k + ${WG}u <= K; k += ${WG}u) {`);
      for (let i = 0; i < TM; i++) emit(`${ind}    let av${i} = A[pa${i} + (k + sid) * aSK];`);
      emit(`${ind}    for (var u = 0u; u < ${WG}u; u++) {`);
      step((i) => `subgroupShuffle(av${i}, u)`, `${ind}      `);
      emit(`${ind}    }`);
      emit(`${ind}  }`);
      emit(`${ind}}`);
    }
    emit(`${ind}for (; k < K; k++) {`);
    step((i) => `A[pa${i} + k * aSK]`, `${ind}  `);
    emit(`${ind}}`);
  };
  emit(`  let bStep = ${vecB ? 'bSK / 4u' : 'bSK'};`);
  for (let i = 0; i < TM; i++) for (let g = 0; g < G; g++) emit(`  var c${i}_${g} = ${zero};`);
  const S = s.sumRank ?? 0;
  if (S) {
    emit(`  for (var s = s0; s < s1; s++) {`);
    emit(`    ${sumOffsets(S, 's')}`);
    product('    ');
    emit(`  }`);
  } else {
    emit(`  let aS = aBase; let bS = bBase;`);
    product('  ');
  }
  emit(`  let cBase = batch * M * N;`);
  if (s.bias === 'cols') {
    // The invocation's bias values, read once (clamped: columns past N are not stored).
    for (let g = 0; g < G; g++) {
      if (vecB) {
        const at = (c: number) => biasAt(`min(${col(g)} + ${c}u, N - 1u)`);
        emit(`  let bv${g} = vec4<f32>(${at(0)}, ${at(1)}, ${at(2)}, ${at(3)});`);
      } else emit(`  let bv${g} = ${biasAt(`min(${col(g)}, N - 1u)`)};`);
    }
  }
  const val = (i: number, g: number) => (s.bias === 'cols' ? `(c${i}_${g} + bv${g})` : s.bias === 'rows' ? `(c${i}_${g} + rb)` : `c${i}_${g}`);
  for (let i = 0; i < TM; i++) {
    emit(`  if (m0 + ${i}u < M) {`);
    emit(`    let o = cBase + (m0 + ${i}u) * N;`);
    if (s.bias === 'rows') emit(`    let rb = ${rowBiasAt(`m0 + ${i}u`)};`);
    for (let g = 0; g < G; g++) {
      if (vecB) {
        emit(`    { let n = ${col(g)};`);
        for (let c = 0; c < 4; c++) emit(`      if (n + ${c}u < N) { C[o + n + ${c}u] = ${val(i, g)}[${c}]; }`);
        emit(`    }`);
      } else emit(`    if (${col(g)} < N) { C[o + ${col(g)}] = ${val(i, g)}; }`);
    }
    emit(`  }`);
  }
  emit(`}`);
  return L.join('\n');
}

export const SPLIT_SUM_WG = 256;

/**
 * The partial sums of a reduction split into `splits` runs (a summed product's splits, the implicit
 * conv weight gradient's image ranges): out[i] = sum over s (in order) of parts[s * n + i].
 */
export const splitSumKernel = defineKernel({
  name: 'split_sum',
  key: () => 'split_sum',
  signature: () => ({ params: { n: 'u32', splits: 'u32' }, bindings: { parts: read(), out: rw() } }),
  body: () => /* wgsl */ `
@compute @workgroup_size(${SPLIT_SUM_WG})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
  let i = linear_wg(wid, nwg) * ${SPLIT_SUM_WG}u + lid.x;
  if (i >= P.n) { return; }
  var acc = parts[i];
  for (var s = 1u; s < P.splits; s++) { acc += parts[s * P.n + i]; }
  out[i] = acc;
}
`,
});
