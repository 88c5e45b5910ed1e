/**
 * The vector quantizer against a hand-computed float64 case (codes, losses, straight-through and
 * loss gradients through the l2 normalization), and a K = 16384 codebook on the GPU against a
 * float64 CPU nearest-code search.
 */
import { describe, expect, it } from 'vitest';
import * as E from '../engine/index.js';
import { VectorQuantizer } from '../models/tokenizer/index.js';
import { requireGpu } from './helpers/backends.js';
import { expectClose } from './helpers/compare.js';

const gpu = await requireGpu();
const backend = E.cpuF64;
// float64 on both sides: only rounding differences (~1e-16), so 1e-12 is tight yet safe.
const tol = { atol: 1e-12, rtol: 1e-12 };

const norm = (v: number[]) => {
  const n = Math.hypot(...v);
  return v.map((x) => x / n);
};
/** d normalize(v) / dv applied to an upstream gradient g: (g - u (u . g)) / |v|. */
const normVjp = (v: number[], g: number[]) => {
  const n = Math.hypot(...v);
  const u = v.map((x) => x / n);
  const ug = u.reduce((s, x, i) => s + x * g[i]!, 0);
  return g.map((gi, i) => (gi - u[i]! * ug) / n);
};

describe('VectorQuantizer, hand-computed case (float64 CPU)', () => {
  // Codebook rows normalize to [1, 0], [0, 1], [-1, -1]/sqrt 2; tokens to [0.6, 0.8] and [-0.8, -0.6].
  const codes = [
    [2, 0],
    [0, 3],
    [-1, -1],
  ];
  const toks = [
    [3, 4],
    [-8, -6],
  ];
  const make = () => {
    const q = new VectorQuantizer(3, 2, 0.25, { backend });
    q.loadStateDict({ 'embedding.weight': E.tensor(codes.flat(), [3, 2], { backend }) });
    const z = E.tensor(toks.flat(), [1, 2, 2], { backend }).requireGrad();
    return { q, z, out: q.forward(z) };
  };
  // Nearest by squared distance of normalized vectors: token 0 -> code 1, token 1 -> code 2.
  const zn = toks.map(norm);
  const en = [norm(codes[1]!), norm(codes[2]!)];
  const diff = zn.map((z, t) => z.map((x, j) => en[t]![j]! - x)); // q - z
  const mse = diff.flat().reduce((s, x) => s + x * x, 0) / 4;

  it('codes, straight-through values and the two losses', async () => {
    const { q, out } = make();
    expect(Array.from(await out.indices.toArray())).toEqual([1, 2]);
    expect([...out.indices.shape]).toEqual([1, 2]);
    expectClose(await out.zq.toArray(), en.flat(), tol, 'zq = normalized codes');
    expectClose(await out.zn.toArray(), zn.flat(), tol, 'zn');
    expectClose([await out.codebookLoss.item()], [mse], tol, 'codebook loss');
    expectClose([await out.commitLoss.item()], [0.25 * mse], tol, 'commitment loss');
    q.dispose();
  });

  it('gradients: straight-through to z, codebook loss to the codebook only, commitment to z only', async () => {
    const w = [0.3, -1.2, 0.7, 2.0];
    // Straight-through: d sum(zq * w) / dz = d sum(normalize(z) * w) / dz.
    {
      const { q, z, out } = make();
      const [gz, ge] = E.gradients(out.zq.mul(E.tensor(w, [1, 2, 2], { backend })).sum(), [z, q.codebook]);
      expectClose(await gz!.toArray(), [...normVjp(toks[0]!, w.slice(0, 2)), ...normVjp(toks[1]!, w.slice(2))], tol, 'straight-through grad');
      expectClose(await ge!.toArray(), [0, 0, 0, 0, 0, 0], tol, 'no codebook grad through zq');
      q.dispose();
    }
    {
      const { q, z, out } = make();
      const [gz, ge] = E.gradients(out.codebookLoss, [z, q.codebook]);
      expectClose(await gz!.toArray(), [0, 0, 0, 0], tol, 'codebook loss: no grad to z');
      // d/dq mean((q - sg z)^2) = 2 (q - z) / 4, through normalize(code row).
      const g1 = normVjp(codes[1]!, diff[0]!.map((x) => x / 2));
      const g2 = normVjp(codes[2]!, diff[1]!.map((x) => x / 2));
      expectClose(await ge!.toArray(), [0, 0, ...g1, ...g2], tol, 'codebook loss grad');
      q.dispose();
    }
    {
      const { q, z, out } = make();
      const [gz, ge] = E.gradients(out.commitLoss, [z, q.codebook]);
      const g = diff.map((d, t) => normVjp(toks[t]!, d.map((x) => (-0.25 * x) / 2)));
      expectClose(await gz!.toArray(), g.flat(), tol, 'commitment grad');
      expectClose(await ge!.toArray(), [0, 0, 0, 0, 0, 0], tol, 'commitment: no codebook grad');
      q.dispose();
    }
  });

  it('rejects latents of the wrong shape', () => {
    const q = new VectorQuantizer(3, 2, 0.25, { backend });
    expect(() => q.forward(E.zeros([2, 3], { backend }))).toThrow(/expected latents \[B, T, 2\], got \[2, 3\]/);
    q.dispose();
  });
});

describe.runIf(gpu)('VectorQuantizer on the GPU with K = 16384', () => {
  it('picks a nearest code for every token (ties within f32 rounding), losses match the CPU', async () => {
    const K = 16384;
    const d = 16;
    const gen = new E.Generator(11);
    const q = new VectorQuantizer(K, d, 0.25, { backend: gpu!, generator: gen });
    const z = E.randn([4, 64, d], { backend: gpu!, generator: gen });
    const out = q.forward(z);
    const idx = Array.from(await out.indices.toArray());
    const zv = await z.toArray();
    const ev = await q.codebook.toArray();
    const rows = (a: ArrayLike<number>, n: number) => {
      const all = Array.from(a);
      return Array.from({ length: n }, (_, i) => norm(all.slice(i * d, i * d + d)));
    };
    const zs = rows(zv, 256);
    const es = rows(ev, K);
    let sse = 0;
    zs.forEach((zr, t) => {
      let best = Infinity;
      for (const e of es) best = Math.min(best, e.reduce((s, x, j) => s + (x - zr[j]!) ** 2, 0));
      const chosen = es[idx[t]!]!.reduce((s, x, j) => s + (x - zr[j]!) ** 2, 0);
      // f32 distances of unit vectors: rounding < 1e-6; anything larger is a wrong code.
      expect(chosen - best, `token ${t}`).toBeLessThan(1e-5);
      sse += chosen;
    });
    // mean over 256 * 16 elements of (q - z)^2 = sum of squared distances / 4096 (f32 sums: 1e-5 relative).
    expectClose([await out.codebookLoss.item()], [sse / (256 * d)], { atol: 1e-6, rtol: 1e-5 }, 'codebook loss');
    expectClose([await out.commitLoss.item()], [(0.25 * sse) / (256 * d)], { atol: 1e-6, rtol: 1e-5 }, 'commit loss');
    q.dispose();
    z.dispose();
  });
});
