/**
 * One training run that moves between runtimes, written once and run both in Node (Dawn) and in a
 * browser (Chromium's WebGPU): a tiny VQ tokenizer with latent perturbation and AdamW, trained on
 * fixed synthetic images; its whole training state (weights, AdamW moments, the perturbation
 * RNG) saved to safetensors bytes and restored; then seeded sampling; and generators saved in
 * Node and sampled in the page (an AR transformer; a diffusion transformer whose latents a KL
 * tokenizer decodes). Browser-safe: it imports
 * only engine/, nn/ and models/ (test/browser.test.ts bundles it for the page with esbuild).
 */
import * as E from '../../engine/index.js';
import { AdamW, decodeSafetensors, entriesToTensors, loadTrainingState, saveTrainingState, type Module, type TrainingState } from '../../nn/index.js';
import { tokenizerTrainStep, VQTokenizer } from '../../models/tokenizer/index.js';
import { ARTransformer, sampleTokens } from '../../models/ar/index.js';
import { createDiffusionOptimizer, DiffusionTransformer, diffusionTrainStep, sampleDiffusion, type DiffusionSampleOptions } from '../../models/diffusion/index.js';

export const TOTAL_STEPS = 6;
const SIZE = 16;
const BATCH = 4;

export interface Run {
  backend: E.Backend;
  model: VQTokenizer;
  opt: AdamW;
  x: E.Tensor;
  state: TrainingState;
}

/** Ring-shaped images with a per-image radius and brightness, values in [-1, 1]. */
function images(): Float32Array {
  const out = new Float32Array(BATCH * SIZE * SIZE);
  for (let k = 0; k < BATCH; k++) {
    const r = 3 + k;
    for (let y = 0; y < SIZE; y++) {
      for (let x = 0; x < SIZE; x++) {
        const d = Math.hypot(x - 7.5, y - 7.5);
        out[(k * SIZE + y) * SIZE + x] = Math.abs(d - r) < 1.5 ? 0.3 + 0.15 * k : -1;
      }
    }
  }
  return out;
}

export function buildRun(backend: E.Backend): Run {
  const model = new VQTokenizer(
    { ch: 8, chMult: [1, 2], numResBlocks: 1, normGroups: 4, codebookSize: 32, codeDim: 8, perturbation: { alpha: 1, beta: 0.5, delta: 4 }, perturbSeed: 7 },
    { backend, generator: new E.Generator(3) },
  );
  const opt = new AdamW(model.parameters(), { lr: 3e-3, betas: [0.5, 0.9] });
  const x = E.tensor(images(), [BATCH, 1, SIZE, SIZE], { backend });
  return { backend, model, opt, x, state: { model, optimizer: opt, generators: { perturb: model.perturbGenerator } } };
}

export function disposeRun(r: Run): void {
  r.opt.dispose();
  r.model.dispose();
  r.x.dispose();
}

/** Runs steps from+1..to; returns the total loss of each step. */
export async function train(r: Run, from: number, to: number): Promise<number[]> {
  const losses: number[] = [];
  for (let step = from + 1; step <= to; step++) {
    const terms = E.tidy(() => tokenizerTrainStep(r.model, r.opt, r.x, { step, totalSteps: TOTAL_STEPS }));
    losses.push(await terms.total!.item());
    for (const t of Object.values(terms)) t.dispose();
  }
  return losses;
}

/** The whole training state as safetensors bytes. */
export function snapshot(r: Run, step: number): Promise<Uint8Array> {
  return saveTrainingState(r.state, step);
}

/** Restores a snapshot into the run; returns its step. */
export function restore(r: Run, bytes: Uint8Array): number {
  return loadTrainingState(r.state, bytes, r.backend).step;
}

/** Every parameter, flattened in stateDict order. */
export async function parameters(r: Run): Promise<number[]> {
  const out: number[] = [];
  for (const t of Object.values(r.model.stateDict())) for (const v of await t.toArray()) out.push(v);
  return out;
}

export interface Samples {
  /** Nearest-code indices of the training images. */
  codes: number[];
  /** Decoded images of those codes (first image only, to keep the payload small). */
  decoded: number[];
  /** sampleLogits draws from seeded random logits, with temperature, top-k and top-p. */
  draws: number[];
}

