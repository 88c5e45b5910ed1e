/**
 * WebGPU backend: owns the device, the buffer pool, cached pipelines and bind groups, and the
 * batching of dispatches. Every dispatch goes into one shared compute pass; the batch is submitted
 * on readback, on explicit flush(), or when the parameter arena fills. Parameters of all dispatches
 * in a batch live in one uniform buffer addressed by dynamic offsets, uploaded once per submit.
 */
import { GpuProfiler, type ProfileReport } from './profiler.js';
import type { Backend, Storage } from '../backend.js';
import type { DType } from '../dtype.js';
import { KERNEL_PRELUDE } from '../../shaders/common.js';
import { bakeInto, countKeys, PARAM_SLOT_BYTES, type Access, type Kernel } from '../kernel.js';
import type { Tensor } from '../tensor.js';
import { BufferPool, type PooledBuffer } from './pool.js';
import { politeWait } from './host-wait.js';
import { applyTuning, defaultTuning, type DeviceTuning, type TuningOverrides } from '../tuning.js';

const SLOT_BYTES = PARAM_SLOT_BYTES;
const ARENA_SLOTS = 4096;
const MAX_WG_PER_DIM = 65535;

export class GpuStorage implements Storage {
  refs = 0;
  constructor(readonly backend: WebGPUBackend, readonly buf: PooledBuffer, readonly byteSize: number) {}
  get buffer(): GPUBuffer {
    return this.buf.buffer;
  }
}

export type { Access };

/** One call of a declared kernel (engine/kernel.ts): values by name, never by position. */
export interface KernelCall {
  params: Readonly<Record<string, number | readonly number[]>>;
  /** A tensor (its whole storage is bound) or raw storage per declared binding. */
  bindings: Readonly<Record<string, Tensor | Storage>>;
  /** Total workgroups (split into a 2D/3D grid when needed) or an explicit grid. */
  workgroups: number | [number, number, number];
  /** Parameters compiled into the shader as literals (their values join the pipeline key). */
  bake?: readonly string[];
}

export interface WebGPUBackendInfo {
  vendor: string;
  architecture: string;
  device: string;
  description: string;
  features: string[];
}

export class WebGPUBackend implements Backend {
  readonly kind = 'webgpu' as const;
  readonly name: string;
  readonly pool: BufferPool;
  readonly features: ReadonlySet<string>;
  /** Kernel choices for this device (engine/tuning.ts); change them with tune(). */
  readonly tuning: DeviceTuning = defaultTuning();
  /** Counters for benchmarks and tests (submits per training step, dispatches). */
  readonly counters = { submits: 0, dispatches: 0, pipelines: 0, bindGroups: 0 };

  private encoder: GPUCommandEncoder | null = null;
  private pass: GPUComputePassEncoder | null = null;
  private readonly arena = new Uint32Array((ARENA_SLOTS * SLOT_BYTES) / 4);
  private readonly arenaI32 = new Int32Array(this.arena.buffer);
  private readonly arenaF32 = new Float32Array(this.arena.buffer);
  private slots = 0;
  private readonly uniformBuffer: GPUBuffer;
  private readonly pipelines = new Map<string, { pipeline: GPUComputePipeline; layoutKey: string }>();
  private readonly layouts = new Map<string, GPUBindGroupLayout>();
  private readonly bindGroups = new Map<string, GPUBindGroup>();
  private lostMessage: string | null = null;
  private profiler: GpuProfiler | null = null;
  private pendingError: string | null = null;

  /**
   * A software adapter that runs invocations as CPU SIMD lanes, or null for a hardware GPU. Kernel
   * pickers (matmul, conv) tune for these; decided once here from the adapter info. Chromium's
   * SwiftShader reports only vendor 'google' and architecture 'swiftshader' (empty description).
   */
  readonly softwareAdapter: 'lavapipe' | 'swiftshader' | null;

