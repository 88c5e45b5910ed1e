/** Conv2d, ConvTranspose2d and nearest-upsample + conv, with PyTorch's default init. */
import * as E from '../../engine/index.js';
import { biasUniform, kaimingUniform, type InitOptions } from '../init.js';
import { Layer } from './basic.js';

type Size2 = number | readonly [number, number];
const pair = (v: Size2): [number, number] => (typeof v === 'number' ? [v, v] : [v[0], v[1]]);

/** The op options among a layer config's fields (undefined ones left out), built once per layer. */
function opOptions<T extends object>(cfg: object, keys: readonly (keyof T & string)[]): T {
  const o: Record<string, unknown> = {};
  for (const k of keys) if ((cfg as Record<string, unknown>)[k] !== undefined) o[k] = (cfg as Record<string, unknown>)[k];
  return o as T;
}

export interface Conv2dConfig extends InitOptions {
  stride?: Size2;
  padding?: Size2 | 'same' | 'valid';
  dilation?: Size2;
  groups?: number;
  bias?: boolean;
}

/** nn.Conv2d: weight [Cout, Cin/groups, kh, kw]. */
export class Conv2d extends Layer {
  readonly weight: E.Tensor;
  readonly bias: E.Tensor | null;
  private readonly opts: E.Conv2dOptions;
  constructor(readonly inChannels: number, readonly outChannels: number, kernelSize: Size2, readonly cfg: Conv2dConfig = {}) {
    super();
    this.opts = opOptions<E.Conv2dOptions>(cfg, ['stride', 'padding', 'dilation', 'groups']);
    const groups = cfg.groups ?? 1;
    if (inChannels % groups || outChannels % groups) throw new Error(`Conv2d: channels ${inChannels}->${outChannels} must be divisible by groups ${groups}`);
    const [kh, kw] = pair(kernelSize);
    const shape = [outChannels, inChannels / groups, kh, kw];
    this.weight = this.param('weight', kaimingUniform(shape, Math.sqrt(5), cfg));
    this.bias = cfg.bias === false ? null : this.param('bias', biasUniform(outChannels, (inChannels / groups) * kh * kw, cfg));
  }
  /** conv(x) (+ residual: a residual connection's add, fused into the convolution where it can be). */
  forward(x: E.Tensor, residual?: E.Tensor | null): E.Tensor {
    return E.conv2d(x, this.weight, this.bias, residual ? Object.assign({}, this.opts, { residual }) : this.opts);
  }
}

export interface ConvTranspose2dConfig extends InitOptions {
  stride?: Size2;
  padding?: Size2;
  outputPadding?: Size2;
  dilation?: Size2;
  groups?: number;
  bias?: boolean;
}

/** nn.ConvTranspose2d: weight [Cin, Cout/groups, kh, kw]; PyTorch computes fan_in from weight.shape[1] * k. */
export class ConvTranspose2d extends Layer {
  readonly weight: E.Tensor;
  readonly bias: E.Tensor | null;
  private readonly opts: E.ConvTranspose2dOptions;
  constructor(readonly inChannels: number, readonly outChannels: number, kernelSize: Size2, readonly cfg: ConvTranspose2dConfig = {}) {
    super();
    this.opts = opOptions<E.ConvTranspose2dOptions>(cfg, ['stride', 'padding', 'outputPadding', 'dilation', 'groups']);
    const groups = cfg.groups ?? 1;
    if (inChannels % groups || outChannels % groups) throw new Error(`ConvTranspose2d: channels ${inChannels}->${outChannels} must be divisible by groups ${groups}`);
    const [kh, kw] = pair(kernelSize);
    const shape = [inChannels, outChannels / groups, kh, kw];
    const fan = (outChannels / groups) * kh * kw;
    this.weight = this.param('weight', kaimingUniform(shape, Math.sqrt(5), cfg, fan));
    this.bias = cfg.bias === false ? null : this.param('bias', biasUniform(outChannels, fan, cfg));
  }
  forward(x: E.Tensor): E.Tensor {
    return E.convTranspose2d(x, this.weight, this.bias, this.opts);
  }
}

/** Nearest-neighbour upsampling. */
export class Upsample extends Layer {
  constructor(readonly scale: Size2 = 2) {
    super();
  }
  forward(x: E.Tensor): E.Tensor {
    return E.upsampleNearest2d(x, this.scale);
  }
}

/** VQGAN's upsampling block: nearest x2 then a 3x3 conv. */
export class UpsampleConv extends Layer {
  readonly conv: Conv2d;
  constructor(channels: number, outChannels = channels, opts: InitOptions = {}) {
    super();
    this.conv = this.module('conv', new Conv2d(channels, outChannels, 3, { ...opts, padding: 1 }));
  }
  forward(x: E.Tensor): E.Tensor {
    return this.conv.forward(E.upsampleNearest2d(x, 2));
  }
}

/** VQGAN's downsampling block: a stride-2 3x3 conv (padding 1). */
export class DownsampleConv extends Layer {
  readonly conv: Conv2d;
  constructor(channels: number, outChannels = channels, opts: InitOptions = {}) {
    super();
    this.conv = this.module('conv', new Conv2d(channels, outChannels, 3, { ...opts, stride: 2, padding: 1 }));
  }
  forward(x: E.Tensor): E.Tensor {
    return this.conv.forward(x);
  }
}
