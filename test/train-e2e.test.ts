/**
 * End to end on the GPU: an MLP learns the spiral (loss must fall below a threshold), and a
 * 500-step soak run keeps live memory flat (no leaked tensors or growing pool).
 */
import { describe, expect, it } from 'vitest';
import * as E from '../engine/index.js';
import { trainSpiral } from '../examples/spiral.js';
import { requireGpu } from './helpers/backends.js';

const gpu = await requireGpu();

describe.runIf(gpu)('training on the GPU', () => {
  it('a 2-64-64-3 MLP fits the 3-class spiral (cross-entropy from ~1.1 to < 0.15)', async () => {
    const r = await trainSpiral({ backend: gpu!, steps: 250, logEvery: 50 });
    expect(r.losses[0]!.loss).toBeGreaterThan(r.finalLoss);
    expect(r.finalLoss).toBeLessThan(0.15);
    expect(r.accuracy).toBeGreaterThan(0.95);
  });

  it('soak: 500 steps with live tensors, live bytes and allocated GPU memory flat', async () => {
    const before = E.memoryStats();
    const samples: { step: number; live: number; bytes: number; allocated: number }[] = [];
    const submitsBefore = gpu!.counters.submits;
    await trainSpiral({
      backend: gpu!,
      steps: 500,
      hidden: 32,
      logEvery: 100,
      onLog: ({ step }) => {
        const s = E.memoryStats();
        samples.push({ step, live: s.liveTensors, bytes: s.liveBytes, allocated: gpu!.pool.allocatedBytes });
      },
    });
    expect(samples.length).toBe(5);
    for (const s of samples.slice(1)) {
      expect(s.live).toBe(samples[0]!.live);
      expect(s.bytes).toBe(samples[0]!.bytes);
      expect(s.allocated).toBe(samples[0]!.allocated);
    }
    const after = E.memoryStats();
    expect(after.liveTensors).toBe(before.liveTensors);
    expect(after.liveBytes).toBe(before.liveBytes);
    // Steps are batched: besides the logging readbacks, no step submits on its own.
    expect(gpu!.counters.submits - submitsBefore).toBeLessThan(500 / 2);
  });
});
