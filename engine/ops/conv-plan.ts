/**
 * How a convolution runs on a device, decided in one place: `planConv` reads the backend's
 * tuning (engine/tuning.ts; null fields are decided here from the adapter) and returns the
 * plan that conv2d, its gradients, convTranspose2d and unfold/fold follow: implicit GEMM or
 * columns (unfold/fold + matmul), the batch chunks of the columns, whether kernels compile the
 * geometry in, and the implicit kernel's family and block shapes.
 */
import type { Backend } from '../backend.js';
import { fmtShape } from '../shape.js';
import type { Tensor } from '../tensor.js';
import { isWebGPU, type WebGPUBackend } from '../webgpu/backend.js';
import type { ConvTuning } from '../tuning.js';
import type { ImplicitConvMode } from '../../shaders/conv-implicit.js';
import type { WinogradTile } from '../../shaders/conv-winograd.js';
import { isPointwise, type ConvGeom } from './conv-geometry.js';
import { winogradApplies } from './conv-winograd.js';

/**
 * Kernel and block shapes of the implicit ops, forced (for tests and tuning): 'software'
 * (register-blocked, lavapipe), 'gpu' (workgroup-memory tiles), 'gpu-rows' (the register-blocked
 * kernel with GPU sizes), or fixed sizes: {WG, TM, TN, splits} for the register-blocked kernel,
 * {BM, BN, BK, TM, TN, splits} for the tiled one (splits: how many image ranges the weight
 * gradient is split into).
 */
export type ImplicitPlanOption =
  | 'software'
  | 'gpu'
  | 'gpu-rows'
  | { WG: number; TM: number; TN: number; splits: number }
  | { BM: number; BN: number; BK: number; TM: number; TN: number; splits: number };

/** Kernel and block shape of one implicit kernel dispatch. */
export type ImplicitKernelPlan = (
  /** Register-blocked, no workgroup memory (shaders/conv-implicit.ts implicitRowsKernel). */
  | { kernel: 'rows'; WG: number; TM: number; TN: number; splits: number; subgroups: boolean }
  /** Workgroup-memory tiles (implicitTiledKernel). */
  | { kernel: 'tiled'; BM: number; BN: number; BK: number; TM: number; TN: number; splits: number }
  /** Winograd F(m x m, 3x3): transforms and batched GEMMs (engine/ops/conv-winograd.ts). */
  | { kernel: 'winograd'; m: WinogradTile }
) & {
  /** The geometry compiled into the WGSL as literals. */
  bake: boolean;
};

/**
 * The calls that plan: conv2d (implicit or columns), the implicit forward itself (convForward,
 * also the gradients' gradients), the two gradients, the transposed conv, unfold and fold alone.
 */
export type ConvCall = 'conv2d' | 'convForward' | 'conv2dInputGrad' | 'conv2dWeightGrad' | 'convTranspose2d' | 'unfold' | 'fold';

export interface ConvProblem {
  /** The batched operand (its images are what chunks split): x, or the output gradient. */
  x: Tensor;
  /** Channels of the column matrix: rows are C*kh*kw (the input's for conv2d and its input gradient, the output's for convTranspose2d). */
  C: number;
  /** Output channels (the implicit products' rows). */
  Cout: number;
  groups: number;
  g: ConvGeom;
}

export interface ConvPlan {
  /** 'implicit': one implicit-GEMM kernel (no column tensor); 'columns': unfold/fold + matmul. */
  route: 'implicit' | 'columns';
  /** Images per batch chunk on the columns route (N: all at once). */
  chunk: number;
  /** unfold/fold compile the geometry into the WGSL as literals. */
  bakeColumns: boolean;
  /** The implicit kernel (route 'implicit' on a GPU); null where the op's CPU kernel runs. */
  kernel: ImplicitKernelPlan | null;
}


function convTuning(b: Backend): ConvTuning {
  return b.tuning.conv;
}

/**
 * Whether conv2d (groups 1) takes the implicit ops when the tuning leaves it open: where they were
 * measured faster than unfold + matmul — software adapters (lavapipe: default tokenizer step at
 * batch 8 4331 -> 3587 ms, buffer pool 1632 -> 629 MB; SwiftShader: see defaultFamily). Not yet on
 * hardware GPUs, where no timing exists yet (tune `conv.implicit = true` there for the memory
 * saving), nor on the CPU backend (its columns route is the reference composition).
 */
export function implicitConvByDefault(x: Tensor): boolean {
  const b = x.backend;
  return isWebGPU(b) && b.softwareAdapter !== null;
}

/**
 * Largest column buffer (elements) one conv may materialize. WebGPU caps a storage binding
 * (128 MiB on lavapipe, 2 GiB on an H100): bigger batches are convolved in batch chunks.
 */
export function maxColumnElements(x: Tensor): number {
  const b = x.backend;
  const forced = convTuning(b).maxColumnElements ?? null;
  if (forced !== null) return forced;
  return isWebGPU(b) ? Math.floor(b.device.limits.maxStorageBufferBindingSize / 4) : Infinity;
}

