/**
 * Class-conditional diffusion transformer over continuous latent grids (DiT, Peebles & Xie 2023,
 * arXiv 2212.09748, facebookresearch/DiT models.py; used as SiT's velocity network, Ma et al. 2024,
 * arXiv 2401.08740). Browser-safe. The map from DiT's models.py to this file:
 *  - PatchEmbed (Conv2d, kernel = stride = p)   -> patchifyLatents() + x_embedder.proj, a Linear on
 *    flattened p x p x C patches (the same map; a DiT conv weight [D, C, p, p] is
 *    w.permute(0, 2, 3, 1).reshape(D, p * p * C) here, as patches are flattened in (p, q, c) order,
 *    DiT's unpatchify order, so that one layout serves input and output);
 *  - pos_embed = get_2d_sincos_pos_embed (fixed, first half of the channels from the column
 *    index, second half from the row index, sin then cos): sincos2d(); a constant, not a parameter;
 *  - TimestepEmbedder: [cos, sin](t * timeScale * freqs) with freqs = 10000^(-k / half), then
 *    t_embedder.mlp = Linear-SiLU-Linear. t is in [0, 1] here; DiT's embedder saw integer steps
 *    0..999, so t is scaled by timeScale = 1000 to keep the frequencies in the range it was
 *    designed for (as SD3 / minRF do);
 *  - LabelEmbedder: y_embedder.embedding_table with numClasses + 1 rows, the last the null class;
 *    token_drop (labels -> null with probability classDropout in training) drawn from the model's
 *    seeded generator, so a run is reproducible and resumable;
 *  - c = t_emb + y_emb; DiTBlock = nn TransformerBlock with adaLN-Zero (LayerNorm without affine,
 *    eps 1e-6, GELU-tanh MLP, non-causal attention with qkv bias);
 *  - FinalLayer: norm_final (LayerNorm, no affine), adaLN_modulation (SiLU, Linear(D, 2D)) ->
 *    shift, scale, linear to p * p * C; unpatchify to [B, C, h, w];
 *  - initialize_weights: xavier-uniform Linears with zero biases, N(0, 0.02) label table and
 *    timestep MLP, zero adaLN modulations and zero final linear, so a fresh model predicts exactly
 *    0 and every block starts as the identity.
 * The output is the velocity of the rectified flow (flow.ts); learn_sigma is not used.
 *
 * State dict names (DiT's): x_embedder.proj.*, t_embedder.mlp.{0,2}.*, y_embedder.embedding_table.weight,
 * blocks.<i>.{attn.{qkv,proj},mlp.{fc1,fc2},adaLN_modulation.1}.*, final_layer.{linear,adaLN_modulation.1}.*.
 *
 * forward runs in a scope (nn/module.ts): its intermediates are freed on return without gradient
 * recording, and freed by the training step's scope while recording.
 */
import * as E from '../../engine/index.js';
import { xavierUniform, type InitOptions } from '../../nn/init.js';
import { Module, ModuleList } from '../../nn/module.js';
import { Embedding, Linear, Sequential, SiLU } from '../../nn/layers/basic.js';
import { LayerNorm } from '../../nn/layers/norm.js';
import { AdaLNModulation, modulate, TransformerBlock } from '../../nn/layers/transformer.js';

export interface DiffusionConfig {
  /** Channels C of the latent grid. */
  latentChannels: number;
  /** Latent grid [h, w]; both divisible by patchSize. */
  grid: [number, number];
  /** Number of real classes; id numClasses is the null class. */
  numClasses: number;
  /** Patch side p (DiT uses 2 on 32 x 32 latents; 1 suits tiny grids). */
  patchSize: number;
  /** Width D; a multiple of 4 (2D sin-cos table) and of heads. */
  dim: number;
  depth: number;
  heads: number;
  mlpRatio: number;
  /** Size of the sinusoidal timestep features (DiT's frequency_embedding_size). */
  freqDim: number;
  /** t in [0, 1] is multiplied by this before the sinusoidal features. */
  timeScale: number;
  /** Probability of replacing a training label by the null class (classifier-free guidance). */
  classDropout: number;
  /** Seed of model.generator (class dropout; by default also the training noise). */
  dropSeed: number;
  /** Std of the normal init of the label table and the timestep MLP. */
  initStd: number;
}

