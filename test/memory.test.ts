/** Lifetimes: tidy scopes, keep, dispose errors, buffer pool reuse, live byte accounting. */
import { describe, expect, it } from 'vitest';
import * as E from '../engine/index.js';
import { AdamW } from '../nn/index.js';
import { tokenizerTrainStep, VQTokenizer } from '../models/tokenizer/index.js';
import { requireGpu } from './helpers/backends.js';
import { expectNoLeaks } from './helpers/leak-check.js';

const gpu = await requireGpu();
const backends: [string, E.Backend][] = [['cpu-f64', E.cpuF64], ...(gpu ? [['webgpu', gpu] as [string, E.Backend]] : [])];

describe.each(backends)('memory on %s', (_name, backend) => {
  it('peakLiveBytes keeps the most live bytes until resetPeakMemory()', () => {
    E.resetPeakMemory();
    const base = E.memoryStats().liveBytes;
    expect(E.memoryStats().peakLiveBytes).toBe(base);
    const a = E.ones([1000], { backend });
    const e = (E.memoryStats().liveBytes - base) / 1000; // bytes per element of this backend's storage
    const b = E.ones([500], { backend });
    a.dispose();
    const c = E.ones([10], { backend });
    const s = E.memoryStats();
    expect(s.liveBytes).toBe(base + 510 * e);
    expect(s.peakLiveBytes).toBe(base + 1500 * e);
    E.resetPeakMemory();
    expect(E.memoryStats().peakLiveBytes).toBe(base + 510 * e);
    b.dispose();
    c.dispose();
    expect(E.memoryStats().peakLiveBytes).toBe(base + 510 * e);
  });
  it('backward frees each intermediate gradient once used: its peak is a few gradients, not one per node', async () => {
    const n = 4096;
    const x = E.rand([n], { backend, generator: new E.Generator(5) }).requireGrad();
    const bytes = E.memoryStats().liveBytes;
    const each = (() => {
      const t = E.zeros([n], { backend });
      const b = E.memoryStats().liveBytes - bytes;
      t.dispose();
      return b;
    })();
    const expected = await E.tidy(() => {
      // 12 nodes in a chain, plus one that passes its gradient through unchanged to two inputs (add).
      let h = x;
      for (let i = 0; i < 12; i++) h = E.mul(h, 1.01);
      const y = E.sum(E.add(h, h));
      const before = E.memoryStats().liveBytes;
      E.resetPeakMemory();
      y.backward();
      const peak = E.memoryStats().peakLiveBytes - before;
      // Live at once: the gradient being consumed and the one being made (12 + 2 if none were freed;
      // the scalar multiplies' rules must not build the constant's unused gradient either).
      expect(peak).toBeLessThanOrEqual(3 * each);
      return 2 * 1.01 ** 12;
    });
    const g = await x.grad!.toArray();
    for (let i = 0; i < n; i += 511) expect(g[i]).toBeCloseTo(expected, 4);
    x.grad!.dispose();
    x.dispose();
  });

  it('tidy frees intermediates, keeps results (nested in arrays/objects) and kept tensors', () => {
    const before = E.memoryStats();
    let kept!: E.Tensor;
    const out = E.tidy(() => {
      const a = E.ones([64], { backend });
      const b = a.mul(2).add(1);
      kept = E.keep(b.exp());
      return { sum: b.sum(), list: [b.max()] };
    });
    const after = E.memoryStats();
    expect(after.liveTensors - before.liveTensors).toBe(3);
    expect(out.sum.isDisposed).toBe(false);
    expect(out.list[0]!.isDisposed).toBe(false);
    expect(kept.isDisposed).toBe(false);
    out.sum.dispose();
    out.list[0]!.dispose();
    kept.dispose();
    expect(E.memoryStats().liveTensors).toBe(before.liveTensors);
    expect(E.memoryStats().liveBytes).toBe(before.liveBytes);
  });

  it('views share storage: bytes are freed when the last view goes', () => {
    const before = E.memoryStats().liveBytes;
    const a = E.zeros([16, 16], { backend });
    const t = a.transpose();
    const v = t.slice([[0, 4]]);
    t.dispose();
    const bytes = E.memoryStats().liveBytes - before;
    expect(bytes).toBe(16 * 16 * 4 * (backend.kind === 'cpu' ? 2 : 1));
    a.dispose();
    expect(E.memoryStats().liveBytes - before).toBe(bytes);
    v.dispose();
    expect(E.memoryStats().liveBytes).toBe(before);
  });

  it('tidy disposes everything when fn throws, and refuses async functions', () => {
    const before = E.memoryStats().liveTensors;
    expect(() => E.tidy(() => {
      E.ones([3], { backend }).mul(2);
      throw new Error('boom');
    })).toThrow('boom');
    expect(E.memoryStats().liveTensors).toBe(before);
    expect(() => E.tidy(async () => 1)).toThrow(/Promise/);
  });

  it('a recorded result hands its scope to the enclosing one: backward works, and the step frees the graph', async () => {
    const w = E.randn([8, 4], { backend, generator: new E.Generator(1) }).requireGrad();
    const x = E.randn([3, 8], { backend, generator: new E.Generator(2) });
    const loss = await expectNoLeaks(() => {
      const l = E.tidy(() => {
        const h = E.composite(() => x.matmul(w).relu().square()); // recorded: its intermediates stay
        const m = h.mean();
        m.backward();
        return m.detach();
      });
      expect(w.grad!.shape).toEqual([8, 4]);
      w.grad!.dispose(); // the gradient is the parameter's kept state
      w.grad = null;
      return l;
    }, 'training step');
    expect(await loss.item()).toBeGreaterThan(0);
    loss.dispose();
    // Without recording, a composite frees its intermediates itself.
    (await expectNoLeaks(() => E.noGrad(() => E.composite(() => x.matmul(w).relu().square())), 'composite without recording')).dispose();
    // chain: each activation is freed once the next exists; only the last is returned.
    (await expectNoLeaks(() => E.noGrad(() => E.chain(x, [(t) => t.mul(2), (t) => t.add(1), (t) => t.exp()])), 'chain')).dispose();
    for (const t of [w, x]) t.dispose();
  });

  it('using frees a tensor, and disposable() a group, where the block ends', async () => {
    await expectNoLeaks(async () => {
      using a = E.ones([4], { backend });
      using group = E.disposable({ b: a.mul(2), list: [a.add(1)] });
      using s = group.b.sum();
      expect(await s.item()).toBe(8);
    }, 'using');
  });

  it('a disposed tensor is named in the error', () => {
    const a = E.ones([2], { backend });
    a.name = 'w1';
    a.dispose();
    expect(() => a.add(1)).toThrow(/Tensor#\d+ 'w1' \(f32 \[2\], from full\) was used after dispose/);
    expect(() => a.dispose()).not.toThrow();
  });
});

describe.runIf(gpu)('GPU buffer pool', () => {
  it('reuses buffers: a loop of identical steps allocates nothing after the first', async () => {
    const step = () => E.tidy(() => E.full([1000], 1, { backend: gpu! }).mul(3).add(2).exp().sum());
    for (let i = 0; i < 3; i++) (await step().item(), undefined);
    const allocated = gpu!.pool.allocatedBytes;
    for (let i = 0; i < 20; i++) {
      const s = step();
      await s.item();
      s.dispose();
    }
    expect(gpu!.pool.allocatedBytes).toBe(allocated);
  });

  it('a free buffer of a larger size class (up to twice the request) serves before a new one is made', async () => {
    await gpu!.sync();
    gpu!.pool.trim();
    // 3000 floats: the 12288-byte class. Freed (and submitted), it serves 2000 floats (8192-byte
    // class: 12288 is within twice that) but not 1000 (4096-byte class: 12288 is over twice).
    E.zeros([3000], { backend: gpu! }).dispose();
    await gpu!.sync();
    const allocated = gpu!.pool.allocatedBytes;
    const b = E.zeros([2000], { backend: gpu! });
    expect(gpu!.pool.allocatedBytes).toBe(allocated);
    const c = E.zeros([1000], { backend: gpu! });
    expect(gpu!.pool.allocatedBytes).toBe(allocated + 4096);
    expect(Array.from(await b.toArray()).every((v) => v === 0)).toBe(true);
    b.dispose();
    c.dispose();
  });

  it('a repeated training step gets the same buffers each time: no new bind groups once warm', async () => {
    // A tiny VQ tokenizer step (forward, backward, AdamW): its temporaries are freed in an order
    // unlike the one they were allocated in, which with last-in-first-out reuse permuted the
    // buffers between steps (hundreds of new bind groups per step, never settling).
    const model = new VQTokenizer({ ch: 8, chMult: [1, 2], numResBlocks: 1, normGroups: 4, codebookSize: 32, codeDim: 8 }, { backend: gpu!, generator: new E.Generator(0) });
    const opt = new AdamW(model.parameters(), { lr: 1e-3 });
    const x = E.rand([2, 1, 16, 16], { backend: gpu!, generator: new E.Generator(1) });
    const step = async (s: number) => {
      const terms = E.tidy(() => tokenizerTrainStep(model, opt, x, { step: s, totalSteps: 100 }));
      await terms.total!.item();
      for (const t of Object.values(terms)) t.dispose();
    };
    let s = 0;
    while (s < 8) await step(++s);
    const created = gpu!.counters.bindGroups;
    while (s < 12) await step(++s);
    expect(gpu!.counters.bindGroups - created).toBe(0);
    opt.dispose();
    model.dispose();
    x.dispose();
  }, 60_000);

  it('batches dispatches: many ops, one submit at readback', async () => {
    const submits = gpu!.counters.submits;
    const r = E.tidy(() => {
      let x = E.full([256], 1, { backend: gpu! });
      for (let i = 0; i < 50; i++) x = x.add(1);
      return x.sum();
    });
    expect(gpu!.counters.submits).toBe(submits);
    expect(await r.item()).toBe(256 * 51);
    expect(gpu!.counters.submits).toBe(submits + 1);
  });

  it('an upload never overwrites a buffer still read by unsubmitted work', async () => {
    // a is read by pending dispatches after being disposed; the new upload must not take its buffer.
    const a = E.tensor(new Float32Array(64).fill(1), [64], { backend: gpu! });
    const b = a.mul(5);
    a.dispose();
    const c = E.tensor(new Float32Array(64).fill(7), [64], { backend: gpu! });
    expect(Array.from(await b.toArray())).toEqual(new Array(64).fill(5));
    expect(Array.from(await c.toArray())).toEqual(new Array(64).fill(7));
  });
});

describe('composite ops free their intermediates when nothing is recorded', () => {
  it('mean, var, logsumexp and crossEntropy outside tidy leave only their result alive', () => {
    const x = E.randn([4, 5], { backend: E.cpuF64 });
    const t = E.tensor([0, 1, 2, 3], [4], { backend: E.cpuF64, dtype: 'i32' });
    for (const f of [() => x.mean(1), () => x.var(0), () => x.logsumexp(1), () => E.crossEntropy(x, t), () => E.mseLoss(x, x)]) {
      const before = E.memoryStats().liveTensors;
      const y = f();
      expect(E.memoryStats().liveTensors).toBe(before + 1);
      y.dispose();
    }
  });
});
