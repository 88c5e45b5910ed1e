/**
 * Nearest codebook entries for vector quantization, without materializing the [N, K] distance
 * matrix. Distances are direct sums of squares sum_j (z_j - e_j)^2 accumulated in f32 over j in
 * order (no ||z||^2 - 2 z.e + ||e||^2 cancellation, and bit-identical distances for identical code
 * rows, so ties are exact). Non-negative floats order like their u32 bit patterns, so every
 * comparison below is on (bits, index) pairs: smaller distance first, then smaller index; NaN
 * distances sort after +inf.
 *
 * k = 1 (`argminKernel`): a GEMM-like tile kernel. A workgroup owns 64 rows and sweeps (its split
 * of) the codebook in tiles of 64 codes; 256 threads each accumulate a 4x4 block of distances over d
 * in chunks of 16 staged in workgroup memory, keep the best code per row, and reduce across the 16
 * threads of a row. With few row tiles the codebook is split over more workgroups and
 * `argminReduceKernel` merges the per-split winners (2 dispatches).
 *
 * k >= 2 (`topkKernel`): one workgroup per row. An adaptive radix select over the 32-bit distance
 * keys (8-bit digits starting below the bits all keys share, histograms in workgroup memory) narrows
 * the k-th smallest key to a bin small enough that the keys up to it can be collected into workgroup
 * memory; they are then rank-sorted by (key, index) and the first k written. When K fits (`cacheK`
 * > 0) the keys are computed once into workgroup memory; otherwise every sweep recomputes them
 * (typically 3-4 sweeps of K*d: min/max, one or two histogram passes, collection). One workgroup
 * per row rereads the codebook per row: with K beyond the cache (about 8K codes at 48 KiB) this path
 * is bound by L1/L2 traffic; a multi-row variant sharing code tiles would be the next step.
 */
import { defineKernel, read, rw } from '../engine/kernel.js';

export const VQ_TILE_ROWS = 64;
export const VQ_WG = 256;

/**
 * Workgroup w takes row tile w % rowTiles and the codes [s * codesPerSplit, (s + 1) * codesPerSplit)
 * of split s = w / rowTiles (split-K keeps the GPU busy when N is small). With `split` false (one
 * split) it writes indices outI i32 [N] and distances outD f32 [N]; with `split` true it writes the
 * best (key, index) of each split to part[(s * N + row) * 2 ..] for `argminReduceKernel`. zOff and
 * cbOff are the element offsets of z [N, D] and the codebook [K, D].
 */
