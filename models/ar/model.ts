/**
 * Class-conditional autoregressive transformer over tokenizer codes in raster order (LlamaGen /
 * RAR style). Browser-safe.
 *
 * Input sequence: [class token, tok_0, ..., tok_{L-2}] (teacher forcing); output position t
 * predicts tok_t, so forward(classes [B], tokens [B, L]) gives logits [B, L, V] aligned with
 * `tokens`. The class embedding has numClasses + 1 rows: the last one (id numClasses) is the
 * null / unconditional class used by classifier-free guidance and by class dropout.
 *
 * Blocks: pre-norm causal TransformerBlocks (RMSNorm + SwiGLU by default, as LlamaGen), QK-norm,
 * positions by 2D RoPE over the token grid (the class token is an unrotated prefix) or a learned
 * table; optional adaLN-Zero conditioning on the class embedding (RAR), which also modulates the
 * final norm. Initialization as LlamaGen: Linear / Embedding weights N(0, 0.02), biases 0, output
 * head 0 (so the initial loss is exactly log V); adaLN modulations stay zero.
 *
 * State dict names: cls_embedding.weight, tok_embeddings.weight, [pos_embedding],
 * blocks.<i>.*, norm.*, [final_adaLN_modulation.1.*], head.weight/bias.
 *
 * forward runs in a scope (nn/module.ts): its intermediates are freed on return without gradient
 * recording, and freed by the training step's scope while recording.
 */
import * as E from '../../engine/index.js';
import type { InitOptions } from '../../nn/init.js';
import { Module, ModuleList } from '../../nn/module.js';
import { Embedding, Linear } from '../../nn/layers/basic.js';
import { LayerNorm, RMSNorm } from '../../nn/layers/norm.js';
import type { KVCache } from '../../nn/layers/attention.js';
import { AdaLNModulation, modulate, TransformerBlock } from '../../nn/layers/transformer.js';

export interface ARConfig {
  /** Codebook size of the tokenizer (output classes). */
  vocabSize: number;
  /** Number of real classes; id numClasses is the null class. */
  numClasses: number;
  /** Tokens per image (h * w). */
  seqLen: number;
  /** Token grid [h, w] (for 2D RoPE); default: the square root of seqLen if it is a square. */
  grid?: [number, number];
  dim: number;
  depth: number;
  heads: number;
  mlpRatio: number;
  /** 'swiglu' (LlamaGen, default) or 'gelu' (timm / RAR). */
  mlp: 'swiglu' | 'gelu';
  /** Block norms: 'rms' (default) or 'layer'. */
  norm: 'rms' | 'layer';
  /** Positions: 'rope2d' (default; class token = unrotated prefix) or a 'learned' table. */
  pos: 'learned' | 'rope2d';
  qkNorm: 'rms' | 'layer' | null;
  /** adaLN-Zero conditioning of every block (and the final norm) on the class embedding. */
  adaLN: boolean;
  /** Probability of replacing a training label by the null class. */
  classDropout: number;
  /** Dropout on the input embeddings in training mode. */
  dropout: number;
  /** Seed of the generator behind class dropout and dropout (model.generator). */
  dropSeed: number;
  /** Std of the normal init of Linear / Embedding weights. */
  initStd: number;
}

export type ARConfigInput = Partial<ARConfig> & Pick<ARConfig, 'vocabSize' | 'numClasses' | 'seqLen'>;

export const DEFAULT_AR_CONFIG: Readonly<Omit<ARConfig, 'vocabSize' | 'numClasses' | 'seqLen' | 'grid'>> = Object.freeze({
  dim: 256,
  depth: 8,
  heads: 8,
  mlpRatio: 4,
  mlp: 'swiglu',
  norm: 'rms',
  pos: 'rope2d',
  qkNorm: 'rms',
  adaLN: false,
  classDropout: 0.1,
  dropout: 0,
  dropSeed: 0,
  initStd: 0.02,
});

function posInt(v: unknown, name: string): number {
  if (!Number.isInteger(v) || (v as number) < 1) throw new Error(`AR config: ${name} must be a positive integer, got ${String(v)}`);
  return v as number;
}

