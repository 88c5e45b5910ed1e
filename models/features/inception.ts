/**
 * The Inception-v3 network of FID, as pytorch-fid builds it (pytorch_fid/inception.py:
 * `fid_inception_v3()` = torchvision's Inception3 with the FIDInceptionA/C/E_1/E_2 patches), returning
 * the 2048-d pool3 features that FID is computed from.
 *
 * - Parameter names are those of pytorch-fid's state dict (`Conv2d_1a_3x3.conv.weight`,
 *   `Mixed_5b.branch1x1.bn.running_mean`, ...), so a safetensors conversion of
 *   pt_inception-2015-12-05-6726825d.pth loads by name (`loadFidInceptionWeights`; the classifier
 *   `fc.*` and the BatchNorm `num_batches_tracked` counters of such a file are ignored; the
 *   `blocks.<i>.<j>.` names of pytorch-fid's InceptionV3 wrapper module are accepted too).
 * - Input: images [N, 3, H, W] in [0, 1] (or [-1, 1] with `inputRange: '-1,1'`; one channel is
 *   repeated to three), resized bilinearly to 299x299 (F.interpolate, align_corners=False) and mapped
 *   to [-1, 1] (pytorch-fid's `normalize_input`).
 * - BasicConv2d = conv (no bias) + BatchNorm (eps 0.001, eval mode: running statistics) + ReLU. The
 *   BatchNorm is folded into the convolution on each forward (w * s, b = beta - mean * s with
 *   s = gamma / sqrt(var + eps)): one conv with bias instead of conv + two elementwise passes.
 * - The FID blocks average-pool with count_include_pad=False (TensorFlow's rule) and Mixed_7c
 *   (FIDInceptionE_2) max-pools in its pool branch.
 * - `widthDivisor` divides every channel count (same topology; 2048/d features). It exists to test
 *   the architecture against a small PyTorch reference (test/fixtures/make_inception.py); real
 *   weights are full width (divisor 1).
 */
import * as E from '../../engine/index.js';
import { decodeSafetensors, entriesToTensors } from '../../nn/checkpoint/index.js';
import type { InitOptions } from '../../nn/init.js';
import { Layer } from '../../nn/layers/basic.js';
import { Conv2d } from '../../nn/layers/conv.js';
import { Module } from '../../nn/module.js';

type Size2 = number | readonly [number, number];
const pair = (v: Size2): [number, number] => (typeof v === 'number' ? [v, v] : [v[0], v[1]]);

// ---------------------------------------------------------------- ops the engine does not have

/**
 * Bilinear interpolation matrix [out, in] of F.interpolate(mode='bilinear', align_corners=False)
 * along one axis: src = (dst + 0.5) * in/out - 0.5, clamped at 0; taps floor(src) and the next one
 * (clamped to in-1) with weights 1-frac and frac. Rows sum to 1.
 */
export function bilinearMatrix(outSize: number, inSize: number): Float64Array {
  const m = new Float64Array(outSize * inSize);
  const scale = inSize / outSize;
  for (let o = 0; o < outSize; o++) {
    const src = Math.max((o + 0.5) * scale - 0.5, 0);
    const i0 = Math.min(Math.floor(src), inSize - 1);
    const i1 = Math.min(i0 + 1, inSize - 1);
    const l1 = src - i0;
    m[o * inSize + i0]! += 1 - l1;
    m[o * inSize + i1]! += l1;
  }
  return m;
}

/**
 * Bilinear resize of x [N, C, H, W] to [N, C, outH, outW] (F.interpolate(mode='bilinear',
 * align_corners=False, antialias=False)) as two matrix products, R_h @ x @ R_w^T, with the
 * interpolation matrices built on the CPU. Differentiable (through matmul).
 */
