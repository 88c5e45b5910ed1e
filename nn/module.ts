/**
 * Module: a tree of named parameters, buffers and child modules with PyTorch-style dotted names
 * (`encoder.blocks.0.attn.qkv.weight`), train/eval mode and state dicts. Parameters are plain
 * tensors that require grad; optimizers update them in place, so references stay valid.
 *
 * Every call of a module's `forward` runs in a composite scope (engine/scope.ts): without gradient
 * recording its intermediates are freed when it returns; while recording they stay with the
 * caller's scope (the training step's), since backward reads them.
 */
import { fmtShape, keep, noGrad, type Tensor } from '../engine/index.js';
import { abortScope, closeScope, openScope } from '../engine/scope.js';

type AnyFn = (...args: unknown[]) => unknown;

/** `fn` as a method that runs in its own scope. */
function scoped(fn: AnyFn): AnyFn {
  return function (this: unknown, ...args: unknown[]) {
    const depth = openScope();
    let result: unknown;
    try {
      result = fn.apply(this, args);
    } catch (e) {
      abortScope(depth);
      throw e;
    }
    return closeScope(depth, result, false);
  };
}

/** Prototypes whose own `forward` was replaced by its scoped form. */
const scopedClasses = new WeakSet<object>();

/** Replaces the own `forward` of every class between `proto` and Module by its scoped form, once per class. */
function scopeForwards(proto: object | null): void {
  for (; proto && proto !== Module.prototype && !scopedClasses.has(proto); proto = Object.getPrototypeOf(proto) as object | null) {
    scopedClasses.add(proto);
    const d = Object.getOwnPropertyDescriptor(proto, 'forward');
    if (d && typeof d.value === 'function') Object.defineProperty(proto, 'forward', { ...d, value: scoped(d.value as AnyFn) });
  }
}

export abstract class Module implements Disposable {
  training = true;
  private readonly _params = new Map<string, Tensor>();
  private readonly _buffers = new Map<string, Tensor>();
  private readonly _modules = new Map<string, Module>();

  constructor() {
    scopeForwards(Object.getPrototypeOf(this) as object);
  }

  /** Registers (and returns) a parameter: it requires grad and survives tidy scopes. */
  protected param(name: string, t: Tensor): Tensor {
    this.checkName(name);
    this._params.set(name, keep(t.requireGrad()));
    t.name ??= name;
    return t;
  }

  /** Registers a non-trainable tensor saved in the state dict (e.g. running statistics). */
  protected buffer(name: string, t: Tensor): Tensor {
    this.checkName(name);
    this._buffers.set(name, keep(t));
    return t;
  }

  /** Registers (and returns) a child module. */
  protected module<M extends Module>(name: string, m: M): M {
    this.checkName(name);
    this._modules.set(name, m);
    return m;
  }

  private checkName(name: string): void {
    if (!name || name.includes('.')) throw new Error(`${this.constructor.name}: invalid member name '${name}' (non-empty, no dots)`);
    if (this._params.has(name) || this._buffers.has(name) || this._modules.has(name)) {
      throw new Error(`${this.constructor.name}: '${name}' is already registered`);
    }
  }

  *namedModules(prefix = ''): Generator<[string, Module]> {
    yield [prefix, this];
    for (const [n, m] of this._modules) yield* m.namedModules(prefix ? `${prefix}.${n}` : n);
  }

  *children(): Generator<[string, Module]> {
    yield* this._modules;
  }

  namedParameters(): [string, Tensor][] {
    const out: [string, Tensor][] = [];
    for (const [p, m] of this.namedModules()) for (const [n, t] of m._params) out.push([p ? `${p}.${n}` : n, t]);
    return out;
  }

  parameters(): Tensor[] {
    return this.namedParameters().map(([, t]) => t);
  }

  namedBuffers(): [string, Tensor][] {
    const out: [string, Tensor][] = [];
    for (const [p, m] of this.namedModules()) for (const [n, t] of m._buffers) out.push([p ? `${p}.${n}` : n, t]);
    return out;
  }

