/**
 * A checkpoint the CLI wrote (train-tokenizer, posttrain, train-ar, train-diffusion), from its
 * bytes, rebuilt on a backend: what node/train.ts loadModelCheckpoint and node/train-diffusion.ts
 * loadDiffusionCheckpoint do with a path, here with a dropped File's ArrayBuffer. The layout:
 * weights under model.* (a DiT's EMA weights under ema.*, preferred as the CLI samples them),
 * AdamW moments under optim.* (skipped: never uploaded), the resolved model config in the
 * `extra` metadata. Every refusal is a CheckpointError whose one-line message names the file and
 * says what it is instead, for the page to show.
 */
import * as E from '../../../engine/index.js';
import { decodeSafetensors, entriesToTensors, getJsonOr, type DecodedTensor } from '../../../nn/checkpoint/index.js';
import type { Module } from '../../../nn/index.js';
import { validateConfig, type ConfigSchema } from '../../../models/config-schema.js';
import { AR_CONFIG_SCHEMA, DIFFUSION_CONFIG_SCHEMA, TOKENIZER_CONFIG_SCHEMA } from '../../../models/config-schemas.js';
import { VQTokenizer, type TokenizerConfig } from '../../../models/tokenizer/index.js';
import { ARTransformer, type ARConfigInput } from '../../../models/ar/index.js';
import { DiffusionTransformer, type DiffusionConfigInput } from '../../../models/diffusion/index.js';

export class CheckpointError extends Error {
  override name = 'CheckpointError';
}

interface LoadedBase {
  file: string;
  step: number | null;
  /** The `extra` metadata (config, dataset, ...). */
  extra: Record<string, unknown>;
}

export type Loaded =
  | (LoadedBase & { kind: 'tokenizer'; model: VQTokenizer })
  | (LoadedBase & { kind: 'ar'; model: ARTransformer })
  | (LoadedBase & { kind: 'dit'; model: DiffusionTransformer; weights: 'ema' | 'raw' });

const WRITERS = 'webgpu-tok train-tokenizer, posttrain, train-ar or train-diffusion';

/** What the config in a checkpoint's metadata builds, from the fields only that model has. */
function kindOf(config: Record<string, unknown>): 'tokenizer' | 'ar' | 'dit' | null {
  if ('latentChannels' in config) return 'dit';
  if ('vocabSize' in config) return 'ar';
  if ('codebookSize' in config || 'quantizer' in config) return 'tokenizer';
  return null;
}

/** Parses and rebuilds a checkpoint in eval mode on `backend`; throws CheckpointError. */
export function readCheckpoint(bytes: Uint8Array, file: string, backend: E.Backend): Loaded {
  let decoded: ReturnType<typeof decodeSafetensors>;
  try {
    decoded = decodeSafetensors(bytes);
  } catch (e) {
    throw new CheckpointError(`${file}: not a readable safetensors file (${(e as Error).message})`);
  }
  const { tensors, metadata } = decoded;
  if ('featnet_config' in metadata) throw new CheckpointError(`${file} is a FeatNet checkpoint (the feature network of the FID metrics), not a tokenizer or a generator`);
  if ('ar_tokens' in metadata || 'latents' in metadata) throw new CheckpointError(`${file} is a data cache of train-ar or train-diffusion (encoded training images), not a model: load the checkpoint.safetensors of that run folder`);
  let extra: Record<string, unknown>;
  let step: number | null;
  try {
    extra = getJsonOr<Record<string, unknown>>(metadata, 'extra', {});
    step = getJsonOr<number | null>(metadata, 'step', null);
  } catch (e) {
    throw new CheckpointError(`${file}: unreadable metadata (${(e as Error).message})`);
  }
  const config = extra?.config;
  if (!config || typeof config !== 'object' || Array.isArray(config)) {
    throw new CheckpointError(`${file}: no model config in its metadata: not a checkpoint written by ${WRITERS} (a bare state dict cannot be rebuilt without one)`);
  }
  const cfg = config as Record<string, unknown>;
  const kind = kindOf(cfg);
  if (!kind) throw new CheckpointError(`${file}: its model config (keys ${Object.keys(cfg).slice(0, 6).join(', ')}...) is neither a tokenizer's, an AR transformer's nor a DiT's`);
  const schema: ConfigSchema = kind === 'dit' ? DIFFUSION_CONFIG_SCHEMA : kind === 'ar' ? AR_CONFIG_SCHEMA : TOKENIZER_CONFIG_SCHEMA;
  try {
    validateConfig(`${file} (metadata)`, schema, cfg);
  } catch (e) {
    throw new CheckpointError((e as Error).message);
  }
  const useEma = kind === 'dit' && Object.keys(tensors).some((k) => k.startsWith('ema.'));
  const prefix = useEma ? 'ema.' : 'model.';
  const picked: Record<string, DecodedTensor> = {};
  for (const [k, t] of Object.entries(tensors)) if (k.startsWith(prefix)) picked[k.slice(prefix.length)] = t;
  if (Object.keys(picked).length === 0) throw new CheckpointError(`${file}: no ${prefix}* tensors (holds ${Object.keys(tensors).slice(0, 4).join(', ') || 'no tensors'}): not a checkpoint written by ${WRITERS}`);

  // The weights are overwritten: a fixed generator keeps the page's default one untouched.
  const init = { backend, generator: new E.Generator(0) };
  let model: Module;
  try {
    model = kind === 'dit' ? new DiffusionTransformer(cfg as DiffusionConfigInput, init) : kind === 'ar' ? new ARTransformer(cfg as unknown as ARConfigInput, init) : new VQTokenizer(cfg as Partial<TokenizerConfig>, init);
  } catch (e) {
    throw new CheckpointError(`${file}: its config does not build a model (${(e as Error).message})`);
  }
  const uploaded = entriesToTensors(picked, backend);
  try {
    model.loadStateDict(uploaded);
  } catch (e) {
    model.dispose();
    throw new CheckpointError(`${file}: the weights do not fit its config (${(e as Error).message})`);
  } finally {
    E.disposeAll(uploaded);
  }
  model.eval();
  if (kind === 'dit') return { kind, model: model as DiffusionTransformer, file, step, extra, weights: useEma ? 'ema' : 'raw' };
  if (kind === 'ar') return { kind, model: model as ARTransformer, file, step, extra };
  return { kind, model: model as VQTokenizer, file, step, extra };
}

