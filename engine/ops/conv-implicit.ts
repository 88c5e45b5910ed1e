/**
 * Implicit-GEMM convolution ops (groups = 1): the classic trio
 *   convForward(x, w, b)   y  = conv(x, w) + b                  [N, Cout, Hb, Wb]
 *   convInputGrad(gy, w)   dx = conv^T(gy, w)  (adjoint in x)   [N, C, H, W]
 *   convWeightGrad(gy, x)  dw = sum_n gy (x) unfold(x)          [Cout, C, kh, kw]
 * Each is linear in each argument and the gradients of each are the other two:
 *   forward:      dx = convInputGrad(gy, w),  dw = convWeightGrad(gy, x),  db = sum(gy, [0, 2, 3])
 *                 (dw and db as one op, convWeightBiasGrad, where the plan computes both at once;
 *                 dx, dw and db as one op, convBackward, where Winograd computes all three)
 *   input grad:   d gy = convForward(g, w),   d w = convWeightGrad(gy, g)
 *   weight grad:  d gy = convForward(x, g),   d x = convInputGrad(gy, g)
 * so grad-of-grad works to any order. On the GPU each op is one kernel of
 * shaders/conv-implicit.ts reading its operands in place (no unfolded column tensor); on the CPU
 * one loop nest over (image, output channel, input channel, tap, output pixel) serves all three
 * (the float64 reference). The strided input gradient may instead take fold(w^T @ gy) (the plan's
 * columns route; its gradient then comes from fold and matmul).
 */
import type { Storage } from '../backend.js';
import { composite } from '../composite.js';
import { cpuContiguous, cpuData } from '../cpu/strided.js';
import { defineOp } from '../op.js';
import { fmtShape } from '../shape.js';
import type { Tensor } from '../tensor.js';
import type { WebGPUBackend } from '../webgpu/backend.js';
import { IMPLICIT_GEOMETRY, implicitRowsKernel, implicitTiledKernel, type ImplicitConvMode } from '../../shaders/conv-implicit.js';
import { SPLIT_SUM_WG, splitSumKernel } from '../../shaders/matmul.js';
import type { ConvGeom } from './conv-geometry.js';
import { planConv, type ConvPlan, type ImplicitKernelPlan } from './conv-plan.js';
import { winogradBackward, winogradForward, winogradInputGrad, winogradWeightGrad } from './conv-winograd.js';
import { foldGeom, inBatchChunks } from './conv-unfold.js';
import { matmul } from './matmul.js';
import { expand, reshape, transpose } from './movement.js';
import { sum } from './reduce.js';
import { add } from './binary.js';

/**
 * GPU runs of the implicit ops per mode, and how many of them ran as Winograd F(2x2, 3x3) (tests
 * check that the path is taken).
 */
export const convImplicitCounters = { fwd: 0, dx: 0, dw: 0, winograd: 0, backward: 0 };

interface ImplicitAttrs {
  g: ConvGeom;
  /** The plan's kernel (null on backends whose op kernel needs none). */
  kernel: ImplicitKernelPlan | null;
}

/**
 * Checks the operands of one of the three ops against the geometry (x [N, C, H, W], w [Cout, C,
 * kh, kw], gy [N, Cout, Hb, Wb]); the error names the op and the shapes.
 */
function checkTrio(op: string, g: ConvGeom, parts: { x?: Tensor; w?: Tensor; gy?: Tensor; b?: Tensor | null }): void {
  const ts = Object.values(parts).filter((t): t is Tensor => !!t);
  for (const [name, t] of Object.entries(parts)) {
    if (!t) continue;
    if (t.dtype !== 'f32') throw new TypeError(`${op}: expected an f32 ${name}, got dtype ${t.dtype} (${t.describe()})`);
    if (t.rank !== (name === 'b' ? 1 : 4)) throw new Error(`${op}: ${name} must have rank ${name === 'b' ? 1 : 4}, got ${fmtShape(t.shape)}`);
  }
  const { x, w, gy, b } = parts;
  const N = (x ?? gy)!.shape[0]!;
  const C = (x ?? w)!.shape[1]!;
  const Cout = (w ?? gy)!.shape[w ? 0 : 1]!;
  const want: [string, Tensor | null | undefined, number[]][] = [
    ['x', x, [N, C, g.H, g.W]],
    ['w', w, [Cout, C, g.kh, g.kw]],
    ['gy', gy, [N, Cout, g.Hb, g.Wb]],
    ['b', b, [Cout]],
  ];
  for (const [name, t, shape] of want) {
    if (t && (t.shape.length !== shape.length || t.shape.some((d, i) => d !== shape[i]))) {
      const got = ts.map((u) => fmtShape(u.shape)).join(', ');
      throw new Error(`${op}: ${name} should have shape ${fmtShape(shape)} for kernel ${g.kh}x${g.kw} on ${g.H}x${g.W} -> ${g.Hb}x${g.Wb}, got ${fmtShape(t.shape)} (operands ${got})`);
    }
  }
}

