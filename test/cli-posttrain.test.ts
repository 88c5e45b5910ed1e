/**
 * `webgpu-tok posttrain` end to end on the tiny setups of cli.test.ts / cli-diffusion.test.ts
 * (MNIST, 8 training images, batch 4; 1-step tokenizers and 1-block generators): both generator
 * kinds post-train 2 decoder steps; the output is a tokenizer checkpoint that eval-tokenizer
 * evaluates and sample-ar / sample-diffusion decode with, in which only decoder tensors differ
 * from the input tokenizer (encoder, codebook, latent statistics bit-identical); a second run
 * resumes without retraining or rebuilding the data; changed settings, kind mismatches, flags of
 * the other kind and a generator of another tokenizer exit 2 naming the problem. WebGPU, or
 * --cpu when there is no adapter. (~15-20 s on lavapipe.)
 */
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { runMain as run } from './helpers/cli-main.js';
import { readSafetensorsFile } from '../node/checkpoint.js';
import { getJson } from '../nn/checkpoint/index.js';
import { requireGpu } from './helpers/backends.js';

const gpu = await requireGpu();


async function ok(argv: string[]) {
  const r = await run(argv);
  expect(r.err).toBe('');
  expect(r.code).toBe(0);
  return r;
}

async function bad(argv: string[], re: RegExp) {
  const r = await run(argv);
  expect(r.err).toMatch(re);
  expect(r.err.split('\n')).toHaveLength(1);
  expect(r.code).toBe(2);
}

/** The model.* tensors of two checkpoints whose bytes differ, and those that are equal. */
async function modelDiff(a: string, b: string): Promise<{ changed: string[]; same: string[] }> {
  const [x, y] = [(await readSafetensorsFile(a)).tensors, (await readSafetensorsFile(b)).tensors];
  const keys = Object.keys(x).filter((k) => k.startsWith('model.'));
  expect(Object.keys(y).filter((k) => k.startsWith('model.')).sort()).toEqual(keys.sort());
  const eq = (k: string) => Buffer.from(x[k]!.data.buffer, x[k]!.data.byteOffset, x[k]!.data.byteLength).equals(Buffer.from(y[k]!.data.buffer, y[k]!.data.byteOffset, y[k]!.data.byteLength));
  return { changed: keys.filter((k) => !eq(k)), same: keys.filter(eq) };
}