function argminBody({ split }: { split: boolean }): string {
  const rows = [0, 1, 2, 3];
  const cols = [0, 1, 2, 3];
  const accDecl = rows.flatMap((a) => cols.map((b) => `var a${a}${b} = 0.0;`)).join(' ');
  const loads = [
    ...rows.map((a) => `let z${a} = bitcast<f32>(zt[(ty * 4u + ${a}u) * 16u + jj]);`),
    ...cols.map((b) => `let e${b} = bitcast<f32>(et[(tx * 4u + ${b}u) * 16u + jj]);`),
  ].join('\n        ');
  const fmas = rows.flatMap((a) => cols.map((b) => `{ let t = z${a} - e${b}; a${a}${b} += t * t; }`)).join('\n        ');
  const update = rows
    .flatMap((a) =>
      cols.map(
        (b) => `if (c0 + tx * 4u + ${b}u < cEnd) { let kv = bitcast<u32>(a${a}${b}); if (kv < bk${a}) { bk${a} = kv; bi${a} = c0 + tx * 4u + ${b}u; } }`,
      ),
    )
    .join('\n    ');
  const write = split
    ? `part[(s * N + row0 + lid.x) * 2u] = bk;
    part[(s * N + row0 + lid.x) * 2u + 1u] = bi;`
    : `outI[row0 + lid.x] = i32(bi);
    outD[row0 + lid.x] = bitcast<f32>(bk);`;
  return `
// f32 data is staged as bits so the same arrays can hold (key, index) pairs for the final reduce.
var<workgroup> zt: array<u32, 1024>;
var<workgroup> et: array<u32, 1024>;

@compute @workgroup_size(${VQ_WG})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
  let N = P.N;
  let K = P.K;
  let D = P.D;
  let zo = P.zOff;
  let eo = P.cbOff;
  let w = linear_wg(wid, nwg);
  let s = w / P.rowTiles;
  if (s >= P.splits) { return; }
  let row0 = (w % P.rowTiles) * ${VQ_TILE_ROWS}u;
  let cStart = s * P.codesPerSplit;
  let cEnd = min(K, cStart + P.codesPerSplit);
  let tx = lid.x % 16u;
  let ty = lid.x / 16u;
  ${rows.map((a) => `var bk${a} = 0xffffffffu; var bi${a} = 0xffffffffu;`).join('\n  ')}
  for (var c0 = cStart; c0 < cEnd; c0 += 64u) {
    ${accDecl}
    for (var j0 = 0u; j0 < D; j0 += 16u) {
      for (var q = 0u; q < 4u; q++) {
        let e = lid.x + q * 256u;
        let r = e / 16u;
        let gj = j0 + e % 16u;
        var zv = 0.0;
        if (row0 + r < N && gj < D) { zv = z[zo + (row0 + r) * D + gj]; }
        zt[e] = bitcast<u32>(zv);
        var ev = 0.0;
        if (c0 + r < cEnd && gj < D) { ev = cb[eo + (c0 + r) * D + gj]; }
        et[e] = bitcast<u32>(ev);
      }
      workgroupBarrier();
      let jn = min(16u, D - j0);
      for (var jj = 0u; jj < jn; jj++) {
        ${loads}
        ${fmas}
      }
      workgroupBarrier();
    }
    ${update}
  }
  workgroupBarrier();
  ${rows.map((a) => `zt[(ty * 4u + ${a}u) * 16u + tx] = bk${a}; et[(ty * 4u + ${a}u) * 16u + tx] = bi${a};`).join('\n  ')}
  workgroupBarrier();
  if (lid.x < ${VQ_TILE_ROWS}u && row0 + lid.x < N) {
    var bk = zt[lid.x * 16u];
    var bi = et[lid.x * 16u];
    for (var t = 1u; t < 16u; t++) {
      let kv = zt[lid.x * 16u + t];
      let iv = et[lid.x * 16u + t];
      if (kv < bk || (kv == bk && iv < bi)) { bk = kv; bi = iv; }
    }
    ${write}
  }
}
`;
}

export const argminKernel = defineKernel<{ split: boolean }>({
  name: 'vq_argmin',
  key: (v) => `${v.split}`,
  signature: (v) => ({
    params: { N: 'u32', K: 'u32', D: 'u32', zOff: 'u32', cbOff: 'u32', splits: 'u32', codesPerSplit: 'u32', rowTiles: 'u32' },
    bindings: { z: read(), cb: read(), ...(v.split ? { part: rw('u32') } : { outI: rw('i32'), outD: rw('f32') }) },
  }),
  body: argminBody,
});

/** The best (key, index) over the splits of each row (ascending split order). */
export const argminReduceKernel = defineKernel({
  name: 'vq_argmin_reduce',
  key: () => '',
  signature: () => ({ params: { N: 'u32', splits: 'u32' }, bindings: { part: read('u32'), outI: rw('i32'), outD: rw('f32') } }),
  body: () => `
@compute @workgroup_size(${VQ_WG})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
  let N = P.N;
  let row = linear_wg(wid, nwg) * ${VQ_WG}u + lid.x;
  if (row >= N) { return; }
  var bk = 0xffffffffu;
  var bi = 0xffffffffu;
  for (var s = 0u; s < P.splits; s++) {
    let kv = part[(s * N + row) * 2u];
    let iv = part[(s * N + row) * 2u + 1u];
    if (kv < bk || (kv == bk && iv < bi)) { bk = kv; bi = iv; }
  }
  outI[row] = i32(bi);
  outD[row] = bitcast<f32>(bk);
}
`,
});

