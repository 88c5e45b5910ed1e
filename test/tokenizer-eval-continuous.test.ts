/**
 * evaluateContinuousTokenizer and its pieces (models/tokenizer/eval-continuous.ts).
 *
 * Evaluation: a tiny KL tokenizer (ch 4, C = 2, 8x8 latents for 16x16 images) and a stand-in
 * feature network (a fixed random 5x5 stride-2 conv, ReLU, 4x4 average pool -> 32-d features, a
 * random linear head for logits), on 8 synthetic validation images and 12 training images, on the
 * GPU (or the CPU backend when there is none). nFID(0) = rFID and iFID against the validation
 * latents themselves with K = 1 = rFID hold exactly: the same decoder runs on the same values
 * (a latent is its own nearest neighbour and slerp(z, z, alpha) = 0.5 z + 0.5 z = z in floats).
 * Batched accumulation equals one batch to 1e-9 relative: only float64 summation order changes,
 * and the noise stream is the same (each batch's draw is a multiple of 4 numbers, one Philox block).
 * nFID growing with tau is not tested: for an untrained decoder and a random feature network it is
 * not guaranteed.
 *
 * Neighbours and slerp run on the float64 CPU reference and on the GPU. Candidates are checked
 * against a float64 brute force on the cosine similarity: a candidate's cosine must be within
 * 1e-5 of the K-th best (f32 unit vectors: |u - v|^2 = 2 - 2 cos carries ~1e-7 relative error per
 * term over D <= 24 terms, far below 1e-5; this also accepts near-ties). Choice frequencies over
 * n = 4000 draws must be within 5 binomial standard deviations (+ 0.002) of softmax(-MSE).
 * slerp angles are compared to 1e-4 rad and norms to 1e-5 relative (f32 vectors; the angle comes
 * from atan2 of f32 norms; rounding grows as 1 / cos(theta / 2), so near-antipodal pairs,
 * cos(theta / 2) < 0.05, are left out).
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import * as E from '../engine/index.js';
import { CpuBackend } from '../engine/cpu/backend.js';
import {
  continuousReconstructionGrid,
  DEFAULT_IFID_K,
  DEFAULT_NFID_TAU,
  encodeLatentSet,
  evaluateContinuousTokenizer,
  evaluateTokenizer,
  ifidNeighbours,
  LatentNeighbours,
  nfidLatents,
  slerp,
  slerpWeights,
  VQTokenizer,
  type ContinuousEvalResult,
} from '../models/tokenizer/index.js';
import { requireGpu } from './helpers/backends.js';
import { uniformValues } from './helpers/prng.js';
import { RandomConvNet } from './helpers/random-conv-net.js';
import { expectNoLeaks } from './helpers/leak-check.js';

const gpu = await requireGpu();
const backend: E.Backend = gpu ?? new CpuBackend({ precision: 'f32' });
const backends: [string, E.Backend][] = [['CPU f64', E.cpuF64], ...(gpu ? [['GPU', gpu] as [string, E.Backend]] : [])];

const KL = { quantizer: 'kl' as const, ch: 4, chMult: [1, 2], numResBlocks: 1, codeDim: 2, normGroups: 2 };
const S = 16;

/** Shaded ellipses in [-1, 1]: n images 1x16x16 (`shift` varies the set). */
function images(n: number, shift = 0): Float32Array {
  const out = new Float32Array(n * S * S);
  for (let k = 0; k < n; k++) {
    const j = k + shift;
    const cx = 8 + ((j * 5) % 5) - 2;
    const cy = 8 + ((j * 3) % 5) - 2;
    const rx = 3 + ((j * 7) % 4);
    const ry = 3 + ((j * 4) % 5);
    for (let y = 0; y < S; y++) {
      for (let x = 0; x < S; x++) {
        const e = ((x - cx) / rx) ** 2 + ((y - cy) / ry) ** 2;
        out[k * S * S + y * S + x] = e <= 1 ? -0.2 + 1.1 * (y / S) : -1;
      }
    }
  }
  return out;
}


function klTokenizer(): VQTokenizer {
  const m = new VQTokenizer(KL, { backend, generator: new E.Generator(0) });
  m.latentStats.set([0.05, -0.05], [0.5, 0.8]); // exercise the normalization
  return m;
}

