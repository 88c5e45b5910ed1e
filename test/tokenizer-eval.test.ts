/**
 * evaluateTokenizer on a tiny tokenizer (ch 8, K 32, d 8, 16x16 tokens for 32x32 images) and a
 * stand-in feature network (a fixed random 5x5 stride-2 conv, ReLU, 4x4 average pool -> 128-d
 * features, and a random linear head for logits), over 8 synthetic images in [-1, 1], on the GPU
 * (or the CPU backend when there is none, so the logic is always checked).
 * Checks: finite metrics in range; pFID at alpha = 0 equals rFID exactly (slot 0 is the clean
 * code and the same decoder runs on the same values); an identity "tokenizer" (reconstruction =
 * input) gives rFID ~ 0 (the FID of a feature set with itself), PSNR = +Infinity, SSIM = 1;
 * runs are reproducible with the same seed; batch-by-batch accumulation gives the same rFID as
 * one batch (to 1e-9 relative: only the float64 summation order changes); argument errors.
 */
import { describe, expect, it } from 'vitest';
import * as E from '../engine/index.js';
import { CpuBackend } from '../engine/cpu/backend.js';
import { DEFAULT_PFID_ALPHA, defaultPfidDelta, evaluateTokenizer, reconstructionGrid, VQTokenizer, type TokenizerEvalResult } from '../models/tokenizer/index.js';
import { requireGpu } from './helpers/backends.js';
import { RandomConvNet } from './helpers/random-conv-net.js';
import { expectNoLeaks } from './helpers/leak-check.js';

const gpu = await requireGpu();
const backend: E.Backend = gpu ?? new CpuBackend({ precision: 'f32' });

const CFG = { ch: 8, chMult: [1, 2], numResBlocks: 1, codebookSize: 32, codeDim: 8 };

/** Shapes with shading in [-1, 1]: n images 1x32x32. */
function images(n: number, size = 32): Float32Array {
  const out = new Float32Array(n * size * size);
  for (let k = 0; k < n; k++) {
    const cx = 16 + ((k * 5) % 7) - 3;
    const cy = 15 + ((k * 3) % 5) - 2;
    const rx = 5 + ((k * 7) % 7);
    const ry = 7 + ((k * 4) % 6);
    for (let y = 0; y < size; y++) {
      for (let x = 0; x < size; x++) {
        const e = ((x - cx) / rx) ** 2 + ((y - cy) / ry) ** 2;
        out[k * size * size + y * size + x] = e <= 1 ? -0.2 + 1.1 * (y / size) : -1;
      }
    }
  }
  return out;
}


/** Reconstructs every image exactly (recon = input), whatever the perturbation. */
class IdentityTokenizer extends VQTokenizer {
  override forward(x: E.Tensor, o: Parameters<VQTokenizer['forward']>[1] = {}): ReturnType<VQTokenizer['forward']> {
    const out = super.forward(x, o);
    return { ...out, recon: x.add(0) };
  }
  override reconstruct(x: E.Tensor): E.Tensor {
    return E.noGrad(() => x.add(0));
  }
}

function tokenizer(): VQTokenizer {
  return new VQTokenizer(CFG, { backend, generator: new E.Generator(0) });
}

function expectFinite(r: TokenizerEvalResult): void {
  for (const v of [r.rfid, r.psnr, r.ssim, r.usage, r.perplexity, ...r.pfid.map((p) => p.fid)]) expect(Number.isFinite(v)).toBe(true);
}

