/**
 * The `webgpu-tok` command line (Node only): one bin, subcommands
 *   train-tokenizer  train the tokenizer, VQ or KL (resumable, progress with ETA)
 *   eval-tokenizer   rFID, pFID grid (VQ) or nFID grid + iFID (KL), PSNR, SSIM, codebook usage (+ JSON, markdown, PNG)
 *   train-featnet    train the feature network (delegates to examples/train-featnet.ts)
 *   train-ar         train the class-conditional AR generator on a tokenizer's codes (resumable)
 *   sample-ar        class-balanced AR samples decoded by the tokenizer: per-class grid PNG, gFID, IS analogue
 *   train-diffusion  train the class-conditional diffusion generator on a KL tokenizer's latents (cli-diffusion.ts)
 *   sample-diffusion class-balanced diffusion samples: per-class grid PNG, gFID, IS analogue (cli-diffusion.ts)
 *   posttrain        post-train a tokenizer's decoder on its AR or diffusion generator's output, or the
 *                    clean control (cli-posttrain.ts); writes a tokenizer checkpoint (resumable)
 * `webgpu-tok <command> --help` lists each command's options. Options are `--name value` or
 * `--name=value`; booleans are `--name` alone. Bad arguments raise CliError naming the flag, and
 * main() prints them and returns exit code 2 (also for a training run stopped at a NaN or Inf).
 * Training commands save and exit with 130 / 143 on the first SIGINT / SIGTERM (node/train-stop.ts).
 */
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import * as E from '../engine/index.js';
import {
  continuousReconstructionGrid,
  DEFAULT_NFID_TAUS,
  DEFAULT_PFID_ALPHAS,
  defaultPfidDelta,
  encodeLatentSet,
  evaluateContinuousTokenizer,
  evaluateTokenizer,
  LATENT_NOISE_PRESETS,
  reconstructionGrid,
  type ContinuousEvalResult,
  type LatentNoiseConfig,
  type LatentNoisePreset,
  type TokenizerConfig,
  type TokenizerEvalResult,
  type VQTokenizer,
} from '../models/tokenizer/index.js';
import { InceptionV3 } from '../models/features/inception.js';
import { BatchUploader, DataLoader, saveImageGrid, subset, writeFileAtomicSync, type ImageDataset } from './data/index.js';
import { defaultPerceptualNetPath, loadTokenizerCheckpoint, trainTokenizer } from './train-tokenizer.js';
import { classGrid, decodedFeatureStats, generateClassBalanced } from '../models/ar/generate.js';
import { ImageFeatureStats } from '../models/metrics/image-features.js';
import { fileSha256, loadARCheckpoint, saveTokenCache, trainAR } from './train-ar.js';
import { parseRunArg, plotRuns } from './plot-runs.js';
import { anyEvalTable, readEvalArg } from './eval-table.js';
import { DIFFUSION_COMMANDS } from './cli-diffusion.js';
import { POSTTRAIN_COMMAND } from './cli-posttrain.js';
import { MissingPackageError } from './missing-package.js';
import {
  backendFor,
  checkpointArg,
  checkpointExtra,
  loadArg,
  loadArgSync,
  requireKind,
  CliError,
  planResume,
  resumeValue,
  scheduleOf,
  SCHEDULE_FLAGS,
  withFlagNames,
  type ResumeSpec,
  KEEP_CHECKPOINTS_OPTION,
  CAPTURE_OPTION,
  shellCommand,
  trainingControls,
  commandHelp,
  defaultFeatnetPath,
  fmt,
  fmtFid,
  loadFeatNet,
  loadSplit,
  parseArgs,
  reportTrained,
  resultJson,
  writeGfidReport,
  gfidFields,
  ROOT,
  type Command,
  type Io,
  type OptSpec,
  type ParsedArgs,
} from './cli-common.js';
import { NonFiniteError } from './finite-watch.js';
import { ConfigError, validateConfig } from '../models/config-schema.js';
import { TOKENIZER_CONFIG_SCHEMA } from '../models/config-schemas.js';
import { TrainingStopped } from './train-stop.js';
import { ResumeError } from './resume.js';
import { SafetensorsError } from '../nn/checkpoint/index.js';
import { NonFiniteImagesError } from '../models/metrics/image-features.js';

export { CliError, commandHelp, parseArgs, type Io, type OptSpec, type ParsedArgs } from './cli-common.js';

// --- shared helpers ----------------------------------------------------------

/** Tokenizer size presets of --config (or a JSON file with a partial TokenizerConfig). */
export const CONFIG_PRESETS: Record<string, Partial<TokenizerConfig>> = {
  /** The reference tokenizer: ch 64, chMult [1, 2, 2], 2 res blocks, K 1024, d 16 (3.16M parameters, 8x8 tokens). */
  default: {},
  /** Half the width, one res block per level (8x8 tokens); with --arch vit: width 128, 2 heads, 3 blocks each way. */
  small: { ch: 32, numResBlocks: 1, width: 128, heads: 2, depth: 3 },
  /** For smoke tests: ch 8, one downsampling (16x16 tokens), K 256, d 8; with --arch vit: width 32, 2 heads, 1 block each way (8x8 tokens). */
  tiny: { ch: 8, chMult: [1, 2], numResBlocks: 1, codebookSize: 256, codeDim: 8, width: 32, heads: 2, depth: 1 },
};

/**
 * The --config preset or file as a checked partial TokenizerConfig: unknown keys (a typo would
 * silently train the default), wrong types, out-of-range sizes and a non-object file (`[1,2,3]`,
 * `null`) are refused with ConfigError naming the file and the field.
 */
function resolveConfigArg(cmd: string, v: string): Partial<TokenizerConfig> {
  if (CONFIG_PRESETS[v]) return validateConfig(`--config preset ${v}`, TOKENIZER_CONFIG_SCHEMA, CONFIG_PRESETS[v]);
  if (v.endsWith('.json')) {
    if (!existsSync(v)) throw new CliError(`${cmd}: --config file ${v} does not exist`);
    let parsed: unknown;
    try {
      parsed = JSON.parse(readFileSync(v, 'utf8'));
    } catch (e) {
      throw new CliError(`${cmd}: --config file ${v} is not valid JSON: ${(e as Error).message}`);
    }
    return validateConfig(`--config file ${v}`, TOKENIZER_CONFIG_SCHEMA, parsed);
  }
  throw new CliError(`${cmd}: --config must be one of ${Object.keys(CONFIG_PRESETS).join(', ')} or a .json file, got '${v}'`);
}

// --- train-tokenizer ---------------------------------------------------------

/** train-tokenizer's resume rules: the model and data flags are the checkpoint's; the schedule may change. */
const TOKENIZER_RESUME: ResumeSpec = {
  kind: 'tokenizer',
  fixed: ['dataset', 'config', 'arch', 'quantizer', 'latent-channels', 'kl-weight', 'perturb', 'noise-beta', 'noise-tau-max', 'batch', 'limit', 'seed', 'perceptual-weight', 'perceptual-net', 'disc-weight', 'disc-start', 'disc-ch'],
  schedule: [...SCHEDULE_FLAGS, 'disc-lr'],
};

/** The configs and options trainTokenizer builds from the flags: the flag behind each field they check. */
const TOKENIZER_FLAGS = {
  trainTokenizer: { batchSize: 'batch' },
  'trainTokenizer discConfig': { ch: 'disc-ch' },
  'train-tokenizer config': { codeDim: 'latent-channels', klWeight: 'kl-weight', 'latentNoise.beta': 'noise-beta', 'latentNoise.tauMax': 'noise-tau-max' },
};

