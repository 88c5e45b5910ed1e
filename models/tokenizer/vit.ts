/**
 * A small ViT tokenizer with learnable latent tokens (TiTok / RobusTok's 1D tokenizer design):
 *
 *   encoder: image -> P = (S / p)^2 patches -> patch_embed (Linear on the flattened C*p*p pixels,
 *            i.e. a stride-p convolution) + positional_embedding; concatenated with N learnable
 *            latent_tokens (+ latent_token_positional_embedding); ln_pre; pre-norm transformer
 *            blocks; the N latent outputs -> ln_post -> proj_out to the code dimension: [B, N, d].
 *   decoder: quantized latents [B, N, d] -> decoder_embed to the width (+ latent positions); one
 *            learnable mask_token repeated at every patch position (+ patch positions) in front;
 *            ln_pre; transformer blocks; the P patch outputs -> ln_post -> proj_out to C*p*p
 *            pixels (the last layer, used by the GAN's adaptive weight) -> unpatchify [B, C, S, S].
 *
 * The N latent tokens are laid out as a tokenGrid [h, w] (h * w = N) so code indices stay
 * i32 [B, h, w] like the CNN's; the grid is only a layout: the tokens have no spatial meaning.
 * Embeddings are initialized N(0, width^-1/2) as TiTok does. Parameter names follow TiTok's
 * (encoder.patch_embed, encoder.positional_embedding, encoder.latent_tokens, ..., decoder.mask_token),
 * with Linears where TiTok has 1x1 convolutions (patch_embed, proj_out).
 * No dropout (the config's dropout is the CNN's). The forwards run in scopes (nn/module.ts), as
 * every module's.
 */
import * as E from '../../engine/index.js';
import { LayerNorm, Linear, Module, ModuleList, normal, TransformerBlock, type InitOptions } from '../../nn/index.js';

export interface VitTokenizerConfig {
  /** Image channels (1 for Fashion-MNIST). */
  inChannels: number;
  /** Image side S: the ViT takes exactly S x S images. */
  imageSize: number;
  /** Patch side p (divides imageSize): (S / p)^2 patch tokens. */
  patchSize: number;
  /** Transformer width. */
  width: number;
  /** Transformer blocks of the encoder, and of the decoder. */
  depth: number;
  /** Attention heads (divide the width). */
  heads: number;
  /** MLP hidden size = round(width * mlpRatio). */
  mlpRatio: number;
  /** Number of latent tokens N (the image's code length). */
  numLatentTokens: number;
  /** Layout [h, w] of the N latent tokens (h * w = N); default the square grid when N is a square. */
  tokenGrid: [number, number];
  /** Codebook size K. */
  codebookSize: number;
  /** Code dimension d. */
  codeDim: number;
}

/**
 * Defaults for 32x32 images: 4x4 patches (64 patch tokens), 64 latent tokens (8x8 codes, as the
 * CNN default), width 192 with 3 heads (ViT-Tiny's), 4 blocks in the encoder and 4 in the
 * decoder: 3,651,168 parameters with K = 1024, d = 16 (the CNN default has 3,159,889).
 */
export const DEFAULT_VIT_CONFIG: Readonly<VitTokenizerConfig> = Object.freeze({
  inChannels: 1,
  imageSize: 32,
  patchSize: 4,
  width: 192,
  depth: 4,
  heads: 3,
  mlpRatio: 4,
  numLatentTokens: 64,
  tokenGrid: [8, 8] as [number, number],
  codebookSize: 1024,
  codeDim: 16,
});

/**
 * Fills in the defaults and checks a ViT config. tokenGrid and numLatentTokens determine each
 * other: give either (a non-square N needs its tokenGrid), or both if they agree.
 */