export function resizeBilinear(x: E.Tensor, outH: number, outW: number): E.Tensor {
  const [, , H, W] = E.checkImage('resizeBilinear', x);
  if (!Number.isInteger(outH) || !Number.isInteger(outW) || outH < 1 || outW < 1) throw new RangeError(`resizeBilinear: output size must be positive integers, got ${outH}x${outW}`);
  if (H === outH && W === outW) return x.contiguous();
  return E.composite(() => {
    const rh = E.tensor(bilinearMatrix(outH, H), [outH, H], { backend: x.backend });
    const rw = E.transpose(E.tensor(bilinearMatrix(outW, W), [outW, W], { backend: x.backend }));
    const t = E.matmul(rh, x); // [N, C, outH, W]
    return E.matmul(t, rw); // [N, C, outH, outW]
  });
}

/** Number of window taps that fall inside [0, size) for each output position along one axis. */
function validTaps(size: number, k: number, s: number, p: number, out: number): number[] {
  const n: number[] = [];
  for (let o = 0; o < out; o++) {
    const lo = o * s - p;
    n.push(Math.min(lo + k, size) - Math.max(lo, 0));
  }
  return n;
}

/**
 * Average pooling that averages only the taps inside the image (F.avg_pool2d with
 * count_include_pad=False, ceil_mode=False): the engine's avgPool2d (which divides by kh*kw) times
 * kh*kw / count, where count is the number of in-image taps of each window (computed on the CPU).
 */
export function avgPool2dExcludePad(x: E.Tensor, kernel: Size2, opts: E.AvgPool2dOptions = {}): E.Tensor {
  const [, , H, W] = E.checkImage('avgPool2dExcludePad', x);
  const { stride = kernel, padding = 0 } = opts;
  const [kh, kw] = pair(kernel);
  const [sh, sw] = pair(stride);
  const [ph, pw] = pair(padding);
  return E.composite(() => {
    const y = E.avgPool2d(x, kernel, { stride, padding });
    if (ph === 0 && pw === 0) return y;
    const [Ho, Wo] = [y.shape[2]!, y.shape[3]!];
    const rows = validTaps(H, kh, sh, ph, Ho);
    const cols = validTaps(W, kw, sw, pw, Wo);
    const f = new Float64Array(Ho * Wo);
    for (let i = 0; i < Ho; i++) for (let j = 0; j < Wo; j++) f[i * Wo + j] = (kh * kw) / (rows[i]! * cols[j]!);
    return E.mul(y, E.tensor(f, [Ho, Wo], { backend: x.backend }));
  });
}

// ---------------------------------------------------------------- layers

/**
 * BatchNorm2d in eval mode only (running statistics; this network is never trained here).
 * weight/bias are parameters, running_mean/running_var buffers, as in PyTorch's state dict.
 */
export class BatchNorm2dEval extends Module {
  readonly weight: E.Tensor;
  readonly bias: E.Tensor;
  readonly runningMean: E.Tensor;
  readonly runningVar: E.Tensor;
  constructor(readonly numFeatures: number, readonly eps = 1e-5, opts: InitOptions = {}) {
    super();
    const o = opts.backend ? { backend: opts.backend } : {};
    this.weight = this.param('weight', E.full([numFeatures], 1, o));
    this.bias = this.param('bias', E.full([numFeatures], 0, o));
    this.runningMean = this.buffer('running_mean', E.full([numFeatures], 0, o));
    this.runningVar = this.buffer('running_var', E.full([numFeatures], 1, o));
  }
  /** Per-channel scale gamma / sqrt(var + eps) and shift beta - mean * scale. */
  affine(): { scale: E.Tensor; shift: E.Tensor } {
    return E.composite(() => {
      const scale = this.weight.mul(E.rsqrt(this.runningVar.add(this.eps)));
      return { scale, shift: this.bias.sub(this.runningMean.mul(scale)) };
    });
  }
}

export interface BasicConv2dConfig {
  stride?: Size2;
  padding?: Size2;
}