const TRAIN_OPTIONS: OptSpec[] = [
  { name: 'out', type: 'string', required: true, meta: 'DIR', help: 'checkpoint folder (checkpoint.safetensors, metrics.jsonl, recon_*.png); an existing checkpoint there is resumed' },
  { name: 'dataset', type: 'string', choices: ['fashion-mnist', 'mnist'], default: 'fashion-mnist', help: 'training data (padded to 32x32, pixels in [-1, 1])' },
  { name: 'config', type: 'string', default: 'default', meta: 'default|small|tiny|FILE.json', help: 'tokenizer size preset or a JSON file with TokenizerConfig fields' },
  { name: 'arch', type: 'string', choices: ['cnn', 'vit'], help: "encoder/decoder: 'cnn' (VQGAN-style) or 'vit' (4x4 patches + 64 learnable latent tokens, RobusTok/TiTok-style) (default: the --config's, else cnn)" },
  { name: 'quantizer', type: 'string', choices: ['vq', 'kl'], default: 'vq', help: "bottleneck: 'vq' (l2-normalized codebook) or 'kl' (continuous latents: mean and log-variance, KL term; for a diffusion generator)" },
  { name: 'latent-channels', type: 'int', min: 1, help: 'KL: latent channels (default 4: 8x8x4 latents for 32x32 images, as SD\'s f8c4)' },
  { name: 'kl-weight', type: 'number', min: 0, help: 'KL: weight of the KL term (default 1e-5: a beta = 1 VAE at pixel noise std 0.072 for 32x32 images)' },
  { name: 'perturb', type: 'string', choices: ['none', 'paper', 'paper-continuous'], default: 'none', help: "VQ: latent perturbation preset ('paper': alpha 1, beta 0.1, delta = 2.4% of K, annealed); KL: noise-augmented decoding ('paper-continuous': beta 0.1, tau ~ U(0, 1), gamma 3, annealed)" },
  { name: 'noise-beta', type: 'number', min: 0, help: "KL: fraction of each batch decoded from noised latents (overrides 'paper-continuous''s 0.1; needs --perturb paper-continuous)" },
  { name: 'noise-tau-max', type: 'number', min: 0, help: "KL: largest interpolation weight tau of the noise, in [0, 1] (overrides 'paper-continuous''s 1; needs --perturb paper-continuous)" },
  { name: 'epochs', type: 'int', min: 1, default: 1, help: 'passes over the training set' },
  { name: 'steps', type: 'int', min: 1, help: 'total optimizer steps (overrides --epochs)' },
  { name: 'batch', type: 'int', min: 1, default: 64, help: 'batch size' },
  { name: 'lr', type: 'number', min: 0, default: 2e-4, help: 'AdamW learning rate (betas 0.5, 0.9)' },
  { name: 'perceptual-weight', type: 'number', min: 0, default: 0, help: 'weight of the LPIPS-style perceptual loss on the frozen FeatNet (0: off; e.g. 0.1)' },
  { name: 'perceptual-net', type: 'string', meta: 'FILE', help: 'FeatNet weights of the perceptual loss (default models/features/weights/featnet-fashion.safetensors; needs --perceptual-weight)' },
  { name: 'disc-weight', type: 'number', min: 0, default: 0, help: "hinge-GAN weight with a PatchGAN discriminator, times the adaptive weight ||grad rec|| / (||grad gan|| + 1e-4) on the decoder's last layer (0: off; taming uses 0.8)" },
  { name: 'disc-start', type: 'int', min: 0, meta: 'STEP', help: 'step from which the GAN term and the discriminator updates run (default 1; needs --disc-weight)' },
  { name: 'disc-lr', type: 'number', min: 0, help: 'discriminator AdamW learning rate (default: --lr; needs --disc-weight)' },
  { name: 'disc-ch', type: 'int', min: 1, help: 'discriminator base width (default 64; needs --disc-weight)' },
  { name: 'limit', type: 'int', min: 1, help: 'use only the first N training images' },
  { name: 'seed', type: 'int', min: 0, default: 0, help: 'seed of init, shuffling and perturbation' },
  { name: 'log-every', type: 'int', min: 1, default: 50, help: 'steps between progress lines (with ETA)' },
  { name: 'checkpoint-every', type: 'int', min: 1, default: 500, help: 'steps between checkpoints (and at the end)' },
  { name: 'sample-every', type: 'int', min: 0, default: 0, help: 'steps between reconstruction PNGs (0: only at the end)' },
  { name: 'fresh', type: 'bool', help: 'ignore an existing checkpoint in --out and start over' },
  KEEP_CHECKPOINTS_OPTION,
  CAPTURE_OPTION,
  { name: 'cpu', type: 'bool', help: 'run on the CPU backend instead of WebGPU' },
];

