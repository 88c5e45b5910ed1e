/**
 * The continuous (KL) tokenizer: the KL term against its closed form, gradients of the whole loss
 * against central differences (float64 CPU), the noise-augmented decoding's schedule and reach,
 * the latent statistics (normalize / denormalize, measured moments), and a tiny KL tokenizer that
 * overfits four images on the GPU.
 * Tolerances: the KL check is float64 vs float64 on the same formula (1e-12 relative); central
 * differences with h = 1e-5 in float64 err by ~h^2 * f''' + 1e-16 / h ~ 1e-10, so 1e-6 is safe.
 */
import { describe, expect, it } from 'vitest';
import * as E from '../engine/index.js';
import { AdamW } from '../nn/index.js';
import {
  annealedLatentNoise,
  gaussianPosterior,
  klDivergence,
  LatentMoments,
  LOGVAR_MAX,
  LOGVAR_MIN,
  measureLatentStats,
  noiseLatents,
  resolveLatentNoise,
  tokenizerTrainStep,
  VQTokenizer,
  type TokenizerConfig,
} from '../models/tokenizer/index.js';
import { requireGpu } from './helpers/backends.js';
import { meanImageMse, silhouettes32 } from './helpers/silhouettes.js';
import { expectClose } from './helpers/compare.js';
import { uniformValues } from './helpers/prng.js';
import { expectNoLeaks } from './helpers/leak-check.js';

const cpu = E.cpuF64;
const gpu = await requireGpu();
const TINY: Partial<TokenizerConfig> = { quantizer: 'kl', ch: 4, chMult: [1, 2], numResBlocks: 1, codeDim: 2, normGroups: 2 };

