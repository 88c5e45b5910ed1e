/**
 * Batched autoregressive sampling with a KV cache and classifier-free guidance (browser-safe).
 *
 * The class token (and an optional known prefix) is prefilled in one pass, then one token per
 * step at the cache position. With guidance the conditional and the null-class rows run as one
 * batch of 2B and the guided logits are
 *     l = u + s_t * (c - u), computed as c + (s_t - 1) * (c - u)
 * (the same value; the second form is exactly c when s_t = 1). s_t is constant (LlamaGen) or the
 * RAR schedule s_t = (g - 1) * 0.5 * (1 - cos(pi * (t / N)^p)) + 1 for token t of N. A guidance
 * scale of 1 (constant) skips the unconditional half. Tokens are drawn on the device by
 * engine sampleLogits (temperature 0 = greedy), so nothing is read back inside the loop.
 * Reproducible: the same model, classes, options and generator state give the same ids.
 */
import * as E from '../../engine/index.js';
import type { ARDecodeState, ARTransformer } from './model.js';

export type CfgSchedule = 'constant' | 'rar';

/** The guidance scale for token t (0-based) of n: constant g, or RAR's cosine ramp from 1 to g. */
export function cfgScaleAt(t: number, n: number, scale: number, schedule: CfgSchedule = 'constant', power = 1): number {
  if (!Number.isFinite(scale)) throw new RangeError(`cfgScaleAt: scale must be finite, got ${scale}`);
  if (schedule === 'constant') return scale;
  if (schedule !== 'rar') throw new Error(`cfgScaleAt: schedule must be 'constant' or 'rar', got ${String(schedule)}`);
  if (!(power > 0)) throw new RangeError(`cfgScaleAt: power must be > 0, got ${power}`);
  if (!(n > 0) || !(t >= 0)) throw new RangeError(`cfgScaleAt: need t >= 0 and n > 0, got t=${t}, n=${n}`);
  return (scale - 1) * 0.5 * (1 - Math.cos(Math.PI * (t / n) ** power)) + 1;
}

export interface GuidanceOptions {
  /** Guidance scale g (default 1 = none). */
  cfgScale?: number;
  /** 'constant' (default) or 'rar'. */
  cfgSchedule?: CfgSchedule;
  /** Power p of the RAR schedule (default 1). */
  cfgPower?: number;
  /** Known first tokens i32 [B, P] (P < seqLen), fed in the prefill pass and kept in the output. */
  prefix?: E.Tensor | null;
  /**
   * Run the unconditional half even when the scale is 1 everywhere (default false; for tests and
   * for callers that need `uncond`).
   */
  alwaysGuide?: boolean;
}

/**
 * Step-level decoding with guidance: `logits` are the guided logits [B, V] for token `t`;
 * `feed(tokens)` appends token t (i32 [B]) and computes the logits for t + 1. `cond` / `uncond`
 * hold the raw conditional / unconditional logits of the current step (uncond is null without
 * guidance). All are kept tensors owned by the decoder (replaced on feed, freed by dispose or at
 * the end of a `using` block). Inference only: call it under noGrad() with the model in eval mode.
 */
export class GuidedDecoder implements Disposable {
  readonly batch: number;
  readonly seqLen: number;
  readonly guided: boolean;
  readonly scale: number;
  readonly schedule: CfgSchedule;
  readonly power: number;
  /** Index of the token the current logits predict. */
  t: number;
  logits: E.Tensor;
  cond: E.Tensor;
  uncond: E.Tensor | null;
  private readonly state: ARDecodeState;
  private disposed = false;

  constructor(readonly model: ARTransformer, classes: E.Tensor | readonly number[], o: GuidanceOptions = {}) {
    if (E.isGradEnabled()) throw new Error('GuidedDecoder: sampling is inference-only; run it under noGrad()');
    this.scale = o.cfgScale ?? 1;
    this.schedule = o.cfgSchedule ?? 'constant';
    this.power = o.cfgPower ?? 1;
    cfgScaleAt(0, 1, this.scale, this.schedule, this.power); // validates
    this.seqLen = model.seqLen;
    this.guided = o.alwaysGuide === true || this.scale !== 1;
    const prefix = o.prefix ?? null;
    const { B, state, step } = E.tidy(() => {
      const cls = model.classTensor(classes, 'sampleTokens');
      const B = cls.shape[0]!;
      const c = this.guided ? E.concat([cls, E.full([B], model.nullClass, { backend: model.backend, dtype: 'i32' })], 0) : cls;
      const p = prefix && this.guided ? E.concat([prefix, prefix], 0) : prefix;
      const { state, logits } = model.startDecode(c, p);
      return { B, state, step: this.guide(logits, B, state.pos - 1) };
    });
    this.batch = B;
    this.state = state;
    this.t = state.pos - 1;
    this.logits = E.keep(step.logits);
    this.cond = E.keep(step.cond);
    this.uncond = step.uncond && E.keep(step.uncond);
  }