export interface TopkShaderSpec {
  /** Size of the workgroup key cache (>= K), or 0 to recompute distances in every sweep. */
  cacheK: number;
  /** Stage the query row in workgroup memory (d <= 256). */
  zShared: boolean;
  /** Threads per workgroup (one workgroup per row). */
  wg: number;
  /** d and both offsets are multiples of 4: read code rows as vec4 (4x fewer load instructions). */
  vec4: boolean;
}

/** Capacity of the candidate buffer, and so the largest supported k. */
export const VQ_MAX_CANDIDATES = 512;

/**
 * One workgroup per row (linearized workgroup id) of z [N, D] (at element zOff) against the
 * codebook [K, D] (at element cbOff). Outputs: indices outI i32 [N, k], distances outD f32 [N, k],
 * ascending by (distance, index).
 *
 * 1. Keys (distance bits) of the row, and their min and max. Bits above the highest bit where min
 *    and max differ are common to every key, so the first 8-bit digit starts right there: it
 *    spreads the keys over the histogram (a digit on the float exponent alone would put nearly all
 *    keys in one or two bins).
 * 2. Radix-select passes: histogram of the digit over the keys that match the known high bits; 16
 *    threads sum 16 bins each, then one thread walks the partial sums and bins to the digit that
 *    holds the rank-th smallest key. Keys below that bin are all selected (cntLess of them); the
 *    bin holds h more. Passes stop once m = cntLess + h is small (<= 512 and <= k + 32 + k/2) or the
 *    key is fully known; two histogram buffers alternate so the next is cleared during a pass.
 * 3. Collect the m keys <= the bin's top into workgroup memory and rank each by (key, index) among
 *    them (m^2 / wg comparisons, no barriers); rank < k is its output slot. If the key is fully
 *    known and more than 512 codes tie at it, two passes over the 16-bit code index first find the
 *    largest index to keep, so exactly k are collected.
 * Barriers are kept few because on software Vulkan (lavapipe) each one is a coroutine switch of
 * every invocation.
 */
