/**
 * Indexing ops: indexSelect, embedding, takeAlongAxis, scatterAdd, indexAdd.
 * - PyTorch fixtures (test/fixtures/make_indexing.py: index_select, gather, scatter_add, index_add,
 *   embedding; values and gradients) on the float64 CPU branch to 1e-12 and on the GPU.
 * - The float64 CPU branch is checked against a naive multi-index reference written here.
 * - GPU vs the float64 CPU branch over fast-check shapes, axes, index shapes and values. Gathers are
 *   copies, so they must match exactly. Scatter-adds sum up to ~8 terms of |v| <= 3 in f32:
 *   recursive summation error <= (n-1) u sum|v| = 7 * 2^-24 * 27 ~ 1.1e-5, so atol 2e-5.
 *   Integer-valued sums (partial sums < 2^24) are exact: those tests demand equality.
 * - GPU f32 scatter-adds are deterministic and add in source order (no float atomics), so they
 *   equal the f32 CPU backend (CpuBackend, which adds in that order) bit for bit, every run.
 * - Gradients vs central finite differences in float64 (eps 1e-6; all ops are linear in the float
 *   inputs, so FD is exact up to rounding ~1e-10): atol 1e-6, rtol 1e-6.
 */
import { readFileSync } from 'node:fs';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import * as E from '../engine/index.js';
import { requireGpu } from './helpers/backends.js';
import { expectClose, expectGradMatchesFD, expectMatchesReference, type InputSpec } from './helpers/compare.js';
import { valuesArb } from './helpers/arbitrary.js';

const gpu = await requireGpu();
const exact = { atol: 0, rtol: 0 };
const sumTol = { atol: 2e-5, rtol: 0 };
const size = (s: readonly number[]) => s.reduce((a, b) => a * b, 1);

function unravel(i: number, shape: readonly number[]): number[] {
  const c = new Array<number>(shape.length);
  for (let d = shape.length - 1; d >= 0; d--) {
    c[d] = i % shape[d]!;
    i = Math.floor(i / shape[d]!);
  }
  return c;
}
function ravel(c: readonly number[], shape: readonly number[]): number {
  let i = 0;
  for (let d = 0; d < shape.length; d++) i = i * shape[d]! + c[d]!;
  return i;
}

// ---- naive references (flat row-major arrays) ----

function refIndexSelect(x: InputSpec, axis: number, idx: number[]): number[] {
  const shape = [...x.shape];
  shape[axis] = idx.length;
  return Array.from({ length: size(shape) }, (_, i) => {
    const c = unravel(i, shape);
    c[axis] = idx[c[axis]!]!;
    return x.data[ravel(c, x.shape)]!;
  });
}
function refTake(x: InputSpec, idx: InputSpec, axis: number): number[] {
  return Array.from({ length: size(idx.shape) }, (_, i) => {
    const c = unravel(i, idx.shape);
    c[axis] = idx.data[i]!;
    return x.data[ravel(c, x.shape)]!;
  });
}
function refScatterAdd(target: number[], shape: number[], axis: number, idx: InputSpec, src: InputSpec): number[] {
  const out = [...target];
  for (let i = 0; i < size(idx.shape); i++) {
    const c = unravel(i, idx.shape);
    const s = src.data[ravel(c, src.shape)]!;
    c[axis] = idx.data[i]!;
    out[ravel(c, shape)]! += s;
  }
  return out;
}
function refIndexAdd(target: number[], shape: number[], axis: number, idx: number[], src: InputSpec): number[] {
  const out = [...target];
  for (let i = 0; i < size(src.shape); i++) {
    const c = unravel(i, src.shape);
    c[axis] = idx[c[axis]!]!;
    out[ravel(c, shape)]! += src.data[i]!;
  }
  return out;
}

// ---- generators ----

const i32 = (data: number[], shape = [data.length]): InputSpec => ({ shape, data, dtype: 'i32' });

