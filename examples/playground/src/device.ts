/**
 * The page's device: WebGPU when the browser has it (navigator.gpu and an adapter), else the CPU
 * backend (float32, the same ops in JavaScript: much slower, but every panel works); the user may
 * force the CPU. The WebGPU device is made once and reused when switching back.
 */
import * as E from '../../../engine/index.js';

export type DeviceChoice = 'auto' | 'cpu';

export interface PickedDevice {
  backend: E.Backend;
  /** What the page says: which backend runs, and why when it is the CPU. */
  label: string;
}

let webgpu: Promise<E.Backend> | null = null;

export async function pickDevice(choice: DeviceChoice): Promise<PickedDevice> {
  const nav = (globalThis as { navigator?: { gpu?: GPU } }).navigator;
  if (choice === 'cpu') return useCpu('CPU backend (chosen; WebGPU is not used)');
  if (!nav?.gpu) return useCpu('CPU backend: this browser has no WebGPU (navigator.gpu is undefined)');
  webgpu ??= E.getDevice({ setDefault: false, quiet: true });
  const b = await webgpu;
  if (!(b instanceof E.WebGPUBackend)) {
    webgpu = null;
    return useCpu('CPU backend: this browser exposes WebGPU but returned no adapter');
  }
  E.setBackend(b);
  const info = b.info;
  const what = [info.vendor, info.architecture, info.description].filter(Boolean).join(' ') || 'adapter';
  return { backend: b, label: `WebGPU (${what})` };
}

function useCpu(label: string): PickedDevice {
  const b = new E.CpuBackend({ precision: 'f32' });
  E.setBackend(b);
  return { backend: b, label };
}
