/**
 * Normalization layers: layerNorm, groupNorm and rmsNorm. Each forward is one fused kernel over
 * the input viewed as [rows, L] (statistics per row, then normalize + affine), which also saves
 * the per-row mean and rstd = 1/sqrt(var + eps) (biased variance, as in PyTorch).
 *
 * The backward rule is built from differentiable ops on the saved statistics:
 *   xhat = (x - mean) * rstd,  dxhat = g * w
 *   dx = rstd * (dxhat - mean(dxhat) - xhat * mean(dxhat * xhat))     (RMS: no mean(dxhat) term)
 *   dw = sum(g * xhat),  db = sum(g)   over the non-normalized positions.
 * mean and rstd are themselves recorded as functions of x (d mean/dx = 1/L,
 * d rstd/dx = -rstd^3 (x - mean) / L), so gradients of gradients are exact. When the backward is
 * not itself recorded (a plain backward()), the same formulas run as fused kernels
 * (row_norm_backward) instead of ~10 elementwise and reduce dispatches: one dispatch for dx, dw and
 * db where a workgroup per group of rows sharing affine indices keeps the device busy (group norm
 * with enough groups, small inputs), else dx and then dw/db in a second kernel. Both sum in a fixed
 * order (no atomics): runs are bit-identical.
 *
 * `act: 'silu'` returns silu(norm(x)) from the same forward kernel. Its fused backward scales g by
 * silu'(n) inside the backward kernels, recomputing n = xhat * w + b from the saved statistics
 * (nothing more is saved); the recorded rule is silu's rule followed by the norm's.
 */
import { cpuContiguous, cpuData } from '../cpu/strided.js';
import { isGradEnabled, record } from '../grad-mode.js';
import { defineOp } from '../op.js';
import { checkOptions } from '../options.js';
import { fmtShape, shapesEqual, sizeOf } from '../shape.js';
import type { Tensor } from '../tensor.js';
import type { WebGPUBackend } from '../webgpu/backend.js';
import { normAffineBackwardKernel, normBackwardFusedKernel, normBackwardKernel, normKernel, NORM_WG, type NormLayout } from '../../shaders/norm.js';
import { add, mul, sub } from './binary.js';
import { sigmoid as sigmoidCpu } from './math.js';
import { expand, reshape } from './movement.js';
import { mean as meanOp, sum } from './reduce.js';
import { sigmoid } from './unary.js';

function pow2ceil(n: number): number {
  let p = 1;
  while (p < n) p *= 2;
  return p;
}

interface RowNormSpec {
  op: string;
  rows: number;
  L: number;
  /** Affine index of row r, element j: (r % groups) * cpg + floor(j / hw). */
  groups: number;
  cpg: number;
  hw: number;
  rms: boolean;
  eps: number;
  hasWeight: boolean;
  hasBias: boolean;
  /** Apply SiLU to the normalized (and affine) output. */
  silu: boolean;
}

/**
 * The fused forward: inputs [x, w?, b?] (dense), outputs [y, mean?, rstd] with mean and rstd of
 * shape [rows, 1] (no mean for RMS norm). The gradient is recorded by `normOp` below, per output.
 */
