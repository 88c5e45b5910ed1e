/**
 * The diffusion half of the `webgpu-tok` command line (Node only):
 *   train-diffusion   train the class-conditional diffusion generator on a KL tokenizer's latents
 *   sample-diffusion  class-balanced samples decoded by the tokenizer: per-class grid PNG, gFID, IS analogue
 */
import { dirname, join, resolve } from 'node:path';
import * as E from '../engine/index.js';
import { ImageFeatureStats } from '../models/metrics/image-features.js';
import { decodedLatentFeatureStats, generateLatentsClassBalanced, latentClassGrid } from '../models/diffusion/generate.js';
import { BatchUploader, DataLoader, saveImageGrid, subset, type ImageDataset } from './data/index.js';
import { fileSha256 } from './file-hash.js';
import { loadContinuousTokenizer, loadDiffusionCheckpoint, saveLatentCache, trainDiffusion } from './train-diffusion.js';
import { backendFor, checkpointArg, checkpointExtra, loadArg, requireKind, planResume, scheduleOf, SCHEDULE_FLAGS, withFlagNames, type ResumeSpec, CliError, KEEP_CHECKPOINTS_OPTION, CAPTURE_OPTION, trainingControls, defaultFeatnetPath, fmt, fmtFid, loadFeatNet, loadSplit, reportTrained, gfidFields, writeGfidReport, type Command, type Io, type OptSpec, type ParsedArgs } from './cli-common.js';

/** Both datasets (MNIST, Fashion-MNIST) have 10 classes. */
const NUM_CLASSES = 10;

/** A KL tokenizer for `flag`, or a CliError naming the flag and the mismatch. */
async function continuousTokenizerArg(cmd: string, flag: string, path: string, backend: E.Backend) {
  try {
    return await loadContinuousTokenizer(path, backend, `--${flag}`);
  } catch (e) {
    throw new CliError(`${cmd}: ${(e as Error).message}`);
  }
}

/** Refuses a VQ tokenizer before any work, from the checkpoint's metadata. */
function requireKlConfig(cmd: string, flag: string, path: string, extra: Record<string, unknown>): void {
  requireKind(cmd, flag, path, extra, ['tokenizer', 'posttrain']);
  const q = (extra.config as { quantizer?: string }).quantizer ?? 'vq';
  if (q !== 'kl') throw new CliError(`${cmd}: --${flag} ${path} is a VQ tokenizer (quantizer '${q}'): the diffusion generator needs a continuous one (train-tokenizer --quantizer kl); VQ tokenizers go with train-ar`);
}

// --- train-diffusion ---------------------------------------------------------

const TRAIN_DIFFUSION_OPTIONS: OptSpec[] = [
  { name: 'tokenizer', type: 'string', required: true, meta: 'PATH', help: 'KL tokenizer checkpoint (train-tokenizer --quantizer kl), or its folder: the training images are encoded with it once (cached as --out/latents.safetensors)' },
  { name: 'out', type: 'string', required: true, meta: 'DIR', help: 'checkpoint folder (checkpoint.safetensors, metrics.jsonl, latents.safetensors, samples_*.png); an existing checkpoint there is resumed' },
  { name: 'dataset', type: 'string', choices: ['fashion-mnist', 'mnist'], help: "training images (default: the tokenizer's)" },
  { name: 'limit', type: 'int', min: 1, help: 'use only the first N training images' },
  { name: 'epochs', type: 'int', min: 1, default: 1, help: 'passes over the training set' },
  { name: 'steps', type: 'int', min: 1, help: 'total optimizer steps (overrides --epochs)' },
  { name: 'batch', type: 'int', min: 1, default: 64, help: 'batch size' },
  { name: 'lr', type: 'number', min: 0, default: 2e-4, help: 'AdamW learning rate (betas 0.9, 0.999, no weight decay; linear warmup over 5% of the steps, at most 500, then constant), gradient norm clipped at 1' },
  { name: 'dim', type: 'int', min: 4, default: 128, help: 'transformer width (a multiple of 4 and of --heads)' },
  { name: 'depth', type: 'int', min: 1, default: 4, help: 'adaLN-Zero transformer blocks' },
  { name: 'heads', type: 'int', min: 1, default: 4, help: 'attention heads' },
  { name: 'patch', type: 'int', min: 1, default: 1, help: 'patch size over the latent grid (1 or 2; must divide it)' },
  { name: 'class-dropout', type: 'number', min: 0, default: 0.1, help: 'probability of training on the null class (what classifier-free guidance needs), in [0, 1)' },
  { name: 'ema-decay', type: 'number', min: 0, default: 0.999, help: 'EMA decay of the weights used for sampling, in [0, 1) (warmed up as min(decay, (1 + n) / (10 + n)))' },
  { name: 'seed', type: 'int', min: 0, default: 0, help: 'seed of init, shuffling, noise, times, class dropout and samples' },
  { name: 'log-every', type: 'int', min: 1, default: 50, help: 'steps between progress lines (with ETA)' },
  { name: 'checkpoint-every', type: 'int', min: 1, default: 500, help: 'steps between checkpoints (and at the end)' },
  { name: 'sample-every', type: 'int', min: 0, default: 0, help: 'steps between per-class sample grids (EMA weights, 25 Euler steps; 0: none, see sample-diffusion)' },
  { name: 'fresh', type: 'bool', help: 'ignore an existing checkpoint in --out and start over' },
  KEEP_CHECKPOINTS_OPTION,
  CAPTURE_OPTION,
  { name: 'cpu', type: 'bool', help: 'run on the CPU backend instead of WebGPU' },
];

