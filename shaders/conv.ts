/**
 * The two column kernels: unfold (im2col) and its adjoint fold (col2im). Convolutions on the
 * columns route, transposed convolutions and pooling are built from these plus matmul/reductions.
 *
 * Block grid: a "block" (oh, ow) is the window whose top-left input pixel is
 * (oh*sh - ph, ow*sw - pw); its tap (ki, kj) reads input pixel (oh*sh - ph + ki*dh, ow*sw - pw + kj*dw).
 * cols is [N, C*kh*kw, Hb*Wb] with row (c*kh + ki)*kw + kj (PyTorch's F.unfold order).
 *
 * On software adapters (lavapipe) the geometry (GEOMETRY below) is baked into the WGSL as
 * literals (`bake` of the call), because an integer division by a runtime value is a scalar
 * division per SIMD lane (x86 has no vector integer division) and dominated these kernels (~5x
 * slower than with constant divisors, which LLVM turns into multiply-shifts). One pipeline per
 * geometry: fine for the handful of shapes a model uses.
 */
import { defineKernel, read, rw, type ParamDecls } from '../engine/kernel.js';

// Every kernel here and in conv-implicit.ts is of the family 'conv' (profiles group by it); the
// key names the kernel first (conv|unfold, conv|fold, conv|implicit|...). The implicit weight
// gradient's split partial sums are added by shaders/matmul.ts's split_sum kernel.

export const CONV_WG = 256;

/** A convolution's geometry: channels, input size, kernel, stride, padding, dilation, output blocks. */
export const GEOM_PARAMS = {
  C: 'u32',
  H: 'u32',
  W: 'u32',
  kh: 'u32',
  kw: 'u32',
  sh: 'u32',
  sw: 'u32',
  ph: 'i32',
  pw: 'i32',
  dh: 'u32',
  dw: 'u32',
  Hb: 'u32',
  Wb: 'u32',
} as const satisfies ParamDecls;

/** The parameters that may be baked. */
export const GEOMETRY = Object.keys(GEOM_PARAMS);

/**
 * unfold: one thread per element of the contiguous output cols, so consecutive threads read
 * consecutive input columns (coalesced for stride 1). x is read through its strides; out-of-range
 * taps read `pad_value`.
 */
export const unfoldKernel = defineKernel({
  name: 'conv',
  key: () => 'unfold',
  signature: () => ({
    params: { total: 'u32', ...GEOM_PARAMS, x_off: 'u32', x_st: ['u32', 4], pad_value: 'f32' },
    bindings: { x: read(), cols: rw() },
  }),
  body: () => /* wgsl */ `
@compute @workgroup_size(${CONV_WG})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
  let o = linear_wg(wid, nwg) * ${CONV_WG}u + lid.x;
  if (o >= P.total) { return; }
  let C = P.C;
  let kh = P.kh;
  let kw = P.kw;
  let Hb = P.Hb;
  let Wb = P.Wb;
  var r = o;
  let ow = r % Wb; r = r / Wb;
  let oh = r % Hb; r = r / Hb;
  let kj = r % kw; r = r / kw;
  let ki = r % kh; r = r / kh;
  let c = r % C;
  let n = r / C;
  let h = i32(oh * P.sh + ki * P.dh) - P.ph;
  let w = i32(ow * P.sw + kj * P.dw) - P.pw;
  var v = P.pad_value;
  if (h >= 0 && h < i32(P.H) && w >= 0 && w < i32(P.W)) {
    v = x[P.x_off + n * P.x_st_0 + c * P.x_st_1 + u32(h) * P.x_st_2 + u32(w) * P.x_st_3];
  }
  cols[o] = v;
}
`,
});

/**
 * fold: a gather, one thread per output pixel (no atomics). Pixel (h, w) receives tap (ki, kj) of
 * block (oh, ow) when h + ph - ki*dh = oh*sh with 0 <= oh < Hb (same for w). h + ph - ki*dh
 * decreases with ki, so the loop stops at the first negative value. cols is read through its
 * strides (any 3-D view).
 */
export const foldKernel = defineKernel({
  name: 'conv',
  key: () => 'fold',
  signature: () => ({
    params: { total: 'u32', ...GEOM_PARAMS, cols_off: 'u32', cols_st: ['u32', 3] },
    bindings: { cols: read(), out: rw() },
  }),
  body: () => /* wgsl */ `
@compute @workgroup_size(${CONV_WG})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
  let o = linear_wg(wid, nwg) * ${CONV_WG}u + lid.x;
  if (o >= P.total) { return; }
  let C = P.C;
  let H = P.H;
  let W = P.W;
  let kh = P.kh;
  let kw = P.kw;
  let sh = P.sh;
  let sw = P.sw;
  let dh = P.dh;
  let dw = P.dw;
  let Hb = P.Hb;
  let Wb = P.Wb;
  let csR = P.cols_st_1;
  let csL = P.cols_st_2;
  var r = o;
  let w = r % W; r = r / W;
  let h = r % H; r = r / H;
  let c = r % C;
  let n = r / C;
  let base = P.cols_off + n * P.cols_st_0;
  let th0 = i32(h) + P.ph;
  let tw0 = i32(w) + P.pw;
  var acc = 0.0;
  for (var ki = 0u; ki < kh; ki++) {
    let th = th0 - i32(ki * dh);
    if (th < 0) { break; }
    if (u32(th) % sh != 0u) { continue; }
    let oh = u32(th) / sh;
    if (oh >= Hb) { continue; }
    let rowBase = (c * kh + ki) * kw;
    for (var kj = 0u; kj < kw; kj++) {
      let tw = tw0 - i32(kj * dw);
      if (tw < 0) { break; }
      if (u32(tw) % sw != 0u) { continue; }
      let ow = u32(tw) / sw;
      if (ow >= Wb) { continue; }
      acc += cols[base + (rowBase + kj) * csR + (oh * Wb + ow) * csL];
    }
  }
  out[o] = acc;
}
`,
});
