/** Linear, Embedding, Dropout, activations, Sequential and Identity, with PyTorch's defaults. */
import * as E from '../../engine/index.js';
import { biasUniform, kaimingUniform, normal, type InitOptions } from '../init.js';
import { Module } from '../module.js';

/** A module with a single-tensor forward. */
export abstract class Layer extends Module {
  abstract forward(x: E.Tensor): E.Tensor;
}

/** y = x W^T + b, W [out, in]; kaiming-uniform(a=sqrt 5) weight and U(+-1/sqrt in) bias, like nn.Linear. */
export class Linear extends Layer {
  readonly weight: E.Tensor;
  readonly bias: E.Tensor | null;
  constructor(readonly inFeatures: number, readonly outFeatures: number, opts: InitOptions & { bias?: boolean } = {}) {
    super();
    this.weight = this.param('weight', kaimingUniform([outFeatures, inFeatures], Math.sqrt(5), opts));
    this.bias = opts.bias === false ? null : this.param('bias', biasUniform(outFeatures, inFeatures, opts));
  }
  forward(x: E.Tensor): E.Tensor {
    if (x.shape[x.rank - 1] !== this.inFeatures) throw new Error(`Linear(${this.inFeatures}, ${this.outFeatures}): input last dim must be ${this.inFeatures}, got shape ${E.fmtShape(x.shape)}`);
    return E.linear(x, this.weight, this.bias);
  }
}

/** Lookup table [num, dim] initialized N(0, 1), like nn.Embedding. */
export class Embedding extends Module {
  readonly weight: E.Tensor;
  constructor(readonly numEmbeddings: number, readonly dim: number, opts: InitOptions & { std?: number } = {}) {
    super();
    this.weight = this.param('weight', normal([numEmbeddings, dim], 0, opts.std ?? 1, opts));
  }
  forward(ids: E.Tensor): E.Tensor {
    if (ids.dtype !== 'i32') throw new TypeError(`Embedding: ids must be i32, got ${ids.describe()}`);
    return E.embedding(this.weight, ids);
  }
}

/** Zeroes each element with probability p in training mode and rescales by 1/(1-p). */
export class Dropout extends Layer {
  constructor(readonly p = 0.5, readonly generator?: E.Generator) {
    super();
    if (!(p >= 0 && p < 1)) throw new RangeError(`Dropout: p must be in [0, 1), got ${p}`);
  }
  forward(x: E.Tensor): E.Tensor {
    if (!this.training || this.p === 0) return x;
    const keepMask = E.bernoulli(1 - this.p, x.shape, { backend: x.backend, ...(this.generator ? { generator: this.generator } : {}) });
    const y = x.mul(keepMask).mul(1 / (1 - this.p));
    return y;
  }
}

export class ReLU extends Layer {
  forward(x: E.Tensor): E.Tensor {
    return x.relu();
  }
}
export class LeakyReLU extends Layer {
  constructor(readonly negativeSlope = 0.01) {
    super();
  }
  forward(x: E.Tensor): E.Tensor {
    return x.leakyRelu(this.negativeSlope);
  }
}
export class SiLU extends Layer {
  forward(x: E.Tensor): E.Tensor {
    return x.silu();
  }
}
export class GELU extends Layer {
  constructor(readonly approximate: 'none' | 'tanh' = 'none') {
    super();
  }
  forward(x: E.Tensor): E.Tensor {
    return x.gelu(this.approximate);
  }
}
export class Tanh extends Layer {
  forward(x: E.Tensor): E.Tensor {
    return x.tanh();
  }
}
export class Sigmoid extends Layer {
  forward(x: E.Tensor): E.Tensor {
    return x.sigmoid();
  }
}
export class Identity extends Layer {
  forward(x: E.Tensor): E.Tensor {
    return x;
  }
}

/**
 * Applies layers in order; children are named 0, 1, 2... like nn.Sequential. Without gradient
 * recording each activation is freed once the next exists (E.chain).
 */
export class Sequential extends Layer {
  readonly layers: Layer[];
  constructor(...layers: Layer[]) {
    super();
    this.layers = layers;
    layers.forEach((l, i) => this.module(String(i), l));
  }
  forward(x: E.Tensor): E.Tensor {
    return E.chain(x, this.layers);
  }
}
