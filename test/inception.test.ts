/**
 * pytorch-fid's FID Inception-v3 (models/features/inception.ts) against a PyTorch reference built
 * by test/fixtures/make_inception.py with seeded random weights (the real weights cannot be
 * downloaded here):
 * - a 1/16-width network (same topology, every channel count / 16, 128-d features) with its weights
 *   (named like pytorch-fid's state dict, with the fc.* and num_batches_tracked entries a converted
 *   .pth has) and the features of two 37x45 images, computed by PyTorch in float64;
 * - the (name, shape) list of the full-width state dict.
 * The script's network was itself checked against torchvision's Inception3 with pytorch-fid's FID
 * block classes (its crosscheck_torchvision(): strict state-dict load, identical features).
 *
 * Tolerances
 * - CPU float64 vs PyTorch float64: atol 1e-9 + rtol 1e-9. Same maths in the same precision; the
 *   difference is summation order over ~95 convolutions (measured ~1e-13 on features of size ~0.4).
 * - GPU (f32) vs the float64 reference: atol 3e-4 + rtol 1e-3. f32 rounding (~6e-8 relative)
 *   accumulates over the resize and ~95 conv + folded-BN layers (BN scales gamma/sqrt(var) re-amplify
 *   it at every layer); features are O(0.03..1.1). Measured on lavapipe: max abs error 3.6e-5, max
 *   relative 1.2e-4, so the tolerance has ~8x margin. A wrong architecture is far outside it: the
 *   mutation test (average pools counting padding in Mixed_5b..d) moves features by up to 0.53 and
 *   puts 239 of the 256 features outside this tolerance.
 * - Small ops (resize matrices, exclude-pad pooling) vs independent naive loops: 1e-12 on CPU
 *   float64; GPU f32 1e-5 (a few roundings of O(1) values).
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { cpuF64, Generator, gradients, memoryStats, noGrad, randn, tensor, tidy, type Backend, type Tensor } from '../engine/index.js';
import { decodeSafetensors, entriesToTensors } from '../nn/checkpoint/index.js';
import { avgPool2dExcludePad, bilinearMatrix, fidInceptionKey, InceptionV3, loadFidInceptionWeights, resizeBilinear } from '../models/features/inception.js';
import { requireGpu } from './helpers/backends.js';
import { expectClose, expectGradMatchesFD } from './helpers/compare.js';
import { expectNoLeaks } from './helpers/leak-check.js';

const FIX = join(import.meta.dirname, 'fixtures');
const gpu = await requireGpu();
const WEIGHTS = readFileSync(join(FIX, 'inception_w16.safetensors'));
const IO = decodeSafetensors(readFileSync(join(FIX, 'inception_w16_io.safetensors'))).tensors;
const NAMES = JSON.parse(readFileSync(join(FIX, 'inception_names.json'), 'utf8')) as { entries: [string, number[]][] };

function ioTensor(name: 'input' | 'expected', backend: Backend): Tensor {
  const d = IO[name]!;
  return tensor(d.data, d.shape, { backend });
}

/** Naive bilinear resize, align_corners=False, one output pixel at a time. */
function naiveResize(x: Float64Array, N: number, C: number, H: number, W: number, Ho: number, Wo: number): Float64Array {
  const out = new Float64Array(N * C * Ho * Wo);
  const src = (o: number, inS: number, outS: number) => {
    const s = Math.max((o + 0.5) * (inS / outS) - 0.5, 0);
    const i0 = Math.min(Math.floor(s), inS - 1);
    return [i0, Math.min(i0 + 1, inS - 1), s - i0] as const;
  };
  for (let nc = 0; nc < N * C; nc++) {
    for (let i = 0; i < Ho; i++) {
      const [y0, y1, ly] = src(i, H, Ho);
      for (let j = 0; j < Wo; j++) {
        const [x0, x1, lx] = src(j, W, Wo);
        const at = (y: number, xx: number) => x[nc * H * W + y * W + xx]!;
        out[nc * Ho * Wo + i * Wo + j] = (1 - ly) * ((1 - lx) * at(y0, x0) + lx * at(y0, x1)) + ly * ((1 - lx) * at(y1, x0) + lx * at(y1, x1));
      }
    }
  }
  return out;
}

