/**
 * Trains a 2-layer MLP classifier on the spiral data set with Adam, written directly with engine
 * ops (the nn library comes later). Used by the demo command and by the end-to-end test.
 */
import * as E from '../engine/index.js';
import { makeSpiral } from './spiral-data.js';

export interface SpiralOptions {
  backend: E.Backend;
  steps: number;
  hidden?: number;
  pointsPerClass?: number;
  classes?: number;
  lr?: number;
  seed?: number;
  /** Called every `logEvery` steps with the loss (reads back: costs one sync). */
  onLog?: (info: { step: number; loss: number; accuracy: number; stepsPerSec: number; etaSec: number }) => void;
  logEvery?: number;
}

export interface SpiralResult {
  losses: { step: number; loss: number }[];
  finalLoss: number;
  accuracy: number;
}

/** PyTorch's nn.Linear default init: U(-1/sqrt(fanIn), 1/sqrt(fanIn)) for weight and bias. */
function linearParams(fanIn: number, fanOut: number, gen: E.Generator, backend: E.Backend): [E.Tensor, E.Tensor] {
  const bound = 1 / Math.sqrt(fanIn);
  const w = E.rand([fanOut, fanIn], { generator: gen, backend, low: -bound, high: bound }).requireGrad();
  const b = E.rand([fanOut], { generator: gen, backend, low: -bound, high: bound }).requireGrad();
  return [w, b];
}

export async function trainSpiral(o: SpiralOptions): Promise<SpiralResult> {
  const { backend, steps } = o;
  const hidden = o.hidden ?? 64;
  const classes = o.classes ?? 3;
  const lr = o.lr ?? 0.01;
  const logEvery = o.logEvery ?? 50;
  const data = makeSpiral(o.pointsPerClass ?? 100, classes, o.seed ?? 0);
  const x = E.tensor(data.x, [data.y.length, 2], { backend });
  const y = E.tensor(data.y, [data.y.length], { backend, dtype: 'i32' });
  const gen = new E.Generator(o.seed ?? 0);
  const params = [...linearParams(2, hidden, gen, backend), ...linearParams(hidden, hidden, gen, backend), ...linearParams(hidden, classes, gen, backend)];
  const m = params.map((p) => E.zerosLike(p));
  const v = params.map((p) => E.zerosLike(p));
  // The data, parameters and Adam moments live for the whole run; freed when it returns.
  using _state = E.disposable([x, y, ...params, ...m, ...v]);
  const [b1, b2, eps] = [0.9, 0.999, 1e-8];
  const forward = () => {
    const [w1, c1, w2, c2, w3, c3] = params as [E.Tensor, E.Tensor, E.Tensor, E.Tensor, E.Tensor, E.Tensor];
    const h1 = E.linear(x, w1, c1).relu();
    const h2 = E.linear(h1, w2, c2).relu();
    return E.linear(h2, w3, c3);
  };
  const losses: { step: number; loss: number }[] = [];
  const start = performance.now();
  for (let step = 1; step <= steps; step++) {
    using lossT = E.tidy(() => {
      const loss = E.crossEntropy(forward(), y);
      loss.backward();
      // Adam with bias correction, updating parameters and moments in place.
      E.noGrad(() => {
        const c1 = 1 - b1 ** step;
        const c2 = 1 - b2 ** step;
        params.forEach((p, i) => {
          const g = p.grad!;
          m[i]!.assign(m[i]!.mul(b1).add(g.mul(1 - b1)));
          v[i]!.assign(v[i]!.mul(b2).add(g.square().mul(1 - b2)));
          p.assign(p.sub(m[i]!.div(c1).div(v[i]!.div(c2).sqrt().add(eps)).mul(lr)));
          g.dispose(); // the gradient is kept state of the parameter until cleared
          p.grad = null;
        });
      });
      return loss.detach();
    });
    if (step % logEvery === 0 || step === steps) {
      const loss = await lossT.item();
      losses.push({ step, loss });
      if (o.onLog) {
        const acc = await accuracy(forward, y);
        const elapsed = (performance.now() - start) / 1000;
        o.onLog({ step, loss, accuracy: acc, stepsPerSec: step / elapsed, etaSec: ((steps - step) * elapsed) / step });
      }
    }
  }
  const acc = await accuracy(forward, y);
  return { losses, finalLoss: losses[losses.length - 1]!.loss, accuracy: acc };
}

async function accuracy(forward: () => E.Tensor, y: E.Tensor): Promise<number> {
  using correct = E.noGrad(() => E.tidy(() => forward().argmax(1).eq(y).mean()));
  return await correct.item();
}
