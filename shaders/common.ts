/**
 * WGSL shared by every kernel. Binding 0 is a 256-byte uniform slot with the dispatch's
 * parameters (read as u32/i32/f32 words by index); storage buffers follow from binding 1.
 * Workgroup ids are linearized because large dispatches are split over a 2D/3D grid.
 */
export const PARAM_WORDS = 64;

export const PRELUDE = /* wgsl */ `
struct Params { v: array<vec4<u32>, 16> }
@group(0) @binding(0) var<uniform> P: Params;
fn pu(i: u32) -> u32 { return P.v[i / 4u][i % 4u]; }
fn pi(i: u32) -> i32 { return bitcast<i32>(P.v[i / 4u][i % 4u]); }
fn pf(i: u32) -> f32 { return bitcast<f32>(P.v[i / 4u][i % 4u]); }
fn linear_wg(wid: vec3<u32>, nwg: vec3<u32>) -> u32 { return wid.x + wid.y * nwg.x + wid.z * nwg.x * nwg.y; }
`;

/** The prelude of declared kernels (engine/kernel.ts generates their parameter struct and bindings). */
export const KERNEL_PRELUDE = /* wgsl */ `
fn linear_wg(wid: vec3<u32>, nwg: vec3<u32>) -> u32 { return wid.x + wid.y * nwg.x + wid.z * nwg.x * nwg.y; }
`;

/** Declares storage binding `index` (1-based after the params) named `name`. */
export function storageDecl(index: number, name: string, elem: string, access: 'read' | 'read_write'): string {
  return `@group(0) @binding(${index}) var<storage, ${access}> ${name}: array<${elem}>;`;
}
