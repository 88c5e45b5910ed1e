/**
 * The vector-quantization hot path: for each row of z, the k nearest codebook rows by squared
 * Euclidean distance, found without materializing the [N, K] distance matrix (shaders/vq.ts).
 *
 * Ordering is by (distance, index): ties go to the smaller code index, slot 0 is the argmin, and
 * NaN distances sort last. Distances are direct sums of squares in f32 on the GPU and float64 on
 * the CPU reference.
 *
 * `distances` is differentiable w.r.t. z and the codebook: its gradient is that of the composite
 * sum((z[:, None, :] - codebook[indices])^2, -1) at the selected indices, built from indexSelect /
 * indexAdd (so it has second derivatives too). `indices` is not differentiable. The backward pass
 * reads `indices`: keep it alive until backward() has run.
 */
import { CpuBackend } from '../cpu/backend.js';
import { cpuContiguous, cpuData } from '../cpu/strided.js';
import { record } from '../grad-mode.js';
import { fmtShape, sizeOf } from '../shape.js';
import { Tensor } from '../tensor.js';
import { GpuStorage, ParamBuilder, WebGPUBackend } from '../webgpu/backend.js';
import { argminReduceShader, argminShader, topkShader, VQ_MAX_CANDIDATES, VQ_TILE_ROWS, VQ_WG } from '../../shaders/vq.js';
import { checkSameBackend, elementwise } from './elementwise.js';
import { mul, sub } from './binary.js';
import { indexAdd, indexSelect } from './indexing.js';
import { reshape, unsqueeze } from './movement.js';
import { sum } from './reduce.js';
import { neg } from './unary.js';

export interface NearestCodes {
  /** i32 [..., k]: code indices, nearest first. */
  indices: Tensor;
  /** f32 [..., k]: squared Euclidean distances, ascending. */
  distances: Tensor;
}

/** Largest k the GPU selection kernel sorts (its candidate list lives in workgroup memory). */
export const NEAREST_CODES_MAX_K_GPU = VQ_MAX_CANDIDATES;
/** Largest codebook the GPU selection kernel (k >= 2) handles: indices are selected on 16 bits. */
export const NEAREST_CODES_MAX_CODES_GPU = 65536;

/** Threads per row of the selection kernel (k >= 2). */
const TOPK_WG = 64;

/**
 * Kernel knobs, exposed for tests and benchmarks. `argminTargetWorkgroups`: the k = 1 kernel splits
 * the codebook until about this many workgroups run. `vec4`: let the selection kernel read code rows
 * as vec4 when d and the offsets allow.
 */
export const nearestCodesTuning: { argminTargetWorkgroups: number; vec4: boolean } = {
  argminTargetWorkgroups: 512,
  vec4: true,
};

function nextPow2(n: number): number {
  let p = 1;
  while (p < n) p *= 2;
  return p;
}

/** (da, ia) comes before (db, ib): smaller distance, NaN last, then smaller index. */
function before(da: number, ia: number, db: number, ib: number): boolean {
  const na = Number.isNaN(da);
  const nb = Number.isNaN(db);
  if (na !== nb) return nb;
  if (!na && da !== db) return da < db;
  return ia < ib;
}

