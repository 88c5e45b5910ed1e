/**
 * Fused in-place optimizer updates (Adam/AdamW, SGD), the EMA update, and the two halves of
 * gradient clipping by global norm (total norm on the device, then scaling by the clip coefficient
 * read from the device: no readback). These ops write into existing tensors (`into` outputs) and
 * are never recorded for autodiff. Each has a CPU reference kernel computing the same formula in
 * float64 (rounded on store when the CPU backend stores float32), and one GPU dispatch per tensor.
 *
 * Targets (parameters, moments, shadows, gradients being clipped) must be contiguous f32 tensors;
 * read-only inputs (gradients, EMA sources) may be strided views (the runner copies them dense).
 */
import { cpuData } from '../cpu/strided.js';
import type { Backend, Storage } from '../backend.js';
import { defineOp, checkSameBackend } from '../op.js';
import { fmtShape, shapesEqual } from '../shape.js';
import type { Tensor } from '../tensor.js';
import { adamBindingsPerTensor, adamKernel, adamParamWords, clipScaleKernel, emaKernel, normFinalKernel, normPartialKernel, OPTIM_WG, sgdKernel } from '../../shaders/optim.js';
import { PARAM_WORDS } from '../kernel.js';
import { isWebGPU } from '../webgpu/backend.js';
import { zeros } from './creation.js';

// `which` (e.g. " (parameter 3)") is appended to the name in the message: the name is only built
// when a check fails, since the optimizers run these for every parameter at every step.
function checkF32(op: string, name: string, t: Tensor, which = ''): void {
  t.storage; // clear error when disposed
  if (t.dtype !== 'f32') throw new TypeError(`${op}: ${name}${which} must be f32, got ${t.describe()}`);
}

function checkTarget(op: string, name: string, t: Tensor, which = ''): void {
  checkF32(op, name, t, which);
  if (!t.isContiguous) throw new Error(`${op}: ${name}${which} ${t.describe()} must be contiguous to be updated in place`);
}

