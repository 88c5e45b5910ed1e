/**
 * Small-channel convolutions at the CNN tokenizer's shapes (models/tokenizer/cnn.ts with ch 16,
 * chMult [1, 2, 2] on 16x16 images, batch 32): conv2d forward and forward+backward (gradients of
 * x, w and bias from a fixed output gradient), 3x3 padding 1, plus the stride-2 downsample convs
 * and the 1-channel input/output convs. Mostly for software adapters (lavapipe), where these
 * small convolutions dominate a tokenizer step.
 *
 *   npx tsx bench/conv-small.ts            (one line per case: median ms per call)
 *   B=8 npx tsx bench/conv-small.ts        (another batch size)
 *   CONV_IMPLICIT=0 npx tsx bench/conv-small.ts   (the unfold + matmul path instead of the implicit-GEMM kernels)
 *   STRIDED_DX=0 npx tsx bench/conv-small.ts      (stride-2 input gradients through fold(w^T @ gy))
 *
 * Each case: tinybench, 2 warm-up calls, at least 5 calls / 1.5 s, one GPU sync per call.
 */
import * as E from '../node/index.js';
import { randomData, timeAsync } from './common.js';

const backend = await E.getDevice({ setDefault: true, requireWebGPU: true, quiet: true });
const gpu = backend as E.WebGPUBackend;
const B = Number(process.env.B ?? 32);
if (process.env.CONV_IMPLICIT !== undefined) gpu.tune({ conv: { implicit: process.env.CONV_IMPLICIT === '1' } });
if (process.env.STRIDED_DX !== undefined) gpu.tune({ conv: { implicitStridedDx: process.env.STRIDED_DX === '1' } });

interface Shape {
  name: string;
  cin: number;
  cout: number;
  hw: number;
  stride: number;
}
const shapes: Shape[] = [
  { name: 'conv_in 1->16 @16', cin: 1, cout: 16, hw: 16, stride: 1 },
  { name: '16->16 @16', cin: 16, cout: 16, hw: 16, stride: 1 },
  { name: 'down 16->16 @16 s2', cin: 16, cout: 16, hw: 16, stride: 2 },
  { name: '16->32 @8', cin: 16, cout: 32, hw: 8, stride: 1 },
  { name: '32->32 @8', cin: 32, cout: 32, hw: 8, stride: 1 },
  { name: 'down 32->32 @8 s2', cin: 32, cout: 32, hw: 8, stride: 2 },
  { name: '32->32 @4', cin: 32, cout: 32, hw: 4, stride: 1 },
  { name: 'conv_out 16->1 @16', cin: 16, cout: 1, hw: 16, stride: 1 },
];

const t = (shape: number[], seed: number, grad = false) => {
  const x = E.tensor(randomData(shape.reduce((a, b) => a * b, 1), seed), shape, { backend });
  x.requiresGrad = grad;
  return E.keep(x);
};

const opts = { iterations: 5, timeMs: 1500, warmupIterations: 2 };
console.log(`adapter: ${gpu.info.description || gpu.info.device || gpu.info.architecture}; batch ${B}; implicit ${gpu.tuning.conv.implicit ?? 'default'}, strided dx ${gpu.tuning.conv.implicitStridedDx ?? 'default'}`);
let totF = 0;
let totFB = 0;
for (const s of shapes) {
  const x = t([B, s.cin, s.hw, s.hw], 1, true);
  const w = t([s.cout, s.cin, 3, 3], 2, true);
  const b = t([s.cout], 3, true);
  const ho = Math.floor((s.hw + 2 - 3) / s.stride) + 1;
  const gy = t([B, s.cout, ho, ho], 4);
  const o = { stride: s.stride, padding: 1 };
  const fwd = await timeAsync(`${s.name} fwd`, async () => {
    E.noGrad(() => E.tidy(() => void E.conv2d(x, w, b, o)));
    await gpu.sync();
  }, opts);
  const fb = await timeAsync(`${s.name} fwd+bwd`, async () => {
    E.tidy(() => {
      const y = E.conv2d(x, w, b, o);
      const [gx, gw, gb] = E.gradients(y, [x, w, b], { gradOutput: gy });
      return [gx!, gw!, gb!];
    }).forEach((g) => g.dispose());
    await gpu.sync();
  }, opts);
  totF += fwd.medianMs;
  totFB += fb.medianMs;
  console.log(`${s.name.padEnd(22)} x [${B},${s.cin},${s.hw},${s.hw}]  fwd ${fwd.medianMs.toFixed(2).padStart(7)} ms   fwd+bwd ${fb.medianMs.toFixed(2).padStart(7)} ms`);
  for (const v of [x, w, b, gy]) v.dispose();
}
console.log(`${'sum'.padEnd(22)} ${' '.repeat(19)}  fwd ${totF.toFixed(2).padStart(7)} ms   fwd+bwd ${totFB.toFixed(2).padStart(7)} ms`);