/** train-diffusion's resume rules: the tokenizer, the model and the data are the checkpoint's; the schedule may change. */
const RESUME: ResumeSpec = { kind: 'diffusion', fixed: ['dataset', 'limit', 'batch', 'seed', 'dim', 'depth', 'heads', 'patch', 'class-dropout', 'ema-decay'], schedule: SCHEDULE_FLAGS, trainedOn: 'latents' };

/** The configs and options trainDiffusion builds from the flags: the flag behind each field they check. */
const FLAGS = { trainDiffusion: { batchSize: 'batch' }, 'train-diffusion config': { dim: 'dim', depth: 'depth', heads: 'heads', patchSize: 'patch', classDropout: 'class-dropout' } };

async function runTrainDiffusion(args: ParsedArgs, io: Io): Promise<void> {
  const cmd = 'train-diffusion';
  const tokPath = checkpointArg(cmd, 'tokenizer', String(args.tokenizer));
  const tokExtra = await checkpointExtra(cmd, 'tokenizer', tokPath, 'train-tokenizer');
  requireKlConfig(cmd, 'tokenizer', tokPath, tokExtra);
  const dim = Number(args.dim);
  const heads = Number(args.heads);
  if (dim % heads !== 0) throw new CliError(`${cmd}: --dim ${dim} is not divisible by --heads ${heads}`);
  if (dim % 4 !== 0) throw new CliError(`${cmd}: --dim must be a multiple of 4 (2D sin-cos positions), got ${dim}`);
  const classDropout = Number(args['class-dropout']);
  if (!(classDropout < 1)) throw new CliError(`${cmd}: --class-dropout must be < 1, got ${classDropout}`);
  const emaDecay = Number(args['ema-decay']);
  if (!(emaDecay < 1)) throw new CliError(`${cmd}: --ema-decay must be < 1, got ${emaDecay}`);
  const dataset = String(args.dataset ?? tokExtra.dataset ?? 'fashion-mnist') as 'fashion-mnist' | 'mnist';
  const out = resolve(String(args.out));
  const ckpt = join(out, 'checkpoint.safetensors');
  const resume = !args.fresh;
  const tokSha = await fileSha256(tokPath);
  const fixed: Record<string, unknown> = {
    tokenizer: tokPath,
    'tokenizer-sha256': tokSha,
    dataset,
    limit: args.limit ?? null,
    batch: args.batch,
    seed: args.seed,
    dim,
    depth: args.depth,
    heads,
    patch: args.patch,
    'class-dropout': classDropout,
    'ema-decay': emaDecay,
  };
  const plan = resume ? await planResume(cmd, ckpt, args, fixed, RESUME, io) : null;
  const sched = scheduleOf(args, plan);
  const cliRecord = { ...fixed, ...sched.record };
  const backend = await backendFor(args);
  // The tokenizer must be finished (measured latent statistics) before its latents are cached.
  (await continuousTokenizerArg(cmd, 'tokenizer', tokPath, backend)).dispose(); // loaded only to check it
  const sampleEvery = sched.sampleEvery;
  let r;
  try {
    r = await withFlagNames(cmd, FLAGS, () => trainDiffusion({
      backend,
      tokenizerPath: tokPath,
      dataset,
      ...(args.limit !== undefined ? { trainSubset: Number(args.limit) } : {}),
      numClasses: NUM_CLASSES,
      config: { dim, depth: Number(args.depth), heads, patchSize: Number(args.patch), classDropout },
      batchSize: Number(args.batch),
      ...sched.length,
      ...(sched.lr !== undefined ? { lr: sched.lr } : {}),
      emaDecay,
      seed: Number(args.seed),
      outDir: out,
      logEvery: sched.logEvery,
      checkpointEvery: sched.checkpointEvery,
      ...(sampleEvery > 0 ? { sampleEvery, sampleOptions: { steps: 25 } } : {}),
      resume,
      extra: { cli: cliRecord },
      ...trainingControls(args),
      log: io.out,
    }));
  } catch (e) {
    // Configuration errors of the model (e.g. a patch that does not divide the grid) are argument errors.
    if (e instanceof Error && /^Diffusion config: /.test(e.message)) throw new CliError(`${cmd}: ${e.message}`);
    throw e;
  }
  reportTrained(io, ckpt, r);
  // The trained models outlive the training steps; the command is done with them.
  r.model.dispose();
  r.ema.dispose();
  r.tokenizer?.dispose();
}

