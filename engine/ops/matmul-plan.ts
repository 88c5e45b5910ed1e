/**
 * Which matmul kernel and tile a problem runs with: the plans, the built-in tile configs and the
 * default picker (by problem size and device). A device's picker can be replaced through its
 * tuning (`gpu.tune({ matmul: { picker } })`, engine/tuning.ts).
 */
import type { WebGPUBackend } from '../webgpu/backend.js';
import { tiledThreads, type MatmulTileConfig } from '../../shaders/matmul.js';

/** Options of the tiled kernel (see shaders/matmul.ts). */
export interface MatmulTiledOptions {
  /** Register prefetch of the next K tile (default true). */
  prefetch?: boolean;
  /** Two shared-memory buffers, one barrier per K tile (default false; needs 2x workgroup memory). */
  doubleBuffer?: boolean;
  /** One vec4 of padding per shared row (default false). */
  pad?: boolean;
  /** Grouped tile order for L2 reuse (default 1 = row-major tile order). */
  groupM?: number;
}

/** Which kernel runs a problem. */
export type MatmulPlan = (
  /** One output per thread, any strides (tiny products). */
  | { kernel: 'simple' }
  /** Workgroup-memory tiled kernel with block/micro tile sizes (GPUs). */
  | ({ kernel: 'tiled'; tile: MatmulTileConfig } & MatmulTiledOptions)
  /**
   * Register-blocked, no workgroup memory: TM rows x (WG*TN) cols per workgroup (CPU-like adapters).
   * `subgroups` (default true) uses subgroup shuffles for A when the device has the feature.
   */
  | { kernel: 'rows'; WG: number; TM: number; TN: number; subgroups?: boolean }
) & {
  /** Runs the summed batch dims of a summed product are split into (forced; default: sumSplits). */
  sumSplits?: number;
};

/** What the config picker may need to know about the device. */
export interface MatmulDeviceCaps {
  /** maxComputeWorkgroupStorageSize (bytes). */
  maxWorkgroupStorage: number;
  /** maxComputeInvocationsPerWorkgroup. */
  maxInvocations: number;
  /** A software rasterizer that runs invocations as CPU SIMD lanes (lavapipe/llvmpipe, SwiftShader). */
  software?: boolean;
}

export type MatmulConfigPicker = (M: number, N: number, K: number, batch: number, caps: MatmulDeviceCaps) => MatmulPlan;

/** Tile configs from large to small (all use 256 or fewer invocations). */
export const MATMUL_TILES = {
  /** 128x256 block, BK 16, 8x16 per thread, 256 threads, 24 KiB shared: 42.7 TFLOP/s at 4096 on an H100. */
  xl: { BM: 128, BN: 256, BK: 16, TM: 8, TN: 16 },
  /** 128x128 block, BK 16, 8x8 per thread, 256 threads, 16 KiB shared (32+ KiB double-buffered). */
  large: { BM: 128, BN: 128, BK: 16, TM: 8, TN: 8 },
  /** 128x64 block, BK 16, 8x8 per thread, 128 threads: twice the blocks of `large` for mid sizes. */
  wide: { BM: 128, BN: 64, BK: 16, TM: 8, TN: 8 },
  /** 64x64 block, BK 16, 4x4 per thread, 256 threads, 8 KiB shared. */
  medium: { BM: 64, BN: 64, BK: 16, TM: 4, TN: 4 },
  /** 32x32 block, BK 16, 4x4 per thread, 64 threads, 4 KiB shared. */
  small: { BM: 32, BN: 32, BK: 16, TM: 4, TN: 4 },
} as const satisfies Record<string, MatmulTileConfig>;

/** Workgroup memory of the tiled kernel in bytes. */
export function tiledSharedBytes(t: MatmulTileConfig, o: MatmulTiledOptions = {}): number {
  const pad = o.pad ? 4 : 0;
  return (o.doubleBuffer ? 2 : 1) * 4 * t.BK * (t.BM + pad + t.BN + pad);
}

/** Whether tile config `t` (with options `o`) fits the device's invocation and workgroup-memory limits. */
export function tileFits(t: MatmulTileConfig, caps: MatmulDeviceCaps, o: MatmulTiledOptions = {}): boolean {
  return tiledThreads(t) <= caps.maxInvocations && tiledSharedBytes(t, o) <= caps.maxWorkgroupStorage;
}

const DEFAULT_CAPS: MatmulDeviceCaps = { maxWorkgroupStorage: 16384, maxInvocations: 256 };

/**
 * Default choice of kernel and tile by problem size and device:
 *  - tiny products: the one-output-per-thread kernel;
 *  - software adapters (lavapipe): the register-blocked 'rows' kernel, 16 rows x 16 columns per
 *    invocation, 8 invocations (one SIMD subgroup) per workgroup: the best of the variants measured
 *    on llvmpipe (see shaders/matmul.ts: loads cost per instruction there, and workgroup memory and
 *    barriers only add cost);
 *  - GPUs: the largest block tile that still gives >= 128 workgroups (enough to fill a ~132-SM
 *    H100; 128x128 blocks from ~1.5k x 1.5k up), double-buffered when the workgroup memory allows,
 *    with grouped tile order; smaller tiles for small problems.
 */
