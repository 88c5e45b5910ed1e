/**
 * Reductions: every kernel (sum/max/min/argmax/argmin) and composite (mean/var/logsumexp) on the
 * GPU vs the float64 reference, over generated shapes, axis subsets and keepdim, on contiguous
 * and permuted/sliced inputs, including ranges long enough to take the multi-pass (split) path.
 *
 * Tolerances: max/min/argmax/argmin select an input element, so they must match exactly (ties:
 * first index). A float32 sum of n terms computed as short sequential folds (<= 32 terms) combined
 * by trees has a worst-case error of about (32 + log2 n) * 2^-24 * sum|x| < 4e-6 * sum|x| for the
 * sizes here; sums are checked against |err| <= 4e-6 * sum|x| + 1e-6 (mean: divided by n). var
 * and logsumexp chain a few f32 ops (subtract, square, exp/log) on top: 1e-4 relative + 1e-5 absolute.
 * Gradients are float64 against central differences (eps 1e-6): 1e-5 relative + 1e-6 absolute.
 */
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as E from '../engine/index.js';
import { kernelKeysOf } from './helpers/kernel-keys.js';
import { requireGpu } from './helpers/backends.js';
import { expectClose, expectGradMatchesFD, make, type InputSpec } from './helpers/compare.js';
import { f32, shapeArb, valuesArb } from './helpers/arbitrary.js';

const gpu = await requireGpu();
const ref = E.cpuF64;

type Case = { shape: number[]; data: number[]; axes: number[]; keepdim: boolean; view: number };

/** Shapes of small and occasionally long dims (total size capped), so group sizes and splits vary. */
function bigShapeArb(): fc.Arbitrary<number[]> {
  return fc
    .array(fc.oneof({ weight: 3, arbitrary: fc.integer({ min: 1, max: 7 }) }, { weight: 1, arbitrary: fc.integer({ min: 30, max: 3000 }) }), { minLength: 1, maxLength: 4 })
    .filter((s) => s.reduce((a, b) => a * b, 1) <= 150_000);
}

function caseArb(shapes: fc.Arbitrary<number[]>, ties: boolean): fc.Arbitrary<Case> {
  return shapes.chain((shape) =>
    fc.record({
      shape: fc.constant(shape),
      data: valuesArb(shape.reduce((a, b) => a * b, 1), -3, 3).map((d) => (ties ? d.map((v) => Math.round(v) + 0) : d)),
      axes: fc.subarray(shape.map((_, i) => i)),
      keepdim: fc.boolean(),
      view: fc.integer({ min: 0, max: 2 }),
    }),
  );
}

/** The input as given (0), reversed-axes permutation (1) or a strided slice (2) of a larger tensor. */
function viewOf(c: Case, b: E.Backend): E.Tensor {
  if (c.view === 0) return make(c, b);
  if (c.view === 1) {
    // Store the transposed layout, then permute back: same logical tensor, reversed strides.
    const rev = [...c.shape].reverse();
    const data = new Array<number>(c.data.length);
    const strides = E.contiguousStrides(c.shape);
    const rstrides = E.contiguousStrides(rev);
    for (let i = 0; i < c.data.length; i++) {
      let rem = i;
      let j = 0;
      for (let d = 0; d < c.shape.length; d++) {
        const id = Math.floor(rem / strides[d]!);
        rem -= id * strides[d]!;
        j += id * rstrides[c.shape.length - 1 - d]!;
      }
      data[j] = c.data[i]!;
    }
    const perm = c.shape.map((_, i) => c.shape.length - 1 - i);
    return E.tensor(data, rev, { backend: b }).permute(perm);
  }
  // view 2: embed in a tensor with every dim doubled plus one and take [1::2] along each.
  const big = c.shape.map((d) => 2 * d + 1);
  const n = big.reduce((a, d) => a * d, 1);
  const data = new Array<number>(n).fill(1e6); // poison: must never be read
  const bs = E.contiguousStrides(big);
  const s = E.contiguousStrides(c.shape);
  for (let i = 0; i < c.data.length; i++) {
    let rem = i;
    let j = 0;
    for (let d = 0; d < c.shape.length; d++) {
      const id = Math.floor(rem / s[d]!);
      rem -= id * s[d]!;
      j += (2 * id + 1) * bs[d]!;
    }
    data[j] = c.data[i]!;
  }
  return E.tensor(data, big, { backend: b }).slice(c.shape.map((d) => [1, 2 * d + 1, 2] as [number, number, number]));
}