  /** Parameters and buffers by dotted name (the tensors themselves, not copies). */
  stateDict(): Record<string, Tensor> {
    return Object.fromEntries([...this.namedParameters(), ...this.namedBuffers()]);
  }

  /**
   * Copies values into the existing tensors. Missing, unexpected or mis-shaped keys are errors
   * (listing every problem at once) unless `strict` is false, which skips missing/unexpected keys
   * but still refuses mis-shaped ones. Nothing is written unless every check passes.
   */
  loadStateDict(state: Record<string, Tensor>, strict = true): { missing: string[]; unexpected: string[] } {
    const own = this.stateDict();
    const missing = Object.keys(own).filter((k) => !(k in state));
    const unexpected = Object.keys(state).filter((k) => !(k in own));
    const problems: string[] = [];
    for (const [k, t] of Object.entries(state)) {
      const o = own[k];
      if (!o) continue;
      if (o.shape.length !== t.shape.length || o.shape.some((d, i) => d !== t.shape[i])) problems.push(`'${k}': expected shape ${fmtShape(o.shape)}, got ${fmtShape(t.shape)}`);
      else if (o.dtype !== t.dtype) problems.push(`'${k}': expected dtype ${o.dtype}, got ${t.dtype}`);
    }
    if (strict) {
      if (missing.length) problems.push(`missing keys: ${missing.join(', ')}`);
      if (unexpected.length) problems.push(`unexpected keys: ${unexpected.join(', ')}`);
    }
    if (problems.length) throw new Error(`${this.constructor.name}.loadStateDict: ${problems.join('; ')}`);
    noGrad(() => {
      for (const [k, t] of Object.entries(state)) {
        const o = own[k];
        if (!o) continue;
        if (t.backend !== o.backend) throw new Error(`loadStateDict: '${k}' is on ${t.backend.name}, the model on ${o.backend.name}; load it with the model's backend`);
        o.assign(t);
      }
    });
    return { missing, unexpected };
  }

  train(mode = true): this {
    for (const [, m] of this.namedModules()) m.training = mode;
    return this;
  }

  eval(): this {
    return this.train(false);
  }

  /** Frees every parameter and buffer (and their gradients): kept state that lives as long as the module. */
  dispose(): void {
    for (const [, t] of [...this.namedParameters(), ...this.namedBuffers()]) {
      t.grad?.dispose();
      t.grad = null;
      t.dispose();
    }
  }

  /** `using model = ...` frees the model where the block ends. */
  [Symbol.dispose](): void {
    this.dispose();
  }

  /** Frees and clears the gradient of every parameter (gradients are kept until then). */
  zeroGrad(): void {
    for (const p of this.parameters()) {
      p.grad?.dispose();
      p.grad = null;
    }
  }

  numParameters(): number {
    return this.parameters().reduce((n, p) => n + p.size, 0);
  }

  /** One line: class, parameter count and the direct children. */
  summary(): string {
    const kids = [...this._modules].map(([n, m]) => `${n}: ${m.constructor.name}`).join(', ');
    return `${this.constructor.name} (${formatCount(this.numParameters())} parameters)${kids ? ` [${kids}]` : ''}`;
  }
}

export function formatCount(n: number): string {
  if (n >= 1e9) return `${(n / 1e9).toFixed(2)}B`;
  if (n >= 1e6) return `${(n / 1e6).toFixed(2)}M`;
  if (n >= 1e3) return `${(n / 1e3).toFixed(1)}k`;
  return String(n);
}

/** An indexable list of child modules named 0, 1, 2... */
export class ModuleList<M extends Module = Module> extends Module {
  readonly items: M[] = [];
  constructor(mods: M[] = []) {
    super();
    for (const m of mods) this.push(m);
  }
  push(m: M): this {
    this.module(String(this.items.length), m);
    this.items.push(m);
    return this;
  }
  get length(): number {
    return this.items.length;
  }
  at(i: number): M {
    const m = this.items[i < 0 ? i + this.items.length : i];
    if (!m) throw new RangeError(`ModuleList: index ${i} out of range (length ${this.items.length})`);
    return m;
  }
  [Symbol.iterator](): Iterator<M> {
    return this.items[Symbol.iterator]();
  }
}
