/**
 * The one N-ary elementwise kernel: inputs are read through broadcast strides (so views and
 * broadcasting cost no copies), the output is contiguous. `expr` is a WGSL expression over the
 * loaded inputs `a`, `b`, `c`, ... and scalar parameters `s0`, `s1`, ...
 */
export const EW_WG = 256;
export const EW_NAMES = ['a', 'b', 'c', 'd'];

export interface ElementwiseShaderSpec {
  expr: string;
  inTypes: string[];
  outType: string;
  scalarType: string;
  nScalars: number;
  rank: number;
}

/**
 * Fast path when every operand is contiguous with offsets and length divisible by 4: each thread
 * moves 4 elements with vec4 loads/stores (4x fewer memory instructions) and applies the scalar
 * expression per component. Parameter layout: [n4, offsets/4 of inputs..., output offset/4, scalars...].
 */
export function elementwiseVec4Shader(s: Omit<ElementwiseShaderSpec, 'rank'>): string {
  const nIn = s.inTypes.length;
  const decls = s.inTypes.map((t, k) => `@group(0) @binding(${k + 1}) var<storage, read> in${k}: array<vec4<${t}>>;`);
  decls.push(`@group(0) @binding(${nIn + 1}) var<storage, read_write> out: array<vec4<${s.outType}>>;`);
  const pfn = s.scalarType === 'i32' ? 'pi' : 'pf';
  const lines: string[] = [];
  s.inTypes.forEach((_, k) => lines.push(`let v${k} = in${k}[pu(${1 + k}u) + i];`));
  for (let j = 0; j < s.nScalars; j++) lines.push(`let s${j} = ${pfn}(${2 + nIn + j}u);`);
  lines.push(`var r: vec4<${s.outType}>;`);
  // The lane index must not be called a, b, c or d: those name the inputs in `expr`.
  lines.push('for (var lane = 0u; lane < 4u; lane++) {');
  s.inTypes.forEach((_, k) => lines.push(`  let ${EW_NAMES[k]} = v${k}[lane];`));
  lines.push(`  r[lane] = ${s.outType}(${s.expr});`, '}');
  return `
${decls.join('\n')}
@compute @workgroup_size(${EW_WG})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
  let i = linear_wg(wid, nwg) * ${EW_WG}u + lid.x;
  if (i >= pu(0u)) { return; }
  ${lines.join('\n  ')}
  out[pu(${1 + nIn}u) + i] = r;
}
`;
}

/**
 * Parameter layout: [n, shape[0..R), per input: offset, strides[0..R), output offset, strides[0..R),
 * scalars...]. The output is written through its own strides so copies into views (concat, pad)
 * use the same kernel.
 */
export function elementwiseShader(s: ElementwiseShaderSpec): string {
  const R = s.rank;
  const decls = s.inTypes.map((t, k) => `@group(0) @binding(${k + 1}) var<storage, read> in${k}: array<${t}>;`);
  decls.push(`@group(0) @binding(${s.inTypes.length + 1}) var<storage, read_write> out: array<${s.outType}>;`);
  const inBase = (k: number) => 1 + R + k * (R + 1);
  const scalarBase = 1 + R + (s.inTypes.length + 1) * (R + 1);
  const nIn = s.inTypes.length;
  const lines: string[] = [];
  const all = Array.from({ length: nIn + 1 }, (_, k) => k); // inputs, then the output (index nIn)
  all.forEach((k) => lines.push(`var o${k} = pu(${inBase(k)}u);`));
  if (R === 1) {
    all.forEach((k) => lines.push(`o${k} += i * pu(${inBase(k) + 1}u);`));
  } else {
    lines.push('var rem = i;');
    for (let d = R - 1; d >= 0; d--) {
      lines.push(`{ let dim = pu(${1 + d}u); let id = rem % dim; rem = rem / dim;`);
      all.forEach((k) => lines.push(`  o${k} += id * pu(${inBase(k) + 1 + d}u);`));
      lines.push('}');
    }
  }
  s.inTypes.forEach((_, k) => lines.push(`let ${EW_NAMES[k]} = in${k}[o${k}];`));
  const pfn = s.scalarType === 'i32' ? 'pi' : 'pf';
  for (let j = 0; j < s.nScalars; j++) lines.push(`let s${j} = ${pfn}(${scalarBase + j}u);`);
  return `
${decls.join('\n')}
@compute @workgroup_size(${EW_WG})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
  let i = linear_wg(wid, nwg) * ${EW_WG}u + lid.x;
  if (i >= pu(0u)) { return; }
  ${lines.join('\n  ')}
  out[o${nIn}] = ${s.outType}(${s.expr});
}
`;
}
