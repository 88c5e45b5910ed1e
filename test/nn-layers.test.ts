/**
 * nn modules: dotted names and state dicts that match a PyTorch reference network
 * (test/fixtures/make_nn.py), outputs and parameter gradients vs PyTorch, parameter gradients vs
 * finite differences, and state-dict errors.
 * Tolerances: float64 CPU vs PyTorch float64 agree to ~1e-12 (1e-9 allowed: the fixture JSON keeps
 * 17 significant digits, the rest is summation order). On the GPU the network chains ~8 f32 layers
 * with dot products of <= 108 terms and two normalizations; errors of a few 1e-6 relative per layer
 * compound to < 1e-4, so atol 2e-4 / rtol 2e-4.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import * as E from '../engine/index.js';
import * as nn from '../nn/index.js';
import { requireGpu } from './helpers/backends.js';
import { expectClose } from './helpers/compare.js';
import { expectNoLeaks } from './helpers/leak-check.js';

const gpu = await requireGpu();

class TinyNet extends nn.Module {
  stem: nn.Conv2d;
  blocks: nn.ModuleList<nn.ResBlock>;
  up: nn.ConvTranspose2d;
  norm: nn.LayerNorm;
  head: nn.Linear;
  emb: nn.Embedding;
  constructor(o: nn.InitOptions) {
    super();
    this.stem = this.module('stem', new nn.Conv2d(3, 8, 3, { ...o, stride: 2, padding: 1 }));
    this.blocks = this.module('blocks', new nn.ModuleList([new nn.ResBlock(8, 8, { ...o, normGroups: 4 }), new nn.ResBlock(8, 12, { ...o, normGroups: 4 })]));
    this.up = this.module('up', new nn.ConvTranspose2d(12, 6, 4, { ...o, stride: 2, padding: 1 }));
    this.norm = this.module('norm', new nn.LayerNorm(8, o));
    this.head = this.module('head', new nn.Linear(8, 5, o));
    this.emb = this.module('emb', new nn.Embedding(10, 5, o));
  }
  forward(x: E.Tensor, ids: E.Tensor): E.Tensor {
    let h = this.stem.forward(x);
    for (const b of this.blocks) h = b.forward(h);
    h = this.norm.forward(this.up.forward(h));
    const e = this.emb.forward(ids);
    return this.head.forward(h).add(e.reshape([e.shape[0]!, 1, 1, e.shape[1]!]));
  }
}

interface Arr {
  shape: number[];
  data: number[];
}
const fx = JSON.parse(readFileSync(join(import.meta.dirname, 'fixtures/nn.json'), 'utf8')) as {
  state: Record<string, Arr>;
  x: Arr;
  ids: number[];
  w: Arr;
  out: Arr;
  grads: Record<string, number[]>;
  grad_x: number[];
};

const backends: [string, E.Backend, { atol: number; rtol: number }][] = [
  ['cpu-f64', E.cpuF64, { atol: 1e-9, rtol: 1e-9 }],
  ...(gpu ? [['webgpu', gpu, { atol: 2e-4, rtol: 2e-4 }] as [string, E.Backend, { atol: number; rtol: number }]] : []),
];

describe.each(backends)('TinyNet vs the PyTorch reference on %s', (_n, backend, tol) => {
  it('has exactly the PyTorch parameter names and shapes, loads its state dict, and matches outputs and gradients', async () => {
    const net = new TinyNet({ backend, generator: new E.Generator(1) });
    const names = Object.keys(net.stateDict()).sort();
    expect(names).toEqual(Object.keys(fx.state).sort());
    for (const [k, t] of Object.entries(net.stateDict())) expect([...t.shape], k).toEqual(fx.state[k]!.shape);
    const state = Object.fromEntries(Object.entries(fx.state).map(([k, v]) => [k, E.tensor(v.data, v.shape, { backend })]));
    net.loadStateDict(state);
    const x = E.tensor(fx.x.data, fx.x.shape, { backend }).requireGrad();
    const ids = E.tensor(fx.ids, [fx.ids.length], { backend, dtype: 'i32' });
    const w = E.tensor(fx.w.data, fx.w.shape, { backend });
    const out = net.forward(x, ids);
    expect([...out.shape]).toEqual(fx.out.shape);
    expectClose(await out.toArray(), fx.out.data, tol, 'output');
    out.mul(w).sum().backward();
    expectClose(await x.grad!.toArray(), fx.grad_x, tol, 'grad x');
    for (const [k, p] of net.namedParameters()) expectClose(await p.grad!.toArray(), fx.grads[k]!, tol, `grad ${k}`);
    expect(net.numParameters()).toBe(5025);
    expect(net.summary()).toMatch(/^TinyNet \(5\.0k parameters\) \[stem: Conv2d, blocks: ModuleList/);
  });
});

describe('state dicts', () => {
  const make = (seed: number) => new TinyNet({ backend: E.cpuF64, generator: new E.Generator(seed) });

  it('round trip: a differently seeded model loaded with another state gives identical outputs', async () => {
    const a = make(1);
    const b = make(2);
    const x = E.randn([1, 3, 8, 8], { backend: E.cpuF64, generator: new E.Generator(3) });
    const ids = E.tensor([4], [1], { backend: E.cpuF64, dtype: 'i32' });
    const ya = await a.forward(x, ids).toArray();
    expect(Array.from(await b.forward(x, ids).toArray())).not.toEqual(Array.from(ya));
    b.loadStateDict(a.stateDict());
    expect(Array.from(await b.forward(x, ids).toArray())).toEqual(Array.from(ya));
  });

  it('names every missing, unexpected and mis-shaped key, and writes nothing on error', async () => {
    const a = make(1);
    const before = Array.from(await a.head.weight.toArray());
    const state = { ...a.stateDict() } as Record<string, E.Tensor>;
    delete state['emb.weight'];
    state['head.extra'] = E.zeros([1], { backend: E.cpuF64 });
    state['stem.bias'] = E.zeros([3], { backend: E.cpuF64 });
    state['head.weight'] = E.ones([5, 8], { backend: E.cpuF64 });
    expect(() => a.loadStateDict(state)).toThrow(/'stem.bias': expected shape \[8\], got \[3\].*missing keys: emb.weight.*unexpected keys: head.extra/);
    expect(Array.from(await a.head.weight.toArray())).toEqual(before);
    delete state['stem.bias'];
    const r = a.loadStateDict(state, false);
    expect(r).toEqual({ missing: ['stem.bias', 'emb.weight'], unexpected: ['head.extra'] });
    expect(Array.from(await a.head.weight.toArray())).toEqual(new Array(40).fill(1));
  });

  it('seeded initialization is reproducible and follows PyTorch bounds', async () => {
    const l1 = new nn.Linear(50, 20, { backend: E.cpuF64, generator: new E.Generator(5) });
    const l2 = new nn.Linear(50, 20, { backend: E.cpuF64, generator: new E.Generator(5) });
    const w = await l1.weight.toArray();
    expect(Array.from(w)).toEqual(Array.from(await l2.weight.toArray()));
    const bound = 1 / Math.sqrt(50);
    expect(Math.max(...Array.from(w, Math.abs))).toBeLessThanOrEqual(bound);
    expect(Math.max(...Array.from(w, Math.abs))).toBeGreaterThan(bound * 0.9);
  });
});

/** Checks every parameter gradient of sum(forward(x) * w) against central differences (float64). */
async function expectParamGradsMatchFD(m: nn.Module, forward: () => E.Tensor): Promise<void> {
  const raw = () => {
    const y = forward();
    const w = E.tensor(Array.from({ length: y.size }, (_, i) => Math.cos(0.7 * i) + 0.5), [...y.shape], { backend: E.cpuF64 });
    return y.mul(w).sum();
  };
  const objective = () => E.tidy(raw);
  m.zeroGrad();
  E.tidy(() => raw().backward());
  const eps = 1e-6;
  for (const [name, p] of m.namedParameters()) {
    const analytic = await p.grad!.toArray();
    const base = Float64Array.from(await p.toArray());
    const fd = new Float64Array(base.length);
    for (let j = 0; j < base.length; j++) {
      const at = async (d: number) => {
        const v = base.slice();
        v[j]! += d;
        p.assign(E.tensor(v, [...p.shape], { backend: E.cpuF64 }));
        const o = objective();
        const r = await o.item();
        o.dispose();
        return r;
      };
      fd[j] = ((await at(eps)) - (await at(-eps))) / (2 * eps);
    }
    p.assign(E.tensor(base, [...p.shape], { backend: E.cpuF64 }));
    expectClose(analytic, fd, { atol: 1e-6, rtol: 1e-5 }, `d/d ${name}`);
  }
}