async function both(c: Case, f: (x: E.Tensor) => E.Tensor): Promise<{ got: E.Tensor; want: E.Tensor }> {
  const want = E.tidy(() => f(viewOf(c, ref)));
  const got = E.tidy(() => f(viewOf(c, gpu!)));
  expect(got.shape).toEqual(want.shape);
  expect(got.dtype).toBe(want.dtype);
  return { got, want };
}

async function checkSumLike(c: Case, f: (x: E.Tensor) => E.Tensor, scale: number): Promise<void> {
  const { got, want } = await both(c, f);
  const bound = E.tidy(() => E.sum(E.abs(make(c, ref)), c.axes, c.keepdim));
  const b = await bound.toArray();
  const g = await got.toArray();
  const w = await want.toArray();
  for (let i = 0; i < w.length; i++) {
    const err = Math.abs(g[i]! - w[i]!);
    if (!(err <= (4e-6 * b[i]! + 1e-6) * scale)) expect.fail(`[${i}] got ${g[i]} want ${w[i]} (err ${err}, sum|x| ${b[i]}) shape ${c.shape} axes ${c.axes}`);
  }
  for (const t of [got, want, bound]) t.dispose();
}

async function checkExact(c: Case, f: (x: E.Tensor) => E.Tensor): Promise<void> {
  const { got, want } = await both(c, f);
  expect(Array.from(await got.toArray())).toEqual(Array.from(await want.toArray()));
  got.dispose();
  want.dispose();
}

const runs = { numRuns: 12 };