  constructor(readonly device: GPUDevice, readonly info: WebGPUBackendInfo) {
    this.name = `webgpu (${info.description || info.device || info.vendor || 'unknown adapter'})`;
    const id = `${info.description} ${info.device} ${info.architecture}`;
    this.softwareAdapter = /swiftshader/i.test(id) ? 'swiftshader' : info.architecture === 'software' || /llvmpipe|lavapipe/i.test(id) ? 'lavapipe' : null;
    this.features = new Set(info.features);
    this.pool = new BufferPool(device);
    this.uniformBuffer = device.createBuffer({ size: this.arena.byteLength, usage: GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_DST });
    device.lost.then((i) => {
      this.lostMessage = `WebGPU device lost (${i.reason}): ${i.message || 'no message'}`;
    });
    device.addEventListener('uncapturederror', (ev) => {
      const msg = (ev as GPUUncapturedErrorEvent).error.message;
      this.pendingError ??= msg;
    });
  }

  private checkAlive(): void {
    if (this.lostMessage) throw new Error(this.lostMessage);
    if (this.pendingError) {
      const e = this.pendingError;
      this.pendingError = null;
      throw new Error(`WebGPU validation error: ${e}`);
    }
  }

  /** Whether device waits slow the binding's polling down (see engine/webgpu/host-wait.ts). */
  private waitsPolitely(): boolean {
    return this.tuning.host.politeWait ?? this.softwareAdapter !== null;
  }

  /** Overrides tuning fields (for tests and benchmarks); returns the function that restores them. */
  tune(overrides: TuningOverrides): () => void {
    return applyTuning(this.tuning, overrides);
  }

  // ---- memory ----

  alloc(size: number, dtype: DType): GpuStorage {
    this.checkAlive();
    const bytes = Math.max(size, 1) * 4;
    void dtype;
    return new GpuStorage(this, this.pool.acquire(bytes, false), size * 4);
  }

  fromArray(data: ArrayLike<number>, dtype: DType): GpuStorage {
    this.checkAlive();
    const n = data.length;
    const storage = new GpuStorage(this, this.pool.acquire(Math.max(n, 1) * 4, true), n * 4);
    if (n > 0) {
      const arr = dtype === 'i32' ? Int32Array.from(data, (v) => Math.trunc(v)) : data instanceof Float32Array ? data : Float32Array.from(data);
      this.device.queue.writeBuffer(storage.buffer, 0, arr.buffer, arr.byteOffset, arr.byteLength);
    }
    return storage;
  }

  /**
   * Overwrites elements [offset, offset + data.length) of existing storage (queue.writeBuffer,
   * which copies `data` immediately). Commands recorded but not yet submitted are submitted first:
   * they must still see the old contents, and a writeBuffer issued now would run before them.
   */
  write(storage: Storage, data: Float32Array | Int32Array, offset = 0): void {
    this.checkAlive();
    const s = storage as GpuStorage;
    if (!Number.isInteger(offset) || offset < 0 || (offset + data.length) * 4 > s.byteSize) {
      throw new RangeError(`write: ${data.length} elements at offset ${offset} do not fit in storage of ${s.byteSize / 4} elements`);
    }
    if (this.encoder) this.flush();
    if (data.length > 0) this.device.queue.writeBuffer(s.buffer, offset * 4, data.buffer, data.byteOffset, data.byteLength);
  }

  free(storage: Storage): void {
    this.pool.release((storage as GpuStorage).buf);
  }

  pooledBytes(): number {
    return this.pool.pooledBytes();
  }

  // ---- execution ----

  private layoutFor(accesses: readonly Access[]): { key: string; layout: GPUBindGroupLayout } {
    const key = accesses.map((a) => (a === 'read' ? 'r' : 'w')).join('');
    let layout = this.layouts.get(key);
    if (!layout) {
      const entries: GPUBindGroupLayoutEntry[] = [
        { binding: 0, visibility: GPUShaderStage.COMPUTE, buffer: { type: 'uniform', hasDynamicOffset: true, minBindingSize: SLOT_BYTES } },
        ...accesses.map((a, i) => ({
          binding: i + 1,
          visibility: GPUShaderStage.COMPUTE,
          buffer: { type: (a === 'read' ? 'read-only-storage' : 'storage') as GPUBufferBindingType },
        })),
      ];
      layout = this.device.createBindGroupLayout({ entries });
      this.layouts.set(key, layout);
    }
    return { key, layout };
  }

