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
import { defineKernel, read, rw, type BindingDecls } from '../engine/kernel.js';

export const INDEX_WG = 256;

export interface GatherScatterSpec {
  mode: 'gather' | 'scatter';
  /** WGSL element type of the data: f32 or i32. */
  type: string;
  /** Rank of the (collapsed) iteration space. */
  rank: number;
}

/** Largest iteration-space rank (after collapsing) whose parameters fit the uniform slot. */
export const GATHER_SCATTER_MAX_RANK = 14;

/**
 * Three stride lists over the iteration space `shape`, each with its base offset: gather reads x
 * through list 0 (axis stride zeroed), idx through list 1 and writes out through list 2; scatter
 * adds into out through list 0 (axis stride zeroed), reads idx through list 1 and src through list 2.
 */
function gatherScatterSignature(s: GatherScatterSpec): { params: Record<string, 'u32' | ['u32', number]>; bindings: BindingDecls } {
  const R = s.rank;
  const params: Record<string, 'u32' | ['u32', number]> = { n: 'u32', axis_size: 'u32', axis_stride: 'u32', shape: ['u32', R] };
  for (let k = 0; k < 3; k++) {
    params[`off${k}`] = 'u32';
    params[`st${k}`] = ['u32', R];
  }
  const bindings: BindingDecls =
    s.mode === 'gather'
      ? { x: read(s.type), idx: read('i32'), out: rw(s.type) }
      : { src: read(s.type), idx: read('i32'), out: rw(`atomic<${s.type === 'f32' ? 'u32' : 'i32'}>`) };
  return { params, bindings };
}

export const gatherScatterKernel = defineKernel<GatherScatterSpec>({
  name: 'gather_scatter',
  key: (s) => `${s.mode}|${s.type}|${s.rank}`,
  signature: gatherScatterSignature,
  body: gatherScatterBody,
});

/** Atomic float add by compare-exchange on the bit pattern (WGSL has no float atomic add). */
const ATOMIC_ADD_F32 = `
fn atomic_add_f32(t: u32, v: f32) {
  var old = atomicLoad(&out[t]);
  loop {
    let r = atomicCompareExchangeWeak(&out[t], old, bitcast<u32>(bitcast<f32>(old) + v));
    if (r.exchanged) { break; }
    old = r.old_value;
  }
}`;

function gatherScatterBody(s: GatherScatterSpec): string {
  const R = s.rank;
  const T = s.type;
  const lines: string[] = [];
  for (let k = 0; k < 3; k++) lines.push(`var o${k} = P.off${k};`);
  lines.push('var rem = i;');
  for (let d = R - 1; d >= 0; d--) {
    lines.push(`{ let dim = P.shape_${d}; let c = rem % dim; rem = rem / dim;`);
    for (let k = 0; k < 3; k++) lines.push(`  o${k} += c * P.st${k}_${d};`);
    lines.push('}');
  }
  const head = `
@compute @workgroup_size(${INDEX_WG})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
  let i = linear_wg(wid, nwg) * ${INDEX_WG}u + lid.x;
  if (i >= P.n) { return; }
  ${lines.join('\n  ')}
  let j = idx[o1];
  let inRange = j >= 0 && u32(j) < P.axis_size;`;
  if (s.mode === 'gather') {
    return `${head}
  if (!inRange) { out[o2] = ${T}(0); return; }
  out[o2] = x[o0 + u32(j) * P.axis_stride];
}
`;
  }
  const isFloat = T === 'f32';
  return `${isFloat ? ATOMIC_ADD_F32 : ''}
${head}
  if (!inRange) { return; }
  let t = o0 + u32(j) * P.axis_stride;
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
 * Workgroup w takes column block w % col_blocks, row block (w / col_blocks) % row_blocks and
 * outer index w / (col_blocks * row_blocks).
 */
export const indexAddTiledKernel = defineKernel({
  name: 'index_add_tiled',
  key: () => '',
  signature: () => ({
    params: { outer: 'u32', T: 'u32', inner: 'u32', V: 'u32', src_offset: 'u32', idx_offset: 'u32', idx_stride: 'u32', row_blocks: 'u32', col_blocks: 'u32' },
    bindings: { src: read(), idx: read('i32'), out: rw('atomic<u32>') },
  }),
  body: indexAddTiledBody,
});

function indexAddTiledBody(): string {
  return `
var<workgroup> tgt: array<i32, ${IA_ROWS}>;
var<workgroup> nxt: array<u32, ${IA_ROWS}>;
var<workgroup> lead: array<u32, ${IA_ROWS}>;
var<workgroup> vals: array<f32, ${IA_ROWS * 4}>;
${ATOMIC_ADD_F32}

@compute @workgroup_size(${IA_ROWS * 4})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
  let outer = P.outer;
  let T = P.T;
  let inner = P.inner;
  let V = P.V;
  let w = linear_wg(wid, nwg);
  let cb = w % P.col_blocks;
  let rest = w / P.col_blocks;
  let rb = rest % P.row_blocks;
  let o = rest / P.row_blocks;
  if (o >= outer) { return; }
  let row = lid.x / 4u;
  let lane = lid.x % 4u;
  let i = rb * ${IA_ROWS}u + row;
  if (lane == 0u) {
    var t = -1;
    if (i < T) {
      t = idx[P.idx_offset + i * P.idx_stride];
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
    if (i < T && c < cEnd) { v = src[P.src_offset + (o * T + i) * inner + c]; }
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
