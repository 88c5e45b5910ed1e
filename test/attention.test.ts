/**
 * Fused scaled dot-product attention: GPU kernels vs the float64 CPU reference of the fused op and
 * vs the composite softmax(q k^T * scale + mask) v built from existing ops (forward and gradients),
 * over generated shapes (B, H in 1..3, Lq, Lk in 1..70, D in {1..8, 16, 32, 64}, Dv = D or another
 * size, causal or not, additive / boolean / no mask, contiguous or head-interleaved [B, L, H, D]
 * inputs); PyTorch fixtures (test/fixtures/make_attention.py); gradients vs finite differences;
 * decode (Lq = 1..4), long rows, D = 128, KV-cache slices, fully masked rows; errors; memory.
 *
 * Tolerances. Inputs are in [-1.5, 1.5], so |score| <= scale * D * 2.25 <= 18 (D = 64) and is
 * typically ~1. In f32 a score carries an error ~ sqrt(D) * 2^-24 * |q||k| scale (~1e-7 typical,
 * <= 1e-5 worst case); it enters the probabilities as a relative error of the same size, and the
 * output (a convex combination of v rows, |v| <= 1.5) gets at most ~2 * 1.5 * that. Observed
 * max error over B = H = 3, L = 70, D = 64 cases: 4e-7; the forward is checked to 1e-5 absolute
 * + 1e-4 relative. Gradients chain the recomputed probabilities with dp - delta (delta = dO . O in
 * f32) and sum over up to 70 rows: observed max 1.3e-6, checked to 3e-5 absolute + 1e-4 relative
 * (a wrong mask, offset or missing term gives errors of order 0.1). Float64 fused vs float64 composite agree to rounding: 1e-10.
 * Finite differences (float64, eps 1e-6): 1e-6 absolute + 1e-5 relative.
 */
import { readFileSync } from 'node:fs';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import * as E from '../engine/index.js';
import { requireGpu } from './helpers/backends.js';
import { expectClose, expectGradMatchesFD, type InputSpec } from './helpers/compare.js';
import { uniformValues } from './helpers/prng.js';

const gpu = await requireGpu();
const ref = E.cpuF64;
const tolFwd = { atol: 1e-5, rtol: 1e-4 };
const tolGrad = { atol: 3e-5, rtol: 1e-4 };
const tolF64 = { atol: 1e-10, rtol: 1e-10 };
const tolFD = { atol: 1e-6, rtol: 1e-5 };

const rand = (n: number, seed: number, lo = -1.5, hi = 1.5): number[] => uniformValues(n, seed, lo, hi);

type MaskKind = 'none' | 'f32' | 'i32';
interface Case {
  B: number;
  H: number;
  Lq: number;
  Lk: number;
  D: number;
  Dv: number;
  causal: boolean;
  mask: MaskKind;
  /** Inputs stored [B, L, H, D] and permuted (strided views), or contiguous [B, H, L, D]. */
  layout: 'bhld' | 'blhd';
  seed: number;
}

const headDim = fc.constantFrom(1, 2, 3, 4, 5, 6, 7, 8, 16, 32, 64);
const caseArb: fc.Arbitrary<Case> = fc.record({
  B: fc.integer({ min: 1, max: 3 }),
  H: fc.integer({ min: 1, max: 3 }),
  Lq: fc.integer({ min: 1, max: 70 }),
  Lk: fc.integer({ min: 1, max: 70 }),
  D: headDim,
  Dv: fc.option(headDim, { freq: 3 }),
  causal: fc.boolean(),
  mask: fc.constantFrom<MaskKind>('none', 'none', 'f32', 'i32'),
  layout: fc.constantFrom<Case['layout']>('bhld', 'blhd'),
  seed: fc.integer({ min: 1, max: 2 ** 30 }),
}).map((c) => ({ ...c, Dv: c.Dv ?? c.D }));

interface Built {
  q: E.Tensor;
  k: E.Tensor;
  v: E.Tensor;
  mask: E.Tensor | null;
  g: E.Tensor;
}

function buildInput(c: Case, L: number, Dx: number, seed: number, b: E.Backend): E.Tensor {
  if (c.layout === 'bhld') return E.tensor(rand(c.B * c.H * L * Dx, seed), [c.B, c.H, L, Dx], { backend: b });
  return E.tensor(rand(c.B * c.H * L * Dx, seed), [c.B, L, c.H, Dx], { backend: b }).permute([0, 2, 1, 3]);
}

