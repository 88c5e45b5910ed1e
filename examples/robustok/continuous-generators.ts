/**
 * Continuous arm, stage 3: for one KL tokenizer, encode the training images to normalized
 * latents, train the class-conditional diffusion transformer (flow matching, EMA) on them, sample
 * class-balanced latents with the EMA weights and measure gFID (and the IS analogue) of their
 * decodings against the validation images, the same real statistics as the discrete arm. The
 * generated latents are saved (samples.safetensors) so post-training decodes exactly the same
 * latents with the new decoders. Lives in <out>/continuous/generators/<name>/.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import * as E from '../../engine/index.js';
import { decodedLatentFeatureStats, encodeLatentDataset, generateLatentsClassBalanced, latentClassGrid, type DiffusionTransformer, type LatentDataset } from '../../models/diffusion/index.js';
import type { BootstrapInterval, ClassConsistency, ImageFeatureStats } from '../../models/metrics/index.js';
import { getJsonOr } from '../../nn/checkpoint/index.js';
import type { VQTokenizer } from '../../models/tokenizer/index.js';
import { readSafetensorsFile } from '../../node/checkpoint.js';
import { saveImageGrid, writeFileAtomicSync } from '../../node/data/index.js';
import { fileSha256 } from '../../node/train-ar.js';
import { emaCopy, loadDiffusionCheckpoint, loadLatentCache, saveLatentCache, trainDiffusion } from '../../node/train-diffusion.js';
import type { ContinuousStudyConfig } from './config.js';
import { finishedRecord, stageIntervals, type StudyContext } from './context.js';
import type { ContinuousTokenizerRecord } from './continuous-tokenizers.js';
import { featureInputFor } from './data.js';
import { scoreSamples } from './sample-scores.js';

export interface DiffusionGeneratorRecord {
  tokenizer: string;
  /** SHA-256 of the tokenizer checkpoint whose latents it was trained on. */
  tokenizerSha256: string;
  dir: string;
  checkpoint: string;
  sha256: string;
  metrics: string;
  params: number;
  steps: number;
  finalLoss: number;
  trainSeconds: number;
  sampling: ContinuousStudyConfig['sampling'];
  gfid: number;
  /** gFID's sampling error: bootstrap over generated and real feature rows. */
  gfidError: BootstrapInterval;
  inceptionScore: number | null;
  /** FeatNet's accuracy at classifying each sample as the class it was conditioned on. */
  classConsistency: ClassConsistency;
  numImages: number;
  sampleSeconds: number;
  /** The generated normalized latents (latent cache file: latents + class labels). */
  samples: string;
  sampleGrid: string;
}

export function diffusionSteps(k: ContinuousStudyConfig, trainImages: number): number {
  return Math.max(1, k.diffusion.epochs * Math.floor(trainImages / k.diffusion.batchSize));
}

/** Class-balanced latents with the study's sampling settings: sample i has class i mod numClasses. */
export function generateLatents(ctx: StudyContext, model: DiffusionTransformer): Promise<LatentDataset> {
  const s = ctx.cfg.continuous!.sampling;
  return generateLatentsClassBalanced(model, {
    numImages: s.numImages,
    numClasses: ctx.data.classes.length,
    batchSize: s.batchSize,
    sampler: s.sampler,
    steps: s.steps,
    cfgScale: s.cfgScale,
    guidanceInterval: s.guidanceInterval,
    generator: new E.Generator(ctx.cfg.seed + 1000),
  });
}

/** Decodes latents with `tokenizer` and accumulates their feature statistics (rows and logits kept, in order). */
export function decodedLatentStats(ctx: StudyContext, tokenizer: VQTokenizer, ds: LatentDataset): Promise<ImageFeatureStats> {
  const fi = featureInputFor(ctx.cfg.imageSize);
  return decodedLatentFeatureStats(ctx.featnet, tokenizer, ds, { backend: ctx.backend, batchSize: ctx.cfg.eval.batchSize, keepFeatures: true, ...(fi ? { featureInput: fi } : {}) });
}

/** Decoded samples, one row per class, clamped; show with `perRow` images per row. */
export function latentGrid(ctx: StudyContext, tokenizer: VQTokenizer, ds: LatentDataset, perClass: number): { images: E.Tensor; perRow: number } {
  return latentClassGrid(tokenizer, ds, { numClasses: ctx.data.classes.length, perClass, backend: ctx.backend });
}

/** Whether an interrupted run's checkpoint was trained on this tokenizer's latents (else it starts over). */
async function resumable(checkpoint: string, tokenizerSha256: string): Promise<boolean> {
  if (!existsSync(checkpoint)) return true;
  const { metadata } = await readSafetensorsFile(checkpoint);
  return getJsonOr<Record<string, unknown>>(metadata, 'extra', {}).tokenizerSha256 === tokenizerSha256;
}

