/**
 * The tokenizer's optional losses (models/tokenizer/perceptual.ts, discriminator.ts, train-step.ts):
 * the FeatNet perceptual loss (0 on identical inputs, gradient to the reconstruction only, checked
 * against central differences), the PatchGAN discriminator (shapes, taming init, batch
 * independence), the hinge losses on known logits, the adaptive weight against finite-difference
 * gradients of the decoder's last layer, discriminator updates, the discStart switch, and exact
 * resume of a run with the discriminator (its weights and AdamW moments in the checkpoint).
 *
 * Everything runs on the CPU (float64 for the gradient checks: finite differences with eps 1e-6
 * have truncation error ~eps^2 * f''' and rounding ~1e-16 / eps = 1e-10, so 1e-6 relative is a
 * loose bound), with tiny models and 8x8 / 16x16 images, because lavapipe is slow here.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import * as E from '../engine/index.js';
import { AdamW, packTrainingState, unpackTrainingState, type TrainingState } from '../nn/index.js';
import { FeatNet } from '../models/features/featnet.js';
import {
  adaptiveGanWeight,
  discriminatorStep,
  hingeDLoss,
  hingeGLoss,
  PatchDiscriminator,
  PerceptualLoss,
  tokenizerTrainStep,
  VQTokenizer,
  type TokenizerStepOptions,
} from '../models/tokenizer/index.js';
import { trainLoop } from '../node/train.js';
import { loadCheckpoint } from '../node/checkpoint.js';
import { loadTokenizerCheckpoint } from '../node/train-tokenizer.js';
import { main } from '../node/cli.js';
import { readSafetensorsFile } from '../node/checkpoint.js';
import { requireGpu } from './helpers/backends.js';
import { expectClose, expectGradMatchesFD } from './helpers/compare.js';

const gpu = await requireGpu();

const f64 = E.cpuF64;
const dir = mkdtempSync(join(tmpdir(), 'tok-losses-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** Deterministic pseudo-images in [-1, 1]. */
function images(n: number, s: number, phase = 0): number[] {
  return Array.from({ length: n * s * s }, (_, i) => Math.sin(0.37 * i + phase) * Math.cos(0.11 * i * i + 1.3 * phase) * 0.9);
}

const tinyTok = { ch: 4, chMult: [1, 2], numResBlocks: 1, codebookSize: 8, codeDim: 4, normGroups: 2 };
const tinyNet = (backend: E.Backend, seed = 3) => new FeatNet({ channels: [4, 6, 6], imageSize: 8, featureDim: 8 }, { backend, generator: new E.Generator(seed) });

