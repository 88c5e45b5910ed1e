/**
 * Decoder post-training on Node ("Image Tokenizer Needs Post-Training", arXiv 2509.12474): what
 * `webgpu-tok posttrain` and the study's stage 5 (both arms) share.
 *
 * Data, one row per training image, built once by the frozen generator:
 *   - mixTokens: the AR arm's mixed sequences (ground truth kept with probability sigma, else the
 *     generator's sample conditioned on the mixed prefix; models/tokenizer/posttrain.ts);
 *   - denoiseLatents: the diffusion arm's latents noised to t* and denoised back by the generator
 *     (models/diffusion/posttrain.ts).
 * Both draw from Generator(seed + 2000) in batches of `batchSize`, so a given seed and batch size
 * give the same rows.
 *
 * Training (trainDecoder): a fresh copy of the tokenizer's decoder learns to map the rows back to
 * their images (DecoderPostTrainer: AdamW (0.9, 0.95) over the decoder only, warmup-cosine lr to
 * minLr, EMA) through trainLoop (progress with ETA, metrics.jsonl, resumable checkpoint; the
 * loader shuffles with seed + 7). At the end the EMA weights are copied into the decoder and the
 * final checkpoint is rewritten with them as `model.*`, so it is a tokenizer checkpoint like
 * train-tokenizer's (eval-tokenizer, sample-ar / sample-diffusion --tokenizer read it).
 */
import { join } from 'node:path';
import * as E from '../engine/index.js';
import type { ARTransformer } from '../models/ar/model.js';
import type { CfgSchedule } from '../models/ar/sample.js';
import type { TokenDataset } from '../models/ar/train-step.js';
import type { LatentDataset } from '../models/diffusion/latent-data.js';
import type { DiffusionTransformer } from '../models/diffusion/model.js';
import { buildDenoisedLatents } from '../models/diffusion/posttrain.js';
import type { ODESampler } from '../models/diffusion/sample.js';
import type { VQTokenizer } from '../models/tokenizer/model.js';
import { buildMixedTokens, DecoderPostTrainer } from '../models/tokenizer/posttrain.js';
import { Scheduler, warmupCosineLr } from '../nn/index.js';
import { BatchUploader, DataLoader, writeInto, type ImageDataset } from './data/index.js';
import { saveTrainingCheckpoint, trainLoop, trainerStep, loopControls, type TrainLoopControls } from './train.js';
import { loadTokenizerCheckpoint } from './train-tokenizer.js';
import { fieldError } from '../models/config-schema.js';
import { resumable, setBaseLr } from './resume.js';

/** What a decoder is post-trained on: one row per training image, token ids [h, w] or normalized latents [C, h, w]. */
export type DecoderRows = { kind: 'tokens'; data: Int32Array; rowShape: number[] } | { kind: 'latents'; data: Float32Array; rowShape: number[] };

/** A token dataset as decoder training rows. */
export const tokenRows = (ds: TokenDataset): DecoderRows => ({ kind: 'tokens', data: ds.tokens, rowShape: [ds.grid[0], ds.grid[1]] });

/** A latent dataset as decoder training rows. */
export const latentRows = (ds: LatentDataset): DecoderRows => ({ kind: 'latents', data: ds.latents, rowShape: ds.shape.slice(1) });

/** Sampling settings of the mixed sequences. */
export interface MixSettings {
  sigma: number;
  temperature: number;
  topK: number;
  topP: number;
  cfgScale: number;
  cfgSchedule: CfgSchedule;
}

export interface BuildOptions {
  backend: E.Backend;
  /** Sequences / latents per generator batch. */
  batchSize: number;
  /** The rows draw from Generator(seed + 2000). */
  seed: number;
  onProgress?: (done: number, total: number) => void;
}

/**
 * Mixed sequences for the ground-truth tokens `gt` (their classes condition the generator), and
 * the fraction of positions where the ground truth was kept.
 */