  private pipelineFor(key: string, code: () => string, accesses: readonly Access[]): { pipeline: GPUComputePipeline; layoutKey: string; layout: GPUBindGroupLayout } {
    const { key: layoutKey, layout } = this.layoutFor(accesses);
    const cacheKey = `${key}|${layoutKey}`;
    let hit = this.pipelines.get(cacheKey);
    if (!hit) {
      const module = this.device.createShaderModule({ code: code(), label: key });
      const pipeline = this.device.createComputePipeline({
        label: key,
        layout: this.device.createPipelineLayout({ bindGroupLayouts: [layout] }),
        compute: { module, entryPoint: 'main' },
      });
      hit = { pipeline, layoutKey };
      this.pipelines.set(cacheKey, hit);
      this.counters.pipelines++;
    }
    return { ...hit, layout };
  }

  private bindGroupFor(layoutKey: string, layout: GPUBindGroupLayout, buffers: readonly GpuStorage[]): GPUBindGroup {
    let key = layoutKey;
    for (const b of buffers) key += `:${b.buf.id}`;
    let bg = this.bindGroups.get(key);
    if (!bg) {
      if (this.bindGroups.size > 8192) this.bindGroups.clear();
      bg = this.device.createBindGroup({
        layout,
        entries: [
          { binding: 0, resource: { buffer: this.uniformBuffer, offset: 0, size: SLOT_BYTES } },
          ...buffers.map((b, i) => ({ binding: i + 1, resource: { buffer: b.buffer } })),
        ],
      });
      this.bindGroups.set(key, bg);
      this.counters.bindGroups++;
    }
    return bg;
  }

  private currentPass(): GPUComputePassEncoder {
    this.encoder ??= this.device.createCommandEncoder();
    this.pass ??= this.encoder.beginComputePass();
    return this.pass;
  }

  private endPass(): GPUCommandEncoder {
    this.encoder ??= this.device.createCommandEncoder();
    if (this.pass) {
      this.pass.end();
      this.pass = null;
    }
    return this.encoder;
  }

  /**
   * Records one dispatch of a declared kernel: its bindings and parameters are checked against
   * the declaration by name and packed straight into the batch's parameter slot.
   */
  run<V>(kernel: Kernel<V>, variant: V, call: KernelCall): void {
    this.checkAlive();
    const grid = this.grid(call.workgroups);
    if (grid[0] * grid[1] * grid[2] === 0) return;
    const layout = kernel.layout(variant);
    const names = layout.bindingNames;
    const storages: GpuStorage[] = new Array(names.length);
    for (let k = 0; k < names.length; k++) {
      const v = call.bindings[names[k]!];
      if (v === undefined) throw new Error(`kernel ${kernel.name}: binding ${names[k]} was not given`);
      const st = isTensorLike(v) ? v.storage : v;
      if (st.backend !== this) throw new Error(`kernel ${kernel.name}: binding ${names[k]} lives on ${st.backend.name}, not ${this.name}`);
      storages[k] = st as GpuStorage;
    }
    if (countKeys(call.bindings) !== names.length) {
      const extra = Object.keys(call.bindings).filter((n) => !names.includes(n));
      throw new Error(`kernel ${kernel.name}: unknown binding(s) ${extra.join(', ')} (declared: ${names.join(', ')})`);
    }
    let key = layout.key;
    let literals: Map<string, string> | null = null;
    if (call.bake && call.bake.length > 0) {
      literals = layout.literals(call.params, call.bake);
      for (const v of literals.values()) key += `|${v}`;
    }
    const code = (): string => {
      const src = kernel.source(variant);
      return src.directives + KERNEL_PRELUDE + (literals ? bakeInto(src.code, literals) : src.code);
    };
    const slot = this.encode(key, code, layout.accesses, storages, grid);
    layout.pack(call.params, this.arena, this.arenaI32, this.arenaF32, (slot * SLOT_BYTES) / 4);
  }

  /** Binds, records the dispatch and returns its parameter slot (the caller fills it). */
  private encode(key: string, code: () => string, accesses: readonly Access[], storages: readonly GpuStorage[], grid: [number, number, number]): number {
    if (this.slots >= ARENA_SLOTS || this.profiler?.full) this.flush();
    const { pipeline, layoutKey, layout } = this.pipelineFor(key, code, accesses);
    const bg = this.bindGroupFor(layoutKey, layout, storages);
    const slot = this.slots++;
    const pass = this.profiler ? this.profiler.beginPass(this.endPass(), key) : this.currentPass();
    pass.setPipeline(pipeline);
    pass.setBindGroup(0, bg, [slot * SLOT_BYTES]);
    pass.dispatchWorkgroups(grid[0], grid[1], grid[2]);
    if (this.profiler) pass.end();
    this.counters.dispatches++;
    return slot;
  }

