/**
 * The GPT of the side-by-side training benchmark (`../shared/reference/torch_step_bench.py`'s GPT:
 * class token + 63 tokens, d 384, 6 layers, 6 heads, LayerNorm, GELU MLP x4, learned positions)
 * and its training step, shared by bench/train-step.ts and bench/profile-step.ts.
 */
import * as E from '../engine/index.js';
import { AdamW } from '../nn/index.js';
import { ARTransformer } from '../models/ar/index.js';

export interface GptReference {
  model: ARTransformer;
  optimizer: AdamW;
  /** One training step (forward, cross-entropy, backward, AdamW); returns the detached loss. */
  step(): E.Tensor;
  dispose(): void;
}

export function gptReference(backend: E.Backend, batch: number): GptReference {
  const model = new ARTransformer(
    { vocabSize: 1024, numClasses: 10, seqLen: 64, dim: 384, depth: 6, heads: 6, mlpRatio: 4, mlp: 'gelu', norm: 'layer', pos: 'learned', qkNorm: null, classDropout: 0, dropout: 0 },
    { backend, generator: new E.Generator(0) },
  );
  const optimizer = new AdamW(model.parameters(), { lr: 1e-4 });
  const tokens = E.randint(0, 1024, [batch, 64], { backend, generator: new E.Generator(2) });
  const classes = E.randint(0, 10, [batch], { backend, generator: new E.Generator(3) });
  return {
    model,
    optimizer,
    step: () =>
      E.tidy(() => {
        const logits = model.forward(classes, tokens);
        const loss = E.crossEntropy(logits.reshape([batch * 64, 1024]), tokens.reshape([batch * 64]));
        optimizer.zeroGrad();
        loss.backward();
        optimizer.step();
        return loss.detach();
      }),
    dispose: () => {
      for (const t of [tokens, classes]) t.dispose();
      optimizer.dispose();
      model.dispose();
    },
  };
}
