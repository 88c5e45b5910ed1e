/**
 * CPU reference backend. Floats are stored as Float64Array when `precision: 'f64'` (the
 * reference for kernel tests and finite-difference gradient checks) or Float32Array (the fallback
 * when no GPU exists). Work is immediate, so flush() does nothing.
 */
import type { Backend, Storage } from '../backend.js';
import type { DType } from '../dtype.js';
import { applyTuning, defaultTuning, type DeviceTuning, type TuningOverrides } from '../tuning.js';

export type CpuArray = Float32Array | Float64Array | Int32Array;

export class CpuStorage implements Storage {
  refs = 0;
  constructor(readonly backend: CpuBackend, readonly data: CpuArray) {}
  get byteSize(): number {
    return this.data.byteLength;
  }
}

export interface CpuBackendOptions {
  /** Float storage precision; 'f64' makes the backend a float64 reference. */
  precision?: 'f32' | 'f64';
}

export class CpuBackend implements Backend {
  readonly kind = 'cpu' as const;
  readonly name: string;
  readonly precision: 'f32' | 'f64';
  /**
   * The same tuning as a device's: kernel choices do not apply here, but a column limit
   * (conv.maxColumnElements) or a forced conv route lets the float64 reference check them.
   */
  readonly tuning: DeviceTuning = defaultTuning();

  constructor(opts: CpuBackendOptions = {}) {
    this.precision = opts.precision ?? 'f32';
    this.name = `cpu-${this.precision}`;
  }

  /** Overrides tuning fields (for tests); returns the function that restores them. */
  tune(overrides: TuningOverrides): () => void {
    return applyTuning(this.tuning, overrides);
  }

  newArray(size: number, dtype: DType): CpuArray {
    if (dtype === 'i32') return new Int32Array(size);
    return this.precision === 'f64' ? new Float64Array(size) : new Float32Array(size);
  }

  alloc(size: number, dtype: DType): CpuStorage {
    return new CpuStorage(this, this.newArray(size, dtype));
  }

  /** Wraps an already-filled array of the right type without copying. */
  wrap(data: CpuArray): CpuStorage {
    return new CpuStorage(this, data);
  }

  fromArray(data: ArrayLike<number>, dtype: DType): CpuStorage {
    const arr = this.newArray(data.length, dtype);
    if (dtype === 'i32') for (let i = 0; i < data.length; i++) arr[i] = Math.trunc(data[i]!);
    else arr.set(data);
    return new CpuStorage(this, arr);
  }

  write(storage: Storage, data: Float32Array | Int32Array, offset = 0): void {
    const arr = (storage as CpuStorage).data;
    if (!Number.isInteger(offset) || offset < 0 || offset + data.length > arr.length) {
      throw new RangeError(`write: ${data.length} elements at offset ${offset} do not fit in storage of ${arr.length} elements`);
    }
    arr.set(data, offset);
  }

  free(): void {
    // Garbage collected.
  }

  async read(storage: Storage, offset: number, size: number): Promise<CpuArray> {
    return (storage as CpuStorage).data.slice(offset, offset + size);
  }

  flush(): void {}

  pooledBytes(): number {
    return 0;
  }
}

/** A float64 reference backend shared by tests and gradient checks. */
export const cpuF64 = new CpuBackend({ precision: 'f64' });