export function resolveVitConfig(c: Partial<VitTokenizerConfig> = {}): VitTokenizerConfig {
  const bad: string[] = [];
  let grid: [number, number];
  if (c.tokenGrid !== undefined) {
    const g = c.tokenGrid as unknown;
    if (!Array.isArray(g) || g.length !== 2) {
      bad.push(`tokenGrid must be [h, w], got ${JSON.stringify(g)}`);
      grid = [...DEFAULT_VIT_CONFIG.tokenGrid];
    } else grid = [g[0] as number, g[1] as number];
  } else if (c.numLatentTokens !== undefined) {
    const s = Math.round(Math.sqrt(c.numLatentTokens));
    if (s * s !== c.numLatentTokens) bad.push(`numLatentTokens ${c.numLatentTokens} is not a square: give tokenGrid [h, w] with h * w = ${c.numLatentTokens}`);
    grid = [s, s];
  } else grid = [...DEFAULT_VIT_CONFIG.tokenGrid];
  // Only this config's own keys (c may be a whole TokenizerConfig).
  const own = Object.fromEntries(Object.keys(DEFAULT_VIT_CONFIG).map((k) => [k, c[k as keyof VitTokenizerConfig] ?? DEFAULT_VIT_CONFIG[k as keyof VitTokenizerConfig]]));
  const cfg = { ...own, tokenGrid: grid, numLatentTokens: c.numLatentTokens ?? grid[0] * grid[1] } as VitTokenizerConfig;
  const posInt = (v: unknown) => Number.isInteger(v) && (v as number) > 0;
  for (const k of ['inChannels', 'imageSize', 'patchSize', 'width', 'depth', 'heads', 'numLatentTokens', 'codebookSize', 'codeDim'] as const) {
    if (!posInt(cfg[k])) bad.push(`${k} must be a positive integer, got ${cfg[k]}`);
  }
  if (!grid.every(posInt)) bad.push(`tokenGrid must be two positive integers, got [${grid.join(', ')}]`);
  else if (posInt(cfg.numLatentTokens) && grid[0] * grid[1] !== cfg.numLatentTokens) bad.push(`tokenGrid [${grid.join(', ')}] has ${grid[0] * grid[1]} tokens, numLatentTokens is ${cfg.numLatentTokens}`);
  if (posInt(cfg.imageSize) && posInt(cfg.patchSize) && cfg.imageSize % cfg.patchSize) bad.push(`patchSize ${cfg.patchSize} must divide imageSize ${cfg.imageSize}`);
  if (posInt(cfg.width) && posInt(cfg.heads) && cfg.width % cfg.heads) bad.push(`width ${cfg.width} must be divisible by heads ${cfg.heads}`);
  if (!(cfg.mlpRatio > 0) || !Number.isFinite(cfg.mlpRatio)) bad.push(`mlpRatio must be a positive number, got ${cfg.mlpRatio}`);
  if (bad.length) throw new Error(`tokenizer config (vit): ${bad.join('; ')}`);
  return cfg;
}

/** [B, C, S, S] -> [B, (S/p)^2, C*p*p], patches in row-major order, pixels in (c, y, x) order (a conv weight's). */
export function patchify(x: E.Tensor, p: number): E.Tensor {
  const [B, C, H, W] = x.shape as [number, number, number, number];
  const gh = H / p;
  const gw = W / p;
  return x.reshape([B, C, gh, p, gw, p]).permute([0, 2, 4, 1, 3, 5]).reshape([B, gh * gw, C * p * p]);
}

/** The inverse of patchify: [B, gh*gw, C*p*p] -> [B, C, gh*p, gw*p]. */
export function unpatchify(t: E.Tensor, p: number, C: number, gh: number, gw: number): E.Tensor {
  const B = t.shape[0]!;
  return t.reshape([B, gh, gw, C, p, p]).permute([0, 3, 1, 4, 2, 5]).reshape([B, C, gh * p, gw * p]);
}

function blocks(cfg: VitTokenizerConfig, init: InitOptions): ModuleList<TransformerBlock> {
  return new ModuleList(Array.from({ length: cfg.depth }, () => new TransformerBlock(cfg.width, cfg.heads, { ...init, mlpRatio: cfg.mlpRatio })));
}

/** [n, width] -> [B, n, width] (a broadcast view). */
function batched(t: E.Tensor, B: number): E.Tensor {
  return t.unsqueeze(0).expand([B, -1, -1]);
}

export class VitEncoder extends Module {
  readonly patch_embed: Linear;
  readonly positional_embedding: E.Tensor;
  readonly latent_tokens: E.Tensor;
  readonly latent_token_positional_embedding: E.Tensor;
  readonly ln_pre: LayerNorm;
  readonly transformer: ModuleList<TransformerBlock>;
  readonly ln_post: LayerNorm;
  readonly proj_out: Linear;
  /** Patch tokens per image. */
  readonly numPatches: number;

  /** outDim: codeDim, or 2 * codeDim for a KL tokenizer's mean and log-variance. */
  constructor(readonly cfg: VitTokenizerConfig, init: InitOptions = {}, outDim = cfg.codeDim) {
    super();
    const { width, patchSize: p, inChannels: C } = cfg;
    const scale = width ** -0.5;
    this.numPatches = (cfg.imageSize / p) ** 2;
    this.patch_embed = this.module('patch_embed', new Linear(C * p * p, width, init));
    this.positional_embedding = this.param('positional_embedding', normal([this.numPatches, width], 0, scale, init));
    this.latent_tokens = this.param('latent_tokens', normal([cfg.numLatentTokens, width], 0, scale, init));
    this.latent_token_positional_embedding = this.param('latent_token_positional_embedding', normal([cfg.numLatentTokens, width], 0, scale, init));
    this.ln_pre = this.module('ln_pre', new LayerNorm(width, init));
    this.transformer = this.module('transformer', blocks(cfg, init));
    this.ln_post = this.module('ln_post', new LayerNorm(width, init));
    this.proj_out = this.module('proj_out', new Linear(width, outDim, init));
  }

