/**
 * Fused in-place optimizer updates (Adam/AdamW, SGD), the EMA update, and the two halves of
 * gradient clipping by global norm (total norm on the device, then scaling by the clip coefficient
 * read from the device: no readback). These ops write into existing tensors and are never recorded
 * for autodiff. Each has a CPU reference branch computing the same formula in float64 (rounded on
 * store when the CPU backend stores float32), and one GPU dispatch per tensor.
 *
 * Targets (parameters, moments, shadows, gradients being clipped) must be contiguous f32 tensors;
 * read-only inputs (gradients, EMA sources) may be strided views (copied to a temporary first).
 */
import { CpuBackend } from '../cpu/backend.js';
import { cpuData, forEachStrided } from '../cpu/strided.js';
import type { Backend, Storage } from '../backend.js';
import { fmtShape, shapesEqual } from '../shape.js';
import { Tensor } from '../tensor.js';
import { GpuStorage, ParamBuilder, WebGPUBackend } from '../webgpu/backend.js';
import { adamShader, clipScaleShader, emaShader, normFinalShader, normPartialShader, OPTIM_WG, sgdShader } from '../../shaders/optim.js';
import { checkSameBackend, elementwise } from './elementwise.js';

function checkF32(op: string, name: string, t: Tensor): void {
  t.storage; // clear error when disposed
  if (t.dtype !== 'f32') throw new TypeError(`${op}: ${name} must be f32, got ${t.describe()}`);
}

function checkTarget(op: string, name: string, t: Tensor): void {
  checkF32(op, name, t);
  if (!t.isContiguous) throw new Error(`${op}: ${name} ${t.describe()} must be contiguous to be updated in place`);
}

function checkShape(op: string, name: string, t: Tensor, ref: Tensor): void {
  if (!shapesEqual(t.shape, ref.shape)) throw new Error(`${op}: ${name} has shape ${fmtShape(t.shape)}, expected ${fmtShape(ref.shape)} (the parameter's shape)`);
}

/** Rejects two bindings of one kernel that share storage (a written buffer may not alias another). */
function checkDistinct(op: string, named: [string, Tensor | null][]): void {
  const seen = new Map<Storage, string>();
  for (const [name, t] of named) {
    if (!t) continue;
    const other = seen.get(t.storage);
    if (other) throw new Error(`${op}: ${name} and ${other} share memory; in-place updates need separate tensors`);
    seen.set(t.storage, name);
  }
}

/** A contiguous version of a read-only input; `temp` is true when it is a copy the caller must dispose. */
function readable(t: Tensor): { t: Tensor; temp: boolean } {
  if (t.isContiguous) return { t, temp: false };
  return { t: elementwise('contiguous', [t], { expr: 'a', cpu: (a) => a, outDtype: t.dtype }), temp: true };
}

const gpuBuf = (t: Tensor, access: 'read' | 'read_write') => ({ storage: t.storage as GpuStorage, access });

export interface AdamHyper {
  lr: number;
  beta1: number;
  beta2: number;
  eps: number;
  weightDecay: number;
  /** true: AdamW (decoupled decay p *= 1 - lr * wd); false: Adam (L2: g += wd * p). */
  decoupled: boolean;
  /** The step number after incrementing (1 on the first update): sets the bias corrections. */
  step: number;
}

/**
 * One Adam/AdamW step in place on p, m (first moment), v (second moment) and, when given, vmax
 * (AMSGrad's running maximum of v), from gradient g. PyTorch's formula and order of operations:
 * decay or L2 term, moments, bias corrections lr / (1 - b1^t) and sqrt(1 - b2^t), eps added
 * after dividing sqrt(v) by its correction.
 */
