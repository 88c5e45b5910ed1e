/**
 * Scaled dot-product attention, fused: softmax(q k^T * scale + mask) v without writing the score
 * matrix, and its gradient; plus the rotary position embedding op used by nn/layers/rope.ts.
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
 * probabilities from the logsumexp (shaders/attention.ts). Head dims up to 128 on the GPU. The
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
import { CpuBackend, CpuStorage } from '../cpu/backend.js';
import { cpuContiguous, cpuData, forEachStrided } from '../cpu/strided.js';
import { isGradEnabled, noGrad, record } from '../grad-mode.js';
import type { Backend } from '../backend.js';
import { broadcastShapes, broadcastStrides, collapseDims, contiguousStrides, fmtShape, shapesEqual, sizeOf } from '../shape.js';
import { isTensor, Tensor } from '../tensor.js';
import { GpuStorage, ParamBuilder, WebGPUBackend } from '../webgpu/backend.js';
import { ATT_MAX_D, ATT_TILE_FLOATS, ATT_WG, attnBucket, attnDkDvShader, attnDqShader, attnForwardShader, type AttnMaskKind, type AttnShaderSpec } from '../../shaders/attention.js';
import { checkSameBackend, elementwise } from './elementwise.js';
import { add, gt, maximum, mul, ne, where } from './binary.js';
import { tensor } from './creation.js';
import { matmul } from './matmul.js';
import { concat, contiguous, expand, transpose } from './movement.js';
import { max, sum } from './reduce.js';
import { softmax } from './softmax.js';

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

interface Problem {
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

function check(q: Tensor, k: Tensor, v: Tensor, opts: AttentionOptions): Problem {
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
function cpuMask(p: Problem): Float64Array | null {
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
function cpuScores(p: Problem, qd: ArrayLike<number>, kd: ArrayLike<number>, md: Float64Array | null, bh: number, i: number): Float64Array {
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

function cpuForward(p: Problem, q: Tensor, k: Tensor, v: Tensor, o: Tensor, lse: Tensor): void {
  const qd = cpuContiguous(q);
  const kd = cpuContiguous(k);
  const vd = cpuContiguous(v);
  const md = cpuMask(p);
  const od = cpuData(o);
  const ld = (lse.storage as CpuStorage).data;
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
function forEachRow(p: Problem, fn: (bh: number, leadOff: number) => void, o: Tensor): void {
  const nl = p.lead.length;
  if (nl === 0) {
    fn(0, 0);
    return;
  }
  forEachStrided(p.lead, [o.strides.slice(0, nl)], [0], (bh, offs) => fn(bh, offs[0]!));
}

function cpuBackward(p: Problem, q: Tensor, k: Tensor, v: Tensor, o: Tensor, lse: Tensor, g: Tensor): [Tensor, Tensor, Tensor] {
  const qd = cpuContiguous(q);
  const kd = cpuContiguous(k);
  const vd = cpuContiguous(v);
  const od = cpuContiguous(o);
  const gd = cpuContiguous(g);
  const md = cpuMask(p);
  const ld = cpuData(lse);
  const { BH, Lq, Lk, D, Dv, scale } = p;
  const b = q.backend as CpuBackend;
  const dq = new Tensor(b.alloc(q.size, 'f32'), q.shape, 'f32', `${OP}_backward`);
  const dk = new Tensor(b.alloc(k.size, 'f32'), k.shape, 'f32', `${OP}_backward`);
  const dv = new Tensor(b.alloc(v.size, 'f32'), v.shape, 'f32', `${OP}_backward`);
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
  cpuData(dq).set(dqa);
  cpuData(dk).set(dka);
  cpuData(dv).set(dva);
  return [dq, dk, dv];
}

// ---------------------------------------------------------------- GPU

function pow2ceil(n: number): number {
  let p = 1;
  while (p < n) p *= 2;
  return p;
}

function pow2floor(n: number): number {
  let p = 1;
  while (p * 2 <= n) p *= 2;
  return p;
}

export interface AttnPlan {
  /** Threads per row. */
  S: number;
  /** Tile length along the looped axis. */
  BT: number;
  direct: boolean;
}