describe(`evaluateTokenizer (${gpu ? 'GPU' : 'CPU'})`, () => {
  const N = 8;
  const data = images(N);

  it('metrics are finite and in range; pFID at alpha 0 equals rFID exactly; the default grid', async () => {
    const model = tokenizer();
    const net = new RandomConvNet(backend);
    const x = E.tensor(data, [N, 1, 32, 32], { backend });
    const live0 = E.memoryStats().liveTensors;
    const r = await evaluateTokenizer(model, net, [x], { alphas: [0, 0.5, 1], delta: 4, seed: 7 });
    expect(E.memoryStats().liveTensors).toBe(live0); // nothing leaks per batch
    expectFinite(r);
    expect(r.count).toBe(N);
    expect(r.featureDim).toBe(128);
    expect(r.pfid.map((p) => p.alpha)).toEqual([0, DEFAULT_PFID_ALPHA, 0.5, 1]); // the default alpha is added
    expect(r.pfidDefault.alpha).toBe(DEFAULT_PFID_ALPHA);
    expect(r.pfid.every((p) => p.delta === 4)).toBe(true);
    expect(r.pfid[0]!.fid).toBe(r.rfid);
    expect(r.rfid).toBeGreaterThan(0); // an untrained tokenizer does not reconstruct
    expect(r.pfid[3]!.fid).not.toBe(r.rfid); // alpha = 1 with delta 4 changes about 3/4 of the tokens
    expect(r.psnr).toBeGreaterThan(0);
    expect(r.psnr).toBeLessThan(60);
    expect(r.ssim).toBeGreaterThanOrEqual(-1);
    expect(r.ssim).toBeLessThan(1);
    expect(r.ssimPadding).toBe('valid');
    expect(r.usage).toBeGreaterThan(0);
    expect(r.usage).toBeLessThanOrEqual(100);
    expect(r.usage).toBeCloseTo((100 * r.usedCodes) / 32, 12);
    expect(r.perplexity).toBeGreaterThanOrEqual(1);
    expect(r.perplexity).toBeLessThanOrEqual(r.usedCodes + 1e-9);
    expect(r.inceptionScore!.real.mean).toBeGreaterThanOrEqual(1);
    expect(r.inceptionScore!.recon.mean).toBeLessThanOrEqual(10);
    expect(model.training).toBe(true); // mode restored

    // Same seed: identical numbers; another seed: same rFID, different pFID at alpha > 0.
    const again = await evaluateTokenizer(model, net, [x], { alphas: [0, 0.5, 1], delta: 4, seed: 7 });
    expect(again).toEqual(r);
    const other = await evaluateTokenizer(model, net, [x], { alphas: [1], delta: 4, seed: 8 });
    expect(other.rfid).toBe(r.rfid);
    expect(other.pfid.find((p) => p.alpha === 1)!.fid).not.toBe(r.pfid[3]!.fid);

    // Default grid and delta.
    const d = await evaluateTokenizer(model, net, [x]);
    expect(d.pfid.map((p) => p.alpha)).toEqual([0.1, 0.3, 0.5]);
    expect(d.pfid[0]!.delta).toBe(defaultPfidDelta(32));
    expect(defaultPfidDelta(4096)).toBe(100);
    x.dispose();
    net.dispose();
    model.dispose();
  }, 120_000);

  it('batch-by-batch accumulation matches one batch (rFID, PSNR, SSIM, usage)', async () => {
    const model = tokenizer();
    const net = new RandomConvNet(backend);
    const x = E.tensor(data, [N, 1, 32, 32], { backend });
    const one = await evaluateTokenizer(model, net, [x], { alphas: [0.5], delta: 4 });
    const parts = [x.slice([[0, 3]]), x.slice([[3, 8]])];
    let seen = 0;
    async function* gen() {
      for (const p of parts) yield p;
    }
    const two = await evaluateTokenizer(model, net, gen(), { alphas: [0.5], delta: 4, onBatch: (n) => (seen = n) });
    expect(seen).toBe(N);
    expect(two.count).toBe(N);
    expect(Math.abs(two.rfid - one.rfid)).toBeLessThanOrEqual(1e-9 * Math.max(1, one.rfid));
    expect(two.psnr).toBeCloseTo(one.psnr, 9);
    expect(two.ssim).toBeCloseTo(one.ssim, 9);
    expect(two.usedCodes).toBe(one.usedCodes);
    expect(two.perplexity).toBeCloseTo(one.perplexity, 12);
    for (const p of parts) p.dispose();
    x.dispose();
    net.dispose();
    model.dispose();
  }, 120_000);

  it('an identity reconstruction gives rFID = pFID ~ 0, PSNR +Infinity, SSIM 1', async () => {
    const model = new IdentityTokenizer(CFG, { backend, generator: new E.Generator(0) });
    const net = new RandomConvNet(backend);
    const x = E.tensor(data, [N, 1, 32, 32], { backend });
    const r = await evaluateTokenizer(model, net, [x], { alphas: [0.5], delta: 4 });
    // FID of a feature set with itself: exactly 0 up to float64 rounding of the trace terms.
    const scale = r.featureDim; // features are O(1)
    expect(Math.abs(r.rfid)).toBeLessThan(1e-9 * scale);
    expect(Math.abs(r.pfid[0]!.fid)).toBeLessThan(1e-9 * scale);
    expect(r.psnr).toBe(Infinity);
    expect(r.ssim).toBeCloseTo(1, 6);
    x.dispose();
    net.dispose();
    model.dispose();
  }, 120_000);

  it('reconstruction grid: originals, clean, then one row per alpha', async () => {
    const model = tokenizer();
    const x = E.tensor(data.subarray(0, 4 * 1024), [4, 1, 32, 32], { backend });
    const g = await expectNoLeaks(() => reconstructionGrid(model, x, { alphas: [0, 1], delta: 4 }), 'grid');
    expect(g.shape).toEqual([16, 1, 32, 32]);
    const v = await g.toArray();
    const xs = await x.toArray();
    expect(Array.from(v.subarray(0, 4096))).toEqual(Array.from(xs)); // first row: the originals
    expect(Array.from(v.subarray(4096, 8192))).toEqual(Array.from(v.subarray(8192, 12288))); // alpha 0 = clean
    expect(Math.min(...v)).toBeGreaterThanOrEqual(-1);
    expect(Math.max(...v)).toBeLessThanOrEqual(1);
    g.dispose();
    x.dispose();
    model.dispose();
  }, 120_000);

  it('rejects bad arguments', async () => {
    const model = tokenizer();
    const net = new RandomConvNet(backend);
    const x = E.tensor(data, [N, 1, 32, 32], { backend });
    await expect(evaluateTokenizer(model, net, [x], { alphas: [1.5] })).rejects.toThrow(/alpha must be in \[0, 1\], got 1.5/);
    await expect(evaluateTokenizer(model, net, [x], { delta: 33 })).rejects.toThrow(/delta must be an integer in \[1, K = 32\], got 33/);
    await expect(evaluateTokenizer(model, net, [x.slice([[0, 1]])])).rejects.toThrow(/at least 2 images, got 1/);
    await expect(evaluateTokenizer(model, net, [x.reshape([N, 32, 32])])).rejects.toThrow(/expected image batches \[B, C, H, W\]/);
    x.dispose();
    net.dispose();
    model.dispose();
  }, 120_000);
});
