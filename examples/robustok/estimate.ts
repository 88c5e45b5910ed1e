/**
 * Expected duration of a study on this device, measured rather than guessed: a few training steps
 * of the tokenizer and of the generator at the config's sizes, and one sampling batch, are timed
 * (after a warm-up step that compiles the kernels) and multiplied by the study's step counts; the
 * same for the continuous arm (KL tokenizer step, diffusion step, one diffusion sampling batch).
 * Evaluation passes (encoding, FID features) are not included; they are small next to training.
 */
import * as E from '../../engine/index.js';
import { arTrainStep, ARTransformer, createAROptimizer, sampleTokens } from '../../models/ar/index.js';
import { createDiffusionOptimizer, DiffusionTransformer, diffusionTrainStep, odeEvaluations, sampleDiffusion } from '../../models/diffusion/index.js';
import { tokenizerTrainStep, VQTokenizer } from '../../models/tokenizer/index.js';
import { AdamW } from '../../nn/index.js';
import { continuousVariantConfig, type StudyConfig } from './config.js';
import { diffusionSteps } from './continuous-generators.js';
import { continuousTokenizerSteps } from './continuous-tokenizers.js';
import { arSteps } from './generators.js';
import { tokenizerSteps, variantConfig } from './tokenizers.js';

export interface StudyEstimate {
  tokenizerStepSeconds: number;
  arStepSeconds: number;
  samplingBatchSeconds: number;
  /** Seconds per stage. */
  stages: Record<string, number>;
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

export async function estimateStudy(cfg: StudyConfig, backend: E.Backend, trainImages: number, steps = 3): Promise<StudyEstimate> {
  const S = cfg.imageSize;
  const v0 = cfg.tokenizer.variants[0]!;
  const tok = new VQTokenizer({ ...variantConfig(cfg, v0), perturbation: 'paper' }, { backend, generator: new E.Generator(1) });
  const opt = new AdamW(tok.parameters(), { lr: 1e-4 });
  const Bt = cfg.tokenizer.batchSize;
  using x = E.rand([Bt, 1, S, S], { backend, low: -1, high: 1 });
  const tokStep = await timeSteps(steps, () => tokenizerTrainStep(tok, opt, x, { step: 1, totalSteps: 10 }).total!);
  const side = S / tok.factor;
  const L = side * side;
  const K = tok.cfg.codebookSize;
  // Each timed model and its optimizer state are freed before the next is built.
  opt.dispose();
  tok.dispose();

  const ar = new ARTransformer({ vocabSize: K, numClasses: 10, seqLen: L, dim: cfg.ar.dim, depth: cfg.ar.depth, heads: cfg.ar.heads }, { backend, generator: new E.Generator(2) });
  const { optimizer } = createAROptimizer(ar, { totalSteps: 10, warmupSteps: 0, lr: 1e-4 });
  const Ba = cfg.ar.batchSize;
  using cls = E.randint(0, 10, [Ba], { backend });
  using toks = E.randint(0, K, [Ba, L], { backend });
  const arStep = await timeSteps(steps, () => arTrainStep(ar, optimizer, cls, toks, { accuracy: false }).loss);
  optimizer.dispose();
  const s = cfg.sampling;
  const classes = Array.from({ length: s.batchSize }, (_, i) => i % 10);
  const sampleOnce = async () => {
    using ids = sampleTokens(ar, classes, { cfgScale: s.cfgScale, cfgSchedule: s.cfgSchedule, temperature: s.temperature, topK: s.topK, topP: s.topP, generator: new E.Generator(3) });
    await ids.toArray();
  };
  await sampleOnce();
  const t0 = performance.now();
  await sampleOnce();
  const sampleBatch = (performance.now() - t0) / 1000;
  ar.dispose(); // timed: freed before the next model is built

  const V = cfg.tokenizer.variants;
  // Variants with another K are timed at the first variant's K (the quantizer is a small part of a step).
  const tokTotal = V.reduce((a, v) => a + tokenizerSteps(cfg, v, trainImages) * tokStep, 0);
  const arTotal = V.length * arSteps(cfg, trainImages) * arStep;
  const sampling = V.length * Math.ceil(s.numImages / s.batchSize) * sampleBatch;
  const pImages = Math.min(cfg.posttrain.images, trainImages);
  // Post-training: building the mixed sequences is sampling; a decoder-only step costs about half a tokenizer step.
  // The control decoder (when on) trains as long again.
  const post = Math.ceil(pImages / s.batchSize) * sampleBatch + (cfg.posttrain.control ? 2 : 1) * cfg.posttrain.epochs * Math.floor(pImages / cfg.posttrain.batchSize) * tokStep * 0.5 * (cfg.posttrain.batchSize / Bt);
  const stages: Record<string, number> = { tokenizers: tokTotal, generators: arTotal, sampling, posttrain: post };
  if (cfg.continuous) Object.assign(stages, await estimateContinuous(cfg, backend, trainImages, steps));
  return { tokenizerStepSeconds: tokStep, arStepSeconds: arStep, samplingBatchSeconds: sampleBatch, stages, totalSeconds: Object.values(stages).reduce((a, b) => a + b, 0) };
}

/** Seconds per stage of the continuous arm, from timed KL tokenizer and diffusion steps and one sampling batch. */
async function estimateContinuous(cfg: StudyConfig, backend: E.Backend, trainImages: number, steps: number): Promise<Record<string, number>> {
  const k = cfg.continuous!;
  const S = cfg.imageSize;
  const v0 = k.tokenizer.variants[0]!;
  const tok = new VQTokenizer({ ...continuousVariantConfig(k, v0), latentNoise: 'paper-continuous' }, { backend, generator: new E.Generator(1) });
  const opt = new AdamW(tok.parameters(), { lr: 1e-4 });
  const Bt = k.tokenizer.batchSize;
  using x = E.rand([Bt, 1, S, S], { backend, low: -1, high: 1 });
  const tokStep = await timeSteps(steps, () => tokenizerTrainStep(tok, opt, x, { step: 1, totalSteps: 10 }).total!);
  const [h, w] = tok.tokenGrid(S, S);
  const C = tok.cfg.codeDim;
  // Each timed model and its optimizer state are freed before the next is built.
  opt.dispose();
  tok.dispose();

  const d = k.diffusion;
  const dit = new DiffusionTransformer({ latentChannels: C, grid: [h, w], numClasses: 10, patchSize: d.patchSize, dim: d.dim, depth: d.depth, heads: d.heads }, { backend, generator: new E.Generator(2) });
  const { optimizer } = createDiffusionOptimizer(dit, { lr: 1e-4 });
  using z = E.randn([d.batchSize, C, h, w], { backend });
  using cls = E.randint(0, 10, [d.batchSize], { backend });
  const ditStep = await timeSteps(steps, () => diffusionTrainStep(dit, optimizer, z, cls).loss);
  optimizer.dispose();
  const s = k.sampling;
  const classes = Array.from({ length: s.batchSize }, (_, i) => i % 10);
  // One guided evaluation per sampling batch, timed over two ODE steps and scaled to the sampler's count.
  const sampleOnce = async () => {
    using out = sampleDiffusion(dit, classes, { steps: 2, cfgScale: s.cfgScale, generator: new E.Generator(3) });
    await out.toArray();
  };
  await sampleOnce();
  const t0 = performance.now();
  await sampleOnce();
  const perEval = (performance.now() - t0) / 1000 / 2;
  dit.dispose(); // timed: freed before returning
  const sampleBatch = perEval * odeEvaluations(s.sampler, s.steps);

  const V = k.tokenizer.variants;
  const p = k.posttrain;
  const pImages = Math.min(p.images, trainImages);
  const partial = perEval * odeEvaluations(s.sampler, Math.max(1, Math.round(s.steps * p.tStar)));
  const decoderSteps = (p.control ? 2 : 1) * p.epochs * Math.floor(pImages / p.batchSize);
  return {
    'kl tokenizers': V.reduce((a, v) => a + continuousTokenizerSteps(k, v, trainImages) * tokStep, 0),
    'diffusion generators': V.length * diffusionSteps(k, trainImages) * ditStep,
    'diffusion sampling': V.length * Math.ceil(s.numImages / s.batchSize) * sampleBatch,
    // Denoising is a partial sampling run per batch; a decoder-only step costs about half a tokenizer step.
    'kl posttrain': Math.ceil(pImages / s.batchSize) * partial + decoderSteps * tokStep * 0.5 * (p.batchSize / Bt),
  };
}
