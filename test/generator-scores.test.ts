/**
 * examples/robustok/generator-scores.ts: finds every generator record of a study folder (training
 * seeds, generator-spread seeds, both arms) and correlates class consistency with gFID.
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { collectGeneratorScores, consistencyVsGfid, scoresMarkdown } from '../examples/robustok/generator-scores.js';
import { spearman } from '../models/metrics/correlation.js';

const root = mkdtempSync(join(tmpdir(), 'generator-scores-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));

function record(dir: string, tokenizer: string, gfid: number, cc: number): void {
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'record.json'), JSON.stringify({ tokenizer, gfid, gfidError: { standardError: 1.5 }, classConsistency: { accuracy: cc }, finalLoss: 1.25 }));
}

describe('generator-scores', () => {
  it('collects the study seeds, generator-spread seeds and the diffusion arm; correlates class consistency with gFID', () => {
    writeFileSync(join(root, 'results.json'), JSON.stringify({ cfg: { seed: 7 } }));
    record(join(root, 'generators', 'a'), 'a', 40, 0.8);
    record(join(root, 'generators', 'b'), 'b', 60, 0.6);
    record(join(root, 'seeds', 'seed-8', 'generators', 'a'), 'a', 50, 0.75);
    record(join(root, 'seeds', 'seed-8', 'generators', 'b'), 'b', 30, 0.85);
    record(join(root, 'generator-spread', 'a', 'seed-100', 'generators', 'a'), 'a', 70, 0.5);
    record(join(root, 'continuous', 'generators', 'k'), 'k', 35, 0.9);
    mkdirSync(join(root, 'generators', 'unfinished'), { recursive: true }); // no record yet: skipped
    const rows = collectGeneratorScores(root);
    expect(rows.map((r) => `${r.arm}/${r.source}/${r.tokenizer}`)).toEqual(['AR/study seed 7/a', 'AR/study seed 7/b', 'diffusion/study seed 7/k', 'AR/study seed 8/a', 'AR/study seed 8/b', 'AR/spread a seed 100/a']);
    const ar = rows.filter((r) => r.arm === 'AR');
    const c = consistencyVsGfid(ar)!;
    expect(c.spearman.interval.estimate).toBeCloseTo(spearman(ar.map((r) => r.classConsistency), ar.map((r) => r.gfid)).r, 12);
    expect(c.spearman.interval.estimate).toBe(-1); // perfectly ranked: higher consistency, lower gFID
    expect(c.spearman.permutation.exact).toBe(true);
    expect(c.spearman.permutation.p).toBeCloseTo(2 / 120, 12); // two-sided, n = 5: 2 of 5! orderings as extreme
    expect(consistencyVsGfid(rows.filter((r) => r.arm === 'diffusion'))).toBeNull();
    expect(scoresMarkdown(rows)).toContain('| AR | spread a seed 100 | a | 70.00 ± 1.50 | 50.0% | 1.250 |');
    expect(() => collectGeneratorScores(join(root, 'missing'))).toThrow(/generator-scores: no folder/);
  });
});
