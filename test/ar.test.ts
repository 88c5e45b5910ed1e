/**
 * The class-conditional AR generator (models/ar): training, KV-cache sampling, guidance, the
 * token cache and the resumable Node driver. Tiny models (dim 32, depth 2, heads 2, V 16, L 16)
 * because lavapipe runs everything on 2 shared CPU cores.
 *
 * Tolerances: KV-cache decoding vs the full teacher-forced forward runs different kernels (one
 * query row against the cache vs the whole causal matrix; different reduction orders), all in f32:
 * |diff| <= 2e-5 * (1 + max|logit|) (measured on lavapipe: 1.2e-6 with max|logit| 2.8, while a
 * one-position misalignment gives 3.0). Guided logits vs u + s(c - u) computed on the host from the
 * read-back c and u: 1e-5 * (1 + |values|), the rounding of two f32 operations.
 */
import { existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import * as E from '../engine/index.js';
import {
  ARTransformer,
  arTrainStep,
  cfgScaleAt,
  createAROptimizer,
  encodeTokenDataset,
  GuidedDecoder,
  resolveARConfig,
  sampleTokens,
  TokenLoader,
  type ARConfigInput,
  type TokenDataset,
} from '../models/ar/index.js';
import { VQTokenizer } from '../models/tokenizer/model.js';
import { buildTokenCache, loadARCheckpoint, loadTokenCache, saveTokenCache, trainAR } from '../node/train-ar.js';
import { saveTrainingCheckpoint } from '../node/train.js';
import { requireGpu } from './helpers/backends.js';
import { expectNoLeaks } from './helpers/leak-check.js';
import { buildMixedTokens } from '../models/tokenizer/posttrain.js';

const gpu = await requireGpu();
const V = 16;
const L = 16;
const TINY: ARConfigInput = { vocabSize: V, numClasses: 4, seqLen: L, dim: 32, depth: 2, heads: 2 };
const tmp = mkdtempSync(join(tmpdir(), 'ar-test-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

/** Deterministic pseudo-random token sequences. */
function randomTokens(n: number, seed: number): Int32Array {
  const out = new Int32Array(n * L);
  let s = seed * 2654435761;
  for (let i = 0; i < out.length; i++) {
    s = (Math.imul(s, 1103515245) + 12345) >>> 0;
    out[i] = (s >>> 16) % V;
  }
  return out;
}

/** Every parameter gets noise (std 1/sqrt(fan-in) for matrices, 0.1 for vectors) so no path is trivially zero (head, adaLN). */
function randomize(model: ARTransformer, seed: number): void {
  const g = new E.Generator(seed);
  E.noGrad(() =>
    E.tidy(() => {
      for (const p of model.parameters()) {
        const std = p.rank >= 2 ? 1 / Math.sqrt(p.shape[p.rank - 1]!) : 0.1;
        p.assign(p.add(E.randn(p.shape, { std, generator: g, backend: p.backend })));
      }
    }),
  );
}

function maxAbs(a: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]!));
  return m;
}

function maxDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  expect(a.length).toBe(b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
}