describe('posttrain, end to end (tiny)', () => {
  const dir = mkdtempSync(join(tmpdir(), 'webgpu-tok-cli-posttrain-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  const dev = gpu ? [] : ['--cpu'];
  const [vq, vq2, kl, ar, dit] = ['vq', 'vq2', 'kl', 'ar', 'dit'].map((d) => join(dir, d)) as [string, string, string, string, string];
  const tok = ['train-tokenizer', '--dataset', 'mnist', '--config', 'tiny', '--limit', '8', '--batch', '4', '--steps', '1', ...dev];
  const gen = ['--limit', '8', '--batch', '4', '--dim', '16', '--depth', '1', '--heads', '2', '--steps', '1', ...dev];
  const small = ['--images', '8', '--batch', '4', '--epochs', '1', '--gen-batch', '8', '--log-every', '1', ...dev];

  it('--help lists the options', async () => {
    expect((await run(['--help'])).out).toContain('posttrain');
    const h = await run(['posttrain', '--help']);
    expect(h.code).toBe(0);
    for (const f of ['--tokenizer PATH', '--generator PATH', '--out DIR', '--images', '--control', '--sigma', '--cfg-scale', '--top-p', '--t-star', '--sampler euler|heun', '--guidance-interval LO,HI', '--min-lr', '--ema-decay', '--fresh']) expect(h.out).toContain(f);
    expect(h.out).toMatch(/--images N .*\(default 10000\)/);
    expect(h.out).toMatch(/--lr N .*\(default 0.00005\)/);
  });

  it('post-trains the decoder for an AR and a diffusion generator; the output evaluates, decodes and resumes; mismatches exit 2', async () => {
    await ok([...tok, '--out', vq]);
    await ok([...tok, '--seed', '1', '--out', vq2]);
    await ok([...tok, '--quantizer', 'kl', '--out', kl]);
    await ok(['train-ar', '--tokenizer', vq, '--out', ar, ...gen]);
    await ok(['train-diffusion', '--tokenizer', kl, '--out', dit, '--patch', '2', ...gen]);

    // AR: mixed tokens of 8 images, 2 decoder steps.
    const ptAr = join(dir, 'pt-ar');
    const arRun = ['posttrain', '--tokenizer', vq, '--generator', ar, '--out', ptAr, '--sigma', '0.5', '--cfg-scale', '1.5', ...small];
    const a = await ok(arRun);
    expect(a.out).toMatch(/8 mixed sequences, ground truth kept at [\d.]+% of positions/);
    expect(a.out).toMatch(/step 2\/2 .*loss .*ETA/);
    expect(a.out).toMatch(/trained steps 1\.\.2; checkpoint: .*pt-ar.*checkpoint.safetensors/);
    const arCkpt = join(ptAr, 'checkpoint.safetensors');
    const { metadata } = await readSafetensorsFile(arCkpt);
    const extra = getJson<Record<string, any>>(metadata, 'extra');
    expect(extra.decoderWeights).toBe('ema');
    expect(extra.dataset).toBe('mnist');
    expect(extra.posttrain).toMatchObject({ kind: 'ar', control: false, images: 8, batchSize: 4, epochs: 1, lr: 5e-5, data: { rows: 'mixed tokens', sigma: 0.5, cfgScale: 1.5 } });
    expect(Math.abs(extra.posttrain.data.keptFraction - 0.5)).toBeLessThan(0.15); // 8 x 256 draws at 0.5: sd 0.011
    const d = await modelDiff(join(vq, 'checkpoint.safetensors'), arCkpt);
    expect(d.changed.length).toBeGreaterThan(0);
    expect(d.changed.every((k) => k.startsWith('model.decoder.'))).toBe(true);
    expect(d.same.some((k) => k.startsWith('model.encoder.'))).toBe(true);
    expect(d.same.filter((k) => !k.startsWith('model.decoder.')).length).toBe(Object.keys((await readSafetensorsFile(arCkpt)).tensors).filter((k) => k.startsWith('model.') && !k.startsWith('model.decoder.')).length);

    // Resume: nothing retrained, the data not rebuilt, the checkpoint unchanged.
    const bytes = readFileSync(arCkpt);
    const r = await ok(arRun);
    expect(r.out).toMatch(/resumed from .*checkpoint.safetensors at step 2/);
    expect(r.out).toMatch(/already complete: .* is at step 2 of 2/);
    expect(r.out).not.toMatch(/mixed sequences|step [12]\//);
    expect(readFileSync(arCkpt).equals(bytes)).toBe(true);
    await bad([...arRun, '--sigma', '0.7'], /was trained with --sigma 0.5, not 0.7: pass the same value to resume, or --fresh/);
    await bad([...arRun, '--batch', '2'], /was trained with --batch 4, not 2/); // (--epochs, a schedule flag, is applied instead)
    await bad(['posttrain', '--tokenizer', vq2, '--generator', ar, '--out', ptAr], /--generator .*ar.* was trained on the codes of another tokenizer .*sha256 [0-9a-f]{12}\.\.\., not --tokenizer .*vq2/);

    // The output is a tokenizer: eval-tokenizer, sample-ar --tokenizer, and a chained post-training.
    await ok(['eval-tokenizer', '--checkpoint', ptAr, '--featnet', 'random', '--limit', '8', '--batch', '8', '--grid', '2', ...dev]);
    expect(JSON.parse(readFileSync(join(ptAr, 'eval.json'), 'utf8')).count).toBe(8);
    const s = await ok(['sample-ar', '--checkpoint', ar, '--tokenizer', ptAr, '--num', '10', '--batch', '10', '--limit-val', '10', '--featnet', 'random', '--grid', '1', '--out', join(dir, 'sample-ar'), ...dev]);
    expect(s.out).toMatch(/note: decoding with .*pt-ar/);
    // A post-trained tokenizer keeps its source's codes: the source's generator is accepted for it.
    await ok(['posttrain', '--tokenizer', ptAr, '--generator', ar, '--out', join(dir, 'pt-chain'), '--control', ...small]);
    // The control: clean tokens, same training.
    const c = await ok(['posttrain', '--tokenizer', vq, '--generator', ar, '--out', join(dir, 'pt-ar-control'), '--control', ...small]);
    expect(c.out).not.toMatch(/mixed sequences/);
    expect(c.out).toMatch(/decoder post-trained on the clean tokens of 8 mnist images/);
    // --capture: replayed steps write the same decoder (6 steps: 1 eager, 2 recorded, 3 replayed).
    const six = ['posttrain', '--tokenizer', vq, '--generator', ar, '--control', '--images', '8', '--batch', '4', '--epochs', '3', '--gen-batch', '8', '--log-every', '1', ...dev];
    await ok([...six, '--out', join(dir, 'pt-eager')]);
    const cap = await ok([...six, '--out', join(dir, 'pt-capture'), '--capture']);
    if (gpu) expect(cap.out).toMatch(/captured step: 3 replayed, 2 recorded, 1 eager steps/);
    expect((await modelDiff(join(dir, 'pt-eager', 'checkpoint.safetensors'), join(dir, 'pt-capture', 'checkpoint.safetensors'))).changed).toEqual([]);

    // Diffusion: latents noised to t* = 0.5 and denoised in 2 Euler steps.
    const ptKl = join(dir, 'pt-kl');
    const klRun = ['posttrain', '--tokenizer', kl, '--generator', dit, '--out', ptKl, '--t-star', '0.5', '--steps', '4', ...small];
    const k = await ok(klRun);
    expect(k.out).toMatch(/denoising 8 latents from t\* = 0.5 .*\(2 euler steps, cfg 1\)/);
    expect(k.out).toMatch(/RMS change [\d.]+/);
    expect(k.out).toMatch(/trained steps 1\.\.2/);
    const klCkpt = join(ptKl, 'checkpoint.safetensors');
    const dk = await modelDiff(join(kl, 'checkpoint.safetensors'), klCkpt);
    expect(dk.changed.length).toBeGreaterThan(0);
    expect(dk.changed.every((x) => x.startsWith('model.decoder.'))).toBe(true);
    expect(dk.same).toContain('model.latent_stats.mean');
    expect(dk.same).toContain('model.latent_stats.std');
    expect(getJson<Record<string, any>>((await readSafetensorsFile(klCkpt)).metadata, 'extra').posttrain.data).toMatchObject({ rows: 'denoised latents', tStar: 0.5, steps: 4, sampler: 'euler' });
    const k2 = await ok(klRun);
    expect(k2.out).toMatch(/already complete/);
    expect(k2.out).not.toMatch(/denoising/);
    await ok(['eval-tokenizer', '--checkpoint', ptKl, '--featnet', 'random', '--limit', '8', '--batch', '8', '--taus', '0.2', '--ifid-train', '8', '--ifid-k', '3', '--grid', '2', ...dev]);
    await ok(['sample-diffusion', '--checkpoint', dit, '--tokenizer', ptKl, '--num', '10', '--batch', '10', '--steps', '2', '--limit-val', '10', '--featnet', 'random', '--grid', '1', '--out', join(dir, 'sample-dit'), ...dev]);
    expect(existsSync(join(dir, 'sample-dit', 'samples.png'))).toBe(true);

    // Kind mismatches and flags of the other kind.
    const o = ['--out', join(dir, 'never')];
    await bad(['posttrain', '--tokenizer', kl, '--generator', ar, ...o], /--generator .* is an AR generator, but --tokenizer .* is a continuous tokenizer \(quantizer 'kl'\)/);
    await bad(['posttrain', '--tokenizer', vq, '--generator', dit, ...o], /--generator .* is a diffusion generator, but --tokenizer .* is a VQ tokenizer/);
    await bad(['posttrain', '--tokenizer', vq, '--generator', ar, '--t-star', '0.3', ...o], /--t-star is for a diffusion generator \(train-diffusion\); --generator .* is an AR generator \(train-ar\)/);
    await bad(['posttrain', '--tokenizer', kl, '--generator', dit, '--sigma', '0.7', ...o], /--sigma is for an AR generator \(train-ar\); --generator .* is a diffusion generator/);
    await bad(['posttrain', '--tokenizer', vq, '--generator', ar, '--control', '--sigma', '0.7', ...o], /--sigma has no effect with --control/);
    await bad(['posttrain', '--tokenizer', vq, '--generator', vq, ...o], /--generator .* is neither a train-ar nor a train-diffusion checkpoint/);
    await bad(['posttrain', '--tokenizer', ar, '--generator', ar, ...o], /--tokenizer .* is a generator checkpoint/);
    await bad(['posttrain', '--tokenizer', vq, '--generator', ar, '--sigma', '1.5', ...o], /--sigma must be in \[0, 1\], got 1.5/);
    await bad(['posttrain', '--tokenizer', vq, '--generator', ar, '--images', '2', '--batch', '4', ...o, ...dev], /--images 2 is less than one --batch of 4/);
    expect(existsSync(join(dir, 'never'))).toBe(false);
  }, 240_000);
});