const rowNorm = defineOp<RowNormSpec>({
  name: 'row_norm',
  outputs: ([x], s) => [
    { shape: x!.shape, dtype: 'f32', name: s.op },
    ...(s.rms ? [] : [{ shape: [s.rows, 1], dtype: 'f32' as const, name: `${s.op}_mean` }]),
    { shape: [s.rows, 1], dtype: 'f32', name: `${s.op}_rstd` },
  ],
  dense: true,
  kernels: {
    cpu: (_b, { inputs, outputs, attrs: s }) => {
      const [x, w, b] = [inputs[0]!, s.hasWeight ? inputs[1]! : null, s.hasBias ? inputs[s.hasWeight ? 2 : 1]! : null];
      const xd = cpuContiguous(x);
      const wd = w && cpuContiguous(w);
      const bd = b && cpuContiguous(b);
      const yd = cpuData(outputs[0]!);
      const md = s.rms ? null : cpuData(outputs[1]!);
      const rd = cpuData(outputs[outputs.length - 1]!);
      const L = s.L;
      for (let r = 0; r < s.rows; r++) {
        const base = r * L;
        let mu = 0;
        if (!s.rms) {
          for (let j = 0; j < L; j++) mu += xd[base + j]!;
          mu /= L;
        }
        let sq = 0;
        for (let j = 0; j < L; j++) sq += (xd[base + j]! - mu) ** 2;
        const rs = 1 / Math.sqrt(sq / L + s.eps);
        if (md) md[r] = mu;
        rd[r] = rs;
        for (let j = 0; j < L; j++) {
          const a = (r % s.groups) * s.cpg + Math.floor(j / s.hw);
          let o = (xd[base + j]! - mu) * rs;
          if (wd) o *= wd[a]!;
          if (bd) o += bd[a]!;
          yd[base + j] = o;
          // SiLU of the stored value, as the silu op would read it.
          if (s.silu) yd[base + j] = yd[base + j]! * sigmoidCpu(yd[base + j]!);
        }
      }
    },
    webgpu: (gpu, { inputs, outputs, attrs: s }) => {
      const layout = normLayout(gpu, s);
      const bindings: Record<string, Tensor> = { x: inputs[0]!, y: outputs[0]!, rstd_out: outputs[outputs.length - 1]! };
      if (s.hasWeight) bindings.w = inputs[1]!;
      if (s.hasBias) bindings.bias = inputs[s.hasWeight ? 2 : 1]!;
      if (!s.rms) bindings.mean_out = outputs[1]!;
      gpu.run(normKernel, { rms: s.rms, hasWeight: s.hasWeight, hasBias: s.hasBias, silu: s.silu, ...layout }, {
        params: { rows: s.rows, L: s.L, groups: s.groups, cpg: s.cpg, hw: s.hw, eps: s.eps },
        bindings,
        workgroups: Math.ceil((s.rows * layout.tpo) / layout.wg),
      });
    },
  },
});

/**
 * Invocations per workgroup (and per row) on software adapters: one SIMD group, so the reduction
 * tree's barriers switch no lane groups (lavapipe runs a 256-invocation workgroup as 32 groups of 8
 * lanes, switching at every barrier). GroupNorm(32) + SiLU forward and backward on [8, 128, 32, 32]
 * on lavapipe: 27.9 ms with 256 -> 15.5 ms with 8 (4: 21.0, 16: 15.8, 32: 17.1 ms).
 */
const SOFTWARE_NORM_WG = 8;

/** Invocations per workgroup of the row-norm kernels on this device. */
function normWorkgroup(gpu: WebGPUBackend): number {
  const forced = gpu.tuning.norm.workgroup;
  if (forced === null) return gpu.softwareAdapter !== null ? SOFTWARE_NORM_WG : NORM_WG;
  if (!Number.isInteger(forced) || forced < 8 || forced > NORM_WG || (forced & (forced - 1)) !== 0) {
    throw new RangeError(`norm: tuning.norm.workgroup must be a power of two from 8 to ${NORM_WG}, got ${forced}`);
  }
  return forced;
}

/**
 * Longest row one invocation normalizes alone (tuning.norm.lanePerRow): decided by the row's length
 * only, so a row gets the same bits in a batch of any size.
 */
const LANE_PER_ROW_MAX_L = 128;

/**
 * Workgroup and row split of the row kernels on this device (see NormLayout): on GPUs up to a
 * workgroup per row (a quarter of the row per invocation at least); with small workgroups, one
 * row per workgroup; short rows one invocation each where tuning.norm.lanePerRow says (by
 * default on software adapters with the automatic workgroup: no tree, no barrier). Measured on
 * lavapipe, fwd+bwd, one lane per row against one workgroup of 8 per row: rmsNorm [4096, 64]
 * 9.6 vs 13.2 ms, layerNorm [4096, 64] 11.3 vs 14.6; layerNorm [2048, 384] 30.9 vs 32.9, inside
 * the noise, so rows over 128 keep the workgroup.
 */
