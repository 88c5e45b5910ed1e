/**
 * Loss functions, composed from differentiable ops (so their gradients, and gradients of those,
 * come from the ops they are built of). Semantics follow torch.nn.functional.
 */
import { composite } from '../composite.js';
import { fmtShape, shapesEqual } from '../shape.js';
import type { Tensor } from '../tensor.js';
import { abs, square } from './unary.js';
import { add, div, mul, ne, sub, where } from './binary.js';
import { mean, sum } from './reduce.js';
import { squeeze, unsqueeze } from './movement.js';
import { logSoftmax } from './softmax.js';
import { takeAlongAxis } from './indexing.js';

export type Reduction = 'mean' | 'sum' | 'none';

export interface CrossEntropyOptions {
  reduction?: Reduction;
  /** Mixes the target distribution with the uniform one: (1 - s) * onehot + s / C. */
  labelSmoothing?: number;
  /** Targets equal to this contribute nothing and are not counted by 'mean'. */
  ignoreIndex?: number;
}

function checkReduction(op: string, r: string): Reduction {
  if (r !== 'mean' && r !== 'sum' && r !== 'none') throw new Error(`${op}: reduction must be 'mean', 'sum' or 'none', got ${JSON.stringify(r)}`);
  return r;
}

/**
 * torch.nn.functional.cross_entropy with class-index targets: logits [N, C] or [N, C, d1, ...]
 * (or [C] with a scalar target), targets i32 [N] or [N, d1, ...]. 'mean' divides by the number of
 * non-ignored targets (NaN when all are ignored, as in PyTorch). Targets outside [0, C) other than
 * ignoreIndex are not checked on the GPU (they select 0; the CPU backend throws).
 */
export function crossEntropy(logits: Tensor, targets: Tensor, opts: CrossEntropyOptions = {}): Tensor {
  const reduction = checkReduction('cross_entropy', opts.reduction ?? 'mean');
  const ls = opts.labelSmoothing ?? 0;
  const ignoreIndex = opts.ignoreIndex ?? -100;
  if (logits.dtype !== 'f32') throw new TypeError(`cross_entropy: logits must be f32, got ${logits.describe()}`);
  if (targets.dtype !== 'i32') throw new TypeError(`cross_entropy: targets must be i32 class indices, got ${targets.describe()}`);
  if (!(ls >= 0 && ls <= 1)) throw new RangeError(`cross_entropy: labelSmoothing must be in [0, 1], got ${ls}`);
  if (logits.rank === 1 && targets.rank === 0) {
    return crossEntropy(unsqueeze(logits, 0), unsqueeze(targets, 0), Object.assign({}, opts, { reduction: reduction === 'none' ? ('sum' as const) : reduction }));
  }
  const expect = [logits.shape[0]!, ...logits.shape.slice(2)];
  if (logits.rank < 2 || !shapesEqual(targets.shape, expect)) {
    throw new Error(`cross_entropy: logits ${fmtShape(logits.shape)} need targets of shape ${logits.rank < 2 ? '[N] with logits [N, C]' : fmtShape(expect)}, got ${fmtShape(targets.shape)}`);
  }
  const C = logits.shape[1]!;
  return composite([logits], () => {
    const logp = logSoftmax(logits, 1);
    const valid = ne(targets, ignoreIndex); // f32 0/1
    const safe = where(valid, targets, 0);
    const picked = squeeze(takeAlongAxis(logp, unsqueeze(safe, 1), 1), 1);
    let loss = mul(picked, mul(valid, -1));
    if (ls > 0) {
      const smooth = mul(sum(logp, 1), mul(valid, -1));
      loss = add(mul(loss, 1 - ls), mul(smooth, ls / C));
    }
    if (reduction === 'none') return loss;
    if (reduction === 'sum') return sum(loss);
    return div(sum(loss), sum(valid));
  });
}

function reduce(x: Tensor, red: Reduction): Tensor {
  return red === 'none' ? x : red === 'sum' ? sum(x) : mean(x);
}

function checkPair(op: string, input: Tensor, target: Tensor): void {
  if (!shapesEqual(input.shape, target.shape)) throw new Error(`${op}: input ${fmtShape(input.shape)} and target ${fmtShape(target.shape)} must have the same shape`);
}

/** Mean squared error: reduce((input - target)^2). */
export function mseLoss(input: Tensor, target: Tensor, opts: { reduction?: Reduction } = {}): Tensor {
  checkPair('mse_loss', input, target);
  const red = checkReduction('mse_loss', opts.reduction ?? 'mean');
  return composite([input, target], () => reduce(square(sub(input, target)), red));
}

/** Mean absolute error: reduce(|input - target|) (gradient 0 where they are equal, as in PyTorch). */
export function l1Loss(input: Tensor, target: Tensor, opts: { reduction?: Reduction } = {}): Tensor {
  checkPair('l1_loss', input, target);
  const red = checkReduction('l1_loss', opts.reduction ?? 'mean');
  return composite([input, target], () => reduce(abs(sub(input, target)), red));
}