// The adapter's workgroup per row (from 8 invocations on lavapipe) and the GPUs' 256: both checked here.
for (const workgroup of [null, 256] as const) describe.runIf(gpu)(`reductions: GPU vs float64 reference (workgroup ${workgroup ?? 'by adapter'})`, () => {
  let restore = () => {};
  beforeAll(() => {
    restore = gpu!.tune({ reduce: { workgroup } });
  });
  afterAll(() => restore());
  for (const [label, shapes] of [
    ['small shapes', shapeArb(4, 7)],
    ['long dims', bigShapeArb()],
  ] as const) {
    it(`sum (${label})`, async () => {
      await fc.assert(fc.asyncProperty(caseArb(shapes, false), (c) => checkSumLike(c, (x) => E.sum(x, c.axes, c.keepdim), 1)), runs);
    });
    it(`mean (${label})`, async () => {
      await fc.assert(
        fc.asyncProperty(caseArb(shapes, false), (c) => {
          const n = c.axes.reduce((a, i) => a * c.shape[i]!, 1);
          return checkSumLike(c, (x) => E.mean(x, c.axes, c.keepdim), 1 / n);
        }),
        runs,
      );
    });
    for (const kind of ['max', 'min'] as const) {
      it(`${kind} with ties (${label})`, async () => {
        await fc.assert(fc.asyncProperty(caseArb(shapes, true), (c) => checkExact(c, (x) => E[kind](x, c.axes, c.keepdim))), runs);
      });
    }
    for (const kind of ['argmax', 'argmin'] as const) {
      it(`${kind} with ties: first index (${label})`, async () => {
        await fc.assert(
          fc.asyncProperty(caseArb(shapes, true), fc.nat(), (c, a) => {
            const axis = c.shape.length === 0 || a % 5 === 0 ? undefined : a % c.shape.length;
            return checkExact(c, (x) => E[kind](x, axis, c.keepdim));
          }),
          runs,
        );
      });
    }
    for (const correction of [0, 1]) {
      it(`var correction=${correction} (${label})`, async () => {
        await fc.assert(
          fc.asyncProperty(
            caseArb(shapes, false).filter((c) => c.axes.reduce((a, i) => a * c.shape[i]!, 1) > correction),
            async (c) => {
              const { got, want } = await both(c, (x) => E.variance(x, c.axes, { keepdim: c.keepdim, correction }));
              expectClose(await got.toArray(), await want.toArray(), { atol: 1e-5, rtol: 1e-4 }, 'var');
              got.dispose();
              want.dispose();
            },
          ),
          runs,
        );
      });
    }
    it(`logsumexp (${label})`, async () => {
      await fc.assert(
        fc.asyncProperty(caseArb(shapes, false), async (c) => {
          const { got, want } = await both(c, (x) => E.logsumexp(x, c.axes, c.keepdim));
          expectClose(await got.toArray(), await want.toArray(), { atol: 1e-5, rtol: 1e-5 }, 'logsumexp');
          got.dispose();
          want.dispose();
        }),
        runs,
      );
    });
  }

  it('two reduced dims walked as nested loops (the bias-gradient shape): sum, max and the flattened argmax, with views', async () => {
    const values = (n: number, ties: boolean) => Array.from({ length: n }, (_, i) => (ties ? Math.round(Math.sin(i * 0.7) * 3) : Math.sin(i * 0.37) * 2));
    for (const view of [0, 1, 2]) {
      for (const [shape, axes] of [
        [[3, 5, 17, 19], [0, 2, 3]],
        [[4, 3, 300], [0, 2]],
      ] as const) {
        const n = shape.reduce((a, b) => a * b, 1);
        const sumCase: Case = { shape: [...shape], data: values(n, false), axes: [...axes], keepdim: false, view };
        await checkSumLike(sumCase, (x) => E.sum(x, sumCase.axes), 1);
        const tieCase: Case = { ...sumCase, data: values(n, true) };
        await checkExact(tieCase, (x) => E.max(x, tieCase.axes));
        await checkExact(tieCase, (x) => E.argmax(x));
      }
    }
  });

  it('long sums stay accurate (multi-pass): 2^20 + 7 positive terms, and 3 x 300001 rows', async () => {
    const n = (1 << 20) + 7;
    const data = Float32Array.from({ length: n }, (_, i) => f32(1 + Math.sin(i * 0.37) * 0.9));
    let exact = 0;
    for (const v of data) exact += v;
    const x = E.tensor(data, [n], { backend: gpu! });
    const s = await E.sum(x).item();
    expect(Math.abs(s - exact) / exact).toBeLessThan(2e-6);
    // Equal terms make rounding systematic: one sequential loop per workgroup was off by ~2e-4,
    // 4096-term folds by 2e-6; 16-term folds + trees give ~2e-7.
    const c = E.full([n], 1.2840254, { backend: gpu! });
    const cs0 = await E.sum(c).item();
    expect(Math.abs(cs0 - n * f32(1.2840254)) / (n * f32(1.2840254))).toBeLessThan(5e-7);
    c.dispose();
    const rows = E.reshape(E.slice(x, [[0, 3 * 300001]]), [3, 300001]);
    const rs = await E.sum(rows, 1).toArray();
    for (let r = 0; r < 3; r++) {
      let e = 0;
      for (let i = 0; i < 300001; i++) e += data[r * 300001 + i]!;
      expect(Math.abs(rs[r]! - e) / e).toBeLessThan(2e-6);
    }
    // Column sums of a tall matrix (kept dim contiguous, split over rows).
    const cols = E.reshape(E.slice(x, [[0, 5 * 209715]]), [209715, 5]);
    const cs = await E.sum(cols, 0).toArray();
    for (let c = 0; c < 5; c++) {
      let e = 0;
      for (let i = 0; i < 209715; i++) e += data[i * 5 + c]!;
      expect(Math.abs(cs[c]! - e) / e).toBeLessThan(2e-6);
    }
    for (const t of [x, rows, cols]) t.dispose();
  });

  it('argmax/argmin/max over long ranges: first of tied extremes, NaN wins', async () => {
    const n = 200_003;
    const data = new Float32Array(n).map((_, i) => Math.sin(i) * 0.5);
    for (const i of [150_000, 70_001, 199_999]) data[i] = 2; // ties: first index is 70001
    for (const i of [123_457, 5]) data[i] = -2;
    const x = E.tensor(data, [n], { backend: gpu! });
    expect(await E.argmax(x).item()).toBe(70_001);
    expect(await E.argmin(x).item()).toBe(5);
    expect(await E.max(x).item()).toBe(2);
    expect(await E.min(x).item()).toBe(-2);
    // Per row of a [3, 66668] view (ties in different rows).
    const m = E.reshape(E.slice(x, [[0, 3 * 66_667]]), [3, 66_667]);
    const rowArg = [0, 1, 2].map((r) => {
      let b = 0;
      for (let i = 1; i < 66_667; i++) if (data[r * 66_667 + i]! > data[r * 66_667 + b]!) b = i;
      return b;
    });
    expect(rowArg.slice(1)).toEqual([70_001 - 66_667, 150_000 - 2 * 66_667]);
    expect(Array.from(await E.argmax(m, 1).toArray())).toEqual(rowArg);
    data[100_000] = NaN;
    data[180_000] = NaN;
    const xn = E.tensor(data, [n], { backend: gpu! });
    expect(await E.argmax(xn).item()).toBe(100_000);
    expect(await E.argmin(xn).item()).toBe(100_000);
    expect(Number.isNaN(await E.max(xn).item())).toBe(true);
    const iv = Int32Array.from({ length: n }, (_, i) => (i * 7919) % 100_003);
    let best = 0;
    let total = 0;
    for (let i = 0; i < n; i++) {
      if (iv[i]! > iv[best]!) best = i;
      total += iv[i]! % 1000;
    }
    const ai = E.tensor(iv, [n], { backend: gpu! });
    expect(await E.argmax(ai).item()).toBe(best);
    const small = E.tensor(iv.map((v) => v % 1000), [n], { backend: gpu! });
    expect(await E.sum(small).item()).toBe(total);
    small.dispose();
    for (const t of [x, m, xn, ai]) t.dispose();
  });

  it('-inf values and all-equal rows', async () => {
    const x = E.tensor([-Infinity, -Infinity, -Infinity, 1, 1, 1], [2, 3], { backend: gpu! });
    expect(Array.from(await E.max(x, 1).toArray())).toEqual([-Infinity, 1]);
    expect(Array.from(await E.argmax(x, 1).toArray())).toEqual([0, 0]);
    expect(Array.from(await E.argmin(x, 1).toArray())).toEqual([0, 0]);
  });

  it('empty outputs and empty reductions', async () => {
    const x = E.zeros([0, 3], { backend: gpu! });
    expect(E.sum(x, 1).shape).toEqual([0]);
    expect(E.max(x, 1, true).shape).toEqual([0, 1]);
    expect(Array.from(await E.sum(x, 0).toArray())).toEqual([0, 0, 0]);
    expect(await E.sum(x).item()).toBe(0);
    expect(() => E.max(x, 0)).toThrow(/max: cannot reduce over an empty dimension/);
    expect(() => E.argmax(x)).toThrow(/argmax: cannot reduce over an empty dimension/);
    x.dispose();
  });
});

