/**
 * Latent perturbation properties (models/tokenizer/perturbation.ts), on the float64 CPU backend
 * and, when present, the GPU: replacement rate alpha * (delta - 1) / delta within 5 binomial
 * sigmas, uniform slots, replaced codes always among the delta nearest (checked against a float64
 * search of all codes), exactly floor(beta * B) images perturbed (the first ones, as the paper's
 * code), straight-through gradients, the annealing schedule and presets, no readbacks on the GPU.
 */
import { describe, expect, it } from 'vitest';
import * as E from '../engine/index.js';
import { annealedPerturbation, annealFactor, l2Normalize, numPerturbedImages, perturbLatents, resolvePerturbation, VQTokenizer } from '../models/tokenizer/index.js';
import { requireGpu } from './helpers/backends.js';

const gpu = await requireGpu();
const backends: [string, E.Backend][] = [['cpu-f64', E.cpuF64], ...(gpu ? [['webgpu', gpu] as [string, E.Backend]] : [])];

/** Normalized random latents zn [B, T, d] (a leaf), the clean straight-through zq and a codebook. */
function setup(backend: E.Backend, B: number, T: number, d: number, K: number, seed: number) {
  const gen = new E.Generator(seed);
  const raw = E.randn([B, T, d], { backend, generator: gen });
  const zn = E.noGrad(() => l2Normalize(raw)).requireGrad();
  raw.dispose();
  const codebook = E.randn([K, d], { backend, generator: gen });
  const clean = E.noGrad(() => {
    const en = l2Normalize(codebook);
    const r = E.nearestCodes(zn, en, 1);
    const q = E.embedding(en, r.indices.reshape([B, T]));
    return { idx: r.indices.reshape([B, T]), q };
  });
  const zq = zn.add(clean.q.sub(zn).detach());
  return { zn, zq, codebook, cleanIdx: clean.idx };
}

/** Binomial check: |count - n p| <= 5 sigma. */
function expectBinomial(count: number, n: number, p: number, what: string) {
  const sigma = Math.sqrt(n * p * (1 - p));
  expect(Math.abs(count - n * p), `${what}: ${count} of ${n}, expected ${(n * p).toFixed(1)} +- ${(5 * sigma).toFixed(1)} (5 sigma)`).toBeLessThanOrEqual(5 * sigma);
}

