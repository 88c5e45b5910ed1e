/**
 * What every `webgpu-tok` subcommand shares (Node only): the option specs and their parser (bad
 * arguments raise CliError naming the flag; main() prints it and exits with code 2), the device,
 * the datasets, number formats, checkpoint arguments and the feature network of the FID metrics.
 */
import { existsSync, realpathSync, statfsSync, statSync } from 'node:fs';
import { dirname, join, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as E from '../engine/index.js';
import { CpuBackend } from '../engine/cpu/backend.js';
import { FeatNet } from '../models/features/featnet.js';
import { featnetConfigOf } from '../models/features/featnet-config.js';
import type { ImageFeatureStats } from '../models/metrics/index.js';
import { getJsonOr } from '../nn/checkpoint/index.js';
import { ConfigError } from '../models/config-schema.js';
import { loadCheckpoint, readSafetensorsFile } from './checkpoint.js';
import { loadFashionMNIST, loadMNIST, writeFileAtomicSync } from './data/index.js';
import { getDevice } from './index.js';

export class CliError extends Error {
  override name = 'CliError';
}

export type OptType = 'string' | 'int' | 'number' | 'bool' | 'list';

export interface OptSpec {
  name: string;
  type: OptType;
  help: string;
  /** Allowed values (string options). */
  choices?: readonly string[];
  /** Smallest allowed value (int/number options). */
  min?: number;
  /** Largest allowed value (int/number options; ints default to INT_MAX_OPTION). */
  max?: number;
  default?: string | number | boolean | number[];
  required?: boolean;
  /** Placeholder shown in --help. */
  meta?: string;
}

export type ParsedArgs = Record<string, string | number | boolean | number[] | undefined>;

/**
 * The largest integer option value unless a spec says otherwise: 2^31 - 1. Counts beyond it
 * (`--steps 1e99` is an integer to Number) would run for ever or overflow an index, so they are
 * refused with the flag named rather than accepted.
 */
export const INT_MAX_OPTION = 2 ** 31 - 1;

/** The flags each parsed argument set was given explicitly (the rest hold defaults). */
const GIVEN = new WeakMap<ParsedArgs, ReadonlySet<string>>();

/** Whether `--name` was on the command line (not a default); false for args not from parseArgs. */
export function wasGiven(args: ParsedArgs, name: string): boolean {
  return GIVEN.get(args)?.has(name) ?? false;
}

export interface Io {
  out: (line: string) => void;
  err: (line: string) => void;
}

export interface Command {
  name: string;
  summary: string;
  options: OptSpec[];
  run: (args: ParsedArgs, io: Io, rest: string[]) => Promise<void>;
  /** Takes positional arguments (after the options), described in the usage line. */
  positional?: string;
}

function parseValue(cmd: string, spec: OptSpec, raw: string): string | number | number[] {
  const flag = `--${spec.name}`;
  const num = (s: string, int: boolean): number => {
    const v = Number(s);
    if (s.trim() === '' || !Number.isFinite(v) || (int && !Number.isInteger(v))) throw new CliError(`${cmd}: ${flag} must be ${int ? 'an integer' : 'a number'}, got '${s}'`);
    if (spec.min !== undefined && v < spec.min) throw new CliError(`${cmd}: ${flag} must be >= ${spec.min}, got ${v}`);
    const max = spec.max ?? (int ? INT_MAX_OPTION : undefined);
    if (max !== undefined && v > max) throw new CliError(`${cmd}: ${flag} must be <= ${max}, got ${s}`);
    return v;
  };
  switch (spec.type) {
    case 'int':
      return num(raw, true);
    case 'number':
      return num(raw, false);
    case 'list':
      return raw.split(',').map((s) => num(s, false));
    default:
      if (spec.choices && !spec.choices.includes(raw)) throw new CliError(`${cmd}: ${flag} must be one of ${spec.choices.join(', ')}, got '${raw}'`);
      return raw;
  }
}

/** Parses argv against a command's options; unknown flags, missing values and bad values throw CliError. */
export function parseArgs(cmd: string, specs: readonly OptSpec[], argv: readonly string[]): { args: ParsedArgs; help: boolean; rest: string[] } {
  const args: ParsedArgs = {};
  const rest: string[] = [];
  const given = new Set<string>();
  GIVEN.set(args, given);
  let help = false;
  for (const s of specs) if (s.default !== undefined) args[s.name] = s.default;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '--help' || a === '-h') {
      help = true;
      continue;
    }
    if (!a.startsWith('--')) {
      rest.push(a);
      continue;
    }
    const eq = a.indexOf('=');
    const name = a.slice(2, eq < 0 ? undefined : eq);
    const spec = specs.find((s) => s.name === name);
    if (!spec) throw new CliError(`${cmd}: unknown option --${name} (see webgpu-tok ${cmd} --help)`);
    given.add(name);
    if (spec.type === 'bool') {
      if (eq >= 0) {
        const v = a.slice(eq + 1);
        if (v !== 'true' && v !== 'false') throw new CliError(`${cmd}: --${name} is a switch (use --${name} or --${name}=true|false), got '${v}'`);
        args[name] = v === 'true';
      } else args[name] = true;
      continue;
    }
    let raw: string;
    if (eq >= 0) raw = a.slice(eq + 1);
    else {
      const next = argv[i + 1];
      if (next === undefined || (next.startsWith('--') && next.length > 2)) throw new CliError(`${cmd}: --${name} needs a value${spec.meta ? ` (${spec.meta})` : ''}`);
      raw = next;
      i++;
    }
    args[name] = parseValue(cmd, spec, raw);
    // Every command's --out is a path it writes under (a folder or a file): checked here, once,
    // before anything runs, so no command can write into the working directory or spin on procfs.
    if (name === 'out' && spec.type === 'string') checkOutputPath(cmd, `--${name}`, raw, spec.meta === 'DIR' ? 'dir' : 'file');
  }
  if (!help) for (const s of specs) if (s.required && args[s.name] === undefined) throw new CliError(`${cmd}: missing required option --${s.name}${s.meta ? ` ${s.meta}` : ''}`);
  return { args, help, rest };
}