describe.runIf(gpu)('reductions: workgroup by adapter', () => {
  it('software adapters fold contiguous rows in the smallest workgroup that takes one pass (from 8), strided rows and GPUs in 256; a bad tuning value names the field', async () => {
    const keysOf = (f: () => void) => kernelKeysOf(gpu!, f).filter((k) => k.startsWith('reduce|') || k.startsWith('softmax|'));
    const x = E.rand([64, 512], { backend: gpu!, generator: new E.Generator(1) });
    const software = gpu!.softwareAdapter !== null;
    // Rows of 512: 32 per lane for a sum (16 lanes), 64 per lane for a softmax (8 lanes).
    expect(keysOf(() => E.sum(x, 1).dispose())).toEqual([expect.stringMatching(software ? /\|wg16$/ : /\|false$/)]);
    expect(keysOf(() => E.logSoftmax(x, 1).dispose())).toEqual([expect.stringMatching(software ? /\|wg8$/ : /\|full$/)]);
    // Strided rows (a sum over the leading dim): 256 everywhere.
    expect(keysOf(() => E.sum(x, 0).dispose()).every((k) => !k.includes('|wg'))).toBe(true);
    const restore = gpu!.tune({ reduce: { workgroup: 12 } });
    try {
      expect(() => E.sum(x, 1)).toThrow(/tuning.reduce.workgroup must be a power of two from 8 to 256, got 12/);
    } finally {
      restore();
      x.dispose();
    }
  });
});

