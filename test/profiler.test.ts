/**
 * The GPU profiler (engine/webgpu/profiler.ts): every dispatch between startProfiling() and
 * stopProfiling() is timed and attributed to its key; results are the same as unprofiled; the
 * query set wraps over many submits; misuse errors say what to do.
 */
import { describe, expect, it } from 'vitest';
import * as E from '../engine/index.js';
import { requireGpu } from './helpers/backends.js';

const gpu = await requireGpu();

describe.runIf(gpu && gpu.features.has('timestamp-query'))('GPU profiler', () => {
  const step = (a: E.Tensor, b: E.Tensor) => E.tidy(() => a.matmul(b).relu().add(1).sum());

  it('times each dispatch by key and family; outputs equal the unprofiled ones', async () => {
    const g = gpu!;
    const gen = new E.Generator(0);
    const a = E.randn([192, 160], { backend: g, generator: gen });
    const b = E.randn([160, 96], { backend: g, generator: gen });
    const plain = await step(a, b).item();

    const d0 = g.counters.dispatches;
    g.startProfiling();
    const profiled = await step(a, b).item();
    const r = await g.stopProfiling();
    const n = g.counters.dispatches - d0;

    expect(profiled).toBe(plain);
    expect(r.dispatches).toBe(n);
    expect(r.kernels.reduce((s, k) => s + k.count, 0)).toBe(n);
    expect(r.families.map((f) => f.key)).toContain('matmul');
    expect(r.totalMs).toBeGreaterThan(0);
    expect(r.totalMs).toBeCloseTo(r.families.reduce((s, f) => s + f.ms, 0), 9);
    for (let i = 1; i < r.kernels.length; i++) expect(r.kernels[i - 1]!.ms).toBeGreaterThanOrEqual(r.kernels[i]!.ms);
    const text = E.formatProfile(r);
    expect(text).toMatch(/^GPU time [\d.]+ ms over \d+ dispatches/);
    expect(text).toContain('by family:');
    a.dispose();
    b.dispose();
  });

  it('spans many submits (more dispatches than one query set holds) and restarts cleanly', async () => {
    const g = gpu!;
    const x = E.ones([64], { backend: g });
    g.startProfiling();
    let y = x.mul(1);
    for (let i = 0; i < 2100; i++) {
      const z = y.add(1);
      y.dispose();
      y = z;
    }
    const total = await y.sum().item();
    const r = await g.stopProfiling();
    expect(total).toBe(64 * 2101);
    expect(r.dispatches).toBeGreaterThanOrEqual(2102);
    // Not profiling any more: a second report needs a new start.
    await expect(g.stopProfiling()).rejects.toThrow(/not profiling \(call startProfiling\(\) first\)/);
    g.startProfiling();
    expect(() => g.startProfiling()).toThrow(/already profiling/);
    await g.stopProfiling();
    x.dispose();
    y.dispose();
  });
});
