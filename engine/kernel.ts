/**
 * Kernel declarations: a WGSL kernel states its parameters and storage bindings by name once, and
 * both sides are generated from that: the WGSL `struct Params` / binding declarations that the
 * kernel body reads (`P.rows`, `x[i]`), and the packer that writes the values into the uniform
 * slot. A parameter therefore cannot be read at the wrong offset, and a missing, extra or
 * misshaped value is an error naming the kernel and the parameter.
 *
 * The declaration is backend-neutral data; engine/webgpu/backend.ts runs it (`backend.run`).
 */
export type ScalarType = 'u32' | 'i32' | 'f32';
/** A scalar, or a fixed-length array `[type, length]` read as `P.name_0 ... P.name_{length-1}`. */
export type ParamSpec = ScalarType | readonly [ScalarType, number];
export type ParamDecls = Readonly<Record<string, ParamSpec>>;
export type Access = 'read' | 'read_write';
/** A storage binding: access mode and WGSL element type (`f32`, `i32`, `vec4<f32>`, `atomic<u32>` ...). */
export interface BindingSpec {
  access: Access;
  type: string;
}
export type BindingDecls = Readonly<Record<string, BindingSpec>>;

export interface KernelSignature {
  params: ParamDecls;
  bindings: BindingDecls;
}

export interface KernelDecl<V> {
  /** Kernel family name (pipeline labels, profiles, errors). */
  name: string;
  /** What distinguishes two generated shaders of this family: same key, same WGSL and signature. */
  key: (v: V) => string;
  /** Parameters and bindings of the variant, in binding order. */
  signature: (v: V) => KernelSignature;
  /** The WGSL after the generated declarations (helpers, workgroup vars and `main`). */
  body: (v: V) => string;
  /** Directives that must open the module (`enable subgroups;`). */
  directives?: (v: V) => string;
}

/** Uniform slot size: every adapter's minUniformBufferOffsetAlignment divides it. */
export const PARAM_SLOT_BYTES = 256;
export const PARAM_WORDS = PARAM_SLOT_BYTES / 4;

export const shorthand = {
  /** A read-only storage binding of element type `type`. */
  read: (type = 'f32'): BindingSpec => ({ access: 'read', type }),
  /** A read-write storage binding of element type `type`. */
  rw: (type = 'f32'): BindingSpec => ({ access: 'read_write', type }),
};
export const { read, rw } = shorthand;

interface Field {
  name: string;
  type: ScalarType;
  /** The type as a number, for the packer: 0 f32, 1 i32, 2 u32. */
  code: 0 | 1 | 2;
  word: number;
  scalar: boolean;
  /** Array length (0 for a scalar). */
  len: number;
}

/** A variant's signature, generated declarations and packer, computed once per key. */
export class KernelLayout {
  readonly fields: readonly Field[];
  readonly words: number;
  readonly bindingNames: readonly string[];
  readonly accesses: readonly Access[];
  /** `struct Params`, the uniform `P` and the storage bindings, as WGSL. */
  readonly declarations: string;
  private readonly byName = new Map<string, Field>();

  constructor(readonly kernel: string, readonly key: string, sig: KernelSignature) {
    const fields: Field[] = [];
    let word = 0;
    for (const [name, spec] of Object.entries(sig.params)) {
      checkIdent(kernel, 'parameter', name);
      const [type, len] = typeof spec === 'string' ? [spec, 0] : [spec[0], spec[1]];
      if (!Number.isInteger(len) || len < 0) throw new Error(`kernel ${kernel}: parameter ${name} has a bad array length ${len}`);
      const f: Field = { name, type, code: type === 'f32' ? 0 : type === 'i32' ? 1 : 2, word, len, scalar: typeof spec === 'string' };
      fields.push(f);
      this.byName.set(name, f);
      word += f.scalar ? 1 : len;
    }
    if (word > PARAM_WORDS) throw new Error(`kernel ${kernel} (${key}): ${word} parameter words exceed the ${PARAM_WORDS}-word slot`);
    this.fields = fields;
    this.words = word;
    const members: string[] = [];
    for (const f of fields) {
      if (f.scalar) members.push(`${f.name}: ${f.type}`);
      else for (let i = 0; i < f.len; i++) members.push(`${f.name}_${i}: ${f.type}`);
    }
    if (members.length === 0) members.push('unused_: u32'); // WGSL structs need a member
    this.bindingNames = Object.keys(sig.bindings);
    this.accesses = Object.values(sig.bindings).map((b) => b.access);
    const decls = [`struct Params { ${members.join(', ')} }`, '@group(0) @binding(0) var<uniform> P: Params;'];
    this.bindingNames.forEach((name, i) => {
      checkIdent(kernel, 'binding', name);
      const b = sig.bindings[name]!;
      decls.push(`@group(0) @binding(${i + 1}) var<storage, ${b.access}> ${name}: array<${b.type}>;`);
    });
    this.declarations = decls.join('\n');
  }