/**
 * The three products on the CPU: one loop nest visits every (image, output channel, input
 * channel, tap, output pixel) whose tap lands in the image and accumulates in float64 the
 * product of the two given operands into the third (y, x or w), which is returned dense.
 */
function cpuImplicit(mode: ImplicitConvMode, g: ConvGeom, N: number, C: number, Cout: number, xs: ArrayLike<number> | null, ws: ArrayLike<number> | null, ys: ArrayLike<number> | null, outSize: number): Float64Array {
  const acc = new Float64Array(outSize);
  const { H, W, kh, kw, Hb, Wb } = g;
  for (let n = 0; n < N; n++)
    for (let co = 0; co < Cout; co++)
      for (let c = 0; c < C; c++)
        for (let ki = 0; ki < kh; ki++)
          for (let kj = 0; kj < kw; kj++) {
            const iw = ((co * C + c) * kh + ki) * kw + kj;
            for (let oh = 0; oh < Hb; oh++) {
              const h = oh * g.sh - g.ph + ki * g.dh;
              if (h < 0 || h >= H) continue;
              for (let ow = 0; ow < Wb; ow++) {
                const w = ow * g.sw - g.pw + kj * g.dw;
                if (w < 0 || w >= W) continue;
                const ix = ((n * C + c) * H + h) * W + w;
                const iy = ((n * Cout + co) * Hb + oh) * Wb + ow;
                if (mode === 'fwd') acc[iy]! += ws![iw]! * xs![ix]!;
                else if (mode === 'dx') acc[ix]! += ws![iw]! * ys![iy]!;
                else acc[iw]! += ys![iy]! * xs![ix]!;
              }
            }
          }
  return acc;
}

type DirectPlan = Exclude<ImplicitKernelPlan, { kernel: 'winograd' }>;

/** Rows and columns one workgroup of the plan's kernel covers. */
const planRows = (p: DirectPlan) => (p.kernel === 'rows' ? p.TM : p.BM);
const planCols = (p: DirectPlan) => (p.kernel === 'rows' ? p.WG * p.TN : p.BN);

/**
 * One implicit kernel writing `out`: A is the row operand (w, or gy for dw), B the gathered one
 * (x, gy for dx, x for dw). dw split over image ranges writes partial sums, added by a second kernel.
 */
function runImplicit(gpu: WebGPUBackend, mode: ImplicitConvMode, a: Tensor, b: Tensor, bias: Tensor | null, out: Tensor, g: ConvGeom, plan: ImplicitKernelPlan, N: number, C: number, Cout: number, residual: Tensor | null = null): void {
  convImplicitCounters[mode]++;
  if (plan.kernel === 'winograd') {
    convImplicitCounters.winograd++;
    if (mode === 'fwd') winogradForward(gpu, plan.m, b, a, bias, out, g, residual);
    else if (mode === 'dx') winogradInputGrad(gpu, plan.m, b, a, out, g);
    else winogradWeightGrad(gpu, plan.m, a, b, out, g);
    return;
  }
  const M = mode === 'dx' ? C : Cout;
  const NC = mode === 'fwd' ? N * g.Hb * g.Wb : mode === 'dx' ? N * g.H * g.W : C * g.kh * g.kw;
  const perSplit = Math.max(1, Math.ceil(N / plan.splits));
  const splits = Math.max(1, Math.ceil(N / perSplit));
  const tilesM = Math.ceil(M / planRows(plan));
  const tilesN = Math.ceil(NC / planCols(plan));
  const params = {
    N, C, H: g.H, W: g.W, Cout, kh: g.kh, kw: g.kw, sh: g.sh, sw: g.sw, ph: g.ph, pw: g.pw, dh: g.dh, dw: g.dw, Hb: g.Hb, Wb: g.Wb,
    tilesM, tilesN, per_split: perSplit,
    a_off: a.offset, a_st: a.strides, b_off: b.offset, b_st: b.strides,
    bias_off: bias ? bias.offset : 0, bias_st: bias ? bias.strides[0]! : 0,
  };
  const parts = splits > 1 ? gpu.alloc(splits * M * NC, 'f32') : null;
  const target = parts ?? out;
  const bindings: Record<string, Tensor | Storage> = bias ? { A: a, B: b, BIAS: bias, OUT: target } : { A: a, B: b, OUT: target };
  const call = { params, bindings, workgroups: tilesM * tilesN * splits, bake: plan.bake ? IMPLICIT_GEOMETRY : undefined };
  if (plan.kernel === 'rows') {
    const strided = mode === 'dx' && (g.sh > 1 || g.sw > 1);
    gpu.run(implicitRowsKernel, { mode, WG: plan.WG, TM: plan.TM, TN: plan.TN, bias: !!bias, subgroups: plan.subgroups, strided }, call);
  } else {
    gpu.run(implicitTiledKernel, { mode, BM: plan.BM, BN: plan.BN, BK: plan.BK, TM: plan.TM, TN: plan.TN, bias: !!bias }, call);
  }
  if (parts) {
    gpu.run(splitSumKernel, undefined, { params: { n: M * NC, splits }, bindings: { parts, out }, workgroups: Math.ceil((M * NC) / SPLIT_SUM_WG) });
    gpu.free(parts);
  }
}