async function runTrain(args: ParsedArgs, io: Io): Promise<void> {
  const cmd = 'train-tokenizer';
  const out = resolve(String(args.out));
  const quantizer = String(args.quantizer) as 'vq' | 'kl';
  const perturb = String(args.perturb) as 'none' | 'paper' | 'paper-continuous';
  if (quantizer === 'vq') {
    for (const k of ['latent-channels', 'kl-weight', 'noise-beta', 'noise-tau-max'] as const) if (args[k] !== undefined) throw new CliError(`${cmd}: --${k} is for KL tokenizers: add --quantizer kl`);
    if (perturb === 'paper-continuous') throw new CliError(`${cmd}: --perturb paper-continuous is for KL tokenizers (--quantizer kl); a VQ tokenizer takes none or paper`);
  } else {
    if (perturb === 'paper') throw new CliError(`${cmd}: --perturb paper is the VQ perturbation; a KL tokenizer (--quantizer kl) takes none or paper-continuous`);
    for (const k of ['noise-beta', 'noise-tau-max'] as const) {
      if (args[k] !== undefined && perturb !== 'paper-continuous') throw new CliError(`${cmd}: --${k} needs --perturb paper-continuous`);
      if (args[k] !== undefined && Number(args[k]) > 1) throw new CliError(`${cmd}: --${k} must be in [0, 1], got ${String(args[k])}`);
    }
  }
  const config: Partial<TokenizerConfig> = {
    ...resolveConfigArg(cmd, String(args.config)),
    ...(args.arch !== undefined ? { arch: String(args.arch) as 'cnn' | 'vit' } : {}),
    ...(quantizer === 'kl' ? { quantizer, codeDim: args['latent-channels'] !== undefined ? Number(args['latent-channels']) : 4 } : {}),
    ...(args['kl-weight'] !== undefined ? { klWeight: Number(args['kl-weight']) } : {}),
  };
  const latentNoise: LatentNoisePreset | LatentNoiseConfig =
    perturb === 'paper-continuous'
      ? { ...LATENT_NOISE_PRESETS['paper-continuous'], ...(args['noise-beta'] !== undefined ? { beta: Number(args['noise-beta']) } : {}), ...(args['noise-tau-max'] !== undefined ? { tauMax: Number(args['noise-tau-max']) } : {}) }
      : 'none';
  const ckpt = join(out, 'checkpoint.safetensors');
  const resume = !args.fresh;
  const perceptualWeight = Number(args['perceptual-weight']);
  const discWeight = Number(args['disc-weight']);
  for (const k of ['disc-start', 'disc-lr', 'disc-ch'] as const) {
    if (args[k] !== undefined && !(discWeight > 0)) throw new CliError(`${cmd}: --${k} has no effect without --disc-weight > 0`);
  }
  if (args['perceptual-net'] !== undefined) {
    if (!(perceptualWeight > 0)) throw new CliError(`${cmd}: --perceptual-net has no effect without --perceptual-weight > 0`);
    if (!existsSync(String(args['perceptual-net']))) throw new CliError(`${cmd}: --perceptual-net file ${String(args['perceptual-net'])} does not exist`);
  }
  const perceptualNet = args['perceptual-net'] !== undefined ? resolve(String(args['perceptual-net'])) : defaultPerceptualNetPath();
  if (perceptualWeight > 0 && !existsSync(perceptualNet)) {
    throw new CliError(`${cmd}: the perceptual loss needs FeatNet weights: ${perceptualNet} does not exist (train them with 'webgpu-tok train-featnet' or pass --perceptual-net FILE)`);
  }
  const fixed = {
    dataset: args.dataset,
    config: args.config,
    arch: args.arch ?? null,
    quantizer,
    'latent-channels': args['latent-channels'] ?? null,
    'kl-weight': args['kl-weight'] ?? null,
    perturb,
    'noise-beta': args['noise-beta'] ?? null,
    'noise-tau-max': args['noise-tau-max'] ?? null,
    batch: args.batch,
    limit: args.limit ?? null,
    seed: args.seed,
    'perceptual-weight': perceptualWeight,
    'perceptual-net': args['perceptual-net'] ?? null,
    'disc-weight': discWeight,
    'disc-start': args['disc-start'] ?? null,
    'disc-ch': args['disc-ch'] ?? null,
  };
  // An existing checkpoint is resumed: the flags of the model and data must match it; the
  // schedule flags given are applied, the others keep the checkpoint's values.
  const plan = resume ? await planResume(cmd, ckpt, args, fixed, TOKENIZER_RESUME, io) : null;
  const sched = scheduleOf(args, plan);
  const discLr = resumeValue(args, plan, 'disc-lr');
  const backend = await backendFor(args);
  const cliRecord = { ...fixed, ...sched.record, 'disc-lr': discLr ?? null };
  const r = await withFlagNames(cmd, TOKENIZER_FLAGS, () => trainTokenizer({
    backend,
    dataset: args.dataset as 'fashion-mnist' | 'mnist',
    config,
    ...(quantizer === 'vq' ? { perturbation: perturb as 'none' | 'paper' } : { latentNoise }),
    batchSize: Number(args.batch),
    ...sched.length,
    ...(args.limit !== undefined ? { trainSubset: Number(args.limit) } : {}),
    ...(sched.lr !== undefined ? { lr: sched.lr } : {}),
    seed: Number(args.seed),
    ...(perceptualWeight > 0 ? { perceptualWeight, perceptualNet } : {}),
    ...(discWeight > 0
      ? {
          discWeight,
          ...(args['disc-start'] !== undefined ? { discStart: Number(args['disc-start']) } : {}),
          ...(discLr !== undefined ? { discLr: Number(discLr) } : {}),
          ...(args['disc-ch'] !== undefined ? { discConfig: { ch: Number(args['disc-ch']) } } : {}),
        }
      : {}),
    outDir: out,
    logEvery: sched.logEvery,
    checkpointEvery: sched.checkpointEvery,
    sampleEvery: sched.sampleEvery || Number.MAX_SAFE_INTEGER,
    resume,
    extra: { cli: cliRecord },
    ...trainingControls(args),
    log: io.out,
  }));
  reportTrained(io, ckpt, r);
  r.model.dispose(); // saved; the command is done with it
}

// --- eval-tokenizer ----------------------------------------------------------

const EVAL_OPTIONS: OptSpec[] = [
  { name: 'checkpoint', type: 'string', required: true, meta: 'PATH', help: 'checkpoint.safetensors written by train-tokenizer, or its folder' },
  { name: 'featnet', type: 'string', meta: 'FILE|random', help: "feature network weights (FeatNet safetensors; default models/features/weights/featnet-<fashion|mnist>.safetensors); 'random': a seeded untrained FeatNet (smoke tests only: numbers not comparable)" },
  { name: 'inception', type: 'string', meta: 'FILE', help: "use pytorch-fid's Inception-v3 (2048-d pool features, 299x299 resize) with weights from this safetensors file instead of FeatNet: literature-comparable FID (slow without a GPU)" },
  { name: 'dataset', type: 'string', choices: ['fashion-mnist', 'mnist'], help: 'validation data (default: the one the checkpoint was trained on)' },
  { name: 'limit', type: 'int', min: 2, help: 'use only the first N validation images (default all)' },
  { name: 'batch', type: 'int', min: 1, default: 100, help: 'evaluation batch size' },
  { name: 'alphas', type: 'list', default: [...DEFAULT_PFID_ALPHAS], help: 'VQ: pFID alphas in [0, 1] (the documented default pFID is alpha 0.3, always included)' },
  { name: 'delta', type: 'int', min: 1, help: "VQ: pFID delta (default: the 'paper' preset's, round(K * 100 / 4096))" },
  { name: 'taus', type: 'list', default: [...DEFAULT_NFID_TAUS], help: 'KL: nFID noise levels tau in [0, 1]: decode (1 - tau) z + tau eps (the documented default nFID is tau 0.2, always included)' },
  { name: 'ifid-train', type: 'int', min: 0, default: 10000, help: 'KL: training images encoded as the iFID neighbour set (0: no iFID)' },
  { name: 'ifid-k', type: 'int', min: 1, default: 10, help: 'KL: iFID nearest training latents per validation latent (cosine similarity)' },
  { name: 'seed', type: 'int', min: 0, default: 0, help: 'seed of the pFID perturbations (KL: of the nFID noise and the iFID draws)' },
  { name: 'grid', type: 'int', min: 1, default: 8, help: 'images per row of the reconstruction grid PNG' },
  { name: 'out', type: 'string', meta: 'DIR', help: 'where eval.json, eval.md and recon-grid.png go (default: the checkpoint folder)' },
  { name: 'cpu', type: 'bool', help: 'run on the CPU backend instead of WebGPU' },
];

function loadInception(file: string, backend: E.Backend): { net: InceptionV3; source: string } {
  if (!existsSync(file)) throw new CliError(`eval-tokenizer: --inception file ${file} does not exist (convert pytorch-fid's pt_inception weights to safetensors)`);
  // Images are in [-1, 1], what the network expects; gray images are repeated to 3 channels.
  const net = loadArgSync('eval-tokenizer', 'inception', file, () => InceptionV3.fromSafetensors(readFileSync(file), { backend, inputRange: '-1,1' }));
  net.eval();
  return { net, source: `Inception-v3 ${file}` };
}

export function evalMarkdown(r: TokenizerEvalResult, info: { checkpoint: string; step: number; dataset: string; featnet: string }): string {
  const lines = [
    `# Tokenizer evaluation`,
    '',
    `- checkpoint: \`${info.checkpoint}\` (step ${info.step})`,
    `- dataset: ${info.dataset} validation, ${r.count} images`,
    `- feature network: ${info.featnet} (${r.featureDim}-d features)`,
    `- pFID: every image's tokens perturbed (beta = 1) at fixed alpha, delta = ${r.pfidDefault.delta}, seed ${r.seed}; default pFID = alpha ${r.pfidDefault.alpha}`,
    '',
    '| metric | value |',
    '|---|---|',
    `| rFID | ${fmtFid(r.rfid)} |`,
    `| pFID (alpha ${r.pfidDefault.alpha}, delta ${r.pfidDefault.delta}) | ${fmtFid(r.pfidDefault.fid)} |`,
    ...r.pfid.map((p) => `| pFID alpha ${p.alpha} | ${fmtFid(p.fid)} |`),
    `| PSNR (dB) | ${fmt(r.psnr, 2)} |`,
    `| SSIM | ${fmt(r.ssim, 4)} |`,
    `| codebook usage | ${fmt(r.usage, 1)}% (${r.usedCodes} of ${r.codebookSize}) |`,
    `| code perplexity | ${fmt(r.perplexity, 1)} |`,
  ];
  if (r.inceptionScore) lines.push(`| IS analogue (real / recon) | ${fmt(r.inceptionScore.real.mean, 3)} / ${fmt(r.inceptionScore.recon.mean, 3)} |`);
  return lines.join('\n') + '\n';
}