/**
 * Kernel pseudo file systems (statfs f_type): they hold no user files, and Node's recursive mkdir
 * under one can spin forever (observed on Node 20: mkdirSync('/proc/x', { recursive: true }) never
 * returns), so an output path on one is refused before anything is written.
 */
const PSEUDO_FS: ReadonlyMap<number, string> = new Map([
  [0x9fa0, 'procfs'],
  [0x62656572, 'sysfs'],
  [0x27e0eb, 'cgroupfs'],
  [0x63677270, 'cgroup2'],
  [0x64626720, 'debugfs'],
  [0x74726163, 'tracefs'],
  [0x73636673, 'securityfs'],
]);

/**
 * Refuses an output path (`flag`'s value) that cannot be written: empty (it would mean the
 * working directory), on a kernel pseudo file system (/proc, /sys, ...: mkdir spins there), under
 * an existing file, or of the wrong kind (`kind` 'dir': an existing file where a folder goes;
 * 'file': an existing folder where a file goes). The file system is that of the nearest existing
 * ancestor, after symlinks; /proc and /sys are also refused by name where statfs is unavailable.
 * Throws a one-line CliError naming the flag.
 */
export function checkOutputPath(cmd: string, flag: string, value: string, kind: 'dir' | 'file' | 'any' = 'any'): void {
  if (value.trim() === '') throw new CliError(`${cmd}: ${flag} must not be empty (an empty path would write into the working directory; name a folder, e.g. ${flag} runs/x)`);
  const full = resolve(value);
  let p = full;
  while (!existsSync(p) && dirname(p) !== p) p = dirname(p);
  const isDir = (() => {
    try {
      return statSync(p).isDirectory();
    } catch {
      return true; // unreadable: mkdir/write will report it with its own error
    }
  })();
  if (p !== full && !isDir) throw new CliError(`${cmd}: ${flag} ${value} cannot be created: ${p} is a file, not a folder`);
  if (p === full && kind === 'dir' && !isDir) throw new CliError(`${cmd}: ${flag} ${value} is a file; ${flag} names a folder (an existing one, or one to create)`);
  if (p === full && kind === 'file' && isDir) throw new CliError(`${cmd}: ${flag} ${value} is a folder; ${flag} names a file`);
  let real = p;
  try {
    real = realpathSync(p);
  } catch {
    // An unreadable ancestor: mkdir/write will report it with its own error.
  }
  const first = real.split(sep)[1];
  let fs = first === 'proc' ? 'procfs' : first === 'sys' ? 'sysfs' : undefined;
  try {
    fs ??= PSEUDO_FS.get(Number(statfsSync(real).type));
  } catch {
    // statfs unsupported here: the name check above is what is left.
  }
  if (fs) throw new CliError(`${cmd}: ${flag} ${value} is on ${fs} (${real}), a kernel pseudo file system that cannot hold output files; choose a folder on a disk`);
}

