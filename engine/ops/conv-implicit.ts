/**
 * Implicit-GEMM convolution ops (groups = 1): the classic trio
 *   convForward(x, w, b)   y  = conv(x, w) + b                  [N, Cout, Hb, Wb]
 *   convInputGrad(gy, w)   dx = conv^T(gy, w)  (adjoint in x)   [N, C, H, W]
 *   convWeightGrad(gy, x)  dw = sum_n gy (x) unfold(x)          [Cout, C, kh, kw]
 * Each is linear in each argument and the gradients of each are the other two:
 *   forward:      dx = convInputGrad(gy, w),  dw = convWeightGrad(gy, x),  db = sum(gy, [0, 2, 3])
 *   input grad:   d gy = convForward(g, w),   d w = convWeightGrad(gy, g)
 *   weight grad:  d gy = convForward(x, g),   d x = convInputGrad(gy, g)
 * so grad-of-grad works to any order. On the GPU each op is one kernel of
 * shaders/conv-implicit.ts reading its operands in place (no unfolded column tensor); the CPU
 * backend (the reference) computes the same values through unfold/fold + matmul. The strided input
 * gradient may also use fold(w^T @ gy) on the GPU (`convKernelOptions.implicitStridedDx`).
 */
import { CpuBackend } from '../cpu/backend.js';
import { noGrad, record } from '../grad-mode.js';
import { fmtShape } from '../shape.js';
import { Tensor } from '../tensor.js';
import { GpuStorage, ParamBuilder, WebGPUBackend } from '../webgpu/backend.js';
import { implicitConvShader, implicitConvTiledShader, type ImplicitConvMode } from '../../shaders/conv-implicit.js';
import { add } from './binary.js';
import { checkSameBackend } from './elementwise.js';
import { matmul } from './matmul.js';
import { reshape, transpose } from './movement.js';
import { sum } from './reduce.js';
import { convKernelOptions, foldGeom, inBatchChunks, maxColumnElements, unfoldGeom, type ConvGeom } from './conv.js';

/** GPU dispatches of the implicit kernels per mode (tests check that the path is taken). */
export const convImplicitCounters = { fwd: 0, dx: 0, dw: 0 };

/**
 * The plan family per adapter. SwiftShader runs the lavapipe-tuned 8-lane subgroup kernel ~20x
 * slower than the 64-lane one (test/browser.test.ts's page: 115 s vs 5.4 s; the unfold path 7.8 s).
 */
function defaultFamily(gpu: WebGPUBackend): 'software' | 'gpu' | 'gpu-rows' {
  return gpu.softwareAdapter === 'swiftshader' ? 'gpu-rows' : gpu.softwareAdapter === 'lavapipe' ? 'software' : 'gpu';
}

/**
 * Whether conv2d (groups 1) takes these ops when `convKernelOptions.implicit` is null: where they
 * were measured faster than unfold + matmul — software adapters (lavapipe: default tokenizer step
 * at batch 8 4331 -> 3587 ms, buffer pool 1632 -> 629 MB; SwiftShader: see defaultFamily). Not yet
 * on hardware GPUs, where no timing exists yet (set `convKernelOptions.implicit = true` there for
 * the memory saving), nor on the CPU backend (the reference computes the same composition).
 */
export function implicitConvByDefault(x: Tensor): boolean {
  return x.backend instanceof WebGPUBackend && x.backend.softwareAdapter !== null;
}

/** Kernel and block shape of one implicit kernel dispatch. */
type ImplicitPlan =
  /** Register-blocked, no workgroup memory (shaders/conv-implicit.ts implicitConvShader). */
  | { kernel: 'rows'; WG: number; TM: number; TN: number; splits: number; subgroups: boolean }
  /** Workgroup-memory tiles (implicitConvTiledShader). */
  | { kernel: 'tiled'; BM: number; BN: number; BK: number; TM: number; TN: number; splits: number };

/** Columns (of the output) one workgroup covers. */
const planCols = (p: ImplicitPlan) => (p.kernel === 'rows' ? p.WG * p.TN : p.BN);
const planRows = (p: ImplicitPlan) => (p.kernel === 'rows' ? p.TM : p.BM);

