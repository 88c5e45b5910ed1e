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
import { bakeInto, countKeys, PARAM_SLOT_BYTES, type Access, type Kernel, type KernelLayout } from '../kernel.js';
import type { Tensor } from '../tensor.js';
import { BufferPool, type PooledBuffer } from './pool.js';
import { politeWait } from './host-wait.js';
import { StepTape, type DynamicParams, type TapeEvent } from './step-tape.js';
import { applyTuning, defaultTuning, type DeviceTuning, type TuningOverrides } from '../tuning.js';

const SLOT_BYTES = PARAM_SLOT_BYTES;
const SLOT_WORDS = SLOT_BYTES / 4;
/** Bind groups kept before the cache starts over (each holds its buffers alive in Dawn). */
const MAX_BIND_GROUPS = 8192;
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

/** Bind groups of one bind group layout, by the ids of the bound buffers in binding order. */
interface BindGroupNode {
  readonly next: Map<number, BindGroupNode>;
  group: GPUBindGroup | null;
}
function bindGroupNode(): BindGroupNode {
  return { next: new Map(), group: null };
}

interface GroupLayout {
  readonly layout: GPUBindGroupLayout;
  groups: BindGroupNode;
}

/** The pipelines of one kernel variant: without baked parameters, and per baked literal values. */
interface VariantPipelines {
  readonly group: GroupLayout;
  plain: GPUComputePipeline | null;
  baked: Map<string, GPUComputePipeline> | null;
}