export async function runDiffusionGenerator(ctx: StudyContext, tok: ContinuousTokenizerRecord, tokenizer: VQTokenizer): Promise<DiffusionGeneratorRecord> {
  const { cfg, backend, data, log } = ctx;
  const k = cfg.continuous!;
  const dir = join(ctx.outDir, 'continuous', 'generators', tok.name);
  const checkpoint = join(dir, 'checkpoint.safetensors');
  const steps = diffusionSteps(k, data.train.shape[0]);
  const done = finishedRecord<DiffusionGeneratorRecord>(
    dir,
    (r) => r.steps === steps && r.tokenizerSha256 === tok.sha256 && r.numImages === k.sampling.numImages && JSON.stringify(r.sampling) === JSON.stringify(k.sampling) && r.classConsistency !== undefined && r.gfidError !== undefined,
    ['checkpoint.safetensors', 'samples.safetensors'],
    log,
  );
  if (done) {
    ctx.progress.resumed(`diffusion ${tok.name}`);
    log(`[diffusion ${tok.name}] done earlier: gFID ${done.gfid.toFixed(2)} (${join(dir, 'record.json')})`);
    return done;
  }
  const resume = await resumable(checkpoint, tok.sha256);
  if (!resume) log(`[diffusion ${tok.name}] ${checkpoint} was trained on another tokenizer's latents: starting over`);
  const t0 = performance.now();
  const latents = await encodeLatentDataset(tokenizer, data.train, { backend, batchSize: cfg.eval.batchSize });
  const [, C, h, w] = latents.shape;
  log(`[diffusion ${tok.name}] ${latents.shape[0]} training images -> ${C}x${h}x${w} normalized latents (${((performance.now() - t0) / 1000).toFixed(1)} s); ${steps} steps`);
  const d = k.diffusion;
  const r = await trainDiffusion({
    backend,
    latents,
    numClasses: data.classes.length,
    config: { dim: d.dim, depth: d.depth, heads: d.heads, patchSize: d.patchSize, classDropout: d.classDropout },
    batchSize: d.batchSize,
    steps,
    lr: d.lr,
    warmupSteps: Math.min(d.warmupSteps, steps),
    emaDecay: d.emaDecay,
    seed: cfg.seed,
    outDir: dir,
    ...stageIntervals(steps),
    ...(ctx.capture ? { capture: true } : {}),
    resume,
    log,
    extra: { study: cfg.name, arm: 'continuous', tokenizer: tok.name, tokenizerSha256: tok.sha256 },
  });
  const trainSeconds = (performance.now() - t0) / 1000;
  using model = emaCopy(r.model, r.ema); // sample with the EMA weights, as loadDiffusionCheckpoint does
  const params = r.model.numParameters();
  r.model.dispose(); // the trained weights and their EMA are replaced by the copy
  r.ema.dispose();
  const t1 = performance.now();
  const gen = await generateLatents(ctx, model);
  const samples = join(dir, 'samples.safetensors');
  await saveLatentCache(samples, gen, { tokenizer: { path: tok.checkpoint, sha256: tok.sha256 }, source: { study: cfg.name, tokenizer: tok.name, sampling: k.sampling } });
  const stats = await decodedLatentStats(ctx, tokenizer, gen);
  const scores = scoreSamples(ctx, stats, gen.labels);
  const gfid = scores.gfid;
  const sampleSeconds = (performance.now() - t1) / 1000;
  const sampleGrid = join(dir, 'samples.png');
  using grid = E.disposable(latentGrid(ctx, tokenizer, gen, 10));
  await saveImageGrid(sampleGrid, grid.images, { nrow: grid.perRow, range: [-1, 1] });
  const last = r.history[r.history.length - 1];
  const record: DiffusionGeneratorRecord = {
    tokenizer: tok.name,
    tokenizerSha256: tok.sha256,
    dir,
    checkpoint,
    sha256: await fileSha256(checkpoint),
    metrics: join(dir, 'metrics.jsonl'),
    params,
    steps,
    finalLoss: last?.terms.loss ?? NaN,
    trainSeconds,
    sampling: k.sampling,
    gfid,
    gfidError: scores.gfidError,
    inceptionScore: scores.inceptionScore,
    classConsistency: scores.classConsistency,
    numImages: gen.shape[0],
    sampleSeconds,
    samples,
    sampleGrid,
  };
  writeFileAtomicSync(join(dir, 'record.json'), JSON.stringify(record, null, 2));
  ctx.progress.done(`diffusion ${tok.name}`);
  log(`[diffusion ${tok.name}] gFID ${gfid.toFixed(2)} ± ${scores.gfidError.standardError.toFixed(2)}, class consistency ${(100 * scores.classConsistency.accuracy).toFixed(1)}%, IS ${record.inceptionScore?.toFixed(2) ?? 'n/a'} (${trainSeconds.toFixed(0)} s train, ${sampleSeconds.toFixed(0)} s for ${gen.shape[0]} samples)`);
  return record;
}

/** The generator of a record (EMA weights, eval mode). */
export async function loadDiffusionGenerator(record: DiffusionGeneratorRecord, backend: E.Backend): Promise<DiffusionTransformer> {
  return (await loadDiffusionCheckpoint(record.checkpoint, backend)).model;
}

export async function loadLatentSamples(record: DiffusionGeneratorRecord): Promise<LatentDataset> {
  return (await loadLatentCache(record.samples)).latents;
}