describe('perceptual loss (FeatNet, LPIPS-style)', () => {
  it('is 0 for identical inputs, positive otherwise, and is the mean over stages of sum_c (unit-normalized difference)^2', async () => {
    const net = tinyNet(f64);
    const pl = new PerceptualLoss(net);
    const a = E.tensor(images(2, 8), [2, 1, 8, 8], { backend: f64 });
    const b = E.tensor(images(2, 8, 0.7), [2, 1, 8, 8], { backend: f64 });
    expect(await pl.forward(a, a).item()).toBe(0);
    const v = await pl.forward(a, b).item();
    expect(v).toBeGreaterThan(0);
    expect(v).toBeLessThanOrEqual(4); // 2 - 2 cos per position
    // Manual: per stage, per position, || f_a/|f_a| - f_b/|f_b| ||^2, averaged; then over stages.
    const fa = pl.features(a);
    const fb = pl.features(b);
    let manual = 0;
    for (let s = 0; s < 3; s++) {
      const [B, C, H, W] = fa[s]!.shape as number[] as [number, number, number, number];
      const da = await fa[s]!.toArray();
      const db = await fb[s]!.toArray();
      let acc = 0;
      for (let n = 0; n < B; n++) {
        for (let p = 0; p < H * W; p++) {
          let na = 1e-8;
          let nb = 1e-8;
          for (let c = 0; c < C; c++) {
            na += da[(n * C + c) * H * W + p]! ** 2;
            nb += db[(n * C + c) * H * W + p]! ** 2;
          }
          for (let c = 0; c < C; c++) acc += (da[(n * C + c) * H * W + p]! / Math.sqrt(na) - db[(n * C + c) * H * W + p]! / Math.sqrt(nb)) ** 2;
        }
      }
      manual += acc / (B * H * W) / 3;
    }
    expect(v).toBeCloseTo(manual, 12);
    expect(() => pl.forward(a, E.zeros([2, 1, 8, 4], { backend: f64 }))).toThrow(/differ in shape/);
    expect(() => pl.forward(E.zeros([2, 3, 8, 8], { backend: f64 }), E.zeros([2, 3, 8, 8], { backend: f64 }))).toThrow(/expected images \[B, 1, H, W\]/);
    net.dispose();
  });

  it('the gradient flows to the reconstruction (matches central differences), not to the frozen network', async () => {
    const net = tinyNet(f64);
    const pl = new PerceptualLoss(net);
    for (const p of net.parameters()) expect(p.requiresGrad).toBe(false);
    const target = E.tensor(images(1, 8, 2.1), [1, 1, 8, 8], { backend: f64 });
    const r = E.tensor(images(1, 8), [1, 1, 8, 8], { backend: f64 }).requireGrad();
    const loss = pl.forward(r, target);
    loss.backward();
    for (const p of net.parameters()) expect(p.grad).toBeNull();
    const g = await r.grad!.toArray();
    expect(Math.max(...Array.from(g, Math.abs))).toBeGreaterThan(1e-4);
    await expectGradMatchesFD((x) => pl.forward(x, target), [{ shape: [1, 1, 8, 8], data: images(1, 8) }], { atol: 1e-8, rtol: 1e-6 });
    net.dispose();
  });
});