async function runEval(args: ParsedArgs, io: Io): Promise<void> {
  const cmd = 'eval-tokenizer';
  const ckpt = checkpointArg(cmd, 'checkpoint', String(args.checkpoint));
  requireKind(cmd, 'checkpoint', ckpt, await checkpointExtra(cmd, 'checkpoint', ckpt, 'train-tokenizer'), ['tokenizer', 'posttrain']);
  const alphas = args.alphas as number[];
  for (const a of alphas) if (!(a >= 0 && a <= 1)) throw new CliError(`${cmd}: --alphas values must be in [0, 1], got ${a}`);
  const backend = await backendFor(args);
  const { model, step, extra } = await loadArg(cmd, 'checkpoint', ckpt, () => loadTokenizerCheckpoint(ckpt, backend));
  if (model.continuous) return runEvalContinuous(args, io, { ckpt, model, step, extra, backend });
  // The models live for the whole command.
  using _model = model;
  const K = model.cfg.codebookSize;
  const delta = args.delta !== undefined ? Number(args.delta) : defaultPfidDelta(K);
  if (delta > K) throw new CliError(`${cmd}: --delta must be at most the codebook size ${K}, got ${delta}`);
  const dataset = String(args.dataset ?? extra.dataset ?? 'fashion-mnist');
  const seed = Number(args.seed);
  if (args.inception !== undefined && args.featnet !== undefined) throw new CliError(`${cmd}: pass either --featnet or --inception, not both`);
  const { net, source } =
    args.inception !== undefined
      ? loadInception(String(args.inception), backend)
      : await loadFeatNet(args.featnet !== undefined ? String(args.featnet) : defaultFeatnetPath(dataset), dataset, backend, seed);
  using _net = net;
  const outDir = args.out !== undefined ? resolve(String(args.out)) : dirname(ckpt);
  const split = loadSplit(dataset, io.out);
  const val: ImageDataset = args.limit !== undefined ? subset(split.val, Int32Array.from({ length: Math.min(Number(args.limit), split.val.shape[0]) }, (_, i) => i)) : split.val;
  const n = val.shape[0];
  const B = Math.min(Number(args.batch), n);
  const loader = new DataLoader(val, { batchSize: B, shuffle: false });
  const uploader = new BatchUploader(backend);
  const nb = Math.ceil(n / B);
  const t0 = performance.now();
  const batches = function* () {
    for (let i = 0; i < nb; i++) yield uploader.next(loader).x;
  };
  io.out(`evaluating ${ckpt} (step ${step}) on ${n} ${dataset} validation images, features: ${source}`);
  const r = await evaluateTokenizer(model, net, batches(), {
    alphas,
    delta,
    seed,
    onBatch: (done) => {
      const s = (performance.now() - t0) / 1000;
      io.out(`  ${done}/${n} images, ${s.toFixed(1)} s, ETA ${((s / done) * (n - done)).toFixed(0)} s`);
    },
  });
  uploader.dispose(); // its upload ring served the evaluation
  const info = { checkpoint: ckpt, step, dataset, featnet: source };
  writeFileAtomicSync(join(outDir, 'eval.json'), resultJson({ ...info, ...r }));
  const md = evalMarkdown(r, info);
  writeFileAtomicSync(join(outDir, 'eval.md'), md);
  // Grid: originals, clean reconstructions, perturbed reconstructions at each alpha.
  const g = Math.min(Number(args.grid), n);
  const first = new DataLoader(subset(val, Int32Array.from({ length: g }, (_, i) => i)), { batchSize: g, shuffle: false }).next();
  using x = E.tensor(first.x, first.shape, { backend });
  using grid = reconstructionGrid(model, x, { alphas: [...new Set([...alphas].sort((a, b) => a - b))], delta, seed });
  await saveImageGrid(join(outDir, 'recon-grid.png'), grid, { nrow: g, range: [-1, 1] });
  io.out(md);
  io.out(`wrote ${join(outDir, 'eval.json')}, eval.md, recon-grid.png (rows: originals, clean, alpha ${alphas.join(', ')})`);
}

export function continuousEvalMarkdown(r: ContinuousEvalResult, info: { checkpoint: string; step: number; dataset: string; featnet: string }): string {
  const lines = [
    `# Tokenizer evaluation (continuous, KL)`,
    '',
    `- checkpoint: \`${info.checkpoint}\` (step ${info.step})`,
    `- dataset: ${info.dataset} validation, ${r.count} images`,
    `- feature network: ${info.featnet} (${r.featureDim}-d features)`,
    `- nFID(tau): decode (1 - tau) z + tau eps of every validation latent (normalized space), seed ${r.seed}; default nFID = tau ${r.nfidDefault.tau}`,
    r.ifid === null ? '- iFID: not computed (no training latents)' : `- iFID: slerp (alpha ${r.ifidAlpha}) towards one of the ${r.ifidK} nearest of ${r.ifidTrainCount} training latents (cosine), drawn with probability softmax(-MSE)`,
    '',
    '| metric | value |',
    '|---|---|',
    `| rFID | ${fmtFid(r.rfid)} |`,
    `| nFID (tau ${r.nfidDefault.tau}) | ${fmtFid(r.nfidDefault.fid)} |`,
    ...r.nfid.map((n) => `| nFID tau ${n.tau} | ${fmtFid(n.fid)} |`),
    ...(r.ifid === null ? [] : [`| iFID | ${fmtFid(r.ifid)} |`]),
    `| PSNR (dB) | ${fmt(r.psnr, 2)} |`,
    `| SSIM | ${fmt(r.ssim, 4)} |`,
  ];
  if (r.inceptionScore) lines.push(`| IS analogue (real / recon) | ${fmt(r.inceptionScore.real.mean, 3)} / ${fmt(r.inceptionScore.recon.mean, 3)} |`);
  return lines.join('\n') + '\n';
}