/** torchvision's BasicConv2d: conv (no bias) + BatchNorm(eps=0.001) + ReLU, BN folded into the conv. */
export class BasicConv2d extends Layer {
  readonly conv: Conv2d;
  readonly bn: BatchNorm2dEval;
  constructor(cin: number, cout: number, kernel: Size2, readonly cfg: BasicConv2dConfig = {}, opts: InitOptions = {}) {
    super();
    this.conv = this.module('conv', new Conv2d(cin, cout, kernel, { ...opts, ...cfg, bias: false }));
    this.bn = this.module('bn', new BatchNorm2dEval(cout, 0.001, opts));
  }
  forward(x: E.Tensor): E.Tensor {
    const { scale, shift } = this.bn.affine();
    const cout = this.conv.outChannels;
    const w = this.conv.weight.mul(scale.reshape([cout, 1, 1, 1]));
    const [, , kh, kw] = this.conv.weight.shape as [number, number, number, number];
    if (kh === 1 && kw === 1 && this.cfg.stride === undefined && this.cfg.padding === undefined) {
      // 1x1 convolution: a matmul over the channels of x viewed as [N, Cin, H*W] (no unfold copy).
      const [N, Cin, H, W] = E.checkImage('BasicConv2d', x);
      if (Cin !== this.conv.inChannels) throw new Error(`BasicConv2d: expected ${this.conv.inChannels} input channels, got shape ${E.fmtShape(x.shape)}`);
      const m = E.matmul(w.reshape([cout, Cin]), x.reshape([N, Cin, H * W]));
      return m.add(shift.reshape([cout, 1])).relu().reshape([N, cout, H, W]);
    }
    const o: E.Conv2dOptions = {};
    if (this.cfg.stride !== undefined) o.stride = this.cfg.stride;
    if (this.cfg.padding !== undefined) o.padding = this.cfg.padding;
    return E.conv2d(x, w, shift, o).relu();
  }
}

/** Branch outputs concatenated along channels. */
const cat = (parts: E.Tensor[]): E.Tensor => E.concat(parts, 1);

/** Pooling steps of a branch or the stem. */
const avgPoolExcl = (t: E.Tensor): E.Tensor => avgPool2dExcludePad(t, 3, { stride: 1, padding: 1 });
const maxPool = (t: E.Tensor): E.Tensor => E.maxPool2d(t, 3, { stride: 2 });

/** FIDInceptionA (Mixed_5b/c/d): average pool branch with count_include_pad=False. */
export class FIDInceptionA extends Layer {
  readonly branch1x1; readonly branch5x5_1; readonly branch5x5_2; readonly branch3x3dbl_1; readonly branch3x3dbl_2; readonly branch3x3dbl_3; readonly branch_pool;
  constructor(cin: number, poolFeatures: number, d: number, o: InitOptions) {
    super();
    const B = (n: string, a: number, b: number, k: Size2, c: BasicConv2dConfig = {}) => this.module(n, new BasicConv2d(a, b, k, c, o));
    this.branch1x1 = B('branch1x1', cin, 64 / d, 1);
    this.branch5x5_1 = B('branch5x5_1', cin, 48 / d, 1);
    this.branch5x5_2 = B('branch5x5_2', 48 / d, 64 / d, 5, { padding: 2 });
    this.branch3x3dbl_1 = B('branch3x3dbl_1', cin, 64 / d, 1);
    this.branch3x3dbl_2 = B('branch3x3dbl_2', 64 / d, 96 / d, 3, { padding: 1 });
    this.branch3x3dbl_3 = B('branch3x3dbl_3', 96 / d, 96 / d, 3, { padding: 1 });
    this.branch_pool = B('branch_pool', cin, poolFeatures, 1);
  }
  forward(x: E.Tensor): E.Tensor {
    const b1 = this.branch1x1.forward(x);
    const b5 = E.chain(x, [this.branch5x5_1, this.branch5x5_2]);
    const b3 = E.chain(x, [this.branch3x3dbl_1, this.branch3x3dbl_2, this.branch3x3dbl_3]);
    const bp = E.chain(x, [avgPoolExcl, this.branch_pool]);
    return cat([b1, b5, b3, bp]);
  }
}

