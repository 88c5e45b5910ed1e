/**
 * Stage 1-2 of the study: train each tokenizer variant and evaluate it (rFID, pFID grid, PSNR,
 * SSIM, codebook usage), with its reconstruction grid and loss curve. Each variant lives in
 * <out>/tokenizers/<name>/; a finished variant (eval.json present) is loaded, not retrained, and
 * an interrupted one resumes from its checkpoint.
 */
import { join } from 'node:path';
import { evaluateTokenizer, reconstructionGrid, type TokenizerEvalResult, type VQTokenizer } from '../../models/tokenizer/index.js';
import { saveImageGrid, writeFileAtomicSync } from '../../node/data/index.js';
import { loadTokenizerCheckpoint, trainTokenizer } from '../../node/train-tokenizer.js';
import type { StudyConfig, TokenizerVariant } from './config.js';
import { deviceBatches, featureInputFor, imagesTensor, type StudyData } from './data.js';
import { finishedRecord, stageIntervals, type StudyContext } from './context.js';
import { reconstructionFidError } from './sample-scores.js';

export interface TokenizerRecord {
  name: string;
  description: string;
  dir: string;
  checkpoint: string;
  params: number;
  steps: number;
  trainSeconds: number;
  eval: TokenizerEvalResult;
  evalSeconds: number;
  reconGrid: string;
}

export function variantConfig(c: StudyConfig, v: TokenizerVariant) {
  return { ...c.tokenizer.base, ...v.config };
}

export function tokenizerSteps(c: StudyConfig, v: TokenizerVariant, trainImages: number): number {
  return Math.max(1, (v.epochs ?? c.tokenizer.epochs) * Math.floor(trainImages / c.tokenizer.batchSize));
}

async function evaluate(ctx: StudyContext, model: VQTokenizer, data: StudyData): Promise<TokenizerEvalResult> {
  const { cfg, backend } = ctx;
  const fi = featureInputFor(cfg.imageSize);
  return evaluateTokenizer(model, ctx.featnet, (function* () {
    for (const b of deviceBatches(data.val, cfg.eval.batchSize, backend)) yield b.x;
  })(), { alphas: cfg.eval.alphas, defaultAlpha: cfg.eval.pfidAlpha, seed: cfg.seed, fidError: reconstructionFidError(cfg), ...(fi ? { featureInput: fi } : {}) });
}

/** Trains (or resumes, or loads) and evaluates one variant; returns its record and the model (eval mode). */
export async function runTokenizer(ctx: StudyContext, v: TokenizerVariant): Promise<{ record: TokenizerRecord; model: VQTokenizer }> {
  const { cfg, backend, data, log } = ctx;
  const dir = join(ctx.outDir, 'tokenizers', v.name);
  const checkpoint = join(dir, 'checkpoint.safetensors');
  const steps = tokenizerSteps(cfg, v, data.train.shape[0]);
  const done = finishedRecord<TokenizerRecord>(dir, (r) => r.steps === steps, ['checkpoint.safetensors'], log);
  if (done) {
    ctx.progress.resumed(`tokenizer ${v.name}`);
    log(`[tokenizer ${v.name}] done earlier: rFID ${done.eval.rfid.toFixed(2)}, pFID ${done.eval.pfidDefault.fid.toFixed(2)} (${join(dir, 'record.json')})`);
    return { record: done, model: (await loadTokenizerCheckpoint(checkpoint, backend)).model };
  }
  log(`[tokenizer ${v.name}] ${v.description}: ${steps} steps at batch ${cfg.tokenizer.batchSize}`);
  const t0 = performance.now();
  const r = await trainTokenizer({
    backend,
    data: { train: data.train, val: data.val },
    config: variantConfig(cfg, v),
    perturbation: v.perturbation,
    batchSize: cfg.tokenizer.batchSize,
    steps,
    lr: cfg.tokenizer.lr,
    seed: cfg.seed,
    outDir: dir,
    ...stageIntervals(steps),
    ...(ctx.capture ? { capture: true } : {}),
    log,
    extra: { study: cfg.name, variant: v.name },
  });
  const trainSeconds = (performance.now() - t0) / 1000;
  const model = r.model;
  model.eval();
  const t1 = performance.now();
  const ev = await evaluate(ctx, model, data);
  const evalSeconds = (performance.now() - t1) / 1000;
  const reconGrid = join(dir, 'recon.png');
  const n = Math.min(16, data.val.shape[0]);
  using x = imagesTensor(data.val, 0, n, backend);
  using grid = reconstructionGrid(model, x, { alphas: cfg.eval.alphas, seed: cfg.seed });
  await saveImageGrid(reconGrid, grid, { nrow: n, range: [-1, 1] });
  const record: TokenizerRecord = { name: v.name, description: v.description, dir, checkpoint, params: model.numParameters(), steps, trainSeconds, eval: ev, evalSeconds, reconGrid };
  writeFileAtomicSync(join(dir, 'record.json'), JSON.stringify(record, null, 2));
  ctx.progress.done(`tokenizer ${v.name}`);
  log(`[tokenizer ${v.name}] rFID ${ev.rfid.toFixed(2)}, pFID(alpha ${cfg.eval.pfidAlpha}) ${ev.pfidDefault.fid.toFixed(2)}, PSNR ${ev.psnr.toFixed(2)} dB, SSIM ${ev.ssim.toFixed(3)}, usage ${ev.usage.toFixed(1)}% (${trainSeconds.toFixed(0)} s train, ${evalSeconds.toFixed(0)} s eval)`);
  return { record, model };
}
