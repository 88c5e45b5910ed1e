/**
 * Gather and scatter-add kernels shared by indexSelect / embedding / takeAlongAxis (gather) and
 * indexAdd / scatterAdd (scatter). Both ops address three tensors through strides over an
 * iteration space (the output for gathers, the source for scatters); the data tensor's stride
 * along the indexed axis is zeroed in its list and applied separately as `index * axisStride`, so
 * the kernel never needs to know which dim is the axis.
 *
 * Out-of-range indices (< 0 or >= axisSize) cannot be reported from a kernel without a readback:
 * a gather writes 0 for them and a scatter skips them. (The CPU backend throws instead.)
 *
 * Float scatter-adds are deterministic: no float atomics, whose summation order (and so the last
 * bits of a sum) would depend on thread scheduling and make two runs of the same training differ.
 * - Where no two source elements can share a target (scatterAdd with idx of length 1 along the
 *   axis, as in cross-entropy's backward), one thread per source element adds without atomics.
 * - Otherwise the sources are bucketed by target in a fixed order and each target is summed by one
 *   invocation: `scatterCsrKernel` (one workgroup) builds the buckets as compressed rows — start
 *   of each target's bucket, and the source rows in increasing order — and `scatterSumKernel`
 *   (one thread per output element) adds base + the bucket's rows in that order, the order the CPU
 *   backend adds them in (so f32 results match the CPU f32 backend bit for bit).
 * i32 scatter-add keeps atomicAdd: integer addition is exact in any order.
 */
import { defineKernel, read, rw, type BindingDecls } from '../engine/kernel.js';

export const INDEX_WG = 256;

export interface GatherScatterSpec {
  /** gather; scatter adds one thread per source element: atomically for i32, plainly for f32 (targets must be distinct). */
  mode: 'gather' | 'scatter';
  /** WGSL element type of the data: f32 or i32. */
  type: string;
  /** Rank of the (collapsed) iteration space. */
  rank: number;
}

/** Largest iteration-space rank (after collapsing) whose parameters fit the uniform slot. */
export const GATHER_SCATTER_MAX_RANK = 14;

/** Params of an iteration space of rank R with three stride lists (see gatherScatterSignature). */
function spaceParams(R: number): Record<string, 'u32' | ['u32', number]> {
  const params: Record<string, 'u32' | ['u32', number]> = { n: 'u32', axis_size: 'u32', axis_stride: 'u32', shape: ['u32', R] };
  for (let k = 0; k < 3; k++) {
    params[`off${k}`] = 'u32';
    params[`st${k}`] = ['u32', R];
  }
  return params;
}

/**
 * Three stride lists over the iteration space `shape`, each with its base offset: gather reads x
 * through list 0 (axis stride zeroed), idx through list 1 and writes out through list 2; scatter
 * adds into out through list 0 (axis stride zeroed), reads idx through list 1 and src through list 2.
 */
function gatherScatterSignature(s: GatherScatterSpec): { params: Record<string, 'u32' | ['u32', number]>; bindings: BindingDecls } {
  const bindings: BindingDecls =
    s.mode === 'gather'
      ? { x: read(s.type), idx: read('i32'), out: rw(s.type) }
      : { src: read(s.type), idx: read('i32'), out: rw(s.type === 'f32' ? 'f32' : 'atomic<i32>') };
  return { params: spaceParams(s.rank), bindings };
}

export const gatherScatterKernel = defineKernel<GatherScatterSpec>({
  name: 'gather_scatter',
  key: (s) => `${s.mode}|${s.type}|${s.rank}`,
  signature: gatherScatterSignature,
  body: gatherScatterBody,
});

/** WGSL setting o0, o1, o2 (the three lists' offsets) for linear index `i` of a rank-R space. */
function spaceOffsets(R: number): string {
  const lines: string[] = [];
  for (let k = 0; k < 3; k++) lines.push(`var o${k} = P.off${k};`);
  lines.push('var rem = i;');
  for (let d = R - 1; d >= 0; d--) {
    lines.push(`{ let dim = P.shape_${d}; let c = rem % dim; rem = rem / dim;`);
    for (let k = 0; k < 3; k++) lines.push(`  o${k} += c * P.st${k}_${d};`);
    lines.push('}');
  }
  return lines.join('\n  ');
}

