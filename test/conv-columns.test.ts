/**
 * conv2d on the columns route (unfold + one matmul), the route hardware GPUs take by default: the
 * bias is added by the matmul kernel (matmulRowBias) and the weight gradient is one GEMM summed
 * over the images (matmulSumTo), under both kernel choices (the software adapter's register-blocked
 * kernel and a GPU's workgroup-tiled one, forced through the matmul picker), with the summed images
 * in one run or split. Values and all three gradients vs float64, and the kernels dispatched.
 *
 * Tolerance: as test/conv.test.ts's tokenizer-shape cases: f32 sums of <= 144 products (forward,
 * dx) or N * Hb * Wb = 3 * 64 (dw, db) of values in [-1, 1]: atol 2e-4 + rtol 1e-4 is a wide
 * margin over the ~1e-5 rounding error, and far below an indexing error (a whole term, ~0.1).
 */
import { afterEach, describe, expect, it } from 'vitest';
import * as E from '../engine/index.js';
import { requireGpu } from './helpers/backends.js';
import { expectClose } from './helpers/compare.js';

const gpu = await requireGpu();
const cpu = E.cpuF64;

const restores: (() => void)[] = [];
afterEach(() => {
  while (restores.length) restores.pop()!();
});

/** Kernel choices: the adapter's own picker, or a GPU's (workgroup tiles) with the images' sum split or not. */
const CHOICES: [string, E.MatmulConfigPicker | null][] = [
  ["the adapter's own picker", null],
  ['GPU tiles, summed images in one run', (M, N, K, batch, caps) => ({ ...E.pickMatmulConfig(M, N, K, batch, { ...caps, software: false }), sumSplits: 1 })],
  ['GPU tiles, summed images split in 2', (M, N, K, batch, caps) => ({ ...E.pickMatmulConfig(M, N, K, batch, { ...caps, software: false }), sumSplits: 2 })],
];

/** [name, x shape, w shape, stride, groups]. */
const SHAPES: [string, number[], number[], number, number][] = [
  ['16->16 3x3 at 8x8', [3, 16, 8, 8], [16, 16, 3, 3], 1, 1],
  ['16->8 3x3 stride 2 at 8x8, odd channel count of rows', [3, 16, 8, 8], [8, 16, 3, 3], 2, 1],
  ['8->12 3x3, groups 2', [3, 8, 8, 8], [12, 4, 3, 3], 1, 2],
  ['16->24 1x1 (no unfold)', [3, 16, 8, 8], [24, 16, 1, 1], 1, 1],
];

async function convAndGrads(backend: E.Backend, xs: number[], ws: number[], stride: number, groups: number): Promise<Float32Array[] | Float64Array[]> {
  const gen = new E.Generator(xs[1]! * 31 + ws[0]!);
  const mk = async (s: number[]) => E.tensor(Array.from(await E.rand(s, { backend: cpu, generator: gen, low: -1, high: 1 }).toArray()), s, { backend }).requireGrad();
  const [x, w, b] = [await mk(xs), await mk(ws), await mk([ws[0]!])];
  const pad = ws[2] === 1 ? 0 : 1;
  const y = E.conv2d(x, w, b, { stride, padding: pad, groups });
  const gy = E.tensor(Array.from({ length: y.size }, (_, i) => Math.fround(Math.sin(i * 0.37))), y.shape, { backend });
  const grads = E.gradients(y, [x, w, b], { gradOutput: gy });
  return Promise.all([y, ...grads.map((t) => t!)].map((t) => t.toArray())) as Promise<Float32Array[]>;
}

describe.runIf(gpu)('conv2d columns route on the GPU vs float64: fused bias, weight gradient summed in one GEMM', () => {
  for (const [choice, picker] of CHOICES) {
    it(choice, async () => {
      restores.push(gpu!.tune({ conv: { implicit: false }, ...(picker ? { matmul: { picker } } : {}) }));
      for (const [name, xs, ws, stride, groups] of SHAPES) {
        const got = await convAndGrads(gpu!, xs, ws, stride, groups);
        const want = await convAndGrads(cpu, xs, ws, stride, groups);
        ['y', 'dx', 'dw', 'db'].forEach((n, i) => expectClose(got[i]!, want[i]!, { atol: 2e-4, rtol: 1e-4 }, `${choice}, ${name}: ${n}`));
      }
    }, 300_000);
  }

  it('forward: unfold + one matmul with the bias epilogue; weight gradient: one summed matmul, no per-image products or batch sum', async () => {
    restores.push(gpu!.tune({ conv: { implicit: false } }));
    const gen = new E.Generator(7);
    const x = E.rand([3, 8, 6, 6], { backend: gpu!, generator: gen, low: -1, high: 1 });
    const w = E.rand([8, 8, 3, 3], { backend: gpu!, generator: gen, low: -1, high: 1 }).requireGrad();
    const b = E.rand([8], { backend: gpu!, generator: gen, low: -1, high: 1 }).requireGrad();
    const keys: string[] = [];
    const run = gpu!.run.bind(gpu!);
    gpu!.run = (kernel, variant, call) => (keys.push(kernel.layout(variant).key), run(kernel, variant, call));
    try {
      E.tidy(() => {
        const y = E.conv2d(x, w, b, { padding: 1 });
        const fwd = keys.splice(0);
        expect(fwd, 'forward kernels').toHaveLength(2);
        expect(fwd[0]).toMatch(/^conv\|unfold/);
        expect(fwd[1]).toMatch(/^matmul\|.*\|rbias$/);
        E.gradients(y, [w, b], { gradOutput: E.onesLike(y) });
      });
    } finally {
      gpu!.run = run;
    }
    // The weight gradient (one matmul summed over the images) and the bias gradient (one reduce).
    expect(keys.filter((k) => k.startsWith('matmul')), 'gradient matmuls').toEqual([expect.stringMatching(/\|sum1$/)]);
    expect(keys.filter((k) => k.startsWith('reduce')), 'gradient reductions').toHaveLength(1);
    for (const t of [x, w, b]) t.dispose();
  }, 120_000);
});
