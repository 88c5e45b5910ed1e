/** Adam (L2 weight decay added to the gradient) and AdamW (decoupled weight decay), PyTorch semantics. */
import * as E from '../../engine/index.js';
import { Optimizer, type ParamGroup, type ParamGroupSpec, type ParamList, type ParamState } from './optimizer.js';

export interface AdamOptions {
  lr: number;
  betas: [number, number];
  eps: number;
  weightDecay: number;
  /** Normalize by the running maximum of the second moment (state 'max_exp_avg_sq'). */
  amsgrad: boolean;
}

export const ADAM_DEFAULTS: AdamOptions = { lr: 1e-3, betas: [0.9, 0.999], eps: 1e-8, weightDecay: 0, amsgrad: false };
export const ADAMW_DEFAULTS: AdamOptions = { ...ADAM_DEFAULTS, weightDecay: 1e-2 };

abstract class AdamBase extends Optimizer<AdamOptions> {
  protected abstract readonly decoupled: boolean;

  protected validate(h: AdamOptions, where: string): void {
    if (!(h.lr >= 0)) throw new RangeError(`${where}: invalid learning rate ${h.lr}`);
    if (!(h.eps >= 0)) throw new RangeError(`${where}: invalid eps ${h.eps}`);
    if (!Array.isArray(h.betas) || h.betas.length !== 2) throw new RangeError(`${where}: betas must be [beta1, beta2], got ${JSON.stringify(h.betas)}`);
    h.betas.forEach((b, i) => {
      if (!(b >= 0 && b < 1)) throw new RangeError(`${where}: invalid beta parameter at index ${i}: ${b}`);
    });
    if (!(h.weightDecay >= 0)) throw new RangeError(`${where}: invalid weightDecay ${h.weightDecay}`);
  }

  protected stateKeys(h: AdamOptions): { required: string[]; optional: string[] } {
    return { required: ['exp_avg', 'exp_avg_sq', ...(h.amsgrad ? ['max_exp_avg_sq'] : [])], optional: [] };
  }

  protected update(p: E.Tensor, g: E.Tensor, st: ParamState, group: ParamGroup<AdamOptions>): void {
    this.updateGroup([{ p, g, state: st }], group);
  }

  /** All of a group's parameters in as few dispatches as the device allows (E.adamUpdateMany). */
  protected override updateGroup(items: readonly { p: E.Tensor; g: E.Tensor; state: ParamState }[], group: ParamGroup<AdamOptions>): void {
    const batch: E.AdamItem[] = items.map(({ p, g, state }) => ({
      p,
      g,
      m: this.buffer(p, state, 'exp_avg').t,
      v: this.buffer(p, state, 'exp_avg_sq').t,
      vmax: group.amsgrad ? this.buffer(p, state, 'max_exp_avg_sq').t : null,
      step: state.step + 1,
      stepOf: () => state.step + 1,
    }));
    const hyper = () => ({
      lr: group.lr,
      beta1: group.betas[0],
      beta2: group.betas[1],
      eps: group.eps,
      weightDecay: group.weightDecay,
      decoupled: this.decoupled,
    });
    // Read live (the group's current lr, each parameter's step) so that a captured training step's
    // replays follow a schedule; the step count advances as a host effect of each replay too.
    E.adamUpdateMany(batch, hyper(), hyper);
    if (items.length > 0) E.stepEffect(items[0]!.p.backend, () => {
      for (const { state } of items) state.step += 1;
    });
  }
}

/**
 * Adam: g += weightDecay * p (L2); m, v moving averages of g and g^2; bias-corrected step
 * p -= lr / (1 - b1^t) * m / (sqrt(v) / sqrt(1 - b2^t) + eps). State: 'exp_avg', 'exp_avg_sq'.
 */
export class Adam extends AdamBase {
  protected readonly decoupled = false;
  constructor(params: ParamList | Iterable<ParamGroupSpec<AdamOptions>>, defaults: Partial<AdamOptions> = {}) {
    super(params, { ...ADAM_DEFAULTS, ...defaults });
  }
}

/** AdamW: as Adam without the L2 term, and p *= 1 - lr * weightDecay before the update (default weightDecay 0.01). */
export class AdamW extends AdamBase {
  protected readonly decoupled = true;
  constructor(params: ParamList | Iterable<ParamGroupSpec<AdamOptions>>, defaults: Partial<AdamOptions> = {}) {
    super(params, { ...ADAMW_DEFAULTS, ...defaults });
  }
}
