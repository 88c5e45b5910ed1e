/**
 * RoPE (1D / 2D, LlamaGen convention), MultiHeadSelfAttention (QK-norm, RoPE, KV cache) and the
 * transformer block (pre-norm, GELU-tanh MLP or SwiGLU, adaLN-Zero):
 *  - RoPE vs the rotation written out directly from the angle formulas (float64 and GPU), with
 *    offsets, [B, L, H, D] layouts and prefix tokens; its gradient (and the gradient of that) vs
 *    finite differences;
 *  - MHSA and blocks vs PyTorch modules with the same parameter names (test/fixtures/make_attention.py),
 *    output and gradients of the input, the condition and every parameter, with the fused and the
 *    composite attention;
 *  - incremental decoding with the KV cache (prefill + one token at a time) equals the full causal
 *    forward;
 *  - adaLN-Zero blocks are the identity at initialization; shapes and gradients of every parameter;
 *    block gradients vs finite differences at tiny size.
 *
 * Tolerances: float64 paths agree with PyTorch's float64 to ~1e-12 (fixture outputs are stored to 10
 * significant digits): 1e-8 relative + 1e-9 absolute. On the GPU a block chains f32 matmuls
 * (K <= 48), norms and the fused attention (see test/attention.test.ts); outputs and gradients are
 * O(1)..O(10) and observed to carry < 1e-5 of error: checked to 1e-4 absolute + 1e-4 relative
 * (parameter gradients sum over B * L = 10..20 tokens). RoPE on the GPU: the table is f32 cos/sin
 * (error 6e-8) times |x| <= 2: 1e-6. KV-cache decoding vs the full forward: float64 1e-10; GPU 2e-5
 * (different f32 reduction orders for the same numbers). Finite differences: float64, 1e-6 absolute
 * + 1e-5 relative.
 */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import * as E from '../engine/index.js';
import * as nn from '../nn/index.js';
import { requireGpu } from './helpers/backends.js';
import { expectClose, expectGradMatchesFD } from './helpers/compare.js';
import { uniformValues } from './helpers/prng.js';

const gpu = await requireGpu();
const ref = E.cpuF64;
const backends = [
  ['float64', ref],
  ['GPU', gpu],
] as const;

const rand = (n: number, seed: number, lo = -1, hi = 1): number[] => uniformValues(n, seed, lo, hi);

/** Direct rotation of x [N, L, D] (row-major data) with angle(pos, pair). */
function rotate(x: number[], L: number, D: number, angle: (pos: number, i: number) => number, offset = 0): number[] {
  const out = x.slice();
  const N = x.length / (L * D);
  for (let n = 0; n < N; n++) {
    for (let l = 0; l < L; l++) {
      for (let i = 0; i < D / 2; i++) {
        const o = (n * L + l) * D + 2 * i;
        const th = angle(l + offset, i);
        const [a, b] = [x[o]!, x[o + 1]!];
        out[o] = a * Math.cos(th) - b * Math.sin(th);
        out[o + 1] = b * Math.cos(th) + a * Math.sin(th);
      }
    }
  }
  return out;
}