export function commandHelp(c: { name: string; summary: string; options: readonly OptSpec[]; positional?: string }): string {
  const lines = [`usage: webgpu-tok ${c.name} [options]${c.positional ? ` ${c.positional}` : ''}`, '', c.summary, '', 'options:'];
  const left = (s: OptSpec) => `  --${s.name}${s.type === 'bool' ? '' : ` ${s.meta ?? (s.choices ? s.choices.join('|') : s.type === 'list' ? 'a,b,...' : s.type === 'string' ? 'VALUE' : 'N')}`}`;
  const w = Math.max(...c.options.map((s) => left(s).length), 10) + 2;
  for (const s of c.options) {
    const def = s.default !== undefined && s.type !== 'bool' ? ` (default ${Array.isArray(s.default) ? s.default.join(',') : s.default})` : s.required ? ' (required)' : '';
    lines.push(left(s).padEnd(w) + s.help + def);
  }
  lines.push('  --help'.padEnd(w) + 'this help');
  lines.push('  --verbose'.padEnd(w) + 'stack traces with error messages (also WEBGPU_TOK_VERBOSE=1)');
  return lines.join('\n');
}

/** --keep-checkpoints of every training command (trainLoop's keepCheckpoints). */
export const KEEP_CHECKPOINTS_OPTION: OptSpec = {
  name: 'keep-checkpoints',
  type: 'int',
  min: 1,
  default: 2,
  help: 'checkpoints kept in --out: checkpoint.safetensors plus N-1 earlier ones as checkpoint.prev-<step>.safetensors',
};

/** --capture of the training commands (trainLoop's capture: replayed steps). */
export const CAPTURE_OPTION: OptSpec = {
  name: 'capture',
  type: 'bool',
  help: 'replay each training step once two recorded steps agree (WebGPU; bit-identical results, a fraction of the host time per step)',
};

/** The training loop's settings from a training command's arguments: kept checkpoints, Ctrl-C saves, captured steps. */
export function trainingControls(args: ParsedArgs): { keepCheckpoints: number; handleSignals: true; capture?: true } {
  return { keepCheckpoints: Number(args['keep-checkpoints']), handleSignals: true, ...(args.capture === true ? { capture: true as const } : {}) };
}

