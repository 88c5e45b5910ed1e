/**
 * Everything a resumable training run must restore, flattened to named tensors plus JSON
 * metadata (the safetensors layout): model parameters/buffers, optimizer moments and
 * hyperparameters, LR schedule, EMA shadows, RNG generators and data-loader position.
 */
import * as E from '../../engine/index.js';
import { decodeSafetensors, entriesToTensors, getJson, saveTensors, setJson, type SafetensorsMetadata } from '../checkpoint/index.js';
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
  /**
   * Further models trained alongside (e.g. a GAN discriminator), each with its optimizer, stored
   * as `<name>.model.*` / `<name>.optim.*` tensors and `<name>.optimizer` metadata, so the main
   * model's names (model.*, optim.*) stay as they were.
   */
  aux?: Record<string, { model: Module; optimizer?: Optimizer<any> }>;
}

const RESERVED_AUX = new Set(['model', 'optim', 'ema', 'optimizer', 'scheduler', 'generators', 'loader', 'step', 'extra']);

function checkAuxName(name: string): void {
  if (!/^[A-Za-z_][A-Za-z0-9_-]*$/.test(name) || RESERVED_AUX.has(name)) {
    throw new Error(`training state: invalid aux name '${name}' (letters, digits, _ or -, not one of ${[...RESERVED_AUX].join(', ')})`);
  }
}

/** An optimizer's tensors under `<prefix><index>.<buffer>` and its JSON metadata. */
function packOptimizer(opt: Optimizer<any>, prefix: string, tensors: Record<string, E.Tensor>): unknown {
  const sd = opt.stateDict();
  const steps: Record<string, number> = {};
  for (const [i, st] of Object.entries(sd.state)) {
    steps[i] = st.step;
    for (const [buf, v] of Object.entries(st)) if (E.isTensor(v)) tensors[`${prefix}${i}.${buf}`] = v;
  }
  return { param_groups: sd.param_groups, steps };
}

function unpackOptimizer(opt: Optimizer<any>, meta: { param_groups: unknown[]; steps: Record<string, number> }, tensors: Record<string, E.Tensor>): void {
  const state: Record<number, Record<string, unknown>> = {};
  for (const [i, step] of Object.entries(meta.steps)) state[Number(i)] = { step };
  for (const [k, t] of Object.entries(tensors)) {
    const dot = k.indexOf('.');
    const i = Number(k.slice(0, dot));
    (state[i] ??= { step: 0 })[k.slice(dot + 1)] = t;
  }
  opt.loadStateDict({ state, param_groups: meta.param_groups } as Parameters<Optimizer<any>['loadStateDict']>[0]);
}

export interface PackedState {
  tensors: Record<string, E.Tensor>;
  metadata: SafetensorsMetadata;
}

/** Names of the tensors in a checkpoint: model.*, optim.<index>.<buffer>, ema.<name>, and per aux entry <name>.model.*, <name>.optim.<index>.<buffer>. */
export function packTrainingState(s: TrainingState, step: number, extra: Record<string, unknown> = {}): PackedState {
  const tensors: Record<string, E.Tensor> = {};
  const metadata: SafetensorsMetadata = {};
  for (const [k, t] of Object.entries(s.model.stateDict())) tensors[`model.${k}`] = t;
  setJson(metadata, 'step', step);
  setJson(metadata, 'extra', extra);
  if (s.optimizer) setJson(metadata, 'optimizer', packOptimizer(s.optimizer, 'optim.', tensors));
  for (const [name, a] of Object.entries(s.aux ?? {})) {
    checkAuxName(name);
    for (const [k, t] of Object.entries(a.model.stateDict())) tensors[`${name}.model.${k}`] = t;
    if (a.optimizer) setJson(metadata, `${name}.optimizer`, packOptimizer(a.optimizer, `${name}.optim.`, tensors));
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
  const aux = Object.entries(s.aux ?? {});
  for (const [name] of aux) {
    checkAuxName(name);
    if (!Object.keys(tensors).some((k) => k.startsWith(`${name}.model.`))) throw new Error(`checkpoint has no '${name}' model (no ${name}.model.* tensors)`);
  }
  s.model.loadStateDict(pick('model.'));
  if (s.optimizer) unpackOptimizer(s.optimizer, getJson(metadata, 'optimizer'), pick('optim.'));
  for (const [name, a] of aux) {
    a.model.loadStateDict(pick(`${name}.model.`));
    if (a.optimizer) unpackOptimizer(a.optimizer, getJson(metadata, `${name}.optimizer`), pick(`${name}.optim.`));
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

/** unpackTrainingState, then frees the packed tensors (they were only the carrier). */
export function restoreTrainingState(s: TrainingState, packed: PackedState): { step: number; extra: Record<string, unknown> } {
  try {
    return unpackTrainingState(s, packed);
  } finally {
    E.disposeAll(packed.tensors); // consumed: the caller handed them over
  }
}

/**
 * The whole training state as safetensors bytes: the layout of Node's checkpoint files
 * (saveTrainingCheckpoint), built in memory, so a run can move between Node and a browser.
 */
export async function saveTrainingState(s: TrainingState, step: number, extra: Record<string, unknown> = {}): Promise<Uint8Array> {
  const { tensors, metadata } = packTrainingState(s, step, extra);
  return saveTensors(tensors, metadata);
}

/** Restores bytes from saveTrainingState (or a checkpoint file's contents) into the live objects. */
export function loadTrainingState(s: TrainingState, bytes: Uint8Array, backend: E.Backend): { step: number; extra: Record<string, unknown> } {
  const decoded = decodeSafetensors(bytes);
  return restoreTrainingState(s, { tensors: entriesToTensors(decoded.tensors, backend), metadata: decoded.metadata });
}