// --- sample-diffusion --------------------------------------------------------

const SAMPLE_DIFFUSION_OPTIONS: OptSpec[] = [
  { name: 'checkpoint', type: 'string', required: true, meta: 'PATH', help: 'diffusion checkpoint.safetensors written by train-diffusion, or its folder' },
  { name: 'tokenizer', type: 'string', meta: 'PATH', help: 'KL tokenizer checkpoint (or folder) that decodes the latents (default: the one train-diffusion recorded)' },
  { name: 'num', type: 'int', min: 1, default: 10000, help: 'generated images, class-balanced (image i has class i mod 10)' },
  { name: 'batch', type: 'int', min: 1, default: 100, help: 'samples per sampling and decoding batch' },
  { name: 'sampler', type: 'string', choices: ['euler', 'heun'], default: 'euler', help: "ODE sampler from t = 1 to 0 ('heun': 2nd order, 2N - 1 model evaluations)" },
  { name: 'steps', type: 'int', min: 1, default: 50, help: 'ODE steps N (uniform in t)' },
  { name: 'cfg-scale', type: 'number', default: 1, help: 'classifier-free guidance scale on all latent channels (1: none)' },
  { name: 'guidance-interval', type: 'list', meta: 'LO,HI', help: 'guide only for LO <= t <= HI (default: everywhere)' },
  { name: 'raw-weights', type: 'bool', help: 'sample with the raw weights instead of the EMA ones' },
  { name: 'seed', type: 'int', min: 0, default: 0, help: 'seed of the starting noise' },
  { name: 'featnet', type: 'string', meta: 'FILE|random', help: "feature network weights (default models/features/weights/featnet-<fashion|mnist>.safetensors); 'random': a seeded untrained FeatNet (smoke tests only: numbers not comparable)" },
  { name: 'limit-val', type: 'int', min: 2, help: "use only the first N validation images of the tokenizer's dataset as the real side of gFID (default all)" },
  { name: 'grid', type: 'int', min: 1, default: 10, help: 'samples per class row of the grid PNG' },
  { name: 'out', type: 'string', meta: 'DIR', help: 'where gfid.json, gfid.md, samples.png and samples.safetensors (the latents) go (default: the checkpoint folder)' },
  { name: 'cpu', type: 'bool', help: 'run on the CPU backend instead of WebGPU' },
];