/**
 * Threads per row and tile: `rows` rows per (batch, head) are spread over workgroups of ATT_WG / S
 * rows. Few rows (decoding: Lq = 1..4) use S = 16..64 threads per row, reading keys straight from
 * global memory (no reuse to gain from staging); otherwise tiles of BT rows of the looped operands
 * (`width` floats each) are staged in workgroup memory and S is at most the tile length.
 */
export function attnPlan(rows: number, width: number): AttnPlan {
  const rp = pow2ceil(Math.min(Math.max(rows, 1), ATT_WG));
  if (rp <= 4) {
    const S = ATT_WG / rp;
    return { S, BT: 4 * S, direct: true };
  }
  const BT = Math.min(64, Math.floor(ATT_TILE_FLOATS / width));
  return { S: Math.min(pow2floor(BT), ATT_WG / rp), BT, direct: false };
}

interface Operand {
  t: Tensor;
  /** Strides of the leading dims (broadcast for the mask). */
  lead: readonly number[];
  sL: number;
  sD: number;
}

function operand(t: Tensor, leadRank: number): Operand {
  return { t, lead: t.strides.slice(0, leadRank), sL: t.strides[t.rank - 2]!, sD: t.strides[t.rank - 1]! };
}

function maskOperand(p: Problem): Operand | null {
  const m = p.mask;
  if (!m) return null;
  const target = [...p.lead, p.Lq, p.Lk];
  const st = broadcastStrides(m.shape, m.strides, target);
  const n = p.lead.length;
  return { t: m, lead: st.slice(0, n), sL: st[n]!, sD: st[n + 1]! };
}

interface GpuLayout {
  NB: number;
  shape: number[];
  /** Per operand: offset + collapsed lead strides padded to 3. */
  words: number[][];
}

/** Collapses the leading dims shared by all operands; null when more than 3 remain. */
function leadLayout(lead: readonly number[], ops: Operand[]): GpuLayout | null {
  const c = collapseDims(lead.length ? lead : [1], ops.map((o) => (lead.length ? [...o.lead] : [0])));
  if (c.shape.length > 3) return null;
  const pad = (a: number[]) => [...a, ...new Array<number>(3 - a.length).fill(0)];
  return { NB: c.shape.length, shape: [...c.shape, ...new Array<number>(3 - c.shape.length).fill(1)], words: ops.map((o, i) => [o.t.offset, ...pad(c.strides[i]!), o.sL, o.sD]) };
}

function baseParams(p: Problem, blocks: number, layout: GpuLayout): ParamBuilder {
  return new ParamBuilder().u32(p.BH, p.Lq, p.Lk, blocks).f32(p.scale).i32(p.Lk - p.Lq).f32(-Infinity).u32(...layout.shape);
}

function maskKind(p: Problem): AttnMaskKind {
  return p.mask ? (p.mask.dtype === 'i32' ? 'i32' : 'f32') : 'none';
}

function specKey(kind: string, s: AttnShaderSpec): string {
  return `attn|${kind}|${s.D}|${s.DV}|${s.S}|${s.BT}|${s.direct}|${s.mask}`;
}

function shaderSpec(p: Problem, plan: AttnPlan): AttnShaderSpec {
  return { D: attnBucket(p.D), DV: attnBucket(p.Dv), S: plan.S, BT: plan.BT, direct: plan.direct, mask: maskKind(p) };
}

/** All parameter words of one dispatch. */
function allParams(p: Problem, blocks: number, layout: GpuLayout): Uint32Array {
  const b = baseParams(p, blocks, layout);
  for (const w of layout.words) b.u32(...w);
  b.u32(p.D, p.Dv, 0, p.causal ? 1 : 0);
  return b.words;
}

const rd = (t: Tensor) => ({ storage: t.storage as GpuStorage, access: 'read' as const });
const rw = (t: Tensor) => ({ storage: t.storage as GpuStorage, access: 'read_write' as const });

function checkGpuDims(p: Problem): void {
  if (p.D > ATT_MAX_D || p.Dv > ATT_MAX_D || p.D < 1 || p.Dv < 1) {
    throw new Error(`${OP}: the WebGPU kernels take head dims 1..${ATT_MAX_D}, got D = ${p.D}, Dv = ${p.Dv}`);
  }
}

