/**
 * AR generator training (browser-safe): the optimizer/schedule factory (AdamW with weight decay on
 * matrices only, linear warmup + cosine), one training step (cross-entropy on the tokens, gradient
 * clipping), a seeded resumable loader over cached token sequences, and the token cache builder
 * (encode a dataset once with a tokenizer, batched, without gradients), so AR training never runs
 * the tokenizer.
 */
import * as E from '../../engine/index.js';
import { AdamW, clipGradNorm, paramGroupsNoDecay, Scheduler, warmupCosineLr } from '../../nn/optim/index.js';
import { toFloat32, type ImageDataset } from '../../nn/data/dataset.js';
import { ShuffledRowLoader } from '../../nn/data/row-loader.js';
import type { LoaderState } from '../../nn/data/loader.js';
import type { ARTransformer } from './model.js';

// ---- optimizer ----

export interface AROptimOptions {
  /** Peak learning rate (default 4e-4, RAR). */
  lr?: number;
  /** Default [0.9, 0.95] (LlamaGen / RAR). */
  betas?: [number, number];
  /** Decoupled weight decay of the matrices (default 0.05); biases, norms and 1-D parameters get 0. */
  weightDecay?: number;
  /** Linear warmup steps (default 0). */
  warmupSteps?: number;
  /** Steps of the cosine decay's end. */
  totalSteps: number;
  /** The floor as a fraction of lr (default 0.1). */
  minLrRatio?: number;
}

export function createAROptimizer(model: ARTransformer, o: AROptimOptions): { optimizer: AdamW; scheduler: Scheduler } {
  const lr = o.lr ?? 4e-4;
  const groups = paramGroupsNoDecay(model.namedParameters(), o.weightDecay ?? 0.05);
  const optimizer = new AdamW(groups, { lr, betas: o.betas ?? [0.9, 0.95], weightDecay: o.weightDecay ?? 0.05 });
  const warmupSteps = Math.min(o.warmupSteps ?? 0, o.totalSteps);
  const minLrRatio = o.minLrRatio ?? 0.1;
  const scheduler = new Scheduler(optimizer, (step, base) => warmupCosineLr(step, base, { warmupSteps, totalSteps: o.totalSteps, minLrRatio }));
  return { optimizer, scheduler };
}

// ---- one step ----

export interface ARStepOptions {
  /** Advanced after the optimizer step. */
  scheduler?: Scheduler;
  /** Global gradient-norm clip (default 1; 0 or Infinity = off). */
  clipNorm?: number;
  /** Also return the next-token accuracy (one argmax over the logits; default true). */
  accuracy?: boolean;
}

export interface ARStepResult extends Record<string, E.Tensor> {
  /** Mean cross-entropy (nats per token), detached scalar. */
  loss: E.Tensor;
}

/**
 * Teacher-forced cross-entropy of tokens i32 [B, L] given classes i32 [B] (class dropout applies in
 * training mode), backward, clip, AdamW step, schedule step, in its own scope (the graph is freed
 * on return); returns detached scalars: loss, acc (if asked), gradNorm (if clipping).
 */
export function arTrainStep(model: ARTransformer, optimizer: AdamW, classes: E.Tensor, tokens: E.Tensor, o: ARStepOptions = {}): ARStepResult {
  return E.tidy(() => {
    const logits = model.forward(classes, tokens); // [B, L, V]
    const [B, L, V] = logits.shape as [number, number, number];
    const flat = logits.reshape([B * L, V]);
    const targets = tokens.reshape([B * L]);
    const loss = E.crossEntropy(flat, targets);
    optimizer.zeroGrad();
    loss.backward();
    const clip = o.clipNorm ?? 1;
    const out: ARStepResult = { loss: loss.detach() };
    if (clip > 0 && Number.isFinite(clip)) out.gradNorm = clipGradNorm(optimizer.paramGroups.flatMap((g) => g.params), clip).detach();
    optimizer.step();
    // A host effect: a captured step's replays advance the schedule too (E.captureStep).
    const scheduler = o.scheduler;
    if (scheduler) E.stepEffect(tokens.backend, () => scheduler.step());
    if (o.accuracy ?? true) out.acc = E.noGrad(() => E.eq(E.argmax(flat.detach(), 1), targets).mean());
    return out;
  });
}

/** Teacher-forced evaluation: mean cross-entropy and accuracy (no gradient, eval mode, no class dropout). */
export function arEvalLoss(model: ARTransformer, classes: E.Tensor, tokens: E.Tensor): { loss: E.Tensor; acc: E.Tensor } {
  const was = model.training;
  model.eval();
  try {
    return E.noGrad(() => E.tidy(() => {
      const logits = model.forward(classes, tokens);
      const [B, L, V] = logits.shape as [number, number, number];
      const flat = logits.reshape([B * L, V]);
      const targets = tokens.reshape([B * L]);
      return { loss: E.crossEntropy(flat, targets), acc: E.eq(E.argmax(flat, 1), targets).mean() };
    }));
  } finally {
    model.train(was);
  }
}

// ---- cached token datasets ----

