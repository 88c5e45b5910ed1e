/**
 * A DataLoader-like batch iterator over an ImageDataset: seeded shuffling per epoch, optional
 * drop-last, seeded random horizontal flips, and float32 [B, C, H, W] batches normalized to a
 * range (default [-1, 1]) or by per-channel mean/std. Browser-safe.
 *
 * Every random choice is a pure function of (seed, epoch, position), so `state()` — seed, epoch
 * and position — is all a checkpoint needs: `setState()` resumes the exact same sequence of
 * batches, flips included.
 */
import { checkDataset, type ImageDataset } from './dataset.js';
import { permutation, randomWords, STREAM } from './rng.js';

export interface LoaderOptions {
  batchSize: number;
  /** Reshuffle every epoch (default true); false iterates in dataset order. */
  shuffle?: boolean;
  seed?: number;
  /** Drop the last incomplete batch of each epoch (default false). */
  dropLast?: boolean;
  /** Random horizontal flip: true = probability 0.5, or a probability (default off). */
  hflip?: boolean | number;
  /** Output range for pixel 0..255 (default [-1, 1]). Ignored when mean/std are given. */
  range?: readonly [number, number];
  /** torchvision-style Normalize on [0, 1] pixels: (v / 255 - mean[c]) / std[c]. */
  mean?: readonly number[];
  std?: readonly number[];
}

/** Everything needed to resume the sequence of batches exactly (JSON-safe). */
export interface LoaderState {
  seed: number;
  epoch: number;
  /** Samples of the current epoch already delivered. */
  position: number;
  /** Checked on restore: the dataset size, batch size, drop-last and shuffle it was saved with. */
  size: number;
  batchSize: number;
  dropLast: boolean;
  shuffle: boolean;
}

export interface Batch {
  /** Normalized pixels, [B, C, H, W] row-major. */
  x: Float32Array;
  shape: [number, number, number, number];
  labels: Int32Array;
  /** Dataset index of each sample. */
  indices: Int32Array;
  /** 1 where the sample was flipped. */
  flipped: Uint8Array;
  epoch: number;
  /** Batch number within the epoch. */
  index: number;
}

/** Preallocated arrays to fill instead of allocating (batch arrays are views of them). */
export interface BatchBuffers {
  x?: Float32Array;
  labels?: Int32Array;
}

export class DataLoader {
  readonly batchSize: number;
  readonly shuffle: boolean;
  readonly dropLast: boolean;
  readonly flipProb: number;
  private seed: number;
  private _epoch = 0;
  private _position = 0;
  private order: { epoch: number; perm: Int32Array } | null = null;
  private readonly lut: Float32Array[];

  constructor(
    readonly dataset: ImageDataset,
    opts: LoaderOptions,
  ) {
    checkDataset(dataset, 'DataLoader');
    const b = opts.batchSize;
    if (!Number.isInteger(b) || b < 1) throw new Error(`DataLoader: batchSize must be a positive integer, got ${b}`);
    this.batchSize = b;
    this.shuffle = opts.shuffle ?? true;
    this.dropLast = opts.dropLast ?? false;
    this.seed = opts.seed ?? 0;
    randomWords(this.seed, 0, 0, 0, 0); // validates the seed
    const p = opts.hflip === true ? 0.5 : opts.hflip === false || opts.hflip === undefined ? 0 : opts.hflip;
    if (!(p >= 0 && p <= 1)) throw new Error(`DataLoader: hflip probability must be in [0, 1], got ${opts.hflip}`);
    this.flipProb = p;
    const C = dataset.shape[1];
    this.lut = [];
    for (let c = 0; c < C; c++) {
      const t = new Float32Array(256);
      if (opts.mean || opts.std) {
        const m = opts.mean?.[opts.mean.length === 1 ? 0 : c];
        const s = opts.std?.[opts.std.length === 1 ? 0 : c];
        if (m === undefined || s === undefined || !(s > 0)) throw new Error(`DataLoader: mean/std need 1 or ${C} values (std > 0), got mean ${JSON.stringify(opts.mean)}, std ${JSON.stringify(opts.std)}`);
        for (let v = 0; v < 256; v++) t[v] = (v / 255 - m) / s;
      } else {
        const [lo, hi] = opts.range ?? [-1, 1];
        for (let v = 0; v < 256; v++) t[v] = lo + ((hi - lo) * v) / 255;
      }
      this.lut.push(t);
    }
    if (this.batchesPerEpoch === 0) throw new Error(`DataLoader: ${this.size} samples give no batch of ${b} with dropLast`);
  }

  get size(): number {
    return this.dataset.shape[0];
  }