/** Fills defaults and validates; throws with the offending field. */
export function resolveARConfig(c: ARConfigInput): ARConfig {
  const cfg: ARConfig = { ...DEFAULT_AR_CONFIG, ...c } as ARConfig;
  for (const k of ['vocabSize', 'numClasses', 'seqLen', 'dim', 'depth', 'heads'] as const) posInt(cfg[k], k);
  if (cfg.dim % cfg.heads !== 0) throw new Error(`AR config: dim ${cfg.dim} is not divisible by ${cfg.heads} heads`);
  if (!(cfg.mlpRatio > 0)) throw new Error(`AR config: mlpRatio must be > 0, got ${cfg.mlpRatio}`);
  if (cfg.mlp !== 'swiglu' && cfg.mlp !== 'gelu') throw new Error(`AR config: mlp must be 'swiglu' or 'gelu', got ${String(cfg.mlp)}`);
  if (cfg.norm !== 'rms' && cfg.norm !== 'layer') throw new Error(`AR config: norm must be 'rms' or 'layer', got ${String(cfg.norm)}`);
  if (cfg.pos !== 'rope2d' && cfg.pos !== 'learned') throw new Error(`AR config: pos must be 'rope2d' or 'learned', got ${String(cfg.pos)}`);
  if (cfg.qkNorm !== null && cfg.qkNorm !== 'rms' && cfg.qkNorm !== 'layer') throw new Error(`AR config: qkNorm must be 'rms', 'layer' or null, got ${String(cfg.qkNorm)}`);
  if (!(cfg.classDropout >= 0 && cfg.classDropout < 1)) throw new Error(`AR config: classDropout must be in [0, 1), got ${cfg.classDropout}`);
  if (!(cfg.dropout >= 0 && cfg.dropout < 1)) throw new Error(`AR config: dropout must be in [0, 1), got ${cfg.dropout}`);
  if (!(cfg.initStd >= 0)) throw new Error(`AR config: initStd must be >= 0, got ${cfg.initStd}`);
  if (!Number.isSafeInteger(cfg.dropSeed)) throw new Error(`AR config: dropSeed must be an integer, got ${cfg.dropSeed}`);
  if (cfg.grid === undefined && cfg.pos === 'rope2d') {
    const s = Math.round(Math.sqrt(cfg.seqLen));
    if (s * s !== cfg.seqLen) throw new Error(`AR config: seqLen ${cfg.seqLen} is not a square; give grid: [h, w] for 2D RoPE`);
    cfg.grid = [s, s];
  }
  if (cfg.grid !== undefined) {
    const [h, w] = cfg.grid;
    if (!Number.isInteger(h) || !Number.isInteger(w) || h < 1 || w < 1 || h * w !== cfg.seqLen) {
      throw new Error(`AR config: grid ${JSON.stringify(cfg.grid)} does not hold seqLen ${cfg.seqLen} tokens`);
    }
    cfg.grid = [h, w];
  }
  return cfg;
}

/**
 * Incremental decoding state: one KV cache per block, the adaLN condition (if any) and the
 * number of input positions written (`pos`; position 0 is the class token, position p >= 1 holds
 * token p - 1). Kept across tidy scopes; dispose() frees it.
 */
export interface ARDecodeState {
  readonly batch: number;
  readonly caches: KVCache[];
  /** Class embeddings [B, dim] for adaLN models (kept), else null. */
  readonly cond: E.Tensor | null;
  /** Input positions written so far. The last logits predict token pos - 1. */
  pos: number;
  dispose(): void;
}

export class ARTransformer extends Module {
  readonly cfg: ARConfig;
  readonly clsEmbedding: Embedding;
  readonly tokEmbeddings: Embedding;
  readonly posEmbedding: E.Tensor | null;
  readonly blocks: ModuleList<TransformerBlock>;
  readonly norm: RMSNorm | LayerNorm;
  readonly finalAdaLN: AdaLNModulation | null;
  readonly head: Linear;
  /** Drives class dropout and dropout; save it with the training state to resume exactly. */
  readonly generator: E.Generator;
  readonly backend: E.Backend;

  constructor(config: ARConfigInput, init: InitOptions = {}) {
    super();
    const cfg = resolveARConfig(config);
    this.cfg = cfg;
    this.backend = init.backend ?? E.getBackend();
    const io: InitOptions = { ...init, backend: this.backend };
    const { dim } = cfg;
    this.clsEmbedding = this.module('cls_embedding', new Embedding(cfg.numClasses + 1, dim, { ...io, std: cfg.initStd }));
    this.tokEmbeddings = this.module('tok_embeddings', new Embedding(cfg.vocabSize, dim, { ...io, std: cfg.initStd }));
    this.posEmbedding = cfg.pos === 'learned' ? this.param('pos_embedding', E.randn([cfg.seqLen, dim], { ...io, std: cfg.initStd })) : null;
    const blocks: TransformerBlock[] = [];
    for (let i = 0; i < cfg.depth; i++) {
      blocks.push(
        new TransformerBlock(dim, cfg.heads, {
          ...io,
          causal: true,
          qkNorm: cfg.qkNorm,
          mlpRatio: cfg.mlpRatio,
          mlp: cfg.mlp,
          norm: cfg.norm,
          adaLN: cfg.adaLN ? dim : null,
          ...(cfg.pos === 'rope2d' ? { rope: '2d' as const, grid: cfg.grid!, ropePrefix: 1 } : {}),
        }),
      );
    }
    this.blocks = this.module('blocks', new ModuleList(blocks));
    const eps = cfg.adaLN ? 1e-6 : 1e-5;
    this.norm = this.module('norm', cfg.norm === 'rms' ? new RMSNorm(dim, { ...io, eps, affine: !cfg.adaLN }) : new LayerNorm(dim, { ...io, eps, affine: !cfg.adaLN }));
    this.finalAdaLN = cfg.adaLN ? this.module('final_adaLN_modulation', new AdaLNModulation(dim, dim, 2, io)) : null;
    this.head = this.module('head', new Linear(dim, cfg.vocabSize, io));
    this.generator = new E.Generator(cfg.dropSeed);
    this.initWeights(io);
  }