function build(c: Case, b: E.Backend): Built {
  const q = buildInput(c, c.Lq, c.D, c.seed, b);
  const k = buildInput(c, c.Lk, c.D, c.seed + 1, b);
  const v = buildInput(c, c.Lk, c.Dv, c.seed + 2, b);
  const g = E.tensor(rand(c.B * c.H * c.Lq * c.Dv, c.seed + 3), [c.B, c.H, c.Lq, c.Dv], { backend: b });
  let mask: E.Tensor | null = null;
  if (c.mask === 'f32') {
    // Additive [Lq, Lk] mask broadcast over B and H, ~15% blocked.
    const u = rand(c.Lq * c.Lk, c.seed + 4, 0, 1);
    const vals = rand(c.Lq * c.Lk, c.seed + 5, -2, 2);
    mask = E.tensor(u.map((x, i) => (x < 0.15 ? -Infinity : vals[i]!)), [c.Lq, c.Lk], { backend: b });
  } else if (c.mask === 'i32') {
    // Boolean [B, 1, Lq, Lk] mask (nonzero = attend), ~30% blocked.
    const u = rand(c.B * c.Lq * c.Lk, c.seed + 4, 0, 1);
    mask = E.tensor(Int32Array.from(u, (x) => (x < 0.3 ? 0 : 1)), [c.B, 1, c.Lq, c.Lk], { backend: b });
  }
  return { q, k, v, mask, g };
}

type Attn = typeof E.scaledDotProductAttention;

/** Output and gradients (q, k, v) of sum(o * g), read back. */
async function runCase(c: Case, b: E.Backend, f: Attn): Promise<ArrayLike<number>[]> {
  const outs = E.tidy(() => {
    const { q, k, v, mask, g } = build(c, b);
    for (const t of [q, k, v]) t.requireGrad();
    const o = f(q, k, v, { causal: c.causal, mask });
    const grads = E.gradients(o, [q, k, v], { gradOutput: g });
    return [o, ...grads];
  });
  const arrays = await Promise.all(outs.map((t) => t.toArray()));
  for (const t of outs) t.dispose();
  return arrays;
}

const NAMES = ['o', 'dq', 'dk', 'dv'];

function label(c: Case): string {
  return `B${c.B} H${c.H} Lq${c.Lq} Lk${c.Lk} D${c.D} Dv${c.Dv} causal=${c.causal} mask=${c.mask} ${c.layout}`;
}

describe('scaledDotProductAttention: float64 fused reference vs composite', () => {
  it('forward and gradients agree to rounding (generated cases)', async () => {
    await fc.assert(
      fc.asyncProperty(caseArb, async (c) => {
        const fused = await runCase(c, ref, E.scaledDotProductAttention);
        const comp = await runCase(c, ref, E.scaledDotProductAttentionComposite);
        fused.forEach((a, i) => expectClose(a, comp[i]!, tolF64, `${label(c)} ${NAMES[i]}`));
      }),
      { numRuns: 25 },
    );
  });
});

