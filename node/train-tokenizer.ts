/**
 * Node-only: trains the VQ tokenizer on Fashion-MNIST / MNIST (padded to 32x32, pixels in
 * [-1, 1]) with AdamW, the perturbation preset and its annealing schedule, through node/train.ts's
 * trainLoop (progress line with ETA, JSONL metrics, atomic resumable checkpoints that include the
 * perturbation generator and the data position, reconstruction grids). Optional losses: the
 * FeatNet perceptual loss and the hinge GAN with a PatchGAN discriminator and the adaptive weight
 * (models/tokenizer/train-step.ts); the discriminator and its optimizer are in the checkpoint
 * (`disc.model.*`, `disc.optim.*`). A building block for the `train-tokenizer` CLI subcommand.
 */
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as E from '../engine/index.js';
import { BatchUploader, DataLoader, loadFashionMNIST, loadMNIST, saveImageGrid, subset, type ImageDataset } from './data/index.js';
import { loadModelCheckpoint, saveTrainingCheckpoint, trainLoop, trainerStep, type LoadedModel, type TrainLoopResult, loopControls, type TrainLoopControls } from './train.js';
import { AdamW } from '../nn/index.js';
import { VQTokenizer, type TokenizerConfig } from '../models/tokenizer/model.js';
import { fieldError, validateConfig } from '../models/config-schema.js';
import { DISCRIMINATOR_CONFIG_SCHEMA, TOKENIZER_CONFIG_SCHEMA } from '../models/config-schemas.js';
import { featnetConfigOf } from '../models/features/featnet-config.js';
import { readSafetensorsHeader } from '../nn/checkpoint/index.js';
import { resumable } from './resume.js';
import type { PerturbationConfig, PerturbationPreset } from '../models/tokenizer/perturbation.js';
import type { LatentNoiseConfig, LatentNoisePreset } from '../models/tokenizer/latent-noise.js';
import { measureLatentStats } from '../models/tokenizer/latent-stats.js';
import { tokenizerStepKey, tokenizerTrainStep, type TokenizerStepOptions } from '../models/tokenizer/train-step.js';
import { PerceptualLoss } from '../models/tokenizer/perceptual.js';
import { PatchDiscriminator, type PatchDiscriminatorConfig } from '../models/tokenizer/discriminator.js';
import { FeatNet, featnetFromSafetensors } from '../models/features/featnet.js';

export interface TrainTokenizerOptions extends TrainLoopControls {
  backend: E.Backend;
  dataset?: 'fashion-mnist' | 'mnist';
  /** Use these splits (pixels 0..255, any size the tokenizer accepts) instead of loading `dataset`. */
  data?: { train: ImageDataset; val: ImageDataset };
  /** Use only the first n training images (quick runs). */
  trainSubset?: number;
  config?: Partial<TokenizerConfig>;
  /** VQ: latent perturbation (default the config's). */
  perturbation?: PerturbationPreset | PerturbationConfig;
  /** KL (config.quantizer 'kl'): noise-augmented decoding (default the config's). */
  latentNoise?: LatentNoisePreset | LatentNoiseConfig;
  batchSize?: number;
  /** Training length: steps, or epochs over the (sub)set. */
  steps?: number;
  epochs?: number;
  /** AdamW learning rate (default 2e-4); on resume it replaces the checkpoint's (undefined keeps the checkpoint's). */
  lr?: number;
  betas?: [number, number];
  weightDecay?: number;
  seed?: number;
  /** Checkpoint, metrics and sample folder (none: nothing written). */
  outDir?: string;
  logEvery?: number;
  checkpointEvery?: number;
  sampleEvery?: number;
  resume?: boolean;
  log?: (line: string) => void;
  /** Extra JSON saved in the checkpoint next to the config (e.g. the CLI arguments). */
  extra?: Record<string, unknown>;
  /** Weight of the FeatNet perceptual loss (default 0: off; e.g. 0.1). */
  perceptualWeight?: number;
  /** The perceptual loss's FeatNet: a safetensors file or a FeatNet (default: the shipped models/features/weights/featnet-fashion.safetensors, for either dataset). */
  perceptualNet?: string | FeatNet;
  /** Hinge-GAN weight, multiplying the adaptive weight (taming's discriminator_weight; default 0: off, no discriminator; taming uses 0.8). */
  discWeight?: number;
  /** 1-based step from which the GAN term and the discriminator updates are on (default 1; taming's disc_start). */
  discStart?: number;
  /** Discriminator learning rate (default: lr; same betas and weight decay); on resume, as lr. */
  discLr?: number;
  /** Discriminator architecture (default: ch 64, nLayers 2; inChannels from the tokenizer). */
  discConfig?: Partial<PatchDiscriminatorConfig>;
}

