/**
 * The implicit convolution trio by Winograd F(m x m, 3x3), m = 2 or 4 (shaders/conv-winograd.ts):
 * for 3x3 kernels with stride 1 and dilation 1, each of the forward, the input gradient and the
 * weight gradient becomes transforms plus (m + 2)^2 GEMMs (one batched matmul) on the matmul
 * kernels, 2.25x (m = 2) or 4x (m = 4) fewer multiplies than the direct products. The input gradient is the forward applied to the output
 * gradient with the rotated, channel-swapped kernel and padding 2 - p. Temporaries (the transformed
 * operands, (m + 2)^2 / m^2 of an image tensor each) live only during the call.
 */
import type { Storage } from '../backend.js';
import { noGrad } from '../grad-mode.js';
import { Tensor } from '../tensor.js';
import type { WebGPUBackend } from '../webgpu/backend.js';
import { WINOGRAD_WG, type WinogradTile, winogradBackwardInKernel, winogradBackwardOutKernel, winogradForwardInKernel, winogradGradInKernel, winogradOutputKernel, winogradWeightGradKernel } from '../../shaders/conv-winograd.js';
import type { ConvGeom } from './conv-geometry.js';
import { productGpu } from './matmul.js';
import { contiguous } from './movement.js';

/** Whether Winograd F(m x m, 3x3) computes this geometry: 3x3, stride 1, dilation 1, padding <= 2. */
export function winogradApplies(g: ConvGeom): boolean {
  return g.kh === 3 && g.kw === 3 && g.sh === 1 && g.sw === 1 && g.dh === 1 && g.dw === 1 && g.ph <= 2 && g.pw <= 2;
}

const wgs = (n: number) => Math.ceil(n / WINOGRAD_WG);

/** Scratch tensors over fresh device buffers, all freed by `done()`. */
function scratch(gpu: WebGPUBackend) {
  const made: Tensor[] = [];
  return {
    tensor(shape: number[]): Tensor {
      const size = shape.reduce((a, b) => a * b, 1);
      const t = new Tensor(gpu.alloc(size, 'f32') as Storage, shape, 'f32', 'winograd');
      made.push(t);
      return t;
    },
    adopt(t: Tensor): void {
      made.push(t);
    },
    /** Frees scratch tensors before the others (their buffers go back to the pool for the next ones). */
    free(...ts: Tensor[]): void {
      for (const t of ts) {
        const i = made.indexOf(t);
        if (i >= 0) made.splice(i, 1);
        t.dispose();
      }
    },
    done(): void {
      for (const t of made) t.dispose();
    },
  };
}

type Scratch = ReturnType<typeof scratch>;

/** A dense operand for the transform kernels (a copy when strided: they read NCHW at an offset). */
function denseOperand(t: Tensor, s: Scratch): Tensor {
  if (t.isContiguous) return t;
  const c = noGrad(() => contiguous(t));
  s.adopt(c);
  return c;
}

/** The m x m output tiles over an Hb x Wb output of N images, and the transforms' element count. */
function tilesOf(m: WinogradTile, N: number, Hb: number, Wb: number): { th: number; tw: number; T: number; e: number } {
  const th = Math.ceil(Hb / m);
  const tw = Math.ceil(Wb / m);
  return { th, tw, T: N * th * tw, e: (m + 2) ** 2 };
}

/** The input transform's parameters for x [N, C, H, W] (dense) padded by (ph, pw). */
function inputParams(x: Tensor, ph: number, pw: number, t: ReturnType<typeof tilesOf>) {
  const [, C, H, W] = x.shape as [number, number, number, number];
  return { C, H, W, ph, pw, th: t.th, tw: t.tw, T: t.T, x_off: x.offset };
}

/**
 * out [N, Cout, Hb, Wb] = conv(x, w) (+ bias) (+ res, dense [N, Cout, Hb, Wb]) for x [N, C, H, W]
 * with padding (ph, pw), as the forward computes it; `flip`: w is read as the input gradient's
 * kernel (rotated, channels swapped).
 */