export function pickMatmulConfig(M: number, N: number, K: number, batch = 1, caps: MatmulDeviceCaps = DEFAULT_CAPS): MatmulPlan {
  if (M * N * K * batch <= 16 * 16 * 16 || M * N * batch <= 64) return { kernel: 'simple' };
  if (caps.software) {
    // (K <= 2 too: the simple kernel ran a [144, 1] @ [32, 1, 1, 256] outer product 5x slower.)
    // A 1..4-row A (a 1-channel conv) gets a 4-row tile: a 16-row one repeats its rows' work.
    if (N >= 64 && M <= 4) return { kernel: 'rows', WG: 8, TM: 4, TN: 16 };
    if (N >= 64) return { kernel: 'rows', WG: 8, TM: 16, TN: 16 };
    // Narrow N (conv columns at small spatial sizes): 8 lanes x TN columns should not overshoot N
    // much; 16 rows per workgroup halves the B loads per FMA of 8 (measured on lavapipe at the
    // CNN tokenizer's conv shapes, bench/conv-small.ts: 1.3-3x faster than TM 8 x TN 4).
    return N <= 16 ? { kernel: 'rows', WG: 8, TM: 16, TN: 2 } : { kernel: 'rows', WG: 8, TM: 16, TN: 4 };
  }
  if (K <= 2) return { kernel: 'simple' };
  const blocks = (t: MatmulTileConfig) => Math.ceil(M / t.BM) * Math.ceil(N / t.BN) * batch;
  // Measured on an H100 (bench/matmul-gflops.ts, MM_PLAN sweeps): single-buffered tiles with
  // register prefetch, padded shared rows and grouped tile order beat double buffering (40.0 vs
  // 30.9 TFLOP/s at N=4096), and 8x16 outputs per thread beat 8x8 (42.7 vs 40.0) where the
  // workgroup memory allows; with few blocks, smaller tiles keep more of the 132 SMs busy.
  for (const [t, minBlocks] of [[MATMUL_TILES.xl, 128], [MATMUL_TILES.large, 256], [MATMUL_TILES.wide, 128], [MATMUL_TILES.medium, 0]] as const) {
    if (!tileFits(t, caps) || blocks(t) < minBlocks || K < 2 * t.BK) continue;
    for (const o of [{ prefetch: true, pad: true }, { prefetch: true }] as MatmulTiledOptions[]) {
      if (tileFits(t, caps, o)) return { kernel: 'tiled', tile: t, ...o, groupM: 16 };
    }
  }
  if (tileFits(MATMUL_TILES.small, caps)) return { kernel: 'tiled', tile: MATMUL_TILES.small, prefetch: true };
  return { kernel: 'simple' };
}

const caps = new WeakMap<WebGPUBackend, MatmulDeviceCaps>();

/** The device facts the config picker sees for a WebGPU backend (read once per device). */
export function matmulDeviceCaps(gpu: WebGPUBackend): MatmulDeviceCaps {
  let c = caps.get(gpu);
  if (!c) {
    const l = gpu.device.limits;
    c = Object.freeze({ maxWorkgroupStorage: l.maxComputeWorkgroupStorageSize, maxInvocations: l.maxComputeInvocationsPerWorkgroup, software: gpu.softwareAdapter !== null });
    caps.set(gpu, c);
  }
  return c;
}

/** Workgroups from which a summed product needs no split (as the tile picker's target for a ~132-SM GPU). */
const SUM_SPLIT_WORKGROUPS = 128;

/** Multiply-adds per workgroup up to which a summed product runs unsplit (one dispatch fewer). */
const SUM_SPLIT_MIN_MACS = 2 ** 22;

/**
 * How many runs the reduction over a product's summed batch dims (nSum products per output, e.g.
 * a conv weight gradient summed over images) is split into, each writing partial sums that a
 * second kernel adds (deterministic: fixed runs, added in order). Unsplit, the whole sum is one
 * GEMM with K * nSum terms per output in one dispatch, but only the output tiles' workgroups run.
 *  - Software adapters: never split (their few cores are busy with the output tiles alone).
 *  - GPUs: split when there are fewer than 128 workgroups and one workgroup's share exceeds 2^22
 *    multiply-adds (~8 MFLOP, tens of microseconds on one SM, above a dispatch's cost), into
 *    runs of >= 2^21 multiply-adds, up to 128 workgroups. Not yet timed on a GPU.
 */
export function sumSplits(M: number, N: number, K: number, nBatch: number, nSum: number, [bm, bn]: [number, number], caps: MatmulDeviceCaps): number {
  if (caps.software || nSum <= 1) return 1;
  const workgroups = Math.ceil(M / bm) * Math.ceil(N / bn) * nBatch;
  const perWorkgroup = Math.min(M, bm) * Math.min(N, bn) * K * nSum;
  if (workgroups >= SUM_SPLIT_WORKGROUPS || perWorkgroup <= SUM_SPLIT_MIN_MACS) return 1;
  return Math.max(1, Math.min(nSum, Math.ceil(SUM_SPLIT_WORKGROUPS / workgroups), Math.floor(perWorkgroup / (SUM_SPLIT_MIN_MACS / 2))));
}