const HERE = dirname(fileURLToPath(import.meta.url));

/** The shipped Fashion-MNIST FeatNet weights (from node/ under tsx, or dist/node/ when built). */
export function defaultPerceptualNetPath(): string {
  const name = join('models', 'features', 'weights', 'featnet-fashion.safetensors');
  const candidates = [join(HERE, '..', name), join(HERE, '..', '..', name)];
  return candidates.find((p) => existsSync(p)) ?? candidates[0]!;
}

/** Checks the loss options; throws RangeError naming the option. */
export function validateLossOptions(o: Pick<TrainTokenizerOptions, 'perceptualWeight' | 'discWeight' | 'discStart' | 'discLr'>): void {
  const nonNeg = (k: 'perceptualWeight' | 'discWeight' | 'discLr') => {
    const v = o[k];
    if (v !== undefined && !(Number.isFinite(v) && v >= 0)) throw new RangeError(`trainTokenizer: ${k} must be a finite number >= 0, got ${v}`);
  };
  nonNeg('perceptualWeight');
  nonNeg('discWeight');
  nonNeg('discLr');
  if (o.discStart !== undefined && !(Number.isInteger(o.discStart) && o.discStart >= 0)) throw new RangeError(`trainTokenizer: discStart must be an integer >= 0, got ${o.discStart}`);
}

export interface TrainTokenizerResult extends TrainLoopResult {
  model: VQTokenizer;
  totalSteps: number;
  val: ImageDataset;
}