describe('RoPE vs the direct formula', () => {
  for (const [name, b] of backends) {
    const tol = b === ref ? { atol: 1e-12, rtol: 1e-12 } : { atol: 1e-6, rtol: 1e-6 };
    it.runIf(b)(`${name}: 1D, [B, H, L, D] with an offset and [B, L, H, D] via seqDim`, async () => {
      const be = b as E.Backend;
      const D = 12;
      const rope = new nn.RoPE1D(D, 40, { backend: be, base: 100 });
      const th = (p: number, i: number) => p * Math.pow(100, (-2 * i) / D);
      const x = rand(2 * 3 * 7 * D, 1, -2, 2);
      const y = await rope.apply(E.tensor(x, [2, 3, 7, D], { backend: be }), { offset: 5 }).toArray();
      expectClose(y, rotate(x, 7, D, th, 5), tol, '1d bhld');
      // [B, L, H, D]: transpose to [B, H, L, D] for the reference.
      const xt = E.tensor(x, [2, 7, 3, D], { backend: ref }).permute([0, 2, 1, 3]);
      const xh = Array.from(await xt.contiguous().toArray());
      const yb = rope.apply(E.tensor(x, [2, 7, 3, D], { backend: be }), { seqDim: -3 }).permute([0, 2, 1, 3]);
      expectClose(await yb.toArray(), rotate(xh, 7, D, th), tol, '1d blhd');
    });
    it.runIf(b)(`${name}: 2D over prefix tokens + an h x w grid (rows rotate the first half, columns the second)`, async () => {
      const be = b as E.Backend;
      const D = 16;
      const [gh, gw, prefix] = [3, 4, 2];
      const L = prefix + gh * gw;
      const f = (k: number) => Math.pow(10000, (-2 * k) / (D / 2));
      const th = (p: number, i: number) => {
        if (p < prefix) return 0;
        const [r, c] = [Math.floor((p - prefix) / gw), (p - prefix) % gw];
        return i < D / 4 ? r * f(i) : c * f(i - D / 4);
      };
      const x = rand(2 * L * D, 2, -2, 2);
      const rope = new nn.RoPE2D(D, gh, gw, { prefix, backend: be });
      expect(rope.maxLen).toBe(L);
      expectClose(await rope.apply(E.tensor(x, [2, L, D], { backend: be })).toArray(), rotate(x, L, D, th), tol, '2d');
      // Decoding from position 6 on: the rows for 6.. of the same table.
      const tail = E.tensor(x, [2, L, D], { backend: be }).slice([null, [6, L]]);
      const want = rotate(x, L, D, th).filter((_, i) => i % (L * D) >= 6 * D);
      expectClose(await rope.apply(tail, { offset: 6 }).toArray(), want, tol, '2d offset');
      // LlamaGen's 'zero' prefix rows zero the prefix tokens.
      const z = await new nn.RoPE2D(D, gh, gw, { prefix, prefixMode: 'zero', backend: be }).apply(E.tensor(x, [2, L, D], { backend: be })).toArray();
      expect(Array.from(z).slice(0, prefix * D).every((v) => v === 0)).toBe(true);
      expectClose(Array.from(z).slice(prefix * D, L * D), rotate(x, L, D, th).slice(prefix * D, L * D), tol, '2d zero prefix');
    });
  }

  it('gradient and gradient of the gradient vs finite differences (float64)', async () => {
    const rope = new nn.RoPE1D(6, 10, { backend: ref });
    const spec = { shape: [2, 4, 6], data: rand(48, 3) };
    await expectGradMatchesFD((x) => rope.apply(x, { offset: 3 }), [spec], { atol: 1e-6, rtol: 1e-5 });
    const w = E.tensor(rand(48, 4), [2, 4, 6], { backend: ref });
    const inner = (x: E.Tensor) => E.grad((z: E.Tensor) => rope.apply(z.mul(z)).mul(w).sum())(x)[0]!;
    await expectGradMatchesFD(inner, [spec], { atol: 1e-6, rtol: 1e-5 });
  });

  it('errors; tables are shared and not in the state dict', () => {
    expect(() => new nn.RoPE1D(5, 8, { backend: ref })).toThrow(/head dim must be a positive even integer, got 5/);
    expect(() => new nn.RoPE2D(6, 2, 2, { backend: ref })).toThrow(/multiple of 4, got 6/);
    const rope = new nn.RoPE1D(4, 8, { backend: ref });
    expect(() => rope.apply(E.zeros([1, 6, 4], { backend: ref }), { offset: 3 })).toThrow(/positions 3\.\.8 exceed the table \(8 positions\)/);
    expect(() => rope.apply(E.zeros([1, 6, 5], { backend: ref }))).toThrow(/last dim must be 4/);
    expect(new nn.RoPE1D(4, 8, { backend: ref }).table).toBe(rope.table);
    const attn = new nn.MultiHeadSelfAttention(8, 2, { rope: '1d', maxLen: 16, qkNorm: 'rms', backend: ref });
    expect(Object.keys(attn.stateDict()).sort()).toEqual(['k_norm.weight', 'proj.bias', 'proj.weight', 'q_norm.weight', 'qkv.bias', 'qkv.weight']);
  });
});

