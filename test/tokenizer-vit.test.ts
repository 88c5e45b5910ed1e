/**
 * The ViT tokenizer (arch 'vit': patches + learnable latent tokens, TiTok / RobusTok design)
 * through the same VQTokenizer API as the CNN: shapes, parameter names and count, the
 * encode -> decodeIndices path, the perturbation path, config validation and JSON round trip,
 * state dicts, gradients (float64 CPU), and on the GPU: agreement with the float64 CPU and a
 * tiny model overfitting 4 images; `train-tokenizer --arch vit` end to end (checkpoint, reload,
 * resume check, eval-tokenizer).
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import * as E from '../engine/index.js';
import { runMain } from './helpers/cli-main.js';
import { loadTokenizerCheckpoint } from '../node/train-tokenizer.js';
import { AdamW } from '../nn/index.js';
import { patchify, tokenizerTrainStep, unpatchify, VitDecoder, VQTokenizer, type TokenizerConfig } from '../models/tokenizer/index.js';
import { requireGpu } from './helpers/backends.js';
import { expectClose } from './helpers/compare.js';

const gpu = await requireGpu();

/** 16x16 images, 4x4 patches (16 patch tokens), 8 latent tokens on a non-square 2x4 grid. */
const TINY: Partial<TokenizerConfig> = { arch: 'vit', imageSize: 16, patchSize: 4, width: 32, depth: 1, heads: 2, tokenGrid: [2, 4], codebookSize: 16, codeDim: 4 };

/** The parameter count written out from the architecture (independently of the modules). */
function vitParamCount(c: { inChannels: number; imageSize: number; patchSize: number; width: number; depth: number; mlpRatio: number; numLatentTokens: number; codebookSize: number; codeDim: number }): number {
  const W = c.width;
  const P = (c.imageSize / c.patchSize) ** 2;
  const pix = c.inChannels * c.patchSize ** 2;
  const hid = Math.round(W * c.mlpRatio);
  const N = c.numLatentTokens;
  const block = 2 * W /* norm1 */ + 3 * W * W + 3 * W /* qkv */ + W * W + W /* proj */ + 2 * W /* norm2 */ + W * hid + hid + hid * W + W; /* mlp */
  const enc = pix * W + W + P * W + 2 * N * W + 2 * W + c.depth * block + 2 * W + W * c.codeDim + c.codeDim;
  const dec = c.codeDim * W + W + N * W + W + P * W + 2 * W + c.depth * block + 2 * W + W * pix + pix;
  return enc + dec + c.codebookSize * c.codeDim;
}

