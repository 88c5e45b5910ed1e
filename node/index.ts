/**
 * Node-only entry: WebGPU through Dawn (npm `webgpu`, loaded on demand) and, later, file I/O.
 * Nothing in engine/ or shaders/ may import this file.
 */
import { getDevice as getDeviceWith, type DeviceOptions } from '../engine/device.js';
import type { Backend } from '../engine/backend.js';

// Dawn crashes if its GPU object is garbage-collected while a device lives: keep it for the process.
let dawnGpu: GPU | null = null;

/** Dawn's GPU object, or null when the `webgpu` package cannot be loaded on this platform. */
export async function nodeGPU(): Promise<GPU | null> {
  if (dawnGpu) return dawnGpu;
  try {
    const mod = (await import('webgpu')) as { create: (flags: string[]) => GPU; globals: Record<string, unknown> };
    Object.assign(globalThis, mod.globals);
    // WEBGPU_TOK_DAWN_FLAGS: space-separated Dawn options passed to create(), e.g.
    // 'disable-dawn-features=timestamp_quantization' for exact profiler timestamps.
    dawnGpu = mod.create((process.env.WEBGPU_TOK_DAWN_FLAGS ?? '').split(/\s+/).filter(Boolean));
    return dawnGpu;
  } catch (e) {
    if (process.env.REQUIRE_WEBGPU === '1') throw new Error(`WebGPU is required but the 'webgpu' package failed to load: ${(e as Error).message}`);
    return null;
  }
}

/**
 * getDevice for Node: Dawn's adapter, or the CPU backend with a warning. WebGPU is required
 * (no fallback) when REQUIRE_WEBGPU=1 is set, as CI does.
 */
export async function getDevice(opts: DeviceOptions = {}): Promise<Backend> {
  const gpu = (await nodeGPU()) ?? undefined;
  const requireWebGPU = opts.requireWebGPU ?? process.env.REQUIRE_WEBGPU === '1';
  return getDeviceWith({ ...opts, ...(gpu ? { gpu } : {}), requireWebGPU });
}

export * from '../engine/index.js';
export * from './checkpoint.js';
export * from './data/index.js';
export * from './train.js';