/** eval-tokenizer for a KL checkpoint: rFID, nFID grid, iFID, PSNR, SSIM, IS analogue. */
async function runEvalContinuous(args: ParsedArgs, io: Io, c: { ckpt: string; model: VQTokenizer; step: number; extra: Record<string, unknown>; backend: E.Backend }): Promise<void> {
  const cmd = 'eval-tokenizer';
  const { ckpt, model, step, extra, backend } = c;
  const taus = args.taus as number[];
  // The models and the training latents live for the whole command.
  using _model = model;
  for (const t of taus) if (!(t >= 0 && t <= 1)) throw new CliError(`${cmd}: --taus values must be in [0, 1], got ${t}`);
  if (!(await model.latentStats.measured())) throw new CliError(`${cmd}: ${ckpt} has no measured latent statistics (its training did not finish: run train-tokenizer again with the same --out to complete it)`);
  const dataset = String(args.dataset ?? extra.dataset ?? 'fashion-mnist');
  const seed = Number(args.seed);
  if (args.inception !== undefined && args.featnet !== undefined) throw new CliError(`${cmd}: pass either --featnet or --inception, not both`);
  const loaded =
    args.inception !== undefined
      ? loadInception(String(args.inception), backend)
      : await loadFeatNet(args.featnet !== undefined ? String(args.featnet) : defaultFeatnetPath(dataset), dataset, backend, seed);
  using net = loaded.net;
  const outDir = args.out !== undefined ? resolve(String(args.out)) : dirname(ckpt);
  const split = loadSplit(dataset, io.out);
  const val: ImageDataset = args.limit !== undefined ? subset(split.val, Int32Array.from({ length: Math.min(Number(args.limit), split.val.shape[0]) }, (_, i) => i)) : split.val;
  const n = val.shape[0];
  const uploader = new BatchUploader(backend);
  const batchesOf = (ds: ImageDataset) => {
    const bs = Math.min(Number(args.batch), ds.shape[0]);
    const loader = new DataLoader(ds, { batchSize: bs, shuffle: false });
    return (function* () {
      for (let i = 0, nb = Math.ceil(ds.shape[0] / bs); i < nb; i++) yield uploader.next(loader).x;
    })();
  };
  const nTrain = Math.min(Number(args['ifid-train']), split.train.shape[0]);
  const t0 = performance.now();
  if (nTrain > 0) io.out(`encoding ${nTrain} ${dataset} training images for iFID's neighbour set`);
  using trainLatents = nTrain > 0 ? await encodeLatentSet(model, batchesOf(subset(split.train, Int32Array.from({ length: nTrain }, (_, i) => i)))) : null;
  io.out(`evaluating ${ckpt} (step ${step}, continuous) on ${n} ${dataset} validation images, features: ${loaded.source}`);
  const r = await evaluateContinuousTokenizer(model, net, batchesOf(val), trainLatents, {
    taus,
    seed,
    ifidK: Number(args['ifid-k']),
    onBatch: (done) => {
      const s = (performance.now() - t0) / 1000;
      io.out(`  ${done}/${n} images, ${s.toFixed(1)} s, ETA ${((s / done) * (n - done)).toFixed(0)} s`);
    },
  });
  const info = { checkpoint: ckpt, step, dataset, featnet: loaded.source };
  writeFileAtomicSync(join(outDir, 'eval.json'), resultJson({ ...info, quantizer: 'kl', ...r }));
  const md = continuousEvalMarkdown(r, info);
  writeFileAtomicSync(join(outDir, 'eval.md'), md);
  // Grid: originals, clean reconstructions, noised at each tau, iFID interpolations.
  const g = Math.min(Number(args.grid), n);
  const first = new DataLoader(subset(val, Int32Array.from({ length: g }, (_, i) => i)), { batchSize: g, shuffle: false }).next();
  using x = E.tensor(first.x, first.shape, { backend });
  using grid = await continuousReconstructionGrid(model, x, { taus: [...new Set([...taus].sort((a, b) => a - b))], seed, trainLatents, ifidK: Number(args['ifid-k']) });
  await saveImageGrid(join(outDir, 'recon-grid.png'), grid, { nrow: g, range: [-1, 1] });
  uploader.dispose(); // its upload ring served the evaluation
  io.out(md);
  io.out(`wrote ${join(outDir, 'eval.json')}, eval.md, recon-grid.png (rows: originals, clean, tau ${taus.join(', ')}${trainLatents ? ', iFID' : ''})`);
}

// --- train-featnet -----------------------------------------------------------

async function runTrainFeatnet(_args: ParsedArgs, io: Io, rest: string[]): Promise<void> {
  const candidates = [join(ROOT, 'examples', 'train-featnet.ts'), join(ROOT, 'examples', 'train-featnet.js')];
  const file = candidates.find((p) => existsSync(p));
  if (!file) throw new CliError(`train-featnet: needs examples/train-featnet.ts, which ships with a source checkout only (looked in ${join(ROOT, 'examples')})`);
  const mod = (await import(pathToFileURL(file).href)) as Record<string, unknown>;
  const fn = (mod.main ?? mod.cli) as ((argv: string[], log?: (l: string) => void) => Promise<unknown>) | undefined;
  if (typeof fn !== 'function') throw new Error(`train-featnet: ${file} exports no main(argv) function`);
  try {
    await fn(rest, io.out);
  } catch (e) {
    // The example's own argument errors ('train-featnet: --x ...') are argument errors here too.
    if (e instanceof Error && /^train-featnet: /.test(e.message)) throw new CliError(e.message);
    throw e;
  }
}

// --- train-ar / sample-ar ----------------------------------------------------

/** Both datasets (MNIST, Fashion-MNIST) have 10 classes. */
const AR_NUM_CLASSES = 10;

/** Refuses a KL tokenizer for the AR generator, from the checkpoint's metadata. */
function requireVqConfig(cmd: string, path: string, extra: Record<string, unknown>): void {
  requireKind(cmd, 'tokenizer', path, extra, ['tokenizer', 'posttrain']);
  const q = (extra.config as { quantizer?: string }).quantizer ?? 'vq';
  if (q !== 'vq') throw new CliError(`${cmd}: --tokenizer ${path} is a continuous tokenizer (quantizer '${q}'): the AR generator needs a VQ one; KL tokenizers go with train-diffusion`);
}

const TRAIN_AR_OPTIONS: OptSpec[] = [
  { name: 'tokenizer', type: 'string', required: true, meta: 'PATH', help: 'tokenizer checkpoint.safetensors written by train-tokenizer, or its folder: the training images are encoded with it once (cached as --out/tokens.safetensors)' },
  { name: 'out', type: 'string', required: true, meta: 'DIR', help: 'checkpoint folder (checkpoint.safetensors, metrics.jsonl, tokens.safetensors, samples_*.png); an existing checkpoint there is resumed' },
  { name: 'dataset', type: 'string', choices: ['fashion-mnist', 'mnist'], help: "training images (default: the tokenizer's)" },
  { name: 'limit', type: 'int', min: 1, help: 'use only the first N training images' },
  { name: 'epochs', type: 'int', min: 1, default: 1, help: 'passes over the training set' },
  { name: 'steps', type: 'int', min: 1, help: 'total optimizer steps (overrides --epochs)' },
  { name: 'batch', type: 'int', min: 1, default: 64, help: 'batch size' },
  { name: 'lr', type: 'number', min: 0, default: 4e-4, help: 'AdamW peak learning rate (betas 0.9, 0.95, weight decay 0.05; 5% warmup, then cosine to 0.1 lr)' },
  { name: 'dim', type: 'int', min: 1, default: 128, help: 'transformer width' },
  { name: 'depth', type: 'int', min: 1, default: 4, help: 'transformer blocks' },
  { name: 'heads', type: 'int', min: 1, default: 4, help: 'attention heads (the head size --dim / --heads must be a multiple of 4: 2D RoPE)' },
  { name: 'class-dropout', type: 'number', min: 0, default: 0.1, help: 'probability of training on the null class instead of the label (what classifier-free guidance needs), in [0, 1)' },
  { name: 'seed', type: 'int', min: 0, default: 0, help: 'seed of init, shuffling, class dropout and samples' },
  { name: 'log-every', type: 'int', min: 1, default: 50, help: 'steps between progress lines (with ETA)' },
  { name: 'checkpoint-every', type: 'int', min: 1, default: 500, help: 'steps between checkpoints (and at the end)' },
  { name: 'sample-every', type: 'int', min: 0, default: 0, help: 'steps between per-class sample grids decoded by the tokenizer (and at the end; 0: none, see sample-ar)' },
  { name: 'fresh', type: 'bool', help: 'ignore an existing checkpoint in --out and start over' },
  KEEP_CHECKPOINTS_OPTION,
  CAPTURE_OPTION,
  { name: 'cpu', type: 'bool', help: 'run on the CPU backend instead of WebGPU' },
];

