/**
 * crossEntropy / mseLoss / l1Loss vs PyTorch fixtures (test/fixtures/make_loss.py: reductions,
 * label smoothing, ignore_index in and out of the class range, [N, C, d1, d2] inputs, large
 * logits) on the float64 reference and on the GPU, and gradients vs finite differences.
 *
 * Tolerances: float64 vs PyTorch float64: 1e-10. GPU: the loss is log-softmax (absolute error
 * ~ |logit| * 2^-24 + 3e-6, up to ~1e-5 for the logits of scale 30) summed / averaged over <= 60
 * terms: 5e-5 relative + 5e-5 absolute; gradients (softmax - onehot, divided by the count) 2e-5
 * absolute. Finite differences: float64, 1e-5 relative + 1e-6 absolute.
 */
import { readFileSync } from 'node:fs';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import * as E from '../engine/index.js';
import { requireGpu } from './helpers/backends.js';
import { expectClose, expectGradMatchesFD, make } from './helpers/compare.js';
import { valuesArb } from './helpers/arbitrary.js';

const gpu = await requireGpu();
const ref = E.cpuF64;

interface Enc {
  shape: number[];
  data: number[];
}
interface LossFixture {
  op: 'cross_entropy' | 'mse_loss' | 'l1_loss';
  reduction: E.Reduction;
  labelSmoothing?: number;
  ignoreIndex?: number;
  x: Enc;
  targets?: Enc;
  target?: Enc;
  gy: Enc;
  y: Enc;
  gx: Enc;
}
const fixtures = JSON.parse(readFileSync(new URL('./fixtures/loss.json', import.meta.url), 'utf8')) as { cases: LossFixture[] };

function lossOf(c: LossFixture, x: E.Tensor, b: E.Backend): E.Tensor {
  if (c.op === 'cross_entropy') {
    const t = make({ ...c.targets!, dtype: 'i32' }, b);
    return E.crossEntropy(x, t, { reduction: c.reduction, labelSmoothing: c.labelSmoothing!, ignoreIndex: c.ignoreIndex! });
  }
  const f = c.op === 'mse_loss' ? E.mseLoss : E.l1Loss;
  return f(x, make(c.target!, b), { reduction: c.reduction });
}

async function checkFixture(c: LossFixture, b: E.Backend, tol: { atol: number; rtol: number }, gtol: { atol: number; rtol: number }): Promise<void> {
  const what = `${c.op} ${c.reduction} x${JSON.stringify(c.x.shape)} ls=${c.labelSmoothing ?? 0} ignore=${c.ignoreIndex ?? ''}`;
  const [y, gx] = E.tidy(() => {
    const x = make(c.x, b).requireGrad();
    const y = lossOf(c, x, b);
    const [g] = E.gradients(E.sum(E.mul(y, make(c.gy, b))), [x]);
    return [E.detach(y), g!];
  });
  expect(y.shape, `${what} shape`).toEqual(c.y.shape);
  expectClose(await y.toArray(), c.y.data, tol, `${what} loss`);
  expectClose(await gx.toArray(), c.gx.data, gtol, `${what} grad`);
  y.dispose();
  gx.dispose();
}

describe('losses: PyTorch fixtures', () => {
  it('covers every op, reduction, label smoothing and ignore_index', () => {
    const ce = fixtures.cases.filter((c) => c.op === 'cross_entropy');
    for (const r of ['mean', 'sum', 'none']) expect(ce.some((c) => c.reduction === r)).toBe(true);
    expect(ce.some((c) => c.labelSmoothing! > 0)).toBe(true);
    expect(ce.some((c) => c.targets!.data.includes(-100))).toBe(true);
    expect(ce.some((c) => c.ignoreIndex! >= 0 && c.targets!.data.includes(c.ignoreIndex!))).toBe(true);
    expect(ce.some((c) => c.x.shape.length === 4)).toBe(true);
    expect(fixtures.cases.filter((c) => c.op !== 'cross_entropy').length).toBe(6);
  });
  it('float64 reference matches PyTorch (loss and gradient)', async () => {
    for (const c of fixtures.cases) await checkFixture(c, ref, { atol: 1e-10, rtol: 1e-10 }, { atol: 1e-10, rtol: 1e-10 });
  });
  it.runIf(gpu)('GPU matches PyTorch', async () => {
    for (const c of fixtures.cases) await checkFixture(c, gpu!, { atol: 5e-5, rtol: 5e-5 }, { atol: 2e-5, rtol: 1e-5 });
  });
});

