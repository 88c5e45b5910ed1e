/**
 * The study pipeline end to end at its smallest size (examples/robustok, preset 'tiny': 128
 * Fashion-MNIST training images at 16x16, two tokenizers, two AR generators, post-training, report),
 * then a second run over the same folder, which must reuse every finished stage.
 */
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { TINY } from '../examples/robustok/config.js';
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
    const html = readFileSync(r.reportPath, 'utf8');
    for (const s of ['Tokenizers', 'Generators', 'Does pFID track gFID?', 'Decoder post-training', 'control (clean tokens', 'recon.png', 'samples.png', '<svg']) expect(html).toContain(s);
    const results = JSON.parse(readFileSync(join(out, 'results.json'), 'utf8'));
    expect(results.correlations.pfid.spearman.reason).toMatch(/at least 3/); // two tokenizers: no correlation claimed

    const again: string[] = [];
    const r2 = await runStudy({ backend: gpu!, cfg: TINY, outDir: out, log: (l) => again.push(l) });
    expect(again.filter((l) => l.includes('done earlier'))).toHaveLength(5);
    expect(again.some((l) => /^step \d+\//.test(l))).toBe(false);
    expect(r2.generators.map((g) => g.gfid)).toEqual(r.generators.map((g) => g.gfid));
    expect(r2.posttrain!.after.gfid).toBe(p.after.gfid);
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
