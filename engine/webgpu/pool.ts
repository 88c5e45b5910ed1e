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
  /** Buffers a captured step replays into (pin count per buffer): never handed out while pinned. */
  private readonly pinned = new Map<PooledBuffer, number>();
  /** Pinned buffers whose tensors were freed: released when the last pin goes. */
  private readonly deferred = new Set<PooledBuffer>();

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
    if (this.pinned.has(buf)) {
      this.deferred.add(buf);
      return;
    }
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

  /**
   * Keeps buffers out of circulation (a captured step's): a pooled one leaves the pool now, a live
   * one is held back when its tensor is freed. Pins count: unpin as many times as pinned.
   */
  pin(bufs: Iterable<PooledBuffer>): void {
    for (const b of bufs) {
      const n = this.pinned.get(b) ?? 0;
      this.pinned.set(b, n + 1);
      if (n === 0 && (this.take(this.free, b) || this.take(this.recent, b))) this.deferred.add(b);
    }
  }

  /** Undoes pin(): a buffer with no pins left whose tensor was freed goes back to the pool. */
  unpin(bufs: Iterable<PooledBuffer>): void {
    for (const b of bufs) {
      const n = this.pinned.get(b);
      if (n === undefined) continue;
      if (n > 1) {
        this.pinned.set(b, n - 1);
        continue;
      }
      this.pinned.delete(b);
      if (this.deferred.delete(b)) this.release(b);
    }
  }

  /** Bytes of pinned buffers no tensor holds (a captured step's working memory). */
  pinnedBytes(): number {
    let n = 0;
    for (const b of this.deferred) n += b.size;
    return n;
  }

  /** Removes `buf` from one of the pool's lists; false when it is not there. */
  private take(m: Map<number, PooledBuffer[]>, buf: PooledBuffer): boolean {
    const list = m.get(buf.size);
    const i = list ? list.indexOf(buf) : -1;
    if (i < 0) return false;
    list!.splice(i, 1);
    if (m === this.free) this.freeBytes -= buf.size;
    else this.recentBytes -= buf.size;
    return true;
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