  /** LlamaGen's _init_weights: N(0, initStd) Linear weights, zero biases, zero head; adaLN stays zero. */
  private initWeights(io: InitOptions): void {
    const std = this.cfg.initStd;
    const zeroed = new Set<Linear>([this.head]);
    for (const [, m] of this.namedModules()) if (m instanceof AdaLNModulation) zeroed.add(m.linear);
    E.noGrad(() =>
      E.tidy(() => {
        for (const [, m] of this.namedModules()) {
          if (!(m instanceof Linear)) continue;
          if (zeroed.has(m)) m.weight.assign(0);
          else m.weight.assign(E.randn(m.weight.shape, { ...io, std }));
          m.bias?.assign(0);
        }
      }),
    );
  }

  /** The id of the null (unconditional) class. */
  get nullClass(): number {
    return this.cfg.numClasses;
  }

  get seqLen(): number {
    return this.cfg.seqLen;
  }

  /** Class ids as an i32 [B] tensor on the model's backend (numbers are range-checked). */
  classTensor(classes: E.Tensor | readonly number[], what = 'ARTransformer'): E.Tensor {
    if (E.isTensor(classes)) {
      if (classes.dtype !== 'i32') throw new TypeError(`${what}: classes must be i32 class ids, got ${classes.describe()}`);
      if (classes.rank !== 1) throw new Error(`${what}: classes must be [B], got ${E.fmtShape(classes.shape)}`);
      if (classes.backend !== this.backend) throw new Error(`${what}: classes are on ${classes.backend.name}, the model on ${this.backend.name}`);
      return classes;
    }
    if (!Array.isArray(classes) || classes.length === 0) throw new Error(`${what}: classes must be a non-empty i32 tensor [B] or array of ids`);
    for (const c of classes) {
      if (!Number.isInteger(c) || c < 0 || c > this.nullClass) throw new RangeError(`${what}: class id ${c} outside [0, ${this.nullClass}] (${this.nullClass} = null class)`);
    }
    return E.tensor(Int32Array.from(classes), [classes.length], { backend: this.backend, dtype: 'i32' });
  }

  private checkTokens(tokens: E.Tensor, B: number, what: string, maxLen = this.cfg.seqLen): void {
    if (tokens.dtype !== 'i32') throw new TypeError(`${what}: tokens must be i32 code indices, got ${tokens.describe()}`);
    if (tokens.rank !== 2 || tokens.shape[0] !== B || tokens.shape[1]! < 1 || tokens.shape[1]! > maxLen) {
      throw new Error(`${what}: tokens must be [${B}, 1..${maxLen}] for ${B} classes, got ${E.fmtShape(tokens.shape)}`);
    }
    if (tokens.backend !== this.backend) throw new Error(`${what}: tokens are on ${tokens.backend.name}, the model on ${this.backend.name}`);
  }

  /** In training mode, replaces each label by the null class with probability classDropout. */
  dropClasses(classes: E.Tensor): E.Tensor {
    const p = this.cfg.classDropout;
    if (!this.training || p === 0) return classes;
    const drop = E.bernoulli(p, [classes.shape[0]!], { generator: this.generator, backend: this.backend });
    return E.where(drop, this.nullClass, classes);
  }

  /**
   * Teacher-forced logits: classes i32 [B] (ids in [0, numClasses], numClasses = null), tokens
   * i32 [B, L] with 1 <= L <= seqLen -> logits f32 [B, L, V], position t predicting tokens[:, t].
   * In training mode class dropout (and dropout) apply.
   */
  forward(classes: E.Tensor | readonly number[], tokens: E.Tensor): E.Tensor {
    const cls = this.classTensor(classes, 'ARTransformer.forward');
    const B = cls.shape[0]!;
    this.checkTokens(tokens, B, 'ARTransformer.forward');
    const L = tokens.shape[1]!;
    const ce = this.clsEmbedding.forward(this.dropClasses(cls)); // [B, dim]
    const c3 = ce.reshape([B, 1, this.cfg.dim]);
    const h = L === 1 ? c3 : E.concat([c3, this.tokEmbeddings.forward(tokens.slice([null, [0, L - 1]]))], 1);
    return this.run(h, this.cfg.adaLN ? ce : null, 0, null);
  }

