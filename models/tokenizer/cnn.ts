/**
 * VQGAN-style CNN encoder and decoder (taming-transformers' names: encoder.conv_in,
 * encoder.down.0.block.0.norm1, encoder.down.0.downsample.conv, encoder.norm_out, ...).
 *
 * The default config is the reference PyTorch tokenizer of the performance anchor
 * (shared/reference/torch_step_bench.py, class Tok): 32x32x1 input, ch 64, chMult [1, 2, 2]
 * (32 -> 16 -> 8: 64 tokens), 2 residual blocks per level, no attention and no mid blocks, a 1x1
 * encoder output conv to d = 16, a 3x3 decoder input conv, nearest-upsample + 3x3 conv, K = 1024.
 * Same layers, shapes and parameter count (3,159,889); `referenceNameMap` maps our names to its
 * names. Differences that change neither parameters nor cost: GroupNorm eps is 1e-6 (VQGAN's)
 * where the reference keeps PyTorch's 1e-5, and GroupNorm falls back to fewer groups for widths
 * below 32 (the reference needs multiples of 32). Every GroupNorm followed by SiLU (norm_out and
 * the residual blocks' norms) is one fused GroupNorm layer with `act: 'silu'`: same parameters.
 */
import type * as E from '../../engine/index.js';
import { Conv2d, DownsampleConv, GroupNorm, Module, ModuleList, ResBlock, UpsampleConv, type InitOptions } from '../../nn/index.js';

export interface CnnTokenizerConfig {
  /** Image channels (1 for Fashion-MNIST). */
  inChannels: number;
  /** Base width. */
  ch: number;
  /** Width multiplier per level; each level but the last halves the resolution. */
  chMult: number[];
  /** Residual blocks per level (encoder and decoder). */
  numResBlocks: number;
  /** Extra residual blocks at the lowest resolution (encoder after the last level, decoder before the first); the reference has none. */
  midBlocks: number;
  /** Codebook size K. */
  codebookSize: number;
  /** Code dimension d. */
  codeDim: number;
  dropout: number;
  /** GroupNorm groups (reduced to a divisor of the width when it does not divide it). */
  normGroups: number;
}

export const DEFAULT_CNN_CONFIG: Readonly<CnnTokenizerConfig> = Object.freeze({
  inChannels: 1,
  ch: 64,
  chMult: [1, 2, 2],
  numResBlocks: 2,
  midBlocks: 0,
  codebookSize: 1024,
  codeDim: 16,
  dropout: 0,
  normGroups: 32,
});

export function resolveCnnConfig(c: Partial<CnnTokenizerConfig> = {}): CnnTokenizerConfig {
  const cfg: CnnTokenizerConfig = { ...DEFAULT_CNN_CONFIG, ...c, chMult: [...(c.chMult ?? DEFAULT_CNN_CONFIG.chMult)] };
  const posInt = (v: number) => Number.isInteger(v) && v > 0;
  const bad: string[] = [];
  for (const k of ['inChannels', 'ch', 'numResBlocks', 'codebookSize', 'codeDim', 'normGroups'] as const) if (!posInt(cfg[k])) bad.push(`${k} must be a positive integer, got ${cfg[k]}`);
  if (!(Number.isInteger(cfg.midBlocks) && cfg.midBlocks >= 0)) bad.push(`midBlocks must be a non-negative integer, got ${cfg.midBlocks}`);
  if (!cfg.chMult.length || !cfg.chMult.every(posInt)) bad.push(`chMult must be a non-empty list of positive integers, got [${cfg.chMult.join(', ')}]`);
  if (!(cfg.dropout >= 0 && cfg.dropout < 1)) bad.push(`dropout must be in [0, 1), got ${cfg.dropout}`);
  if (bad.length) throw new Error(`tokenizer config: ${bad.join('; ')}`);
  return cfg;
}

/** Downsampling factor of a config: 2^(levels - 1). */
export function downFactor(cfg: Pick<CnnTokenizerConfig, 'chMult'>): number {
  return 2 ** (cfg.chMult.length - 1);
}

function groupsFor(c: number, g: number): number {
  let k = Math.min(g, c);
  while (c % k) k--;
  return k;
}

/** A container whose children are named by level index, registered in the order given. */
class Levels<M extends Module> extends Module {
  readonly byLevel = new Map<number, M>();
  add(level: number, m: M): void {
    this.module(String(level), m);
    this.byLevel.set(level, m);
  }
  at(level: number): M {
    const m = this.byLevel.get(level);
    if (!m) throw new RangeError(`no level ${level}`);
    return m;
  }
}

