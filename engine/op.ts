/**
 * Op declarations and the one runner every primitive op goes through.
 *
 * An op declares, in its family's file: the shape/dtype rule (`outputs`, which also validates the
 * inputs and names what is wrong), a kernel per backend kind (`kernels.cpu` is the float64-capable
 * reference, `kernels.webgpu` records declared WGSL kernels), and its gradient, built from
 * differentiable ops. The runner does what every op needs: same-backend and use-after-dispose
 * checks, dense copies of inputs that kernels read as plain arrays, output allocation, the empty
 * case (no kernel runs), backend dispatch by kind and tape recording.
 *
 * Ops made of other ops (composites) are plain functions over declared ops and need none of this.
 */
import type { Backend, BackendKind, Storage } from './backend.js';
import type { CpuBackend } from './cpu/backend.js';
import type { DType } from './dtype.js';
import { isGradEnabled, noGrad } from './grad-mode.js';
import { sizeOf, type Shape } from './shape.js';
import { Tensor, type GradNode } from './tensor.js';
import type { WebGPUBackend } from './webgpu/backend.js';

/** A new output (shape and dtype) or an existing tensor the kernel writes into (a view or in place). */
export type OutputSpec = { shape: Shape; dtype: DType; name?: string } | { into: Tensor };

/** What a kernel receives: the (dense where declared) inputs, the outputs and the attributes. */
export interface OpArgs<A> {
  inputs: readonly Tensor[];
  outputs: readonly Tensor[];
  attrs: A;
}

/** Backends the runner can dispatch to, by kind; a new backend adds its kind here. */
export interface BackendByKind {
  cpu: CpuBackend;
  webgpu: WebGPUBackend;
}

export type OpKernel<A, B> = (backend: B, args: OpArgs<A>) => void;
export type OpKernels<A> = { [K in BackendKind]?: OpKernel<A, K extends keyof BackendByKind ? BackendByKind[K] : Backend> };

/** Gradient of one output: one gradient per input (null where none flows). */
export type GradRule<A> = (gradOut: Tensor, args: OpArgs<A>) => (Tensor | null)[];

export interface OpDecl<A> {
  name: string;
  /** Validates inputs and attributes; returns the outputs. Errors name the op and the tensor. */
  outputs: (inputs: readonly Tensor[], attrs: A) => readonly OutputSpec[];
  /**
   * Inputs the kernels read as contiguous arrays from element 0: all, these indices, or those
   * whose index passes the predicate (for ops taking a variable number of inputs).
   */
  dense?: boolean | readonly number[] | ((index: number, attrs: A) => boolean);
  kernels: OpKernels<A>;
  /**
   * Gradients: one rule for the first output, or one per output (null for outputs without one).
   * Inputs listed in `nondiff` never receive a gradient (indices, masks).
   */
  grad?: GradRule<A> | readonly (GradRule<A> | null)[];
  nondiff?: readonly number[];
}

export interface Op<A> {
  readonly name: string;
  readonly decl: OpDecl<A>;
  /** Runs the op; returns its outputs in declaration order. */
  (inputs: readonly Tensor[], attrs: A): Tensor[];
  /** Adds or replaces the kernel of a backend kind (for a backend defined outside the engine). */
  register<K extends BackendKind>(kind: K, kernel: NonNullable<OpKernels<A>[K]>): void;
}

const declared = new Map<string, OpDecl<unknown>>();

/** Every declared op by name (the op test kit checks that each is covered). */
export function declaredOps(): ReadonlyMap<string, OpDecl<unknown>> {
  return declared;
}

export function checkSameBackend(op: string, tensors: readonly Tensor[]): void {
  const b = tensors[0]?.backend;
  for (const t of tensors) {
    t.storage; // throws a clear error if disposed
    if (t.backend !== b) throw new Error(`${op}: inputs live on different backends (${b!.name} and ${t.backend.name}); move them with .to(backend)`);
  }
}

/** Raw storage of a tensor for backends' kernel code: the storage is the backend's own type. */
export function storageOf(t: Tensor): Storage {
  return t.storage;
}