function topkBody(s: TopkShaderSpec): string {
  const { cacheK, zShared, wg, vec4 } = s;
  // A sweep over the row's codes: thread lid handles codes lid, lid + wg, ...; the body sees c and kv.
  // The computing sweep reads code rows directly: no barriers (cheap on lavapipe), and on GPUs the
  // rows a workgroup reads stay in L1 across the loop over j.
  const sweep = (body: string, fresh = false) =>
    `for (var c = lid.x; c < K; c += ${wg}u) { let kv = ${cacheK > 0 && !fresh ? 'keys[c]' : 'dist_key(c)'}; ${body} }`;
  const zAt = (j: string) => (zShared ? `zs[${j}]` : `z[zrow + ${j}]`);
  // Sums run over j in order (as in the k = 1 kernel), also when loading 4 coordinates at a time.
  const distBody = vec4
    ? `let eb = (P.cbOff + c * D) / 4u;
  for (var j = 0u; j < D; j += 4u) {
    let e = cb4[eb + j / 4u];
    let t0 = ${zAt('j')} - e.x;
    let t1 = ${zAt('j + 1u')} - e.y;
    let t2 = ${zAt('j + 2u')} - e.z;
    let t3 = ${zAt('j + 3u')} - e.w;
    acc += t0 * t0;
    acc += t1 * t1;
    acc += t2 * t2;
    acc += t3 * t3;
  }`
    : `let eb = P.cbOff + c * D;
  for (var j = 0u; j < D; j++) {
    let t = ${zAt('j')} - cb[eb + j];
    acc += t * t;
  }`;
  const CAP = VQ_MAX_CANDIDATES;
  return `
${zShared ? 'var<workgroup> zs: array<f32, 256>;' : ''}
${cacheK > 0 ? `var<workgroup> keys: array<u32, ${cacheK}>;` : ''}
var<workgroup> hist: array<atomic<u32>, 512>;
var<workgroup> part: array<u32, 16>;
var<workgroup> candK: array<u32, ${CAP}>;
var<workgroup> candI: array<u32, ${CAP}>;
var<workgroup> kmin: atomic<u32>;
var<workgroup> kmax: atomic<u32>;
var<workgroup> cnt: atomic<u32>;
// ctl: [prefix, known (bits >= known are known), rank within the prefix, cntLess, bin count,
//       index prefix, index rank, key passes run]
var<workgroup> ctl: array<u32, 8>;
var<workgroup> done: u32;
var<workgroup> mTotal: u32;

var<private> zrow: u32;

fn dist_key(c: u32) -> u32 {
  let D = P.D;
  var acc = 0.0;
  ${distBody}
  return bitcast<u32>(acc);
}

fn mask_above(b: u32) -> u32 {
  return select(0xffffffffu << b, 0u, b >= 32u);
}

@compute @workgroup_size(${wg})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
  let N = P.N;
  let K = P.K;
  let D = P.D;
  let k = P.k;
  let row = linear_wg(wid, nwg);
  if (row >= N) { return; }
  zrow = P.zOff + row * D;
  if (lid.x == 0u) {
    atomicStore(&kmin, 0xffffffffu);
    atomicStore(&kmax, 0u);
    atomicStore(&cnt, 0u);
  }
  for (var b = lid.x; b < 512u; b += ${wg}u) { atomicStore(&hist[b], 0u); }
  ${zShared ? `for (var j = lid.x; j < D; j += ${wg}u) { zs[j] = z[P.zOff + row * D + j]; }` : ''}
  workgroupBarrier();
  {
    var lo = 0xffffffffu;
    var hi = 0u;
    ${sweep(`${cacheK > 0 ? 'keys[c] = kv;' : ''} lo = min(lo, kv); hi = max(hi, kv);`, true)}
    atomicMin(&kmin, lo);
    atomicMax(&kmax, hi);
  }
  workgroupBarrier();
  if (lid.x == 0u) {
    let lo = atomicLoad(&kmin);
    let diff = lo ^ atomicLoad(&kmax);
    // Bits >= known are common to all keys; the first digit covers [known - 8, known).
    let top = select(32u - countLeadingZeros(diff), 0u, diff == 0u);
    let known = max(top, 8u);
    ctl[0] = lo & mask_above(known);
    ctl[1] = known;
    ctl[2] = k;
    ctl[3] = 0u;
    ctl[4] = K;
    ctl[7] = 0u;
    done = 0u;
  }
  workgroupBarrier();
  // Radix passes on the key (each fixes up to 8 more bits; at most 5 from an unaligned start).
  for (var it = 0u; it < 5u; it++) {
    if (workgroupUniformLoad(&done) != 0u) { break; }
    let prefix = ctl[0];
    let known = ctl[1];
    let shift = max(known, 8u) - 8u;
    let mask = mask_above(known);
    let hb = (it & 1u) * 256u;
    for (var b = lid.x; b < 256u; b += ${wg}u) { atomicStore(&hist[256u - hb + b], 0u); }
    ${sweep('if ((kv & mask) == prefix) { atomicAdd(&hist[hb + ((kv >> shift) & 255u)], 1u); }')}
    workgroupBarrier();
    if (lid.x < 16u) {
      var s = 0u;
      for (var b = 0u; b < 16u; b++) { s += atomicLoad(&hist[hb + lid.x * 16u + b]); }
      part[lid.x] = s;
    }
    workgroupBarrier();
    if (lid.x == 0u) {
      var rem = ctl[2];
      var less = ctl[3];
      var g = 0u;
      for (; g < 15u; g++) { let pg = part[g]; if (rem <= pg) { break; } rem -= pg; less += pg; }
      var b = g * 16u;
      for (; b < g * 16u + 15u; b++) { let h = atomicLoad(&hist[hb + b]); if (rem <= h) { break; } rem -= h; less += h; }
      let h = atomicLoad(&hist[hb + b]);
      // When known < 8 the digit overlaps known bits; they equal the prefix's, so OR is consistent.
      ctl[0] = prefix | (b << shift);
      ctl[1] = shift;
      ctl[2] = rem;
      ctl[3] = less;
      ctl[4] = h;
      ctl[7] = it + 1u;
      let m = less + h;
      mTotal = m;
      if (shift == 0u || (m <= ${CAP}u && m <= k + 32u + k / 2u)) { done = 1u; }
    }
    workgroupBarrier();
  }
  let m = workgroupUniformLoad(&mTotal);
  let prefix = ctl[0];
  let known = ctl[1];
  let need = ctl[2];
  // Keys <= top (the top of the selected bin) are the m candidates.
  let top = prefix | ~mask_above(known);
  var Ti = 0xffffffffu;
  if (m > ${CAP}u) {
    // Only when known == 0: more than ${CAP} codes tie at key T = prefix. Select the need-th
    // smallest code index among them (two 8-bit passes over indices < 65536).
    // The histogram buffer the key passes left cleared is the one after the last they used.
    let passes = ctl[7];
    if (lid.x == 0u) { ctl[5] = 0u; ctl[6] = need; }
    for (var it = 0u; it < 2u; it++) {
      let ip = workgroupUniformLoad(&ctl[5]);
      let shift = 8u - 8u * it;
      let mask = mask_above(shift + 8u);
      let hb = ((passes + it) & 1u) * 256u;
      for (var b = lid.x; b < 256u; b += ${wg}u) { atomicStore(&hist[256u - hb + b], 0u); }
      ${sweep('if (kv == prefix && (c & mask) == ip) { atomicAdd(&hist[hb + ((c >> shift) & 255u)], 1u); }')}
      workgroupBarrier();
      if (lid.x == 0u) {
        var rem = ctl[6];
        var b = 0u;
        for (; b < 255u; b++) { let h = atomicLoad(&hist[hb + b]); if (rem <= h) { break; } rem -= h; }
        ctl[5] = ip | (b << shift);
        ctl[6] = rem;
      }
      workgroupBarrier();
    }
    Ti = ctl[5];
  }
  ${sweep(`let take = select(kv <= top, kv < prefix || (kv == prefix && c <= Ti), m > ${CAP}u);
    if (take) {
      let q = atomicAdd(&cnt, 1u);
      if (q < ${CAP}u) { candK[q] = kv; candI[q] = c; }
    }`)}
  workgroupBarrier();
  let mc = min(atomicLoad(&cnt), ${CAP}u);
  for (var q = lid.x; q < mc; q += ${wg}u) {
    let kq = candK[q];
    let iq = candI[q];
    var rank = 0u;
    for (var j = 0u; j < mc; j++) {
      let kj = candK[j];
      if (kj < kq || (kj == kq && candI[j] < iq)) { rank++; }
    }
    if (rank < k) {
      outI[row * k + rank] = i32(iq);
      outD[row * k + rank] = bitcast<f32>(kq);
    }
  }
}
`;
}

export const topkKernel = defineKernel<TopkShaderSpec>({
  name: 'vq_topk',
  key: (s) => `${s.cacheK}|${s.zShared}|${s.wg}|${s.vec4}`,
  signature: (s) => ({
    params: { N: 'u32', K: 'u32', D: 'u32', zOff: 'u32', cbOff: 'u32', k: 'u32' },
    bindings: { z: read(), ...(s.vec4 ? { cb4: read('vec4<f32>') } : { cb: read() }), outI: rw('i32'), outD: rw('f32') },
  }),
  body: topkBody,
});