function normLayout(gpu: WebGPUBackend, s: RowNormSpec): NormLayout {
  const wg = normWorkgroup(gpu);
  const oneLane = gpu.tuning.norm.lanePerRow ?? (gpu.softwareAdapter !== null && gpu.tuning.norm.workgroup === null);
  const tpo = oneLane && s.L <= LANE_PER_ROW_MAX_L ? 1 : wg < NORM_WG ? wg : Math.min(NORM_WG, pow2ceil(Math.ceil(s.L / 4)));
  return { wg, tpo, channelLoop: s.hw > 1 && s.hw >= tpo };
}

/**
 * Rows per workgroup set at most, for the one-dispatch backward on GPUs: 2^15 elements (128 per
 * invocation per pass of 256), where G workgroups each walking their rows cost about what the
 * second dispatch does. Layer norm (one set) only below 2^14 elements on any device: one workgroup
 * walks every row, so larger inputs keep the two-kernel form's parallelism.
 */
const FUSED_SET_MAX = 2 ** 15;
const FUSED_SINGLE_MAX = 2 ** 14;
/** Sets (workgroups) from which the one-dispatch backward keeps a software adapter's cores busy. */
const FUSED_MIN_SETS = 8;
/** Channels per group whose affine sums the one-dispatch backward keeps in registers (NormBackwardFusedSpec.channelSums). */
const CHANNEL_SUMS_MAX = 8;

/**
 * Whether the backward runs as one dispatch (normBackwardFusedKernel: a workgroup per set of rows
 * sharing affine indices, no second kernel for dw/db). Without affine parameters the row kernel is
 * already the only dispatch and keeps its one-workgroup-per-row parallelism.
 */
function fusedBackward(gpu: WebGPUBackend, s: RowNormSpec): boolean {
  if (!s.hasWeight && !s.hasBias) return false;
  const forced = gpu.tuning.norm.fusedBackward;
  if (forced !== null) return forced;
  const perSet = (s.rows / s.groups) * s.L;
  if (s.groups >= FUSED_MIN_SETS) return gpu.softwareAdapter !== null || perSet <= FUSED_SET_MAX;
  return s.rows * s.L <= FUSED_SINGLE_MAX;
}

interface RowNormBackwardSpec extends RowNormSpec {
  /** Number of affine indices (the weight's / bias's size) and their shape. */
  A: number;
  affineShape: readonly number[];
  /** Affine index a scales the elements n * A * inner + a * inner + k, n < outer, k < inner. */
  inner: number;
  outer: number;
  /** The last input is x's partial gradient so far, added to dx in the same kernel. */
  accumulate?: boolean;
}

/**
 * The fused backward, for when the backward itself is not recorded: inputs [g, x, mean?, rstd, w?,
 * b? (only with silu)] (dense), outputs [dx, dw?, db?] with (g first scaled by silu'(xhat * w[a] + b[a])
 * when the forward applied SiLU)
 *   xhat = (x - mean) * rstd,  dxhat = g * w[a]
 *   dx = rstd * (dxhat - (xhat * mean(dxhat * xhat) + mean(dxhat)))   (RMS: no mean(dxhat) term)
 *   dw[a] = sum(g * xhat),  db[a] = sum(g)   over the elements of affine index a.
 * With `accumulate`, the last input is x's gradient summed so far and dx = that + the above (the
 * engine's add, in the kernel). Not differentiable: gradients of gradients use the composite rule
 * in `normOp`.
 */
