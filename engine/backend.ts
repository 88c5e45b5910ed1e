/**
 * What the tensor layer needs from a backend. Kernels themselves live with their ops
 * (engine/ops/*), which branch on `backend.kind`; a backend only owns memory and execution.
 */
import type { DType } from './dtype.js';
import type { DeviceTuning, TuningOverrides } from './tuning.js';

export type BackendKind = 'cpu' | 'webgpu';

/** A reference-counted block of memory shared by a tensor and its views. */
export interface Storage {
  readonly backend: Backend;
  readonly byteSize: number;
  /** Number of live tensors (base + views) that point at this storage. */
  refs: number;
}

export interface Backend {
  readonly kind: BackendKind;
  readonly name: string;
  /** Allocates uninitialized storage for `size` elements. */
  alloc(size: number, dtype: DType): Storage;
  /** Allocates storage holding `data` (converted to the backend's element type). */
  fromArray(data: ArrayLike<number>, dtype: DType): Storage;
  /** Returns storage to the backend (pool or GC) once its refcount reached zero. */
  free(storage: Storage): void;
  /** Reads `size` contiguous elements starting at element `offset`. */
  read(storage: Storage, offset: number, size: number, dtype: DType): Promise<Float32Array | Float64Array | Int32Array>;
  /**
   * Overwrites elements [offset, offset + data.length) of storage with host data, ordered after
   * every op already issued (the WebGPU backend submits pending work first).
   */
  write(storage: Storage, data: Float32Array | Int32Array, offset?: number): void;
  /** Submits pending work; a no-op where work is immediate. */
  flush(): void;
  /** Kernel choices for this backend (engine/tuning.ts); null fields are decided from the device. */
  readonly tuning: DeviceTuning;
  /** Overrides tuning fields (tests, benchmarks); returns the function that restores them. */
  tune(overrides: TuningOverrides): () => void;
  /** Bytes held in a reuse pool (not live). */
  pooledBytes(): number;
  /**
   * Of pooledBytes, those a captured step keeps for its replays (its intermediates: no tensor
   * holds them, no other op may take them); absent where steps are not captured.
   */
  capturedBytes?(): number;
}
