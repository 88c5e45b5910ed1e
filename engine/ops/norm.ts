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
 * d rstd/dx = -rstd^3 (x - mean) / L), so gradients of gradients are exact.
 */
import { CpuBackend, CpuStorage } from '../cpu/backend.js';
import { cpuContiguous } from '../cpu/strided.js';
import { record } from '../grad-mode.js';
import { fmtShape, shapesEqual, sizeOf } from '../shape.js';
import { Tensor } from '../tensor.js';
import { GpuStorage, ParamBuilder, WebGPUBackend } from '../webgpu/backend.js';
import { normShader, NORM_WG } from '../../shaders/norm.js';
import { checkSameBackend } from './elementwise.js';
import { add, mul, sub } from './binary.js';
import { contiguous, expand, reshape } from './movement.js';
import { mean as meanOp, sum } from './reduce.js';

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
}

interface RowNormResult {
  y: Tensor;
  /** [rows, 1]; null for RMS norm. */
  mean: Tensor | null;
  /** [rows, 1]. */
  rstd: Tensor;
}

/** The fused forward on a contiguous input; no recording. */
function rowNormForward(x: Tensor, w: Tensor | null, b: Tensor | null, s: RowNormSpec): RowNormResult {
  const backend = x.backend;
  const y = new Tensor(backend.alloc(x.size, 'f32'), x.shape, 'f32', s.op);
  const mean = s.rms ? null : new Tensor(backend.alloc(s.rows, 'f32'), [s.rows, 1], 'f32', `${s.op}_mean`);
  const rstd = new Tensor(backend.alloc(s.rows, 'f32'), [s.rows, 1], 'f32', `${s.op}_rstd`);
  if (s.rows === 0) return { y, mean, rstd };
  if (backend instanceof CpuBackend) {
    const xd = cpuContiguous(x);
    const wd = w && cpuContiguous(w);
    const bd = b && cpuContiguous(b);
    const yd = (y.storage as CpuStorage).data;
    const md = mean && (mean.storage as CpuStorage).data;
    const rd = (rstd.storage as CpuStorage).data;
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
      }
    }
    return { y, mean, rstd };
  }
  const gpu = backend as WebGPUBackend;
  const tpo = Math.min(NORM_WG, pow2ceil(Math.ceil(s.L / 4)));
  const p = new ParamBuilder().u32(s.rows, s.L, s.groups, s.cpg, s.hw).f32(s.eps);
  const buf = (t: Tensor, access: 'read' | 'read_write') => ({ storage: t.storage as GpuStorage, access });
  // Contiguous inputs at offset 0 are bound directly; the caller makes them so.
  gpu.dispatch({
    key: `norm|${s.rms}|${!!w}|${!!b}|${tpo}`,
    code: () => normShader({ rms: s.rms, hasWeight: !!w, hasBias: !!b, tpo }),
    buffers: [buf(x, 'read'), ...(w ? [buf(w, 'read')] : []), ...(b ? [buf(b, 'read')] : []), buf(y, 'read_write'), ...(mean ? [buf(mean, 'read_write')] : []), buf(rstd, 'read_write')],
    params: p.words,
    workgroups: Math.ceil((s.rows * tpo) / NORM_WG),
  });
  return { y, mean, rstd };
}

/** A contiguous, offset-0 version of t (t itself as a view when it already is). */
function dense(t: Tensor): Tensor {
  if (t.isContiguous && t.offset === 0) return t;
  const c = contiguous(t);
  if (c.offset === 0) return c;
  // contiguous() returns a view when t is contiguous but offset: force a copy.
  const copy = mul(c, 1);
  c.dispose();
  return copy;
}

function checkF32(op: string, ...ts: (Tensor | null | undefined)[]): void {
  for (const t of ts) if (t && t.dtype !== 'f32') throw new TypeError(`${op}: expected f32 tensors, got ${t.describe()}`);
}

/**
 * Runs the fused forward and records the op. `affineShape`: the shape the weight/bias broadcast
 * to against x (for the backward); `affineAxes`: the axes of x that dw/db are summed over.
 */