/** Images per chunk when one image needs `perImage` column elements; an error when one does not fit. */
function batchChunk(op: ConvCall, x: Tensor, perImage: number, limit: number): number {
  const N = x.shape[0]!;
  if (N * perImage <= limit) return N;
  if (perImage > limit) {
    throw new Error(`${op}: one image of ${fmtShape(x.shape)} needs ${perImage} column elements (${((perImage * 4) / 2 ** 20).toFixed(0)} MiB), over the device's storage binding limit of ${((limit * 4) / 2 ** 20).toFixed(0)} MiB`);
  }
  return Math.floor(limit / perImage);
}

/** The plan of one call, made once and followed by the code; `op` also names the call in errors. */
export function planConv(op: ConvCall, p: ConvProblem): ConvPlan {
  const b = p.x.backend;
  const t = convTuning(b);
  const gpu = isWebGPU(b) ? b : null;
  const bakeColumns = gpu !== null && (t.bakeGeometry ?? gpu.softwareAdapter !== null);
  const N = p.x.shape[0]!;
  const { g } = p;
  const columns = (chunk: number): ConvPlan => ({ route: 'columns', chunk, bakeColumns, kernel: null });
  const implicit = (mode: ImplicitConvMode): ConvPlan => ({ route: 'implicit', chunk: N, bakeColumns, kernel: gpu && implicitKernel(gpu, t, mode, p) });
  const perImage = p.C * g.kh * g.kw * g.Hb * g.Wb;
  switch (op) {
    case 'unfold':
    case 'fold':
      return columns(N);
    case 'conv2d':
      if (p.groups === 1 && (t.implicit ?? implicitConvByDefault(p.x))) return implicit('fwd');
      return columns(isPointwise(g) ? N : batchChunk(op, p.x, perImage, maxColumnElements(p.x)));
    case 'convForward':
      return implicit('fwd');
    case 'conv2dInputGrad': {
      if (implicitDx(gpu, t, g)) return implicit('dx');
      // One image's columns over the limit: fold cannot run even in batch chunks.
      const limit = maxColumnElements(p.x);
      return perImage > limit ? implicit('dx') : columns(batchChunk(op, p.x, perImage, limit));
    }
    case 'conv2dWeightGrad':
      return implicit('dw');
    case 'convTranspose2d':
      return columns(batchChunk(op, p.x, perImage, maxColumnElements(p.x)));
  }
}

/**
 * Whether the input gradient takes the implicit kernel: always for stride 1. With stride s, the
 * kernel visits every tap for every input pixel though only ~1/s^2 of them hit an output pixel;
 * on lavapipe fold(w^T @ gy) is ~2x faster there (bench/conv-small.ts, 64->64 3x3 stride 2 at
 * 32x32, batch 8: 35 ms implicit vs 16 ms fold), so software adapters keep fold; GPUs take the
 * implicit kernel (no column tensor). The CPU backend runs the op's reference kernel.
 */
function implicitDx(gpu: WebGPUBackend | null, t: ConvTuning, g: ConvGeom): boolean {
  if (g.sh === 1 && g.sw === 1) return true;
  return t.implicitStridedDx ?? (gpu === null || gpu.softwareAdapter === null);
}

/**
 * The kernel family per adapter. SwiftShader runs the lavapipe-tuned 8-lane subgroup kernel ~20x
 * slower than the 64-lane one (test/browser.test.ts's page: 115 s vs 5.4 s; the unfold path 7.8 s).
 */
function defaultFamily(gpu: WebGPUBackend): 'software' | 'gpu' | 'gpu-rows' {
  return gpu.softwareAdapter === 'swiftshader' ? 'gpu-rows' : gpu.softwareAdapter === 'lavapipe' ? 'software' : 'gpu';
}

/**
 * Whether the implicit op runs as Winograd F(m x m, 3x3) (3x3, stride 1, dilation 1, padding <= 2):
 * forced by the tuning, else on software adapters for products big enough that 2.25x fewer
 * multiplies pay for the transforms' passes over memory (measured on lavapipe, see
 * engine/ops/conv-winograd.ts).
 */
function useWinograd(gpu: WebGPUBackend, t: ConvTuning, p: ConvProblem): boolean {
  if (!winogradApplies(p.g)) return false;
  if (t.winograd !== null) return t.winograd;
  if (gpu.softwareAdapter === null) return false;
  const N = p.x.shape[0]!;
  return p.C * p.Cout * N * p.g.Hb * p.g.Wb >= WINOGRAD_MIN_MACS_PER_TAP;
}

/** Multiply-adds per kernel tap (C * Cout * N * Hb * Wb) from which software adapters take Winograd. */
const WINOGRAD_MIN_MACS_PER_TAP = 2 ** 22;

