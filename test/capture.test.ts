/**
 * Captured steps (engine/capture.ts): a training step recorded once and replayed gives the same
 * bits as the same step run eagerly, step after step (dropout's RNG counters, AdamW's bias
 * corrections and a learning-rate schedule all change per step); functions whose steps differ
 * stay eager with a reason; the capture's buffers are never handed to other tensors.
 */
import { describe, expect, it } from 'vitest';
import * as E from '../engine/index.js';
import { AdamW, Dropout, EMA, GELU, Linear, Sequential, SGD } from '../nn/index.js';
import { tokenizerStepKey, tokenizerTrainStep, VQTokenizer } from '../models/tokenizer/index.js';
import { requireGpu } from './helpers/backends.js';

const gpu = await requireGpu();

/** A small MLP with dropout trained by AdamW under a per-step learning-rate schedule, with a warming-up EMA. */
function trainer(backend: E.Backend) {
  const init = (seed: number) => ({ backend, generator: new E.Generator(seed) });
  const model = new Sequential(new Linear(12, 32, init(1)), new GELU(), new Dropout(0.25, new E.Generator(7)), new Linear(32, 4, init(2)));
  const opt = new AdamW(model.parameters(), { lr: 1e-2, weightDecay: 0.05 });
  const ema = new EMA(model.parameters(), { decay: 0.95, warmup: true });
  let calls = 0;
  const step = (x: E.Tensor, y: E.Tensor): E.Tensor =>
    E.tidy(() => {
      opt.zeroGrad();
      const loss = E.mseLoss(model.forward(x), y);
      loss.backward();
      opt.step();
      ema.update();
      return loss.detach();
    });
  // The schedule is set outside the step, as a scheduler would, before each call.
  const schedule = () => {
    for (const g of opt.paramGroups) g.lr = 1e-2 * 0.97 ** calls++;
  };
  return { model, opt, ema, step, schedule, dispose: () => (opt.dispose(), ema.dispose(), model.dispose()) };
}

function batch(backend: E.Backend, s: number): [E.Tensor, E.Tensor] {
  const g = new E.Generator(1000 + s);
  return [E.randn([8, 12], { backend, generator: g }), E.randn([8, 4], { backend, generator: g })];
}

async function bits(t: E.Tensor): Promise<number[]> {
  return Array.from(new Uint32Array(Float32Array.from(await t.toArray()).buffer));
}

describe('captureStep on the CPU backend', () => {
  it('runs every call eagerly and says why', async () => {
    const cpu = new E.CpuBackend();
    const step = E.captureStep((x: E.Tensor) => E.tidy(() => E.mul(x, 2)));
    for (let s = 0; s < 5; s++) {
      const y = step(E.full([3], s, { backend: cpu }));
      expect(Array.from(await y.toArray())).toEqual([2 * s, 2 * s, 2 * s]);
      y.dispose();
    }
    expect(step.mode).toBe('eager');
    expect(step.stats).toMatchObject({ eager: 5, recorded: 0, replays: 0 });
    expect(step.reason).toMatch(/is not WebGPU: steps run eagerly/);
  });
});

