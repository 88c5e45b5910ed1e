/**
 * Scaled dot-product attention, fused: softmax(q k^T * scale + mask) v without writing the score
 * matrix, and its gradient (the rotary position embedding, rotary.ts, is exported from here too).
 *
 * Semantics (torch.nn.functional.scaled_dot_product_attention, with two documented differences):
 *   q [..., Lq, D], k [..., Lk, D], v [..., Lk, Dv] with identical leading dims (no broadcasting
 *   between q/k/v, no grouped-query heads); scale defaults to 1/sqrt(D).
 *   `mask`: f32 additive (-Infinity = blocked) or i32 boolean (nonzero = may attend, like torch's
 *   bool mask), broadcastable to [..., Lq, Lk]. Masks get no gradient (an error if one requires it).
 *   `causal`: query i attends keys j <= i + (Lk - Lq): the mask is aligned to the bottom right, so
 *   with a KV cache (Lq < Lk) the last query sees every key. (torch's is_causal aligns it to the top
 *   left; the two agree when Lq == Lk.)
 *   A query row with no visible key (fully masked, or Lq > Lk under `causal`) outputs 0 and gets
 *   zero gradients, as in FlashAttention (torch's math path gives NaN).
 *   No dropout.
 *
 * GPU: forward kernel with online softmax saving the per-row logsumexp; backward = delta = rowsum(dO
 * * O), then one kernel for dq (over query rows) and one for dk/dv (over key rows), recomputing the
 * probabilities from the logsumexp (attention-gpu.ts, shaders/attention.ts). Head dims up to 128 on the GPU. The
 * output is returned as a [..., Lq, Dv] view of storage laid out [..lead[:-1], Lq, lead[-1], Dv]
 * (for [B, H, L, D] inputs: [B, L, H, D]), so merging heads with permute + reshape costs no copy.
 * CPU: float64 loops (the reference), materializing scores.
 *
 * The backward is itself not differentiable: gradients of gradients through the fused op throw
 * (use `scaledDotProductAttentionComposite` when second derivatives are needed).
 *
 * Performance note (bench/attention.ts): the kernels give one query (or key) row to S threads
 * with per-thread accumulators, which is memory-lean (no [Lq, Lk] tensor) and fastest for
 * decoding, but slower than the tiled-matmul composite for small and medium score matrices
 * (and at D = 128); `impl: 'auto'` picks per call.
 */
import { cpuContiguous, cpuData, forEachStrided } from '../cpu/strided.js';
import { isGradEnabled } from '../grad-mode.js';
import type { Backend } from '../backend.js';
import { checkSameBackend, defineOp, type GradRule } from '../op.js';
import { broadcastShapes, broadcastStrides, contiguousStrides, fmtShape, shapesEqual, sizeOf } from '../shape.js';
import { isTensor, Tensor } from '../tensor.js';
import { gpuBackward, gpuForward } from './attention-gpu.js';
import { elementwise } from './elementwise.js';
import { add, gt, maximum, mul, ne, where } from './binary.js';
import { tensor } from './creation.js';
import { matmul } from './matmul.js';
import { transpose } from './movement.js';
import { max } from './reduce.js';
import { softmax } from './softmax.js';

export { attnPlan, type AttnPlan } from './attention-gpu.js';
export { rotaryEmbedding, rotaryTable } from './rotary.js';

export interface AttentionOptions {
  /** Bottom-right aligned causal mask: query i sees keys j <= i + (Lk - Lq). */
  causal?: boolean;
  /** Score scale (default 1 / sqrt(D)). */
  scale?: number;
  /** f32 additive mask or i32 boolean mask (nonzero = attend), broadcastable to [..., Lq, Lk]. */
  mask?: Tensor | null;
  /**
   * 'fused' (default): the fused kernels. 'composite': scaledDotProductAttentionComposite.
   * 'auto': the composite when the score matrix is small (B*H*Lq*Lk <= ATTENTION_AUTO_MAX_SCORES)
   * and Lq > 4, where the tiled matmul kernels are faster than the fused one-row-per-thread
   * kernels; the fused kernels for decoding (Lq <= 4) and for large score matrices (memory).
   */
  impl?: 'fused' | 'composite' | 'auto';
}

