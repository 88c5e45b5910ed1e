/** Device creation, CPU fallback, device loss, and dispatch-grid splitting. */
import { describe, expect, it, vi } from 'vitest';
import * as E from '../engine/index.js';
import { getDevice, noAdapterHint } from '../node/index.js';
import { requireGpu } from './helpers/backends.js';

const gpu = await requireGpu();

describe('getDevice', () => {
  it('falls back to the CPU backend with a one-line warning when no adapter exists', async () => {
    const warn = vi.spyOn(console, 'warn').mockImplementation(() => {});
    const noAdapter = { requestAdapter: async () => null } as unknown as GPU;
    const b = await E.getDevice({ gpu: noAdapter, setDefault: false });
    expect(b.kind).toBe('cpu');
    expect(warn).toHaveBeenCalledTimes(1);
    expect(String(warn.mock.calls[0]![0])).toMatch(/no WebGPU adapter was found; using the CPU backend/);
    warn.mockRestore();
  });

  it('refuses to fall back when WebGPU is required', async () => {
    const noAdapter = { requestAdapter: async () => null } as unknown as GPU;
    await expect(E.getDevice({ gpu: noAdapter, requireWebGPU: true })).rejects.toThrow(/WebGPU is required but no WebGPU adapter was found/);
  });

  it.runIf(process.platform === 'linux')('names the Vulkan driver package to install on Linux when Dawn finds no adapter', async () => {
    const warn = vi.spyOn(console, 'warn').mockImplementation(() => {});
    const noAdapter = { requestAdapter: async () => null } as unknown as GPU;
    const b = await getDevice({ gpu: noAdapter, setDefault: false, requireWebGPU: false });
    expect(b.kind).toBe('cpu');
    expect(warn).toHaveBeenCalledTimes(1);
    expect(String(warn.mock.calls[0]![0])).toMatch(/^\[webgpu-tok\] no WebGPU adapter was found \(.*apt-get install mesa-vulkan-drivers libvulkan1\); using the CPU backend$/);
    warn.mockRestore();
    await expect(getDevice({ gpu: noAdapter, requireWebGPU: true })).rejects.toThrow(/WebGPU is required but no WebGPU adapter was found \(.*mesa-vulkan-drivers/);
  });

  it('gives the Vulkan hint only on Linux (Dawn uses Metal on macOS, Direct3D 12 on Windows)', () => {
    expect(noAdapterHint('linux')).toMatch(/mesa-vulkan-drivers/);
    expect(noAdapterHint('darwin')).toBeUndefined();
    expect(noAdapterHint('win32')).toBeUndefined();
  });

  it.runIf(gpu)('reports the adapter and requests its useful features', () => {
    expect(gpu!.name).toMatch(/^webgpu \(/);
    for (const f of ['shader-f16', 'subgroups', 'timestamp-query']) {
      // Requested whenever the adapter offers it (lavapipe offers all three).
      if (gpu!.info.features.includes(f)) expect(gpu!.features.has(f)).toBe(true);
    }
    expect(gpu!.info.features.length).toBeGreaterThan(0);
  });
});

describe.runIf(gpu)('device loss', () => {
  it('surfaces as a clear error on the next op and readback, not a hang', async () => {
    const b = (await getDevice({ setDefault: false, quiet: true })) as E.WebGPUBackend;
    const x = E.ones([8], { backend: b });
    await x.sum().item();
    b.device.destroy();
    await new Promise((r) => setTimeout(r, 50));
    expect(() => x.add(1)).toThrow(/WebGPU device lost/);
    await expect(x.toArray()).rejects.toThrow(/device lost/);
  });
});

describe.runIf(gpu)('dispatch grid', () => {
  it('splits workgroup counts above 65535 over 2D/3D grids that cover them', () => {
    for (const w of [1, 65535, 65536, 1_000_000, 65535 * 65535 + 7]) {
      const [x, y, z] = gpu!.grid(w);
      expect(Math.max(x, y, z)).toBeLessThanOrEqual(65535);
      expect(x * y * z).toBeGreaterThanOrEqual(w);
      expect(x * y * z - w).toBeLessThan(x * Math.max(y, 1));
    }
  });
});