interface Enc {
  shape: number[];
  data: (number | null)[];
}
interface ModuleFixture {
  name: string;
  config: Record<string, unknown>;
  state: Record<string, Enc>;
  x: Enc;
  cond?: Enc;
  gy: Enc;
  y: Enc;
  gx: Enc;
  gcond?: Enc;
  grads: Record<string, Enc>;
}
const fixtures = JSON.parse(readFileSync(new URL('./fixtures/attention.json', import.meta.url), 'utf8')) as { mhsa: ModuleFixture[]; blocks: ModuleFixture[] };

function load(e: Enc, b: E.Backend): E.Tensor {
  return E.tensor(e.data.map((v) => (v === null ? -Infinity : Math.fround(v))), e.shape, { backend: b });
}

type Impl = 'fused' | 'composite' | 'auto';

function makeModule(kind: 'mhsa' | 'block', c: ModuleFixture, b: E.Backend, attnImpl: Impl): nn.MultiHeadSelfAttention | nn.TransformerBlock {
  const cfg = { ...(c.config as unknown as { dim: number; heads: number } & nn.TransformerBlockOptions), backend: b, attnImpl };
  return kind === 'mhsa' ? new nn.MultiHeadSelfAttention(cfg.dim, cfg.heads, cfg) : new nn.TransformerBlock(cfg.dim, cfg.heads, cfg);
}

describe('PyTorch fixtures: MultiHeadSelfAttention and TransformerBlock', () => {
  for (const [name, b] of backends) {
    const tol = b === ref ? { atol: 1e-9, rtol: 1e-8 } : { atol: 1e-4, rtol: 1e-4 };
    for (const [kind, list] of [
      ['mhsa', fixtures.mhsa],
      ['block', fixtures.blocks],
    ] as const) {
      for (const c of list) for (const impl of ['fused', 'composite'] as const) {
        it.runIf(b)(`${name}: ${kind} ${c.name} (${impl} attention)`, async () => {
          const be = b as E.Backend;
          const m = makeModule(kind, c, be, impl);
          // The same parameter names as the PyTorch module: a strict load succeeds.
          m.loadStateDict(Object.fromEntries(Object.entries(c.state).map(([k, v]) => [k, load(v, be)])));
          const x = load(c.x, be).requireGrad();
          const cond = c.cond ? load(c.cond, be).requireGrad() : undefined;
          const y = m instanceof nn.TransformerBlock ? m.forward(x, cond ? { cond } : {}) : m.forward(x);
          const names = Object.keys(c.grads);
          const params = m.stateDict();
          const wrt = [x, ...(cond ? [cond] : []), ...names.map((n) => params[n]!)];
          const grads = E.gradients(y, wrt, { gradOutput: load(c.gy, be) });
          expectClose(await y.toArray(), c.y.data as number[], tol, 'y');
          expectClose(await grads[0]!.toArray(), c.gx.data as number[], tol, 'grad x');
          if (cond) expectClose(await grads[1]!.toArray(), c.gcond!.data as number[], tol, 'grad cond');
          const off = cond ? 2 : 1;
          for (let i = 0; i < names.length; i++) expectClose(await grads[off + i]!.toArray(), c.grads[names[i]!]!.data as number[], tol, `grad ${names[i]}`);
          m.dispose();
        });
      }
    }
  }
});

