/**
 * Node-only entry: WebGPU through Dawn (npm `webgpu`, an optional peer dependency loaded on
 * demand) and file I/O. Nothing in engine/ or shaders/ may import this file.
 */
import { getDevice as getDeviceWith, type DeviceOptions } from '../engine/device.js';
import type { Backend } from '../engine/backend.js';
import { isPackageNotFound, MissingPackageError } from './missing-package.js';

// Dawn crashes if its GPU object is garbage-collected while a device lives: keep it for the process.
let dawnGpu: GPU | null = null;

/** Dawn's GPU object, or the error that says why it cannot be had on this machine. */
async function loadDawn(): Promise<GPU | Error> {
  if (dawnGpu) return dawnGpu;
  try {
    const mod = (await import('webgpu')) as { create: (flags: string[]) => GPU; globals: Record<string, unknown> };
    Object.assign(globalThis, mod.globals);
    // WEBGPU_TOK_DAWN_FLAGS: space-separated Dawn options passed to create(), e.g.
    // 'disable-dawn-features=timestamp_quantization' for exact profiler timestamps.
    dawnGpu = mod.create((process.env.WEBGPU_TOK_DAWN_FLAGS ?? '').split(/\s+/).filter(Boolean));
    return dawnGpu;
  } catch (e) {
    if (isPackageNotFound(e, 'webgpu')) return new MissingPackageError('webgpu', "the 'webgpu' npm package (Dawn, WebGPU for Node) is not installed: npm install webgpu");
    return new Error(`the 'webgpu' package failed to load: ${(e as Error).message}`);
  }
}

/**
 * What to install when Dawn finds no adapter. On Linux Dawn drives the GPU through Vulkan, and a
 * machine without a GPU needs Mesa's software driver (lavapipe); on macOS (Metal) and Windows
 * (Direct3D 12) the system provides the API.
 */
export function noAdapterHint(platform: string = process.platform): string | undefined {
  if (platform !== 'linux') return undefined;
  return 'Dawn needs a Vulkan driver; on Debian/Ubuntu: sudo apt-get install mesa-vulkan-drivers libvulkan1';
}

/** Dawn's GPU object, or null when it cannot be loaded (an error instead when REQUIRE_WEBGPU=1). */
export async function nodeGPU(): Promise<GPU | null> {
  const dawn = await loadDawn();
  if (!(dawn instanceof Error)) return dawn;
  if (process.env.REQUIRE_WEBGPU === '1') throw requiredError(dawn);
  return null;
}

function requiredError(why: Error): Error {
  const message = `WebGPU is required but ${why.message}`;
  return why instanceof MissingPackageError ? new MissingPackageError(why.pkg, message) : new Error(message);
}

/**
 * getDevice for Node: Dawn's adapter (or opts.gpu), else the CPU backend with a one-line warning
 * that says what is missing. WebGPU is required (no fallback) when REQUIRE_WEBGPU=1 is set, as CI does.
 */
export async function getDevice(opts: DeviceOptions = {}): Promise<Backend> {
  const requireWebGPU = opts.requireWebGPU ?? process.env.REQUIRE_WEBGPU === '1';
  const gpu = opts.gpu ?? (await loadDawn());
  const hint = opts.noAdapterHint ?? noAdapterHint();
  if (gpu instanceof Error) {
    if (requireWebGPU) throw requiredError(gpu);
    if (!opts.quiet) console.warn(`[webgpu-tok] ${gpu.message}; using the CPU backend`);
    return getDeviceWith({ ...opts, requireWebGPU: false, quiet: true });
  }
  return getDeviceWith({ ...opts, gpu, requireWebGPU, ...(hint ? { noAdapterHint: hint } : {}) });
}

export * from '../engine/index.js';
export { MissingPackageError } from './missing-package.js';
export * from './checkpoint.js';
export * from './data/index.js';
export * from './train.js';