const rowNormBackward = defineOp<RowNormBackwardSpec>({
  name: 'row_norm_backward',
  outputs: ([, x], s) => [
    { shape: x!.shape, dtype: 'f32', name: `${s.op}_dx` },
    ...(s.hasWeight ? [{ shape: s.affineShape, dtype: 'f32' as const, name: `${s.op}_dw` }] : []),
    ...(s.hasBias ? [{ shape: s.affineShape, dtype: 'f32' as const, name: `${s.op}_db` }] : []),
  ],
  dense: true,
  kernels: {
    cpu: (_b, { inputs, outputs, attrs: s }) => {
      const gd = cpuContiguous(inputs[0]!);
      const xd = cpuContiguous(inputs[1]!);
      const md = s.rms ? null : cpuContiguous(inputs[2]!);
      const rd = cpuContiguous(inputs[s.rms ? 2 : 3]!);
      const wi = s.rms ? 3 : 4;
      const wd = s.hasWeight ? cpuContiguous(inputs[wi]!) : null;
      const bd = s.silu && s.hasBias ? cpuContiguous(inputs[s.hasWeight ? wi + 1 : wi]!) : null;
      const dxd = cpuData(outputs[0]!);
      const accd = s.accumulate ? cpuContiguous(inputs[inputs.length - 1]!) : null;
      // f32 storage: dx is rounded before the partial sum is added, as the engine's add would see it.
      const round = dxd instanceof Float32Array ? Math.fround : (v: number) => v;
      const L = s.L;
      const invL = 1 / L;
      const xhat = (e: number, r: number) => (xd[e]! - (md ? md[r]! : 0)) * rd[r]!;
      // g at element e (row r, affine index a) taken back through the activation.
      const gAt = (e: number, r: number, a: number) => {
        const gv = gd[e]!;
        if (!s.silu) return gv;
        let n = xhat(e, r);
        if (wd) n *= wd[a]!;
        if (bd) n += bd[a]!;
        const sg = sigmoidCpu(n);
        return gv * (sg * (n * (1 - sg) + 1));
      };
      const dxhat = (r: number, j: number) => {
        const a = (r % s.groups) * s.cpg + Math.floor(j / s.hw);
        const gv = gAt(r * L + j, r, a);
        return wd ? gv * wd[a]! : gv;
      };
      for (let r = 0; r < s.rows; r++) {
        const base = r * L;
        let s1 = 0;
        let s2 = 0;
        for (let j = 0; j < L; j++) {
          const d = dxhat(r, j);
          s1 += d;
          s2 += d * xhat(base + j, r);
        }
        const m1 = s1 * invL;
        const m2 = s2 * invL;
        for (let j = 0; j < L; j++) {
          const xh = xhat(base + j, r);
          const v = rd[r]! * (dxhat(r, j) - (md ? xh * m2 + m1 : xh * m2));
          dxd[base + j] = accd ? accd[base + j]! + round(v) : v;
        }
      }
      const dwd = s.hasWeight ? cpuData(outputs[1]!) : null;
      const dbd = s.hasBias ? cpuData(outputs[s.hasWeight ? 2 : 1]!) : null;
      const stride = s.A * s.inner;
      for (let a = 0; a < s.A; a++) {
        let sw = 0;
        let sb = 0;
        for (let n = 0; n < s.outer; n++) {
          for (let k = 0; k < s.inner; k++) {
            const e = n * stride + a * s.inner + k;
            const gv = gAt(e, Math.floor(e / L), a);
            if (dwd) sw += gv * xhat(e, Math.floor(e / L));
            sb += gv;
          }
        }
        if (dwd) dwd[a] = sw;
        if (dbd) dbd[a] = sb;
      }
    },
    webgpu: (gpu, { inputs, outputs, attrs: s }) => {
      const [g, x] = [inputs[0]!, inputs[1]!];
      const mean = s.rms ? null : inputs[2]!;
      const rstd = inputs[s.rms ? 2 : 3]!;
      const layout = normLayout(gpu, s);
      const w = s.hasWeight ? inputs[s.rms ? 3 : 4]! : null;
      const bias = s.silu && s.hasBias ? inputs[(s.rms ? 3 : 4) + (w ? 1 : 0)]! : null;
      const bindings: Record<string, Tensor> = { g, x, rstd, dx: outputs[0]! };
      if (w) bindings.w = w;
      if (bias) bindings.bias = bias;
      if (mean) bindings.mean = mean;
      const accumulate = !!s.accumulate;
      if (accumulate) bindings.gacc = inputs[inputs.length - 1]!;
      if (fusedBackward(gpu, s)) {
        if (s.hasWeight) bindings.dw = outputs[1]!;
        if (s.hasBias) bindings.db = outputs[s.hasWeight ? 2 : 1]!;
        const wg = normWorkgroup(gpu);
        const channelLoop = s.hw > 1 && s.hw >= wg;
        const channelSums = channelLoop && (gpu.tuning.norm.channelSums ?? s.cpg <= CHANNEL_SUMS_MAX) ? pow2ceil(s.cpg) : 0;
        gpu.run(normBackwardFusedKernel, { rms: s.rms, hasWeight: s.hasWeight, hasBias: s.hasBias, silu: s.silu, wg, channelLoop, columns: s.hw === 1, accumulate, channelSums }, {
          params: { rows: s.rows, L: s.L, groups: s.groups, cpg: s.cpg, hw: s.hw },
          bindings,
          workgroups: s.groups,
        });
        return;
      }
      gpu.run(normBackwardKernel, { rms: s.rms, hasWeight: s.hasWeight, silu: s.silu, bias: bias !== null, ...layout, accumulate }, {
        params: { rows: s.rows, L: s.L, groups: s.groups, cpg: s.cpg, hw: s.hw },
        bindings,
        workgroups: Math.ceil((s.rows * layout.tpo) / layout.wg),
      });
      if (!s.hasWeight && !s.hasBias) return;
      const ab: Record<string, Tensor> = { g };
      if (s.hasWeight || s.silu) Object.assign(ab, { x, rstd }, mean ? { mean } : {});
      if (s.hasWeight) ab.dw = outputs[1]!;
      if (s.hasBias) ab.db = outputs[s.hasWeight ? 2 : 1]!;
      if (s.silu && w) ab.w = w;
      if (bias) ab.bias = bias;
      const wg = normWorkgroup(gpu);
      gpu.run(normAffineBackwardKernel, { rms: s.rms, hasWeight: s.hasWeight, hasBias: s.hasBias, silu: s.silu, wg, spatial: s.inner > 1 && s.inner >= wg }, {
        params: { A: s.A, inner: s.inner, outer: s.outer, L: s.L },
        bindings: ab,
        workgroups: s.A,
      });
    },
  },
});