describe('KV-cache decoding equals the full causal forward', () => {
  const configs: [string, nn.TransformerBlockOptions][] = [
    ['plain', {}],
    ['RMS qk-norm + 1D RoPE', { qkNorm: 'rms', rope: '1d', maxLen: 32 }],
    ['LayerNorm qk-norm + 2D RoPE with a prefix token', { qkNorm: 'layer', rope: '2d', grid: [3, 3], ropePrefix: 1 }],
  ];
  for (const [name, b] of backends) {
    const tol = b === ref ? { atol: 1e-10, rtol: 1e-10 } : { atol: 2e-5, rtol: 1e-4 };
    for (const [cname, cfg] of configs) for (const attnImpl of ['fused', 'auto'] as const) {
      it.runIf(b)(`${name}: attention, ${cname} (${attnImpl}): prefill 3 tokens, then one at a time`, async () => {
        const be = b as E.Backend;
        const [B, L, C] = [2, 10, 16];
        const attn = new nn.MultiHeadSelfAttention(C, 2, { ...cfg, causal: true, attnImpl, backend: be, generator: new E.Generator(7) });
        const x = E.tensor(rand(B * L * C, 11), [B, L, C], { backend: be });
        const full = await E.noGrad(() => attn.forward(x)).toArray();
        const cache = attn.createCache(B, 12);
        const parts = E.noGrad(() => {
          const out = [attn.forward(x.slice([null, [0, 3]]), { cache })];
          for (let t = 3; t < L; t++) out.push(attn.forward(x.slice([null, [t, t + 1]]), { cache }));
          return E.concat(out, 1);
        });
        expect(cache.length).toBe(L);
        expectClose(await parts.toArray(), full, tol, `${cname} incremental`);
        // Re-decoding from an explicit position overwrites the cache slot.
        const again = E.noGrad(() => attn.forward(x.slice([null, [L - 1, L]]), { cache, pos: L - 1 }));
        expectClose(await again.toArray(), Array.from(full).filter((_, i) => i % (L * C) >= (L - 1) * C), tol, 'pos');
        cache.dispose();
        attn.dispose();
      });
    }
    it.runIf(b)(`${name}: transformer block (SwiGLU, RMSNorm, 1D RoPE, adaLN) decodes the same way`, async () => {
      const be = b as E.Backend;
      const [B, L, C] = [2, 6, 16];
      const block = new nn.TransformerBlock(C, 2, { causal: true, rope: '1d', maxLen: 16, mlp: 'swiglu', norm: 'rms', adaLN: 5, attnImpl: 'fused', backend: be, generator: new E.Generator(8) });
      // Give the zero-initialized modulation some weights so the test is not the identity.
      E.noGrad(() => block.adaLN!.linear.weight.assign(E.tensor(rand(6 * C * 5, 12, -0.5, 0.5), [6 * C, 5], { backend: be })));
      const x = E.tensor(rand(B * L * C, 13), [B, L, C], { backend: be });
      const cond = E.tensor(rand(B * 5, 14), [B, 5], { backend: be });
      const full = await E.noGrad(() => block.forward(x, { cond })).toArray();
      const cache = block.createCache(B, L);
      const parts = E.noGrad(() => E.concat(Array.from({ length: L }, (_, t) => block.forward(x.slice([null, [t, t + 1]]), { cond, cache })), 1));
      expectClose(await parts.toArray(), full, tol, 'block incremental');
      cache.dispose();
    });
  }

  it('cache misuse gives clear errors', () => {
    const attn = new nn.MultiHeadSelfAttention(8, 2, { causal: true, backend: ref });
    const cache = attn.createCache(1, 4);
    const x = E.zeros([1, 3, 8], { backend: ref });
    expect(() => attn.forward(x, { cache })).toThrow(/inference-only; run it under noGrad/);
    E.noGrad(() => attn.forward(x, { cache }));
    expect(() => E.noGrad(() => attn.forward(x, { cache }))).toThrow(/positions 3\.\.5 exceed the cache \(4\)/);
    expect(() => E.noGrad(() => attn.forward(E.zeros([2, 1, 8], { backend: ref }), { cache: attn.createCache(1, 4) }))).toThrow(/cache shape \[1, 2, 4, 4\] does not fit input \[2, 1, 8\]/);
    expect(() => attn.forward(E.zeros([1, 3, 7], { backend: ref }))).toThrow(/input must be \[B, L, 8\], got \[1, 3, 7\]/);
    expect(() => new nn.MultiHeadSelfAttention(10, 3)).toThrow(/dim 10 is not divisible by 3 heads/);
  });
});

