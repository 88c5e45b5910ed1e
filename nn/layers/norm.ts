/**
 * GroupNorm, LayerNorm and RMSNorm modules (weights 1, biases 0, like PyTorch). The sizes are
 * positional as in PyTorch; eps and affine are options (`new GroupNorm(32, 64, { eps: 1e-6 })`).
 * GroupNorm and LayerNorm also take `act: 'silu'`: the layer returns silu(norm(x)), fused into the
 * norm's kernels (forward and backward), with the same parameters as without it.
 */
import * as E from '../../engine/index.js';
import { constant, type InitOptions } from '../init.js';
import { Layer } from './basic.js';

export interface NormOptions extends InitOptions {
  /** Added to the variance (defaults: 1e-5; RMSNorm 1e-6). */
  eps?: number;
  /** Learnable weight (and bias) per channel (default true). */
  affine?: boolean;
}

export interface ActNormOptions extends NormOptions {
  /** An activation applied to the normalized output in the same kernel (none when omitted). */
  act?: E.NormActivation;
}

function normOptions<T extends NormOptions>(layer: string, opts: T): T {
  if (opts === null || typeof opts !== 'object' || Array.isArray(opts)) throw new TypeError(`${layer}: options must be an object ({ eps, affine, ... }), got ${typeof opts === 'number' ? `the number ${opts}` : String(opts)}`);
  return opts;
}

export class GroupNorm extends Layer {
  readonly weight: E.Tensor | null;
  readonly bias: E.Tensor | null;
  readonly eps: number;
  readonly act: E.NormActivation | undefined;
  constructor(readonly numGroups: number, readonly numChannels: number, opts: ActNormOptions = {}) {
    super();
    const { eps = 1e-5, affine = true, act } = normOptions('GroupNorm', opts);
    this.eps = eps;
    this.act = act;
    if (numChannels % numGroups) throw new Error(`GroupNorm: ${numChannels} channels are not divisible by ${numGroups} groups`);
    this.weight = affine ? this.param('weight', constant([numChannels], 1, opts)) : null;
    this.bias = affine ? this.param('bias', constant([numChannels], 0, opts)) : null;
  }
  forward(x: E.Tensor): E.Tensor {
    if (x.shape[1] !== this.numChannels) throw new Error(`GroupNorm(${this.numGroups}, ${this.numChannels}): input has ${x.shape[1]} channels (shape ${E.fmtShape(x.shape)})`);
    return E.groupNorm(x, this.numGroups, { weight: this.weight, bias: this.bias, eps: this.eps, act: this.act });
  }
}

export class LayerNorm extends Layer {
  readonly weight: E.Tensor | null;
  readonly bias: E.Tensor | null;
  readonly normalizedShape: number[];
  readonly eps: number;
  readonly act: E.NormActivation | undefined;
  constructor(normalizedShape: number | readonly number[], opts: ActNormOptions & { bias?: boolean } = {}) {
    super();
    const { eps = 1e-5, affine = true, act } = normOptions('LayerNorm', opts);
    this.eps = eps;
    this.act = act;
    this.normalizedShape = typeof normalizedShape === 'number' ? [normalizedShape] : [...normalizedShape];
    this.weight = affine ? this.param('weight', constant(this.normalizedShape, 1, opts)) : null;
    this.bias = affine && opts.bias !== false ? this.param('bias', constant(this.normalizedShape, 0, opts)) : null;
  }
  forward(x: E.Tensor): E.Tensor {
    return E.layerNorm(x, this.normalizedShape, { weight: this.weight, bias: this.bias, eps: this.eps, act: this.act });
  }
}

export class RMSNorm extends Layer {
  readonly weight: E.Tensor | null;
  readonly eps: number;
  constructor(readonly dim: number, opts: NormOptions = {}) {
    super();
    const { eps = 1e-6, affine = true } = normOptions('RMSNorm', opts);
    this.eps = eps;
    this.weight = affine ? this.param('weight', constant([dim], 1, opts)) : null;
  }
  forward(x: E.Tensor): E.Tensor {
    if (x.shape[x.rank - 1] !== this.dim) throw new Error(`RMSNorm(${this.dim}): input last dim is ${x.shape[x.rank - 1]} (shape ${E.fmtShape(x.shape)})`);
    return E.rmsNorm(x, { weight: this.weight, eps: this.eps });
  }
}
