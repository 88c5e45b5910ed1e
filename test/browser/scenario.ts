/**
 * One training run that moves between runtimes, written once and run both in Node (Dawn) and in a
 * browser (Chromium's WebGPU): a tiny VQ tokenizer with latent perturbation and AdamW, trained on
 * fixed synthetic images; its whole training state (weights, AdamW moments, the perturbation
 * RNG) saved to safetensors bytes and restored; then seeded sampling. Browser-safe: it imports
 * only engine/, nn/ and models/ (test/browser.test.ts bundles it for the page with esbuild).
 */
import * as E from '../../engine/index.js';
import { AdamW, decodeSafetensors, entriesToTensors, loadTrainingState, saveTrainingState, type TrainingState } from '../../nn/index.js';
import { tokenizerTrainStep, VQTokenizer } from '../../models/tokenizer/index.js';
import { ARTransformer, sampleTokens } from '../../models/ar/index.js';

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

/** A small class-conditional AR transformer (4x4 tokens, K 32); weights from seed, or loaded from safetensors bytes. */
export function buildAR(backend: E.Backend, weights?: Uint8Array): ARTransformer {
  const ar = new ARTransformer({ vocabSize: 32, numClasses: 4, seqLen: 16, grid: [4, 4], dim: 32, depth: 2, heads: 2 }, { backend, generator: new E.Generator(9) });
  if (weights) {
    const tensors = entriesToTensors(decodeSafetensors(weights).tensors, backend);
    try {
      ar.loadStateDict(tensors);
    } finally {
      for (const t of Object.values(tensors)) t.dispose();
    }
  }
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