describe('PatchGAN discriminator and hinge losses', () => {
  it('patch logits shapes, taming init, and too-small inputs', async () => {
    const cpu = new E.CpuBackend();
    const d = new PatchDiscriminator({}, { backend: cpu, generator: new E.Generator(1) });
    expect(d.cfg).toEqual({ inChannels: 1, ch: 64, nLayers: 2, normGroups: 32 });
    expect(d.namedParameters().map(([k, p]) => `${k} ${E.fmtShape(p.shape)}`)).toEqual([
      'blocks.0.conv.weight [64, 1, 4, 4]',
      'blocks.0.conv.bias [64]',
      'blocks.1.conv.weight [128, 64, 4, 4]',
      'blocks.1.norm.weight [128]',
      'blocks.1.norm.bias [128]',
      'blocks.2.conv.weight [256, 128, 4, 4]',
      'blocks.2.norm.weight [256]',
      'blocks.2.norm.bias [256]',
      'blocks.3.conv.weight [1, 256, 4, 4]',
      'blocks.3.conv.bias [1]',
    ]);
    // N(0, 0.02) conv weights (524288 draws: the sample std is within 1% of 0.02), N(1, 0.02) norm weights.
    const w = Array.from(await d.blocks.at(2).conv.weight.toArray());
    const mean = w.reduce((a, b) => a + b, 0) / w.length;
    const std = Math.sqrt(w.reduce((a, b) => a + (b - mean) ** 2, 0) / w.length);
    expect(Math.abs(mean)).toBeLessThan(2e-4);
    expect(Math.abs(std - 0.02)).toBeLessThan(2e-4);
    const gw = Array.from(await d.blocks.at(2).norm!.weight!.toArray());
    expect(Math.abs(gw.reduce((a, b) => a + b, 0) / gw.length - 1)).toBeLessThan(0.01);
    d.dispose();
    const small = new PatchDiscriminator({ ch: 4 }, { backend: cpu, generator: new E.Generator(1) });
    expect(E.tidy(() => small.forward(E.zeros([3, 1, 32, 32], { backend: cpu })).shape)).toEqual([3, 1, 6, 6]);
    expect(E.tidy(() => small.forward(E.zeros([1, 1, 16, 12], { backend: cpu })).shape)).toEqual([1, 1, 2, 1]);
    expect(() => small.forward(E.zeros([1, 1, 8, 8], { backend: cpu }))).toThrow(/H, W >= 12 \(nLayers 2\)/);
    expect(() => new PatchDiscriminator({ nLayers: 0 })).toThrow(/nLayers must be a positive integer/);
    small.dispose();
  });

  it('scores each image on its own (GroupNorm): a concatenated batch gives the separate logits', async () => {
    const d = new PatchDiscriminator({ ch: 4, nLayers: 1 }, { backend: f64, generator: new E.Generator(2) });
    const a = E.tensor(images(2, 8), [2, 1, 8, 8], { backend: f64 });
    const b = E.tensor(images(3, 8, 1), [3, 1, 8, 8], { backend: f64 });
    const both = await d.forward(E.concat([a, b], 0)).toArray();
    const sep = [...(await d.forward(a).toArray()), ...(await d.forward(b).toArray())];
    expectClose(both, sep, { atol: 1e-14, rtol: 1e-12 }, 'logits');
    d.dispose();
  });

  it('hinge losses and LeakyReLU on known values', async () => {
    const real = E.tensor([2, 0.5, -1], [3], { backend: f64 });
    const fake = E.tensor([-2, 0, 1.5], [3], { backend: f64 });
    // relu(1 - real) = [0, 0.5, 2], relu(1 + fake) = [0, 1, 2.5]: 0.5 * (2.5/3 + 3.5/3) = 1.
    expect(await hingeDLoss(real, fake).item()).toBeCloseTo(1, 14);
    expect(await hingeGLoss(fake).item()).toBeCloseTo(0.5 / 3, 14);
    expect(await hingeDLoss(E.tensor([1, 3], [2], { backend: f64 }), E.tensor([-1, -5], [2], { backend: f64 })).item()).toBe(0);
    expect(Array.from(await E.leakyRelu(E.tensor([-2, -0.5, 0, 3], [4], { backend: f64 }), 0.2).toArray())).toEqual([-0.4, -0.1, 0, 3]);
  });

  it('discriminator steps lower the hinge loss on a fixed real/fake pair', async () => {
    const d = new PatchDiscriminator({ ch: 4, nLayers: 1 }, { backend: f64, generator: new E.Generator(4) });
    const opt = new AdamW(d.parameters(), { lr: 2e-3, betas: [0.5, 0.9], weightDecay: 0 });
    const real = E.tensor(images(2, 8), [2, 1, 8, 8], { backend: f64 });
    const fake = E.tensor(images(2, 8, 0.4).map((v) => 0.5 * v), [2, 1, 8, 8], { backend: f64 });
    const losses: number[] = [];
    let lr0 = 0;
    let lf0 = 0;
    for (let i = 0; i < 12; i++) {
      const r = E.tidy(() => discriminatorStep(d, opt, real, fake));
      losses.push(await r.d_loss.item());
      if (i === 0) [lr0, lf0] = [await r.logits_real.item(), await r.logits_fake.item()];
      if (i === 11) {
        // The discriminator learned to tell them apart.
        expect((await r.logits_real.item()) - (await r.logits_fake.item())).toBeGreaterThan(lr0 - lf0 + 0.2);
      }
      for (const t of Object.values(r)) t.dispose();
    }
    expect(losses[0]).toBeCloseTo(1, 1); // logits ~0 at init
    expect(losses[11]!, losses.map((v) => v.toFixed(3)).join(' ')).toBeLessThan(losses[0]! - 0.2);
    opt.dispose();
    d.dispose();
  });
});