/** The forward's inputs [x, w, b?, r?]: the residual, when there is one, is last. */
function forwardParts(inputs: readonly (Tensor | undefined)[], residual: boolean): { x: Tensor; w: Tensor; b: Tensor | null; r: Tensor | null } {
  const r = residual ? inputs[inputs.length - 1]! : null;
  const b = inputs.length === (residual ? 4 : 3) ? inputs[2]! : null;
  return { x: inputs[0]!, w: inputs[1]!, b, r };
}

const convForwardOp = defineOp<ImplicitAttrs & { residual?: boolean }>({
  name: 'conv_forward',
  outputs: (inputs, { g, residual }) => {
    const { x, w, b, r } = forwardParts(inputs, !!residual);
    checkTrio('conv2d', g, { x, w, b });
    const shape = [x.shape[0]!, w.shape[0]!, g.Hb, g.Wb];
    if (r && (r.dtype !== 'f32' || !r.isContiguous || r.shape.join() !== shape.join())) throw new Error(`conv2d: the fused residual must be a contiguous f32 tensor of the output's shape ${fmtShape(shape)}, got ${r.describe()}`);
    return [{ shape, dtype: 'f32', name: 'conv2d' }];
  },
  kernels: {
    cpu: (_b, { inputs, outputs: [y], attrs: { g, residual } }) => {
      const { x, w, b, r } = forwardParts(inputs, !!residual);
      const [N, C] = x.shape as [number, number];
      const Cout = w.shape[0]!;
      const acc = cpuImplicit('fwd', g, N, C, Cout, cpuContiguous(x), cpuContiguous(w), null, y!.size);
      const out = cpuData(y!);
      const bd = b ? cpuContiguous(b) : null;
      const rd = r ? cpuContiguous(r) : null;
      const L = g.Hb * g.Wb;
      // f32 storage: the output is rounded before the residual is added, as an add after it would be.
      const round = out instanceof Float32Array ? Math.fround : (v: number) => v;
      for (let i = 0; i < acc.length; i++) {
        const v = bd ? acc[i]! + bd[Math.floor(i / L) % Cout]! : acc[i]!;
        out[i] = rd ? round(v) + rd[i]! : v;
      }
    },
    webgpu: (gpu, { inputs, outputs: [y], attrs: { g, kernel, residual } }) => {
      const { x, w, b, r } = forwardParts(inputs, !!residual);
      if (r && kernel?.kernel !== 'winograd') throw new Error(`conv2d: a fused residual needs the Winograd kernel, the plan has ${kernel?.kernel ?? 'none'}`);
      runImplicit(gpu, 'fwd', w, x, b, y!, g, kernel!, x.shape[0]!, x.shape[1]!, w.shape[0]!, r);
    },
  },
  grad: (gy, { inputs, attrs: { g, residual } }) => {
    const { x, w, b, r } = forwardParts(inputs, !!residual);
    // The residual's gradient is the output's.
    const rest = r ? [r.requiresGrad ? gy : null] : [];
    const withBias = !!b && b.requiresGrad;
    if (x.requiresGrad && w.requiresGrad) {
      const [gx, gw, gb] = convBackward(gy, x, w, g, withBias);
      return [gx, gw, ...(b ? [gb] : []), ...rest];
    }
    const gx = x.requiresGrad ? convInputGrad(gy, w, g) : null;
    if (!b || !b.requiresGrad) return [gx, w.requiresGrad ? convWeightGrad(gy, x, g) : null, ...(b ? [null] : []), ...rest];
    if (!w.requiresGrad) return [gx, null, sum(gy, [0, 2, 3]), ...rest];
    const [gw, gb] = convWeightBiasGrad(gy, x, g);
    return [gx, gw!, gb!, ...rest];
  },
});

