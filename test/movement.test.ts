/**
 * Views and copies: reshape, permute, transpose, expand, slice (with steps), squeeze/unsqueeze,
 * concat, stack, cast. Pure data movement is exact, so GPU results must equal the reference bit
 * for bit (tolerance 0); gradients are checked against finite differences.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import * as E from '../engine/index.js';
import { requireGpu } from './helpers/backends.js';
import { expectGradMatchesFD, expectMatchesReference } from './helpers/compare.js';
import { shapeArb, tensorArb } from './helpers/arbitrary.js';

const gpu = await requireGpu();
const exact = { atol: 0, rtol: 0 };

/** A random permutation of 0..n-1. */
const permArb = (n: number) => fc.shuffledSubarray(Array.from({ length: n }, (_, i) => i), { minLength: n, maxLength: n });

/** Random slice spec [start, end, step] per dim. */
const sliceArb = (shape: number[]) =>
  fc.tuple(...shape.map((d) => fc.tuple(fc.integer({ min: -d, max: d }), fc.integer({ min: -d, max: d + 2 }), fc.integer({ min: 1, max: 3 })))) as fc.Arbitrary<[number, number, number][]>;

describe.runIf(gpu)('views and copies on GPU equal the reference exactly', () => {
  it('permute then contiguous, then reshape of the non-contiguous result', async () => {
    await fc.assert(
      fc.asyncProperty(tensorArb(shapeArb(5, 5, 1)).chain((x) => permArb(x.shape.length).map((p) => ({ x, p }))), async ({ x, p }) => {
        await expectMatchesReference((t) => t.permute(p).contiguous(), [x], gpu!, exact);
        await expectMatchesReference((t) => t.permute(p).reshape([-1]), [x], gpu!, exact);
        await expectMatchesReference((t) => t.permute(p).exp(), [x], gpu!, { atol: 1e-6, rtol: 2e-6 });
      }),
      { numRuns: 15 },
    );
  });

  it('slice with negative bounds and steps, composed with transpose', async () => {
    await fc.assert(
      fc.asyncProperty(tensorArb(shapeArb(4, 7, 1)).chain((x) => sliceArb(x.shape).map((s) => ({ x, s }))), async ({ x, s }) => {
        await expectMatchesReference((t) => t.slice(s).contiguous(), [x], gpu!, exact);
        if (x.shape.length >= 2) await expectMatchesReference((t) => t.transpose(0, -1).slice(s.slice(0, 1)).neg(), [x], gpu!, exact);
      }),
      { numRuns: 15 },
    );
  });

  it('expand, concat, stack, squeeze/unsqueeze, cast', async () => {
    const a = { shape: [2, 1, 3], data: [1, 2, 3, 4, 5, 6] };
    const b = { shape: [2, 4, 3], data: Array.from({ length: 24 }, (_, i) => i - 5.5) };
    await expectMatchesReference((t) => t.expand([4, 2, 5, 3]).contiguous(), [a], gpu!, exact);
    await expectMatchesReference((t, u) => E.concat([t, u, t], 1), [a, b], gpu!, exact);
    await expectMatchesReference((t, u) => E.concat([t.transpose(0, 2), u.transpose(0, 2)], 1), [a, b], gpu!, exact);
    await expectMatchesReference((t) => E.stack([t, t.mul(2)], 3), [a], gpu!, exact);
    await expectMatchesReference((t) => t.squeeze(1).unsqueeze(0), [a], gpu!, exact);
    await expectMatchesReference((t) => t.mul(1.7).cast('i32'), [b], gpu!, exact);
    await expectMatchesReference((t) => t.cast('i32').cast('f32'), [b], gpu!, exact);
  });

  it('empty tensors flow through', async () => {
    const e = E.zeros([0, 3], { backend: gpu! });
    expect(e.add(1).shape).toEqual([0, 3]);
    expect(Array.from(await E.concat([e, E.ones([1, 3], { backend: gpu! })], 0).toArray())).toEqual([1, 1, 1]);
    expect(await e.sum().item()).toBe(0);
  });
});

describe('views share storage', () => {
  it('reshape of a contiguous tensor, transpose, slice and expand do not copy', () => {
    const x = E.zeros([4, 6], { backend: E.cpuF64 });
    for (const v of [x.reshape([6, 4]), x.transpose(), x.slice([[1, 3], [0, 6, 2]]), x.unsqueeze(0).expand([3, 4, 6])]) {
      expect(v.storage).toBe(x.storage);
    }
    expect(x.transpose().isContiguous).toBe(false);
    expect(x.transpose().contiguous().storage).not.toBe(x.storage);
  });
  it('errors name the op and the shapes', () => {
    const x = E.zeros([4, 6], { backend: E.cpuF64 });
    expect(() => x.reshape([5, 5])).toThrow(/reshape: cannot reshape .*\[4, 6\].* to \[5, 5\]/);
    expect(() => x.expand([4, 5])).toThrow(/expand: cannot expand \[4, 6\] to \[4, 5\]/);
    expect(() => E.concat([x, E.zeros([3, 5], { backend: E.cpuF64 })], 0)).toThrow(/concat/);
    expect(() => x.permute([0, 0])).toThrow(/repeated dim/);
    expect(() => x.sum(2)).toThrow(/axis 2 is out of range for a tensor of rank 2/);
  });
});

describe('movement gradients vs finite differences', () => {
  const x = { shape: [2, 3, 4], data: Array.from({ length: 24 }, (_, i) => Math.sin(i)) };
  it('permute, reshape of non-contiguous, slice with step', async () => {
    await expectGradMatchesFD((t) => t.permute([2, 0, 1]).reshape([4, 6]).slice([[1, 4, 2], [-5, 6]]), [x]);
  });
  it('expand (sums back), concat and stack', async () => {
    await expectGradMatchesFD((t) => t.slice([[0, 1]]).expand([3, 3, 4]), [x]);
    await expectGradMatchesFD((t, u) => E.concat([t, u.mul(2)], 2), [x, { shape: [2, 3, 1], data: [1, 2, 3, 4, 5, 6] }]);
    await expectGradMatchesFD((t) => E.stack([t, t.square()], 1), [x]);
  });
  it('second derivative through slice backward', async () => {
    const f = (t: E.Tensor) => t.slice([[0, 2], [1, 3]]).square().sum();
    const xs = E.tensor([1, 2, 3, 4, 5, 6], [2, 3], { backend: E.cpuF64 });
    const [g2] = E.grad((t) => E.grad(f)(t)[0]!.mul(t).sum())(xs);
    // d/dx sum(grad f * x) with grad f = 2x on the slice: 4x on the slice, 0 elsewhere.
    expect(Array.from(await g2!.toArray())).toEqual([0, 8, 12, 0, 20, 24]);
  });
});