describe('adaptive GAN weight', () => {
  it('equals discWeight * ||dL_nll/dW|| / (||dL_gan/dW|| + 1e-4) with the gradients from central differences, and leaves the graph usable', async () => {
    const model = new VQTokenizer(tinyTok, { backend: f64, generator: new E.Generator(7) });
    const disc = new PatchDiscriminator({ ch: 4, nLayers: 1 }, { backend: f64, generator: new E.Generator(8) });
    const net = tinyNet(f64);
    const pl = new PerceptualLoss(net);
    const x = E.tensor(images(2, 8), [2, 1, 8, 8], { backend: f64 });
    const W = model.decoder.lastLayer;
    const losses = () => {
      const out = model.forward(x, { perturb: null });
      const nll = out.losses.rec.add(pl.forward(out.recon, x).mul(0.5));
      const g = hingeGLoss(disc.forward(out.recon));
      return { nll, g };
    };
    const { nll, g } = losses();
    const w = adaptiveGanWeight(nll, g, W, 0.7);
    expect(w.requiresGrad).toBe(false);
    expect(w.shape).toEqual([]);
    // Central differences over every entry of the decoder's last conv weight.
    const w0 = Array.from(await W.toArray());
    const eps = 1e-6;
    const fdN: number[] = [];
    const fdG: number[] = [];
    for (let j = 0; j < w0.length; j++) {
      const at = async (delta: number) => {
        E.noGrad(() => W.assign(E.tensor(w0.map((v, k) => (k === j ? v + delta : v)), W.shape, { backend: f64 })));
        const r = E.noGrad(() => E.tidy(() => losses()));
        const out = [await r.nll.item(), await r.g.item()];
        r.nll.dispose();
        r.g.dispose();
        return out;
      };
      const [np, gp] = await at(eps);
      const [nm, gm] = await at(-eps);
      fdN.push((np! - nm!) / (2 * eps));
      fdG.push((gp! - gm!) / (2 * eps));
    }
    E.noGrad(() => W.assign(E.tensor(w0, W.shape, { backend: f64 })));
    const norm = (v: number[]) => Math.sqrt(v.reduce((a, b) => a + b * b, 0));
    expect(norm(fdN)).toBeGreaterThan(1e-3);
    expect(norm(fdG)).toBeGreaterThan(1e-3);
    const expected = 0.7 * Math.min(1e4, Math.max(0, norm(fdN) / (norm(fdG) + 1e-4)));
    expect(Math.abs((await w.item()) - expected) / expected).toBeLessThan(1e-6);
    // The graphs survive: backward of nll + w * g gives dW = fdN + w * fdG.
    const wv = await w.item();
    model.zeroGrad();
    nll.add(g.mul(w)).backward();
    expectClose(await W.grad!.toArray(), fdN.map((v, k) => v + wv * fdG[k]!), { atol: 1e-8, rtol: 1e-6 }, 'dW');
    model.zeroGrad();
    // Clamped at 1e4 (times discWeight) when the GAN loss does not depend on the last layer.
    const leaf = E.tensor([0.3], [1], { backend: f64 }).requireGrad();
    expect(await adaptiveGanWeight(nll.mul(1e6), leaf.square().sum(), W, 2).item()).toBe(2e4);
    for (const m of [model, disc, net]) m.dispose();
  });
});