export interface DiffusionGfidResult {
  checkpoint: string;
  step: number;
  weights: 'ema' | 'raw';
  tokenizer: string;
  dataset: string;
  featnet: string;
  featureDim: number;
  numImages: number;
  numClasses: number;
  realImages: number;
  sampling: { sampler: string; steps: number; cfgScale: number; guidanceInterval: [number, number] | null; seed: number };
  gfid: number;
  inceptionScore: { generated: { mean: number; std: number }; real: { mean: number; std: number } } | null;
  sampleSeconds: number;
}

export function diffusionGfidMarkdown(r: DiffusionGfidResult): string {
  const s = r.sampling;
  const lines = [
    '# Diffusion generator: gFID',
    '',
    `- checkpoint: \`${r.checkpoint}\` (step ${r.step}, ${r.weights} weights); tokenizer \`${r.tokenizer}\``,
    `- ${r.numImages} generated images (class-balanced over ${r.numClasses} classes) vs ${r.realImages} ${r.dataset} validation images`,
    `- sampling: ${s.sampler}, ${s.steps} steps, cfg ${s.cfgScale}${s.guidanceInterval ? ` on t in [${s.guidanceInterval.join(', ')}]` : ''}, seed ${s.seed}`,
    `- feature network: ${r.featnet} (${r.featureDim}-d features)`,
    '',
    '| metric | value |',
    '|---|---|',
    `| gFID | ${fmtFid(r.gfid)} |`,
  ];
  if (r.inceptionScore) lines.push(`| IS analogue (generated / real) | ${fmt(r.inceptionScore.generated.mean, 3)} / ${fmt(r.inceptionScore.real.mean, 3)} |`);
  return lines.join('\n') + '\n';
}