/** Largest score matrix (elements) that impl 'auto' materializes (16 MiB of f32). */
export const ATTENTION_AUTO_MAX_SCORES = 1 << 22;

/** Which implementation impl 'auto' picks for these sizes. */
export function attentionAutoImpl(batchHeads: number, Lq: number, Lk: number): 'fused' | 'composite' {
  return Lq > 4 && batchHeads * Lq * Lk <= ATTENTION_AUTO_MAX_SCORES ? 'composite' : 'fused';
}

/** A checked attention problem: sizes, leading dims and options (the mask is also the op's last input). */
export interface AttentionProblem {
  lead: number[];
  BH: number;
  Lq: number;
  Lk: number;
  D: number;
  Dv: number;
  scale: number;
  causal: boolean;
  mask: Tensor | null;
}

const OP = 'scaled_dot_product_attention';

function check(q: Tensor, k: Tensor, v: Tensor, opts: AttentionOptions): AttentionProblem {
  for (const [n, t] of [['q', q], ['k', k], ['v', v]] as const) {
    if (!isTensor(t)) throw new TypeError(`${OP}: ${n} must be a Tensor`);
    if (t.dtype !== 'f32') throw new TypeError(`${OP}: ${n} must be f32, got dtype ${t.dtype} (${t.describe()})`);
    if (t.rank < 2) throw new Error(`${OP}: ${n} must have shape [..., L, D], got ${fmtShape(t.shape)}`);
  }
  const mask = opts.mask ?? null;
  checkSameBackend(OP, [q, k, v, ...(mask ? [mask] : [])]);
  const shapes = `q ${fmtShape(q.shape)}, k ${fmtShape(k.shape)}, v ${fmtShape(v.shape)}`;
  const lead = q.shape.slice(0, -2);
  if (k.rank !== q.rank || v.rank !== q.rank || !shapesEqual(k.shape.slice(0, -2), lead) || !shapesEqual(v.shape.slice(0, -2), lead)) {
    throw new Error(`${OP}: q, k and v must have the same leading dims (no broadcasting or grouped heads), got ${shapes}`);
  }
  const Lq = q.shape[q.rank - 2]!;
  const D = q.shape[q.rank - 1]!;
  const Lk = k.shape[k.rank - 2]!;
  if (k.shape[k.rank - 1] !== D) throw new Error(`${OP}: q and k head dims differ, got ${shapes}`);
  if (v.shape[v.rank - 2] !== Lk) throw new Error(`${OP}: k and v lengths differ, got ${shapes}`);
  const Dv = v.shape[v.rank - 1]!;
  if (mask) {
    if (mask.dtype !== 'f32' && mask.dtype !== 'i32') throw new TypeError(`${OP}: mask must be f32 (additive) or i32 (boolean), got dtype ${mask.dtype}`);
    const target = [...lead, Lq, Lk];
    let ok = mask.rank <= target.length;
    if (ok) {
      try {
        ok = shapesEqual(broadcastShapes(mask.shape, target, OP), target);
      } catch {
        ok = false;
      }
    }
    if (!ok) throw new Error(`${OP}: mask shape ${fmtShape(mask.shape)} does not broadcast to [..., Lq, Lk] = ${fmtShape(target)}`);
    if (mask.requiresGrad && isGradEnabled()) throw new Error(`${OP}: gradients with respect to the mask are not supported; detach() it`);
  }
  const scale = opts.scale ?? 1 / Math.sqrt(D);
  if (!Number.isFinite(scale)) throw new RangeError(`${OP}: scale must be finite, got ${scale} (head dim ${D})`);
  return { lead, BH: sizeOf(lead), Lq, Lk, D, Dv, scale, causal: !!opts.causal, mask };
}

// ---------------------------------------------------------------- CPU reference (float64 loops)

/** Mask values expanded to [BH, Lq, Lk] (additive; i32 converted). */
function cpuMask(p: AttentionProblem): Float64Array | null {
  if (!p.mask) return null;
  const m = p.mask;
  const shape = [...p.lead, p.Lq, p.Lk];
  const out = new Float64Array(sizeOf(shape));
  const src = cpuData(m);
  const isBool = m.dtype === 'i32';
  forEachStrided(shape, [broadcastStrides(m.shape, m.strides, shape)], [m.offset], (i, o) => {
    const val = src[o[0]!]!;
    out[i] = isBool ? (val !== 0 ? 0 : -Infinity) : val;
  });
  return out;
}