/**
 * Kernels and block shapes.
 *  - Software adapters (lavapipe): the register-blocked kernel, one SIMD subgroup (8 lanes) per
 *    workgroup, 16 rows x 4 or 8 columns per lane (2 for narrow products), as the matmul 'rows'
 *    kernel; 1..4-row products get exactly their rows. Workgroup memory and barriers only add cost
 *    there (see shaders/matmul.ts).
 *  - GPUs: workgroup-memory tiles, 64 x 64 blocks (32 x 64 for <= 32 rows), BK 16, 4 x 4 (2 x 4)
 *    outputs per invocation, 256 invocations, geometry baked; the weight gradient's reduction over
 *    images split until there are >= 256 workgroups. Not measured on a GPU yet (the session that
 *    wrote it had no device time left); 'gpu-rows' is the register-blocked alternative with GPU sizes.
 * The weight gradient's partial sums of the splits are added by a sum over the split dim.
 */
function pickPlan(gpu: WebGPUBackend, mode: ImplicitConvMode, M: number, NC: number, N: number, channels: number, g: ConvGeom): ImplicitPlan {
  const forced = convKernelOptions.implicitPlan;
  const clampSplits = (p: ImplicitPlan): ImplicitPlan => ({ ...p, splits: mode === 'dw' ? Math.max(1, Math.min(p.splits, N)) : 1 });
  if (typeof forced === 'object' && forced) {
    return clampSplits('WG' in forced ? { kernel: 'rows', ...forced, subgroups: false } : { kernel: 'tiled', ...forced });
  }
  const family = forced ?? defaultFamily(gpu);
  const dwSplits = (tiles: number, target: number) => (mode === 'dw' ? Math.ceil(target / tiles) : 1);
  if (family === 'software') {
    const WG = 8;
    const TM = M <= 4 ? M : 16;
    // (TN 8 vs 4 at 64->64 3x3 on 32x32, batch 8: ~10% faster; 8 x 4 and 8 x 8 blocks were slower.)
    const TN = NC <= 16 ? 2 : NC < 1024 ? 4 : 8;
    const subgroups = gpu.features.has('subgroups') && (mode === 'dw' ? g.Wb : channels) >= WG;
    // dw: few output tiles (M x C*kh*kw is small) leave cores idle: split the images.
    const tiles = Math.ceil(M / TM) * Math.ceil(NC / (WG * TN));
    return clampSplits({ kernel: 'rows', WG, TM, TN, splits: dwSplits(tiles, 16), subgroups });
  }
  if (family === 'gpu-rows') {
    const WG = 64;
    const TM = M <= 4 ? M : 8;
    // Fewer columns per invocation for small products, to keep >= ~32k invocations in flight.
    const rowTiles = Math.ceil(M / TM);
    const TN = rowTiles * Math.ceil(NC / 4) >= 32768 ? 4 : rowTiles * Math.ceil(NC / 2) >= 16384 ? 2 : 1;
    return clampSplits({ kernel: 'rows', WG, TM, TN, splits: dwSplits(rowTiles * Math.ceil(NC / (WG * TN)), 512), subgroups: false });
  }
  const small = M <= 32;
  const t = small ? { BM: 32, BN: 64, BK: 16, TM: 2, TN: 4 } : { BM: 64, BN: 64, BK: 16, TM: 4, TN: 4 };
  const tiles = Math.ceil(M / t.BM) * Math.ceil(NC / t.BN);
  return clampSplits({ kernel: 'tiled', ...t, splits: dwSplits(tiles, 256) });
}

function geomWords(N: number, C: number, Cout: number, g: ConvGeom): number[] {
  return [N, C, g.H, g.W, Cout, g.kh, g.kw, g.sh, g.sw, g.ph, g.pw, g.dh, g.dw, g.Hb, g.Wb];
}