  /** Splits a workgroup count over x/y(/z) so no dimension exceeds the 65535 limit. */
  grid(w: number | [number, number, number]): [number, number, number] {
    if (Array.isArray(w)) return w;
    if (w <= MAX_WG_PER_DIM) return [w, 1, 1];
    const y = Math.ceil(w / MAX_WG_PER_DIM);
    if (y <= MAX_WG_PER_DIM) return [Math.ceil(w / y), y, 1];
    const z = Math.ceil(y / MAX_WG_PER_DIM);
    return [MAX_WG_PER_DIM, Math.ceil(y / z), z];
  }

  /** Submits everything recorded so far. */
  flush(): void {
    if (!this.encoder) return;
    this.checkAlive();
    const enc = this.endPass();
    this.profiler?.resolve(enc);
    if (this.slots > 0) this.device.queue.writeBuffer(this.uniformBuffer, 0, this.arena.buffer, 0, this.slots * SLOT_BYTES);
    this.device.queue.submit([enc.finish()]);
    this.profiler?.afterSubmit();
    this.encoder = null;
    this.slots = 0;
    this.counters.submits++;
    this.pool.onSubmitted();
  }

  async read(storage: Storage, offset: number, size: number, dtype: DType): Promise<Float32Array | Int32Array> {
    this.checkAlive();
    const bytes = size * 4;
    if (size === 0) return dtype === 'i32' ? new Int32Array(0) : new Float32Array(0);
    const staging = this.device.createBuffer({ size: bytes, usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST });
    this.endPass().copyBufferToBuffer((storage as GpuStorage).buffer, offset * 4, staging, 0, bytes);
    this.flush();
    try {
      await politeWait(staging.mapAsync(GPUMapMode.READ), this.waitsPolitely());
    } catch (e) {
      this.checkAlive();
      throw new Error(`WebGPU readback failed: ${(e as Error).message}`);
    }
    this.checkAlive();
    const copy = staging.getMappedRange().slice(0);
    staging.unmap();
    staging.destroy();
    return dtype === 'i32' ? new Int32Array(copy) : new Float32Array(copy);
  }

  /**
   * Starts timing every dispatch on the GPU (needs the adapter's 'timestamp-query' feature, which
   * getDevice requests when available). Each dispatch then gets its own compute pass, so a
   * profiled step runs a little slower; stopProfiling() returns GPU time per kernel.
   */
  startProfiling(): void {
    if (this.profiler) throw new Error('startProfiling: already profiling (call stopProfiling() first)');
    if (!this.device.features.has('timestamp-query')) {
      throw new Error(`startProfiling: this device has no 'timestamp-query' feature (adapter ${this.name}; features: ${[...this.features].join(', ') || 'none'})`);
    }
    this.flush();
    this.profiler = new GpuProfiler(this.device);
  }

  /** Submits what is recorded, waits for its timestamps and returns the per-kernel GPU times. */
  async stopProfiling(): Promise<ProfileReport> {
    const p = this.profiler;
    if (!p) throw new Error('stopProfiling: not profiling (call startProfiling() first)');
    this.flush();
    this.profiler = null;
    try {
      return await politeWait(p.report(), this.waitsPolitely());
    } finally {
      p.destroy();
    }
  }

  /** Waits until all submitted work has finished. */
  async sync(): Promise<void> {
    this.flush();
    await politeWait(this.device.queue.onSubmittedWorkDone(), this.waitsPolitely());
    this.checkAlive();
  }

  destroy(): void {
    this.pool.trim();
    this.bindGroups.clear();
    this.uniformBuffer.destroy();
    this.device.destroy();
  }
}

/** Narrows a backend to the WebGPU one (for code outside kernels that needs its device). */
export function isWebGPU(b: Backend): b is WebGPUBackend {
  return b.kind === 'webgpu';
}

function isTensorLike(v: Tensor | Storage): v is Tensor {
  return (v as { __isTensor?: boolean }).__isTensor === true;
}