export type DiffusionConfigInput = Partial<DiffusionConfig> & Pick<DiffusionConfig, 'latentChannels' | 'grid' | 'numClasses'>;

/** DiT-S widths, patch 2. */
export const DEFAULT_DIFFUSION_CONFIG: Readonly<Omit<DiffusionConfig, 'latentChannels' | 'grid' | 'numClasses'>> = Object.freeze({
  patchSize: 2,
  dim: 384,
  depth: 12,
  heads: 6,
  mlpRatio: 4,
  freqDim: 256,
  timeScale: 1000,
  classDropout: 0.1,
  dropSeed: 0,
  initStd: 0.02,
});

function posInt(v: unknown, name: string): number {
  if (!Number.isInteger(v) || (v as number) < 1) throw new Error(`Diffusion config: ${name} must be a positive integer, got ${String(v)}`);
  return v as number;
}

/** Fills defaults and validates; throws a one-line error naming the field. */
export function resolveDiffusionConfig(c: DiffusionConfigInput): DiffusionConfig {
  const cfg: DiffusionConfig = { ...DEFAULT_DIFFUSION_CONFIG, ...c } as DiffusionConfig;
  for (const k of ['latentChannels', 'numClasses', 'patchSize', 'dim', 'depth', 'heads', 'freqDim'] as const) posInt(cfg[k], k);
  const g = cfg.grid as unknown;
  if (!Array.isArray(g) || g.length !== 2 || !g.every((v) => Number.isInteger(v) && v >= 1)) {
    throw new Error(`Diffusion config: grid must be [h, w] of positive integers, got ${JSON.stringify(g)}`);
  }
  const p = cfg.patchSize;
  if (g[0] % p !== 0 || g[1] % p !== 0) throw new Error(`Diffusion config: grid [${g.join(', ')}] is not divisible by patchSize ${p}`);
  cfg.grid = [g[0], g[1]];
  if (cfg.dim % cfg.heads !== 0) throw new Error(`Diffusion config: dim ${cfg.dim} is not divisible by ${cfg.heads} heads`);
  if (cfg.dim % 4 !== 0) throw new Error(`Diffusion config: dim must be a multiple of 4 (2D sin-cos positions), got ${cfg.dim}`);
  if (cfg.freqDim % 2 !== 0) throw new Error(`Diffusion config: freqDim must be even, got ${cfg.freqDim}`);
  if (!(cfg.mlpRatio > 0)) throw new Error(`Diffusion config: mlpRatio must be > 0, got ${cfg.mlpRatio}`);
  if (!(cfg.timeScale > 0 && Number.isFinite(cfg.timeScale))) throw new Error(`Diffusion config: timeScale must be finite and > 0, got ${cfg.timeScale}`);
  if (!(cfg.classDropout >= 0 && cfg.classDropout < 1)) throw new Error(`Diffusion config: classDropout must be in [0, 1), got ${cfg.classDropout}`);
  if (!Number.isSafeInteger(cfg.dropSeed)) throw new Error(`Diffusion config: dropSeed must be an integer, got ${cfg.dropSeed}`);
  if (!(cfg.initStd >= 0)) throw new Error(`Diffusion config: initStd must be >= 0, got ${cfg.initStd}`);
  return cfg;
}

// ---- patches and positions ----

/** x [B, C, h, w] -> [B, (h/p)(w/p), p * p * C], patches in raster order, each flattened in (p, q, c) order. */
export function patchifyLatents(x: E.Tensor, p: number): E.Tensor {
  if (x.rank !== 4) throw new Error(`patchifyLatents: x must be [B, C, h, w], got ${E.fmtShape(x.shape)}`);
  const [B, C, h, w] = x.shape as [number, number, number, number];
  if (!Number.isInteger(p) || p < 1 || h % p !== 0 || w % p !== 0) throw new Error(`patchifyLatents: grid ${h} x ${w} is not divisible by patch size ${p}`);
  const [H, W] = [h / p, w / p];
  return x.reshape([B, C, H, p, W, p]).permute([0, 2, 4, 3, 5, 1]).reshape([B, H * W, p * p * C]);
}

