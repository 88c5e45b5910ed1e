/**
 * Flow matching and the ODE samplers of models/diffusion, without a network:
 *  - the samplers driven by the exact velocity of a Gaussian: data x ~ N(mu, S) in 2-D (correlated,
 *    eigenvalues 1.4 and 0.1) and x_t = (1 - t) x + t eps. (x_t, v = eps - x) is jointly Gaussian, so
 *        E[v | x_t] = -mu + (t I - (1 - t) S) S_t^{-1} (x_t - (1 - t) mu),  S_t = (1 - t)^2 S + t^2 I,
 *    from E[v] = -mu, Cov(v, x_t) = t I - (1 - t) S and Cov(x_t) = S_t. All S_t commute with S, so
 *    the ODE's solution from x_1 = z is x_t = (1 - t) mu + S_t^{1/2} z: the exact sample for a noise
 *    z is x_0* = mu + S^{1/2} z, and each sampler's discretization error is measured per sample
 *    against it (RMS over 4096 samples), on the float64 CPU backend and on the GPU;
 *  - the training pairs and the logit-normal times.
 *
 * Tolerances. Discretization (measured for this S and seed, float64 and GPU alike to 1e-8): Euler
 * RMS error 0.190 at 8 steps, 0.099 at 16, 0.050 at 32, ~0.033 at 50; Heun 0.0247 at 8, 0.0058 at 16. The
 * tests check the orders (Euler's error halves when the steps double: ratio in [1.7, 2.3]; Heun's
 * quarters: [3.3, 4.7]), Heun at 8 steps (15 evaluations) below Euler at 32 (32 evaluations), and
 * bounds 1.25x the measured errors (rounded up). f32 on the GPU adds ~1e-6 to errors of 1e-3..1e-1: the same
 * bounds hold there. Moments of 4096 samples vs the data's: the sample mean has standard error
 * sqrt(S_dd / n) and a covariance entry sqrt((S_ii S_jj + S_ij^2) / n); a per-sample RMS error e
 * shifts a mean by at most e and a covariance entry by at most e (sd_i + sd_j) + e^2 (Cauchy-
 * Schwarz). The tolerance is 4 standard errors plus that shift, with the e bound of the run (the
 * seeds are fixed, so the check is deterministic; a 4-sigma miss would have probability < 1e-4).
 * Training pairs: x_t and the target are checked against the same f32 operations done here
 * (Math.fround per operation: exact on the GPU, which runs one rounding per kernel) and against
 * float64 on the CPU backend. Logit-normal times over n = 65536 draws: the logit's mean within
 * 4 std / sqrt(n), its variance within 4 std^2 sqrt(2 / n).
 */
import { describe, expect, it } from 'vitest';
import * as E from '../engine/index.js';
import { flowInterpolate, flowMatchingPairs, flowTimeGrid, odeEvaluations, sampleFlowODE, sampleFlowTimes, type ODESampler } from '../models/diffusion/index.js';
import { requireGpu } from './helpers/backends.js';
import { uniformValues } from './helpers/prng.js';

const gpu = await requireGpu();
const backends = [
  ['float64', E.cpuF64],
  ['GPU', gpu],
] as const;

type M2 = [[number, number], [number, number]];
const MU: [number, number] = [1.5, -0.5];
const S: M2 = [
  [1.0, 0.6],
  [0.6, 0.5],
];
const N_SAMPLES = 4096;

const mul2 = (a: M2, b: M2): M2 => [
  [a[0][0] * b[0][0] + a[0][1] * b[1][0], a[0][0] * b[0][1] + a[0][1] * b[1][1]],
  [a[1][0] * b[0][0] + a[1][1] * b[1][0], a[1][0] * b[0][1] + a[1][1] * b[1][1]],
];
function inv2(m: M2): M2 {
  const d = m[0][0] * m[1][1] - m[0][1] * m[1][0];
  return [
    [m[1][1] / d, -m[0][1] / d],
    [-m[1][0] / d, m[0][0] / d],
  ];
}
/** The symmetric square root of a 2x2 SPD matrix: (M + sqrt(det) I) / sqrt(tr + 2 sqrt(det)). */
function sqrt2(m: M2): M2 {
  const s = Math.sqrt(m[0][0] * m[1][1] - m[0][1] * m[1][0]);
  const k = Math.sqrt(m[0][0] + m[1][1] + 2 * s);
  return [
    [(m[0][0] + s) / k, m[0][1] / k],
    [m[1][0] / k, (m[1][1] + s) / k],
  ];
}