/** x, axis, and a 1-D index list (repeats allowed, possibly empty). */
const selectCase = fc
  .array(fc.integer({ min: 1, max: 6 }), { minLength: 1, maxLength: 4 })
  .chain((shape) =>
    fc.record({
      x: valuesArb(size(shape)).map((data) => ({ shape, data })),
      axis: fc.integer({ min: 0, max: shape.length - 1 }),
      m: fc.integer({ min: 0, max: 7 }),
      seed: fc.array(fc.nat(1000), { minLength: 7, maxLength: 7 }),
    }),
  )
  .map(({ x, axis, m, seed }) => ({ x, axis, idx: seed.slice(0, m).map((v) => v % x.shape[axis]!) }));

/** A data shape, axis, and an index tensor of the same rank (<= data shape off the axis). */
const alongCase = fc
  .array(fc.integer({ min: 1, max: 5 }), { minLength: 1, maxLength: 4 })
  .chain((shape) =>
    fc.integer({ min: 0, max: shape.length - 1 }).chain((axis) =>
      fc
        .tuple(...shape.map((d, i) => fc.integer({ min: 1, max: i === axis ? 6 : d })))
        .chain((idxShape) =>
          fc.record({
            shape: fc.constant(shape),
            axis: fc.constant(axis),
            idx: fc.array(fc.nat(shape[axis]! - 1), { minLength: size(idxShape), maxLength: size(idxShape) }).map((data) => i32(data, idxShape)),
            data: valuesArb(size(shape)),
            // src for scatterAdd: idx shape, sometimes larger in each dim.
            extra: fc.tuple(...idxShape.map(() => fc.integer({ min: 0, max: 1 }))),
            srcData: valuesArb(size(idxShape.map((d) => d + 1))),
          }),
        ),
    ),
  );

// ---- PyTorch fixtures (test/fixtures/make_indexing.py) ----

interface Enc {
  shape: number[];
  data: number[];
}
interface Fixture {
  op: string;
  dim: number;
  index: Enc;
  x?: Enc;
  target?: Enc;
  src?: Enc;
  weight?: Enc;
  y: Enc;
  gy: Enc;
  grads: Record<string, Enc>;
}
const fixtures = (JSON.parse(readFileSync(new URL('./fixtures/indexing.json', import.meta.url), 'utf8')) as { cases: Fixture[] }).cases.filter((c) => c.op !== 'nearest_codes');

function runFixture(c: Fixture, b: E.Backend, grad: boolean): { y: E.Tensor; inputs: Record<string, E.Tensor> } {
  const t = (e: Enc) => {
    const x = E.tensor(e.data, e.shape, { backend: b });
    return grad ? x.requireGrad() : x;
  };
  const idx = E.tensor(new Int32Array(c.index.data), c.index.shape, { backend: b });
  switch (c.op) {
    case 'index_select': {
      const x = t(c.x!);
      return { y: E.indexSelect(x, c.dim, idx), inputs: { x } };
    }
    case 'gather': {
      const x = t(c.x!);
      return { y: E.takeAlongAxis(x, idx, c.dim), inputs: { x } };
    }
    case 'scatter_add': {
      const [target, src] = [t(c.target!), t(c.src!)];
      return { y: E.scatterAdd(target, c.dim, idx, src), inputs: { target, src } };
    }
    case 'index_add': {
      const [target, src] = [t(c.target!), t(c.src!)];
      return { y: E.indexAdd(target, c.dim, idx, src), inputs: { target, src } };
    }
    case 'embedding': {
      const weight = t(c.weight!);
      return { y: E.embedding(weight, idx), inputs: { weight } };
    }
  }
  throw new Error(`unknown fixture op ${c.op}`);
}