/** The inverse of patchifyLatents: [B, (h/p)(w/p), p * p * C] -> [B, C, h, w] (DiT's unpatchify). */
export function unpatchifyLatents(x: E.Tensor, p: number, channels: number, grid: readonly [number, number]): E.Tensor {
  const [h, w] = grid;
  const [H, W] = [h / p, w / p];
  if (x.rank !== 3 || x.shape[1] !== H * W || x.shape[2] !== p * p * channels || !Number.isInteger(H) || !Number.isInteger(W)) {
    throw new Error(`unpatchifyLatents: expected [B, ${H * W}, ${p * p * channels}] for a ${h} x ${w} grid of ${channels} channels and patch ${p}, got ${E.fmtShape(x.shape)}`);
  }
  const B = x.shape[0]!;
  return x.reshape([B, H, W, p, p, channels]).permute([0, 5, 1, 3, 2, 4]).reshape([B, channels, h, w]);
}

/**
 * DiT's get_2d_sincos_pos_embed for an H x W grid of tokens in raster order: [H * W * dim] values
 * (row-major [H * W, dim]). Token (r, c): channels [0, dim/2) encode the column c, [dim/2, dim) the
 * row r; each half is [sin(pos * w_k), cos(pos * w_k)] with w_k = 10000^(-k / (dim/4)).
 */
export function sincos2d(dim: number, H: number, W: number): Float64Array {
  if (dim % 4 !== 0) throw new Error(`sincos2d: dim must be a multiple of 4, got ${dim}`);
  const q = dim / 4;
  const out = new Float64Array(H * W * dim);
  for (let r = 0; r < H; r++) {
    for (let c = 0; c < W; c++) {
      const o = (r * W + c) * dim;
      for (let k = 0; k < q; k++) {
        const omega = Math.pow(10000, -k / q);
        out[o + k] = Math.sin(c * omega);
        out[o + q + k] = Math.cos(c * omega);
        out[o + 2 * q + k] = Math.sin(r * omega);
        out[o + 3 * q + k] = Math.cos(r * omega);
      }
    }
  }
  return out;
}

// ---- embedders and the final layer ----

/** Sinusoidal features of t (times `scale`) followed by mlp = Linear-SiLU-Linear (DiT's TimestepEmbedder). */
export class TimestepEmbedder extends Module {
  readonly mlp: Sequential;
  /** 10000^(-k / half), k < half, as a [1, half] constant (not in the state dict). */
  private readonly freqs: E.Tensor;

  constructor(readonly dim: number, readonly freqDim: number, readonly scale: number, init: InitOptions = {}) {
    super();
    this.mlp = this.module('mlp', new Sequential(new Linear(freqDim, dim, init), new SiLU(), new Linear(dim, dim, init)));
    const half = freqDim / 2;
    const f = Float32Array.from({ length: half }, (_, k) => Math.exp((-Math.log(10000) * k) / half));
    this.freqs = E.keep(E.tensor(f, [1, half], { backend: init.backend ?? E.getBackend() }));
  }

  /** t f32 [B] -> [B, dim]. */
  forward(t: E.Tensor): E.Tensor {
    const args = t.reshape([t.size, 1]).mul(this.scale).mul(this.freqs);
    // The angles reach scale * 1 = 1000 rad; WGSL bounds sin/cos error only on [-pi, pi]
    // (SwiftShader errs by 2e-4 at 1000 rad, lavapipe by 5e-8), so reduce them there first:
    // the same f32 mul/sub/floor on every device, then an accurate sin/cos.
    const twoPi = 2 * Math.PI;
    const reduced = args.sub(args.mul(1 / twoPi).add(0.5).floor().mul(twoPi));
    return this.mlp.forward(E.concat([reduced.cos(), reduced.sin()], 1));
  }

  override dispose(): void {
    super.dispose();
    this.freqs.dispose(); // a kept constant outside the state dict: it lives as long as the module
  }
}