function gatherScatterBody(s: GatherScatterSpec): string {
  const T = s.type;
  const head = `
@compute @workgroup_size(${INDEX_WG})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
  let i = linear_wg(wid, nwg) * ${INDEX_WG}u + lid.x;
  if (i >= P.n) { return; }
  ${spaceOffsets(s.rank)}
  let j = idx[o1];
  let inRange = j >= 0 && u32(j) < P.axis_size;`;
  if (s.mode === 'gather') {
    return `${head}
  if (!inRange) { out[o2] = ${T}(0); return; }
  out[o2] = x[o0 + u32(j) * P.axis_stride];
}
`;
  }
  return `${head}
  if (!inRange) { return; }
  let t = o0 + u32(j) * P.axis_stride;
  ${T === 'f32' ? 'out[t] = out[t] + src[o2];' : 'atomicAdd(&out[t], src[o2]);'}
}
`;
}

/**
 * How scatter rows map to targets. `slices` (indexAdd): row i is the slice src[:, i, :] of a dense
 * [outer, T, inner] source and goes to target idx[idx_offset + i * idx_stride] of K = V; the bucket
 * holds row numbers. `elements` (scatterAdd): row i is element i of the source's iteration space
 * (the scatter's three stride lists) and goes to the output element o0 + idx[o1] * axis_stride of
 * K = the output's size; the bucket holds the source offsets o2.
 */
export interface ScatterSpec {
  mode: 'slices' | 'elements';
  /** Rank of the collapsed iteration space (`elements`; 0 for `slices`). */
  rank: number;
}

/**
 * Buckets layout in the i32 scratch `csr` of K + 1 + 2n entries: [0, K] the start of each target's
 * bucket (csr[K] = rows in range), then each row's rank within its bucket (n), then the buckets'
 * rows (n).
 */
export function scatterCsrSize(K: number, n: number): number {
  return K + 1 + 2 * n;
}

function rowFn(s: ScatterSpec): string {
  if (s.mode === 'slices') {
    return `
/** Target (-1: out of range) and payload (the row) of row i. */
fn row(i: u32) -> vec2<i32> {
  let j = idx[P.idx_offset + i * P.idx_stride];
  if (j < 0 || u32(j) >= P.K) { return vec2<i32>(-1, 0); }
  return vec2<i32>(j, i32(i));
}`;
  }
  return `
/** Target (-1: out of range) and payload (the source offset) of element i. */
fn row(i: u32) -> vec2<i32> {
  ${spaceOffsets(s.rank)}
  let j = idx[o1];
  if (j < 0 || u32(j) >= P.axis_size) { return vec2<i32>(-1, 0); }
  return vec2<i32>(i32(o0 + u32(j) * P.axis_stride), i32(o2));
}`;
}

function scatterCsrSignature(s: ScatterSpec): { params: Record<string, 'u32' | ['u32', number]>; bindings: BindingDecls } {
  const params: Record<string, 'u32' | ['u32', number]> =
    s.mode === 'slices' ? { n: 'u32', idx_offset: 'u32', idx_stride: 'u32' } : spaceParams(s.rank);
  return { params: { ...params, K: 'u32' }, bindings: { idx: read('i32'), csr: rw('i32') } };
}

/**
 * One workgroup buckets n scatter rows by target (see ScatterSpec), stably: rows are taken 256 at a
 * time in order; a row's rank is the count of its target's earlier rows (the running count, plus
 * the earlier rows of its chunk, found by comparing the chunk's 256 targets in workgroup memory).
 * Then an exclusive scan turns the counts into bucket starts and every row is placed at start +
 * rank. The serial part is n / 256 chunk steps of 256 compares per invocation: fine for the
 * gradients of embeddings and codebooks (tokens per batch), slow for millions of rows.
 */