/** The exact velocity E[eps - x | x_t] for rows of x [n, 2]: v = x A^T + b. */
function gaussianVelocity(backend: E.Backend) {
  return (x: E.Tensor, t: number): E.Tensor => {
    const u = 1 - t;
    const St: M2 = [
      [u * u * S[0][0] + t * t, u * u * S[0][1]],
      [u * u * S[1][0], u * u * S[1][1] + t * t],
    ];
    const A = mul2(
      [
        [t - u * S[0][0], -u * S[0][1]],
        [-u * S[1][0], t - u * S[1][1]],
      ],
      inv2(St),
    );
    const b = [0, 1].map((i) => -MU[i]! - u * (A[i]![0]! * MU[0] + A[i]![1]! * MU[1]));
    const At = E.tensor([A[0][0], A[1][0], A[0][1], A[1][1]], [2, 2], { backend });
    return x.matmul(At).add(E.tensor(b, [1, 2], { backend }));
  };
}

/** Runs a sampler from seeded noise; returns the samples and the per-sample RMS error vs the exact map. */
async function run(backend: E.Backend, sampler: ODESampler, steps: number): Promise<{ xs: Float64Array; err: number }> {
  const noise = E.randn([N_SAMPLES, 2], { backend, generator: new E.Generator(11) });
  const out = sampleFlowODE(gaussianVelocity(backend), noise, { sampler, steps });
  const z = await noise.toArray();
  const xs = Float64Array.from(await out.toArray());
  noise.dispose();
  out.dispose();
  const R = sqrt2(S);
  let se = 0;
  for (let i = 0; i < N_SAMPLES; i++) {
    const [z0, z1] = [z[2 * i]!, z[2 * i + 1]!];
    se += (xs[2 * i]! - (MU[0] + R[0][0] * z0 + R[0][1] * z1)) ** 2 + (xs[2 * i + 1]! - (MU[1] + R[1][0] * z0 + R[1][1] * z1)) ** 2;
  }
  return { xs, err: Math.sqrt(se / N_SAMPLES) };
}

function moments(xs: Float64Array): { mean: [number, number]; cov: M2 } {
  const n = xs.length / 2;
  const mean: [number, number] = [0, 0];
  for (let i = 0; i < n; i++) for (const d of [0, 1]) mean[d] += xs[2 * i + d]! / n;
  const cov: M2 = [
    [0, 0],
    [0, 0],
  ];
  for (let i = 0; i < n; i++) for (const a of [0, 1]) for (const b of [0, 1]) cov[a]![b]! += ((xs[2 * i + a]! - mean[a]) * (xs[2 * i + b]! - mean[b])) / (n - 1);
  return { mean, cov };
}