describe.runIf(gpu)('scaledDotProductAttention: GPU vs float64', () => {
  it('fused GPU forward and gradients vs the float64 fused op and the float64 composite (generated cases)', async () => {
    await fc.assert(
      fc.asyncProperty(caseArb, async (c) => {
        const got = await runCase(c, gpu!, E.scaledDotProductAttention);
        const fused = await runCase(c, ref, E.scaledDotProductAttention);
        const comp = await runCase(c, ref, E.scaledDotProductAttentionComposite);
        got.forEach((a, i) => {
          const tol = i === 0 ? tolFwd : tolGrad;
          expectClose(a, fused[i]!, tol, `${label(c)} ${NAMES[i]} vs fused f64`);
          expectClose(a, comp[i]!, tol, `${label(c)} ${NAMES[i]} vs composite f64`);
        });
      }),
      { numRuns: 30 },
    );
  });

  it('the composite on the GPU matches too (its gradients are the reference for the fused backward)', async () => {
    for (const c of [
      { B: 2, H: 2, Lq: 9, Lk: 13, D: 8, Dv: 8, causal: true, mask: 'none', layout: 'bhld', seed: 11 },
      { B: 1, H: 3, Lq: 17, Lk: 17, D: 16, Dv: 5, causal: false, mask: 'f32', layout: 'blhd', seed: 12 },
    ] as Case[]) {
      const fusedGpu = await runCase(c, gpu!, E.scaledDotProductAttention);
      const compGpu = await runCase(c, gpu!, E.scaledDotProductAttentionComposite);
      fusedGpu.forEach((a, i) => expectClose(a, compGpu[i]!, i === 0 ? tolFwd : tolGrad, `${label(c)} ${NAMES[i]} fused vs composite (GPU)`));
    }
  });

  it('decode (Lq = 1..4 against long caches), long rows, D = 128 and Dv != D', async () => {
    for (const c of [
      { B: 2, H: 3, Lq: 1, Lk: 500, D: 64, Dv: 64, causal: true, mask: 'none', layout: 'bhld', seed: 21 },
      { B: 1, H: 2, Lq: 2, Lk: 257, D: 32, Dv: 32, causal: true, mask: 'f32', layout: 'blhd', seed: 22 },
      { B: 1, H: 1, Lq: 4, Lk: 130, D: 128, Dv: 128, causal: false, mask: 'i32', layout: 'bhld', seed: 23 },
      { B: 1, H: 2, Lq: 300, Lk: 300, D: 128, Dv: 128, causal: true, mask: 'none', layout: 'blhd', seed: 24 },
      { B: 2, H: 1, Lq: 150, Lk: 90, D: 100, Dv: 24, causal: true, mask: 'f32', layout: 'bhld', seed: 25 },
    ] as Case[]) {
      const got = await runCase(c, gpu!, E.scaledDotProductAttention);
      const want = await runCase(c, ref, E.scaledDotProductAttention);
      got.forEach((a, i) => expectClose(a, want[i]!, i === 0 ? tolFwd : tolGrad, `${label(c)} ${NAMES[i]}`));
    }
  });

  it('reads KV-cache slices, non-collapsible batch dims and rank-2 inputs in place', async () => {
    const check = async (f: (b: E.Backend) => E.Tensor, what: string) => {
      const got = await E.tidy(() => f(gpu!)).toArray();
      const want = await E.tidy(() => f(ref)).toArray();
      expectClose(got, want, tolFwd, what);
    };
    // A preallocated cache [B, H, 40, D] of which the first 23 positions are used.
    await check((b) => {
      const cache = E.tensor(rand(2 * 2 * 40 * 8, 31), [2, 2, 40, 8], { backend: b });
      const q = E.tensor(rand(2 * 2 * 3 * 8, 32), [2, 2, 3, 8], { backend: b });
      const kv = cache.slice([null, null, [0, 23]]);
      return E.scaledDotProductAttention(q, kv, kv, { causal: true });
    }, 'cache slice');
    // Six leading dims permuted so they cannot be collapsed to three (contiguous fallback).
    await check((b) => {
      const x = E.tensor(rand(2 * 3 * 2 * 2 * 2 * 5 * 4, 33), [2, 3, 2, 2, 2, 5, 4], { backend: b }).permute([4, 0, 2, 1, 3, 5, 6]);
      const mask = E.tensor(rand(2 * 2 * 5 * 5, 34, -1, 1), [2, 1, 2, 1, 1, 5, 5], { backend: b });
      return E.scaledDotProductAttention(x, x, x, { mask });
    }, 'many leading dims');
    await check((b) => {
      const q = E.tensor(rand(6 * 5, 35), [6, 5], { backend: b });
      const k = E.tensor(rand(9 * 5, 36), [9, 5], { backend: b });
      const v = E.tensor(rand(9 * 3, 37), [9, 3], { backend: b });
      return E.scaledDotProductAttention(q, k, v, { causal: true, scale: 0.7 });
    }, 'rank 2');
  });

  it('one dispatch forward (no score matrix), heads-interleaved output storage', async () => {
    const q = E.tensor(rand(2 * 4 * 33 * 16, 41), [2, 4, 33, 16], { backend: gpu! });
    const d0 = gpu!.counters.dispatches;
    const o = E.scaledDotProductAttention(q, q, q, { causal: true });
    expect(gpu!.counters.dispatches - d0).toBe(1);
    expect(o.shape).toEqual([2, 4, 33, 16]);
    // Storage is [B, L, H, D]: merging heads is free.
    expect(o.permute([0, 2, 1, 3]).isContiguous).toBe(true);
    o.dispose();
    q.dispose();
  });
});