describe.runIf(gpu)('captureStep on WebGPU', () => {
  it('60 replayed training steps (dropout, AdamW, lr schedule, EMA warm-up) are bit-identical to eager ones', async () => {
    const STEPS = 64;
    const eager = trainer(gpu!);
    const eagerLosses: number[] = [];
    for (let s = 0; s < STEPS; s++) {
      const [x, y] = batch(gpu!, s);
      eager.schedule();
      const l = eager.step(x, y);
      eagerLosses.push(await l.item());
      [x, y, l].forEach((t) => t.dispose());
    }
    const cap = trainer(gpu!);
    const step = E.captureStep(cap.step, { verifyEvery: 20 });
    const losses: number[] = [];
    const modes: string[] = [];
    for (let s = 0; s < STEPS; s++) {
      const [x, y] = batch(gpu!, s);
      cap.schedule();
      const l = step(x, y);
      modes.push(step.mode);
      losses.push(await l.item());
      [x, y, l].forEach((t) => t.dispose());
    }
    expect(step.reason).toBeNull();
    expect(step.stats.captures).toBe(1);
    expect(step.stats.replays).toBeGreaterThanOrEqual(55);
    expect(modes.slice(0, 4)).toEqual(['eager', 'recorded', 'recorded', 'replay']);
    expect(losses).toEqual(eagerLosses);
    const pa = eager.model.parameters();
    const pb = cap.model.parameters();
    for (let i = 0; i < pa.length; i++) expect(await bits(pb[i]!)).toEqual(await bits(pa[i]!));
    // Gradients left by the last step (read after it, as a progress line's gradient norm is),
    // also across the verifications, which make their step the capture.
    expect(step.stats.verified).toBeGreaterThanOrEqual(2);
    for (let i = 0; i < pa.length; i++) expect(await bits(pb[i]!.grad!)).toEqual(await bits(pa[i]!.grad!));
    const sa = eager.opt.stateDict().state;
    const sb = cap.opt.stateDict().state;
    expect(Object.values(sb).map((s) => s.step)).toEqual(Object.values(sa).map((s) => s.step));
    expect(cap.ema.stateDict().num_updates).toBe(STEPS);
    for (let i = 0; i < pa.length; i++) expect(await bits(cap.ema.shadows[i]!)).toEqual(await bits(eager.ema.shadows[i]!));
    step.dispose();
    eager.dispose();
    cap.dispose();
  }, 300_000);

  // The perturbation draws codes with the model's generator every step; its schedule anneals from
  // step 12 to 36 of 60 (the key changes each step there, so those run eagerly) and is constant
  // before and after (replayed).
  it('a VQ tokenizer with latent perturbation: 60 steps replayed where the schedule allows, bit-identical to eager', async () => {
    const STEPS = 60;
    const run = async (captured: boolean) => {
      const model = new VQTokenizer({ ch: 8, chMult: [1, 2], numResBlocks: 1, codebookSize: 32, codeDim: 8, perturbation: { alpha: 0.5, beta: 0.5, delta: 4 } }, { backend: gpu!, generator: new E.Generator(0) });
      const opt = new AdamW(model.parameters(), { lr: 1e-3, betas: [0.5, 0.9] });
      let s = 0;
      const o = () => ({ step: s, totalSteps: STEPS });
      const fn = (x: E.Tensor) => tokenizerTrainStep(model, opt, x, o());
      const step = captured ? E.captureStep(fn, { key: () => tokenizerStepKey(o()) }) : fn;
      const losses: number[] = [];
      let replays = 0;
      for (s = 1; s <= STEPS; s++) {
        const x = E.rand([4, 1, 16, 16], { backend: gpu!, generator: new E.Generator(500 + s), low: -1, high: 1 });
        const terms = step(x);
        if (captured && (step as E.CapturedStep<[E.Tensor], Record<string, E.Tensor>>).mode === 'replay') replays++;
        losses.push(await terms.total!.item());
        for (const t of [x, ...Object.values(terms)]) t.dispose();
      }
      const params = await Promise.all(model.parameters().map(bits));
      if (captured) (step as E.CapturedStep<[E.Tensor], Record<string, E.Tensor>>).dispose();
      opt.dispose();
      model.dispose();
      return { losses, params, replays };
    };
    const eager = await run(false);
    const cap = await run(true);
    expect(cap.replays).toBeGreaterThanOrEqual(25);
    expect(cap.losses).toEqual(eager.losses);
    expect(cap.params).toEqual(eager.params);
  }, 300_000);

  it('SGD with momentum follows a learning rate changed between replays (no verification), bit-identical to eager', async () => {
    const run = async (captured: boolean) => {
      const model = new Linear(12, 4, { backend: gpu!, generator: new E.Generator(3) });
      const opt = new SGD(model.parameters(), { lr: 0.05, momentum: 0.9 });
      const fn = (x: E.Tensor, y: E.Tensor) =>
        E.tidy(() => {
          opt.zeroGrad();
          const loss = E.mseLoss(model.forward(x), y);
          loss.backward();
          opt.step();
          return loss.detach();
        });
      const step = captured ? E.captureStep(fn, { verifyEvery: 0 }) : fn;
      for (let s = 0; s < 40; s++) {
        if (s === 25) opt.paramGroups[0]!.lr = 0.01; // a step schedule: one change, mid-replay
        const [x, y] = batch(gpu!, s);
        [x, y, step(x, y)].forEach((t) => t.dispose());
      }
      if (captured) {
        expect((step as E.CapturedStep<E.Tensor[], E.Tensor>).stats.replays).toBe(37);
        (step as E.CapturedStep<E.Tensor[], E.Tensor>).dispose();
      }
      const out = { params: await Promise.all(model.parameters().map(bits)), steps: Object.values(opt.stateDict().state).map((s) => s.step) };
      model.dispose();
      return out;
    };
    expect(await run(true)).toEqual(await run(false));
  }, 120_000);

  it('a replay records no op: no new tensors but its result, no bind group, no pipeline', async () => {
    const t = trainer(gpu!);
    const step = E.captureStep(t.step);
    for (let s = 0; s < 4; s++) {
      const [x, y] = batch(gpu!, s);
      [x, y, step(x, y)].forEach((u) => u.dispose());
    }
    const [x, y] = batch(gpu!, 9);
    await gpu!.sync();
    const c0 = { ...gpu!.counters };
    const live0 = E.memoryStats().liveTensors;
    const l = step(x, y);
    expect(step.mode).toBe('replay');
    expect(E.memoryStats().liveTensors - live0).toBe(1);
    expect(gpu!.counters.bindGroups - c0.bindGroups).toBe(0);
    expect(gpu!.counters.pipelines - c0.pipelines).toBe(0);
    expect(gpu!.counters.dispatches - c0.dispatches).toBe(step.stats.dispatches);
    [x, y, l].forEach((u) => u.dispose());
    step.dispose();
    t.dispose();
  }, 120_000);

  it('the captured buffers are not handed out while the capture lives, and return to the pool after dispose()', async () => {
    const t = trainer(gpu!);
    const step = E.captureStep(t.step);
    const pinned0 = gpu!.pool.pinnedBytes();
    for (let s = 0; s < 4; s++) {
      const [x, y] = batch(gpu!, s);
      [x, y, step(x, y)].forEach((u) => u.dispose());
    }
    await gpu!.sync();
    expect(gpu!.pool.pinnedBytes()).toBeGreaterThan(pinned0);
    // Tensors made between replays get other buffers: a replay leaves them as they were.
    const [x, y] = batch(gpu!, 5);
    const others = Array.from({ length: 24 }, (_, i) => E.full([8, 32], i, { backend: gpu! }));
    [step(x, y), step(x, y)].forEach((u) => u.dispose());
    for (let i = 0; i < others.length; i++) expect(new Set(Array.from(await others[i]!.toArray()))).toEqual(new Set([i]));
    others.forEach((o) => o.dispose());
    step.dispose();
    expect(gpu!.pool.pinnedBytes()).toBe(pinned0);
    [x, y].forEach((u) => u.dispose());
    t.dispose();
  }, 120_000);

  it('a replayed step counts its intermediates in memoryStats().peakBytes (it creates no tensors)', async () => {
    const t = trainer(gpu!);
    const [x, y] = batch(gpu!, 3);
    // Eager steps (the optimizer state exists after the first): the peak above what stays live.
    for (let s = 0; s < 2; s++) t.step(x, y).dispose();
    await gpu!.sync();
    E.resetPeakMemory();
    t.step(x, y).dispose();
    const eager = E.memoryStats();
    const eagerExtra = eager.peakLiveBytes - eager.liveBytes;
    expect(eagerExtra).toBeGreaterThan(0);
    expect(eager.peakBytes).toBe(eager.peakLiveBytes);
    const step = E.captureStep(t.step);
    for (let s = 0; s < 4; s++) step(x, y).dispose();
    expect(step.mode).toBe('replay');
    E.resetPeakMemory();
    step(x, y).dispose();
    const m = E.memoryStats();
    expect(m.capturedBytes).toBe(gpu!.pool.pinnedBytes());
    // No tensor but the loss was made; the step's intermediates sit in the captured buffers, which
    // hold at least what the eager step had live at its peak (in pool size classes).
    expect(m.peakLiveBytes - m.liveBytes).toBeLessThan(eagerExtra);
    expect(m.peakBytes).toBe(m.liveBytes + m.capturedBytes);
    expect(m.capturedBytes).toBeGreaterThanOrEqual(eagerExtra);
    step.dispose();
    expect(E.memoryStats().capturedBytes).toBe(0);
    [x, y].forEach((u) => u.dispose());
    t.dispose();
  }, 120_000);

  it('a step that uploads per-step host data never replays and says why', async () => {
    const w = E.keep(E.ones([4], { backend: gpu! }));
    let n = 0;
    const step = E.captureStep((x: E.Tensor) => E.tidy(() => E.add(E.mul(x, w), E.tensor([n++, 0, 0, 0], [4], { backend: gpu! }))));
    const x = E.ones([4], { backend: gpu! });
    for (let s = 0; s < 8; s++) {
      const y = step(x);
      expect(Array.from(await y.toArray())).toEqual([1 + s, 1, 1, 1]);
      y.dispose();
    }
    expect(step.stats.replays).toBe(0);
    expect(step.reason).toMatch(/data uploaded .* differs between steps/);
    [x, w].forEach((u) => u.dispose());
  }, 60_000);

  it('a step that reads back stays eager; another argument shape runs eagerly without dropping the capture', async () => {
    const readsBack = E.captureStep((x: E.Tensor) => {
      void x.toArray();
      return E.tidy(() => E.mul(x, 2));
    });
    const x = E.ones([4], { backend: gpu! });
    for (let s = 0; s < 4; s++) readsBack(x).dispose();
    expect(readsBack.stats.replays).toBe(0);
    expect(readsBack.reason).toMatch(/reads data back/);

    const double = E.captureStep((v: E.Tensor) => E.tidy(() => E.mul(v, 2)));
    for (let s = 0; s < 4; s++) double(x).dispose();
    expect(double.mode).toBe('replay');
    const other = E.ones([3], { backend: gpu! });
    const y = double(other);
    expect(double.mode).not.toBe('replay');
    expect(Array.from(await y.toArray())).toEqual([2, 2, 2]);
    const z = double(E.full([4], 3, { backend: gpu! }));
    expect(double.mode).toBe('replay');
    expect(Array.from(await z.toArray())).toEqual([6, 6, 6, 6]);
    [x, other, y, z].forEach((u) => u.dispose());
    double.dispose();
  }, 60_000);

  it('verification catches a value that changed after capture (not declared dynamic) and captures again', async () => {
    let scale = 2;
    const step = E.captureStep((x: E.Tensor) => E.tidy(() => E.mul(x, E.tensor([scale], [1], { backend: gpu! }))), { verifyEvery: 5 });
    const x = E.ones([2], { backend: gpu! });
    for (let s = 0; s < 12; s++) {
      if (s === 6) scale = 3;
      step(x).dispose();
    }
    expect(step.stats.captures).toBe(2);
    expect(step.reason).toBeNull();
    const y = step(x);
    expect(Array.from(await y.toArray())).toEqual([3, 3]);
    [x, y].forEach((u) => u.dispose());
    step.dispose();
  }, 60_000);

  it('options are checked', () => {
    expect(() => E.captureStep(() => E.zeros([1]), { warmup: -1 })).toThrow(/warmup must be a non-negative integer/);
  });
});