describe('crossEntropy: semantics', () => {
  it('all targets ignored: mean is NaN, sum is 0 (as in PyTorch)', async () => {
    const x = E.tensor([1, 2, 3, 4], [2, 2], { backend: ref });
    const t = E.tensor([-100, -100], [2], { dtype: 'i32', backend: ref });
    expect(Number.isNaN(await E.crossEntropy(x, t).item())).toBe(true);
    expect(await E.crossEntropy(x, t, { reduction: 'sum' }).item()).toBe(0);
  });
  it('errors name the op and the shapes / dtypes', () => {
    const x = E.zeros([4, 3], { backend: ref });
    expect(() => E.crossEntropy(x, E.zeros([4], { backend: ref }))).toThrow(/cross_entropy: targets must be i32/);
    expect(() => E.crossEntropy(x, E.zeros([3], { dtype: 'i32', backend: ref }))).toThrow(/cross_entropy: logits \[4, 3\] need targets of shape \[4\], got \[3\]/);
    expect(() => E.crossEntropy(x, E.zeros([4], { dtype: 'i32', backend: ref }), { labelSmoothing: 2 })).toThrow(/labelSmoothing must be in \[0, 1\]/);
    expect(() => E.crossEntropy(x, E.zeros([4], { dtype: 'i32', backend: ref }), { reduction: 'avg' as E.Reduction })).toThrow(/reduction must be/);
    expect(() => E.mseLoss(x, E.zeros([3], { backend: ref }))).toThrow(/mse_loss: input \[4, 3\] and target \[3\] must have the same shape/);
  });
});

describe('losses: gradients vs finite differences (float64)', () => {
  const tol = { atol: 1e-6, rtol: 1e-5 };
  it('crossEntropy over generated shapes, options and targets', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc
          .tuple(fc.integer({ min: 1, max: 4 }), fc.integer({ min: 1, max: 5 }), fc.array(fc.integer({ min: 1, max: 3 }), { maxLength: 2 }))
          .chain(([N, C, rest]) => {
            const tshape = [N, ...rest];
            const nt = tshape.reduce((a, b) => a * b, 1);
            return fc.record({
              x: valuesArb(N * C * nt / N, -3, 3).map((data) => ({ shape: [N, C, ...rest], data })),
              t: fc.array(fc.integer({ min: -1, max: C - 1 }), { minLength: nt, maxLength: nt }).map((d) => ({ shape: tshape, data: d.map((v) => (v < 0 ? -100 : v)), dtype: 'i32' as const })),
              reduction: fc.constantFrom<E.Reduction>('mean', 'sum', 'none'),
              ls: fc.constantFrom(0, 0.1, 0.3),
            });
          })
          .filter((c) => c.reduction !== 'mean' || c.t.data.some((v) => v >= 0)),
        async (c) => {
          await expectGradMatchesFD((x, t) => E.crossEntropy(x, t, { reduction: c.reduction, labelSmoothing: c.ls }), [c.x, c.t], tol, { wrt: [0] });
        },
      ),
      { numRuns: 12 },
    );
  });
  it('mseLoss and l1Loss (both inputs)', async () => {
    const a = { shape: [2, 3], data: [0.1, -1.2, 2.3, 0.4, -0.5, 1.6] };
    const b = { shape: [2, 3], data: [0.3, 0.2, -1.1, 1.4, -0.9, 0.6] };
    for (const reduction of ['mean', 'sum', 'none'] as const) {
      await expectGradMatchesFD((x, y) => E.mseLoss(x, y, { reduction }), [a, b], tol);
      await expectGradMatchesFD((x, y) => E.l1Loss(x, y, { reduction }), [a, b], tol);
    }
  });
  it('crossEntropy gradient of the gradient', async () => {
    const t = { shape: [3], data: [2, 0, 1], dtype: 'i32' as const };
    const inner = (x: E.Tensor, tt: E.Tensor) => E.grad((z: E.Tensor) => E.crossEntropy(z, tt, { labelSmoothing: 0.1 }))(x)[0]!;
    await expectGradMatchesFD(inner, [{ shape: [3, 4], data: Array.from({ length: 12 }, (_, i) => Math.sin(i * 1.1)) }, t], tol, { wrt: [0] });
  });
});