describe('fully masked rows', () => {
  for (const [name, b] of [['float64', ref], ['GPU', gpu]] as const) {
    it.runIf(b)(`${name}: rows with no visible key output 0 and get zero gradients`, async () => {
      const be = b as E.Backend;
      const res = E.tidy(() => {
        const q = E.tensor(rand(1 * 2 * 5 * 4, 51), [1, 2, 5, 4], { backend: be }).requireGrad();
        const k = E.tensor(rand(1 * 2 * 3 * 4, 52), [1, 2, 3, 4], { backend: be }).requireGrad();
        const v = E.tensor(rand(1 * 2 * 3 * 4, 53), [1, 2, 3, 4], { backend: be }).requireGrad();
        // Causal with Lq = 5 > Lk = 3: query i sees keys j <= i - 2, so rows 0 and 1 see nothing;
        // the additive mask also blocks every key of row 4 in head 1.
        const m = new Float32Array(2 * 5 * 3);
        m.fill(-Infinity, 1 * 15 + 4 * 3, 1 * 15 + 5 * 3);
        const mask = E.tensor(m, [1, 2, 5, 3], { backend: be });
        const o = E.scaledDotProductAttention(q, k, v, { causal: true, mask });
        const [dq] = E.gradients(o.sum(), [q]);
        return [o, dq!];
      });
      const o = await res[0]!.toArray();
      const dq = await res[1]!.toArray();
      const row = (a: ArrayLike<number>, h: number, i: number) => Array.from(a).slice((h * 5 + i) * 4, (h * 5 + i + 1) * 4);
      for (const [h, i] of [[0, 0], [0, 1], [1, 0], [1, 1], [1, 4]]) {
        expect(row(o, h!, i!)).toEqual([0, 0, 0, 0]);
        expect(row(dq, h!, i!)).toEqual([0, 0, 0, 0]);
      }
      // A visible row is a real average: row 2 of head 0 sees key 0 only, so it equals v[0].
      expectClose(row(o, 0, 2), rand(24, 53).slice(0, 4), { atol: 1e-6, rtol: 1e-6 }, 'single-key row');
      for (const t of res) t.dispose();
    });
  }
});

interface Enc {
  shape: number[];
  data: (number | null)[];
  dtype?: 'i32';
}
interface AttnFixture {
  name: string;
  causal: boolean;
  scale?: number;
  q: Enc;
  k: Enc;
  v: Enc;
  mask?: Enc;
  gy: Enc;
  y: Enc;
  gq: Enc;
  gk: Enc;
  gv: Enc;
}
const fixtures = JSON.parse(readFileSync(new URL('./fixtures/attention.json', import.meta.url), 'utf8')) as { attention: AttnFixture[] };

/** Fixture inputs are shortest float32 decimals (fround recovers the exact f32 values); null is -inf. */
function load(e: Enc, b: E.Backend): E.Tensor {
  if (e.dtype === 'i32') return E.tensor(Int32Array.from(e.data), e.shape, { backend: b });
  return E.tensor(e.data.map((v) => (v === null ? -Infinity : Math.fround(v))), e.shape, { backend: b });
}

describe('PyTorch fixtures (test/fixtures/make_attention.py)', () => {
  for (const [name, b, tf, tg] of [
    ['float64', ref, { atol: 1e-9, rtol: 1e-8 }, { atol: 1e-9, rtol: 1e-8 }],
    ['GPU', gpu, tolFwd, tolGrad],
  ] as const) {
    for (const c of fixtures.attention) {
      it.runIf(b)(`${name}: ${c.name}`, async () => {
        const be = b as E.Backend;
        const outs = E.tidy(() => {
          const q = load(c.q, be).requireGrad();
          const k = load(c.k, be).requireGrad();
          const v = load(c.v, be).requireGrad();
          const mask = c.mask ? load(c.mask, be) : null;
          const y = E.scaledDotProductAttention(q, k, v, { causal: c.causal, mask, ...(c.scale !== undefined ? { scale: c.scale } : {}) });
          return [y, ...E.gradients(y, [q, k, v], { gradOutput: load(c.gy, be) })];
        });
        const want = [c.y, c.gq, c.gk, c.gv];
        for (let i = 0; i < 4; i++) {
          expect(outs[i]!.shape).toEqual(want[i]!.shape);
          expectClose(await outs[i]!.toArray(), want[i]!.data as number[], i === 0 ? tf : tg, `${c.name} ${NAMES[i]}`);
        }
        for (const t of outs) t.dispose();
      });
    }
  }
});