  /** [B, C, S, S] -> unnormalized latents [B, N, outDim]. */
  forward(x: E.Tensor): E.Tensor {
    const { imageSize: S, inChannels: C, patchSize: p } = this.cfg;
    if (x.rank !== 4 || x.shape[1] !== C || x.shape[2] !== S || x.shape[3] !== S) {
      throw new Error(`VitEncoder: expected images [B, ${C}, ${S}, ${S}] (the ViT tokenizer takes exactly imageSize x imageSize), got ${E.fmtShape(x.shape)}`);
    }
    const B = x.shape[0]!;
    const P = this.numPatches;
    const patches = this.patch_embed.forward(patchify(x, p)).add(this.positional_embedding);
    const latents = batched(this.latent_tokens.add(this.latent_token_positional_embedding), B);
    let h = this.ln_pre.forward(E.concat([patches, latents], 1));
    for (const b of this.transformer) h = b.forward(h);
    return this.proj_out.forward(this.ln_post.forward(h.slice([null, [P, P + this.cfg.numLatentTokens]])));
  }

  /** Latent tokens [B, h*w, d] on the config's tokenGrid [h, w]. */
  encodeTokens(x: E.Tensor): { z: E.Tensor; h: number; w: number } {
    const [h, w] = this.cfg.tokenGrid;
    return { z: this.forward(x), h, w };
  }
}

export class VitDecoder extends Module {
  readonly decoder_embed: Linear;
  readonly latent_token_positional_embedding: E.Tensor;
  readonly mask_token: E.Tensor;
  readonly positional_embedding: E.Tensor;
  readonly ln_pre: LayerNorm;
  readonly transformer: ModuleList<TransformerBlock>;
  readonly ln_post: LayerNorm;
  readonly proj_out: Linear;
  readonly numPatches: number;

  /** outDim: codeDim, or 2 * codeDim for a KL tokenizer's mean and log-variance. */
  constructor(readonly cfg: VitTokenizerConfig, init: InitOptions = {}, outDim = cfg.codeDim) {
    super();
    const { width, patchSize: p, inChannels: C } = cfg;
    const scale = width ** -0.5;
    this.numPatches = (cfg.imageSize / p) ** 2;
    this.decoder_embed = this.module('decoder_embed', new Linear(cfg.codeDim, width, init));
    this.latent_token_positional_embedding = this.param('latent_token_positional_embedding', normal([cfg.numLatentTokens, width], 0, scale, init));
    this.mask_token = this.param('mask_token', normal([1, width], 0, scale, init));
    this.positional_embedding = this.param('positional_embedding', normal([this.numPatches, width], 0, scale, init));
    this.ln_pre = this.module('ln_pre', new LayerNorm(width, init));
    this.transformer = this.module('transformer', blocks(cfg, init));
    this.ln_post = this.module('ln_post', new LayerNorm(width, init));
    this.proj_out = this.module('proj_out', new Linear(width, C * p * p, init));
  }

  /** Quantized latents [B, N, codeDim] -> images [B, C, S, S]. */
  forward(z: E.Tensor): E.Tensor {
    const { numLatentTokens: N, codeDim: d, imageSize: S, patchSize: p, inChannels: C } = this.cfg;
    if (z.rank !== 3 || z.shape[1] !== N || z.shape[2] !== d) throw new Error(`VitDecoder: expected latents [B, ${N}, ${d}], got ${E.fmtShape(z.shape)}`);
    const B = z.shape[0]!;
    const P = this.numPatches;
    const latents = this.decoder_embed.forward(z).add(this.latent_token_positional_embedding);
    const masks = batched(this.mask_token.add(this.positional_embedding), B);
    let h = this.ln_pre.forward(E.concat([masks, latents], 1));
    for (const b of this.transformer) h = b.forward(h);
    const pixels = this.proj_out.forward(this.ln_post.forward(h.slice([null, [0, P]])));
    return unpatchify(pixels, p, C, S / p, S / p);
  }

  /** Images from latent tokens [B, h*w, d] (the grid must be the config's tokenGrid). */
  decodeTokens(z: E.Tensor, h: number, w: number): E.Tensor {
    const [gh, gw] = this.cfg.tokenGrid;
    if (h !== gh || w !== gw) throw new Error(`VitDecoder: codes on a ${h}x${w} grid, the config's tokenGrid is ${gh}x${gw}`);
    return this.forward(z);
  }

  /** The last layer's weight [C*p*p, width] (for the GAN loss's adaptive weight). */
  get lastLayer(): E.Tensor {
    return this.proj_out.weight;
  }
}
