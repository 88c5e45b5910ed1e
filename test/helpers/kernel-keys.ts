/** The kernel keys (kernel.layout(variant).key) of the dispatches `f` records on `gpu`, in order. */
import type { WebGPUBackend } from '../../engine/index.js';

export function kernelKeysOf(gpu: WebGPUBackend, f: () => void): string[] {
  const keys: string[] = [];
  const run = gpu.run.bind(gpu);
  gpu.run = (kernel, variant, call) => (keys.push(kernel.layout(variant).key), run(kernel, variant, call));
  try {
    f();
  } finally {
    gpu.run = run;
  }
  return keys;
}
