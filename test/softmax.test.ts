/**
 * softmax / logSoftmax: the fused GPU kernel vs the float64 reference over generated shapes and
 * axes, on contiguous, permuted and sliced inputs, short rows packed many per workgroup and long
 * rows spread over a workgroup; gradients and gradients of gradients vs finite differences.
 *
 * Tolerances: y = exp(v - m) / s. The f32 subtraction v - m errs by up to |v - m| * 2^-24
 * (|v - m| <= 60 here: 3.6e-6 absolute in the exponent, i.e. relative in y), GPU exp adds a few
 * ulp and s (a sum of <= ~40-term folds and a tree) errs by < 3e-6 relative: softmax is checked
 * to 2e-5 relative + 1e-7 absolute (tiny probabilities), log_softmax (= v - m - log s, absolute
 * error ~ 60 * 6e-8 + 3e-6) to 1e-5 absolute + 1e-5 relative. Gradients are float64 against
 * central differences: 1e-5 relative + 1e-6 absolute.
 */
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as E from '../engine/index.js';
import { requireGpu } from './helpers/backends.js';
import { expectClose, expectGradMatchesFD, expectMatchesReference, make, type InputSpec } from './helpers/compare.js';
import { shapeArb, valuesArb } from './helpers/arbitrary.js';

const gpu = await requireGpu();
const tolSoftmax = { atol: 1e-7, rtol: 2e-5 };
const tolLog = { atol: 1e-5, rtol: 1e-5 };

type Case = { x: InputSpec; axis: number; view: 'plain' | 'permuted' | 'sliced' };

function caseArb(shapes: fc.Arbitrary<number[]>, lo = -30, hi = 30): fc.Arbitrary<Case> {
  return shapes.chain((shape) =>
    fc.record({
      x: valuesArb(shape.reduce((a, b) => a * b, 1), lo, hi).map((data) => ({ shape, data })),
      axis: shape.length === 0 ? fc.constantFrom(0, -1) : fc.integer({ min: -shape.length, max: shape.length - 1 }),
      view: fc.constantFrom('plain' as const, 'permuted' as const, 'sliced' as const),
    }),
  );
}

/** The input as a view: reversed axes (strides reversed) or every other element of dim 0. */
function viewOf(x: E.Tensor, view: Case['view']): E.Tensor {
  if (view === 'permuted') return x.permute(x.shape.map((_, i) => x.rank - 1 - i));
  if (view === 'sliced' && x.rank > 0) return x.slice([[0, x.shape[0]!, 2]]);
  return x;
}

function bigShapeArb(): fc.Arbitrary<number[]> {
  return fc
    .array(fc.oneof({ weight: 2, arbitrary: fc.integer({ min: 1, max: 6 }) }, { weight: 1, arbitrary: fc.integer({ min: 100, max: 5000 }) }), { minLength: 1, maxLength: 3 })
    .filter((s) => s.reduce((a, b) => a * b, 1) <= 100_000);
}

// The adapter's workgroup per row (from 8 invocations on lavapipe) and the GPUs' 256: both checked here.
for (const workgroup of [null, 256] as const) describe.runIf(gpu)(`softmax / logSoftmax: GPU vs float64 reference (workgroup ${workgroup ?? 'by adapter'})`, () => {
  let restore = () => {};
  beforeAll(() => {
    restore = gpu!.tune({ reduce: { workgroup } });
  });
  afterAll(() => restore());
  for (const [label, shapes] of [
    ['small shapes', shapeArb(4, 9)],
    ['long rows and many rows', bigShapeArb()],
  ] as const) {
    for (const [name, f, tol] of [
      ['softmax', E.softmax, tolSoftmax],
      ['logSoftmax', E.logSoftmax, tolLog],
    ] as const) {
      it(`${name} (${label})`, async () => {
        await fc.assert(
          fc.asyncProperty(caseArb(shapes), async (c) => {
            await expectMatchesReference((x) => f(viewOf(x, c.view), c.axis), [c.x], gpu!, tol, `${name} axis ${c.axis} ${c.view}`);
          }),
          { numRuns: 12 },
        );
      });
    }
  }

  it('few long rows (split into chunks: stats + apply passes), contiguous and strided', async () => {
    for (const [shape, axis, view] of [
      [[2, 40_001], -1, 'plain'],
      [[3, 70_000], 1, 'sliced'],
      [[40_001, 3], 0, 'plain'],
      [[5, 30_000], 0, 'permuted'],
      [[1, 300_000], 1, 'plain'],
    ] as [number[], number, Case['view']][]) {
      const n = shape.reduce((a, b) => a * b, 1);
      const x = { shape, data: Array.from({ length: n }, (_, i) => Math.fround(20 * Math.sin(i * 0.61) + (i % 13))) };
      await expectMatchesReference((t) => E.softmax(viewOf(t, view), axis), [x], gpu!, tolSoftmax, `softmax ${shape} ${view}`);
      await expectMatchesReference((t) => E.logSoftmax(viewOf(t, view), axis), [x], gpu!, tolLog, `logSoftmax ${shape} ${view}`);
    }
    // The split path really ran: two dispatches.
    const x = E.zeros([2, 40_001], { backend: gpu! });
    const d0 = gpu!.counters.dispatches;
    E.softmax(x).dispose();
    expect(gpu!.counters.dispatches - d0).toBe(2);
    x.dispose();
  });

  it('rows are normalized and large logits do not overflow', async () => {
    const data = Array.from({ length: 7 * 1000 }, (_, i) => 80 * Math.sin(i * 1.3));
    const x = E.tensor(data, [7, 1000], { backend: gpu! });
    const rowSums = await E.sum(E.softmax(x), 1).toArray();
    expectClose(rowSums, new Array(7).fill(1), { atol: 2e-6, rtol: 0 }, 'row sums');
    const lse = await E.sum(E.exp(E.logSoftmax(x)), 1).toArray();
    expectClose(lse, new Array(7).fill(1), { atol: 2e-6, rtol: 0 }, 'exp(log_softmax) row sums');
    x.dispose();
  });

  it('masked (-inf) entries get probability 0; a fully masked row is NaN (as in PyTorch)', async () => {
    const x = E.tensor([1, -Infinity, 2, -Infinity, -Infinity, -Infinity], [2, 3], { backend: gpu! });
    const y = Array.from(await E.softmax(x).toArray());
    const e = Math.exp(1) + Math.exp(2);
    expectClose(y.slice(0, 3), [Math.exp(1) / e, 0, Math.exp(2) / e], tolSoftmax, 'masked row');
    expect(y.slice(3).every(Number.isNaN)).toBe(true);
    const ly = Array.from(await E.logSoftmax(x).toArray());
    expect(ly[1]).toBe(-Infinity);
    x.dispose();
  });

  it('empty tensors and size-1 axes', async () => {
    expect(E.softmax(E.zeros([0, 4], { backend: gpu! })).shape).toEqual([0, 4]);
    expect(E.softmax(E.zeros([3, 0], { backend: gpu! })).shape).toEqual([3, 0]);
    expect(Array.from(await E.softmax(E.tensor([5, -2, 7], [3, 1], { backend: gpu! })).toArray())).toEqual([1, 1, 1]);
    expect(Array.from(await E.logSoftmax(E.tensor([5, -2, 7], [3, 1], { backend: gpu! })).toArray())).toEqual([0, 0, 0]);
  });
});

