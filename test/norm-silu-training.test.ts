/**
 * The CNN tokenizer's GroupNorm + SiLU layers (`act: 'silu'`: one kernel forward, one backward
 * dispatch with the affine gradients folded in) train as the composition silu(groupNorm(x)) does.
 * Model: the tokenizer's encoder and decoder at a small width (8 groups per norm, so the one-dispatch
 * backward is the default), trained as an autoencoder on continuous latents: the quantizer is left
 * out because its argmin turns rounding differences into different codes, a discontinuity the
 * norms are not responsible for. Plain SGD, so a parameter's difference between two runs is the
 * learning rate times the accumulated gradient differences (Adam would divide near-zero gradients
 * by their own noise).
 *
 * Three runs from the same weights: the shipped layers (default: one backward dispatch per norm),
 * the same with the affine gradients in a second kernel (tuning.norm.fusedBackward false), and
 * every fused norm replaced by silu(groupNorm(x)) (the silu op after a plain norm: SiLU's rule, then
 * the norm's backward). They differ by f32 rounding only. Gradients of the first step: per norm
 * within 2e-4 absolute + 1e-4 relative of float64 (test/norm.test.ts), and closer to each other
 * since the runs share every other kernel: 1e-5 absolute (gradients here reach 0.56) + 1e-4
 * relative. After 3 steps of lr 0.01 the parameters agree to 3 * 0.01 * 1e-5 + 1e-4 relative
 * (checked at 3e-5 absolute), the losses to 1e-4 relative. On lavapipe the three runs are
 * bit-identical: the fused forward applies SiLU to the stored norm output as the silu op does, and
 * at 8 invocations per workgroup both backward forms sum dw/db in the same order.
 */
import { describe, expect, it } from 'vitest';
import * as E from '../engine/index.js';
import { GroupNorm, SGD } from '../nn/index.js';
import { Decoder, Encoder, resolveCnnConfig } from '../models/tokenizer/index.js';
import { requireGpu } from './helpers/backends.js';
import { expectClose } from './helpers/compare.js';

const gpu = await requireGpu();

type Variant = 'fused' | 'two-kernel backward' | 'composed';

/** Losses of 3 SGD steps and the parameters after them, by name; dispatches of the last step. */
async function train(b: E.Backend, variant: Variant): Promise<{ losses: number[]; grads: ArrayLike<number>[]; params: [string, ArrayLike<number>][]; dispatches: number }> {
  const cfg = resolveCnnConfig({ ch: 16, chMult: [1], numResBlocks: 1, codeDim: 4, normGroups: 8 });
  const g = new E.Generator(7);
  const enc = new Encoder(cfg, { backend: b, generator: g });
  const dec = new Decoder(cfg, { backend: b, generator: g });
  let fusedNorms = 0;
  if (variant === 'composed') {
    for (const m of [enc, dec]) {
      for (const [, mod] of m.namedModules()) {
        if (!(mod instanceof GroupNorm) || mod.act !== 'silu') continue;
        fusedNorms++;
        mod.forward = (x) => E.silu(E.groupNorm(x, mod.numGroups, { weight: mod.weight, bias: mod.bias, eps: mod.eps }));
      }
    }
    // norm_out of both, norm1 and norm2 of each block (one per level in each).
    expect(fusedNorms).toBe(2 + 2 * 2);
  }
  const params = [...enc.namedParameters().map(([n, p]) => [`encoder.${n}`, p] as [string, E.Tensor]), ...dec.namedParameters().map(([n, p]) => [`decoder.${n}`, p] as [string, E.Tensor])];
  const opt = new SGD(params.map(([, p]) => p), { lr: 0.01 });
  const x = E.rand([2, 1, 8, 8], { backend: b, generator: new E.Generator(3), low: -1, high: 1 });
  const restore = b.tune({ norm: { fusedBackward: variant === 'two-kernel backward' ? false : null } });
  const losses: E.Tensor[] = [];
  const firstGrads: E.Tensor[] = [];
  const grads: ArrayLike<number>[] = [];
  let dispatches = 0;
  try {
    for (let step = 0; step < 3; step++) {
      const before = b instanceof E.WebGPUBackend ? b.counters.dispatches : 0;
      losses.push(
        E.tidy(() => {
          opt.zeroGrad();
          const loss = E.mseLoss(dec.forward(enc.forward(x)), x);
          loss.backward();
          if (step === 0) for (const [, p] of params) firstGrads.push(E.keep(E.detach(p.grad!)));
          opt.step();
          return loss.detach();
        }),
      );
      if (b instanceof E.WebGPUBackend) dispatches = b.counters.dispatches - before;
    }
  } finally {
    restore();
  }
  const kept: [string, ArrayLike<number>][] = [];
  for (const [n, p] of params) kept.push([n, await p.toArray()]);
  const lossValues: number[] = [];
  for (const l of losses) lossValues.push(await l.item());
  for (const t of firstGrads) grads.push(await t.toArray());
  E.disposeAll([losses, firstGrads]);
  x.dispose();
  opt.dispose();
  enc.dispose();
  dec.dispose();
  return { losses: lossValues, grads, params: kept, dispatches };
}

describe.runIf(gpu)('GroupNorm + SiLU in training: fused vs the composition', () => {
  it('the same losses and parameters after 3 SGD steps (fused, two-kernel backward, composed), with fewer dispatches fused', async () => {
    const runs = [];
    for (const v of ['fused', 'two-kernel backward', 'composed'] as const) runs.push({ v, ...(await train(gpu!, v)) });
    const [fused] = runs;
    for (const r of runs.slice(1)) {
      expect(r.params.map(([n]) => n)).toEqual(fused!.params.map(([n]) => n));
      for (let k = 0; k < r.grads.length; k++) expectClose(r.grads[k]!, fused!.grads[k]!, { atol: 1e-5, rtol: 1e-4 }, `${r.v} first gradient of ${r.params[k]![0]}`);
      for (let s = 0; s < 3; s++) expectClose([r.losses[s]!], [fused!.losses[s]!], { atol: 0, rtol: 1e-4 }, `${r.v} loss at step ${s + 1}`);
      for (let k = 0; k < r.params.length; k++) expectClose(r.params[k]![1], fused!.params[k]![1], { atol: 3e-5, rtol: 1e-4 }, `${r.v} ${r.params[k]![0]}`);
    }
    // The loss moved: the comparison is over training, not over three copies of the initial weights.
    expect(fused!.losses[2]!).toBeLessThan(fused!.losses[0]!);
    // One fewer dispatch per norm backward (6 norms) than in two kernels; the composition runs separate ops.
    const byVariant = Object.fromEntries(runs.map((r) => [r.v, r.dispatches]));
    expect(byVariant['fused']).toBe(byVariant['two-kernel backward']! - 6);
    expect(byVariant['composed']).toBeGreaterThan(byVariant['fused']! + 6);
  });
});
