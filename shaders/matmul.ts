/**
 * WGSL generators for batched matrix multiplication C[b] = A[b] @ B[b], C contiguous.
 *
 * Shared parameter words (see engine/ops/matmul.ts):
 *   0 M, 1 N, 2 K, 3 aOffset, 4 bOffset, 5 aStrideM, 6 aStrideK, 7 bStrideK, 8 bStrideN,
 *   9 tilesM, 10 tilesN, 11 batch count,
 *   12.. batchShape[R], aBatchStrides[R], bBatchStrides[R]   (R = batchRank, baked in)
 * Workgroup w (linearized) computes tile (w % tilesN, (w / tilesN) % tilesM) of batch w / (tilesM * tilesN).
 *
 * Two kernels:
 *  - `matmulSimpleShader`: one output per thread, any strides (tiny problems, odd views).
 *  - `matmulTiledShader`: block tile BM x BN per workgroup, K in steps of BK through workgroup
 *    memory, TM x TN outputs per thread, A tile stored k-major ("transposed") so a thread reads its
 *    TM rows as vec4s. Operands are read row-major or transposed in place (aT/bT), with vec4 global
 *    loads when the contiguous dimension, leading dimension and offsets are multiples of 4. Every
 *    size is baked into the WGSL so loops unroll and indices fold.
 */

export const MATMUL_P = { M: 0, N: 1, K: 2, aOff: 3, bOff: 4, aSM: 5, aSK: 6, bSK: 7, bSN: 8, tilesM: 9, tilesN: 10, batch: 12 } as const;

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

