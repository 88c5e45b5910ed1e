/**
 * Cases for sample_logits (engine/ops/sample.ts): the device and the float64 reference draw the
 * same uniform per row from the same Generator, so they return the same token ids; they may differ
 * only where a float rounding decides (u * Z or top-p's p * S within ~1e-6 relative of a
 * cumulative-mass boundary, see test/sample.test.ts). These inputs are fixed and were checked to
 * stay clear of every boundary by more than 1e-3 of the row's mass, so ids must match exactly
 * (tolerance 0). Greedy rows (temperature 0) are the argmax, lowest index on ties. No gradients.
 */
import * as E from '../../../engine/index.js';
import type { OpCase } from '../kit.js';

/** Logits with many ties (integers 0..3), for greedy decoding. */
const TIES = [3, 1, 3, 0, 2, 2, 0, 3, 1, 1, 2, 3, 0, 0, 1, 2, 1, 3, 2, 0, 1, 1, 0, 2];

export const sampleCases: OpCase[] = [
  {
    name: 'sample logits: temperature, top-k, top-p, a transposed view, a [V] row, greedy with ties',
    covers: ['sample_logits'],
    inputs: [{ shape: [4, 12], lo: -3, hi: 3 }, { shape: [12, 3], lo: -3, hi: 3 }, { shape: [4, 6], data: TIES }],
    fn: (x, xt, ties) => {
      const gen = new E.Generator(2024);
      return [
        E.sampleLogits(x, { generator: gen }),
        E.sampleLogits(x, { temperature: 0.7, topK: 5, generator: gen }),
        E.sampleLogits(x, { temperature: 1.3, topP: 0.6, generator: gen }),
        E.sampleLogits(x, { temperature: 0.9, topK: 6, topP: 0.8, generator: gen }),
        E.sampleLogits(E.transpose(xt), { temperature: 1.1, generator: gen }),
        E.sampleLogits(E.reshape(E.slice(x, [[2, 3], null]), [12]), { topP: 0.5, generator: gen }),
        E.sampleLogits(ties, { temperature: 0, topK: 2, generator: gen }),
      ];
    },
    tol: { forward: { atol: 0, rtol: 0 }, why: 'token ids from the same uniforms; inputs clear of rounding-decided boundaries' },
    grad: false,
  },
];