export const scatterCsrKernel = defineKernel<ScatterSpec>({
  name: 'scatter_csr',
  key: (s) => `${s.mode}|${s.rank}`,
  signature: scatterCsrSignature,
  body: (s) => `
var<workgroup> keys: array<i32, ${INDEX_WG}>;
var<workgroup> sums: array<i32, ${INDEX_WG}>;
${rowFn(s)}

@compute @workgroup_size(${INDEX_WG})
fn main(@builtin(local_invocation_id) lid: vec3<u32>) {
  let l = lid.x;
  let K = P.K;
  let n = P.n;
  let rankAt = K + 1u;
  let rowsAt = K + 1u + n;
  for (var v = l; v < K; v += ${INDEX_WG}u) { csr[v] = 0; }
  storageBarrier();
  for (var base = 0u; base < n; base += ${INDEX_WG}u) {
    let i = base + l;
    var key = -1;
    if (i < n) { key = row(i).x; }
    keys[l] = key;
    workgroupBarrier();
    var before = 0u;
    var same = 0u;
    var r = 0;
    if (key >= 0) {
      for (var j = 0u; j < ${INDEX_WG}u; j++) {
        if (keys[j] == key) {
          same++;
          if (j < l) { before++; }
        }
      }
      r = csr[u32(key)] + i32(before);
      csr[rankAt + i] = r;
    }
    storageBarrier();
    // The chunk's last row of a target advances that target's count.
    if (key >= 0 && before + 1u == same) { csr[u32(key)] = r + 1; }
    storageBarrier();
    workgroupBarrier();
  }
  // Exclusive scan of the counts: each invocation sums a contiguous range, then rewrites it.
  let per = (K + ${INDEX_WG - 1}u) / ${INDEX_WG}u;
  let lo = min(l * per, K);
  let hi = min(lo + per, K);
  var s = 0;
  for (var v = lo; v < hi; v++) { s += csr[v]; }
  sums[l] = s;
  workgroupBarrier();
  var run = 0;
  for (var j = 0u; j < l; j++) { run += sums[j]; }
  for (var v = lo; v < hi; v++) {
    let c = csr[v];
    csr[v] = run;
    run += c;
  }
  if (l == ${INDEX_WG - 1}u) { csr[K] = run; }
  storageBarrier();
  for (var i = l; i < n; i += ${INDEX_WG}u) {
    let kp = row(i);
    if (kp.x >= 0) { csr[rowsAt + u32(csr[u32(kp.x)] + csr[rankAt + i])] = kp.y; }
  }
}
`,
});

/**
 * One thread per output element: out = (base or 0) + the element's bucket in order. `slices`:
 * output [outer, K, inner] from src [outer, n, inner] (dense, at src_offset); `elements`: output
 * element t of K from the source offsets in its bucket.
 */
export const scatterSumKernel = defineKernel<{ mode: ScatterSpec['mode'] }>({
  name: 'scatter_sum',
  key: (s) => s.mode,
  signature: (s) => ({
    params: { total: 'u32', K: 'u32', n: 'u32', has_base: 'u32', ...(s.mode === 'slices' ? { inner: 'u32', src_offset: 'u32' } : {}) },
    bindings: { src: read(), csr: read('i32'), out: rw() },
  }),
  body: (s) => `
@compute @workgroup_size(${INDEX_WG})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
  let t = linear_wg(wid, nwg) * ${INDEX_WG}u + lid.x;
  if (t >= P.total) { return; }
  ${s.mode === 'slices' ? 'let c = t % P.inner;\n  let rest = t / P.inner;\n  let v = rest % P.K;\n  let srcAt = P.src_offset + (rest / P.K) * P.n * P.inner + c;' : 'let v = t;'}
  var acc = 0.0;
  if (P.has_base != 0u) { acc = out[t]; }
  let rowsAt = P.K + 1u + P.n;
  let end = u32(csr[v + 1u]);
  for (var p = u32(csr[v]); p < end; p++) {
    ${s.mode === 'slices' ? 'acc += src[srcAt + u32(csr[rowsAt + p]) * P.inner];' : 'acc += src[u32(csr[rowsAt + p])];'}
  }
  out[t] = acc;
}
`,
});
