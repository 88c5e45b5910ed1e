/**
 * Expected duration of a study on this device, measured rather than guessed: a few training steps
 * of the tokenizer and of the generator at the config's sizes, one sampling batch, one evaluation
 * batch (a tokenizer reconstruction and the feature network) and one FID bootstrap replicate are
 * timed (after a warm-up that compiles the kernels); the same for the continuous arm (KL
 * tokenizer step, diffusion step, one diffusion evaluation). `measureStepTimes` does the timing,
 * `planStudy` (pure) multiplies the times by the study's counts, per stage, so any preset can be
 * planned from times measured at its own sizes (or, in a test, at smaller ones).
 */
import * as E from '../../engine/index.js';
import { FeatNet } from '../../models/features/featnet.js';
import { arTrainStep, ARTransformer, createAROptimizer, sampleTokens } from '../../models/ar/index.js';
import { createDiffusionOptimizer, DiffusionTransformer, diffusionTrainStep, odeEvaluations, sampleDiffusion } from '../../models/diffusion/index.js';
import { bootstrapFids, ResamplableFeatures } from '../../models/metrics/index.js';
import { tokenizerTrainStep, VQTokenizer } from '../../models/tokenizer/index.js';
import { AdamW } from '../../nn/index.js';
import { continuousVariantConfig, studySeeds, type StudyConfig } from './config.js';
import { replicateSuffix } from './context.js';
import { diffusionSteps } from './continuous-generators.js';
import { continuousTokenizerSteps } from './continuous-tokenizers.js';
import { arSteps } from './generators.js';
import { studyStats } from './sample-scores.js';
import { tokenizerSteps, variantConfig } from './tokenizers.js';

/** Measured seconds of the study's unit operations at a config's sizes. */
export interface StepTimes {
  tokenizerStep: number;
  arStep: number;
  /** One AR sampling batch (sampling.batchSize sequences). */
  arSampleBatch: number;
  /** One evaluation batch: tokenizer reconstruction + feature network (eval.batchSize images). */
  evalBatch: number;
  /** One bootstrap replicate of one gFID (sampling.numImages generated rows, valImages real rows). */
  fidReplicate: number;
  klTokenizerStep?: number;
  ditStep?: number;
  /** One guided DiT evaluation of a sampling batch (continuous sampling.batchSize latents). */
  ditEval?: number;
}

/** One stage of the run, in run order, with its expected seconds. */
export interface PlannedStage {
  name: string;
  seconds: number;
}

export interface StudyEstimate {
  tokenizerStepSeconds: number;
  arStepSeconds: number;
  samplingBatchSeconds: number;
  times: StepTimes;
  /** Seconds per kind of work. */
  stages: Record<string, number>;
  /** The run's stages in order (the progress line's weights). */
  plan: PlannedStage[];
  totalSeconds: number;
}

async function timeSteps(n: number, step: () => E.Tensor): Promise<number> {
  {
    using warm = E.tidy(step);
    await warm.item();
  }
  const t0 = performance.now();
  for (let i = 0; i < n; i++) {
    using l = E.tidy(step);
    await l.item(); // one readback per step: the timing includes the device work
  }
  return (performance.now() - t0) / 1000 / n;
}

/** Seconds of `run` on its second call (the first compiles the kernels). */
async function timeOnce(run: () => Promise<void>): Promise<number> {
  await run();
  const t0 = performance.now();
  await run();
  return (performance.now() - t0) / 1000;
}

