/**
 * The two convolution primitives: unfold (im2col) and its adjoint fold (col2im). Every
 * convolution, transposed convolution and pooling op is built from these plus matmul/reductions.
 *
 * Block grid: a "block" (oh, ow) is the window whose top-left input pixel is
 * (oh*sh - ph, ow*sw - pw); its tap (ki, kj) reads input pixel (oh*sh - ph + ki*dh, ow*sw - pw + kj*dw).
 * cols is [N, C*kh*kw, Hb*Wb] with row (c*kh + ki)*kw + kj (PyTorch's F.unfold order).
 */
export const CONV_WG = 256;

/**
 * unfold: one thread per element of the contiguous output cols, so consecutive threads read
 * consecutive input columns (coalesced for stride 1). Out-of-range taps read `padValue`.
 * Params: [total, C, H, W, kh, kw, sh, sw, ph, pw, dh, dw, Hb, Wb, xOff, xsN, xsC, xsH, xsW, padValue(f32)].
 */
export function unfoldShader(): string {
  return /* wgsl */ `
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> cols: array<f32>;
@compute @workgroup_size(${CONV_WG})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
  let o = linear_wg(wid, nwg) * ${CONV_WG}u + lid.x;
  if (o >= pu(0u)) { return; }
  let C = pu(1u);
  let kh = pu(4u);
  let kw = pu(5u);
  let Hb = pu(12u);
  let Wb = pu(13u);
  var r = o;
  let ow = r % Wb; r = r / Wb;
  let oh = r % Hb; r = r / Hb;
  let kj = r % kw; r = r / kw;
  let ki = r % kh; r = r / kh;
  let c = r % C;
  let n = r / C;
  let h = i32(oh * pu(6u) + ki * pu(10u)) - pi(8u);
  let w = i32(ow * pu(7u) + kj * pu(11u)) - pi(9u);
  var v = pf(19u);
  if (h >= 0 && h < i32(pu(2u)) && w >= 0 && w < i32(pu(3u))) {
    v = x[pu(14u) + n * pu(15u) + c * pu(16u) + u32(h) * pu(17u) + u32(w) * pu(18u)];
  }
  cols[o] = v;
}
`;
}

/**
 * fold: a gather, one thread per output pixel (no atomics). Pixel (h, w) receives tap (ki, kj) of
 * block (oh, ow) when h + ph - ki*dh = oh*sh with 0 <= oh < Hb (same for w). h + ph - ki*dh
 * decreases with ki, so the loop stops at the first negative value.
 * cols is read through its strides [csN, csR, csL] (any 3-D view).
 * Params: [total, C, H, W, kh, kw, sh, sw, ph, pw, dh, dw, Hb, Wb, cOff, csN, csR, csL].
 */
export function foldShader(): string {
  return /* wgsl */ `
@group(0) @binding(1) var<storage, read> cols: array<f32>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;
@compute @workgroup_size(${CONV_WG})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
  let o = linear_wg(wid, nwg) * ${CONV_WG}u + lid.x;
  if (o >= pu(0u)) { return; }
  let C = pu(1u);
  let H = pu(2u);
  let W = pu(3u);
  let kh = pu(4u);
  let kw = pu(5u);
  let sh = pu(6u);
  let sw = pu(7u);
  let dh = pu(10u);
  let dw = pu(11u);
  let Hb = pu(12u);
  let Wb = pu(13u);
  let csR = pu(16u);
  let csL = pu(17u);
  var r = o;
  let w = r % W; r = r / W;
  let h = r % H; r = r / H;
  let c = r % C;
  let n = r / C;
  let base = pu(14u) + n * pu(15u);
  let th0 = i32(h) + pi(8u);
  let tw0 = i32(w) + pi(9u);
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
`;
}
