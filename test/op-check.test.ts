/**
 * Every declared op against the float64 reference (forward and gradient on the device), the
 * float64 gradient against finite differences, and grad of grad where a case asks
 * (test/op-check/kit.ts). Also fails, listing them, when a declared op has no case.
 */
import { describe, expect, it } from 'vitest';
import { declaredOps } from '../engine/op.js';
import { noGrad } from '../engine/index.js';
import { record } from '../engine/grad-mode.js';
import { requireGpu, ref } from './helpers/backends.js';
import { caseName, checkOp } from './op-check/kit.js';
import { OP_CASES } from './op-check/cases/index.js';

const gpu = await requireGpu();
const device = gpu ?? ref;

describe('op cases: device vs float64, float64 vs finite differences', () => {
  for (const c of OP_CASES) {
    it(caseName(c), async () => {
      const r = await checkOp(c, device);
      expect(r.failures).toEqual([]);
    });
  }
});

describe('op coverage', () => {
  it('every declared op has a case', () => {
    const covered = new Set(OP_CASES.flatMap((c) => c.covers));
    const missing = [...declaredOps().keys()].filter((n) => !covered.has(n));
    expect(missing, `declared ops without a case in test/op-check/cases: ${missing.join(', ')}`).toEqual([]);
  });
  it('every case covers a declared op', () => {
    const declared = declaredOps();
    const unknown = OP_CASES.flatMap((c) => c.covers).filter((n) => !declared.has(n));
    expect(unknown).toEqual([]);
  });
});

describe('the kit catches wrong ops', () => {
  it('a forward that differs on the device, and a wrong gradient rule, are reported', async () => {
    const forward = await checkOp(
      { covers: [], name: 'off-by-0.1%', inputs: [{ shape: [4] }], fn: (x) => x.mul(x.backend.kind === 'cpu' ? 1 : 1.001), tol: { forward: { atol: 1e-6, rtol: 1e-5 }, why: '' } },
      device,
    );
    expect(forward.ok).toBe(false);
    expect(forward.failures.join()).toMatch(/forward error/);
    const wrongGrad = await checkOp(
      {
        covers: [],
        name: 'gradient 3x instead of 2x',
        inputs: [{ shape: [4] }],
        fn: (x) => record(noGrad(() => x.mul(2)), 'double', [x], (g) => [g.mul(3)]),
        tol: { forward: { atol: 1e-6, rtol: 1e-5 }, why: '' },
      },
      device,
    );
    expect(wrongGrad.failures.join()).toMatch(/finite differences/);
  });
});