describe('tokenizer training step with the perceptual loss and the GAN', () => {
  function setup(backend: E.Backend, start: number) {
    const model = new VQTokenizer({ ...tinyTok, perturbation: { alpha: 1, beta: 0.5, delta: 3, anneal: false }, perturbSeed: 5 }, { backend, generator: new E.Generator(1) });
    const opt = new AdamW(model.parameters(), { lr: 1e-3, betas: [0.5, 0.9], weightDecay: 0 });
    const disc = new PatchDiscriminator({ ch: 4, nLayers: 2 }, { backend, generator: new E.Generator(2) });
    const dOpt = new AdamW(disc.parameters(), { lr: 1e-3, betas: [0.5, 0.9], weightDecay: 0 });
    const net = tinyNet(backend);
    const losses: TokenizerStepOptions = { perceptual: { loss: new PerceptualLoss(net), weight: 0.1 }, gan: { discriminator: disc, optimizer: dOpt, weight: 0.8, start } };
    const batch = (step: number) => E.tensor(images(2, 16, step % 3), [2, 1, 16, 16], { backend });
    const dispose = () => {
      for (const m of [model, disc, net]) m.dispose();
      opt.dispose();
      dOpt.dispose();
    };
    return { model, opt, disc, dOpt, net, losses, batch, dispose };
  }

  it('the GAN term and the discriminator updates are off before discStart, on from it; the total adds up; no tensors leak', async () => {
    const s = setup(f64, 3);
    const d0 = await Promise.all(s.disc.parameters().map(async (p) => Array.from(await p.toArray())));
    let liveAt4 = 0;
    for (let step = 1; step <= 5; step++) {
      const terms = E.tidy(() => tokenizerTrainStep(s.model, s.opt, s.batch(step), { step, totalSteps: 3, ...s.losses }));
      const v = Object.fromEntries(await Promise.all(Object.entries(terms).map(async ([k, t]) => [k, await t.item()] as const)));
      expect(Object.keys(v).sort()).toEqual(['codebook', 'commit', 'd_loss', 'd_weight', 'g_loss', 'logits_fake', 'logits_real', 'perceptual', 'rec', 'total'].sort());
      const base = v.rec! + v.codebook! + v.commit! + 0.1 * v.perceptual!;
      expect(v.perceptual).toBeGreaterThan(0);
      if (step < 3) {
        for (const k of ['g_loss', 'd_weight', 'd_loss', 'logits_real', 'logits_fake']) expect(v[k], k).toBe(0);
        expect(v.total).toBeCloseTo(base, 12);
        for (const p of s.disc.parameters()) expect(s.dOpt.stateOf(p)).toBeUndefined();
        const d = await Promise.all(s.disc.parameters().map(async (p) => Array.from(await p.toArray())));
        expect(d).toEqual(d0);
      } else {
        expect(v.d_weight).toBeGreaterThan(0);
        expect(v.d_weight).toBeLessThanOrEqual(0.8e4);
        expect(v.d_loss).toBeGreaterThan(0);
        expect(v.total).toBeCloseTo(base + v.d_weight! * v.g_loss!, 12);
        for (const p of s.disc.parameters()) expect(s.dOpt.stateOf(p)?.step).toBe(step - 2);
        const d = await Promise.all(s.disc.parameters().map(async (p) => Array.from(await p.toArray())));
        expect(d).not.toEqual(d0);
      }
      for (const p of s.disc.parameters()) expect(p.requiresGrad).toBe(true);
      for (const p of s.net.parameters()) expect(p.grad).toBeNull();
      for (const t of Object.values(terms)) t.dispose();
      if (step === 4) liveAt4 = E.memoryStats().liveTensors;
      if (step === 5) expect(E.memoryStats().liveTensors).toBe(liveAt4);
    }
    s.dispose();
  });

  it('stopping at step 3 and resuming reproduces the uninterrupted run exactly (discriminator and its AdamW state in the checkpoint)', async () => {
    const backend = new E.CpuBackend(); // f32 storage: checkpoints store F32
    const quiet = () => {};
    const run = async (total: number, ckpt?: string, every?: number) => {
      const s = setup(backend, 2);
      const state: TrainingState = { model: s.model, optimizer: s.opt, generators: { perturb: s.model.perturbGenerator }, aux: { disc: { model: s.disc, optimizer: s.dOpt } } };
      const r = await trainLoop({
        totalSteps: total,
        state,
        backend,
        logEvery: 1,
        log: quiet,
        extra: { config: s.model.cfg },
        ...(ckpt ? { checkpointPath: ckpt, checkpointEvery: every ?? 100 } : {}),
        step: (step) => ({ terms: tokenizerTrainStep(s.model, s.opt, s.batch(step), { step, totalSteps: 6, ...s.losses }) }),
      });
      const params = await Promise.all([...s.model.parameters(), ...s.disc.parameters()].map(async (p) => Array.from(await p.toArray())));
      s.dispose();
      return { r, params };
    };
    const full = await run(6);
    const ckpt = join(dir, 'gan.safetensors');
    await run(3, ckpt, 3);
    const { tensors, metadata } = await loadCheckpoint(ckpt, backend);
    const names = Object.keys(tensors);
    expect(names).toContain('model.decoder.conv_out.weight');
    expect(names).toContain('optim.0.exp_avg');
    expect(names).toContain('disc.model.blocks.0.conv.weight');
    expect(names).toContain('disc.optim.0.exp_avg_sq');
    expect(JSON.parse(metadata['disc.optimizer']!).steps['0']).toBe(2); // GAN on at steps 2 and 3
    for (const t of Object.values(tensors)) t.dispose();
    // The tokenizer loader ignores the discriminator's tensors.
    (await loadTokenizerCheckpoint(ckpt, backend)).model.dispose();
    const resumed = await run(6, ckpt);
    expect(resumed.r.startStep).toBe(3);
    expect(resumed.r.history.map((h) => h.terms)).toEqual(full.r.history.slice(3).map((h) => h.terms));
    expect(resumed.params).toEqual(full.params);
  }, 60_000);

  it('checkpoint layout: aux names are checked, a missing aux model is an error naming it', () => {
    const backend = new E.CpuBackend();
    const s = setup(backend, 1);
    const packed = packTrainingState({ model: s.model, optimizer: s.opt }, 0);
    expect(Object.keys(packed.tensors).every((k) => k.startsWith('model.'))).toBe(true);
    expect(() => unpackTrainingState({ model: s.model, aux: { disc: { model: s.disc, optimizer: s.dOpt } } }, packed)).toThrow(/checkpoint has no 'disc' model/);
    expect(() => packTrainingState({ model: s.model, aux: { model: { model: s.disc } } }, 0)).toThrow(/invalid aux name 'model'/);
    const withDisc = packTrainingState({ model: s.model, aux: { disc: { model: s.disc } } }, 0);
    expect(Object.keys(withDisc.tensors).filter((k) => k.startsWith('disc.model.'))).toHaveLength(s.disc.namedParameters().length);
    s.dispose();
  });
});

