/**
 * Multi-head self-attention with a fused qkv projection, optional QK-norm and RoPE, the fused
 * attention kernel (engine scaledDotProductAttention), and a KV cache for incremental decoding.
 *
 * Parameter names follow timm's Attention (and DiT / LlamaGen-style checkpoints):
 *   qkv.weight [3C, C], qkv.bias [3C], proj.weight [C, C], proj.bias [C],
 *   q_norm.weight / k_norm.weight (+ .bias for LayerNorm) [C / heads].
 * Order inside qkv: rows [0, C) give q, [C, 2C) k, [2C, 3C) v; within each, head h owns rows
 * [h * Dh, (h + 1) * Dh) (as `qkv(x).reshape(B, L, 3, H, Dh)` in PyTorch).
 * Per head: q, k = norm(q), norm(k) (if qkNorm), then RoPE (if any), then attention (engine
 * scaledDotProductAttention with impl 'auto' by default: the composite for small score matrices,
 * the fused kernels for decoding and long sequences).
 */
import * as E from '../../engine/index.js';
import type { InitOptions } from '../init.js';
import { Module } from '../module.js';
import { Linear } from './basic.js';
import { LayerNorm, RMSNorm } from './norm.js';
import { RoPE1D, RoPE2D, type RotaryEmbedding } from './rope.js';

export type QKNorm = 'rms' | 'layer' | null;

export interface MHSAOptions extends InitOptions {
  /** Causal (bottom-right aligned) mask. */
  causal?: boolean;
  /** Normalize q and k per head: 'rms' (RMSNorm), 'layer' (LayerNorm; `true` means this, as timm), or none. */
  qkNorm?: QKNorm | boolean;
  /** Epsilon of the QK norms (default 1e-6 for RMS, 1e-5 for LayerNorm). */
  qkNormEps?: number;
  /** Rotary embedding: '1d' over positions 0..maxLen-1, '2d' over `prefix` tokens + a grid. */
  rope?: '1d' | '2d' | null;
  /** 1D RoPE table length (default 4096). */
  maxLen?: number;
  /** 2D RoPE grid [h, w]. */
  grid?: [number, number];
  /** Tokens before the grid for 2D RoPE (not rotated). */
  ropePrefix?: number;
  ropeBase?: number;
  /** Bias of the qkv projection (default true). */
  bias?: boolean;
  /** Bias of the output projection (default true). */
  projBias?: boolean;
  /** Attention implementation (engine AttentionOptions.impl), default 'auto'. */
  attnImpl?: 'fused' | 'composite' | 'auto';
}

/**
 * Keys and values of the positions decoded so far, preallocated [B, H, maxLen, Dh]. `length` is the
 * number of positions written; forward() appends at `pos` (default `length`).
 */
export interface KVCache {
  readonly k: E.Tensor;
  readonly v: E.Tensor;
  readonly maxLen: number;
  length: number;
  dispose(): void;
}

export interface AttentionCallOptions {
  /** KV cache (inference only): the new tokens' k/v are written at `pos` and all positions < pos + L are attended. */
  cache?: KVCache;
  /** Position of x's first token (RoPE offset and cache slot; default cache.length or 0). */
  pos?: number;
  /** Extra mask (f32 additive or i32 boolean) broadcastable to [B, H, L, Lk]. */
  mask?: E.Tensor | null;
}

export class MultiHeadSelfAttention extends Module {
  readonly qkv: Linear;
  readonly proj: Linear;
  readonly qNorm: LayerNorm | RMSNorm | null;
  readonly kNorm: LayerNorm | RMSNorm | null;
  readonly rope: RotaryEmbedding | null;
  readonly headDim: number;
  readonly causal: boolean;
  /** Attention implementation used by forward (see MHSAOptions.attnImpl); may be changed. */
  attnImpl: 'fused' | 'composite' | 'auto';