  /** Samples delivered per epoch. */
  private get limit(): number {
    return this.dropLast ? Math.floor(this.size / this.batchSize) * this.batchSize : this.size;
  }

  get batchesPerEpoch(): number {
    return this.dropLast ? Math.floor(this.size / this.batchSize) : Math.ceil(this.size / this.batchSize);
  }

  get epoch(): number {
    return this._epoch;
  }

  get position(): number {
    return this._position;
  }

  state(): LoaderState {
    return { seed: this.seed, epoch: this._epoch, position: this._position, size: this.size, batchSize: this.batchSize, dropLast: this.dropLast, shuffle: this.shuffle };
  }

  setState(s: LoaderState): this {
    const bad = (why: string) => new Error(`DataLoader.setState: ${why} (state ${JSON.stringify(s)})`);
    if (!s || typeof s !== 'object') throw bad('not a loader state');
    if (s.size !== this.size) throw bad(`saved for a dataset of ${s.size} samples, this one has ${this.size}`);
    if (s.batchSize !== this.batchSize || s.dropLast !== this.dropLast || s.shuffle !== this.shuffle) {
      throw bad(`saved with batchSize ${s.batchSize}, dropLast ${s.dropLast}, shuffle ${s.shuffle}; this loader has ${this.batchSize}, ${this.dropLast}, ${this.shuffle}`);
    }
    if (!Number.isInteger(s.epoch) || s.epoch < 0 || !Number.isInteger(s.position) || s.position < 0 || s.position >= this.limit) throw bad('invalid epoch or position');
    randomWords(s.seed, 0, 0, 0, 0);
    this.seed = s.seed;
    this._epoch = s.epoch;
    this._position = s.position;
    return this;
  }

  /** The sample order of an epoch. */
  orderOf(epoch: number): Int32Array {
    if (this.order?.epoch === epoch) return this.order.perm;
    let perm: Int32Array;
    if (this.shuffle) perm = permutation(this.size, this.seed, STREAM.shuffle, epoch);
    else {
      perm = new Int32Array(this.size);
      for (let i = 0; i < perm.length; i++) perm[i] = i;
    }
    this.order = { epoch, perm };
    return perm;
  }

  /** The next batch; moves on to the next epoch after the last batch of one. */
  next(into: BatchBuffers = {}): Batch {
    const [, C, H, W] = this.dataset.shape;
    const epoch = this._epoch;
    const pos = this._position;
    const B = Math.min(this.batchSize, this.size - pos);
    const per = C * H * W;
    const perm = this.orderOf(epoch);
    if (into.x && into.x.length < B * per) throw new Error(`DataLoader.next: buffer x has ${into.x.length} floats, a batch needs ${B * per}`);
    if (into.labels && into.labels.length < B) throw new Error(`DataLoader.next: labels buffer has ${into.labels.length} entries, a batch needs ${B}`);
    const x = into.x ? into.x.subarray(0, B * per) : new Float32Array(B * per);
    const labels = into.labels ? into.labels.subarray(0, B) : new Int32Array(B);
    const indices = new Int32Array(B);
    const flipped = new Uint8Array(B);
    const words = this.flipProb > 0 ? randomWords(this.seed, STREAM.flip, epoch, pos, B) : null;
    const threshold = this.flipProb * 0x100000000;
    const src = this.dataset.images;
    for (let s = 0; s < B; s++) {
      const idx = perm[pos + s]!;
      indices[s] = idx;
      labels[s] = this.dataset.labels[idx]!;
      const flip = words !== null && words[s]! < threshold;
      flipped[s] = flip ? 1 : 0;
      for (let c = 0; c < C; c++) {
        const t = this.lut[c]!;
        const plane = (idx * C + c) * H * W;
        const out = (s * C + c) * H * W;
        for (let y = 0; y < H; y++) {
          const r = plane + y * W;
          const o = out + y * W;
          if (flip) for (let xx = 0; xx < W; xx++) x[o + xx] = t[src[r + W - 1 - xx]!]!;
          else for (let xx = 0; xx < W; xx++) x[o + xx] = t[src[r + xx]!]!;
        }
      }
    }
    const batch: Batch = { x, shape: [B, C, H, W], labels, indices, flipped, epoch, index: Math.floor(pos / this.batchSize) };
    this._position = pos + B;
    if (this._position >= this.limit) {
      this._epoch = epoch + 1;
      this._position = 0;
    }
    return batch;
  }

  /** The remaining batches of the current epoch. */
  *epochBatches(into: BatchBuffers = {}): Generator<Batch> {
    const e = this._epoch;
    while (this._epoch === e) yield this.next(into);
  }

  [Symbol.iterator](): Generator<Batch> {
    return this.epochBatches();
  }
}