function forwardInto(gpu: WebGPUBackend, m: WinogradTile, x: Tensor, w: Tensor, bias: Tensor | null, out: Tensor, ph: number, pw: number, flip: boolean, res: Tensor | null = null): void {
  const C = x.shape[1]!;
  const Cout = flip ? w.shape[1]! : w.shape[0]!;
  const [Hb, Wb] = [out.shape[2]!, out.shape[3]!];
  const tiles = tilesOf(m, x.shape[0]!, Hb, Wb);
  const { T, e } = tiles;
  const s = scratch(gpu);
  try {
    const xd = denseOperand(x, s);
    const V = s.tensor([e, C, T]);
    const U = s.tensor([e, Cout, C]);
    const M = s.tensor([e, Cout, T]);
    // One dispatch: the input's transform, then w's own [Cout, C] pairs (`flip` only changes where
    // each lands in U).
    const [wCout, wC] = [w.shape[0]!, w.shape[1]!];
    gpu.run(winogradForwardInKernel, { m, flip }, {
      params: Object.assign(inputParams(xd, ph, pw, tiles), { Cv: C, wCout, wC, w_off: w.offset, w_st: w.strides }),
      bindings: { x: xd, w, V, U },
      workgroups: wgs(C * T + wCout * wC),
    });
    productGpu(gpu, U, V, M);
    const bindings: Record<string, Tensor> = { M, y: out };
    if (bias) bindings.bias = bias;
    if (res) bindings.res = res;
    gpu.run(winogradOutputKernel, { m, bias: !!bias, residual: !!res }, {
      params: { Cout, T, th: tiles.th, tw: tiles.tw, Hb, Wb, bias_off: bias?.offset ?? 0, bias_st: bias?.strides[0] ?? 0, res_off: res?.offset ?? 0 },
      bindings,
      workgroups: wgs(Cout * T),
    });
  } finally {
    s.done();
  }
}

/** y = conv(x, w) + b (+ res, contiguous like y) into `out` (contiguous [N, Cout, Hb, Wb]). */
export function winogradForward(gpu: WebGPUBackend, m: WinogradTile, x: Tensor, w: Tensor, b: Tensor | null, out: Tensor, g: ConvGeom, res: Tensor | null = null): void {
  forwardInto(gpu, m, x, w, b, out, g.ph, g.pw, false, res);
}

/** dx = conv^T(gy, w) into `out` (contiguous [N, C, H, W]): the forward of gy with the flipped kernel, padding 2 - p. */
export function winogradInputGrad(gpu: WebGPUBackend, m: WinogradTile, gy: Tensor, w: Tensor, out: Tensor, g: ConvGeom): void {
  forwardInto(gpu, m, gy, w, null, out, 2 - g.ph, 2 - g.pw, true);
}

/**
 * dw = sum over images and pixels of gy (x) x-patches into `out` (contiguous [Cout, C, 3, 3]);
 * with `db` ([Cout]) also the bias gradient, the sum of gy per channel, in the same three
 * dispatches (a row of ones in V: see shaders/conv-winograd.ts).
 */
export function winogradWeightGrad(gpu: WebGPUBackend, m: WinogradTile, gy: Tensor, x: Tensor, out: Tensor, g: ConvGeom, db: Tensor | null = null): void {
  const s = scratch(gpu);
  try {
    const j = weightGradJob(m, x, gy, g, db !== null, s);
    const D = s.tensor([j.tiles.e, j.Cv, j.Cout]);
    gpu.run(winogradGradInKernel, { m, bias: j.bias }, { params: j.params, bindings: { x: j.xd, gy: j.gyd, V: j.V, Z: j.Z }, workgroups: wgs(j.invocations) });
    productGpu(gpu, j.V, j.Z, D);
    const bindings: Record<string, Tensor> = db ? { D, dw: out, db } : { D, dw: out };
    gpu.run(winogradWeightGradKernel, { m, bias: j.bias }, { params: { Cout: j.Cout, C: j.C, Cd: j.Cv }, bindings, workgroups: wgs(j.Cout * j.C + (j.bias ? j.Cout : 0)) });
  } finally {
    s.done();
  }
}

/**
 * The weight gradient's first step: dense x and gy, the tiles over gy, V [a^2, Cv, T] (Cv = C + 1
 * with the bias gradient's row of ones) and Z [a^2, T, Cout], and winogradGradInKernel's parameters.
 */
