/**
 * Exponential moving average of weights: shadow = decay * shadow + (1 - decay) * param, updated
 * in place by a fused kernel (one dispatch per tensor, nothing allocated per update).
 */
import * as E from '../../engine/index.js';
import { copyInto, normalizeParams, type ParamList, type StateValue } from './optimizer.js';

export interface EMAOptions {
  /** Decay used by update() when none is given (default 0.999). */
  decay?: number;
  /**
   * Warm the decay up as min(decay, (1 + n) / (10 + n)) with n the number of updates so far
   * (TensorFlow's ExponentialMovingAverage num_updates rule), so early averages are not dominated
   * by the initial weights.
   */
  warmup?: boolean;
}

export interface EMAState {
  decay: number;
  num_updates: number;
  /** Shadow tensors keyed by parameter name (or index when unnamed). */
  shadow: Record<string, E.Tensor>;
}

export class EMA {
  readonly params: E.Tensor[];
  readonly names: string[] | null;
  readonly shadows: E.Tensor[];
  decay: number;
  readonly warmup: boolean;
  numUpdates = 0;

  /** The shadows start as copies of the parameters. */
  constructor(params: ParamList, opts: EMAOptions = {}) {
    const { params: ps, names } = normalizeParams(params, 'EMA');
    this.params = ps;
    this.names = names;
    this.decay = opts.decay ?? 0.999;
    this.warmup = opts.warmup ?? false;
    if (!(this.decay >= 0 && this.decay <= 1)) throw new RangeError(`EMA: decay must be in [0, 1], got ${this.decay}`);
    this.shadows = E.noGrad(() => ps.map((p) => {
      if (p.dtype !== 'f32') throw new TypeError(`EMA: ${p.describe()} is not f32`);
      const s = E.keep(E.zerosLike(p));
      s.assign(p);
      return s;
    }));
  }

  /** The decay the next update() without an argument uses. */
  currentDecay(): number {
    return this.warmup ? Math.min(this.decay, (1 + this.numUpdates) / (10 + this.numUpdates)) : this.decay;
  }

  /** shadow = d * shadow + (1 - d) * param for every parameter, in place. */
  update(decay?: number): void {
    const d = decay ?? this.currentDecay();
    if (!(d >= 0 && d <= 1)) throw new RangeError(`EMA.update: decay must be in [0, 1], got ${d}`);
    // Without an explicit decay, a captured step's replays read the warming-up decay again and
    // count the update as a host effect (E.captureStep).
    const live = decay === undefined ? () => this.currentDecay() : undefined;
    this.params.forEach((p, i) => E.emaUpdate(this.shadows[i]!, p, d, live));
    const count = () => void this.numUpdates++;
    if (this.params.length > 0) E.stepEffect(this.params[0]!.backend, count);
    else count();
  }

  /** Writes the averaged weights into `params` (default: the tracked parameters), e.g. for evaluation. */
  copyTo(params: ParamList = this.params): void {
    const ps = this.check(params, 'copyTo');
    E.noGrad(() => ps.forEach((p, i) => p.assign(this.shadows[i]!)));
  }

  /** Sets the shadows to the current values of `params` (default: the tracked parameters). */
  copyFrom(params: ParamList = this.params): void {
    const ps = this.check(params, 'copyFrom');
    E.noGrad(() => ps.forEach((p, i) => this.shadows[i]!.assign(p)));
  }

  private check(params: ParamList, where: string): E.Tensor[] {
    const ps = normalizeParams(params, `EMA.${where}`).params;
    if (ps.length !== this.shadows.length) throw new Error(`EMA.${where}: got ${ps.length} tensors, tracking ${this.shadows.length}`);
    ps.forEach((p, i) => {
      if (!E.shapesEqual(p.shape, this.shadows[i]!.shape)) throw new Error(`EMA.${where}: tensor ${this.key(i)} has shape ${E.fmtShape(p.shape)}, the shadow ${E.fmtShape(this.shadows[i]!.shape)}`);
    });
    return ps;
  }

  private key(i: number): string {
    return this.names ? this.names[i]! : String(i);
  }

  /** The shadows are the EMA's own tensors (not copies): read them before the next update. */
  stateDict(): EMAState {
    const shadow: Record<string, E.Tensor> = {};
    this.shadows.forEach((s, i) => (shadow[this.key(i)] = s));
    return { decay: this.decay, num_updates: this.numUpdates, shadow };
  }

  /** Copies shadows (tensors on this backend or the CPU, or raw data) in; every key must be present. */
  loadStateDict(s: { decay: number; num_updates: number; shadow: Record<string, StateValue> }): void {
    const keys = this.shadows.map((_, i) => this.key(i));
    const missing = keys.filter((k) => !(k in s.shadow));
    const unexpected = Object.keys(s.shadow).filter((k) => !keys.includes(k));
    if (missing.length || unexpected.length) {
      throw new Error(`EMA.loadStateDict: ${missing.length ? `missing ${missing.map((k) => `'${k}'`).join(', ')}` : ''}${missing.length && unexpected.length ? '; ' : ''}${unexpected.length ? `unexpected ${unexpected.map((k) => `'${k}'`).join(', ')}` : ''}`);
    }
    keys.forEach((k, i) => {
      const v = s.shadow[k]!;
      const sh = this.shadows[i]!;
      const n = E.isTensor(v) ? v.size : (v as ArrayLike<number>).length;
      if ((E.isTensor(v) && !E.shapesEqual(v.shape, sh.shape)) || n !== sh.size) {
        throw new Error(`EMA.loadStateDict: '${k}' has ${E.isTensor(v) ? `shape ${E.fmtShape(v.shape)}` : `${n} values`}, expected shape ${E.fmtShape(sh.shape)}`);
      }
    });
    E.noGrad(() => keys.forEach((k, i) => copyInto(this.shadows[i]!, s.shadow[k]!)));
    this.decay = s.decay;
    this.numUpdates = s.num_updates;
  }

  /** Frees the shadow weights (kept state that lives as long as the EMA). */
  dispose(): void {
    for (const s of this.shadows) s.dispose();
  }
}
