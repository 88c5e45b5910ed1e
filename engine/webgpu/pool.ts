/**
 * GPU buffer pool by size class. A buffer released while the current batch is still being
 * recorded may be reused by later *dispatches* of the same batch (commands run in order), but not
 * as the target of `queue.writeBuffer`, which would run before the batch: so released buffers wait
 * in `recent` until the batch is submitted.
 */
export interface PooledBuffer {
  readonly buffer: GPUBuffer;
  readonly id: number;
  readonly size: number;
}

let nextBufferId = 1;

/** Size classes 2^k and 1.5 * 2^k, at least 256 bytes, keep waste under 50% and reuse high. */
export function sizeClass(bytes: number): number {
  let c = 256;
  while (c < bytes) {
    const mid = c + c / 2;
    if (mid >= bytes) return mid;
    c *= 2;
  }
  return c;
}

export class BufferPool {
  private free = new Map<number, PooledBuffer[]>();
  private recent = new Map<number, PooledBuffer[]>();
  private freeBytes = 0;
  private recentBytes = 0;
  allocatedBytes = 0;

  constructor(private readonly device: GPUDevice) {}

  acquire(bytes: number, forUpload: boolean): PooledBuffer {
    const size = sizeClass(bytes);
    const fromFree = this.free.get(size)?.pop();
    if (fromFree) {
      this.freeBytes -= size;
      return fromFree;
    }
    if (!forUpload) {
      const fromRecent = this.recent.get(size)?.pop();
      if (fromRecent) {
        this.recentBytes -= size;
        return fromRecent;
      }
    }
    const buffer = this.device.createBuffer({
      size,
      usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST,
    });
    this.allocatedBytes += size;
    return { buffer, id: nextBufferId++, size };
  }

  release(buf: PooledBuffer): void {
    let list = this.recent.get(buf.size);
    if (!list) this.recent.set(buf.size, (list = []));
    list.push(buf);
    this.recentBytes += buf.size;
  }

  /** Called after a submit: buffers released during the batch become safe for uploads. */
  onSubmitted(): void {
    for (const [size, list] of this.recent) {
      let dst = this.free.get(size);
      if (!dst) this.free.set(size, (dst = []));
      dst.push(...list);
    }
    this.freeBytes += this.recentBytes;
    this.recentBytes = 0;
    this.recent.clear();
  }

  pooledBytes(): number {
    return this.freeBytes + this.recentBytes;
  }

  /** Destroys every pooled (not live) buffer. */
  trim(): void {
    for (const m of [this.free, this.recent]) {
      for (const list of m.values()) for (const b of list) {
        b.buffer.destroy();
        this.allocatedBytes -= b.size;
      }
      m.clear();
    }
    this.freeBytes = 0;
    this.recentBytes = 0;
  }
}