/** Naive average pooling over the in-image taps only (count_include_pad=False). */
function naiveAvgExclude(x: Float64Array, N: number, C: number, H: number, W: number, k: number, s: number, p: number): { data: Float64Array; Ho: number; Wo: number } {
  const Ho = Math.floor((H + 2 * p - k) / s) + 1;
  const Wo = Math.floor((W + 2 * p - k) / s) + 1;
  const out = new Float64Array(N * C * Ho * Wo);
  for (let nc = 0; nc < N * C; nc++) {
    for (let i = 0; i < Ho; i++) {
      for (let j = 0; j < Wo; j++) {
        let sum = 0;
        let n = 0;
        for (let a = 0; a < k; a++) {
          for (let b = 0; b < k; b++) {
            const y = i * s - p + a;
            const xx = j * s - p + b;
            if (y < 0 || y >= H || xx < 0 || xx >= W) continue;
            sum += x[nc * H * W + y * W + xx]!;
            n++;
          }
        }
        out[nc * Ho * Wo + i * Wo + j] = sum / n;
      }
    }
  }
  return { data: out, Ho, Wo };
}

const randData = (n: number, seed: number) => {
  let s = seed >>> 0;
  return Float64Array.from({ length: n }, () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return Math.fround(s / 2 ** 32);
  });
};

describe('ops used by the FID Inception', () => {
  it('bilinearMatrix: rows sum to 1; identity at equal sizes; x2 downsampling averages pairs', () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 40 }), fc.integer({ min: 1, max: 40 }), (o, i) => {
        const m = bilinearMatrix(o, i);
        for (let r = 0; r < o; r++) {
          let s = 0;
          for (let c = 0; c < i; c++) {
            expect(m[r * i + c]).toBeGreaterThanOrEqual(0);
            s += m[r * i + c]!;
          }
          expect(Math.abs(s - 1)).toBeLessThan(1e-12);
        }
      }),
    );
    const id = bilinearMatrix(5, 5);
    for (let r = 0; r < 5; r++) for (let c = 0; c < 5; c++) expect(id[r * 5 + c]).toBe(r === c ? 1 : 0);
    const half = bilinearMatrix(3, 6);
    expect(Array.from(half)).toEqual([0.5, 0.5, 0, 0, 0, 0, 0, 0, 0.5, 0.5, 0, 0, 0, 0, 0, 0, 0.5, 0.5]);
  });

  it('resizeBilinear matches a naive per-pixel resize (CPU float64), up and down, non-square', async () => {
    for (const [N, C, H, W, Ho, Wo] of [
      [2, 3, 7, 5, 13, 11],
      [1, 1, 9, 12, 4, 3],
      [1, 2, 1, 6, 3, 2],
      [2, 1, 4, 4, 4, 9],
    ] as const) {
      const data = randData(N * C * H * W, H * 31 + W);
      const x = tensor(data, [N, C, H, W], { backend: cpuF64 });
      const y = resizeBilinear(x, Ho, Wo);
      expect(y.shape).toEqual([N, C, Ho, Wo]);
      expectClose(await y.toArray(), naiveResize(data, N, C, H, W, Ho, Wo), { atol: 1e-12, rtol: 1e-12 }, `resize ${H}x${W}->${Ho}x${Wo}`);
      x.dispose();
      y.dispose();
    }
  });

  it('avgPool2dExcludePad matches a naive count_include_pad=False pool (CPU float64)', async () => {
    for (const [N, C, H, W, k, s, p] of [
      [2, 3, 5, 7, 3, 1, 1],
      [1, 2, 6, 6, 3, 2, 1],
      [1, 1, 1, 1, 3, 1, 1],
      [1, 2, 8, 5, 5, 3, 2],
      [1, 1, 4, 4, 2, 2, 0],
    ] as const) {
      const data = randData(N * C * H * W, k * 100 + H);
      const x = tensor(data, [N, C, H, W], { backend: cpuF64 });
      const y = avgPool2dExcludePad(x, k, { stride: s, padding: p });
      const ref = naiveAvgExclude(data, N, C, H, W, k, s, p);
      expect(y.shape).toEqual([N, C, ref.Ho, ref.Wo]);
      expectClose(await y.toArray(), ref.data, { atol: 1e-12, rtol: 1e-12 }, `avg k${k} s${s} p${p}`);
      x.dispose();
      y.dispose();
    }
  });

  it('gradients of resizeBilinear and avgPool2dExcludePad match finite differences (CPU float64)', async () => {
    const x = { shape: [1, 2, 4, 5], data: Array.from(randData(40, 3)) };
    await expectGradMatchesFD((t) => resizeBilinear(t, 7, 3), [x]);
    await expectGradMatchesFD((t) => avgPool2dExcludePad(t, 3, { stride: 2, padding: 1 }), [x]);
  });

  describe.runIf(gpu)('on the GPU', () => {
    it('resizeBilinear and avgPool2dExcludePad match the naive references', async () => {
      const g = gpu!;
      const [N, C, H, W] = [2, 3, 37, 45];
      const data = randData(N * C * H * W, 5);
      const x = tensor(data, [N, C, H, W], { backend: g });
      const y = resizeBilinear(x, 299, 299);
      expectClose(await y.toArray(), naiveResize(data, N, C, H, W, 299, 299), { atol: 1e-5, rtol: 1e-5 }, 'gpu resize');
      const p = avgPool2dExcludePad(x, 3, { stride: 1, padding: 1 });
      expectClose(await p.toArray(), naiveAvgExclude(data, N, C, H, W, 3, 1, 1).data, { atol: 1e-5, rtol: 1e-5 }, 'gpu avg exclude pad');
      for (const t of [x, y, p]) t.dispose();
    });
  });
});

