/**
 * GPU time per kernel, from timestamp queries: while profiling, WebGPUBackend gives every dispatch
 * its own compute pass whose beginning and end write a timestamp, resolves the queries at each
 * submit and reads them back without stalling the next batch. The report sums the time between
 * each pass's two timestamps by dispatch key (the pipeline key: kernel family, expression,
 * tiling) and by family (the key up to its first '|').
 *
 * One pass per dispatch costs a little GPU time between passes, which the per-kernel times do not
 * include: compare the sum with wall time to see whether a step is GPU-bound or launch-bound.
 * Dawn may quantize timestamps (its `timestamp_quantization` toggle): `resolutionNs` reports the
 * smallest nonzero difference seen, so coarse numbers are recognizable as such.
 */

/** Dispatches per query set before the backend must submit (two queries each). */
export const PROFILE_CAPACITY = 2048;

export interface KernelTime {
  key: string;
  count: number;
  /** Summed GPU time in milliseconds. */
  ms: number;
}

export interface ProfileReport {
  /** Per dispatch key, most time first. */
  kernels: KernelTime[];
  /** Per kernel family (key up to the first '|'), most time first. */
  families: KernelTime[];
  dispatches: number;
  totalMs: number;
  /** Smallest nonzero timestamp difference observed, in ns (large values mean quantized timestamps). */
  resolutionNs: number;
}

interface Batch {
  read: GPUBuffer;
  keys: string[];
}

export class GpuProfiler {
  private readonly querySet: GPUQuerySet;
  private readonly resolveBuffer: GPUBuffer;
  private keys: string[] = [];
  private readonly submitted: Batch[] = [];
  private readonly pending: Promise<void>[] = [];
  private readonly totals = new Map<string, { count: number; ns: number }>();
  private dispatches = 0;
  private minNs = Infinity;

  constructor(private readonly device: GPUDevice) {
    this.querySet = device.createQuerySet({ type: 'timestamp', count: 2 * PROFILE_CAPACITY });
    this.resolveBuffer = device.createBuffer({ size: 16 * PROFILE_CAPACITY, usage: GPUBufferUsage.QUERY_RESOLVE | GPUBufferUsage.COPY_SRC });
  }

  /** True when the current batch has used every query pair: the backend submits first. */
  get full(): boolean {
    return this.keys.length >= PROFILE_CAPACITY;
  }

  /** A compute pass for one dispatch, bracketed by two timestamps. */
  beginPass(encoder: GPUCommandEncoder, key: string): GPUComputePassEncoder {
    const i = this.keys.length;
    this.keys.push(key);
    return encoder.beginComputePass({ timestampWrites: { querySet: this.querySet, beginningOfPassWriteIndex: 2 * i, endOfPassWriteIndex: 2 * i + 1 } });
  }

  /** Records the resolve and the copy to a readable buffer at the end of a batch. */
  resolve(encoder: GPUCommandEncoder): void {
    const n = this.keys.length;
    if (n === 0) return;
    const read = this.device.createBuffer({ size: 16 * n, usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST });
    encoder.resolveQuerySet(this.querySet, 0, 2 * n, this.resolveBuffer, 0);
    encoder.copyBufferToBuffer(this.resolveBuffer, 0, read, 0, 16 * n);
    this.submitted.push({ read, keys: this.keys });
    this.keys = [];
  }

  /** After the batch's submit: reads its timestamps when the GPU is done with it. */
  afterSubmit(): void {
    for (const b of this.submitted.splice(0)) {
      this.pending.push(
        b.read.mapAsync(GPUMapMode.READ).then(() => {
          const t = new BigUint64Array(b.read.getMappedRange());
          b.keys.forEach((key, i) => {
            const ns = t[2 * i + 1]! > t[2 * i]! ? Number(t[2 * i + 1]! - t[2 * i]!) : 0;
            if (ns > 0) this.minNs = Math.min(this.minNs, ns);
            const e = this.totals.get(key) ?? { count: 0, ns: 0 };
            e.count++;
            e.ns += ns;
            this.totals.set(key, e);
          });
          this.dispatches += b.keys.length;
          b.read.unmap();
          b.read.destroy();
        }),
      );
    }
  }

  /** Waits for every submitted batch and sums them up. */
  async report(): Promise<ProfileReport> {
    await Promise.all(this.pending.splice(0));
    const byKey = [...this.totals].map(([key, v]) => ({ key, count: v.count, ms: v.ns / 1e6 }));
    const fam = new Map<string, KernelTime>();
    for (const k of byKey) {
      const name = k.key.split('|')[0]!;
      const f = fam.get(name) ?? { key: name, count: 0, ms: 0 };
      f.count += k.count;
      f.ms += k.ms;
      fam.set(name, f);
    }
    const desc = (a: KernelTime, b: KernelTime) => b.ms - a.ms;
    return {
      kernels: byKey.sort(desc),
      families: [...fam.values()].sort(desc),
      dispatches: this.dispatches,
      totalMs: byKey.reduce((s, k) => s + k.ms, 0),
      resolutionNs: Number.isFinite(this.minNs) ? this.minNs : 0,
    };
  }

  destroy(): void {
    this.querySet.destroy();
    this.resolveBuffer.destroy();
  }
}

/** A report as an aligned text table (top `limit` keys, then the families). */
export function formatProfile(r: ProfileReport, limit = 25): string {
  const pct = (ms: number) => (r.totalMs > 0 ? ((100 * ms) / r.totalMs).toFixed(1) : '0.0').padStart(5);
  const row = (k: KernelTime) => `${k.ms.toFixed(3).padStart(10)} ms ${pct(k.ms)}% ${String(k.count).padStart(7)}x  ${k.key.length > 110 ? `${k.key.slice(0, 107)}...` : k.key}`;
  return [
    `GPU time ${r.totalMs.toFixed(3)} ms over ${r.dispatches} dispatches (timestamp resolution seen: ${r.resolutionNs} ns)`,
    'by family:',
    ...r.families.map(row),
    `top ${Math.min(limit, r.kernels.length)} of ${r.kernels.length} kernels:`,
    ...r.kernels.slice(0, limit).map(row),
  ].join('\n');
}
