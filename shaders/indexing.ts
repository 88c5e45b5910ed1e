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