describe('config and schedule (host only)', () => {
  it('RAR guidance schedule values', () => {
    const g = 4;
    expect(cfgScaleAt(0, 16, g, 'rar')).toBe(1);
    expect(cfgScaleAt(8, 16, g, 'rar')).toBeCloseTo(1 + (g - 1) * 0.5, 12);
    expect(cfgScaleAt(16, 16, g, 'rar')).toBeCloseTo(g, 12);
    expect(cfgScaleAt(4, 16, g, 'rar', 2)).toBeCloseTo((g - 1) * 0.5 * (1 - Math.cos(Math.PI / 16)) + 1, 12);
    expect(cfgScaleAt(4, 16, g, 'rar', 0.5)).toBeCloseTo((g - 1) * 0.5 * (1 - Math.cos(Math.PI * 0.5)) + 1, 12);
    // monotone from 1 to g
    let prev = 1;
    for (let t = 1; t < 16; t++) {
      const s = cfgScaleAt(t, 16, g, 'rar', 1.3);
      expect(s).toBeGreaterThan(prev);
      prev = s;
    }
    expect(cfgScaleAt(5, 16, 2.5)).toBe(2.5);
    expect(cfgScaleAt(5, 16, 2.5, 'constant')).toBe(2.5);
    expect(() => cfgScaleAt(0, 16, 2, 'linear' as 'rar')).toThrow(/'constant' or 'rar'/);
    expect(() => cfgScaleAt(0, 16, 2, 'rar', 0)).toThrow(/power must be > 0/);
  });

  it('config defaults and validation', () => {
    const c = resolveARConfig({ vocabSize: 8, numClasses: 10, seqLen: 64 });
    expect(c).toMatchObject({ grid: [8, 8], pos: 'rope2d', qkNorm: 'rms', adaLN: false, classDropout: 0.1, dropout: 0, mlp: 'swiglu', norm: 'rms' });
    expect(() => resolveARConfig({ vocabSize: 8, numClasses: 10, seqLen: 12 })).toThrow(/not a square; give grid/);
    expect(resolveARConfig({ vocabSize: 8, numClasses: 10, seqLen: 12, grid: [3, 4] }).grid).toEqual([3, 4]);
    expect(resolveARConfig({ vocabSize: 8, numClasses: 10, seqLen: 12, pos: 'learned' }).grid).toBeUndefined();
    expect(() => resolveARConfig({ vocabSize: 8, numClasses: 10, seqLen: 12, grid: [3, 3] })).toThrow(/does not hold seqLen 12/);
    expect(() => resolveARConfig({ ...TINY, heads: 3 })).toThrow(/not divisible by 3 heads/);
    expect(() => resolveARConfig({ ...TINY, classDropout: 1 })).toThrow(/classDropout must be in \[0, 1\)/);
    expect(() => resolveARConfig({ ...TINY, vocabSize: 0 })).toThrow(/vocabSize must be a positive integer/);
  });

  it('TokenLoader: seeded epochs cover the data; state() resumes the same batches', () => {
    const n = 10;
    const ds: TokenDataset = { tokens: randomTokens(n, 3), labels: Int32Array.from({ length: n }, (_, i) => i % 4), shape: [n, L], grid: [4, 4], vocabSize: V };
    const a = new TokenLoader(ds, { batchSize: 3, seed: 7 });
    expect(a.batchesPerEpoch).toBe(3);
    const seen = new Set<number>();
    for (let i = 0; i < 3; i++) for (const k of a.next().indices) seen.add(k);
    expect(seen.size).toBe(9); // one epoch: 9 distinct sequences (the tail of 1 is dropped)
    expect(a.epoch).toBe(1);
    a.next();
    const st = a.state();
    const snap = (l: TokenLoader) => {
      const b = l.next(); // host arrays are reused: copy now
      for (let i = 0; i < 3; i++) {
        expect(b.classes[i]).toBe(ds.labels[b.indices[i]!]);
        expect(Array.from(b.tokens.subarray(i * L, (i + 1) * L))).toEqual(Array.from(ds.tokens.subarray(b.indices[i]! * L, (b.indices[i]! + 1) * L)));
      }
      return [b.epoch, ...b.indices];
    };
    const want = [snap(a), snap(a), snap(a)];
    const b = new TokenLoader(ds, { batchSize: 3, seed: 0 }).setState(st);
    expect([snap(b), snap(b), snap(b)]).toEqual(want);
    expect(() => new TokenLoader(ds, { batchSize: 4 }).setState(st)).toThrow(/does not fit this loader/);
    expect(() => new TokenLoader(ds, { batchSize: 11 })).toThrow(/no full batch of 11/);
  });
});

