/** GroupNorm, LayerNorm and RMSNorm modules (weights 1, biases 0, like PyTorch). */
import * as E from '../../engine/index.js';
import { constant, type InitOptions } from '../init.js';
import { Layer } from './basic.js';

export class GroupNorm extends Layer {
  readonly weight: E.Tensor | null;
  readonly bias: E.Tensor | null;
  constructor(readonly numGroups: number, readonly numChannels: number, readonly eps = 1e-5, affine = true, opts: InitOptions = {}) {
    super();
    if (numChannels % numGroups) throw new Error(`GroupNorm: ${numChannels} channels are not divisible by ${numGroups} groups`);
    this.weight = affine ? this.param('weight', constant([numChannels], 1, opts)) : null;
    this.bias = affine ? this.param('bias', constant([numChannels], 0, opts)) : null;
  }
  forward(x: E.Tensor): E.Tensor {
    if (x.shape[1] !== this.numChannels) throw new Error(`GroupNorm(${this.numGroups}, ${this.numChannels}): input has ${x.shape[1]} channels (shape ${E.fmtShape(x.shape)})`);
    return E.groupNorm(x, this.numGroups, { weight: this.weight, bias: this.bias, eps: this.eps });
  }
}

export class LayerNorm extends Layer {
  readonly weight: E.Tensor | null;
  readonly bias: E.Tensor | null;
  readonly normalizedShape: number[];
  constructor(normalizedShape: number | readonly number[], readonly eps = 1e-5, affine = true, opts: InitOptions & { bias?: boolean } = {}) {
    super();
    this.normalizedShape = typeof normalizedShape === 'number' ? [normalizedShape] : [...normalizedShape];
    this.weight = affine ? this.param('weight', constant(this.normalizedShape, 1, opts)) : null;
    this.bias = affine && opts.bias !== false ? this.param('bias', constant(this.normalizedShape, 0, opts)) : null;
  }
  forward(x: E.Tensor): E.Tensor {
    return E.layerNorm(x, this.normalizedShape, { weight: this.weight, bias: this.bias, eps: this.eps });
  }
}

export class RMSNorm extends Layer {
  readonly weight: E.Tensor | null;
  constructor(readonly dim: number, readonly eps = 1e-6, affine = true, opts: InitOptions = {}) {
    super();
    this.weight = affine ? this.param('weight', constant([dim], 1, opts)) : null;
  }
  forward(x: E.Tensor): E.Tensor {
    if (x.shape[x.rank - 1] !== this.dim) throw new Error(`RMSNorm(${this.dim}): input last dim is ${x.shape[x.rank - 1]} (shape ${E.fmtShape(x.shape)})`);
    return E.rmsNorm(x, { weight: this.weight, eps: this.eps });
  }
}