export async function measureStepTimes(cfg: StudyConfig, backend: E.Backend, steps = 3): Promise<StepTimes> {
  const S = cfg.imageSize;
  const tok = new VQTokenizer({ ...variantConfig(cfg, cfg.tokenizer.variants[0]!), perturbation: 'paper' }, { backend, generator: new E.Generator(1) });
  const opt = new AdamW(tok.parameters(), { lr: 1e-4 });
  let tokenizerStep: number;
  {
    using x = E.rand([cfg.tokenizer.batchSize, 1, S, S], { backend, low: -1, high: 1 });
    tokenizerStep = await timeSteps(steps, () => tokenizerTrainStep(tok, opt, x, { step: 1, totalSteps: 10 }).total!);
  }
  opt.dispose();
  // One evaluation batch: a reconstruction and the feature network (FeatNet sees 32x32 images).
  tok.eval();
  const featnet = new FeatNet({}, { backend });
  featnet.eval();
  const evalBatch = await timeOnce(async () => {
    using x = E.rand([cfg.eval.batchSize, 1, S, S], { backend, low: -1, high: 1 });
    using f = E.noGrad(() => E.tidy(() => {
      const rec = tok.reconstruct(x);
      const r32 = S === 32 ? rec : E.upsampleNearest2d(rec, 32 / S);
      return E.concat([featnet.features(r32), featnet.logits(r32)], 1);
    }));
    await f.toArray();
  });
  featnet.dispose();
  const side = S / tok.factor;
  const L = side * side;
  const K = tok.cfg.codebookSize;
  tok.dispose(); // each timed model and its optimizer state are freed before the next is built

  const ar = new ARTransformer({ vocabSize: K, numClasses: 10, seqLen: L, dim: cfg.ar.dim, depth: cfg.ar.depth, heads: cfg.ar.heads }, { backend, generator: new E.Generator(2) });
  const { optimizer } = createAROptimizer(ar, { totalSteps: 10, warmupSteps: 0, lr: 1e-4 });
  let arStep: number;
  {
    using cls = E.randint(0, 10, [cfg.ar.batchSize], { backend });
    using toks = E.randint(0, K, [cfg.ar.batchSize, L], { backend });
    arStep = await timeSteps(steps, () => arTrainStep(ar, optimizer, cls, toks, { accuracy: false }).loss);
  }
  optimizer.dispose();
  const s = cfg.sampling;
  const classes = Array.from({ length: s.batchSize }, (_, i) => i % 10);
  const arSampleBatch = await timeOnce(async () => {
    using ids = sampleTokens(ar, classes, { cfgScale: s.cfgScale, cfgSchedule: s.cfgSchedule, temperature: s.temperature, topK: s.topK, topP: s.topP, generator: new E.Generator(3) });
    await ids.toArray();
  });
  ar.dispose();

  // One FID bootstrap replicate at the study's row counts (FeatNet's 128 features).
  const rng = new E.Generator(4);
  const rows = async (n: number) => {
    using t = E.randn([n, 128], { backend, generator: rng });
    return new ResamplableFeatures((await t.toArray()) as Float32Array, 128);
  };
  const gen = await rows(s.numImages);
  const real = await rows(cfg.valImages);
  const t0 = performance.now();
  bootstrapFids([gen], real, { resamples: 2 });
  const fidReplicate = (performance.now() - t0) / 1000 / 2;

  const times: StepTimes = { tokenizerStep, arStep, arSampleBatch, evalBatch, fidReplicate };
  if (cfg.continuous) Object.assign(times, await measureContinuous(cfg, backend, steps));
  return times;
}

async function measureContinuous(cfg: StudyConfig, backend: E.Backend, steps: number): Promise<Pick<StepTimes, 'klTokenizerStep' | 'ditStep' | 'ditEval'>> {
  const k = cfg.continuous!;
  const S = cfg.imageSize;
  const tok = new VQTokenizer({ ...continuousVariantConfig(k, k.tokenizer.variants[0]!), latentNoise: 'paper-continuous' }, { backend, generator: new E.Generator(1) });
  const opt = new AdamW(tok.parameters(), { lr: 1e-4 });
  let klTokenizerStep: number;
  {
    using x = E.rand([k.tokenizer.batchSize, 1, S, S], { backend, low: -1, high: 1 });
    klTokenizerStep = await timeSteps(steps, () => tokenizerTrainStep(tok, opt, x, { step: 1, totalSteps: 10 }).total!);
  }
  const [h, w] = tok.tokenGrid(S, S);
  const C = tok.cfg.codeDim;
  opt.dispose();
  tok.dispose();

  const d = k.diffusion;
  const dit = new DiffusionTransformer({ latentChannels: C, grid: [h, w], numClasses: 10, patchSize: d.patchSize, dim: d.dim, depth: d.depth, heads: d.heads }, { backend, generator: new E.Generator(2) });
  const { optimizer } = createDiffusionOptimizer(dit, { lr: 1e-4 });
  let ditStep: number;
  {
    using z = E.randn([d.batchSize, C, h, w], { backend });
    using cls = E.randint(0, 10, [d.batchSize], { backend });
    ditStep = await timeSteps(steps, () => diffusionTrainStep(dit, optimizer, z, cls).loss);
  }
  optimizer.dispose();
  const s = k.sampling;
  const classes = Array.from({ length: s.batchSize }, (_, i) => i % 10);
  // Two guided ODE steps, halved: one evaluation of a sampling batch.
  const ditEval =
    (await timeOnce(async () => {
      using out = sampleDiffusion(dit, classes, { steps: 2, cfgScale: s.cfgScale, generator: new E.Generator(3) });
      await out.toArray();
    })) / 2;
  dit.dispose();
  return { klTokenizerStep, ditStep, ditEval };
}

/**
 * The study's stages in run order with their expected seconds (pure): training steps x step time,
 * sampling batches x batch time, evaluation passes x batch time, FID bootstrap replicates.
 * A decoder-only post-training step is counted as half a tokenizer step at its batch size.
 * With several training seeds every stage is planned once per seed.
 */
