/**
 * Test backends: the float64 CPU reference and the WebGPU device. With REQUIRE_WEBGPU=1 (CI) a
 * missing adapter fails the run instead of skipping GPU tests.
 */
import { getDevice } from '../../node/index.js';
import { cpuF64, WebGPUBackend, type Backend } from '../../engine/index.js';

let gpuPromise: Promise<WebGPUBackend | null> | null = null;

export function gpuBackend(): Promise<WebGPUBackend | null> {
  gpuPromise ??= getDevice({ setDefault: false, quiet: true }).then((b) => (b instanceof WebGPUBackend ? b : null));
  return gpuPromise;
}

/** The GPU backend; throws (never skips) when WebGPU is required and missing. */
export async function requireGpu(): Promise<WebGPUBackend | null> {
  const g = await gpuBackend();
  if (!g && process.env.REQUIRE_WEBGPU === '1') throw new Error('REQUIRE_WEBGPU=1 but no WebGPU adapter was found');
  return g;
}

export const ref: Backend = cpuF64;