/** Output storage [..lead[:-1], Lq, lead[-1], Dv] viewed as [...lead, Lq, Dv]. */
function allocOutput(p: Problem, backend: Backend): Tensor {
  const n = p.lead.length;
  const shape = [...p.lead, p.Lq, p.Dv];
  const storage = backend.alloc(sizeOf(shape), 'f32');
  if (n === 0) return new Tensor(storage, shape, 'f32', OP);
  const phys = [...p.lead.slice(0, n - 1), p.Lq, p.lead[n - 1]!, p.Dv];
  const ps = contiguousStrides(phys);
  const strides = [...ps.slice(0, n - 1), ps[n]!, ps[n - 1]!, ps[n + 1]!];
  return new Tensor(storage, shape, 'f32', OP, strides, 0);
}

/** Contiguous copies (and an expanded contiguous mask) when the leading dims do not collapse to 3. */
function densify(p: Problem, ts: Tensor[]): { p: Problem; ts: Tensor[]; temps: Tensor[] } {
  const temps: Tensor[] = [];
  const out = ts.map((t) => {
    const c = noGrad(() => contiguous(t));
    temps.push(c);
    return c;
  });
  let mask = p.mask;
  if (mask) {
    mask = noGrad(() => contiguous(expand(mask!, [...p.lead, p.Lq, p.Lk])));
    temps.push(mask);
  }
  return { p: { ...p, mask }, ts: out, temps };
}

function gpuForward(gpu: WebGPUBackend, p0: Problem, q0: Tensor, k0: Tensor, v0: Tensor, o: Tensor, lse: Tensor): void {
  checkGpuDims(p0);
  let p = p0;
  let [q, k, v] = [q0, k0, v0];
  const nl = p.lead.length;
  const build = () => [operand(q, nl), operand(k, nl), operand(v, nl), maskOperand(p) ?? operand(q, nl), operand(o, nl)];
  let layout = leadLayout(p.lead, build());
  let temps: Tensor[] = [];
  if (!layout) {
    const d = densify(p, [q, k, v]);
    [q, k, v] = d.ts as [Tensor, Tensor, Tensor];
    p = d.p;
    temps = d.temps;
    layout = leadLayout(p.lead, build())!;
  }
  const plan = attnPlan(p.Lq, p.D + p.Dv);
  const spec = shaderSpec(p, plan);
  const blocks = Math.ceil(p.Lq / (ATT_WG / plan.S));
  gpu.dispatch({
    key: specKey('fwd', spec),
    code: () => attnForwardShader(spec),
    buffers: [rd(q), rd(k), rd(v), ...(p.mask ? [rd(p.mask)] : []), rw(o), rw(lse)],
    params: allParams(p, blocks, layout),
    workgroups: p.BH * blocks,
  });
  for (const t of temps) t.dispose();
}

function gpuBackward(gpu: WebGPUBackend, p0: Problem, q0: Tensor, k0: Tensor, v0: Tensor, o: Tensor, lse: Tensor, g0: Tensor): [Tensor, Tensor, Tensor] {
  let p = p0;
  let [q, k, v, g] = [q0, k0, v0, g0];
  const nl = p.lead.length;
  // delta_i = dO_i . O_i, contiguous [...lead, Lq].
  const delta = noGrad(() => sum(mul(g, o), -1));
  const build = () => [operand(q, nl), operand(k, nl), operand(v, nl), maskOperand(p) ?? operand(q, nl), operand(g, nl)];
  let layout = leadLayout(p.lead, build());
  let temps: Tensor[] = [];
  if (!layout) {
    const d = densify(p, [q, k, v, g]);
    [q, k, v, g] = d.ts as [Tensor, Tensor, Tensor, Tensor];
    p = d.p;
    temps = d.temps;
    layout = leadLayout(p.lead, build())!;
  }
  const { BH, Lq, Lk, D, Dv } = p;
  const dq = new Tensor(gpu.alloc(BH * Lq * D, 'f32'), q0.shape, 'f32', `${OP}_backward`);
  const dkv = gpu.alloc(BH * Lk * (D + Dv), 'f32');
  const dk = new Tensor(dkv, k0.shape, 'f32', `${OP}_backward`);
  const dv = new Tensor(dkv, v0.shape, 'f32', `${OP}_backward`, contiguousStrides(v0.shape), BH * Lk * D);
  const maskBuf = p.mask ? [rd(p.mask)] : [];
  {
    const pq = attnPlan(Lq, D + Dv);
    const sq = shaderSpec(p, pq);
    const bq = Math.ceil(Lq / (ATT_WG / pq.S));
    gpu.dispatch({
      key: specKey('dq', sq),
      code: () => attnDqShader(sq),
      buffers: [rd(q), rd(k), rd(v), rd(g), ...maskBuf, rd(lse), rd(delta), rw(dq)],
      params: allParams(p, bq, layout),
      workgroups: BH * bq,
    });
    const pk = attnPlan(Lk, D + Dv + 2);
    const sk = shaderSpec(p, pk);
    const bk = Math.ceil(Lk / (ATT_WG / pk.S));
    gpu.dispatch({
      key: specKey('dkdv', sk),
      code: () => attnDkDvShader(sk),
      buffers: [rd(q), rd(k), rd(v), rd(g), ...maskBuf, rd(lse), rd(delta), rw(dk)],
      params: allParams(p, bk, layout),
      workgroups: BH * bk,
    });
  }
  delta.dispose();
  for (const t of temps) t.dispose();
  return [dq, dk, dv];
}

