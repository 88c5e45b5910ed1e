/**
 * Gather and scatter-add kernels shared by indexSelect / embedding / takeAlongAxis (gather) and
 * indexAdd / scatterAdd (scatter). One thread per element of the iteration space (the output
 * for gathers, the source for scatters). Both ops address three tensors through strides over
 * that space; the data tensor's stride along the indexed axis is zeroed in its list and applied
 * separately as `index * axisStride`, so the kernel never needs to know which dim is the axis.
 *
 * Out-of-range indices (< 0 or >= axisSize) cannot be reported from a kernel without a readback:
 * a gather writes 0 for them and a scatter skips them. (The CPU backend throws instead.)
 *
 * Float scatter-add uses a compare-exchange loop on the bit pattern (WGSL has no float atomic
 * add), so when several source elements hit the same target the summation order — and therefore
 * the last bits of the result — depends on thread scheduling. i32 scatter-add uses atomicAdd and is
 * exact.
 */
export const INDEX_WG = 256;

export interface GatherScatterSpec {
  mode: 'gather' | 'scatter';
  /** WGSL element type of the data: f32 or i32. */
  type: string;
  /** Rank of the (collapsed) iteration space. */
  rank: number;
}

/** Number of parameter words the layout needs for a given rank. */
export function gatherScatterParamWords(rank: number): number {
  return 3 + rank + 3 * (rank + 1);
}

/**
 * Params: [n, axisSize, axisStride, shape[0..R), then three stride lists each as
 * offset, strides[0..R)]. gather: lists are x (axis stride zeroed), idx, out.
 * scatter: lists are out (axis stride zeroed), idx, src.
 */
export function gatherScatterShader(s: GatherScatterSpec): string {
  const R = s.rank;
  const T = s.type;
  const list = (k: number) => 3 + R + k * (R + 1);
  const lines: string[] = [];
  for (let k = 0; k < 3; k++) lines.push(`var o${k} = pu(${list(k)}u);`);
  lines.push('var rem = i;');
  for (let d = R - 1; d >= 0; d--) {
    lines.push(`{ let dim = pu(${3 + d}u); let c = rem % dim; rem = rem / dim;`);
    for (let k = 0; k < 3; k++) lines.push(`  o${k} += c * pu(${list(k) + 1 + d}u);`);
    lines.push('}');
  }
  const head = `
@compute @workgroup_size(${INDEX_WG})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
  let i = linear_wg(wid, nwg) * ${INDEX_WG}u + lid.x;
  if (i >= pu(0u)) { return; }
  ${lines.join('\n  ')}
  let j = idx[o1];
  let inRange = j >= 0 && u32(j) < pu(1u);`;
  if (s.mode === 'gather') {
    return `
@group(0) @binding(1) var<storage, read> x: array<${T}>;
@group(0) @binding(2) var<storage, read> idx: array<i32>;
@group(0) @binding(3) var<storage, read_write> out: array<${T}>;
${head}
  if (!inRange) { out[o2] = ${T}(0); return; }
  out[o2] = x[o0 + u32(j) * pu(2u)];
}
`;
  }
  const isFloat = T === 'f32';
  return `
@group(0) @binding(1) var<storage, read> src: array<${T}>;
@group(0) @binding(2) var<storage, read> idx: array<i32>;
@group(0) @binding(3) var<storage, read_write> out: array<atomic<${isFloat ? 'u32' : 'i32'}>>;
${
  isFloat
    ? `
fn atomic_add_f32(t: u32, v: f32) {
  var old = atomicLoad(&out[t]);
  loop {
    let r = atomicCompareExchangeWeak(&out[t], old, bitcast<u32>(bitcast<f32>(old) + v));
    if (r.exchanged) { break; }
    old = r.old_value;
  }
}`
    : ''
}
${head}
  if (!inRange) { return; }
  let t = o0 + u32(j) * pu(2u);
  ${isFloat ? 'atomic_add_f32(t, src[o2]);' : 'atomicAdd(&out[t], src[o2]);'}
}
`;
}

