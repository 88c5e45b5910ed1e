/**
 * Moving batches to the device without per-batch allocation churn: `BatchUploader` keeps, per
 * batch shape, a small ring of device tensors (two by default) and overwrites them in place
 * (`writeInto`), filling them from one reused host buffer. Browser-safe.
 *
 * Hazard handled: queue.writeBuffer runs before any command submitted later, so overwriting a
 * buffer that recorded-but-unsubmitted commands still read would change their input. The WebGPU
 * backend's `write` submits pending work first; the ring of two also keeps the previous batch's
 * tensors intact while the next one is uploaded (e.g. for logging the last batch).
 */
import type { Backend } from '../../engine/backend.js';
import { keep } from '../../engine/scope.js';
import { Tensor } from '../../engine/tensor.js';
import type { Batch, BatchBuffers, DataLoader } from './loader.js';

/** Overwrites a contiguous tensor's storage with `data` (same element count and dtype family). */
export function writeInto(t: Tensor, data: Float32Array | Int32Array): void {
  if (t.size !== data.length) throw new Error(`writeInto: ${data.length} values for ${t.describe()} of ${t.size} elements`);
  if (!t.isContiguous || t.offset !== 0) throw new Error(`writeInto: ${t.describe()} must be a contiguous tensor at offset 0`);
  if ((t.dtype === 'i32') !== data instanceof Int32Array) throw new TypeError(`writeInto: ${data.constructor.name} data for ${t.describe()} (dtype ${t.dtype})`);
  t.backend.write(t.storage, data);
}

export interface DeviceBatch {
  /** [B, C, H, W] f32; owned by the uploader: do not dispose, valid until `slots` uploads later. */
  x: Tensor;
  /** [B] i32; same ownership. */
  labels: Tensor;
  batch: Batch;
}

interface Slot {
  x: Tensor;
  labels: Tensor;
}

export class BatchUploader {
  private readonly rings = new Map<string, { slots: Slot[]; next: number }>();
  private host: { x: Float32Array; labels: Int32Array } | null = null;
  readonly slots: number;
  /** Device tensors allocated so far (stays at slots x shapes: a test hook for churn). */
  allocations = 0;

  constructor(
    readonly backend: Backend,
    opts: { slots?: number } = {},
  ) {
    this.slots = opts.slots ?? 2;
    if (!Number.isInteger(this.slots) || this.slots < 1) throw new Error(`BatchUploader: slots must be a positive integer, got ${opts.slots}`);
  }

  private slotFor(shape: readonly number[]): Slot {
    const key = shape.join(',');
    let ring = this.rings.get(key);
    if (!ring) this.rings.set(key, (ring = { slots: [], next: 0 }));
    const i = ring.next;
    ring.next = (i + 1) % this.slots;
    let slot = ring.slots[i];
    if (!slot || slot.x.isDisposed || slot.labels.isDisposed) {
      if (slot) {
        slot.x.dispose();
        slot.labels.dispose();
      }
      const n = shape.reduce((a, b) => a * b, 1);
      // keep(): an enclosing tidy() must not dispose the ring's tensors.
      const x = keep(new Tensor(this.backend.alloc(n, 'f32'), shape, 'f32', 'BatchUploader'));
      const labels = keep(new Tensor(this.backend.alloc(shape[0]!, 'i32'), [shape[0]!], 'i32', 'BatchUploader'));
      slot = { x, labels };
      ring.slots[i] = slot;
      this.allocations += 2;
    }
    return slot;
  }

  /** Copies a host batch into the next device slot of its shape. */
  upload(batch: Batch): DeviceBatch {
    const slot = this.slotFor(batch.shape);
    writeInto(slot.x, batch.x);
    writeInto(slot.labels, batch.labels);
    return { x: slot.x, labels: slot.labels, batch };
  }

  /** Takes the loader's next batch (filled into a reused host buffer) and uploads it. */
  next(loader: DataLoader): DeviceBatch {
    const [, C, H, W] = loader.dataset.shape;
    const need = loader.batchSize * C * H * W;
    if (!this.host || this.host.x.length < need || this.host.labels.length < loader.batchSize) {
      this.host = { x: new Float32Array(need), labels: new Int32Array(loader.batchSize) };
    }
    const buffers: BatchBuffers = this.host;
    return this.upload(loader.next(buffers));
  }

  dispose(): void {
    for (const ring of this.rings.values()) for (const s of ring.slots) (s.x.dispose(), s.labels.dispose());
    this.rings.clear();
    this.host = null;
  }

  /** `using up = new BatchUploader(...)` frees the device ring when the block ends. */
  [Symbol.dispose](): void {
    this.dispose();
  }
}
