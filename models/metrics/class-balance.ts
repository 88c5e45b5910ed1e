/**
 * Class-balanced generation bookkeeping shared by the AR and diffusion generators: sample i has
 * class i mod numClasses, and a per-class grid shows the first samples of each class.
 */

/** Labels 0, 1, ..., numClasses - 1, 0, 1, ... for n samples. */
export function classBalancedLabels(n: number, numClasses: number): Int32Array {
  return Int32Array.from({ length: n }, (_, i) => i % numClasses);
}

/**
 * Indices of the first `perClass` samples of each class 0..numClasses-1, class by class, with
 * perClass reduced to the count of the rarest class; throws when a class has no sample.
 */
export function pickPerClass(labels: ArrayLike<number>, numClasses: number, perClass: number): { picked: number[]; perRow: number } {
  const counts = new Map<number, number>();
  for (let i = 0; i < labels.length; i++) counts.set(labels[i]!, (counts.get(labels[i]!) ?? 0) + 1);
  const perRow = Math.min(perClass, ...Array.from({ length: numClasses }, (_, c) => counts.get(c) ?? 0));
  if (!(perRow >= 1)) throw new Error(`classGrid: every class 0..${numClasses - 1} needs at least one sample`);
  const picked: number[] = [];
  for (let c = 0; c < numClasses; c++) {
    let n = 0;
    for (let i = 0; i < labels.length && n < perRow; i++) if (labels[i] === c) (picked.push(i), n++);
  }
  return { picked, perRow };
}