const convInputGradOp = defineOp<ImplicitAttrs>({
  name: 'conv_input_grad',
  outputs: ([gy, w], { g }) => {
    checkTrio('conv2dInputGrad', g, { gy, w });
    return [{ shape: [gy!.shape[0]!, w!.shape[1]!, g.H, g.W], dtype: 'f32', name: 'conv2dInputGrad' }];
  },
  kernels: {
    cpu: (_b, { inputs: [gy, w], outputs: [dx], attrs: { g } }) => cpuInputGrad(gy!, w!, dx!, g),
    webgpu: (gpu, { inputs: [gy, w], outputs: [dx], attrs: { g, kernel } }) => runImplicit(gpu, 'dx', w!, gy!, null, dx!, g, kernel!, gy!.shape[0]!, w!.shape[1]!, w!.shape[0]!),
  },
  grad: (gdx, { inputs: [gy, w], attrs: { g } }) => [gy!.requiresGrad ? convForward(gdx, w!, null, g) : null, w!.requiresGrad ? convWeightGrad(gy!, gdx, g) : null],
});

const convWeightGradOp = defineOp<ImplicitAttrs>({
  name: 'conv_weight_grad',
  outputs: ([gy, x], { g }) => {
    checkTrio('conv2dWeightGrad', g, { gy, x });
    return [{ shape: [gy!.shape[1]!, x!.shape[1]!, g.kh, g.kw], dtype: 'f32', name: 'conv2dWeightGrad' }];
  },
  kernels: {
    cpu: (_b, { inputs: [gy, x], outputs: [dw], attrs: { g } }) => {
      cpuData(dw!).set(cpuImplicit('dw', g, gy!.shape[0]!, x!.shape[1]!, gy!.shape[1]!, cpuContiguous(x!), null, cpuContiguous(gy!), dw!.size));
    },
    webgpu: (gpu, { inputs: [gy, x], outputs: [dw], attrs: { g, kernel } }) => runImplicit(gpu, 'dw', gy!, x!, null, dw!, g, kernel!, gy!.shape[0]!, x!.shape[1]!, gy!.shape[1]!),
  },
  grad: (gdw, { inputs: [gy, x], attrs: { g } }) => [gy!.requiresGrad ? convForward(x!, gdw, null, g) : null, x!.requiresGrad ? convInputGrad(gy!, gdw, g) : null],
});

/**
 * The weight and bias gradients in one op (dw as convWeightGrad, db = sum(gy, [0, 2, 3])) where
 * the plan computes both at once: Winograd (db from the same GEMM, no dispatch of its own) and the
 * CPU reference. Its gradients: dw's as convWeightGrad's; db's broadcasts d db over gy's shape.
 */
const convWeightBiasGradOp = defineOp<ImplicitAttrs>({
  name: 'conv_weight_bias_grad',
  outputs: ([gy, x], { g }) => {
    checkTrio('conv2dWeightGrad', g, { gy, x });
    return [
      { shape: [gy!.shape[1]!, x!.shape[1]!, g.kh, g.kw], dtype: 'f32', name: 'conv2dWeightGrad' },
      { shape: [gy!.shape[1]!], dtype: 'f32', name: 'conv2dBiasGrad' },
    ];
  },
  kernels: {
    cpu: (_b, { inputs: [gy, x], outputs: [dw, db], attrs: { g } }) => cpuWeightBiasGrad(gy!, x!, dw!, db!, g),
    webgpu: (gpu, { inputs: [gy, x], outputs: [dw, db], attrs: { g, kernel } }) => {
      if (kernel?.kernel !== 'winograd') throw new Error(`conv2dWeightGrad: the fused bias gradient needs the Winograd kernel, the plan has ${kernel?.kernel ?? 'none'}`);
      convImplicitCounters.dw++;
      convImplicitCounters.winograd++;
      winogradWeightGrad(gpu, kernel.m, gy!, x!, dw!, g, db!);
    },
  },
  grad: [
    (gdw, { inputs: [gy, x], attrs: { g } }) => [gy!.requiresGrad ? convForward(x!, gdw, null, g) : null, x!.requiresGrad ? convInputGrad(gy!, gdw, g) : null],
    (gdb, { inputs: [gy] }) => [gy!.requiresGrad ? expand(reshape(gdb, [1, gdb.shape[0]!, 1, 1]), gy!.shape) : null, null],
  ],
});

