/**
 * Divergence detection for the training loop without a readback per step. Each step's loss terms
 * and global gradient norm (the term named `gradNorm`) are folded into one kept device buffer by a
 * single dispatch (one per 7 terms; shaders/watch.ts): whether every step so far had a finite loss
 * sum and a finite norm, how many steps did, which went bad first, the latest step's term values
 * and the window's norms, one per step. The loop reads the buffer once when it prints the progress
 * line (the terms come with it) and before each checkpoint: the window since the last read was
 * clean or not, the first bad step is window start + clean count, and the norms feed the spike
 * warning (GradNormSpikes).
 *
 * WGSL lets a compiler assume no NaN or Inf, so a driver might fold the device test to true; the
 * loop therefore also checks the host values it reads (terms on progress lines, weights before a
 * save), where the answer is exact and only the first bad step may be less precise ("between steps
 * a and b").
 */
import * as E from '../engine/index.js';
import { cpuData } from '../engine/cpu/strided.js';
import type { WebGPUBackend } from '../engine/webgpu/backend.js';
import { WATCH_HEADER, WATCH_MAX_TERMS, WATCH_NO_NORM, WATCH_TERMS_PER_DISPATCH, watchKernel } from '../shaders/watch.js';

const F32_MAX = 3.4028234663852886e38;
/** Name of the term holding the global gradient norm. */
export const GRAD_NORM_TERM = 'gradNorm';

/** Training stopped at a non-finite loss, gradient norm or weights; the message names the steps and the last good checkpoint. */
export class NonFiniteError extends Error {
  override name = 'NonFiniteError';
}

export interface WatchReading {
  /** The first step of the window whose loss sum or gradient norm was not finite (as far as the device can tell). */
  firstBad: { step: number; what: 'loss' | 'gradNorm' } | null;
  /** The terms of the window's last step, by name (read with the flags; empty when no step was observed). */
  terms: Record<string, number>;
  /** [step, gradient norm] of the window's steps that had one (the first `capacity`). */
  norms: [number, number][];
}

export class FiniteWatch {
  private readonly state: E.Tensor;
  /** First step of the current window, steps observed in it, which of them had a norm. */
  private start: number;
  private seen = 0;
  private hadNorm: boolean[] = [];
  private lastNames: string[] = [];

  /** `capacity`: gradient norms recorded per window (the loop reads at least every logEvery steps). */
  constructor(
    private readonly backend: E.Backend,
    firstStep: number,
    private readonly capacity: number,
  ) {
    this.start = firstStep;
    this.state = E.keep(E.zeros([WATCH_HEADER + WATCH_MAX_TERMS + capacity], { backend }));
  }

  /** Folds one step's terms (one-element f32 tensors) into the state: ceil(terms / 7) dispatches, nothing read. */
  observe(terms: Record<string, E.Tensor>): void {
    const names = Object.keys(terms);
    if (names.length > WATCH_MAX_TERMS) throw new RangeError(`trainLoop: a step returned ${names.length} terms; at most ${WATCH_MAX_TERMS} are supported`);
    const ts = names.map((k) => {
      const t = terms[k]!;
      if (t.size !== 1 || t.dtype !== 'f32') throw new TypeError(`trainLoop: term '${k}' must be a one-element f32 tensor, got ${t.describe()}`);
      if (t.backend !== this.backend) throw new Error(`trainLoop: term '${k}' lives on ${t.backend.name}, not the loop's backend ${this.backend.name}`);
      return t;
    });
    const normAt = names.indexOf(GRAD_NORM_TERM);
    const slot = this.seen;
    const reset = this.seen === 0;
    this.seen++;
    this.hadNorm[slot] = normAt >= 0;
    this.lastNames = names;
    // A step without terms still counts (as clean): only the weights' check at the save can judge it.
    const groups = Math.max(1, Math.ceil(ts.length / WATCH_TERMS_PER_DISPATCH));
    for (let g = 0; g < groups; g++) {
      const base = g * WATCH_TERMS_PER_DISPATCH;
      const part = ts.slice(base, base + WATCH_TERMS_PER_DISPATCH);
      const norm = normAt >= base && normAt < base + part.length ? normAt - base : WATCH_NO_NORM;
      this.fold(part, { first: g === 0, last: g === groups - 1, reset, base, norm, slot });
    }
  }

