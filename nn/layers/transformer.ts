/**
 * Transformer building blocks: MLPs (GELU-tanh, as timm/DiT, or SwiGLU, as LLaMA/LlamaGen), adaLN
 * modulation (DiT) and a pre-norm TransformerBlock:
 *   plain:  x = x + attn(norm1(x));  x = x + mlp(norm2(x))
 *   adaLN:  shift_a, scale_a, gate_a, shift_m, scale_m, gate_m = adaLN_modulation(c)
 *           x = x + gate_a * attn(modulate(norm1(x), shift_a, scale_a))
 *           x = x + gate_m * mlp(modulate(norm2(x), shift_m, scale_m)),
 *           modulate(h, shift, scale) = h * (1 + scale) + shift.
 * With adaLN the norms have no affine parameters (eps 1e-6) and the modulation Linear is
 * zero-initialized, so a fresh block is the identity (DiT's adaLN-Zero).
 * State dict names: norm1, attn.{qkv,proj,q_norm,k_norm}, norm2, mlp.{fc1,fc2} or mlp.{w1,w2,w3},
 * adaLN_modulation.1.{weight,bias} (DiT's nn.Sequential(SiLU, Linear)).
 */
import * as E from '../../engine/index.js';
import type { InitOptions } from '../init.js';
import { Module } from '../module.js';
import { Layer, Linear, SiLU } from './basic.js';
import { MultiHeadSelfAttention, type AttentionCallOptions, type KVCache, type MHSAOptions } from './attention.js';
import { LayerNorm, RMSNorm } from './norm.js';

/** fc1 -> GELU (tanh approximation) -> fc2, as timm's Mlp with approx_gelu. */
export class Mlp extends Layer {
  readonly fc1: Linear;
  readonly fc2: Linear;
  constructor(dim: number, hidden: number, opts: InitOptions & { bias?: boolean; outDim?: number } = {}) {
    super();
    this.fc1 = this.module('fc1', new Linear(dim, hidden, opts));
    this.fc2 = this.module('fc2', new Linear(hidden, opts.outDim ?? dim, opts));
  }
  forward(x: E.Tensor): E.Tensor {
    return this.fc2.forward(this.fc1.forward(x).gelu('tanh'));
  }
}

/** w2(silu(w1 x) * w3 x), LLaMA / LlamaGen FeedForward (no biases by default). */
export class SwiGLU extends Layer {
  readonly w1: Linear;
  readonly w2: Linear;
  readonly w3: Linear;
  constructor(dim: number, hidden: number, opts: InitOptions & { bias?: boolean } = {}) {
    super();
    const o = { ...opts, bias: opts.bias ?? false };
    this.w1 = this.module('w1', new Linear(dim, hidden, o));
    this.w3 = this.module('w3', new Linear(dim, hidden, o));
    this.w2 = this.module('w2', new Linear(hidden, dim, o));
  }
  forward(x: E.Tensor): E.Tensor {
    return this.w2.forward(this.w1.forward(x).silu().mul(this.w3.forward(x)));
  }
}

/**
 * SiLU -> Linear(condDim, n * dim), zero-initialized; `chunks(c)` splits the output into n tensors
 * [B, 1, dim] (c: [B, condDim]) or [B, L, dim] (c: [B, L, condDim]) that broadcast over tokens.
 * Children are named 0 (SiLU) and 1 (Linear) as DiT's nn.Sequential.
 */
export class AdaLNModulation extends Module {
  readonly linear: Linear;
  constructor(readonly condDim: number, readonly dim: number, readonly n: number, opts: InitOptions = {}) {
    super();
    this.module('0', new SiLU());
    this.linear = this.module('1', new Linear(condDim, n * dim, opts));
    E.noGrad(() => {
      this.linear.weight.assign(0);
      this.linear.bias!.assign(0);
    });
  }
  chunks(c: E.Tensor): E.Tensor[] {
    if (c.shape[c.rank - 1] !== this.condDim || (c.rank !== 2 && c.rank !== 3)) {
      throw new Error(`AdaLNModulation(${this.condDim}): condition must be [B, ${this.condDim}] or [B, L, ${this.condDim}], got ${E.fmtShape(c.shape)}`);
    }
    const out = this.linear.forward(c.silu());
    const o3 = out.rank === 2 ? out.reshape([out.shape[0]!, 1, this.n * this.dim]) : out;
    return Array.from({ length: this.n }, (_, i) => o3.slice([null, null, [i * this.dim, (i + 1) * this.dim]]));
  }
}

