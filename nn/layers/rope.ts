/**
 * Rotary position embeddings (RoPE), 1D and 2D, in LlamaGen's convention (FoundationVision/LlamaGen,
 * autoregressive/models/gpt.py: precompute_freqs_cis, precompute_freqs_cis_2d, apply_rotary_emb):
 *
 *  - pairs are interleaved: (x[2i], x[2i+1]) is rotated by angle theta_i(pos):
 *      y[2i] = x[2i] cos - x[2i+1] sin,   y[2i+1] = x[2i+1] cos + x[2i] sin;
 *  - 1D: theta_i(p) = p * base^(-2i / D) for i < D/2;
 *  - 2D, for tokens of an h x w grid in row-major order (p = row * w + col): the first D/4 pairs
 *    (dims 0..D/2-1) rotate by the row, the last D/4 pairs (dims D/2..D-1) by the column, both with
 *    frequencies base^(-2k / (D/2)), k < D/4. D must be a multiple of 4.
 *  - `prefix` tokens (class / condition tokens before the grid) get no rotation (cos 1, sin 0) by
 *    default; prefixMode 'zero' reproduces LlamaGen's table exactly, whose prefix rows are zeros
 *    (so those tokens' q and k become 0).
 *
 * The cos/sin tables are precomputed in float64 and uploaded once per (backend, shape, base) as a
 * packed [len, D/2, 4] table (see engine rotaryTable / rotaryEmbedding). They are shared by every
 * layer using the same settings, live for the process, and are NOT part of the state dict (they are
 * derived from the config, like PyTorch's non-persistent buffers). `offset` selects the rows for
 * KV-cache decoding (token t of the sequence uses row t). Differentiable in x (the gradient is the
 * inverse rotation, itself differentiable).
 */
import * as E from '../../engine/index.js';
import { Module } from '../module.js';

export interface RopeOptions {
  /** Frequency base (default 10000). */
  base?: number;
  backend?: E.Backend;
}

export interface Rope2DOptions extends RopeOptions {
  /** Tokens before the grid (class / condition tokens), default 0. */
  prefix?: number;
  /** 'identity' (default): prefix tokens are not rotated; 'zero': LlamaGen's zero rows. */
  prefixMode?: 'identity' | 'zero';
}

/** Angles [maxLen, D/2] of 1D RoPE: theta[p, i] = p * base^(-2i / D). */
export function rope1dAngles(headDim: number, maxLen: number, base = 10000): Float64Array {
  if (headDim % 2 !== 0 || headDim < 2) throw new Error(`RoPE1D: head dim must be even, got ${headDim}`);
  const half = headDim / 2;
  const out = new Float64Array(maxLen * half);
  for (let p = 0; p < maxLen; p++) for (let i = 0; i < half; i++) out[p * half + i] = p * Math.pow(base, (-2 * i) / headDim);
  return out;
}

/** Angles [h * w, D/2] of 2D RoPE (row-major tokens): first D/4 by row, last D/4 by column. */
export function rope2dAngles(headDim: number, gridH: number, gridW: number, base = 10000): Float64Array {
  if (headDim % 4 !== 0 || headDim < 4) throw new Error(`RoPE2D: head dim must be a multiple of 4, got ${headDim}`);
  const half = headDim / 2;
  const quarter = headDim / 4;
  const out = new Float64Array(gridH * gridW * half);
  for (let r = 0; r < gridH; r++) {
    for (let c = 0; c < gridW; c++) {
      const o = (r * gridW + c) * half;
      for (let k = 0; k < quarter; k++) {
        const f = Math.pow(base, (-2 * k) / half);
        out[o + k] = r * f;
        out[o + quarter + k] = c * f;
      }
    }
  }
  return out;
}

const tableCache = new WeakMap<E.Backend, Map<string, E.Tensor>>();

/** The packed [rows, D/2, 4] table (cos, sin, -sin, cos), cached per backend and key. */
function packedTable(key: string, backend: E.Backend, half: number, rows: number, build: (cos: Float64Array, sin: Float64Array) => void): E.Tensor {
  let m = tableCache.get(backend);
  if (!m) tableCache.set(backend, (m = new Map()));
  const hit = m.get(key);
  if (hit && !hit.isDisposed) return hit;
  const cos = new Float64Array(rows * half);
  const sin = new Float64Array(rows * half);
  build(cos, sin);
  const packed = new Float64Array(rows * half * 4);
  for (let i = 0; i < rows * half; i++) {
    packed[4 * i] = cos[i]!;
    packed[4 * i + 1] = sin[i]!;
    packed[4 * i + 2] = -sin[i]!;
    packed[4 * i + 3] = cos[i]!;
  }
  const t = E.keep(E.tensor(packed, [rows, half, 4], { backend }));
  t.name = `rope table ${key}`;
  m.set(key, t);
  return t;
}