describe.each(backends)('latent perturbation on %s', (_name, backend) => {
  it('replacement rate alpha*(delta-1)/delta, uniform slots, and every code among the delta nearest', async () => {
    const [B, T, d, K] = [16, 64, 8, 256];
    for (const [alpha, delta] of [
      [0.5, 8],
      [1, 25],
      [0.2, 2],
    ] as const) {
      const { zn, zq, codebook, cleanIdx } = setup(backend, B, T, d, K, 100 + delta);
      const r = perturbLatents(zn, zq, codebook, { alpha, beta: 1, delta }, new E.Generator(7));
      expect(r.numImages).toBe(B);
      const n = B * T;
      const slots = Array.from(await r.slots!.toArray());
      const codes = Array.from(await r.codes!.toArray());
      const cand = Array.from(await r.candidates!.toArray());
      const clean = Array.from(await cleanIdx.toArray());
      // Replacement measured against the quantizer's own clean codes.
      const replaced = codes.filter((c, i) => c !== clean[i]).length;
      expectBinomial(replaced, n, (alpha * (delta - 1)) / delta, `replaced (alpha ${alpha}, delta ${delta})`);
      for (let s = 1; s < delta; s++) expectBinomial(slots.filter((x) => x === s).length, n, alpha / delta, `slot ${s}`);
      // Codes: candidates[slot]; slot 0 is the clean code; all within the delta nearest by a
      // float64 search over every code (f32 ties: 1e-5).
      const zv = await zn.toArray();
      const ev = Array.from(await codebook.toArray());
      const en = Array.from({ length: K }, (_, k) => {
        const row = ev.slice(k * d, k * d + d);
        const nr = Math.hypot(...row);
        return row.map((x) => x / nr);
      });
      const zt = Array.from(await r.z.toArray());
      for (let t = 0; t < n; t++) {
        expect(codes[t]).toBe(cand[t * delta + slots[t]!]);
        expect(cand[t * delta]).toBe(clean[t]);
        const dist = en.map((e) => e.reduce((s, x, j) => s + (x - zv[t * d + j]!) ** 2, 0));
        const sorted = [...dist].sort((a, b) => a - b);
        expect(dist[codes[t]!]!, `token ${t}`).toBeLessThanOrEqual(sorted[delta - 1]! + 1e-5);
        // The latent handed on is the normalized chosen code.
        for (let j = 0; j < d; j++) expect(Math.abs(zt[t * d + j]! - en[codes[t]!]![j]!)).toBeLessThan(1e-6);
      }
      for (const t of [zn, zq, codebook, cleanIdx, r.z, r.slots!, r.codes!, r.candidates!]) t.dispose();
    }
  });

  it('perturbs exactly the first floor(beta * B) images; the others keep the clean z_q', async () => {
    const [T, d, K] = [16, 4, 64];
    for (const [B, beta] of [
      [10, 0.3],
      [10, 0.1],
      [8, 0.1],
      [5, 1],
      [7, 0.5],
    ] as const) {
      const { zn, zq, codebook, cleanIdx } = setup(backend, B, T, d, K, B);
      const r = perturbLatents(zn, zq, codebook, { alpha: 1, beta, delta: 8 }, new E.Generator(3));
      const m = Math.floor(B * beta);
      expect(r.numImages).toBe(m);
      const a = Array.from(await r.z.toArray());
      const b = Array.from(await zq.toArray());
      const per = T * d;
      expect(a.slice(m * per)).toEqual(b.slice(m * per));
      for (let i = 0; i < m; i++) {
        const changed = a.slice(i * per, (i + 1) * per).some((x, j) => x !== b[i * per + j]);
        expect(changed, `image ${i} perturbed`).toBe(true);
      }
      if (m === 0) expect(r.z).toBe(zq);
      for (const t of [zn, zq, codebook, cleanIdx, r.z]) t.dispose();
    }
    expect([numPerturbedImages(64, 0.1), numPerturbedImages(9, 0.1), numPerturbedImages(10, 0.1), numPerturbedImages(256, 0.1), numPerturbedImages(3, 1)]).toEqual([6, 0, 1, 25, 3]);
  });

  it('gradients flow straight through: d/dz of a loss on z_pert equals its gradient w.r.t. z_pert', async () => {
    const [B, T, d, K] = [4, 9, 4, 32];
    const { zn, zq, codebook, cleanIdx } = setup(backend, B, T, d, K, 5);
    const r = perturbLatents(zn, zq, codebook.requireGrad(), { alpha: 1, beta: 0.5, delta: 6 }, new E.Generator(9));
    expect(r.numImages).toBe(2);
    const w = E.randn([B, T, d], { backend, generator: new E.Generator(4) });
    // A nonlinear loss so its gradient depends on z_pert's values: sum(w * z_pert^2) -> 2 w z_pert.
    const loss = r.z.square().mul(w).sum();
    const [gz, gc] = E.gradients(loss, [zn, codebook]);
    const expected = E.noGrad(() => r.z.mul(w).mul(2));
    const ga = Array.from(await gz!.toArray());
    const ge = Array.from(await expected.toArray());
    ga.forEach((x, i) => expect(Math.abs(x - ge[i]!)).toBeLessThanOrEqual(1e-6 * (1 + Math.abs(ge[i]!))));
    expect(Array.from(await gc!.toArray()).every((x) => x === 0)).toBe(true);
    for (const t of [zn, zq, codebook, cleanIdx, r.z, w, gz!, gc!, expected]) t.dispose();
  });

  it('is reproducible from the generator seed', async () => {
    const { zn, zq, codebook, cleanIdx } = setup(backend, 4, 16, 4, 64, 1);
    const p = { alpha: 0.5, beta: 1, delta: 10 };
    const a = perturbLatents(zn, zq, codebook, p, new E.Generator(42));
    const b = perturbLatents(zn, zq, codebook, p, new E.Generator(42));
    const c = perturbLatents(zn, zq, codebook, p, new E.Generator(43));
    const sa = Array.from(await a.slots!.toArray());
    expect(Array.from(await b.slots!.toArray())).toEqual(sa);
    expect(Array.from(await c.slots!.toArray())).not.toEqual(sa);
    for (const t of [zn, zq, codebook, cleanIdx]) t.dispose();
  });
});

