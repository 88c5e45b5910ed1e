/**
 * PSNR and SSIM on image batches (models/metrics/image.ts), computed with engine ops.
 *
 * Reference: test/fixtures/make_fid.py computes SSIM directly in numpy float64 (skimage and
 * torchmetrics are not installed here) with the torchmetrics / pytorch-msssim / skimage
 * (gaussian_weights, no sample-covariance correction) formula: 11x11 Gaussian window, sigma 1.5,
 * K1 = 0.01, K2 = 0.03, per channel, 'valid' (windows inside the image) and 'same' (zero padding).
 *
 * Tolerances:
 * - float64 CPU backend vs numpy: same formula, the window applied separably here and as an
 *   11x11 outer product there, so only rounding differs: 1e-10 absolute on SSIM, 1e-9 relative
 *   on PSNR.
 * - GPU (f32): the variances E[x^2] - mu^2 are differences of O(R^2) f32 numbers (121-tap sums),
 *   absolute error ~1e-7 R^2, divided by sxx + syy + C2 >= C2 = 9e-4 R^2; averaged over the map
 *   the per-image error is ~1e-7..1e-6 (observed on lavapipe: max 1.4e-6, on the R = 255 case):
 *   atol 2e-5 on SSIM. PSNR: the f32 mean of squared differences is accurate to ~1e-6 relative,
 *   i.e. ~4e-6 dB (observed 2.4e-7 dB): atol 2e-5 dB.
 * - finite differences (float64, ssim is smooth): the helper's default 1e-6 + 1e-5 relative.
 */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import * as E from '../engine/index.js';
import { gaussianWindow, msePerImage, psnr, psnrFromMse, ssim, ssimMap, ssimPerImage } from '../models/metrics/index.js';
import { requireGpu } from './helpers/backends.js';
import { expectClose, expectGradMatchesFD } from './helpers/compare.js';

const gpu = await requireGpu();
const cpu = E.cpuF64;

interface ImageCase {
  shape: [number, number, number, number];
  data_range: number;
  x: number[];
  y: number[];
  ssim_valid: number[];
  ssim_same: number[];
  psnr: (number | null)[];
}
const fixture = JSON.parse(readFileSync(new URL('./fixtures/fid.json', import.meta.url), 'utf8')) as { images: ImageCase[] };

function load(c: ImageCase, backend: E.Backend): [E.Tensor, E.Tensor] {
  return [E.tensor(c.x, c.shape, { backend }), E.tensor(c.y, c.shape, { backend })];
}
const psnrExpected = (c: ImageCase) => c.psnr.map((v) => (v === null ? Infinity : v));
const meanOf = (v: number[]) => v.reduce((s, a) => s + a, 0) / v.length;

describe('SSIM and PSNR vs numpy (float64 CPU backend)', () => {
  fixture.images.forEach((c, k) => {
    it(`case ${k}: [${c.shape.join(', ')}], data range ${c.data_range}`, async () => {
      const [x, y] = load(c, cpu);
      for (const padding of ['valid', 'same'] as const) {
        const s = await ssim(x, y, { dataRange: c.data_range, padding });
        const ref = padding === 'valid' ? c.ssim_valid : c.ssim_same;
        expectClose(s.perImage, ref, { atol: 1e-10, rtol: 0 }, `ssim ${padding}`);
        expect(s.mean).toBeCloseTo(meanOf(ref), 10);
      }
      const p = await psnr(x, y, { dataRange: c.data_range });
      expectClose(p.perImage, psnrExpected(c), { atol: 0, rtol: 1e-9 }, 'psnr');
      x.dispose();
      y.dispose();
    });
  });

  it('identical images: SSIM 1, PSNR +Infinity; SSIM is invariant to scaling images and range together', async () => {
    const c = fixture.images[0]!;
    const [x, y] = load(c, cpu);
    const s = await ssim(x, x);
    s.perImage.forEach((v) => expect(Math.abs(v - 1)).toBeLessThan(1e-12));
    expect((await psnr(x, x)).perImage.every((v) => v === Infinity)).toBe(true);
    const x255 = E.mul(x, 255);
    const y255 = E.mul(y, 255);
    const a = await ssim(x, y, { dataRange: 1 });
    const b = await ssim(x255, y255, { dataRange: 255 });
    expectClose(b.perImage, a.perImage, { atol: 1e-12, rtol: 0 }, 'scaled ssim');
    const mse = await E.readContiguous(msePerImage(x, y));
    expectClose(psnrFromMse(mse).perImage, psnrExpected(c), { atol: 0, rtol: 1e-9 }, 'psnrFromMse');
    for (const t of [x, y, x255, y255]) t.dispose();
  });

  it('window, shapes and validation', () => {
    const g = gaussianWindow(11, 1.5);
    expect(g.reduce((s, v) => s + v, 0)).toBeCloseTo(1, 14);
    expect(g[5]).toBeGreaterThan(g[4]!);
    expect(g[0]).toBeCloseTo(g[10]!, 15);
    const x = E.zeros([2, 3, 12, 14], { backend: cpu });
    expect(ssimMap(x, x).shape).toEqual([2, 3, 2, 4]);
    expect(ssimMap(x, x, { padding: 'same' }).shape).toEqual([2, 3, 12, 14]);
    expect(ssimPerImage(x, x).shape).toEqual([2]);
    const small = E.zeros([1, 1, 10, 20], { backend: cpu });
    expect(() => ssimMap(small, small)).toThrow(/10x20 are smaller than the 11x11 window/);
    expect(() => ssimMap(x, small)).toThrow(/differ in shape/);
    expect(() => ssimMap(x, x, { windowSize: 4 })).toThrow(/odd/);
    expect(() => psnrFromMse([1], 0)).toThrow(/dataRange/);
    expect(() => ssimMap(E.zeros([3, 12, 12], { backend: cpu }), E.zeros([3, 12, 12], { backend: cpu }))).toThrow(/\[N, C, H, W\]/);
  });

  it('SSIM is differentiable (gradient vs finite differences, small window)', async () => {
    const shape = [1, 2, 5, 4];
    const n = 40;
    const xs = Array.from({ length: n }, (_, i) => 0.5 + 0.4 * Math.sin(1.3 * i));
    const ys = Array.from({ length: n }, (_, i) => 0.5 + 0.4 * Math.cos(0.7 * i + 0.2));
    await expectGradMatchesFD((a, b) => ssimPerImage(a, b, { windowSize: 3, padding: 'same' }), [
      { shape, data: xs },
      { shape, data: ys },
    ]);
  });
});

describe.runIf(gpu)('SSIM and PSNR on the GPU vs numpy', () => {
  fixture.images.forEach((c, k) => {
    it(`case ${k}: [${c.shape.join(', ')}]`, async () => {
      const [x, y] = load(c, gpu!);
      for (const padding of ['valid', 'same'] as const) {
        const s = await ssim(x, y, { dataRange: c.data_range, padding });
        expectClose(s.perImage, padding === 'valid' ? c.ssim_valid : c.ssim_same, { atol: 2e-5, rtol: 0 }, `gpu ssim ${padding}`);
      }
      const p = await psnr(x, y, { dataRange: c.data_range });
      expectClose(p.perImage, psnrExpected(c), { atol: 2e-5, rtol: 0 }, 'gpu psnr');
      x.dispose();
      y.dispose();
    });
  });
});