/** The CPU reference's input gradient into dx. */
function cpuInputGrad(gy: Tensor, w: Tensor, dx: Tensor, g: ConvGeom): void {
  cpuData(dx).set(cpuImplicit('dx', g, gy.shape[0]!, w.shape[1]!, w.shape[0]!, null, cpuContiguous(w), cpuContiguous(gy), dx.size));
}

/** The CPU reference's weight gradient into dw and, when given, the bias gradient into db. */
function cpuWeightBiasGrad(gy: Tensor, x: Tensor, dw: Tensor, db: Tensor | null, g: ConvGeom): void {
  const [N, Cout] = gy.shape as [number, number];
  cpuData(dw).set(cpuImplicit('dw', g, N, x.shape[1]!, Cout, cpuContiguous(x), null, cpuContiguous(gy), dw.size));
  if (!db) return;
  const ys = cpuContiguous(gy);
  const L = g.Hb * g.Wb;
  const acc = new Float64Array(Cout);
  for (let i = 0; i < ys.length; i++) acc[Math.floor(i / L) % Cout]! += ys[i]!;
  cpuData(db).set(acc);
}

/**
 * The whole backward of a convolution whose input and weight both need gradients, one op:
 * [dx, dw] (+ db with `bias`) from gy, x, w, where Winograd plans both (four dispatches instead
 * of six: winogradBackward) and on the CPU reference. Each output's gradients are those of the op
 * that computes it alone (convInputGrad, convWeightGrad, the bias sum).
 */
const convBackwardOp = defineOp<ImplicitAttrs & { bias: boolean }>({
  name: 'conv_backward',
  outputs: ([gy, x, w], { g, bias }) => {
    checkTrio('conv2dBackward', g, { gy, x, w });
    const [N, C, Cout] = [x!.shape[0]!, x!.shape[1]!, w!.shape[0]!];
    return [
      { shape: [N, C, g.H, g.W], dtype: 'f32', name: 'conv2dInputGrad' },
      { shape: [Cout, C, g.kh, g.kw], dtype: 'f32', name: 'conv2dWeightGrad' },
      ...(bias ? [{ shape: [Cout], dtype: 'f32' as const, name: 'conv2dBiasGrad' }] : []),
    ];
  },
  kernels: {
    cpu: (_b, { inputs: [gy, x, w], outputs: [dx, dw, db], attrs: { g } }) => {
      cpuInputGrad(gy!, w!, dx!, g);
      cpuWeightBiasGrad(gy!, x!, dw!, db ?? null, g);
    },
    webgpu: (gpu, { inputs: [gy, x, w], outputs: [dx, dw, db], attrs: { g, kernel } }) => {
      if (kernel?.kernel !== 'winograd') throw new Error(`conv2dBackward: needs the Winograd kernel, the plan has ${kernel?.kernel ?? 'none'}`);
      convImplicitCounters.dx++;
      convImplicitCounters.dw++;
      convImplicitCounters.winograd += 2;
      convImplicitCounters.backward++;
      winogradBackward(gpu, kernel.m, gy!, x!, w!, dx!, dw!, db ?? null, g);
    },
  },
  grad: [
    (gdx, { inputs: [gy, , w], attrs: { g } }) => [gy!.requiresGrad ? convForward(gdx, w!, null, g) : null, null, w!.requiresGrad ? convWeightGrad(gy!, gdx, g) : null],
    (gdw, { inputs: [gy, x], attrs: { g } }) => [gy!.requiresGrad ? convForward(x!, gdw, null, g) : null, x!.requiresGrad ? convInputGrad(gy!, gdw, g) : null, null],
    (gdb, { inputs: [gy] }) => [gy!.requiresGrad ? expand(reshape(gdb, [1, gdb.shape[0]!, 1, 1]), gy!.shape) : null, null, null],
  ],
});

/**
 * [dx, dw, db | null]: both gradients of conv(x, w) (+ b when `bias`) from gy. One op where the
 * plans allow it (Winograd for both, with the same tile; the CPU reference), else the separate ops.
 */