describe('lifetimes (float64 CPU)', () => {
  it('leaves no tensor behind: forward without recording, training steps, guided KV-cache sampling, mixed tokens', async () => {
    const backend = E.cpuF64;
    const model = new ARTransformer({ ...TINY, adaLN: true }, { backend, generator: new E.Generator(1) });
    const { optimizer } = createAROptimizer(model, { totalSteps: 4 });
    const cls = E.tensor([0, 3], [2], { backend, dtype: 'i32' });
    const toks = E.tensor(randomTokens(2, 1), [2, L], { backend, dtype: 'i32' });
    (await expectNoLeaks(() => E.noGrad(() => model.forward(cls, toks)), 'forward without recording')).dispose();
    // The first step creates the optimizer state and the gradients; later steps replace them.
    E.disposeAll(arTrainStep(model, optimizer, cls, toks));
    E.disposeAll(await expectNoLeaks(() => arTrainStep(model, optimizer, cls, toks), 'training step'));
    (await expectNoLeaks(() => sampleTokens(model, [0, 3], { cfgScale: 2, cfgSchedule: 'rar', topK: 4, generator: new E.Generator(2) }), 'guided sampling')).dispose();
    E.disposeAll(await expectNoLeaks(() => buildMixedTokens(model, toks, [0, 3], { sigma: 0.5, generator: new E.Generator(3) }), 'mixed tokens'));
    for (const t of [cls, toks]) t.dispose();
    optimizer.dispose();
    model.dispose();
  });
});

