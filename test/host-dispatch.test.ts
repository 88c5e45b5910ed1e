/**
 * The host side of a dispatch: what backend.run and the op runner must keep doing while they are
 * made cheap. Parameters reach the kernel by name and type; a missing, extra or misshaped
 * parameter or binding is an error that records nothing; pipelines are made once per kernel
 * variant (and baked literal values), bind groups once per bind-group layout and buffer set;
 * the runner frees its dense copies and records gradients for differentiable inputs only; a
 * tensor's cached size and contiguity match its shape and strides.
 */
import { describe, expect, it } from 'vitest';
import * as E from '../engine/index.js';
import { defineKernel, read, rw } from '../engine/kernel.js';
import { requireGpu } from './helpers/backends.js';

const gpu = await requireGpu();

const body = (extra: string) => `
@compute @workgroup_size(1) fn main() {
  out[0] = P.a + src[0];
  out[1] = f32(P.b);
  out[2] = f32(P.c);
  out[3] = P.v_0;
  out[4] = P.v_1;
  out[5] = P.v_2${extra};
}`;
const signature = () => ({ params: { a: 'f32', b: 'i32', c: 'u32', v: ['f32', 3] }, bindings: { src: read(), out: rw() } }) as const;
const paramsKernel = defineKernel({ name: 'host_params', key: () => '', signature, body: () => body('') });
// Same binding accesses as paramsKernel, another shader: shares its bind groups.
const twinKernel = defineKernel({ name: 'host_params_twin', key: () => '', signature, body: () => body(' + 1.0') });

