/**
 * Stage 3 of the study: for one tokenizer, cache its tokens of the training images, train the
 * class-conditional AR generator on them, sample class-balanced images and measure gFID (and the
 * IS analogue) against the validation images. The generated token sequences are saved
 * (samples.safetensors) so post-training can decode exactly the same sequences with a new decoder.
 */
import { join } from 'node:path';
import * as E from '../../engine/index.js';
import { classGrid as sharedClassGrid, decodedFeatureStats as decodeStats, encodeTokenDataset, generateClassBalanced, type ARTransformer, type TokenDataset } from '../../models/ar/index.js';
import type { BootstrapInterval, ClassConsistency, ImageFeatureStats } from '../../models/metrics/index.js';
import type { VQTokenizer } from '../../models/tokenizer/index.js';
import { saveImageGrid, writeFileAtomicSync } from '../../node/data/index.js';
import { loadARCheckpoint, loadTokenCache, saveTokenCache, trainAR } from '../../node/train-ar.js';
import type { StudyConfig } from './config.js';
import { finishedRecord, stageIntervals, type StudyContext } from './context.js';
import { featureInputFor } from './data.js';
import { scoreSamples } from './sample-scores.js';
import type { TokenizerRecord } from './tokenizers.js';

export interface GeneratorRecord {
  tokenizer: string;
  dir: string;
  checkpoint: string;
  metrics: string;
  params: number;
  steps: number;
  finalLoss: number;
  trainSeconds: number;
  gfid: number;
  /** gFID's sampling error: bootstrap over generated and real feature rows. */
  gfidError: BootstrapInterval;
  inceptionScore: number | null;
  /** FeatNet's accuracy at classifying each sample as the class it was conditioned on. */
  classConsistency: ClassConsistency;
  numImages: number;
  sampleSeconds: number;
  /** The generated token sequences (TokenDataset file: tokens + class labels). */
  samples: string;
  sampleGrid: string;
}

export function arSteps(c: StudyConfig, trainImages: number): number {
  return Math.max(1, c.ar.epochs * Math.floor(trainImages / c.ar.batchSize));
}

/** Class-balanced generation with the study's sampling settings: sample i has class i mod numClasses. */
export async function generateTokens(ctx: StudyContext, ar: ARTransformer, grid: readonly [number, number]): Promise<TokenDataset> {
  const s = ctx.cfg.sampling;
  const ds = await generateClassBalanced(ar, {
    numImages: s.numImages,
    numClasses: ctx.data.classes.length,
    batchSize: s.batchSize,
    temperature: s.temperature,
    topK: s.topK,
    topP: s.topP,
    cfgScale: s.cfgScale,
    cfgSchedule: s.cfgSchedule,
    generator: new E.Generator(ctx.cfg.seed + 1000),
  });
  return { ...ds, grid: [grid[0], grid[1]] };
}

/** Decodes token sequences with `tokenizer` and accumulates their feature statistics (rows and logits kept, in order). */
export function decodedFeatureStats(ctx: StudyContext, tokenizer: VQTokenizer, ds: TokenDataset): Promise<ImageFeatureStats> {
  const fi = featureInputFor(ctx.cfg.imageSize);
  return decodeStats(ctx.featnet, tokenizer, ds, { backend: ctx.backend, batchSize: ctx.cfg.eval.batchSize, keepFeatures: true, ...(fi ? { featureInput: fi } : {}) });
}

/**
 * Decoded samples, one row per class, clamped: [classes * n, C, H, W] with n = min(perClass, the
 * samples of the rarest class); show it with n images per row.
 */
export function classGrid(ctx: StudyContext, tokenizer: VQTokenizer, ds: TokenDataset, perClass: number): { images: E.Tensor; perRow: number } {
  return sharedClassGrid(tokenizer, ds, { numClasses: ctx.data.classes.length, perClass, backend: ctx.backend });
}