export const IA_ROWS = 64;
export const IA_COLS = 64;

/**
 * Float indexAdd (and embedding / indexSelect backward) with workgroup pre-aggregation. The source
 * is viewed as [outer, T, inner] (contiguous) and the output as [outer, V, inner]; a workgroup takes
 * 64 source rows x 64 inner columns (256 threads = 64 rows x 4 column lanes). Rows of the tile that
 * share a target are chained (first occurrence leads), and per column the leader sums its chain in
 * row order and issues one atomic add. Heavily repeated indices (a collapsed codebook, a frequent
 * token) then cost one compare-exchange per 64 rows instead of one per row: the compare-exchange
 * loop degrades quadratically with contention on one address.
 *
 * Params: [outer, T, inner, V, srcOffset, idxOffset, idxStride, rowBlocks, colBlocks].
 */
export function indexAddTiledShader(): string {
  return `
@group(0) @binding(1) var<storage, read> src: array<f32>;
@group(0) @binding(2) var<storage, read> idx: array<i32>;
@group(0) @binding(3) var<storage, read_write> out: array<atomic<u32>>;
var<workgroup> tgt: array<i32, ${IA_ROWS}>;
var<workgroup> nxt: array<u32, ${IA_ROWS}>;
var<workgroup> lead: array<u32, ${IA_ROWS}>;
var<workgroup> vals: array<f32, ${IA_ROWS * 4}>;

fn atomic_add_f32(t: u32, v: f32) {
  var old = atomicLoad(&out[t]);
  loop {
    let r = atomicCompareExchangeWeak(&out[t], old, bitcast<u32>(bitcast<f32>(old) + v));
    if (r.exchanged) { break; }
    old = r.old_value;
  }
}

@compute @workgroup_size(${IA_ROWS * 4})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
  let outer = pu(0u);
  let T = pu(1u);
  let inner = pu(2u);
  let V = pu(3u);
  let w = linear_wg(wid, nwg);
  let cb = w % pu(8u);
  let rest = w / pu(8u);
  let rb = rest % pu(7u);
  let o = rest / pu(7u);
  if (o >= outer) { return; }
  let row = lid.x / 4u;
  let lane = lid.x % 4u;
  let i = rb * ${IA_ROWS}u + row;
  if (lane == 0u) {
    var t = -1;
    if (i < T) {
      t = idx[pu(5u) + i * pu(6u)];
      if (t < 0 || u32(t) >= V) { t = -1; }
    }
    tgt[row] = t;
  }
  workgroupBarrier();
  if (lane == 0u) {
    let t = tgt[row];
    var isLead = select(0u, 1u, t >= 0);
    for (var j = 0u; j < row; j++) { if (tgt[j] == t) { isLead = 0u; break; } }
    var nx = ${IA_ROWS}u;
    for (var j = row + 1u; j < ${IA_ROWS}u; j++) { if (tgt[j] == t) { nx = j; break; } }
    lead[row] = isLead;
    nxt[row] = nx;
  }
  workgroupBarrier();
  let c0 = cb * ${IA_COLS}u;
  let cEnd = min(c0 + ${IA_COLS}u, inner);
  for (var cc = c0; cc < cEnd; cc += 4u) {
    let c = cc + lane;
    var v = 0.0;
    if (i < T && c < cEnd) { v = src[pu(4u) + (o * T + i) * inner + c]; }
    vals[row * 4u + lane] = v;
    workgroupBarrier();
    if (c < cEnd && lead[row] == 1u) {
      var s = v;
      var j = nxt[row];
      loop {
        if (j >= ${IA_ROWS}u) { break; }
        s += vals[j * 4u + lane];
        j = nxt[j];
      }
      atomic_add_f32((o * V + u32(tgt[row])) * inner + c, s);
    }
    workgroupBarrier();
  }
}
`;
}