/** One call of a declared kernel (engine/kernel.ts): values by name, never by position. */
export interface KernelCall {
  params: Readonly<Record<string, number | readonly number[]>>;
  /** A tensor (its whole storage is bound) or raw storage per declared binding. */
  bindings: Readonly<Record<string, Tensor | Storage>>;
  /** Total workgroups (split into a 2D/3D grid when needed) or an explicit grid. */
  workgroups: number | [number, number, number];
  /** Parameters compiled into the shader as literals (their values join the pipeline key). */
  bake?: readonly string[];
  /**
   * Parameters that change from step to step (a step count, an RNG counter): called once when the
   * dispatch is recorded, its values added to `params`, and again at each replay of a captured
   * step (engine/capture.ts), so they are never baked into the replayed step.
   */
  dynamic?: DynamicParams;
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
  /** The pipeline last set on `pass` (a pass keeps it across dispatches). */
  private passPipeline: GPUComputePipeline | null = null;
  private readonly arena = new Uint32Array((ARENA_SLOTS * SLOT_BYTES) / 4);
  private readonly arenaI32 = new Int32Array(this.arena.buffer);
  private readonly arenaF32 = new Float32Array(this.arena.buffer);
  private slots = 0;
  private readonly uniformBuffer: GPUBuffer;
  private readonly pipelines = new Map<KernelLayout, VariantPipelines>();
  private readonly groupLayouts = new Map<string, GroupLayout>();
  private bindGroupCount = 0;
  /** setBindGroup copies the offsets at once, so one array serves every dispatch. */
  private readonly dynamicOffset = [0];
  private lostMessage: string | null = null;
  private profiler: GpuProfiler | null = null;
  private pendingError: string | null = null;
  /** The tape of the step being recorded (engine/capture.ts), or null. */
  private recording: StepTape | null = null;
  /** Per replayed tape: its uploads' data in one buffer, copied from in order instead of written (no submit per upload). */
  private readonly tapeUploads = new WeakMap<StepTape, { buffer: GPUBuffer; offsets: number[] }>();

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
    const buf = this.pool.acquire(bytes, false);
    this.recording?.acquired(buf);
    return new GpuStorage(this, buf, size * 4);
  }

  fromArray(data: ArrayLike<number>, dtype: DType): GpuStorage {
    this.checkAlive();
    const n = data.length;
    const storage = new GpuStorage(this, this.pool.acquire(Math.max(n, 1) * 4, true), n * 4);
    this.recording?.acquired(storage.buf);
    if (n > 0) {
      const arr = dtype === 'i32' ? Int32Array.from(data, (v) => Math.trunc(v)) : data instanceof Float32Array ? data : Float32Array.from(data);
      this.recordWrite(storage.buf, 0, arr);
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
    if (data.length > 0) {
      this.recordWrite(s.buf, offset * 4, data);
      this.device.queue.writeBuffer(s.buffer, offset * 4, data.buffer, data.byteOffset, data.byteLength);
    }
  }

  private recordWrite(buf: PooledBuffer, byteOffset: number, data: Float32Array | Int32Array): void {
    if (this.recording) this.recording.events.push({ kind: 'write', buf, role: this.recording.role(buf), byteOffset, data: new Uint8Array(data.buffer.slice(data.byteOffset, data.byteOffset + data.byteLength)) });
  }

  free(storage: Storage): void {
    this.pool.release((storage as GpuStorage).buf);
  }

  /** Device memory no tensor holds: the pool's free buffers and a captured step's working buffers. */
  pooledBytes(): number {
    return this.pool.pooledBytes() + this.pool.pinnedBytes();
  }

  capturedBytes(): number {
    return this.pool.pinnedBytes();
  }

  // ---- execution ----

  /** The bind group layout (and its bind groups) of a binding-access list, made once per list. */
  private groupLayoutFor(accesses: readonly Access[]): GroupLayout {
    const key = accesses.map((a) => (a === 'read' ? 'r' : 'w')).join('');
    let g = this.groupLayouts.get(key);
    if (!g) {
      const entries: GPUBindGroupLayoutEntry[] = [
        { binding: 0, visibility: GPUShaderStage.COMPUTE, buffer: { type: 'uniform', hasDynamicOffset: true, minBindingSize: SLOT_BYTES } },
        ...accesses.map((a, i) => ({
          binding: i + 1,
          visibility: GPUShaderStage.COMPUTE,
          buffer: { type: (a === 'read' ? 'read-only-storage' : 'storage') as GPUBufferBindingType },
        })),
      ];
      g = { layout: this.device.createBindGroupLayout({ entries }), groups: bindGroupNode() };
      this.groupLayouts.set(key, g);
    }
    return g;
  }

  /** The pipelines of one kernel variant (made on first use; baked ones per literal values). */
  private pipelinesOf(layout: KernelLayout): VariantPipelines {
    let p = this.pipelines.get(layout);
    if (!p) {
      p = { group: this.groupLayoutFor(layout.accesses), plain: null, baked: null };
      this.pipelines.set(layout, p);
    }
    return p;
  }

  private createPipeline(label: string, code: string, group: GroupLayout): GPUComputePipeline {
    const module = this.device.createShaderModule({ code, label });
    const pipeline = this.device.createComputePipeline({
      label,
      layout: this.device.createPipelineLayout({ bindGroupLayouts: [group.layout] }),
      compute: { module, entryPoint: 'main' },
    });
    this.counters.pipelines++;
    return pipeline;
  }

  /** The storage a declared binding names, checked (a missing binding or another backend's). */
  private bound(kernel: string, name: string, v: Tensor | Storage | undefined): GpuStorage {
    if (v === undefined) throw new Error(`kernel ${kernel}: binding ${name} was not given`);
    const st = isTensorLike(v) ? v.storage : v;
    if (st.backend !== this) throw new Error(`kernel ${kernel}: binding ${name} lives on ${st.backend.name}, not ${this.name}`);
    return st as GpuStorage;
  }

  private createBindGroup(kernel: string, layout: KernelLayout, group: GroupLayout, bindings: KernelCall['bindings']): GPUBindGroup {
    const names = layout.bindingNames;
    const entries: GPUBindGroupEntry[] = [{ binding: 0, resource: { buffer: this.uniformBuffer, offset: 0, size: SLOT_BYTES } }];
    for (let k = 0; k < names.length; k++) entries.push({ binding: k + 1, resource: { buffer: this.bound(kernel, names[k]!, bindings[names[k]!]).buffer } });
    this.counters.bindGroups++;
    if (++this.bindGroupCount > MAX_BIND_GROUPS) {
      // Bind groups of buffers long freed would otherwise pile up: start over.
      for (const g of this.groupLayouts.values()) g.groups = bindGroupNode();
      this.bindGroupCount = 1;
    }
    return this.device.createBindGroup({ layout: group.layout, entries });
  }

  private currentPass(): GPUComputePassEncoder {
    this.encoder ??= this.device.createCommandEncoder();
    if (!this.pass) {
      this.pass = this.encoder.beginComputePass();
      this.passPipeline = null;
    }
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
   * the declaration by name and packed straight into the batch's parameter slot. Runs for every
   * dispatch of a step, so nothing here allocates once the pipeline and bind group exist: the
   * pipeline hangs off the kernel variant's layout, the bind group off a tree keyed by buffer ids.
   */
  run<V>(kernel: Kernel<V>, variant: V, call: KernelCall): void {
    this.checkAlive();
    const w = call.workgroups;
    let gx: number;
    let gy = 1;
    let gz = 1;
    if (typeof w === 'number') {
      gx = w;
      if (w > MAX_WG_PER_DIM) {
        const g = this.grid(w);
        gx = g[0];
        gy = g[1];
        gz = g[2];
      }
    } else {
      gx = w[0];
      gy = w[1];
      gz = w[2];
    }
    if (gx * gy * gz === 0) return;
    const layout = kernel.layout(variant);
    const set = this.pipelinesOf(layout);
    // The bind group: walk the tree by the bound buffers' ids.
    const names = layout.bindingNames;
    const bindings = call.bindings;
    let node = set.group.groups;
    for (let k = 0; k < names.length; k++) {
      const id = this.bound(kernel.name, names[k]!, bindings[names[k]!]).buf.id;
      let next = node.next.get(id);
      if (next === undefined) node.next.set(id, (next = bindGroupNode()));
      node = next;
    }
    if (countKeys(bindings) !== names.length) {
      const extra = Object.keys(bindings).filter((n) => !names.includes(n));
      throw new Error(`kernel ${kernel.name}: unknown binding(s) ${extra.join(', ')} (declared: ${names.join(', ')})`);
    }
    // The pipeline: one per variant, or per baked literal values.
    const params = call.dynamic ? Object.assign({}, call.params, call.dynamic()) : call.params;
    let pipeline: GPUComputePipeline;
    let bakedKey = '';
    if (call.bake && call.bake.length > 0) {
      if (call.dynamic) throw new Error(`kernel ${kernel.name}: dynamic parameters cannot be baked`);
      bakedKey = layout.bakedKey(params, call.bake);
      set.baked ??= new Map();
      let p = set.baked.get(bakedKey);
      if (!p) {
        const src = kernel.source(variant);
        const code = src.directives + KERNEL_PRELUDE + bakeInto(src.code, layout.literals(params, call.bake));
        set.baked.set(bakedKey, (p = this.createPipeline(layout.key + bakedKey, code, set.group)));
      }
      pipeline = p;
    } else {
      if (!set.plain) {
        const src = kernel.source(variant);
        set.plain = this.createPipeline(layout.key, src.directives + KERNEL_PRELUDE + src.code, set.group);
      }
      pipeline = set.plain;
    }
    if (this.slots >= ARENA_SLOTS || this.profiler?.full) this.flush();
    const bg = node.group ?? (node.group = this.createBindGroup(kernel.name, layout, set.group, bindings));
    const slot = this.slots;
    if (this.recording) this.arena.fill(0, slot * SLOT_WORDS, (slot + 1) * SLOT_WORDS);
    layout.pack(params, this.arena, this.arenaI32, this.arenaF32, slot * SLOT_WORDS);
    this.slots++;
    if (this.recording) {
      const bufs = names.map((n) => this.bound(kernel.name, n, bindings[n]).buf);
      const words = this.arena.slice(slot * SLOT_WORDS, (slot + 1) * SLOT_WORDS);
      const roles = bufs.map((b) => this.recording!.role(b));
      this.recording.events.push({ kind: 'dispatch', layout, pipeline, group: bg, bufs, roles, words, params: call.dynamic ? call.params : null, dynamic: call.dynamic ?? null, grid: [gx, gy, gz] });
    }
    if (this.profiler) {
      const pass = this.profiler.beginPass(this.endPass(), layout.key + bakedKey);
      pass.setPipeline(pipeline);
      this.dynamicOffset[0] = slot * SLOT_BYTES;
      pass.setBindGroup(0, bg, this.dynamicOffset);
      pass.dispatchWorkgroups(gx, gy, gz);
      pass.end();
      this.counters.dispatches++;
    } else this.encode(pipeline, bg, slot, gx, gy, gz);
  }

  /** One dispatch into the shared pass (its pipeline set only on a change); eager and replayed alike. */
  private encode(pipeline: GPUComputePipeline, group: GPUBindGroup, slot: number, gx: number, gy: number, gz: number): void {
    const pass = this.pass ?? this.currentPass();
    if (pipeline !== this.passPipeline) {
      pass.setPipeline(pipeline);
      this.passPipeline = pipeline;
    }
    this.dynamicOffset[0] = slot * SLOT_BYTES;
    pass.setBindGroup(0, group, this.dynamicOffset);
    pass.dispatchWorkgroups(gx, gy, gz);
    this.counters.dispatches++;
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
    if (this.recording) this.recording.invalid ??= 'the step reads data back from the device (a readback cannot be replayed)';
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

  // ---- captured steps (engine/capture.ts) ----

  /** Starts recording a step's commands into a tape; `inputs` are the step's argument buffers. */
  beginRecording(inputs: readonly Storage[]): StepTape {
    if (this.recording) throw new Error('beginRecording: a step is already being recorded (captured steps do not nest)');
    this.recording = new StepTape(inputs.map((s) => (s as GpuStorage).buf));
    return this.recording;
  }

  /** Stops recording; returns the tape. */
  endRecording(): StepTape {
    const t = this.recording;
    if (!t) throw new Error('endRecording: no step is being recorded');
    this.recording = null;
    return t;
  }

  get isRecording(): boolean {
    return this.recording !== null;
  }

  /** Whether dispatches are being timed (startProfiling): replays wait until it stops. */
  get isProfiling(): boolean {
    return this.profiler !== null;
  }

  /** Runs a host-side update now and, when a step is being recorded, at the same point of each replay. */
  effect(fn: () => void): void {
    fn();
    this.recording?.events.push({ kind: 'effect', fn });
  }

  /**
   * Sends a recorded step again: copies each new input into the buffer the step read it from,
   * then the tape's dispatches (parameter words as recorded, dynamic ones recomputed), writes and
   * host effects in order. No op, tensor or bind group is made.
   */
  replay(tape: StepTape, inputs: readonly { from: Storage; fromByte: number; to: Storage; toByte: number; bytes: number }[]): void {
    this.checkAlive();
    if (this.profiler) throw new Error('replay: not while profiling (each dispatch is timed in a pass of its own)');
    if (this.recording) throw new Error('replay: not while a step is being recorded');
    for (const c of inputs) if (c.bytes > 0) this.endPass().copyBufferToBuffer((c.from as GpuStorage).buffer, c.fromByte, (c.to as GpuStorage).buffer, c.toByte, c.bytes);
    const events: readonly TapeEvent[] = tape.events;
    let uploads: { buffer: GPUBuffer; offsets: number[] } | undefined;
    for (let i = 0; i < events.length; i++) {
      const e = events[i]!;
      if (e.kind === 'dispatch') {
        if (this.slots >= ARENA_SLOTS) this.flush();
        const slot = this.slots++;
        if (e.dynamic) e.layout.pack(Object.assign({}, e.params!, e.dynamic()), this.arena, this.arenaI32, this.arenaF32, slot * SLOT_WORDS);
        else this.arena.set(e.words, slot * SLOT_WORDS);
        this.encode(e.pipeline, e.group, slot, e.grid[0], e.grid[1], e.grid[2]);
      } else if (e.kind === 'write') {
        // A copy encoded here runs in order with the dispatches around it, as the upload did.
        uploads ??= this.uploadsOf(tape);
        this.endPass().copyBufferToBuffer(uploads.buffer, uploads.offsets[i]!, e.buf.buffer, e.byteOffset, e.data.byteLength);
      } else e.fn();
    }
  }

  /** The tape's upload data in one buffer (made on its first replay), with each write event's offset. */
  private uploadsOf(tape: StepTape): { buffer: GPUBuffer; offsets: number[] } {
    let u = this.tapeUploads.get(tape);
    if (u) return u;
    const offsets: number[] = [];
    let size = 0;
    tape.events.forEach((e, i) => {
      if (e.kind !== 'write') return;
      offsets[i] = size;
      size += Math.ceil(e.data.byteLength / 4) * 4;
    });
    const buffer = this.device.createBuffer({ size: Math.max(size, 4), usage: GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST, mappedAtCreation: true });
    const bytes = new Uint8Array(buffer.getMappedRange());
    tape.events.forEach((e, i) => {
      if (e.kind === 'write') bytes.set(e.data, offsets[i]!);
    });
    buffer.unmap();
    this.tapeUploads.set(tape, (u = { buffer, offsets }));
    return u;
  }

  /** Frees what replaying a tape made (its upload buffer). */
  releaseTape(tape: StepTape): void {
    const u = this.tapeUploads.get(tape);
    if (!u) return;
    this.flush(); // commands recorded but not submitted may still copy from it
    u.buffer.destroy();
    this.tapeUploads.delete(tape);
  }

  /** Copies `bytes` bytes between storages, in order with the recorded commands. */
  copy(from: Storage, fromByte: number, to: Storage, toByte: number, bytes: number): void {
    this.checkAlive();
    if (bytes > 0) this.endPass().copyBufferToBuffer((from as GpuStorage).buffer, fromByte, (to as GpuStorage).buffer, toByte, bytes);
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
    this.groupLayouts.clear();
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