export function planStudy(cfg: StudyConfig, trainImages: number, t: StepTimes): StudyEstimate {
  const st = studyStats(cfg);
  const E_ = cfg.eval.batchSize;
  const passes = (images: number) => Math.ceil(images / E_) * t.evalBatch;
  // Encoding a set for a generator runs the encoder only: about half a reconstruction, no feature network.
  const encodes = (images: number) => 0.5 * passes(images);
  const fid = (sets: number) => sets * st.fidResamples * t.fidReplicate;
  const s = cfg.sampling;
  const plan: PlannedStage[] = [{ name: 'real features', seconds: passes(cfg.valImages) }];
  const kinds: Record<string, number> = {};
  const add = (kind: string, name: string, seconds: number) => {
    plan.push({ name, seconds });
    kinds[kind] = (kinds[kind] ?? 0) + seconds;
  };
  const Bt = cfg.tokenizer.batchSize;
  // Every seed's stages of an arm, then the arm's post-training in every seed (runStudy's order).
  const seeds = studySeeds(cfg).map((_, r) => replicateSuffix(cfg, r));
  for (const sfx of seeds) {
    for (const v of cfg.tokenizer.variants) {
      add('tokenizers', `tokenizer ${v.name}${sfx}`, tokenizerSteps(cfg, v, trainImages) * t.tokenizerStep + (1 + cfg.eval.alphas.length) * passes(cfg.valImages) + fid(1 + cfg.eval.alphas.length));
      const sampling = Math.ceil(s.numImages / s.batchSize) * t.arSampleBatch;
      add('generators', `generator ${v.name}${sfx}`, encodes(trainImages) + arSteps(cfg, trainImages) * t.arStep + sampling + passes(s.numImages) + fid(1));
    }
  }
  const p = cfg.posttrain;
  const pImages = Math.min(p.images, trainImages);
  const decoderStep = 0.5 * t.tokenizerStep * (p.batchSize / Bt);
  const decoders = p.control ? 2 : 1;
  for (const sfx of seeds) add('posttrain', `posttrain (AR)${sfx}`, encodes(pImages) + Math.ceil(pImages / s.batchSize) * t.arSampleBatch + decoders * (p.epochs * Math.floor(pImages / p.batchSize) * decoderStep + passes(s.numImages) + 2 * passes(cfg.valImages)) + passes(s.numImages) + fid(decoders + 1));
  const k = cfg.continuous;
  if (k && t.klTokenizerStep !== undefined && t.ditStep !== undefined && t.ditEval !== undefined) {
    const ks = k.sampling;
    const sampleBatch = t.ditEval * odeEvaluations(ks.sampler, ks.steps);
    for (const sfx of seeds) {
      for (const v of k.tokenizer.variants) {
        add('kl tokenizers', `kl-tokenizer ${v.name}${sfx}`, continuousTokenizerSteps(k, v, trainImages) * t.klTokenizerStep + (2 + k.eval.taus.length) * passes(cfg.valImages) + encodes(Math.min(k.eval.ifidMaxTrain, trainImages)) + fid(2 + k.eval.taus.length));
        add('diffusion generators', `diffusion ${v.name}${sfx}`, encodes(trainImages) + diffusionSteps(k, trainImages) * t.ditStep + Math.ceil(ks.numImages / ks.batchSize) * sampleBatch + passes(ks.numImages) + fid(1));
      }
    }
    const kp = k.posttrain;
    const kImages = Math.min(kp.images, trainImages);
    const partial = t.ditEval * odeEvaluations(ks.sampler, Math.max(1, Math.round(ks.steps * kp.tStar)));
    const kDecoders = kp.control ? 2 : 1;
    const kStep = 0.5 * t.klTokenizerStep * (kp.batchSize / k.tokenizer.batchSize);
    for (const sfx of seeds) add('kl posttrain', `posttrain (diffusion)${sfx}`, encodes(kImages) + Math.ceil(kImages / ks.batchSize) * partial + kDecoders * (kp.epochs * Math.floor(kImages / kp.batchSize) * kStep + passes(ks.numImages) + 2 * passes(cfg.valImages)) + passes(ks.numImages) + fid(kDecoders + 1));
  }
  kinds.evaluation = plan[0]!.seconds;
  const totalSeconds = plan.reduce((a, b) => a + b.seconds, 0);
  return { tokenizerStepSeconds: t.tokenizerStep, arStepSeconds: t.arStep, samplingBatchSeconds: t.arSampleBatch, times: t, stages: kinds, plan, totalSeconds };
}

export async function estimateStudy(cfg: StudyConfig, backend: E.Backend, trainImages: number, steps = 3): Promise<StudyEstimate> {
  return planStudy(cfg, trainImages, await measureStepTimes(cfg, backend, steps));
}