/** Float64 reference: per row, all K distances and a bounded max-heap of the best k. */
function nearestCpu(zd: ArrayLike<number>, ed: ArrayLike<number>, N: number, K: number, d: number, k: number, outI: Int32Array | Float32Array | Float64Array, outD: ArrayLike<number> & { [i: number]: number }): void {
  const dist = new Float64Array(K);
  const heap = new Int32Array(k); // indices; root = worst kept candidate
  for (let n = 0; n < N; n++) {
    const zb = n * d;
    for (let c = 0; c < K; c++) {
      const eb = c * d;
      let acc = 0;
      for (let j = 0; j < d; j++) {
        const t = zd[zb + j]! - ed[eb + j]!;
        acc += t * t;
      }
      dist[c] = acc;
    }
    const worse = (a: number, b: number) => before(dist[b]!, b, dist[a]!, a); // a after b
    let size = 0;
    const siftDown = (i: number) => {
      for (;;) {
        const l = 2 * i + 1;
        const r = l + 1;
        let m = i;
        if (l < size && worse(heap[l]!, heap[m]!)) m = l;
        if (r < size && worse(heap[r]!, heap[m]!)) m = r;
        if (m === i) return;
        const t = heap[i]!;
        heap[i] = heap[m]!;
        heap[m] = t;
        i = m;
      }
    };
    for (let c = 0; c < K; c++) {
      if (size < k) {
        let i = size++;
        heap[i] = c;
        while (i > 0) {
          const p = (i - 1) >> 1;
          if (!worse(heap[i]!, heap[p]!)) break;
          const t = heap[i]!;
          heap[i] = heap[p]!;
          heap[p] = t;
          i = p;
        }
      } else if (before(dist[c]!, c, dist[heap[0]!]!, heap[0]!)) {
        heap[0] = c;
        siftDown(0);
      }
    }
    const sorted = Array.from(heap.subarray(0, size)).sort((a, b) => (before(dist[a]!, a, dist[b]!, b) ? -1 : 1));
    for (let s = 0; s < k; s++) {
      outI[n * k + s] = sorted[s]!;
      outD[n * k + s] = dist[sorted[s]!]!;
    }
  }
}

/**
 * The k nearest codebook rows of every row of `z` [..., d] in `codebook` [K, d]:
 * indices i32 [..., k] and squared distances f32 [..., k], ascending (ties: smaller index first).
 */