describe.runIf(gpu)('latent perturbation on the GPU: no host round trips', () => {
  it('perturbLatents submits nothing to the queue (all work stays batched) and matches the CPU slots', async () => {
    const { zn, zq, codebook, cleanIdx } = setup(gpu!, 8, 64, 16, 1024, 2);
    await zn.toArray(); // flush setup
    const before = gpu!.counters.submits;
    const r = perturbLatents(zn, zq, codebook, { alpha: 1, beta: 1, delta: 25 }, new E.Generator(5));
    expect(gpu!.counters.submits - before).toBe(0);
    const slots = Array.from(await r.slots!.toArray());
    // The Philox streams are identical on both backends, so the slot draws are too.
    const cpu = setup(E.cpuF64, 8, 64, 16, 1024, 2);
    const rc = perturbLatents(cpu.zn, cpu.zq, cpu.codebook, { alpha: 1, beta: 1, delta: 25 }, new E.Generator(5));
    expect(Array.from(await rc.slots!.toArray())).toEqual(slots);
    for (const t of [zn, zq, codebook, cleanIdx, r.z]) t.dispose();
  });
});

describe.runIf(gpu)('latent perturbation on the GPU at K = 16384 (paper delta = 400)', () => {
  it('slot 0 is the clean code and every code is among the 400 nearest', async () => {
    const [B, T, d, K] = [2, 64, 16, 16384];
    const p = resolvePerturbation('paper', K);
    expect(p.delta).toBe(400);
    const { zn, zq, codebook, cleanIdx } = setup(gpu!, B, T, d, K, 8);
    const r = perturbLatents(zn, zq, codebook, { alpha: 1, beta: 1, delta: p.delta }, new E.Generator(1));
    const codes = Array.from(await r.codes!.toArray());
    const cand = Array.from(await r.candidates!.toArray());
    const clean = Array.from(await cleanIdx.toArray());
    const zv = await zn.toArray();
    const ev = Array.from(await codebook.toArray());
    const en: number[][] = [];
    for (let k = 0; k < K; k++) {
      const row = ev.slice(k * d, k * d + d);
      const nr = Math.hypot(...row);
      en.push(row.map((x) => x / nr));
    }
    let replaced = 0;
    for (let t = 0; t < B * T; t++) {
      expect(cand[t * p.delta]).toBe(clean[t]);
      if (codes[t] !== clean[t]) replaced++;
      const dist = en.map((e) => e.reduce((s, x, j) => s + (x - zv[t * d + j]!) ** 2, 0));
      const kth = [...dist].sort((a, b) => a - b)[p.delta - 1]!;
      expect(dist[codes[t]!]!, `token ${t}`).toBeLessThanOrEqual(kth + 1e-5);
    }
    expectBinomial(replaced, B * T, 399 / 400, 'replaced');
    for (const t of [zn, zq, codebook, cleanIdx, r.z]) t.dispose();
  });
});