/** InceptionB (Mixed_6a): stride-2 reduction with a max pool branch. */
export class InceptionB extends Layer {
  readonly branch3x3; readonly branch3x3dbl_1; readonly branch3x3dbl_2; readonly branch3x3dbl_3;
  constructor(cin: number, d: number, o: InitOptions) {
    super();
    const B = (n: string, a: number, b: number, k: Size2, c: BasicConv2dConfig = {}) => this.module(n, new BasicConv2d(a, b, k, c, o));
    this.branch3x3 = B('branch3x3', cin, 384 / d, 3, { stride: 2 });
    this.branch3x3dbl_1 = B('branch3x3dbl_1', cin, 64 / d, 1);
    this.branch3x3dbl_2 = B('branch3x3dbl_2', 64 / d, 96 / d, 3, { padding: 1 });
    this.branch3x3dbl_3 = B('branch3x3dbl_3', 96 / d, 96 / d, 3, { stride: 2 });
  }
  forward(x: E.Tensor): E.Tensor {
    const b3 = this.branch3x3.forward(x);
    const bd = E.chain(x, [this.branch3x3dbl_1, this.branch3x3dbl_2, this.branch3x3dbl_3]);
    const bp = maxPool(x);
    return cat([b3, bd, bp]);
  }
}

/** FIDInceptionC (Mixed_6b..e): factorized 7x7 convolutions, average pool with count_include_pad=False. */
export class FIDInceptionC extends Layer {
  readonly branch1x1; readonly branch7x7_1; readonly branch7x7_2; readonly branch7x7_3;
  readonly branch7x7dbl_1; readonly branch7x7dbl_2; readonly branch7x7dbl_3; readonly branch7x7dbl_4; readonly branch7x7dbl_5; readonly branch_pool;
  constructor(cin: number, c7: number, d: number, o: InitOptions) {
    super();
    const B = (n: string, a: number, b: number, k: Size2, c: BasicConv2dConfig = {}) => this.module(n, new BasicConv2d(a, b, k, c, o));
    const r17 = { padding: [0, 3] as const };
    const r71 = { padding: [3, 0] as const };
    this.branch1x1 = B('branch1x1', cin, 192 / d, 1);
    this.branch7x7_1 = B('branch7x7_1', cin, c7, 1);
    this.branch7x7_2 = B('branch7x7_2', c7, c7, [1, 7], r17);
    this.branch7x7_3 = B('branch7x7_3', c7, 192 / d, [7, 1], r71);
    this.branch7x7dbl_1 = B('branch7x7dbl_1', cin, c7, 1);
    this.branch7x7dbl_2 = B('branch7x7dbl_2', c7, c7, [7, 1], r71);
    this.branch7x7dbl_3 = B('branch7x7dbl_3', c7, c7, [1, 7], r17);
    this.branch7x7dbl_4 = B('branch7x7dbl_4', c7, c7, [7, 1], r71);
    this.branch7x7dbl_5 = B('branch7x7dbl_5', c7, 192 / d, [1, 7], r17);
    this.branch_pool = B('branch_pool', cin, 192 / d, 1);
  }
  forward(x: E.Tensor): E.Tensor {
    const b1 = this.branch1x1.forward(x);
    const b7 = E.chain(x, [this.branch7x7_1, this.branch7x7_2, this.branch7x7_3]);
    const bd = E.chain(x, [this.branch7x7dbl_1, this.branch7x7dbl_2, this.branch7x7dbl_3, this.branch7x7dbl_4, this.branch7x7dbl_5]);
    const bp = E.chain(x, [avgPoolExcl, this.branch_pool]);
    return cat([b1, b7, bd, bp]);
  }
}

/** InceptionD (Mixed_7a): stride-2 reduction with a max pool branch. */
export class InceptionD extends Layer {
  readonly branch3x3_1; readonly branch3x3_2; readonly branch7x7x3_1; readonly branch7x7x3_2; readonly branch7x7x3_3; readonly branch7x7x3_4;
  constructor(cin: number, d: number, o: InitOptions) {
    super();
    const B = (n: string, a: number, b: number, k: Size2, c: BasicConv2dConfig = {}) => this.module(n, new BasicConv2d(a, b, k, c, o));
    this.branch3x3_1 = B('branch3x3_1', cin, 192 / d, 1);
    this.branch3x3_2 = B('branch3x3_2', 192 / d, 320 / d, 3, { stride: 2 });
    this.branch7x7x3_1 = B('branch7x7x3_1', cin, 192 / d, 1);
    this.branch7x7x3_2 = B('branch7x7x3_2', 192 / d, 192 / d, [1, 7], { padding: [0, 3] });
    this.branch7x7x3_3 = B('branch7x7x3_3', 192 / d, 192 / d, [7, 1], { padding: [3, 0] });
    this.branch7x7x3_4 = B('branch7x7x3_4', 192 / d, 192 / d, 3, { stride: 2 });
  }
  forward(x: E.Tensor): E.Tensor {
    const b3 = E.chain(x, [this.branch3x3_1, this.branch3x3_2]);
    const b7 = E.chain(x, [this.branch7x7x3_1, this.branch7x7x3_2, this.branch7x7x3_3, this.branch7x7x3_4]);
    const bp = maxPool(x);
    return cat([b3, b7, bp]);
  }
}

