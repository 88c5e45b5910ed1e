/**
 * Why hot paths build parameter objects with Object.assign rather than `{ ...base, extra }`:
 * the cost of one object made each way, as the engine's dispatch code makes them (docs/engine.md,
 * "WebGPU execution"). Host code only; no device.
 *
 *   npx tsx bench/object-spread.ts
 */
let sink = 0;
function time(name: string, make: (i: number) => number): void {
  for (let i = 0; i < 20_000; i++) sink += make(i); // warm-up: optimized code, stable shapes
  const n = 200_000;
  const t0 = performance.now();
  for (let i = 0; i < n; i++) sink += make(i);
  console.log(`${name.padEnd(44)} ${(((performance.now() - t0) / n) * 1000).toFixed(3)} us`);
}

// A kernel spec plus the op name (elementwise), and a convolution's 9 input parameters plus 5 more (Winograd).
const spec = (i: number) => ({ expr: 'a', dtype: 'f32', n: i });
const input = (i: number) => ({ C: 64 + (i & 1), H: 16, W: 16, ph: 1, pw: 1, th: 4, tw: 4, T: 128, x_off: 0 });
time('{ ...spec, op }', (i) => ({ ...spec(i), op: 'x' }).n);
time('Object.assign({}, spec, { op })', (i) => Object.assign({}, spec(i), { op: 'x' }).n);
time('{ ...input, Cv, wCout, wC, w_off, w_st }', (i) => ({ ...input(i), Cv: 64, wCout: 64, wC: 64, w_off: 0, w_st: [576, 9, 3, 1] }).C);
time('Object.assign(input, { Cv, wCout, ... })', (i) => Object.assign(input(i), { Cv: 64, wCout: 64, wC: 64, w_off: 0, w_st: [576, 9, 3, 1] }).C);
time('{ a, b, ...layout } (spread at the end)', (i) => ({ rms: true, silu: false, ...spec(i) }).n);
if (sink === 0.5) console.log(sink); // keeps the results live