function checkF32(op: string, ...ts: (Tensor | null | undefined)[]): void {
  for (const t of ts) if (t && t.dtype !== 'f32') throw new TypeError(`${op}: expected f32 tensors, got ${t.describe()}`);
}

/**
 * Runs the fused forward and records the op. `affineShape`: the shape the weight/bias broadcast
 * to against x (for the backward); `affineAxes`: the axes of x that dw/db are summed over.
 */
function normOp(x: Tensor, w: Tensor | null, b: Tensor | null, spec: Omit<RowNormSpec, 'hasWeight' | 'hasBias'>, affineView: readonly number[], affineAxes: number[]): Tensor {
  const s: RowNormSpec = Object.assign({}, spec, { hasWeight: w !== null, hasBias: b !== null });
  const outs = rowNorm([x, ...(w ? [w] : []), ...(b ? [b] : [])], s);
  const y = outs[0]!;
  const mean = s.rms ? null : outs[1]!;
  const rstd = outs[outs.length - 1]!;
  const L = s.L;
  const rows2d = (t: Tensor) => reshape(t, [s.rows, L]);
  // Statistics as functions of x, so the backward below is differentiable in x.
  if (mean) record(mean, `${s.op}_mean`, [x], (gm) => [reshape(mul(expand(gm, [s.rows, L]), 1 / L), x.shape)]);
  record(rstd, `${s.op}_rstd`, [x], (gr) => {
    const centered = mean ? sub(rows2d(x), mean) : rows2d(x);
    return [reshape(mul(mul(gr, mul(rstd, mul(rstd, rstd))), mul(centered, -1 / L)), x.shape)];
  });
  const inputs = [x, ...(w ? [w] : []), ...(b ? [b] : [])];
  // x's partial gradient (a residual connection's) is added into dx: in the kernel when fused.
  const rule = (g: Tensor, partial?: readonly (Tensor | undefined)[]): (Tensor | null)[] => {
    const acc = partial?.[0];
    if (!isGradEnabled()) {
      // Not recording the backward (no gradients of gradients): the fused kernels.
      const A = (w ?? b)?.size ?? 0;
      const inner = s.cpg ? s.hw : 1;
      // The op's dense inputs make a strided partial sum contiguous (as the engine's add would read it).
      const bs: RowNormBackwardSpec = Object.assign({}, s, { A, affineShape: (w ?? b)?.shape ?? [], inner, outer: A ? (s.rows * L) / (A * inner) : 0, accumulate: !!acc });
      return rowNormBackward([g, x, ...(mean ? [mean] : []), rstd, ...(w ? [w] : []), ...(s.silu && b ? [b] : []), ...(acc ? [acc] : [])], bs);
    }
    const x2 = rows2d(x);
    const xhat = mul(mean ? sub(x2, mean) : x2, rstd);
    if (s.silu) {
      // silu's rule at n = xhat * w + b (rebuilt from x, so differentiable in x, w and b).
      let n = reshape(xhat, x.shape);
      if (w) n = mul(n, reshape(w, affineView));
      if (b) n = add(n, reshape(b, affineView));
      const sg = sigmoid(n);
      g = mul(g, mul(sg, add(mul(n, sub(1, sg)), 1)));
    }
    const dxhat = rows2d(w ? mul(g, reshape(w, affineView)) : g);
    let inner = mul(xhat, meanOp(mul(dxhat, xhat), 1, true));
    if (mean) inner = add(inner, meanOp(dxhat, 1, true));
    const dx = reshape(mul(rstd, sub(dxhat, inner)), x.shape);
    const out: (Tensor | null)[] = [acc ? add(acc, dx) : dx];
    if (w) out.push(reshape(sum(mul(g, reshape(xhat, x.shape)), affineAxes, true), w.shape));
    if (b) out.push(reshape(sum(g, affineAxes, true), b.shape));
    return out;
  };
  return record(y, s.op, inputs, rule, [0]);
}