/**
 * FIDInceptionE_1 (Mixed_7b: average pool, count_include_pad=False) and FIDInceptionE_2 (Mixed_7c:
 * max pool, pytorch-fid's patch reproducing the TensorFlow graph).
 */
export class FIDInceptionE extends Layer {
  readonly branch1x1; readonly branch3x3_1; readonly branch3x3_2a; readonly branch3x3_2b;
  readonly branch3x3dbl_1; readonly branch3x3dbl_2; readonly branch3x3dbl_3a; readonly branch3x3dbl_3b; readonly branch_pool;
  constructor(cin: number, d: number, readonly pool: 'avg' | 'max', o: InitOptions) {
    super();
    const B = (n: string, a: number, b: number, k: Size2, c: BasicConv2dConfig = {}) => this.module(n, new BasicConv2d(a, b, k, c, o));
    this.branch1x1 = B('branch1x1', cin, 320 / d, 1);
    this.branch3x3_1 = B('branch3x3_1', cin, 384 / d, 1);
    this.branch3x3_2a = B('branch3x3_2a', 384 / d, 384 / d, [1, 3], { padding: [0, 1] });
    this.branch3x3_2b = B('branch3x3_2b', 384 / d, 384 / d, [3, 1], { padding: [1, 0] });
    this.branch3x3dbl_1 = B('branch3x3dbl_1', cin, 448 / d, 1);
    this.branch3x3dbl_2 = B('branch3x3dbl_2', 448 / d, 384 / d, 3, { padding: 1 });
    this.branch3x3dbl_3a = B('branch3x3dbl_3a', 384 / d, 384 / d, [1, 3], { padding: [0, 1] });
    this.branch3x3dbl_3b = B('branch3x3dbl_3b', 384 / d, 384 / d, [3, 1], { padding: [1, 0] });
    this.branch_pool = B('branch_pool', cin, 192 / d, 1);
  }
  forward(x: E.Tensor): E.Tensor {
    const b1 = this.branch1x1.forward(x);
    const split = (a: BasicConv2d, b: BasicConv2d) => (t: E.Tensor) => cat([a.forward(t), b.forward(t)]);
    const b3 = E.chain(x, [this.branch3x3_1, split(this.branch3x3_2a, this.branch3x3_2b)]);
    const bd = E.chain(x, [this.branch3x3dbl_1, this.branch3x3dbl_2, split(this.branch3x3dbl_3a, this.branch3x3dbl_3b)]);
    const pool = this.pool === 'max' ? (t: E.Tensor) => E.maxPool2d(t, 3, { stride: 1, padding: 1 }) : avgPoolExcl;
    const bp = E.chain(x, [pool, this.branch_pool]);
    return cat([b1, b3, bd, bp]);
  }
}

// ---------------------------------------------------------------- the network

export interface InceptionV3Options extends InitOptions {
  /** Divides every channel count (1 = the real network; 16 = the test fixture). Default 1. */
  widthDivisor?: number;
  /** Resize the input bilinearly to 299x299 (pytorch-fid's resize_input). Default true. */
  resizeInput?: boolean;
  /**
   * Range of the input pixels: '0,1' (pytorch-fid's convention; mapped to [-1, 1] by 2x - 1) or
   * '-1,1' (already what the network expects; used as is). Default '0,1'.
   */
  inputRange?: '0,1' | '-1,1';
  /** Images per forward pass (larger batches are split). Default: what the device's buffer limit allows. */
  maxBatch?: number;
}