describe('layer parameter gradients vs finite differences (float64)', () => {
  const o = { backend: E.cpuF64, generator: new E.Generator(11) };
  const img = E.randn([2, 4, 5, 5], { ...o });
  it('Linear', async () => {
    const l = new nn.Linear(5, 3, o);
    await expectParamGradsMatchFD(l, () => l.forward(img.slice([null, null, [0, 2]])));
  });
  it('Conv2d (stride 2, groups 2) and ConvTranspose2d', async () => {
    const c = new nn.Conv2d(4, 6, 3, { ...o, stride: 2, padding: 1, groups: 2 });
    await expectParamGradsMatchFD(c, () => c.forward(img));
    const t = new nn.ConvTranspose2d(4, 2, 3, { ...o, stride: 2, padding: 1, outputPadding: 1 });
    await expectParamGradsMatchFD(t, () => t.forward(img));
  });
  it('GroupNorm, LayerNorm, RMSNorm (with perturbed affine params)', async () => {
    for (const m of [new nn.GroupNorm(2, 4, o), new nn.LayerNorm([5, 5], o), new nn.RMSNorm(5, o)]) {
      for (const p of m.parameters()) p.assign(p.add(E.randn([...p.shape], { ...o, std: 0.3 })));
      await expectParamGradsMatchFD(m, () => m.forward(img));
    }
  });
  it('Embedding and ResBlock', async () => {
    const e = new nn.Embedding(6, 3, o);
    await expectParamGradsMatchFD(e, () => e.forward(E.tensor([1, 4, 1], [3], { backend: E.cpuF64, dtype: 'i32' })));
    const r = new nn.ResBlock(4, 2, { ...o, normGroups: 2 });
    await expectParamGradsMatchFD(r, () => r.forward(img.slice([[0, 1]])));
  });
});