/** One implicit kernel: returns its contiguous output of shape `shape` (named `op`). */
function dispatchImplicit(mode: ImplicitConvMode, a: Tensor, b: Tensor, bias: Tensor | null, shape: number[], op: string, N: number, C: number, Cout: number, g: ConvGeom): Tensor {
  const gpu = a.backend as WebGPUBackend;
  const M = mode === 'dx' ? C : Cout;
  const NC = mode === 'fwd' ? N * g.Hb * g.Wb : mode === 'dx' ? N * g.H * g.W : C * g.kh * g.kw;
  const channels = mode === 'fwd' ? C : Cout;
  const plan = pickPlan(gpu, mode, M, NC, N, channels, g);
  const perSplit = Math.ceil(N / plan.splits);
  const splits = Math.ceil(N / perSplit);
  const tilesM = Math.ceil(M / planRows(plan));
  const tilesN = Math.ceil(NC / planCols(plan));
  const words = geomWords(N, C, Cout, g);
  // The register-blocked kernel reads the geometry from the params by default (see
  // shaders/conv-implicit.ts: no divisions in its inner loops, and a baked pipeline per geometry
  // costs ~3 s of compilation on lavapipe); the tiled one decomposes the reduction index per
  // loaded element and bakes it (GPU compilers are fast).
  const bake = convKernelOptions.bakeGeometry ?? plan.kernel === 'tiled';
  const baked = bake ? words.slice(1) : undefined;
  const p = new ParamBuilder()
    .u32(...words.slice(0, 9))
    .i32(g.ph, g.pw)
    .u32(g.dh, g.dw, g.Hb, g.Wb, tilesM, tilesN, perSplit)
    .u32(a.offset, ...a.strides, b.offset, ...b.strides, bias ? bias.offset : 0, bias ? bias.strides[0]! : 0);
  const target = new Tensor(gpu.alloc(splits * M * NC, 'f32'), splits > 1 ? [splits, M, NC] : shape, 'f32', op);
  const buffers = [
    { storage: a.storage as GpuStorage, access: 'read' as const },
    { storage: b.storage as GpuStorage, access: 'read' as const },
    ...(bias ? [{ storage: bias.storage as GpuStorage, access: 'read' as const }] : []),
    { storage: target.storage as GpuStorage, access: 'read_write' as const },
  ];
  const bakeKey = baked ? `|${baked.join(',')}` : '';
  if (plan.kernel === 'rows') {
    const strided = mode === 'dx' && (g.sh > 1 || g.sw > 1);
    const spec = { mode, WG: plan.WG, TM: plan.TM, TN: plan.TN, bias: !!bias, baked, subgroups: plan.subgroups, strided };
    gpu.dispatch({
      key: `conv|implicit|${mode}|rows|${plan.WG}x${plan.TM}x${plan.TN}|${+spec.bias}${+spec.subgroups}${+strided}${bakeKey}`,
      code: () => implicitConvShader(spec),
      buffers,
      params: p.words,
      workgroups: tilesM * tilesN * splits,
    });
  } else {
    const spec = { mode, BM: plan.BM, BN: plan.BN, BK: plan.BK, TM: plan.TM, TN: plan.TN, bias: !!bias, baked };
    gpu.dispatch({
      key: `conv|implicit|${mode}|tiled|${plan.BM}x${plan.BN}x${plan.BK}|${plan.TM}x${plan.TN}|${+spec.bias}${bakeKey}`,
      code: () => implicitConvTiledShader(spec),
      buffers,
      params: p.words,
      workgroups: tilesM * tilesN * splits,
    });
  }
  convImplicitCounters[mode]++;
  if (splits === 1) return target;
  // Sum the split partials (dw on GPUs with few output tiles).
  return noGrad(() => {
    const s = sum(target, 0);
    const r = reshape(s, shape);
    const res = own(r, op);
    for (const t of [target, s, r]) t.dispose();
    return res;
  });
}

const isCpu = (t: Tensor) => t.backend instanceof CpuBackend;

/**
 * Checks the operands of one of the three ops against the geometry (x [N, C, H, W], w [Cout, C,
 * kh, kw], gy [N, Cout, Hb, Wb]); the error names the op and the shapes.
 */
