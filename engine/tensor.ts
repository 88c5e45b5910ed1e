/**
 * The Tensor: a strided view (shape, strides, offset) over reference-counted backend storage,
 * plus autodiff bookkeeping. Ops live in engine/ops; their method forms are attached in
 * engine/tensor-methods.ts. Lifetimes follow the scopes of engine/scope.ts.
 */
import type { Backend, Storage } from './backend.js';
import type { DType } from './dtype.js';
import { contiguousStrides, fmtShape, sizeOf, type Shape } from './shape.js';
import { trackDisposed, trackNew } from './scope.js';

/** A node of the autodiff tape: how to send the output gradient back to the inputs. */
export interface GradNode {
  op: string;
  inputs: Tensor[];
  /**
   * Returns one gradient per input (null where the input needs none); built from differentiable
   * ops. `partial[k]`, given only for inputs listed in `accumulates`, is the gradient the backward
   * has summed for input k so far: the rule then returns that sum plus its own contribution (one
   * kernel where the engine would add after: a residual connection's gradient).
   */
  backward: (gradOut: Tensor, partial?: readonly (Tensor | undefined)[]) => (Tensor | null)[];
  /** Inputs whose partial gradient this node's rule adds into its own (see `backward`). */
  accumulates?: readonly number[];
  /**
   * Whether each input required a gradient when the node was recorded: as in PyTorch, a tensor
   * frozen only while it was used (a GAN's discriminator during the generator's loss) gets no
   * gradient from this node, even if it requires one again by the time backward runs.
   */
  needsGrad?: readonly boolean[];
}

let nextId = 1;

// `using t = ...` needs Symbol.dispose; runtimes older than the proposal get the registered symbol
// that TypeScript's and esbuild's lowering helpers fall back to.
(Symbol as { dispose?: symbol }).dispose ??= Symbol.for('Symbol.dispose');

export class Tensor {
  readonly __isTensor = true;
  readonly id: number = nextId++;
  readonly shape: readonly number[];
  readonly strides: readonly number[];
  readonly offset: number;
  readonly dtype: DType;
  readonly backend: Backend;
  /** Optional user-facing name used in error messages. */
  name: string | undefined;
  requiresGrad = false;
  grad: Tensor | null = null;
  /** Set when this tensor was produced by a recorded op. */
  node: GradNode | null = null;
  /** The op that created this tensor (for error messages). */
  readonly createdBy: string;
  /** Number of elements (shape and strides never change, so both are computed once). */
  readonly size: number;
  private _contiguous: boolean | undefined = undefined;
  private _storage: Storage | null;

  constructor(storage: Storage, shape: Shape, dtype: DType, createdBy: string, strides?: readonly number[], offset = 0) {
    this._storage = storage;
    // slice(), not spread: a spread runs the iterator protocol (an object per element until optimized).
    this.shape = Object.freeze(copyDims(shape));
    this.size = sizeOf(shape);
    this.strides = Object.freeze(strides ? copyDims(strides) : contiguousStrides(shape));
    if (!strides) this._contiguous = true;
    this.offset = offset;
    this.dtype = dtype;
    this.backend = storage.backend;
    this.createdBy = createdBy;
    const isNewStorage = storage.refs === 0;
    storage.refs++;
    trackNew(this, isNewStorage ? storage.byteSize : 0);
  }

  get rank(): number {
    return this.shape.length;
  }

  get isDisposed(): boolean {
    return this._storage === null;
  }

  /** The storage, or a clear error naming this tensor if it was disposed. */
  get storage(): Storage {
    if (this._storage === null) throw new Error(`${this.describe()} was used after dispose()`);
    return this._storage;
  }

  /** Whether the strides are row-major for the shape (size-1 dims may have any stride). */
  get isContiguous(): boolean {
    if (this._contiguous === undefined) {
      let expect = 1;
      let ok = true;
      for (let i = this.shape.length - 1; i >= 0; i--) {
        const d = this.shape[i]!;
        if (d !== 1 && this.strides[i] !== expect) ok = false;
        expect *= d;
      }
      this._contiguous = ok;
    }
    return this._contiguous;
  }

  describe(): string {
    const label = this.name ? `'${this.name}' ` : '';
    return `Tensor#${this.id} ${label}(${this.dtype} ${fmtShape(this.shape)}, from ${this.createdBy})`;
  }

  /** Frees this tensor; the storage is returned to its backend when no view uses it any more. */
  dispose(): void {
    const s = this._storage;
    if (s === null) return;
    this._storage = null;
    s.refs--;
    const freed = s.refs === 0;
    if (freed) s.backend.free(s);
    trackDisposed(freed ? s.byteSize : 0);
  }

  /** `using t = ...` frees t where the block ends (for the rare tensor no scope can hold). */
  [Symbol.dispose](): void {
    this.dispose();
  }

  /** Marks this tensor as a leaf that accumulates `.grad` in backward(). */
  requireGrad(flag = true): this {
    if (flag && this.dtype !== 'f32') throw new TypeError(`requireGrad: ${this.describe()} has dtype ${this.dtype}; only f32 tensors can require gradients`);
    this.requiresGrad = flag;
    return this;
  }

  toString(): string {
    return this.describe();
  }
}

function copyDims(dims: readonly number[]): number[] {
  return Array.isArray(dims) ? dims.slice() : Array.from(dims);
}

export function isTensor(x: unknown): x is Tensor {
  return typeof x === 'object' && x !== null && (x as { __isTensor?: boolean }).__isTensor === true;
}
