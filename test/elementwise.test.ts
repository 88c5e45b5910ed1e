/**
 * Unary and binary elementwise ops: GPU vs float64 reference over generated shapes/values, and
 * gradients vs central finite differences.
 * Tolerances: f32 kernels have ~1e-7 relative rounding per op; transcendental builtins on GPUs are
 * allowed a few ulp and erf uses a 1.2e-7 approximation, so 2e-5 relative + 2e-6 absolute covers
 * every unary op with margin. Gradient checks run in float64 with eps = 1e-6 (truncation error
 * ~eps^2 * f''' and rounding ~1e-16/eps), so 1e-6 relative is conservative.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import * as E from '../engine/index.js';
import { requireGpu } from './helpers/backends.js';
import { expectGradMatchesFD, expectMatchesReference } from './helpers/compare.js';
import { broadcastPairArb, shapeArb, tensorArb, valuesArb } from './helpers/arbitrary.js';

const gpu = await requireGpu();
const tol = { atol: 2e-6, rtol: 2e-5 };

/** Every unary op of the table, sampled on its declared domain, plus scalar powers. */
const UNARY: [string, (x: E.Tensor) => E.Tensor, number, number, boolean][] = [
  ...Object.entries(E.UNARY).map(([name, d]) => [name, (x: E.Tensor) => E.unary(name as E.UnaryName, x), d.domain[0], d.domain[1], d.grad !== null] as [string, (x: E.Tensor) => E.Tensor, number, number, boolean]),
  ['pow2.5', (x) => E.pow(x, 2.5), 0.1, 3, true],
  ['pow-3', (x) => E.pow(x, -3), 0.5, 3, true],
];

/** The differentiable binary ops of the table, on their declared domains. */
const BINARY: [string, (a: E.Tensor, b: E.Tensor) => E.Tensor, number, number][] = Object.entries(E.BINARY)
  .filter(([, d]) => d.grad !== null)
  .map(([name, d]) => [name, (a: E.Tensor, b: E.Tensor) => E.binary(name as E.BinaryName, a, b), d.domain[0], d.domain[1]]);

describe.runIf(gpu)('unary ops: GPU vs float64 reference', () => {
  for (const [name, f, lo, hi] of UNARY) {
    it(name, async () => {
      await fc.assert(
        fc.asyncProperty(tensorArb(shapeArb(4, 9), lo, hi), async (x) => {
          await expectMatchesReference(f, [x], gpu!, tol, name);
        }),
        { numRuns: 8 },
      );
    });
  }
  it('the vec4 fast path (contiguous, 4-aligned) and the strided path agree with the reference', async () => {
    const data = Array.from({ length: 4104 }, (_, i) => Math.sin(i) * 2);
    const x = { shape: [4104], data };
    // Aligned slice (offset 8, length 4096) takes the vec4 path; offset 3 / length 4097 do not.
    for (const sl of [[8, 4104], [3, 4103], [0, 4097]] as [number, number][]) {
      await expectMatchesReference((t) => t.slice([sl]).exp().mul(t.slice([sl])), [x], gpu!, tol);
      await expectMatchesReference((t) => E.where(t.slice([sl]).gt(0), t.slice([sl]), -1), [x], gpu!, tol);
      await expectMatchesReference((t) => t.slice([sl]).mul(10).cast('i32').add(E.tensor([3], [1], { dtype: 'i32', backend: t.backend })), [x], gpu!, { atol: 0, rtol: 0 });
    }
  });
  it('large 1-D input spanning a 2D dispatch grid', async () => {
    const n = 65536 * 256 + 3;
    const x = E.full([n], 0.25, { backend: gpu! });
    const y = x.exp().sum();
    const expected = n * Math.fround(Math.exp(0.25));
    expect(Math.abs((await y.item()) - expected) / expected).toBeLessThan(1e-5);
  });
});

