/**
 * Parameter initializers matching PyTorch's defaults, drawn from a seeded Philox generator.
 * fan_in of a weight [out, in, ...k] is in * prod(k) (PyTorch's _calculate_fan_in_and_fan_out).
 */
import { full, rand, randn, type Backend, type Generator, type Tensor } from '../engine/index.js';

export interface InitOptions {
  generator?: Generator;
  backend?: Backend;
}

export function fanIn(shape: readonly number[]): number {
  if (shape.length < 2) throw new Error(`fanIn: needs a weight of rank >= 2, got [${shape.join(', ')}]`);
  return shape.slice(1).reduce((a, b) => a * b, 1);
}

export function fanOut(shape: readonly number[]): number {
  return shape[0]! * shape.slice(2).reduce((a, b) => a * b, 1);
}

export function uniform(shape: readonly number[], low: number, high: number, o: InitOptions = {}): Tensor {
  return rand(shape, { ...o, low, high });
}

export function normal(shape: readonly number[], mean: number, std: number, o: InitOptions = {}): Tensor {
  return randn(shape, { ...o, mean, std });
}

/** kaiming_uniform_(a): bound = gain * sqrt(3 / fan), gain = sqrt(2 / (1 + a^2)). */
export function kaimingUniform(shape: readonly number[], a = Math.sqrt(5), o: InitOptions = {}, fan = fanIn(shape)): Tensor {
  const bound = Math.sqrt(2 / (1 + a * a)) * Math.sqrt(3 / fan);
  return uniform(shape, -bound, bound, o);
}

/** xavier_uniform_: bound = gain * sqrt(6 / (fan_in + fan_out)). */
export function xavierUniform(shape: readonly number[], gain = 1, o: InitOptions = {}): Tensor {
  const bound = gain * Math.sqrt(6 / (fanIn(shape) + fanOut(shape)));
  return uniform(shape, -bound, bound, o);
}

/** nn.Linear / nn.Conv bias default: U(-1/sqrt(fan_in), 1/sqrt(fan_in)). */
export function biasUniform(size: number, fan: number, o: InitOptions = {}): Tensor {
  const bound = fan > 0 ? 1 / Math.sqrt(fan) : 0;
  return uniform([size], -bound, bound, o);
}

export function constant(shape: readonly number[], value: number, o: InitOptions = {}): Tensor {
  return full(shape, value, o.backend ? { backend: o.backend } : {});
}
