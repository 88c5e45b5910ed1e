/**
 * A dataset encoded once by a tokenizer checkpoint (AR token sequences, diffusion latents) and
 * cached as a file keyed by the checkpoint's SHA-256 and the source images: a cache whose
 * tokenizer hash or source does not match (or that cannot be read) is rebuilt; otherwise the
 * tokenizer is not even loaded.
 */
import { existsSync } from 'node:fs';
import type * as E from '../engine/index.js';
import type { ImageDataset } from '../nn/data/dataset.js';
import { loadFashionMNIST, loadMNIST, subset } from './data/index.js';
import { fileSha256 } from './file-hash.js';

export interface EncodingSource {
  dataset: 'fashion-mnist' | 'mnist';
  split: 'train' | 'val';
  /** Only the first n images of the split. */
  subset: number | null;
}

export interface EncodingCacheIO<T, M> {
  /** What is cached, for the log ('token', 'latent'). */
  what: string;
  /** Reads a cache file; its meta must carry the tokenizer hash and the source it was made from. */
  load: (path: string) => Promise<{ data: T; meta: { tokenizer: { sha256: string | null }; source: unknown } }>;
  save: (path: string, data: T, meta: { tokenizer: { path: string; sha256: string }; source: Record<string, unknown> }) => Promise<void>;
  /** Encodes the images with the tokenizer at `tokenizerPath`; returns the data and the loaded model. */
  encode: (images: ImageDataset, onProgress: (done: number, total: number) => void) => Promise<{ data: T; model: M }>;
  describe: (data: T) => string;
}

/** What buildTokenCache / buildLatentCache take. */
export interface EncodingCacheOptions {
  backend: E.Backend;
  tokenizerPath: string;
  dataset?: 'fashion-mnist' | 'mnist';
  split?: 'train' | 'val';
  /** Only the first n images of the split. */
  subset?: number;
  /** Cache file (default `${tokenizerPath}.<kind>-<dataset>-<split>[-<subset>].safetensors`). */
  cachePath?: string;
  batchSize?: number;
  /** Reuse a matching cache (default true). */
  reuse?: boolean;
  log?: (line: string) => void;
}

/** The cache of `kind` ('tokens', 'latents') for these options, through `io`. */
export async function cachedEncodingFor<T, M>(o: EncodingCacheOptions, kind: string, io: EncodingCacheIO<T, M>): Promise<{ data: T; cachePath: string; fromCache: boolean; model: M | null }> {
  const source: EncodingSource = { dataset: o.dataset ?? 'fashion-mnist', split: o.split ?? 'train', subset: o.subset ?? null };
  const cachePath = o.cachePath ?? `${o.tokenizerPath}.${kind}-${source.dataset}-${source.split}${o.subset ? `-${o.subset}` : ''}.safetensors`;
  const r = await cachedEncoding({ tokenizerPath: o.tokenizerPath, source, cachePath, ...(o.reuse !== undefined ? { reuse: o.reuse } : {}), log: o.log ?? ((l: string) => console.log(l)) }, io);
  return { ...r, cachePath };
}

/** The source images of an encoding: the split, padded to 32x32, optionally its first n images. */
export function encodingImages(s: EncodingSource, log: (line: string) => void): ImageDataset {
  const split = (s.dataset === 'mnist' ? loadMNIST : loadFashionMNIST)({ pad: 2, log });
  const ds = s.split === 'train' ? split.train : split.val;
  return s.subset ? subset(ds, Int32Array.from({ length: Math.min(s.subset, ds.shape[0]) }, (_, i) => i)) : ds;
}

/** The cached encoding when it matches the tokenizer and source, else a fresh one (written to cachePath). */
export async function cachedEncoding<T, M>(
  o: { tokenizerPath: string; source: EncodingSource; cachePath: string; reuse?: boolean; log: (line: string) => void },
  io: EncodingCacheIO<T, M>,
): Promise<{ data: T; fromCache: boolean; model: M | null }> {
  const { log } = o;
  const sha256 = await fileSha256(o.tokenizerPath);
  const source = { dataset: o.source.dataset, split: o.source.split, subset: o.source.subset, pad: 2 };
  if ((o.reuse ?? true) && existsSync(o.cachePath)) {
    try {
      const c = await io.load(o.cachePath);
      if (c.meta.tokenizer.sha256 === sha256 && JSON.stringify(c.meta.source) === JSON.stringify(source)) return { data: c.data, fromCache: true, model: null };
      log(`${io.what} cache ${o.cachePath} is stale (other tokenizer or data): rebuilding`);
    } catch (e) {
      log(`${io.what} cache ${o.cachePath} unreadable (${(e as Error).message}): rebuilding`);
    }
  }
  const images = encodingImages(o.source, log);
  const t0 = performance.now();
  let lastLog = t0;
  const { data, model } = await io.encode(images, (done, total) => {
    const now = performance.now();
    if (now - lastLog > 5000 || done === total) {
      lastLog = now;
      log(`encoding ${o.source.dataset}/${o.source.split}: ${done}/${total} images (${((now - t0) / 1000).toFixed(1)} s)`);
    }
  });
  await io.save(o.cachePath, data, { tokenizer: { path: o.tokenizerPath, sha256 }, source });
  log(`wrote ${io.describe(data)} to ${o.cachePath}`);
  return { data, fromCache: false, model };
}