/** Every channel count of the network; all are multiples of 16. */
const CHANNELS = [32, 48, 64, 80, 96, 128, 160, 192, 256, 288, 320, 384, 448, 768, 1280, 2048];

/**
 * pytorch-fid's InceptionV3 (use_fid_inception=True, output block 3): `forward(x)` maps images
 * [N, C, H, W] (C = 3, or 1 repeated to 3) to the pool3 features [N, 2048 / widthDivisor].
 * Differentiable when grad recording is on; `features(x)` runs without recording and frees every
 * intermediate. Freshly built weights are random (PyTorch's default conv init, identity
 * BatchNorm): load real ones with `loadFidInceptionWeights` or `InceptionV3.fromSafetensors`.
 */
export class InceptionV3 extends Layer {
  readonly widthDivisor: number;
  readonly featureDim: number;
  readonly resizeInput: boolean;
  readonly inputRange: '0,1' | '-1,1';
  readonly maxBatch: number | undefined;
  readonly Conv2d_1a_3x3; readonly Conv2d_2a_3x3; readonly Conv2d_2b_3x3; readonly Conv2d_3b_1x1; readonly Conv2d_4a_3x3;
  readonly Mixed_5b; readonly Mixed_5c; readonly Mixed_5d; readonly Mixed_6a; readonly Mixed_6b; readonly Mixed_6c; readonly Mixed_6d; readonly Mixed_6e;
  readonly Mixed_7a; readonly Mixed_7b; readonly Mixed_7c;

  constructor(opts: InceptionV3Options = {}) {
    super();
    const d = opts.widthDivisor ?? 1;
    if (!Number.isInteger(d) || d < 1 || CHANNELS.some((c) => c % d !== 0)) {
      throw new RangeError(`InceptionV3: widthDivisor must be a positive integer dividing every channel count (1, 2, 4, 8 or 16), got ${d}`);
    }
    this.widthDivisor = d;
    this.featureDim = 2048 / d;
    this.resizeInput = opts.resizeInput ?? true;
    this.inputRange = opts.inputRange ?? '0,1';
    if (this.inputRange !== '0,1' && this.inputRange !== '-1,1') throw new RangeError(`InceptionV3: inputRange must be '0,1' or '-1,1', got ${String(this.inputRange)}`);
    this.maxBatch = opts.maxBatch;
    if (this.maxBatch !== undefined && !(Number.isInteger(this.maxBatch) && this.maxBatch >= 1)) throw new RangeError(`InceptionV3: maxBatch must be a positive integer, got ${this.maxBatch}`);
    const o: InitOptions = {};
    if (opts.backend) o.backend = opts.backend;
    if (opts.generator) o.generator = opts.generator;
    const B = (n: string, a: number, b: number, k: Size2, c: BasicConv2dConfig = {}) => this.module(n, new BasicConv2d(a, b, k, c, o));
    this.Conv2d_1a_3x3 = B('Conv2d_1a_3x3', 3, 32 / d, 3, { stride: 2 });
    this.Conv2d_2a_3x3 = B('Conv2d_2a_3x3', 32 / d, 32 / d, 3);
    this.Conv2d_2b_3x3 = B('Conv2d_2b_3x3', 32 / d, 64 / d, 3, { padding: 1 });
    this.Conv2d_3b_1x1 = B('Conv2d_3b_1x1', 64 / d, 80 / d, 1);
    this.Conv2d_4a_3x3 = B('Conv2d_4a_3x3', 80 / d, 192 / d, 3);
    this.Mixed_5b = this.module('Mixed_5b', new FIDInceptionA(192 / d, 32 / d, d, o));
    this.Mixed_5c = this.module('Mixed_5c', new FIDInceptionA(256 / d, 64 / d, d, o));
    this.Mixed_5d = this.module('Mixed_5d', new FIDInceptionA(288 / d, 64 / d, d, o));
    this.Mixed_6a = this.module('Mixed_6a', new InceptionB(288 / d, d, o));
    this.Mixed_6b = this.module('Mixed_6b', new FIDInceptionC(768 / d, 128 / d, d, o));
    this.Mixed_6c = this.module('Mixed_6c', new FIDInceptionC(768 / d, 160 / d, d, o));
    this.Mixed_6d = this.module('Mixed_6d', new FIDInceptionC(768 / d, 160 / d, d, o));
    this.Mixed_6e = this.module('Mixed_6e', new FIDInceptionC(768 / d, 192 / d, d, o));
    this.Mixed_7a = this.module('Mixed_7a', new InceptionD(768 / d, d, o));
    this.Mixed_7b = this.module('Mixed_7b', new FIDInceptionE(1280 / d, d, 'avg', o));
    this.Mixed_7c = this.module('Mixed_7c', new FIDInceptionE(2048 / d, d, 'max', o));
    this.eval();
  }