describe('ViT tokenizer (float64 CPU)', () => {
  const backend = E.cpuF64;

  it('default config: 32x32 -> 64 latent tokens on 8x8, parameter names and count', () => {
    const m = new VQTokenizer({ arch: 'vit' }, { backend, generator: new E.Generator(0) });
    expect(m.cfg).toMatchObject({ arch: 'vit', imageSize: 32, patchSize: 4, width: 192, depth: 4, heads: 3, mlpRatio: 4, numLatentTokens: 64, tokenGrid: [8, 8], codebookSize: 1024, codeDim: 16 });
    expect(m.factor).toBe(4);
    expect(m.numParameters()).toBe(vitParamCount(m.cfg));
    expect(m.numParameters()).toBe(3651168);
    const names = m.namedParameters().map(([n]) => n);
    for (const n of ['encoder.patch_embed.weight', 'encoder.positional_embedding', 'encoder.latent_tokens', 'encoder.latent_token_positional_embedding', 'encoder.ln_pre.weight', 'encoder.transformer.3.attn.qkv.weight', 'encoder.ln_post.bias', 'encoder.proj_out.weight', 'quantize.embedding.weight', 'decoder.decoder_embed.weight', 'decoder.mask_token', 'decoder.positional_embedding', 'decoder.transformer.0.mlp.fc2.bias', 'decoder.proj_out.weight']) {
      expect(names).toContain(n);
    }
    expect(names).not.toContain('encoder.transformer.4.norm1.weight');
    expect(m.decoder).toBeInstanceOf(VitDecoder);
    // The GAN adaptive weight's layer: the Linear to patch pixels.
    expect([...m.decoder.lastLayer.shape]).toEqual([16, 192]);
    expect(m.decoder.lastLayer).toBe((m.decoder as VitDecoder).proj_out.weight);
    m.dispose();
  });

  it('patchify / unpatchify are inverse and order pixels as a stride-p conv weight', async () => {
    const x = E.tensor(Array.from({ length: 2 * 3 * 8 * 4 }, (_, i) => i), [2, 3, 8, 4], { backend });
    const p = patchify(x, 2); // [2, 4*2 patches, 3*2*2]
    expect([...p.shape]).toEqual([2, 8, 12]);
    const pv = await p.toArray();
    // Image 1, patch (row 2, col 1) = index 5, channel 2, pixel (1, 0): x[1, 2, 2*2 + 1, 1*2 + 0].
    expect(pv[1 * 96 + 5 * 12 + 2 * 4 + 1 * 2 + 0]).toBe(1 * 96 + 2 * 32 + 5 * 4 + 2);
    expect(Array.from(await unpatchify(p, 2, 3, 4, 2).toArray())).toEqual(Array.from(await x.toArray()));
  });

  it('decodeIndices(encode(x).indices) is the clean reconstruction; decode(); shapes', async () => {
    const m = new VQTokenizer(TINY, { backend, generator: new E.Generator(1) });
    expect(m.cfg.numLatentTokens).toBe(8);
    expect(m.factor).toBeNaN(); // non-square grid: no spatial factor
    expect(m.numParameters()).toBe(vitParamCount(m.cfg));
    const x = E.rand([3, 1, 16, 16], { backend, generator: new E.Generator(2) });
    const enc = m.encode(x);
    expect([...enc.z.shape]).toEqual([3, 4, 2, 4]);
    expect([...enc.indices.shape]).toEqual([3, 2, 4]);
    expect(enc.indices.dtype).toBe('i32');
    const zv = await enc.z.toArray();
    for (let b = 0; b < 3; b++) for (let t = 0; t < 8; t++) {
      let s = 0;
      for (let c = 0; c < 4; c++) s += zv[b * 32 + c * 8 + t]! ** 2;
      expect(Math.abs(s - 1)).toBeLessThan(1e-12);
    }
    const out = m.forward(x, { perturb: null });
    expect([...out.recon.shape]).toEqual([3, 1, 16, 16]);
    expect(Array.from(await out.indices!.toArray())).toEqual(Array.from(await enc.indices.toArray()));
    const recon = await out.recon.toArray();
    // Equal up to the rounding of the straight-through sum z + (q - z) (float64: ~1e-16).
    const tol = { atol: 1e-12, rtol: 1e-12 };
    expectClose(await m.decodeIndices(enc.indices).toArray(), recon, tol, 'decodeIndices vs forward');
    const zq = m.vq.lookup(enc.indices).permute([0, 3, 1, 2]); // [B, d, h, w]
    expectClose(await m.decode(zq).toArray(), recon, tol, 'decode vs forward');
    expectClose(await m.reconstruct(x).toArray(), recon, { atol: 0, rtol: 0 }, 'reconstruct vs forward');
    // Images of a batch are independent (attention stays within an image).
    expectClose(await m.forward(x.slice([[1, 2]]), { perturb: null }).recon.toArray(), recon.slice(256, 512), { atol: 1e-12, rtol: 1e-12 }, 'image 1 alone');
    expect(() => m.forward(E.zeros([1, 1, 32, 32], { backend }))).toThrow(/expected images \[B, 1, 16, 16\] \(the ViT tokenizer takes exactly imageSize x imageSize\), got \[1, 1, 32, 32\]/);
    expect(() => m.decodeIndices(E.zeros([1, 4, 2], { backend, dtype: 'i32' }))).toThrow(/codes on a 4x2 grid, the config's tokenGrid is 2x4/);
    m.dispose();
  });

  it('perturbation: VQ losses unchanged, only the perturbed images change, reconstruct() reproducible', async () => {
    const m = new VQTokenizer({ ...TINY, perturbSeed: 3 }, { backend, generator: new E.Generator(1) });
    const x = E.rand([4, 1, 16, 16], { backend, generator: new E.Generator(2) });
    const clean = m.forward(x, { perturb: null });
    const pert = m.forward(x, { perturb: { alpha: 1, beta: 0.5, delta: 8 } });
    expect(pert.perturbedImages).toBe(2);
    expect(pert.perturbation).toMatchObject({ alpha: 1, beta: 0.5, delta: 8 });
    expect(await pert.losses.codebook!.item()).toBe(await clean.losses.codebook!.item());
    expect(await pert.losses.commit!.item()).toBe(await clean.losses.commit!.item());
    expect(Array.from(await pert.indices!.toArray())).toEqual(Array.from(await clean.indices!.toArray()));
    const a = Array.from(await clean.recon.toArray());
    const b = Array.from(await pert.recon.toArray());
    expect(b.slice(512)).toEqual(a.slice(512));
    for (let i = 0; i < 2; i++) expect(b.slice(i * 256, (i + 1) * 256), `image ${i}`).not.toEqual(a.slice(i * 256, (i + 1) * 256));
    // Gradients reach the encoder through the straight-through path of the perturbed images too.
    pert.losses.rec.backward();
    const g = await m.encoder.parameters()[0]!.grad!.toArray();
    expect(Array.from(g).some((v) => v !== 0)).toBe(true);
    const rp = Array.from(await m.reconstruct(x, { alpha: 1, delta: 8 }, new E.Generator(5)).toArray());
    for (let i = 0; i < 4; i++) expect(rp.slice(i * 256, (i + 1) * 256), `image ${i}`).not.toEqual(a.slice(i * 256, (i + 1) * 256));
    expect(Array.from(await m.reconstruct(x, { alpha: 1, delta: 8 }, new E.Generator(5)).toArray())).toEqual(rp);
    m.dispose();
  });

  it('gradient of the total loss reaches every parameter; gradients match finite differences', async () => {
    const m = new VQTokenizer(TINY, { backend, generator: new E.Generator(4) });
    const x = E.rand([2, 1, 16, 16], { backend, generator: new E.Generator(5) });
    const terms = () => m.forward(x, { perturb: null }).losses;
    terms().total.backward();
    for (const [n, p] of m.namedParameters()) {
      expect(p.grad, n).toBeTruthy();
      const gv = await p.grad!.toArray();
      expect(Array.from(gv).some((v) => v !== 0), `${n} has a nonzero gradient`).toBe(true);
    }
    // Finite differences where the loss is differentiable as is (the codes are fixed for small
    // steps): the total loss w.r.t. decoder parameters, and the commitment loss (the only term
    // whose encoder gradient is a true derivative: rec reaches the encoder straight-through)
    // w.r.t. encoder parameters. Central differences in float64 with h = 1e-5: truncation
    // ~h^2 * f''' ~ 1e-10, rounding ~1e-16 / h ~ 1e-11; 1e-6 leaves a wide margin.
    const params = Object.fromEntries(m.namedParameters());
    const check = async (names: string[], loss: () => E.Tensor) => {
      m.zeroGrad();
      loss().backward();
      for (const name of names) {
        const p = params[name]!;
        const grad = await p.grad!.toArray();
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
    };
    await check(['decoder.mask_token', 'decoder.positional_embedding', 'decoder.decoder_embed.weight', 'decoder.transformer.0.attn.qkv.weight', 'decoder.proj_out.weight'], () => terms().total);
    await check(['encoder.patch_embed.weight', 'encoder.positional_embedding', 'encoder.latent_tokens', 'encoder.transformer.0.mlp.fc1.weight', 'encoder.proj_out.weight'], () => terms().commit!);
    m.dispose();
  });

  it('config validation: clear errors', () => {
    const mk = (c: Partial<TokenizerConfig>) => () => new VQTokenizer({ ...TINY, ...c }, { backend });
    expect(mk({ arch: 'transformer' as 'vit' })).toThrow(/arch must be 'cnn' or 'vit', got 'transformer'/);
    expect(mk({ patchSize: 3 })).toThrow(/patchSize 3 must divide imageSize 16/);
    expect(mk({ heads: 3 })).toThrow(/width 32 must be divisible by heads 3/);
    expect(mk({ tokenGrid: [3, 4], numLatentTokens: 8 })).toThrow(/tokenGrid \[3, 4\] has 12 tokens, numLatentTokens is 8/);
    expect(() => new VQTokenizer({ arch: 'vit', numLatentTokens: 12 }, { backend })).toThrow(/numLatentTokens 12 is not a square: give tokenGrid \[h, w\] with h \* w = 12/);
    expect(mk({ tokenGrid: [0, 4] })).toThrow(/tokenGrid must be two positive integers/);
    expect(mk({ depth: 0, mlpRatio: -1 })).toThrow(/depth must be a positive integer, got 0; mlpRatio must be a positive number, got -1/);
    // numLatentTokens alone: a square grid; tokenGrid alone: N = h * w.
    const sq = new VQTokenizer({ arch: 'vit', imageSize: 16, width: 32, depth: 1, heads: 2, numLatentTokens: 16, codebookSize: 16, codeDim: 4 }, { backend });
    expect(sq.cfg.tokenGrid).toEqual([4, 4]);
    expect(sq.factor).toBe(4);
    sq.dispose();
    // A config without arch is still the CNN (existing configs and checkpoints).
    const cnn = new VQTokenizer({ ch: 8, chMult: [1, 2], numResBlocks: 1, codebookSize: 16, codeDim: 4 }, { backend });
    expect(cnn.cfg.arch).toBe('cnn');
    expect(cnn.namedParameters()[0]![0]).toBe('encoder.conv_in.weight');
    cnn.dispose();
  });

  it('the config round-trips through JSON and a state dict restores the same function', async () => {
    const m = new VQTokenizer({ ...TINY, recLoss: 'l1', perturbation: 'paper' }, { backend, generator: new E.Generator(6) });
    const cfg = JSON.parse(JSON.stringify(m.cfg)) as Partial<TokenizerConfig>;
    const m2 = new VQTokenizer(cfg, { backend, generator: new E.Generator(99) });
    expect(m2.cfg).toEqual(m.cfg);
    expect(m2.namedParameters().map(([n, t]) => [n, [...t.shape]])).toEqual(m.namedParameters().map(([n, t]) => [n, [...t.shape]]));
    const x = E.rand([2, 1, 16, 16], { backend, generator: new E.Generator(7) });
    const a = await m.reconstruct(x).toArray();
    expect(Array.from(await m2.reconstruct(x).toArray())).not.toEqual(Array.from(a));
    m2.loadStateDict(m.stateDict());
    expect(Array.from(await m2.reconstruct(x).toArray())).toEqual(Array.from(a));
    m.dispose();
    m2.dispose();
  });
});

/** Ellipse silhouettes with a vertical shading gradient and a stripe, 16x16, values in [0, 1]. */
function silhouettes(n: number, size = 16): Float32Array {
  const out = new Float32Array(n * size * size);
  for (let k = 0; k < n; k++) {
    const cx = 8 + ((k * 5) % 5) - 2;
    const cy = 7.5 + ((k * 3) % 3) - 1;
    const rx = 3 + ((k * 7) % 4);
    const ry = 4.5 + ((k * 4) % 3);
    for (let y = 0; y < size; y++) {
      for (let x = 0; x < size; x++) {
        const e = ((x - cx) / rx) ** 2 + ((y - cy) / ry) ** 2;
        let v = e <= 1 ? 0.45 + 0.5 * (y / size) : 0;
        if (e <= 1 && Math.abs(y - cy - (k - 1.5) * 1.5) < 1) v = 0.15;
        out[k * size * size + y * size + x] = v;
      }
    }
  }
  return out;
}

describe.runIf(gpu)('ViT tokenizer on the GPU', () => {
  it('agrees with the float64 CPU for the same weights (decodeIndices, latents)', async () => {
    const g = gpu!;
    const mg = new VQTokenizer(TINY, { backend: g, generator: new E.Generator(8) });
    const mc = new VQTokenizer(TINY, { backend: E.cpuF64, generator: new E.Generator(0) });
    const state: Record<string, E.Tensor> = {};
    for (const [n, t] of mg.namedParameters()) state[n] = E.tensor(await t.toArray(), t.shape, { backend: E.cpuF64 });
    mc.loadStateDict(state);
    const xv = silhouettes(3);
    const idx = Int32Array.from({ length: 3 * 8 }, (_, i) => (i * 7) % 16);
    // f32 vs f64 through one block each way (LayerNorms, attention, GELU): errors ~1e-6
    // relative; 1e-4 absolute on values of order 1 leaves a wide margin.
    const tol = { atol: 1e-4, rtol: 1e-4 };
    const dg = E.noGrad(() => mg.decodeIndices(E.tensor(idx, [3, 2, 4], { backend: g, dtype: 'i32' })));
    const dc = E.noGrad(() => mc.decodeIndices(E.tensor(idx, [3, 2, 4], { backend: E.cpuF64, dtype: 'i32' })));
    expectClose(await dg.toArray(), await dc.toArray(), tol, 'decodeIndices GPU vs CPU');
    const zg = E.noGrad(() => mg.encode(E.tensor(xv, [3, 1, 16, 16], { backend: g })).z);
    const zc = E.noGrad(() => mc.encode(E.tensor(xv, [3, 1, 16, 16], { backend: E.cpuF64 })).z);
    expectClose(await zg.toArray(), await zc.toArray(), tol, 'normalized latents GPU vs CPU');
    for (const t of [dg, zg]) t.dispose();
    mg.dispose();
    mc.dispose();
  }, 60_000);

  // A transformer tokenizer learns this more slowly than the CNN (a PyTorch model of the same
  // architecture, without the quantizer, follows the same curve at lr 3e-3: ~0.019 at step 100),
  // and its latent tokens start out nearly image-independent (they are learned queries), so few
  // codes differ between images early on. It gets 150 steps at lr 1e-2 and a looser bound
  // relative to the best code-independent output, the mean image: a clean reconstruction below
  // it needs codes that differ between images. Measured on lavapipe (seeds 0-3): training MSE
  // 0.31-0.53 -> 0.010-0.015, clean MSE 0.010-0.014, mean-image MSE 0.031; ~10 s.
  it('overfits 4 images: MSE drops >= 10x; clean reconstructions below 3/4 of the mean-image MSE, from distinct codes', async () => {
    const backend = gpu!;
    const live0 = E.memoryStats().liveTensors;
    const model = new VQTokenizer({ ...TINY, tokenGrid: [4, 4], codebookSize: 32, codeDim: 8, perturbation: { alpha: 1, beta: 0.25, delta: 4 }, perturbSeed: 1 }, { backend, generator: new E.Generator(0) });
    const opt = new AdamW(model.parameters(), { lr: 1e-2, weightDecay: 0 });
    const n = 4;
    const px = 256;
    const data = silhouettes(n);
    const x = E.tensor(data, [n, 1, 16, 16], { backend });
    let meanImageMse = 0;
    for (let p = 0; p < px; p++) {
      let m = 0;
      for (let k = 0; k < n; k++) m += data[k * px + p]! / n;
      for (let k = 0; k < n; k++) meanImageMse += (data[k * px + p]! - m) ** 2 / (n * px);
    }
    const steps = 150;
    const rec: number[] = [];
    const tail: number[] = [];
    let liveAt10 = 0;
    for (let step = 1; step <= steps; step++) {
      const terms = E.tidy(() => tokenizerTrainStep(model, opt, x, { step, totalSteps: steps }));
      if (step === 1 || step % 10 === 0 || step > steps - 5) {
        const v = await terms.rec!.item();
        if (step === 1 || step % 10 === 0) rec.push(v);
        if (step > steps - 5) tail.push(v);
      }
      if (step === 10) liveAt10 = E.memoryStats().liveTensors;
      if (step === steps) expect(E.memoryStats().liveTensors).toBe(liveAt10);
      for (const t of Object.values(terms)) t.dispose();
    }
    const first = rec[0]!;
    // The mean of the last 5 steps (the perturbed image makes single steps noisy).
    const last = tail.reduce((a, b) => a + b, 0) / tail.length;
    const curve = `rec MSE ${rec.map((v) => v.toFixed(4)).join(' -> ')} (last 5 steps ${last.toFixed(4)}), mean-image MSE ${meanImageMse.toFixed(4)}`;
    expect(last, curve).toBeLessThan(first / 10);
    const clean = E.noGrad(() => E.tidy(() => E.mseLoss(model.reconstruct(x), x)));
    const cleanMse = await clean.item();
    clean.dispose();
    expect(cleanMse, `${curve}, clean MSE ${cleanMse.toFixed(4)}`).toBeLessThan(0.75 * meanImageMse);
    const codes = E.noGrad(() => E.tidy(() => model.encode(x).indices));
    const cv = await codes.toArray();
    const perImage = Array.from({ length: n }, (_, k) => Array.from(cv.slice(k * 16, (k + 1) * 16)).join(','));
    expect(new Set(perImage).size, `distinct code sequences: ${perImage.join(' | ')}`).toBeGreaterThanOrEqual(2);
    codes.dispose();
    opt.dispose();
    model.dispose();
    x.dispose();
    expect(E.memoryStats().liveTensors).toBeLessThanOrEqual(live0);
  }, 120_000);
});

describe('train-tokenizer --arch vit, end to end (tiny, MNIST)', () => {
  it('trains 2 steps, saves the ViT config in the checkpoint, reloads it, refuses another --arch, evaluates', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'webgpu-tok-vit-'));
    try {
      const run = runMain;
      const dev = gpu ? [] : ['--cpu'];
      const train = ['train-tokenizer', '--dataset', 'mnist', '--config', 'tiny', '--limit', '8', '--batch', '4', '--log-every', '1', '--out', dir, ...dev];
      const a = await run([...train, '--arch', 'vit']);
      expect(a.err).toBe('');
      expect(a.code).toBe(0);
      expect(a.out).toMatch(/step 2\/2/);
      const backend = gpu ?? E.cpuF64;
      const { model, step } = await loadTokenizerCheckpoint(join(dir, 'checkpoint.safetensors'), backend);
      expect(step).toBe(2);
      expect(model.cfg).toMatchObject({ arch: 'vit', width: 32, heads: 2, depth: 1, tokenGrid: [8, 8], codebookSize: 256, codeDim: 8 });
      expect(model.decoder).toBeInstanceOf(VitDecoder);
      model.dispose();
      const b = await run([...train, '--arch', 'cnn', '--epochs', '2']);
      expect(b.code).toBe(2);
      expect(b.err).toMatch(/was trained with --arch vit, not cnn/);
      const e = await run(['eval-tokenizer', '--checkpoint', dir, '--featnet', 'random', '--limit', '4', '--alphas', '0.3', '--grid', '2', '--out', join(dir, 'eval'), ...dev]);
      expect(e.err).toBe('');
      expect(e.code).toBe(0);
      const j = JSON.parse(readFileSync(join(dir, 'eval', 'eval.json'), 'utf8'));
      for (const k of ['rfid', 'psnr', 'ssim', 'usage']) expect(Number.isFinite(j[k]), k).toBe(true);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }, 120_000);
});
