/**
 * WGSL shared by every kernel. Binding 0 is the dispatch's parameter slot and storage buffers
 * follow from binding 1, all declared from the kernel's signature (engine/kernel.ts). Workgroup
 * ids are linearized because large dispatches are split over a 2D/3D grid.
 */
export const KERNEL_PRELUDE = /* wgsl */ `
fn linear_wg(wid: vec3<u32>, nwg: vec3<u32>) -> u32 { return wid.x + wid.y * nwg.x + wid.z * nwg.x * nwg.y; }
`;