function normOp(x: Tensor, w: Tensor | null, b: Tensor | null, s: RowNormSpec, affineView: readonly number[], affineAxes: number[]): Tensor {
  checkSameBackend(s.op, [x, ...(w ? [w] : []), ...(b ? [b] : [])]);
  const xd = dense(x);
  const wd = w && dense(w);
  const bd = b && dense(b);
  const { y, mean, rstd } = rowNormForward(xd, wd, bd, s);
  for (const [orig, d] of [[x, xd], [w, wd], [b, bd]] as const) if (orig && d && d !== orig) d.dispose();
  const L = s.L;
  const rows2d = (t: Tensor) => reshape(t, [s.rows, L]);
  // Statistics as functions of x, so the backward below is differentiable in x.
  if (mean) record(mean, `${s.op}_mean`, [x], (gm) => [reshape(mul(expand(gm, [s.rows, L]), 1 / L), x.shape)]);
  record(rstd, `${s.op}_rstd`, [x], (gr) => {
    const centered = mean ? sub(rows2d(x), mean) : rows2d(x);
    return [reshape(mul(mul(gr, mul(rstd, mul(rstd, rstd))), mul(centered, -1 / L)), x.shape)];
  });
  const inputs = [x, ...(w ? [w] : []), ...(b ? [b] : [])];
  return record(y, s.op, inputs, (g) => {
    const x2 = rows2d(x);
    const xhat = mul(mean ? sub(x2, mean) : x2, rstd);
    const dxhat = rows2d(w ? mul(g, reshape(w, affineView)) : g);
    let inner = mul(xhat, meanOp(mul(dxhat, xhat), 1, true));
    if (mean) inner = add(inner, meanOp(dxhat, 1, true));
    const dx = reshape(mul(rstd, sub(dxhat, inner)), x.shape);
    const out: (Tensor | null)[] = [dx];
    if (w) out.push(reshape(sum(mul(g, reshape(xhat, x.shape)), affineAxes, true), w.shape));
    if (b) out.push(reshape(sum(g, affineAxes, true), b.shape));
    return out;
  });
}

/**
 * Layer normalization over the trailing `normalizedShape` dims of x, with optional elementwise
 * affine weight/bias of shape normalizedShape (torch.nn.functional.layer_norm).
 */
export function layerNorm(x: Tensor, normalizedShape: number | readonly number[], weight?: Tensor | null, bias?: Tensor | null, eps = 1e-5): Tensor {
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
  const spec: RowNormSpec = { op: 'layer_norm', rows: sizeOf(x.shape.slice(0, lead)), L, groups: 1, cpg: 0, hw: 1, rms: false, eps };
  return normOp(x, weight ?? null, bias ?? null, spec, ns, Array.from({ length: lead }, (_, i) => i));
}

/**
 * Group normalization of x [N, C, ...]: channels are split into numGroups groups and each
 * (sample, group) is normalized over its channels and spatial positions; optional per-channel
 * weight/bias of shape [C] (torch.nn.functional.group_norm).
 */
export function groupNorm(x: Tensor, numGroups: number, weight?: Tensor | null, bias?: Tensor | null, eps = 1e-5): Tensor {
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
  const spec: RowNormSpec = { op: 'group_norm', rows: N * numGroups, L: cpg * hw, groups: numGroups, cpg, hw, rms: false, eps };
  const affineView = [C, ...x.shape.slice(2).map(() => 1)];
  return normOp(x, weight ?? null, bias ?? null, spec, affineView, [0, ...x.shape.slice(2).map((_, i) => i + 2)]);
}

/**
 * RMS normalization: x / sqrt(mean(x^2) + eps) * weight, over the trailing weight.rank dims of x
 * (the last dim when there is no weight).
 */
export function rmsNorm(x: Tensor, weight?: Tensor | null, eps = 1e-6): Tensor {
  checkF32('rms_norm', x, weight);
  const ns = weight ? [...weight.shape] : x.shape.slice(-1);
  const lead = x.rank - ns.length;
  if (x.rank === 0 || ns.length === 0 || lead < 0 || !shapesEqual(x.shape.slice(lead), ns)) {
    throw new Error(`rms_norm: weight shape ${fmtShape(ns)} does not match the trailing dims of ${x.describe()}`);
  }
  const spec: RowNormSpec = { op: 'rms_norm', rows: sizeOf(x.shape.slice(0, lead)), L: sizeOf(ns), groups: 1, cpg: 0, hw: 1, rms: true, eps };
  return normOp(x, weight ?? null, null, spec, ns, Array.from({ length: lead }, (_, i) => i));
}
