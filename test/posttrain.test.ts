/**
 * Decoder post-training: the mixed-token builder keeps about sigma of the ground-truth tokens
 * (and exactly all / none at sigma 1 / 0, where it equals plain sampling with the same draws), and
 * the post-trainer moves only the decoder while its loss falls. The diffusion side: the
 * denoised post-training latents are the clean latents exactly at t* = 0 and plain sampling from
 * the same noise at t* = 1, and stepLatents moves only a KL tokenizer's decoder.
 */
import { describe, expect, it } from 'vitest';
import * as E from '../engine/index.js';
import { ARTransformer, sampleTokens } from '../models/ar/index.js';
import { buildMixedTokens, DecoderPostTrainer, VQTokenizer } from '../models/tokenizer/index.js';
import { buildDenoisedLatents, DiffusionTransformer, sampleDiffusion } from '../models/diffusion/index.js';
import { expectClose } from './helpers/compare.js';
import { requireGpu } from './helpers/backends.js';
import { expectNoLeaks } from './helpers/leak-check.js';

const gpu = await requireGpu();

const tinyAR = (backend: E.Backend) => new ARTransformer({ vocabSize: 32, numClasses: 4, seqLen: 16, dim: 32, depth: 1, heads: 2 }, { backend, generator: new E.Generator(3) });

function randomize(m: ARTransformer): void {
  // The head starts at zero (uniform logits); random weights make the samples depend on the prefix.
  const g = new E.Generator(9);
  E.noGrad(() => { for (const p of m.parameters()) p.assign(E.tidy(() => E.randn(p.shape, { backend: p.backend, generator: g, std: 0.3 }))); });
}

describe.runIf(gpu)('buildMixedTokens', () => {
  const B = 48;
  const L = 16;
  const gtData = Int32Array.from({ length: B * L }, (_, i) => (i * 7 + 3) % 32);
  const classes = Array.from({ length: B }, (_, i) => i % 4);

  it('keeps about sigma of the ground truth, and the recorded tokens are the ground truth exactly where kept', async () => {
    const ar = tinyAR(gpu!);
    randomize(ar);
    const gt = E.tensor(gtData, [B, L], { backend: gpu!, dtype: 'i32' });
    const sigma = 0.7;
    const m = await expectNoLeaks(() => buildMixedTokens(ar, gt, classes, { sigma, generator: new E.Generator(1), keepGenerator: new E.Generator(2) }), 'buildMixedTokens');
    const tokens = (await m.tokens.toArray()) as Int32Array;
    const kept = await m.kept.toArray();
    const n = B * L;
    let k = 0;
    let sameWhereReplaced = 0;
    for (let i = 0; i < n; i++) {
      if (kept[i] === 1) {
        k++;
        expect(tokens[i]).toBe(gtData[i]);
      } else if (tokens[i] === gtData[i]) sameWhereReplaced++;
    }
    // Binomial(768, 0.7): sd = 12.7; 5 sd.
    expect(Math.abs(k - sigma * n)).toBeLessThan(5 * Math.sqrt(n * sigma * (1 - sigma)));
    // A sampled token equals the ground truth only by chance (about 1/32 of the replaced ones).
    expect(sameWhereReplaced).toBeLessThan(0.25 * (n - k));
    for (const t of [gt, m.tokens, m.kept]) t.dispose();
    ar.dispose();
  });

  it('sigma 1 gives the ground truth; sigma 0 gives exactly what sampleTokens draws with the same generator', async () => {
    const ar = tinyAR(gpu!);
    randomize(ar);
    const gt = E.tensor(gtData, [B, L], { backend: gpu!, dtype: 'i32' });
    const all = buildMixedTokens(ar, gt, classes, { sigma: 1, generator: new E.Generator(1), keepGenerator: new E.Generator(2) });
    expect(Array.from((await all.tokens.toArray()) as Int32Array)).toEqual(Array.from(gtData));
    const none = buildMixedTokens(ar, gt, classes, { sigma: 0, cfgScale: 2, generator: new E.Generator(5), keepGenerator: new E.Generator(2) });
    const plain = sampleTokens(ar, classes, { cfgScale: 2, generator: new E.Generator(5) });
    expect(Array.from((await none.tokens.toArray()) as Int32Array)).toEqual(Array.from((await plain.toArray()) as Int32Array));
    expect(await E.tidy(() => none.kept.sum()).item()).toBe(0);
    for (const t of [gt, all.tokens, all.kept, none.tokens, none.kept, plain]) t.dispose();
    ar.dispose();
  });

  it('rejects a bad sigma and mismatched lengths', () => {
    const ar = tinyAR(gpu!);
    const gt = E.zeros([2, 16], { backend: gpu!, dtype: 'i32' });
    const short = E.zeros([2, 8], { backend: gpu!, dtype: 'i32' });
    expect(() => buildMixedTokens(ar, gt, [0, 1], { sigma: 1.5 })).toThrow(/sigma must be in \[0, 1\]/);
    expect(() => buildMixedTokens(ar, short, [0, 1])).toThrow(/makes 16 tokens, the ground truth has 8/);
    for (const t of [gt, short]) t.dispose();
    ar.dispose();
  });
});

