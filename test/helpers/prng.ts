/** Mulberry32: a tiny seeded PRNG for deterministic test inputs too big for fast-check arrays. */
export function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** n float32-representable values uniform in [lo, hi). */
export function uniformValues(n: number, seed: number, lo = -1, hi = 1): number[] {
  const r = mulberry32(seed);
  return Array.from({ length: n }, () => Math.fround(lo + (hi - lo) * r()));
}