describe('gradients vs finite differences (float64)', () => {
  const spec = (shape: number[], seed: number): InputSpec => ({ shape, data: rand(shape.reduce((a, b) => a * b, 1), seed) });
  it('causal, Lq < Lk, Dv != D', async () => {
    await expectGradMatchesFD((q, k, v) => E.scaledDotProductAttention(q, k, v, { causal: true }), [spec([1, 2, 3, 3], 61), spec([1, 2, 5, 3], 62), spec([1, 2, 5, 2], 63)], tolFD);
  });
  it('additive mask (with a blocked entry), custom scale, rank 3', async () => {
    const mask = E.tensor([0, 0.5, -Infinity, 1, -0.3, 0.2, 0, -1], [2, 4], { backend: ref });
    await expectGradMatchesFD((q, k, v) => E.scaledDotProductAttention(q, k, v, { mask, scale: 0.9 }), [spec([2, 2, 3], 64), spec([2, 4, 3], 65), spec([2, 4, 3], 66)], tolFD);
  });
  it('causal with Lq > Lk (rows without keys) and strided [B, L, H, D] inputs', async () => {
    const f = (q: E.Tensor, k: E.Tensor, v: E.Tensor) => E.scaledDotProductAttention(q.permute([0, 2, 1, 3]), k.permute([0, 2, 1, 3]), v.permute([0, 2, 1, 3]), { causal: true });
    await expectGradMatchesFD(f, [spec([1, 4, 2, 3], 67), spec([1, 2, 2, 3], 68), spec([1, 2, 2, 3], 69)], tolFD);
  });
  it('boolean mask', async () => {
    const mask = E.tensor(Int32Array.from([1, 0, 1, 1, 1, 0, 0, 1, 1]), [3, 3], { backend: ref });
    await expectGradMatchesFD((q, k, v) => E.scaledDotProductAttention(q, k, v, { mask }), [spec([1, 3, 2], 70), spec([1, 3, 2], 71), spec([1, 3, 2], 72)], tolFD);
  });
  it('the composite supports gradients of gradients', async () => {
    const gv = rand(1 * 3 * 2, 73);
    const inner = (q: E.Tensor) =>
      E.grad((z: E.Tensor) => E.sum(E.mul(E.scaledDotProductAttentionComposite(z, z.mul(0.5), z, { causal: true }), E.tensor(gv, [1, 3, 2], { backend: ref }))))(q)[0]!;
    await expectGradMatchesFD(inner, [spec([1, 3, 2], 74)], tolFD);
  });
});