  private fold(ts: E.Tensor[], p: { first: boolean; last: boolean; reset: boolean; base: number; norm: number; slot: number }): void {
    if (this.backend.kind === 'webgpu') {
      const bindings: Record<string, E.Tensor> = { state: this.state };
      ts.forEach((t, k) => (bindings[`t${k}`] = t));
      (this.backend as WebGPUBackend).run(watchKernel, { n: ts.length }, {
        params: { first: +p.first, last: +p.last, reset: +p.reset, term_base: p.base, norm_slot: p.norm, slot: p.slot, cap: this.capacity, off: ts.map((t) => t.offset) },
        bindings,
        workgroups: 1,
      });
      return;
    }
    // The CPU backend: the same update on the host (its data is host memory; nothing waits).
    const s = cpuData(this.state);
    if (p.first) {
      if (p.reset) [s[0], s[1], s[2]] = [1, 0, 0];
      s[3] = s[4] = 0;
    }
    let acc = s[3]!;
    ts.forEach((t, k) => {
      const x = cpuData(t)[t.offset]!;
      s[WATCH_HEADER + p.base + k] = x;
      if (k === p.norm) s[4] = x;
      else acc += x;
    });
    s[3] = acc;
    if (!p.last) return;
    const okLoss = Math.abs(acc) <= F32_MAX;
    const okNorm = Math.abs(s[4]!) <= F32_MAX;
    const was = s[0]!;
    const now = okLoss && okNorm ? was : 0;
    if (was === 1 && now === 0) s[2] = okLoss ? 2 : 1;
    s[0] = now;
    s[1] = s[1]! + now;
    if (p.slot < this.capacity) s[WATCH_HEADER + WATCH_MAX_TERMS + p.slot] = s[4]!;
  }

  /** Reads the window since the last read (one readback) and starts a new one after `step`. */
  async read(step: number): Promise<WatchReading> {
    const r: WatchReading = { firstBad: null, terms: {}, norms: [] };
    if (this.seen > 0) {
      const s = await this.state.toArray();
      const clean = s[1]!;
      if (clean < this.seen) r.firstBad = { step: this.start + clean, what: s[2] === 2 ? 'gradNorm' : 'loss' };
      this.lastNames.forEach((k, i) => (r.terms[k] = s[WATCH_HEADER + i]!));
      for (let i = 0; i < Math.min(this.seen, this.capacity); i++) if (this.hadNorm[i]) r.norms.push([this.start + i, s[WATCH_HEADER + WATCH_MAX_TERMS + i]!]);
    }
    this.start = step + 1;
    this.seen = 0;
    this.hadNorm = [];
    return r;
  }

  dispose(): void {
    this.state.dispose();
  }
}

/**
 * Warns about gradient-norm spikes: a norm above `factor` times the median of the previous
 * `history` finite norms (once at least 10 are known). Warn-only: a spike is often harmless (a
 * hard batch), and a divergence that follows shows up as a non-finite loss or norm, which stops
 * the run.
 */
export class GradNormSpikes {
  private recent: number[] = [];

  constructor(
    readonly factor: number,
    readonly history = 100,
  ) {}

  /** The warning lines for the window's norms, in step order; the norms join the history. */
  check(norms: readonly [number, number][]): string[] {
    const lines: string[] = [];
    for (const [step, n] of norms) {
      if (!Number.isFinite(n)) continue;
      if (this.recent.length >= 10) {
        const med = median(this.recent);
        if (n > this.factor * med) {
          lines.push(`warning: gradient norm spike at step ${step}: ${fmt(n)}, ${fmt(n / med)}x the median ${fmt(med)} of the previous ${this.recent.length} steps (warn above ${this.factor}x: trainLoop gradNormSpike)`);
        }
      }
      this.recent.push(n);
      if (this.recent.length > this.history) this.recent.shift();
    }
    return lines;
  }
}

function median(xs: readonly number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

const fmt = (x: number) => (x >= 1e4 || x < 1e-3 ? x.toExponential(2) : x.toPrecision(3));
