/**
 * The training loop's gradient-norm watch (issue 14; cases in docs/reliability.md): the global
 * gradient norm (the step's `gradNorm` term, or the norm of the optimizer's gradients the step left
 * set) is folded on the device with the loss terms in one dispatch per step, shown on the progress
 * line, stops the run when it is not finite (like the loss) and warns, naming the step, when it
 * jumps above 100x its running median. Tiny linear models, a few steps each.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import * as E from '../engine/index.js';
import * as nn from '../nn/index.js';
import { FiniteWatch, GradNormSpikes, NonFiniteError } from '../node/finite-watch.js';
import { trainLoop } from '../node/train.js';
import { requireGpu } from './helpers/backends.js';

const gpu = await requireGpu();
const dir = mkdtempSync(join(tmpdir(), 'grad-norm-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const quiet = () => {};

const backends: [string, E.Backend][] = [...(gpu ? [['webgpu', gpu] as [string, E.Backend]] : []), ['cpu-f32', new E.CpuBackend()]];

/** Linear regression; `norm(step)` replaces the gradient norm the step returns, `zeroAfter` clears the gradients after the update. */
function setup(backend: E.Backend, o: { norm?: (step: number) => number; zeroAfter?: boolean } = {}) {
  const model = new nn.Linear(4, 1, { backend, generator: new E.Generator(1) });
  const optimizer = new nn.AdamW(model.parameters(), { lr: 0.01 });
  const x = E.keep(E.tensor(Float32Array.from({ length: 32 }, (_, i) => Math.sin(i)), [8, 4], { backend }));
  const state: nn.TrainingState = { model, optimizer };
  const grads: Float32Array[] = [];
  const step = (s: number) => {
    optimizer.zeroGrad();
    const loss = model.forward(x).square().mean();
    loss.backward();
    optimizer.step();
    const terms: Record<string, E.Tensor> = { loss: loss.detach() };
    if (o.norm) terms.gradNorm = E.full([], o.norm(s), { backend });
    if (o.zeroAfter) optimizer.zeroGrad();
    return { terms };
  };
  return { state, step, model, grads, dispose: () => [model, optimizer, x].forEach((t) => t.dispose()) };
}

describe.each(backends)('on %s', (name, backend) => {
  it('the loop computes the norm of the gradients a step leaves set and shows it on the progress line', async () => {
    const r = setup(backend);
    const lines: string[] = [];
    const res = await trainLoop({ totalSteps: 3, state: r.state, backend, step: r.step, logEvery: 3, log: (l) => lines.push(l) });
    const gs = await Promise.all(r.model.parameters().map(async (p) => Array.from(await p.grad!.toArray())));
    const want = Math.sqrt(gs.flat().reduce((a, v) => a + v * v, 0));
    expect(res.history[0]!.terms.gradNorm).toBeCloseTo(want, 5);
    expect(lines[0]).toMatch(/^step 3\/3 \| loss \S+ gradNorm \S+ \|/);
    r.dispose();
  });

  it('no norm where the step cleared the gradients, or with gradNorm: false', async () => {
    const r = setup(backend, { zeroAfter: true });
    expect(Object.keys((await trainLoop({ totalSteps: 2, state: r.state, backend, step: r.step, logEvery: 2, log: quiet })).history[0]!.terms)).toEqual(['loss']);
    const q = setup(backend);
    expect(Object.keys((await trainLoop({ totalSteps: 2, state: q.state, backend, step: q.step, logEvery: 2, log: quiet, gradNorm: false })).history[0]!.terms)).toEqual(['loss']);
    r.dispose();
    q.dispose();
  });

  it('a non-finite gradient norm with a finite loss stops the run naming its step and the last good checkpoint', async () => {
    const ckpt = join(mkdtempSync(join(dir, `${name}-`)), 'checkpoint.safetensors');
    const r = setup(backend, { norm: (s) => (s === 6 ? Infinity : 1) });
    await expect(trainLoop({ totalSteps: 12, state: r.state, backend, step: r.step, log: quiet, logEvery: 10, checkpointPath: ckpt, checkpointEvery: 4 })).rejects.toThrow(
      new NonFiniteError(`non-finite gradient norm (NaN or Inf) at step 6: training stopped; the last good checkpoint is ${ckpt} (step 4), left as it was`),
    );
    r.dispose();
  });

  it('a norm spike above 100x the running median warns, naming the step; gradNormSpike 0 turns it off', async () => {
    const norm = (s: number) => (s === 15 ? 400 : s === 17 ? 150 : 1 + 0.01 * s);
    const lines: string[] = [];
    const r = setup(backend, { norm });
    await trainLoop({ totalSteps: 20, state: r.state, backend, step: r.step, logEvery: 8, log: (l) => lines.push(l) });
    expect(lines.filter((l) => l.startsWith('warning'))).toEqual([
      'warning: gradient norm spike at step 15: 400, 372x the median 1.08 of the previous 14 steps (warn above 100x: trainLoop gradNormSpike)',
      'warning: gradient norm spike at step 17: 150, 138x the median 1.09 of the previous 16 steps (warn above 100x: trainLoop gradNormSpike)',
    ]);
    const quietLines: string[] = [];
    const q = setup(backend, { norm });
    await trainLoop({ totalSteps: 20, state: q.state, backend, step: q.step, logEvery: 8, log: (l) => quietLines.push(l), gradNormSpike: 0 });
    expect(quietLines.some((l) => l.startsWith('warning'))).toBe(false);
    r.dispose();
    q.dispose();
  });
});

describe.runIf(gpu)('dispatches', () => {
  it('the watch folds a step in one dispatch per 7 terms, and reads the terms back with its flags', async () => {
    const w = new FiniteWatch(gpu!, 1, 8);
    const terms = (n: number) => Object.fromEntries(Array.from({ length: n }, (_, k) => [k === 2 ? 'gradNorm' : `t${k}`, E.full([], k + 0.5, { backend: gpu! })]));
    let step = 0;
    for (const [n, want] of [[4, 1], [7, 1], [10, 2]] as const) {
      step++;
      const t = terms(n);
      const d0 = gpu!.counters.dispatches;
      w.observe(t);
      expect(gpu!.counters.dispatches - d0, `${n} terms`).toBe(want);
      const r = await w.read(step);
      expect(r.firstBad).toBeNull();
      expect(r.terms).toEqual(Object.fromEntries(Object.keys(t).map((k, i) => [k, i + 0.5])));
      expect(r.norms).toEqual([[step, 2.5]]);
    }
    w.dispose();
  });
});

describe('GradNormSpikes', () => {
  it('needs 10 norms before it judges; non-finite norms do not enter the median', () => {
    const s = new GradNormSpikes(100);
    expect(s.check([[1, 1], [2, 500], [3, NaN]])).toEqual([]);
    expect(s.check(Array.from({ length: 8 }, (_, i) => [i + 4, 1] as [number, number]))).toEqual([]);
    expect(s.check([[12, 99], [13, 1e5]])).toEqual(['warning: gradient norm spike at step 13: 1.00e+5, 1.00e+5x the median 1.00 of the previous 11 steps (warn above 100x: trainLoop gradNormSpike)']);
  });
});