/** A shell-ready command line (single-quoted where needed). */
export function shellCommand(argv: readonly string[]): string {
  return argv.map((a) => (/^[\w@%+=:,./-]+$/.test(a) ? a : `'${a.replace(/'/g, `'\\''`)}'`)).join(' ');
}

let backendPromise: Promise<E.Backend> | null = null;

export async function backendFor(args: ParsedArgs): Promise<E.Backend> {
  if (args.cpu) return new CpuBackend({ precision: 'f32' });
  backendPromise ??= getDevice({ setDefault: false });
  return backendPromise;
}

export function loadSplit(dataset: string, log: (l: string) => void) {
  return (dataset === 'mnist' ? loadMNIST : loadFashionMNIST)({ pad: 2, log });
}

export function fmt(v: number, digits = 3): string {
  return Number.isFinite(v) ? v.toFixed(digits) : String(v);
}

/** FIDs: 4 significant digits below 1 (small-set FIDs can be ~1e-3), else 3 decimals. */
export function fmtFid(v: number): string {
  return Number.isFinite(v) && Math.abs(v) < 1 ? v.toPrecision(4) : fmt(v, 3);
}

/** The last line of train-tokenizer / train-ar: what this call trained, or that nothing was left. */
export function reportTrained(io: Io, ckpt: string, r: { startStep: number; totalSteps: number }): void {
  if (r.startStep >= r.totalSteps) io.out(`already complete: ${ckpt} is at step ${r.startStep} of ${r.totalSteps}`);
  else io.out(`trained steps ${r.startStep + 1}..${r.totalSteps}; checkpoint: ${ckpt}`);
}

export const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');

export function defaultFeatnetPath(dataset: string): string {
  // From node/ (tsx) or dist/node/ (built): look in the repository's models/features/weights.
  const name = `featnet-${dataset === 'mnist' ? 'mnist' : 'fashion'}.safetensors`;
  const candidates = [join(ROOT, 'models', 'features', 'weights', name), join(ROOT, '..', 'models', 'features', 'weights', name)];
  return candidates.find((p) => existsSync(p)) ?? candidates[0]!;
}

export async function loadFeatNet(spec: string, dataset: string, backend: E.Backend, seed: number, cmd = 'eval-tokenizer'): Promise<{ net: FeatNet; source: string }> {
  if (spec === 'random') {
    const net = new FeatNet({}, { backend, generator: new E.Generator(seed + 12345) });
    net.eval();
    return { net, source: 'random (untrained FeatNet: numbers not comparable)' };
  }
  if (!existsSync(spec)) {
    throw new CliError(`${cmd}: --featnet file ${spec} does not exist (train one with 'webgpu-tok train-featnet', or pass --featnet random for a smoke test)`);
  }
  return loadArg(cmd, 'featnet', spec, async () => {
    const { tensors: loaded, metadata } = await loadCheckpoint(spec, backend);
    using tensors = E.disposable(loaded);
    // examples/train-featnet.ts stores the config as `featnet_config`; checked before building.
    const cfg = featnetConfigOf(`--featnet file ${spec}`, metadata);
    const net = new FeatNet(cfg, { backend });
    const state: Record<string, E.Tensor> = {};
    for (const [k, t] of Object.entries(tensors)) {
      if (k.startsWith('model.')) state[k.slice(6)] = t;
      else if (!k.includes('.') || /^(conv|fc)\d/.test(k)) state[k] = t;
    }
    try {
      net.loadStateDict(state);
    } catch (e) {
      net.dispose();
      throw e;
    }
    net.eval();
    return { net, source: spec };
  });
}

/**
 * Loads the file that `--flag` names: a failure (unreadable, truncated, corrupt, of another kind:
 * the file's fault, not the program's) becomes a one-line CliError naming the flag and the file.
 * ConfigError (it names the file and the field) and CliError pass through, and so do TypeError
 * and ReferenceError, which are bugs whose stack trace is wanted.
 */
export async function loadArg<T>(cmd: string, flag: string, path: string, load: () => Promise<T> | T): Promise<T> {
  try {
    return await load();
  } catch (e) {
    throw loadFailure(cmd, flag, path, e);
  }
}

function loadFailure(cmd: string, flag: string, path: string, e: unknown): unknown {
  if (!(e instanceof Error) || e instanceof ConfigError || e instanceof CliError || e instanceof TypeError || e instanceof ReferenceError) return e;
  return new CliError(`${cmd}: --${flag} ${path} cannot be loaded: ${withoutPath(e.message, path)}`);
}

/** A loader's message without its leading `<path>: ` (the caller names the path once). */
function withoutPath(message: string, path: string): string {
  return message.startsWith(`${path}: `) ? message.slice(path.length + 2) : message;
}

/** loadArg for a synchronous loader. */
export function loadArgSync<T>(cmd: string, flag: string, path: string, load: () => T): T {
  try {
    return load();
  } catch (e) {
    throw loadFailure(cmd, flag, path, e);
  }
}

/** A checkpoint argument: the file, or a folder holding checkpoint.safetensors; CliError naming the flag if missing. */
export function checkpointArg(cmd: string, flag: string, v: string): string {
  let p = resolve(v);
  if (existsSync(p) && statSync(p).isDirectory()) p = join(p, 'checkpoint.safetensors');
  if (!existsSync(p)) throw new CliError(`${cmd}: --${flag} ${p} does not exist`);
  return p;
}

/** The `extra` metadata of a trainLoop checkpoint; CliError naming the flag when it has no model config. */
export async function checkpointExtra(cmd: string, flag: string, path: string, writer: string): Promise<Record<string, unknown>> {
  let extra: Record<string, unknown>;
  try {
    extra = getJsonOr<Record<string, unknown>>((await readSafetensorsFile(path)).metadata, 'extra', {});
  } catch (e) {
    throw new CliError(`${cmd}: --${flag} ${path} is not a readable checkpoint (${withoutPath((e as Error).message, path)})`);
  }
  if (!extra.config || typeof extra.config !== 'object') throw new CliError(`${cmd}: --${flag} ${path} is not a ${writer} checkpoint (no model config in its metadata)`);
  return extra;
}


/** Which trainer wrote a checkpoint, from its metadata's `extra` (config fields, posttrain record). */
export type CheckpointKind = 'tokenizer' | 'posttrain' | 'ar' | 'diffusion' | 'unknown';

export function checkpointKind(extra: Record<string, unknown>): CheckpointKind {
  const c = extra.config;
  if (!c || typeof c !== 'object') return 'unknown';
  if ('vocabSize' in c) return 'ar';
  if ('latentChannels' in c) return 'diffusion';
  return extra.posttrain ? 'posttrain' : 'tokenizer';
}

const KIND_WRITER: Record<CheckpointKind, string> = { tokenizer: 'train-tokenizer', posttrain: 'posttrain', ar: 'train-ar', diffusion: 'train-diffusion', unknown: 'no webgpu-tok trainer (no model config in its metadata)' };

/** Refuses a checkpoint given as `--flag` that another trainer wrote (one line naming the flag, the file and its writer). */
export function requireKind(cmd: string, flag: string, path: string, extra: Record<string, unknown>, kinds: readonly CheckpointKind[]): CheckpointKind {
  const kind = checkpointKind(extra);
  if (!kinds.includes(kind)) throw new CliError(`${cmd}: --${flag} ${path} was written by ${KIND_WRITER[kind]}, not ${kinds.map((k) => KIND_WRITER[k]).join(' or ')}`);
  return kind;
}

/** How a training command resumes the checkpoint in its --out. */
export interface ResumeSpec {
  /** The kind of checkpoint the command writes (another kind in --out is refused). */
  kind: CheckpointKind;
  /** Flags that shape the model or its data: another value than the checkpoint's is refused, naming the flag and --fresh. */
  fixed: readonly string[];
  /**
   * Training-schedule flags (learning rate, length, intervals): a value given on the command line
   * is applied (and printed when it differs from the checkpoint's); one not given keeps the
   * checkpoint's (resumeValue).
   */
  schedule: readonly string[];
  /** Generators: what they were trained on, for the message when the tokenizer differs. */
  trainedOn?: 'codes' | 'latents';
}

/** What planResume found: the checkpoint's metadata and recorded CLI values, or null when nothing is resumed. */
export interface ResumePlan {
  checkpoint: string;
  extra: Record<string, unknown>;
  /** The CLI values the checkpoint's run recorded ({} for a checkpoint written outside the CLI). */
  recorded: Record<string, unknown>;
}

/**
 * Checks the checkpoint `ckpt` that a run is about to resume (null when there is none): it must
 * be readable and of `spec.kind`; its tokenizer (generators) and every `spec.fixed` flag must
 * match `record` (this run's values of them as they are recorded); a `spec.schedule` flag given
 * with another value than the recorded one is printed as applied. Every refusal is a one-line CliError naming the flag (or
 * file) and --fresh. Mixing two runs' settings silently is what this prevents.
 */
export async function planResume(cmd: string, ckpt: string, args: ParsedArgs, record: Record<string, unknown>, spec: ResumeSpec, io: Io): Promise<ResumePlan | null> {
  if (!existsSync(ckpt)) return null;
  let extra: Record<string, unknown>;
  try {
    const raw = getJsonOr<unknown>((await readSafetensorsFile(ckpt)).metadata, 'extra', {});
    if (!raw || typeof raw !== 'object' || Array.isArray(raw)) throw new Error(`its 'extra' metadata is ${JSON.stringify(raw)}, not an object`);
    extra = raw as Record<string, unknown>;
  } catch (e) {
    throw new CliError(`${cmd}: cannot resume from ${ckpt}: not a readable checkpoint (${(e as Error).message}); pass --fresh to start over (replacing it), or choose another --out`);
  }
  const kind = checkpointKind(extra);
  if (kind !== spec.kind) {
    throw new CliError(`${cmd}: cannot resume from ${ckpt}: it was written by ${KIND_WRITER[kind]}, not ${KIND_WRITER[spec.kind]}; choose another --out, or pass --fresh to start over (replacing it)`);
  }
  const raw = extra.cli;
  const cli = (raw && typeof raw === 'object' && !Array.isArray(raw) ? raw : {}) as Record<string, unknown>;
  const sha = record['tokenizer-sha256'];
  if (typeof cli['tokenizer-sha256'] === 'string' && sha !== undefined && cli['tokenizer-sha256'] !== sha) {
    throw new CliError(
      `${cmd}: ${ckpt} was trained on the ${spec.trainedOn ?? 'images'} of another tokenizer (--tokenizer ${String(cli.tokenizer)}, sha256 ${cli['tokenizer-sha256'].slice(0, 12)}...), not ${String(record.tokenizer)} (sha256 ${String(sha).slice(0, 12)}...): pass that tokenizer to resume, or --fresh to start over`,
    );
  }
  for (const k of spec.fixed) {
    if (k in cli && JSON.stringify(cli[k] ?? null) !== JSON.stringify(record[k] ?? null)) {
      throw new CliError(`${cmd}: ${ckpt} was trained with --${k} ${String(cli[k])}, not ${String(record[k])}: pass the same value to resume, or --fresh to start over`);
    }
  }
  for (const k of spec.schedule) {
    if (!wasGiven(args, k)) continue;
    const had = k in cli ? ` (checkpoint had ${cli[k] === null || cli[k] === undefined ? 'none' : String(cli[k])})` : ' (the checkpoint does not record it)';
    if (!(k in cli) || JSON.stringify(cli[k] ?? null) !== JSON.stringify(args[k] ?? null)) io.out(`resume: --${k} ${String(args[k])}${had}`);
  }
  return { checkpoint: ckpt, extra, recorded: cli };
}

/**
 * A schedule flag's value for this call: the command line's when given or when nothing is
 * resumed; else the checkpoint's recorded one (null: it was not set), or undefined when the
 * checkpoint does not record it (the trainer then keeps what the checkpoint restores).
 */
export function resumeValue(args: ParsedArgs, plan: ResumePlan | null, k: string): ParsedArgs[string] {
  if (!plan || wasGiven(args, k)) return args[k];
  if (!(k in plan.recorded)) return undefined;
  const v = plan.recorded[k];
  return v === null ? undefined : (v as ParsedArgs[string]);
}

/**
 * The run's length for this call, from --steps / --epochs: given ones win (either replaces both);
 * else the checkpoint's recorded ones, or its total step count; else the defaults.
 */
export function resumeLength(args: ParsedArgs, plan: ResumePlan | null): { steps: number } | { epochs: number } {
  const fromArgs = () => (args.steps !== undefined ? { steps: Number(args.steps) } : { epochs: Number(args.epochs) });
  if (!plan || wasGiven(args, 'steps') || wasGiven(args, 'epochs')) return fromArgs();
  const r = plan.recorded;
  if ('steps' in r || 'epochs' in r) return r.steps !== undefined && r.steps !== null ? { steps: Number(r.steps) } : { epochs: Number(r.epochs ?? args.epochs) };
  const total = plan.extra.totalSteps;
  return typeof total === 'number' && Number.isInteger(total) && total > 0 ? { steps: total } : fromArgs();
}

/** The schedule flags every training command shares, for this call: given ones, else the resumed checkpoint's, else the defaults. */
export interface Schedule {
  /** undefined: keep the resumed checkpoint's learning rate (it does not record the flag). */
  lr: number | undefined;
  length: { steps: number } | { epochs: number };
  logEvery: number;
  checkpointEvery: number;
  sampleEvery: number;
  /** What the checkpoint records of them (the `cli` entries). */
  record: Record<string, unknown>;
}

export function scheduleOf(args: ParsedArgs, plan: ResumePlan | null): Schedule {
  const lr = resumeValue(args, plan, 'lr');
  const length = resumeLength(args, plan);
  const every = (k: string) => Number(resumeValue(args, plan, k) ?? args[k]);
  const s = { lr: lr === undefined ? undefined : Number(lr), length, logEvery: every('log-every'), checkpointEvery: every('checkpoint-every'), sampleEvery: every('sample-every') };
  const record = {
    lr: s.lr ?? null,
    steps: 'steps' in length ? length.steps : null,
    epochs: 'epochs' in length ? length.epochs : null,
    'log-every': s.logEvery,
    'checkpoint-every': s.checkpointEvery,
    'sample-every': s.sampleEvery,
  };
  return { ...s, record };
}

/** The schedule flags of train-tokenizer, train-ar and train-diffusion (ResumeSpec.schedule). */
export const SCHEDULE_FLAGS = ['lr', 'steps', 'epochs', 'log-every', 'checkpoint-every', 'sample-every'] as const;

/**
 * Runs `fn` (a trainer given values from flags), rewording a ConfigError about a field that a flag
 * set as a CliError naming the flag: `train-ar: --dim: must be in [1, 8192], got 100000`.
 * `flags` maps each source the trainer names in its errors (the configs and options it builds
 * from the flags, never a file's) to its fields and their flags.
 */
export async function withFlagNames<T>(cmd: string, flags: Readonly<Record<string, Readonly<Record<string, string>>>>, fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (e) {
    const flag = e instanceof ConfigError && e.source !== null && e.field !== null ? flags[e.source]?.[e.field] : undefined;
    if (flag) throw new CliError(`${cmd}: --${flag}: ${(e as ConfigError).problem}`);
    throw e;
  }
}

/** JSON with non-finite numbers as strings ("NaN", "Infinity"), which JSON itself cannot hold. */
export function resultJson(r: unknown): string {
  return JSON.stringify(r, (_, v) => (typeof v === 'number' && !Number.isFinite(v) ? String(v) : v), 2) + '\n';
}

/** Writes a sampler's gfid.json and gfid.md into outDir and reports them. */
export function writeGfidReport(io: Io, outDir: string, r: unknown, md: string, perRow: number): void {
  writeFileAtomicSync(join(outDir, 'gfid.json'), resultJson(r));
  writeFileAtomicSync(join(outDir, 'gfid.md'), md);
  io.out(md);
  io.out(`wrote ${join(outDir, 'gfid.json')}, gfid.md, samples.png (one row per class, ${perRow} each), samples.safetensors`);
}

/** The gFID block of a sampler's record: feature dim, FID of generated vs real, and both IS. */
export function gfidFields(fake: ImageFeatureStats, real: ImageFeatureStats): { featureDim: number; gfid: number; inceptionScore: { generated: { mean: number; std: number }; real: { mean: number; std: number } } | null } {
  const isGen = fake.inceptionScore();
  const isReal = real.inceptionScore();
  return {
    featureDim: fake.stats().dim,
    gfid: fake.fid(real),
    inceptionScore: isGen && isReal ? { generated: { mean: isGen.mean, std: isGen.std }, real: { mean: isReal.mean, std: isReal.std } } : null,
  };
}