describe('annealing schedule and presets', () => {
  it('r(t) = 1 up to 20%, linear to 0.5 at 60%, then 0.5; delta_t = int(r delta), alpha_t = r alpha', () => {
    const T = 1000;
    expect([0, 200, 400, 600, 1000].map((s) => annealFactor(s, T))).toEqual([1, 1, 0.75, 0.5, 0.5]);
    expect(annealFactor(300, T)).toBeCloseTo(0.875, 12);
    expect(annealFactor(800, T)).toBe(0.5);
    const p = resolvePerturbation('paper', 4096);
    expect(p).toEqual({ alpha: 1, beta: 0.1, delta: 100, anneal: true });
    const at = (s: number) => annealedPerturbation(p, s, T);
    expect([0, 200, 300, 400, 600, 1000].map((s) => at(s).delta)).toEqual([100, 100, 87, 75, 50, 50]);
    expect([0, 200, 400, 600, 1000].map((s) => at(s).alpha)).toEqual([1, 1, 0.75, 0.5, 0.5]);
    expect(at(600).beta).toBe(0.1);
    // No schedule without a step, or with anneal: false.
    expect(annealedPerturbation(p)).toEqual(p);
    expect(annealedPerturbation({ ...p, anneal: false }, 900, T)).toEqual({ ...p, anneal: false });
  });

  it('presets scale delta with K; none has alpha = beta = 0; configs are validated', () => {
    expect(resolvePerturbation('paper', 1024)).toEqual({ alpha: 1, beta: 0.1, delta: 25, anneal: true });
    expect(resolvePerturbation('paper', 16384).delta).toBe(400);
    expect(resolvePerturbation('paper', 32).delta).toBe(1);
    expect(resolvePerturbation('none', 1024)).toMatchObject({ alpha: 0, beta: 0 });
    expect(resolvePerturbation({ alpha: 0.3, beta: 1, delta: 10 }, 64)).toEqual({ alpha: 0.3, beta: 1, delta: 10, anneal: true });
    expect(() => resolvePerturbation({ alpha: 1.5, beta: 0 }, 64)).toThrow(/alpha must be in \[0, 1\]/);
    expect(() => resolvePerturbation({ alpha: 1, beta: 0.1, delta: 65 }, 64)).toThrow(/delta must be an integer in \[1, K = 64\]/);
    expect(() => resolvePerturbation('bogus' as 'none', 64)).toThrow(/unknown preset 'bogus'/);
  });
});

describe('perturbation inside the tokenizer (float64 CPU)', () => {
  it('leaves the VQ losses unchanged and changes only the perturbed images', async () => {
    const backend = E.cpuF64;
    const cfg = { ch: 8, chMult: [1, 2], numResBlocks: 1, codebookSize: 32, codeDim: 4 };
    const m = new VQTokenizer({ ...cfg, perturbSeed: 3 }, { backend, generator: new E.Generator(1) });
    const x = E.rand([4, 1, 8, 8], { backend, generator: new E.Generator(2) });
    const clean = m.forward(x, { perturb: null });
    const pert = m.forward(x, { perturb: { alpha: 1, beta: 0.5, delta: 8 } });
    expect(pert.perturbedImages).toBe(2);
    expect(await pert.losses.codebook!.item()).toBe(await clean.losses.codebook!.item());
    expect(await pert.losses.commit!.item()).toBe(await clean.losses.commit!.item());
    const a = Array.from(await clean.recon.toArray());
    const b = Array.from(await pert.recon.toArray());
    expect(b.slice(128)).toEqual(a.slice(128));
    expect(b.slice(0, 128)).not.toEqual(a.slice(0, 128));
    // reconstruct(): clean equals forward's; with a fixed (alpha, delta) every image is perturbed.
    expect(Array.from(await m.reconstruct(x).toArray())).toEqual(a);
    const rp = Array.from(await m.reconstruct(x, { alpha: 1, delta: 8 }, new E.Generator(5)).toArray());
    for (let i = 0; i < 4; i++) expect(rp.slice(i * 64, (i + 1) * 64), `image ${i}`).not.toEqual(a.slice(i * 64, (i + 1) * 64));
    expect(Array.from(await m.reconstruct(x, { alpha: 1, delta: 8 }, new E.Generator(5)).toArray())).toEqual(rp);
    // Training mode uses the config's perturbation ('none' by default); eval mode none.
    expect(m.forward(x).perturbation).toMatchObject({ alpha: 0, beta: 0 });
    m.eval();
    expect(m.forward(x).perturbation).toBeNull();
    m.dispose();
  });
});