/** One line describing a loaded model, for the page. */
export function describe(l: Loaded): string {
  const at = l.step !== null ? `, step ${l.step}` : '';
  if (l.kind === 'tokenizer') {
    const c = l.model.cfg;
    const [h, w] = l.model.tokenGrid(32, 32);
    return c.quantizer === 'kl' ? `KL tokenizer ${l.file} (${c.arch}, ${c.codeDim} latent channels, ${h}x${w} latents${at})` : `VQ tokenizer ${l.file} (${c.arch}, ${c.codebookSize} codes of ${c.codeDim}, ${h}x${w} tokens${at})`;
  }
  if (l.kind === 'ar') {
    const c = l.model.cfg;
    return `AR generator ${l.file} (dim ${c.dim}, depth ${c.depth}, ${c.numClasses} classes, ${c.grid ? `${c.grid[0]}x${c.grid[1]}` : c.seqLen} tokens of ${c.vocabSize}${at})`;
  }
  const c = l.model.cfg;
  return `DiT generator ${l.file} (dim ${c.dim}, depth ${c.depth}, ${c.numClasses} classes, ${c.grid[0]}x${c.grid[1]}x${c.latentChannels} latents, ${l.weights} weights${at})`;
}

/**
 * Why `gen` cannot be decoded by `tok` (null when it can): the generator must have been trained on
 * this kind of tokenizer's codes or latents, with the same vocabulary / channels and grid.
 */
export function mismatch(gen: Loaded, tok: VQTokenizer, tokFile: string): string | null {
  const [h, w] = tok.tokenGrid(32, 32);
  if (gen.kind === 'ar') {
    const c = gen.model.cfg;
    if (tok.continuous) return `${gen.file} is an AR generator of discrete codes, but ${tokFile} is a KL (continuous) tokenizer: load the VQ tokenizer it was trained on`;
    // An AR config without a grid (a non-square sequence) takes the tokenizer's when the lengths agree.
    const grid = c.grid ?? [h, w];
    if (c.vocabSize !== tok.cfg.codebookSize || c.seqLen !== h * w || grid[0] !== h || grid[1] !== w) {
      return `${gen.file} samples ${c.grid ? `${grid[0]}x${grid[1]}` : c.seqLen} tokens of ${c.vocabSize} codes, but ${tokFile} has ${tok.cfg.codebookSize} codes on a ${h}x${w} grid: load the tokenizer it was trained on`;
    }
  } else if (gen.kind === 'dit') {
    const c = gen.model.cfg;
    if (!tok.continuous) return `${gen.file} is a DiT over continuous latents, but ${tokFile} is a VQ tokenizer: load the KL tokenizer it was trained on`;
    if (c.latentChannels !== tok.cfg.codeDim || c.grid[0] !== h || c.grid[1] !== w) {
      return `${gen.file} samples ${c.grid[0]}x${c.grid[1]}x${c.latentChannels} latents, but ${tokFile} decodes ${h}x${w}x${tok.cfg.codeDim}: load the KL tokenizer it was trained on`;
    }
  }
  return null;
}