async function runSampleDiffusion(args: ParsedArgs, io: Io): Promise<void> {
  const cmd = 'sample-diffusion';
  const ckpt = checkpointArg(cmd, 'checkpoint', String(args.checkpoint));
  const dExtra = await checkpointExtra(cmd, 'checkpoint', ckpt, 'train-diffusion');
  if (!('latentChannels' in (dExtra.config as object))) throw new CliError(`${cmd}: --checkpoint ${ckpt} is not a train-diffusion checkpoint (an AR generator goes with sample-ar)`);
  const recorded = typeof dExtra.tokenizerPath === 'string' ? dExtra.tokenizerPath : null;
  if (args.tokenizer === undefined && !recorded) throw new CliError(`${cmd}: ${ckpt} records no tokenizer: pass --tokenizer PATH`);
  const tokPath = checkpointArg(cmd, 'tokenizer', String(args.tokenizer ?? recorded));
  const tokExtra = await checkpointExtra(cmd, 'tokenizer', tokPath, 'train-tokenizer');
  requireKlConfig(cmd, 'tokenizer', tokPath, tokExtra);
  const gi = args['guidance-interval'] as number[] | undefined;
  if (gi && (gi.length !== 2 || !(gi[0]! <= gi[1]!))) throw new CliError(`${cmd}: --guidance-interval must be LO,HI with LO <= HI, got ${gi.join(',')}`);
  const numClasses = Number((dExtra.config as { numClasses?: number }).numClasses);
  const num = Number(args.num);
  if (num < Math.max(2, numClasses)) throw new CliError(`${cmd}: --num must be at least the number of classes (${numClasses}) and 2, got ${num}`);
  const dataset = String(dExtra.dataset ?? tokExtra.dataset ?? 'fashion-mnist');
  const backend = await backendFor(args);
  const seed = Number(args.seed);
  // The models live for the whole command.
  const { model, step, weights } = await loadArg(cmd, 'checkpoint', ckpt, () => loadDiffusionCheckpoint(ckpt, backend, { ema: !args['raw-weights'] }));
  using _generator = model;
  using tokenizer = await continuousTokenizerArg(cmd, 'tokenizer', tokPath, backend);
  const [h, w] = tokenizer.tokenGrid(32, 32);
  const [C, mh, mw] = model.latentShape;
  if (C !== tokenizer.cfg.codeDim || mh !== h || mw !== w) {
    throw new CliError(`${cmd}: --tokenizer ${tokPath} (${tokenizer.cfg.codeDim}x${h}x${w} latents) does not match the diffusion model (${C}x${mh}x${mw} latents)`);
  }
  if (recorded && resolve(recorded) !== tokPath) io.out(`note: decoding with ${tokPath}; the generator was trained on the latents of ${recorded}`);
  const loaded = await loadFeatNet(args.featnet !== undefined ? String(args.featnet) : defaultFeatnetPath(dataset), dataset, backend, seed, cmd);
  using net = loaded.net;
  const outDir = args.out !== undefined ? resolve(String(args.out)) : dirname(ckpt);
  const B = Number(args.batch);
  const split = loadSplit(dataset, io.out);
  const val: ImageDataset = args['limit-val'] !== undefined ? subset(split.val, Int32Array.from({ length: Math.min(Number(args['limit-val']), split.val.shape[0]) }, (_, i) => i)) : split.val;
  const nv = val.shape[0];
  const real = new ImageFeatureStats(net);
  const loader = new DataLoader(val, { batchSize: Math.min(B, nv), shuffle: false });
  const uploader = new BatchUploader(backend);
  try {
    for (let i = 0, nb = Math.ceil(nv / Math.min(B, nv)); i < nb; i++) await real.add(uploader.next(loader).x);
  } finally {
    uploader.dispose(); // its upload ring served this loop
  }
  const t0 = performance.now();
  const sampling = { sampler: String(args.sampler), steps: Number(args.steps), cfgScale: Number(args['cfg-scale']), guidanceInterval: gi ? ([gi[0]!, gi[1]!] as [number, number]) : null, seed };
  io.out(`sampling ${num} images from ${ckpt} (step ${step}, ${weights} weights; ${sampling.sampler}, ${sampling.steps} steps, cfg ${sampling.cfgScale}), decoding with ${tokPath}; features: ${loaded.source}`);
  const gen = await generateLatentsClassBalanced(model, {
    numImages: num,
    numClasses,
    batchSize: B,
    sampler: sampling.sampler as 'euler' | 'heun',
    steps: sampling.steps,
    cfgScale: sampling.cfgScale,
    guidanceInterval: sampling.guidanceInterval,
    generator: new E.Generator(seed),
    onBatch: (done, total) => {
      const s = (performance.now() - t0) / 1000;
      io.out(`  sampled ${done}/${total}, ${s.toFixed(1)} s, ETA ${((s / done) * (total - done)).toFixed(0)} s`);
    },
  });
  await saveLatentCache(join(outDir, 'samples.safetensors'), gen, { tokenizer: { path: tokPath, sha256: await fileSha256(tokPath) }, source: { checkpoint: ckpt, step, weights, sampling } });
  const fake = await decodedLatentFeatureStats(net, tokenizer, gen, { backend, batchSize: B });
  const sampleSeconds = (performance.now() - t0) / 1000;
  using grid = E.disposable(latentClassGrid(tokenizer, gen, { numClasses, perClass: Number(args.grid), backend }));
  await saveImageGrid(join(outDir, 'samples.png'), grid.images, { nrow: grid.perRow, range: [-1, 1] });
  const r: DiffusionGfidResult = {
    checkpoint: ckpt,
    step,
    weights,
    tokenizer: tokPath,
    dataset,
    featnet: loaded.source,
    numImages: num,
    numClasses,
    realImages: nv,
    sampling,
    ...gfidFields(fake, real),
    sampleSeconds,
  };
  writeGfidReport(io, outDir, r, diffusionGfidMarkdown(r), grid.perRow);
}

export const DIFFUSION_COMMANDS: Command[] = [
  { name: 'train-diffusion', summary: "Train the class-conditional diffusion generator (DiT, flow matching) on a KL tokenizer's latents of the training images; resumes from the checkpoint in --out.", options: TRAIN_DIFFUSION_OPTIONS, run: runTrainDiffusion },
  {
    name: 'sample-diffusion',
    summary: 'Sample class-balanced images from a diffusion checkpoint (EMA weights, Euler/Heun ODE, CFG; decoded by the KL tokenizer); gFID and IS analogue vs the validation images; writes gfid.json, gfid.md, samples.png (one row per class).',
    options: SAMPLE_DIFFUSION_OPTIONS,
    run: runSampleDiffusion,
  },
];
