/**
 * Batching: seeded shuffling (determinism, permutation per epoch, resume from a saved state
 * across epoch boundaries), drop-last, seeded horizontal flips, normalization, and device upload
 * that reuses a fixed ring of tensors (CPU backend always, WebGPU when available), including the
 * write-after-pending-read hazard. All comparisons are exact: the loader only maps bytes through
 * a 256-entry float32 table and moves them.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { CpuBackend, mul, tidy, type Backend } from '../engine/index.js';
import { BatchUploader, DataLoader, toFloat32, writeInto, type Batch, type ImageDataset } from '../nn/data/index.js';
import { requireGpu } from './helpers/backends.js';

const gpu = await requireGpu();

/** N images [C, H, W] whose pixel bytes encode (image, c, y, x) so any mix-up shows. */
function synthetic(n: number, c = 2, h = 3, w = 5, classes = 4): ImageDataset {
  const images = new Uint8Array(n * c * h * w);
  for (let i = 0; i < images.length; i++) images[i] = (i * 7 + Math.floor(i / (c * h * w)) * 13) & 255;
  const labels = Int32Array.from({ length: n }, (_, i) => i % classes);
  return { images, labels, shape: [n, c, h, w], classes: Array.from({ length: classes }, (_, k) => `c${k}`) };
}

/** The expected normalized sample `idx`, optionally mirrored, with range [lo, hi]. */
function expectedSample(ds: ImageDataset, idx: number, flip: boolean, lo = -1, hi = 1): Float32Array {
  const [, C, H, W] = ds.shape;
  const out = new Float32Array(C * H * W);
  for (let c = 0; c < C; c++)
    for (let y = 0; y < H; y++)
      for (let x = 0; x < W; x++) out[(c * H + y) * W + x] = Math.fround(lo + ((hi - lo) * ds.images[((idx * C + c) * H + y) * W + (flip ? W - 1 - x : x)]!) / 255);
  return out;
}

function batchSig(b: Batch): string {
  return `${b.epoch}/${b.index}:${Array.from(b.indices).join(',')}|${Array.from(b.flipped).join('')}`;
}