  constructor(readonly dim: number, readonly heads: number, opts: MHSAOptions = {}) {
    super();
    if (!Number.isInteger(heads) || heads < 1 || dim % heads !== 0) throw new Error(`MultiHeadSelfAttention: dim ${dim} is not divisible by ${heads} heads`);
    this.headDim = dim / heads;
    this.causal = !!opts.causal;
    this.attnImpl = opts.attnImpl ?? 'auto';
    const init: InitOptions = { ...(opts.generator ? { generator: opts.generator } : {}), ...(opts.backend ? { backend: opts.backend } : {}) };
    this.qkv = this.module('qkv', new Linear(dim, 3 * dim, { ...init, bias: opts.bias ?? true }));
    this.proj = this.module('proj', new Linear(dim, dim, { ...init, bias: opts.projBias ?? true }));
    const kind: QKNorm = opts.qkNorm === true ? 'layer' : opts.qkNorm === false || opts.qkNorm === undefined ? null : opts.qkNorm;
    const mkNorm = () => (kind === 'rms' ? new RMSNorm(this.headDim, { ...init, eps: opts.qkNormEps ?? 1e-6 }) : new LayerNorm(this.headDim, { ...init, eps: opts.qkNormEps ?? 1e-5 }));
    this.qNorm = kind ? this.module('q_norm', mkNorm()) : null;
    this.kNorm = kind ? this.module('k_norm', mkNorm()) : null;
    const backend = opts.backend ?? E.getBackend();
    const ropeOpts = { ...(opts.ropeBase !== undefined ? { base: opts.ropeBase } : {}), backend };
    if (opts.rope === '1d') this.rope = this.module('rope', new RoPE1D(this.headDim, opts.maxLen ?? 4096, ropeOpts));
    else if (opts.rope === '2d') {
      if (!opts.grid) throw new Error('MultiHeadSelfAttention: rope "2d" needs grid: [h, w]');
      this.rope = this.module('rope', new RoPE2D(this.headDim, opts.grid[0], opts.grid[1], { ...ropeOpts, prefix: opts.ropePrefix ?? 0 }));
    } else this.rope = null;
  }

  /** Preallocates a KV cache for `batch` sequences of up to `maxLen` tokens (kept across tidy scopes). */
  createCache(batch: number, maxLen: number, backend: E.Backend = this.qkv.weight.backend): KVCache {
    const shape = [batch, this.heads, maxLen, this.headDim];
    const k = E.keep(E.zeros(shape, { backend }));
    const v = E.keep(E.zeros(shape, { backend }));
    return {
      k,
      v,
      maxLen,
      length: 0,
      dispose() {
        // The cache outlives every forward scope (kept): its owner frees it.
        k.dispose();
        v.dispose();
      },
    };
  }

  /** x [B, L, C] -> [B, L, C]. */
  forward(x: E.Tensor, o: AttentionCallOptions = {}): E.Tensor {
    const C = this.dim;
    if (x.rank !== 3 || x.shape[2] !== C) throw new Error(`MultiHeadSelfAttention(${C}, ${this.heads}): input must be [B, L, ${C}], got ${E.fmtShape(x.shape)}`);
    const [B, L] = x.shape as [number, number, number];
    const H = this.heads;
    const Dh = this.headDim;
    const cache = o.cache;
    const pos = o.pos ?? cache?.length ?? 0;
    if (cache) {
      if (E.isGradEnabled()) throw new Error('MultiHeadSelfAttention: KV-cache decoding is inference-only; run it under noGrad()');
      if (cache.k.shape[0] !== B || cache.k.shape[1] !== H || cache.k.shape[3] !== Dh) {
        throw new Error(`MultiHeadSelfAttention: cache shape ${E.fmtShape(cache.k.shape)} does not fit input ${E.fmtShape(x.shape)} with ${H} heads`);
      }
      if (pos < 0 || pos + L > cache.maxLen) throw new RangeError(`MultiHeadSelfAttention: positions ${pos}..${pos + L - 1} exceed the cache (${cache.maxLen})`);
    }
    // One Linear per q / k / v on row blocks of the fused weight: each output is a contiguous
    // [B, L, C] that views as [B, L, H, Dh] without a copy.
    const w = this.qkv.weight;
    const b = this.qkv.bias;
    const part = (i: number) => E.linear(x, w.slice([[i * C, (i + 1) * C]]), b ? b.slice([[i * C, (i + 1) * C]]) : null).reshape([B, L, H, Dh]);
    let q = part(0);
    let k = part(1);
    const v = part(2);
    if (this.qNorm && this.kNorm) {
      q = this.qNorm.forward(q);
      k = this.kNorm.forward(k);
    }
    if (this.rope) {
      q = this.rope.apply(q, { offset: pos, seqDim: -3 });
      k = this.rope.apply(k, { offset: pos, seqDim: -3 });
    }
    const qh = q.permute([0, 2, 1, 3]);
    let kh = k.permute([0, 2, 1, 3]);
    let vh = v.permute([0, 2, 1, 3]);
    if (cache) {
      const slot = (t: E.Tensor) => t.slice([null, null, [pos, pos + L]]);
      E.assign(slot(cache.k), kh);
      E.assign(slot(cache.v), vh);
      kh = cache.k.slice([null, null, [0, pos + L]]);
      vh = cache.v.slice([null, null, [0, pos + L]]);
      cache.length = Math.max(cache.length, pos + L);
    }
    const a = E.scaledDotProductAttention(qh, kh, vh, { causal: this.causal, mask: o.mask ?? null, impl: this.attnImpl });
    // The fused output's storage is [B, L, H, Dh]: merging heads is then a view.
    return this.proj.forward(a.permute([0, 2, 1, 3]).reshape([B, L, C]));
  }
}
