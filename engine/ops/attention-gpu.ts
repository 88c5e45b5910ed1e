/**
 * The WebGPU kernels of fused attention (shaders/attention.ts): how rows map to threads, how the
 * operands' leading dims are addressed, and the forward / backward dispatches.
 */
import { noGrad } from '../grad-mode.js';
import { tidy } from '../scope.js';
import { broadcastStrides, collapseDims } from '../shape.js';
import type { Tensor } from '../tensor.js';
import type { WebGPUBackend } from '../webgpu/backend.js';
import { ATT_MAX_D, ATT_TILE_FLOATS, ATT_WG, attnBucket, attnDkDvKernel, attnDqKernel, attnForwardKernel, type AttnMaskKind, type AttnShaderSpec } from '../../shaders/attention.js';
import type { AttentionProblem } from './attention.js';
import { mul } from './binary.js';
import { contiguous, expand } from './movement.js';
import { sum } from './reduce.js';

const OP = 'scaled_dot_product_attention';

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

/** How the kernels address one operand: its offset, leading (batch, head) strides, row and column strides. */
interface Operand {
  off: number;
  /** Strides of the leading dims (broadcast for the mask); collapsed to 3 in a layout. */
  lead: readonly number[];
  sL: number;
  sD: number;
}

function operand(t: Tensor, leadRank: number): Operand {
  return { off: t.offset, lead: t.strides.slice(0, leadRank), sL: t.strides[t.rank - 2]!, sD: t.strides[t.rank - 1]! };
}

function maskOperand(p: AttentionProblem): Operand | null {
  const m = p.mask;
  if (!m) return null;
  const target = [...p.lead, p.Lq, p.Lk];
  const st = broadcastStrides(m.shape, m.strides, target);
  const n = p.lead.length;
  return { off: m.offset, lead: st.slice(0, n), sL: st[n]!, sD: st[n + 1]! };
}

/** The operand records in kernel order: q, k, v, the mask (q again when there is none) and x (o or dO). */
function operands(p: AttentionProblem, q: Tensor, k: Tensor, v: Tensor, x: Tensor): Operand[] {
  const n = p.lead.length;
  return [operand(q, n), operand(k, n), operand(v, n), maskOperand(p) ?? operand(q, n), operand(x, n)];
}

interface GpuLayout {
  /** The collapsed leading shape, padded with 1s to 3 dims. */
  shape: number[];
  /** The operands with their leading strides collapsed and padded (with 0s) to 3. */
  ops: Operand[];
}

/** Collapses the leading dims shared by all operands; null when more than 3 remain. */
function leadLayout(lead: readonly number[], ops: Operand[]): GpuLayout | null {
  const c = collapseDims(lead.length ? lead : [1], ops.map((o) => (lead.length ? [...o.lead] : [0])));
  if (c.shape.length > 3) return null;
  const pad = (a: number[], v: number) => [...a, ...new Array<number>(3 - a.length).fill(v)];
  return { shape: pad(c.shape, 1), ops: ops.map((o, i) => Object.assign({}, o, { lead: pad(c.strides[i]!, 0) })) };
}

function maskKind(p: AttentionProblem): AttnMaskKind {
  return p.mask ? (p.mask.dtype === 'i32' ? 'i32' : 'f32') : 'none';
}

function shaderSpec(p: AttentionProblem, plan: AttnPlan): AttnShaderSpec {
  return { D: attnBucket(p.D), DV: attnBucket(p.Dv), S: plan.S, BT: plan.BT, direct: plan.direct, mask: maskKind(p) };
}

/** The parameters of one dispatch (names as declared in shaders/attention.ts). */
function kernelParams(p: AttentionProblem, blocks: number, l: GpuLayout): Record<string, number | readonly number[]> {
  const [q, k, v, m, x] = l.ops as [Operand, Operand, Operand, Operand, Operand];
  const params: Record<string, number | readonly number[]> = {
    BH: p.BH, Lq: p.Lq, Lk: p.Lk, blocks, scale: p.scale, causal_off: p.Lk - p.Lq, neg_inf: -Infinity, lead: l.shape,
    q_off: q.off, q_lead: q.lead, q_sL: q.sL, q_sD: q.sD,
    k_off: k.off, k_lead: k.lead, k_sL: k.sL, k_sD: k.sD,
    v_off: v.off, v_lead: v.lead, v_sL: v.sL, v_sD: v.sD,
    x_off: x.off, x_lead: x.lead, x_sL: x.sL, x_sD: x.sD,
    D: p.D, Dv: p.Dv, zero: 0, causal: p.causal ? 1 : 0,
  };
  if (p.mask) Object.assign(params, { m_off: m.off, m_lead: m.lead, m_sL: m.sL, m_sD: m.sD });
  return params;
}

