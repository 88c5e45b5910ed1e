/** Tape semantics: accumulation, noGrad, detach, straight-through, grad of grad, error messages. */
import { describe, expect, it } from 'vitest';
import * as E from '../engine/index.js';
import { record } from '../engine/grad-mode.js';
import { requireGpu } from './helpers/backends.js';
import { expectClose } from './helpers/compare.js';

const gpu = await requireGpu();
const backends: [string, E.Backend][] = [['cpu-f64', E.cpuF64], ...(gpu ? [['webgpu', gpu] as [string, E.Backend]] : [])];
const tol = { atol: 1e-5, rtol: 1e-5 };

describe.each(backends)('autograd on %s', (_name, backend) => {
  const t = (data: number[], shape?: number[]) => E.tensor(data, shape ?? [data.length], { backend });

  it('backward accumulates into .grad across calls until it is reset', async () => {
    const x = t([1, 2, 3]).requireGrad();
    E.tidy(() => x.square().sum().backward());
    expectClose(await x.grad!.toArray(), [2, 4, 6], tol);
    E.tidy(() => x.mul(3).sum().backward());
    expectClose(await x.grad!.toArray(), [5, 7, 9], tol);
    x.grad!.dispose();
    x.grad = null;
    E.tidy(() => x.sum().backward());
    expectClose(await x.grad!.toArray(), [1, 1, 1], tol);
  });

  it('a tensor used twice gets the sum of both paths', async () => {
    const x = t([0.5, -2]).requireGrad();
    E.tidy(() => x.mul(x).add(x.exp()).sum().backward());
    expectClose(await x.grad!.toArray(), [2 * 0.5 + Math.exp(0.5), -4 + Math.exp(-2)], tol);
  });

  // A GAN's generator loss runs the discriminator with its weights frozen, then unfreezes them
  // before backward: the weights must get nothing from that graph (PyTorch records requires_grad
  // with the graph), and a weight frozen only later still gets its gradient.
  it('requiresGrad counts as it was when an op was recorded, not when backward runs', async () => {
    const x = t([0.5, -2]).requireGrad();
    const w = t([3, 4]).requireGrad();
    const v = t([1, 1]).requireGrad();
    w.requireGrad(false);
    const y = x.mul(w).add(x.mul(v)).sum();
    w.requireGrad(true);
    v.requireGrad(false);
    y.backward();
    expect(w.grad).toBeNull();
    expectClose(await x.grad!.toArray(), [4, 5], tol);
    // v was frozen after its use: it still gets d/dv = x.
    expectClose(await v.grad!.toArray(), [0.5, -2], tol);
  });

  it('noGrad records nothing; detach cuts the tape', () => {
    const x = t([1, 2]).requireGrad();
    const y = E.noGrad(() => x.mul(2));
    expect(y.requiresGrad).toBe(false);
    expect(y.node).toBeNull();
    const d = x.mul(2).detach();
    expect(d.requiresGrad).toBe(false);
    expect(() => d.sum().backward()).toThrow(/does not require grad/);
  });

  it('straight-through estimator x + (q - x).detach() passes the gradient to x unchanged', async () => {
    const x = t([0.2, 1.7, -0.6]).requireGrad();
    const q = E.noGrad(() => x.add(0.5).floor());
    const st = x.add(q.sub(x).detach());
    expectClose(await st.toArray(), await q.toArray(), tol);
    E.tidy(() => st.mul(t([1, 2, 3])).sum().backward());
    expectClose(await x.grad!.toArray(), [1, 2, 3], tol);
  });

  it('grad of grad for elementwise ops: d2/dx2 sum(x^3 + sin x) = 6x - sin x', async () => {
    const f = (x: E.Tensor) => x.mul(x).mul(x).add(x.sin()).sum();
    const df = (x: E.Tensor) => E.grad(f)(x)[0]!.sum();
    const xs = [0.3, -1.2, 2];
    const [g2] = E.grad(df)(t(xs));
    expectClose(await g2!.toArray(), xs.map((v) => 6 * v - Math.sin(v)), tol);
  });

  it('gradients() returns zeros for inputs the output does not depend on', async () => {
    const a = t([1, 2]).requireGrad();
    const b = t([3, 4]).requireGrad();
    const [ga, gb] = E.gradients(a.mul(2).sum(), [a, b]);
    expectClose(await ga!.toArray(), [2, 2], tol);
    expectClose(await gb!.toArray(), [0, 0], tol);
    expect(a.grad).toBeNull();
  });

  it('backward through broadcasting, views and reductions', async () => {
    const w = t([1, 2, 3], [3]).requireGrad();
    const x = t([1, 2, 3, 4, 5, 6], [2, 3]);
    E.tidy(() => x.mul(w).transpose().slice([[1, 3]]).sum().backward());
    expectClose(await w.grad!.toArray(), [0, 7, 9], tol);
  });

  it('clear errors: non-scalar backward, bad gradient shape', () => {
    const x = t([1, 2]).requireGrad();
    expect(() => x.mul(2).backward()).toThrow(/is not a scalar/);
    expect(() => x.mul(2).backward(t([1, 2, 3]))).toThrow(/gradient shape \[3\] does not match output shape \[2\]/);
    expect(() => E.tensor([1], [1], { dtype: 'i32', backend }).requireGrad()).toThrow(/only f32 tensors/);
  });
});

describe('rules that accumulate (GradNode.accumulates)', () => {
  // A node computing y = x whose rule adds x's partial gradient into its own (as the norms' fused
  // backward does): it sees the sum so far, and its result replaces it (no add by the engine).
  const identity = (x: E.Tensor, inputs: E.Tensor[], seen: (E.Tensor | undefined)[]) =>
    record(E.detach(E.mul(x, 1)), 'acc_identity', inputs, (g, partial) => {
      seen.push(partial?.[0]);
      return inputs.map((_, k) => (k === 0 && partial?.[0] ? E.add(partial[0], g) : k === 0 ? g : null));
    }, [0]);
  it('gets the partial sum of an input used elsewhere first, and its result replaces it', async () => {
    const x = E.tensor([1, 2, 3], [3]).requireGrad();
    const seen: (E.Tensor | undefined)[] = [];
    const y = identity(x, [x], seen);
    // The sum's terms are visited last-first: x * 3 sends its gradient before y's rule runs.
    const [g] = E.gradients(E.add(E.sum(y), E.sum(E.mul(x, 3))), [x]);
    expect(await g!.toArray()).toEqual(new Float32Array([4, 4, 4]));
    expect(seen).toHaveLength(1);
    expect(seen[0]).toBeDefined();
    // No other use of x: no partial.
    const none: (E.Tensor | undefined)[] = [];
    const [g1] = E.gradients(E.sum(identity(x, [x], none)), [x]);
    expect(await g1!.toArray()).toEqual(new Float32Array([1, 1, 1]));
    expect(none).toEqual([undefined]);
    // x twice among the node's inputs: the engine adds as usual.
    const twice: (E.Tensor | undefined)[] = [];
    const [g2] = E.gradients(E.add(E.sum(identity(x, [x, x], twice)), E.sum(E.mul(x, 3))), [x]);
    expect(await g2!.toArray()).toEqual(new Float32Array([4, 4, 4]));
    expect(twice).toEqual([undefined]);
  });
});
