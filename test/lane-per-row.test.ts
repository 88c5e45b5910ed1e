/**
 * One invocation per row (tuning.reduce.lanePerRow, tuning.norm.lanePerRow; by default on software
 * adapters): which rows take it, the results against the float64 reference with it forced on and
 * off (forward and gradient; sums, arg-reductions, softmax, row norms), and the same bits for a row
 * whatever the batch holds.
 */
import { describe, expect, it } from 'vitest';
import * as E from '../engine/index.js';
import { LANE_ROW_MAX, reducePlan } from '../engine/ops/reduce.js';
import { softmaxPlan } from '../engine/ops/softmax.js';
import { requireGpu } from './helpers/backends.js';
import { expectMatchesReference, type InputSpec } from './helpers/compare.js';
import { uniformValues } from './helpers/prng.js';
import { kernelKeysOf } from './helpers/kernel-keys.js';

const gpu = await requireGpu();

const input = (shape: number[], seed: number): InputSpec => ({ shape, data: uniformValues(shape.reduce((a, b) => a * b, 1), seed, -2, 2) });

const keysOf = (f: () => void): string[] => kernelKeysOf(gpu!, f);

describe('lane per row: plans', () => {
  it('contiguous rows up to the bound get one thread each, in one pass, however many rows; longer and strided rows keep their groups', () => {
    for (const nOut of [1, 7, 300, 100_000]) {
      expect(reducePlan(nOut, LANE_ROW_MAX, true, 8, true)).toEqual({ tpo: 1, outer: false, nSplit: 1, chunk: LANE_ROW_MAX });
      expect(softmaxPlan(nOut, LANE_ROW_MAX, true, 8, true)).toEqual({ tpo: 1, outer: false, nSplit: 1, chunk: LANE_ROW_MAX });
    }
    expect(reducePlan(300, LANE_ROW_MAX + 1, true, 8, true)).toEqual(reducePlan(300, LANE_ROW_MAX + 1, true, 8, false));
    expect(softmaxPlan(300, LANE_ROW_MAX + 1, true, 8, true)).toEqual(softmaxPlan(300, LANE_ROW_MAX + 1, true, 8, false));
    expect(reducePlan(300, 64, true, 8, false).tpo).toBe(8);
    expect(reducePlan(300, 64, false, 256, true)).toEqual(reducePlan(300, 64, false, 256, false));
  });
});

describe.runIf(gpu)('lane per row on the device: forced on and off, against float64', () => {
  const tol = { atol: 2e-5, rtol: 2e-5 };
  for (const lanePerRow of [true, false]) {
    const tuned = <T>(f: () => T): T => {
      const restore = gpu!.tune({ reduce: { lanePerRow }, norm: { lanePerRow } });
      try {
        return f();
      } finally {
        restore();
      }
    };
    it(`sum, max, argmax, softmax, logSoftmax over 300 rows (lanePerRow ${lanePerRow})`, async () => {
      for (const L of [7, 40, 64, 300]) {
        const x = input([300, L], L);
        await tuned(() => expectMatchesReference((t) => [E.sum(t, 1), E.max(t, 1), E.softmax(t, 1), E.logSoftmax(t, 1)], [x], gpu!, tol, `[300, ${L}]`));
        await tuned(() => expectMatchesReference((t) => E.argmax(t, 1), [x], gpu!, { atol: 0, rtol: 0 }, `argmax [300, ${L}]`));
      }
      const keys = tuned(() => keysOf(() => E.tidy(() => [E.sum(E.ones([300, 64], { backend: gpu! }), 1), E.softmax(E.ones([300, 64], { backend: gpu! }), 1)])));
      expect(keys.some((k) => k.startsWith('reduce|sum|f32|f32|1|1|1|false'))).toBe(lanePerRow);
      expect(keys.some((k) => k.startsWith('softmax|false|1|1|false|full'))).toBe(lanePerRow);
    });
    it(`layerNorm and rmsNorm of 300 rows of 64, forward and gradients (lanePerRow ${lanePerRow})`, async () => {
      const x = input([300, 64], 1);
      const w = input([64], 2);
      const b = input([64], 3);
      const g = input([300, 64], 4);
      const both = (xt: E.Tensor, wt: E.Tensor, bt: E.Tensor, gt: E.Tensor) => {
        const [xv, wv, bv] = [xt, wt, bt].map((t) => t.requireGrad());
        const y = E.layerNorm(xv!, 64, { weight: wv, bias: bv });
        const r = E.rmsNorm(xv!, { weight: wv });
        return [y, r, ...E.gradients(E.add(E.sum(E.mul(y, gt)), E.sum(E.mul(r, gt))), [xv!, wv!, bv!])];
      };
      await tuned(() => expectMatchesReference(both, [x, w, b, g], gpu!, { atol: 1e-4, rtol: 1e-4 }, 'norms'));
      const keys = tuned(() => keysOf(() => E.tidy(() => E.layerNorm(E.rand([300, 64], { backend: gpu! }), 64))));
      expect(keys.some((k) => /^norm\|false\|false\|false\|false\|1(\/|$)/.test(k))).toBe(lanePerRow);
    });
  }

  it('a row gets the same bits in a batch of 300 rows as in a batch of 5 (the choice depends on the row length only)', async () => {
    for (const lanePerRow of [null, true, false]) {
      const restore = gpu!.tune({ reduce: { lanePerRow }, norm: { lanePerRow } });
      try {
        for (const L of [16, 64, 100, 128]) {
          const big = E.tensor(input([300, L], L).data, [300, L], { backend: gpu! });
          const small = big.slice([[0, 5]]).contiguous();
          const outs = (t: E.Tensor) => [E.sum(t, 1), E.softmax(t, 1), E.layerNorm(t, L), E.rmsNorm(t)];
          const a = E.tidy(() => outs(big).map((o) => o.slice([[0, 5]]).contiguous()));
          const b = E.tidy(() => outs(small));
          for (let k = 0; k < a.length; k++) expect(Array.from(await a[k]!.toArray()), `lanePerRow ${lanePerRow}, L ${L}, output ${k}`).toEqual(Array.from(await b[k]!.toArray()));
          [...a, ...b, big, small].forEach((t) => t.dispose());
        }
      } finally {
        restore();
      }
    }
  });
});