/** Scores of row i of problem bh (length = visible keys). */
function cpuScores(p: AttentionProblem, qd: ArrayLike<number>, kd: ArrayLike<number>, md: Float64Array | null, bh: number, i: number): Float64Array {
  const { Lq, Lk, D } = p;
  const lim = p.causal ? Math.max(0, Math.min(Lk, i + (Lk - Lq) + 1)) : Lk;
  const s = new Float64Array(lim);
  const qo = (bh * Lq + i) * D;
  for (let j = 0; j < lim; j++) {
    const ko = (bh * Lk + j) * D;
    let dot = 0;
    for (let d = 0; d < D; d++) dot += qd[qo + d]! * kd[ko + d]!;
    s[j] = dot * p.scale + (md ? md[(bh * Lq + i) * Lk + j]! : 0);
  }
  return s;
}

function cpuForward(p: AttentionProblem, q: Tensor, k: Tensor, v: Tensor, o: Tensor, lse: Tensor): void {
  const qd = cpuContiguous(q);
  const kd = cpuContiguous(k);
  const vd = cpuContiguous(v);
  const md = cpuMask(p);
  const od = cpuData(o);
  const ld = cpuData(lse);
  const { Lq, Lk, Dv } = p;
  const oStr = o.strides;
  const r = o.rank;
  forEachRow(p, (bh, leadOff) => {
    for (let i = 0; i < Lq; i++) {
      const s = cpuScores(p, qd, kd, md, bh, i);
      let m = -Infinity;
      for (const x of s) m = Math.max(m, x);
      const ob = o.offset + leadOff + i * oStr[r - 2]!;
      if (m === -Infinity) {
        for (let d = 0; d < Dv; d++) od[ob + d * oStr[r - 1]!] = 0;
        ld[bh * Lq + i] = -Infinity;
        continue;
      }
      let l = 0;
      const acc = new Float64Array(Dv);
      for (let j = 0; j < s.length; j++) {
        const e = Math.exp(s[j]! - m);
        l += e;
        const vo = (bh * Lk + j) * Dv;
        for (let d = 0; d < Dv; d++) acc[d]! += e * vd[vo + d]!;
      }
      for (let d = 0; d < Dv; d++) od[ob + d * oStr[r - 1]!] = acc[d]! / l;
      ld[bh * Lq + i] = m + Math.log(l);
    }
  }, o);
}

/** Calls fn(bh, offset of that leading index in `o`) for every leading index in row-major order. */
function forEachRow(p: AttentionProblem, fn: (bh: number, leadOff: number) => void, o: Tensor): void {
  const nl = p.lead.length;
  if (nl === 0) {
    fn(0, 0);
    return;
  }
  forEachStrided(p.lead, [o.strides.slice(0, nl)], [0], (bh, offs) => fn(bh, offs[0]!));
}

function cpuBackward(p: AttentionProblem, q: Tensor, k: Tensor, v: Tensor, o: Tensor, lse: Tensor, g: Tensor, dq: Tensor, dk: Tensor, dv: Tensor): void {
  const qd = cpuContiguous(q);
  const kd = cpuContiguous(k);
  const vd = cpuContiguous(v);
  const od = cpuContiguous(o);
  const gd = cpuContiguous(g);
  const md = cpuMask(p);
  const ld = cpuData(lse);
  const { BH, Lq, Lk, D, Dv, scale } = p;
  // Accumulate in float64 whatever the storage precision, then store.
  const dqa = new Float64Array(q.size);
  const dka = new Float64Array(k.size);
  const dva = new Float64Array(v.size);
  for (let bh = 0; bh < BH; bh++) {
    for (let i = 0; i < Lq; i++) {
      const lse_i = ld[bh * Lq + i]!;
      if (lse_i === -Infinity) continue;
      const s = cpuScores(p, qd, kd, md, bh, i);
      const go = (bh * Lq + i) * Dv;
      let delta = 0;
      for (let d = 0; d < Dv; d++) delta += gd[go + d]! * od[go + d]!;
      const qo = (bh * Lq + i) * D;
      for (let j = 0; j < s.length; j++) {
        const pr = Math.exp(s[j]! - lse_i);
        if (pr === 0) continue;
        const vo = (bh * Lk + j) * Dv;
        const ko = (bh * Lk + j) * D;
        let dp = 0;
        for (let d = 0; d < Dv; d++) {
          dp += gd[go + d]! * vd[vo + d]!;
          dva[vo + d]! += pr * gd[go + d]!;
        }
        const ds = pr * (dp - delta) * scale;
        for (let d = 0; d < D; d++) {
          dqa[qo + d]! += ds * kd[ko + d]!;
          dka[ko + d]! += ds * qd[qo + d]!;
        }
      }
    }
  }
  cpuData(dq).set(dqa, dq.offset);
  cpuData(dk).set(dka, dk.offset);
  cpuData(dv).set(dva, dv.offset);
}