describe('DataLoader', () => {
  it('every epoch is a permutation; batches carry the right pixels, labels and flips', () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 40 }), fc.integer({ min: 1, max: 9 }), fc.boolean(), fc.nat(1000), (n, bs, dropLast, seed) => {
        fc.pre(!dropLast || n >= bs);
        const ds = synthetic(n);
        const dl = new DataLoader(ds, { batchSize: bs, seed, dropLast, hflip: true });
        const expectBatches = dropLast ? Math.floor(n / bs) : Math.ceil(n / bs);
        expect(dl.batchesPerEpoch).toBe(expectBatches);
        for (let e = 0; e < 2; e++) {
          const seen: number[] = [];
          let count = 0;
          for (const b of dl) {
            expect(b.epoch).toBe(e);
            expect(b.index).toBe(count++);
            const [B, C, H, W] = b.shape;
            expect([C, H, W]).toEqual([2, 3, 5]);
            expect(b.x.length).toBe(B * C * H * W);
            for (let s = 0; s < B; s++) {
              const idx = b.indices[s]!;
              seen.push(idx);
              expect(b.labels[s]).toBe(ds.labels[idx]);
              expect(b.x.subarray(s * C * H * W, (s + 1) * C * H * W)).toEqual(expectedSample(ds, idx, b.flipped[s] === 1));
            }
          }
          expect(count).toBe(expectBatches);
          if (dropLast) expect(seen.length).toBe(expectBatches * bs);
          else expect(seen.sort((a, b) => a - b)).toEqual(Array.from({ length: n }, (_, i) => i));
          expect(new Set(seen).size).toBe(seen.length);
        }
        expect(dl.epoch).toBe(2);
      }),
      { numRuns: 40 },
    );
  });

  it('is deterministic per seed, reshuffles per epoch, and shuffle: false keeps order', () => {
    const ds = synthetic(50);
    const run = (seed: number) => {
      const dl = new DataLoader(ds, { batchSize: 8, seed, hflip: 0.5 });
      return Array.from({ length: 14 }, () => batchSig(dl.next()));
    };
    expect(run(3)).toEqual(run(3));
    expect(run(3)).not.toEqual(run(4));
    const dl = new DataLoader(ds, { batchSize: 50, seed: 3 });
    const e0 = Array.from(dl.next().indices);
    const e1 = Array.from(dl.next().indices);
    expect(e0).not.toEqual(e1);
    const plain = new DataLoader(ds, { batchSize: 20, shuffle: false });
    expect(Array.from(plain.next().indices)).toEqual(Array.from({ length: 20 }, (_, i) => i));
    expect(Array.from(plain.next().flipped)).toEqual(new Array(20).fill(0));
  });

  it('resumes exactly from a saved state (JSON round trip), including across epoch ends', () => {
    const ds = synthetic(23);
    for (const stop of [0, 1, 4, 5, 6, 11]) {
      const ref = new DataLoader(ds, { batchSize: 5, seed: 99, hflip: true, dropLast: true });
      const all = Array.from({ length: 16 }, () => ref.next());
      const a = new DataLoader(ds, { batchSize: 5, seed: 99, hflip: true, dropLast: true });
      for (let i = 0; i < stop; i++) a.next();
      const saved = JSON.parse(JSON.stringify(a.state()));
      const b = new DataLoader(ds, { batchSize: 5, seed: 0, hflip: true, dropLast: true }).setState(saved);
      for (let i = stop; i < 16; i++) {
        const got = b.next();
        expect(batchSig(got)).toBe(batchSig(all[i]!));
        expect(got.x).toEqual(all[i]!.x);
      }
    }
    // 23 samples, batch 5, drop last: 4 batches per epoch, state wraps to the next epoch.
    const dl = new DataLoader(ds, { batchSize: 5, dropLast: true });
    for (let i = 0; i < 4; i++) dl.next();
    expect(dl.state()).toMatchObject({ epoch: 1, position: 0 });
  });

  it('rejects a state saved for another dataset or configuration', () => {
    const dl = new DataLoader(synthetic(30), { batchSize: 4 });
    const s = dl.state();
    expect(() => new DataLoader(synthetic(31), { batchSize: 4 }).setState(s)).toThrow(/31 samples|30 samples/);
    expect(() => new DataLoader(synthetic(30), { batchSize: 5 }).setState(s)).toThrow(/batchSize/);
    expect(() => dl.setState({ ...s, position: 30 })).toThrow(/position/);
    expect(() => new DataLoader(synthetic(3), { batchSize: 4, dropLast: true })).toThrow(/no batch/);
  });

  it('flips about half the samples with hflip: true, none with 0, all with 1', () => {
    const ds = synthetic(2000, 1, 1, 3);
    const frac = (p: boolean | number) => {
      const b = new DataLoader(ds, { batchSize: 2000, hflip: p, seed: 5 }).next();
      return b.flipped.reduce((a, v) => a + v, 0) / 2000;
    };
    const half = frac(true);
    expect(half).toBeGreaterThan(0.45); // binomial sd = 0.011
    expect(half).toBeLessThan(0.55);
    expect(frac(0)).toBe(0);
    expect(frac(1)).toBe(1);
  });

  it('normalizes to a range or by mean/std, and fills caller buffers', () => {
    const ds = synthetic(4, 3, 2, 2);
    const b = new DataLoader(ds, { batchSize: 4, shuffle: false, range: [0, 1] }).next();
    expect(b.x.subarray(0, 12)).toEqual(expectedSample(ds, 0, false, 0, 1));
    expect(toFloat32(ds, [0, 1])).toEqual(b.x); // unshuffled, unflipped: the whole dataset in order
    expect(toFloat32(ds, [-1, 1]).subarray(12, 24)).toEqual(expectedSample(ds, 1, false));
    // A batch of images from an offset: the same values as that slice of the whole set.
    expect(toFloat32(ds, [-1, 1], 1, 2)).toEqual(toFloat32(ds, [-1, 1]).subarray(12, 36));
    const mean = [0.5, 0.25, 0];
    const std = [0.5, 2, 1];
    const n = new DataLoader(ds, { batchSize: 4, shuffle: false, mean, std }).next();
    for (let c = 0; c < 3; c++) for (let k = 0; k < 4; k++) expect(n.x[c * 4 + k]).toBe(Math.fround((ds.images[c * 4 + k]! / 255 - mean[c]!) / std[c]!));
    const x = new Float32Array(100);
    const labels = new Int32Array(10);
    const f = new DataLoader(ds, { batchSize: 4, shuffle: false }).next({ x, labels });
    expect(f.x.buffer).toBe(x.buffer);
    expect(f.labels.buffer).toBe(labels.buffer);
    expect(() => new DataLoader(ds, { batchSize: 4, mean: [0.5, 0.5] })).toThrow(/mean\/std/);
  });
});

