/**
 * One tokenizer optimization step (browser-safe): forward with the perturbation schedule,
 * backward of the total loss, optimizer update. Run it inside a tidy scope (trainLoop does);
 * the returned terms are detached scalars that survive the scope when returned from it.
 */
import type * as E from '../../engine/index.js';
import type { Optimizer } from '../../nn/index.js';
import type { ExtraLosses, VQTokenizer } from './model.js';

export interface TokenizerStepOptions {
  /** 1-based step and total steps (the perturbation's annealing schedule). */
  step?: number;
  totalSteps?: number;
  extraLosses?: ExtraLosses;
}

export function tokenizerTrainStep(model: VQTokenizer, optimizer: Optimizer<{ lr: number }>, x: E.Tensor, o: TokenizerStepOptions = {}): Record<string, E.Tensor> {
  const out = model.forward(x, {
    ...(o.step !== undefined ? { step: o.step } : {}),
    ...(o.totalSteps !== undefined ? { totalSteps: o.totalSteps } : {}),
    ...(o.extraLosses ? { extraLosses: o.extraLosses } : {}),
  });
  optimizer.zeroGrad();
  out.losses.total.backward();
  optimizer.step();
  return Object.fromEntries(Object.entries(out.losses).map(([k, v]) => [k, v.detach()]));
}
