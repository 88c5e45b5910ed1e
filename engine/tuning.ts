/**
 * Device tuning: the choices kernels make per device (matmul tiles, convolution kernels, memory
 * limits) live on the backend instance, so two devices in one process never share them; the CPU
 * backends carry the same fields (a column limit or a forced conv route lets the float64
 * reference check those paths). Every
 * field's null means "decided from the adapter" (see the op that reads it); tests and benchmarks
 * override fields with `backend.tune({...})`, which returns the function that restores them.
 */
import type { MatmulConfigPicker } from './ops/matmul.js';
import type { ImplicitPlanOption } from './ops/conv.js';

export interface MatmulTuning {
  /** Chooses the kernel and tile for an [M, K] x [K, N] product (batch `batch`); null = the built-in picker. */
  picker: MatmulConfigPicker | null;
}

export interface ConvTuning {
  /** Bake the geometry into the unfold/fold WGSL (constant divisors); null = on software adapters. */
  bakeGeometry: boolean | null;
  /** groups = 1 convolutions as implicit GEMM (no column tensor); null = where measured faster. */
  implicit: boolean | null;
  /** The strided input gradient as one implicit kernel (true) or fold(w^T @ gy) (false); null = default. */
  implicitStridedDx: boolean | null;
  /** Kernel family or fixed block shapes of the implicit ops; null = by adapter. */
  implicitPlan: ImplicitPlanOption | null;
  /** Largest column buffer (elements) one conv may materialize; null = the storage binding limit. */
  maxColumnElements: number | null;
  /** 3x3 stride-1 implicit ops by Winograd; null = on software adapters for large products. */
  winograd: boolean | null;
  /** Output tile m of Winograd F(m x m, 3x3), 2 or 4; null = the default (see engine/ops/conv-plan.ts). */
  winogradTile: 2 | 4 | null;
}

export interface VqTuning {
  /** The nearest-code search splits the codebook until about this many workgroups run. */
  argminTargetWorkgroups: number;
  /** Let the top-k selection kernel read code rows as vec4 when d and the offsets allow. */
  vec4: boolean;
}

export interface NormTuning {
  /**
   * Invocations per workgroup of the row-norm kernels (a power of two, 8..256); null = by adapter
   * (256 on GPUs; 8 on software adapters, one SIMD group: see engine/ops/norm.ts).
   */
  workgroup: number | null;
  /**
   * The backward as one dispatch (dx with the weight's and bias's gradients, a workgroup per group
   * of rows sharing affine indices) instead of two; null = where the groups give enough workgroups
   * or the rows are few (see engine/ops/norm.ts).
   */
  fusedBackward: boolean | null;
  /**
   * In the one-dispatch backward of a group norm walked channel by channel, the weight's and
   * bias's sums kept per channel in registers during the first pass (bit-identical to a third pass
   * over g and x); null = up to 8 channels per group.
   */
  channelSums: boolean | null;
  /**
   * Rows of up to 128 elements each normalized by one invocation (statistics folded sequentially,
   * no shared-memory tree); null = on software adapters when `workgroup` is not forced
   * (engine/ops/norm.ts).
   */
  lanePerRow: boolean | null;
}

export interface ReduceTuning {
  /**
   * Invocations per workgroup of the reduction and softmax kernels (a power of two, 8..256), and so
   * the most threads on one row; null = by adapter and row: 256 on GPUs; on software adapters as
   * few as fold a contiguous row in one pass, from 8 (one SIMD group: there each tree step's
   * barrier costs more than a longer sequential fold; engine/ops/reduce.ts rowReduceWorkgroup).
   */
  workgroup: number | null;
  /**
   * Contiguous rows of up to 64 elements each folded by one invocation, sequentially, in one pass,
   * with no shared-memory tree; null = on software adapters when `workgroup` is not forced
   * (engine/ops/reduce.ts lanePerRow).
   */
  lanePerRow: boolean | null;
}

export interface HostTuning {
  /**
   * Slow down the Node binding's polling while waiting for the device (engine/webgpu/host-wait.ts);
   * null = on software adapters, whose compute threads share the CPU with the polling thread.
   */
  politeWait: boolean | null;
}

export interface DeviceTuning {
  matmul: MatmulTuning;
  conv: ConvTuning;
  vq: VqTuning;
  norm: NormTuning;
  reduce: ReduceTuning;
  host: HostTuning;
}

export type TuningOverrides = { [K in keyof DeviceTuning]?: Partial<DeviceTuning[K]> };

export function defaultTuning(): DeviceTuning {
  return {
    matmul: { picker: null },
    conv: { bakeGeometry: null, implicit: null, implicitStridedDx: null, implicitPlan: null, maxColumnElements: null, winograd: null, winogradTile: null },
    vq: { argminTargetWorkgroups: 512, vec4: true },
    norm: { workgroup: null, fusedBackward: null, channelSums: null, lanePerRow: null },
    reduce: { workgroup: null, lanePerRow: null },
    host: { politeWait: null },
  };
}

/** Applies `overrides` to `tuning` in place; returns the function that puts the old values back. */
export function applyTuning(tuning: DeviceTuning, overrides: TuningOverrides): () => void {
  const saved: { section: Record<string, unknown>; key: string; value: unknown }[] = [];
  for (const [name, part] of Object.entries(overrides)) {
    const section = (tuning as unknown as Record<string, Record<string, unknown>>)[name];
    if (!section) throw new Error(`tune: unknown section '${name}' (known: ${Object.keys(tuning).join(', ')})`);
    for (const [key, value] of Object.entries(part ?? {})) {
      if (!(key in section)) throw new Error(`tune: unknown field ${name}.${key} (known: ${Object.keys(section).join(', ')})`);
      saved.push({ section, key, value: section[key] });
      section[key] = value;
    }
  }
  return () => {
    for (const s of saved.reverse()) s.section[s.key] = s.value;
  };
}
