/**
 * The training loop helper every example uses: runs steps, prints the progress line, appends
 * metrics to a JSONL log, saves resumable checkpoints (atomically) and calls a sampling hook,
 * all at configurable intervals. Resume restores model, optimizer, schedule, EMA, RNG and data
 * position from the latest checkpoint, so a run stopped at step N continues as if uninterrupted.
 *
 * Two guards keep a run's saved work: the loss terms and the global gradient norm are watched on
 * the device (node/finite-watch.ts, read with each progress line and before each save) and a
 * non-finite value stops the run with NonFiniteError before anything non-finite is written (a norm
 * spike only warns); and a stop request (AbortSignal, or SIGINT/SIGTERM with handleSignals) ends
 * the loop after the current step with a checkpoint and TrainingStopped. The previous checkpoints
 * stay beside the newest (keepCheckpoints).
 */
import { appendFileSync, existsSync, mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import { captureStep, disposable, memoryStats, resetPeakMemory, tidy, type Backend, type Tensor } from '../engine/index.js';
import { getJson } from '../nn/checkpoint/index.js';
import type { Module } from '../nn/module.js';
import { validateConfig, type ConfigSchema } from '../models/config-schema.js';
import { Progress } from '../nn/train/progress.js';
import { packTrainingState, restoreTrainingState, type TrainingState } from '../nn/train/state.js';
import { loadCheckpoint, NonFiniteTensorError, saveCheckpoint, unverifiedNote, type ReadSafetensorsOptions, type SaveCheckpointOptions } from './checkpoint.js';
import { gradNorm } from '../nn/optim/index.js';
import { FiniteWatch, GRAD_NORM_TERM, GradNormSpikes, NonFiniteError } from './finite-watch.js';
import { anyStop, signalStop, stopReason, TrainingStopped } from './train-stop.js';

export async function saveTrainingCheckpoint(path: string, state: TrainingState, step: number, extra: Record<string, unknown> = {}, opts: Pick<SaveCheckpointOptions, 'requireFinite' | 'keep'> = {}): Promise<void> {
  const { tensors, metadata } = packTrainingState(state, step, extra);
  await saveCheckpoint(path, tensors, metadata, opts);
}

/** Loads `path` into the live objects of `state` (checksums verified); returns the step it was saved at. */
export async function loadTrainingCheckpoint(path: string, state: TrainingState, backend: Backend, opts: ReadSafetensorsOptions = {}): Promise<{ step: number; extra: Record<string, unknown> }> {
  return restoreTrainingState(state, await loadCheckpoint(path, backend, opts));
}

export interface LoadedModel<M> {
  model: M;
  /** Training step the checkpoint was saved at. */
  step: number;
  /** The run's extra JSON (config, batch size, dataset, ...). */
  extra: Record<string, unknown>;
}

/**
 * Rebuilds a model from a trainLoop checkpoint whose `extra.config` holds its config: the config
 * is checked against `schema` (ConfigError naming the field; a crafted config must not build a
 * model the device cannot hold), `build` makes the model from it, the model.* tensors are loaded
 * strictly, the model is returned in eval mode. `writer` names the trainer in the error for a
 * checkpoint without a config.
 */
export async function loadModelCheckpoint<M extends Module, C extends object>(path: string, backend: Backend, build: (config: C) => M, writer: string, schema: ConfigSchema): Promise<LoadedModel<M>> {
  const { tensors, metadata } = await loadCheckpoint(path, backend);
  using _loaded = disposable(tensors);
  const extra = getJson<Record<string, unknown>>(metadata, 'extra');
  const config = extra?.config as C | undefined;
  if (!config || typeof config !== 'object') throw new Error(`${path}: no model config in the checkpoint metadata (not written by ${writer}?)`);
  validateConfig(`checkpoint metadata of ${path}`, schema, config);
  const model = build(config);
  const state: Record<string, Tensor> = {};
  for (const [k, t] of Object.entries(tensors)) if (k.startsWith('model.')) state[k.slice('model.'.length)] = t;
  model.loadStateDict(state);
  model.eval();
  return { model, step: getJson<number>(metadata, 'step'), extra: extra! };
}

/** The loop's safety settings, passed through by every trainer. */
export interface TrainLoopControls {
  /** Checkpoints kept: the newest plus keepCheckpoints - 1 earlier ones, `<name>.prev-<step>.safetensors` (default 2). */
  keepCheckpoints?: number;
  /** When aborted, the loop finishes its step, saves a checkpoint and throws TrainingStopped. */
  stop?: AbortSignal;
  /** Turn SIGINT/SIGTERM into a stop request while the loop runs (a second signal exits at once). */
  handleSignals?: boolean;
  /**
   * Replay the trainer's step once two recorded steps agree (E.captureStep on WebGPU: the same
   * bits as eager steps, without the host work of recording each one); a step that cannot be
   * captured runs eagerly and the first line says why.
   */
  capture?: boolean;
}

/** The controls of `o` that are set, to spread into trainLoop's options. */
export function loopControls(o: TrainLoopControls): TrainLoopControls {
  return {
    ...(o.keepCheckpoints !== undefined ? { keepCheckpoints: o.keepCheckpoints } : {}),
    ...(o.stop ? { stop: o.stop } : {}),
    ...(o.handleSignals ? { handleSignals: true } : {}),
    ...(o.capture ? { capture: true } : {}),
  };
}

/**
 * A trainer's step computation (tensors in, loss terms out) as trainLoop runs it: captured and
 * replayed with `capture` (see E.captureStep; `key` as there), else as given. `done` drops the
 * capture and logs how the steps ran.
 */
export function trainerStep<A extends Tensor[], R extends Record<string, Tensor>>(o: TrainLoopControls, fn: (...args: A) => R, log: ((line: string) => void) | undefined, key?: () => string | number): { run: (...args: A) => R; done: () => void } {
  if (!o.capture) return { run: fn, done: () => {} };
  const step = captureStep(fn, key ? { key } : {});
  let reported = false;
  return {
    run: (...args: A) => {
      const r = step(...args);
      // Once: the first replay, or the reason the steps stay eager.
      if (!reported && (step.mode === 'replay' || (step.reason !== null && step.stats.recorded >= 3 && step.mode === 'eager'))) {
        reported = true;
        log?.(step.mode === 'replay' ? `captured step: replaying (${step.stats.dispatches} dispatches per step)` : `captured step: running eagerly (${step.reason})`);
      }
      return r;
    },
    done: () => {
      const s = step.stats;
      log?.(`captured step: ${s.replays} replayed, ${s.recorded} recorded, ${s.eager} eager steps${s.replays === 0 && step.reason ? ` (${step.reason})` : ''}`);
      step.dispose();
    },
  };
}

export interface TrainLoopOptions extends TrainLoopControls {
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
  /**
   * Watch the global gradient norm (default true): the step's `gradNorm` term when it returns one
   * (the AR and DiT steps return their clipping norm), else the norm of the state's optimizer's
   * gradients still set after the step (the tokenizer's step; one small dispatch per parameter
   * tensor plus one). It is shown on the progress line; a non-finite norm stops the run.
   */
  gradNorm?: boolean;
  /** Warn when a gradient norm exceeds this many times the median of the previous 100 (default 100; 0: off). */
  gradNormSpike?: number;
}

export interface TrainLoopResult {
  startStep: number;
  /** Logged terms per step, in order. */
  history: { step: number; terms: Record<string, number> }[];
}

export async function trainLoop(o: TrainLoopOptions): Promise<TrainLoopResult> {
  const log = o.log ?? ((l: string) => console.log(l));
  const logEvery = o.logEvery ?? 50;
  const keep = o.keepCheckpoints ?? 2;
  if (!(Number.isInteger(keep) && keep >= 1)) throw new RangeError(`trainLoop: keepCheckpoints must be an integer >= 1, got ${keep}`);
  let startStep = 0;
  if (o.checkpointPath && (o.resume ?? true) && existsSync(o.checkpointPath)) {
    startStep = (await loadTrainingCheckpoint(o.checkpointPath, o.state, o.backend, { onUnverified: (p) => log(unverifiedNote(p)) })).step;
    log(`resumed from ${o.checkpointPath} at step ${startStep}`);
  }
  if (o.metricsPath) mkdirSync(dirname(o.metricsPath), { recursive: true });
  const progress = new Progress(o.totalSteps, undefined, startStep);
  const history: TrainLoopResult['history'] = [];
  /** The newest checkpoint of this run known to hold finite values. */
  let lastGood = startStep > 0 ? { path: o.checkpointPath!, step: startStep } : null;
  const diverged = (what: string): NonFiniteError =>
    new NonFiniteError(
      `${what}: training stopped; ${lastGood ? `the last good checkpoint is ${lastGood.path} (step ${lastGood.step}), left as it was` : 'no checkpoint of this run was saved'}`,
    );
  const watch = new FiniteWatch(o.backend, startStep + 1, Math.min(logEvery, 4096));
  const spikeFactor = o.gradNormSpike ?? 100;
  if (!(spikeFactor >= 0)) throw new RangeError(`trainLoop: gradNormSpike must be >= 0 (0: off), got ${spikeFactor}`);
  const spikes = spikeFactor > 0 ? new GradNormSpikes(spikeFactor) : null;
  const params = o.gradNorm === false ? [] : (o.state.optimizer?.paramGroups.flatMap((g) => g.params) ?? []);
  /**
   * Reads the watch (one readback) and throws NonFiniteError if a step since the last read had a
   * non-finite loss or gradient norm; warns about norm spikes; returns the last step's terms.
   */
  const checkWindow = async (step: number, from: number): Promise<Record<string, number>> => {
    const r = await watch.read(step);
    if (r.firstBad) throw diverged(`non-finite ${r.firstBad.what === 'loss' ? 'loss' : 'gradient norm'} (NaN or Inf) at step ${r.firstBad.step}`);
    const hostBad = Object.keys(r.terms).filter((k) => !Number.isFinite(r.terms[k]));
    if (hostBad.length) throw diverged(`non-finite ${hostBad.join(', ')} (NaN or Inf) between steps ${from} and ${step}`);
    for (const line of spikes?.check(r.norms) ?? []) log(line);
    return r.terms;
  };
  const signals = o.handleSignals ? signalStop((name) => log(`${name}: finishing the current step, then ${o.checkpointPath ? 'saving a checkpoint' : 'stopping (no checkpoint path: nothing is saved)'} (send ${name} again to exit at once, losing the steps since the last save)`)) : null;
  const stop = o.stop || signals ? anyStop([o.stop, signals?.signal]) : null;
  const t0 = performance.now();
  resetPeakMemory(); // the first line's peak is the training steps', not the set-up's
  let windowStart = startStep + 1;
  try {
    for (let step = startStep + 1; step <= o.totalSteps; step++) {
      const logging = step % logEvery === 0 || step === o.totalSteps;
      // The step's scope: only the returned terms survive it (freed after logging).
      using out = disposable(
        tidy(() => {
          const r = o.step(step);
          const terms = { ...r.terms };
          if (params.length > 0 && !(GRAD_NORM_TERM in terms)) {
            const withGrad = params.filter((p) => p.grad);
            if (withGrad.length > 0) terms[GRAD_NORM_TERM] = gradNorm(withGrad);
          }
          return { terms, epoch: r.epoch };
        }),
      );
      watch.observe(out.terms);
      if (logging) {
        const terms = await checkWindow(step, windowStart);
        windowStart = step + 1;
        history.push({ step, terms });
        const peakBytes = memoryStats().peakBytes;
        resetPeakMemory();
        const line = progress.update({ step, terms, peakBytes, ...(out.epoch !== undefined ? { epoch: out.epoch } : {}), ...(o.itemsPerStep ? { items: o.itemsPerStep } : {}) });
        log(line);
        if (o.metricsPath) appendFileSync(o.metricsPath, JSON.stringify({ step, epoch: out.epoch, time: (performance.now() - t0) / 1000, ...terms }) + '\n');
      }
      const stopping = stop?.aborted === true;
      if (o.checkpointPath && ((o.checkpointEvery && (step % o.checkpointEvery === 0 || step === o.totalSteps)) || stopping)) {
        if (windowStart <= step) await checkWindow(step, windowStart);
        windowStart = step + 1;
        try {
          await saveTrainingCheckpoint(o.checkpointPath, o.state, step, o.extra, { requireFinite: true, keep });
        } catch (e) {
          if (e instanceof NonFiniteTensorError) throw diverged(`non-finite weights (${e.tensor}) after step ${step}, with finite losses: the update diverged`);
          throw e;
        }
        lastGood = { path: o.checkpointPath, step };
      }
      if (stopping && step < o.totalSteps) {
        const reason = stopReason(stop!);
        throw new TrainingStopped(
          o.checkpointPath ? `${reason}: stopped after step ${step}; saved ${o.checkpointPath}` : `${reason}: stopped after step ${step} (no checkpoint path: nothing saved)`,
          reason,
          o.checkpointPath ?? null,
          step,
        );
      }
      if (o.onSample && o.sampleEvery && (step % o.sampleEvery === 0 || step === o.totalSteps)) await o.onSample(step);
    }
  } finally {
    signals?.remove();
    watch.dispose();
  }
  return { startStep, history };
}