function weightGradJob(m: WinogradTile, x: Tensor, gy: Tensor, g: ConvGeom, bias: boolean, s: Scratch) {
  const C = x.shape[1]!;
  const Cout = gy.shape[1]!;
  const tiles = tilesOf(m, x.shape[0]!, g.Hb, g.Wb);
  const Cv = bias ? C + 1 : C;
  const xd = denseOperand(x, s);
  const gyd = denseOperand(gy, s);
  const V = s.tensor([tiles.e, Cv, tiles.T]);
  const Z = s.tensor([tiles.e, tiles.T, Cout]);
  const params = Object.assign(inputParams(xd, g.ph, g.pw, tiles), { Cv, Cout, Hb: g.Hb, Wb: g.Wb, gy_off: gyd.offset });
  return { C, Cout, Cv, bias, tiles, xd, gyd, V, Z, params, invocations: C * tiles.T + Cout * tiles.T + (bias ? tiles.T : 0) };
}

/**
 * Both gradients of y = conv(x, w) (+ b) from gy at once, in four dispatches instead of six: one
 * for every transform (winogradBackwardInKernel), the two GEMMs, one for both outputs
 * (winogradBackwardOutKernel). The same arithmetic as winogradInputGrad and winogradWeightGrad
 * (the same transforms, products and sums, in the same order): the same values, to the bit.
 * dx [N, C, H, W], dw [Cout, C, 3, 3] and db [Cout] (optional) contiguous.
 */
export function winogradBackward(gpu: WebGPUBackend, m: WinogradTile, gy: Tensor, x: Tensor, w: Tensor, dx: Tensor, dw: Tensor, db: Tensor | null, g: ConvGeom): void {
  const [N, C, H, W] = x.shape as [number, number, number, number];
  const Cout = gy.shape[1]!;
  const tx = tilesOf(m, N, H, W); // the input gradient's tiles over dx
  const s = scratch(gpu);
  try {
    const j = weightGradJob(m, x, gy, g, db !== null, s);
    const Vx = s.tensor([tx.e, Cout, tx.T]);
    const U = s.tensor([tx.e, C, Cout]);
    const dxIn = Object.assign(inputParams(j.gyd, 2 - g.ph, 2 - g.pw, tx), { Cv: Cout, wCout: w.shape[0]!, wC: w.shape[1]!, w_off: w.offset, w_st: w.strides });
    gpu.run(winogradBackwardInKernel, { m, bias: j.bias }, {
      params: prefixed('dw_', j.params, prefixed('dx_', dxIn, {})),
      bindings: { gy: j.gyd, w, x: j.xd, Vx, U, Vw: j.V, Z: j.Z },
      workgroups: wgs(Cout * tx.T + Cout * C + j.invocations),
    });
    // The weight gradient's product first, its operands freed before the input gradient's output
    // is allocated: at most the four transforms and one product live at once.
    const D = s.tensor([tx.e, j.Cv, Cout]);
    productGpu(gpu, j.V, j.Z, D);
    s.free(j.V, j.Z);
    const Mx = s.tensor([tx.e, C, tx.T]);
    productGpu(gpu, U, Vx, Mx);
    s.free(Vx, U);
    const dxOut = { Cout: C, T: tx.T, th: tx.th, tw: tx.tw, Hb: H, Wb: W, bias_off: 0, bias_st: 0, res_off: 0 };
    gpu.run(winogradBackwardOutKernel, { m, bias: j.bias }, {
      params: prefixed('dw_', { Cout, C, Cd: j.Cv }, prefixed('dx_', dxOut, {})),
      bindings: db ? { Mx, dx, D, dw, db } : { Mx, dx, D, dw },
      workgroups: wgs(C * tx.T + Cout * C + (j.bias ? Cout : 0)),
    });
  } finally {
    s.done();
  }
}

type ParamValues = Record<string, number | readonly number[]>;
/** The prefixed parameter names, made once: building `${prefix}${k}` on every call costs more than the dispatch. */
const prefixedNames = new Map<string, Map<string, string>>();
/** One job's parameters in a two-job kernel, every name with the job's prefix, added to `into`. */
function prefixed(prefix: string, params: ParamValues, into: ParamValues): ParamValues {
  let names = prefixedNames.get(prefix);
  if (!names) prefixedNames.set(prefix, (names = new Map()));
  for (const k in params) {
    let name = names.get(k);
    if (name === undefined) names.set(k, (name = prefix + k));
    into[name] = params[k]!;
  }
  return into;
}