export function adamUpdate(p: Tensor, g: Tensor, m: Tensor, v: Tensor, h: AdamHyper, vmax: Tensor | null = null): void {
  const op = h.decoupled ? 'adamw' : 'adam';
  checkTarget(op, 'param', p);
  checkF32(op, 'grad', g);
  checkTarget(op, 'exp_avg', m);
  checkTarget(op, 'exp_avg_sq', v);
  if (vmax) checkTarget(op, 'max_exp_avg_sq', vmax);
  checkSameBackend(op, [p, g, m, v, ...(vmax ? [vmax] : [])]);
  checkShape(op, 'grad', g, p);
  checkShape(op, 'exp_avg', m, p);
  checkShape(op, 'exp_avg_sq', v, p);
  if (vmax) checkShape(op, 'max_exp_avg_sq', vmax, p);
  checkDistinct(op, [['param', p], ['grad', g], ['exp_avg', m], ['exp_avg_sq', v], ['max_exp_avg_sq', vmax]]);
  if (!(h.step >= 1)) throw new RangeError(`${op}: step must be >= 1, got ${h.step}`);
  const n = p.size;
  if (n === 0) return;
  const stepSize = h.lr / (1 - h.beta1 ** h.step);
  const bc2Sqrt = Math.sqrt(1 - h.beta2 ** h.step);
  const l2 = h.decoupled ? 0 : h.weightDecay;
  const decay = h.decoupled ? 1 - h.lr * h.weightDecay : 1;
  const { beta1: b1, beta2: b2, eps } = h;
  if (p.backend instanceof CpuBackend) {
    const P = cpuData(p), M = cpuData(m), V = cpuData(v), W = vmax ? cpuData(vmax) : null;
    const G = cpuData(g);
    const po = p.offset, mo = m.offset, vo = v.offset, wo = vmax?.offset ?? 0;
    forEachStrided(g.shape, [g.strides], [g.offset], (i, off) => {
      const p0 = P[po + i]!;
      let gr = G[off[0]!]!;
      if (l2 !== 0) gr = gr + l2 * p0;
      const m1 = M[mo + i]! * b1 + gr * (1 - b1);
      const v1 = V[vo + i]! * b2 + (1 - b2) * gr * gr;
      M[mo + i] = m1;
      V[vo + i] = v1;
      let vd = v1;
      if (W) {
        vd = Math.max(W[wo + i]!, v1);
        W[wo + i] = vd;
      }
      const denom = Math.sqrt(vd) / bc2Sqrt + eps;
      P[po + i] = p0 * decay - stepSize * (m1 / denom);
    });
    return;
  }
  const gpu = p.backend as WebGPUBackend;
  const gc = readable(g);
  const amsgrad = vmax !== null;
  const params = new ParamBuilder().u32(n, p.offset, gc.t.offset, m.offset, v.offset, vmax?.offset ?? 0).f32(b1, b2, eps, l2, decay, stepSize, bc2Sqrt);
  gpu.dispatch({
    key: `optim|adam|${amsgrad}`,
    code: () => adamShader(amsgrad),
    buffers: [gpuBuf(p, 'read_write'), gpuBuf(gc.t, 'read'), gpuBuf(m, 'read_write'), gpuBuf(v, 'read_write'), ...(vmax ? [gpuBuf(vmax, 'read_write')] : [])],
    params: params.words,
    workgroups: Math.ceil(n / OPTIM_WG),
  });
  if (gc.temp) gc.t.dispose();
}

export interface SgdHyper {
  lr: number;
  momentum: number;
  dampening: number;
  nesterov: boolean;
  weightDecay: number;
  /** First step for this parameter: the momentum buffer is set to the gradient (no dampening). */
  first: boolean;
}

/**
 * One SGD step in place (PyTorch semantics): d = g + wd * p; with momentum, buf = d on the first
 * step, else momentum * buf + (1 - dampening) * d, and d = buf (or d + momentum * buf with
 * Nesterov); p -= lr * d. `buf` is required when momentum != 0 and ignored otherwise.
 */