export async function runGenerator(ctx: StudyContext, tok: TokenizerRecord, tokenizer: VQTokenizer): Promise<{ record: GeneratorRecord; model: ARTransformer }> {
  const { cfg, backend, data, log } = ctx;
  const dir = join(ctx.outDir, 'generators', tok.name);
  const checkpoint = join(dir, 'checkpoint.safetensors');
  const steps = arSteps(cfg, data.train.shape[0]);
  const done = finishedRecord<GeneratorRecord>(dir, (r) => r.steps === steps && r.numImages === cfg.sampling.numImages && r.classConsistency !== undefined && r.gfidError !== undefined, ['checkpoint.safetensors'], log);
  if (done) {
    ctx.progress.resumed(`generator ${tok.name}`);
    log(`[generator ${tok.name}] done earlier: gFID ${done.gfid.toFixed(2)} (${join(dir, 'record.json')})`);
    return { record: done, model: (await loadARCheckpoint(checkpoint, backend)).model };
  }
  const t0 = performance.now();
  const tokens = await encodeTokenDataset(tokenizer, data.train, { backend, batchSize: cfg.eval.batchSize });
  log(`[generator ${tok.name}] ${tokens.shape[0]} training images -> ${tokens.shape[1]} tokens each (${((performance.now() - t0) / 1000).toFixed(1)} s); ${steps} AR steps`);
  const r = await trainAR({
    backend,
    tokens,
    numClasses: data.classes.length,
    config: { dim: cfg.ar.dim, depth: cfg.ar.depth, heads: cfg.ar.heads },
    batchSize: cfg.ar.batchSize,
    steps,
    lr: cfg.ar.lr,
    warmupSteps: Math.min(cfg.ar.warmupSteps, steps),
    weightDecay: cfg.ar.weightDecay,
    seed: cfg.seed,
    outDir: dir,
    ...stageIntervals(steps),
    ...(ctx.capture ? { capture: true } : {}),
    log,
    extra: { study: cfg.name, tokenizer: tok.name },
  });
  const trainSeconds = (performance.now() - t0) / 1000;
  const ar = r.model;
  ar.eval();
  const t1 = performance.now();
  const gen = await generateTokens(ctx, ar, tokens.grid);
  const samples = join(dir, 'samples.safetensors');
  await saveTokenCache(samples, gen, { source: { study: cfg.name, tokenizer: tok.name, sampling: cfg.sampling } });
  const stats = await decodedFeatureStats(ctx, tokenizer, gen);
  const scores = scoreSamples(ctx, stats, gen.labels);
  const gfid = scores.gfid;
  const sampleSeconds = (performance.now() - t1) / 1000;
  const sampleGrid = join(dir, 'samples.png');
  using grid = E.disposable(classGrid(ctx, tokenizer, gen, 10));
  await saveImageGrid(sampleGrid, grid.images, { nrow: grid.perRow, range: [-1, 1] });
  const last = r.history[r.history.length - 1];
  const record: GeneratorRecord = {
    tokenizer: tok.name,
    dir,
    checkpoint,
    metrics: join(dir, 'metrics.jsonl'),
    params: ar.numParameters(),
    steps,
    finalLoss: last?.terms.loss ?? NaN,
    trainSeconds,
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
  ctx.progress.done(`generator ${tok.name}`);
  log(`[generator ${tok.name}] gFID ${gfid.toFixed(2)} ± ${scores.gfidError.standardError.toFixed(2)}, class consistency ${(100 * scores.classConsistency.accuracy).toFixed(1)}%, IS ${record.inceptionScore?.toFixed(2) ?? 'n/a'} (${trainSeconds.toFixed(0)} s train, ${sampleSeconds.toFixed(0)} s for ${gen.shape[0]} samples)`);
  return { record, model: ar };
}

export async function loadSamples(record: GeneratorRecord): Promise<TokenDataset> {
  return (await loadTokenCache(record.samples)).tokens;
}