export function nearestCodes(z: Tensor, codebook: Tensor, k = 1): NearestCodes {
  const op = 'nearestCodes';
  checkSameBackend(op, [z, codebook]);
  if (z.dtype !== 'f32' || codebook.dtype !== 'f32') throw new TypeError(`${op}: expected f32 tensors, got ${z.describe()} and ${codebook.describe()}`);
  if (z.rank < 1 || codebook.rank !== 2 || z.shape[z.rank - 1] !== codebook.shape[1]) {
    throw new Error(`${op}: expected z [..., d] and codebook [K, d], got ${fmtShape(z.shape)} and ${fmtShape(codebook.shape)}`);
  }
  const d = codebook.shape[1]!;
  const K = codebook.shape[0]!;
  const lead = z.shape.slice(0, -1);
  const N = sizeOf(lead);
  if (K === 0) throw new Error(`${op}: the codebook ${fmtShape(codebook.shape)} is empty`);
  if (!Number.isInteger(k) || k < 1 || k > K) throw new RangeError(`${op}: k must be an integer in [1, ${K}] for a codebook of ${K} codes, got ${k}`);
  const backend = z.backend;
  const gpu = backend instanceof CpuBackend ? null : (backend as WebGPUBackend);
  if (gpu && k > 1 && k > NEAREST_CODES_MAX_K_GPU) throw new RangeError(`${op}: k = ${k} exceeds the GPU limit of ${NEAREST_CODES_MAX_K_GPU}`);
  if (gpu && k > 1 && K > NEAREST_CODES_MAX_CODES_GPU) throw new RangeError(`${op}: a codebook of ${K} codes exceeds the GPU limit of ${NEAREST_CODES_MAX_CODES_GPU} for k > 1`);

  const z2 = z.rank === 2 ? z : reshape(z, [N, d]);
  const indices = new Tensor(backend.alloc(N * k, 'i32'), [N, k], 'i32', op);
  const distances = new Tensor(backend.alloc(N * k, 'f32'), [N, k], 'f32', op);
  if (N > 0) {
    if (!gpu) {
      nearestCpu(cpuContiguous(z2), cpuContiguous(codebook), N, K, d, k, cpuData(indices), cpuData(distances));
    } else {
      const copy = (t: Tensor) => (t.isContiguous ? null : elementwise(op, [t], { expr: 'a', cpu: (a) => a, outDtype: 'f32' }));
      const zc = copy(z2);
      const ec = copy(codebook);
      const zt = zc ?? z2;
      const et = ec ?? codebook;
      const p = new ParamBuilder().u32(N, K, d, zt.offset, et.offset, k);
      const buffers = [
        { storage: zt.storage as GpuStorage, access: 'read' as const },
        { storage: et.storage as GpuStorage, access: 'read' as const },
        { storage: indices.storage as GpuStorage, access: 'read_write' as const },
        { storage: distances.storage as GpuStorage, access: 'read_write' as const },
      ];
      if (k === 1) {
        // Split the codebook when there are few row tiles, so enough workgroups run at once; the
        // per-split winners are merged (in split order, so the result does not change) by a second
        // small kernel.
        const rowTiles = Math.ceil(N / VQ_TILE_ROWS);
        const codeTiles = Math.ceil(K / 64);
        const want = Math.min(codeTiles, Math.max(1, Math.floor(nearestCodesTuning.argminTargetWorkgroups / rowTiles)));
        const cps = Math.ceil(codeTiles / want) * 64;
        const splits = Math.ceil(K / cps);
        const pa = new ParamBuilder().u32(N, K, d, zt.offset, et.offset, splits, cps, rowTiles);
        if (splits === 1) {
          gpu.dispatch({ key: 'vq-argmin', code: () => argminShader(false), buffers, params: pa.words, workgroups: rowTiles });
        } else {
          const part = new Tensor(gpu.alloc(splits * N * 2, 'i32'), [splits * N * 2], 'i32', op);
          gpu.dispatch({
            key: 'vq-argmin-split',
            code: () => argminShader(true),
            buffers: [buffers[0]!, buffers[1]!, { storage: part.storage as GpuStorage, access: 'read_write' }],
            params: pa.words,
            workgroups: rowTiles * splits,
          });
          gpu.dispatch({
            key: 'vq-argmin-reduce',
            code: argminReduceShader,
            buffers: [{ storage: part.storage as GpuStorage, access: 'read' }, buffers[2]!, buffers[3]!],
            params: new ParamBuilder().u32(N, splits).words,
            workgroups: Math.ceil(N / VQ_WG),
          });
          part.dispose();
        }
      } else {
        const zShared = d <= 256;
        // Workgroup memory besides the key cache: histograms, candidates, query row, selection state.
        const fixed = 512 * 4 + 64 + VQ_MAX_CANDIDATES * 8 + (zShared ? 1024 : 0) + 64;
        const limit = gpu.device.limits.maxComputeWorkgroupStorageSize;
        // Power-of-two cache sizes keep the number of pipeline variants small.
        const pow2 = Math.max(256, nextPow2(K));
        const cacheK = fixed + pow2 * 4 <= limit ? pow2 : Math.ceil(K / 256) * 256;
        const cached = fixed + cacheK * 4 <= limit;
        const wg = TOPK_WG;
        const vec4 = nearestCodesTuning.vec4 && d % 4 === 0 && et.offset % 4 === 0 && (zShared || zt.offset % 4 === 0);
        gpu.dispatch({
          key: `vq-topk|${cached ? cacheK : 0}|${zShared}|${wg}|${vec4}`,
          code: () => topkShader({ cacheK: cached ? cacheK : 0, zShared, wg, vec4 }),
          buffers,
          params: p.words,
          workgroups: N,
        });
      }
      zc?.dispose();
      ec?.dispose();
    }
  }
  // The returned index tensor (the one the caller keeps alive) is what the backward pass reads.
  const outIndices = z.rank === 2 ? indices : reshape(indices, [...lead, k]);
  if (outIndices !== indices) indices.dispose();
  record(distances, op, [z2, codebook], (g) => {
    const flat = reshape(outIndices, [N * k]);
    const e = reshape(indexSelect(codebook, 0, flat), [N, k, d]);
    const t = mul(sub(unsqueeze(z2, 1), e), unsqueeze(mul(g, 2), 2)); // dL/d(z - e), [N, k, d]
    return [sum(t, 1), indexAdd([K, d], 0, flat, reshape(neg(t), [N * k, d]))];
  });
  if (z.rank === 2) return { indices: outIndices, distances };
  const outDistances = reshape(distances, [...lead, k]);
  // The views share storage; the tape reads only the shape of the [N, k] tensor. z2 is read by the
  // backward pass, so it stays alive when one was recorded.
  distances.dispose();
  if (!outDistances.requiresGrad) z2.dispose();
  return { indices: outIndices, distances: outDistances };
}
