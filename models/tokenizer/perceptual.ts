/**
 * An LPIPS-style perceptual loss for the tokenizer (browser-safe), computed with the frozen
 * dataset feature network FeatNet (models/features/featnet.ts) instead of LPIPS's VGG16.
 *
 * For reconstruction and target, the ReLU outputs of FeatNet's three conv stages (before each
 * pooling: C1 x H x W, C2 x H/2 x W/2, C3 x H/4 x W/4) are unit-normalized over channels,
 * f / sqrt(sum_c f^2 + eps), and per stage the squared difference is summed over channels and
 * averaged over batch and positions (= 2 - 2 cos(f_recon, f_target) per position, in [0, 4]);
 * the loss is the mean over the stages. LPIPS weights the channels of each stage with learned
 * linear 1x1 "lin" layers (trained on human similarity judgements); we have no such weights, so
 * every channel and every stage weighs the same (LPIPS with all-ones lin weights, averaged
 * instead of summed over stages).
 *
 * FeatNet takes images in [-1, 1], the tokenizer's range, so no input mapping is needed (LPIPS
 * would shift/scale to ImageNet statistics). Its parameters are frozen: they do not require
 * grad (no gradient is computed for them, and they belong to no optimizer), while the gradient
 * flows to the reconstruction. The target's features are computed without a graph.
 *
 * Any image size works (multiples of 4 keep the stages aligned); FeatNet's imageSize only sizes
 * its classifier head, which is not used here.
 */
import * as E from '../../engine/index.js';
import type { FeatNet } from '../features/featnet.js';

export interface PerceptualLossOptions {
  /** Added under the square root of the channel normalization (keeps its gradient finite where a position's features are all 0). */
  eps?: number;
}

export class PerceptualLoss {
  readonly eps: number;

  /** Freezes `net` (its parameters stop requiring grad) and puts it in eval mode; the caller still owns and disposes it. */
  constructor(readonly net: FeatNet, opts: PerceptualLossOptions = {}) {
    this.eps = opts.eps ?? 1e-8;
    if (!(this.eps > 0)) throw new RangeError(`PerceptualLoss: eps must be > 0, got ${this.eps}`);
    for (const p of net.parameters()) p.requireGrad(false);
    net.eval();
  }

  /** The three stage activations (after ReLU, before pooling) of images [B, C, H, W]. */
  features(x: E.Tensor): E.Tensor[] {
    const c = this.net.cfg.inChannels;
    if (x.rank !== 4 || x.shape[1] !== c || x.shape[2]! < 4 || x.shape[3]! < 4) {
      throw new Error(`PerceptualLoss: expected images [B, ${c}, H, W] with H, W >= 4 (FeatNet's input channels), got ${E.fmtShape(x.shape)}`);
    }
    const n = this.net;
    const f1 = n.conv1.forward(x).relu();
    const f2 = n.conv2.forward(E.maxPool2d(f1, 2)).relu();
    const f3 = n.conv3.forward(E.maxPool2d(f2, 2)).relu();
    return [f1, f2, f3];
  }

  /** f / sqrt(sum_c f^2 + eps) over the channel axis. */
  private normalize(f: E.Tensor): E.Tensor {
    return f.mul(f.square().sum([1], true).add(this.eps).rsqrt());
  }

  /** Scalar loss between reconstructions and targets (same shape); 0 when they are equal. */
  forward(recon: E.Tensor, target: E.Tensor): E.Tensor {
    if (!E.shapesEqual(recon.shape, target.shape)) {
      throw new Error(`PerceptualLoss: reconstruction ${E.fmtShape(recon.shape)} and target ${E.fmtShape(target.shape)} differ in shape`);
    }
    const ft = E.noGrad(() => this.features(target).map((f) => this.normalize(f)));
    const fr = this.features(recon).map((f) => this.normalize(f));
    let total: E.Tensor | null = null;
    for (let i = 0; i < fr.length; i++) {
      const d = fr[i]!.sub(ft[i]!).square().sum([1]).mean();
      total = total ? total.add(d) : d;
    }
    return total!.mul(1 / fr.length);
  }
}