/** Rotates x by precomputed angles; subclasses choose the table. No parameters, nothing in the state dict. */
export class RotaryEmbedding extends Module {
  /** Packed [maxLen, D/2, 4] table (cos, sin, -sin, cos). */
  readonly table: E.Tensor;
  constructor(readonly headDim: number, readonly maxLen: number, key: string, backend: E.Backend, build: (cos: Float64Array, sin: Float64Array) => void) {
    super();
    if (!Number.isInteger(headDim) || headDim < 2 || headDim % 2 !== 0) throw new Error(`${this.constructor.name}: head dim must be a positive even integer, got ${headDim}`);
    if (!Number.isInteger(maxLen) || maxLen < 0) throw new Error(`${this.constructor.name}: invalid table length ${maxLen}`);
    this.table = packedTable(key, backend, headDim / 2, maxLen, build);
  }

  /**
   * Rotates x [..., L, ..., D] where `seqDim` (default -2) is the position axis: row `offset + t`
   * of the table for position t. Use seqDim -3 for [B, L, H, D] layouts.
   */
  apply(x: E.Tensor, opts: { offset?: number; seqDim?: number } = {}): E.Tensor {
    const offset = opts.offset ?? 0;
    const sd = E.normAxis(opts.seqDim ?? -2, x.rank, 'RoPE');
    if (x.shape[x.rank - 1] !== this.headDim) throw new Error(`${this.constructor.name}(${this.headDim}): input last dim must be ${this.headDim}, got shape ${E.fmtShape(x.shape)}`);
    if (sd === x.rank - 1) throw new Error(`${this.constructor.name}: seqDim must not be the head dim`);
    const L = x.shape[sd]!;
    if (!Number.isInteger(offset) || offset < 0 || offset + L > this.maxLen) {
      throw new RangeError(`${this.constructor.name}: positions ${offset}..${offset + L - 1} exceed the table (${this.maxLen} positions)`);
    }
    const rows = this.table.slice([[offset, offset + L]]);
    const between = x.rank - 2 - sd; // dims between the position axis and the head dim
    const t = between > 0 ? rows.reshape([L, ...new Array<number>(between).fill(1), this.headDim / 2, 4]) : rows;
    return E.rotaryEmbedding(x, t);
  }
}

/** 1D RoPE over positions 0..maxLen-1. */
export class RoPE1D extends RotaryEmbedding {
  constructor(headDim: number, maxLen: number, opts: RopeOptions = {}) {
    const base = opts.base ?? 10000;
    const backend = opts.backend ?? E.getBackend();
    super(headDim, maxLen, `1d|${headDim}|${maxLen}|${base}`, backend, (cos, sin) => {
      const a = rope1dAngles(headDim, maxLen, base);
      for (let i = 0; i < a.length; i++) {
        cos[i] = Math.cos(a[i]!);
        sin[i] = Math.sin(a[i]!);
      }
    });
  }
}

/** 2D RoPE over `prefix` unrotated tokens followed by a gridH x gridW grid in row-major order. */
export class RoPE2D extends RotaryEmbedding {
  readonly prefix: number;
  constructor(headDim: number, readonly gridH: number, readonly gridW: number, opts: Rope2DOptions = {}) {
    const base = opts.base ?? 10000;
    const prefix = opts.prefix ?? 0;
    const mode = opts.prefixMode ?? 'identity';
    const backend = opts.backend ?? E.getBackend();
    const half = headDim / 2;
    super(headDim, prefix + gridH * gridW, `2d|${headDim}|${gridH}|${gridW}|${base}|${prefix}|${mode}`, backend, (cos, sin) => {
      const a = rope2dAngles(headDim, gridH, gridW, base);
      cos.fill(mode === 'identity' ? 1 : 0, 0, prefix * half);
      for (let i = 0; i < a.length; i++) {
        cos[prefix * half + i] = Math.cos(a[i]!);
        sin[prefix * half + i] = Math.sin(a[i]!);
      }
    });
    this.prefix = prefix;
  }
}