/** train-ar's resume rules: the tokenizer, the model and the data are the checkpoint's; the schedule may change. */
const AR_RESUME: ResumeSpec = { kind: 'ar', fixed: ['dataset', 'limit', 'batch', 'seed', 'dim', 'depth', 'heads', 'class-dropout'], schedule: SCHEDULE_FLAGS, trainedOn: 'codes' };

/** The configs and options trainAR builds from the flags: the flag behind each field they check. */
const AR_FLAGS = { trainAR: { batchSize: 'batch' }, 'train-ar config': { dim: 'dim', depth: 'depth', heads: 'heads', classDropout: 'class-dropout' } };

async function runTrainAR(args: ParsedArgs, io: Io): Promise<void> {
  const cmd = 'train-ar';
  const tokPath = checkpointArg(cmd, 'tokenizer', String(args.tokenizer));
  const tokExtra = await checkpointExtra(cmd, 'tokenizer', tokPath, 'train-tokenizer');
  requireVqConfig(cmd, tokPath, tokExtra);
  const dim = Number(args.dim);
  const heads = Number(args.heads);
  if (dim % heads !== 0) throw new CliError(`${cmd}: --dim ${dim} is not divisible by --heads ${heads}`);
  if ((dim / heads) % 4 !== 0) throw new CliError(`${cmd}: the head size --dim / --heads = ${dim / heads} must be a multiple of 4 (2D RoPE)`);
  const classDropout = Number(args['class-dropout']);
  if (!(classDropout < 1)) throw new CliError(`${cmd}: --class-dropout must be < 1, got ${classDropout}`);
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
    'class-dropout': classDropout,
  };
  const plan = resume ? await planResume(cmd, ckpt, args, fixed, AR_RESUME, io) : null;
  const sched = scheduleOf(args, plan);
  const cliRecord = { ...fixed, ...sched.record };
  const backend = await backendFor(args);
  const sampleEvery = sched.sampleEvery;
  const r = await withFlagNames(cmd, AR_FLAGS, () => trainAR({
    backend,
    tokenizerPath: tokPath,
    dataset,
    ...(args.limit !== undefined ? { trainSubset: Number(args.limit) } : {}),
    numClasses: AR_NUM_CLASSES,
    config: { dim, depth: Number(args.depth), heads, classDropout },
    batchSize: Number(args.batch),
    ...sched.length,
    ...(sched.lr !== undefined ? { lr: sched.lr } : {}),
    seed: Number(args.seed),
    outDir: out,
    logEvery: sched.logEvery,
    checkpointEvery: sched.checkpointEvery,
    ...(sampleEvery > 0 ? { sampleEvery } : {}),
    resume,
    extra: { cli: cliRecord },
    ...trainingControls(args),
    log: io.out,
  }));
  reportTrained(io, ckpt, r);
  // The trained model (saved) and the tokenizer that cached the tokens: the command is done with them.
  r.model.dispose();
  r.tokenizer?.dispose();
}

const SAMPLE_AR_OPTIONS: OptSpec[] = [
  { name: 'checkpoint', type: 'string', required: true, meta: 'PATH', help: 'AR checkpoint.safetensors written by train-ar, or its folder' },
  { name: 'tokenizer', type: 'string', meta: 'PATH', help: 'tokenizer checkpoint (or folder) that decodes the tokens (default: the one train-ar recorded)' },
  { name: 'num', type: 'int', min: 1, default: 10000, help: 'generated images, class-balanced (image i has class i mod 10)' },
  { name: 'batch', type: 'int', min: 1, default: 100, help: 'sequences per sampling and decoding batch' },
  { name: 'cfg-scale', type: 'number', default: 1, help: 'classifier-free guidance scale (1: none)' },
  { name: 'cfg-schedule', type: 'string', choices: ['constant', 'rar'], default: 'constant', help: "'constant' (LlamaGen) or 'rar': cosine ramp from 1 to --cfg-scale over the sequence" },
  { name: 'temperature', type: 'number', min: 0, default: 1, help: 'sampling temperature (0: greedy)' },
  { name: 'top-k', type: 'int', min: 0, default: 0, help: 'keep the k most likely tokens (0: all)' },
  { name: 'top-p', type: 'number', min: 0, default: 1, help: 'nucleus sampling mass, in (0, 1] (1: all)' },
  { name: 'seed', type: 'int', min: 0, default: 0, help: 'seed of the sampling' },
  { name: 'featnet', type: 'string', meta: 'FILE|random', help: "feature network weights (default models/features/weights/featnet-<fashion|mnist>.safetensors); 'random': a seeded untrained FeatNet (smoke tests only: numbers not comparable)" },
  { name: 'limit-val', type: 'int', min: 2, help: "use only the first N validation images of the tokenizer's dataset as the real side of gFID (default all)" },
  { name: 'grid', type: 'int', min: 1, default: 10, help: 'samples per class row of the grid PNG' },
  { name: 'out', type: 'string', meta: 'DIR', help: 'where gfid.json, gfid.md, samples.png and samples.safetensors (the token sequences) go (default: the checkpoint folder)' },
  { name: 'cpu', type: 'bool', help: 'run on the CPU backend instead of WebGPU' },
];

export interface GfidResult {
  checkpoint: string;
  step: number;
  tokenizer: string;
  dataset: string;
  featnet: string;
  featureDim: number;
  numImages: number;
  numClasses: number;
  realImages: number;
  sampling: { cfgScale: number; cfgSchedule: string; temperature: number; topK: number; topP: number; seed: number };
  gfid: number;
  /** IS analogue (FeatNet's class logits) of the generated and the real images; null without logits. */
  inceptionScore: { generated: { mean: number; std: number }; real: { mean: number; std: number } } | null;
  sampleSeconds: number;
}

export function gfidMarkdown(r: GfidResult): string {
  const s = r.sampling;
  const lines = [
    '# AR generator: gFID',
    '',
    `- checkpoint: \`${r.checkpoint}\` (step ${r.step}); tokenizer \`${r.tokenizer}\``,
    `- ${r.numImages} generated images (class-balanced over ${r.numClasses} classes) vs ${r.realImages} ${r.dataset} validation images`,
    `- sampling: cfg ${s.cfgScale} (${s.cfgSchedule}), temperature ${s.temperature}, top-k ${s.topK}, top-p ${s.topP}, seed ${s.seed}`,
    `- feature network: ${r.featnet} (${r.featureDim}-d features)`,
    '',
    '| metric | value |',
    '|---|---|',
    `| gFID | ${fmtFid(r.gfid)} |`,
  ];
  if (r.inceptionScore) lines.push(`| IS analogue (generated / real) | ${fmt(r.inceptionScore.generated.mean, 3)} / ${fmt(r.inceptionScore.real.mean, 3)} |`);
  return lines.join('\n') + '\n';
}