// ---------------------------------------------------------------- the ops

/** Output storage [..lead[:-1], Lq, lead[-1], Dv] viewed as [...lead, Lq, Dv]. */
function allocOutput(p: AttentionProblem, backend: Backend): Tensor {
  const n = p.lead.length;
  const shape = [...p.lead, p.Lq, p.Dv];
  const storage = backend.alloc(sizeOf(shape), 'f32');
  if (n === 0) return new Tensor(storage, shape, 'f32', OP);
  const phys = [...p.lead.slice(0, n - 1), p.Lq, p.lead[n - 1]!, p.Dv];
  const ps = contiguousStrides(phys);
  const strides = [...ps.slice(0, n - 1), ps[n]!, ps[n - 1]!, ps[n + 1]!];
  return new Tensor(storage, shape, 'f32', OP, strides, 0);
}

const LSE = `${OP}_lse`;
const BACKWARD = `${OP}_backward`;

/**
 * The fused forward: inputs [q, k, v, mask?], outputs [o, lse] with o the strided view of
 * `allocOutput` and lse the per-row logsumexp [...lead, Lq] that the backward reads. The
 * attributes are the problem `check` derived from the inputs (the public function checks first:
 * it chooses the implementation from the sizes).
 */
const attentionOp = defineOp<AttentionProblem>({
  name: OP,
  outputs: ([q], p) => [{ into: allocOutput(p, q!.backend) }, { shape: [...p.lead, p.Lq], dtype: 'f32', name: LSE }],
  // An empty o (Dv = 0, which the GPU kernels cannot take) leaves lse unwritten: the backward of
  // an empty output never reads it.
  kernels: {
    cpu: (_cpu, { inputs: [q, k, v], outputs: [o, lse], attrs: p }) => {
      if (o!.size > 0) cpuForward(p, q!, k!, v!, o!, lse!);
    },
    webgpu: (gpu, { inputs: [q, k, v], outputs: [o, lse], attrs: p }) => {
      if (o!.size > 0) gpuForward(gpu, p, q!, k!, v!, o!, lse!);
    },
  },
  grad: (g, { inputs: [q, k, v, mask], outputs: [o, lse], attrs: p }) => [...attentionBackwardOp(mask ? [q!, k!, v!, g, o!, lse!, mask] : [q!, k!, v!, g, o!, lse!], p), null],
  nondiff: [3],
});

const notDifferentiable: GradRule<AttentionProblem> = () => {
  throw new Error(`${OP}: the fused attention backward is not differentiable (no gradients of gradients); use scaledDotProductAttentionComposite where second derivatives are needed`);
};

/** No output, or no key or query: every gradient is zero. */
function nothingToAttend(p: AttentionProblem, g: Tensor): boolean {
  return g.size === 0 || p.Lq === 0 || p.Lk === 0;
}

function zeroFill(ts: readonly Tensor[]): void {
  for (const t of ts) elementwise('fill', [], { expr: 's0', cpu: (x) => x, outDtype: 'f32', scalars: [0], into: t });
}

/**
 * The fused backward: inputs [q, k, v, dO, o, lse, mask?], outputs [dq, dk, dv]; dk and dv are
 * views of one buffer (the GPU's dk/dv kernel writes both). Its outputs are not differentiable.
 */
