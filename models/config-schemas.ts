/**
 * The schemas (models/config-schema.ts) of the configs that build the project's models: the image
 * tokenizer (VQ and KL, CNN and ViT), the AR transformer, the diffusion transformer (DiT), the
 * tokenizer's GAN discriminator and the FID feature network (FeatNet).
 * Field names are those of the config interfaces (TokenizerConfig, ARConfig, DiffusionConfig),
 * which are also what a checkpoint's metadata holds (`extra.config` is the resolved model.cfg).
 * The models' own resolve*Config functions keep checking the relations between fields (heads
 * divide the width, the patch divides the grid); the schemas add what they lacked: unknown keys,
 * upper bounds, and a bound on the whole model.
 *
 * Why these maxima: they are far above anything this project trains (the reference tokenizer has
 * 3.2M parameters, ch 64, 2 res blocks), and low enough that each field alone cannot build a model
 * the device cannot hold. Since fields multiply (ch x chMult x numResBlocks), each schema also
 * bounds the estimated parameter count by MAX_MODEL_PARAMS.
 */
import type { ConfigSchema, FieldSpec } from './config-schema.js';
import { DEFAULT_CNN_CONFIG } from './tokenizer/cnn.js';
import { DEFAULT_VIT_CONFIG } from './tokenizer/vit.js';
import { DEFAULT_AR_CONFIG } from './ar/model.js';
import { DEFAULT_DIFFUSION_CONFIG } from './diffusion/model.js';
import { DEFAULT_DISCRIMINATOR_CONFIG } from './tokenizer/discriminator.js';
import { FEATNET_DEFAULTS } from './features/featnet.js';

/**
 * 300M parameters: 1.2 GB of f32 weights, about 4.8 GB with the gradients and AdamW's two moments
 * (before activations): within a laptop GPU's memory and WebGPU's default buffer limits per
 * tensor, and 100x the reference models.
 */
export const MAX_MODEL_PARAMS = 300_000_000;

const int = (min: number, max: number): FieldSpec => ({ type: 'int', min, max });
const num = (min: number, max: number, maxExclusive = false): FieldSpec => ({ type: 'number', min, max, maxExclusive });
const prob = num(0, 1);
/** dropout-like rates: 1 would drop everything. */
const rate = num(0, 1, true);
const seed = int(0, Number.MAX_SAFE_INTEGER);
const pair = (max: number): FieldSpec => ({ type: 'array', of: int(1, max), minLength: 2, maxLength: 2 });
/** mlpRatio: above 0 (resolvers refuse 0), up to 16x the width. */
const mlpRatio = num(0.01, 16);

const PERTURBATION_SCHEMA: ConfigSchema = {
  name: 'perturbation',
  fields: { alpha: prob, beta: prob, delta: int(1, 262_144), deltaFraction: prob, anneal: { type: 'bool' } },
  required: ['alpha', 'beta'],
};

const LATENT_NOISE_SCHEMA: ConfigSchema = {
  name: 'latentNoise',
  fields: { beta: prob, tauMax: prob, gamma: num(0, 100), anneal: { type: 'bool' } },
  required: ['beta', 'tauMax', 'gamma'],
};

/** Parameters of a CNN tokenizer (encoder, decoder, codebook), from the layer shapes of cnn.ts. */
export function cnnTokenizerParams(c: { inChannels: number; ch: number; chMult: number[]; numResBlocks: number; midBlocks: number; codebookSize: number; codeDim: number }, kl = false): number {
  const conv = (ci: number, co: number, k: number) => ci * co * k * k + co;
  const res = (ci: number, co: number) => 2 * ci + conv(ci, co, 3) + 2 * co + conv(co, co, 3) + (ci !== co ? conv(ci, co, 1) : 0);
  let n = conv(c.inChannels, c.ch, 3);
  let ch = c.ch;
  c.chMult.forEach((m, i) => {
    for (let j = 0; j < c.numResBlocks; j++) (n += res(ch, c.ch * m)), (ch = c.ch * m);
    if (i < c.chMult.length - 1) n += conv(ch, ch, 3);
  });
  n += c.midBlocks * res(ch, ch) + 2 * ch + conv(ch, kl ? 2 * c.codeDim : c.codeDim, 1);
  ch = c.ch * c.chMult[c.chMult.length - 1]!;
  n += conv(c.codeDim, ch, 3) + c.midBlocks * res(ch, ch);
  for (let i = c.chMult.length - 1; i >= 0; i--) {
    for (let j = 0; j < c.numResBlocks; j++) (n += res(ch, c.ch * c.chMult[i]!)), (ch = c.ch * c.chMult[i]!);
    if (i > 0) n += conv(ch, ch, 3);
  }
  n += 2 * ch + conv(ch, c.inChannels, 3);
  return n + (kl ? 0 : c.codebookSize * c.codeDim);
}