describe('KL bottleneck', () => {
  it('KL equals 0.5 * sum(mu^2 + sigma^2 - 1 - log sigma^2) / B, with log-variance clamped to [-30, 20]', async () => {
    const B = 3;
    const T = 5;
    const C = 2;
    const raw = uniformValues(B * T * 2 * C, 7, -4, 4);
    // Put a few log-variances outside the clamp range.
    raw[C] = -45;
    raw[C + 1] = 31;
    const moments = E.tensor(raw, [B, T, 2 * C], { backend: cpu });
    const post = gaussianPosterior(moments);
    let expected = 0;
    for (let b = 0; b < B; b++) {
      for (let t = 0; t < T; t++) {
        for (let c = 0; c < C; c++) {
          const o = (b * T + t) * 2 * C;
          const mu = raw[o + c]!;
          const lv = Math.min(LOGVAR_MAX, Math.max(LOGVAR_MIN, raw[o + C + c]!));
          expected += 0.5 * (mu * mu + Math.exp(lv) - 1 - lv);
        }
      }
    }
    expected /= B;
    const kl = await klDivergence(post).item();
    expect(Math.abs(kl - expected)).toBeLessThan(1e-12 * Math.abs(expected));
    const lv = await post.logvar.toArray();
    expect(lv[0]).toBe(LOGVAR_MIN);
    expect(lv[1]).toBe(LOGVAR_MAX);
    // KL of the prior itself is 0.
    const prior = gaussianPosterior(E.zeros([2, 4, 2 * C], { backend: cpu }));
    expect(await klDivergence(prior).item()).toBe(0);
  });

  it('a KL tokenizer has 2C encoder outputs, latent_stats buffers and no codebook', () => {
    const m = new VQTokenizer(TINY, { backend: cpu, generator: new E.Generator(0) });
    const names = Object.keys(m.stateDict());
    expect(names).toContain('latent_stats.mean');
    expect(names).toContain('latent_stats.std');
    expect(names.some((n) => n.startsWith('quantize'))).toBe(false);
    expect([...m.stateDict()['encoder.conv_out.weight']!.shape]).toEqual([4, 8, 1, 1]);
    expect([...m.stateDict()['decoder.conv_in.weight']!.shape]).toEqual([8, 2, 3, 3]);
    expect(() => m.vq).toThrow(/continuous \(KL\) tokenizer/);
    expect(() => m.encode(E.zeros([1, 1, 8, 8], { backend: cpu }))).toThrow(/no codebook/);
    const vq = new VQTokenizer({ ...TINY, quantizer: 'vq', codebookSize: 8 }, { backend: cpu });
    expect(() => vq.latentStats).toThrow(/VQ tokenizer/);
    m.dispose();
    vq.dispose();
  });

  it('config validation names the field', () => {
    expect(() => new VQTokenizer({ ...TINY, quantizer: 'fsq' as 'kl' }, { backend: cpu })).toThrow(/quantizer must be 'vq' or 'kl', got 'fsq'/);
    expect(() => new VQTokenizer({ ...TINY, klWeight: -1 }, { backend: cpu })).toThrow(/klWeight must be a finite number >= 0, got -1/);
    expect(() => new VQTokenizer({ ...TINY, perturbation: 'paper' }, { backend: cpu })).toThrow(/a KL tokenizer takes latentNoise/);
    expect(() => new VQTokenizer({ ...TINY, quantizer: 'vq', latentNoise: 'paper-continuous' }, { backend: cpu })).toThrow(/a VQ tokenizer takes perturbation/);
    expect(() => new VQTokenizer({ ...TINY, latentNoise: { beta: 2, tauMax: 1, gamma: 3 } }, { backend: cpu })).toThrow(/beta must be in \[0, 1\], got 2/);
    expect(() => new VQTokenizer({ ...TINY, latentNoise: 'strong' as 'none' }, { backend: cpu })).toThrow(/unknown preset 'strong'/);
  });

  it('gradients of rec + klWeight * KL (sampled z, noised latents) match central differences', async () => {
    // gamma 0: the noise scale is the batch std with its gradient stopped on purpose, which central
    // differences would see; the (1 - tau) * z path and the sampled posterior stay in the check.
    const m = new VQTokenizer({ ...TINY, klWeight: 0.1, latentNoise: { beta: 0.5, tauMax: 0.8, gamma: 0, anneal: false } }, { backend: cpu, generator: new E.Generator(3) });
    const x = E.tensor(uniformValues(2 * 8 * 8, 11), [2, 1, 8, 8], { backend: cpu });
    // Same posterior samples and noise for every evaluation: reset the generator's stream.
    const seed = 5;
    const loss = () => {
      m.perturbGenerator.manualSeed(seed);
      return m.forward(x).losses.total;
    };
    const params = Object.fromEntries(m.namedParameters());
    m.zeroGrad();
    const l = loss();
    l.backward();
    expect(await m.forward(x).losses.kl!.item()).toBeGreaterThan(0);
    for (const name of ['encoder.conv_in.weight', 'encoder.conv_out.weight', 'encoder.conv_out.bias', 'decoder.conv_in.weight', 'decoder.conv_out.bias']) {
      const p = params[name]!;
      const grad = await p.grad!.toArray();
      expect(grad.some((g) => g !== 0), `${name} has a gradient`).toBe(true);
      for (const i of [0, Math.floor(p.size / 2), p.size - 1]) {
        const v0 = (await p.toArray())[i]!;
        const at = async (v: number) => {
          E.noGrad(() => E.assign(p.reshape([-1]).slice([[i, i + 1]]), v));
          return E.noGrad(() => loss().item());
        };
        const fd = ((await at(v0 + 1e-5)) - (await at(v0 - 1e-5))) / 2e-5;
        await at(v0);
        expect(Math.abs(fd - grad[i]!), `${name}[${i}]: fd ${fd} vs grad ${grad[i]}`).toBeLessThan(1e-6 + 1e-6 * Math.abs(fd));
      }
    }
    m.dispose();
  });

  it('eval mode decodes the posterior mean: deterministic, no noise, equal to decodeLatents(encodeLatents(x))', async () => {
    const m = new VQTokenizer({ ...TINY, latentNoise: 'paper-continuous' }, { backend: cpu, generator: new E.Generator(1) });
    m.latentStats.set([0.3, -0.2], [1.5, 0.7]);
    const x = E.tensor(uniformValues(4 * 64, 2), [4, 1, 8, 8], { backend: cpu });
    m.eval();
    const a = m.forward(x);
    const b = m.forward(x);
    expect(a.noise).toBeNull();
    expect(a.perturbedImages).toBe(0);
    expect(a.indices).toBeNull();
    expect(Array.from(await a.recon.toArray())).toEqual(Array.from(await b.recon.toArray()));
    const z = m.encodeLatents(x);
    expect([...z.shape]).toEqual([4, 2, 4, 4]);
    expectClose(await m.decodeLatents(z).toArray(), await a.recon.toArray(), { atol: 1e-12, rtol: 1e-12 }, 'decodeLatents(encodeLatents(x))');
    // Normalization: encodeLatents = (mean - m) / s per channel.
    const zr = m.latentStats.denormalize(z);
    const post = E.tidy(() => {
      const mu = m.encoder.encodeTokens(x).z.slice([null, null, [0, 2]]);
      return mu.reshape([4, 4, 4, 2]).permute([0, 3, 1, 2]);
    });
    expectClose(await zr.toArray(), await post.toArray(), { atol: 1e-12, rtol: 1e-12 }, 'denormalize(encodeLatents)');
    expect(await m.latentStats.measured()).toBe(true);
    m.dispose();
  });
});

