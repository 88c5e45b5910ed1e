/**
 * The study's overall progress line: after each stage, how many stages are done, the elapsed
 * time and the ETA. The planned seconds of each stage (planStudy) are its weight; the ETA scales
 * the remaining planned seconds by how fast the run has been so far against the plan, so a
 * pessimistic or optimistic estimate corrects itself as stages finish (once they are 5% of the
 * plan). A stage that finished in an earlier run (resumed) takes no time now: it leaves the plan
 * instead of counting as fast.
 */
import { formatDuration } from '../../nn/train/progress.js';
import type { PlannedStage } from './estimate.js';

/** What a stage reports to the progress line. */
export interface StageProgress {
  resumed(name: string): void;
  skip(name: string): void;
  done(name: string): void;
}

/** The same progress line with `suffix` on every stage name (the stages of a replicate: ' (seed 1)'). */
export function suffixedProgress(p: StageProgress, suffix: string): StageProgress {
  return { resumed: (n) => p.resumed(n + suffix), skip: (n) => p.skip(n + suffix), done: (n) => p.done(n + suffix) };
}

export class StudyProgress implements StageProgress {
  private readonly remaining: Map<string, number>;
  private readonly total: number;
  private plannedDone = 0;
  private readonly t0: number;
  private skipped = 0;

  constructor(
    plan: readonly PlannedStage[],
    private readonly log: (line: string) => void,
    private readonly now: () => number = () => performance.now(),
  ) {
    this.remaining = new Map(plan.map((s) => [s.name, s.seconds]));
    this.total = plan.length;
    this.t0 = now();
  }

  /** A stage that was loaded from an earlier run: dropped from the plan. */
  resumed(name: string): void {
    if (this.remaining.delete(name)) this.skipped++;
  }

  /** A stage this run does not do (e.g. generators with --tokenizers-only): dropped from the plan. */
  skip(name: string): void {
    this.remaining.delete(name);
  }

  /** A stage finished now: logs `[study] k/N stages done (name); elapsed; ETA`. */
  done(name: string): void {
    const planned = this.remaining.get(name);
    if (planned === undefined) return;
    this.remaining.delete(name);
    this.plannedDone += planned;
    const elapsed = (this.now() - this.t0) / 1000;
    const left = [...this.remaining.values()].reduce((a, b) => a + b, 0);
    // Seconds per planned second so far; the plan itself until the stages done are at least 5% of
    // this run's planned time (one short stage, such as the real features, says little about the rest).
    const pace = this.plannedDone >= 0.05 * (this.plannedDone + left) && elapsed > 0 ? elapsed / this.plannedDone : 1;
    const finished = this.total - this.remaining.size;
    this.log(`[study] ${finished}/${this.total} stages done (${name}${this.skipped ? `; ${this.skipped} loaded from an earlier run` : ''}); elapsed ${formatDuration(elapsed)}, ETA ${formatDuration(left * pace)}`);
  }
}