export async function mixTokens(ar: ARTransformer, gt: TokenDataset, s: MixSettings, o: BuildOptions): Promise<{ ds: TokenDataset; keptFraction: number }> {
  const { backend } = o;
  const [N, L] = gt.shape;
  const generator = new E.Generator(o.seed + 2000);
  const tokens = new Int32Array(N * L);
  let kept = 0;
  for (let st = 0; st < N; st += o.batchSize) {
    const b = Math.min(o.batchSize, N - st);
    using m = E.disposable(
      E.tidy(() => {
        const gtT = E.tensor(gt.tokens.subarray(st * L, (st + b) * L), [b, L], { backend, dtype: 'i32' });
        const mixed = buildMixedTokens(ar, gtT, Array.from(gt.labels.subarray(st, st + b)), { sigma: s.sigma, temperature: s.temperature, topK: s.topK, topP: s.topP, cfgScale: s.cfgScale, cfgSchedule: s.cfgSchedule, generator });
        return { tokens: mixed.tokens, keptSum: mixed.kept.sum() };
      }),
    );
    tokens.set((await m.tokens.toArray()) as Int32Array, st * L);
    kept += await m.keptSum.item();
    o.onProgress?.(st + b, N);
  }
  return { ds: { ...gt, tokens }, keptFraction: kept / (N * L) };
}

/** Settings of the denoised latents. */
export interface DenoiseSettings {
  tStar: number;
  /** ODE steps of a full [1, 0] run (the partial run takes round(steps * t*), at least 1). */
  steps: number;
  sampler: ODESampler;
  cfgScale: number;
  guidanceInterval: readonly [number, number] | null;
}

/** The clean normalized latents noised to t* and denoised by the generator, guided for each image's class. */
export async function denoiseLatents(dit: DiffusionTransformer, clean: LatentDataset, s: DenoiseSettings, o: BuildOptions): Promise<LatentDataset> {
  const { backend } = o;
  const [N, C, h, w] = clean.shape;
  const per = C * h * w;
  const out = new Float32Array(N * per);
  const generator = new E.Generator(o.seed + 2000);
  for (let st = 0; st < N; st += o.batchSize) {
    const b = Math.min(o.batchSize, N - st);
    using d = E.tidy(() => {
      const z = E.tensor(clean.latents.subarray(st * per, (st + b) * per), [b, C, h, w], { backend });
      return buildDenoisedLatents(dit, z, Array.from(clean.labels.subarray(st, st + b)), { tStar: s.tStar, steps: s.steps, sampler: s.sampler, cfgScale: s.cfgScale, guidanceInterval: s.guidanceInterval, generator });
    });
    out.set(await d.toArray(), st * per);
    o.onProgress?.(st + b, N);
  }
  return { ...clean, latents: out };
}

/** RMS difference between two latent datasets of the same shape (unit-std channels: in std units). */
export function latentRmsChange(a: LatentDataset, b: LatentDataset): number {
  let s = 0;
  for (let i = 0; i < a.latents.length; i++) s += (a.latents[i]! - b.latents[i]!) ** 2;
  return Math.sqrt(s / Math.max(1, a.latents.length));
}

/** The optimization settings of a post-training run. */
export interface DecoderTrainSettings {
  batchSize: number;
  epochs: number;
  /** Peak AdamW learning rate (betas 0.9, 0.95, no weight decay); on resume it replaces the checkpoint's. */
  lr: number;
  /** Where the cosine ends. */
  minLr: number;
  /** EMA decay of the decoder weights (0: no EMA). */
  emaDecay: number;
  /** The loader shuffles with seed + 7. */
  seed: number;
}

export interface TrainDecoderOptions extends TrainLoopControls {
  backend: E.Backend;
  /** The tokenizer checkpoint whose decoder is copied and trained. */
  checkpoint: string;
  /** Training images (pixels 0..255), one per row of `rows`, in the same order. */
  images: ImageDataset;
  rows: DecoderRows;
  /** Where checkpoint.safetensors and metrics.jsonl go. */
  outDir: string;
  settings: DecoderTrainSettings;
  /** Prefix of the summary line. */
  label: string;
  log: (line: string) => void;
  /** Default: about 10 progress lines (at most every 25 steps). */
  logEvery?: number;
  /** Default: twice per run (and at the end). */
  checkpointEvery?: number;
  /** Continue from <outDir>/checkpoint.safetensors if present (default true). */
  resume?: boolean;
  /** Saved in the checkpoint's extra metadata, next to the tokenizer config. */
  extra?: Record<string, unknown>;
}

export interface TrainDecoderResult {
  /** The tokenizer with the EMA decoder, in eval mode. */
  model: VQTokenizer;
  /** Total optimizer steps of the run. */
  steps: number;
  /** The step the run resumed from (0: from the start). */
  startStep: number;
}

