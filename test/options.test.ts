/**
 * Options objects of the public ops (engine/options.ts): the old positional forms and misnamed
 * keys throw, naming the op, instead of being read as "no options"; the options select what the
 * positional arguments used to (CPU float64, exact values).
 */
import { describe, expect, it } from 'vitest';
import * as E from '../engine/index.js';
import { LeakyReLU } from '../nn/index.js';

const ref = E.cpuF64;
const t = (data: number[], shape: number[]) => E.tensor(data, shape, { backend: ref });

describe('options objects', () => {
  it('refuse positional values and unknown keys, naming the op', () => {
    const x = t([1, 2, 3, 4, 5, 6], [1, 1, 2, 3]);
    const w = t([1, 1, 1], [3]);
    const bad = (v: unknown) => v as never;
    expect(() => E.variance(x, 3, bad(false))).toThrow(/var: expected an options object \{ keepdim, correction \}, got false/);
    expect(() => E.variance(x, 3, bad({ unbiased: false }))).toThrow(/var: unknown option 'unbiased' \(expected keepdim, correction\)/);
    expect(() => x.var(3, bad(true))).toThrow(/var: expected an options object/);
    expect(() => E.layerNorm(x, 3, bad(w))).toThrow(/layer_norm: expected an options object \{ weight, bias, eps, act \}, got a tensor/);
    expect(() => E.groupNorm(x, 1, bad({ epsilon: 1e-3 }))).toThrow(/group_norm: unknown option 'epsilon'/);
    expect(() => E.rmsNorm(x, bad({ weight: w, bias: w }))).toThrow(/rms_norm: unknown option 'bias' \(expected weight, eps, act\)/);
    expect(() => E.layerNorm(x, 3, { eps: -1 })).toThrow(/layer_norm: eps must be a finite number >= 0, got -1/);
    expect(() => E.avgPool2d(x, 1, bad(1))).toThrow(/avgPool2d: expected an options object \{ stride, padding \}, got 1/);
    expect(() => E.avgPool2d(x, 1, bad({ dilation: 2 }))).toThrow(/avgPool2d: unknown option 'dilation'/);
    expect(() => E.maxPool2d(x, 1, bad([1, 1]))).toThrow(/maxPool2d: expected an options object \{ stride, padding, dilation \}, got an array \[1, 1\]/);
  });

  it('select what the positional arguments did', async () => {
    const x = t([1, 2, 4, 7], [2, 2]);
    expect(Array.from(await E.variance(x, 1, { correction: 0 }).toArray())).toEqual([0.25, 2.25]);
    expect(Array.from(await x.var(1, { keepdim: true }).toArray())).toEqual([0.5, 4.5]);
    expect(E.variance(x, 1, { keepdim: true }).shape).toEqual([2, 1]);
    const img = t([1, 2, 3, 4, 5, 6, 7, 8, 9], [1, 1, 3, 3]);
    expect(Array.from(await E.maxPool2d(img, 2, { stride: 1 }).toArray())).toEqual([5, 6, 8, 9]);
    expect(E.maxPool2d(img, 2, { stride: 1, padding: 1, dilation: 2 }).shape).toEqual([1, 1, 3, 3]);
    expect(await E.avgPool2d(img, 3, { padding: 1 }).item()).toBeCloseTo(12 / 9, 14);
  });

  it('leakyRelu is one function, one method and one layer, exact for any slope', async () => {
    const x = t([-2, -0.5, 0, 3], [4]);
    expect(Array.from(await E.leakyRelu(x).toArray())).toEqual([-0.02, -0.005, 0, 3]);
    expect(Array.from(await x.leakyRelu(0.2).toArray())).toEqual([-0.4, -0.1, 0, 3]);
    expect(Array.from(await new LeakyReLU(3).forward(x).toArray())).toEqual([-6, -1.5, 0, 3]);
    expect(Array.from(await E.leakyRelu(x, -1).toArray(), (v) => v + 0)).toEqual([2, 0.5, 0, 3]);
  });
});