  /**
   * Writes `values` into `out` (word-addressed views of one slot). Every declared parameter must
   * be given, arrays with their declared length; anything else is an error naming it.
   */
  pack(values: Readonly<Record<string, number | readonly number[]>>, u: Uint32Array, i: Int32Array, f: Float32Array, base: number): void {
    // Runs on every dispatch: indexed loops and the write inlined.
    const fields = this.fields;
    for (let n = 0; n < fields.length; n++) {
      const fd = fields[n]!;
      const v = values[fd.name];
      if (v === undefined) throw new Error(`kernel ${this.kernel}: parameter ${fd.name} was not given`);
      const w = base + fd.word;
      if (typeof v === 'number') {
        if (!fd.scalar) throw new Error(`kernel ${this.kernel}: parameter ${fd.name} is an array of ${fd.len}, got a number`);
        if (fd.code === 0) f[w] = v;
        else if (fd.code === 1) i[w] = v | 0;
        else u[w] = v >>> 0;
      } else {
        if (fd.scalar || v.length !== fd.len) throw new Error(`kernel ${this.kernel}: parameter ${fd.name} expects ${fd.scalar ? 'a number' : `${fd.len} values`}, got ${v.length} values`);
        if (fd.code === 0) for (let k = 0; k < v.length; k++) f[w + k] = v[k]!;
        else if (fd.code === 1) for (let k = 0; k < v.length; k++) i[w + k] = v[k]! | 0;
        else for (let k = 0; k < v.length; k++) u[w + k] = v[k]! >>> 0;
      }
    }
    if (fields.length !== countKeys(values)) {
      const extra = Object.keys(values).filter((k) => !this.byName.has(k));
      throw new Error(`kernel ${this.kernel}: unknown parameter(s) ${extra.join(', ')} (declared: ${this.fields.map((x) => x.name).join(', ') || 'none'})`);
    }
  }

  /**
   * What the literals of `names` add to the pipeline key: `|literal` per value, in the order of
   * `names` (array parameters element by element). Per dispatch, so without the literal map.
   */
  bakedKey(values: Readonly<Record<string, number | readonly number[]>>, names: readonly string[]): string {
    let key = '';
    for (const name of names) {
      const fd = this.byName.get(name);
      if (!fd) throw new Error(`kernel ${this.kernel}: cannot bake unknown parameter ${name}`);
      const v = values[name];
      if (v === undefined) throw new Error(`kernel ${this.kernel}: parameter ${name} was not given`);
      if (typeof v === 'number') key += `|${literal(fd.type, v)}`;
      else for (let k = 0; k < v.length; k++) key += `|${literal(fd.type, v[k]!)}`;
    }
    return key;
  }

  /** WGSL literals for the named parameters, for kernels that bake them into the code. */
  literals(values: Readonly<Record<string, number | readonly number[]>>, names: readonly string[]): Map<string, string> {
    const out = new Map<string, string>();
    for (const name of names) {
      const fd = this.byName.get(name);
      if (!fd) throw new Error(`kernel ${this.kernel}: cannot bake unknown parameter ${name}`);
      const v = values[name];
      if (v === undefined) throw new Error(`kernel ${this.kernel}: parameter ${name} was not given`);
      if (typeof v === 'number') out.set(`P.${name}`, literal(fd.type, v));
      else v.forEach((x, k) => out.set(`P.${name}_${k}`, literal(fd.type, x)));
    }
    return out;
  }
}

/**
 * Enumerable keys of a plain object (parameter and binding objects, whose prototype adds none),
 * without building the key array (per dispatch).
 */
export function countKeys(o: object): number {
  let n = 0;
  for (const _ in o) n++;
  return n;
}

function checkIdent(kernel: string, what: string, name: string): void {
  if (!/^[A-Za-z][A-Za-z0-9_]*$/.test(name) || name === 'P') throw new Error(`kernel ${kernel}: ${what} name '${name}' is not a usable WGSL identifier`);
}

function literal(type: ScalarType, v: number): string {
  if (type === 'f32') {
    if (!Number.isFinite(v)) throw new Error(`cannot bake the non-finite f32 ${v}`);
    return `f32(${Math.fround(v).toExponential()})`;
  }
  return type === 'i32' ? `${v | 0}i` : `${v >>> 0}u`;
}

/** Replaces `P.name` reads by literals (whole tokens only: P.C does not touch P.Cout). */
export function bakeInto(code: string, literals: Map<string, string>): string {
  if (literals.size === 0) return code;
  return code.replace(/\bP\.([A-Za-z][A-Za-z0-9_]*)\b/g, (m) => literals.get(m) ?? m);
}

/** A declared kernel: the declaration plus its per-variant layouts. */
export class Kernel<V> {
  private readonly layouts = new Map<string, KernelLayout>();
  constructor(readonly decl: KernelDecl<V>) {}

  get name(): string {
    return this.decl.name;
  }

  /** The layout of variant `v` (computed once per key; looked up on every dispatch). */
  layout(v: V): KernelLayout {
    const key = this.decl.key(v);
    let l = this.layouts.get(key);
    if (!l) {
      l = new KernelLayout(this.decl.name, `${this.decl.name}|${key}`, this.decl.signature(v));
      this.layouts.set(key, l);
    }
    return l;
  }

  /** The WGSL module of variant `v` (without the shared prelude). */
  source(v: V): { directives: string; code: string } {
    const l = this.layout(v);
    return { directives: this.decl.directives?.(v) ?? '', code: `${l.declarations}\n${this.decl.body(v)}` };
  }
}

export function defineKernel<V = void>(decl: KernelDecl<V>): Kernel<V> {
  return new Kernel(decl);
}