describe.runIf(gpu)('DecoderPostTrainer', () => {
  it('trains only the decoder: its loss falls, encoder and codebook stay bit-identical', async () => {
    const backend = gpu!;
    const tok = new VQTokenizer({ ch: 8, chMult: [1, 2], numResBlocks: 1, normGroups: 4, codebookSize: 16, codeDim: 4 }, { backend, generator: new E.Generator(0) });
    const snapshot = async (prefix: string) => Promise.all(tok.namedParameters().filter(([n]) => n.startsWith(prefix)).map(async ([, p]) => Array.from(await p.toArray())));
    const enc0 = await snapshot('encoder.');
    const cb0 = await snapshot('quantize.');
    const dec0 = await snapshot('decoder.');
    const trainer = new DecoderPostTrainer(tok, { lr: 3e-3, emaDecay: 0 });
    const x = E.keep(E.rand([4, 1, 8, 8], { backend, generator: new E.Generator(1), low: -1, high: 1 }));
    const ids = E.keep(E.randint(0, 16, [4, 4, 4], { backend, generator: new E.Generator(2) }));
    const losses: number[] = [];
    for (let s = 0; s < 12; s++) {
      // After the first step (which creates the optimizer state) a step leaves only its loss.
      const l = s === 0 ? E.tidy(() => trainer.step(x, ids)) : await expectNoLeaks(() => E.tidy(() => trainer.step(x, ids)), 'post-training step');
      losses.push(await l.item());
      l.dispose();
    }
    expect(losses[11]!).toBeLessThan(0.8 * losses[0]!);
    expect(await snapshot('encoder.')).toEqual(enc0);
    expect(await snapshot('quantize.')).toEqual(cb0);
    expect(await snapshot('decoder.')).not.toEqual(dec0);
    x.dispose();
    ids.dispose();
    tok.dispose();
  });
});