describe('lifetimes (float64 CPU)', () => {
  it('leaves no tensor behind: latents in and out, latent statistics, training steps with noise augmentation', async () => {
    const m = new VQTokenizer({ ...TINY, latentNoise: 'paper-continuous' }, { backend: cpu, generator: new E.Generator(1) });
    const opt = new AdamW(m.parameters(), { lr: 1e-3 });
    const x = E.tensor(uniformValues(4 * 64, 2), [4, 1, 8, 8], { backend: cpu });
    const z = await expectNoLeaks(() => E.noGrad(() => m.encodeLatents(x)), 'encodeLatents');
    (await expectNoLeaks(() => E.noGrad(() => m.decodeLatents(z)), 'decodeLatents')).dispose();
    await expectNoLeaks(() => measureLatentStats(m, [x]), 'measureLatentStats');
    // The first step creates the optimizer state and the gradients; later steps replace them.
    E.disposeAll(tokenizerTrainStep(m, opt, x, { step: 1, totalSteps: 4 }));
    E.disposeAll(await expectNoLeaks(() => tokenizerTrainStep(m, opt, x, { step: 2, totalSteps: 4 }), 'training step'));
    for (const t of [z, x]) t.dispose();
    opt.dispose();
    m.dispose();
  });
});

describe('noise-augmented decoding', () => {
  it('noises exactly the first floor(beta * B) images: z\' = (1 - tau) z + tau * gamma * std(z) * eps, tau in [0, tauMax)', async () => {
    const B = 5;
    const z = E.tensor(uniformValues(B * 6 * 3, 4, -2, 2), [B, 6, 3], { backend: cpu });
    const gen = new E.Generator(9);
    const r = noiseLatents(z, { beta: 0.5, tauMax: 0.6, gamma: 3 }, gen);
    expect(r.numImages).toBe(2);
    const tau = Array.from(await r.tau!.toArray());
    expect(tau.every((t) => t >= 0 && t < 0.6)).toBe(true);
    // Recompute with the same stream: rand [m] then randn [m, T, C].
    const g2 = new E.Generator(9);
    const t2 = await E.rand([2], { generator: g2, backend: cpu, high: 0.6 }).toArray();
    const eps = await E.randn([2, 6, 3], { generator: g2, backend: cpu }).toArray();
    const zv = Array.from(await z.toArray());
    const mean = zv.reduce((a, v) => a + v, 0) / zv.length;
    const std = Math.sqrt(zv.reduce((a, v) => a + (v - mean) ** 2, 0) / (zv.length - 1) + 1e-12);
    const out = await r.z.toArray();
    for (let i = 0; i < zv.length; i++) {
      const b = Math.floor(i / 18);
      const expected = b < 2 ? (1 - t2[b]!) * zv[i]! + t2[b]! * 3 * std * eps[i]! : zv[i]!;
      expect(Math.abs(out[i]! - expected), `element ${i}`).toBeLessThan(1e-12);
    }
    expect(tau).toEqual(Array.from(t2));
  });

  it('beta 0 or tauMax 0 leaves the latents alone; annealing scales tauMax by r(t)', () => {
    const z = E.zeros([4, 2, 2], { backend: cpu });
    expect(noiseLatents(z, { beta: 0, tauMax: 1, gamma: 3 }, new E.Generator(0)).z).toBe(z);
    expect(noiseLatents(z, { beta: 1, tauMax: 0, gamma: 3 }, new E.Generator(0)).z).toBe(z);
    const n = resolveLatentNoise('paper-continuous');
    expect(n).toEqual({ beta: 0.1, tauMax: 1, gamma: 3, anneal: true });
    expect(annealedLatentNoise(n, 10, 100).tauMax).toBe(1);
    expect(annealedLatentNoise(n, 40, 100).tauMax).toBeCloseTo(0.75, 12);
    expect(annealedLatentNoise(n, 90, 100).tauMax).toBe(0.5);
    expect(annealedLatentNoise({ ...n, anneal: false }, 90, 100).tauMax).toBe(1);
  });

  it('training forward noises the configured fraction and reports the annealed setting', () => {
    const m = new VQTokenizer({ ...TINY, latentNoise: { beta: 0.5, tauMax: 0.4, gamma: 3 } }, { backend: cpu, generator: new E.Generator(1) });
    const x = E.zeros([4, 1, 8, 8], { backend: cpu });
    const out = m.forward(x, { step: 90, totalSteps: 100 });
    expect(out.perturbedImages).toBe(2);
    expect(out.noise).toEqual({ beta: 0.5, tauMax: 0.2, gamma: 3, anneal: true });
    expect(() => m.forward(x, { perturb: { alpha: 1, beta: 1, delta: 1 } })).toThrow(/latent-noise preset or config/);
    m.dispose();
  });
});

