/**
 * Checks shared by op tests: GPU vs float64 CPU reference, and analytic gradients vs central
 * finite differences computed in float64.
 */
import { expect } from 'vitest';
import { cpuF64, gradients, tensor, tidy, type Backend, type DType, type Tensor } from '../../engine/index.js';

export interface Tol {
  atol: number;
  rtol: number;
}

export interface InputSpec {
  shape: number[];
  data: number[];
  dtype?: DType;
}

export function make(spec: InputSpec, backend: Backend): Tensor {
  return tensor(spec.data, spec.shape, { backend, dtype: spec.dtype ?? 'f32' });
}

/** Asserts |a - b| <= atol + rtol * |b| elementwise, naming the first bad index. NaN must match NaN. */
export function expectClose(actual: ArrayLike<number>, expected: ArrayLike<number>, tol: Tol, what = ''): void {
  expect(actual.length, `${what} length`).toBe(expected.length);
  for (let i = 0; i < expected.length; i++) {
    const a = actual[i]!;
    const e = expected[i]!;
    if (Number.isNaN(e)) {
      if (!Number.isNaN(a)) expect.fail(`${what}[${i}]: expected NaN, got ${a}`);
      continue;
    }
    if (!Number.isFinite(e)) {
      if (a !== e) expect.fail(`${what}[${i}]: expected ${e}, got ${a}`);
      continue;
    }
    const err = Math.abs(a - e);
    if (!(err <= tol.atol + tol.rtol * Math.abs(e))) {
      expect.fail(`${what}[${i}]: got ${a}, expected ${e} (|err| ${err.toExponential(3)} > atol ${tol.atol} + rtol ${tol.rtol} * |expected|)`);
    }
  }
}

/** Runs `fn` on the float64 reference and on `backend`, and compares every output. */
export async function expectMatchesReference(
  fn: (...xs: Tensor[]) => Tensor | Tensor[],
  inputs: InputSpec[],
  backend: Backend,
  tol: Tol,
  what = 'output',
): Promise<void> {
  const run = (b: Backend) => tidy(() => {
    const out = fn(...inputs.map((s) => make(s, b)));
    return Array.isArray(out) ? out : [out];
  });
  const expected = run(cpuF64);
  const actual = run(backend);
  expect(actual.length).toBe(expected.length);
  for (let k = 0; k < expected.length; k++) {
    expect(actual[k]!.shape, `${what}#${k} shape`).toEqual(expected[k]!.shape);
    expect(actual[k]!.dtype, `${what}#${k} dtype`).toBe(expected[k]!.dtype);
    expectClose(await actual[k]!.toArray(), await expected[k]!.toArray(), tol, `${what}#${k}`);
  }
  for (const t of [...expected, ...actual]) t.dispose();
}

/**
 * Compares d(sum(fn(x) * w))/dx from backward() with central differences on the float64 CPU
 * backend (w is a fixed pseudo-random weighting so every output element matters).
 */
export async function expectGradMatchesFD(
  fn: (...xs: Tensor[]) => Tensor,
  inputs: InputSpec[],
  tol: Tol = { atol: 1e-6, rtol: 1e-5 },
  opts: { eps?: number; wrt?: number[] } = {},
): Promise<void> {
  const eps = opts.eps ?? 1e-6;
  const wrt = opts.wrt ?? inputs.map((_, i) => i).filter((i) => (inputs[i]!.dtype ?? 'f32') === 'f32');
  const objective = (xs: Tensor[]): Tensor => {
    const y = fn(...xs);
    const w = tensor(Array.from({ length: y.size }, (_, i) => Math.sin(1.7 * i + 0.3) + 1.1), [...y.shape], { backend: cpuF64 });
    return y.mul(w).sum();
  };
  const analytic = tidy(() => {
    const xs = inputs.map((s, i) => {
      const t = make(s, cpuF64);
      return wrt.includes(i) ? t.requireGrad() : t;
    });
    return gradients(objective(xs), wrt.map((i) => xs[i]!));
  });
  for (let k = 0; k < wrt.length; k++) {
    const i = wrt[k]!;
    const base = inputs[i]!.data;
    const fd = new Float64Array(base.length);
    for (let j = 0; j < base.length; j++) {
      const at = async (delta: number) => {
        const mod = inputs.map((s, m) => (m === i ? { ...s, data: s.data.map((v, q) => (q === j ? v + delta : v)) } : s));
        const val = tidy(() => objective(mod.map((s) => make(s, cpuF64))));
        const r = await val.item();
        val.dispose();
        return r;
      };
      fd[j] = ((await at(eps)) - (await at(-eps))) / (2 * eps);
    }
    expectClose(await analytic[k]!.toArray(), fd, tol, `grad of input ${i}`);
  }
  for (const g of analytic) g.dispose();
}
