/**
 * A tiny tokenizer (ch 8, K 32, one downsampling: 32x32x1 -> 16x16 tokens) overfits 4
 * Fashion-MNIST-like images (filled silhouettes with shading and a stripe on a black background)
 * on the GPU, with a latent perturbation active on one image of the four: within 50 AdamW steps
 * the reconstruction MSE falls >= 10x from its first value (0.265 at init) and below half the MSE
 * of the best constant image (the batch mean, 0.032) -- the second bound needs the codes to carry
 * each image's shape. Live tensors stay flat across steps. (Measured on lavapipe: 0.265 -> 0.012,
 * ~20 s; the model is small because a lavapipe step costs ~0.4 s even at this size.)
 */
import { describe, expect, it } from 'vitest';
import * as E from '../engine/index.js';
import { AdamW } from '../nn/index.js';
import { tokenizerTrainStep, VQTokenizer } from '../models/tokenizer/index.js';
import { requireGpu } from './helpers/backends.js';
import { meanImageMse, silhouettes32 } from './helpers/silhouettes.js';

const gpu = await requireGpu();


describe.runIf(gpu)('tiny tokenizer on the GPU', () => {
  it('overfits 4 images: reconstruction MSE drops >= 10x and below half the mean-image MSE in 50 steps', async () => {
    const backend = gpu!;
    const live0 = E.memoryStats().liveTensors;
    const model = new VQTokenizer({ ch: 8, chMult: [1, 2], numResBlocks: 1, codebookSize: 32, codeDim: 8, perturbation: { alpha: 1, beta: 0.25, delta: 4 }, perturbSeed: 1 }, { backend, generator: new E.Generator(0) });
    const opt = new AdamW(model.parameters(), { lr: 3e-3, weightDecay: 0 });
    const data = silhouettes32(4);
    const x = E.tensor(data, [4, 1, 32, 32], { backend });
    const meanMse = meanImageMse(data, 4, 1024);
    const steps = 50;
    const rec: number[] = [];
    let liveAt10 = 0;
    for (let step = 1; step <= steps; step++) {
      const terms = E.tidy(() => tokenizerTrainStep(model, opt, x, { step, totalSteps: steps }));
      if (step === 1 || step % 10 === 0) rec.push(await terms.rec!.item());
      if (step === 10) liveAt10 = E.memoryStats().liveTensors;
      if (step === steps) expect(E.memoryStats().liveTensors).toBe(liveAt10);
      for (const t of Object.values(terms)) t.dispose();
    }
    const first = rec[0]!;
    const last = rec[rec.length - 1]!;
    const curve = `rec MSE ${rec.map((v) => v.toFixed(4)).join(' -> ')}, mean-image MSE ${meanMse.toFixed(4)}`;
    expect(last, curve).toBeLessThan(first / 10);
    expect(last, curve).toBeLessThan(meanMse / 2);
    opt.dispose();
    model.dispose();
    x.dispose();
    expect(E.memoryStats().liveTensors).toBeLessThanOrEqual(live0 + 0);
  }, 90_000);
});
