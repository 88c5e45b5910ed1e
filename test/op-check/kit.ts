/**
 * The op test kit: one declared case per op checks, on deterministic inputs,
 *  - forward: the device (WebGPU) result against the float64 CPU reference;
 *  - gradient: the device's gradient of sum(w * f(x)) against the float64 one;
 *  - finite differences: the float64 gradient against central differences in float64;
 *  - grad of grad (where the case asks): d/dx sum(v * grad(x)) in float64 against central
 *    differences of the float64 gradient.
 * It measures and returns errors rather than asserting, so the same run feeds the tests
 * (test/op-check.test.ts) and the error table in docs/numerics.md (tools/numerics.ts).
 */
import { cpuF64, gradients, tensor, tidy, zerosLike, type Backend, type DType, type Tensor } from '../../engine/index.js';
import { mulberry32 } from '../helpers/prng.js';

export interface Tol {
  atol: number;
  rtol: number;
}

export interface InputGen {
  shape: number[];
  /** Values uniform in [lo, hi) (float32-representable), unless `data` is given. */
  lo?: number;
  hi?: number;
  /** Integers in [lo, hi) (i32 inputs such as indices). */
  int?: boolean;
  data?: number[];
  dtype?: DType;
  /** Not differentiated (masks, indices, targets). */
  noGrad?: boolean;
}

export interface OpCase {
  /** Declared op names (engine/op.ts) this case exercises. */
  covers: string[];
  /** Label in reports (default: covers joined). */
  name?: string;
  inputs: InputGen[];
  fn: (...xs: Tensor[]) => Tensor | Tensor[];
  /**
   * Tolerances, and why they are what they are. `forward` / `grad` compare the device with the
   * float64 reference; `fd` compares the float64 gradient with finite differences.
   */
  tol: { forward: Tol; grad?: Tol; fd?: Tol; why: string };
  /** Check gradients (default: when an f32 input is differentiable and outputs are f32). */
  grad?: boolean;
  /** Also check the gradient of the gradient in float64. */
  gradOfGrad?: boolean;
  /** Finite-difference step (default 1e-6). */
  eps?: number;
  /** Seed of the generated inputs. */
  seed?: number;
  /**
   * Runs before the case on each backend it uses (the device and the float64 reference), e.g. to
   * force a kernel route with `backend.tune(...)`; returns the function that undoes it.
   */
  setup?: (backend: Backend) => () => void;
}

export interface Measured {
  /** Largest |actual - expected|. */
  maxAbs: number;
  /** Largest |actual - expected| / (atol + rtol * |expected|): <= 1 passes. */
  ratio: number;
  /** The first element over tolerance, described. */
  worst: string;
}

export interface OpCheckResult {
  name: string;
  covers: string[];
  tol: OpCase['tol'];
  forward: Measured;
  grad: Measured | null;
  fd: Measured | null;
  gradOfGrad: Measured | null;
  ok: boolean;
  failures: string[];
}

const DEFAULT_FD: Tol = { atol: 1e-6, rtol: 1e-5 };

function measure(actual: ArrayLike<number>, expected: ArrayLike<number>, tol: Tol, what: string): Measured {
  let maxAbs = 0;
  let ratio = 0;
  let worst = '';
  if (actual.length !== expected.length) return { maxAbs: Infinity, ratio: Infinity, worst: `${what}: length ${actual.length} vs ${expected.length}` };
  for (let i = 0; i < expected.length; i++) {
    const a = actual[i]!;
    const e = expected[i]!;
    let r: number;
    let err: number;
    if (Number.isNaN(e) || !Number.isFinite(e)) {
      const same = Number.isNaN(e) ? Number.isNaN(a) : a === e;
      err = same ? 0 : Infinity;
      r = same ? 0 : Infinity;
    } else {
      err = Math.abs(a - e);
      r = Number.isNaN(err) ? Infinity : err / (tol.atol + tol.rtol * Math.abs(e));
    }
    if (err > maxAbs || Number.isNaN(err)) maxAbs = Number.isNaN(err) ? Infinity : err;
    if (r > ratio) {
      ratio = r;
      if (r > 1 && !worst) worst = `${what}[${i}]: got ${a}, expected ${e}`;
    }
  }
  return { maxAbs, ratio, worst };
}

