/**
 * The training loop helper every example uses: runs steps, prints the progress line, appends
 * metrics to a JSONL log, saves resumable checkpoints (atomically) and calls a sampling hook,
 * all at configurable intervals. Resume restores model, optimizer, schedule, EMA, RNG and data
 * position from the latest checkpoint, so a run stopped at step N continues as if uninterrupted.
 */
import { appendFileSync, existsSync, mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import { disposable, memoryStats, resetPeakMemory, tidy, type Backend, type Tensor } from '../engine/index.js';
import { getJson } from '../nn/checkpoint/index.js';
import type { Module } from '../nn/module.js';
import { Progress } from '../nn/train/progress.js';
import { packTrainingState, restoreTrainingState, type TrainingState } from '../nn/train/state.js';
import { loadCheckpoint, saveCheckpoint } from './checkpoint.js';

export async function saveTrainingCheckpoint(path: string, state: TrainingState, step: number, extra: Record<string, unknown> = {}): Promise<void> {
  const { tensors, metadata } = packTrainingState(state, step, extra);
  await saveCheckpoint(path, tensors, metadata);
}

/** Loads `path` into the live objects of `state`; returns the step it was saved at. */
export async function loadTrainingCheckpoint(path: string, state: TrainingState, backend: Backend): Promise<{ step: number; extra: Record<string, unknown> }> {
  return restoreTrainingState(state, await loadCheckpoint(path, backend));
}

export interface LoadedModel<M> {
  model: M;
  /** Training step the checkpoint was saved at. */
  step: number;
  /** The run's extra JSON (config, batch size, dataset, ...). */
  extra: Record<string, unknown>;
}

/**
 * Rebuilds a model from a trainLoop checkpoint whose `extra.config` holds its config: `build`
 * makes the model from the config, the model.* tensors are loaded strictly, the model is returned
 * in eval mode. `writer` names the trainer in the error for a checkpoint without a config.
 */
export async function loadModelCheckpoint<M extends Module, C extends object>(path: string, backend: Backend, build: (config: C) => M, writer: string): Promise<LoadedModel<M>> {
  const { tensors, metadata } = await loadCheckpoint(path, backend);
  using _loaded = disposable(tensors);
  const extra = getJson<Record<string, unknown>>(metadata, 'extra');
  const config = extra?.config as C | undefined;
  if (!config || typeof config !== 'object') throw new Error(`${path}: no model config in the checkpoint metadata (not written by ${writer}?)`);
  const model = build(config);
  const state: Record<string, Tensor> = {};
  for (const [k, t] of Object.entries(tensors)) if (k.startsWith('model.')) state[k.slice('model.'.length)] = t;
  model.loadStateDict(state);
  model.eval();
  return { model, step: getJson<number>(metadata, 'step'), extra: extra! };
}

export interface TrainLoopOptions {
  totalSteps: number;
  state: TrainingState;
  backend: Backend;
  /**
   * One optimization step (1-based `step`). Return the loss terms as scalar tensors (read back only
   * on logging steps, so steps stay batched on the GPU) and optionally the epoch.
   */
  step: (step: number) => { terms: Record<string, Tensor>; epoch?: number };
  /** Items per step (e.g. batch size) for the images/s figure. */
  itemsPerStep?: number;
  logEvery?: number;
  /** Append {step, epoch, time, ...terms} per logged step. */
  metricsPath?: string;
  checkpointPath?: string;
  checkpointEvery?: number;
  /** Resume from checkpointPath if it exists (default true). */
  resume?: boolean;
  sampleEvery?: number;
  onSample?: (step: number) => Promise<void>;
  /** Extra JSON saved in every checkpoint (e.g. the config). */
  extra?: Record<string, unknown>;
  log?: (line: string) => void;
}

export interface TrainLoopResult {
  startStep: number;
  /** Logged terms per step, in order. */
  history: { step: number; terms: Record<string, number> }[];
}

export async function trainLoop(o: TrainLoopOptions): Promise<TrainLoopResult> {
  const log = o.log ?? ((l: string) => console.log(l));
  const logEvery = o.logEvery ?? 50;
  let startStep = 0;
  if (o.checkpointPath && (o.resume ?? true) && existsSync(o.checkpointPath)) {
    startStep = (await loadTrainingCheckpoint(o.checkpointPath, o.state, o.backend)).step;
    log(`resumed from ${o.checkpointPath} at step ${startStep}`);
  }
  if (o.metricsPath) mkdirSync(dirname(o.metricsPath), { recursive: true });
  const progress = new Progress(o.totalSteps, undefined, startStep);
  const history: TrainLoopResult['history'] = [];
  const t0 = performance.now();
  resetPeakMemory(); // the first line's peak is the training steps', not the set-up's
  for (let step = startStep + 1; step <= o.totalSteps; step++) {
    const logging = step % logEvery === 0 || step === o.totalSteps;
    // The step's scope: only the returned terms survive it (freed after logging).
    using out = disposable(
      tidy(() => {
        const r = o.step(step);
        return { terms: r.terms, epoch: r.epoch };
      }),
    );
    if (logging) {
      const terms: Record<string, number> = {};
      for (const [k, t] of Object.entries(out.terms)) terms[k] = await t.item();
      history.push({ step, terms });
      const peakBytes = memoryStats().peakLiveBytes;
      resetPeakMemory();
      const line = progress.update({ step, terms, peakBytes, ...(out.epoch !== undefined ? { epoch: out.epoch } : {}), ...(o.itemsPerStep ? { items: o.itemsPerStep } : {}) });
      log(line);
      if (o.metricsPath) appendFileSync(o.metricsPath, JSON.stringify({ step, epoch: out.epoch, time: (performance.now() - t0) / 1000, ...terms }) + '\n');
    }
    if (o.checkpointPath && o.checkpointEvery && (step % o.checkpointEvery === 0 || step === o.totalSteps)) {
      await saveTrainingCheckpoint(o.checkpointPath, o.state, step, o.extra);
    }
    if (o.onSample && o.sampleEvery && (step % o.sampleEvery === 0 || step === o.totalSteps)) await o.onSample(step);
  }
  return { startStep, history };
}