/**
 * Output tile of the Winograd route when the tuning leaves it open: F(4x4) (4x fewer multiplies;
 * errors ~10x F(2x2)'s, ~1e-5 relative at the tokenizer's sizes). On lavapipe, 128->128 3x3 at
 * 32x32, batch 8: forward 63.7 ms direct, 32.5 ms F(2x2), 20.8 ms F(4x4); input gradient 65.2 /
 * 34.1 / 21.5 ms; weight gradient 72.6 / 29.4 / 19.5 ms.
 */
const DEFAULT_WINOGRAD_TILE: WinogradTile = 4;

/**
 * Kernels and block shapes.
 *  - Software adapters (lavapipe): the register-blocked kernel, one SIMD subgroup (8 lanes) per
 *    workgroup, 16 rows x 4 or 8 columns per lane (2 for narrow products), as the matmul 'rows'
 *    kernel; 1..4-row products get exactly their rows. Workgroup memory and barriers only add cost
 *    there (see shaders/matmul.ts).
 *  - GPUs: workgroup-memory tiles, 64 x 64 blocks (32 x 64 for <= 32 rows), BK 16, 4 x 4 (2 x 4)
 *    outputs per invocation, 256 invocations, geometry baked; the weight gradient's reduction over
 *    images split until there are >= 256 workgroups. Not measured on a GPU yet; 'gpu-rows' is the
 *    register-blocked alternative with GPU sizes.
 * The weight gradient's partial sums of the splits are added by a second kernel.
 * The register-blocked kernel reads the geometry from the params by default (see
 * shaders/conv-implicit.ts: no divisions in its inner loops, and a baked pipeline per geometry
 * costs ~3 s of compilation on lavapipe); the tiled one decomposes the reduction index per loaded
 * element and bakes it (GPU compilers are fast).
 */
function implicitKernel(gpu: WebGPUBackend, t: ConvTuning, mode: ImplicitConvMode, p: ConvProblem): ImplicitKernelPlan {
  const { g, C } = p;
  const N = p.x.shape[0]!;
  if (useWinograd(gpu, t, p)) return { kernel: 'winograd', m: t.winogradTile ?? DEFAULT_WINOGRAD_TILE, bake: false };
  // Rows (M) and columns (NC) of the product, and the channels the fwd/dx reduction runs over.
  const M = mode === 'dx' ? C : p.Cout;
  const NC = mode === 'fwd' ? N * g.Hb * g.Wb : mode === 'dx' ? N * g.H * g.W : C * g.kh * g.kw;
  const channels = mode === 'fwd' ? C : p.Cout;
  const forced = t.implicitPlan;
  const bakeBy = (kernel: 'rows' | 'tiled') => t.bakeGeometry ?? kernel === 'tiled';
  const clampSplits = (splits: number) => (mode === 'dw' ? Math.max(1, Math.min(splits, N)) : 1);
  if (typeof forced === 'object' && forced) {
    if ('WG' in forced) return { kernel: 'rows', ...forced, splits: clampSplits(forced.splits), subgroups: false, bake: bakeBy('rows') };
    return { kernel: 'tiled', ...forced, splits: clampSplits(forced.splits), bake: bakeBy('tiled') };
  }
  const family = forced ?? defaultFamily(gpu);
  const dwSplits = (tiles: number, target: number) => clampSplits(mode === 'dw' ? Math.ceil(target / tiles) : 1);
  if (family === 'software') {
    const WG = 8;
    const TM = M <= 4 ? M : 16;
    // (TN 8 vs 4 at 64->64 3x3 on 32x32, batch 8: ~10% faster; 8 x 4 and 8 x 8 blocks were slower.)
    const TN = NC <= 16 ? 2 : NC < 1024 ? 4 : 8;
    const subgroups = gpu.features.has('subgroups') && (mode === 'dw' ? g.Wb : channels) >= WG;
    // dw: few output tiles (M x C*kh*kw is small) leave cores idle: split the images.
    const tiles = Math.ceil(M / TM) * Math.ceil(NC / (WG * TN));
    return { kernel: 'rows', WG, TM, TN, splits: dwSplits(tiles, 16), subgroups, bake: bakeBy('rows') };
  }
  if (family === 'gpu-rows') {
    const WG = 64;
    const TM = M <= 4 ? M : 8;
    // Fewer columns per invocation for small products, to keep >= ~32k invocations in flight.
    const rowTiles = Math.ceil(M / TM);
    const TN = rowTiles * Math.ceil(NC / 4) >= 32768 ? 4 : rowTiles * Math.ceil(NC / 2) >= 16384 ? 2 : 1;
    return { kernel: 'rows', WG, TM, TN, splits: dwSplits(rowTiles * Math.ceil(NC / (WG * TN)), 512), subgroups: false, bake: bakeBy('rows') };
  }
  const small = M <= 32;
  const tl = small ? { BM: 32, BN: 64, BK: 16, TM: 2, TN: 4 } : { BM: 64, BN: 64, BK: 16, TM: 4, TN: 4 };
  const tiles = Math.ceil(M / tl.BM) * Math.ceil(NC / tl.BN);
  return { kernel: 'tiled', ...tl, splits: dwSplits(tiles, 256), bake: bakeBy('tiled') };
}