/** The label table (numClasses + 1 rows; the last is the null class), DiT's LabelEmbedder. */
export class LabelEmbedder extends Module {
  readonly embeddingTable: Embedding;
  constructor(readonly numClasses: number, dim: number, init: InitOptions = {}) {
    super();
    this.embeddingTable = this.module('embedding_table', new Embedding(numClasses + 1, dim, init));
  }
  forward(y: E.Tensor): E.Tensor {
    return this.embeddingTable.forward(y);
  }
}

/** norm_final (no affine) + adaLN (shift, scale) + linear to the patch values (DiT's FinalLayer). */
export class FinalLayer extends Module {
  readonly normFinal: LayerNorm;
  readonly linear: Linear;
  readonly adaLN: AdaLNModulation;
  constructor(dim: number, outDim: number, init: InitOptions = {}) {
    super();
    this.normFinal = this.module('norm_final', new LayerNorm(dim, { ...init, eps: 1e-6, affine: false }));
    this.linear = this.module('linear', new Linear(dim, outDim, init));
    this.adaLN = this.module('adaLN_modulation', new AdaLNModulation(dim, dim, 2, init));
  }
  /** x [B, T, dim], c [B, dim] -> [B, T, outDim]. */
  forward(x: E.Tensor, c: E.Tensor): E.Tensor {
    const [shift, scale] = this.adaLN.chunks(c) as [E.Tensor, E.Tensor];
    return this.linear.forward(modulate(this.normFinal.forward(x), shift, scale));
  }
}

/** x_embedder: `proj`, the Linear over flattened patches (DiT's PatchEmbed with its conv as a Linear). */
export class PatchEmbed extends Module {
  readonly proj: Linear;
  constructor(readonly patchDim: number, dim: number, init: InitOptions = {}) {
    super();
    this.proj = this.module('proj', new Linear(patchDim, dim, init));
  }
  /** Patches [B, T, patchDim] -> tokens [B, T, dim]. */
  forward(patches: E.Tensor): E.Tensor {
    return this.proj.forward(patches);
  }
}

// ---- the model ----

export class DiffusionTransformer extends Module {
  readonly cfg: DiffusionConfig;
  readonly xEmbedder: PatchEmbed;
  readonly tEmbedder: TimestepEmbedder;
  readonly yEmbedder: LabelEmbedder;
  readonly blocks: ModuleList<TransformerBlock>;
  readonly finalLayer: FinalLayer;
  /** Fixed 2D sin-cos positions [1, T, dim] (not a parameter, not in the state dict). */
  readonly posEmbed: E.Tensor;
  /** Drives class dropout (and, by default, the training noise); save it with the training state to resume exactly. */
  readonly generator: E.Generator;
  readonly backend: E.Backend;

  constructor(config: DiffusionConfigInput, init: InitOptions = {}) {
    super();
    const cfg = resolveDiffusionConfig(config);
    this.cfg = cfg;
    this.backend = init.backend ?? E.getBackend();
    const io: InitOptions = { ...init, backend: this.backend };
    const { dim, patchSize: p, latentChannels: C } = cfg;
    const patchDim = p * p * C;
    this.xEmbedder = this.module('x_embedder', new PatchEmbed(patchDim, dim, io));
    this.tEmbedder = this.module('t_embedder', new TimestepEmbedder(dim, cfg.freqDim, cfg.timeScale, io));
    this.yEmbedder = this.module('y_embedder', new LabelEmbedder(cfg.numClasses, dim, io));
    const blocks: TransformerBlock[] = [];
    for (let i = 0; i < cfg.depth; i++) {
      blocks.push(new TransformerBlock(dim, cfg.heads, { ...io, causal: false, mlpRatio: cfg.mlpRatio, mlp: 'gelu', norm: 'layer', adaLN: dim }));
    }
    this.blocks = this.module('blocks', new ModuleList(blocks));
    this.finalLayer = this.module('final_layer', new FinalLayer(dim, patchDim, io));
    const [H, W] = [cfg.grid[0] / p, cfg.grid[1] / p];
    this.posEmbed = E.keep(E.tensor(sincos2d(dim, H, W), [1, H * W, dim], { backend: this.backend }));
    this.generator = new E.Generator(cfg.dropSeed);
    this.initWeights(io);
  }

