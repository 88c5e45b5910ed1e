/**
 * Continuous arm, stage 1-2: train each KL tokenizer variant (noise-augmented decoding or not)
 * and evaluate it: rFID, the nFID grid over tau, iFID against the latents of the first
 * `ifidMaxTrain` training images, PSNR, SSIM; with its reconstruction grid (originals, clean,
 * noised at each tau, iFID interpolations) and loss curve. Each variant lives in
 * <out>/continuous/tokenizers/<name>/; a finished variant (record.json) is loaded, not retrained,
 * and an interrupted one resumes from its checkpoint. The record keeps the checkpoint's SHA-256,
 * so the generator trained on its latents reruns when the tokenizer was retrained.
 */
import { join } from 'node:path';
import * as E from '../../engine/index.js';
import { continuousReconstructionGrid, encodeLatentSet, evaluateContinuousTokenizer, resolveLatentNoise, type ContinuousEvalResult, type LatentNoiseConfig, type TokenizerConfig, type VQTokenizer } from '../../models/tokenizer/index.js';
import { saveImageGrid, writeFileAtomicSync } from '../../node/data/index.js';
import { fileSha256 } from '../../node/train-ar.js';
import { loadTokenizerCheckpoint, trainTokenizer } from '../../node/train-tokenizer.js';
import { continuousVariantConfig, type ContinuousStudyConfig, type ContinuousVariant } from './config.js';
import { finishedRecord, stageIntervals, type StudyContext } from './context.js';
import { deviceBatches, featureInputFor, imagesTensor } from './data.js';
import { reconstructionFidError } from './sample-scores.js';

export interface ContinuousTokenizerRecord {
  name: string;
  description: string;
  dir: string;
  checkpoint: string;
  /** SHA-256 of the final checkpoint (the generator's and post-training's key). */
  sha256: string;
  config: Partial<TokenizerConfig>;
  latentNoise: Required<LatentNoiseConfig>;
  latentChannels: number;
  latentGrid: [number, number];
  params: number;
  steps: number;
  trainSeconds: number;
  /** Per-channel mean / std of the raw latents over the training set (the normalization). */
  latentStats: { mean: number[]; std: number[] };
  eval: ContinuousEvalResult;
  evalSeconds: number;
  reconGrid: string;
}

export function continuousTokenizerSteps(k: ContinuousStudyConfig, v: ContinuousVariant, trainImages: number): number {
  return Math.max(1, (v.epochs ?? k.tokenizer.epochs) * Math.floor(trainImages / k.tokenizer.batchSize));
}

/** Normalized latents of the first `ifidMaxTrain` training images (iFID's neighbours), on the device. */
function trainingLatents(ctx: StudyContext, model: VQTokenizer): Promise<E.Tensor> {
  const k = ctx.cfg.continuous!;
  const batches = (function* () {
    for (const b of deviceBatches(ctx.data.train, ctx.cfg.eval.batchSize, ctx.backend, k.eval.ifidMaxTrain)) yield b.x;
  })();
  return encodeLatentSet(model, batches, { maxCount: k.eval.ifidMaxTrain });
}

async function evaluate(ctx: StudyContext, model: VQTokenizer, train: E.Tensor): Promise<ContinuousEvalResult> {
  const { cfg, backend } = ctx;
  const k = cfg.continuous!;
  const fi = featureInputFor(cfg.imageSize);
  return evaluateContinuousTokenizer(model, ctx.featnet, (function* () {
    for (const b of deviceBatches(ctx.data.val, cfg.eval.batchSize, backend)) yield b.x;
  })(), train, { taus: k.eval.taus, defaultTau: k.eval.nfidTau, ifidK: k.eval.ifidK, seed: cfg.seed, fidError: reconstructionFidError(cfg), ...(fi ? { featureInput: fi } : {}) });
}

