/**
 * `webgpu-tok posttrain` (Node only): decoder post-training for either generator kind.
 *   AR generator (train-ar) + VQ tokenizer: the decoder learns mixed token sequences (ground truth
 *     kept with probability --sigma, else the generator's sample given the mixed prefix).
 *   Diffusion generator (train-diffusion) + KL tokenizer: the decoder learns latents noised to
 *     --t-star and denoised back by the generator.
 *   --control: the same training on the clean tokens / latents (the comparison the paper's claim
 *     needs: "after - control" is what the generator's data adds beyond training longer).
 * The kind comes from the --generator checkpoint's config (vocabSize: AR; latentChannels:
 * diffusion). The data of the first --images training images is built once and cached in --out
 * (tokens/latents.safetensors: the clean encoding; mixed/denoised.safetensors: the generator's);
 * the decoder trains through node/posttrain.ts's trainDecoder. --out/checkpoint.safetensors is a
 * tokenizer checkpoint (EMA decoder as model.*, the input's encoder, codebook and latent
 * statistics), so eval-tokenizer, sample-ar and sample-diffusion take it as a tokenizer.
 */
import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import type * as E from '../engine/index.js';
import type { CfgSchedule } from '../models/ar/sample.js';
import type { ODESampler } from '../models/diffusion/sample.js';
import { subset } from './data/index.js';
import { fileSha256 } from './file-hash.js';
import { denoiseLatents, latentRmsChange, latentRows, mixTokens, tokenRows, trainDecoder, type DecoderRows, type DenoiseSettings, type MixSettings } from './posttrain.js';
import { buildTokenCache, loadARCheckpoint, loadTokenCache, saveTokenCache } from './train-ar.js';
import { buildLatentCache, loadContinuousTokenizer, loadDiffusionCheckpoint, loadLatentCache, saveLatentCache } from './train-diffusion.js';
import { loadTokenizerCheckpoint } from './train-tokenizer.js';
import { backendFor, checkpointArg, checkpointExtra, planResume, resumeValue, withFlagNames, type ResumeSpec, CliError, KEEP_CHECKPOINTS_OPTION, CAPTURE_OPTION, trainingControls, loadSplit, reportTrained, type Command, type Io, type OptSpec, type ParsedArgs } from './cli-common.js';

/** Both datasets (MNIST, Fashion-MNIST) have 10 classes. */
const NUM_CLASSES = 10;

