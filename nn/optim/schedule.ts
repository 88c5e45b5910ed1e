/**
 * Learning-rate schedules: pure functions of the step (the 0-based index of the optimizer step
 * about to run) and a Scheduler that writes each group's lr.
 *
 * Warmup is linear and never yields a zero learning rate: lr * (step + 1) / warmupSteps for
 * step < warmupSteps (the same values as torch's LinearLR(start_factor=1/warmupSteps,
 * total_iters=warmupSteps - 1)). Cosine decay then runs from lr at step warmupSteps to minLr at
 * step totalSteps (torch's CosineAnnealingLR with T_max = totalSteps - warmupSteps and
 * eta_min = minLr), and stays at minLr afterwards.
 */
import type { Optimizer } from './optimizer.js';

export interface WarmupOptions {
  /** Linear warmup length in steps (0 = none). */
  warmupSteps?: number;
}

export interface CosineOptions extends WarmupOptions {
  /** Step at which the decay reaches the floor. */
  totalSteps: number;
  /** The floor: an absolute learning rate... */
  minLr?: number;
  /** ...or a fraction of the base learning rate (used when minLr is not given; default 0). */
  minLrRatio?: number;
}

function checkStep(step: number, where: string): void {
  if (!(Number.isInteger(step) && step >= 0)) throw new RangeError(`${where}: step must be a non-negative integer, got ${step}`);
}

function warmupFactor(step: number, warmupSteps: number): number {
  return step < warmupSteps ? (step + 1) / warmupSteps : 1;
}

/** A constant learning rate. */
export function constantLr(step: number, lr: number): number {
  checkStep(step, 'constantLr');
  return lr;
}

/** Linear warmup to `lr`, then constant. */
export function constantWithWarmupLr(step: number, lr: number, opts: WarmupOptions = {}): number {
  checkStep(step, 'constantWithWarmupLr');
  return lr * warmupFactor(step, opts.warmupSteps ?? 0);
}

/** Linear warmup to `lr`, cosine decay to the floor at totalSteps, then the floor. */
export function warmupCosineLr(step: number, lr: number, opts: CosineOptions): number {
  checkStep(step, 'warmupCosineLr');
  const warmup = opts.warmupSteps ?? 0;
  const total = opts.totalSteps;
  if (!(Number.isInteger(warmup) && warmup >= 0)) throw new RangeError(`warmupCosineLr: warmupSteps must be a non-negative integer, got ${warmup}`);
  if (!(Number.isInteger(total) && total >= warmup)) throw new RangeError(`warmupCosineLr: totalSteps (${total}) must be an integer >= warmupSteps (${warmup})`);
  const floor = opts.minLr ?? lr * (opts.minLrRatio ?? 0);
  if (step < warmup) return lr * warmupFactor(step, warmup);
  if (step >= total) return floor;
  const progress = (step - warmup) / (total - warmup);
  return floor + ((lr - floor) * (1 + Math.cos(Math.PI * progress))) / 2;
}

/** lr for a step given a group's base lr. */
export type LrSchedule = (step: number, baseLr: number) => number;

export const schedules = {
  constant: (): LrSchedule => (step, lr) => constantLr(step, lr),
  constantWithWarmup: (opts: WarmupOptions): LrSchedule => (step, lr) => constantWithWarmupLr(step, lr, opts),
  warmupCosine: (opts: CosineOptions): LrSchedule => (step, lr) => warmupCosineLr(step, lr, opts),
};

export interface SchedulerState {
  step: number;
  base_lrs: number[];
}

/**
 * Sets every group's lr to schedule(step, baseLr), where baseLr is the group's lr when the
 * scheduler was made. The constructor applies step 0; call step() after each optimizer.step().
 */
export class Scheduler {
  private _step = 0;
  baseLrs: number[];

  constructor(readonly optimizer: Optimizer<{ lr: number }>, readonly schedule: LrSchedule) {
    this.baseLrs = optimizer.paramGroups.map((g) => g.lr);
    this.apply();
  }

  /** The index of the optimizer step the current lrs are for. */
  get currentStep(): number {
    return this._step;
  }

  /** The lrs currently set, one per group. */
  get lrs(): number[] {
    return this.optimizer.paramGroups.map((g) => g.lr);
  }

  /** Advances to the next step and sets the lrs for it. */
  step(): void {
    this._step++;
    this.apply();
  }

  private apply(): void {
    this.optimizer.paramGroups.forEach((g, i) => {
      const lr = this.schedule(this._step, this.baseLrs[i]!);
      if (!(lr >= 0)) throw new RangeError(`Scheduler: schedule gave lr ${lr} at step ${this._step} for group ${i}`);
      g.lr = lr;
    });
  }

  stateDict(): SchedulerState {
    return { step: this._step, base_lrs: [...this.baseLrs] };
  }

  /** Restores the step and base lrs, and sets the lrs for that step. */
  loadStateDict(s: SchedulerState): void {
    if (!(Number.isInteger(s.step) && s.step >= 0)) throw new Error(`Scheduler.loadStateDict: invalid step ${s.step}`);
    if (!Array.isArray(s.base_lrs) || s.base_lrs.length !== this.optimizer.paramGroups.length) {
      throw new Error(`Scheduler.loadStateDict: ${Array.isArray(s.base_lrs) ? s.base_lrs.length : 'no'} base lrs for ${this.optimizer.paramGroups.length} parameter groups`);
    }
    this._step = s.step;
    this.baseLrs = [...s.base_lrs];
    this.apply();
  }
}