  /** h [B, T, dim] at input positions pos..pos+T-1 -> logits [B, T, V]. */
  private run(h: E.Tensor, cond: E.Tensor | null, pos: number, caches: KVCache[] | null): E.Tensor {
    const T = h.shape[1]!;
    if (this.posEmbedding) h = h.add(this.posEmbedding.slice([[pos, pos + T]]));
    if (this.training && this.cfg.dropout > 0) {
      const p = this.cfg.dropout;
      h = h.mul(E.bernoulli(1 - p, h.shape, { generator: this.generator, backend: this.backend })).mul(1 / (1 - p));
    }
    this.blocks.items.forEach((blk, i) => {
      h = blk.forward(h, { ...(cond ? { cond } : {}), ...(caches ? { cache: caches[i]!, pos } : {}) });
    });
    h = this.norm.forward(h);
    if (this.finalAdaLN) {
      const [shift, scale] = this.finalAdaLN.chunks(cond!) as [E.Tensor, E.Tensor];
      h = modulate(h, shift, scale);
    }
    return this.head.forward(h);
  }

  /**
   * Starts incremental decoding (inference only: run under noGrad, eval mode recommended):
   * allocates the KV caches, runs the class token and the optional known prefix tokens
   * (i32 [B, P], P < seqLen) in one pass, and returns the state and the logits [B, V] for token P.
   */
  startDecode(classes: E.Tensor | readonly number[], prefix: E.Tensor | null = null): { state: ARDecodeState; logits: E.Tensor } {
    if (E.isGradEnabled()) throw new Error('ARTransformer.startDecode: decoding is inference-only; run it under noGrad()');
    const cls = this.classTensor(classes, 'ARTransformer.startDecode');
    const B = cls.shape[0]!;
    if (prefix) this.checkTokens(prefix, B, 'ARTransformer.startDecode (prefix)', this.cfg.seqLen - 1);
    const caches = this.blocks.items.map((b) => b.createCache(B, this.cfg.seqLen, this.backend));
    let cond: E.Tensor | null = null;
    let logits: E.Tensor;
    try {
      logits = E.tidy(() => {
        const ce = this.clsEmbedding.forward(cls); // no class dropout when decoding
        if (this.cfg.adaLN) cond = E.keep(ce);
        const c3 = ce.reshape([B, 1, this.cfg.dim]);
        const h = prefix ? E.concat([c3, this.tokEmbeddings.forward(prefix)], 1) : c3;
        const T = h.shape[1]!;
        const out = this.run(h, cond, 0, caches);
        return out.slice([null, [T - 1, T]]).reshape([B, this.cfg.vocabSize]).contiguous(); // [B, V]
      });
    } catch (e) {
      for (const c of caches) c.dispose(); // kept state that is not returned: nobody else can free it
      throw e;
    }
    const P = prefix ? prefix.shape[1]! : 0;
    const keptCond = cond as E.Tensor | null;
    const state: ARDecodeState = {
      batch: B,
      caches,
      cond: keptCond,
      pos: P + 1,
      dispose() {
        // The decoding state is kept across scopes: its owner frees it.
        for (const c of caches) c.dispose();
        keptCond?.dispose();
      },
    };
    return { state, logits };
  }

  /**
   * Feeds tokens i32 [B] (token index state.pos - 1) and returns the logits [B, V] for the next
   * token; advances state.pos. At most seqLen - 1 tokens can be fed in total.
   */
  decodeStep(state: ARDecodeState, tokens: E.Tensor): E.Tensor {
    if (E.isGradEnabled()) throw new Error('ARTransformer.decodeStep: decoding is inference-only; run it under noGrad()');
    const B = state.batch;
    if (tokens.dtype !== 'i32') throw new TypeError(`ARTransformer.decodeStep: tokens must be i32, got ${tokens.describe()}`);
    if (tokens.size !== B || tokens.rank > 2) throw new Error(`ARTransformer.decodeStep: tokens must be [${B}], got ${E.fmtShape(tokens.shape)}`);
    if (state.pos >= this.cfg.seqLen) throw new RangeError(`ARTransformer.decodeStep: all ${this.cfg.seqLen - 1} input tokens were already fed (pos ${state.pos})`);
    const pos = state.pos;
    const logits = E.tidy(() => {
      const h = this.tokEmbeddings.forward(tokens.reshape([B, 1]));
      return this.run(h, state.cond, pos, state.caches).reshape([B, this.cfg.vocabSize]).contiguous();
    });
    state.pos = pos + 1;
    return logits;
  }
}
