/**
 * The tokenizer's optional adversarial loss (browser-safe): a small PatchGAN discriminator
 * (taming-transformers' NLayerDiscriminator), the hinge losses, the adaptive generator weight
 * and one discriminator update.
 *
 *   conv 4x4 s2 p1 (in -> ch) + LeakyReLU(0.2)
 *   for n in 1..nLayers-1: conv 4x4 s2 p1 (no bias, ch*min(2^(n-1),8) -> ch*min(2^n,8)) + GroupNorm + LeakyReLU(0.2)
 *   conv 4x4 s1 p1 (no bias, -> ch*min(2^nLayers,8)) + GroupNorm + LeakyReLU(0.2)
 *   conv 4x4 s1 p1 -> 1 logit per patch
 * An H x W image gives (H / 2^nLayers - 2) x (W / 2^nLayers - 2) patch logits. taming uses
 * nLayers 3 for 256x256 images; the default here is 2 (32x32 -> 6x6 logits; 3 would leave 2x2).
 *
 * Normalization: taming uses BatchNorm. We use GroupNorm (up to 32 groups) instead: it has no
 * running statistics (nothing mode-dependent to save or to diverge between train and eval) and
 * normalizes each image on its own, so the logits of an image do not depend on what else is in
 * the batch -- real and fake can be scored in one concatenated forward and get exactly the logits
 * separate forwards would, and the generator's D(recon) sees the same function the
 * discriminator was trained as.
 *
 * Init as taming's weights_init: conv weights N(0, 0.02), norm weights N(1, 0.02), norm biases 0
 * (conv biases keep PyTorch's default).
 */
import * as E from '../../engine/index.js';
import { Conv2d, GroupNorm, Module, ModuleList, normal, type InitOptions, type Optimizer } from '../../nn/index.js';

export interface PatchDiscriminatorConfig {
  /** Image channels. */
  inChannels: number;
  /** Width of the first conv (taming's ndf, 64). */
  ch: number;
  /** Strided conv layers (taming's n_layers): the image side shrinks by 2^nLayers. */
  nLayers: number;
  /** Most GroupNorm groups (reduced to a divisor of the width). */
  normGroups: number;
}

export const DEFAULT_DISCRIMINATOR_CONFIG: Readonly<PatchDiscriminatorConfig> = Object.freeze({ inChannels: 1, ch: 64, nLayers: 2, normGroups: 32 });

function groupsFor(c: number, g: number): number {
  let k = Math.min(g, c);
  while (c % k) k--;
  return k;
}

export class DiscBlock extends Module {
  readonly conv: Conv2d;
  readonly norm: GroupNorm | null;
  constructor(cin: number, cout: number, stride: number, norm: number | null, bias: boolean, init: InitOptions) {
    super();
    this.conv = this.module('conv', new Conv2d(cin, cout, 4, { ...init, stride, padding: 1, bias }));
    this.norm = norm ? this.module('norm', new GroupNorm(norm, cout, init)) : null;
  }
  forward(x: E.Tensor, act: boolean): E.Tensor {
    let h = this.conv.forward(x);
    if (this.norm) h = this.norm.forward(h);
    return act ? h.leakyRelu(0.2) : h;
  }
}

export class PatchDiscriminator extends Module {
  readonly cfg: PatchDiscriminatorConfig;
  /** blocks.0 .. blocks.nLayers, then blocks.<nLayers+1> (the 1-channel output conv). */
  readonly blocks: ModuleList<DiscBlock>;

  constructor(config: Partial<PatchDiscriminatorConfig> = {}, init: InitOptions = {}) {
    super();
    const cfg = (this.cfg = { ...DEFAULT_DISCRIMINATOR_CONFIG, ...config });
    for (const k of ['inChannels', 'ch', 'nLayers', 'normGroups'] as const) {
      if (!(Number.isInteger(cfg[k]) && cfg[k] > 0)) throw new Error(`discriminator config: ${k} must be a positive integer, got ${cfg[k]}`);
    }
    const { ch, nLayers } = cfg;
    const blocks: DiscBlock[] = [new DiscBlock(cfg.inChannels, ch, 2, null, true, init)];
    let c = ch;
    for (let n = 1; n <= nLayers; n++) {
      const co = ch * Math.min(2 ** n, 8);
      blocks.push(new DiscBlock(c, co, n < nLayers ? 2 : 1, groupsFor(co, cfg.normGroups), false, init));
      c = co;
    }
    blocks.push(new DiscBlock(c, 1, 1, null, true, init));
    this.blocks = this.module('blocks', new ModuleList(blocks));
    // taming's weights_init.
    E.noGrad(() => E.tidy(() => {
      for (const b of blocks) {
        b.conv.weight.assign(normal(b.conv.weight.shape, 0, 0.02, init));
        if (b.norm?.weight) b.norm.weight.assign(normal(b.norm.weight.shape, 1, 0.02, init));
      }
    }));
  }