export function sgdUpdate(p: Tensor, g: Tensor, buf: Tensor | null, h: SgdHyper): void {
  const op = 'sgd';
  const hasMom = h.momentum !== 0;
  if (hasMom && !buf) throw new Error('sgd: momentum != 0 needs a momentum buffer');
  checkTarget(op, 'param', p);
  checkF32(op, 'grad', g);
  if (hasMom) checkTarget(op, 'momentum_buffer', buf!);
  checkSameBackend(op, [p, g, ...(hasMom ? [buf!] : [])]);
  checkShape(op, 'grad', g, p);
  if (hasMom) checkShape(op, 'momentum_buffer', buf!, p);
  checkDistinct(op, [['param', p], ['grad', g], ['momentum_buffer', hasMom ? buf : null]]);
  const n = p.size;
  if (n === 0) return;
  const { lr, momentum: mom, dampening, nesterov, weightDecay: wd, first } = h;
  if (p.backend instanceof CpuBackend) {
    const P = cpuData(p), G = cpuData(g), B = hasMom ? cpuData(buf!) : null;
    const po = p.offset, bo = buf?.offset ?? 0;
    forEachStrided(g.shape, [g.strides], [g.offset], (i, off) => {
      const p0 = P[po + i]!;
      let d = G[off[0]!]!;
      if (wd !== 0) d = d + wd * p0;
      if (B) {
        const b = first ? d : B[bo + i]! * mom + (1 - dampening) * d;
        B[bo + i] = b;
        d = nesterov ? d + mom * b : b;
      }
      P[po + i] = p0 - lr * d;
    });
    return;
  }
  const gpu = p.backend as WebGPUBackend;
  const gc = readable(g);
  const params = new ParamBuilder().u32(n, p.offset, gc.t.offset, buf?.offset ?? 0).f32(lr, wd, mom, dampening).u32(first ? 1 : 0, nesterov ? 1 : 0);
  gpu.dispatch({
    key: `optim|sgd|${hasMom}`,
    code: () => sgdShader(hasMom),
    buffers: [gpuBuf(p, 'read_write'), gpuBuf(gc.t, 'read'), ...(hasMom ? [gpuBuf(buf!, 'read_write')] : [])],
    params: params.words,
    workgroups: Math.ceil(n / OPTIM_WG),
  });
  if (gc.temp) gc.t.dispose();
}

/** shadow = decay * shadow + (1 - decay) * x, in place (exponential moving average of weights). */
export function emaUpdate(shadow: Tensor, x: Tensor, decay: number): void {
  const op = 'ema';
  checkTarget(op, 'shadow', shadow);
  checkF32(op, 'source', x);
  checkSameBackend(op, [shadow, x]);
  if (!shapesEqual(shadow.shape, x.shape)) throw new Error(`ema: source has shape ${fmtShape(x.shape)}, shadow has ${fmtShape(shadow.shape)}`);
  checkDistinct(op, [['shadow', shadow], ['source', x]]);
  const n = shadow.size;
  if (n === 0) return;
  if (shadow.backend instanceof CpuBackend) {
    const S = cpuData(shadow), X = cpuData(x);
    const so = shadow.offset;
    forEachStrided(x.shape, [x.strides], [x.offset], (i, off) => {
      S[so + i] = decay * S[so + i]! + (1 - decay) * X[off[0]!]!;
    });
    return;
  }
  const gpu = shadow.backend as WebGPUBackend;
  const xc = readable(x);
  gpu.dispatch({
    key: 'optim|ema',
    code: emaShader,
    buffers: [gpuBuf(shadow, 'read_write'), gpuBuf(xc.t, 'read')],
    params: new ParamBuilder().u32(n, shadow.offset, xc.t.offset).f32(decay).words,
    workgroups: Math.ceil(n / OPTIM_WG),
  });
  if (xc.temp) xc.t.dispose();
}

/** Most workgroups one tensor's partial-norm pass uses (each folds a grid-strided share). */
const NORM_MAX_GROUPS = 256;
/** Elements per thread below which fewer workgroups are used. */
const NORM_PER_THREAD = 8;

/**
 * The norm of all elements of `tensors` taken together (as if concatenated), as a new 0-d f32
 * tensor computed on the device: `normType` 2 (Euclidean) or Infinity (max |x|). One pass per
 * tensor writes partial results and one more pass combines them; nothing is read back.
 * An empty list gives 0 on `opts.backend`.
 */