export class DownLevel extends Module {
  readonly block: ModuleList<ResBlock>;
  readonly downsample: DownsampleConv | null;
  constructor(blocks: ResBlock[], down: DownsampleConv | null) {
    super();
    this.block = this.module('block', new ModuleList(blocks));
    this.downsample = down ? this.module('downsample', down) : null;
  }
}

export class UpLevel extends Module {
  readonly block: ModuleList<ResBlock>;
  readonly upsample: UpsampleConv | null;
  constructor(blocks: ResBlock[], up: UpsampleConv | null) {
    super();
    this.block = this.module('block', new ModuleList(blocks));
    this.upsample = up ? this.module('upsample', up) : null;
  }
}

export class Encoder extends Module {
  readonly conv_in: Conv2d;
  readonly down: Levels<DownLevel>;
  readonly mid: ModuleList<ResBlock> | null;
  readonly norm_out: GroupNorm;
  readonly conv_out: Conv2d;
  /** outChannels: codeDim, or 2 * codeDim for a KL tokenizer's mean and log-variance. */
  constructor(readonly cfg: CnnTokenizerConfig, init: InitOptions = {}, outChannels = cfg.codeDim) {
    super();
    const { ch, chMult, numResBlocks } = cfg;
    const rb = { ...init, normGroups: cfg.normGroups, dropout: cfg.dropout };
    this.conv_in = this.module('conv_in', new Conv2d(cfg.inChannels, ch, 3, { ...init, padding: 1 }));
    this.down = this.module('down', new Levels<DownLevel>());
    let c = ch;
    chMult.forEach((m, i) => {
      const blocks: ResBlock[] = [];
      for (let j = 0; j < numResBlocks; j++) {
        blocks.push(new ResBlock(c, ch * m, rb));
        c = ch * m;
      }
      this.down.add(i, new DownLevel(blocks, i < chMult.length - 1 ? new DownsampleConv(c, c, init) : null));
    });
    this.mid = cfg.midBlocks > 0 ? this.module('mid', new ModuleList(Array.from({ length: cfg.midBlocks }, () => new ResBlock(c, c, rb)))) : null;
    this.norm_out = this.module('norm_out', new GroupNorm(groupsFor(c, cfg.normGroups), c, { ...init, eps: 1e-6, act: 'silu' }));
    this.conv_out = this.module('conv_out', new Conv2d(c, outChannels, 1, init));
  }
  /** [B, inChannels, H, W] -> unnormalized latents [B, outChannels, H / f, W / f]. */
  forward(x: E.Tensor): E.Tensor {
    let h = this.conv_in.forward(x);
    for (let i = 0; i < this.cfg.chMult.length; i++) {
      const lvl = this.down.at(i);
      for (const b of lvl.block) h = b.forward(h);
      if (lvl.downsample) h = lvl.downsample.forward(h);
    }
    if (this.mid) for (const b of this.mid) h = b.forward(h);
    return this.conv_out.forward(this.norm_out.forward(h));
  }
  /** Latents as tokens [B, h*w, outChannels] (row-major over the h x w grid), and the grid. */
  encodeTokens(x: E.Tensor): { z: E.Tensor; h: number; w: number } {
    const z = this.forward(x);
    const [B, d, h, w] = z.shape as [number, number, number, number];
    return { z: z.permute([0, 2, 3, 1]).reshape([B, h * w, d]), h, w };
  }
}