describe('FID Inception-v3 (pytorch-fid) vs PyTorch, 1/16 width, seeded random weights', () => {
  const TIGHT = { atol: 1e-9, rtol: 1e-9 };
  const GPU_TOL = { atol: 3e-4, rtol: 1e-3 };

  it('CPU float64: features of two images match PyTorch; [-1,1] input gives the same', async () => {
    const model = InceptionV3.fromSafetensors(WEIGHTS, { backend: cpuF64 });
    expect(model.widthDivisor).toBe(16);
    expect(model.featureDim).toBe(128);
    const x = ioTensor('input', cpuF64);
    const f = model.features(x);
    expect(f.shape).toEqual([2, 128]);
    const expected = IO.expected!.data;
    expectClose(await f.toArray(), expected, TIGHT, 'features');

    const model2 = InceptionV3.fromSafetensors(WEIGHTS, { backend: cpuF64, inputRange: '-1,1' });
    const xm = noGrad(() => x.mul(2).sub(1));
    const f2 = model2.features(xm);
    expectClose(await f2.toArray(), expected, { atol: 1e-9, rtol: 1e-9 }, 'features from [-1,1] input');
    for (const t of [x, f, xm, f2]) t.dispose();
    model.dispose();
    model2.dispose();
  });

  it('a batch split into chunks (maxBatch) gives the same features', async () => {
    const model = InceptionV3.fromSafetensors(WEIGHTS, { backend: cpuF64, maxBatch: 1 });
    expect(model.batchChunk(ioTensor('input', cpuF64))).toBe(1);
    const x = ioTensor('input', cpuF64);
    const f = model.features(x);
    expect(f.shape).toEqual([2, 128]);
    expectClose(await f.toArray(), IO.expected!.data, TIGHT, 'chunked features');
    // Default chunking on a device with a 128 MiB binding limit: 5 full-width 299x299 images.
    const full = new InceptionV3({ backend: cpuF64 });
    expect(full.batchChunk(x)).toBe(5);
    for (const t of [x, f]) t.dispose();
    model.dispose();
    full.dispose();
  });

  it('features() frees every intermediate (live tensor count unchanged after disposing the result)', async () => {
    const model = InceptionV3.fromSafetensors(WEIGHTS, { backend: cpuF64, maxBatch: 1 });
    const x = ioTensor('input', cpuF64);
    const before = memoryStats().liveTensors;
    const f = model.features(x);
    expect(memoryStats().liveTensors).toBe(before + 1);
    f.dispose();
    expect(memoryStats().liveTensors).toBe(before);
    x.dispose();
    model.dispose();
  });

  it('leak check: chunked features without recording, and a recorded forward with its backward inside a tidy', async () => {
    const model = InceptionV3.fromSafetensors(WEIGHTS, { backend: cpuF64, resizeInput: false, maxBatch: 1 });
    const x = tensor(randData(2 * 3 * 75 * 75, 21), [2, 3, 75, 75], { backend: cpuF64 });
    (await expectNoLeaks(() => model.features(x), 'features')).dispose();
    const g = await expectNoLeaks(() => tidy(() => {
      const xi = x.detach().requireGrad();
      return gradients(model.forward(xi).sum(), [xi])[0]!;
    }), 'gradient w.r.t. the input');
    g.dispose();
    x.dispose();
    model.dispose();
  });

  it('is differentiable w.r.t. the input: directional derivative matches central differences (CPU float64)', async () => {
    // 75x75 input without the resize keeps it cheap; the resize's own gradient is checked above.
    const model = InceptionV3.fromSafetensors(WEIGHTS, { backend: cpuF64, resizeInput: false });
    const n = 3 * 75 * 75;
    const x0 = randData(n, 17);
    const v = Float64Array.from(randData(n, 18), (t) => t - 0.5);
    const w = Float64Array.from({ length: 128 }, (_, i) => Math.sin(1.3 * i) + 0.2);
    const objective = (x: Tensor) => model.forward(x).mul(tensor(w, [1, 128], { backend: cpuF64 })).sum();
    const analytic = await tidy(() => {
      const x = tensor(x0, [1, 3, 75, 75], { backend: cpuF64 }).requireGrad();
      const [g] = gradients(objective(x), [x]);
      return g!;
    }).toArray();
    let dirAnalytic = 0;
    for (let i = 0; i < n; i++) dirAnalytic += analytic[i]! * v[i]!;
    const at = async (eps: number) => {
      const y = noGrad(() => tidy(() => objective(tensor(x0.map((t, i) => t + eps * v[i]!), [1, 3, 75, 75], { backend: cpuF64 }))));
      const r = await y.item();
      y.dispose();
      return r;
    };
    const eps = 1e-6;
    const fd = ((await at(eps)) - (await at(-eps))) / (2 * eps);
    // Central differences in float64 with eps 1e-6: truncation + rounding ~1e-8 relative, unless a
    // ReLU or max-pool kink falls within eps (probability ~1e-6 per unit); 1e-5 relative leaves room.
    expect(Math.abs(dirAnalytic)).toBeGreaterThan(1e-3);
    expect(Math.abs(dirAnalytic - fd)).toBeLessThan(1e-5 * Math.abs(fd) + 1e-9);
    model.dispose();
  });

  it('a single-channel image is repeated to three channels', async () => {
    const model = InceptionV3.fromSafetensors(WEIGHTS, { backend: cpuF64 });
    const data = randData(1 * 1 * 20 * 24, 9);
    const x1 = tensor(data, [1, 1, 20, 24], { backend: cpuF64 });
    const x3 = tensor(Float64Array.from([...data, ...data, ...data]), [1, 3, 20, 24], { backend: cpuF64 });
    const [a, b] = [model.features(x1), model.features(x3)];
    expectClose(await a.toArray(), await b.toArray(), { atol: 0, rtol: 0 }, 'gray vs rgb');
    for (const t of [x1, x3, a, b]) t.dispose();
    model.dispose();
  });

  it('the reference detects architecture changes (mutation: count_include_pad=True in the Mixed_5b..d pools)', async () => {
    // Guards the tolerance argument above: swapping the exclude-pad pool for the engine's
    // include-pad one puts most features outside the GPU tolerance.
    const model = InceptionV3.fromSafetensors(WEIGHTS, { backend: cpuF64 });
    const x = ioTensor('input', cpuF64);
    const mod = await import('../models/features/inception.js');
    const orig = mod.FIDInceptionA.prototype.forward;
    const { avgPool2d, concat } = await import('../engine/index.js');
    mod.FIDInceptionA.prototype.forward = function (this: InstanceType<typeof mod.FIDInceptionA>, t: Tensor) {
      const b1 = this.branch1x1.forward(t);
      const b5 = this.branch5x5_2.forward(this.branch5x5_1.forward(t));
      const b3 = this.branch3x3dbl_3.forward(this.branch3x3dbl_2.forward(this.branch3x3dbl_1.forward(t)));
      const bp = this.branch_pool.forward(avgPool2d(t, 3, { stride: 1, padding: 1 }));
      return concat([b1, b5, b3, bp], 1);
    };
    try {
      const f = await model.features(x).toArray();
      const e = IO.expected!.data;
      let outside = 0;
      for (let i = 0; i < e.length; i++) if (Math.abs(f[i]! - e[i]!) > GPU_TOL.atol + GPU_TOL.rtol * Math.abs(e[i]!)) outside++;
      expect(outside).toBeGreaterThan(e.length / 2);
    } finally {
      mod.FIDInceptionA.prototype.forward = orig;
      x.dispose();
      model.dispose();
    }
  });

  describe.runIf(gpu)('on the GPU', () => {
    it('GPU f32 features match the float64 PyTorch reference', async () => {
      const g = gpu!;
      const model = InceptionV3.fromSafetensors(WEIGHTS, { backend: g });
      const x = ioTensor('input', g);
      const f = model.features(x);
      expectClose(await f.toArray(), IO.expected!.data, GPU_TOL, 'gpu features');
      x.dispose();
      f.dispose();
      model.dispose();
    });
  });
});