function checkTrio(op: string, g: ConvGeom, parts: { x?: Tensor; w?: Tensor; gy?: Tensor; b?: Tensor | null }): void {
  const ts = Object.values(parts).filter((t): t is Tensor => !!t);
  checkSameBackend(op, ts);
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

/** Moves a no-grad result into a fresh tensor handle owned by the caller (the op's output). */
function own(t: Tensor, op: string): Tensor {
  return new Tensor(t.storage, t.shape, t.dtype, op, t.strides, t.offset);
}

/** y = conv(x, w) + b for groups = 1 with the geometry g (x [N, C, H, W], w [Cout, C, kh, kw]). */
export function convForward(x: Tensor, w: Tensor, b: Tensor | null, g: ConvGeom): Tensor {
  const op = 'conv2d';
  checkTrio(op, g, { x, w, b });
  const [N, C] = x.shape as [number, number];
  const Cout = w.shape[0]!;
  const K = C * g.kh * g.kw;
  const L = g.Hb * g.Wb;
  let y: Tensor;
  if (isCpu(x) || N * Cout * L === 0) {
    y = noGrad(() => {
      const cols = unfoldGeom(x, g, 0);
      const w2 = reshape(w, [Cout, K]);
      const m = matmul(w2, cols);
      const y4 = reshape(m, [N, Cout, g.Hb, g.Wb]);
      let r = y4;
      if (b) {
        const bv = reshape(b, [1, Cout, 1, 1]);
        r = add(y4, bv);
        bv.dispose();
      }
      const res = own(r, op);
      for (const t of [cols, w2, m, y4, r]) t.dispose();
      return res;
    });
  } else {
    y = dispatchImplicit('fwd', w, x, b, [N, Cout, g.Hb, g.Wb], op, N, C, Cout, g);
  }
  return record(y, op, b ? [x, w, b] : [x, w], (gy) => {
    const gx = x.requiresGrad ? convInputGrad(gy, w, g) : null;
    const gw = w.requiresGrad ? convWeightGrad(gy, x, g) : null;
    if (!b) return [gx, gw];
    return [gx, gw, b.requiresGrad ? sum(gy, [0, 2, 3]) : null];
  });
}

/**
 * Whether the input gradient uses the implicit kernel: always for stride 1. With stride s, the
 * kernel visits every tap for every input pixel though only ~1/s^2 of them hit an output pixel;
 * on lavapipe fold(w^T @ gy) is ~2x faster there (bench/conv-small.ts, 64->64 3x3 stride 2 at
 * 32x32, batch 8: 35 ms implicit vs 16 ms fold), so software adapters keep fold; GPUs take the
 * implicit kernel (no column tensor).
 */
function implicitDx(gy: Tensor, C: number, g: ConvGeom): boolean {
  if (g.sh === 1 && g.sw === 1) return true;
  // One image's columns over the binding limit: fold cannot run even in batch chunks.
  if (C * g.kh * g.kw * g.Hb * g.Wb > maxColumnElements(gy)) return true;
  return convKernelOptions.implicitStridedDx ?? (gy.backend as WebGPUBackend).softwareAdapter === null;
}

/** dx = the adjoint of conv(., w) applied to gy [N, Cout, Hb, Wb] -> [N, C, H, W]. */
export function convInputGrad(gy: Tensor, w: Tensor, g: ConvGeom): Tensor {
  const op = 'conv2dInputGrad';
  checkTrio(op, g, { gy, w });
  const [N, Cout] = gy.shape as [number, number];
  const C = w.shape[1]!;
  const K = C * g.kh * g.kw;
  const L = g.Hb * g.Wb;
  let dx: Tensor;
  if (isCpu(gy) || N * C * g.H * g.W === 0 || !implicitDx(gy, C, g)) {
    dx = noGrad(() => {
      const w2 = reshape(w, [Cout, K]);
      const wt = transpose(w2, 0, 1);
      const foldChunk = (gc: Tensor) => {
        const g3 = reshape(gc, [gc.shape[0]!, Cout, L]);
        const cols = matmul(wt, g3);
        const f = foldGeom(cols, C, g);
        g3.dispose();
        cols.dispose();
        return f;
      };
      // implicitDx takes the kernel whenever one image's columns exceed the limit, so chunks fit.
      const r = inBatchChunks(op, gy, K * L, foldChunk) ?? foldChunk(gy);
      const res = own(r, op);
      for (const t of [w2, wt, r]) t.dispose();
      return res;
    });
  } else {
    dx = dispatchImplicit('dx', w, gy, null, [N, C, g.H, g.W], op, N, C, Cout, g);
  }
  return record(dx, op, [gy, w], (gdx) => [gy.requiresGrad ? convForward(gdx, w, null, g) : null, w.requiresGrad ? convWeightGrad(gy, gdx, g) : null]);
}

/** dw[co, c, ki, kj] = sum over images and output pixels of gy * (the matching input tap of x). */
export function convWeightGrad(gy: Tensor, x: Tensor, g: ConvGeom): Tensor {
  const op = 'conv2dWeightGrad';
  checkTrio(op, g, { gy, x });
  const [N, Cout] = gy.shape as [number, number];
  const C = x.shape[1]!;
  const L = g.Hb * g.Wb;
  let dw: Tensor;
  if (isCpu(x) || N * L * Cout * C === 0) {
    dw = noGrad(() => {
      const cols = unfoldGeom(x, g, 0);
      const g3 = reshape(gy, [N, Cout, L]);
      const ct = transpose(cols, 1, 2);
      const m = matmul(g3, ct); // [N, Cout, K]
      const s = sum(m, 0);
      const r = reshape(s, [Cout, C, g.kh, g.kw]);
      const res = own(r, op);
      for (const t of [cols, g3, ct, m, s, r]) t.dispose();
      return res;
    });
  } else {
    dw = dispatchImplicit('dw', gy, x, null, [Cout, C, g.kh, g.kw], op, N, C, Cout, g);
  }
  return record(dw, op, [gy, x], (gdw) => [gy.requiresGrad ? convForward(x, gdw, null, g) : null, x.requiresGrad ? convInputGrad(gy, gdw, g) : null]);
}
