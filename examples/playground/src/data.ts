/**
 * The bundled Fashion-MNIST subset (public/fashion-mnist-1000.wgtk, made by tools/make-data.ts):
 * the dataset-cache layout of node/data/mnist.ts, read here without Node: 'WGTKDS01', u32 header
 * length (little-endian), JSON header {source, shape, classes}, one u8 label per image, u8 pixels.
 * Images are padded to 32x32 as the CLI trains (pad 2) and scaled to [-1, 1].
 */
import { padDataset, type ImageDataset } from '../../../nn/data/dataset.js';

const MAGIC = 'WGTKDS01';

/** Parses the asset; throws naming what is wrong (a bad download must not train on garbage). */
export function decodeDataset(bytes: Uint8Array, what: string): ImageDataset {
  if (bytes.length < 12 || new TextDecoder().decode(bytes.subarray(0, 8)) !== MAGIC) throw new Error(`${what}: not a dataset file (no ${MAGIC} header)`);
  const hl = new DataView(bytes.buffer, bytes.byteOffset).getUint32(8, true);
  if (12 + hl > bytes.length) throw new Error(`${what}: header of ${hl} bytes runs past the end of the file (${bytes.length} bytes)`);
  const h = JSON.parse(new TextDecoder().decode(bytes.subarray(12, 12 + hl))) as { shape: [number, number, number, number]; classes: string[] };
  const [n, c, hh, w] = h.shape;
  const start = 12 + hl;
  if (bytes.length !== start + n + n * c * hh * w) throw new Error(`${what}: ${bytes.length} bytes do not hold ${n} images of ${c}x${hh}x${w}`);
  return { images: bytes.slice(start + n), labels: Int32Array.from(bytes.subarray(start, start + n)), shape: h.shape, classes: h.classes };
}

export interface PlaygroundData {
  /** [N, 1, 32, 32] pixels in [-1, 1]. */
  pixels: Float32Array;
  labels: Int32Array;
  classes: string[];
  count: number;
  size: number;
}

export async function loadData(url: string): Promise<PlaygroundData> {
  const res = await fetch(url);
  if (!res.ok) throw new Error(`${url}: HTTP ${res.status}`);
  const ds = padDataset(decodeDataset(new Uint8Array(await res.arrayBuffer()), url), 2);
  const [n, , size] = ds.shape;
  const pixels = new Float32Array(ds.images.length);
  for (let i = 0; i < pixels.length; i++) pixels[i] = (ds.images[i]! / 255) * 2 - 1;
  return { pixels, labels: ds.labels, classes: ds.classes, count: n, size };
}

/** The images at `indices` as one [B, 1, S, S] array. */
export function gather(d: PlaygroundData, indices: readonly number[]): Float32Array {
  const per = d.size * d.size;
  const out = new Float32Array(indices.length * per);
  indices.forEach((i, k) => out.set(d.pixels.subarray(i * per, (i + 1) * per), k * per));
  return out;
}

/** The first `perClass` images of each class (the reconstruction panel's fixed inputs). */
export function firstOfEachClass(d: PlaygroundData, perClass: number): number[] {
  const out: number[] = [];
  for (let c = 0; c < d.classes.length; c++) {
    let taken = 0;
    for (let i = 0; i < d.count && taken < perClass; i++) if (d.labels[i] === c) (out.push(i), taken++);
  }
  return out;
}

/** Seeded batches over the whole set, reshuffled every epoch (mulberry32: small and reproducible). */
export class BatchSampler {
  private order: number[] = [];
  private pos = 0;
  private state: number;

  constructor(private readonly n: number, seed: number) {
    this.state = seed >>> 0;
  }

  private random(): number {
    let t = (this.state = (this.state + 0x6d2b79f5) >>> 0);
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }

  next(batch: number): number[] {
    const out: number[] = [];
    while (out.length < batch) {
      if (this.pos >= this.order.length) {
        this.order = Array.from({ length: this.n }, (_, i) => i);
        for (let i = this.n - 1; i > 0; i--) {
          const j = Math.floor(this.random() * (i + 1));
          [this.order[i], this.order[j]] = [this.order[j]!, this.order[i]!];
        }
        this.pos = 0;
      }
      out.push(this.order[this.pos++]!);
    }
    return out;
  }
}