  /** Patch logits [B, 1, H / 2^nLayers - 2, W / 2^nLayers - 2] of images [B, C, H, W]. */
  forward(x: E.Tensor): E.Tensor {
    const { inChannels: c, nLayers } = this.cfg;
    const min = 3 * 2 ** nLayers;
    if (x.rank !== 4 || x.shape[1] !== c || x.shape[2]! < min || x.shape[3]! < min) {
      throw new Error(`PatchDiscriminator: expected images [B, ${c}, H, W] with H, W >= ${min} (nLayers ${nLayers}), got ${E.fmtShape(x.shape)}`);
    }
    let h = x;
    const last = this.blocks.length - 1;
    for (let i = 0; i <= last; i++) h = this.blocks.at(i).forward(h, i < last);
    return h;
  }
}

/** Hinge discriminator loss, as taming's hinge_d_loss: 0.5 * (mean(relu(1 - real)) + mean(relu(1 + fake))). */
export function hingeDLoss(logitsReal: E.Tensor, logitsFake: E.Tensor): E.Tensor {
  // The 0.5 only rescales the discriminator's gradient (Adam is invariant to that scale).
  return logitsReal.neg().add(1).relu().mean().add(logitsFake.add(1).relu().mean()).mul(0.5);
}

/** Hinge generator loss: -mean(D(recon)). */
export function hingeGLoss(logitsFake: E.Tensor): E.Tensor {
  return logitsFake.mean().neg();
}

/**
 * taming's VQLPIPSWithDiscriminator.calculate_adaptive_weight: with g_nll and g_gan the gradients
 * of the reconstruction (+ perceptual) loss and of the generator GAN loss with respect to the
 * decoder's last-layer weight,
 *   w = clamp(||g_nll|| / (||g_gan|| + 1e-4), 0, 1e4) * discWeight,
 * detached (a scalar tensor that requires no grad). It balances the two terms' pull on the
 * decoder output. Both losses' graphs are left intact for the backward that follows; each gradient
 * is a full backward pass through the graph (the engine does not prune to the requested inputs).
 * Computed on the device, without a readback.
 */
export function adaptiveGanWeight(nllLoss: E.Tensor, gLoss: E.Tensor, lastLayer: E.Tensor, discWeight: number): E.Tensor {
  return E.tidy(() => {
    const [gn] = E.gradients(nllLoss, [lastLayer]);
    const [gg] = E.gradients(gLoss, [lastLayer]);
    const w = E.noGrad(() => gn!.square().sum().sqrt().div(gg!.square().sum().sqrt().add(1e-4)).maximum(0).minimum(1e4).mul(discWeight));
    return w.detach();
  });
}

export interface DiscriminatorStepResult {
  d_loss: E.Tensor;
  /** Mean logit of the real and of the fake images. */
  logits_real: E.Tensor;
  logits_fake: E.Tensor;
}

/**
 * One discriminator update on real images and (detached) reconstructions: both are scored in one
 * forward (GroupNorm makes that the same as two), hinge loss, backward, optimizer step. Returns
 * detached scalars; the step is its own scope. `factor` scales the loss (taming's disc_factor).
 */
export function discriminatorStep(disc: PatchDiscriminator, optimizer: Optimizer<{ lr: number }>, real: E.Tensor, fake: E.Tensor, factor = 1): DiscriminatorStepResult {
  return E.tidy(() => {
    if (!E.shapesEqual(real.shape, fake.shape)) throw new Error(`discriminatorStep: real ${E.fmtShape(real.shape)} and fake ${E.fmtShape(fake.shape)} differ in shape`);
    const B = real.shape[0]!;
    const logits = disc.forward(E.concat([real.detach(), fake.detach()], 0));
    const lr = logits.slice([[0, B]]);
    const lf = logits.slice([[B, 2 * B]]);
    const d = hingeDLoss(lr, lf);
    const loss = factor === 1 ? d : d.mul(factor);
    optimizer.zeroGrad();
    loss.backward();
    optimizer.step();
    return { d_loss: loss.detach(), logits_real: lr.mean().detach(), logits_fake: lf.mean().detach() };
  });
}