/** Weights of one pre-norm transformer block of width d (attention, MLP, optional adaLN), biases ignored. */
function blockParams(d: number, ratio: number, swiglu: boolean, adaLN: boolean): number {
  const mlp = swiglu ? 3 * d * Math.round((2 / 3) * d * ratio) : 2 * d * Math.round(d * ratio);
  return 4 * d * d + mlp + (adaLN ? 6 * d * d : 0);
}

/** Parameters of a ViT tokenizer (dominant terms: blocks, embeddings, codebook). */
export function vitTokenizerParams(c: { inChannels: number; imageSize: number; patchSize: number; width: number; depth: number; mlpRatio: number; numLatentTokens: number; codebookSize: number; codeDim: number }): number {
  const patches = (c.imageSize / c.patchSize) ** 2;
  const pix = c.inChannels * c.patchSize * c.patchSize;
  return 2 * c.depth * blockParams(c.width, c.mlpRatio, false, false) + 2 * (pix + patches + c.numLatentTokens + c.codeDim) * c.width + c.codebookSize * c.codeDim;
}

/** Parameters of an AR transformer (dominant terms: blocks, token / class / position tables, head). */
export function arParams(a: { vocabSize: number; numClasses: number; seqLen: number; dim: number; depth: number; mlpRatio: number; mlp: string; adaLN: boolean }): number {
  return a.depth * blockParams(a.dim, a.mlpRatio, a.mlp === 'swiglu', a.adaLN) + (2 * a.vocabSize + a.numClasses + 1 + a.seqLen) * a.dim;
}

/** Parameters of a diffusion transformer (DiT: adaLN blocks, patch embedding, final layer, time and label embedders). */
export function diffusionParams(d: { latentChannels: number; patchSize: number; dim: number; depth: number; mlpRatio: number; freqDim: number; numClasses: number }): number {
  const pix = d.latentChannels * d.patchSize * d.patchSize;
  return d.depth * blockParams(d.dim, d.mlpRatio, false, true) + (2 * pix + d.freqDim + d.numClasses + 1 + 3 * d.dim) * d.dim;
}

function paramBound(params: number, field: string, what: string): { field: string; problem: string } | null {
  if (params <= MAX_MODEL_PARAMS) return null;
  return { field, problem: `${what} would have about ${(params / 1e6).toFixed(0)}M parameters, more than the ${MAX_MODEL_PARAMS / 1e6}M a device is assumed to hold: make it smaller` };
}

export const TOKENIZER_CONFIG_SCHEMA: ConfigSchema = {
  name: 'tokenizer config',
  fields: {
    arch: { type: 'enum', values: ['cnn', 'vit'] },
    quantizer: { type: 'enum', values: ['vq', 'kl'] },
    klWeight: num(0, 1e3),
    latentNoise: { type: 'oneOf', options: [{ type: 'enum', values: ['none', 'paper-continuous'] }, { type: 'object', schema: LATENT_NOISE_SCHEMA }] },
    recLoss: { type: 'enum', values: ['mse', 'l1'] },
    commitmentCost: num(0, 100),
    perturbation: { type: 'oneOf', options: [{ type: 'enum', values: ['none', 'paper'] }, { type: 'object', schema: PERTURBATION_SCHEMA }] },
    perturbSeed: seed,
    // CNN (cnn.ts) and shared
    inChannels: int(1, 16),
    ch: int(1, 1024),
    chMult: { type: 'array', of: int(1, 16), minLength: 1, maxLength: 8 },
    numResBlocks: int(1, 32),
    midBlocks: int(0, 32),
    codebookSize: int(1, 262_144),
    codeDim: int(1, 1024),
    dropout: rate,
    normGroups: int(1, 1024),
    // ViT (vit.ts)
    imageSize: int(1, 1024),
    patchSize: int(1, 1024),
    width: int(1, 4096),
    depth: int(1, 64),
    heads: int(1, 64),
    mlpRatio,
    numLatentTokens: int(1, 4096),
    tokenGrid: pair(4096),
  },
  whole: (c) => {
    const kl = c.quantizer === 'kl';
    if (c.arch === 'vit') {
      const v = { ...DEFAULT_VIT_CONFIG, ...c } as typeof DEFAULT_VIT_CONFIG;
      // Attention is quadratic in the tokens: (S / p)^2 patches per image.
      if ((v.imageSize / v.patchSize) ** 2 > 4096) return { field: 'patchSize', problem: `${v.imageSize}x${v.imageSize} images in ${v.patchSize}x${v.patchSize} patches make ${Math.round((v.imageSize / v.patchSize) ** 2)} tokens, more than 4096` };
      return paramBound(vitTokenizerParams(v), 'width', 'this ViT tokenizer (width x depth)');
    }
    const k = { ...DEFAULT_CNN_CONFIG, ...c } as typeof DEFAULT_CNN_CONFIG;
    return paramBound(cnnTokenizerParams(k, kl), 'ch', 'this CNN tokenizer (ch x chMult x numResBlocks)');
  },
};

