/**
 * The continuous half of the CLI, end to end on tiny settings (MNIST, 8 training images, batch 4):
 * train-tokenizer --quantizer kl (latent statistics measured and stored at the end), eval-tokenizer
 * on the KL checkpoint (nFID grid with nFID(0) = rFID, iFID, PSNR, SSIM, grid PNG),
 * train-diffusion (2 steps, resume, refusals of a changed model, a VQ tokenizer and bad flags) and
 * sample-diffusion (gFID against 20 validation images, grid PNG, latents); the VQ/KL mismatches
 * name what is wrong. WebGPU, or --cpu when there is no adapter. (~30 s on lavapipe.)
 */
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import * as E from '../engine/index.js';
import { runMain as run } from './helpers/cli-main.js';
import { loadTokenizerCheckpoint } from '../node/train-tokenizer.js';
import { loadLatentCache } from '../node/train-diffusion.js';
import { decodeImage } from '../nn/data/decode.js';
import { requireGpu } from './helpers/backends.js';

const gpu = await requireGpu();


describe('KL tokenizer -> eval -> diffusion generator -> samples, end to end (tiny)', () => {
  const dir = mkdtempSync(join(tmpdir(), 'webgpu-tok-cli-diffusion-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  const dev = gpu ? [] : ['--cpu'];
  const tokDir = join(dir, 'kl');
  const vqDir = join(dir, 'vq');
  const dDir = join(dir, 'dit');
  const trainKl = ['train-tokenizer', '--quantizer', 'kl', '--dataset', 'mnist', '--config', 'tiny', '--limit', '8', '--batch', '4', '--steps', '2', '--perturb', 'paper-continuous', '--noise-beta', '0.5', '--out', tokDir, ...dev];
  // 16x16x4 latents of the tiny KL tokenizer; a 1-block, 16-wide DiT with 2x2 patches.
  const trainDit = ['train-diffusion', '--tokenizer', tokDir, '--out', dDir, '--limit', '8', '--batch', '4', '--dim', '16', '--depth', '1', '--heads', '2', '--patch', '2', '--log-every', '1', ...dev];

  it('--help lists the new commands and flags', async () => {
    const top = await run(['--help']);
    for (const c of ['train-diffusion', 'sample-diffusion']) expect(top.out).toContain(c);
    const t = await run(['train-tokenizer', '--help']);
    for (const f of ['--quantizer vq|kl', '--latent-channels', '--kl-weight', '--perturb none|paper|paper-continuous', '--noise-beta', '--noise-tau-max']) expect(t.out).toContain(f);
    const d = await run(['train-diffusion', '--help']);
    for (const f of ['--tokenizer PATH', '--patch', '--ema-decay', '--class-dropout', '--sample-every']) expect(d.out).toContain(f);
    const s = await run(['sample-diffusion', '--help']);
    for (const f of ['--sampler euler|heun', '--steps', '--cfg-scale', '--guidance-interval LO,HI', '--raw-weights']) expect(s.out).toContain(f);
  });

  it('trains, evaluates, trains and samples the generator; mismatches and bad flags exit 2 naming the problem', async () => {
    const k = await run(trainKl);
    expect(k.err).toBe('');
    expect(k.code).toBe(0);
    expect(k.out).toMatch(/step 2\/2 .*rec .*kl /);
    expect(k.out).toMatch(/latent statistics over 8 training images/);
    const backend = gpu ?? E.cpuF64;
    const tok = (await loadTokenizerCheckpoint(join(tokDir, 'checkpoint.safetensors'), backend)).model;
    expect(tok.continuous).toBe(true);
    expect(tok.cfg.codeDim).toBe(4);
    expect(tok.cfg.latentNoise).toEqual({ beta: 0.5, tauMax: 1, gamma: 3, anneal: true });
    expect(await tok.latentStats.measured()).toBe(true);
    tok.dispose();

    const bad = async (argv: string[], re: RegExp) => {
      const r = await run(argv);
      expect(r.err).toMatch(re);
      expect(r.code).toBe(2);
    };
    await bad([...trainKl, '--perturb', 'paper'], /--perturb paper is the VQ perturbation; a KL tokenizer/);
    await bad(['train-tokenizer', '--out', vqDir, '--kl-weight', '1e-4'], /--kl-weight is for KL tokenizers: add --quantizer kl/);
    await bad(['train-tokenizer', '--out', vqDir, '--perturb', 'paper-continuous'], /paper-continuous is for KL tokenizers/);
    await bad(['train-tokenizer', '--quantizer', 'kl', '--out', vqDir, '--noise-beta', '0.3'], /--noise-beta needs --perturb paper-continuous/);
    await bad([...trainKl, '--steps', '3', '--kl-weight', '1e-3'], /was trained with --kl-weight null, not 0.001/);

    // eval-tokenizer on the KL checkpoint: nFID grid (tau 0 = rFID), iFID against 8 training latents.
    const evDir = join(dir, 'eval');
    const ev = await run(['eval-tokenizer', '--checkpoint', tokDir, '--featnet', 'random', '--limit', '16', '--batch', '8', '--taus', '0,0.2', '--ifid-train', '8', '--ifid-k', '3', '--grid', '4', '--out', evDir, ...dev]);
    expect(ev.err).toBe('');
    expect(ev.code).toBe(0);
    const j = JSON.parse(readFileSync(join(evDir, 'eval.json'), 'utf8'));
    expect(j.quantizer).toBe('kl');
    expect(j.nfid.map((n: { tau: number }) => n.tau)).toEqual([0, 0.2]);
    expect(j.nfid[0].fid).toBe(j.rfid);
    expect(j.nfidDefault.tau).toBe(0.2);
    expect(j.ifidK).toBe(3);
    expect(j.ifidTrainCount).toBe(8);
    expect(Number.isFinite(j.ifid)).toBe(true);
    expect(readFileSync(join(evDir, 'eval.md'), 'utf8')).toMatch(/\| iFID \|/);
    // Rows: originals, clean, tau 0, tau 0.2, iFID.
    const grid = decodeImage(new Uint8Array(readFileSync(join(evDir, 'recon-grid.png'))));
    expect(grid.height).toBeGreaterThanOrEqual(5 * 32);
    expect(grid.height).toBeLessThan(6 * 32);
    await bad(['eval-tokenizer', '--checkpoint', tokDir, '--taus', '1.5'], /--taus values must be in \[0, 1\], got 1.5/);
    // eval-table puts KL evaluations side by side (nFID and iFID gaps) and refuses to mix kinds.
    const tab = await run(['eval-table', '--mean', `${evDir}=kl#0`, `${join(evDir, 'eval.json')}=kl#1`]);
    expect(tab.code).toBe(0);
    expect(tab.out).toMatch(/\| tokenizer \| rFID \| nFID t=0 \| nFID t=0.2 \| nFID\(0\) - rFID \| nFID\(0.2\) - rFID \| iFID \| iFID - rFID \|/);
    expect(tab.out).toMatch(/\| kl, mean of 2 \| /);
    const vqEval = join(dir, 'vq-eval.json');
    writeFileSync(vqEval, JSON.stringify({ rfid: 1, pfid: [{ alpha: 0.3, delta: 3, fid: 2 }], psnr: 20, ssim: 0.5, usage: 50, usedCodes: 10, perplexity: 5, count: 16 }));
    await bad(['eval-table', evDir, vqEval], /evaluates a VQ tokenizer \(pFID\) and .* a KL one \(nFID, iFID\)/);

    // A VQ tokenizer is refused by train-diffusion, a KL one by train-ar.
    expect((await run(['train-tokenizer', '--dataset', 'mnist', '--config', 'tiny', '--limit', '8', '--batch', '4', '--steps', '1', '--out', vqDir, ...dev])).code).toBe(0);
    await bad(['train-diffusion', '--tokenizer', vqDir, '--out', dDir], /is a VQ tokenizer \(quantizer 'vq'\): the diffusion generator needs a continuous one/);
    await bad(['train-ar', '--tokenizer', tokDir, '--out', join(dir, 'ar')], /is a continuous tokenizer \(quantizer 'kl'\): the AR generator needs a VQ one/);

    const a = await run([...trainDit, '--steps', '2']);
    expect(a.err).toBe('');
    expect(a.code).toBe(0);
    expect(a.out).toMatch(/step 2\/2 .*loss .*ETA/);
    const cache = await loadLatentCache(join(dDir, 'latents.safetensors'));
    expect(cache.latents.shape).toEqual([8, 4, 16, 16]);
    const b = await run([...trainDit, '--steps', '3']);
    expect(b.code).toBe(0);
    expect(b.out).toMatch(/resumed from .*checkpoint.safetensors at step 2/);
    expect(b.out).not.toMatch(/step [12]\//);
    await bad([...trainDit, '--steps', '4', '--dim', '32'], /was trained with --dim 16, not 32/);
    await bad([...trainDit, '--heads', '3'], /--dim 16 is not divisible by --heads 3/);
    await bad([...trainDit, '--patch', '3', '--fresh'], /grid \[16, 16\] is not divisible by patchSize 3/);
    await bad([...trainDit, '--ema-decay', '1'], /--ema-decay must be < 1, got 1/);
    await bad(['sample-diffusion', '--checkpoint', dDir, '--guidance-interval', '0.8,0.2'], /--guidance-interval must be LO,HI with LO <= HI/);
    await bad(['sample-diffusion', '--checkpoint', dDir, '--tokenizer', vqDir], /is a VQ tokenizer/);
    await bad(['sample-ar', '--checkpoint', dDir], /is not a train-ar checkpoint \(a diffusion generator goes with sample-diffusion\)/);

    const outDir = join(dir, 'sample');
    const s = await run(['sample-diffusion', '--checkpoint', dDir, '--num', '20', '--batch', '10', '--steps', '4', '--sampler', 'heun', '--cfg-scale', '2', '--guidance-interval', '0.2,0.9', '--limit-val', '20', '--featnet', 'random', '--grid', '2', '--out', outDir, ...dev]);
    expect(s.err).toBe('');
    expect(s.code).toBe(0);
    expect(s.out).toContain('| gFID |');
    const g = JSON.parse(readFileSync(join(outDir, 'gfid.json'), 'utf8'));
    expect(g.step).toBe(3);
    expect(g.weights).toBe('ema');
    expect(g.numImages).toBe(20);
    expect(g.realImages).toBe(20);
    expect(g.sampling).toEqual({ sampler: 'heun', steps: 4, cfgScale: 2, guidanceInterval: [0.2, 0.9], seed: 0 });
    expect(Number.isFinite(g.gfid)).toBe(true);
    const samples = await loadLatentCache(join(outDir, 'samples.safetensors'));
    expect(samples.latents.shape).toEqual([20, 4, 16, 16]);
    expect(Array.from(samples.latents.labels.subarray(0, 12))).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 0, 1]);
    const png = decodeImage(new Uint8Array(readFileSync(join(outDir, 'samples.png'))));
    expect(png.height).toBeGreaterThanOrEqual(10 * 32);
    expect(png.height).toBeLessThan(11 * 32);
    expect(existsSync(join(outDir, 'gfid.md'))).toBe(true);

    // Extending the tokenizer's training re-measures its latent statistics (the encoder moved).
    const mean0 = Array.from(await (await loadTokenizerCheckpoint(join(tokDir, 'checkpoint.safetensors'), backend)).model.latentStats.mean.toArray());
    const ext = await run(trainKl.map((v) => (v === '2' ? '3' : v)));
    expect(ext.code).toBe(0);
    expect(ext.out).toMatch(/resumed from .* at step 2/);
    expect(ext.out).toMatch(/latent statistics over 8 training images/);
    const mean1 = Array.from(await (await loadTokenizerCheckpoint(join(tokDir, 'checkpoint.safetensors'), backend)).model.latentStats.mean.toArray());
    expect(mean1).not.toEqual(mean0);
    const again = await run(trainKl.map((v) => (v === '2' ? '3' : v)));
    expect(again.out).toMatch(/already complete/);
    expect(again.out).not.toMatch(/latent statistics/);
  }, 240_000);
});