/**
 * Trains a fresh copy of the tokenizer's decoder to map `rows` (one per image of `images`) back
 * to the images. Tokens go through DecoderPostTrainer.step (codebook lookup), latents through
 * stepLatents. Returns the EMA model in eval mode; the final checkpoint holds it as `model.*`.
 */
export async function trainDecoder(o: TrainDecoderOptions): Promise<TrainDecoderResult> {
  const { backend, log, rows } = o;
  const p = o.settings;
  if (rows.data.length !== o.images.shape[0] * rows.rowShape.reduce((a, b) => a * b, 1)) throw new Error(`trainDecoder: ${o.images.shape[0]} images but ${rows.data.length} row values of shape [${rows.rowShape.join(', ')}]`);
  const model = (await loadTokenizerCheckpoint(o.checkpoint, backend)).model;
  const per = rows.rowShape.reduce((a, b) => a * b, 1);
  const trainer = new DecoderPostTrainer(model, { lr: p.lr, betas: [0.9, 0.95], emaDecay: p.emaDecay });
  const B = p.batchSize;
  const loader = new DataLoader(o.images, { batchSize: B, shuffle: true, seed: p.seed + 7, dropLast: true });
  const steps = p.epochs * loader.batchesPerEpoch;
  if (steps < 1) throw fieldError('trainDecoder', 'batchSize', `${B} is more than the ${o.images.shape[0]} training images: no full batch`);
  const scheduler = new Scheduler(trainer.optimizer, (step, lr) => warmupCosineLr(step, lr, { totalSteps: steps, minLr: p.minLr }));
  const uploader = new BatchUploader(backend);
  // Each batch's rows, by the loader's dataset indices, into one reused device tensor.
  const host = rows.kind === 'tokens' ? new Int32Array(B * per) : new Float32Array(B * per);
  const dev = E.keep(E.zeros([B, ...rows.rowShape], { backend, dtype: rows.kind === 'tokens' ? 'i32' : 'f32' }));
  const state = { model, optimizer: trainer.optimizer, scheduler, loader, ...(trainer.ema ? { ema: trainer.ema } : {}) };
  const checkpointPath = join(o.outDir, 'checkpoint.safetensors');
  const extra = { ...o.extra, config: model.cfg };
  log(`[${o.label}] decoder ${model.decoder.numParameters()} params, ${steps} steps of ${B}, lr ${p.lr} -> ${p.minLr} cosine, EMA ${p.emaDecay}`);
  let startStep: number;
  let first = true;
  const compute = trainerStep(o, (x: E.Tensor, rowsOnDevice: E.Tensor) => ({ loss: rows.kind === 'tokens' ? trainer.step(x, rowsOnDevice) : trainer.stepLatents(x, rowsOnDevice) }), log);
  try {
    ({ startStep } = await resumable(checkpointPath, o.resume ?? true, (started) => trainLoop({
      totalSteps: steps,
      state,
      backend,
      itemsPerStep: B,
      logEvery: o.logEvery ?? Math.max(1, Math.min(25, Math.floor(steps / 10))),
      metricsPath: join(o.outDir, 'metrics.jsonl'),
      checkpointPath,
      checkpointEvery: o.checkpointEvery ?? Math.max(1, Math.floor(steps / 2)),
      resume: o.resume ?? true,
      ...loopControls(o),
      log,
      extra,
      step: () => {
        if (first) {
          // After a resume's restore: this call's learning rate replaces the restored one.
          first = false;
          started();
          setBaseLr(scheduler, p.lr);
        }
        const b = uploader.next(loader);
        b.batch.indices.forEach((i, k) => host.set(rows.data.subarray(i * per, (i + 1) * per), k * per));
        writeInto(dev, host);
        const terms = compute.run(b.x, dev);
        scheduler.step();
        return { terms, epoch: b.batch.epoch };
      },
    })));
  } finally {
    compute.done();
    // The upload ring and the batch's rows served every step.
    uploader.dispose();
    dev.dispose();
  }
  try {
    if (trainer.ema) {
      // The EMA decoder is the result: make it the checkpoint's model.* (resuming a finished run
      // restores it and copies the same EMA over it again).
      trainer.ema.copyTo();
      await saveTrainingCheckpoint(checkpointPath, state, steps, { ...extra, decoderWeights: 'ema' });
    }
  } finally {
    // The optimizer state and the EMA shadows lived for the run; the model is returned.
    trainer.optimizer.dispose();
    trainer.ema?.dispose();
  }
  model.eval();
  return { model, steps, startStep };
}
