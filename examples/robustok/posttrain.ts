/**
 * Stage 5 of the study: post-train the decoder of the tokenizer whose generator has the best
 * gFID. Mixed token sequences (ground truth kept with probability sigma, else the generator's
 * sample, conditioned on the mixed prefix) are built once and cached; the decoder is trained on
 * them (AdamW (0.9, 0.95), cosine lr, EMA) through trainLoop (progress, checkpoints, resume), then
 * the EMA decoder decodes exactly the generated sequences of stage 3 for gFID after. A control
 * decoder gets the same training on the clean tokens of the same images. The data builder and the
 * decoder training are node/posttrain.ts's, shared with `webgpu-tok posttrain`.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import * as E from '../../engine/index.js';
import { encodeTokenDataset, type ARTransformer, type TokenDataset } from '../../models/ar/index.js';
import { evaluateTokenizer, type VQTokenizer } from '../../models/tokenizer/index.js';
import { saveImageGrid, subset, writeFileAtomicSync, type ImageDataset } from '../../node/data/index.js';
import { mixTokens, tokenRows, trainDecoder } from '../../node/posttrain.js';
import { loadTokenCache, saveTokenCache } from '../../node/train-ar.js';
import { loadTokenizerCheckpoint } from '../../node/train-tokenizer.js';
import type { StudyConfig } from './config.js';
import { finishedRecord, type StudyContext } from './context.js';
import { deviceBatches, featureInputFor } from './data.js';
import { classGrid, decodedFeatureStats, loadSamples, type GeneratorRecord } from './generators.js';
import { postTrainComparison, scorePairedSamples, type PostTrainComparison, type SampleScores } from './sample-scores.js';
import type { TokenizerRecord } from './tokenizers.js';

export interface DecoderScores extends SampleScores {
  rfid: number;
  psnr: number;
}

export interface PostTrainRecord {
  tokenizer: string;
  dir: string;
  sigma: number;
  images: number;
  keptFraction: number;
  steps: number;
  seconds: number;
  metrics: string;
  checkpoint: string;
  before: DecoderScores;
  after: DecoderScores;
  /**
   * The control: the same decoder training (steps, schedule, EMA) on the clean ground-truth tokens
   * (sigma = 1), so "after - control" is what the generator's tokens add beyond training longer.
   */
  control: DecoderScores | null;
  /** Paired gFID differences (the same generated tokens, one bootstrap draw for all three decoders). */
  comparison: PostTrainComparison;
  grid: string;
}