function expectFinite(r: ContinuousEvalResult): void {
  for (const v of [r.rfid, r.psnr, r.ssim, r.ifid!, ...r.nfid.map((e) => e.fid)]) expect(Number.isFinite(v)).toBe(true);
}

describe(`evaluateContinuousTokenizer (${gpu ? 'GPU' : 'CPU'})`, () => {
  const N = 8;
  const M = 12;

  it('finite metrics; nFID(0) = rFID exactly; seeded runs repeat; the default grid; nothing leaks', async () => {
    const model = klTokenizer();
    const net = new RandomConvNet(backend, 3, 32);
    const x = E.tensor(images(N), [N, 1, S, S], { backend });
    const xt = E.tensor(images(M, 40), [M, 1, S, S], { backend });
    const live0 = E.memoryStats().liveTensors;
    const train = await encodeLatentSet(model, [xt]);
    expect(train.shape).toEqual([M, 2, 8, 8]);
    const r = await evaluateContinuousTokenizer(model, net, [x], train, { taus: [0, 0.5, 1], seed: 7, ifidK: 4 });
    expectFinite(r);
    expect(r.count).toBe(N);
    expect(r.featureDim).toBe(32);
    expect(r.nfid.map((e) => e.tau)).toEqual([0, DEFAULT_NFID_TAU, 0.5, 1]); // the default tau is added
    expect(r.nfidDefault.tau).toBe(0.2);
    expect(r.nfid[0]!.fid).toBe(r.rfid);
    expect(r.nfid[3]!.fid).not.toBe(r.rfid);
    expect(r.rfid).toBeGreaterThan(0);
    expect([r.ifidK, r.ifidAlpha, r.ifidTrainCount]).toEqual([4, 0.5, M]);
    expect(r.psnr).toBeGreaterThan(0);
    expect(r.psnr).toBeLessThan(60);
    expect(r.ssim).toBeGreaterThanOrEqual(-1);
    expect(r.ssim).toBeLessThan(1);
    expect(r.ssimPadding).toBe('valid');
    expect(r.inceptionScore!.real.mean).toBeGreaterThanOrEqual(1);
    expect(model.training).toBe(true); // mode restored

    // Same seed: identical numbers; another seed: same rFID, other nFID at tau > 0.
    expect(await evaluateContinuousTokenizer(model, net, [x], train, { taus: [0, 0.5, 1], seed: 7, ifidK: 4 })).toEqual(r);
    const other = await evaluateContinuousTokenizer(model, net, [x], null, { taus: [1], seed: 8 });
    expect(other.rfid).toBe(r.rfid);
    expect(other.ifid).toBeNull();
    expect(other.ifidTrainCount).toBe(0);
    expect(other.nfid.find((e) => e.tau === 1)!.fid).not.toBe(r.nfid[3]!.fid);

    // Defaults: tau grid 0.1 / 0.2 / 0.3, K = 10, all training latents; ifidMaxTrain caps M.
    const d = await evaluateContinuousTokenizer(model, net, [x], train);
    expect(d.nfid.map((e) => e.tau)).toEqual([0.1, 0.2, 0.3]);
    expect([d.ifidK, d.ifidTrainCount]).toEqual([DEFAULT_IFID_K, M]);
    const capped = await evaluateContinuousTokenizer(model, net, [x], train, { taus: [], ifidK: 2, ifidMaxTrain: 5 });
    expect(capped.ifidTrainCount).toBe(5);
    train.dispose();
    expect(E.memoryStats().liveTensors).toBe(live0);
    x.dispose();
    xt.dispose();
    net.dispose();
    model.dispose();
  }, 60_000);

  it('iFID with K = 1 against the validation latents themselves equals rFID exactly (z is its own neighbour; slerp(z, z) = z)', async () => {
    const model = klTokenizer();
    const net = new RandomConvNet(backend, 3, 32);
    const x = E.tensor(images(N), [N, 1, S, S], { backend });
    const self = await encodeLatentSet(model, [x]);
    const r = await evaluateContinuousTokenizer(model, net, [x], self, { taus: [], ifidK: 1, inceptionScore: false });
    expect(r.ifid).toBe(r.rfid);
    expect(r.inceptionScore).toBeUndefined();
    self.dispose();
    x.dispose();
    net.dispose();
    model.dispose();
  }, 60_000);

  it('batch-by-batch accumulation matches one batch (rFID, nFID, iFID, PSNR, SSIM)', async () => {
    const model = klTokenizer();
    const net = new RandomConvNet(backend, 3, 32);
    const x = E.tensor(images(N), [N, 1, S, S], { backend });
    const xt = E.tensor(images(M, 40), [M, 1, S, S], { backend });
    // encodeLatentSet over batches (and capped) equals encoding at once.
    const parts = [xt.slice([[0, 5]]), xt.slice([[5, 12]])];
    const train = await encodeLatentSet(model, parts);
    const once = E.noGrad(() => model.encodeLatents(xt));
    const [a, b] = [await train.toArray(), await once.toArray()];
    for (let i = 0; i < a.length; i++) expect(Math.abs(a[i]! - b[i]!)).toBeLessThanOrEqual(1e-5 * (1 + Math.abs(b[i]!)));
    const seven = await encodeLatentSet(model, parts, { maxCount: 7 });
    expect(seven.shape).toEqual([7, 2, 8, 8]);
    expect(Array.from(await seven.toArray())).toEqual(Array.from(a.subarray(0, 7 * 128)));

    const opts = { taus: [0.5], ifidK: 3, seed: 2 };
    const one = await evaluateContinuousTokenizer(model, net, [x], train, opts);
    let seen = 0;
    const split = [x.slice([[0, 4]]), x.slice([[4, 8]])];
    const two = await evaluateContinuousTokenizer(model, net, split, train, { ...opts, onBatch: (n) => (seen = n) });
    expect(seen).toBe(N);
    const close = (u: number, v: number) => expect(Math.abs(u - v)).toBeLessThanOrEqual(1e-9 * Math.max(1, Math.abs(v)));
    close(two.rfid, one.rfid);
    close(two.nfid[0]!.fid, one.nfid[0]!.fid);
    close(two.nfid[1]!.fid, one.nfid[1]!.fid);
    close(two.psnr, one.psnr);
    close(two.ssim, one.ssim);
    // iFID: the draws take 4 uniforms per batch (one Philox block), so two batches of 4 see the same
    // uniforms as one batch of 8; only the device's f32 sums of the draw could differ.
    close(two.ifid!, one.ifid!);
    for (const t of [...parts, ...split, train, once, seven]) t.dispose();
    x.dispose();
    xt.dispose();
    net.dispose();
    model.dispose();
  }, 60_000);

  it('reconstruction grid: originals, clean, one row per tau, then the iFID row', async () => {
    const model = klTokenizer();
    const x = E.tensor(images(4), [4, 1, S, S], { backend });
    const xt = E.tensor(images(M, 40), [M, 1, S, S], { backend });
    const train = await expectNoLeaks(() => encodeLatentSet(model, [xt]), 'encodeLatentSet');
    const g = await expectNoLeaks(() => continuousReconstructionGrid(model, x, { taus: [0, 1], trainLatents: train, ifidK: 3 }), 'grid with iFID');
    expect(g.shape).toEqual([20, 1, S, S]);
    const v = await g.toArray();
    const row = (i: number) => Array.from(v.subarray(i * 4 * S * S, (i + 1) * 4 * S * S));
    expect(row(0)).toEqual(Array.from(await x.toArray()));
    expect(row(2)).toEqual(row(1)); // tau 0 = clean
    expect(row(3)).not.toEqual(row(1));
    expect(row(4)).not.toEqual(row(1));
    expect(Math.min(...v)).toBeGreaterThanOrEqual(-1);
    expect(Math.max(...v)).toBeLessThanOrEqual(1);
    const plain = await expectNoLeaks(() => continuousReconstructionGrid(model, x), 'grid');
    expect(plain.shape).toEqual([20, 1, S, S]); // 2 + 3 default taus, no iFID row
    for (const t of [g, plain, x, xt, train]) t.dispose();
    model.dispose();
  }, 60_000);

  it('rejects bad arguments and VQ models with one-line messages', async () => {
    const model = klTokenizer();
    const net = new RandomConvNet(backend, 3, 32);
    const x = E.tensor(images(N), [N, 1, S, S], { backend });
    const train = await encodeLatentSet(model, [x]);
    await expect(evaluateContinuousTokenizer(model, net, [x], train, { taus: [1.5] })).rejects.toThrow(/tau must be in \[0, 1\], got 1.5/);
    await expect(evaluateContinuousTokenizer(model, net, [x], train, { ifidAlpha: -1 })).rejects.toThrow(/ifidAlpha must be in \[0, 1\], got -1/);
    await expect(evaluateContinuousTokenizer(model, net, [x], train)).rejects.toThrow(/ifidK must be an integer in \[1, M = 8\], got 10/);
    await expect(evaluateContinuousTokenizer(model, net, [x], train, { ifidK: 2, ifidMaxTrain: 0 })).rejects.toThrow(/ifidMaxTrain must be an integer >= 1, got 0/);
    await expect(evaluateContinuousTokenizer(model, net, [x], train.reshape([N, 2, 64]), { ifidK: 2 })).rejects.toThrow(/expected training latents \[M, 2, h, w\]/);
    await expect(evaluateContinuousTokenizer(model, net, [x.slice([[0, 1]])], null)).rejects.toThrow(/at least 2 images, got 1/);
    await expect(evaluateContinuousTokenizer(model, net, [x.reshape([N, S, S])], null)).rejects.toThrow(/expected image batches \[B, C, H, W\]/);
    if (gpu) {
      const big = E.zeros([600, 2, 1, 1], { backend });
      await expect(ifidNeighbours(E.zeros([1, 2, 1, 1], { backend }), big, 513, new E.Generator(0))).rejects.toThrow(/ifidK = 513 exceeds the GPU neighbour search's limit of 512/);
      big.dispose();
    }
    const vq = new VQTokenizer({ ...KL, quantizer: 'vq', codebookSize: 8 }, { backend });
    await expect(evaluateContinuousTokenizer(vq, net, [x], null)).rejects.toThrow(/this is a VQ tokenizer; use evaluateTokenizer/);
    await expect(encodeLatentSet(vq, [x])).rejects.toThrow(/this is a VQ tokenizer/);
    await expect(evaluateTokenizer(model, net, [x])).rejects.toThrow(/use evaluateContinuousTokenizer/);
    for (const t of [x, train]) t.dispose();
    vq.dispose();
    net.dispose();
    model.dispose();
  }, 60_000);
});

/** float64 cosine similarity of rows i of a and j of b, both [*, D]. */
function cosine(a: ArrayLike<number>, i: number, b: ArrayLike<number>, j: number, D: number): number {
  let ab = 0;
  let aa = 0;
  let bb = 0;
  for (let t = 0; t < D; t++) {
    const x = a[i * D + t]!;
    const y = b[j * D + t]!;
    ab += x * y;
    aa += x * x;
    bb += y * y;
  }
  return ab / Math.sqrt(aa * bb);
}

function mse(a: ArrayLike<number>, i: number, b: ArrayLike<number>, j: number, D: number): number {
  let s = 0;
  for (let t = 0; t < D; t++) s += (a[i * D + t]! - b[j * D + t]!) ** 2;
  return s / D;
}

/** The angle between two host vectors, float64, via atan2 (accurate near 0). */
function angle(a: ArrayLike<number>, b: ArrayLike<number>): number {
  const na = Math.hypot(...Array.from(a));
  const nb = Math.hypot(...Array.from(b));
  let s = 0;
  let c = 0;
  for (let i = 0; i < a.length; i++) {
    s += (a[i]! / na - b[i]! / nb) ** 2;
    c += (a[i]! / na + b[i]! / nb) ** 2;
  }
  return 2 * Math.atan2(Math.sqrt(s), Math.sqrt(c));
}

describe.each(backends)('iFID neighbours and slerp (%s)', (_name, b) => {
  it('the drawn neighbour is one of the K nearest by cosine similarity (float64 brute force, ties allowed); MSEs match', async () => {
    await fc.assert(
      fc.asyncProperty(fc.integer({ min: 1, max: 20 }), fc.integer({ min: 1, max: 4 }), fc.integer({ min: 1, max: 6 }), fc.integer({ min: 1, max: 3 }), fc.integer({ min: 0, max: 1e6 }), async (M, Nq, k0, C, seed) => {
        const k = Math.min(k0, M);
        const D = C * 2 * 2;
        const tv = uniformValues(M * D, seed, -2, 2);
        const zv = uniformValues(Nq * D, seed + 1, -2, 2);
        const train = E.tensor(tv, [M, C, 2, 2], { backend: b });
        const z = E.tensor(zv, [Nq, C, 2, 2], { backend: b });
        const p = await ifidNeighbours(z, train, k, new E.Generator(seed));
        for (let n = 0; n < Nq; n++) {
          const cos = Array.from({ length: M }, (_, m) => cosine(zv, n, tv, m, D));
          const kth = [...cos].sort((x, y) => y - x)[k - 1]!;
          const cand = Array.from(p.candidates.subarray(n * k, (n + 1) * k));
          expect(new Set(cand).size).toBe(k);
          for (let s = 0; s < k; s++) {
            expect(cos[cand[s]!]!).toBeGreaterThanOrEqual(kth - 1e-5);
            if (s > 0) expect(cos[cand[s]!]!).toBeLessThanOrEqual(cos[cand[s - 1]!]! + 1e-5); // descending cosine
            expect(Math.abs(p.mse[n * k + s]! - mse(zv, n, tv, cand[s]!, D))).toBeLessThanOrEqual(1e-5 * (1 + mse(zv, n, tv, cand[s]!, D)));
          }
          expect(cand).toContain(p.chosen[n]);
        }
        train.dispose();
        z.dispose();
      }),
      { numRuns: 25 },
    );
  });

  it('choice frequencies over 4000 draws follow softmax(-MSE) over the candidates', async () => {
    const D = 8;
    const zv = uniformValues(D, 5, -1.5, 1.5);
    // Training latents at growing distances from z along random directions.
    const scales = [0.3, 0.6, 0.9, 1.2, 1.5, 2.5];
    const dirs = uniformValues(scales.length * D, 6, -1, 1);
    const tv = scales.flatMap((s, m) => zv.map((v, i) => Math.fround(v + s * dirs[m * D + i]!)));
    const n = 4000;
    const z = E.tensor(zv, [1, 2, 2, 2], { backend: b }).expand([n, 2, 2, 2]).contiguous();
    const train = E.tensor(tv, [scales.length, 2, 2, 2], { backend: b });
    const k = 4;
    const p = await ifidNeighbours(z, train, k, new E.Generator(11));
    const cand = Array.from(p.candidates.subarray(0, k));
    const e = cand.map((m) => Math.exp(-mse(zv, 0, tv, m, D)));
    const Z = e.reduce((s, v) => s + v, 0);
    const counts = new Map<number, number>();
    for (let i = 0; i < n; i++) {
      expect(Array.from(p.candidates.subarray(i * k, (i + 1) * k))).toEqual(cand); // same query, same candidates
      counts.set(p.chosen[i]!, (counts.get(p.chosen[i]!) ?? 0) + 1);
    }
    for (let s = 0; s < k; s++) {
      const q = e[s]! / Z;
      const f = (counts.get(cand[s]!) ?? 0) / n;
      expect(Math.abs(f - q), `candidate ${cand[s]}: frequency ${f} vs probability ${q}`).toBeLessThanOrEqual(5 * Math.sqrt((q * (1 - q)) / n) + 0.002);
    }
    expect([...counts.keys()].every((m) => cand.includes(m))).toBe(true);
    // The probabilities are not all equal (the check has teeth).
    expect(Math.max(...e) / Math.min(...e)).toBeGreaterThan(1.5);
    z.dispose();
    train.dispose();
  });

  it('a training set containing z: z is the first candidate and the likeliest draw; interpolating with it returns z exactly', async () => {
    const D = 8;
    const zv = uniformValues(D, 21, -1, 1);
    const others = uniformValues(5 * D, 22, -1, 1);
    const tv = [...others.slice(0, 2 * D), ...zv, ...others.slice(2 * D)]; // z is training latent 2
    const train = E.tensor(tv, [6, 2, 2, 2], { backend: b });
    const z = E.tensor(zv, [1, 2, 2, 2], { backend: b });
    const p = await ifidNeighbours(z, train, 3, new E.Generator(0));
    expect(p.candidates[0]).toBe(2);
    expect(p.mse[0]).toBe(0);
    expect(Math.min(...p.mse)).toBe(p.mse[0]);
    const only = new LatentNeighbours(z);
    const zi = await only.interpolate(z, 1, 0.5, new E.Generator(0));
    expect(Array.from(await zi.toArray())).toEqual(Array.from(await z.toArray()));
    only.dispose();
    for (const t of [zi, z, train]) t.dispose();
  });

  it('slerp: alpha 0 and 1 give the endpoints exactly; equal-norm vectors stay at that norm and the angle halves', async () => {
    await fc.assert(
      fc.asyncProperty(fc.integer({ min: 2, max: 12 }), fc.integer({ min: 1, max: 4 }), fc.double({ min: 0.1, max: 5, noNaN: true }), fc.integer({ min: 0, max: 1e6 }), async (D, N, r, seed) => {
        const av = uniformValues(N * D, seed, -1, 1);
        const bv = uniformValues(N * D, seed + 7, -3, 3);
        const a = E.tensor(av, [N, D], { backend: b });
        const bb = E.tensor(bv, [N, D], { backend: b });
        const [s0, s1] = [await slerp(a, bb, 0), await slerp(a, bb, 1)];
        expect(Array.from(await s0.toArray())).toEqual(Array.from(await a.toArray()));
        expect(Array.from(await s1.toArray())).toEqual(Array.from(await bb.toArray()));
        // Rescale the rows to norm r, then slerp at 0.5.
        const scale = (v: number[]) => {
          const out: number[] = [];
          for (let n = 0; n < N; n++) {
            const row = v.slice(n * D, (n + 1) * D);
            const h = Math.hypot(...row);
            out.push(...row.map((x) => Math.fround((r * x) / h)));
          }
          return out;
        };
        const [au, bu] = [scale(av), scale(bv)];
        const ua = E.tensor(au, [N, D], { backend: b });
        const ub = E.tensor(bu, [N, D], { backend: b });
        const m = await slerp(ua, ub, 0.5);
        const mv = await m.toArray();
        for (let n = 0; n < N; n++) {
          const [x, y, z] = [au.slice(n * D, (n + 1) * D), bu.slice(n * D, (n + 1) * D), Array.from(mv.subarray(n * D, (n + 1) * D))];
          const theta = angle(x, y);
          // Near-antipodal pairs amplify f32 rounding by 1 / cos(theta / 2); keep to well-conditioned ones.
          if (Math.cos(theta / 2) < 0.05) continue;
          expect(Math.abs(Math.hypot(...z) - r)).toBeLessThanOrEqual(1e-5 * r);
          expect(Math.abs(angle(x, z) - theta / 2)).toBeLessThanOrEqual(1e-4);
          expect(Math.abs(angle(z, y) - theta / 2)).toBeLessThanOrEqual(1e-4);
        }
        for (const t of [a, bb, s0, s1, ua, ub, m]) t.dispose();
      }),
      { numRuns: 20 },
    );
  });
});

describe('host helpers', () => {
  it('slerpWeights: the formula; (1, 0) and (0, 1) at the ends; linear below sin(theta) = 1e-6 (theta ~ 0 or ~ pi)', () => {
    const t = 1.1;
    const [wa, wb] = slerpWeights(t, 0.3);
    expect(wa).toBeCloseTo(Math.sin(0.7 * t) / Math.sin(t), 15);
    expect(wb).toBeCloseTo(Math.sin(0.3 * t) / Math.sin(t), 15);
    expect(slerpWeights(t, 0)).toEqual([1, 0]);
    expect(slerpWeights(t, 1)).toEqual([0, 1]);
    expect(slerpWeights(0, 0.25)).toEqual([0.75, 0.25]);
    expect(slerpWeights(Math.PI, 0.25)).toEqual([0.75, 0.25]);
    // Near 0 the formula tends to the linear weights anyway.
    const [ya, yb] = slerpWeights(1e-3, 0.25);
    expect(Math.abs(ya - 0.75) + Math.abs(yb - 0.25)).toBeLessThan(1e-6);
  });

  it('nfidLatents: (1 - tau) z + tau eps from the generator; tau 0 is z without drawing', async () => {
    const b = E.cpuF64;
    const z = E.tensor(uniformValues(16, 3), [2, 2, 2, 2], { backend: b });
    const g = new E.Generator(4);
    expect(Array.from(await nfidLatents(z, 0, g).toArray())).toEqual(Array.from(await z.toArray()));
    expect(g.offset).toBe(0n);
    const out = await nfidLatents(z, 0.3, g).toArray();
    const eps = await E.randn([2, 2, 2, 2], { generator: new E.Generator(4), backend: b }).toArray();
    const zv = await z.toArray();
    for (let i = 0; i < 16; i++) expect(out[i]).toBeCloseTo(0.7 * zv[i]! + 0.3 * eps[i]!, 12);
    expect(() => nfidLatents(z, 2, g)).toThrow(/tau must be in \[0, 1\], got 2/);
  });
});