describe('PyTorch fixtures (index_select, gather, scatter_add, index_add, embedding)', () => {
  it('covers every op', () => {
    expect(new Set(fixtures.map((c) => c.op))).toEqual(new Set(['index_select', 'gather', 'scatter_add', 'index_add', 'embedding']));
  });
  it('float64 CPU: values and gradients of sum(y * gy)', async () => {
    for (const c of fixtures) {
      const { y, inputs } = runFixture(c, E.cpuF64, true);
      expect(y.shape, c.op).toEqual(c.y.shape);
      expectClose(await y.toArray(), c.y.data, { atol: 1e-12, rtol: 1e-12 }, `${c.op} y`);
      const names = Object.keys(c.grads);
      const gs = E.gradients(E.sum(E.mul(y, E.tensor(c.gy.data, c.gy.shape, { backend: E.cpuF64 }))), names.map((n) => inputs[n]!));
      for (let i = 0; i < names.length; i++) expectClose(await gs[i]!.toArray(), c.grads[names[i]!]!.data, { atol: 1e-12, rtol: 1e-12 }, `${c.op} grad ${names[i]}`);
    }
  });
  it.runIf(gpu)('GPU values (gathers exact; sums of <= 9 f32 terms within 1e-5)', async () => {
    for (const c of fixtures) {
      const { y } = runFixture(c, gpu!, false);
      const sums = c.op === 'scatter_add' || c.op === 'index_add';
      expectClose(await y.toArray(), c.y.data.map(Math.fround), sums ? { atol: 1e-5, rtol: 1e-6 } : exact, `${c.op} y`);
    }
  });
});

describe('CPU float64 branch vs naive reference', () => {
  it('indexSelect and indexAdd', async () => {
    await fc.assert(
      fc.asyncProperty(selectCase, async ({ x, axis, idx }) => {
        const t = E.tensor(x.data, x.shape, { backend: E.cpuF64 });
        const it = E.tensor(new Int32Array(idx), [idx.length], { backend: E.cpuF64 });
        const y = E.indexSelect(t, axis, it);
        expectClose(await y.toArray(), refIndexSelect(x, axis, idx), exact, 'indexSelect');
        const src = { shape: [...y.shape], data: Array.from(await y.toArray(), (v) => v * 0.5 + 1) };
        const z = E.indexAdd(t, axis, it, E.tensor(src.data, src.shape, { backend: E.cpuF64 }));
        expectClose(await z.toArray(), refIndexAdd(x.data, x.shape, axis, idx, src), { atol: 1e-12, rtol: 0 }, 'indexAdd');
      }),
      { numRuns: 30 },
    );
  });
  it('takeAlongAxis and scatterAdd', async () => {
    await fc.assert(
      fc.asyncProperty(alongCase, async ({ shape, axis, idx, data, extra, srcData }) => {
        const x = { shape, data };
        const t = E.tensor(data, shape, { backend: E.cpuF64 });
        const it = E.tensor(new Int32Array(idx.data), idx.shape, { backend: E.cpuF64 });
        expectClose(await E.takeAlongAxis(t, it, axis).toArray(), refTake(x, idx, axis), exact, 'takeAlongAxis');
        const srcShape = idx.shape.map((d, i) => d + extra[i]!);
        const src = { shape: srcShape, data: srcData.slice(0, size(srcShape)) };
        const s = E.tensor(src.data, src.shape, { backend: E.cpuF64 });
        expectClose(await E.scatterAdd(t, axis, it, s).toArray(), refScatterAdd(data, shape, axis, idx, src), { atol: 1e-12, rtol: 0 }, 'scatterAdd');
        expectClose(await E.scatterAdd(shape, axis, it, s).toArray(), refScatterAdd(new Array(size(shape)).fill(0), shape, axis, idx, src), { atol: 1e-12, rtol: 0 }, 'scatterAdd zeros');
      }),
      { numRuns: 30 },
    );
  });
  it('documented examples (torch semantics)', async () => {
    const b = E.cpuF64;
    const x = E.tensor([[1, 2], [3, 4]], { backend: b });
    // torch.gather(t, 1, [[0, 0], [1, 0]]) = [[1, 1], [4, 3]]
    expect(await E.takeAlongAxis(x, E.tensor(new Int32Array([0, 0, 1, 0]), [2, 2], { backend: b }), 1).toNested()).toEqual([[1, 1], [4, 3]]);
    // zeros(3, 5).scatter_add_(0, [[0, 1, 2, 0, 0], [2, 0, 1, 2, 2]], ones(2, 5)), worked by hand.
    const idx = E.tensor(new Int32Array([0, 1, 2, 0, 0, 2, 0, 1, 2, 2]), [2, 5], { backend: b });
    expect(await E.scatterAdd([3, 5], 0, idx, E.ones([2, 5], { backend: b })).toNested()).toEqual([
      [1, 1, 0, 1, 1],
      [0, 1, 1, 0, 0],
      [1, 0, 1, 1, 1],
    ]);
    const w = E.tensor([[0, 1], [10, 11], [20, 21]], { backend: b });
    expect(await E.embedding(w, E.tensor(new Int32Array([2, 0, 2, 1]), [2, 2], { backend: b })).toNested()).toEqual([
      [[20, 21], [0, 1]],
      [[20, 21], [10, 11]],
    ]);
  });
});

