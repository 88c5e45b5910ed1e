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
 * Geometry words 1..13 of the params ([C, H, W, kh, kw, sh, sw, ph, pw, dh, dw, Hb, Wb]) baked
 * into the WGSL as literals. Used on software adapters (lavapipe), where an integer division by a
 * runtime value is a scalar division per SIMD lane (x86 has no vector integer division) and
 * dominated these kernels (~5x slower than with constant divisors, which LLVM turns into
 * multiply-shifts). One pipeline per geometry: fine for the handful of shapes a model uses.
 */
export type BakedGeom = readonly number[];

function geomReader(baked?: BakedGeom): { u: (i: number) => string; i: (i: number) => string } {
  if (!baked) return { u: (i) => `pu(${i}u)`, i: (i) => `pi(${i}u)` };
  if (baked.length !== 13 || baked.some((v) => !Number.isInteger(v) || v < 0)) throw new Error(`conv: bad baked geometry ${JSON.stringify(baked)}`);
  return { u: (i) => `${baked[i - 1]}u`, i: (i) => `${baked[i - 1]}i` };
}

/**
 * unfold: one thread per element of the contiguous output cols, so consecutive threads read
 * consecutive input columns (coalesced for stride 1). Out-of-range taps read `padValue`.
 * Params: [total, C, H, W, kh, kw, sh, sw, ph, pw, dh, dw, Hb, Wb, xOff, xsN, xsC, xsH, xsW, padValue(f32)].
 */
export function unfoldShader(baked?: BakedGeom): string {
  const q = geomReader(baked);
  return /* wgsl */ `
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> cols: array<f32>;
@compute @workgroup_size(${CONV_WG})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
  let o = linear_wg(wid, nwg) * ${CONV_WG}u + lid.x;
  if (o >= pu(0u)) { return; }
  let C = ${q.u(1)};
  let kh = ${q.u(4)};
  let kw = ${q.u(5)};
  let Hb = ${q.u(12)};
  let Wb = ${q.u(13)};
  var r = o;
  let ow = r % Wb; r = r / Wb;
  let oh = r % Hb; r = r / Hb;
  let kj = r % kw; r = r / kw;
  let ki = r % kh; r = r / kh;
  let c = r % C;
  let n = r / C;
  let h = i32(oh * ${q.u(6)} + ki * ${q.u(10)}) - ${q.i(8)};
  let w = i32(ow * ${q.u(7)} + kj * ${q.u(11)}) - ${q.i(9)};
  var v = pf(19u);
  if (h >= 0 && h < i32(${q.u(2)}) && w >= 0 && w < i32(${q.u(3)})) {
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
export function foldShader(baked?: BakedGeom): string {
  const q = geomReader(baked);
  return /* wgsl */ `
@group(0) @binding(1) var<storage, read> cols: array<f32>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;
@compute @workgroup_size(${CONV_WG})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
  let o = linear_wg(wid, nwg) * ${CONV_WG}u + lid.x;
  if (o >= pu(0u)) { return; }
  let C = ${q.u(1)};
  let H = ${q.u(2)};
  let W = ${q.u(3)};
  let kh = ${q.u(4)};
  let kw = ${q.u(5)};
  let sh = ${q.u(6)};
  let sw = ${q.u(7)};
  let dh = ${q.u(10)};
  let dw = ${q.u(11)};
  let Hb = ${q.u(12)};
  let Wb = ${q.u(13)};
  let csR = pu(16u);
  let csL = pu(17u);
  var r = o;
  let w = r % W; r = r / W;
  let h = r % H; r = r / H;
  let c = r % C;
  let n = r / C;
  let base = pu(14u) + n * pu(15u);
  let th0 = i32(h) + ${q.i(8)};
  let tw0 = i32(w) + ${q.i(9)};
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