describe.runIf(gpu)('diffusion post-training data and the latent step', () => {
  const tinyDit = (backend: E.Backend) => {
    const m = new DiffusionTransformer({ latentChannels: 2, grid: [4, 4], numClasses: 3, patchSize: 2, dim: 16, depth: 1, heads: 2 }, { backend, generator: new E.Generator(4) });
    // The final layer starts at zero (zero velocity); random weights make the ODE move.
    const g = new E.Generator(8);
    E.noGrad(() => { for (const p of m.parameters()) p.assign(E.tidy(() => E.randn(p.shape, { backend: p.backend, generator: g, std: 0.2 }))); });
    return m;
  };

  it('t* = 0 returns the clean latents exactly; t* = 1 is plain sampling from the same noise; 0 < t* < 1 is seeded and moves the latents', async () => {
    const backend = gpu!;
    const dit = tinyDit(backend);
    const z = E.randn([6, 2, 4, 4], { backend, generator: new E.Generator(1) });
    const classes = [0, 1, 2, 0, 1, 2];
    const zv = Array.from(await z.toArray());
    const same = buildDenoisedLatents(dit, z, classes, { tStar: 0, generator: new E.Generator(3) });
    expect(Array.from(await same.toArray())).toEqual(zv);
    // t* = 1: (1 - 1) z + 1 * eps is the noise itself, then the full ODE.
    const full = buildDenoisedLatents(dit, z, classes, { tStar: 1, steps: 6, cfgScale: 2, generator: new E.Generator(3) });
    const plain = sampleDiffusion(dit, classes, { steps: 6, cfgScale: 2, generator: new E.Generator(3) });
    expectClose(await full.toArray(), await plain.toArray(), { atol: 1e-6, rtol: 1e-6 }, 't* = 1 vs sampleDiffusion');
    const a = await expectNoLeaks(() => buildDenoisedLatents(dit, z, classes, { tStar: 0.3, generator: new E.Generator(5) }), 'buildDenoisedLatents');
    const b = buildDenoisedLatents(dit, z, classes, { tStar: 0.3, generator: new E.Generator(5) });
    const av = Array.from(await a.toArray());
    expect(Array.from(await b.toArray())).toEqual(av);
    const moved = Math.sqrt(av.reduce((s, v, i) => s + (v - zv[i]!) ** 2, 0) / av.length);
    expect(moved).toBeGreaterThan(0.01);
    expect(() => buildDenoisedLatents(dit, z, classes, { tStar: 1.5 })).toThrow(/tStar must be in \[0, 1\], got 1.5/);
    expect(() => buildDenoisedLatents(dit, E.zeros([6, 3, 4, 4], { backend }), classes)).toThrow(/expected latents \[6, 2, 4, 4\]/);
    for (const t of [z, same, full, plain, a, b]) t.dispose();
    dit.dispose();
  });

  it('stepLatents trains only the KL decoder: its loss falls, encoder and latent statistics stay bit-identical', async () => {
    const backend = gpu!;
    const tok = new VQTokenizer({ quantizer: 'kl', ch: 8, chMult: [1, 2], numResBlocks: 1, normGroups: 4, codeDim: 2 }, { backend, generator: new E.Generator(0) });
    tok.latentStats.set([0.1, -0.2], [0.5, 2]);
    const snapshot = async (prefix: string) => Promise.all(Object.entries(tok.stateDict()).filter(([n]) => n.startsWith(prefix)).map(async ([, p]) => Array.from(await p.toArray())));
    const enc0 = await snapshot('encoder.');
    const stats0 = await snapshot('latent_stats.');
    const dec0 = await snapshot('decoder.');
    const trainer = new DecoderPostTrainer(tok, { lr: 3e-3, emaDecay: 0 });
    const x = E.keep(E.rand([4, 1, 8, 8], { backend, generator: new E.Generator(1), low: -1, high: 1 }));
    const z = E.keep(E.randn([4, 2, 4, 4], { backend, generator: new E.Generator(2) }));
    const losses: number[] = [];
    for (let s = 0; s < 12; s++) {
      const l = s === 0 ? E.tidy(() => trainer.stepLatents(x, z)) : await expectNoLeaks(() => E.tidy(() => trainer.stepLatents(x, z)), 'latent post-training step');
      losses.push(await l.item());
      l.dispose();
    }
    expect(losses[11]!).toBeLessThan(0.8 * losses[0]!);
    expect(await snapshot('encoder.')).toEqual(enc0);
    expect(await snapshot('latent_stats.')).toEqual(stats0);
    expect(await snapshot('decoder.')).not.toEqual(dec0);
    x.dispose();
    z.dispose();
    tok.dispose();
  });
});
