/**
 * VQGAN's residual block: GroupNorm -> SiLU -> Conv3x3 -> GroupNorm -> SiLU -> Dropout -> Conv3x3,
 * plus the input (through a 1x1 conv when the channel count changes).
 */
import type * as E from '../../engine/index.js';
import type { InitOptions } from '../init.js';
import { Dropout, Layer } from './basic.js';
import { Conv2d } from './conv.js';
import { GroupNorm } from './norm.js';

export interface ResBlockConfig extends InitOptions {
  /** GroupNorm groups (VQGAN: 32, reduced to a divisor of the channel count when needed). */
  normGroups?: number;
  dropout?: number;
}

export class ResBlock extends Layer {
  readonly norm1: GroupNorm;
  readonly conv1: Conv2d;
  readonly norm2: GroupNorm;
  readonly dropout: Dropout;
  readonly conv2: Conv2d;
  readonly skip: Conv2d | null;
  constructor(readonly inChannels: number, readonly outChannels: number, cfg: ResBlockConfig = {}) {
    super();
    const g = cfg.normGroups ?? 32;
    const init: InitOptions = { ...(cfg.backend ? { backend: cfg.backend } : {}), ...(cfg.generator ? { generator: cfg.generator } : {}) };
    const groupsFor = (c: number) => {
      // Like VQGAN's Normalize(): 32 groups, falling back to a divisor for small widths.
      let k = Math.min(g, c);
      while (c % k) k--;
      return k;
    };
    // GroupNorm -> SiLU as one fused layer (same parameters as a plain GroupNorm).
    this.norm1 = this.module('norm1', new GroupNorm(groupsFor(inChannels), inChannels, { ...init, eps: 1e-6, act: 'silu' }));
    this.conv1 = this.module('conv1', new Conv2d(inChannels, outChannels, 3, { ...init, padding: 1 }));
    this.norm2 = this.module('norm2', new GroupNorm(groupsFor(outChannels), outChannels, { ...init, eps: 1e-6, act: 'silu' }));
    this.dropout = this.module('dropout', new Dropout(cfg.dropout ?? 0));
    this.conv2 = this.module('conv2', new Conv2d(outChannels, outChannels, 3, { ...init, padding: 1 }));
    this.skip = inChannels !== outChannels ? this.module('nin_shortcut', new Conv2d(inChannels, outChannels, 1, init)) : null;
  }
  forward(x: E.Tensor): E.Tensor {
    const h = this.conv1.forward(this.norm1.forward(x));
    // The residual add rides in conv2's output kernel (one dispatch less where the plan allows).
    return this.conv2.forward(this.dropout.forward(this.norm2.forward(h)), this.skip ? this.skip.forward(x) : x);
  }
}
