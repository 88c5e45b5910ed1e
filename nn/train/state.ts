/**
 * Everything a resumable training run must restore, flattened to named tensors plus JSON
 * metadata (the safetensors layout): model parameters/buffers, optimizer moments and
 * hyperparameters, LR schedule, EMA shadows, RNG generators and data-loader position.
 */
import * as E from '../../engine/index.js';
import { getJson, setJson, type SafetensorsMetadata } from '../checkpoint/index.js';
import type { LoaderState } from '../data/loader.js';
import type { Module } from '../module.js';
import type { EMA } from '../optim/ema.js';
import type { Optimizer } from '../optim/optimizer.js';
import type { Scheduler } from '../optim/schedule.js';

export interface TrainingState {
  model: Module;
  optimizer?: Optimizer<any>;
  scheduler?: Scheduler;
  ema?: EMA;
  generators?: Record<string, E.Generator>;
  loader?: { state(): LoaderState; setState(s: LoaderState): unknown };
}

export interface PackedState {
  tensors: Record<string, E.Tensor>;
  metadata: SafetensorsMetadata;
}

/** Names of the tensors in a checkpoint: model.*, optim.<index>.<buffer>, ema.<name>. */
export function packTrainingState(s: TrainingState, step: number, extra: Record<string, unknown> = {}): PackedState {
  const tensors: Record<string, E.Tensor> = {};
  const metadata: SafetensorsMetadata = {};
  for (const [k, t] of Object.entries(s.model.stateDict())) tensors[`model.${k}`] = t;
  setJson(metadata, 'step', step);
  setJson(metadata, 'extra', extra);
  if (s.optimizer) {
    const sd = s.optimizer.stateDict();
    const steps: Record<string, number> = {};
    for (const [i, st] of Object.entries(sd.state)) {
      steps[i] = st.step;
      for (const [buf, v] of Object.entries(st)) if (E.isTensor(v)) tensors[`optim.${i}.${buf}`] = v;
    }
    setJson(metadata, 'optimizer', { param_groups: sd.param_groups, steps });
  }
  if (s.scheduler) setJson(metadata, 'scheduler', s.scheduler.stateDict());
  if (s.ema) {
    const sd = s.ema.stateDict();
    for (const [k, t] of Object.entries(sd.shadow)) tensors[`ema.${k}`] = t;
    setJson(metadata, 'ema', { decay: sd.decay, num_updates: sd.num_updates });
  }
  if (s.generators) setJson(metadata, 'generators', Object.fromEntries(Object.entries(s.generators).map(([k, g]) => [k, g.state()])));
  if (s.loader) setJson(metadata, 'loader', s.loader.state());
  return { tensors, metadata };
}

/**
 * Restores a packed state into live objects (values are copied into the existing tensors).
 * Validates the model, optimizer and EMA parts before writing any of them.
 */
export function unpackTrainingState(s: TrainingState, packed: PackedState): { step: number; extra: Record<string, unknown> } {
  const { tensors, metadata } = packed;
  const pick = (prefix: string) =>
    Object.fromEntries(Object.entries(tensors).filter(([k]) => k.startsWith(prefix)).map(([k, t]) => [k.slice(prefix.length), t]));
  s.model.loadStateDict(pick('model.'));
  if (s.optimizer) {
    const o = getJson<{ param_groups: unknown[]; steps: Record<string, number> }>(metadata, 'optimizer');
    const state: Record<number, Record<string, unknown>> = {};
    for (const [i, step] of Object.entries(o.steps)) state[Number(i)] = { step };
    for (const [k, t] of Object.entries(pick('optim.'))) {
      const dot = k.indexOf('.');
      const i = Number(k.slice(0, dot));
      (state[i] ??= { step: 0 })[k.slice(dot + 1)] = t;
    }
    s.optimizer.loadStateDict({ state, param_groups: o.param_groups } as Parameters<Optimizer<any>['loadStateDict']>[0]);
  }
  if (s.scheduler) s.scheduler.loadStateDict(getJson(metadata, 'scheduler'));
  if (s.ema) {
    const e = getJson<{ decay: number; num_updates: number }>(metadata, 'ema');
    s.ema.loadStateDict({ ...e, shadow: pick('ema.') });
  }
  if (s.generators) {
    const g = getJson<Record<string, E.GeneratorState>>(metadata, 'generators');
    for (const [k, gen] of Object.entries(s.generators)) {
      if (!g[k]) throw new Error(`checkpoint has no state for generator '${k}' (has: ${Object.keys(g).join(', ') || 'none'})`);
      gen.setState(g[k]);
    }
  }
  if (s.loader) s.loader.setState(getJson(metadata, 'loader'));
  return { step: getJson<number>(metadata, 'step'), extra: getJson<Record<string, unknown>>(metadata, 'extra') };
}