export async function sample(r: Run): Promise<Samples> {
  const { indices, img, draws } = E.tidy(() => {
    const enc = r.model.encode(r.x);
    const g = new E.Generator(11);
    const logits = E.randn([64, 32], { backend: r.backend, generator: g }).mul(2);
    return {
      indices: enc.indices,
      img: r.model.decodeIndices(enc.indices.slice([[0, 1]])),
      draws: E.sampleLogits(logits, { temperature: 0.9, topK: 12, topP: 0.9, generator: g }),
    };
  });
  try {
    return { codes: Array.from(await indices.toArray()), decoded: Array.from(await img.toArray()), draws: Array.from(await draws.toArray()) };
  } finally {
    indices.dispose();
    img.dispose();
    draws.dispose();
  }
}

/** Loads safetensors bytes (saveTensors of a stateDict) into a module. */
function loadWeights(m: Module, weights: Uint8Array, backend: E.Backend): void {
  const tensors = entriesToTensors(decodeSafetensors(weights).tensors, backend);
  try {
    m.loadStateDict(tensors);
  } finally {
    for (const t of Object.values(tensors)) t.dispose();
  }
}

/** A small class-conditional AR transformer (4x4 tokens, K 32); weights from seed, or loaded from safetensors bytes. */
export function buildAR(backend: E.Backend, weights?: Uint8Array): ARTransformer {
  const ar = new ARTransformer({ vocabSize: 32, numClasses: 4, seqLen: 16, grid: [4, 4], dim: 32, depth: 2, heads: 2 }, { backend, generator: new E.Generator(9) });
  if (weights) loadWeights(ar, weights, backend);
  return ar;
}

/** Class-conditional sampling with the KV cache, classifier-free guidance, top-k and top-p. */
export async function sampleAR(ar: ARTransformer): Promise<number[]> {
  const tokens = sampleTokens(ar, [0, 1, 2, 3, 3, 0], { cfgScale: 2, temperature: 1, topK: 8, topP: 0.95, generator: new E.Generator(5) });
  try {
    return Array.from(await tokens.toArray());
  } finally {
    tokens.dispose();
  }
}

/** What the page does with a generator saved in Node: load it and sample. */
export async function sampleARInBrowser(weightsBase64: string): Promise<number[]> {
  const backend = await E.getDevice({ setDefault: true });
  if (!(backend instanceof E.WebGPUBackend)) throw new Error(`the page got no WebGPU device (backend: ${backend.kind})`);
  const ar = buildAR(backend, fromBase64(weightsBase64));
  try {
    return await sampleAR(ar);
  } finally {
    ar.dispose();
  }
}

/** A tiny class-conditional DiT over 2 x 4 x 4 latents (patch 1: 16 tokens); weights from seed, or loaded from safetensors bytes. */
export function buildDiT(backend: E.Backend, weights?: Uint8Array): DiffusionTransformer {
  const dit = new DiffusionTransformer(
    { latentChannels: 2, grid: [4, 4], numClasses: 4, patchSize: 1, dim: 32, depth: 2, heads: 2, freqDim: 32, dropSeed: 1 },
    { backend, generator: new E.Generator(13) },
  );
  if (weights) loadWeights(dit, weights, backend);
  return dit;
}

/**
 * Flow-matching steps on 4 fixed latents (one per class) at lr 1e-2 (Node only, before saving):
 * the fresh DiT's final layer and adaLN modulations are zero, so it would predict exactly 0 and
 * every sample would equal its noise. Returns the losses.
 */
export async function trainDiT(dit: DiffusionTransformer, steps: number): Promise<number[]> {
  const backend = dit.backend;
  const x = E.randn([4, 2, 4, 4], { backend, generator: new E.Generator(21) });
  const y = E.tensor(Int32Array.from([0, 1, 2, 3]), [4], { backend, dtype: 'i32' });
  const { optimizer } = createDiffusionOptimizer(dit, { lr: 1e-2 });
  const losses: number[] = [];
  try {
    for (let s = 0; s < steps; s++) {
      const r = E.tidy(() => diffusionTrainStep(dit, optimizer, x, y));
      losses.push(await r.loss.item());
      for (const t of Object.values(r)) t.dispose();
    }
  } finally {
    optimizer.dispose();
    x.dispose();
    y.dispose();
  }
  return losses;
}