describe.runIf(gpu)('GPU vs float64 reference', () => {
  it('indexSelect along every axis (exact)', async () => {
    await fc.assert(
      fc.asyncProperty(selectCase, async ({ x, axis, idx }) => {
        await expectMatchesReference((t, i) => E.indexSelect(t, axis, i), [x, i32(idx)], gpu!, exact, 'indexSelect');
      }),
      { numRuns: 25 },
    );
  });
  it('indexAdd with repeated indices', async () => {
    await fc.assert(
      fc.asyncProperty(selectCase, async ({ x, axis, idx }) => {
        const srcShape = [...x.shape];
        srcShape[axis] = idx.length;
        const src = { shape: srcShape, data: Array.from({ length: size(srcShape) }, (_, i) => Math.fround(Math.sin(i) * 3)) };
        await expectMatchesReference((t, i, s) => E.indexAdd(t, axis, i, s), [x, i32(idx), src], gpu!, sumTol, 'indexAdd');
        await expectMatchesReference((i, s) => E.indexAdd(x.shape, axis, i, s), [i32(idx), src], gpu!, sumTol, 'indexAdd zeros');
      }),
      { numRuns: 25 },
    );
  });
  it('takeAlongAxis (exact) and scatterAdd (with a larger src)', async () => {
    await fc.assert(
      fc.asyncProperty(alongCase, async ({ shape, axis, idx, data, extra, srcData }) => {
        const x = { shape, data };
        await expectMatchesReference((t, i) => E.takeAlongAxis(t, i, axis), [x, idx], gpu!, exact, 'takeAlongAxis');
        const srcShape = idx.shape.map((d, i) => d + extra[i]!);
        const src = { shape: srcShape, data: srcData.slice(0, size(srcShape)) };
        await expectMatchesReference((t, i, s) => E.scatterAdd(t, axis, i, s), [x, idx, src], gpu!, sumTol, 'scatterAdd');
      }),
      { numRuns: 25 },
    );
  });
  it('embedding of a 2-D id tensor', async () => {
    const V = 37;
    const D = 19;
    const w = { shape: [V, D], data: Array.from({ length: V * D }, (_, i) => Math.fround(Math.cos(i))) };
    const ids = i32(Array.from({ length: 5 * 7 }, (_, i) => (i * 11) % V), [5, 7]);
    await expectMatchesReference((a, b) => E.embedding(a, b), [w, ids], gpu!, exact, 'embedding');
  });
  it('many repeated indices: integer sums are exact in any order, float sums within the bound', async () => {
    const n = 20000;
    const ids = Array.from({ length: n }, (_, i) => (i * 7919) % 3);
    // indexAdd of n rows of width 5 into 3 rows; integer values: partial sums < 2^24, exact.
    const src = { shape: [n, 5], data: Array.from({ length: n * 5 }, (_, i) => (i % 7) - 3) };
    await expectMatchesReference((i, s) => E.indexAdd([3, 5], 0, i, s), [i32(ids), src], gpu!, exact, 'indexAdd ints');
    // Histogram via scatterAdd of ones.
    await expectMatchesReference((i, s) => E.scatterAdd([3], 0, i, s), [i32(ids), { shape: [n], data: new Array(n).fill(1) }], gpu!, exact, 'histogram');
    // Float values in [-1, 1]: error <= (n/3) * 2^-24 * sum|v| ~ 6700 * 6e-8 * 6700 ~ 2.7e-3 (worst case).
    const fsrc = { shape: [n, 5], data: Array.from({ length: n * 5 }, (_, i) => Math.fround(Math.sin(i * 0.37))) };
    await expectMatchesReference((i, s) => E.indexAdd([3, 5], 0, i, s), [i32(ids), fsrc], gpu!, { atol: 3e-3, rtol: 0 }, 'indexAdd floats');
  });
  it('indexAdd: a middle axis, a run of one index, a strided source, bad indices', async () => {
    // Integer values: exact in any summation order. T = 200 rows, inner = 130, outer = 3; rows
    // 60..140 all hit index 7.
    const T = 200;
    const ids = Array.from({ length: T }, (_, i) => (i >= 60 && i < 140 ? 7 : (i * 37) % 50));
    const src = { shape: [3, T, 130], data: Array.from({ length: 3 * T * 130 }, (_, i) => ((i * 7) % 11) - 5) };
    const base = { shape: [3, 50, 130], data: Array.from({ length: 3 * 50 * 130 }, (_, i) => (i % 5) - 2) };
    await expectMatchesReference((b, i, s) => E.indexAdd(b, 1, i, s), [base, i32(ids), src], gpu!, exact, 'indexAdd middle axis');
    // Non-contiguous source (a transposed view).
    await expectMatchesReference((i, s) => E.indexAdd([50, 3], 0, i, E.transpose(s)), [i32(ids), { shape: [3, T], data: src.data.slice(0, 3 * T) }], gpu!, exact, 'indexAdd strided src');
    // On the GPU, out-of-range rows are dropped.
    const b = gpu!;
    const bad = E.tensor(new Int32Array([1, 5, -3, 1, 0]), [5], { backend: b });
    const y = E.indexAdd([2, 2], 0, bad, E.tensor([1, 1, 2, 2, 4, 4, 8, 8, 16, 16], [5, 2], { backend: b }));
    expect(Array.from(await y.toArray())).toEqual([16, 16, 9, 9]);
  });
  it('f32 scatter-adds are deterministic: the same bits every run, equal to the f32 CPU backend (source order)', async () => {
    const cpu32 = new E.CpuBackend();
    // Heavy repeats (a collapsed codebook: 3 targets for 6000 rows), a base, a middle axis, a
    // transposed source, out-of-range rows (skipped on the GPU, so the CPU gets them removed).
    const T = 6000;
    const ids = Int32Array.from({ length: T }, (_, i) => (i % 7 === 0 ? 2 : (i * 7919) % 3));
    const vals = Float32Array.from({ length: 2 * T * 5 }, (_, i) => Math.sin(i * 0.37) * 10 ** ((i % 5) - 2));
    const base = Float32Array.from({ length: 2 * 3 * 5 }, (_, i) => Math.cos(i) * 100);
    const cases: [string, (b: E.Backend) => E.Tensor][] = [
      ['indexAdd', (b) => E.indexAdd(E.tensor(base, [2, 3, 5], { backend: b }), 1, E.tensor(ids, [T], { backend: b }), E.tensor(vals, [2, T, 5], { backend: b }))],
      ['indexAdd zeros, strided src', (b) => E.indexAdd([3, 10], 0, E.tensor(ids, [T], { backend: b }), E.transpose(E.tensor(vals, [10, T], { backend: b })))],
      ['embedding backward', (b) => {
        const w = E.tensor(base.slice(0, 15), [3, 5], { backend: b }).requireGrad();
        const y = E.embedding(w, E.tensor(ids, [T / 2, 2], { backend: b }));
        return E.gradients(E.sum(E.mul(y, E.tensor(vals.slice(0, T * 5), [T / 2, 2, 5], { backend: b }))), [w])[0]!;
      }],
      // scatterAdd with idx of length > 1 along the axis (targets repeat) and of length 1 (they cannot).
      ['scatterAdd', (b) => E.scatterAdd(E.tensor(base, [2, 15], { backend: b }), 1, E.tensor(Int32Array.from({ length: 2 * 3000 }, (_, i) => ids[i]! * 5 + (i % 5)), [2, 3000], { backend: b }), E.tensor(vals.slice(0, 6000), [2, 3000], { backend: b }))],
      ['scatterAdd, one per target', (b) => E.scatterAdd([4, 8], 1, E.tensor(Int32Array.from([3, 0, 7, 3]), [4, 1], { backend: b }), E.tensor(vals.slice(0, 4), [4, 1], { backend: b }))],
    ];
    for (const [what, f] of cases) {
      const want = new Uint32Array((await f(cpu32).toArray() as Float32Array).buffer);
      for (let run = 0; run < 2; run++) {
        const got = new Uint32Array((await f(gpu!).toArray() as Float32Array).buffer);
        expect(Array.from(got), `${what}, run ${run}`).toEqual(Array.from(want));
      }
    }
    // Out-of-range rows are skipped on the GPU: the sum of the others, in order.
    const bad = Int32Array.from({ length: 300 }, (_, i) => (i % 4 === 3 ? (i % 8 === 3 ? -1 : 5) : i % 2));
    const keepRows = Array.from(bad.keys()).filter((i) => bad[i]! >= 0 && bad[i]! < 2);
    const want = await E.indexAdd([2, 5], 0, E.tensor(Int32Array.from(keepRows, (i) => bad[i]!), [keepRows.length], { backend: cpu32 }), E.tensor(Float32Array.from(keepRows.flatMap((i) => Array.from(vals.slice(i * 5, i * 5 + 5)))), [keepRows.length, 5], { backend: cpu32 })).toArray();
    const got = await E.indexAdd([2, 5], 0, E.tensor(bad, [300], { backend: gpu! }), E.tensor(vals.slice(0, 1500), [300, 5], { backend: gpu! })).toArray();
    expect(Array.from(got)).toEqual(Array.from(want));
  });
  it('i32 data: gather and exact atomic scatter-add', async () => {
    const x = i32([1, 2, 3, 4, 5, 6], [2, 3]);
    await expectMatchesReference((t, i) => E.indexSelect(t, 1, i), [x, i32([2, 2, 0])], gpu!, exact, 'i32 indexSelect');
    await expectMatchesReference((t, i, s) => E.scatterAdd(t, 1, i, s), [x, i32([0, 0, 2, 1], [1, 4]), i32([5, -7, 9, 100], [1, 4])], gpu!, exact, 'i32 scatterAdd');
  });
  it('non-contiguous inputs (transposed data, strided indices)', async () => {
    await expectMatchesReference(
      (t, i) => E.indexSelect(E.transpose(t), 0, E.slice(i, [[0, 8, 2]])),
      [{ shape: [3, 5], data: Array.from({ length: 15 }, (_, i) => i) }, i32([4, 9, 0, 9, 4, 9, 1, 9])],
      gpu!,
      exact,
    );
    await expectMatchesReference(
      (t, i, s) => E.scatterAdd(E.transpose(t), 1, E.transpose(i), E.transpose(s)),
      [{ shape: [4, 3], data: Array.from({ length: 12 }, (_, i) => i) }, i32([0, 3, 1, 3, 2, 0], [2, 3]), { shape: [2, 3], data: [1, 2, 3, 4, 5, 6] }],
      gpu!,
      sumTol,
    );
  });
  it('empty index lists', async () => {
    await expectMatchesReference((t, i) => E.indexSelect(t, 1, i), [{ shape: [2, 3], data: [1, 2, 3, 4, 5, 6] }, i32([])], gpu!, exact);
    await expectMatchesReference((t, i, s) => E.indexAdd(t, 0, i, s), [{ shape: [2, 3], data: [1, 2, 3, 4, 5, 6] }, i32([]), { shape: [0, 3], data: [] }], gpu!, exact);
  });
  it('out-of-range indices on the GPU: gathers give 0, scatters skip (documented; no readback)', async () => {
    const x = E.tensor([1, 2, 3], [3], { backend: gpu! });
    const bad = E.tensor(new Int32Array([2, 3, -1, 0]), [4], { backend: gpu! });
    expect(Array.from(await E.indexSelect(x, 0, bad).toArray())).toEqual([3, 0, 0, 1]);
    expect(Array.from(await E.indexAdd([3], 0, bad, E.ones([4], { backend: gpu! })).toArray())).toEqual([1, 0, 1]);
  });
  it('a large gather spanning a 2D dispatch grid', async () => {
    const n = 65535 * 256 + 1000;
    const x = E.arange(0, 10, 1, { backend: gpu!, dtype: 'f32' });
    const idx = E.full([n], 9, { backend: gpu!, dtype: 'i32' });
    const y = E.indexSelect(x, 0, idx);
    expect(Array.from(await E.slice(y, [[n - 3, n]]).toArray())).toEqual([9, 9, 9]);
    for (const t of [x, idx, y]) t.dispose();
  });
});

