/**
 * Determinism (issue 14): on one device, two runs with the same seed write bit-identical
 * checkpoints (compared at step 10), and a run stopped at step 10 and resumed ends bit-identical
 * to the uninterrupted run at step 20. Every tensor of the final checkpoint (weights, optimizer moments, EMA shadows, the
 * discriminator) is compared bit for bit, and so is the rest of the state (step, loader position,
 * generators, schedule). Tiny models trained for 20 steps: the tokenizer with latent perturbation
 * (its candidate draws and the codebook gradient, an indexAdd with repeated codes), the AR
 * transformer with dropout and class dropout (embedding gradients, cross-entropy's scatter) and
 * gradient clipping, the DiT with EMA; on WebGPU and on the CPU backend (f32 storage).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import * as E from '../engine/index.js';
import { readSafetensorsFile } from '../node/checkpoint.js';
import { TrainingStopped } from '../node/train-stop.js';
import { trainTokenizer } from '../node/train-tokenizer.js';
import { trainAR } from '../node/train-ar.js';
import { trainDiffusion } from '../node/train-diffusion.js';
import type { TrainLoopControls } from '../node/train.js';
import { requireGpu } from './helpers/backends.js';

const gpu = await requireGpu();
const dir = mkdtempSync(join(tmpdir(), 'determinism-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const STEPS = 20;
const STOP_AT = 10;

/** Deterministic pseudo-random bytes (a multiplicative hash), so every run sees the same data. */
function bytes(n: number, salt: number): Uint8Array {
  return Uint8Array.from({ length: n }, (_, i) => (Math.imul(i + 1, 2654435761) + salt * 40503) >>> 24);
}

function images(n: number, salt: number) {
  return { images: bytes(n * 16 * 16, salt), labels: Int32Array.from({ length: n }, (_, i) => i % 3), shape: [n, 1, 16, 16] as const, classes: ['a', 'b', 'c'] };
}

/** One training function per model: runs STEPS steps into `outDir` with the loop controls given. */
type Trainer = (backend: E.Backend, outDir: string, controls: TrainLoopControls & { log?: (l: string) => void; logEvery?: number; checkpointEvery?: number }) => Promise<unknown>;

const quiet = () => {};

/** The tokenizer trainer with `extra` options on top (other data, extra losses). */
const tokenizerTrainer =
  (extra: Partial<Parameters<typeof trainTokenizer>[0]> = {}): Trainer =>
  (backend, outDir, c) =>
    trainTokenizer({
      backend,
      data: { train: images(24, 1), val: images(4, 2) },
      config: { ch: 4, chMult: [1, 2], numResBlocks: 1, codebookSize: 16, codeDim: 4 },
      perturbation: { alpha: 1, beta: 0.5, delta: 4 },
      batchSize: 8,
      steps: STEPS,
      seed: 3,
      outDir,
      checkpointEvery: 1000,
      logEvery: 1000,
      log: quiet,
      ...extra,
      ...c,
    });

const trainers: Record<string, Trainer> = {
  // Perturbation on every token of half the batch (alpha 1, beta 0.5); 16 codes for 8 x 64 tokens.
  tokenizer: tokenizerTrainer(),
  ar: (backend, outDir, c) =>
    trainAR({
      backend,
      tokens: {
        tokens: Int32Array.from(bytes(24 * 16, 3), (v) => v % 32),
        labels: Int32Array.from({ length: 24 }, (_, i) => i % 3),
        shape: [24, 16],
        grid: [4, 4],
        vocabSize: 32,
      },
      config: { dim: 16, depth: 1, heads: 2, dropout: 0.2, classDropout: 0.3 },
      batchSize: 8,
      steps: STEPS,
      clipNorm: 0.5,
      seed: 4,
      outDir,
      checkpointEvery: 1000,
      logEvery: 1000,
      log: quiet,
      ...c,
    }),
  diffusion: (backend, outDir, c) =>
    trainDiffusion({
      backend,
      latents: { latents: Float32Array.from(bytes(24 * 2 * 4 * 4, 5), (v) => v / 64 - 2), labels: Int32Array.from({ length: 24 }, (_, i) => i % 3), shape: [24, 2, 4, 4] },
      config: { dim: 16, depth: 1, heads: 2 },
      batchSize: 8,
      steps: STEPS,
      emaDecay: 0.9,
      seed: 5,
      outDir,
      checkpointEvery: 1000,
      logEvery: 1000,
      log: quiet,
      ...c,
    }),
};

/** Every tensor's bytes and the metadata of a checkpoint. */
async function contents(path: string): Promise<{ tensors: Map<string, Uint8Array>; metadata: Record<string, string> }> {
  const { tensors, metadata } = await readSafetensorsFile(path);
  const m = new Map<string, Uint8Array>();
  for (const [k, e] of Object.entries(tensors)) {
    const d = e.data as ArrayLike<number> & { buffer: ArrayBufferLike; byteOffset: number; byteLength: number };
    m.set(k, new Uint8Array(d.buffer, d.byteOffset, d.byteLength));
  }
  return { tensors: m, metadata: metadata as Record<string, string> };
}

