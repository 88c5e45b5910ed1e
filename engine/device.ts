/**
 * Device creation that works wherever a `GPU` object exists: `navigator.gpu` in browsers, or one
 * passed in (the Node entry passes Dawn's). Browser-safe: imports nothing from Node.
 */
import type { Backend } from './backend.js';
import { CpuBackend } from './cpu/backend.js';
import { setBackend } from './default-backend.js';
import { WebGPUBackend } from './webgpu/backend.js';

export interface DeviceOptions {
  /** A GPU object; defaults to navigator.gpu. */
  gpu?: GPU;
  /** Throw instead of falling back to the CPU backend when no adapter exists. */
  requireWebGPU?: boolean;
  powerPreference?: GPUPowerPreference;
  /** Make the result the default backend of creation ops (default true). */
  setDefault?: boolean;
  /** Silence the one-line fallback warning. */
  quiet?: boolean;
  /** Added to the no-adapter message: what to install (the Node entry names Linux's Vulkan driver). */
  noAdapterHint?: string;
}

/** Features requested when the adapter has them. */
export const USEFUL_FEATURES: GPUFeatureName[] = ['shader-f16', 'subgroups', 'timestamp-query'] as GPUFeatureName[];

/** Limits raised to the adapter's maximum (big buffers and workgroup memory for tiled kernels). */
const RAISED_LIMITS = [
  'maxStorageBufferBindingSize',
  'maxBufferSize',
  'maxComputeWorkgroupStorageSize',
  'maxComputeInvocationsPerWorkgroup',
  'maxComputeWorkgroupSizeX',
  'maxComputeWorkgroupSizeY',
  'maxStorageBuffersPerShaderStage',
] as const;

export async function getDevice(opts: DeviceOptions = {}): Promise<Backend> {
  const gpu: GPU | undefined = opts.gpu ?? (globalThis as { navigator?: { gpu?: GPU } }).navigator?.gpu;
  const fallback = (why: string): Backend => {
    if (opts.requireWebGPU) throw new Error(`WebGPU is required but ${why}`);
    if (!opts.quiet) console.warn(`[webgpu-tok] ${why}; using the CPU backend`);
    const b = new CpuBackend();
    if (opts.setDefault !== false) setBackend(b);
    return b;
  };
  if (!gpu) return fallback('no WebGPU implementation is available (navigator.gpu is undefined)');
  const adapter = await gpu.requestAdapter(opts.powerPreference ? { powerPreference: opts.powerPreference } : undefined);
  if (!adapter) return fallback(`no WebGPU adapter was found${opts.noAdapterHint ? ` (${opts.noAdapterHint})` : ''}`);
  const requiredFeatures = USEFUL_FEATURES.filter((f) => adapter.features.has(f));
  const requiredLimits: Record<string, number> = {};
  for (const name of RAISED_LIMITS) {
    const v = (adapter.limits as unknown as Record<string, number>)[name];
    if (typeof v === 'number') requiredLimits[name] = v;
  }
  const device = await adapter.requestDevice({ requiredFeatures, requiredLimits });
  const info = adapter.info;
  const backend = new WebGPUBackend(device, {
    vendor: info?.vendor ?? '',
    architecture: info?.architecture ?? '',
    device: info?.device ?? '',
    description: info?.description ?? '',
    features: [...device.features],
  });
  if (opts.setDefault !== false) setBackend(backend);
  return backend;
}