describe('gradients vs finite differences (float64)', () => {
  const x34 = { shape: [3, 4], data: Array.from({ length: 12 }, (_, i) => Math.sin(i + 1)) };
  it('indexSelect (repeats accumulate in the gradient)', async () => {
    await expectGradMatchesFD((t, i) => E.indexSelect(t, 1, i), [x34, i32([3, 0, 3, 3, 1])], { atol: 1e-6, rtol: 1e-6 });
    await expectGradMatchesFD((t, i) => E.indexSelect(t, 0, i), [x34, i32([2, 2])], { atol: 1e-6, rtol: 1e-6 });
  });
  it('embedding', async () => {
    await expectGradMatchesFD((w, i) => E.embedding(w, i), [x34, i32([0, 2, 2, 1, 0, 0], [2, 3])], { atol: 1e-6, rtol: 1e-6 });
  });
  it('takeAlongAxis', async () => {
    await expectGradMatchesFD((t, i) => E.takeAlongAxis(t, i, 0), [x34, i32([0, 2, 2, 1, 0, 0, 2, 2], [2, 4])], { atol: 1e-6, rtol: 1e-6 });
  });
  it('scatterAdd w.r.t. target and (larger) source', async () => {
    const src = { shape: [2, 5], data: Array.from({ length: 10 }, (_, i) => Math.cos(i)) };
    await expectGradMatchesFD((t, i, s) => E.scatterAdd(t, 1, i, s), [x34, i32([3, 3, 0, 1, 1, 1], [2, 3]), src], { atol: 1e-6, rtol: 1e-6 });
  });
  it('indexAdd w.r.t. target and source', async () => {
    const src = { shape: [3, 3], data: Array.from({ length: 9 }, (_, i) => Math.cos(i)) };
    await expectGradMatchesFD((t, i, s) => E.indexAdd(t, 1, i, s), [x34, i32([3, 0, 3]), src], { atol: 1e-6, rtol: 1e-6 });
  });
  it('second derivatives through the gather/scatter pairs', async () => {
    // d/dx of (grad of sum(indexSelect(x)^3)) and of sum(takeAlongAxis(x)^3): the backward of the
    // backward runs indexSelect(indexAdd(...)) and takeAlongAxis(scatterAdd(...)).
    const i1 = E.tensor(new Int32Array([1, 1, 2]), [3], { backend: E.cpuF64 });
    const i2 = E.tensor(new Int32Array([0, 2, 2, 1]), [1, 4], { backend: E.cpuF64 });
    await expectGradMatchesFD((t) => E.grad((y) => E.sum(E.pow(E.indexSelect(y, 0, i1), 3)))(t)[0]!, [x34], { atol: 1e-6, rtol: 1e-6 });
    await expectGradMatchesFD((t) => E.grad((y) => E.sum(E.pow(E.takeAlongAxis(y, i2, 0), 3)))(t)[0]!, [x34], { atol: 1e-6, rtol: 1e-6 });
  });
});