describe.runIf(gpu)('on the GPU', () => {
  it('one training step with both losses matches the float64 reference: terms, generator and discriminator gradients', async () => {
    const make = (backend: E.Backend) => {
      const model = new VQTokenizer(tinyTok, { backend, generator: new E.Generator(1) });
      const disc = new PatchDiscriminator({ ch: 4, nLayers: 2 }, { backend, generator: new E.Generator(2) });
      const net = tinyNet(backend);
      return { model, disc, net };
    };
    const g = make(gpu!);
    const c = make(f64);
    // Same (f32) weights on both.
    for (const [a, b] of [[g.model, c.model], [g.disc, c.disc], [g.net, c.net]] as const) {
      const pa = a.parameters();
      const pb = b.parameters();
      for (let i = 0; i < pa.length; i++) {
        const t = E.tensor(await pa[i]!.toArray(), pa[i]!.shape, { backend: f64 });
        E.noGrad(() => pb[i]!.assign(t));
        t.dispose();
      }
    }
    const step = async (m: typeof g, backend: E.Backend) => {
      const opt = new AdamW(m.model.parameters(), { lr: 1e-3, weightDecay: 0 });
      const dOpt = new AdamW(m.disc.parameters(), { lr: 1e-3, weightDecay: 0 });
      const x = E.tensor(images(2, 16, 0.3), [2, 1, 16, 16], { backend });
      const terms = E.tidy(() =>
        tokenizerTrainStep(m.model, opt, x, { step: 1, perceptual: { loss: new PerceptualLoss(m.net), weight: 0.1 }, gan: { discriminator: m.disc, optimizer: dOpt, weight: 0.8, start: 1 } }),
      );
      const v: Record<string, number> = {};
      for (const [k, t] of Object.entries(terms)) v[k] = await t.item();
      const convIn = m.model.namedParameters().find(([k]) => k === 'encoder.conv_in.weight')![1];
      const grads: number[][] = [];
      for (const p of [m.model.decoder.lastLayer, convIn, m.disc.blocks.at(1).conv.weight]) grads.push(Array.from(await p.grad!.toArray()));
      for (const t of Object.values(terms)) t.dispose();
      x.dispose();
      opt.dispose();
      dOpt.dispose();
      return { v, grads };
    };
    const a = await step(g, gpu!);
    const b = await step(c, f64);
    // f32 kernels vs float64: relative 1e-3 of each term (they are O(0.01..10)), of each gradient's max-abs.
    for (const k of Object.keys(b.v)) expect(Math.abs(a.v[k]! - b.v[k]!), `${k}: gpu ${a.v[k]} ref ${b.v[k]}`).toBeLessThanOrEqual(1e-3 * Math.abs(b.v[k]!) + 1e-6);
    expect(b.v.d_weight).toBeGreaterThan(0);
    for (let i = 0; i < 3; i++) {
      const scale = Math.max(...b.grads[i]!.map(Math.abs));
      expect(scale).toBeGreaterThan(0);
      expectClose(a.grads[i]!, b.grads[i]!, { atol: 2e-3 * scale, rtol: 0 }, `grad ${i}`);
    }
    for (const m of [g, c]) for (const mod of [m.model, m.disc, m.net]) mod.dispose();
  }, 60_000);
});