describe('API and errors', () => {
  const t = (shape: number[], b: E.Backend = ref) => E.tensor(rand(shape.reduce((a, c) => a * c, 1), 80), shape, { backend: b });
  it('the fused backward is not differentiable again: a clear error', () => {
    const q = t([1, 1, 3, 2]).requireGrad();
    const [dq] = E.gradients(E.scaledDotProductAttention(q, q, q).sum(), [q], { createGraph: true });
    expect(() => E.gradients(dq!.sum(), [q])).toThrow(/fused attention backward is not differentiable.*scaledDotProductAttentionComposite/);
  });
  it('shape, dtype and mask errors name the op and the shapes', () => {
    expect(() => E.scaledDotProductAttention(t([2, 3, 4]), t([1, 3, 4]), t([1, 3, 4]))).toThrow(/scaled_dot_product_attention: q, k and v must have the same leading dims.*\[2, 3, 4\]/);
    expect(() => E.scaledDotProductAttention(t([3, 4]), t([3, 5]), t([3, 4]))).toThrow(/head dims differ/);
    expect(() => E.scaledDotProductAttention(t([3, 4]), t([3, 4]), t([2, 4]))).toThrow(/k and v lengths differ/);
    expect(() => E.scaledDotProductAttention(t([4]), t([3, 4]), t([3, 4]))).toThrow(/must have shape \[\.\.\., L, D\]/);
    const qi = E.tensor(Int32Array.from([1, 2]), [1, 2], { backend: ref });
    expect(() => E.scaledDotProductAttention(qi, t([1, 2]), t([1, 2]))).toThrow(/q must be f32, got dtype i32/);
    expect(() => E.scaledDotProductAttention(t([3, 4]), t([5, 4]), t([5, 4]), { mask: t([3, 4]) })).toThrow(/mask shape \[3, 4\] does not broadcast to \[\.\.\., Lq, Lk\] = \[3, 5\]/);
    const m = t([3, 5]).requireGrad();
    expect(() => E.scaledDotProductAttention(t([3, 4]), t([5, 4]), t([5, 4]), { mask: m })).toThrow(/gradients with respect to the mask are not supported/);
  });
  it('impl: composite and auto select the composite (second derivatives work) or the fused kernels', async () => {
    const q = t([2, 2, 6, 3]).requireGrad();
    const k = t([2, 2, 6, 3]);
    const ref2 = await E.scaledDotProductAttentionComposite(q, k, k, { causal: true }).toArray();
    for (const impl of ['composite', 'auto', 'fused'] as const) {
      expectClose(await E.scaledDotProductAttention(q, k, k, { causal: true, impl }).toArray(), ref2, tolF64, impl);
    }
    // composite / auto (small here) keep gradients of gradients; fused refuses them.
    for (const impl of ['composite', 'auto'] as const) {
      const [dq] = E.gradients(E.scaledDotProductAttention(q, k, k, { impl }).sum(), [q], { createGraph: true });
      expect(E.gradients(dq!.square().sum(), [q])[0]!.shape).toEqual(q.shape);
    }
    expect(E.attentionAutoImpl(2 * 8, 1, 4096)).toBe('fused');
    expect(E.attentionAutoImpl(2 * 8, 64, 64)).toBe('composite');
    expect(E.attentionAutoImpl(8 * 8, 1024, 1024)).toBe('fused');
    expect(() => E.scaledDotProductAttention(q, k, k, { impl: 'flash' as 'fused' })).toThrow(/impl must be 'fused', 'composite' or 'auto', got 'flash'/);
  });
  it.runIf(gpu)('GPU head dims above 128 are refused with the limit in the message', () => {
    expect(() => E.scaledDotProductAttention(t([2, 129], gpu!), t([2, 129], gpu!), t([2, 129], gpu!))).toThrow(/head dims 1\.\.128, got D = 129/);
  });
  it('empty sequences: Lq = 0 gives an empty output, Lk = 0 gives zeros', async () => {
    expect(E.scaledDotProductAttention(t([2, 0, 4]), t([2, 3, 4]), t([2, 3, 4])).shape).toEqual([2, 0, 4]);
    const q = t([2, 3, 4]).requireGrad();
    const o = E.scaledDotProductAttention(q, t([2, 0, 4]), t([2, 0, 5]));
    expect(Array.from(await o.toArray())).toEqual(new Array(30).fill(0));
    expect(Array.from(await E.gradients(o.sum(), [q])[0]!.toArray())).toEqual(new Array(24).fill(0));
  });
  for (const [name, b] of [['float64', ref], ['GPU', gpu]] as const) {
    it.runIf(b)(`${name}: no tensors leak through forward + backward (the saved logsumexp is freed by the scope)`, async () => {
      const be = b as E.Backend;
      const q = E.tensor(rand(2 * 2 * 7 * 8, 90), [2, 2, 7, 8], { backend: be }).requireGrad();
      const before = E.memoryStats().liveTensors;
      E.tidy(() => {
        const o = E.scaledDotProductAttention(q, q, q, { causal: true });
        E.gradients(o.sum(), [q]);
      });
      // Without gradients the logsumexp is freed right away.
      const o = E.noGrad(() => E.scaledDotProductAttention(q, q, q));
      expect(E.memoryStats().liveTensors).toBe(before + 1);
      o.dispose();
      expect(E.memoryStats().liveTensors).toBe(before);
      q.dispose();
    });
  }
});
