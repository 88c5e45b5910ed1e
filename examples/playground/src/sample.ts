/**
 * Class-grid sampling that yields to the page between steps, so a progress bar moves and the
 * Stop button is heard. The steps are those of models/ar/sample.ts sampleTokens (GuidedDecoder,
 * then sampleLogits per token) and of models/diffusion/sample.ts sampleDiffusion (noise, then
 * Euler or Heun steps of the guided velocity on flowTimeGrid), written as loops with an await
 * between steps: the library's functions run all steps in one synchronous call. Same models,
 * options and generator state give the same tokens / latents as those functions
 * (test/playground.test.ts checks both).
 */
import * as E from '../../../engine/index.js';
import { GuidedDecoder, type ARTransformer } from '../../../models/ar/index.js';
import { flowTimeGrid, guidedVelocity, type DiffusionTransformer, type ODESampler } from '../../../models/diffusion/index.js';

export interface Progress {
  (done: number, total: number): void;
}

/** Resolves once the device finished the work queued so far, then lets the page paint. */
async function settle(backend: E.Backend): Promise<void> {
  if (backend instanceof E.WebGPUBackend) await backend.sync();
  await new Promise((r) => setTimeout(r, 0));
}

export class SamplingStopped extends Error {
  override name = 'SamplingStopped';
}

/** `perClass` ids of each of the first `numClasses` classes, row by row. */
export function gridClasses(numClasses: number, perClass: number): number[] {
  return Array.from({ length: numClasses * perClass }, (_, i) => Math.floor(i / perClass));
}

export interface ARGridOptions {
  cfgScale: number;
  temperature: number;
  topK: number;
  topP: number;
  generator: E.Generator;
}

/** Token ids i32 [B, seqLen] for `classes`, one token per step; `stop()` true aborts between steps. */
export async function sampleARTokens(model: ARTransformer, classes: readonly number[], o: ARGridOptions, progress: Progress = () => {}, stop: () => boolean = () => false): Promise<E.Tensor> {
  model.eval();
  const dec = E.noGrad(() => new GuidedDecoder(model, classes, { cfgScale: o.cfgScale }));
  const B = dec.batch;
  const L = model.seqLen;
  const out = E.zeros([B, L], { backend: model.backend, dtype: 'i32' });
  const so = { temperature: o.temperature, topK: o.topK, topP: o.topP, generator: o.generator };
  try {
    for (;;) {
      const t = dec.t;
      E.noGrad(() =>
        E.tidy(() => {
          const sampled = E.sampleLogits(dec.logits, so);
          E.assign(out.slice([null, [t, t + 1]]), sampled.reshape([B, 1]));
          if (dec.canFeed) dec.feed(sampled);
        }),
      );
      progress(t + 1, L);
      if (t === L - 1) break;
      await settle(model.backend);
      if (stop()) throw new SamplingStopped(`stopped at token ${t + 1} of ${L}`);
    }
    return out;
  } catch (e) {
    out.dispose();
    throw e;
  } finally {
    dec.dispose();
  }
}

export interface DiTGridOptions {
  sampler: ODESampler;
  steps: number;
  cfgScale: number;
  generator: E.Generator;
}

/** Normalized latents [B, C, h, w] for `classes`, one ODE step at a time. */
export async function sampleDiTLatents(model: DiffusionTransformer, classes: readonly number[], o: DiTGridOptions, progress: Progress = () => {}, stop: () => boolean = () => false): Promise<E.Tensor> {
  model.eval();
  const backend = model.backend;
  const cls = model.classTensor(classes, 'sampleDiTLatents');
  let x = E.randn([classes.length, ...model.latentShape], { backend, generator: o.generator });
  const ts = flowTimeGrid(o.steps);
  try {
    const v = guidedVelocity(model, cls, { cfgScale: o.cfgScale });
    for (let i = 0; i < o.steps; i++) {
      const [t0, t1] = [ts[i]!, ts[i + 1]!];
      const prev = x;
      x = E.noGrad(() =>
        E.tidy(() => {
          const h = t1 - t0;
          const d = v(prev, t0);
          const euler = prev.add(d.mul(h));
          if (o.sampler === 'euler' || t1 === 0) return euler;
          return prev.add(d.add(v(euler, t1)).mul(h / 2));
        }),
      );
      prev.dispose();
      progress(i + 1, o.steps);
      if (i < o.steps - 1) {
        await settle(backend);
        if (stop()) throw new SamplingStopped(`stopped at step ${i + 1} of ${o.steps}`);
      }
    }
    return x;
  } catch (e) {
    x.dispose();
    throw e;
  } finally {
    cls.dispose();
  }
}