describe('ODE samplers on a Gaussian with its exact velocity', () => {
  it('time grid and evaluation counts', () => {
    expect(flowTimeGrid(4)).toEqual([1, 0.75, 0.5, 0.25, 0]);
    expect(flowTimeGrid(3)[3]).toBe(0);
    expect(odeEvaluations('euler', 8)).toBe(8);
    expect(odeEvaluations('heun', 8)).toBe(15);
    expect(() => flowTimeGrid(0)).toThrow(/steps must be a positive integer, got 0/);
    const x = E.zeros([2, 2], { backend: E.cpuF64 });
    expect(() => sampleFlowODE((v) => v, x, { sampler: 'rk4' as ODESampler })).toThrow(/sampler must be 'euler' or 'heun', got rk4/);
    expect(() => sampleFlowODE((v) => v.sum(), x, { steps: 2 })).toThrow(/velocity at t = 1 must have x's shape \[2, 2\], got \[\]/);
  });

  it('Heun evaluates the velocity 2N - 1 times, at the grid times, and ends with an Euler step', () => {
    const calls: number[] = [];
    const x = E.ones([1, 1], { backend: E.cpuF64 });
    // v = 1 everywhere: both samplers are exact, x_0 = x_1 - 1.
    const out = sampleFlowODE(
      (v, t) => {
        calls.push(t);
        return E.onesLike(v);
      },
      x,
      { sampler: 'heun', steps: 4 },
    );
    expect(calls).toEqual([1, 0.75, 0.75, 0.5, 0.5, 0.25, 0.25]);
    return out.item().then((v) => expect(v).toBeCloseTo(0, 12));
  });

  for (const [name, b] of backends) {
    it.runIf(b)(`${name}: Euler and Heun converge at orders 1 and 2; Heun needs fewer evaluations`, async () => {
      const be = b as E.Backend;
      const live = E.memoryStats().liveTensors;
      const e = {
        euler8: (await run(be, 'euler', 8)).err,
        euler16: (await run(be, 'euler', 16)).err,
        euler32: (await run(be, 'euler', 32)).err,
        heun8: (await run(be, 'heun', 8)).err,
        heun16: (await run(be, 'heun', 16)).err,
      };
      expect(E.memoryStats().liveTensors).toBe(live); // every step's temporaries were freed
      const msg = JSON.stringify(e);
      expect(e.euler16 / e.euler32, msg).toBeGreaterThan(1.7);
      expect(e.euler16 / e.euler32, msg).toBeLessThan(2.3);
      expect(e.euler8 / e.euler16, msg).toBeGreaterThan(1.7);
      expect(e.heun8 / e.heun16, msg).toBeGreaterThan(3.3);
      expect(e.heun8 / e.heun16, msg).toBeLessThan(4.7);
      expect(e.heun8, msg).toBeLessThan(e.euler8 / 5);
      expect(e.heun8, msg).toBeLessThan(e.euler32); // 15 evaluations beat 32
      expect(e.euler8, msg).toBeLessThan(1.25 * 0.193);
      expect(e.heun8, msg).toBeLessThan(1.25 * 0.0251);
      expect(e.heun16, msg).toBeLessThan(1.25 * 0.00585);
    });

    for (const [sampler, steps, bound] of [
      ['euler', 50, 1.25 * 0.0329],
      ['heun', 16, 1.25 * 0.00585],
    ] as const) {
      it.runIf(b)(`${name}: ${sampler} (${steps} steps) reproduces the data mean and covariance`, async () => {
        const { xs, err } = await run(b as E.Backend, sampler, steps);
        expect(err).toBeLessThan(bound);
        const { mean, cov } = moments(xs);
        const n = N_SAMPLES;
        for (const d of [0, 1]) {
          const tol = 4 * Math.sqrt(S[d]![d]! / n) + bound;
          expect(Math.abs(mean[d]! - MU[d]!), `mean[${d}] = ${mean[d]}`).toBeLessThan(tol);
        }
        for (const i of [0, 1]) {
          for (const j of [0, 1]) {
            const se = Math.sqrt((S[i]![i]! * S[j]![j]! + S[i]![j]! ** 2) / n);
            const tol = 4 * se + bound * (Math.sqrt(S[i]![i]!) + Math.sqrt(S[j]![j]!)) + bound ** 2;
            expect(Math.abs(cov[i]![j]! - S[i]![j]!), `cov[${i}][${j}] = ${cov[i]![j]}`).toBeLessThan(tol);
          }
        }
      });
    }
  }
});

describe('flow-matching training pairs', () => {
  for (const [name, b] of backends) {
    it.runIf(b)(`${name}: x_t = (1 - t) x + t eps and target = eps - x, per sample t`, async () => {
      const be = b as E.Backend;
      const [B, D] = [5, 6];
      const xv = uniformValues(B * D, 1, -2, 2);
      const ev = uniformValues(B * D, 2, -2, 2);
      const tv = [0, 0.25, Math.fround(0.3), Math.fround(0.9), 1];
      const { xt, target } = flowInterpolate(E.tensor(xv, [B, 1, D], { backend: be }), E.tensor(tv, [B], { backend: be }), E.tensor(ev, [B, 1, D], { backend: be }));
      expect(xt.shape).toEqual([B, 1, D]);
      const f = be === E.cpuF64 ? (v: number) => v : Math.fround;
      const wantXt = xv.map((x, i) => {
        const t = tv[Math.floor(i / D)]!;
        return f(f(x * f(1 - t)) + f(ev[i]! * t));
      });
      expect(Array.from(await xt.toArray())).toEqual(wantXt);
      expect(Array.from(await target.toArray())).toEqual(xv.map((x, i) => f(ev[i]! - x)));
      expect(() => flowInterpolate(E.zeros([2, 3], { backend: be }), E.zeros([3], { backend: be }), E.zeros([2, 3], { backend: be }))).toThrow(/t must be \[2\]/);
    });

    it.runIf(b)(`${name}: flowMatchingPairs draws t (B values) then eps from the generator`, async () => {
      const be = b as E.Backend;
      const x = E.tensor(uniformValues(4 * 3, 3), [4, 3], { backend: be });
      const g = new E.Generator(21);
      const twin = g.clone();
      const p = flowMatchingPairs(x, g, { timeMean: 0.5, timeStd: 2 });
      const t = E.randn([4], { generator: twin, backend: be, mean: 0.5, std: 2 }).sigmoid();
      const eps = E.randn([4, 3], { generator: twin, backend: be });
      expect(g.offset).toBe(twin.offset);
      expect(Array.from(await p.t.toArray())).toEqual(Array.from(await t.toArray()));
      expect(Array.from(await p.eps.toArray())).toEqual(Array.from(await eps.toArray()));
      const ref = flowInterpolate(x, t, eps);
      expect(Array.from(await p.xt.toArray())).toEqual(Array.from(await ref.xt.toArray()));
      expect(Array.from(await p.target.toArray())).toEqual(Array.from(await ref.target.toArray()));
    });
  }

  it.runIf(gpu)('logit-normal times lie in (0, 1) with logit ~ N(mean, std^2); uniform times have mean 1/2', async () => {
    const be = gpu!;
    const n = 65536;
    for (const [mean, std] of [
      [0, 1],
      [-0.5, 0.7],
    ] as const) {
      const t = await sampleFlowTimes(n, new E.Generator(5), be, { timeMean: mean, timeStd: std }).toArray();
      let s = 0;
      let s2 = 0;
      for (const v of t) {
        expect(v > 0 && v < 1).toBe(true);
        const l = Math.log(v / (1 - v));
        s += l;
        s2 += l * l;
      }
      const m = s / n;
      const variance = s2 / n - m * m;
      expect(Math.abs(m - mean)).toBeLessThan((4 * std) / Math.sqrt(n));
      expect(Math.abs(variance - std * std)).toBeLessThan(4 * std * std * Math.sqrt(2 / n));
    }
    const u = await sampleFlowTimes(n, new E.Generator(6), be, { timeSampling: 'uniform' }).toArray();
    const um = Array.from(u).reduce((a, v) => a + v, 0) / n;
    expect(Math.abs(um - 0.5)).toBeLessThan(4 * Math.sqrt(1 / 12 / n));
    expect(() => sampleFlowTimes(4, new E.Generator(0), be, { timeStd: 0 })).toThrow(/timeStd > 0/);
    expect(() => sampleFlowTimes(4, new E.Generator(0), be, { timeSampling: 'beta' as 'uniform' })).toThrow(/'logit-normal' or 'uniform'/);
  });
});
