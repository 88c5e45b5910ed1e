/**
 * Continuous arm, stage 5: post-train the decoder of the KL tokenizer whose diffusion generator
 * has the best gFID. The normalized latents of the first `images` training images are noised to
 * t* and denoised back to t = 0 by the frozen generator, guided for the image's class
 * (models/diffusion/posttrain.ts: the continuous analogue of the paper's mixed tokens); they are
 * built once and cached (denoised.safetensors). A fresh copy of the decoder is trained to map
 * them to the source images (DecoderPostTrainer.stepLatents, the same trainer, schedule and EMA as
 * the discrete arm's), and a control decoder gets the same training on the clean latents (t* = 0).
 * gFID before / after / control is measured on the SAME generated latents (stage 3's samples),
 * decoded by each decoder. Lives in <out>/continuous/posttrain/<name>/. The data builder and the
 * decoder training are node/posttrain.ts's, shared with `webgpu-tok posttrain`.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import * as E from '../../engine/index.js';
import { encodeLatentDataset, type LatentDataset } from '../../models/diffusion/index.js';
import { evaluateContinuousTokenizer, type VQTokenizer } from '../../models/tokenizer/index.js';
import { saveImageGrid, subset, writeFileAtomicSync } from '../../node/data/index.js';
import { denoiseLatents, latentRmsChange, latentRows, trainDecoder } from '../../node/posttrain.js';
import { loadLatentCache, saveLatentCache } from '../../node/train-diffusion.js';
import { loadTokenizerCheckpoint } from '../../node/train-tokenizer.js';
import { finishedRecord, type StudyContext } from './context.js';
import { decodedLatentStats, latentGrid, loadDiffusionGenerator, loadLatentSamples, type DiffusionGeneratorRecord } from './continuous-generators.js';
import type { ContinuousTokenizerRecord } from './continuous-tokenizers.js';
import { deviceBatches, featureInputFor } from './data.js';
import { decoderTraining } from './posttrain.js';
import { postTrainComparison, scorePairedSamples, type PostTrainComparison, type SampleScores } from './sample-scores.js';

export interface ContinuousDecoderScores extends SampleScores {
  rfid: number;
  /** nFID at the study's tau. */
  nfid: number;
  psnr: number;
  ssim: number;
}

export interface ContinuousPostTrainRecord {
  tokenizer: string;
  /** SHA-256 of the generator checkpoint that denoised the latents. */
  generatorSha256: string;
  dir: string;
  tStar: number;
  images: number;
  /** ODE steps of each partial [t*, 0] run: round(sampling.steps * t*), at least 1. */
  odeSteps: number;
  /** RMS difference between the denoised and the clean normalized latents (unit-std channels). */
  latentRmsChange: number;
  steps: number;
  seconds: number;
  metrics: string;
  checkpoint: string;
  before: ContinuousDecoderScores;
  after: ContinuousDecoderScores;
  /** The same decoder training on the clean latents (t* = 0): "after - control" is what the generator adds. */
  control: ContinuousDecoderScores | null;
  /** Paired gFID differences (the same generated latents, one bootstrap draw for all three decoders). */
  comparison: PostTrainComparison;
  grid: string;
}

/**
 * The denoised latents of the clean ones (cached in <dir>/denoised.safetensors, keyed by the
 * generator's hash, t* and the count), and their RMS change.
 */