function uploaderSuite(name: string, backend: () => Backend) {
  describe(`BatchUploader on ${name}`, () => {
    it('uploads exact batches into a fixed ring of device tensors (no per-batch allocations)', async () => {
      const be = backend();
      const ds = synthetic(37, 3, 4, 4);
      const dl = new DataLoader(ds, { batchSize: 8, seed: 1, hflip: true });
      const ref = new DataLoader(ds, { batchSize: 8, seed: 1, hflip: true });
      const up = new BatchUploader(be);
      const seenX = new Set<unknown>();
      for (let i = 0; i < 12; i++) {
        const { x, labels } = tidy(() => up.next(dl)); // a tidy scope must not dispose the ring
        const want = ref.next();
        expect(x.shape).toEqual(want.shape);
        expect(x.isDisposed).toBe(false);
        expect(await x.toArray()).toEqual(want.x);
        expect(Array.from(await labels.toArray())).toEqual(Array.from(want.labels));
        seenX.add(x);
      }
      // 37 = 4 x 8 + 5: two shapes, two slots each, x + labels per slot.
      expect(up.allocations).toBe(8);
      expect(seenX.size).toBe(4);
      up.dispose();
    });

    it('keeps the previous batch intact while the next is uploaded (two slots)', async () => {
      const be = backend();
      const ds = synthetic(16, 1, 2, 2);
      const dl = new DataLoader(ds, { batchSize: 4, shuffle: false });
      const up = new BatchUploader(be);
      const first = up.next(dl);
      const firstWant = Float32Array.from(first.batch.x);
      const second = up.next(dl);
      expect(second.x).not.toBe(first.x);
      expect(await first.x.toArray()).toEqual(firstWant);
      const third = up.next(dl);
      expect(third.x).toBe(first.x); // the ring wraps
      first.x.dispose(); // a user disposing a ring tensor: the slot is recreated, not reused
      const fifth = (up.next(dl), up.next(dl));
      expect(fifth.x.isDisposed).toBe(false);
      expect(await fifth.x.toArray()).toEqual(new DataLoader(ds, { batchSize: 4, shuffle: false }).next().x);
      up.dispose();
    });

    it('a pending (unsubmitted) read of a batch still sees the old data after an overwrite', async () => {
      const be = backend();
      const ds = synthetic(8, 1, 4, 4);
      const dl = new DataLoader(ds, { batchSize: 4, shuffle: false, range: [0, 1] });
      const up = new BatchUploader(be, { slots: 1 });
      const a = up.next(dl);
      const aWant = Float32Array.from(a.batch.x, (v) => Math.fround(v * 2));
      const doubled = mul(a.x, 2); // recorded, not yet submitted on WebGPU
      const b = up.next(dl); // overwrites the same buffer
      expect(b.x).toBe(a.x);
      expect(await doubled.toArray()).toEqual(aWant);
      doubled.dispose();
      up.dispose();
    });

    it('writeInto checks sizes and dtypes', () => {
      const be = backend();
      const up = new BatchUploader(be);
      const ds = synthetic(4, 1, 2, 2);
      const { x, labels } = up.next(new DataLoader(ds, { batchSize: 4 }));
      expect(() => writeInto(x, new Float32Array(3))).toThrow(/3 values/);
      expect(() => writeInto(labels, new Float32Array(4))).toThrow(/dtype i32/);
      up.dispose();
    });
  });
}

uploaderSuite('the CPU backend', () => new CpuBackend());
if (gpu) uploaderSuite('WebGPU', () => gpu);