export function defineOp<A = void>(decl: OpDecl<A>): Op<A> {
  if (declared.has(decl.name)) throw new Error(`defineOp: an op named ${decl.name} is already declared`);
  declared.set(decl.name, decl as OpDecl<unknown>);
  const kernels: OpKernels<A> = { ...decl.kernels };
  const dense = decl.dense;
  const isDense: ((k: number, attrs: A) => boolean) | null =
    dense === true ? () => true : typeof dense === 'function' ? dense : Array.isArray(dense) ? (k) => dense.includes(k) : null;
  const nondiff = decl.nondiff && decl.nondiff.length > 0 ? decl.nondiff : null;
  // The runner runs once per op call (hundreds of times per training step): plain loops, and no
  // arrays or closures beyond the outputs and the tape node.
  const run = ((inputs: readonly Tensor[], attrs: A): Tensor[] => {
    const name = decl.name;
    checkSameBackend(name, inputs);
    const specs = decl.outputs(inputs, attrs);
    let backend = inputs.length > 0 ? inputs[0]!.backend : null;
    let views = 0;
    for (let k = 0; k < specs.length; k++) if ('into' in specs[k]!) views++;
    if (views > 0) {
      const all = [...inputs];
      for (const s of specs) if ('into' in s) all.push(s.into);
      checkSameBackend(name, all);
      backend = all[0]!.backend;
    }
    if (backend === null) throw new Error(`${name}: needs an input or an output view`);
    const outputs: Tensor[] = new Array(specs.length);
    let empty = true;
    for (let k = 0; k < specs.length; k++) {
      const s = specs[k]!;
      const t = 'into' in s ? s.into : new Tensor(backend.alloc(sizeOf(s.shape), s.dtype), s.shape, s.dtype, s.name ?? name);
      outputs[k] = t;
      if (t.size !== 0) empty = false;
    }
    if (empty) return outputs;
    const kernel = kernels[backend.kind] as OpKernel<A, Backend> | undefined;
    if (!kernel) throw new Error(`${name}: no kernel for backend ${backend.name}`);
    let copies: Tensor[] | null = null;
    let kin = inputs;
    if (isDense) {
      for (let k = 0; k < inputs.length; k++) {
        const t = inputs[k]!;
        if ((t.offset === 0 && t.isContiguous) || !isDense(k, attrs)) continue;
        if (copies === null) {
          copies = [];
          kin = [...inputs];
        }
        (kin as Tensor[])[k] = denseCopy(t, copies);
      }
    }
    try {
      kernel(backend, { inputs: kin, outputs, attrs });
    } catch (e) {
      for (let k = 0; k < specs.length; k++) if (!('into' in specs[k]!)) outputs[k]!.dispose();
      throw e;
    } finally {
      if (copies !== null) for (const c of copies) c.dispose();
    }
    const rules = decl.grad;
    if (rules && isGradEnabled()) {
      const diff = nondiff ? inputs.filter((_, k) => !nondiff.includes(k)) : (inputs as Tensor[]);
      let needed = false;
      for (let k = 0; k < diff.length; k++) if (diff[k]!.requiresGrad) needed = true;
      if (needed) {
        const args: OpArgs<A> = { inputs, outputs, attrs };
        if (typeof rules === 'function') attach(outputs[0]!, new OpNode(name, diff, rules, args, nondiff));
        // One rule per output; an op whose last outputs are optional (its attrs leave them out) has rules past them.
        else for (let k = 0; k < Math.min(rules.length, outputs.length); k++) if (rules[k]) attach(outputs[k]!, new OpNode(name, diff, rules[k]!, args, nondiff));
      }
    }
    return outputs;
  }) as Op<A>;
  Object.defineProperty(run, 'name', { value: decl.name });
  (run as { decl: OpDecl<A> }).decl = decl;
  run.register = (kind, kernel) => {
    (kernels as Record<string, unknown>)[kind] = kernel;
  };
  return run;
}

/** The tape node of one output of an op call: its gradient rule and the call's arguments. */
class OpNode<A> implements GradNode {
  readonly needsGrad: readonly boolean[];
  /** requiresGrad of every input the rule sees (args.inputs) when the node was recorded. */
  private readonly recorded: readonly boolean[];

  constructor(
    readonly op: string,
    readonly inputs: Tensor[],
    private readonly rule: GradRule<A>,
    private readonly args: OpArgs<A>,
    private readonly nondiff: readonly number[] | null,
  ) {
    this.needsGrad = inputs.map((t) => t.requiresGrad);
    this.recorded = args.inputs.map((t) => !!t?.requiresGrad);
  }

  backward(gradOut: Tensor): (Tensor | null)[] {
    // The rule decides which gradients to compute from its inputs' requiresGrad: show it the
    // values recorded with the node (a tensor frozen while it was used needs none from here).
    const ins = this.args.inputs;
    const now = ins.map((t) => !!t?.requiresGrad);
    ins.forEach((t, k) => {
      if (t) t.requiresGrad = this.recorded[k]!;
    });
    let all: (Tensor | null)[];
    try {
      all = this.rule(gradOut, this.args);
    } finally {
      ins.forEach((t, k) => {
        if (t) t.requiresGrad = now[k]!;
      });
    }
    const nd = this.nondiff;
    return nd ? all.filter((_, k) => !nd.includes(k)) : all;
  }
}

/** What `record` does, once the caller has checked that grad mode is on and an input needs one. */
function attach(out: Tensor, node: GradNode): void {
  out.requiresGrad = true;
  out.node = node;
}

let copyOp: ((t: Tensor) => Tensor) | null = null;

/** Installed by the movement ops: a contiguous copy of t starting at element 0. */
export function setDenseCopy(fn: (t: Tensor) => Tensor): void {
  copyOp = fn;
}

function denseCopy(t: Tensor, copies: Tensor[]): Tensor {
  if (t.isContiguous && t.offset === 0) return t;
  if (!copyOp) throw new Error('defineOp: no dense-copy op installed');
  const c = noGrad(() => copyOp!(t));
  copies.push(c);
  return c;
}