describe('TransformerBlock', () => {
  it('adaLN-Zero: a fresh block is the identity; DiT parameter names', async () => {
    const block = new nn.TransformerBlock(8, 2, { adaLN: 4, qkNorm: true, backend: ref, generator: new E.Generator(1) });
    const x = E.tensor(rand(2 * 3 * 8, 21), [2, 3, 8], { backend: ref });
    const y = block.forward(x, { cond: E.tensor(rand(8, 22), [2, 4], { backend: ref }) });
    expect(Array.from(await y.toArray())).toEqual(Array.from(await x.toArray()));
    expect(Object.keys(block.stateDict()).sort()).toEqual(
      ['adaLN_modulation.1.bias', 'adaLN_modulation.1.weight', 'attn.k_norm.bias', 'attn.k_norm.weight', 'attn.proj.bias', 'attn.proj.weight', 'attn.q_norm.bias', 'attn.q_norm.weight', 'attn.qkv.bias', 'attn.qkv.weight', 'mlp.fc1.bias', 'mlp.fc1.weight', 'mlp.fc2.bias', 'mlp.fc2.weight'].sort(),
    );
    expect(() => block.forward(x)).toThrow(/needs forward\(x, \{ cond \}\)/);
  });

  for (const [name, b] of backends) {
    it.runIf(b)(`${name}: output shape and a gradient of the right shape for every parameter`, async () => {
      const be = b as E.Backend;
      for (const opts of [{ causal: true, rope: '2d', grid: [2, 2], mlp: 'swiglu', norm: 'rms' }, { adaLN: 6, qkNorm: 'layer', mlpRatio: 2 }] as nn.TransformerBlockOptions[]) {
        const block = new nn.TransformerBlock(16, 4, { ...opts, attnImpl: 'fused', backend: be, generator: new E.Generator(2) });
        if (block.adaLN) E.noGrad(() => block.adaLN!.linear.weight.assign(0.1));
        const x = E.tensor(rand(2 * 4 * 16, 23), [2, 4, 16], { backend: be }).requireGrad();
        const cond = E.tensor(rand(12, 24), [2, 6], { backend: be });
        const y = block.forward(x, { cond });
        expect(y.shape).toEqual([2, 4, 16]);
        const ps = block.parameters();
        const grads = E.gradients(y.square().mean(), [x, ...ps]);
        grads.forEach((g, i) => expect(g.shape, block.namedParameters()[i - 1]?.[0] ?? 'x').toEqual(i === 0 ? x.shape : ps[i - 1]!.shape));
        for (const g of grads) {
          const a = await g.toArray();
          expect(Array.from(a).every(Number.isFinite)).toBe(true);
        }
        // Every parameter influences the loss (a gradient that is not all zeros).
        for (const g of grads.slice(1)) expect(Array.from(await g.toArray()).some((v) => v !== 0)).toBe(true);
        block.dispose();
      }
    });
  }

  it('gradients of the input and the condition vs finite differences (float64, tiny block)', async () => {
    for (const opts of [
      { causal: true, rope: '1d', maxLen: 8, qkNorm: 'rms', mlp: 'swiglu', norm: 'rms' },
      { adaLN: 3, qkNorm: 'layer', rope: '2d', grid: [1, 3] },
    ] as nn.TransformerBlockOptions[]) {
      const block = new nn.TransformerBlock(8, 2, { ...opts, mlpHidden: 6, attnImpl: 'fused', backend: ref, generator: new E.Generator(3) });
      if (block.adaLN) E.noGrad(() => block.adaLN!.linear.weight.assign(E.tensor(rand(48 * 3, 25, -0.5, 0.5), [48, 3], { backend: ref })));
      const inputs = [{ shape: [1, 3, 8], data: rand(24, 26) }, ...(block.adaLN ? [{ shape: [1, 3], data: rand(3, 27) }] : [])];
      await expectGradMatchesFD((x, c) => block.forward(x, c ? { cond: c } : {}), inputs, { atol: 1e-6, rtol: 1e-5 });
    }
  });
});

