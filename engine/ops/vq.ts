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
import { cpuData } from '../cpu/strided.js';
import { checkSameBackend, defineOp } from '../op.js';
import { fmtShape } from '../shape.js';
import type { Tensor } from '../tensor.js';
import { argminKernel, argminReduceKernel, topkKernel, VQ_MAX_CANDIDATES, VQ_TILE_ROWS, VQ_WG } from '../../shaders/vq.js';
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

interface NearestAttrs {
  k: number;
}

const ARGMIN = { split: false };
const ARGMIN_SPLIT = { split: true };

/**
 * Inputs [z [..., d], codebook [K, d]] (read as dense arrays: z as [N, d]); outputs indices i32 and
 * distances f32, both [..., k]. The distances' gradient is that of the composite
 * sum((z[:, None, :] - codebook[indices])^2, -1), so it reads the indices output.
 */
const nearestCodesOp = defineOp<NearestAttrs>({
  name: 'nearest_codes',
  outputs: (inputs, { k }) => {
    const op = 'nearestCodes';
    const [z, codebook] = inputs as [Tensor, Tensor];
    checkSameBackend(op, inputs);
    if (z.dtype !== 'f32' || codebook.dtype !== 'f32') throw new TypeError(`${op}: expected f32 tensors, got ${z.describe()} and ${codebook.describe()}`);
    if (z.rank < 1 || codebook.rank !== 2 || z.shape[z.rank - 1] !== codebook.shape[1]) {
      throw new Error(`${op}: expected z [..., d] and codebook [K, d], got ${fmtShape(z.shape)} and ${fmtShape(codebook.shape)}`);
    }
    const K = codebook.shape[0]!;
    if (K === 0) throw new Error(`${op}: the codebook ${fmtShape(codebook.shape)} is empty`);
    if (!Number.isInteger(k) || k < 1 || k > K) throw new RangeError(`${op}: k must be an integer in [1, ${K}] for a codebook of ${K} codes, got ${k}`);
    // Limits of the GPU selection kernel, checked before anything is allocated.
    if (z.backend.kind === 'webgpu' && k > 1) {
      if (k > NEAREST_CODES_MAX_K_GPU) throw new RangeError(`${op}: k = ${k} exceeds the GPU limit of ${NEAREST_CODES_MAX_K_GPU}`);
      if (K > NEAREST_CODES_MAX_CODES_GPU) throw new RangeError(`${op}: a codebook of ${K} codes exceeds the GPU limit of ${NEAREST_CODES_MAX_CODES_GPU} for k > 1`);
    }
    const shape = [...z.shape.slice(0, -1), k];
    return [
      { shape, dtype: 'i32', name: op },
      { shape, dtype: 'f32', name: op },
    ];
  },
  dense: true,
  kernels: {
    cpu: (_b, { inputs: [z, codebook], outputs: [indices, distances], attrs: { k } }) => {
      const [K, d] = codebook!.shape as [number, number];
      nearestCpu(cpuData(z!), cpuData(codebook!), indices!.size / k, K, d, k, cpuData(indices!), cpuData(distances!));
    },
    webgpu: (gpu, { inputs: [z, cb], outputs: [outI, outD], attrs: { k } }) => {
      const [K, D] = cb!.shape as [number, number];
      const N = outI!.size / k;
      const zOff = z!.offset;
      const cbOff = cb!.offset;
      if (k === 1) {
        // Split the codebook when there are few row tiles, so enough workgroups run at once; the
        // per-split winners are merged (in split order, so the result does not change) by a second
        // small kernel.
        const rowTiles = Math.ceil(N / VQ_TILE_ROWS);
        const codeTiles = Math.ceil(K / 64);
        const want = Math.min(codeTiles, Math.max(1, Math.floor(gpu.tuning.vq.argminTargetWorkgroups / rowTiles)));
        const codesPerSplit = Math.ceil(codeTiles / want) * 64;
        const splits = Math.ceil(K / codesPerSplit);
        const params = { N, K, D, zOff, cbOff, splits, codesPerSplit, rowTiles };
        if (splits === 1) {
          gpu.run(argminKernel, ARGMIN, { params, bindings: { z: z!, cb: cb!, outI: outI!, outD: outD! }, workgroups: rowTiles });
        } else {
          const part = gpu.alloc(splits * N * 2, 'i32');
          gpu.run(argminKernel, ARGMIN_SPLIT, { params, bindings: { z: z!, cb: cb!, part }, workgroups: rowTiles * splits });
          gpu.run(argminReduceKernel, undefined, { params: { N, splits }, bindings: { part, outI: outI!, outD: outD! }, workgroups: Math.ceil(N / VQ_WG) });
          gpu.free(part);
        }
        return;
      }
      const zShared = D <= 256;
      // Workgroup memory besides the key cache: histograms, candidates, query row, selection state.
      const fixed = 512 * 4 + 64 + VQ_MAX_CANDIDATES * 8 + (zShared ? 1024 : 0) + 64;
      const limit = gpu.device.limits.maxComputeWorkgroupStorageSize;
      // Power-of-two cache sizes keep the number of pipeline variants small.
      const pow2 = Math.max(256, nextPow2(K));
      const cacheK = fixed + pow2 * 4 <= limit ? pow2 : Math.ceil(K / 256) * 256;
      const cached = fixed + cacheK * 4 <= limit;
      const vec4 = gpu.tuning.vq.vec4 && D % 4 === 0 && cbOff % 4 === 0 && (zShared || zOff % 4 === 0);
      const bindings: Record<string, Tensor> = vec4 ? { z: z!, cb4: cb!, outI: outI!, outD: outD! } : { z: z!, cb: cb!, outI: outI!, outD: outD! };
      gpu.run(topkKernel, { cacheK: cached ? cacheK : 0, zShared, wg: TOPK_WG, vec4 }, { params: { N, K, D, zOff, cbOff, k }, bindings, workgroups: N });
    },
  },
  grad: [
    null,
    (g, { inputs: [z, codebook], outputs: [indices], attrs: { k } }) => {
      const [K, d] = codebook!.shape as [number, number];
      const N = indices!.size / k;
      const flat = reshape(indices!, [N * k]);
      const e = reshape(indexSelect(codebook!, 0, flat), [N, k, d]);
      const t = mul(sub(unsqueeze(reshape(z!, [N, d]), 1), e), unsqueeze(mul(reshape(g, [N, k]), 2), 2)); // dL/d(z - e), [N, k, d]
      return [reshape(sum(t, 1), z!.shape), indexAdd([K, d], 0, flat, reshape(neg(t), [N * k, d]))];
    },
  ],
});

/**
 * The k nearest codebook rows of every row of `z` [..., d] in `codebook` [K, d]:
 * indices i32 [..., k] and squared distances f32 [..., k], ascending (ties: smaller index first).
 */
export function nearestCodes(z: Tensor, codebook: Tensor, k = 1): NearestCodes {
  const [indices, distances] = nearestCodesOp([z, codebook], { k });
  return { indices: indices!, distances: distances! };
}