export function checkGpuDims(p: AttentionProblem): void {
  if (p.D > ATT_MAX_D || p.Dv > ATT_MAX_D || p.D < 1 || p.Dv < 1) {
    throw new Error(`${OP}: the WebGPU kernels take head dims 1..${ATT_MAX_D}, got D = ${p.D}, Dv = ${p.Dv}`);
  }
}

/**
 * Contiguous copies (and an expanded contiguous mask) for leading dims that do not collapse to 3;
 * call inside `temporaries`.
 */
function densify(p: AttentionProblem, ts: Tensor[]): { p: AttentionProblem; ts: Tensor[] } {
  const mask = p.mask && contiguous(expand(p.mask, [...p.lead, p.Lq, p.Lk]));
  return { p: Object.assign({}, p, { mask }), ts: ts.map((t) => contiguous(t)) };
}

/** Runs `fn`, freeing the tensors it creates (none of them is recorded). */
function temporaries(fn: () => void): void {
  noGrad(() => tidy(fn));
}

/** o (a strided view) and lse [BH, Lq] from q, k, v (and the problem's mask). */
export function gpuForward(gpu: WebGPUBackend, p: AttentionProblem, q: Tensor, k: Tensor, v: Tensor, o: Tensor, lse: Tensor): void {
  checkGpuDims(p);
  const layout = leadLayout(p.lead, operands(p, q, k, v, o));
  if (layout) return dispatchForward(gpu, p, q, k, v, o, lse, layout);
  temporaries(() => {
    const d = densify(p, [q, k, v]);
    const [qd, kd, vd] = d.ts as [Tensor, Tensor, Tensor];
    dispatchForward(gpu, d.p, qd, kd, vd, o, lse, leadLayout(d.p.lead, operands(d.p, qd, kd, vd, o))!);
  });
}

function dispatchForward(gpu: WebGPUBackend, p: AttentionProblem, q: Tensor, k: Tensor, v: Tensor, o: Tensor, lse: Tensor, layout: GpuLayout): void {
  const plan = attnPlan(p.Lq, p.D + p.Dv);
  const blocks = Math.ceil(p.Lq / (ATT_WG / plan.S));
  const bindings: Record<string, Tensor> = p.mask ? { Q: q, K: k, V: v, M: p.mask, O: o, LSE: lse } : { Q: q, K: k, V: v, O: o, LSE: lse };
  gpu.run(attnForwardKernel, shaderSpec(p, plan), { params: kernelParams(p, blocks, layout), bindings, workgroups: p.BH * blocks });
}

/**
 * dq (contiguous) and dk / dv (views of one buffer: dk at 0, dv after it) from the forward's
 * inputs, its output o and logsumexp, and the output gradient g.
 */
export function gpuBackward(gpu: WebGPUBackend, p0: AttentionProblem, q0: Tensor, k0: Tensor, v0: Tensor, o: Tensor, lse: Tensor, g0: Tensor, dq: Tensor, dk: Tensor): void {
  checkGpuDims(p0);
  temporaries(() => {
    let p = p0;
    let [q, k, v, g] = [q0, k0, v0, g0];
    // delta_i = dO_i . O_i, contiguous [...lead, Lq].
    const delta = sum(mul(g, o), -1);
    let layout = leadLayout(p.lead, operands(p, q, k, v, g));
    if (!layout) {
      const d = densify(p, [q, k, v, g]);
      [q, k, v, g] = d.ts as [Tensor, Tensor, Tensor, Tensor];
      p = d.p;
      layout = leadLayout(p.lead, operands(p, q, k, v, g))!;
    }
    const { BH, Lq, Lk, D, Dv } = p;
    const reads: Record<string, Tensor> = p.mask ? { Q: q, K: k, V: v, DO: g, M: p.mask, LSE: lse, DELTA: delta } : { Q: q, K: k, V: v, DO: g, LSE: lse, DELTA: delta };
    const pq = attnPlan(Lq, D + Dv);
    const bq = Math.ceil(Lq / (ATT_WG / pq.S));
    gpu.run(attnDqKernel, shaderSpec(p, pq), { params: kernelParams(p, bq, layout), bindings: Object.assign({}, reads, { DQ: dq }), workgroups: BH * bq });
    const pk = attnPlan(Lk, D + Dv + 2);
    const bk = Math.ceil(Lk / (ATT_WG / pk.S));
    gpu.run(attnDkDvKernel, shaderSpec(p, pk), { params: kernelParams(p, bk, layout), bindings: Object.assign({}, reads, { DKV: dk }), workgroups: BH * bk });
  });
}