/** Mixed sequences for the first `n` training images, cached in <dir>/mixed.safetensors. */
async function mixedTokens(ctx: StudyContext, tokenizer: VQTokenizer, ar: ARTransformer, dir: string, n: number): Promise<{ ds: TokenDataset; kept: number }> {
  const { cfg, backend, log } = ctx;
  const path = join(dir, 'mixed.safetensors');
  if (existsSync(path)) {
    const c = await loadTokenCache(path);
    const kept = Number((c.meta.source as Record<string, unknown> | undefined)?.keptFraction);
    if (c.tokens.shape[0] === n && Number.isFinite(kept)) return { ds: c.tokens, kept };
  }
  const t0 = performance.now();
  const images = subset(ctx.data.train, Int32Array.from({ length: n }, (_, i) => i));
  const gt = await encodeTokenDataset(tokenizer, images, { backend, batchSize: cfg.eval.batchSize });
  const s = cfg.sampling;
  const { ds, keptFraction } = await mixTokens(ar, gt, { sigma: cfg.posttrain.sigma, temperature: s.temperature, topK: s.topK, topP: s.topP, cfgScale: s.cfgScale, cfgSchedule: s.cfgSchedule }, { backend, batchSize: s.batchSize, seed: cfg.seed });
  const N = ds.shape[0];
  await saveTokenCache(path, ds, { source: { study: cfg.name, sigma: cfg.posttrain.sigma, keptFraction } });
  log(`[posttrain] ${N} mixed sequences, ground truth kept at ${(100 * keptFraction).toFixed(1)}% of positions (sigma ${cfg.posttrain.sigma}) in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
  return { ds, kept: keptFraction };
}

async function reconScores(ctx: StudyContext, tokenizer: VQTokenizer): Promise<{ rfid: number; psnr: number }> {
  const fi = featureInputFor(ctx.cfg.imageSize);
  const batches = (function* () {
    for (const b of deviceBatches(ctx.data.val, ctx.cfg.eval.batchSize, ctx.backend)) yield b.x;
  })();
  const r = await evaluateTokenizer(tokenizer, ctx.featnet, batches, { alphas: [ctx.cfg.eval.pfidAlpha], defaultAlpha: ctx.cfg.eval.pfidAlpha, seed: ctx.cfg.seed, inceptionScore: false, ...(fi ? { featureInput: fi } : {}) });
  return { rfid: r.rfid, psnr: r.psnr };
}

/** The decoder training of a study arm: its settings, seed, log and checkpoint metadata. */
export function decoderTraining(ctx: StudyContext, checkpoint: string, name: string, images: ImageDataset, p: StudyConfig['posttrain'] | NonNullable<StudyConfig['continuous']>['posttrain']) {
  const { cfg, backend, log } = ctx;
  const settings = { batchSize: p.batchSize, epochs: p.epochs, lr: p.lr, minLr: p.minLr, emaDecay: p.emaDecay, seed: cfg.seed };
  return { backend, checkpoint, images, settings, log, extra: { study: cfg.name, tokenizer: name } };
}


export async function runPostTrain(ctx: StudyContext, tok: TokenizerRecord, gen: GeneratorRecord, ar: ARTransformer): Promise<PostTrainRecord> {
  const { cfg, backend, log } = ctx;
  const p = cfg.posttrain;
  const dir = join(ctx.outDir, 'posttrain', tok.name);
  const recordPath = join(dir, 'record.json');
  const n = Math.min(p.images, ctx.data.train.shape[0]);
  const done = finishedRecord<PostTrainRecord>(dir, (r) => r.images === n && r.sigma === p.sigma && ((r.control ?? null) !== null) === p.control && r.comparison !== undefined, [], log);
  if (done) {
    ctx.progress.resumed(`posttrain (AR)`);
    log(`[posttrain ${tok.name}] done earlier: gFID ${done.before.gfid.toFixed(2)} -> ${done.after.gfid.toFixed(2)}`);
    return done;
  }
  const t0 = performance.now();
  using base = (await loadTokenizerCheckpoint(tok.checkpoint, backend)).model; // the original decoder, for "before"
  const { ds: mixed, kept } = await mixedTokens(ctx, base, ar, dir, n);
  const images = subset(ctx.data.train, Int32Array.from({ length: n }, (_, i) => i));
  const training = decoderTraining(ctx, tok.checkpoint, tok.name, images, p);
  const post = await trainDecoder({ ...training, rows: tokenRows(mixed), outDir: dir, label: `posttrain ${tok.name}` });
  using postModel = post.model;
  const seconds = (performance.now() - t0) / 1000;
  const samples = await loadSamples(gen);
  // Every decoder decodes the same generated sequences; their gFIDs are bootstrapped together.
  const sets = [await decodedFeatureStats(ctx, base, samples), await decodedFeatureStats(ctx, postModel, samples)];
  const recon = [{ rfid: tok.eval.rfid, psnr: tok.eval.psnr }, await reconScores(ctx, postModel)];
  if (p.control) {
    const gt = await encodeTokenDataset(base, images, { backend, batchSize: cfg.eval.batchSize });
    using c = (await trainDecoder({ ...training, rows: tokenRows(gt), outDir: join(dir, 'control'), label: `posttrain ${tok.name} control (clean tokens)` })).model;
    sets.push(await decodedFeatureStats(ctx, c, samples));
    recon.push(await reconScores(ctx, c));
  }
  const { scores, bootstrap } = scorePairedSamples(ctx, sets, samples.labels, 1);
  const [before, after, control = null] = scores.map((s, k): DecoderScores => ({ ...s, ...recon[k]! }));
  before!.gfid = gen.gfid; // the generator stage's number for the same decoding
  const comparison = postTrainComparison(ctx, bootstrap);
  const gridPath = join(dir, 'before-after.png');
  using grids = E.disposable([classGrid(ctx, base, samples, 8), classGrid(ctx, postModel, samples, 8)]);
  using both = E.concat(grids.map((g) => g.images), 0);
  await saveImageGrid(gridPath, both, { nrow: grids[0]!.perRow, range: [-1, 1] });
  const rec: PostTrainRecord = { tokenizer: tok.name, dir, sigma: p.sigma, images: n, keptFraction: kept, steps: post.steps, seconds, metrics: join(dir, 'metrics.jsonl'), checkpoint: join(dir, 'checkpoint.safetensors'), before: before!, after: after!, control, comparison, grid: gridPath };
  writeFileAtomicSync(recordPath, JSON.stringify(rec, null, 2));
  const ctl = control ? `; control on clean tokens: gFID ${control.gfid.toFixed(2)}, rFID ${control.rfid.toFixed(2)}` : '';
  ctx.progress.done(`posttrain (AR)`);
  log(`[posttrain ${tok.name}] gFID ${before!.gfid.toFixed(2)} -> ${after!.gfid.toFixed(2)} (paired difference ${comparison.afterMinusBefore.estimate.toFixed(2)} [${comparison.afterMinusBefore.low.toFixed(2)}, ${comparison.afterMinusBefore.high.toFixed(2)}]), rFID ${before!.rfid.toFixed(2)} -> ${after!.rfid.toFixed(2)}${ctl} (${seconds.toFixed(0)} s)`);
  return rec;
}
