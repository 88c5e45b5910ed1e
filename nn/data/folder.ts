/**
 * Building a labelled dataset from encoded image files (the browser-safe core of ImageFolder:
 * node/data/image-folder.ts walks directories; a browser can pass File contents). Every file is
 * decoded, converted to gray or RGB and resized (cover + center crop, or stretch) to one size.
 * Files that fail are reported by name with the reason: skipped with a warning line, or the
 * whole build fails, by option. Never silently.
 */
import type { ImageDataset } from './dataset.js';
import { decodeImage } from './decode.js';
import { hwcToChw, resize, resizeCenterCrop, toChannels, type ResizeFilter } from './image.js';

export interface ImageEntry {
  /** Shown in reports (a path). */
  name: string;
  label: number;
  /** The encoded bytes, or a function that reads them (its errors are reported like decode errors). */
  bytes: Uint8Array | (() => Uint8Array);
}

export interface SkippedFile {
  file: string;
  reason: string;
}

export interface BuildOptions {
  /** Target size: a number (square) or [height, width]. */
  size: number | readonly [number, number];
  /** 1 = grayscale, 3 = RGB (default 3). */
  channels?: 1 | 3;
  /** 'crop': scale to cover, center crop (default); 'stretch': scale each axis independently. */
  fit?: 'crop' | 'stretch';
  filter?: ResizeFilter;
  /** Composite images with alpha over this gray level instead of dropping alpha. */
  background?: number;
  /** 'skip' (default): report, warn and continue; 'fail': throw an error naming the file. */
  onError?: 'skip' | 'fail';
  /** Where warning lines go (default console.warn). */
  warn?: (line: string) => void;
  /** Refuse images larger than this many pixels (default 2^26). */
  maxPixels?: number;
}

export interface BuildResult {
  dataset: ImageDataset;
  /** Name of each image in the dataset, in order. */
  files: string[];
  skipped: SkippedFile[];
}

export function targetSize(size: BuildOptions['size']): [number, number] {
  const [h, w] = typeof size === 'number' ? [size, size] : size;
  if (!Number.isInteger(h) || !Number.isInteger(w) || h! < 1 || w! < 1) throw new Error(`image size must be positive integers, got ${JSON.stringify(size)}`);
  return [h!, w!];
}

export function buildImageDataset(entries: readonly ImageEntry[], classes: string[], opts: BuildOptions): BuildResult {
  const [H, W] = targetSize(opts.size);
  const C = opts.channels ?? 3;
  if (C !== 1 && C !== 3) throw new Error(`buildImageDataset: channels must be 1 or 3, got ${C}`);
  const onError = opts.onError ?? 'skip';
  if (onError !== 'skip' && onError !== 'fail') throw new Error(`buildImageDataset: onError must be 'skip' or 'fail', got ${String(onError)}`);
  const warn = opts.warn ?? ((l: string) => console.warn(l));
  const per = C * H * W;
  const images = new Uint8Array(entries.length * per);
  const labels = new Int32Array(entries.length);
  const files: string[] = [];
  const skipped: SkippedFile[] = [];
  let n = 0;
  for (const e of entries) {
    if (!Number.isInteger(e.label) || e.label < 0 || e.label >= classes.length) throw new Error(`buildImageDataset: ${e.name} has label ${e.label}, outside [0, ${classes.length})`);
    let chw: Uint8Array;
    try {
      const bytes = typeof e.bytes === 'function' ? e.bytes() : e.bytes;
      let img = decodeImage(bytes, { maxPixels: opts.maxPixels ?? 1 << 26 });
      img = toChannels(img, C, opts.background === undefined ? {} : { background: opts.background });
      img = (opts.fit ?? 'crop') === 'crop' ? resizeCenterCrop(img, W, H, opts.filter) : resize(img, W, H, opts.filter);
      chw = hwcToChw(img);
    } catch (err) {
      const reason = (err as Error).message ?? String(err);
      if (onError === 'fail') throw new Error(`ImageFolder: cannot load ${e.name}: ${reason}`, { cause: err });
      skipped.push({ file: e.name, reason });
      warn(`warning: ImageFolder skipped ${e.name}: ${reason}`);
      continue;
    }
    images.set(chw, n * per);
    labels[n] = e.label;
    files.push(e.name);
    n++;
  }
  if (skipped.length > 0) warn(`warning: ImageFolder skipped ${skipped.length} of ${entries.length} files (see the lines above)`);
  return {
    dataset: { images: n === entries.length ? images : images.slice(0, n * per), labels: n === entries.length ? labels : labels.slice(0, n), shape: [n, C, H, W], classes },
    files,
    skipped,
  };
}
