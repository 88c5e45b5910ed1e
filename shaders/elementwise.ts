/**
 * The one N-ary elementwise kernel: inputs are read through broadcast strides (so views and
 * broadcasting cost no copies); the output is written through its own strides so copies into
 * views (concat, pad) use the same kernel. `expr` is a WGSL expression over the loaded inputs
 * `a`, `b`, `c`, ... and scalar parameters `s0`, `s1`, ...
 *
 * Declared parameters (engine/ops/elementwise.ts): n, shape[R], per input k off{k} and st{k}[R],
 * off_out, st_out[R], s[nScalars]; bindings in0.., out.
 */
export const EW_WG = 256;
export const EW_NAMES = ['a', 'b', 'c', 'd'];

export interface ElementwiseVariant {
  /**
   * Every operand contiguous with offsets and length divisible by 4: each thread moves 4
   * elements with vec4 loads/stores (4x fewer memory instructions); offsets are in vec4 units.
   */
  vec4: boolean;
  rank: number;
  expr: string;
  inTypes: string[];
  outType: string;
  scalarType: string;
  nScalars: number;
}

const HEADER = (wg: number) => `@compute @workgroup_size(${wg})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
  let i = linear_wg(wid, nwg) * ${wg}u + lid.x;
  if (i >= P.n) { return; }`;

function scalarLoads(s: ElementwiseVariant): string[] {
  return Array.from({ length: s.nScalars }, (_, j) => `let s${j} = P.s_${j};`);
}

export function elementwiseVec4Body(s: ElementwiseVariant): string {
  const lines: string[] = [];
  s.inTypes.forEach((_, k) => lines.push(`let v${k} = in${k}[P.off${k} + i];`));
  lines.push(...scalarLoads(s));
  lines.push(`var r: vec4<${s.outType}>;`);
  // The lane index must not be called a, b, c or d: those name the inputs in `expr`.
  lines.push('for (var lane = 0u; lane < 4u; lane++) {');
  s.inTypes.forEach((_, k) => lines.push(`  let ${EW_NAMES[k]} = v${k}[lane];`));
  lines.push(`  r[lane] = ${s.outType}(${s.expr});`, '}');
  return `
${HEADER(EW_WG)}
  ${lines.join('\n  ')}
  out[P.off_out + i] = r;
}
`;
}

export function elementwiseBody(s: ElementwiseVariant): string {
  const R = s.rank;
  const nIn = s.inTypes.length;
  const names = [...s.inTypes.map((_, k) => `${k}`), '_out']; // inputs, then the output
  const lines: string[] = [];
  names.forEach((k, j) => lines.push(`var o${j} = P.off${k};`));
  if (R === 1) {
    names.forEach((k, j) => lines.push(`o${j} += i * P.st${k}_0;`));
  } else {
    lines.push('var rem = i;');
    for (let d = R - 1; d >= 0; d--) {
      lines.push(`{ let dim = P.shape_${d}; let id = rem % dim; rem = rem / dim;`);
      names.forEach((k, j) => lines.push(`  o${j} += id * P.st${k}_${d};`));
      lines.push('}');
    }
  }
  s.inTypes.forEach((_, k) => lines.push(`let ${EW_NAMES[k]} = in${k}[o${k}];`));
  lines.push(...scalarLoads(s));
  return `
${HEADER(EW_WG)}
  ${lines.join('\n  ')}
  out[o${nIn}] = ${s.outType}(${s.expr});
}
`;
}