  /** Resize to 299x299 and map to [-1, 1], as pytorch-fid's InceptionV3.forward does before block 0. */
  preprocess(x: E.Tensor): E.Tensor {
    const [N, C, H, W] = E.checkImage('InceptionV3', x);
    if (C !== 3 && C !== 1) throw new Error(`InceptionV3: expected 3 (or 1) input channels, got shape ${E.fmtShape(x.shape)}`);
    return E.composite(() => {
      let h = C === 1 ? E.expand(x, [N, 3, H, W]) : x;
      if (this.resizeInput) h = resizeBilinear(h, 299, 299);
      // 2x - 1 after the resize, like pytorch-fid (the resize is affine-equivariant, so the order
      // only matters to rounding).
      return this.inputRange === '0,1' ? h.mul(2).sub(1) : h.contiguous();
    });
  }

  /**
   * Images per pass: the batch is split so that the largest temporary (the unfolded input of the
   * stem's 3x3 convolutions, 288/d x 147 x 147 floats per 299x299 image) fits in one storage
   * buffer binding of the device (128 MiB by default; batch 8 would need 200 MB at full width).
   */
  batchChunk(x: E.Tensor): number {
    if (this.maxBatch !== undefined) return this.maxBatch;
    const [H, W] = this.resizeInput ? [299, 299] : [x.shape[2]!, x.shape[3]!];
    const h1 = Math.max(Math.floor((H - 3) / 2) + 1, 1);
    const w1 = Math.max(Math.floor((W - 3) / 2) + 1, 1);
    const perImage = 4 * Math.max(27 * h1 * w1, ((32 * 9) / this.widthDivisor) * Math.max(h1 - 2, 1) * Math.max(w1 - 2, 1));
    const b = x.backend;
    const limit = E.isWebGPU(b) ? b.device.limits.maxStorageBufferBindingSize : 2 ** 27;
    return Math.max(1, Math.floor(limit / perImage));
  }

  forward(x: E.Tensor): E.Tensor {
    const N = E.checkImage('InceptionV3', x)[0];
    const chunk = this.batchChunk(x);
    if (N <= chunk) return this.forwardChunk(x);
    const parts: E.Tensor[] = [];
    for (let i = 0; i < N; i += chunk) parts.push(E.composite(() => this.forwardChunk(E.slice(x, [[i, Math.min(i + chunk, N)]]))));
    return E.concat(parts, 0);
  }

  /** The network as one chain: each activation is freed once the next exists (without recording). */
  private forwardChunk(x: E.Tensor): E.Tensor {
    return E.chain(x, [
      (t) => this.preprocess(t),
      this.Conv2d_1a_3x3, this.Conv2d_2a_3x3, this.Conv2d_2b_3x3, maxPool,
      this.Conv2d_3b_1x1, this.Conv2d_4a_3x3, maxPool,
      this.Mixed_5b, this.Mixed_5c, this.Mixed_5d, this.Mixed_6a, this.Mixed_6b, this.Mixed_6c, this.Mixed_6d, this.Mixed_6e,
      this.Mixed_7a, this.Mixed_7b, this.Mixed_7c,
      (t) => E.globalAvgPool2d(t),
      (t) => t.reshape([t.shape[0]!, this.featureDim]),
    ]);
  }

  /** The pool3 features [N, 2048 / widthDivisor] without recording gradients. */
  features(x: E.Tensor): E.Tensor {
    return E.noGrad(() => this.forward(x));
  }