async function runSampleAR(args: ParsedArgs, io: Io): Promise<void> {
  const cmd = 'sample-ar';
  const ckpt = checkpointArg(cmd, 'checkpoint', String(args.checkpoint));
  const arExtra = await checkpointExtra(cmd, 'checkpoint', ckpt, 'train-ar');
  if (!('vocabSize' in (arExtra.config as object))) throw new CliError(`${cmd}: --checkpoint ${ckpt} is not a train-ar checkpoint (a diffusion generator goes with sample-diffusion)`);
  const recorded = typeof arExtra.tokenizerPath === 'string' ? arExtra.tokenizerPath : null;
  if (args.tokenizer === undefined && !recorded) throw new CliError(`${cmd}: ${ckpt} records no tokenizer: pass --tokenizer PATH`);
  const tokPath = checkpointArg(cmd, 'tokenizer', String(args.tokenizer ?? recorded));
  const tokExtra = await checkpointExtra(cmd, 'tokenizer', tokPath, 'train-tokenizer');
  requireVqConfig(cmd, tokPath, tokExtra);
  const topP = Number(args['top-p']);
  if (!(topP > 0 && topP <= 1)) throw new CliError(`${cmd}: --top-p must be in (0, 1], got ${topP}`);
  const cfgScale = Number(args['cfg-scale']);
  const numClasses = Number((arExtra.config as { numClasses?: number }).numClasses);
  const num = Number(args.num);
  if (num < Math.max(2, numClasses)) throw new CliError(`${cmd}: --num must be at least the number of classes (${numClasses}) and 2, got ${num}`);
  const dataset = String(arExtra.dataset ?? tokExtra.dataset ?? 'fashion-mnist');
  const backend = await backendFor(args);
  const seed = Number(args.seed);
  // The models live for the whole command.
  const { model: ar, step } = await loadArg(cmd, 'checkpoint', ckpt, () => loadARCheckpoint(ckpt, backend));
  using _ar = ar;
  using tokenizer = (await loadArg(cmd, 'tokenizer', tokPath, () => loadTokenizerCheckpoint(tokPath, backend))).model;
  // The AR model's tokens must be this tokenizer's codes on its grid.
  // The datasets here are 32x32 (MNIST-style images padded by 2).
  const [h, w] = tokenizer.tokenGrid(32, 32);
  if (ar.cfg.vocabSize !== tokenizer.cfg.codebookSize || ar.seqLen !== h * w) {
    throw new CliError(`${cmd}: --tokenizer ${tokPath} (codebook ${tokenizer.cfg.codebookSize}, ${h}x${w} tokens) does not match the AR model (vocabulary ${ar.cfg.vocabSize}, ${ar.seqLen} tokens)`);
  }
  if (recorded && resolve(recorded) !== tokPath) io.out(`note: decoding with ${tokPath}; the AR model was trained on the codes of ${recorded}`);
  const loaded = await loadFeatNet(args.featnet !== undefined ? String(args.featnet) : defaultFeatnetPath(dataset), dataset, backend, seed, cmd);
  using net = loaded.net;
  const outDir = args.out !== undefined ? resolve(String(args.out)) : dirname(ckpt);
  const B = Number(args.batch);

  // The real side: validation images of the tokenizer's dataset.
  const split = loadSplit(dataset, io.out);
  const val: ImageDataset = args['limit-val'] !== undefined ? subset(split.val, Int32Array.from({ length: Math.min(Number(args['limit-val']), split.val.shape[0]) }, (_, i) => i)) : split.val;
  const nv = val.shape[0];
  const S = tokenizer.cfg.imageSize;
  if (val.shape[2] !== S || val.shape[3] !== S || val.shape[1] !== tokenizer.cfg.inChannels) {
    throw new CliError(`${cmd}: --tokenizer ${tokPath} makes ${tokenizer.cfg.inChannels}x${S}x${S} images, the ${dataset} validation images are ${val.shape.slice(1).join('x')}`);
  }
  const real = new ImageFeatureStats(net);
  const loader = new DataLoader(val, { batchSize: Math.min(B, nv), shuffle: false });
  const uploader = new BatchUploader(backend);
  try {
    for (let i = 0, nb = Math.ceil(nv / Math.min(B, nv)); i < nb; i++) await real.add(uploader.next(loader).x);
  } finally {
    uploader.dispose(); // its upload ring served this loop
  }

  const t0 = performance.now();
  const eta = (what: string) => (done: number, total: number) => {
    const s = (performance.now() - t0) / 1000;
    io.out(`  ${what} ${done}/${total}, ${s.toFixed(1)} s, ETA ${((s / done) * (total - done)).toFixed(0)} s`);
  };
  const sampling = { cfgScale, cfgSchedule: String(args['cfg-schedule']), temperature: Number(args.temperature), topK: Number(args['top-k']), topP, seed };
  io.out(`sampling ${num} images from ${ckpt} (step ${step}), decoding with ${tokPath}; features: ${loaded.source}`);
  const gen = await generateClassBalanced(ar, {
    numImages: num,
    numClasses,
    batchSize: B,
    cfgScale,
    cfgSchedule: sampling.cfgSchedule as 'constant' | 'rar',
    temperature: sampling.temperature,
    topK: sampling.topK,
    topP,
    generator: new E.Generator(seed),
    onBatch: eta('sampled'),
  });
  await saveTokenCache(join(outDir, 'samples.safetensors'), gen, { tokenizer: { path: tokPath, sha256: await fileSha256(tokPath) }, source: { checkpoint: ckpt, step, sampling } });
  const fake = await decodedFeatureStats(net, tokenizer, gen, { backend, batchSize: B });
  const sampleSeconds = (performance.now() - t0) / 1000;
  using grid = E.disposable(classGrid(tokenizer, gen, { numClasses, perClass: Number(args.grid), backend }));
  await saveImageGrid(join(outDir, 'samples.png'), grid.images, { nrow: grid.perRow, range: [-1, 1] });
  const r: GfidResult = {
    checkpoint: ckpt,
    step,
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
  writeGfidReport(io, outDir, r, gfidMarkdown(r), grid.perRow);
}

const PLOT_OPTIONS: OptSpec[] = [
  { name: 'out', type: 'string', required: true, meta: 'FILE.svg', help: 'where the chart goes' },
  { name: 'terms', type: 'string', meta: 'a,b,...', help: "loss terms to plot (default: every term of the first run; e.g. 'rec')" },
  { name: 'smoothing', type: 'number', min: 0, default: 0, help: 'EMA smoothing weight in [0, 1) (TensorBoard-style)' },
  { name: 'log-y', type: 'bool', help: 'logarithmic y axis' },
  { name: 'title', type: 'string', help: 'chart title' },
];

async function runPlot(args: ParsedArgs, io: Io, rest: string[]): Promise<void> {
  if (rest.length === 0) throw new CliError('plot: give at least one run (a metrics.jsonl file or a run folder, optionally PATH=LABEL)');
  const smoothing = args.smoothing as number;
  if (smoothing >= 1) throw new CliError(`plot: --smoothing must be < 1, got ${smoothing}`);
  const terms = args.terms === undefined ? undefined : (args.terms as string).split(',').map((t) => t.trim()).filter(Boolean);
  let runs;
  try {
    runs = rest.map(parseRunArg);
  } catch (e) {
    throw new CliError((e as Error).message);
  }
  const out = args.out as string;
  try {
    plotRuns(runs, out, terms, { smoothing, logY: Boolean(args['log-y']), title: args.title as string | undefined, yLabel: terms?.length === 1 ? terms[0] : 'loss' });
  } catch (e) {
    throw new CliError(`plot: ${(e as Error).message}`);
  }
  io.out(`wrote ${out} (${runs.map((r) => r.label).join(', ')})`);
}

const EVAL_TABLE_OPTIONS: OptSpec[] = [
  { name: 'out', type: 'string', meta: 'FILE.md', help: 'also write the table to this file' },
  { name: 'mean', type: 'bool', help: "add a mean row per label prefix before '#' (e.g. paper#seed0 paper#seed1)" },
];

async function runEvalTable(args: ParsedArgs, io: Io, rest: string[]): Promise<void> {
  if (rest.length === 0) throw new CliError('eval-table: give at least one evaluation (an eval.json or its folder, optionally PATH=LABEL)');
  let md: string;
  try {
    md = anyEvalTable(rest.map(readEvalArg), { mean: Boolean(args.mean) });
  } catch (e) {
    throw new CliError((e as Error).message);
  }
  io.out(md.trimEnd());
  if (args.out) {
    writeFileAtomicSync(args.out as string, md);
    io.out(`wrote ${args.out as string}`);
  }
}

const COMMANDS: Command[] = [
  { name: 'train-tokenizer', summary: 'Train the tokenizer (VQ, or KL with --quantizer kl) on Fashion-MNIST or MNIST; resumes from the checkpoint in --out.', options: TRAIN_OPTIONS, run: runTrain },
  { name: 'eval-tokenizer', summary: 'Evaluate a tokenizer checkpoint: rFID, pFID grid (VQ) or nFID grid and iFID (KL), PSNR, SSIM, codebook usage, perplexity; writes eval.json, eval.md and recon-grid.png.', options: EVAL_OPTIONS, run: runEval },
  {
    name: 'train-featnet',
    summary:
      "Train the feature network (FeatNet) used by eval-tokenizer's FID on Fashion-MNIST; the arguments are passed to examples/train-featnet.ts's main() " +
      '(--epochs N, --batch N, --lr X, --limit N, --val-limit N, --seed N, --channels a,b,c, --out FILE.safetensors (default <run-dir>/featnet-fashion.safetensors), --run-dir DIR, --no-resume, ' +
      '--force to replace the shipped models/features/weights/featnet-fashion.safetensors; unknown flags and --epochs 0 are refused; source checkout only).',
    options: [],
    run: runTrainFeatnet,
  },
  { name: 'train-ar', summary: "Train the class-conditional AR generator on a tokenizer's codes of the training images; resumes from the checkpoint in --out.", options: TRAIN_AR_OPTIONS, run: runTrainAR },
  {
    name: 'sample-ar',
    summary: 'Sample class-balanced images from an AR checkpoint (decoded by the tokenizer); gFID and IS analogue vs the validation images; writes gfid.json, gfid.md, samples.png (one row per class).',
    options: SAMPLE_AR_OPTIONS,
    run: runSampleAR,
  },
  ...DIFFUSION_COMMANDS,
  POSTTRAIN_COMMAND,
  { name: 'eval-table', summary: 'Compare tokenizer evaluations (eval.json files or their folders, PATH=LABEL to name them) in one markdown table: rFID, pFID grid, pFID - rFID gaps, PSNR, SSIM, usage (KL tokenizers: nFID grid, iFID and their gaps).', options: EVAL_TABLE_OPTIONS, run: runEvalTable, positional: 'EVAL[=LABEL] ...' },
  { name: 'plot', summary: 'Plot training curves of one or more runs (metrics.jsonl files or run folders, PATH=LABEL to name them) into one SVG.', options: PLOT_OPTIONS, run: runPlot, positional: 'RUN[=LABEL] ...' },
];

export function mainHelp(): string {
  const w = Math.max(...COMMANDS.map((c) => c.name.length)) + 4;
  return [
    'usage: webgpu-tok <command> [options]',
    '',
    'commands:',
    ...COMMANDS.map((c) => `  ${c.name.padEnd(w)}${c.summary}`),
    '',
    "run 'webgpu-tok <command> --help' for a command's options; --verbose (any command, or WEBGPU_TOK_VERBOSE=1) adds stack traces to error messages",
  ].join('\n');
}

/** System errors about a path (a file where a folder goes, no permission, a full disk): the user's to fix, not bugs. */
const FS_CODES = new Set(['ENOENT', 'EACCES', 'EPERM', 'EROFS', 'ENOSPC', 'EDQUOT', 'ENOTDIR', 'EISDIR', 'EEXIST', 'ENAMETOOLONG', 'ELOOP', 'EMFILE', 'ENFILE', 'EBUSY', 'ETXTBSY']);

function isFsError(e: unknown): e is NodeJS.ErrnoException {
  const x = e as NodeJS.ErrnoException;
  return e instanceof Error && typeof x.syscall === 'string' && typeof x.code === 'string' && FS_CODES.has(x.code);
}

/** The one line a user error prints (exit code 2), or null for anything else (a bug: its stack is printed, exit code 1). */
function userErrorLine(name: string, e: unknown): string | null {
  if (e instanceof CliError || e instanceof MissingPackageError) return `webgpu-tok: ${e.message}`;
  if (e instanceof NonFiniteError || e instanceof NonFiniteImagesError || e instanceof ConfigError || e instanceof SafetensorsError || isFsError(e)) return `webgpu-tok ${name}: ${e.message}`;
  if (e instanceof ResumeError) return `webgpu-tok ${name}: ${e.message}; pass --fresh to start over (replacing it), or the settings it was trained with to resume`;
  return null;
}

/** Stack traces of errors are printed with --verbose (any command) or WEBGPU_TOK_VERBOSE=1, and always for bugs. */
export function isVerbose(argv: readonly string[]): boolean {
  return argv.includes('--verbose') || process.env.WEBGPU_TOK_VERBOSE === '1';
}

/**
 * Runs the CLI; returns the exit code (0 ok, 1 a bug (its stack trace is printed), 2 a user error
 * (bad arguments, files or settings; one line) or a diverged run, 130/143 training stopped by
 * SIGINT/SIGTERM after saving).
 */
export async function main(argv: readonly string[], io: Io = { out: (l) => console.log(l), err: (l) => console.error(l) }): Promise<number> {
  const verbose = isVerbose(argv);
  const [name, ...tail] = argv.filter((a) => a !== '--verbose');
  if (!name || name === '--help' || name === '-h' || name === 'help') {
    io.out(mainHelp());
    return name ? 0 : 2;
  }
  const c = COMMANDS.find((x) => x.name === name);
  try {
    if (!c) throw new CliError(`unknown command '${name}' (commands: ${COMMANDS.map((x) => x.name).join(', ')})`);
    if (c.name === 'train-featnet') {
      if (tail.includes('--help') || tail.includes('-h')) {
        io.out(commandHelp(c));
        return 0;
      }
      await c.run({}, io, [...tail]);
      return 0;
    }
    const { args, help, rest } = parseArgs(c.name, c.options, tail);
    if (help) {
      io.out(commandHelp(c));
      return 0;
    }
    if (rest.length && !c.positional) throw new CliError(`${c.name}: unexpected argument '${rest[0]}' (options start with --)`);
    await c.run(args, io, rest);
    return 0;
  } catch (e) {
    if (e instanceof TrainingStopped) {
      // Rerunning without --fresh resumes from --out's checkpoint (the default).
      const again = shellCommand(['webgpu-tok', ...argv.filter((a) => a !== '--fresh' && a !== '--fresh=true')]);
      io.err(`webgpu-tok ${name}: ${e.message}${e.checkpoint ? `; resume with: ${again} (an existing checkpoint in --out is resumed by default)` : ''}`);
      return e.exitCode;
    }
    const line = userErrorLine(name, e);
    if (line !== null) {
      io.err(line);
      if (verbose && e instanceof Error && e.stack) io.err(e.stack);
      return 2;
    }
    io.err(`webgpu-tok ${name}: ${(e as Error).stack ?? String(e)}`);
    return 1;
  }
}

// Run when executed directly (tsx node/cli.ts ..., node dist/node/cli.js ...).
if (process.argv[1] && import.meta.url === pathToFileURL(resolve(process.argv[1])).href) {
  main(process.argv.slice(2)).then((code) => {
    process.exitCode = code;
  });
}