const OPTIONS: OptSpec[] = [
  { name: 'tokenizer', type: 'string', required: true, meta: 'PATH', help: 'tokenizer checkpoint (or folder) whose decoder is post-trained: VQ for an AR generator, KL for a diffusion one' },
  { name: 'generator', type: 'string', required: true, meta: 'PATH', help: "the generator's checkpoint (or folder), written by train-ar or train-diffusion on this tokenizer; its kind picks the method" },
  { name: 'out', type: 'string', required: true, meta: 'DIR', help: 'output folder: checkpoint.safetensors (a tokenizer checkpoint), metrics.jsonl, the data caches; an existing checkpoint there is resumed' },
  { name: 'dataset', type: 'string', choices: ['fashion-mnist', 'mnist'], help: "training images (default: the tokenizer's)" },
  { name: 'images', type: 'int', min: 1, default: 10000, help: 'training images used (the first N of the split)' },
  { name: 'batch', type: 'int', min: 1, default: 64, help: 'batch size of the decoder training' },
  { name: 'epochs', type: 'int', min: 1, default: 2, help: 'passes over the --images images' },
  { name: 'lr', type: 'number', min: 0, default: 5e-5, help: 'AdamW peak learning rate of the decoder (betas 0.9, 0.95, no weight decay), cosine to --min-lr' },
  { name: 'min-lr', type: 'number', min: 0, default: 1e-5, help: 'learning rate at the end of the cosine' },
  { name: 'ema-decay', type: 'number', min: 0, default: 0.999, help: 'EMA decay of the decoder weights, in [0, 1) (0: none); the EMA decoder is the result' },
  { name: 'seed', type: 'int', min: 0, default: 0, help: "seed of the generator's data (seed + 2000) and the shuffling (seed + 7)" },
  { name: 'gen-batch', type: 'int', min: 1, default: 100, help: 'sequences / latents per generator batch while building the data' },
  { name: 'control', type: 'bool', help: 'train on the clean tokens / latents instead (the control run; the generator is not run)' },
  { name: 'sigma', type: 'number', min: 0, help: 'AR: probability of keeping the ground-truth token at each position, in [0, 1] (default 0.7)' },
  { name: 'cfg-scale', type: 'number', help: "classifier-free guidance scale of the generator's samples (default 1: none)" },
  { name: 'cfg-schedule', type: 'string', choices: ['constant', 'rar'], help: "AR: 'constant' or 'rar' (cosine ramp from 1 to --cfg-scale) (default constant)" },
  { name: 'temperature', type: 'number', min: 0, help: 'AR: sampling temperature (default 1; 0: greedy)' },
  { name: 'top-k', type: 'int', min: 0, help: 'AR: keep the k most likely tokens (default 0: all)' },
  { name: 'top-p', type: 'number', min: 0, help: 'AR: nucleus sampling mass, in (0, 1] (default 1: all)' },
  { name: 't-star', type: 'number', min: 0, help: 'diffusion: noise level t* the latents are noised to before the generator denoises them, in [0, 1] (default 0.3)' },
  { name: 'steps', type: 'int', min: 1, help: 'diffusion: ODE steps of a full [1, 0] run; the [t*, 0] run takes round(steps * t*) (default 50)' },
  { name: 'sampler', type: 'string', choices: ['euler', 'heun'], help: 'diffusion: ODE sampler (default euler)' },
  { name: 'guidance-interval', type: 'list', meta: 'LO,HI', help: 'diffusion: guide only for LO <= t <= HI (default: everywhere)' },
  { name: 'log-every', type: 'int', min: 1, help: 'steps between progress lines (with ETA) (default: ~10 per run)' },
  { name: 'checkpoint-every', type: 'int', min: 1, help: 'steps between checkpoints (and at the end) (default: half the run)' },
  { name: 'fresh', type: 'bool', help: 'ignore an existing checkpoint in --out and start over' },
  KEEP_CHECKPOINTS_OPTION,
  CAPTURE_OPTION,
  { name: 'cpu', type: 'bool', help: 'run on the CPU backend instead of WebGPU' },
];

type Kind = 'ar' | 'diffusion';
const KIND_FLAGS: Record<Kind, readonly string[]> = { ar: ['sigma', 'cfg-schedule', 'temperature', 'top-k', 'top-p'], diffusion: ['t-star', 'steps', 'sampler', 'guidance-interval'] };
const KIND_NAME: Record<Kind, string> = { ar: 'an AR generator (train-ar)', diffusion: 'a diffusion generator (train-diffusion)' };

/**
 * posttrain's resume rules: the tokenizer, the generator, its data and the EMA are the
 * checkpoint's; the schedule (learning rates, epochs, intervals) may change.
 */
const RESUME: ResumeSpec = {
  kind: 'posttrain',
  fixed: ['kind', 'control', 'dataset', 'images', 'batch', 'ema-decay', 'seed', 'gen-batch', 'sigma', 'cfg-scale', 'cfg-schedule', 'temperature', 'top-k', 'top-p', 't-star', 'steps', 'sampler', 'guidance-interval'],
  schedule: ['epochs', 'lr', 'min-lr', 'log-every', 'checkpoint-every'],
  trainedOn: 'codes',
};

const num = (v: unknown, d: number): number => (v === undefined ? d : Number(v));