describe('webgpu-tok train-tokenizer with --perceptual-weight and --disc-weight (tiny; WebGPU, or --cpu without an adapter)', () => {
  it('trains with both losses, checkpoints the discriminator, resumes, and refuses other loss settings', async () => {
    const out = join(dir, 'cli');
    const argsWith = (discWeight: string) => ['train-tokenizer', '--dataset', 'mnist', '--config', 'tiny', '--limit', '8', '--batch', '4', '--log-every', '1', '--out', out, ...(gpu ? [] : ['--cpu']),
      '--perceptual-weight', '0.1', '--disc-weight', discWeight, '--disc-start', '2', '--disc-ch', '8'];
    const args = argsWith('0.8');
    const lines: string[] = [];
    const errs: string[] = [];
    const io = { out: (l: string) => lines.push(l), err: (l: string) => errs.push(l) };
    expect(await main([...args, '--steps', '2'], io), errs.join('\n')).toBe(0);
    expect(lines.join('\n')).toMatch(/perceptual loss: weight 0.1, FeatNet .*featnet-fashion.safetensors/);
    expect(lines.join('\n')).toMatch(/hinge GAN: PatchDiscriminator .* from step 2/);
    const ckpt = join(out, 'checkpoint.safetensors');
    const { tensors, metadata } = await readSafetensorsFile(ckpt);
    expect(Object.keys(tensors)).toContain('disc.model.blocks.0.conv.weight');
    expect(Object.keys(tensors)).toContain('disc.optim.0.exp_avg');
    expect(JSON.parse(metadata.extra!).losses).toMatchObject({ perceptualWeight: 0.1, discWeight: 0.8, discStart: 2, discConfig: { ch: 8, nLayers: 2 } });
    expect(await main([...args, '--steps', '3'], io)).toBe(0);
    expect(lines.join('\n')).toMatch(/resumed from .* at step 2/);
    const metrics = (await import('node:fs')).readFileSync(join(out, 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l));
    expect(metrics.map((m) => m.step)).toEqual([1, 2, 3]);
    expect(metrics[0].d_weight).toBe(0);
    for (const m of metrics.slice(1)) {
      expect(m.d_weight).toBeGreaterThan(0);
      expect(m.perceptual).toBeGreaterThan(0);
      expect(Number.isFinite(m.d_loss)).toBe(true);
    }
    errs.length = 0;
    expect(await main([...argsWith('0.5'), '--steps', '4'], io)).toBe(2);
    expect(errs.join('\n')).toMatch(/was trained with --disc-weight 0.8, not 0.5/);
  }, 120_000);
});