describe('FID Inception-v3 state dict and loading', () => {
  it('full width: every (name, shape) of pytorch-fid state dict except fc.* and num_batches_tracked', () => {
    const model = new InceptionV3({ backend: cpuF64 });
    const ours = Object.entries(model.stateDict()).map(([k, t]) => [k, [...t.shape]] as [string, number[]]);
    const theirs = NAMES.entries.filter(([k]) => !k.startsWith('fc.') && !k.endsWith('.num_batches_tracked'));
    expect(theirs.length).toBe(94 * 5); // 94 BasicConv2d: conv.weight + bn.{weight,bias,running_mean,running_var}
    expect(new Map(ours)).toEqual(new Map(theirs));
    expect(model.featureDim).toBe(2048);
    // Parameters (conv + BN affine) match PyTorch's count minus the fc layer.
    const fcParams = 1008 * 2048 + 1008;
    const bnBuffers = theirs.filter(([k]) => k.endsWith('running_mean') || k.endsWith('running_var')).reduce((n, [, s]) => n + s[0]!, 0);
    expect(model.numParameters()).toBe(23850960 - fcParams);
    expect(bnBuffers).toBeGreaterThan(0);
    model.dispose();
  });

  // Full width at 75x75 (Inception's smallest input, resizeInput off) keeps the CPU pass to a few
  // seconds; the 299x299 pass takes ~40 s per image on the CPU, ~5 s on lavapipe (GPU block below).
  // Convs get He-normal weights (std sqrt(2/fan_in)) so activations stay O(1) through the identity
  // BatchNorms (PyTorch's default conv init would shrink the features to ~1e-8).
  async function fullWidthModel(backend: Backend): Promise<InceptionV3> {
    const model = new InceptionV3({ backend, resizeInput: false });
    const gen = new Generator(11);
    const state: Record<string, Tensor> = {};
    for (const [k, t] of Object.entries(model.stateDict())) {
      if (!k.endsWith('conv.weight')) continue;
      const w = randn(t.shape, { backend: cpuF64, generator: gen, std: Math.sqrt(2 / (t.size / t.shape[0]!)) });
      state[k] = backend === cpuF64 ? w : tensor(await w.toArray(), [...t.shape], { backend });
      if (state[k] !== w) w.dispose();
    }
    model.loadStateDict(state, false);
    for (const t of Object.values(state)) t.dispose();
    return model;
  }
  const img75 = () => Float64Array.from(randData(3 * 75 * 75, 21), (v) => 2 * v - 1);
  let cpu75: Promise<Float32Array | Float64Array | Int32Array> | null = null;
  /** Full-width CPU float64 features of the 75x75 image (computed once, ~10 s). */
  const cpuFull75 = () =>
    (cpu75 ??= (async () => {
      const model = await fullWidthModel(cpuF64);
      const x = tensor(img75(), [1, 3, 75, 75], { backend: cpuF64 });
      const f = model.features(x);
      expect(f.shape).toEqual([1, 2048]);
      const a = await f.toArray();
      x.dispose();
      f.dispose();
      model.dispose();
      return a;
    })());

  it('full width: a forward pass on one 75x75 image gives [1, 2048] finite, non-negative, varied features (CPU float64)', async () => {
    const a = await cpuFull75();
    expect(a.length).toBe(2048);
    expect(a.every((v) => Number.isFinite(v) && v >= 0)).toBe(true);
    let mean = 0;
    for (const v of a) mean += v / a.length;
    expect(mean).toBeGreaterThan(0.01);
    expect(new Set(a).size).toBeGreaterThan(1000);
  });

  describe.runIf(gpu)('on the GPU', () => {
    it('full width: GPU matches CPU float64 at 75x75, and a 299x299-resized forward gives [1, 2048]', async () => {
      const g = gpu!;
      const mg = await fullWidthModel(g);
      const xg = tensor(img75(), [1, 3, 75, 75], { backend: g });
      const fg = mg.features(xg);
      const ref = await cpuFull75();
      const scale = Math.max(...Array.from(ref, Math.abs));
      // f32 vs f64 through ~95 layers with up to 2048 input channels: errors ~1e-5 of the largest feature.
      const got = await fg.toArray();
      expectClose(got, ref, { atol: 1e-3 * scale, rtol: 1e-3 }, 'full-width gpu vs cpu');
      const resized = new InceptionV3({ backend: g });
      resized.loadStateDict(mg.stateDict());
      const x299 = tensor(randData(1 * 3 * 40 * 40, 4), [1, 3, 40, 40], { backend: g });
      const f299 = resized.features(x299);
      expect(f299.shape).toEqual([1, 2048]);
      expect((await f299.toArray()).every((v) => Number.isFinite(v) && v >= 0)).toBe(true);
      for (const t of [xg, fg, x299, f299]) t.dispose();
      for (const m of [mg, resized]) m.dispose();
    });
  });

  it('loading refuses a missing or mis-shaped weight (naming it) and ignores fc.* / num_batches_tracked', () => {
    const decoded = decodeSafetensors(WEIGHTS).tensors;
    expect(Object.keys(decoded)).toContain('fc.weight');
    expect(Object.keys(decoded)).toContain('Mixed_7c.branch_pool.bn.num_batches_tracked');
    const state = entriesToTensors(decoded, cpuF64);
    const model = new InceptionV3({ backend: cpuF64, widthDivisor: 16 });
    expect(() => loadFidInceptionWeights(model, state)).not.toThrow();
    const { 'Mixed_6b.branch7x7_2.conv.weight': dropped, ...missing } = state;
    expect(dropped).toBeDefined();
    expect(() => loadFidInceptionWeights(model, missing)).toThrow(/missing keys: Mixed_6b\.branch7x7_2\.conv\.weight/);
    const wide = new InceptionV3({ backend: cpuF64, widthDivisor: 8 });
    expect(() => loadFidInceptionWeights(wide, state)).toThrow(/Conv2d_1a_3x3\.conv\.weight': expected shape \[4, 3, 3, 3\], got \[2, 3, 3, 3\]/);
    for (const t of Object.values(state)) t.dispose();
    model.dispose();
    wide.dispose();
  });

  it("accepts the key names of pytorch-fid's InceptionV3 wrapper (blocks.i.j.*) with the same result", async () => {
    expect(fidInceptionKey('blocks.0.0.conv.weight')).toBe('Conv2d_1a_3x3.conv.weight');
    expect(fidInceptionKey('blocks.1.1.bn.running_var')).toBe('Conv2d_4a_3x3.bn.running_var');
    expect(fidInceptionKey('blocks.2.3.branch3x3.conv.weight')).toBe('Mixed_6a.branch3x3.conv.weight');
    expect(fidInceptionKey('blocks.3.2.branch_pool.bn.bias')).toBe('Mixed_7c.branch_pool.bn.bias');
    expect(fidInceptionKey('blocks.4.0.x')).toBe('blocks.4.0.x');
    const inv = new Map<string, string>();
    for (let i = 0; i < 4; i++) for (let j = 0; j < 8; j++) inv.set(fidInceptionKey(`blocks.${i}.${j}.`).slice(0, -1), `blocks.${i}.${j}`);
    const decoded = decodeSafetensors(WEIGHTS).tensors;
    const renamed = Object.fromEntries(
      Object.entries(decoded)
        .filter(([k]) => !k.startsWith('fc.'))
        .map(([k, t]) => {
          const [head, ...rest] = k.split('.');
          return [`${inv.get(head!) ?? head}.${rest.join('.')}`, t];
        }),
    );
    expect(Object.keys(renamed)).toContain('blocks.2.7.branch7x7dbl_5.conv.weight');
    const { encodeSafetensors } = await import('../nn/checkpoint/index.js');
    const bytes = encodeSafetensors(Object.fromEntries(Object.entries(renamed).map(([k, t]) => [k, { dtype: t.dtype, shape: t.shape, data: t.data }])));
    const model = InceptionV3.fromSafetensors(bytes, { backend: cpuF64 });
    const x = ioTensor('input', cpuF64);
    const f = model.features(x);
    expectClose(await f.toArray(), IO.expected!.data, { atol: 1e-9, rtol: 1e-9 }, 'features via wrapper names');
    x.dispose();
    f.dispose();
    model.dispose();
  });

  it('validates options and inputs', () => {
    expect(() => new InceptionV3({ widthDivisor: 3, backend: cpuF64 })).toThrow(/widthDivisor/);
    expect(() => new InceptionV3({ widthDivisor: 32, backend: cpuF64 })).toThrow(/widthDivisor/);
    const model = new InceptionV3({ backend: cpuF64, widthDivisor: 16 });
    const x = tensor(new Float64Array(2 * 2 * 8 * 8), [2, 2, 8, 8], { backend: cpuF64 });
    expect(() => model.features(x)).toThrow(/3 \(or 1\) input channels.*\[2, 2, 8, 8\]/);
    expect(() => InceptionV3.fromSafetensors(new Uint8Array(16))).toThrow();
    x.dispose();
    model.dispose();
  });
});
