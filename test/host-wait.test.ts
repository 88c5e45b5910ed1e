/** Device waits that do not spin the main thread (engine/webgpu/host-wait.ts). */
import { describe, expect, it } from 'vitest';
import * as E from '../engine/index.js';
import { politeWait } from '../engine/webgpu/host-wait.js';
import { requireGpu } from './helpers/backends.js';

const gpu = await requireGpu();

/** A promise settled from outside, to hold a wait open. */
function deferred<T>(): { promise: Promise<T>; resolve: (v: T) => void; reject: (e: unknown) => void } {
  let resolve!: (v: T) => void;
  let reject!: (e: unknown) => void;
  const promise = new Promise<T>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}

describe('politeWait', () => {
  it('replaces setImmediate only while a polite wait is pending, also across overlapping waits', async () => {
    const original = globalThis.setImmediate;
    const a = deferred<number>();
    const b = deferred<number>();
    const wa = politeWait(a.promise, true);
    expect(globalThis.setImmediate).not.toBe(original);
    const wb = politeWait(b.promise, true);
    a.resolve(1);
    expect(await wa).toBe(1);
    // b still pending: the replacement stays.
    expect(globalThis.setImmediate).not.toBe(original);
    b.resolve(2);
    expect(await wb).toBe(2);
    expect(globalThis.setImmediate).toBe(original);
  });

  it('restores setImmediate when the wait rejects, and leaves it alone when not polite', async () => {
    const original = globalThis.setImmediate;
    const d = deferred<number>();
    const w = politeWait(d.promise, true);
    d.reject(new Error('device lost'));
    await expect(w).rejects.toThrow('device lost');
    expect(globalThis.setImmediate).toBe(original);
    const e = deferred<number>();
    const w2 = politeWait(e.promise, false);
    expect(globalThis.setImmediate).toBe(original);
    e.resolve(3);
    expect(await w2).toBe(3);
  });

  it('still runs deferred callbacks, in order, with their arguments', async () => {
    const d = deferred<void>();
    const w = politeWait(d.promise, true);
    const seen: number[] = [];
    await new Promise<void>((done) => {
      let n = 0;
      const turn = (k: number) => {
        seen.push(k);
        if (++n < 40) setImmediate(turn, k + 1);
        else done();
      };
      setImmediate(turn, 0);
    });
    d.resolve();
    await w;
    expect(seen).toEqual(Array.from({ length: 40 }, (_, i) => i));
  });
});

describe.runIf(gpu)('device waits on a software adapter', () => {
  it('give the same results polite and spinning, and leave setImmediate as it was', async () => {
    const original = globalThis.setImmediate;
    const x = E.rand([64, 64], { backend: gpu!, generator: new E.Generator(3) });
    const results: Float32Array[] = [];
    for (const politeWait of [true, false]) {
      const restore = gpu!.tune({ host: { politeWait } });
      try {
        const y = E.matmul(x, x);
        await gpu!.sync();
        results.push((await y.toArray()) as Float32Array);
        y.dispose();
      } finally {
        restore();
      }
    }
    expect(results[0]).toEqual(results[1]);
    expect(globalThis.setImmediate).toBe(original);
    x.dispose();
  });
});