  /** DiT's initialize_weights (see the header). */
  private initWeights(io: InitOptions): void {
    const std = this.cfg.initStd;
    const normalInit = new Set<Linear>([this.tEmbedder.mlp.layers[0] as Linear, this.tEmbedder.mlp.layers[2] as Linear]);
    const zeroed = new Set<Linear>([this.finalLayer.linear]);
    for (const [, m] of this.namedModules()) if (m instanceof AdaLNModulation) zeroed.add(m.linear);
    E.noGrad(() =>
      E.tidy(() => {
        for (const [, m] of this.namedModules()) {
          if (!(m instanceof Linear)) continue;
          if (zeroed.has(m)) m.weight.assign(0);
          else if (normalInit.has(m)) m.weight.assign(E.randn(m.weight.shape, { ...io, std }));
          else m.weight.assign(xavierUniform(m.weight.shape, 1, io));
          m.bias?.assign(0);
        }
        const table = this.yEmbedder.embeddingTable.weight;
        table.assign(E.randn(table.shape, { ...io, std }));
      }),
    );
  }

  /** The id of the null (unconditional) class. */
  get nullClass(): number {
    return this.cfg.numClasses;
  }

  /** Latent shape per sample [C, h, w]. */
  get latentShape(): [number, number, number] {
    return [this.cfg.latentChannels, this.cfg.grid[0], this.cfg.grid[1]];
  }

  /** Class ids as an i32 [B] tensor on the model's backend (numbers are range-checked). */
  classTensor(classes: E.Tensor | readonly number[], what = 'DiffusionTransformer'): E.Tensor {
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

  /** In training mode, replaces each label by the null class with probability classDropout. */
  dropClasses(classes: E.Tensor): E.Tensor {
    const p = this.cfg.classDropout;
    if (!this.training || p === 0) return classes;
    const drop = E.bernoulli(p, [classes.shape[0]!], { generator: this.generator, backend: this.backend });
    return E.where(drop, this.nullClass, classes);
  }

  /**
   * Velocity prediction: x f32 [B, C, h, w] (normalized latents at time t), t f32 [B] in [0, 1]
   * (or one number for the whole batch), y i32 [B] class ids in [0, numClasses] -> [B, C, h, w].
   * In training mode class dropout applies.
   */
  forward(x: E.Tensor, t: E.Tensor | number, y: E.Tensor | readonly number[]): E.Tensor {
    const what = 'DiffusionTransformer.forward';
    const [C, h, w] = this.latentShape;
    if (x.dtype !== 'f32' || x.rank !== 4 || x.shape[1] !== C || x.shape[2] !== h || x.shape[3] !== w) {
      throw new Error(`${what}: x must be f32 [B, ${C}, ${h}, ${w}], got ${x.describe()}`);
    }
    if (x.backend !== this.backend) throw new Error(`${what}: x is on ${x.backend.name}, the model on ${this.backend.name}`);
    const B = x.shape[0]!;
    const cls = this.classTensor(y, what);
    if (cls.shape[0] !== B) throw new Error(`${what}: ${cls.shape[0]} class ids for a batch of ${B}`);
    let tt: E.Tensor;
    if (typeof t === 'number') tt = E.full([B], t, { backend: this.backend });
    else {
      if (t.dtype !== 'f32' || t.size !== B || t.rank > 1) throw new Error(`${what}: t must be f32 [${B}], got ${t.describe()}`);
      tt = t;
    }
    const p = this.cfg.patchSize;
    let hid = this.xEmbedder.forward(patchifyLatents(x, p)).add(this.posEmbed); // [B, T, D]
    const c = this.tEmbedder.forward(tt).add(this.yEmbedder.forward(this.dropClasses(cls))); // [B, D]
    for (const blk of this.blocks.items) hid = blk.forward(hid, { cond: c });
    return unpatchifyLatents(this.finalLayer.forward(hid, c), p, C, this.cfg.grid);
  }

  override dispose(): void {
    super.dispose();
    this.tEmbedder.dispose(); // its frequency table (disposing the freed parameters again is a no-op)
    this.posEmbed.dispose(); // a kept constant outside the state dict: it lives as long as the module
  }
}