export interface MatmulTiledSpec extends MatmulTileConfig {
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
  batchRank: number;
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

function batchOffsets(R: number): string {
  const l = ['var aBase = pu(3u);', 'var bBase = pu(4u);'];
  if (R > 0) l.push('var rem = batch;');
  for (let d = R - 1; d >= 0; d--) {
    const s = MATMUL_P.batch;
    l.push(`{ let dim = pu(${s + d}u); let i = rem % dim; rem = rem / dim; aBase += i * pu(${s + R + d}u); bBase += i * pu(${s + 2 * R + d}u); }`);
  }
  return l.join('\n  ');
}

const HEADER = `
  let w = linear_wg(wid, nwg);
  let M = pu(0u);
  let N = pu(1u);
  let K = pu(2u);
  let tilesM = pu(9u);
  let tilesN = pu(10u);
  let perBatch = tilesM * tilesN;
  let batch = w / perBatch;
  let tile = w % perBatch;
  let tm = tile / tilesN;
  let tn = tile % tilesN;`;

export const SIMPLE_TILE = 8;

/** One output per thread, 8x8 outputs per workgroup; A and B addressed with arbitrary strides. */
export function matmulSimpleShader(batchRank: number): string {
  const T = SIMPLE_TILE;
  return `
@group(0) @binding(1) var<storage, read> A: array<f32>;
@group(0) @binding(2) var<storage, read> B: array<f32>;
@group(0) @binding(3) var<storage, read_write> C: array<f32>;
@compute @workgroup_size(${T * T})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
  ${HEADER}
  if (batch >= pu(11u)) { return; }
  let m = tm * ${T}u + lid.x / ${T}u;
  let n = tn * ${T}u + lid.x % ${T}u;
  if (m >= M || n >= N) { return; }
  ${batchOffsets(batchRank)}
  let aSK = pu(6u);
  let bSK = pu(7u);
  var pa = aBase + m * pu(5u);
  var pb = bBase + n * pu(8u);
  var acc = 0.0;
  for (var k = 0u; k < K; k++) {
    acc += A[pa] * B[pb];
    pa += aSK;
    pb += bSK;
  }
  C[(batch * M + m) * N + n] = acc;
}
`;
}

/** The tiled kernel; see the file comment. Params as above (word 11 = batch count). */
export function matmulTiledShader(s: MatmulTiledSpec): string {
  const err = tileConfigError(s);
  if (err) throw new Error(`matmul: bad tile config ${JSON.stringify(s)}: ${err}`);
  const { BM, BN, BK, TM, TN } = s;
  const NT = tiledThreads(s);
  const BM4 = BM / 4;
  const BN4 = BN / 4;
  const TX = BN / TN; // threads along N
  const TY = BM / TM; // threads along M
  const chk = s.checked;
  const L: string[] = [];
  const emit = (x: string) => L.push(x);

  // ---- global -> register loads; register -> workgroup stores ----
  // A tile: BM x BK elements. Loads are described by (element index e) -> (m, k) within the tile.
  interface Plan {
    count: number; // loads per thread
    guard: boolean; // last round partially filled
    load: (i: number, base: string) => string[]; // statements loading register r{i}
    store: (i: number) => string[];
  }
  const plan = (which: 'A' | 'B'): Plan => {
    const isA = which === 'A';
    const vec = isA ? s.vecA : s.vecB;
    const trans = isA ? s.aT : s.bT;
    const R = isA ? BM : BN; // tile extent along M (A) or N (B)
    const R4 = R / 4;
    const arr = isA ? 'A' : 'B';
    const sh = isA ? 'As' : 'Bs';
    const reg = isA ? 'ra' : 'rb';
    const ext = isA ? 'M' : 'N';
    const r0 = isA ? 'm0' : 'n0';
    // Unit-stride dim is K when (A, !aT) or (B, bT); otherwise M (A) / N (B).
    const kContig = isA ? !trans : trans;
    const ld = isA ? (trans ? 'aSK' : 'aSM') : trans ? 'bSN' : 'bSK';
    const base = isA ? 'aBase' : 'bBase';
    const width = vec ? 4 : 1;
    const total = (R * BK) / width;
    const count = Math.ceil(total / NT);
    const guard = total % NT !== 0;
    // Tile coordinates of load e: (r, k) where r in [0,R), k in [0,BK).
    const coords = (i: number): { r: string; k: string; e: string } => {
      const e = `(tid + ${i * NT}u)`;
      if (kContig) {
        const per = BK / width; // loads per row along k
        return { e, r: `(${e} / ${per}u)`, k: `(${e} % ${per}u) * ${width}u` };
      }
      const per = R / width;
      return { e, k: `(${e} / ${per}u)`, r: `(${e} % ${per}u) * ${width}u` };
    };
    return {
      count,
      guard,
      load: (i, k0) => {
        const { r, k, e } = coords(i);
        const out: string[] = [];
        out.push(`{`);
        out.push(`  let lr = ${r}; let lk = ${k};`);
        out.push(`  let gr = ${r0} + lr; let gk = ${k0} + lk;`);
        // Address: unit stride along the contiguous dim, ld along the other.
        const addr = kContig ? `${base} + gr * ${ld} + gk` : `${base} + gk * ${ld} + gr`;
        const conds: string[] = [];
        if (guard) conds.push(`${e} < ${total}u`);
        if (chk) conds.push(`gr < ${ext}`, `gk < K`);
        if (vec) {
          const load = `${arr}[(${addr}) / 4u]`;
          if (conds.length) out.push(`  ${reg}${i} = vec4<f32>(0.0); if (${conds.join(' && ')}) { ${reg}${i} = ${load}; }`);
          else out.push(`  ${reg}${i} = ${load};`);
        } else {
          const load = `${arr}[${addr}]`;
          if (conds.length) out.push(`  ${reg}${i} = 0.0; if (${conds.join(' && ')}) { ${reg}${i} = ${load}; }`);
          else out.push(`  ${reg}${i} = ${load};`);
        }
        out.push(`}`);
        return out;
      },
      store: (i) => {
        const { r, k, e } = coords(i);
        const out: string[] = [];
        const wrap = (stmts: string[]) => (guard ? [`if (${e} < ${total}u) {`, ...stmts.map((x) => '  ' + x), '}'] : stmts);
        const body: string[] = [`let lr = ${r}; let lk = ${k};`];
        if (vec && !kContig) {
          // 4 consecutive r at one k: a whole vec4 of the shared row.
          body.push(`${sh}[lk * ${R4}u + lr / 4u] = ${reg}${i};`);
        } else if (vec) {
          // 4 consecutive k at one r: scatter into 4 shared rows.
          for (let c = 0; c < 4; c++) body.push(`${sh}[(lk + ${c}u) * ${R4}u + lr / 4u][lr % 4u] = ${reg}${i}[${c}];`);
        } else {
          body.push(`${sh}[lk * ${R4}u + lr / 4u][lr % 4u] = ${reg}${i};`);
        }
        out.push('{', ...wrap(body).map((x) => '  ' + x), '}');
        return out;
      },
    };
  };
  const pa = plan('A');
  const pb = plan('B');

  emit(`@group(0) @binding(1) var<storage, read> A: array<${s.vecA ? 'vec4<f32>' : 'f32'}>;`);
  emit(`@group(0) @binding(2) var<storage, read> B: array<${s.vecB ? 'vec4<f32>' : 'f32'}>;`);
  emit(`@group(0) @binding(3) var<storage, read_write> C: array<${s.vecC ? 'vec4<f32>' : 'f32'}>;`);
  emit(`var<workgroup> As: array<vec4<f32>, ${BK * BM4}>;`);
  emit(`var<workgroup> Bs: array<vec4<f32>, ${BK * BN4}>;`);
  emit(`@compute @workgroup_size(${NT})`);
  emit(`fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) tid: u32) {`);
  emit(HEADER);
  // Whole workgroups beyond the last batch exit together (uniform), before any barrier.
  emit(`  if (batch >= pu(11u)) { return; }`);
  emit(`  ${batchOffsets(s.batchRank)}`);
  emit(`  let aSM = pu(5u); let aSK = pu(6u); let bSK = pu(7u); let bSN = pu(8u);`);
  emit(`  let m0 = tm * ${BM}u;`);
  emit(`  let n0 = tn * ${BN}u;`);
  emit(`  let tx = tid % ${TX}u;`);
  emit(`  let ty = tid / ${TX}u;`);
  const vt = (vec: boolean) => (vec ? 'vec4<f32>' : 'f32');
  for (let i = 0; i < pa.count; i++) emit(`  var ra${i}: ${vt(s.vecA)};`);
  for (let i = 0; i < pb.count; i++) emit(`  var rb${i}: ${vt(s.vecB)};`);
  for (let i = 0; i < TM; i++) for (let h = 0; h < TN / 4; h++) emit(`  var c${i}_${h} = vec4<f32>(0.0);`);
  const loads = (k0: string) => {
    for (let i = 0; i < pa.count; i++) pa.load(i, k0).forEach((x) => emit('    ' + x));
    for (let i = 0; i < pb.count; i++) pb.load(i, k0).forEach((x) => emit('    ' + x));
  };
  const stores = () => {
    for (let i = 0; i < pa.count; i++) pa.store(i).forEach((x) => emit('    ' + x));
    for (let i = 0; i < pb.count; i++) pb.store(i).forEach((x) => emit('    ' + x));
  };
  const compute = () => {
    for (let kk = 0; kk < BK; kk++) {
      emit(`    {`);
      for (let g = 0; g < TM / 4; g++) emit(`      let a${g} = As[${kk * BM4 + g * TY}u + ty];`);
      for (let h = 0; h < TN / 4; h++) emit(`      let b${h} = Bs[${kk * BN4 + h * TX}u + tx];`);
      for (let i = 0; i < TM; i++) {
        for (let h = 0; h < TN / 4; h++) emit(`      c${i}_${h} += b${h} * a${i >> 2}[${i & 3}];`);
      }
      emit(`    }`);
    }
  };
  emit(`  let nt = (K + ${BK - 1}u) / ${BK}u;`);
  if (s.prefetch) {
    emit(`  {`);
    loads('0u');
    emit(`  }`);
    emit(`  for (var t = 0u; t < nt; t++) {`);
    stores();
    emit(`    workgroupBarrier();`);
    emit(`    if (t + 1u < nt) {`);
    emit(`    let k0 = (t + 1u) * ${BK}u;`);
    loads('k0');
    emit(`    }`);
    compute();
    emit(`    workgroupBarrier();`);
    emit(`  }`);
  } else {
    emit(`  for (var t = 0u; t < nt; t++) {`);
    emit(`    let k0 = t * ${BK}u;`);
    loads('k0');
    stores();
    emit(`    workgroupBarrier();`);
    compute();
    emit(`    workgroupBarrier();`);
    emit(`  }`);
  }
  // ---- epilogue: thread's rows are 4*(g*TY + ty) + r, cols 4*(h*TX + tx) + c ----
  emit(`  let cBase = batch * M * N;`);
  for (let g = 0; g < TM / 4; g++) {
    for (let r = 0; r < 4; r++) {
      const i = g * 4 + r;
      emit(`  {`);
      emit(`    let m = m0 + (${g * TY}u + ty) * 4u + ${r}u;`);
      if (chk) emit(`    if (m < M) {`);
      for (let h = 0; h < TN / 4; h++) {
        emit(`    {`);
        emit(`      let n = n0 + (${h * TX}u + tx) * 4u;`);
        emit(`      let o = cBase + m * N + n;`);
        if (s.vecC) {
          emit(chk ? `      if (n < N) { C[o / 4u] = c${i}_${h}; }` : `      C[o / 4u] = c${i}_${h};`);
        } else {
          for (let c = 0; c < 4; c++) emit(chk ? `      if (n + ${c}u < N) { C[o + ${c}u] = c${i}_${h}[${c}]; }` : `      C[o + ${c}u] = c${i}_${h}[${c}];`);
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
export interface MatmulRowSpec {
  /** Invocations per workgroup (lanes along N). */
  WG: number;
  /** Rows per workgroup: the same for every invocation, so A loads are uniform (scalar). */
  TM: number;
  /** Columns per invocation, interleaved by WG so that neighbouring invocations read neighbouring B elements. */
  TN: number;
  batchRank: number;
}

/**
 * Each workgroup computes TM rows x (WG*TN) cols; invocation `l` owns cols n0 + l + WG*j.
 * Written for SIMD-across-invocations CPU implementations (lavapipe/llvmpipe): the row indices
 * derive only from the workgroup id and the loop counter, so the A loads are non-divergent
 * scalar loads; the B loads are one gather per column; TM*TN accumulators stay in vector
 * registers when TM*TN is small. Loads use clamped indices (always in bounds, results discarded
 * at the store), so the K loop has no branches; the loop is deliberately not unrolled (unrolling
 * made LLVM spill). Any strides.
 */
export function matmulRowShader(s: MatmulRowSpec): string {
  const { WG, TM, TN } = s;
  const L: string[] = [];
  const emit = (x: string) => L.push(x);
  emit(`@group(0) @binding(1) var<storage, read> A: array<f32>;`);
  emit(`@group(0) @binding(2) var<storage, read> B: array<f32>;`);
  emit(`@group(0) @binding(3) var<storage, read_write> C: array<f32>;`);
  emit(`@compute @workgroup_size(${WG})`);
  emit(`fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) tid: u32) {`);
  emit(HEADER);
  emit(`  if (batch >= pu(11u)) { return; }`);
  emit(`  ${batchOffsets(s.batchRank)}`);
  emit(`  let aSM = pu(5u); let aSK = pu(6u); let bSK = pu(7u); let bSN = pu(8u);`);
  emit(`  let m0 = tm * ${TM}u;`);
  emit(`  let n0 = tn * ${WG * TN}u + tid;`);
  for (let i = 0; i < TM; i++) emit(`  var pa${i} = aBase + min(m0 + ${i}u, M - 1u) * aSM;`);
  for (let j = 0; j < TN; j++) emit(`  var pb${j} = bBase + min(n0 + ${j * WG}u, N - 1u) * bSN;`);
  for (let i = 0; i < TM; i++) for (let j = 0; j < TN; j++) emit(`  var c${i}_${j} = 0.0;`);
  emit(`  for (var k = 0u; k < K; k++) {`);
  for (let i = 0; i < TM; i++) emit(`    let a${i} = A[pa${i}];`);
  for (let j = 0; j < TN; j++) emit(`    let b${j} = B[pb${j}];`);
  for (let i = 0; i < TM; i++) for (let j = 0; j < TN; j++) emit(`    c${i}_${j} += a${i} * b${j};`);
  for (let i = 0; i < TM; i++) emit(`    pa${i} += aSK;`);
  for (let j = 0; j < TN; j++) emit(`    pb${j} += bSK;`);
  emit(`  }`);
  emit(`  let cBase = batch * M * N;`);
  for (let i = 0; i < TM; i++) {
    emit(`  if (m0 + ${i}u < M) {`);
    emit(`    let o = cBase + (m0 + ${i}u) * N;`);
    for (let j = 0; j < TN; j++) emit(`    if (n0 + ${j * WG}u < N) { C[o + n0 + ${j * WG}u] = c${i}_${j}; }`);
    emit(`  }`);
  }
  emit(`}`);
  return L.join('\n');
}