  /**
   * Builds the network from safetensors bytes holding pytorch-fid's state dict (e.g. a conversion
   * of pt_inception-2015-12-05-6726825d.pth). The width is read from `Conv2d_1a_3x3.conv.weight`.
   */
  static fromSafetensors(bytes: Uint8Array | ArrayBuffer, opts: Omit<InceptionV3Options, 'widthDivisor'> = {}): InceptionV3 {
    const decoded = decodeSafetensors(bytes).tensors;
    const first = decoded['Conv2d_1a_3x3.conv.weight'] ?? decoded['blocks.0.0.conv.weight'];
    if (!first) throw new Error("InceptionV3.fromSafetensors: no 'Conv2d_1a_3x3.conv.weight' in the file: not a pytorch-fid Inception state dict");
    const out0 = first.shape[0]!;
    if (!(out0 > 0 && 32 % out0 === 0)) throw new Error(`InceptionV3.fromSafetensors: Conv2d_1a_3x3.conv.weight has ${out0} output channels (expected 32, or 32 / a width divisor)`);
    const used = Object.fromEntries(Object.entries(decoded).filter(([k]) => !ignoredKey(fidInceptionKey(k))));
    const model = new InceptionV3({ ...opts, widthDivisor: 32 / out0 });
    using tensors = E.disposable(entriesToTensors(used, opts.backend ?? E.getBackend()));
    try {
      loadFidInceptionWeights(model, tensors);
    } catch (e) {
      model.dispose(); // not returned: its parameters go with it
      throw e;
    }
    return model;
  }
}

/** Module names of pytorch-fid's InceptionV3 wrapper (`blocks.<i>.<j>`) in Inception3's naming. */
const WRAPPER_BLOCKS: string[][] = [
  ['Conv2d_1a_3x3', 'Conv2d_2a_3x3', 'Conv2d_2b_3x3'],
  ['Conv2d_3b_1x1', 'Conv2d_4a_3x3'],
  ['Mixed_5b', 'Mixed_5c', 'Mixed_5d', 'Mixed_6a', 'Mixed_6b', 'Mixed_6c', 'Mixed_6d', 'Mixed_6e'],
  ['Mixed_7a', 'Mixed_7b', 'Mixed_7c'],
];

/**
 * The Inception3 name of a state-dict key: keys of the `pytorch_fid.inception.InceptionV3` wrapper's
 * own state dict (`blocks.0.0.conv.weight`, ...) are mapped to `Conv2d_1a_3x3.conv.weight`, ...;
 * other keys are returned unchanged.
 */
export function fidInceptionKey(k: string): string {
  const m = /^blocks\.(\d+)\.(\d+)\.(.*)$/.exec(k);
  const name = m ? WRAPPER_BLOCKS[Number(m[1])]?.[Number(m[2])] : undefined;
  return m && name ? `${name}.${m[3]}` : k;
}

/** Keys of a converted pytorch-fid checkpoint that the feature network does not use. */
function ignoredKey(k: string): boolean {
  return k.startsWith('fc.') || k.startsWith('AuxLogits.') || k.endsWith('.num_batches_tracked');
}

/**
 * Loads pytorch-fid's state dict into `model` by name, strictly (every weight of the network must
 * be there with its shape), ignoring the classifier (`fc.*`, `AuxLogits.*`) and the BatchNorm
 * `num_batches_tracked` counters. Keys may use Inception3's names (the .pth file) or those of
 * pytorch-fid's InceptionV3 wrapper (`blocks.0.0.conv.weight`). The caller keeps ownership of `state`.
 */
export function loadFidInceptionWeights(model: InceptionV3, state: Record<string, E.Tensor>): void {
  const used: Record<string, E.Tensor> = {};
  for (const [key, t] of Object.entries(state)) {
    const k = fidInceptionKey(key);
    if (ignoredKey(k)) continue;
    if (k in used) throw new Error(`loadFidInceptionWeights: '${k}' is given twice (as '${key}' and under another name)`);
    used[k] = t;
  }
  model.loadStateDict(used, true);
}