function checkShape(op: string, name: string, t: Tensor, ref: Tensor, which = ''): void {
  if (!shapesEqual(t.shape, ref.shape)) throw new Error(`${op}: ${name}${which} has shape ${fmtShape(t.shape)}, expected ${fmtShape(ref.shape)} (the parameter's shape)`);
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

const into = (t: Tensor) => ({ into: t });

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

/** The per-step scalars of the update (shaders/optim.ts writes the formula out). */
function adamScalars(h: AdamHyper): { stepSize: number; bc2Sqrt: number; l2: number; decay: number } {
  return {
    stepSize: h.lr / (1 - h.beta1 ** h.step),
    bc2Sqrt: Math.sqrt(1 - h.beta2 ** h.step),
    l2: h.decoupled ? 0 : h.weightDecay,
    decay: h.decoupled ? 1 - h.lr * h.weightDecay : 1,
  };
}

/** Shared hyperparameters of one multi-tensor Adam dispatch, and each parameter's step number. */
interface AdamManyAttrs {
  hyper: Omit<AdamHyper, 'step'>;
  steps: readonly number[];
  amsgrad: boolean;
  /** The same values read from the optimizer's live state: recomputed at each replay of a captured step. */
  live?: AdamLive;
}

/** Where an optimizer's hyperparameters and step numbers live, read again at each replay of a captured step. */
export interface AdamLive {
  hyper: () => Omit<AdamHyper, 'step'>;
  steps: () => readonly number[];
}

/** The kernel's per-step parameters for a group's hyperparameters and each parameter's step. */
function adamStepParams(hyper: Omit<AdamHyper, 'step'>, steps: readonly number[]): Record<string, number | number[]> {
  const stepSize: number[] = [];
  const bc2Sqrt: number[] = [];
  for (const step of steps) {
    const s = adamScalars(Object.assign({}, hyper, { step }));
    stepSize.push(s.stepSize);
    bc2Sqrt.push(s.bc2Sqrt);
  }
  const { l2, decay } = adamScalars(Object.assign({}, hyper, { step: 1 }));
  return { stepSize, bc2Sqrt, beta1: hyper.beta1, beta2: hyper.beta2, eps: hyper.eps, l2, decay };
}

/** One parameter's slice of the update's inputs: p, g, m, v and, with AMSGrad, vmax. */
export interface AdamItem {
  p: Tensor;
  g: Tensor;
  m: Tensor;
  v: Tensor;
  vmax?: Tensor | null;
  /** The step number after incrementing (1 on the first update). */
  step: number;
  /** The same read from the optimizer's state when it changes between steps (replays of a captured step). */
  stepOf?: () => number;
}

/**
 * Per-parameter inputs are [p, g, m, v, vmax?], one storage binding each (the gradient is the one
 * read as a dense array).
 */
const perItem = adamBindingsPerTensor;

/** CPU reference of one parameter's update (float64 arithmetic, rounded on store for f32 storage). */
function adamCpu(p: Tensor, g: Tensor, m: Tensor, v: Tensor, vmax: Tensor | null, h: AdamHyper): void {
  const { stepSize, bc2Sqrt, l2, decay } = adamScalars(h);
  const { beta1: b1, beta2: b2, eps } = h;
  const P = cpuData(p), G = cpuData(g), M = cpuData(m), V = cpuData(v), W = vmax ? cpuData(vmax) : null;
  const po = p.offset, mo = m.offset, vo = v.offset, wo = vmax?.offset ?? 0;
  for (let i = 0; i < p.size; i++) {
    const p0 = P[po + i]!;
    let gr = G[i]!;
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
  }
}

/** The inputs per parameter of an Adam update, in order (names for errors). */
const ADAM_ROLES = ['param', 'grad', 'exp_avg', 'exp_avg_sq', 'max_exp_avg_sq'];

/** The kernel's binding names per parameter slot (`p3`), each made once rather than per dispatch. */
const slotNames = new Map<string, string[]>();
function slot(role: string, t: number): string {
  let names = slotNames.get(role);
  if (!names) slotNames.set(role, (names = []));
  return (names[t] ??= `${role}${t}`);
}

/**
 * Inputs [p, g, m, v, vmax?] per parameter (k parameters of one group); writes every p, m, v (and
 * vmax) in place, in one dispatch on a GPU.
 */
const adamOp = defineOp<AdamManyAttrs>({
  name: 'adam_update',
  outputs: (inputs, a) => {
    const op = a.hyper.decoupled ? 'adamw' : 'adam';
    const per = perItem(a.amsgrad);
    if (inputs.length === 0 || inputs.length !== per * a.steps.length) throw new Error(`${op}: expected ${per} tensors per parameter for ${a.steps.length} parameters, got ${inputs.length}`);
    checkSameBackend(op, inputs);
    const outs: { into: Tensor }[] = [];
    const k = a.steps.length;
    for (let t = 0; t < k; t++) {
      const at = t * per;
      const p = inputs[at]!;
      const g = inputs[at + 1]!;
      const m = inputs[at + 2]!;
      const v = inputs[at + 3]!;
      const vmax = a.amsgrad ? inputs[at + 4]! : null;
      const which = k === 1 ? '' : ` (parameter ${t})`;
      checkTarget(op, 'param', p, which);
      checkF32(op, 'grad', g, which);
      checkTarget(op, 'exp_avg', m, which);
      checkTarget(op, 'exp_avg_sq', v, which);
      if (vmax) checkTarget(op, 'max_exp_avg_sq', vmax, which);
      checkShape(op, 'grad', g, p, which);
      checkShape(op, 'exp_avg', m, p, which);
      checkShape(op, 'exp_avg_sq', v, p, which);
      if (vmax) checkShape(op, 'max_exp_avg_sq', vmax, p, which);
      const step = a.steps[t]!;
      if (!(step >= 1)) throw new RangeError(`${op}: step must be >= 1, got ${step}${which}`);
      outs.push(into(p), into(m), into(v));
      if (vmax) outs.push(into(vmax));
    }
    // The names of checkDistinct's message only when two inputs do share a storage.
    if (new Set(inputs.map((t) => t.storage)).size !== inputs.length) {
      checkDistinct(op, inputs.map((t, i) => [`${ADAM_ROLES[i % per]}${k === 1 ? '' : ` (parameter ${Math.floor(i / per)})`}`, t]));
    }
    return outs;
  },
  dense: (k, a) => k % perItem(a.amsgrad) === 1,
  kernels: {
    // Targets are written through the outputs (the tensors themselves); only gradients may be copies.
    cpu: (_b, { inputs, outputs, attrs: a }) => {
      const per = perItem(a.amsgrad);
      const outPer = per - 1;
      a.steps.forEach((step, t) => {
        const [p, m, v] = outputs.slice(t * outPer, t * outPer + 3) as [Tensor, Tensor, Tensor];
        adamCpu(p, inputs[t * per + 1]!, m, v, a.amsgrad ? outputs[t * outPer + 3]! : null, { ...a.hyper, step });
      });
    },
    webgpu: (gpu, { inputs, outputs, attrs: a }) => {
      const per = perItem(a.amsgrad);
      const outPer = per - 1;
      const k = a.steps.length;
      const bindings: Record<string, Tensor> = {};
      const cols = { n: [] as number[], wgEnd: [] as number[], pOff: [] as number[], gOff: [] as number[], mOff: [] as number[], vOff: [] as number[], vmaxOff: [] as number[] };
      let wg = 0;
      for (let t = 0; t < k; t++) {
        const [p, m, v] = outputs.slice(t * outPer, t * outPer + 3) as [Tensor, Tensor, Tensor];
        const g = inputs[t * per + 1]!;
        bindings[slot('p', t)] = p;
        bindings[slot('g', t)] = g;
        bindings[slot('m', t)] = m;
        bindings[slot('v', t)] = v;
        wg += Math.ceil(p.size / OPTIM_WG);
        cols.n.push(p.size);
        cols.wgEnd.push(wg);
        cols.pOff.push(p.offset);
        cols.gOff.push(g.offset);
        cols.mOff.push(m.offset);
        cols.vOff.push(v.offset);
        if (a.amsgrad) {
          const vmax = outputs[t * outPer + 3]!;
          bindings[slot('vmax', t)] = vmax;
          cols.vmaxOff.push(vmax.offset);
        }
      }
      const { vmaxOff, ...rest } = cols;
      const live = a.live;
      gpu.run(adamKernel, { k, amsgrad: a.amsgrad }, {
        params: Object.assign({}, rest, a.amsgrad ? { vmaxOff } : {}, adamStepParams(a.hyper, a.steps)),
        ...(live ? { dynamic: () => adamStepParams(live.hyper(), live.steps()) } : {}),
        bindings,
        workgroups: wg,
      });
    },
  },
});

/**
 * One Adam/AdamW step in place on p, m (first moment), v (second moment) and, when given, vmax
 * (AMSGrad's running maximum of v), from gradient g. PyTorch's formula and order of operations:
 * decay or L2 term, moments, bias corrections lr / (1 - b1^t) and sqrt(1 - b2^t), eps added
 * after dividing sqrt(v) by its correction.
 */
export function adamUpdate(p: Tensor, g: Tensor, m: Tensor, v: Tensor, h: AdamHyper, vmax: Tensor | null = null): void {
  const { step, ...hyper } = h;
  adamOp(vmax ? [p, g, m, v, vmax] : [p, g, m, v], { hyper, steps: [step], amsgrad: vmax !== null });
}

/**
 * Adam/AdamW steps of several parameters sharing the hyperparameters `h` (one parameter group;
 * each item has its own step number), as adamUpdate per item but in as few dispatches as the
 * device's storage-binding limit allows (on lavapipe, 16 bindings: 4 parameters per dispatch).
 * Items must all have vmax (AMSGrad) or none. With `liveHyper` and every item's `stepOf`, a
 * captured step's replays recompute the bias corrections and learning-rate terms from them.
 */
export function adamUpdateMany(items: readonly AdamItem[], h: Omit<AdamHyper, 'step'>, liveHyper?: () => Omit<AdamHyper, 'step'>): void {
  if (items.length === 0) return;
  const amsgrad = !!items[0]!.vmax;
  if (items.some((it) => !!it.vmax !== amsgrad)) throw new Error(`${h.decoupled ? 'adamw' : 'adam'}: either every parameter has max_exp_avg_sq (AMSGrad) or none`);
  const k = adamTensorsPerDispatch(items[0]!.p.backend, amsgrad);
  const run = (chunk: AdamItem[]) => {
    const inputs = chunk.flatMap((it) => (amsgrad ? [it.p, it.g, it.m, it.v, it.vmax!] : [it.p, it.g, it.m, it.v]));
    const steps = chunk.map((it) => it.step);
    // Recomputed at each replay of a captured step from the optimizer's live state (engine/capture.ts).
    const live = liveHyper && chunk.every((it) => it.stepOf) ? { hyper: liveHyper, steps: () => chunk.map((it) => it.stepOf!()) } : undefined;
    adamOp(inputs, { hyper: h, steps, amsgrad, ...(live ? { live } : {}) });
  };
  // Parameters whose tensors share storage (views of one buffer) go to different dispatches: a
  // written binding may not alias another one.
  let chunk: AdamItem[] = [];
  let used = new Set<Storage>();
  for (const it of items) {
    const mine = [it.p, it.g, it.m, it.v, ...(it.vmax ? [it.vmax] : [])].map((t) => t.storage);
    if (chunk.length === k || mine.some((st) => used.has(st))) {
      run(chunk);
      chunk = [];
      used = new Set();
    }
    chunk.push(it);
    for (const st of mine) used.add(st);
  }
  run(chunk);
}

/** How many parameters one Adam dispatch can take on this backend (storage bindings, parameter words). */
export function adamTensorsPerDispatch(b: Backend, amsgrad: boolean): number {
  if (!isWebGPU(b)) return Infinity;
  const byBindings = Math.floor(b.device.limits.maxStorageBuffersPerShaderStage / adamBindingsPerTensor(amsgrad));
  let byWords = 1;
  while (adamParamWords(byWords + 1, amsgrad) <= PARAM_WORDS) byWords++;
  return Math.max(1, Math.min(byBindings, byWords));
}

export interface SgdHyper {
  lr: number;
  momentum: number;
  dampening: number;
  nesterov: boolean;
  weightDecay: number;
  /** First step for this parameter: the momentum buffer is set to the gradient (no dampening). */
  first: boolean;
  /** The learning rate read again at each replay of a captured step (a schedule changes it). */
  liveLr?: () => number;
}

const WITH_MOMENTUM = { momentum: true };
const NO_MOMENTUM = { momentum: false };

/** Inputs [p, g, buf?] (buf exactly when momentum != 0); writes p (and buf) in place. */
const sgdOp = defineOp<SgdHyper>({
  name: 'sgd_update',
  outputs: (inputs) => {
    const op = 'sgd';
    const [p, g] = inputs as [Tensor, Tensor];
    const buf = inputs[2] ?? null;
    checkTarget(op, 'param', p);
    checkF32(op, 'grad', g);
    if (buf) checkTarget(op, 'momentum_buffer', buf);
    checkSameBackend(op, inputs);
    checkShape(op, 'grad', g, p);
    if (buf) checkShape(op, 'momentum_buffer', buf, p);
    checkDistinct(op, [['param', p], ['grad', g], ['momentum_buffer', buf]]);
    return buf ? [into(p), into(buf)] : [into(p)];
  },
  dense: [1],
  kernels: {
    cpu: (_b, { inputs, attrs: h }) => {
      const [p, g] = inputs as [Tensor, Tensor];
      const buf = inputs[2] ?? null;
      const { lr, momentum: mom, dampening, nesterov, weightDecay: wd, first } = h;
      const P = cpuData(p), G = cpuData(g), B = buf ? cpuData(buf) : null;
      const po = p.offset, bo = buf?.offset ?? 0;
      for (let i = 0; i < p.size; i++) {
        const p0 = P[po + i]!;
        let d = G[i]!;
        if (wd !== 0) d = d + wd * p0;
        if (B) {
          const b = first ? d : B[bo + i]! * mom + (1 - dampening) * d;
          B[bo + i] = b;
          d = nesterov ? d + mom * b : b;
        }
        P[po + i] = p0 - lr * d;
      }
    },
    webgpu: (gpu, { inputs, attrs: h }) => {
      const [p, g] = inputs as [Tensor, Tensor];
      const buf = inputs[2] ?? null;
      gpu.run(sgdKernel, buf ? WITH_MOMENTUM : NO_MOMENTUM, {
        params: {
          n: p.size, pOff: p.offset, gOff: g.offset, bufOff: buf?.offset ?? 0,
          lr: h.lr, wd: h.weightDecay, momentum: h.momentum, dampening: h.dampening, first: h.first ? 1 : 0, nesterov: h.nesterov ? 1 : 0,
        },
        ...(h.liveLr ? { dynamic: () => ({ lr: h.liveLr!() }) } : {}),
        bindings: buf ? { p, g, buf } : { p, g },
        workgroups: Math.ceil(p.size / OPTIM_WG),
      });
    },
  },
});

/**
 * One SGD step in place (PyTorch semantics): d = g + wd * p; with momentum, buf = d on the first
 * step, else momentum * buf + (1 - dampening) * d, and d = buf (or d + momentum * buf with
 * Nesterov); p -= lr * d. `buf` is required when momentum != 0 and ignored otherwise.
 */
export function sgdUpdate(p: Tensor, g: Tensor, buf: Tensor | null, h: SgdHyper): void {
  if (h.momentum !== 0 && !buf) throw new Error('sgd: momentum != 0 needs a momentum buffer');
  sgdOp(h.momentum !== 0 ? [p, g, buf!] : [p, g], h);
}

/** The decay, and where a captured step's replays read it again (an EMA whose decay warms up). */
interface EmaAttrs {
  decay: number;
  live?: () => number;
}

/** Inputs [shadow, x], attrs the decay; writes shadow in place. */
const emaOp = defineOp<EmaAttrs>({
  name: 'ema_update',
  outputs: ([shadow, x]) => {
    const op = 'ema';
    checkTarget(op, 'shadow', shadow!);
    checkF32(op, 'source', x!);
    checkSameBackend(op, [shadow!, x!]);
    if (!shapesEqual(shadow!.shape, x!.shape)) throw new Error(`ema: source has shape ${fmtShape(x!.shape)}, shadow has ${fmtShape(shadow!.shape)}`);
    checkDistinct(op, [['shadow', shadow!], ['source', x!]]);
    return [into(shadow!)];
  },
  dense: [1],
  kernels: {
    cpu: (_b, { inputs: [shadow, x], attrs: { decay } }) => {
      const S = cpuData(shadow!), X = cpuData(x!);
      const so = shadow!.offset;
      for (let i = 0; i < shadow!.size; i++) S[so + i] = decay * S[so + i]! + (1 - decay) * X[i]!;
    },
    webgpu: (gpu, { inputs: [s, x], attrs: { decay, live } }) => {
      gpu.run(emaKernel, undefined, {
        params: { n: s!.size, sOff: s!.offset, xOff: x!.offset, decay },
        ...(live ? { dynamic: () => ({ decay: live() }) } : {}),
        bindings: { s: s!, x: x! },
        workgroups: Math.ceil(s!.size / OPTIM_WG),
      });
    },
  },
});

/**
 * shadow = decay * shadow + (1 - decay) * x, in place (exponential moving average of weights).
 * `liveDecay` (returning `decay` now) is read again at each replay of a captured step.
 */
export function emaUpdate(shadow: Tensor, x: Tensor, decay: number, liveDecay?: () => number): void {
  emaOp([shadow, x], liveDecay ? { decay, live: liveDecay } : { decay });
}

/** Most workgroups one tensor's partial-norm pass uses (each folds a grid-strided share). */
const NORM_MAX_GROUPS = 256;
/** Elements per thread below which fewer workgroups are used. */
const NORM_PER_THREAD = 8;

const INF_NORM = { inf: true };
const TWO_NORM = { inf: false };

/** Inputs: the tensors (at least one); attrs: true for the infinity norm. Output: the 0-d norm. */
const totalNormOp = defineOp<boolean>({
  name: 'total_norm',
  outputs: (inputs) => {
    inputs.forEach((t, k) => checkF32('totalNorm', `tensor ${k}`, t));
    checkSameBackend('totalNorm', inputs);
    return [{ shape: [], dtype: 'f32', name: 'totalNorm' }];
  },
  dense: true,
  kernels: {
    cpu: (_b, { inputs, outputs, attrs: inf }) => {
      let acc = 0;
      for (const t of inputs) {
        const d = cpuData(t);
        for (let i = 0; i < t.size; i++) {
          const v = d[i]!;
          acc = inf ? (Number.isNaN(v) ? NaN : Math.max(acc, Math.abs(v))) : acc + v * v;
        }
      }
      cpuData(outputs[0]!)[0] = inf ? acc : Math.sqrt(acc);
    },
    webgpu: (gpu, { inputs, outputs, attrs: inf }) => {
      const variant = inf ? INF_NORM : TWO_NORM;
      const groups = inputs.map((t) => Math.min(NORM_MAX_GROUPS, Math.ceil(t.size / (OPTIM_WG * NORM_PER_THREAD))));
      const count = groups.reduce((a, b) => a + b, 0);
      const part = gpu.alloc(Math.max(count, 1), 'f32');
      let base = 0;
      inputs.forEach((t, k) => {
        const ng = groups[k]!;
        if (ng === 0) return;
        gpu.run(normPartialKernel, variant, { params: { n: t.size, xOff: t.offset, partOff: base, groups: ng }, bindings: { x: t, part }, workgroups: ng });
        base += ng;
      });
      gpu.run(normFinalKernel, variant, { params: { count }, bindings: { part, out: outputs[0]! }, workgroups: 1 });
      gpu.free(part);
    },
  },
});

/**
 * The norm of all elements of `tensors` taken together (as if concatenated), as a new 0-d f32
 * tensor computed on the device: `normType` 2 (Euclidean) or Infinity (max |x|). One pass per
 * tensor writes partial results and one more pass combines them; nothing is read back.
 * An empty list gives 0 on `opts.backend`.
 */
export function totalNorm(tensors: readonly Tensor[], normType = 2, opts: { backend?: Backend } = {}): Tensor {
  const op = 'totalNorm';
  if (normType !== 2 && normType !== Infinity) throw new RangeError(`${op}: normType must be 2 or Infinity, got ${normType}`);
  if (tensors.length > 0) return totalNormOp(tensors, normType === Infinity)[0]!;
  if (!opts.backend) throw new Error(`${op}: no tensors and no backend given`);
  return zeros([], { backend: opts.backend });
}

/** Inputs [norm, ...targets], attrs maxNorm; scales the targets in place. */
const clipOp = defineOp<number>({
  name: 'clip_by_norm',
  outputs: (inputs) => {
    const op = 'clipByNorm';
    const [norm, ...tensors] = inputs as [Tensor, ...Tensor[]];
    checkF32(op, 'norm', norm);
    if (norm.size !== 1) throw new Error(`${op}: norm must have one element, got ${norm.describe()}`);
    tensors.forEach((t, k) => checkTarget(op, `tensor ${k}`, t));
    checkSameBackend(op, inputs);
    checkDistinct(op, [['norm', norm], ...tensors.map((t, k) => [`tensor ${k}`, t] as [string, Tensor])]);
    return tensors.map(into);
  },
  kernels: {
    cpu: (_b, { inputs, outputs, attrs: maxNorm }) => {
      const norm = inputs[0]!;
      const c = Math.min(1, maxNorm / (cpuData(norm)[norm.offset]! + 1e-6));
      for (const t of outputs) {
        const d = cpuData(t);
        for (let i = t.offset; i < t.offset + t.size; i++) d[i] = d[i]! * c;
      }
    },
    webgpu: (gpu, { inputs, outputs, attrs: maxNorm }) => {
      const nrm = inputs[0]!;
      for (const x of outputs) {
        if (x.size === 0) continue;
        gpu.run(clipScaleKernel, undefined, {
          params: { n: x.size, xOff: x.offset, normOff: nrm.offset, maxNorm },
          bindings: { x, nrm },
          workgroups: Math.ceil(x.size / OPTIM_WG),
        });
      }
    },
  },
});

/**
 * Scales every tensor in place by min(1, maxNorm / (norm + 1e-6)) where `norm` is a one-element
 * tensor (e.g. from totalNorm) read on the device, as torch.nn.utils.clip_grad_norm_ does.
 * Targets must be contiguous and must not share memory with each other.
 */
export function clipByNorm(tensors: readonly Tensor[], norm: Tensor, maxNorm: number): void {
  clipOp([norm, ...tensors], maxNorm);
}
