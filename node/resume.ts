/**
 * Resuming a training run: a checkpoint whose state does not fit the run being resumed (written
 * for another config, damaged, of another trainer) fails inside trainLoop's restore, before the
 * first step. That failure is the user's to fix (start over, or pass the settings of the
 * checkpoint), so it becomes a ResumeError naming the checkpoint; the CLI adds `--fresh`.
 */
import { existsSync } from 'node:fs';
import type { Scheduler } from '../nn/index.js';

export class ResumeError extends Error {
  override name = 'ResumeError';
  constructor(
    readonly checkpoint: string,
    cause: unknown,
  ) {
    super(`cannot resume from ${checkpoint}: ${cause instanceof Error ? cause.message : String(cause)}`);
  }
}

/**
 * Runs a training loop that resumes `checkpoint` when it exists and `resume` is on: `run` gets a
 * `started` callback for its step function, and an error before the first step (the restore)
 * is rethrown as ResumeError. Errors of fresh runs and of later steps pass through unchanged.
 */
export async function resumable<T>(checkpoint: string | null, resume: boolean, run: (started: () => void) => Promise<T>): Promise<T> {
  const resuming = checkpoint !== null && resume && existsSync(checkpoint);
  let stepped = false;
  try {
    return await run(() => {
      stepped = true;
    });
  } catch (e) {
    if (resuming && !stepped) throw new ResumeError(checkpoint, e);
    throw e;
  }
}

/** A schedule's base learning rate set to `lr` at its current step (what a new --lr on resume means for a scheduled run). */
export function setBaseLr(scheduler: Scheduler, lr: number): void {
  scheduler.loadStateDict({ step: scheduler.currentStep, base_lrs: scheduler.baseLrs.map(() => lr) });
}
