/**
 * Optimizer base: parameter groups with per-group hyperparameters, lazily created per-parameter
 * state (step count and moment tensors), step / zeroGrad, and a state dict with the layout and
 * key names of torch.optim.Optimizer.state_dict() (parameters identified by their index in group
 * order, moments as tensors so a checkpoint writer can store them).
 *
 * State tensors are owned by the optimizer: they are kept out of enclosing tidy() scopes and freed
 * by dispose(). Updates run as fused in-place kernels (engine/ops/optim.ts): a step allocates no
 * tensors once the state exists.
 */
import * as E from '../../engine/index.js';
import { cpuContiguous } from '../../engine/cpu/strided.js';

type Tensor = E.Tensor;

export type NamedParam = readonly [string, Tensor];
/** Parameters: tensors, or [name, tensor] pairs (e.g. a module's named parameters). */
export type ParamList = Iterable<Tensor> | Iterable<NamedParam>;
/** A parameter group: its parameters plus any hyperparameters that override the defaults. */
export type ParamGroupSpec<H> = Partial<H> & { params: ParamList };
/** A live parameter group; change `lr` (or any hyperparameter) between steps. */
export type ParamGroup<H> = H & { params: Tensor[]; paramNames: string[] | null };

/** Per-parameter state in a state dict: the step count plus named moment tensors. */
export interface ParamStateDict {
  step: number;
  [buffer: string]: Tensor | number;
}

/** A group in a state dict: hyperparameters under PyTorch's names, and the parameters' indices. */
export interface GroupStateDict {
  params: number[];
  param_names?: string[];
  [hyper: string]: unknown;
}

export interface OptimizerStateDict {
  state: Record<number, ParamStateDict>;
  param_groups: GroupStateDict[];
}

/** What loadStateDict accepts: moments may also be CPU tensors or raw data, the step a one-element CPU tensor. */
export interface OptimizerStateDictInput {
  state: Record<number, { step: number | Tensor; [buffer: string]: StateValue | number | null | undefined }>;
  param_groups: GroupStateDict[];
}

/** Values accepted for a moment tensor when loading: a tensor (same backend, or any CPU tensor) or raw data. */
export type StateValue = Tensor | Float32Array | Float64Array | readonly number[];

export interface ParamState {
  step: number;
  buffers: Record<string, Tensor>;
}