export async function trainTokenizer(o: TrainTokenizerOptions): Promise<TrainTokenizerResult> {
  const { backend } = o;
  const seed = o.seed ?? 0;
  validateLossOptions(o);
  const perceptualWeight = o.perceptualWeight ?? 0;
  const discWeight = o.discWeight ?? 0;
  const load = o.dataset === 'mnist' ? loadMNIST : loadFashionMNIST;
  const split = o.data ?? load({ pad: 2, ...(o.log ? { log: o.log } : {}) });
  const train = o.trainSubset ? subset(split.train, Int32Array.from({ length: Math.min(o.trainSubset, split.train.shape[0]) }, (_, i) => i)) : split.train;
  const B = o.batchSize ?? 64;
  if (B > train.shape[0]) throw fieldError('trainTokenizer', 'batchSize', `${B} is more than the ${train.shape[0]} training images: no full batch (lower the batch size or use more images)`);
  const loader = new DataLoader(train, { batchSize: B, shuffle: true, seed, dropLast: true });
  const perEpoch = Math.floor(train.shape[0] / B);
  const totalSteps = o.steps ?? Math.max(1, (o.epochs ?? 1) * perEpoch);
  const modelConfig = { ...o.config, ...(o.perturbation ? { perturbation: o.perturbation } : {}), ...(o.latentNoise ? { latentNoise: o.latentNoise } : {}), perturbSeed: seed + 1 };
  // Bounded before building: an oversized config must fail with a message, not exhaust the device.
  validateConfig('train-tokenizer config', TOKENIZER_CONFIG_SCHEMA, modelConfig);
  const model = new VQTokenizer(modelConfig, { backend, generator: new E.Generator(seed) });
  // taming-transformers' autoencoder optimizer: Adam(lr, betas (0.5, 0.9)); decoupled decay off by default.
  const optimizer = new AdamW(model.parameters(), { lr: o.lr ?? 2e-4, betas: o.betas ?? [0.5, 0.9], weightDecay: o.weightDecay ?? 0 });
  const losses: TokenizerStepOptions = {};
  let ownNet: FeatNet | null = null;
  if (perceptualWeight > 0) {
    let net: FeatNet;
    if (o.perceptualNet instanceof FeatNet) net = o.perceptualNet;
    else {
      const path = o.perceptualNet ?? defaultPerceptualNetPath();
      if (!existsSync(path)) throw new Error(`trainTokenizer: perceptual FeatNet weights ${path} do not exist (train them with 'webgpu-tok train-featnet')`);
      const bytes = new Uint8Array(readFileSync(path));
      // Bounded before building, like every model config.
      featnetConfigOf(`perceptual FeatNet ${path}`, readSafetensorsHeader(bytes).metadata);
      net = ownNet = featnetFromSafetensors(bytes, backend);
    }
    if (net.cfg.inChannels !== model.cfg.inChannels) throw new Error(`trainTokenizer: the perceptual FeatNet takes ${net.cfg.inChannels}-channel images, the tokenizer ${model.cfg.inChannels}-channel ones`);
    losses.perceptual = { loss: new PerceptualLoss(net), weight: perceptualWeight };
    o.log?.(`perceptual loss: weight ${perceptualWeight}, FeatNet ${o.perceptualNet instanceof FeatNet ? '(given)' : (o.perceptualNet ?? defaultPerceptualNetPath())} (frozen)`);
  }
  let disc: PatchDiscriminator | null = null;
  let discOpt: AdamW | null = null;
  if (discWeight > 0) {
    const discConfig = validateConfig<Partial<PatchDiscriminatorConfig>>('trainTokenizer discConfig', DISCRIMINATOR_CONFIG_SCHEMA, { inChannels: model.cfg.inChannels, ...o.discConfig });
    disc = new PatchDiscriminator(discConfig, { backend, generator: new E.Generator(seed + 2) });
    discOpt = new AdamW(disc.parameters(), { lr: o.discLr ?? o.lr ?? 2e-4, betas: o.betas ?? [0.5, 0.9], weightDecay: o.weightDecay ?? 0 });
    losses.gan = { discriminator: disc, optimizer: discOpt, weight: discWeight, start: o.discStart ?? 1 };
    o.log?.(`hinge GAN: ${disc.summary()}, weight ${discWeight} x adaptive, lr ${discOpt.lr}, from step ${Math.max(1, o.discStart ?? 1)}`);
  }
  const uploader = new BatchUploader(backend);
  using sampleX = E.tensor(new Float32Array(loaderFirst(split.val, 16)), [Math.min(16, split.val.shape[0]), ...split.val.shape.slice(1)], { backend });
  const state = { model, optimizer, generators: { perturb: model.perturbGenerator }, loader, ...(disc && discOpt ? { aux: { disc: { model: disc, optimizer: discOpt } } } : {}) };
  const extra = {
    ...o.extra,
    config: model.cfg,
    batchSize: B,
    dataset: o.dataset ?? 'fashion-mnist',
    totalSteps,
    losses: {
      perceptualWeight,
      discWeight,
      ...(disc ? { discStart: o.discStart ?? 1, discLr: discOpt!.lr, discConfig: disc.cfg } : {}),
    },
  };
  const checkpointPath = o.outDir ? join(o.outDir, 'checkpoint.safetensors') : null;
  /** Before the first step of this call (after a resume's restore): the learning rates given for it replace the restored ones. */
  const applyLrs = () => {
    if (o.lr !== undefined) optimizer.lr = o.lr;
    if (discOpt && (o.discLr ?? o.lr) !== undefined) discOpt.lr = (o.discLr ?? o.lr)!;
  };
  let first = true;
  let current = 0;
  const stepOptions = (): TokenizerStepOptions => ({ step: current, totalSteps, ...losses });
  const compute = trainerStep(o, (x: E.Tensor) => tokenizerTrainStep(model, optimizer, x, stepOptions()), o.log, () => tokenizerStepKey(stepOptions()));
  const r = await resumable(checkpointPath, o.resume ?? true, (started) => trainLoop({
    totalSteps,
    state,
    backend,
    itemsPerStep: B,
    logEvery: o.logEvery ?? 50,
    ...(o.outDir ? { metricsPath: join(o.outDir, 'metrics.jsonl'), checkpointPath: checkpointPath!, checkpointEvery: o.checkpointEvery ?? 500 } : {}),
    resume: o.resume ?? true,
    ...loopControls(o),
    ...(o.outDir && o.sampleEvery
      ? {
          sampleEvery: o.sampleEvery,
          onSample: async (step: number) => {
            using grid = E.noGrad(() => E.tidy(() => {
              const wasTraining = model.training;
              model.eval();
              const rec = model.forward(sampleX, { perturb: null }).recon;
              model.train(wasTraining);
              return E.concat([sampleX, rec.maximum(-1).minimum(1)], 0);
            }));
            await saveImageGrid(join(o.outDir!, `recon_${String(step).padStart(7, '0')}.png`), grid, { nrow: sampleX.shape[0]!, range: [-1, 1] });
          },
        }
      : {}),
    extra,
    ...(o.log ? { log: o.log } : {}),
    step: (step) => {
      if (first) {
        first = false;
        started();
        applyLrs();
      }
      const batch = uploader.next(loader);
      current = step;
      const terms = compute.run(batch.x);
      return { terms, epoch: batch.batch.epoch };
    },
  })).finally(() => compute.done());
  if (model.continuous && (r.startStep < totalSteps || !(await model.latentStats.measured()))) {
    // The generator's normalization: per-channel statistics of the trained encoder's posterior
    // means over the training set, stored in the final checkpoint (again whenever this call
    // trained: an extended run's encoder has moved).
    const t0 = performance.now();
    const statsLoader = new DataLoader(train, { batchSize: Math.min(256, train.shape[0]), shuffle: false });
    const nb = Math.ceil(train.shape[0] / Math.min(256, train.shape[0]));
    const s = await measureLatentStats(model, (function* () {
      for (let i = 0; i < nb; i++) yield uploader.next(statsLoader).x;
    })());
    o.log?.(`latent statistics over ${s.images} training images (${((performance.now() - t0) / 1000).toFixed(1)} s): mean [${s.mean.map((v) => v.toFixed(3)).join(', ')}], std [${s.std.map((v) => v.toFixed(3)).join(', ')}]`);
    if (o.outDir) await saveTrainingCheckpoint(join(o.outDir, 'checkpoint.safetensors'), state, Math.max(r.startStep, totalSteps), { ...extra, latentStats: s });
  }
  // The run's state outlived its steps; the model is returned.
  uploader.dispose();
  optimizer.dispose();
  ownNet?.dispose();
  discOpt?.dispose();
  disc?.dispose();
  return { ...r, model, totalSteps, val: split.val };
}

/** The first n validation images as [-1, 1] floats. */
function loaderFirst(ds: ImageDataset, n: number): Float32Array {
  const m = Math.min(n, ds.shape[0]);
  const per = ds.shape[1] * ds.shape[2] * ds.shape[3];
  const out = new Float32Array(m * per);
  for (let i = 0; i < m * per; i++) out[i] = (ds.images[i]! / 255) * 2 - 1;
  return out;
}

export type LoadedTokenizer = LoadedModel<VQTokenizer>;

/**
 * Reads a checkpoint written by trainTokenizer (model.* tensors and the config in the `extra`
 * metadata) and rebuilds the tokenizer on `backend` in eval mode.
 */
export function loadTokenizerCheckpoint(path: string, backend: E.Backend): Promise<LoadedTokenizer> {
  return loadModelCheckpoint(path, backend, (c: Partial<TokenizerConfig>) => new VQTokenizer(c, { backend }), 'train-tokenizer', TOKENIZER_CONFIG_SCHEMA);
}