describe('reductions: CPU reference semantics', () => {
  it('argmax/argmin tie-breaking and NaN on the reference backend', async () => {
    const x = E.tensor([1, 3, 3, NaN, NaN, 0, 2, 0, 2], [3, 3], { backend: ref });
    expect(Array.from(await E.argmax(x, 1).toArray())).toEqual([1, 0, 0]);
    expect(Array.from(await E.argmin(x, 1).toArray())).toEqual([0, 0, 1]);
    expect(Array.from(await E.argmax(x, 0).toArray())).toEqual([1, 1, 0]);
  });
  it('errors name the op', () => {
    const x = E.zeros([2, 3], { backend: ref });
    expect(() => E.sum(x, 2)).toThrow(/sum: axis 2 is out of range/);
    expect(() => E.mean(x, [0, 0])).toThrow(/mean: repeated axis/);
    const i = E.zeros([2, 3], { dtype: 'i32', backend: ref });
    expect(() => E.mean(i)).toThrow(/mean: expected an f32 tensor, got .*i32/);
    expect(() => E.variance(i)).toThrow(/var: expected an f32 tensor/);
    expect(() => E.logsumexp(i)).toThrow(/logsumexp: expected an f32 tensor/);
  });
});

describe('reduction gradients vs finite differences (float64)', () => {
  const tol = { atol: 1e-6, rtol: 1e-5 };
  const gradCase = (distinct: boolean) =>
    shapeArb(3, 4, 1).chain((shape) => {
      const n = shape.reduce((a, b) => a * b, 1);
      return fc.record({
        spec: (distinct ? fc.shuffledSubarray([...Array(4 * n).keys()], { minLength: n, maxLength: n }).map((p) => p.map((v) => v * 0.25 - n / 2)) : valuesArb(n, -2, 2)).map(
          (data): InputSpec => ({ shape, data }),
        ),
        axes: fc.subarray(shape.map((_, i) => i), { minLength: 1 }),
        keepdim: fc.boolean(),
      });
    });
  const ops: [string, boolean, (x: E.Tensor, axes: number[], k: boolean) => E.Tensor][] = [
    ['sum', false, (x, a, k) => E.sum(x, a, k)],
    ['mean', false, (x, a, k) => E.mean(x, a, k)],
    ['max', true, (x, a, k) => E.max(x, a, k)],
    ['min', true, (x, a, k) => E.min(x, a, k)],
    ['var correction=0', false, (x, a, k) => E.variance(x, a, { keepdim: k, correction: 0 })],
    ['var correction=1', false, (x, a, k) => E.variance(x, a, { keepdim: k, correction: 1 })],
    ['logsumexp', false, (x, a, k) => E.logsumexp(x, a, k)],
  ];
  for (const [name, distinct, f] of ops) {
    it(name, async () => {
      await fc.assert(
        fc.asyncProperty(
          gradCase(distinct).filter((c) => !name.endsWith('=1') || c.axes.reduce((a, i) => a * c.spec.shape[i]!, 1) > 1),
          async (c) => {
            await expectGradMatchesFD((x) => f(x, c.axes, c.keepdim), [c.spec], tol);
          },
        ),
        { numRuns: 6 },
      );
    });
  }
  it('gradient through a permuted view', async () => {
    await expectGradMatchesFD((x) => E.variance(E.permute(x, [1, 0]), 0), [{ shape: [3, 4], data: [...Array(12).keys()].map((i) => Math.sin(i)) }], tol);
  });
});