/** The generator's kind from its config, or a CliError naming the flag. */
function generatorKind(cmd: string, path: string, extra: Record<string, unknown>): Kind {
  const c = extra.config as object;
  if ('vocabSize' in c) return 'ar';
  if ('latentChannels' in c) return 'diffusion';
  throw new CliError(`${cmd}: --generator ${path} is neither a train-ar nor a train-diffusion checkpoint (its config has no vocabSize or latentChannels)`);
}

/** A progress callback that prints at most every 5 s (and at the end), with an ETA. */
function progressLine(io: Io, what: string): (done: number, total: number) => void {
  const t0 = performance.now();
  let last = -Infinity;
  return (done, total) => {
    const now = performance.now();
    if (done < total && now - last < 5000) return;
    last = now;
    const s = (now - t0) / 1000;
    io.out(`  ${what} ${done}/${total}, ${s.toFixed(1)} s, ETA ${((s / done) * (total - done)).toFixed(0)} s`);
  };
}

/** The cached rows at `path` when they were built by the same tokenizer, generator and settings. */
async function cachedRows<T>(path: string, tokSha: string, key: Record<string, unknown>, load: (p: string) => Promise<{ data: T; meta: { tokenizer: { sha256: string | null }; source: Record<string, unknown> } }>, io: Io): Promise<{ data: T; source: Record<string, unknown> } | null> {
  if (!existsSync(path)) return null;
  try {
    const c = await load(path);
    if (c.meta.tokenizer.sha256 === tokSha && JSON.stringify(c.meta.source.posttrain) === JSON.stringify(key)) return { data: c.data, source: c.meta.source };
    io.out(`${path} was built with other settings: rebuilding`);
  } catch (e) {
    io.out(`${path} unreadable (${(e as Error).message}): rebuilding`);
  }
  return null;
}

/** What building the decoder's rows needs: where the caches go, the tokenizer, the generator and its settings. */
interface RowsContext {
  io: Io;
  out: string;
  tokPath: string;
  tokSha: string;
  genPath: string;
  /** The generator's data settings, the cache key of mixed / denoised rows. */
  key: Record<string, unknown>;
  build: { backend: E.Backend; batchSize: number; seed: number };
  /** The clean encoding of the first n training images (cached as tokens / latents.safetensors). */
  encode: { backend: E.Backend; tokenizerPath: string; dataset: 'fashion-mnist' | 'mnist'; subset: number; log: (line: string) => void };
}

/** AR: the clean tokens (the control, `mix` null) or the mixed ones, and what they are for the record. */
async function tokenData(c: RowsContext, mix: MixSettings | null): Promise<{ rows: DecoderRows; data: Record<string, unknown> }> {
  const { io } = c;
  const enc = await buildTokenCache({ ...c.encode, cachePath: join(c.out, 'tokens.safetensors') });
  enc.tokenizer?.dispose(); // only the cached tokens are needed
  const gt = enc.tokens;
  if (!mix) return { rows: tokenRows(gt), data: { rows: 'clean tokens' } };
  const path = join(c.out, 'mixed.safetensors');
  const hit = await cachedRows(path, c.tokSha, c.key, async (p) => {
    const r = await loadTokenCache(p);
    return { data: r.tokens, meta: r.meta };
  }, io);
  if (hit && hit.data.shape.join() === gt.shape.join()) return { rows: tokenRows(hit.data), data: { rows: 'mixed tokens', ...mix, keptFraction: Number(hit.source.keptFraction) } };
  const t0 = performance.now();
  let r;
  {
    using ar = (await loadARCheckpoint(c.genPath, c.build.backend)).model;
    io.out(`mixing ${gt.shape[0]} token sequences with ${c.genPath} (sigma ${mix.sigma}, cfg ${mix.cfgScale})`);
    r = await mixTokens(ar, gt, mix, { ...c.build, onProgress: progressLine(io, 'mixed') });
  }
  await saveTokenCache(path, r.ds, { tokenizer: { path: c.tokPath, sha256: c.tokSha }, source: { posttrain: c.key, keptFraction: r.keptFraction } });
  io.out(`${gt.shape[0]} mixed sequences, ground truth kept at ${(100 * r.keptFraction).toFixed(1)}% of positions, in ${((performance.now() - t0) / 1000).toFixed(1)} s -> ${path}`);
  return { rows: tokenRows(r.ds), data: { rows: 'mixed tokens', ...mix, keptFraction: r.keptFraction } };
}