export interface RmsNormOptions {
  /** Elementwise scale over the normalized dims (none when omitted). */
  weight?: Tensor | null;
  /** Added to the variance (the mean square for rmsNorm) before the square root. */
  eps?: number;
  /** An activation applied to the output in the same kernel (silu(norm(x)); none when omitted). */
  act?: NormActivation;
}

/** Activations the norms can fuse. */
export type NormActivation = 'silu';

export interface NormOptions extends RmsNormOptions {
  /** Elementwise shift, same shape as the weight (none when omitted). */
  bias?: Tensor | null;
}

const AFFINE_KEYS = ['weight', 'bias', 'eps', 'act'] as const;
const RMS_KEYS = ['weight', 'eps', 'act'] as const;

function checkNormOptions<T extends RmsNormOptions>(op: string, opts: T, keys: readonly (keyof T & string)[]): T {
  checkOptions(op, opts, keys);
  if (opts.eps !== undefined && !(typeof opts.eps === 'number' && opts.eps >= 0 && Number.isFinite(opts.eps))) {
    throw new RangeError(`${op}: eps must be a finite number >= 0, got ${String(opts.eps)}`);
  }
  if (opts.act !== undefined && opts.act !== 'silu') throw new RangeError(`${op}: act must be 'silu' (or omitted), got ${String(opts.act)}`);
  return opts;
}

/**
 * Layer normalization over the trailing `normalizedShape` dims of x, with optional elementwise
 * affine weight/bias of shape normalizedShape (torch.nn.functional.layer_norm); eps defaults to 1e-5;
 * `act: 'silu'` returns silu of the result.
 */
