/**
 * The study pipeline end to end at its smallest size (examples/robustok, preset 'tiny': 128
 * Fashion-MNIST training images at 16x16; discrete arm: two VQ tokenizers, two AR generators,
 * post-training; continuous arm: two KL tokenizers, two diffusion generators, post-training; the
 * report), then a second run over the same folder, which must reuse every finished stage.
 */
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { TINY, validateStudy, type StudyConfig } from '../examples/robustok/config.js';
import { runStudy } from '../examples/robustok/study.js';
import { finishedRecord } from '../examples/robustok/context.js';
import { requireGpu } from './helpers/backends.js';

const gpu = await requireGpu();

describe.runIf(gpu)('robustok study (tiny preset)', () => {
  const out = mkdtempSync(join(tmpdir(), 'robustok-'));
  afterAll(() => rmSync(out, { recursive: true, force: true }));

  it('runs every stage, writes the records and the report, and resumes without retraining', async () => {
    const lines: string[] = [];
    const r = await runStudy({ backend: gpu!, cfg: TINY, outDir: out, log: (l) => lines.push(l) });
    expect(r.tokenizers.map((t) => t.name)).toEqual(TINY.tokenizer.variants.map((v) => v.name));
    expect(r.generators).toHaveLength(2);
    for (const t of r.tokenizers) {
      for (const v of [t.eval.rfid, t.eval.psnr, t.eval.ssim, ...t.eval.pfid.map((p) => p.fid)]) expect(Number.isFinite(v)).toBe(true);
      expect(t.eval.count).toBe(TINY.valImages);
      expect(existsSync(t.reconGrid)).toBe(true);
    }
    for (const g of r.generators) {
      expect(Number.isFinite(g.gfid) && g.gfid > 0).toBe(true);
      expect(g.numImages).toBe(TINY.sampling.numImages);
      expect(existsSync(g.sampleGrid) && existsSync(g.samples)).toBe(true);
    }
    const p = r.posttrain!;
    expect(p.tokenizer).toBe(r.generators.reduce((a, b) => (b.gfid < a.gfid ? b : a)).tokenizer);
    // 32 images x 16 tokens at sigma 0.7: 5 sd of the kept fraction is 0.1.
    expect(Math.abs(p.keptFraction - TINY.posttrain.sigma)).toBeLessThan(0.1);
    expect(Number.isFinite(p.after.gfid) && Number.isFinite(p.after.rfid)).toBe(true);
    expect(Number.isFinite(p.control!.gfid) && p.control!.gfid !== p.after.gfid).toBe(true);

    const k = TINY.continuous!;
    const c = r.continuous!;
    expect(c.tokenizers.map((t) => t.name)).toEqual(k.tokenizer.variants.map((v) => v.name));
    expect(c.generators.map((g) => g.tokenizer)).toEqual(k.tokenizer.variants.map((v) => v.name));
    for (const t of c.tokenizers) {
      expect(t.eval.nfid.map((e) => e.tau)).toEqual(k.eval.taus);
      expect(t.eval.nfidDefault.tau).toBe(k.eval.nfidTau);
      for (const v of [t.eval.rfid, t.eval.ifid!, t.eval.psnr, t.eval.ssim, ...t.eval.nfid.map((e) => e.fid)]) expect(Number.isFinite(v)).toBe(true);
      expect([t.eval.count, t.eval.ifidTrainCount, t.eval.ifidK]).toEqual([TINY.valImages, k.eval.ifidMaxTrain, k.eval.ifidK]);
      expect(t.latentStats.std.every((v) => v > 0 && v !== 1)).toBe(true); // measured after training
      expect(existsSync(t.reconGrid)).toBe(true);
    }
    for (const g of c.generators) {
      expect(Number.isFinite(g.gfid) && g.gfid > 0).toBe(true);
      expect(g.numImages).toBe(k.sampling.numImages);
      expect(existsSync(g.sampleGrid) && existsSync(g.samples)).toBe(true);
    }
    const cp = c.posttrain!;
    expect(cp.tokenizer).toBe(c.generators.reduce((a, b) => (b.gfid < a.gfid ? b : a)).tokenizer);
    // before is the generator stage's gFID of the same saved latents, decoded by the same decoder.
    expect(cp.before.gfid).toBe(c.generators.find((g) => g.tokenizer === cp.tokenizer)!.gfid);
    expect(cp.latentRmsChange).toBeGreaterThan(0); // the generator moved the noised latents
    for (const s of [cp.after, cp.control!]) for (const v of [s.gfid, s.rfid, s.nfid, s.psnr]) expect(Number.isFinite(v)).toBe(true);
    expect(cp.control!.gfid).not.toBe(cp.after.gfid);

    const html = readFileSync(r.reportPath, 'utf8');
    for (const s of ['Tokenizers', 'Generators', 'Does pFID track gFID?', 'Decoder post-training', 'control (clean tokens', 'recon.png', 'samples.png', '<svg']) expect(html).toContain(s);
    for (const s of ['Continuous tokenizers (KL)', 'Diffusion generators', 'Do nFID / iFID track gFID?', 'Decoder post-training, continuous', 'control (clean latents', 'continuous/tokenizers/kl-baseline/recon.png', 'continuous/generators/kl-noised/samples.png']) expect(html).toContain(s);
    const results = JSON.parse(readFileSync(join(out, 'results.json'), 'utf8'));
    expect(results.correlations.pfid.spearman.reason).toMatch(/at least 3/); // two tokenizers: no correlation claimed
    expect(results.continuous.correlations.ifid.spearman.reason).toMatch(/at least 3/);

    const again: string[] = [];
    const r2 = await runStudy({ backend: gpu!, cfg: TINY, outDir: out, log: (l) => again.push(l) });
    expect(again.filter((l) => l.includes('done earlier'))).toHaveLength(10); // 2 + 2 + 1 stages per arm
    expect(again.some((l) => /^step \d+\//.test(l))).toBe(false);
    expect(r2.generators.map((g) => g.gfid)).toEqual(r.generators.map((g) => g.gfid));
    expect(r2.posttrain!.after.gfid).toBe(p.after.gfid);
    expect(r2.continuous!.generators.map((g) => g.gfid)).toEqual(c.generators.map((g) => g.gfid));
    expect(r2.continuous!.posttrain!.after.gfid).toBe(cp.after.gfid);
  });
});

describe('validateStudy (continuous arm)', () => {
  it('accepts the presets and lists every bad continuous field in one error', () => {
    expect(() => validateStudy(TINY)).not.toThrow();
    const k = TINY.continuous!;
    const bad: StudyConfig = {
      ...TINY,
      continuous: {
        ...k,
        tokenizer: { ...k.tokenizer, variants: [k.tokenizer.variants[0]!, { ...k.tokenizer.variants[0]!, latentNoise: { beta: 2, tauMax: 1, gamma: 3 } }] },
        eval: { ...k.eval, nfidTau: 0.25 },
        diffusion: { ...k.diffusion, dim: 30, patchSize: 3 },
        sampling: { ...k.sampling, sampler: 'rk4' as 'euler' },
        posttrain: { ...k.posttrain, tStar: 1.5 },
      },
    };
    let msg = '';
    try {
      validateStudy(bad);
    } catch (e) {
      msg = (e as Error).message;
    }
    for (const s of ["'kl-baseline' is used twice", 'beta must be in [0, 1]', 'nfidTau 0.25 must be one of', 'dim 30 must be a multiple of 4', 'not divisible by diffusion.patchSize 3', "sampler must be 'euler' or 'heun'", 'tStar must be in [0, 1]']) expect(msg).toContain(s);
  });
});

describe('finishedRecord (resuming a study stage)', () => {
  it('returns the record only when it parses, matches and its files exist; a cut-off record reruns the stage', () => {
    const dir = mkdtempSync(join(tmpdir(), 'robustok-record-'));
    try {
      const lines: string[] = [];
      const same = (r: { steps: number }) => r.steps === 10;
      expect(finishedRecord(dir, same)).toBeNull(); // nothing there
      writeFileSync(join(dir, 'record.json'), JSON.stringify({ steps: 10 }));
      expect(finishedRecord(dir, same)).toEqual({ steps: 10 });
      expect(finishedRecord(dir, (r: { steps: number }) => r.steps === 20)).toBeNull(); // other settings
      expect(finishedRecord(dir, same, ['checkpoint.safetensors'])).toBeNull(); // its checkpoint is missing
      writeFileSync(join(dir, 'checkpoint.safetensors'), '');
      expect(finishedRecord(dir, same, ['checkpoint.safetensors'])).toEqual({ steps: 10 });
      writeFileSync(join(dir, 'record.json'), '{"steps": 1');
      expect(finishedRecord(dir, same, [], (l) => lines.push(l))).toBeNull();
      expect(lines[0]).toMatch(/record\.json is not valid JSON .*running the stage again/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
