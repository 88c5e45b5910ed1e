/**
 * The progress line every training job prints: step/total, epoch, loss terms, throughput, ETA and
 * the peak device memory of the steps since the previous line (live tensors, and a captured step's
 * intermediates).
 * Throughput and ETA use an exponential moving average of step time, so a slow first step (shader
 * compilation) does not distort the estimate for long.
 */
export interface ProgressUpdate {
  step: number;
  epoch?: number;
  /** Named scalar terms, e.g. { loss: 0.12, rec: 0.1, commit: 0.02 }. */
  terms: Record<string, number>;
  /** Items (e.g. images) processed in this step, for the throughput. */
  items?: number;
  /** Most device bytes the steps used since the previous update (memoryStats().peakBytes). */
  peakBytes?: number;
}

export function formatDuration(sec: number): string {
  if (!Number.isFinite(sec) || sec < 0) return '?';
  const s = Math.round(sec);
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const r = s % 60;
  return h > 0 ? `${h}h${String(m).padStart(2, '0')}m` : m > 0 ? `${m}m${String(r).padStart(2, '0')}s` : `${r}s`;
}

export function formatNumber(v: number): string {
  if (v === 0) return '0';
  const a = Math.abs(v);
  return a >= 1e4 || a < 1e-3 ? v.toExponential(3) : v.toPrecision(4);
}

export class Progress {
  private last = 0;
  private emaStepSec: number | null = null;
  private emaItemsPerSec: number | null = null;
  private lastStep: number;

  constructor(
    readonly totalSteps: number,
    private readonly now: () => number = () => performance.now(),
    startStep = 0,
  ) {
    this.last = now();
    this.lastStep = startStep;
  }

  /** Records the steps since the previous update and returns the progress line. */
  update(u: ProgressUpdate): string {
    const t = this.now();
    const steps = Math.max(1, u.step - this.lastStep);
    const dt = (t - this.last) / 1000;
    const perStep = dt / steps;
    const alpha = 0.3;
    this.emaStepSec = this.emaStepSec === null ? perStep : alpha * perStep + (1 - alpha) * this.emaStepSec;
    if (u.items !== undefined && dt > 0) {
      const ips = (u.items * steps) / dt;
      this.emaItemsPerSec = this.emaItemsPerSec === null ? ips : alpha * ips + (1 - alpha) * this.emaItemsPerSec;
    }
    this.last = t;
    this.lastStep = u.step;
    const parts = [`step ${String(u.step).padStart(String(this.totalSteps).length)}/${this.totalSteps}`];
    if (u.epoch !== undefined) parts.push(`epoch ${u.epoch}`);
    parts.push(Object.entries(u.terms).map(([k, v]) => `${k} ${formatNumber(v)}`).join(' '));
    if (this.emaItemsPerSec !== null) parts.push(`${this.emaItemsPerSec.toFixed(1)} img/s`);
    else parts.push(`${(1 / this.emaStepSec).toFixed(2)} steps/s`);
    parts.push(`ETA ${formatDuration((this.totalSteps - u.step) * this.emaStepSec)}`);
    if (u.peakBytes !== undefined) parts.push(`peak mem ${(u.peakBytes / 2 ** 20).toFixed(0)} MB`);
    return parts.join(' | ');
  }

  /** Seconds per step (moving average), or null before the first update. */
  get secondsPerStep(): number | null {
    return this.emaStepSec;
  }
}