describe('softmax: API and errors', () => {
  it('method forms match the functions; default axis is the last', async () => {
    const x = E.tensor([1, 2, 3, 4, 6, 5], [2, 3], { backend: E.cpuF64 });
    expect(Array.from(await x.softmax().toArray())).toEqual(Array.from(await E.softmax(x, 1).toArray()));
    expect(Array.from(await x.logSoftmax(0).toArray())).toEqual(Array.from(await E.logSoftmax(x, 0).toArray()));
    const s = Array.from(await x.softmax(0).toArray());
    expectClose(s.slice(0, 3), [1, 2, 3].map((v, i) => Math.exp(v) / (Math.exp(v) + Math.exp([4, 6, 5][i]!))), { atol: 1e-15, rtol: 1e-14 });
  });
  it('errors name the op', () => {
    const i = E.tensor([1, 2], [2], { dtype: 'i32', backend: E.cpuF64 });
    expect(() => E.softmax(i)).toThrow(/softmax: expected an f32 tensor/);
    expect(() => E.logSoftmax(E.zeros([2, 3], { backend: E.cpuF64 }), 2)).toThrow(/log_softmax: axis 2 is out of range/);
  });
});

describe('softmax gradients vs finite differences (float64)', () => {
  const tol = { atol: 1e-6, rtol: 1e-5 };
  for (const [name, f] of [
    ['softmax', E.softmax],
    ['logSoftmax', E.logSoftmax],
  ] as const) {
    it(name, async () => {
      await fc.assert(
        fc.asyncProperty(caseArb(shapeArb(3, 5, 1), -3, 3), async (c) => {
          await expectGradMatchesFD((x) => f(viewOf(x, c.view), c.axis), [c.x], tol);
        }),
        { numRuns: 8 },
      );
    });
    it(`${name}: gradient of the gradient`, async () => {
      // d/dx of <v, grad_x sum(w * f(x))>: checks that the backward rule is itself differentiable.
      const w = [0.3, -1.2, 0.8, 2.0, -0.5, 1.1];
      const inner = (x: E.Tensor) => E.grad((z: E.Tensor) => E.sum(E.mul(f(z, 0), E.tensor(w, [2, 3], { backend: E.cpuF64 }))))(x)[0]!;
      await expectGradMatchesFD(inner, [{ shape: [2, 3], data: [0.1, -0.4, 1.3, 0.7, -1.1, 0.2] }], tol);
    });
  }
  it('composite checks: softmax == exp(logSoftmax), logSoftmax == x - logsumexp(x)', async () => {
    const x = make({ shape: [3, 4, 5], data: Array.from({ length: 60 }, (_, i) => Math.cos(i * 0.7) * 4) }, E.cpuF64);
    expectClose(await E.softmax(x, 1).toArray(), await E.exp(E.logSoftmax(x, 1)).toArray(), { atol: 1e-15, rtol: 1e-13 });
    expectClose(await E.logSoftmax(x, -1).toArray(), await E.sub(x, E.logsumexp(x, -1, true)).toArray(), { atol: 1e-13, rtol: 1e-13 });
  });
});