/** Trains (or resumes, or loads) and evaluates one KL variant; returns its record and the model (eval mode). */
export async function runContinuousTokenizer(ctx: StudyContext, v: ContinuousVariant): Promise<{ record: ContinuousTokenizerRecord; model: VQTokenizer }> {
  const { cfg, backend, data, log } = ctx;
  const k = cfg.continuous!;
  const dir = join(ctx.outDir, 'continuous', 'tokenizers', v.name);
  const checkpoint = join(dir, 'checkpoint.safetensors');
  const steps = continuousTokenizerSteps(k, v, data.train.shape[0]);
  const config = continuousVariantConfig(k, v);
  const latentNoise = resolveLatentNoise(v.latentNoise);
  const evalKey = (r: ContinuousTokenizerRecord) => JSON.stringify([r.eval.nfid.map((e) => e.tau), r.eval.nfidDefault.tau, r.eval.ifidK, r.eval.ifidTrainCount]);
  const wantKey = JSON.stringify([[...new Set(k.eval.taus)].sort((a, b) => a - b), k.eval.nfidTau, k.eval.ifidK, Math.min(k.eval.ifidMaxTrain, data.train.shape[0])]);
  const done = finishedRecord<ContinuousTokenizerRecord>(
    dir,
    (r) => r.steps === steps && JSON.stringify(r.config) === JSON.stringify(config) && JSON.stringify(r.latentNoise) === JSON.stringify(latentNoise) && evalKey(r) === wantKey,
    ['checkpoint.safetensors'],
    log,
  );
  if (done) {
    ctx.progress.resumed(`kl-tokenizer ${v.name}`);
    log(`[kl-tokenizer ${v.name}] done earlier: rFID ${done.eval.rfid.toFixed(2)}, nFID ${done.eval.nfidDefault.fid.toFixed(2)}, iFID ${done.eval.ifid?.toFixed(2) ?? 'n/a'} (${join(dir, 'record.json')})`);
    return { record: done, model: (await loadTokenizerCheckpoint(checkpoint, backend)).model };
  }
  log(`[kl-tokenizer ${v.name}] ${v.description}: ${config.codeDim} latent channels, KL weight ${config.klWeight}; ${steps} steps at batch ${k.tokenizer.batchSize}`);
  const t0 = performance.now();
  const r = await trainTokenizer({
    backend,
    data: { train: data.train, val: data.val },
    config,
    latentNoise,
    batchSize: k.tokenizer.batchSize,
    steps,
    lr: k.tokenizer.lr,
    seed: cfg.seed,
    outDir: dir,
    ...stageIntervals(steps),
    ...(ctx.capture ? { capture: true } : {}),
    log,
    extra: { study: cfg.name, arm: 'continuous', variant: v.name },
  });
  const trainSeconds = (performance.now() - t0) / 1000;
  const model = r.model;
  model.eval();
  const t1 = performance.now();
  let ev: ContinuousEvalResult;
  const reconGrid = join(dir, 'recon.png');
  {
    using train = await trainingLatents(ctx, model);
    ev = await evaluate(ctx, model, train);
    const n = Math.min(16, data.val.shape[0]);
    using x = imagesTensor(data.val, 0, n, backend);
    using grid = await continuousReconstructionGrid(model, x, { taus: k.eval.taus, seed: cfg.seed, trainLatents: train, ifidK: k.eval.ifidK });
    await saveImageGrid(reconGrid, grid, { nrow: n, range: [-1, 1] });
  }
  const evalSeconds = (performance.now() - t1) / 1000;
  const [mean, std] = await Promise.all([model.latentStats.mean.toArray(), model.latentStats.std.toArray()]);
  const record: ContinuousTokenizerRecord = {
    name: v.name,
    description: v.description,
    dir,
    checkpoint,
    sha256: await fileSha256(checkpoint),
    config,
    latentNoise,
    latentChannels: model.cfg.codeDim,
    latentGrid: model.tokenGrid(cfg.imageSize, cfg.imageSize),
    params: model.numParameters(),
    steps,
    trainSeconds,
    latentStats: { mean: Array.from(mean), std: Array.from(std) },
    eval: ev,
    evalSeconds,
    reconGrid,
  };
  writeFileAtomicSync(join(dir, 'record.json'), JSON.stringify(record, null, 2));
  const nf = ev.nfid.map((e) => `${e.tau}: ${e.fid.toFixed(2)}`).join(', ');
  ctx.progress.done(`kl-tokenizer ${v.name}`);
  log(`[kl-tokenizer ${v.name}] rFID ${ev.rfid.toFixed(2)}, nFID(tau ${nf}), iFID ${ev.ifid?.toFixed(2) ?? 'n/a'}, PSNR ${ev.psnr.toFixed(2)} dB, SSIM ${ev.ssim.toFixed(3)} (${trainSeconds.toFixed(0)} s train, ${evalSeconds.toFixed(0)} s eval)`);
  return { record, model };
}
