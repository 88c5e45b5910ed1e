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
import { FeatNet, type FeatNetConfig } from '../models/features/featnet.js';
import type { ImageFeatureStats } from '../models/metrics/index.js';
import { getJsonOr } from '../nn/checkpoint/index.js';
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
  default?: string | number | boolean | number[];
  required?: boolean;
  /** Placeholder shown in --help. */
  meta?: string;
}

export type ParsedArgs = Record<string, string | number | boolean | number[] | undefined>;

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
    if (name === 'out' && spec.type === 'string') checkOutputPath(cmd, `--${name}`, raw);
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
 * working directory), or on a kernel pseudo file system (/proc, /sys, ...: mkdir spins there).
 * The file system is that of the nearest existing ancestor, after symlinks; /proc and /sys are
 * also refused by name where statfs is unavailable. Throws a one-line CliError naming the flag.
 */
export function checkOutputPath(cmd: string, flag: string, value: string): void {
  if (value.trim() === '') throw new CliError(`${cmd}: ${flag} must not be empty (an empty path would write into the working directory; name a folder, e.g. ${flag} runs/x)`);
  let p = resolve(value);
  while (!existsSync(p) && dirname(p) !== p) p = dirname(p);
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

/** The training loop's safety settings from a training command's arguments: kept checkpoints, Ctrl-C saves. */
export function trainingControls(args: ParsedArgs): { keepCheckpoints: number; handleSignals: true } {
  return { keepCheckpoints: Number(args['keep-checkpoints']), handleSignals: true };
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
  const { tensors: loaded, metadata } = await loadCheckpoint(spec, backend);
  using tensors = E.disposable(loaded);
  // examples/train-featnet.ts stores the config as `featnet_config`.
  const cfg = getJsonOr<Partial<FeatNetConfig>>(metadata, 'featnet_config', getJsonOr<Partial<FeatNetConfig>>(metadata, 'config', {}));
  const net = new FeatNet(cfg, { backend });
  const state: Record<string, E.Tensor> = {};
  for (const [k, t] of Object.entries(tensors)) {
    if (k.startsWith('model.')) state[k.slice(6)] = t;
    else if (!k.includes('.') || /^(conv|fc)\d/.test(k)) state[k] = t;
  }
  net.loadStateDict(state);
  net.eval();
  return { net, source: spec };
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
    throw new CliError(`${cmd}: --${flag} ${path} is not a readable checkpoint (${(e as Error).message})`);
  }
  if (!extra.config || typeof extra.config !== 'object') throw new CliError(`${cmd}: --${flag} ${path} is not a ${writer} checkpoint (no model config in its metadata)`);
  return extra;
}


/**
 * Resuming a generator run with another tokenizer or other settings would silently mix two runs:
 * if `ckpt` exists, refuses (CliError naming the flag, or the tokenizer by path and hash) unless
 * its recorded CLI settings match `record` for every key in `keys` and its tokenizer hash matches.
 */
export async function checkResume(cmd: string, ckpt: string, record: Record<string, unknown>, keys: readonly string[], trainedOn: 'codes' | 'latents'): Promise<void> {
  if (!existsSync(ckpt)) return;
  const { metadata } = await readSafetensorsFile(ckpt);
  const cli = (getJsonOr<Record<string, unknown>>(metadata, 'extra', {}).cli ?? {}) as Record<string, unknown>;
  const sha = record['tokenizer-sha256'];
  if (typeof cli['tokenizer-sha256'] === 'string' && cli['tokenizer-sha256'] !== sha) {
    throw new CliError(
      `${cmd}: ${ckpt} was trained on the ${trainedOn} of another tokenizer (--tokenizer ${String(cli.tokenizer)}, sha256 ${cli['tokenizer-sha256'].slice(0, 12)}...), not ${String(record.tokenizer)} (sha256 ${String(sha).slice(0, 12)}...): pass that tokenizer to resume, or --fresh to start over`,
    );
  }
  for (const k of keys) {
    if (k in cli && JSON.stringify(cli[k] ?? null) !== JSON.stringify(record[k] ?? null)) {
      throw new CliError(`${cmd}: ${ckpt} was trained with --${k} ${String(cli[k])}, not ${String(record[k])}: pass the same value to resume, or --fresh to start over`);
    }
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