// ---------------------------------------------------------------- the op

function backwardFused(p: Problem, q: Tensor, k: Tensor, v: Tensor, o: Tensor, lse: Tensor, g: Tensor): [Tensor, Tensor, Tensor] {
  checkSameBackend(`${OP} backward`, [q, g]);
  if (g.size === 0 || p.Lq === 0 || p.Lk === 0) {
    // Empty output or nothing to attend: every gradient is zero.
    return [q, k, v].map((t) => elementwise('fill', [], { expr: 's0', cpu: (x) => x, outDtype: 'f32', scalars: [0], into: new Tensor(t.backend.alloc(t.size, 'f32'), t.shape, 'f32', `${OP}_backward`) })) as [Tensor, Tensor, Tensor];
  }
  if (q.backend instanceof CpuBackend) return cpuBackward(p, q, k, v, o, lse, g);
  checkGpuDims(p);
  return gpuBackward(q.backend as WebGPUBackend, p, q, k, v, o, lse, g);
}

/**
 * softmax(q k^T * scale + mask) v, fused (see the file comment for the exact semantics). Returns
 * [..., Lq, Dv]. Differentiable once with respect to q, k and v.
 */
export function scaledDotProductAttention(q: Tensor, k: Tensor, v: Tensor, opts: AttentionOptions = {}): Tensor {
  const p = check(q, k, v, opts);
  const impl = opts.impl ?? 'fused';
  if (impl !== 'fused' && impl !== 'composite' && impl !== 'auto') throw new Error(`${OP}: impl must be 'fused', 'composite' or 'auto', got '${String(impl)}'`);
  if (impl === 'composite' || (impl === 'auto' && attentionAutoImpl(p.BH, p.Lq, p.Lk) === 'composite')) return scaledDotProductAttentionComposite(q, k, v, opts);
  const backend = q.backend;
  const o = allocOutput(p, backend);
  const lse = new Tensor(backend.alloc(p.BH * p.Lq, 'f32'), [...p.lead, p.Lq], 'f32', `${OP}_lse`);
  if (o.size > 0) {
    if (backend instanceof CpuBackend) cpuForward(p, q, k, v, o, lse);
    else gpuForward(backend as WebGPUBackend, p, q, k, v, o, lse);
  }
  const needsGrad = isGradEnabled() && [q, k, v].some((t) => t.requiresGrad);
  if (!needsGrad) {
    lse.dispose();
    return o;
  }
  return record(o, OP, [q, k, v], (g) => {
    const grads = backwardFused(p, q, k, v, o, lse, g);
    for (const t of grads) {
      record(t, `${OP}_backward`, [q, k, v, g], () => {
        throw new Error(
          `${OP}: the fused attention backward is not differentiable (no gradients of gradients); use scaledDotProductAttentionComposite where second derivatives are needed`,
        );
      });
    }
    return grads;
  });
}