/** Diffusion: the clean latents (the control, `denoise` null) or the denoised ones, and what they are for the record. */
async function latentData(c: RowsContext, denoise: DenoiseSettings | null): Promise<{ rows: DecoderRows; data: Record<string, unknown> }> {
  const { io } = c;
  const enc = await buildLatentCache({ ...c.encode, cachePath: join(c.out, 'latents.safetensors') });
  enc.tokenizer?.dispose(); // only the cached latents are needed
  const clean = enc.latents;
  if (!denoise) return { rows: latentRows(clean), data: { rows: 'clean latents' } };
  const path = join(c.out, 'denoised.safetensors');
  const hit = await cachedRows(path, c.tokSha, c.key, async (p) => {
    const r = await loadLatentCache(p);
    return { data: r.latents, meta: r.meta };
  }, io);
  let denoised;
  if (hit && hit.data.shape.join() === clean.shape.join()) denoised = hit.data;
  else {
    const t0 = performance.now();
    {
      using dit = (await loadDiffusionCheckpoint(c.genPath, c.build.backend)).model;
      io.out(`denoising ${clean.shape[0]} latents from t* = ${denoise.tStar} with ${c.genPath} (${Math.max(1, Math.round(denoise.steps * denoise.tStar))} ${denoise.sampler} steps, cfg ${denoise.cfgScale})`);
      denoised = await denoiseLatents(dit, clean, denoise, { ...c.build, onProgress: progressLine(io, 'denoised') });
    }
    await saveLatentCache(path, denoised, { tokenizer: { path: c.tokPath, sha256: c.tokSha }, source: { posttrain: c.key } });
    io.out(`${clean.shape[0]} denoised latents in ${((performance.now() - t0) / 1000).toFixed(1)} s -> ${path}`);
  }
  const rms = latentRmsChange(denoised, clean);
  io.out(`denoised latents: RMS change ${rms.toFixed(3)} from the clean ones (unit-std channels)`);
  return { rows: latentRows(denoised), data: { rows: 'denoised latents', ...denoise, latentRmsChange: rms } };
}

