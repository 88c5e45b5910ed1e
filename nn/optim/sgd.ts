/** Stochastic gradient descent with momentum, dampening, Nesterov momentum and L2 weight decay (PyTorch semantics). */
import * as E from '../../engine/index.js';
import { Optimizer, type ParamGroup, type ParamGroupSpec, type ParamList, type ParamState } from './optimizer.js';

export interface SGDOptions {
  lr: number;
  momentum: number;
  dampening: number;
  weightDecay: number;
  nesterov: boolean;
}

export const SGD_DEFAULTS: SGDOptions = { lr: 1e-3, momentum: 0, dampening: 0, weightDecay: 0, nesterov: false };

/**
 * d = g + weightDecay * p; with momentum: buf = d on a parameter's first step, then
 * buf = momentum * buf + (1 - dampening) * d, and d = buf (Nesterov: d + momentum * buf);
 * p -= lr * d. State per parameter: 'momentum_buffer' (only when momentum != 0).
 */
export class SGD extends Optimizer<SGDOptions> {
  constructor(params: ParamList | Iterable<ParamGroupSpec<SGDOptions>>, defaults: Partial<SGDOptions> = {}) {
    super(params, { ...SGD_DEFAULTS, ...defaults });
  }

  protected validate(h: SGDOptions, where: string): void {
    if (!(h.lr >= 0)) throw new RangeError(`${where}: invalid learning rate ${h.lr}`);
    if (!(h.momentum >= 0)) throw new RangeError(`${where}: invalid momentum ${h.momentum}`);
    if (!(h.weightDecay >= 0)) throw new RangeError(`${where}: invalid weightDecay ${h.weightDecay}`);
    if (!Number.isFinite(h.dampening)) throw new RangeError(`${where}: invalid dampening ${h.dampening}`);
    if (h.nesterov && (h.momentum <= 0 || h.dampening !== 0)) throw new RangeError(`${where}: Nesterov momentum requires momentum > 0 and dampening 0`);
  }

  protected stateKeys(h: SGDOptions): { required: string[]; optional: string[] } {
    // PyTorch saves momentum_buffer None before the first step or without momentum.
    return { required: [], optional: h.momentum !== 0 ? ['momentum_buffer'] : [] };
  }

  protected update(p: E.Tensor, g: E.Tensor, st: ParamState, group: ParamGroup<SGDOptions>): void {
    const buf = group.momentum !== 0 ? this.buffer(p, st, 'momentum_buffer') : null;
    E.sgdUpdate(p, g, buf?.t ?? null, {
      lr: group.lr,
      momentum: group.momentum,
      dampening: group.dampening,
      nesterov: group.nesterov,
      weightDecay: group.weightDecay,
      first: buf?.created ?? false,
      // Read live, and the step counted as a host effect, so a captured step's replays follow a schedule.
      liveLr: () => group.lr,
    });
    E.stepEffect(p.backend, () => void st.step++);
  }
}
