/**
 * GPU buffer pool by size class. A buffer released while the current batch is still being
 * recorded may be reused by later *dispatches* of the same batch (commands run in order), but not
 * as the target of `queue.writeBuffer`, which would run before the batch: so released buffers wait
 * in `recent` until the batch is submitted.
 *
 * Each size class hands out its free buffer with the smallest id (lists are kept sorted by
 * descending id; pop takes the last). Which buffer an allocation gets then depends only on which
 * buffers are free, not on the order they were released in: a training step that allocates and
 * frees the same way every time gets the same buffers every time, so the backend's bind groups
 * (keyed by buffer ids) are reused instead of recreated (~15 µs each on Dawn). With LIFO reuse,
 * release orders permuted the buffers between steps and most bind groups were new every step.
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

/** The size class after `c` (a class). */
function nextClass(c: number): number {
  return sizeClass(c + 1);
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
    // The request's size class first, then the next classes up to twice its size (a free larger
    // buffer serves instead of a new one: fewer buffers stranded in classes nobody asks for).
    for (let c = size; c <= 2 * size; c = nextClass(c)) {
      const fromFree = this.free.get(c)?.pop();
      if (fromFree) {
        this.freeBytes -= c;
        return fromFree;
      }
      if (!forUpload) {
        const fromRecent = this.recent.get(c)?.pop();
        if (fromRecent) {
          this.recentBytes -= c;
          return fromRecent;
        }
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
    insertByDescendingId(list, buf);
    this.recentBytes += buf.size;
  }

  /** Called after a submit: buffers released during the batch become safe for uploads. */
  onSubmitted(): void {
    for (const [size, list] of this.recent) {
      const dst = this.free.get(size);
      if (!dst) this.free.set(size, list);
      else {
        dst.push(...list);
        dst.sort((a, b) => b.id - a.id);
      }
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

/** Inserts keeping `list` sorted by descending id (its last element has the smallest id). */
function insertByDescendingId(list: PooledBuffer[], buf: PooledBuffer): void {
  let lo = 0;
  let hi = list.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (list[mid]!.id > buf.id) lo = mid + 1;
    else hi = mid;
  }
  list.splice(lo, 0, buf);
}