function generate(c: OpCase): { shape: number[]; data: number[]; dtype: DType }[] {
  const rnd = mulberry32(c.seed ?? 1234);
  return c.inputs.map((g) => {
    const n = g.shape.reduce((a, b) => a * b, 1);
    const lo = g.lo ?? -2;
    const hi = g.hi ?? 2;
    const data = g.data ?? Array.from({ length: n }, () => (g.int ? Math.floor(lo + (hi - lo) * rnd()) : Math.fround(lo + (hi - lo) * rnd())));
    if (data.length !== n) throw new Error(`op case ${caseName(c)}: input data has ${data.length} values for shape [${g.shape}]`);
    return { shape: g.shape, data, dtype: g.dtype ?? (g.int ? 'i32' : 'f32') };
  });
}

export function caseName(c: OpCase): string {
  return c.name ?? c.covers.join('+');
}

type Gen = ReturnType<typeof generate>;

const make = (g: Gen, b: Backend): Tensor[] => g.map((s) => tensor(s.data, s.shape, { backend: b, dtype: s.dtype }));

function outputsOf(c: OpCase, xs: Tensor[]): Tensor[] {
  const y = c.fn(...xs);
  return Array.isArray(y) ? y : [y];
}

/** Fixed weights w_k so every output element matters in sum(w * y). */
function weights(n: number, b: Backend, salt: number): Tensor {
  return tensor(Array.from({ length: n }, (_, i) => Math.sin(1.7 * i + 0.3 + salt) + 1.1), [n], { backend: b });
}

/** sum_k sum(w_k * y_k) over the f32 outputs. */
function objective(c: OpCase, xs: Tensor[]): Tensor {
  const ys = outputsOf(c, xs).filter((y) => y.dtype === 'f32');
  let total: Tensor | null = null;
  ys.forEach((y, k) => {
    const term = y.reshape([y.size]).mul(weights(y.size, y.backend, k)).sum();
    total = total ? total.add(term) : term;
  });
  if (!total) throw new Error(`op case ${caseName(c)}: no f32 output to differentiate`);
  return total;
}

function wrtOf(c: OpCase, g: Gen): number[] {
  return c.inputs.map((_, i) => i).filter((i) => g[i]!.dtype === 'f32' && !c.inputs[i]!.noGrad);
}

async function readAll(ts: Tensor[]): Promise<number[][]> {
  const out: number[][] = [];
  for (const t of ts) out.push([...(await t.toArray())]);
  return out;
}

function gradsOf(c: OpCase, g: Gen, b: Backend, wrt: number[]): Tensor[] {
  return tidy(() => {
    const xs = make(g, b).map((t, i) => (wrt.includes(i) ? t.requireGrad() : t));
    return gradients(objective(c, xs), wrt.map((i) => xs[i]!));
  });
}

/** Central differences of `value(data)` over every element of input i. */
async function centralDiff(g: Gen, i: number, eps: number, value: (mod: Gen) => Promise<number>): Promise<Float64Array> {
  const base = g[i]!.data;
  const out = new Float64Array(base.length);
  for (let j = 0; j < base.length; j++) {
    const at = (delta: number) => value(g.map((s, m) => (m === i ? { ...s, data: s.data.map((v, q) => (q === j ? v + delta : v)) } : s)));
    out[j] = ((await at(eps)) - (await at(-eps))) / (2 * eps);
  }
  return out;
}

async function scalar(t: Tensor): Promise<number> {
  const v = await t.item();
  t.dispose();
  return v;
}

/** Runs one case on `device` against the float64 reference; never throws for numeric mismatches. */
export async function checkOp(c: OpCase, device: Backend): Promise<OpCheckResult> {
  const restores = c.setup ? [...new Set([device, cpuF64])].map((b) => c.setup!(b)) : [];
  try {
    return await measureCase(c, device);
  } finally {
    for (const restore of restores.reverse()) restore();
  }
}