describe.runIf(gpu)('WebGPU dispatch recording', () => {
  const b = gpu!;
  const params = { a: 0.5, b: -5, c: 70000, v: [1.25, -2, 3] };

  it('packs every declared parameter by name, with its type', async () => {
    const src = E.tensor([2], [1], { backend: b });
    const out = E.zeros([6], { backend: b });
    b.run(paramsKernel, undefined, { params, bindings: { src, out }, workgroups: 1 });
    expect(Array.from(await out.toArray())).toEqual([2.5, -5, 70000, 1.25, -2, 3]);
    src.dispose();
    out.dispose();
  });

  it('names a missing, extra or misshaped parameter or binding, and records nothing for it', async () => {
    const src = E.tensor([2], [1], { backend: b });
    const out = E.zeros([6], { backend: b });
    const cpuSrc = E.tensor([2], [1], { backend: E.cpuF64 });
    const d0 = b.counters.dispatches;
    const run = (p: Record<string, number | number[]>, bindings: Record<string, E.Tensor>) => () => b.run(paramsKernel, undefined, { params: p, bindings, workgroups: 1 });
    const { c: _c, ...noC } = params;
    expect(run(noC, { src, out })).toThrow(/kernel host_params: parameter c was not given/);
    expect(run({ ...params, d: 1 }, { src, out })).toThrow(/kernel host_params: unknown parameter\(s\) d \(declared: a, b, c, v\)/);
    expect(run({ ...params, v: [1, 2] }, { src, out })).toThrow(/parameter v expects 3 values, got 2 values/);
    expect(run({ ...params, a: [1] }, { src, out })).toThrow(/parameter a expects a number, got 1 values/);
    expect(run({ ...params, v: 1 }, { src, out })).toThrow(/parameter v is an array of 3, got a number/);
    expect(run(params, { out })).toThrow(/kernel host_params: binding src was not given/);
    expect(run(params, { src, out, more: src })).toThrow(/kernel host_params: unknown binding\(s\) more \(declared: src, out\)/);
    expect(run(params, { src: cpuSrc, out })).toThrow(/kernel host_params: binding src lives on cpu/);
    expect(b.counters.dispatches).toBe(d0);
    // A parameter error after the others were written must not leave a dispatch behind either.
    expect(() => b.run(paramsKernel, undefined, { params: { ...params, v: [1, 2, 3, 4] }, bindings: { src, out }, workgroups: 1 })).toThrow(/expects 3 values/);
    expect(b.counters.dispatches).toBe(d0);
    b.run(paramsKernel, undefined, { params, bindings: { src, out }, workgroups: 1 });
    expect(Array.from(await out.toArray())).toEqual([2.5, -5, 70000, 1.25, -2, 3]);
    for (const t of [src, out, cpuSrc]) t.dispose();
  });

  it('makes a pipeline once per variant and baked values, a bind group once per layout and buffers', async () => {
    const src = E.tensor([2], [1], { backend: b });
    const src2 = E.tensor([4], [1], { backend: b });
    const out = E.zeros([6], { backend: b });
    const counts = () => ({ pipelines: b.counters.pipelines, bindGroups: b.counters.bindGroups });
    const step = (kernel: typeof paramsKernel, bindings: { src: E.Tensor; out: E.Tensor }, p: Record<string, number | number[]> = params, bake?: string[]) => {
      const before = counts();
      b.run(kernel, undefined, { params: p, bindings, workgroups: 1, bake });
      const after = counts();
      return [after.pipelines - before.pipelines, after.bindGroups - before.bindGroups];
    };
    step(paramsKernel, { src, out }); // whatever earlier tests left cached
    expect(step(paramsKernel, { src, out })).toEqual([0, 0]);
    expect(step(paramsKernel, { src: src2, out })).toEqual([0, 1]);
    expect(step(paramsKernel, { src: src2, out })).toEqual([0, 0]);
    expect(step(twinKernel, { src: src2, out })).toEqual([1, 0]);
    expect(Array.from(await out.toArray())).toEqual([4.5, -5, 70000, 1.25, -2, 4]);
    expect(step(paramsKernel, { src, out }, { ...params, a: 1 }, ['a'])).toEqual([1, 0]);
    expect(step(paramsKernel, { src, out }, { ...params, a: 1 }, ['a'])).toEqual([0, 0]);
    expect(Array.from(await out.toArray())).toEqual([3, -5, 70000, 1.25, -2, 3]);
    // A baked value is the pipeline's, whatever the slot holds.
    expect(step(paramsKernel, { src, out }, { ...params, a: 7 }, ['a'])).toEqual([1, 0]);
    expect(step(paramsKernel, { src, out }, { ...params, a: 1, b: 9 }, ['a'])).toEqual([0, 0]);
    expect(Array.from(await out.toArray())).toEqual([3, 9, 70000, 1.25, -2, 3]);
    for (const t of [src, src2, out]) t.dispose();
  });

  it('runs a sequence of dispatches that switches pipelines with the right pipeline and parameters each', async () => {
    const src = E.tensor([2], [1], { backend: b });
    const outs = [0, 1, 2, 3, 4].map(() => E.zeros([6], { backend: b }));
    const order = [paramsKernel, paramsKernel, twinKernel, twinKernel, paramsKernel];
    order.forEach((k, i) => b.run(k, undefined, { params: { ...params, a: i }, bindings: { src, out: outs[i]! }, workgroups: 1 }));
    for (let i = 0; i < outs.length; i++) {
      const twin = order[i] === twinKernel ? 1 : 0;
      expect(Array.from(await outs[i]!.toArray())).toEqual([i + 2, -5, 70000, 1.25, -2, 3 + twin]);
    }
    for (const t of [src, ...outs]) t.dispose();
  });

  it('splits more than 65535 workgroups over a grid and runs them all', async () => {
    // One invocation per workgroup adds 1 at its flat index: every element is hit exactly once.
    const count = defineKernel({
      name: 'host_grid',
      key: () => '',
      signature: () => ({ params: { n: 'u32' }, bindings: { out: rw() } }),
      body: () => `@compute @workgroup_size(1) fn main(@builtin(workgroup_id) w: vec3<u32>, @builtin(num_workgroups) nw: vec3<u32>) {
  let i = w.x + nw.x * (w.y + nw.y * w.z);
  if (i < P.n) { out[i] = out[i] + 1.0; }
}`,
    });
    const n = 70000;
    const out = E.zeros([n], { backend: b });
    b.run(count, undefined, { params: { n }, bindings: { out }, workgroups: n });
    b.run(count, undefined, { params: { n }, bindings: { out }, workgroups: [n, 1, 1].map((x, i) => (i === 0 ? Math.ceil(x / 2) : i === 1 ? 2 : 1)) as [number, number, number] });
    const v = await out.toArray();
    expect(v.every((x) => x === 2)).toBe(true);
    const d0 = b.counters.dispatches;
    b.run(count, undefined, { params: { n }, bindings: { out }, workgroups: 0 });
    b.run(count, undefined, { params: { n }, bindings: { out }, workgroups: [4, 0, 1] });
    expect(b.counters.dispatches).toBe(d0);
    out.dispose();
  });
});