function camelToSnake(s: string): string {
  return s.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`);
}

function isNamed(x: unknown): x is NamedParam {
  return Array.isArray(x) && x.length === 2 && typeof x[0] === 'string' && E.isTensor(x[1]);
}

function isGroupSpec(x: unknown): x is ParamGroupSpec<unknown> {
  return typeof x === 'object' && x !== null && !E.isTensor(x) && !Array.isArray(x) && 'params' in x;
}

/** Splits a parameter list into tensors and (when every entry is named) names. */
export function normalizeParams(params: ParamList, where: string): { params: Tensor[]; names: string[] | null } {
  const items = [...(params as Iterable<unknown>)];
  if (items.every((x) => E.isTensor(x))) return { params: items as Tensor[], names: null };
  if (items.every(isNamed)) return { params: items.map((x) => x[1]), names: items.map((x) => x[0]) };
  const bad = items.findIndex((x) => !E.isTensor(x) && !isNamed(x));
  if (bad >= 0) throw new TypeError(`${where}: entry ${bad} is neither a Tensor nor a [name, Tensor] pair`);
  throw new TypeError(`${where}: mixes tensors and [name, Tensor] pairs; use one form per group`);
}

export abstract class Optimizer<H extends { lr: number }> {
  readonly paramGroups: ParamGroup<H>[] = [];
  readonly defaults: Readonly<H>;
  protected readonly state = new Map<Tensor, ParamState>();

  constructor(params: ParamList | Iterable<ParamGroupSpec<H>>, defaults: H) {
    this.defaults = Object.freeze({ ...defaults });
    const items = [...(params as Iterable<unknown>)];
    if (items.length === 0) throw new Error(`${this.name}: got an empty parameter list`);
    const nGroups = items.filter(isGroupSpec).length;
    if (nGroups > 0 && nGroups < items.length) throw new TypeError(`${this.name}: mixes parameter groups ({ params, ... }) and parameters`);
    const specs: ParamGroupSpec<H>[] = nGroups > 0 ? (items as ParamGroupSpec<H>[]) : [{ params: items as ParamList } as ParamGroupSpec<H>];
    const seen = new Set<Tensor>();
    specs.forEach((spec, gi) => {
      const where = `${this.name} param group ${gi}`;
      for (const k of Object.keys(spec)) {
        if (k !== 'params' && !(k in defaults)) throw new Error(`${where}: unknown option '${k}' (options: ${Object.keys(defaults).join(', ')})`);
      }
      const { params, names } = normalizeParams(spec.params, where);
      params.forEach((p, j) => {
        const label = names ? `'${names[j]}'` : `#${j}`;
        p.storage; // clear error when disposed
        if (p.dtype !== 'f32') throw new TypeError(`${where}: parameter ${label} is ${p.dtype}; only f32 tensors can be optimized`);
        if (p.node) throw new Error(`${where}: parameter ${label} ${p.describe()} is not a leaf tensor (it was computed by ${p.node.op}); optimize leaves`);
        if (seen.has(p)) throw new Error(`${where}: parameter ${label} appears more than once across parameter groups`);
        seen.add(p);
      });
      const hyper = {} as H;
      for (const k of Object.keys(defaults) as (keyof H)[]) {
        const v = (spec as Partial<H>)[k] ?? defaults[k];
        hyper[k] = (Array.isArray(v) ? [...v] : v) as H[keyof H];
      }
      this.validate(hyper, where);
      this.paramGroups.push({ ...hyper, params, paramNames: names });
    });
  }

  /** Class name used in messages. */
  get name(): string {
    return this.constructor.name;
  }

  /** Checks one group's hyperparameters (throws RangeError naming the group). */
  protected abstract validate(h: H, where: string): void;

  /** Names of the state buffers a parameter of this group has once stepped (required) or may have. */
  protected abstract stateKeys(h: H): { required: string[]; optional: string[] };

  /** Applies one update to parameter `p` from gradient `g`, creating state on first use. */
  protected abstract update(p: Tensor, g: Tensor, state: ParamState, group: ParamGroup<H>): void;

  /** The learning rate of the first group; setting it sets every group's. */
  get lr(): number {
    return this.paramGroups[0]!.lr;
  }

  set lr(v: number) {
    for (const g of this.paramGroups) g.lr = v;
  }

  /** The state of `p` (undefined before its first update). */
  stateOf(p: Tensor): Readonly<ParamState> | undefined {
    return this.state.get(p);
  }

  /**
   * Applies one update to every parameter of `group` in `items` (each with its gradient and state);
   * optimizers with a multi-tensor kernel override this to update many parameters per dispatch.
   */
  protected updateGroup(items: readonly { p: Tensor; g: Tensor; state: ParamState }[], group: ParamGroup<H>): void {
    for (const { p, g, state } of items) this.update(p, g, state, group);
  }

  /** Updates every parameter that has a gradient (parameters whose .grad is null are skipped). */
  step(): void {
    E.noGrad(() => {
      this.paramGroups.forEach((group, gi) => {
        this.validate(group, `${this.name} param group ${gi}`);
        const items: { p: Tensor; g: Tensor; state: ParamState }[] = [];
        for (const p of group.params) {
          const g = p.grad;
          if (!g) continue;
          if (!E.shapesEqual(g.shape, p.shape)) {
            throw new Error(`${this.name}: gradient of ${this.label(group, p)} has shape ${E.fmtShape(g.shape)}, the parameter ${E.fmtShape(p.shape)}`);
          }
          let state = this.state.get(p);
          if (!state) this.state.set(p, (state = { step: 0, buffers: {} }));
          items.push({ p, g, state });
        }
        this.updateGroup(items, group);
      });
    });
  }

  /** Disposes every parameter's gradient and sets it to null. */
  zeroGrad(): void {
    for (const group of this.paramGroups) {
      for (const p of group.params) {
        p.grad?.dispose();
        p.grad = null;
      }
    }
  }

  /** A zero-filled state buffer shaped like `p`, owned by the optimizer. */
  protected buffer(p: Tensor, st: ParamState, name: string): { t: Tensor; created: boolean } {
    const have = st.buffers[name];
    if (have) return { t: have, created: false };
    const t = E.keep(E.zerosLike(p));
    st.buffers[name] = t;
    return { t, created: true };
  }

  protected label(group: ParamGroup<H>, p: Tensor): string {
    const j = group.params.indexOf(p);
    const gi = this.paramGroups.indexOf(group);
    return group.paramNames ? `'${group.paramNames[j]}' (group ${gi})` : `parameter ${j} of group ${gi}`;
  }

  /**
   * The optimizer state: { state: {index: {step, <buffers>}}, param_groups: [{<hyper>, params: [indices]}] }
   * like PyTorch (hyperparameters under its snake_case names). The tensors are the optimizer's
   * own (not copies): read or copy them before the next step() and do not dispose them.
   */
  stateDict(): OptimizerStateDict {
    const state: Record<number, ParamStateDict> = {};
    const groups: GroupStateDict[] = [];
    let idx = 0;
    for (const group of this.paramGroups) {
      const g: GroupStateDict = { params: [] };
      for (const k of Object.keys(this.defaults)) {
        const v = (group as unknown as Record<string, unknown>)[k];
        g[camelToSnake(k)] = Array.isArray(v) ? [...v] : v;
      }
      if (group.paramNames) g.param_names = [...group.paramNames];
      for (const p of group.params) {
        const st = this.state.get(p);
        if (st) state[idx] = { step: st.step, ...st.buffers };
        g.params.push(idx++);
      }
      groups.push(g);
    }
    return { state, param_groups: groups };
  }

  /**
   * Restores hyperparameters and per-parameter state (copied: the caller keeps ownership of what
   * it passes). The dict must describe the same groups with the same numbers of parameters (and
   * names, when both sides have them); moments must have the parameters' shapes.
   */
  loadStateDict(dict: OptimizerStateDictInput): void {
    const where = `${this.name}.loadStateDict`;
    const groups = dict.param_groups;
    if (!Array.isArray(groups) || groups.length !== this.paramGroups.length) {
      throw new Error(`${where}: the state dict has ${Array.isArray(groups) ? groups.length : 'no'} parameter groups, this optimizer ${this.paramGroups.length}`);
    }
    const byIndex = new Map<number, Tensor>();
    groups.forEach((g, gi) => {
      const group = this.paramGroups[gi]!;
      if (!Array.isArray(g.params) || g.params.length !== group.params.length) {
        throw new Error(`${where}: group ${gi} has ${Array.isArray(g.params) ? g.params.length : 'no'} parameters in the state dict, ${group.params.length} here`);
      }
      if (g.param_names && group.paramNames) {
        const j = g.param_names.findIndex((n, k) => n !== group.paramNames![k]);
        if (j >= 0) throw new Error(`${where}: group ${gi} parameter ${j} is '${g.param_names[j]}' in the state dict, '${group.paramNames[j]}' here`);
      }
      g.params.forEach((i, j) => byIndex.set(i, group.params[j]!));
    });
    // Validate everything before changing anything.
    const hypers = groups.map((g, gi) => {
      const h = {} as H;
      for (const k of Object.keys(this.defaults) as (keyof H & string)[]) {
        const snake = camelToSnake(k);
        const v = snake in g ? g[snake] : (this.paramGroups[gi] as unknown as H)[k];
        (h as Record<string, unknown>)[k] = Array.isArray(v) ? [...v] : v;
      }
      this.validate(h, `${where} group ${gi}`);
      return h;
    });
    const groupOf = new Map<Tensor, number>();
    this.paramGroups.forEach((g, gi) => g.params.forEach((p) => groupOf.set(p, gi)));
    const entries = Object.entries(dict.state ?? {}).map(([k, s]) => {
      const i = Number(k);
      const p = byIndex.get(i);
      if (!p) throw new Error(`${where}: state for parameter index ${k}, which no group lists`);
      const keys = this.stateKeys(hypers[groupOf.get(p)!]!);
      const present = Object.keys(s).filter((name) => name !== 'step' && s[name] !== null && s[name] !== undefined);
      const missing = keys.required.filter((name) => !present.includes(name));
      const unknown = present.filter((name) => !keys.required.includes(name) && !keys.optional.includes(name));
      if (missing.length) throw new Error(`${where}: parameter ${k} lacks state ${missing.map((m) => `'${m}'`).join(', ')}`);
      if (unknown.length) throw new Error(`${where}: parameter ${k} has unexpected state ${unknown.map((m) => `'${m}'`).join(', ')} (${this.name} keeps ${[...keys.required, ...keys.optional].map((m) => `'${m}'`).join(', ')})`);
      const step = typeof s.step === 'number' ? s.step : stepFromTensor(s.step, `${where} parameter ${k}`);
      if (!(Number.isInteger(step) && step >= 0)) throw new Error(`${where}: parameter ${k} has step ${String(s.step)}; expected a non-negative integer`);
      const bufs: [string, StateValue][] = [];
      for (const name of present) {
        const v = s[name];
        if (typeof v === 'number') throw new Error(`${where}: '${name}' of parameter ${k} is a number; expected a tensor or an array`);
        const shape = E.isTensor(v) ? v.shape : null;
        const n = E.isTensor(v) ? v.size : (v as ArrayLike<number>).length;
        if ((shape && !E.shapesEqual(shape, p.shape)) || n !== p.size) {
          throw new Error(`${where}: '${name}' of parameter ${k} has ${shape ? `shape ${E.fmtShape(shape)}` : `${n} values`}, the parameter has shape ${E.fmtShape(p.shape)}`);
        }
        if (E.isTensor(v) && v.backend !== p.backend && v.backend.kind !== 'cpu') {
          throw new Error(`${where}: '${name}' of parameter ${k} lives on ${v.backend.name}, the parameter on ${p.backend.name}; move it with await t.to(backend)`);
        }
        bufs.push([name, v as StateValue]);
      }
      return { p, step, bufs };
    });
    hypers.forEach((h, gi) => Object.assign(this.paramGroups[gi]!, h));
    const old = this.state;
    const fresh = new Map<Tensor, ParamState>();
    for (const { p, step, bufs } of entries) {
      const prev = old.get(p);
      const st: ParamState = { step, buffers: {} };
      for (const [name, v] of bufs) {
        const target = prev?.buffers[name] ?? E.keep(E.zerosLike(p));
        if (prev) delete prev.buffers[name];
        copyInto(target, v);
        st.buffers[name] = target;
      }
      fresh.set(p, st);
    }
    for (const st of old.values()) for (const t of Object.values(st.buffers)) t.dispose();
    old.clear();
    for (const [p, st] of fresh) old.set(p, st);
  }

  /** Frees the optimizer's state tensors (the parameters are the caller's). */
  dispose(): void {
    for (const st of this.state.values()) for (const t of Object.values(st.buffers)) t.dispose();
    this.state.clear();
  }

  /** `using opt = new AdamW(...)` frees the state when the block ends. */
  [Symbol.dispose](): void {
    this.dispose();
  }
}

function stepFromTensor(v: unknown, where: string): number {
  if (E.isTensor(v) && v.backend.kind === 'cpu' && v.size === 1) return cpuContiguous(v)[0]!;
  throw new Error(`${where}: step must be a number (or a one-element CPU tensor)`);
}

/** Copies `v` into the existing tensor `target` (same backend, or uploaded from CPU data). */
export function copyInto(target: Tensor, v: StateValue): void {
  if (E.isTensor(v) && v.backend === target.backend) {
    if (v.storage !== target.storage) target.assign(v);
    return;
  }
  const data = E.isTensor(v) ? cpuContiguous(v) : (v as ArrayLike<number>);
  E.tidy(() => {
    target.assign(E.tensor(data, [...target.shape], { backend: target.backend }));
  });
}