describe.runIf(gpu)('AR transformer on the GPU', () => {
  const backend = gpu!;

  it('shape, dtype and range errors', () => {
    const model = new ARTransformer(TINY, { backend, generator: new E.Generator(0) });
    const toks = E.zeros([2, L], { backend, dtype: 'i32' });
    expect(() => model.forward([0, 1], E.zeros([2, L], { backend }))).toThrow(/tokens must be i32/);
    expect(() => model.forward([0, 1, 2], toks)).toThrow(/tokens must be \[3, 1\.\.16\] for 3 classes, got \[2, 16\]/);
    expect(() => model.forward([0, 1], E.zeros([2, L + 1], { backend, dtype: 'i32' }))).toThrow(/got \[2, 17\]/);
    expect(() => model.forward([0, 5], toks)).toThrow(/class id 5 outside \[0, 4\]/);
    expect(() => model.forward(E.zeros([2], { backend }), toks)).toThrow(/classes must be i32/);
    expect(() => model.forward(E.zeros([2, 1], { backend, dtype: 'i32' }), toks)).toThrow(/classes must be \[B\]/);
    expect(() => model.startDecode([0, 1])).toThrow(/inference-only; run it under noGrad/);
    expect(() => E.noGrad(() => model.startDecode([0, 1], E.zeros([2, L], { backend, dtype: 'i32' })))).toThrow(/\(prefix\).*\[2, 1\.\.15\]/);
    expect(() =>
      sampleTokens(model, [0, 1], { override: () => E.zeros([3], { backend, dtype: 'i32' }) }),
    ).toThrow(/override must return i32 \[2\] token ids/);
    E.noGrad(() => {
      const d = new GuidedDecoder(model, [0]);
      for (let t = 0; t < L - 1; t++) d.feed(E.zeros([1], { backend, dtype: 'i32' }));
      expect(d.t).toBe(L - 1);
      expect(() => d.feed(E.zeros([1], { backend, dtype: 'i32' }))).toThrow(/token 15 is the last of 16/);
      d.dispose();
    });
    const live = E.memoryStats().liveTensors;
    E.tidy(() => void model.forward([0, 1], toks.slice([null, [0, 1]]))); // L = 1: only the class token
    expect(E.memoryStats().liveTensors).toBe(live);
    toks.dispose();
    model.dispose();
  });

  it('a tiny model overfits 4 sequences; greedy sampling then reproduces them', async () => {
    const live0 = E.memoryStats().liveTensors;
    const model = new ARTransformer({ ...TINY, dropSeed: 3 }, { backend, generator: new E.Generator(1) });
    const data = randomTokens(4, 11);
    const tokens = E.tensor(data, [4, L], { backend });
    const classes = E.tensor(Int32Array.from([0, 1, 2, 3]), [4], { backend });
    const steps = 60;
    const { optimizer, scheduler } = createAROptimizer(model, { lr: 1e-2, totalSteps: steps, warmupSteps: 5, weightDecay: 0 });
    const losses: number[] = [];
    let liveAt10 = 0;
    for (let s = 1; s <= steps; s++) {
      const r = E.tidy(() => arTrainStep(model, optimizer, classes, tokens, { scheduler }));
      if (s === 1 || s % 10 === 0) losses.push(await r.loss.item());
      if (s === 10) liveAt10 = E.memoryStats().liveTensors;
      if (s === steps) {
        expect(E.memoryStats().liveTensors).toBe(liveAt10);
        expect(await r.acc!.item()).toBeGreaterThan(0.95);
      }
      for (const t of Object.values(r)) t.dispose();
    }
    const curve = losses.map((v) => v.toFixed(4)).join(' -> ');
    expect(losses[0], curve).toBeCloseTo(Math.log(V), 5); // zero-initialized head: uniform logits
    // Class dropout (0.1) leaves the null-class rows unpredictable at token 0: the floor is ~0.1 * ln(4) / 16.
    expect(losses[losses.length - 1]!, curve).toBeLessThan(0.1);
    const live = E.memoryStats().liveTensors;
    const out = sampleTokens(model, [0, 1, 2, 3], { temperature: 0 });
    expect(E.memoryStats().liveTensors).toBe(live + 1);
    expect(Array.from(await out.toArray())).toEqual(Array.from(data));
    // Top-k 1 at temperature 1 is greedy too.
    const out2 = sampleTokens(model, [3, 2], { topK: 1, generator: new E.Generator(5) });
    expect(Array.from(await out2.toArray())).toEqual([...data.slice(3 * L, 4 * L), ...data.slice(2 * L, 3 * L)]);
    for (const t of [out, out2, tokens, classes]) t.dispose();
    optimizer.dispose();
    model.dispose();
    expect(E.memoryStats().liveTensors).toBeLessThanOrEqual(live0);
  }, 120_000);

  for (const variant of [
    { name: 'rope2d', cfg: {} },
    { name: 'learned positions + adaLN + layer norm + gelu', cfg: { pos: 'learned', adaLN: true, norm: 'layer', mlp: 'gelu', qkNorm: 'layer' } },
  ] as { name: string; cfg: Partial<ARConfigInput> }[]) {
    it(`KV-cache sampling logits equal the full teacher-forced recompute (${variant.name})`, async () => {
      const model = new ARTransformer({ ...TINY, ...variant.cfg }, { backend, generator: new E.Generator(2) });
      randomize(model, 9);
      const B = 3;
      const steps: E.Tensor[] = [];
      const ids = sampleTokens(model, [0, 2, 4], {
        temperature: 1,
        generator: new E.Generator(4),
        onLogits: (_t, l) => void steps.push(E.keep(l.contiguous())),
      });
      expect(steps.length).toBe(L);
      model.eval();
      const full = E.noGrad(() => model.forward([0, 2, 4], ids)); // [B, L, V]
      const inc = E.stack(steps, 1);
      const a = await full.toArray();
      const b = await inc.toArray();
      const tol = 2e-5 * (1 + maxAbs(a));
      expect(maxAbs(a)).toBeGreaterThan(0.5); // not trivially zero
      expect(maxDiff(a, b)).toBeLessThanOrEqual(tol);
      // With a known prefix: prefilled in one pass, kept in the output, same logits afterwards.
      const P = 5;
      const prefix = ids.slice([null, [0, P]]).contiguous();
      const tail: E.Tensor[] = [];
      const ids2 = sampleTokens(model, [0, 2, 4], { temperature: 0, prefix, onLogits: (t, l) => void tail.push(E.keep(E.tidy(() => l.contiguous()))) });
      expect(tail.length).toBe(L - P);
      const full2 = E.noGrad(() => model.forward([0, 2, 4], ids2));
      const i2 = Array.from(await ids2.toArray());
      const i1 = Array.from(await ids.toArray());
      for (let bb = 0; bb < B; bb++) expect(i2.slice(bb * L, bb * L + P)).toEqual(i1.slice(bb * L, bb * L + P));
      const want = await full2.slice([null, [P, L]]).contiguous().toArray();
      const got = await E.stack(tail, 1).toArray();
      expect(maxDiff(want, got)).toBeLessThanOrEqual(2e-5 * (1 + maxAbs(want)));
      for (const t of [...steps, ...tail, ids, ids2, full, full2, inc, prefix]) t.dispose();
      model.dispose();
    }, 120_000);
  }

  it('override: the returned tokens are recorded and fed (teacher forcing through the sampler)', async () => {
    const model = new ARTransformer(TINY, { backend, generator: new E.Generator(5) });
    randomize(model, 6);
    const B = 2;
    const gt = E.tensor(randomTokens(B, 21), [B, L], { backend });
    const logits: E.Tensor[] = [];
    const out = sampleTokens(model, [1, 3], {
      generator: new E.Generator(8),
      cfgScale: 2,
      onLogits: (_t, l) => void logits.push(E.keep(l.contiguous())),
      // keep the ground truth at even positions, the sample at odd ones
      override: (t, sampled) => (t % 2 === 0 ? gt.slice([null, [t, t + 1]]).reshape([B]) : sampled),
    });
    const o = Array.from(await out.toArray());
    const g = Array.from(await gt.toArray());
    for (let b = 0; b < B; b++) for (let t = 0; t < L; t += 2) expect(o[b * L + t]).toBe(g[b * L + t]);
    // The logits seen at each step are those of the guided model on the recorded prefix.
    model.eval();
    const full = E.noGrad(() => {
      const c = model.forward([1, 3], out);
      const u = model.forward([4, 4], out);
      return c.add(c.sub(u).mul(2 - 1));
    });
    const want = await full.toArray();
    const got = await E.stack(logits, 1).toArray();
    expect(maxDiff(want, got)).toBeLessThanOrEqual(2e-5 * (1 + maxAbs(want)));
    for (const t of [...logits, out, gt, full]) t.dispose();
    model.dispose();
  }, 120_000);

  it('CFG with scale 1 equals conditional sampling; scale > 1 gives u + s_t (c - u) with the RAR schedule', async () => {
    const model = new ARTransformer({ ...TINY, adaLN: true }, { backend, generator: new E.Generator(3) });
    randomize(model, 10);
    const cls = [0, 1, 3];
    const run = async (o: Parameters<typeof sampleTokens>[2]) => {
      const t = sampleTokens(model, cls, { temperature: 1, topP: 0.9, generator: new E.Generator(42), ...o });
      const a = Array.from(await t.toArray());
      t.dispose();
      return a;
    };
    const plain = await run({});
    expect(await run({ cfgScale: 1, alwaysGuide: true })).toEqual(plain);
    expect(await run({ cfgScale: 1, cfgSchedule: 'rar', alwaysGuide: true })).toEqual(plain);
    expect(await run({})).toEqual(plain); // reproducible
    expect(await run({ generator: new E.Generator(43) })).not.toEqual(plain);
    expect(await run({ cfgScale: 4 })).not.toEqual(plain);
    // One generator used twice advances: the second draw differs.
    const g = new E.Generator(42);
    expect(await run({ generator: g })).toEqual(plain);
    expect(await run({ generator: g })).not.toEqual(plain);

    // Step-level decoder: guided logits = u + s_t (c - u); c and u equal the full forward with the class / null class.
    const seq = E.tensor(randomTokens(3, 5), [3, L], { backend });
    model.eval();
    const [fc, fu] = E.noGrad(() => [model.forward(cls, seq), model.forward([4, 4, 4], seq)]);
    const fcA = await fc!.toArray();
    const fuA = await fu!.toArray();
    const scale = 3;
    const power = 1.5;
    const d = E.noGrad(() => new GuidedDecoder(model, cls, { cfgScale: scale, cfgSchedule: 'rar', cfgPower: power }));
    expect(d.guided).toBe(true);
    for (let t = 0; t < L; t++) {
      expect(d.t).toBe(t);
      const s = cfgScaleAt(t, L, scale, 'rar', power);
      expect(d.currentScale).toBe(s);
      const [c, u, l] = await Promise.all([d.cond.toArray(), d.uncond!.toArray(), d.logits.toArray()]);
      const byHand = Array.from(c, (cv, i) => u[i]! + s * (cv - u[i]!));
      expect(maxDiff(l, byHand)).toBeLessThanOrEqual(1e-5 * (1 + maxAbs(byHand)));
      const pick = (a: ArrayLike<number>) => Array.from({ length: 3 * V }, (_, k) => a[Math.floor(k / V) * L * V + t * V + (k % V)]!);
      expect(maxDiff(c, pick(fcA))).toBeLessThanOrEqual(2e-5 * (1 + maxAbs(c)));
      expect(maxDiff(u, pick(fuA))).toBeLessThanOrEqual(2e-5 * (1 + maxAbs(u)));
      if (t === 0) expect(maxDiff(l, c)).toBe(0); // s_0 = 1: exactly the conditional logits
      if (t < L - 1) E.noGrad(() => E.tidy(() => d.feed(seq.slice([null, [t, t + 1]]).reshape([3]))));
    }
    d.dispose();
    for (const t of [seq, fc!, fu!]) t.dispose();
    model.dispose();
  }, 180_000);

  it('class dropout: rate, eval mode, and training forward = eval forward on the dropped labels', async () => {
    const model = new ARTransformer({ ...TINY, classDropout: 0.1, dropSeed: 12 }, { backend, generator: new E.Generator(0) });
    const n = 4000;
    const zeros = E.zeros([n], { backend, dtype: 'i32' });
    const dropped = Array.from(await E.tidy(() => model.dropClasses(zeros)).toArray());
    const rate = dropped.filter((c) => c === 4).length / n;
    expect(dropped.every((c) => c === 0 || c === 4)).toBe(true);
    expect(Math.abs(rate - 0.1)).toBeLessThan(4 * Math.sqrt((0.1 * 0.9) / n)); // 4 sigma = 0.019
    model.eval();
    const st = model.generator.state();
    expect(Array.from(await E.tidy(() => model.dropClasses(zeros)).toArray()).every((c) => c === 0)).toBe(true);
    expect(model.generator.state()).toEqual(st); // eval mode draws nothing
    model.train();
    // Restoring the generator state replays the same drops (exact resume).
    const again = model.generator.state();
    const d1 = Array.from(await E.tidy(() => model.dropClasses(zeros)).toArray());
    model.generator.setState(again);
    const d2 = Array.from(await E.tidy(() => model.dropClasses(zeros)).toArray());
    expect(d2).toEqual(d1);
    zeros.dispose();
    model.dispose();

    const m2 = new ARTransformer({ ...TINY, classDropout: 0.5, dropSeed: 1 }, { backend, generator: new E.Generator(1) });
    randomize(m2, 2);
    const cls = E.tensor(Int32Array.from([0, 1, 2, 3, 0, 1, 2, 3]), [8], { backend });
    const toks = E.tensor(randomTokens(8, 1), [8, L], { backend });
    const g0 = m2.generator.state();
    const trainLogits = await E.noGrad(() => E.tidy(() => m2.forward(cls, toks))).toArray();
    m2.generator.setState(g0);
    const eff = E.tidy(() => m2.dropClasses(cls));
    const effA = Array.from(await eff.toArray());
    expect(effA.some((c) => c === 4) && effA.some((c) => c !== 4)).toBe(true);
    m2.eval();
    const evalLogits = await E.noGrad(() => E.tidy(() => m2.forward(eff, toks))).toArray();
    expect(maxDiff(trainLogits, evalLogits)).toBe(0);
    for (const t of [cls, toks, eff]) t.dispose();
    m2.dispose();
  }, 120_000);

  it('encodeTokenDataset: batched encoding equals one tokenizer call; the cache file round-trips', async () => {
    const tok = new VQTokenizer({ ch: 8, chMult: [1, 2], numResBlocks: 1, codebookSize: 32, codeDim: 8 }, { backend, generator: new E.Generator(0) });
    const N = 5;
    const images = new Uint8Array(N * 32 * 32);
    for (let i = 0; i < images.length; i++) images[i] = (i * 37 + Math.floor(i / 97) * 11) % 256;
    const ds = { images, labels: Int32Array.from([3, 1, 4, 1, 5]), shape: [N, 1, 32, 32] as const, classes: [] };
    const enc = await encodeTokenDataset(tok, ds, { backend, batchSize: 2 });
    expect(enc.shape).toEqual([N, 256]);
    expect(enc.grid).toEqual([16, 16]);
    expect(enc.vocabSize).toBe(32);
    expect(Array.from(enc.labels)).toEqual([3, 1, 4, 1, 5]);
    expect(tok.training).toBe(true); // mode restored
    tok.eval();
    const x = E.tensor(Float32Array.from(images, (v) => (v / 255) * 2 - 1), [N, 1, 32, 32], { backend });
    const ref = E.noGrad(() => E.tidy(() => tok.encode(x).indices.contiguous()));
    expect(Array.from(enc.tokens)).toEqual(Array.from(await ref.toArray()));
    const path = join(tmp, 'tokens.safetensors');
    await saveTokenCache(path, enc, { tokenizer: { path: 'tok.safetensors', sha256: 'abc' }, source: { dataset: 'test' } });
    const back = await loadTokenCache(path);
    expect(back.meta.tokenizer.sha256).toBe('abc');
    expect(back.meta.source).toEqual({ dataset: 'test' });
    expect(Array.from(back.tokens.tokens)).toEqual(Array.from(enc.tokens));
    expect(Array.from(back.tokens.labels)).toEqual(Array.from(enc.labels));
    expect(back.tokens.grid).toEqual([16, 16]);
    await expect(saveTokenCache(path, { ...enc, vocabSize: 4 })).rejects.toThrow(/outside \[0, 4\)/);
    for (const t of [x, ref]) t.dispose();
    tok.dispose();
  }, 120_000);

  it('trainAR resumes exactly: 3 steps + resume to 6 equals 6 uninterrupted steps', async () => {
    const n = 12;
    const tokens: TokenDataset = { tokens: randomTokens(n, 8), labels: Int32Array.from({ length: n }, (_, i) => i % 3), shape: [n, L], grid: [4, 4], vocabSize: V };
    const common = { backend, tokens, config: { dim: 32, depth: 2, heads: 2 }, batchSize: 4, steps: 6, lr: 5e-3, warmupSteps: 2, logEvery: 1, checkpointEvery: 3, seed: 5 };
    const quiet = () => {};
    const a = await trainAR({ ...common, outDir: join(tmp, 'a'), log: quiet });
    expect(a.model.cfg.classDropout).toBe(0.1);
    await expect(
      trainAR({
        ...common,
        outDir: join(tmp, 'b'),
        log: (l) => {
          if (l.startsWith('step 4/')) throw new Error('interrupted');
        },
      }),
    ).rejects.toThrow(/interrupted/);
    const b = await trainAR({ ...common, outDir: join(tmp, 'b'), log: quiet });
    expect(b.startStep).toBe(3);
    expect(b.history.map((h) => h.terms.loss)).toEqual(a.history.slice(3).map((h) => h.terms.loss));
    const pa = a.model.namedParameters();
    const pb = b.model.namedParameters();
    for (let i = 0; i < pa.length; i++) expect(Array.from(await pb[i]![1].toArray()), pa[i]![0]).toEqual(Array.from(await pa[i]![1].toArray()));
    // The checkpoint rebuilds the model for inference.
    const loaded = await loadARCheckpoint(join(tmp, 'b', 'checkpoint.safetensors'), backend);
    expect(loaded.step).toBe(6);
    expect(loaded.model.training).toBe(false);
    const s1 = sampleTokens(loaded.model, [0, 1], { generator: new E.Generator(1) });
    const s2 = sampleTokens(b.model, [0, 1], { generator: new E.Generator(1) });
    expect(Array.from(await s1.toArray())).toEqual(Array.from(await s2.toArray()));
    for (const t of [s1, s2]) t.dispose();
    for (const m of [a.model, b.model, loaded.model]) m.dispose();
  }, 180_000);

  it('buildTokenCache encodes Fashion-MNIST once per tokenizer (hash-checked); trainAR trains from a tokenizer checkpoint and writes sample grids', async () => {
    const tcfg = { ch: 8, chMult: [1, 2], numResBlocks: 1, codebookSize: 32, codeDim: 8 };
    const tokPath = join(tmp, 'tok.safetensors');
    const saveTok = async (seed: number) => {
      const tok = new VQTokenizer(tcfg, { backend, generator: new E.Generator(seed) });
      await saveTrainingCheckpoint(tokPath, { model: tok }, 0, { config: tok.cfg });
      tok.dispose();
    };
    await saveTok(0);
    const cachePath = join(tmp, 'fm-tokens.safetensors');
    const opts = { backend, tokenizerPath: tokPath, subset: 6, batchSize: 4, cachePath, log: () => {} };
    const first = await buildTokenCache(opts);
    expect(first.fromCache).toBe(false);
    expect(first.tokens.shape).toEqual([6, 256]);
    first.tokenizer?.dispose();
    const second = await buildTokenCache(opts);
    expect(second.fromCache).toBe(true);
    expect(second.tokenizer).toBeNull();
    expect(Array.from(second.tokens.tokens)).toEqual(Array.from(first.tokens.tokens));
    await saveTok(1); // another tokenizer at the same path: the hash no longer matches
    const lines: string[] = [];
    const third = await buildTokenCache({ ...opts, log: (l: string) => void lines.push(l) });
    expect(third.fromCache).toBe(false);
    expect(lines.join('\n')).toMatch(/stale/);
    expect(Array.from(third.tokens.tokens)).not.toEqual(Array.from(first.tokens.tokens));
    third.tokenizer?.dispose();

    const outDir = join(tmp, 'run');
    const r = await trainAR({ backend, tokenizerPath: tokPath, trainSubset: 6, numClasses: 10, config: { dim: 32, depth: 1, heads: 2 }, batchSize: 2, steps: 2, logEvery: 1, sampleEvery: 2, samplesPerClass: 1, sampleCfg: { cfgScale: 2 }, outDir, log: () => {} });
    expect(existsSync(join(outDir, 'tokens.safetensors'))).toBe(true);
    expect(readdirSync(outDir).filter((f) => f.startsWith('samples_'))).toEqual(['samples_0000002.png']);
    expect(r.model.cfg.grid).toEqual([16, 16]);
    r.model.dispose();
    r.tokenizer?.dispose();
  }, 240_000);
});