describe('memory', () => {
  it('ops leave no live temporaries behind (outside tidy, no gradients)', () => {
    const b = E.cpuF64;
    const before = E.memoryStats().liveTensors;
    const w = E.ones([4, 3], { backend: b });
    const ids = E.tensor(new Int32Array([0, 3, 3, 1]), [2, 2], { backend: b });
    const outs = [
      E.embedding(w, ids),
      E.indexSelect(w, 0, E.reshape(ids, [4])),
      E.scatterAdd([4, 3], 0, E.tensor(new Int32Array([1, 2]), [1, 2], { backend: b }), E.ones([2, 3], { backend: b })),
      E.indexAdd(w, 0, E.tensor(new Int32Array([2]), [1], { backend: b }), E.ones([1, 3], { backend: b })),
    ];
    const live = E.memoryStats().liveTensors - before;
    // w, ids, the 4 outputs, and the 5 argument tensors created inline above.
    expect(live).toBe(2 + 4 + 5);
    expect(outs.every((t) => !t.isDisposed)).toBe(true);
  });
});

describe('errors', () => {
  const b = E.cpuF64;
  const x = E.zeros([2, 3], { backend: b });
  it('indices must be i32 and in range (CPU)', () => {
    expect(() => E.indexSelect(x, 0, E.tensor([0], [1], { backend: b }))).toThrow(/indexSelect: indices must have dtype i32, got .*f32/);
    expect(() => E.indexSelect(x, 1, E.tensor(new Int32Array([0, 3]), [2], { backend: b }))).toThrow(/indexSelect: index 3 is out of range for axis 1 of size 3/);
    expect(() => E.takeAlongAxis(x, E.tensor(new Int32Array([-1]), [1, 1], { backend: b }), 1)).toThrow(/takeAlongAxis: index -1 is out of range/);
    expect(() => E.scatterAdd([2, 3], 0, E.tensor(new Int32Array([2]), [1, 1], { backend: b }), x)).toThrow(/scatterAdd: index 2 is out of range for axis 0 of size 2/);
  });
  it('shape errors name the op and the shapes', () => {
    expect(() => E.indexSelect(x, 0, E.tensor(new Int32Array([0]), [1, 1], { backend: b }))).toThrow(/indexSelect: indices must be 1-D/);
    expect(() => E.indexSelect(x, 2, E.tensor(new Int32Array([0]), [1], { backend: b }))).toThrow(/indexSelect: axis 2 is out of range/);
    expect(() => E.takeAlongAxis(x, E.tensor(new Int32Array([0]), [1], { backend: b }), 0)).toThrow(/takeAlongAxis: indices \[1\] must have the same rank as the input \[2, 3\]/);
    expect(() => E.takeAlongAxis(x, E.tensor(new Int32Array(8), [1, 8], { backend: b }), 0)).toThrow(/exceed the input \[2, 3\] in dim 1/);
    expect(() => E.indexAdd([2, 3], 0, E.tensor(new Int32Array([0]), [1], { backend: b }), x)).toThrow(/indexAdd: source shape \[2, 3\] does not match target \[2, 3\] with 1 indices along axis 0 \(expected \[1, 3\]\)/);
    expect(() => E.scatterAdd(x, 0, E.tensor(new Int32Array(3), [3, 1], { backend: b }), E.zeros([2, 1], { backend: b }))).toThrow(/scatterAdd: indices \[3, 1\] exceed the source \[2, 1\] in dim 0/);
    expect(() => E.embedding(E.zeros([4], { backend: b }), E.tensor(new Int32Array([0]), [1], { backend: b }))).toThrow(/embedding: weight must be \[V, D\]/);
  });
});