describe.runIf(gpu)('binary ops: broadcasting on GPU vs reference', () => {
  for (const [name, f, lo, hi] of [...BINARY, ['eq', E.eq, -1, 1], ['lt', E.lt, -1, 1], ['ge', E.ge, -1, 1]] as typeof BINARY) {
    it(name, async () => {
      await fc.assert(
        fc.asyncProperty(
          broadcastPairArb().chain(([sa, sb]) =>
            fc.tuple(valuesArb(sa.reduce((p, d) => p * d, 1), lo, hi), valuesArb(sb.reduce((p, d) => p * d, 1), lo, hi)).map(([da, db]) => [
              { shape: sa, data: name === 'eq' ? da.map(Math.round) : da },
              { shape: sb, data: name === 'eq' ? db.map(Math.round) : db },
            ]),
          ),
          async ([a, b]) => {
            await expectMatchesReference(f, [a!, b!], gpu!, tol, name);
          },
        ),
        { numRuns: 10 },
      );
    });
  }
  it('scalar operands on either side, and i32 arithmetic', async () => {
    await expectMatchesReference((a) => E.sub(2, E.div(a, 4)), [{ shape: [5], data: [1, 2, 3, 4, 5] }], gpu!, tol);
    await expectMatchesReference((a) => E.add(E.mul(a, 3), a), [{ shape: [3], data: [1, -2, 7], dtype: 'i32' }], gpu!, { atol: 0, rtol: 0 });
    await expectMatchesReference((c, a, b) => E.where(c, a, b), [{ shape: [2, 1], data: [1, 0] }, { shape: [3], data: [1, 2, 3] }, { shape: [2, 3], data: [9, 8, 7, 6, 5, 4] }], gpu!, { atol: 0, rtol: 0 });
  });
  it('three-input where on the vec4 path (contiguous, length a multiple of 4), f32 and i32', async () => {
    // Regression: the vec4 kernel's lane index was called `c`, the name of the third input.
    const cond = { shape: [8], data: [1, 0, 1, 1, 0, 0, 1, 0] };
    const a = [10, 11, 12, 13, 14, 15, 16, 17];
    const b = [-1, -2, -3, -4, -5, -6, -7, -8];
    for (const dtype of ['f32', 'i32'] as const) {
      await expectMatchesReference((c, x, y) => E.where(c, x, y), [cond, { shape: [8], data: a, dtype }, { shape: [8], data: b, dtype }], gpu!, { atol: 0, rtol: 0 });
    }
  });
});

describe('unary gradients vs finite differences (float64)', () => {
  for (const [name, f, lo, hi] of UNARY.filter((u) => u[4])) {
    it(name, async () => {
      await fc.assert(
        fc.asyncProperty(tensorArb(shapeArb(2, 4), lo, hi), async (x) => {
          await expectGradMatchesFD(f, [x]);
        }),
        { numRuns: 4 },
      );
    });
  }
});

describe('binary gradients vs finite differences, with unbroadcasting', () => {
  for (const [name, f, lo, hi] of BINARY) {
    it(name, async () => {
      await fc.assert(
        fc.asyncProperty(
          broadcastPairArb(3, 3).chain(([sa, sb]) =>
            fc.tuple(valuesArb(sa.reduce((p, d) => p * d, 1), lo, hi), valuesArb(sb.reduce((p, d) => p * d, 1), lo, hi)).map(([da, db]) => [
              { shape: sa, data: da },
              { shape: sb, data: db },
            ]),
          ),
          async ([a, b]) => {
            // maximum/minimum are not differentiable at ties: nudge b away from a.
            if (name === 'maximum' || name === 'minimum') b!.data = b!.data.map((v) => v + 0.01);
            await expectGradMatchesFD(f, [a!, b!]);
          },
        ),
        { numRuns: 4 },
      );
    });
  }
  it('where routes the gradient by the mask', async () => {
    const c = { shape: [4], data: [1, 0, 0, 1] };
    await expectGradMatchesFD((m, a, b) => E.where(m, a, b), [c, { shape: [4], data: [1, 2, 3, 4] }, { shape: [1], data: [5] }], undefined, { wrt: [1, 2] });
  });
});

describe('errors', () => {
  it('shape mismatch names the op and both shapes', () => {
    const a = E.zeros([2, 3], { backend: E.cpuF64 });
    const b = E.zeros([4], { backend: E.cpuF64 });
    expect(() => E.add(a, b)).toThrow(/add: shapes \[2, 3\] and \[4\] cannot be broadcast/);
  });
  it('using a disposed tensor names it', () => {
    const a = E.zeros([2], { backend: E.cpuF64 });
    a.name = 'weights';
    a.dispose();
    expect(() => E.exp(a)).toThrow(/'weights'.*used after dispose/);
  });
  it('bad dtypes are refused', () => {
    const i = E.tensor([1, 2], [2], { dtype: 'i32', backend: E.cpuF64 });
    expect(() => E.exp(i)).toThrow(/exp: expected an f32 tensor/);
    expect(() => E.add(i, E.zeros([2], { backend: E.cpuF64 }))).toThrow(/dtype mismatch/);
    expect(() => E.zeros([2], { dtype: 'f16' as E.DType })).toThrow(/unsupported dtype "f16"/);
  });
});
