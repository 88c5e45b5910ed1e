/**
 * Seeded, resumable batches of labelled rows (token sequences, latents: any fixed-size row of an
 * Int32Array or Float32Array): a fresh permutation per epoch (a pure function of seed and epoch,
 * the DataLoader's), full batches only (the tail of an epoch is dropped). `next()` fills host
 * arrays; `nextOnDevice()` uploads into a ring of two device tensor pairs that are reused (valid
 * until two uploads later; do not dispose them). Its state has the DataLoader layout, so
 * trainLoop checkpoints it.
 */
import * as E from '../../engine/index.js';
import type { LoaderState } from './loader.js';
import { permutation, STREAM } from './rng.js';
import { writeInto } from './upload.js';

export type RowArray = Int32Array | Float32Array;

export class ShuffledRowLoader<A extends RowArray> {
  readonly batchSize: number;
  /** Elements per row. */
  readonly rowSize: number;
  private seed: number;
  private _epoch = 0;
  private _position = 0;
  private order: { epoch: number; perm: Int32Array } | null = null;
  private ring: { classes: E.Tensor; rows: E.Tensor }[] = [];
  private ringNext = 0;
  private readonly host: { classes: Int32Array; rows: A };

  /** rows: n rows of prod(rowShape) elements; labels: n class ids. */
  constructor(
    readonly rows: A,
    readonly labels: Int32Array,
    readonly rowShape: readonly number[],
    opts: { batchSize: number; seed?: number; name?: string },
  ) {
    const name = opts.name ?? 'ShuffledRowLoader';
    this.rowSize = rowShape.reduce((a, b) => a * b, 1);
    const n = labels.length;
    if (rows.length !== n * this.rowSize) throw new Error(`${name}: ${n} labels need ${n * this.rowSize} row elements, got ${rows.length}`);
    const b = opts.batchSize;
    if (!Number.isInteger(b) || b < 1) throw new Error(`${name}: batchSize must be a positive integer, got ${b}`);
    if (n < b) throw new Error(`${name}: ${n} rows give no full batch of ${b}`);
    this.batchSize = b;
    this.seed = opts.seed ?? 0;
    const Ctor = rows.constructor as new (n: number) => A;
    this.host = { classes: new Int32Array(b), rows: new Ctor(b * this.rowSize) };
  }

  get size(): number {
    return this.labels.length;
  }

  get batchesPerEpoch(): number {
    return Math.floor(this.size / this.batchSize);
  }

  get epoch(): number {
    return this._epoch;
  }

  state(): LoaderState {
    return { seed: this.seed, epoch: this._epoch, position: this._position, size: this.size, batchSize: this.batchSize, dropLast: true, shuffle: true };
  }

  setState(s: LoaderState): this {
    const name = this.constructor.name;
    if (!s || s.size !== this.size || s.batchSize !== this.batchSize || s.dropLast !== true || s.shuffle !== true) {
      throw new Error(`${name}.setState: state ${JSON.stringify(s)} does not fit this loader (${this.size} rows, batches of ${this.batchSize}, shuffled, full batches)`);
    }
    if (!Number.isInteger(s.epoch) || s.epoch < 0 || !Number.isInteger(s.position) || s.position < 0 || s.position + this.batchSize > this.size) {
      throw new Error(`${name}.setState: invalid epoch or position in ${JSON.stringify(s)}`);
    }
    if (!Number.isSafeInteger(s.seed) || s.seed < 0) throw new Error(`${name}.setState: invalid seed in ${JSON.stringify(s)}`);
    this.seed = s.seed;
    this._epoch = s.epoch;
    this._position = s.position;
    return this;
  }

  private perm(epoch: number): Int32Array {
    if (this.order?.epoch !== epoch) this.order = { epoch, perm: permutation(this.size, this.seed, STREAM.shuffle, epoch) };
    return this.order.perm;
  }

  /** The next batch into the loader's host arrays (overwritten by the next call). */
  nextRows(): { classes: Int32Array; rows: A; epoch: number; indices: Int32Array } {
    const R = this.rowSize;
    const B = this.batchSize;
    const perm = this.perm(this._epoch);
    const epoch = this._epoch;
    const indices = perm.slice(this._position, this._position + B);
    for (let i = 0; i < B; i++) {
      const k = indices[i]!;
      this.host.classes[i] = this.labels[k]!;
      this.host.rows.set(this.rows.subarray(k * R, (k + 1) * R), i * R);
    }
    this._position += B;
    if (this._position + B > this.size) {
      this._epoch++;
      this._position = 0;
    }
    return { classes: this.host.classes, rows: this.host.rows, epoch, indices };
  }

  /** The next batch on `backend`: classes i32 [B], rows [B, ...rowShape] (reused device tensors). */
  nextRowsOnDevice(backend: E.Backend): { classes: E.Tensor; rows: E.Tensor; epoch: number } {
    const B = this.batchSize;
    if (this.ring.length < 2) {
      this.ring.push({
        classes: E.keep(E.zeros([B], { backend, dtype: 'i32' })),
        rows: E.keep(E.zeros([B, ...this.rowShape], { backend, dtype: this.rows instanceof Int32Array ? 'i32' : 'f32' })),
      });
    }
    const slot = this.ring[this.ringNext % this.ring.length]!;
    this.ringNext++;
    const b = this.nextRows();
    writeInto(slot.classes, b.classes);
    writeInto(slot.rows, b.rows);
    return { classes: slot.classes, rows: slot.rows, epoch: b.epoch };
  }

  /** Frees the device tensors (kept across steps: they live as long as the loader). */
  dispose(): void {
    for (const s of this.ring) {
      s.classes.dispose();
      s.rows.dispose();
    }
    this.ring = [];
  }
}