async function runPosttrain(args: ParsedArgs, io: Io): Promise<void> {
  const cmd = 'posttrain';
  const tokPath = checkpointArg(cmd, 'tokenizer', String(args.tokenizer));
  const genPath = checkpointArg(cmd, 'generator', String(args.generator));
  const tokExtra = await checkpointExtra(cmd, 'tokenizer', tokPath, 'train-tokenizer');
  const gExtra = await checkpointExtra(cmd, 'generator', genPath, 'train-ar or train-diffusion');
  const tokCfg = tokExtra.config as { quantizer?: string };
  if ('vocabSize' in tokCfg || 'latentChannels' in tokCfg) throw new CliError(`${cmd}: --tokenizer ${tokPath} is a generator checkpoint, not a train-tokenizer one (the generator goes with --generator)`);
  const kind = generatorKind(cmd, genPath, gExtra);
  const quantizer = tokCfg.quantizer ?? 'vq';
  if (kind === 'ar' && quantizer !== 'vq') throw new CliError(`${cmd}: --generator ${genPath} is an AR generator, but --tokenizer ${tokPath} is a continuous tokenizer (quantizer '${quantizer}'): AR generators go with VQ tokenizers`);
  if (kind === 'diffusion' && quantizer !== 'kl') throw new CliError(`${cmd}: --generator ${genPath} is a diffusion generator, but --tokenizer ${tokPath} is a VQ tokenizer (quantizer '${quantizer}'): diffusion generators go with KL tokenizers`);
  const other: Kind = kind === 'ar' ? 'diffusion' : 'ar';
  for (const f of KIND_FLAGS[other]) {
    if (args[f] !== undefined) throw new CliError(`${cmd}: --${f} is for ${KIND_NAME[other]}; --generator ${genPath} is ${KIND_NAME[kind]} (its options: ${[...KIND_FLAGS[kind], 'cfg-scale'].map((x) => `--${x}`).join(', ')})`);
  }
  const control = Boolean(args.control);
  if (control) {
    for (const f of [...KIND_FLAGS[kind], 'cfg-scale']) if (args[f] !== undefined) throw new CliError(`${cmd}: --${f} has no effect with --control (the control trains on the clean ${kind === 'ar' ? 'tokens' : 'latents'}; the generator is not run)`);
  }

  // The generator's data settings (null: the control does not run the generator).
  const gi = args['guidance-interval'] as number[] | undefined;
  const mix: MixSettings | null =
    kind === 'ar' && !control
      ? { sigma: num(args.sigma, 0.7), temperature: num(args.temperature, 1), topK: num(args['top-k'], 0), topP: num(args['top-p'], 1), cfgScale: num(args['cfg-scale'], 1), cfgSchedule: String(args['cfg-schedule'] ?? 'constant') as CfgSchedule }
      : null;
  const denoise: DenoiseSettings | null =
    kind === 'diffusion' && !control
      ? { tStar: num(args['t-star'], 0.3), steps: num(args.steps, 50), sampler: String(args.sampler ?? 'euler') as ODESampler, cfgScale: num(args['cfg-scale'], 1), guidanceInterval: gi ? ([gi[0]!, gi[1]!] as const) : null }
      : null;
  if (mix && !(mix.sigma <= 1)) throw new CliError(`${cmd}: --sigma must be in [0, 1], got ${mix.sigma}`);
  if (mix && !(mix.topP > 0 && mix.topP <= 1)) throw new CliError(`${cmd}: --top-p must be in (0, 1], got ${mix.topP}`);
  if (denoise && !(denoise.tStar <= 1)) throw new CliError(`${cmd}: --t-star must be in [0, 1], got ${denoise.tStar}`);
  if (gi && (gi.length !== 2 || !(gi[0]! <= gi[1]!))) throw new CliError(`${cmd}: --guidance-interval must be LO,HI with LO <= HI, got ${gi.join(',')}`);
  const emaDecay = Number(args['ema-decay']);
  if (!(emaDecay < 1)) throw new CliError(`${cmd}: --ema-decay must be < 1, got ${emaDecay}`);

  // The generator must have been trained on this tokenizer's codes / latents. A post-trained
  // tokenizer keeps its source's encoder and codebook: the source's generators fit it too.
  const tokSha = await fileSha256(tokPath);
  const genSha = await fileSha256(genPath);
  const baseSha = String((tokExtra.posttrain as { baseTokenizerSha256?: string } | undefined)?.baseTokenizerSha256 ?? tokSha);
  const genTok = ((gExtra.cli as Record<string, unknown> | undefined)?.['tokenizer-sha256'] ?? gExtra.tokenizerSha256) as string | undefined;
  const trainedOn = kind === 'ar' ? 'codes' : 'latents';
  if (typeof genTok === 'string' && genTok !== tokSha && genTok !== baseSha) {
    const was = typeof gExtra.tokenizerPath === 'string' ? ` (${gExtra.tokenizerPath})` : '';
    throw new CliError(`${cmd}: --generator ${genPath} was trained on the ${trainedOn} of another tokenizer${was}, sha256 ${genTok.slice(0, 12)}..., not --tokenizer ${tokPath} (sha256 ${tokSha.slice(0, 12)}...): pass the tokenizer it was trained on`);
  }
  if (typeof genTok !== 'string') io.out(`note: --generator ${genPath} records no tokenizer hash: assuming it was trained on the ${trainedOn} of ${tokPath}`);

  const dataset = String(args.dataset ?? tokExtra.dataset ?? 'fashion-mnist') as 'fashion-mnist' | 'mnist';
  const out = resolve(String(args.out));
  const ckpt = join(out, 'checkpoint.safetensors');
  const resume = !args.fresh;
  const fixed: Record<string, unknown> = {
    tokenizer: tokPath,
    'tokenizer-sha256': tokSha,
    generator: genPath,
    'generator-sha256': genSha,
    kind,
    control,
    dataset,
    images: args.images,
    batch: args.batch,
    'ema-decay': emaDecay,
    seed: args.seed,
    'gen-batch': control ? null : args['gen-batch'],
    ...(mix ? { sigma: mix.sigma, 'cfg-scale': mix.cfgScale, 'cfg-schedule': mix.cfgSchedule, temperature: mix.temperature, 'top-k': mix.topK, 'top-p': mix.topP } : {}),
    ...(denoise ? { 't-star': denoise.tStar, steps: denoise.steps, sampler: denoise.sampler, 'cfg-scale': denoise.cfgScale, 'guidance-interval': denoise.guidanceInterval } : {}),
  };
  const plan = resume ? await planResume(cmd, ckpt, args, fixed, { ...RESUME, trainedOn }, io) : null;
  if (plan && !control) {
    const sha = plan.recorded['generator-sha256'];
    if (typeof sha === 'string' && sha !== genSha) throw new CliError(`${cmd}: ${ckpt} was post-trained with another generator (--generator ${String(plan.recorded.generator)}, sha256 ${sha.slice(0, 12)}...), not ${genPath} (sha256 ${genSha.slice(0, 12)}...): pass that generator to resume, or --fresh to start over`);
  }
  // The schedule: given flags, else the resumed run's, else the defaults.
  const value = (k: string) => resumeValue(args, plan, k) ?? args[k];
  const settings = { batchSize: Number(args.batch), epochs: Number(value('epochs')), lr: Number(value('lr')), minLr: Number(value('min-lr')), emaDecay, seed: Number(args.seed) };
  if (settings.minLr > settings.lr) throw new CliError(`${cmd}: --min-lr ${settings.minLr} is above --lr ${settings.lr}`);
  const logEvery = value('log-every');
  const checkpointEvery = value('checkpoint-every');
  const cliRecord = { ...fixed, epochs: settings.epochs, lr: settings.lr, 'min-lr': settings.minLr, 'log-every': logEvery ?? null, 'checkpoint-every': checkpointEvery ?? null };

  const backend = await backendFor(args);
  // The generator's output must be this tokenizer's token / latent grid.
  let base;
  try {
    base = kind === 'diffusion' ? await loadContinuousTokenizer(tokPath, backend, '--tokenizer') : (await loadTokenizerCheckpoint(tokPath, backend)).model;
  } catch (e) {
    throw new CliError(`${cmd}: ${(e as Error).message}`);
  }
  const S = base.cfg.imageSize;
  const [h, w] = base.tokenGrid(S, S);
  const codeDim = base.cfg.codeDim;
  const K = base.cfg.codebookSize;
  const inChannels = base.cfg.inChannels;
  base.dispose(); // loaded only for its geometry
  const gc = gExtra.config as { vocabSize?: number; seqLen?: number; latentChannels?: number; grid?: [number, number]; numClasses: number };
  if (kind === 'ar' && (gc.vocabSize !== K || gc.seqLen !== h * w)) throw new CliError(`${cmd}: --tokenizer ${tokPath} (codebook ${K}, ${h}x${w} tokens) does not match the AR generator (vocabulary ${gc.vocabSize}, ${gc.seqLen} tokens)`);
  if (kind === 'diffusion' && (gc.latentChannels !== codeDim || gc.grid?.[0] !== h || gc.grid?.[1] !== w)) {
    throw new CliError(`${cmd}: --tokenizer ${tokPath} (${codeDim}x${h}x${w} latents) does not match the diffusion generator (${gc.latentChannels}x${gc.grid?.join('x')} latents)`);
  }
  if (!(gc.numClasses >= NUM_CLASSES)) throw new CliError(`${cmd}: --generator ${genPath} has ${gc.numClasses} classes; the ${dataset} images have ${NUM_CLASSES}`);

  const split = loadSplit(dataset, io.out);
  const n = Math.min(Number(args.images), split.train.shape[0]);
  if (n < settings.batchSize) throw new CliError(`${cmd}: --images ${n} is less than one --batch of ${settings.batchSize}: lower --batch`);
  const images = subset(split.train, Int32Array.from({ length: n }, (_, i) => i));
  if (images.shape[2] !== S || images.shape[3] !== S || images.shape[1] !== inChannels) {
    throw new CliError(`${cmd}: --tokenizer ${tokPath} takes ${inChannels}x${S}x${S} images, the ${dataset} images are ${images.shape.slice(1).join('x')}`);
  }
  const build = { backend, batchSize: Number(args['gen-batch']), seed: settings.seed };
  const key = { generator: genPath, 'generator-sha256': genSha, dataset, images: n, seed: settings.seed, 'gen-batch': build.batchSize, ...(mix ?? denoise ?? {}) };
  const rc: RowsContext = { io, out, tokPath, tokSha, genPath, key, build, encode: { backend, tokenizerPath: tokPath, dataset, subset: n, log: io.out } };
  const { rows, data } = kind === 'ar' ? await tokenData(rc, mix) : await latentData(rc, denoise);

  // The tokenizer's metadata (config, dataset, latent statistics, losses) minus its own run's
  // CLI record and length; the post-training record next to it.
  const { cli: _cli, totalSteps: _steps, batchSize: _batch, decoderWeights: _w, ...inherited } = tokExtra;
  const posttrain = { kind, control, tokenizer: tokPath, tokenizerSha256: tokSha, baseTokenizerSha256: baseSha, generator: genPath, generatorSha256: genSha, dataset, images: n, ...settings, data };
  const r = await withFlagNames(cmd, { trainDecoder: { batchSize: 'batch' } }, () => trainDecoder({
    backend,
    checkpoint: tokPath,
    images,
    rows,
    outDir: out,
    settings,
    label: `posttrain${control ? ' control' : ''}`,
    log: io.out,
    ...(logEvery !== undefined ? { logEvery: Number(logEvery) } : {}),
    ...(checkpointEvery !== undefined ? { checkpointEvery: Number(checkpointEvery) } : {}),
    resume,
    extra: { ...inherited, dataset, posttrain, cli: cliRecord },
    ...trainingControls(args),
  }));
  r.model.dispose(); // saved; the command is done with it
  io.out(`decoder post-trained on the ${String(data.rows)} of ${n} ${dataset} images (${settings.emaDecay > 0 ? 'EMA weights' : 'raw weights'}); evaluate with 'webgpu-tok eval-tokenizer --checkpoint ${out}'`);
  reportTrained(io, ckpt, { startStep: r.startStep, totalSteps: r.steps });
}

export const POSTTRAIN_COMMAND: Command = {
  name: 'posttrain',
  summary:
    "Post-train a tokenizer's decoder on its generator's output (AR: mixed tokens, --sigma; diffusion: denoised latents, --t-star; --control: the clean ones) with encoder and codebook frozen; writes a tokenizer checkpoint to --out (resumable).",
  options: OPTIONS,
  run: runPosttrain,
};