export function convBackward(gy: Tensor, x: Tensor, w: Tensor, g: ConvGeom, bias: boolean): [Tensor, Tensor, Tensor | null] {
  const [Cout, C] = w.shape as [number, number];
  const pdx = planConv('conv2dInputGrad', { x: gy, C, Cout, groups: 1, g });
  const pdw = planConv('conv2dWeightGrad', { x: gy, C, Cout, groups: 1, g });
  const both = pdx.route === 'implicit' && ((pdx.kernel === null && pdw.kernel === null) || (pdx.kernel?.kernel === 'winograd' && pdw.kernel?.kernel === 'winograd' && pdx.kernel.m === pdw.kernel.m));
  if (both) {
    const [dx, dw, db] = convBackwardOp([gy, x, w], { g, kernel: pdw.kernel, bias });
    return [dx!, dw!, db ?? null];
  }
  const dx = convInputGrad(gy, w, g);
  if (!bias) return [dx, convWeightGrad(gy, x, g), null];
  const [dw, db] = convWeightBiasGrad(gy, x, g);
  return [dx, dw, db];
}

/** The implicit forward with a plan already made (conv2d's implicit route). */
export function implicitForward(x: Tensor, w: Tensor, b: Tensor | null, g: ConvGeom, plan: ConvPlan, residual: Tensor | null = null): Tensor {
  const inputs = b ? [x, w, b] : [x, w];
  if (!residual) return convForwardOp(inputs, { g, kernel: plan.kernel })[0]!;
  // The residual rides in the output kernel where it has one (Winograd; the CPU reference), dense.
  if ((plan.kernel === null || plan.kernel.kernel === 'winograd') && residual.isContiguous) return convForwardOp([...inputs, residual], { g, kernel: plan.kernel, residual: true })[0]!;
  return add(convForwardOp(inputs, { g, kernel: plan.kernel })[0]!, residual);
}

/** y = conv(x, w) + b for groups = 1 with the geometry g (x [N, C, H, W], w [Cout, C, kh, kw]). */
export function convForward(x: Tensor, w: Tensor, b: Tensor | null, g: ConvGeom): Tensor {
  // The op checks the operands (planning reads only their sizes).
  return implicitForward(x, w, b, g, planConv('convForward', { x, C: x.shape[1]!, Cout: w.shape[0]!, groups: 1, g }));
}

/** dx = the adjoint of conv(., w) applied to gy [N, Cout, Hb, Wb] -> [N, C, H, W]. */
export function convInputGrad(gy: Tensor, w: Tensor, g: ConvGeom): Tensor {
  const op = 'conv2dInputGrad';
  const [Cout, C] = w.shape as [number, number];
  const plan = planConv(op, { x: gy, C, Cout, groups: 1, g });
  if (plan.route === 'implicit') return convInputGradOp([gy, w], { g, kernel: plan.kernel })[0]!;
  checkTrio(op, g, { gy, w });
  const K = C * g.kh * g.kw;
  const L = g.Hb * g.Wb;
  return composite([gy, w], () => {
    const wt = transpose(reshape(w, [Cout, K]), 0, 1);
    return inBatchChunks(gy, plan.chunk, (gc) => foldGeom(matmul(wt, reshape(gc, [gc.shape[0]!, Cout, L])), C, g, 'fold', plan.bakeColumns));
  });
}

/** dw[co, c, ki, kj] = sum over images and output pixels of gy * (the matching input tap of x). */
export function convWeightGrad(gy: Tensor, x: Tensor, g: ConvGeom): Tensor {
  const plan = planConv('conv2dWeightGrad', { x: gy, C: x.shape[1]!, Cout: gy.shape[1]!, groups: 1, g });
  return convWeightGradOp([gy, x], { g, kernel: plan.kernel })[0]!;
}

/**
 * [dw, db]: convWeightGrad and the bias gradient sum(gy, [0, 2, 3]), in one op where the plan
 * computes both at once (Winograd, and the CPU reference), else the two ops.
 */
export function convWeightBiasGrad(gy: Tensor, x: Tensor, g: ConvGeom): [Tensor, Tensor] {
  const plan = planConv('conv2dWeightGrad', { x: gy, C: x.shape[1]!, Cout: gy.shape[1]!, groups: 1, g });
  if (plan.kernel === null || plan.kernel.kernel === 'winograd') {
    const [dw, db] = convWeightBiasGradOp([gy, x], { g, kernel: plan.kernel });
    return [dw!, db!];
  }
  return [convWeightGradOp([gy, x], { g, kernel: plan.kernel })[0]!, sum(gy, [0, 2, 3])];
}
