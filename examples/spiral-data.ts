/** The classic 2-D spiral classification data set (CS231n style), deterministic in its seed. */
export interface Spiral {
  x: Float32Array; // [n * classes, 2]
  y: Int32Array; // [n * classes]
  n: number;
}

/** Mulberry32: a tiny seeded PRNG so the data set is the same everywhere. */
function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export function makeSpiral(pointsPerClass: number, classes: number, seed = 0): Spiral {
  const rand = mulberry32(seed);
  const n = pointsPerClass * classes;
  const x = new Float32Array(n * 2);
  const y = new Int32Array(n);
  for (let c = 0; c < classes; c++) {
    for (let i = 0; i < pointsPerClass; i++) {
      const k = c * pointsPerClass + i;
      const r = i / pointsPerClass;
      const t = (c * 4 + (4 * i) / pointsPerClass) + (rand() - 0.5) * 0.4;
      x[2 * k] = r * Math.sin(t);
      x[2 * k + 1] = r * Math.cos(t);
      y[k] = c;
    }
  }
  return { x, y, n };
}
