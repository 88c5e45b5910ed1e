/**
 * Cases for philox_fill (engine/random.ts): the Philox4x32-10 stream is defined by integers, so
 * the CPU and the device must give bit-identical words, uniforms (24 random bits times 2^-24,
 * then scaled: exact in f32 for these ranges), integers and Bernoulli draws: tolerance 0. Normals
 * go through log / sqrt / sin / cos (the device's own series): test/random.test.ts's tolerance,
 * 4e-6 absolute + 1e-6 relative at std 2 (measured there: 6.2e-7 per unit of std).
 * Each case draws from a fresh Generator, several calls in a row, so the counter offsets that
 * consecutive calls take are checked too; an input tensor (the Bernoulli probabilities, or one
 * that is not read) tells the function which backend to draw on. No gradients.
 */
import * as E from '../../../engine/index.js';
import type { OpCase } from '../kit.js';

export const randomCases: OpCase[] = [
  {
    name: 'philox: words, uniforms, integers, Bernoulli (scalar and tensor p), an explicit stream',
    covers: ['philox_fill'],
    inputs: [{ shape: [2, 5], lo: 0, hi: 1, noGrad: true }],
    fn: (p) => {
      const backend = p.backend;
      const generator = new E.Generator(0x5eed_1234_5678n);
      const o = { backend, generator };
      return [
        E.randomBits([9], o),
        E.rand([7], o),
        E.rand([6], { ...o, low: -2, high: 6 }),
        E.randint(-7, 1000, [5], o),
        E.randint(-(2 ** 31), 2 ** 31, [5], o),
        E.bernoulli(0.3, [11], o),
        E.bernoulli(p, undefined, o),
        // Counter words 0-1 carry across the 32-bit boundary.
        E.philoxStream(10, [0xfffffffe, 5, 7, 9], [1, 2], backend),
      ];
    },
    tol: { forward: { atol: 0, rtol: 0 }, why: 'integer stream and exact transforms: bit-identical' },
    grad: false,
  },
  {
    name: 'philox: normals (Box-Muller), mean 1, std 2',
    covers: ['philox_fill'],
    inputs: [{ shape: [1], noGrad: true }],
    fn: (anchor) => {
      const o = { backend: anchor.backend, generator: new E.Generator(-77) };
      E.rand([3], o); // start at an offset
      return [E.randn([9], { ...o, mean: 1, std: 2 }), E.randn([2, 3], { ...o, mean: 1, std: 2 })];
    },
    tol: { forward: { atol: 4e-6, rtol: 1e-6 }, why: 'log / sin / cos series on the device (test/random.test.ts: 4e-6 at std 2)' },
    grad: false,
  },
];
