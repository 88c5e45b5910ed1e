/**
 * Resume: a run stopped at step N (checkpoint written by the training loop) and resumed in fresh
 * objects gives the same losses as the uninterrupted run. Everything random or stateful is in the
 * checkpoint: parameters, AdamW moments and step counts, LR schedule, EMA shadows, the dropout
 * generator and the data loader's position. On one backend the computation is the same sequence
 * of kernels, so the losses must match exactly.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import * as E from '../engine/index.js';
import * as nn from '../nn/index.js';
import { trainLoop } from '../node/train.js';
import { requireGpu } from './helpers/backends.js';

const gpu = await requireGpu();
const dir = mkdtempSync(join(tmpdir(), 'resume-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** 40 random 1x4x4 "images" in 3 classes. */
function dataset(): nn.ImageDataset {
  const n = 40;
  const images = new Uint8Array(n * 16);
  for (let i = 0; i < images.length; i++) images[i] = (i * 2654435761) % 251;
  return { images, labels: Int32Array.from({ length: n }, (_, i) => i % 3), shape: [n, 1, 4, 4], classes: ['a', 'b', 'c'] };
}

class Net extends nn.Module {
  fc1: nn.Linear;
  drop: nn.Dropout;
  fc2: nn.Linear;
  constructor(o: nn.InitOptions, dropGen: E.Generator) {
    super();
    this.fc1 = this.module('fc1', new nn.Linear(16, 12, o));
    this.drop = this.module('drop', new nn.Dropout(0.2, dropGen));
    this.fc2 = this.module('fc2', new nn.Linear(12, 3, o));
  }
  forward(x: E.Tensor): E.Tensor {
    return this.fc2.forward(this.drop.forward(this.fc1.forward(x).relu()));
  }
}

function setup(backend: E.Backend) {
  const dropGen = new E.Generator(123);
  const model = new Net({ backend, generator: new E.Generator(1) }, dropGen);
  const optimizer = new nn.AdamW(nn.paramGroupsNoDecay(model.namedParameters(), 0.05), { lr: 0.01 });
  const scheduler = new nn.Scheduler(optimizer, nn.schedules.warmupCosine({ warmupSteps: 3, totalSteps: 16, minLrRatio: 0.1 }));
  const ema = new nn.EMA(model.namedParameters(), { decay: 0.9 });
  const loader = new nn.DataLoader(dataset(), { batchSize: 8, seed: 5, hflip: true });
  const state: nn.TrainingState = { model, optimizer, scheduler, ema, loader, generators: { dropout: dropGen } };
  const step = () => {
    const b = loader.next();
    const x = E.tensor(b.x, [b.shape[0], 16], { backend });
    const y = E.tensor(b.labels, [b.labels.length], { backend, dtype: 'i32' });
    const loss = E.crossEntropy(model.forward(x), y);
    loss.backward();
    optimizer.step();
    optimizer.zeroGrad();
    scheduler.step();
    ema.update();
    return { terms: { loss: loss.detach() }, epoch: b.epoch };
  };
  return { state, step, model, ema };
}

// The CPU fallback backend (f32 storage): checkpoints store F32, so a float64 backend would lose bits.
const backends: [string, E.Backend][] = [['cpu-f32', new E.CpuBackend()], ...(gpu ? [['webgpu', gpu] as [string, E.Backend]] : [])];

describe.each(backends)('resume on %s', (name, backend) => {
  it('stopping at step 7 and resuming from the checkpoint reproduces the uninterrupted losses exactly', async () => {
    const quiet = () => {};
    const full = setup(backend);
    const a = await trainLoop({ totalSteps: 16, state: full.state, backend, step: full.step, logEvery: 1, log: quiet });
    const ckpt = join(dir, `${name}.safetensors`);
    const first = setup(backend);
    await trainLoop({ totalSteps: 7, state: first.state, backend, step: first.step, logEvery: 1, log: quiet, checkpointPath: ckpt, checkpointEvery: 7 });
    const second = setup(backend);
    const lines: string[] = [];
    const b = await trainLoop({ totalSteps: 16, state: second.state, backend, step: second.step, logEvery: 1, log: (l) => lines.push(l), checkpointPath: ckpt, checkpointEvery: 100 });
    expect(b.startStep).toBe(7);
    expect(lines[0]).toMatch(/resumed from .* at step 7/);
    expect(lines[1]).toMatch(/^step  8\/16 \| epoch 1 \| loss .* \| .* steps\/s \| ETA .* \| peak mem \d+ MB$/);
    expect(b.history.map((h) => h.step)).toEqual([8, 9, 10, 11, 12, 13, 14, 15, 16]);
    expect(b.history.map((h) => h.terms.loss)).toEqual(a.history.slice(7).map((h) => h.terms.loss));
    // Final parameters and EMA shadows agree too.
    for (const [[k, p], [, q]] of full.model.namedParameters().map((e, i) => [e, second.model.namedParameters()[i]!] as const)) {
      expect(Array.from(await q.toArray()), k).toEqual(Array.from(await p.toArray()));
    }
    expect(Array.from(await second.ema.shadows[0]!.toArray())).toEqual(Array.from(await full.ema.shadows[0]!.toArray()));
  });
});