/** The additive mask implied by `causal` and `mask` (null when neither), as a tensor broadcastable to [..., Lq, Lk]. */
function additiveMask(p: Problem, backend: Backend): Tensor | null {
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

// ---------------------------------------------------------------- rotary embedding

/**
 * Packs cos / sin tables [..., L, D/2] into the [..., L, D/2, 4] table (cos, sin, -sin, cos) that
 * `rotaryEmbedding` reads.
 */
export function rotaryTable(cos: Tensor, sin: Tensor): Tensor {
  if (!shapesEqual(cos.shape, sin.shape)) throw new Error(`rotary_table: cos ${fmtShape(cos.shape)} and sin ${fmtShape(sin.shape)} differ`);
  return noGrad(() => {
    const c = cos.reshape([...cos.shape, 1]);
    const s = sin.reshape([...sin.shape, 1]);
    const ns = mul(s, -1);
    const out = concat([c, s, ns, c], -1);
    ns.dispose();
    return out;
  });
}

/**
 * Rotary position embedding, interleaved-pair convention (LLaMA / LlamaGen): for each pair
 * (x[2i], x[2i+1]) and angle theta_i of the row's position,
 *   y[2i]   = x[2i] cos - x[2i+1] sin
 *   y[2i+1] = x[2i+1] cos + x[2i] sin.
 * `table` is the packed [..., L, D/2, 4] table from `rotaryTable` (broadcast against x's
 * [..., L, D/2]); `inverse` rotates by -theta (the gradient). Differentiable in x (the table is a
 * constant); the gradient is the inverse rotation, so gradients of gradients work.
 */
export function rotaryEmbedding(x: Tensor, table: Tensor, inverse = false): Tensor {
  const op = 'rotary_embedding';
  checkSameBackend(op, [x, table]);
  if (x.dtype !== 'f32' || table.dtype !== 'f32') throw new TypeError(`${op}: expected f32 tensors, got ${x.describe()} and ${table.describe()}`);
  const D = x.shape[x.rank - 1] ?? 0;
  if (x.rank < 1 || D % 2 !== 0) throw new Error(`${op}: last dim of x must be even, got shape ${fmtShape(x.shape)}`);
  if (table.rank < 2 || table.shape[table.rank - 1] !== 4 || table.shape[table.rank - 2] !== D / 2) {
    throw new Error(`${op}: table must be [..., ${D / 2}, 4] (from rotaryTable) for x ${fmtShape(x.shape)}, got ${fmtShape(table.shape)}`);
  }
  const half = [...x.shape.slice(0, -1), D / 2];
  const tLead = table.shape.slice(0, -1);
  let ok = tLead.length <= half.length;
  if (ok) {
    try {
      ok = shapesEqual(broadcastShapes(tLead, half, op), half);
    } catch {
      ok = false;
    }
  }
  if (!ok) throw new Error(`${op}: table ${fmtShape(table.shape)} does not broadcast to x ${fmtShape(x.shape)} (pairs ${fmtShape(half)})`);
  const shape = [...half, 2];
  const sD = x.strides[x.rank - 1]!;
  const xs = [...x.strides.slice(0, -1), 2 * sD, 0];
  const xa = new Tensor(x.storage, shape, 'f32', op, xs, x.offset);
  const xb = new Tensor(x.storage, shape, 'f32', op, xs, x.offset + sD);
  const tb = broadcastStrides(tLead, table.strides.slice(0, -1), half);
  const tl = table.strides[table.rank - 1]!;
  // Forward: A = (cos, sin) at 0/1, B = (-sin, cos) at 2/3. Inverse: A = (cos, -sin) at 0/2, B = (sin, cos) at 1/3.
  const A = new Tensor(table.storage, shape, 'f32', op, [...tb, inverse ? 2 * tl : tl], table.offset);
  const B = new Tensor(table.storage, shape, 'f32', op, [...tb, inverse ? 2 * tl : tl], table.offset + (inverse ? tl : 2 * tl));
  const y2 = elementwise(op, [xa, xb, A, B], { expr: 'a * c + b * d', cpu: (a, b, c, d) => a * c + b * d, outDtype: 'f32' });
  for (const t of [xa, xb, A, B]) t.dispose();
  const y = new Tensor(y2.storage, x.shape, 'f32', op);
  y2.dispose();
  return record(y, op, [x], (g) => [rotaryEmbedding(g, table, !inverse)]);
}
