/**
 * Class consistency (models/metrics/class-consistency.ts) as the study measures it: class logits
 * kept in order by ImageFeatureStats, then the fraction classified as the conditioning class.
 * - synthetic logits: counts per class, ties go to the first class, bad labels are refused;
 * - the shipped FeatNet on the fixed first 512 Fashion-MNIST validation images (padded to 32x32)
 *   with their true labels: its accuracy, recorded in the weights' sidecar JSON (91.0% on these
 *   images), within 1% (another device's rounding may flip a near-tie), so at least 85%;
 * - the same images with their labels shuffled (seeded): about chance. With 10 roughly balanced
 *   classes the expected fraction is sum p_c^2 ~ 0.1 and its sd ~ sqrt(0.1 * 0.9 / 512) = 0.013,
 *   so below 0.2 by 7 sd.
 */
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import * as E from '../engine/index.js';
import { featnetFromSafetensors } from '../models/features/featnet.js';
import { classConsistency, ImageFeatureStats, predictedClasses, SeededRandom } from '../models/metrics/index.js';
import { loadFashionMNIST } from '../node/data/index.js';
import { requireGpu } from './helpers/backends.js';

const gpu = await requireGpu();
const WEIGHTS = join(dirname(fileURLToPath(import.meta.url)), '..', 'models', 'features', 'weights');

describe('classConsistency (synthetic logits)', () => {
  it('counts per class, breaks ties to the first class and gives a Wilson interval around the fraction', () => {
    // rows: argmax 2, 0, 1 (tie 1/2 -> 1), 2
    const logits = [0, 1, 5, 3, 1, 1, 0, 4, 4, 0, 0, 1];
    expect(Array.from(predictedClasses(logits, 3))).toEqual([2, 0, 1, 2]);
    const cc = classConsistency(logits, 3, [2, 0, 2, 1]);
    expect([cc.correct, cc.count, cc.accuracy, cc.chance]).toEqual([2, 4, 0.5, 1 / 3]);
    expect(cc.perClass.map((c) => [c.count, c.correct])).toEqual([[1, 1], [1, 0], [2, 1]]);
    expect(cc.low).toBeLessThan(0.5);
    expect(cc.high).toBeGreaterThan(0.5);
    expect(() => classConsistency(logits, 3, [0, 1, 2, 3])).toThrow(/label 3 at index 3/);
  });
});

describe.runIf(gpu)('class consistency of real images with the shipped FeatNet', () => {
  it('is FeatNet accuracy with the true labels and about chance with shuffled labels', async () => {
    const net = featnetFromSafetensors(new Uint8Array(readFileSync(join(WEIGHTS, 'featnet-fashion.safetensors'))), gpu!);
    const recorded = JSON.parse(readFileSync(join(WEIGHTS, 'featnet-fashion.json'), 'utf8')).valAccuracyFirst512 as number;
    const { val } = loadFashionMNIST({ pad: 2 });
    const n = 512;
    const [, c, h, w] = val.shape;
    const px = val.images.subarray(0, n * c * h * w);
    const stats = new ImageFeatureStats(net);
    for (let s = 0; s < n; s += 128) {
      const part = px.subarray(s * c * h * w, (s + 128) * c * h * w);
      using x = E.tensor(Float32Array.from(part, (v) => (v / 255) * 2 - 1), [128, c, h, w], { backend: gpu! });
      await stats.add(x);
    }
    net.dispose();
    const l = stats.logits()!;
    const labels = val.labels.subarray(0, n);
    const real = classConsistency(l.values, l.numClasses, labels);
    expect(real.count).toBe(n);
    expect(Math.abs(real.accuracy - recorded)).toBeLessThan(0.01);
    expect(real.accuracy).toBeGreaterThan(0.85);
    const shuffled = new SeededRandom(3).shuffle(Int32Array.from(labels));
    const chance = classConsistency(l.values, l.numClasses, shuffled);
    expect(chance.accuracy).toBeLessThan(0.2);
    expect(chance.accuracy).toBeGreaterThan(0.02);
  });
});