const attentionBackwardOp = defineOp<AttentionProblem>({
  name: BACKWARD,
  outputs: ([q, k, v, g], p) => {
    checkSameBackend(`${OP} backward`, [q!, g!]);
    const dkv = q!.backend.alloc(p.BH * p.Lk * (p.D + p.Dv), 'f32');
    return [
      { shape: q!.shape, dtype: 'f32' },
      { into: new Tensor(dkv, k!.shape, 'f32', BACKWARD) },
      { into: new Tensor(dkv, v!.shape, 'f32', BACKWARD, contiguousStrides(v!.shape), p.BH * p.Lk * p.D) },
    ];
  },
  kernels: {
    cpu: (_cpu, { inputs: [q, k, v, g, o, lse], outputs, attrs: p }) => {
      if (nothingToAttend(p, g!)) return zeroFill(outputs);
      cpuBackward(p, q!, k!, v!, o!, lse!, g!, outputs[0]!, outputs[1]!, outputs[2]!);
    },
    webgpu: (gpu, { inputs: [q, k, v, g, o, lse], outputs, attrs: p }) => {
      if (nothingToAttend(p, g!)) return zeroFill(outputs);
      gpuBackward(gpu, p, q!, k!, v!, o!, lse!, g!, outputs[0]!, outputs[1]!);
    },
  },
  grad: [notDifferentiable, notDifferentiable, notDifferentiable],
  nondiff: [4, 5, 6],
});

/**
 * softmax(q k^T * scale + mask) v, fused (see the file comment for the exact semantics). Returns
 * [..., Lq, Dv]. Differentiable once with respect to q, k and v.
 */
export function scaledDotProductAttention(q: Tensor, k: Tensor, v: Tensor, opts: AttentionOptions = {}): Tensor {
  const p = check(q, k, v, opts);
  const impl = opts.impl ?? 'fused';
  if (impl !== 'fused' && impl !== 'composite' && impl !== 'auto') throw new Error(`${OP}: impl must be 'fused', 'composite' or 'auto', got '${String(impl)}'`);
  if (impl === 'composite' || (impl === 'auto' && attentionAutoImpl(p.BH, p.Lq, p.Lk) === 'composite')) return scaledDotProductAttentionComposite(q, k, v, opts);
  const [o, lse] = attentionOp(p.mask ? [q, k, v, p.mask] : [q, k, v], p);
  // Without a recorded gradient nothing reads the logsumexp.
  if (!o!.requiresGrad) lse!.dispose();
  return o!;
}

/** The additive mask implied by `causal` and `mask` (null when neither), as a tensor broadcastable to [..., Lq, Lk]. */
function additiveMask(p: AttentionProblem, backend: Backend): Tensor | null {
  let M: Tensor | null = null;
  if (p.causal) {
    const data = new Float32Array(p.Lq * p.Lk);
    const off = p.Lk - p.Lq;
    for (let i = 0; i < p.Lq; i++) for (let j = 0; j < p.Lk; j++) data[i * p.Lk + j] = j <= i + off ? 0 : -Infinity;
    M = tensor(data, [p.Lq, p.Lk], { backend });
  }
  if (p.mask) {
    const mm = p.mask.dtype === 'i32' ? where(ne(p.mask, 0), 0, -Infinity) : p.mask;
    M = M ? add(M, mm) : mm;
  }
  return M;
}

/**
 * The same function built from differentiable ops (matmul, softmax...): the reference the fused
 * op is tested against, and the path for gradients of gradients. Materializes [..., Lq, Lk].
 */
export function scaledDotProductAttentionComposite(q: Tensor, k: Tensor, v: Tensor, opts: AttentionOptions = {}): Tensor {
  const p = check(q, k, v, opts);
  let s = mul(matmul(q, transpose(k)), p.scale);
  const M = p.Lk > 0 ? additiveMask(p, q.backend) : null;
  if (!M) return matmul(softmax(s, -1), v);
  // Rows with no visible key give 0 (not NaN): clamp -inf to a finite floor and zero those rows.
  const valid = gt(max(M, -1, true), -Infinity);
  s = add(s, maximum(M, -1e30));
  return mul(matmul(softmax(s, -1), v), valid);
}