export function layerNorm(x: Tensor, normalizedShape: number | readonly number[], opts: NormOptions = {}): Tensor {
  const { weight, bias, eps = 1e-5, act } = checkNormOptions('layer_norm', opts, AFFINE_KEYS);
  const ns = typeof normalizedShape === 'number' ? [normalizedShape] : [...normalizedShape];
  checkF32('layer_norm', x, weight, bias);
  const lead = x.rank - ns.length;
  if (ns.length === 0 || lead < 0 || !shapesEqual(x.shape.slice(lead), ns)) {
    throw new Error(`layer_norm: normalizedShape ${fmtShape(ns)} does not match the trailing dims of ${x.describe()}`);
  }
  for (const [name, t] of [['weight', weight], ['bias', bias]] as const) {
    if (t && !shapesEqual(t.shape, ns)) throw new Error(`layer_norm: ${name} shape ${fmtShape(t.shape)} must equal normalizedShape ${fmtShape(ns)}`);
  }
  const L = sizeOf(ns);
  const spec = { op: 'layer_norm', rows: sizeOf(x.shape.slice(0, lead)), L, groups: 1, cpg: 0, hw: 1, rms: false, eps, silu: act === 'silu' };
  return normOp(x, weight ?? null, bias ?? null, spec, ns, Array.from({ length: lead }, (_, i) => i));
}

/**
 * Group normalization of x [N, C, ...]: channels are split into numGroups groups and each
 * (sample, group) is normalized over its channels and spatial positions; optional per-channel
 * weight/bias of shape [C] (torch.nn.functional.group_norm); eps defaults to 1e-5; `act: 'silu'`
 * returns silu of the result (one kernel forward and backward).
 */
export function groupNorm(x: Tensor, numGroups: number, opts: NormOptions = {}): Tensor {
  const { weight, bias, eps = 1e-5, act } = checkNormOptions('group_norm', opts, AFFINE_KEYS);
  checkF32('group_norm', x, weight, bias);
  if (x.rank < 2) throw new Error(`group_norm: expected an input of shape [N, C, ...], got ${x.describe()}`);
  const [N, C] = [x.shape[0]!, x.shape[1]!];
  if (!Number.isInteger(numGroups) || numGroups < 1 || C % numGroups !== 0) {
    throw new Error(`group_norm: ${C} channels of ${x.describe()} cannot be split into ${numGroups} groups`);
  }
  for (const [name, t] of [['weight', weight], ['bias', bias]] as const) {
    if (t && !shapesEqual(t.shape, [C])) throw new Error(`group_norm: ${name} shape ${fmtShape(t.shape)} must be [${C}]`);
  }
  const hw = sizeOf(x.shape.slice(2));
  const cpg = C / numGroups;
  const spec = { op: 'group_norm', rows: N * numGroups, L: cpg * hw, groups: numGroups, cpg, hw, rms: false, eps, silu: act === 'silu' };
  const affineView = [C, ...x.shape.slice(2).map(() => 1)];
  return normOp(x, weight ?? null, bias ?? null, spec, affineView, [0, ...x.shape.slice(2).map((_, i) => i + 2)]);
}

/**
 * RMS normalization: x / sqrt(mean(x^2) + eps) * weight, over the trailing weight.rank dims of x
 * (the last dim when there is no weight); eps defaults to 1e-6; `act: 'silu'` returns silu of the result.
 */
export function rmsNorm(x: Tensor, opts: RmsNormOptions = {}): Tensor {
  const { weight, eps = 1e-6, act } = checkNormOptions('rms_norm', opts, RMS_KEYS);
  checkF32('rms_norm', x, weight);
  const ns = weight ? [...weight.shape] : x.shape.slice(-1);
  const lead = x.rank - ns.length;
  if (x.rank === 0 || ns.length === 0 || lead < 0 || !shapesEqual(x.shape.slice(lead), ns)) {
    throw new Error(`rms_norm: weight shape ${fmtShape(ns)} does not match the trailing dims of ${x.describe()}`);
  }
  const spec = { op: 'rms_norm', rows: sizeOf(x.shape.slice(0, lead)), L: sizeOf(ns), groups: 1, cpg: 0, hw: 1, rms: true, eps, silu: act === 'silu' };
  return normOp(x, weight ?? null, null, spec, ns, Array.from({ length: lead }, (_, i) => i));
}
