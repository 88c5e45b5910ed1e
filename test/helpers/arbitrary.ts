/** fast-check generators for shapes and values. */
import fc from 'fast-check';

/** Shapes of rank 0..maxRank with dims 1..maxDim (sizes deliberately not multiples of 64/256). */
export function shapeArb(maxRank = 4, maxDim = 7, minRank = 0): fc.Arbitrary<number[]> {
  return fc.array(fc.integer({ min: 1, max: maxDim }), { minLength: minRank, maxLength: maxRank });
}

/** A float32-representable value (subnormals flushed): what a GPU f32 buffer can hold exactly. */
export function f32(v: number): number {
  const r = Math.fround(v);
  return Math.abs(r) < 1.1754943508222875e-38 ? 0 : r;
}

export function valuesArb(n: number, min = -3, max = 3): fc.Arbitrary<number[]> {
  return fc.array(fc.double({ min, max, noNaN: true, noDefaultInfinity: true }).map(f32), { minLength: n, maxLength: n });
}

export function tensorArb(shape: fc.Arbitrary<number[]>, min = -3, max = 3) {
  return shape.chain((s) => valuesArb(s.reduce((a, b) => a * b, 1), min, max).map((data) => ({ shape: s, data })));
}

/** Two shapes that broadcast together: derived from one shape by setting some dims to 1 / dropping leading dims. */
export function broadcastPairArb(maxRank = 4, maxDim = 6) {
  return shapeArb(maxRank, maxDim).chain((s) =>
    fc.tuple(
      fc.array(fc.boolean(), { minLength: s.length, maxLength: s.length }),
      fc.array(fc.boolean(), { minLength: s.length, maxLength: s.length }),
      fc.nat(s.length),
    ).map(([ma, mb, drop]) => {
      const a = s.map((d, i) => (ma[i] ? 1 : d));
      const b = s.map((d, i) => (mb[i] ? 1 : d)).slice(drop);
      return [a, b] as [number[], number[]];
    }),
  );
}