/** Token sequences of a dataset: tokens[n * seqLen + t] (raster order), labels[n]. */
export interface TokenDataset {
  tokens: Int32Array;
  labels: Int32Array;
  /** [N, seqLen] */
  shape: readonly [number, number];
  /** The token grid [h, w] (h * w = seqLen). */
  grid: readonly [number, number];
  /** Codebook size the tokens index into. */
  vocabSize: number;
}

export function checkTokenDataset(ds: TokenDataset, what = 'TokenDataset'): void {
  const [n, L] = ds.shape;
  if (!(ds.tokens instanceof Int32Array) || !(ds.labels instanceof Int32Array)) throw new TypeError(`${what}: tokens and labels must be Int32Arrays`);
  if (ds.tokens.length !== n * L) throw new Error(`${what}: ${ds.tokens.length} tokens do not match shape [${n}, ${L}]`);
  if (ds.labels.length !== n) throw new Error(`${what}: ${ds.labels.length} labels for ${n} sequences`);
  if (ds.grid[0] * ds.grid[1] !== L) throw new Error(`${what}: grid [${ds.grid.join(', ')}] does not hold ${L} tokens`);
  for (let i = 0; i < ds.tokens.length; i++) {
    const v = ds.tokens[i]!;
    if (!(v >= 0 && v < ds.vocabSize)) throw new RangeError(`${what}: token ${v} at ${i} outside [0, ${ds.vocabSize})`);
  }
}

/** The minimal tokenizer interface needed to cache tokens (VQTokenizer fits). */
export interface TokenEncoder {
  encode(x: E.Tensor): { indices: E.Tensor };
  readonly cfg: { codebookSize: number };
  training: boolean;
  train(mode?: boolean): unknown;
}

export interface EncodeDatasetOptions {
  backend: E.Backend;
  /** Images per encoder call (default 256). */
  batchSize?: number;
  /** Pixel range the tokenizer expects (default [-1, 1]). */
  range?: readonly [number, number];
  /** Called after each batch with (done, total). */
  onProgress?: (done: number, total: number) => void;
}

/**
 * Encodes every image of `ds` (in order) to its code indices with the tokenizer in eval mode and
 * without gradients, `batchSize` images at a time (one readback per batch).
 */
export async function encodeTokenDataset(tokenizer: TokenEncoder, ds: ImageDataset, o: EncodeDatasetOptions): Promise<TokenDataset> {
  const [N, C, H, W] = ds.shape;
  const bs = o.batchSize ?? 256;
  if (!Number.isInteger(bs) || bs < 1) throw new Error(`encodeTokenDataset: batchSize must be a positive integer, got ${bs}`);
  const was = tokenizer.training;
  tokenizer.train(false);
  let tokens: Int32Array | null = null;
  let grid: [number, number] = [0, 0];
  try {
    for (let s = 0; s < N; s += bs) {
      const b = Math.min(bs, N - s);
      const x = toFloat32(ds, o.range ?? [-1, 1], s, b);
      using idx = E.noGrad(() =>
        E.tidy(() => {
          const xt = E.tensor(x, [b, C, H, W], { backend: o.backend });
          return tokenizer.encode(xt).indices.contiguous();
        }),
      );
      const data = (await idx.toArray()) as Int32Array;
      const [, h, w] = idx.shape as [number, number, number];
      if (!tokens) {
        grid = [h, w];
        tokens = new Int32Array(N * h * w);
      }
      tokens.set(data.subarray(0, b * h * w), s * h * w);
      o.onProgress?.(s + b, N);
    }
  } finally {
    tokenizer.train(was);
  }
  const L = grid[0] * grid[1];
  return { tokens: tokens ?? new Int32Array(0), labels: Int32Array.from(ds.labels), shape: [N, L], grid, vocabSize: tokenizer.cfg.codebookSize };
}

// ---- loader ----

/** The DataLoader state layout (always shuffled, full batches only), so trainLoop checkpoints it. */
export type TokenLoaderState = LoaderState;

/**
 * Seeded, resumable batches of (classes, tokens) from a TokenDataset (nn/data/row-loader.ts's
 * ShuffledRowLoader over the token rows): `next()` fills host arrays; `nextOnDevice()` uploads
 * into reused device tensors (valid until two uploads later; do not dispose them).
 */
export class TokenLoader extends ShuffledRowLoader<Int32Array> {
  constructor(readonly dataset: TokenDataset, opts: { batchSize: number; seed?: number }) {
    super(dataset.tokens, dataset.labels, [dataset.shape[1]], { ...opts, name: 'TokenLoader' });
  }

  /** The next batch into the loader's host arrays (overwritten by the next call). */
  next(): { classes: Int32Array; tokens: Int32Array; epoch: number; indices: Int32Array } {
    const b = this.nextRows();
    return { classes: b.classes, tokens: b.rows, epoch: b.epoch, indices: b.indices };
  }

  /** The next batch on `backend`: classes i32 [B], tokens i32 [B, L] (reused device tensors). */
  nextOnDevice(backend: E.Backend): { classes: E.Tensor; tokens: E.Tensor; epoch: number } {
    const b = this.nextRowsOnDevice(backend);
    return { classes: b.classes, tokens: b.rows, epoch: b.epoch };
  }
}