export class Decoder extends Module {
  readonly conv_in: Conv2d;
  readonly mid: ModuleList<ResBlock> | null;
  readonly up: Levels<UpLevel>;
  readonly norm_out: GroupNorm;
  readonly conv_out: Conv2d;
  constructor(readonly cfg: CnnTokenizerConfig, init: InitOptions = {}) {
    super();
    const { ch, chMult, numResBlocks } = cfg;
    const rb = { ...init, normGroups: cfg.normGroups, dropout: cfg.dropout };
    let c = ch * chMult[chMult.length - 1]!;
    this.conv_in = this.module('conv_in', new Conv2d(cfg.codeDim, c, 3, { ...init, padding: 1 }));
    this.mid = cfg.midBlocks > 0 ? this.module('mid', new ModuleList(Array.from({ length: cfg.midBlocks }, () => new ResBlock(c, c, rb)))) : null;
    // Registered in processing order (deepest level first), as the reference builds them.
    this.up = this.module('up', new Levels<UpLevel>());
    for (let i = chMult.length - 1; i >= 0; i--) {
      const blocks: ResBlock[] = [];
      for (let j = 0; j < numResBlocks; j++) {
        blocks.push(new ResBlock(c, ch * chMult[i]!, rb));
        c = ch * chMult[i]!;
      }
      this.up.add(i, new UpLevel(blocks, i > 0 ? new UpsampleConv(c, c, init) : null));
    }
    this.norm_out = this.module('norm_out', new GroupNorm(groupsFor(c, cfg.normGroups), c, { ...init, eps: 1e-6, act: 'silu' }));
    this.conv_out = this.module('conv_out', new Conv2d(c, cfg.inChannels, 3, { ...init, padding: 1 }));
  }
  /** Quantized latents [B, codeDim, h, w] -> images [B, inChannels, h * f, w * f]. */
  forward(z: E.Tensor): E.Tensor {
    let h = this.conv_in.forward(z);
    if (this.mid) for (const b of this.mid) h = b.forward(h);
    for (let i = this.cfg.chMult.length - 1; i >= 0; i--) {
      const lvl = this.up.at(i);
      for (const b of lvl.block) h = b.forward(h);
      if (lvl.upsample) h = lvl.upsample.forward(h);
    }
    return this.conv_out.forward(this.norm_out.forward(h));
  }
  /** Images from tokens [B, h*w, codeDim] on an h x w grid. */
  decodeTokens(z: E.Tensor, h: number, w: number): E.Tensor {
    const [B, , d] = z.shape as [number, number, number];
    return this.forward(z.reshape([B, h, w, d]).permute([0, 3, 1, 2]));
  }
  /** The last layer's weight (for the GAN loss's adaptive weight). */
  get lastLayer(): E.Tensor {
    return this.conv_out.weight;
  }
}

/**
 * Our parameter names -> the reference PyTorch model's (torch_step_bench.py: cin, enc.<i>, code,
 * dec.<i>, residual blocks n1/c1/n2/c2/sk), for a config without mid blocks. Useful to load its
 * state dicts and to compare the two.
 */
export function referenceNameMap(config: Partial<CnnTokenizerConfig> = {}): Map<string, string> {
  const cfg = resolveCnnConfig(config);
  if (cfg.midBlocks) throw new Error('referenceNameMap: the reference model has no mid blocks');
  const map = new Map<string, string>();
  const wb = (ours: string, ref: string) => {
    map.set(`${ours}.weight`, `${ref}.weight`);
    map.set(`${ours}.bias`, `${ref}.bias`);
  };
  const res = (ours: string, ref: string, cin: number, cout: number) => {
    wb(`${ours}.norm1`, `${ref}.n1`);
    wb(`${ours}.conv1`, `${ref}.c1`);
    wb(`${ours}.norm2`, `${ref}.n2`);
    wb(`${ours}.conv2`, `${ref}.c2`);
    if (cin !== cout) wb(`${ours}.nin_shortcut`, `${ref}.sk`);
  };
  const { ch, chMult: mult, numResBlocks: R } = cfg;
  const L = mult.length;
  wb('encoder.conv_in', 'cin'); // enc.0 is the same module as cin
  let k = 1;
  let c = ch;
  for (let i = 0; i < L; i++) {
    for (let j = 0; j < R; j++) {
      res(`encoder.down.${i}.block.${j}`, `enc.${k++}`, c, ch * mult[i]!);
      c = ch * mult[i]!;
    }
    if (i < L - 1) wb(`encoder.down.${i}.downsample.conv`, `enc.${k++}`);
  }
  wb('encoder.norm_out', `enc.${k}`);
  wb('encoder.conv_out', `enc.${k + 2}`); // enc.<k+1> is the SiLU
  map.set('quantize.embedding.weight', 'code.weight');
  wb('decoder.conv_in', 'dec.0');
  k = 1;
  for (let i = L - 1; i >= 0; i--) {
    for (let j = 0; j < R; j++) {
      res(`decoder.up.${i}.block.${j}`, `dec.${k++}`, c, ch * mult[i]!);
      c = ch * mult[i]!;
    }
    if (i > 0) {
      wb(`decoder.up.${i}.upsample.conv`, `dec.${k + 1}`); // dec.<k> is the Upsample
      k += 2;
    }
  }
  wb('decoder.norm_out', `dec.${k}`);
  wb('decoder.conv_out', `dec.${k + 2}`);
  return map;
}
