/**
 * NaN and Inf never pass for data: loading a checkpoint whose float tensor holds them is refused
 * unless asked for, and feature statistics (FID, IS, class consistency) refuse images or features
 * holding them. (A diverged tokenizer's NaN reconstructions clamp to a constant image and used to
 * get a better rFID than the trained model.)
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import * as E from '../engine/index.js';
import { ImageFeatureStats, NonFiniteImagesError, type ImageFeatureNet } from '../models/metrics/image-features.js';
import { SafetensorsError } from '../nn/checkpoint/index.js';
import { loadCheckpoint, NonFiniteCheckpointError, saveCheckpoint } from '../node/checkpoint.js';
import { requireGpu } from './helpers/backends.js';

const gpu = await requireGpu();
const tmp = mkdtempSync(join(tmpdir(), 'wgtk-nonfinite-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

describe('loadCheckpoint refuses non-finite float tensors', () => {
  const cpu = new E.CpuBackend();
  for (const bad of [NaN, Infinity, -Infinity]) {
    it(`${bad} in one tensor: NonFiniteCheckpointError naming the file and the tensor; allowNonFinite loads it`, async () => {
      const path = join(tmp, `ckpt-${String(bad)}.safetensors`);
      const w = new Float32Array([1, 2, 3, 4]);
      w[2] = bad;
      await saveCheckpoint(path, { 'model.a': E.tensor([0.5, 1.5], [2], { backend: cpu }), 'model.w': E.tensor(w, [2, 2], { backend: cpu }), steps: E.tensor([7], [1], { dtype: 'i32', backend: cpu }) }, {});
      const err = await loadCheckpoint(path, cpu).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(NonFiniteCheckpointError);
      expect(err).toBeInstanceOf(SafetensorsError); // the CLI's one-line, exit-2 class
      expect((err as Error).message).toContain(path);
      expect((err as Error).message).toContain('"model.w"');
      const { tensors } = await loadCheckpoint(path, cpu, { allowNonFinite: true });
      expect(Array.from(await tensors['model.w']!.toArray())[2]).toBe(bad);
      for (const t of Object.values(tensors)) t.dispose();
    });
  }

  it('finite tensors load as before', async () => {
    const path = join(tmp, 'fine.safetensors');
    await saveCheckpoint(path, { 'model.w': E.tensor([1, -2, 3e38, -3e38], [4], { backend: cpu }) }, {});
    const { tensors } = await loadCheckpoint(path, cpu);
    expect(Array.from(await tensors['model.w']!.toArray())).toEqual(Array.from(new Float32Array([1, -2, 3e38, -3e38])));
    tensors['model.w']!.dispose();
  });
});

describe.each([
  ['cpu', new E.CpuBackend() as E.Backend],
  ...(gpu ? [['webgpu', gpu] as [string, E.Backend]] : []),
])('ImageFeatureStats refuses non-finite images and features (%s)', (_name, backend) => {
  // Features: the images themselves, flattened (so the feature values are the pixels).
  const flat: ImageFeatureNet = { features: (x) => x.reshape([x.shape[0]!, -1]) };
  const images = (vals: number[]) => E.tensor(vals, [2, 1, 2, 2], { backend });

  for (const bad of [NaN, Infinity]) {
    it(`an image holding ${bad} is refused, naming the batch (the clamp would have hidden it)`, async () => {
      const s = new ImageFeatureStats(flat);
      using ok = images([0, 0.1, 0.2, 0.3, -0.5, 0.5, 0.25, -0.25]);
      await s.add(ok);
      using x = images([0, 0.1, 0.2, 0.3, -0.5, bad, 0.25, -0.25]);
      await expect(s.add(x)).rejects.toThrow(NonFiniteImagesError);
      await expect(s.add(x)).rejects.toThrow(/image batch 2 .*NaN or Inf/);
      expect(s.count).toBe(2);
    });
  }

  it('non-finite features from finite images are refused', async () => {
    const overflow: ImageFeatureNet = { features: (x) => x.reshape([x.shape[0]!, -1]).mul(1e38).mul(1e38) };
    const s = new ImageFeatureStats(overflow);
    using x = images([0, 0.1, 0.2, 0.3, -0.5, 0.5, 0.25, -0.25]);
    await expect(s.add(x)).rejects.toThrow(/feature network gave NaN or Inf features for image batch 1/);
  });
});