describe('layer behaviour', () => {
  it('Dropout: identity in eval, zeroes about p and rescales in train', async () => {
    const d = new nn.Dropout(0.25, new E.Generator(9));
    const x = E.ones([4000], { backend: E.cpuF64 });
    d.eval();
    expect(d.forward(x)).toBe(x);
    d.train();
    const y = Array.from(await d.forward(x).toArray());
    const zeros = y.filter((v) => v === 0).length / y.length;
    expect(Math.abs(zeros - 0.25)).toBeLessThan(0.03);
    expect(new Set(y.filter((v) => v !== 0))).toEqual(new Set([1 / 0.75]));
  });
  it('errors name the layer and the shapes', () => {
    const l = new nn.Linear(4, 2, { backend: E.cpuF64 });
    expect(() => l.forward(E.zeros([3, 5], { backend: E.cpuF64 }))).toThrow(/Linear\(4, 2\): input last dim must be 4, got shape \[3, 5\]/);
    expect(() => new nn.GroupNorm(3, 8)).toThrow(/8 channels are not divisible by 3 groups/);
    // eps is an option: the old positional form is refused, not read as "no options".
    expect(() => new nn.LayerNorm(8, 1e-6 as unknown as object)).toThrow(/LayerNorm: options must be an object .*got the number 0.000001/);
    expect(() => new nn.Conv2d(3, 4, 3, { groups: 2 })).toThrow(/divisible by groups 2/);
  });
});

describe('hinge GAN losses', () => {
  it('match their definitions and gradients', async () => {
    const real = E.tensor([2, 0.5, -1], [3], { backend: E.cpuF64 }).requireGrad();
    const fake = E.tensor([-2, 0.3, 1.5], [3], { backend: E.cpuF64 }).requireGrad();
    const d = nn.hingeDiscriminatorLoss(real, fake);
    // relu(1 - real) = [0, 0.5, 2] -> mean 5/6; relu(1 + fake) = [0, 1.3, 2.5] -> mean 3.8/3; halved.
    expect(await d.item()).toBeCloseTo(0.5 * (2.5 / 3 + 3.8 / 3), 12);
    d.backward();
    expectClose(await real.grad!.toArray(), [0, -1 / 6, -1 / 6], { atol: 1e-12, rtol: 0 });
    expectClose(await fake.grad!.toArray(), [0, 1 / 6, 1 / 6], { atol: 1e-12, rtol: 0 });
    expect(await nn.hingeGeneratorLoss(fake).item()).toBeCloseTo(-(-2 + 0.3 + 1.5) / 3, 12);
  });
});

describe.each(backends)('lifetimes on %s (one scope rule)', (_n, backend) => {
  it('a module call frees its intermediates without recording; a training step frees its graph', async () => {
    const net = new TinyNet({ backend, generator: new E.Generator(1) });
    const x = E.randn([2, 3, 8, 8], { backend, generator: new E.Generator(3) });
    const ids = E.tensor([4, 1], [2], { backend, dtype: 'i32' });
    (await expectNoLeaks(() => E.noGrad(() => net.forward(x, ids)), 'forward without recording')).dispose();
    // The module scopes hand the recorded intermediates to the step's tidy, which frees them after backward.
    await expectNoLeaks(() => {
      E.tidy(() => void net.forward(x, ids).square().mean().backward());
      net.zeroGrad();
    }, 'training step');
    const seq = new nn.Sequential(new nn.Linear(4, 8, { backend }), new nn.SiLU(), new nn.Linear(8, 2, { backend }));
    const v = E.randn([3, 4], { backend, generator: new E.Generator(4) });
    (await expectNoLeaks(() => E.noGrad(() => seq.forward(v)), 'Sequential (chain)')).dispose();
    for (const t of [x, ids, v]) t.dispose();
    net.dispose();
    seq.dispose();
  });
});