describe('latent statistics', () => {
  it('LatentMoments: per-channel mean and population std over images and positions (float64)', async () => {
    const acc = new LatentMoments(2);
    const a = uniformValues(3 * 2 * 4, 1, -3, 5);
    const b = uniformValues(2 * 2 * 4, 2, -1, 1);
    await acc.add(E.tensor(a, [3, 2, 2, 2], { backend: cpu }));
    await acc.add(E.tensor(b, [2, 2, 2, 2], { backend: cpu }));
    const per: number[][] = [[], []];
    for (const [v, B] of [[a, 3], [b, 2]] as const) for (let i = 0; i < B; i++) for (let c = 0; c < 2; c++) per[c]!.push(...v.slice((i * 2 + c) * 4, (i * 2 + c + 1) * 4));
    const r = acc.result();
    for (let c = 0; c < 2; c++) {
      const m = per[c]!.reduce((s, v) => s + v, 0) / per[c]!.length;
      const sd = Math.sqrt(per[c]!.reduce((s, v) => s + (v - m) ** 2, 0) / per[c]!.length);
      expect(r.mean[c]).toBeCloseTo(m, 12);
      expect(r.std[c]).toBeCloseTo(sd, 12);
    }
    expect(acc.count).toBe(20);
    expect(() => new LatentMoments(2).result()).toThrow(/no latents/);
  });

  it('stats travel in the state dict; set() refuses bad input', async () => {
    const m = new VQTokenizer(TINY, { backend: cpu, generator: new E.Generator(0) });
    expect(await m.latentStats.measured()).toBe(false);
    m.latentStats.set([1, 2], [3, 4]);
    const m2 = new VQTokenizer(TINY, { backend: cpu, generator: new E.Generator(1) });
    m2.loadStateDict(m.stateDict());
    expect(Array.from(await m2.latentStats.mean.toArray())).toEqual([1, 2]);
    expect(Array.from(await m2.latentStats.std.toArray())).toEqual([3, 4]);
    expect(() => m.latentStats.set([1], [1])).toThrow(/expected 2 values/);
    expect(() => m.latentStats.set([1, NaN], [1, 1])).toThrow(/channel 1 has a non-finite/);
    m.dispose();
    m2.dispose();
  });
});


describe.runIf(gpu)('tiny KL tokenizer on the GPU', () => {
  it('overfits 4 images with noise augmentation on: reconstruction MSE drops >= 10x and below half the mean-image MSE in 50 steps', async () => {
    const backend = gpu!;
    const live0 = E.memoryStats().liveTensors;
    const model = new VQTokenizer({ quantizer: 'kl', ch: 8, chMult: [1, 2], numResBlocks: 1, codeDim: 4, latentNoise: { beta: 0.25, tauMax: 0.5, gamma: 3 }, perturbSeed: 1 }, { backend, generator: new E.Generator(0) });
    const opt = new AdamW(model.parameters(), { lr: 3e-3, weightDecay: 0 });
    const data = silhouettes32(4);
    const x = E.tensor(data, [4, 1, 32, 32], { backend });
    const meanMse = meanImageMse(data, 4, 1024);
    const steps = 50;
    const rec: number[] = [];
    let liveAt10 = 0;
    for (let step = 1; step <= steps; step++) {
      const terms = E.tidy(() => tokenizerTrainStep(model, opt, x, { step, totalSteps: steps }));
      if (step === 1 || step % 10 === 0) rec.push(await terms.rec!.item());
      expect(Number.isFinite(await terms.kl!.item())).toBe(true);
      if (step === 10) liveAt10 = E.memoryStats().liveTensors;
      if (step === steps) expect(E.memoryStats().liveTensors).toBe(liveAt10);
      for (const t of Object.values(terms)) t.dispose();
    }
    // Clean reconstruction (eval mode: posterior mean, no noise) is the target.
    model.eval();
    const clean = E.tidy(() => model.forward(x).losses.rec);
    const cleanRec = await clean.item();
    clean.dispose();
    const curve = `rec MSE ${rec.map((v) => v.toFixed(4)).join(' -> ')}, clean ${cleanRec.toFixed(4)}, mean-image MSE ${meanMse.toFixed(4)}`;
    expect(cleanRec, curve).toBeLessThan(rec[0]! / 10);
    expect(cleanRec, curve).toBeLessThan(meanMse / 2);
    opt.dispose();
    model.dispose();
    x.dispose();
    expect(E.memoryStats().liveTensors).toBeLessThanOrEqual(live0);
  }, 90_000);
});
