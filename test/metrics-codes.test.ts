/**
 * Codebook usage, code perplexity and the Inception-Score analogue (models/metrics/codes.ts).
 *
 * Tolerances: all float64 on small inputs. Closed forms (uniform / one-hot cases) to 1e-12
 * relative, except the perplexity of K = 16384 equally used codes: exp of an entropy summed over
 * K terms, whose rounding ~K eps ln K ~ 4e-11 allows 1e-10; the IS fixture (numpy float64, the IS paper's split rule) to 1e-12 relative: the
 * same sums of <= 50 x 10 terms in a possibly different order.
 */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { CodeHistogram, codePerplexity, codebookUsage, inceptionScore } from '../models/metrics/index.js';

interface IsCase {
  n: number;
  k: number;
  splits: number;
  logits: number[];
  mean: number;
  std: number;
}
const fixture = JSON.parse(readFileSync(new URL('./fixtures/fid.json', import.meta.url), 'utf8')) as { inception_score: IsCase[] };

const rel = (a: number, b: number) => Math.abs(a - b) / Math.abs(b);

describe('codebook usage and perplexity', () => {
  it('a worked example: codes {0, 1, 1, 3} of K = 8', () => {
    const idx = [0, 1, 1, 3];
    expect(codebookUsage(idx, 8)).toBe(37.5);
    // p = (1/4, 1/2, 1/4): H = 1.5 ln 2, perplexity 2^1.5
    expect(rel(codePerplexity(idx, 8), 2 ** 1.5)).toBeLessThan(1e-12);
  });

  it('uniform use of all K codes: 100% and perplexity K; a single code: 100/K % and perplexity 1', () => {
    for (const K of [1, 2, 7, 1024, 16384]) {
      const all = Int32Array.from({ length: 3 * K }, (_, i) => (i * 5) % K);
      expect(codebookUsage(all, K)).toBe(100);
      expect(rel(codePerplexity(all, K), K)).toBeLessThan(1e-10); // exp of a sum of K terms
      const one = new Int32Array(50).fill(K - 1);
      expect(codebookUsage(one, K)).toBeCloseTo(100 / K, 12);
      expect(codePerplexity(one, K)).toBe(1);
    }
  });

  it('accumulating batches equals one pass; empty histogram', () => {
    const K = 64;
    const idx = Array.from({ length: 500 }, (_, i) => Math.floor(K * Math.abs(Math.sin(i * 12.9898)) ** 2) % K);
    const h = new CodeHistogram(K);
    h.add(idx.slice(0, 100)).add([]).add(new Int32Array(idx.slice(100)));
    expect(h.total).toBe(500);
    expect(h.used).toBe(new Set(idx).size);
    expect(h.usage()).toBe(codebookUsage(idx, K));
    expect(rel(h.perplexity(), codePerplexity(idx, K))).toBeLessThan(1e-14);
    expect(h.perplexity()).toBeLessThanOrEqual(h.used);
    expect(new CodeHistogram(4).perplexity()).toBeNaN();
    expect(new CodeHistogram(4).usage()).toBe(0);
  });

  it('rejects indices outside [0, K) and bad K', () => {
    expect(() => codebookUsage([0, 8], 8)).toThrow(/index 8 at position 1 is not a code in \[0, 8\)/);
    expect(() => codebookUsage([-1], 8)).toThrow(/index -1/);
    expect(() => codebookUsage([0.5], 8)).toThrow(/index 0.5/);
    expect(() => new CodeHistogram(0)).toThrow(/positive integer/);
  });
});

describe('Inception-Score analogue', () => {
  it('equal predictions give 1; confident predictions spread evenly over K classes give K', () => {
    const K = 10;
    const N = 40;
    const flat = new Float64Array(N * K).fill(0.3);
    const a = inceptionScore(flat, K, 4);
    expect(a.mean).toBeCloseTo(1, 12);
    expect(a.std).toBeCloseTo(0, 12);
    const onehot = new Float64Array(N * K);
    for (let n = 0; n < N; n++) onehot[n * K + (n % K)] = 1000; // softmax is exactly one-hot in float64
    const b = inceptionScore(onehot, K, 4);
    expect(rel(b.mean, K)).toBeLessThan(1e-12);
    expect(b.splits).toHaveLength(4);
    // confident but all the same class: 1
    const same = new Float64Array(N * K);
    for (let n = 0; n < N; n++) same[n * K + 2] = 1000;
    expect(inceptionScore(same, K, 1).mean).toBeCloseTo(1, 12);
  });

  it('matches the IS paper code (numpy float64) including uneven splits', () => {
    for (const c of fixture.inception_score) {
      const s = inceptionScore(c.logits, c.k, c.splits);
      expect(rel(s.mean, c.mean), `n=${c.n} k=${c.k} splits=${c.splits}`).toBeLessThan(1e-12);
      if (c.std === 0) expect(s.std).toBe(0);
      else expect(rel(s.std, c.std)).toBeLessThan(1e-9);
    }
  });

  it('validates shapes and splits', () => {
    expect(() => inceptionScore([1, 2, 3], 2)).toThrow(/whole number of rows of 2 classes/);
    expect(() => inceptionScore([1, 2, 3, 4], 2, 3)).toThrow(/splits must be an integer in \[1, N=2\]/);
    expect(() => inceptionScore([1, Infinity], 2, 1)).toThrow(/non-finite/);
  });
});