interface ScaleAttrs {
  factor: number;
}
// x * factor, reading x as a dense array from element 0 (as kernels that index flat do); the
// second input is a mask that receives no gradient.
let kernelSaw: { contiguous: boolean; offset: number; live: number } | null = null;
const scaleOp = E.defineOp<ScaleAttrs>({
  name: 'host_test_scale',
  outputs: ([x]) => [{ shape: x!.shape, dtype: 'f32' }],
  dense: [0],
  nondiff: [1],
  kernels: {
    cpu: (_b, { inputs: [x], outputs: [y], attrs }) => {
      kernelSaw = { contiguous: x!.isContiguous, offset: x!.offset, live: E.memoryStats().liveTensors };
      const xs = (x!.storage as unknown as { data: Float64Array }).data;
      const ys = (y!.storage as unknown as { data: Float64Array }).data;
      for (let i = 0; i < y!.size; i++) ys[i] = xs[i]! * attrs.factor;
    },
  },
  grad: (g, { attrs }) => [E.mul(g, attrs.factor), E.zerosLike(g)],
});

describe('op runner and tensor bookkeeping', () => {
  const cpu = E.cpuF64;

  it('hands a dense copy of a strided input to the kernel, frees it, and records the differentiable inputs only', async () => {
    const base = E.tensor([1, 2, 3, 4, 5, 6], [2, 3], { backend: cpu }).requireGrad();
    const mask = E.ones([3, 2], { backend: cpu }).requireGrad();
    const live0 = E.memoryStats().liveTensors;
    const y = E.tidy(() => {
      const xt = E.transpose(base, 0, 1); // [3, 2], strided
      expect(xt.isContiguous).toBe(false);
      const before = E.memoryStats().liveTensors;
      const out = scaleOp([xt, mask], { factor: 3 })[0]!;
      expect(E.memoryStats().liveTensors).toBe(before + 1); // the output; its input's copy is freed
      return out;
    });
    expect(kernelSaw).toMatchObject({ contiguous: true, offset: 0 });
    expect(Array.from(await y.toArray())).toEqual([3, 12, 6, 15, 9, 18]);
    // The copy is gone once the op returns (the live count below comes back to where it was).
    expect(y.node!.inputs).toHaveLength(1);
    expect(y.node!.op).toBe('host_test_scale');
    const total = E.sum(y);
    total.backward();
    total.dispose();
    expect(Array.from(await base.grad!.toArray())).toEqual([3, 3, 3, 3, 3, 3]);
    expect(mask.grad).toBeNull();
    y.dispose();
    base.grad!.dispose();
    expect(E.memoryStats().liveTensors).toBe(live0);
    // A contiguous input is passed as it is: nothing is copied.
    const x = E.tensor([1, 2], [2], { backend: cpu });
    const live = E.memoryStats().liveTensors;
    const [z] = scaleOp([x, x], { factor: 2 });
    expect(kernelSaw!.live).toBe(live + 1); // the output only
    expect(z!.node).toBeNull();
    for (const t of [base, mask, x, z!]) t.dispose();
  });

  it('does not record under noGrad or when only the non-differentiable input requires grad', () => {
    const x = E.tensor([1, 2], [2], { backend: cpu });
    const m = E.tensor([1, 1], [2], { backend: cpu }).requireGrad();
    const [y] = scaleOp([x, m], { factor: 2 });
    expect(y!.requiresGrad).toBe(false);
    expect(y!.node).toBeNull();
    x.requireGrad();
    const [z] = E.noGrad(() => scaleOp([x, m], { factor: 2 }));
    expect(z!.node).toBeNull();
    for (const t of [x, m, y!, z!]) t.dispose();
  });

  it('caches size and contiguity that match shape and strides, for views too', () => {
    const x = E.zeros([2, 3, 4], { backend: cpu });
    const cases: [E.Tensor, number, boolean][] = [
      [x, 24, true],
      [E.permute(x, [0, 2, 1]), 24, false],
      [E.reshape(x, [6, 4]), 24, true],
      [E.slice(x, [[0, 2], [1, 3], [0, 4]]), 16, false],
      [E.slice(x, [[1, 2], [0, 3], [0, 4]]), 12, true],
      [E.expand(E.zeros([1, 4], { backend: cpu }), [5, 4]), 20, false],
      [E.zeros([0, 3], { backend: cpu }), 0, true],
      // A size-1 dim may have any stride.
      [E.permute(E.zeros([4, 1], { backend: cpu }), [1, 0]), 4, true],
    ];
    for (const [t, size, contiguous] of cases) {
      expect(t.size).toBe(t.shape.reduce((a, d) => a * d, 1));
      expect(t.size).toBe(size);
      expect(t.isContiguous).toBe(contiguous);
      expect(t.isContiguous).toBe(t.isContiguous); // cached answer is the same
    }
    for (const [t] of cases) t.dispose();
  });
});