export function totalNorm(tensors: readonly Tensor[], normType = 2, opts: { backend?: Backend } = {}): Tensor {
  const op = 'totalNorm';
  if (normType !== 2 && normType !== Infinity) throw new RangeError(`${op}: normType must be 2 or Infinity, got ${normType}`);
  const inf = normType === Infinity;
  tensors.forEach((t, k) => checkF32(op, `tensor ${k}`, t));
  if (tensors.length > 0) checkSameBackend(op, [...tensors]);
  const backend = tensors[0]?.backend ?? opts.backend;
  if (!backend) throw new Error(`${op}: no tensors and no backend given`);
  const out = new Tensor(backend.alloc(1, 'f32'), [], 'f32', op);
  if (backend instanceof CpuBackend) {
    let acc = 0;
    for (const t of tensors) {
      const d = cpuData(t);
      forEachStrided(t.shape, [t.strides], [t.offset], (_i, off) => {
        const v = d[off[0]!]!;
        acc = inf ? (Number.isNaN(v) ? NaN : Math.max(acc, Math.abs(v))) : acc + v * v;
      });
    }
    cpuData(out)[0] = inf ? acc : Math.sqrt(acc);
    return out;
  }
  const gpu = backend as WebGPUBackend;
  const groups = tensors.map((t) => Math.min(NORM_MAX_GROUPS, Math.ceil(t.size / (OPTIM_WG * NORM_PER_THREAD))));
  const count = groups.reduce((a, b) => a + b, 0);
  const part = gpu.alloc(Math.max(count, 1), 'f32');
  let base = 0;
  tensors.forEach((t, k) => {
    const ng = groups[k]!;
    if (ng === 0) return;
    const c = readable(t);
    gpu.dispatch({
      key: `optim|normpart|${inf}`,
      code: () => normPartialShader(inf),
      buffers: [gpuBuf(c.t, 'read'), { storage: part, access: 'read_write' }],
      params: new ParamBuilder().u32(t.size, c.t.offset, base, ng).words,
      workgroups: ng,
    });
    if (c.temp) c.t.dispose();
    base += ng;
  });
  gpu.dispatch({
    key: `optim|normfinal|${inf}`,
    code: () => normFinalShader(inf),
    buffers: [{ storage: part, access: 'read' }, gpuBuf(out, 'read_write')],
    params: new ParamBuilder().u32(count).words,
    workgroups: 1,
  });
  gpu.free(part);
  return out;
}

/**
 * Scales every tensor in place by min(1, maxNorm / (norm + 1e-6)) where `norm` is a one-element
 * tensor (e.g. from totalNorm) read on the device, as torch.nn.utils.clip_grad_norm_ does.
 * Targets must be contiguous and must not share memory with each other.
 */
export function clipByNorm(tensors: readonly Tensor[], norm: Tensor, maxNorm: number): void {
  const op = 'clipByNorm';
  checkF32(op, 'norm', norm);
  if (norm.size !== 1) throw new Error(`${op}: norm must have one element, got ${norm.describe()}`);
  tensors.forEach((t, k) => checkTarget(op, `tensor ${k}`, t));
  checkSameBackend(op, [norm, ...tensors]);
  checkDistinct(op, [['norm', norm], ...tensors.map((t, k) => [`tensor ${k}`, t] as [string, Tensor])]);
  if (norm.backend instanceof CpuBackend) {
    const c = Math.min(1, maxNorm / (cpuData(norm)[norm.offset]! + 1e-6));
    for (const t of tensors) {
      const d = cpuData(t);
      for (let i = t.offset; i < t.offset + t.size; i++) d[i] = d[i]! * c;
    }
    return;
  }
  const gpu = norm.backend as WebGPUBackend;
  for (const t of tensors) {
    if (t.size === 0) continue;
    gpu.dispatch({
      key: 'optim|clipscale',
      code: clipScaleShader,
      buffers: [gpuBuf(t, 'read_write'), gpuBuf(norm, 'read')],
      params: new ParamBuilder().u32(t.size, t.offset, norm.offset).f32(maxNorm).words,
      workgroups: Math.ceil(t.size / OPTIM_WG),
    });
  }
}