/** A tiny KL tokenizer (factor 2: 4 x 4 latents of 2 channels -> 8 x 8 images); weights from seed, or loaded from safetensors bytes. */
export function buildKL(backend: E.Backend, weights?: Uint8Array): VQTokenizer {
  const kl = new VQTokenizer({ quantizer: 'kl', ch: 4, chMult: [1, 2], numResBlocks: 1, codeDim: 2, normGroups: 2 }, { backend, generator: new E.Generator(17) });
  if (weights) loadWeights(kl, weights, backend);
  return kl;
}

export const DIT_CLASSES = [0, 1, 2, 3];
/** Seeded sampling settings: CFG 2 inside a guidance interval, so 8-row (guided) and 4-row forwards both run. */
export const DIT_SAMPLING: Record<'euler' | 'heun', DiffusionSampleOptions & { seed: number }> = {
  euler: { sampler: 'euler', steps: 8, cfgScale: 2, guidanceInterval: [0.3, 0.8], seed: 31 },
  heun: { sampler: 'heun', steps: 6, cfgScale: 2, guidanceInterval: [0.3, 0.8], seed: 32 },
};

export interface DiffusionSamples {
  /** Normalized latents [4, 2, 4, 4] of DIT_CLASSES, per sampler. */
  euler: number[];
  heun: number[];
  /** The KL decoder's images [8, 1, 8, 8] of the Euler then the Heun latents. */
  pixels: number[];
}

/** Samples DIT_CLASSES with each sampler of DIT_SAMPLING (a fresh Generator(seed) each), decodes both with `kl`. */
export async function sampleDiT(dit: DiffusionTransformer, kl: VQTokenizer, o: { cfgScale?: number } = {}): Promise<DiffusionSamples> {
  const z = (k: 'euler' | 'heun') => {
    const { seed, ...opts } = DIT_SAMPLING[k];
    return sampleDiffusion(dit, DIT_CLASSES, { ...opts, ...o, generator: new E.Generator(seed) });
  };
  const [ze, zh] = [z('euler'), z('heun')];
  const img = E.noGrad(() => E.tidy(() => kl.eval().decodeLatents(E.concat([ze, zh], 0))));
  try {
    return { euler: Array.from(await ze.toArray()), heun: Array.from(await zh.toArray()), pixels: Array.from(await img.toArray()) };
  } finally {
    ze.dispose();
    zh.dispose();
    img.dispose();
  }
}

/** What the page does with a DiT and a KL tokenizer saved in Node: load both, sample, decode. */
export async function sampleDiTInBrowser(ditBase64: string, klBase64: string): Promise<DiffusionSamples> {
  const backend = await E.getDevice({ setDefault: true });
  if (!(backend instanceof E.WebGPUBackend)) throw new Error(`the page got no WebGPU device (backend: ${backend.kind})`);
  const dit = buildDiT(backend, fromBase64(ditBase64));
  const kl = buildKL(backend, fromBase64(klBase64));
  try {
    return await sampleDiT(dit, kl);
  } finally {
    dit.dispose();
    kl.dispose();
  }
}

/** What the browser page does: continue the run from Node's snapshot, sample, save again. */
export async function continueInBrowser(snapshotBase64: string): Promise<{ adapter: string; step: number; losses: number[]; params: number[]; samples: Samples; snapshotBase64: string }> {
  const backend = await E.getDevice({ setDefault: true });
  if (!(backend instanceof E.WebGPUBackend)) throw new Error(`the page got no WebGPU device (backend: ${backend.kind})`);
  const r = buildRun(backend);
  try {
    const step = restore(r, fromBase64(snapshotBase64));
    const losses = await train(r, step, TOTAL_STEPS);
    const params = await parameters(r);
    const samples = await sample(r);
    const snap = await snapshot(r, TOTAL_STEPS);
    return { adapter: backend.name, step, losses, params, samples, snapshotBase64: toBase64(snap) };
  } finally {
    disposeRun(r);
  }
}

export function toBase64(bytes: Uint8Array): string {
  let s = '';
  for (let i = 0; i < bytes.length; i += 0x8000) s += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  return btoa(s);
}

export function fromBase64(b64: string): Uint8Array {
  const s = atob(b64);
  const out = new Uint8Array(s.length);
  for (let i = 0; i < s.length; i++) out[i] = s.charCodeAt(i);
  return out;
}
