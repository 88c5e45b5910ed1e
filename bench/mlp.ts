/**
 * Training-step cost of a small MLP (2 -> 64 -> 64 -> 1, ReLU, MSE) on our engine: forward,
 * backward, manual SGD update, one sync per step; counts dispatches and submits per step from
 * backend.counters.
 */
import type { Tensor, WebGPUBackend } from '../engine/index.js';
import { randomData, timeAsync, type TimingOptions } from './common.js';

type Engine = typeof import('../node/index.js');

export interface MlpResult {
  batch: number;
  dispatchesPerStep: number;
  submitsPerStep: number;
  msPerStep: number;
  stepsTimed: number;
  pipelines: number;
  lossFirst: number;
  lossLast: number;
}

export async function benchMlp(eng: Engine, backend: WebGPUBackend, timing: TimingOptions, batch = 256): Promise<MlpResult> {
  const opts = { backend };
  const linear = (x: Tensor, w: Tensor, b: Tensor): Tensor => {
    // x [B, in], w [in, out], b [out]
    return eng.add(eng.matmul(x, w), b);
  };
  const sizes = [2, 64, 64, 1];
  let params: Tensor[] = [];
  for (let l = 0; l < 3; l++) {
    const fanIn = sizes[l]!;
    const fanOut = sizes[l + 1]!;
    const w = randomData(fanIn * fanOut, 100 + l).map((v) => v * Math.sqrt(6 / fanIn) * 0.5);
    params.push(eng.tensor(w, [fanIn, fanOut], opts).requireGrad());
    params.push(eng.zeros([fanOut], opts).requireGrad());
  }
  // Targets: y = sin(3 x0) * x1, a smooth function the net can fit.
  const xData = randomData(batch * 2, 7);
  const yData = new Float32Array(batch);
  for (let i = 0; i < batch; i++) yData[i] = Math.sin(3 * xData[2 * i]!) * xData[2 * i + 1]!;
  const x = eng.tensor(xData, [batch, 2], opts);
  const y = eng.tensor(yData, [batch, 1], opts);
  const lr = 0.05;

  let lastLoss: Tensor | null = null;
  const step = (): void => {
    const next = eng.tidy(() => {
      const [w1, b1, w2, b2, w3, b3] = params as [Tensor, Tensor, Tensor, Tensor, Tensor, Tensor];
      const h1 = eng.relu(linear(x, w1, b1));
      const h2 = eng.relu(linear(h1, w2, b2));
      const out = linear(h2, w3, b3);
      const loss = eng.mean(eng.square(eng.sub(out, y)));
      eng.backward(loss);
      const updated = eng.noGrad(() => params.map((p) => eng.sub(p, eng.mul(p.grad!, lr))));
      return { updated, loss: eng.detach(loss) };
    });
    for (const p of params) {
      p.grad?.dispose();
      p.dispose();
    }
    params = next.updated.map((p) => eng.keep(p).requireGrad());
    lastLoss?.dispose();
    lastLoss = eng.keep(next.loss);
  };
  const readLoss = async (): Promise<number> => (lastLoss ? (await eng.readContiguous(lastLoss))[0]! : NaN);

  // Warm up (pipeline compilation), then count one step exactly.
  for (let i = 0; i < 3; i++) step();
  await backend.sync();
  const lossFirst = await readLoss();
  const c0 = { ...backend.counters };
  const countedSteps = 5;
  for (let i = 0; i < countedSteps; i++) {
    step();
    await backend.sync();
  }
  const dispatchesPerStep = (backend.counters.dispatches - c0.dispatches) / countedSteps;
  const submitsPerStep = (backend.counters.submits - c0.submits) / countedSteps;

  let steps = 0;
  const t = await timeAsync(
    'mlp-step',
    async () => {
      step();
      await backend.sync();
      steps++;
    },
    timing,
  );
  const lossLast = await readLoss();
  for (const p of params) p.dispose();
  (lastLoss as Tensor | null)?.dispose();
  x.dispose();
  y.dispose();
  return {
    batch,
    dispatchesPerStep,
    submitsPerStep,
    msPerStep: t.medianMs,
    stepsTimed: steps,
    pipelines: backend.counters.pipelines,
    lossFirst,
    lossLast,
  };
}