async function denoisedLatents(ctx: StudyContext, gen: DiffusionGeneratorRecord, clean: LatentDataset, dir: string): Promise<{ ds: LatentDataset; rms: number }> {
  const { cfg, backend, log } = ctx;
  const k = cfg.continuous!;
  const path = join(dir, 'denoised.safetensors');
  const source = { study: cfg.name, generatorSha256: gen.sha256, tStar: k.posttrain.tStar, images: clean.shape[0], sampling: k.sampling };
  const rmsOf = (ds: LatentDataset) => latentRmsChange(ds, clean);
  if (existsSync(path)) {
    const c = await loadLatentCache(path);
    if (JSON.stringify(c.meta.source) === JSON.stringify(source) && c.latents.shape.join() === clean.shape.join()) return { ds: c.latents, rms: rmsOf(c.latents) };
  }
  const t0 = performance.now();
  using dit = await loadDiffusionGenerator(gen, backend);
  const N = clean.shape[0];
  const s = k.sampling;
  const ds = await denoiseLatents(dit, clean, { tStar: k.posttrain.tStar, steps: s.steps, sampler: s.sampler, cfgScale: s.cfgScale, guidanceInterval: s.guidanceInterval }, { backend, batchSize: s.batchSize, seed: cfg.seed });
  await saveLatentCache(path, ds, { source });
  const rms = rmsOf(ds);
  log(`[kl-posttrain] ${N} latents noised to t* = ${k.posttrain.tStar} and denoised by the generator (RMS change ${rms.toFixed(3)}) in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
  return { ds, rms };
}

/** rFID, nFID, PSNR, SSIM of a decoder on the validation images. */
async function reconScores(ctx: StudyContext, model: VQTokenizer): Promise<Pick<ContinuousDecoderScores, 'rfid' | 'nfid' | 'psnr' | 'ssim'>> {
  const { cfg } = ctx;
  const k = cfg.continuous!;
  const fi = featureInputFor(cfg.imageSize);
  const batches = (function* () {
    for (const b of deviceBatches(ctx.data.val, cfg.eval.batchSize, ctx.backend)) yield b.x;
  })();
  // The tokenizer stage's nFID noise (Generator(seed) per tau), so before / after / control share it.
  const r = await evaluateContinuousTokenizer(model, ctx.featnet, batches, null, { taus: [k.eval.nfidTau], defaultTau: k.eval.nfidTau, seed: cfg.seed, inceptionScore: false, ...(fi ? { featureInput: fi } : {}) });
  return { rfid: r.rfid, nfid: r.nfidDefault.fid, psnr: r.psnr, ssim: r.ssim };
}

export async function runContinuousPostTrain(ctx: StudyContext, tok: ContinuousTokenizerRecord, gen: DiffusionGeneratorRecord): Promise<ContinuousPostTrainRecord> {
  const { cfg, backend, log } = ctx;
  const p = cfg.continuous!.posttrain;
  const dir = join(ctx.outDir, 'continuous', 'posttrain', tok.name);
  const n = Math.min(p.images, ctx.data.train.shape[0]);
  const done = finishedRecord<ContinuousPostTrainRecord>(dir, (r) => r.images === n && r.tStar === p.tStar && r.generatorSha256 === gen.sha256 && ((r.control ?? null) !== null) === p.control && r.comparison !== undefined, [], log);
  if (done) {
    ctx.progress.resumed(`posttrain (diffusion)`);
    log(`[kl-posttrain ${tok.name}] done earlier: gFID ${done.before.gfid.toFixed(2)} -> ${done.after.gfid.toFixed(2)}`);
    return done;
  }
  const t0 = performance.now();
  using base = (await loadTokenizerCheckpoint(tok.checkpoint, backend)).model; // the original decoder, for "before" and the grid
  const images = subset(ctx.data.train, Int32Array.from({ length: n }, (_, i) => i));
  const clean = await encodeLatentDataset(base, images, { backend, batchSize: cfg.eval.batchSize });
  const { ds: denoised, rms } = await denoisedLatents(ctx, gen, clean, dir);
  const training = decoderTraining(ctx, tok.checkpoint, tok.name, images, p);
  const post = await trainDecoder({ ...training, rows: latentRows(denoised), outDir: dir, label: `kl-posttrain ${tok.name}` });
  const seconds = (performance.now() - t0) / 1000;
  const samples = await loadLatentSamples(gen);
  const e = tok.eval;
  // Every decoder decodes the same generated latents; their gFIDs are bootstrapped together.
  const sets = [await decodedLatentStats(ctx, base, samples), await decodedLatentStats(ctx, post.model, samples)];
  const recon = [{ rfid: e.rfid, nfid: e.nfidDefault.fid, psnr: e.psnr, ssim: e.ssim }, await reconScores(ctx, post.model)];
  using grids = E.disposable([latentGrid(ctx, base, samples, 8), latentGrid(ctx, post.model, samples, 8)]);
  post.model.dispose(); // scored and drawn; its checkpoint is on disk
  if (p.control) {
    using c = (await trainDecoder({ ...training, rows: latentRows(clean), outDir: join(dir, 'control'), label: `kl-posttrain ${tok.name} control (clean latents)` })).model;
    sets.push(await decodedLatentStats(ctx, c, samples));
    recon.push(await reconScores(ctx, c));
    grids.push(latentGrid(ctx, c, samples, 8));
  }
  const { scores, bootstrap } = scorePairedSamples(ctx, sets, samples.labels, 2);
  const [before, after, control = null] = scores.map((s, k): ContinuousDecoderScores => ({ ...s, ...recon[k]! }));
  before!.gfid = gen.gfid; // the generator stage's number for the same decoding
  const comparison = postTrainComparison(ctx, bootstrap);
  const gridPath = join(dir, 'before-after.png');
  using all = E.concat(grids.map((g) => g.images), 0);
  await saveImageGrid(gridPath, all, { nrow: grids[0]!.perRow, range: [-1, 1] });
  const rec: ContinuousPostTrainRecord = {
    tokenizer: tok.name,
    generatorSha256: gen.sha256,
    dir,
    tStar: p.tStar,
    images: n,
    odeSteps: p.tStar === 0 ? 0 : Math.max(1, Math.round(cfg.continuous!.sampling.steps * p.tStar)),
    latentRmsChange: rms,
    steps: post.steps,
    seconds,
    metrics: join(dir, 'metrics.jsonl'),
    checkpoint: join(dir, 'checkpoint.safetensors'),
    before: before!,
    after: after!,
    control,
    comparison,
    grid: gridPath,
  };
  writeFileAtomicSync(join(dir, 'record.json'), JSON.stringify(rec, null, 2));
  const ctl = control ? `; control on clean latents: gFID ${control.gfid.toFixed(2)}, rFID ${control.rfid.toFixed(2)}` : '';
  ctx.progress.done(`posttrain (diffusion)`);
  const d = comparison.afterMinusBefore;
  log(`[kl-posttrain ${tok.name}] gFID ${before!.gfid.toFixed(2)} -> ${after!.gfid.toFixed(2)} (paired difference ${d.estimate.toFixed(2)} [${d.low.toFixed(2)}, ${d.high.toFixed(2)}]), rFID ${before!.rfid.toFixed(2)} -> ${after!.rfid.toFixed(2)}${ctl} (${seconds.toFixed(0)} s)`);
  return rec;
}