/** The names of the tensors whose bits differ (or that only one side has). */
function differing(a: Map<string, Uint8Array>, b: Map<string, Uint8Array>): string[] {
  const names = new Set([...a.keys(), ...b.keys()]);
  return [...names].filter((k) => {
    const x = a.get(k);
    const y = b.get(k);
    return !x || !y || x.length !== y.length || x.some((v, i) => v !== y[i]);
  });
}

const ckpt = (d: string) => join(d, 'checkpoint.safetensors');

const backends: [string, E.Backend][] = [...(gpu ? [['webgpu', gpu] as [string, E.Backend]] : []), ['cpu-f32', new E.CpuBackend()]];

describe.each(backends)('on %s', (name, backend) => {
  it.each(Object.keys(trainers))(`%s: two same-seed runs are bit-identical at step ${STOP_AT}; stopped there and resumed, bit-identical at step ${STEPS}`, async (model) => {
    const train = trainers[model]!;
    const root = mkdtempSync(join(dir, `${name}-${model}-`));
    const [a, b] = ['a', 'b'].map((s) => join(root, s));
    // Uninterrupted, saving at STOP_AT and at the end (both files kept).
    await train(backend, a!, { checkpointEvery: STOP_AT, keepCheckpoints: 2 });
    const ctrl = new AbortController();
    // A progress line every STOP_AT steps; the first one asks the loop to stop after that step.
    const stopped = await train(backend, b!, { stop: ctrl.signal, logEvery: STOP_AT, log: (l) => l.startsWith(`step ${STOP_AT}/`) && ctrl.abort('test') }).catch((e: unknown) => e);
    expect(stopped).toBeInstanceOf(TrainingStopped);
    const [ma, mb] = await Promise.all([contents(join(a!, `checkpoint.prev-${STOP_AT}.safetensors`)), contents(ckpt(b!))]);
    expect(mb.metadata.step).toBe(String(STOP_AT));
    expect(ma.tensors.size).toBeGreaterThan(10);
    expect(differing(ma.tensors, mb.tensors), `two runs, step ${STOP_AT}`).toEqual([]);
    expect(mb.metadata).toEqual(ma.metadata);
    const lines: string[] = [];
    await train(backend, b!, { log: (l) => lines.push(l) });
    expect(lines).toContain(`resumed from ${ckpt(b!)} at step ${STOP_AT}`);
    const [ea, eb] = await Promise.all([contents(ckpt(a!)), contents(ckpt(b!))]);
    expect(eb.metadata.step).toBe(String(STEPS));
    expect(differing(ea.tensors, eb.tensors), `resumed at step ${STOP_AT}, step ${STEPS}`).toEqual([]);
    // Step, loader position, generators, schedule, optimizer step counts, config.
    expect(eb.metadata).toEqual(ea.metadata);
  }, 120_000);
});

// Captured steps (E.captureStep through trainLoop's `capture`): replayed steps write the same
// checkpoint bits as eager ones, through a stop and a resume (each part captures again).
// The tokenizer with both extra losses: the perceptual FeatNet, and the hinge GAN from step 5 (the
// key changes there: captured again) with the discriminator's own AdamW inside the step.
const captureTrainers: Record<string, Trainer> = {
  ...trainers,
  'tokenizer-gan': tokenizerTrainer({
    data: { train: { ...images(24, 1), images: bytes(24 * 32 * 32, 1), shape: [24, 1, 32, 32] }, val: { ...images(4, 2), images: bytes(4 * 32 * 32, 2), shape: [4, 1, 32, 32] } },
    perceptualWeight: 0.1,
    discWeight: 0.8,
    discStart: 5,
    discConfig: { ch: 8, nLayers: 2 },
  }),
};

describe.runIf(gpu)('captured training steps on webgpu', () => {
  it.each(Object.keys(captureTrainers))('%s: replayed steps, stopped and resumed, end bit-identical to an eager run', async (model) => {
    const train = captureTrainers[model]!;
    const root = mkdtempSync(join(dir, `capture-${model}-`));
    const [a, b] = ['a', 'b'].map((s) => join(root, s));
    await train(gpu!, a!, {});
    const ctrl = new AbortController();
    const lines: string[] = [];
    const log = (l: string) => {
      lines.push(l);
      if (l.startsWith(`step ${STOP_AT}/`)) ctrl.abort('test');
    };
    const stopped = await train(gpu!, b!, { capture: true, stop: ctrl.signal, logEvery: STOP_AT, log }).catch((e: unknown) => e);
    expect(stopped).toBeInstanceOf(TrainingStopped);
    await train(gpu!, b!, { capture: true, log });
    // Each part replays. The resumed part: one eager step, two recorded, the rest replayed (the
    // tokenizers' annealing, steps 4-12, changes the key every step, so the first part records
    // those; the GAN starts at step 5, in the first part).
    expect(lines.filter((l) => /^captured step: replaying \(\d+ dispatches per step\)$/.test(l))).toHaveLength(2);
    expect(lines.filter((l) => l.startsWith('captured step: ')).at(-1)).toBe(`captured step: ${STEPS - STOP_AT - 3} replayed, 2 recorded, 1 eager steps`);
    const [ea, eb] = await Promise.all([contents(ckpt(a!)), contents(ckpt(b!))]);
    expect(differing(ea.tensors, eb.tensors)).toEqual([]);
    expect(eb.metadata).toEqual(ea.metadata);
  }, 120_000);
});