async function measureCase(c: OpCase, device: Backend): Promise<OpCheckResult> {
  const name = caseName(c);
  const g = generate(c);
  const failures: string[] = [];
  const flat = (xs: number[][]) => xs.flat();

  const expectedOut = tidy(() => outputsOf(c, make(g, cpuF64)));
  const actualOut = tidy(() => outputsOf(c, make(g, device)));
  if (expectedOut.length !== actualOut.length || expectedOut.some((e, k) => e.shape.join() !== actualOut[k]!.shape.join() || e.dtype !== actualOut[k]!.dtype)) {
    failures.push(`${name}: device outputs ${actualOut.map((t) => t.describe()).join(', ')} differ in shape/dtype from the reference ${expectedOut.map((t) => t.describe()).join(', ')}`);
  }
  const forward = measure(flat(await readAll(actualOut)), flat(await readAll(expectedOut)), c.tol.forward, `${name} forward`);
  for (const t of [...expectedOut, ...actualOut]) t.dispose();
  if (forward.ratio > 1) failures.push(`${name}: forward error ${forward.maxAbs.toExponential(2)} over tolerance (${forward.worst})`);

  const wrt = wrtOf(c, g);
  const doGrad = c.grad ?? wrt.length > 0;
  let grad: Measured | null = null;
  let fd: Measured | null = null;
  let gradOfGrad: Measured | null = null;
  if (doGrad) {
    const gRef = gradsOf(c, g, cpuF64, wrt);
    const gDev = gradsOf(c, g, device, wrt);
    const refVals = await readAll(gRef);
    grad = measure(flat(await readAll(gDev)), flat(refVals), c.tol.grad ?? c.tol.forward, `${name} gradient`);
    for (const t of [...gRef, ...gDev]) t.dispose();
    if (grad.ratio > 1) failures.push(`${name}: device gradient error ${grad.maxAbs.toExponential(2)} over tolerance (${grad.worst})`);

    const eps = c.eps ?? 1e-6;
    const fds: number[] = [];
    for (const i of wrt) fds.push(...(await centralDiff(g, i, eps, (mod) => scalar(tidy(() => objective(c, make(mod, cpuF64)))))));
    fd = measure(flat(refVals), fds, c.tol.fd ?? DEFAULT_FD, `${name} finite differences`);
    if (fd.ratio > 1) failures.push(`${name}: float64 gradient vs finite differences ${fd.maxAbs.toExponential(2)} over tolerance (${fd.worst})`);

    if (c.gradOfGrad) {
      // h(x) = sum(v * grad(x)); its gradient by the tape vs central differences of h.
      const h = (xs: Tensor[]): Tensor => {
        const gs = gradients(objective(c, xs), wrt.map((i) => xs[i]!), { createGraph: true });
        let total: Tensor | null = null;
        gs.forEach((gi, k) => {
          const term = gi.reshape([gi.size]).mul(weights(gi.size, gi.backend, 7 + k)).sum();
          total = total ? total.add(term) : term;
        });
        return total!;
      };
      const analytic = tidy(() => {
        const xs = make(g, cpuF64).map((t, i) => (wrt.includes(i) ? t.requireGrad() : t));
        const hv = h(xs);
        // A gradient that does not depend on x (linear ops) has a zero second derivative.
        if (!hv.requiresGrad) return wrt.map((i) => zerosLike(xs[i]!));
        return gradients(hv, wrt.map((i) => xs[i]!));
      });
      const hFd: number[] = [];
      for (const i of wrt) {
        hFd.push(...(await centralDiff(g, i, eps, (mod) => scalar(tidy(() => h(make(mod, cpuF64).map((t, m) => (wrt.includes(m) ? t.requireGrad() : t))))))));
      }
      gradOfGrad = measure(flat(await readAll(analytic)), hFd, c.tol.fd ?? DEFAULT_FD, `${name} grad of grad`);
      for (const t of analytic) t.dispose();
      if (gradOfGrad.ratio > 1) failures.push(`${name}: grad of grad vs finite differences ${gradOfGrad.maxAbs.toExponential(2)} over tolerance (${gradOfGrad.worst})`);
    }
  }
  return { name, covers: c.covers, tol: c.tol, forward, grad, fd, gradOfGrad, ok: failures.length === 0, failures };
}