export const AR_CONFIG_SCHEMA: ConfigSchema = {
  name: 'AR config',
  fields: {
    vocabSize: int(1, 262_144),
    numClasses: int(1, 100_000),
    seqLen: int(1, 4096),
    grid: pair(4096),
    dim: int(1, 8192),
    depth: int(1, 128),
    heads: int(1, 128),
    mlpRatio,
    mlp: { type: 'enum', values: ['swiglu', 'gelu'] },
    norm: { type: 'enum', values: ['rms', 'layer'] },
    pos: { type: 'enum', values: ['learned', 'rope2d'] },
    qkNorm: { type: 'enum', values: ['rms', 'layer', null] },
    adaLN: { type: 'bool' },
    classDropout: rate,
    dropout: rate,
    dropSeed: seed,
    initStd: num(0, 10),
  },
  required: ['vocabSize', 'numClasses', 'seqLen'],
  whole: (c) => {
    const a = { ...DEFAULT_AR_CONFIG, ...c } as typeof DEFAULT_AR_CONFIG & { vocabSize: number; numClasses: number; seqLen: number };
    return paramBound(arParams(a), 'dim', 'this AR transformer (dim x depth, vocabSize)');
  },
};

export const DIFFUSION_CONFIG_SCHEMA: ConfigSchema = {
  name: 'diffusion config',
  fields: {
    latentChannels: int(1, 1024),
    grid: pair(1024),
    numClasses: int(1, 100_000),
    patchSize: int(1, 64),
    dim: int(1, 8192),
    depth: int(1, 128),
    heads: int(1, 128),
    mlpRatio,
    freqDim: int(2, 8192),
    timeScale: num(1e-6, 1e9),
    classDropout: rate,
    dropSeed: seed,
    initStd: num(0, 10),
  },
  required: ['latentChannels', 'grid', 'numClasses'],
  whole: (c) => {
    const d = { ...DEFAULT_DIFFUSION_CONFIG, ...c } as typeof DEFAULT_DIFFUSION_CONFIG & { latentChannels: number; grid: [number, number]; numClasses: number };
    const tokens = (d.grid[0] / d.patchSize) * (d.grid[1] / d.patchSize);
    if (tokens > 4096) return { field: 'patchSize', problem: `a ${d.grid.join('x')} grid in ${d.patchSize}x${d.patchSize} patches makes ${Math.round(tokens)} tokens, more than 4096` };
    return paramBound(diffusionParams(d), 'dim', 'this diffusion transformer (dim x depth)');
  },
};

/** Parameters of the PatchGAN discriminator (4x4 convs; widths ch * min(2^n, 8)). */
export function discriminatorParams(d: { inChannels: number; ch: number; nLayers: number }): number {
  let n = d.inChannels * d.ch * 16 + d.ch;
  let c = d.ch;
  for (let i = 1; i <= d.nLayers; i++) {
    const co = d.ch * Math.min(2 ** i, 8);
    n += c * co * 16 + 2 * co;
    c = co;
  }
  return n + c * 16 + 1;
}

/** The tokenizer's PatchGAN discriminator (train-tokenizer --disc-ch; the `discConfig` of a checkpoint's losses). */
export const DISCRIMINATOR_CONFIG_SCHEMA: ConfigSchema = {
  name: 'discriminator config',
  fields: { inChannels: int(1, 16), ch: int(1, 1024), nLayers: int(1, 8), normGroups: int(1, 1024) },
  whole: (c) => paramBound(discriminatorParams({ ...DEFAULT_DISCRIMINATOR_CONFIG, ...c } as typeof DEFAULT_DISCRIMINATOR_CONFIG), 'ch', 'this discriminator (ch x nLayers)'),
};

/** Parameters of FeatNet (three 3x3 convs, fc1 over the 1/8-size map, fc2). */
export function featnetParams(f: { inChannels: number; imageSize: number; channels: number[]; featureDim: number; numClasses: number }): number {
  const [c1, c2, c3] = f.channels as [number, number, number];
  const conv = (ci: number, co: number) => ci * co * 9 + co;
  const s = Math.floor(f.imageSize / 8);
  return conv(f.inChannels, c1) + conv(c1, c2) + conv(c2, c3) + (c3 * s * s + 1) * f.featureDim + (f.featureDim + 1) * f.numClasses;
}

/** The FID feature network (models/features/featnet.ts): `featnet_config` of a --featnet / --perceptual-net file, train-featnet's --channels. */
export const FEATNET_CONFIG_SCHEMA: ConfigSchema = {
  name: 'FeatNet config',
  fields: {
    inChannels: int(1, 16),
    imageSize: int(8, 1024),
    channels: { type: 'array', of: int(1, 1024), minLength: 3, maxLength: 3 },
    featureDim: int(1, 8192),
    numClasses: int(1, 100_000),
  },
  whole: (c) => {
    const f = { ...FEATNET_DEFAULTS, ...c } as typeof FEATNET_DEFAULTS;
    if (f.imageSize % 8 !== 0) return { field: 'imageSize', problem: `must be a multiple of 8 (three 2x2 poolings), got ${f.imageSize}` };
    return paramBound(featnetParams(f), 'channels', 'this FeatNet (channels x imageSize^2 x featureDim)');
  },
};