/** h * (1 + scale) + shift. */
export function modulate(h: E.Tensor, shift: E.Tensor, scale: E.Tensor): E.Tensor {
  return h.mul(scale.add(1)).add(shift);
}

export interface TransformerBlockOptions extends MHSAOptions {
  /** MLP hidden size = round(dim * mlpRatio) (default 4); for SwiGLU round(2/3 * dim * mlpRatio). */
  mlpRatio?: number;
  /** Explicit MLP hidden size (overrides mlpRatio). */
  mlpHidden?: number;
  mlp?: 'gelu' | 'swiglu';
  /** Bias of the MLP Linears (default true for gelu, false for swiglu). */
  mlpBias?: boolean;
  norm?: 'layer' | 'rms';
  /** Norm epsilon (default 1e-6 with adaLN, else 1e-5). */
  eps?: number;
  /** Condition size for adaLN-Zero modulation (DiT); null/undefined = plain pre-norm block. */
  adaLN?: number | null;
}

export interface BlockCallOptions extends AttentionCallOptions {
  /** Condition for adaLN blocks: [B, condDim] (or per token [B, L, condDim]). */
  cond?: E.Tensor;
}

export class TransformerBlock extends Module {
  readonly norm1: Layer;
  readonly attn: MultiHeadSelfAttention;
  readonly norm2: Layer;
  readonly mlp: Mlp | SwiGLU;
  readonly adaLN: AdaLNModulation | null;

  constructor(readonly dim: number, readonly heads: number, opts: TransformerBlockOptions = {}) {
    super();
    const init: InitOptions = { ...(opts.generator ? { generator: opts.generator } : {}), ...(opts.backend ? { backend: opts.backend } : {}) };
    const ada = opts.adaLN ?? null;
    const eps = opts.eps ?? (ada ? 1e-6 : 1e-5);
    const mkNorm = () => (opts.norm === 'rms' ? new RMSNorm(dim, { ...init, eps, affine: !ada }) : new LayerNorm(dim, { ...init, eps, affine: !ada }));
    this.norm1 = this.module('norm1', mkNorm());
    this.attn = this.module('attn', new MultiHeadSelfAttention(dim, heads, opts));
    this.norm2 = this.module('norm2', mkNorm());
    const ratio = opts.mlpRatio ?? 4;
    if (opts.mlp === 'swiglu') {
      const hidden = opts.mlpHidden ?? Math.round((2 / 3) * dim * ratio);
      this.mlp = this.module('mlp', new SwiGLU(dim, hidden, { ...init, bias: opts.mlpBias ?? false }));
    } else {
      const hidden = opts.mlpHidden ?? Math.round(dim * ratio);
      this.mlp = this.module('mlp', new Mlp(dim, hidden, { ...init, bias: opts.mlpBias ?? true }));
    }
    this.adaLN = ada ? this.module('adaLN_modulation', new AdaLNModulation(ada, dim, 6, init)) : null;
  }

  createCache(batch: number, maxLen: number, backend?: E.Backend): KVCache {
    return this.attn.createCache(batch, maxLen, backend);
  }

  /** x [B, L, dim] -> [B, L, dim]. */
  forward(x: E.Tensor, o: BlockCallOptions = {}): E.Tensor {
    const a = { ...(o.cache ? { cache: o.cache } : {}), ...(o.pos !== undefined ? { pos: o.pos } : {}), mask: o.mask ?? null };
    if (!this.adaLN) {
      const h = x.add(this.attn.forward(this.norm1.forward(x), a));
      return h.add(this.mlp.forward(this.norm2.forward(h)));
    }
    if (!o.cond) throw new Error('TransformerBlock: an adaLN block needs forward(x, { cond })');
    const [shA, scA, gA, shM, scM, gM] = this.adaLN.chunks(o.cond) as [E.Tensor, E.Tensor, E.Tensor, E.Tensor, E.Tensor, E.Tensor];
    const h = x.add(gA.mul(this.attn.forward(modulate(this.norm1.forward(x), shA, scA), a)));
    return h.add(gM.mul(this.mlp.forward(modulate(this.norm2.forward(h), shM, scM))));
  }
}
