/**
 * Class consistency of class-conditional samples: the fraction a fixed classifier (the shipped
 * FeatNet) assigns to the class each sample was conditioned on, overall and per class, with a
 * Wilson score interval for the overall fraction (binomial sampling error of the samples drawn).
 * On real images with their labels it is the classifier's accuracy (FeatNet: ~90% on Fashion-MNIST
 * validation images); samples unrelated to their class score ~1 / numClasses. Browser-safe.
 */
import { normalQuantile } from './normal.js';

export interface ClassConsistencyRow {
  class: number;
  count: number;
  correct: number;
  /** correct / count (NaN for a class with no samples). */
  accuracy: number;
}

export interface ClassConsistency {
  /** Fraction of all samples classified as their conditioning class. */
  accuracy: number;
  count: number;
  correct: number;
  /** Wilson score interval of `accuracy` at `level`. */
  low: number;
  high: number;
  level: number;
  /** 1 / numClasses: what unrelated samples score. */
  chance: number;
  perClass: ClassConsistencyRow[];
}

/** Wilson score interval of k successes in n trials. */
export function wilsonInterval(k: number, n: number, level = 0.95): [number, number] {
  if (n === 0) return [NaN, NaN];
  const z = normalQuantile(1 - (1 - level) / 2);
  const p = k / n;
  const den = 1 + (z * z) / n;
  const centre = (p + (z * z) / (2 * n)) / den;
  const half = (z * Math.sqrt((p * (1 - p)) / n + (z * z) / (4 * n * n))) / den;
  return [Math.max(0, centre - half), Math.min(1, centre + half)];
}

/** Argmax class of each logits row [N, numClasses] (row-major; first maximum on ties). */
export function predictedClasses(logits: ArrayLike<number>, numClasses: number): Int32Array {
  if (!Number.isInteger(numClasses) || numClasses < 1) throw new RangeError(`predictedClasses: numClasses must be a positive integer, got ${numClasses}`);
  if (logits.length % numClasses !== 0) throw new Error(`predictedClasses: ${logits.length} logits are not a whole number of rows of ${numClasses}`);
  const n = logits.length / numClasses;
  const out = new Int32Array(n);
  for (let i = 0; i < n; i++) {
    let best = 0;
    const o = i * numClasses;
    for (let j = 1; j < numClasses; j++) if (logits[o + j]! > logits[o + best]!) best = j;
    out[i] = best;
  }
  return out;
}

/** Class consistency of samples with classifier logits [N, numClasses] and conditioning labels [N]. */
export function classConsistency(logits: ArrayLike<number>, numClasses: number, labels: ArrayLike<number>, level = 0.95): ClassConsistency {
  const pred = predictedClasses(logits, numClasses);
  if (labels.length !== pred.length) throw new Error(`classConsistency: ${pred.length} logits rows, ${labels.length} labels`);
  const count = new Int32Array(numClasses);
  const correct = new Int32Array(numClasses);
  for (let i = 0; i < pred.length; i++) {
    const c = labels[i]!;
    if (!(Number.isInteger(c) && c >= 0 && c < numClasses)) throw new RangeError(`classConsistency: label ${c} at index ${i} is not a class in [0, ${numClasses})`);
    count[c]!++;
    if (pred[i] === c) correct[c]!++;
  }
  const k = correct.reduce((a, b) => a + b, 0);
  const n = pred.length;
  const [low, high] = wilsonInterval(k, n, level);
  return {
    accuracy: n ? k / n : NaN,
    count: n,
    correct: k,
    low,
    high,
    level,
    chance: 1 / numClasses,
    perClass: Array.from({ length: numClasses }, (_, c) => ({ class: c, count: count[c]!, correct: correct[c]!, accuracy: count[c] ? correct[c]! / count[c]! : NaN })),
  };
}