  /** The guidance scale applied to the current step. */
  get currentScale(): number {
    return cfgScaleAt(this.t, this.seqLen, this.scale, this.schedule, this.power);
  }

  /** The conditional, unconditional and guided logits of token t from the model's raw logits [B or 2B, V]. */
  private guide(raw: E.Tensor, B: number, t: number): { cond: E.Tensor; uncond: E.Tensor | null; logits: E.Tensor } {
    if (!this.guided) return { cond: raw, uncond: null, logits: raw };
    const s = cfgScaleAt(t, this.seqLen, this.scale, this.schedule, this.power);
    const c = raw.slice([[0, B]]).contiguous();
    const u = raw.slice([[B, 2 * B]]).contiguous();
    return { cond: c, uncond: u, logits: c.add(c.sub(u).mul(s - 1)) };
  }

  /** Frees the current step's logits (kept state of the decoder). */
  private freeStep(): void {
    E.disposeAll([this.logits, this.cond, this.uncond]);
  }

  /** Whether another token can be fed (token t < seqLen - 1). */
  get canFeed(): boolean {
    return this.t < this.seqLen - 1;
  }

  /** Feeds token t (i32 [B]) and moves to t + 1. */
  feed(tokens: E.Tensor): void {
    if (this.disposed) throw new Error('GuidedDecoder.feed: the decoder was disposed');
    if (!this.canFeed) throw new RangeError(`GuidedDecoder.feed: token ${this.t} is the last of ${this.seqLen}; nothing more to feed`);
    const B = this.batch;
    const step = E.tidy(() => {
      const x = tokens.reshape([B]);
      return this.guide(this.model.decodeStep(this.state, this.guided ? E.concat([x, x], 0) : x), B, this.t + 1);
    });
    this.freeStep();
    this.t++;
    this.logits = E.keep(step.logits);
    this.cond = E.keep(step.cond);
    this.uncond = step.uncond && E.keep(step.uncond);
  }

  /** Frees the step's logits and the KV caches. */
  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    this.freeStep();
    this.state.dispose();
  }

  [Symbol.dispose](): void {
    this.dispose();
  }
}

export interface ARSampleOptions extends GuidanceOptions {
  /** Default 1; 0 = greedy (argmax). */
  temperature?: number;
  /** Default 0 = off. */
  topK?: number;
  /** Default 1 = off. */
  topP?: number;
  /** Philox generator for the draws (default: the engine's default generator). */
  generator?: E.Generator;
  /**
   * Called at every sampled step t with the drawn ids i32 [B]; the returned i32 [B] tensor is what
   * is recorded at t and fed to the model (e.g. a mix with ground-truth tokens). It may return
   * `sampled` itself. Tensors it creates are freed after the step (the output keeps a copy).
   */
  override?: (t: number, sampled: E.Tensor) => E.Tensor;
  /** Called at every sampled step with the guided logits [B, V] (valid during the call only). */
  onLogits?: (t: number, logits: E.Tensor, d: GuidedDecoder) => void;
}

/**
 * Samples token sequences: classes i32 [B] (or ids) -> i32 [B, seqLen] (prefix included). The
 * model is put in eval mode for the call (and restored). Nothing is read back.
 */
export function sampleTokens(model: ARTransformer, classes: E.Tensor | readonly number[], o: ARSampleOptions = {}): E.Tensor {
  const wasTraining = model.training;
  model.eval();
  try {
    return E.noGrad(() => {
      using dec = new GuidedDecoder(model, classes, o);
      const B = dec.batch;
      const L = model.seqLen;
      return E.tidy(() => {
        const out = E.zeros([B, L], { backend: model.backend, dtype: 'i32' });
        const prefix = o.prefix ?? null;
        if (prefix) E.assign(out.slice([null, [0, prefix.shape[1]!]]), prefix);
        const so = { temperature: o.temperature ?? 1, topK: o.topK ?? 0, topP: o.topP ?? 1, ...(o.generator ? { generator: o.generator } : {}) };
        for (;;) {
          const t = dec.t;
          E.tidy(() => {
            o.onLogits?.(t, dec.logits, dec);
            const sampled = E.sampleLogits(dec.logits, so);
            let fed = sampled;
            if (o.override) {
              fed = o.override(t, sampled);
              if (!E.isTensor(fed) || fed.dtype !== 'i32' || fed.size !== B) throw new Error(`sampleTokens: override must return i32 [${B}] token ids, got ${E.isTensor(fed) ? fed.describe() : String(fed)}`);
            }
            E.assign(out.slice([null, [t, t + 1]]), fed.reshape([B, 1]));
            if (dec.canFeed) dec.feed(fed);
          });
          if (t === L - 1) break;
        }
        return out;
      });
    });
  } finally {
    model.train(wasTraining);
  }
}
