/**
 * Trains FeatNet (models/features/featnet.ts), the small CNN whose penultimate features give the
 * dataset-specific FID and whose logits give the Inception-Score analogue, on Fashion-MNIST's
 * training split (padded to 32x32, pixels in [-1, 1], seeded shuffle + horizontal flips), with
 * AdamW and a warmup + cosine schedule through node/train.ts's trainLoop (progress line with ETA,
 * JSONL metrics, resumable atomic checkpoints). Then it measures validation accuracy and writes
 * the model weights (saveCheckpoint, names conv1.weight ... fc2.bias) plus a sidecar JSON
 * {valAccuracy, epochs, command, date, device, ...}.
 *
 *   npx tsx examples/train-featnet.ts [--epochs 3] [--batch 128] [--lr 2e-3] [--limit N]
 *       [--val-limit N] [--out FILE.safetensors (default <run-dir>/featnet-fashion.safetensors)]
 *       [--run-dir runs/featnet] [--seed 0] [--channels 16,32,32] [--log-every 50] [--no-resume]
 *       [--force (needed to replace the shipped models/features/weights/featnet-fashion.safetensors)]
 *   (env: EPOCHS, BATCH, LR, LIMIT, VAL_LIMIT, OUT, RUN_DIR, SEED, CHANNELS, LOG_EVERY)
 * Unknown flags and --epochs 0 are refused.
 */
import { mkdirSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import * as E from '../engine/index.js';
import { FeatNet, featnetAccuracy, featnetBatched, type FeatNetConfig } from '../models/features/featnet.js';
import { saveCheckpoint } from '../node/checkpoint.js';
import { checkOutputPath, INT_MAX_OPTION, withFlagNames } from '../node/cli-common.js';
import { fieldError, validateConfig } from '../models/config-schema.js';
import { FEATNET_CONFIG_SCHEMA } from '../models/config-schemas.js';
import { BatchUploader, DataLoader, loadFashionMNIST, subset, type ImageDataset } from '../node/data/index.js';
import { getDevice } from '../node/index.js';
import { trainLoop, type TrainLoopResult } from '../node/train.js';
import { AdamW, Scheduler, warmupCosineLr } from '../nn/index.js';

export const DEFAULT_FEATNET_WEIGHTS = 'models/features/weights/featnet-fashion.safetensors';

/** More passes than anyone trains this network for (the shipped weights took 3): a larger --epochs is a typo. */
const MAX_EPOCHS = 10_000;

export interface TrainFeatNetOptions {
  backend: E.Backend;
  epochs?: number;
  batchSize?: number;
  lr?: number;
  weightDecay?: number;
  /** Use only the first n training images. */
  limit?: number;
  seed?: number;
  /** Checkpoint + metrics folder (none: nothing written during training). */
  runDir?: string;
  resume?: boolean;
  logEvery?: number;
  checkpointEvery?: number;
  config?: Partial<FeatNetConfig>;
  log?: (line: string) => void;
  /** Data (default: loadFashionMNIST({pad: 2})). */
  data?: { train: ImageDataset; val: ImageDataset };
}

export interface TrainFeatNetResult extends TrainLoopResult {
  model: FeatNet;
  totalSteps: number;
  val: ImageDataset;
  seconds: number;
  imagesPerSec: number;
}

export function firstN(ds: ImageDataset, n: number): ImageDataset {
  return n >= ds.shape[0] ? ds : subset(ds, Int32Array.from({ length: n }, (_, i) => i));
}

export async function trainFeatNet(o: TrainFeatNetOptions): Promise<TrainFeatNetResult> {
  const { backend } = o;
  const seed = o.seed ?? 0;
  const data = o.data ?? loadFashionMNIST({ pad: 2, ...(o.log ? { log: o.log } : {}) });
  const train = o.limit ? firstN(data.train, o.limit) : data.train;
  const B = o.batchSize ?? 128;
  if (B > train.shape[0]) throw fieldError('trainFeatNet', 'batchSize', `${B} is more than the ${train.shape[0]} training images: no full batch (lower the batch size or use more images)`);
  const loader = new DataLoader(train, { batchSize: B, shuffle: true, seed, dropLast: true, hflip: true });
  const totalSteps = Math.max(1, Math.round((o.epochs ?? 3) * loader.batchesPerEpoch));
  // Bounded before building, like every model config.
  const model = new FeatNet(validateConfig('trainFeatNet config', FEATNET_CONFIG_SCHEMA, o.config ?? {}), { backend, generator: new E.Generator(seed) });
  const optimizer = new AdamW(model.parameters(), { lr: o.lr ?? 2e-3, weightDecay: o.weightDecay ?? 1e-4 });
  const scheduler = new Scheduler(optimizer, (s, lr) => warmupCosineLr(s, lr, { warmupSteps: Math.min(100, Math.floor(totalSteps / 10)), totalSteps, minLrRatio: 0.02 }));
  const uploader = new BatchUploader(backend);
  const t0 = performance.now();
  const r = await trainLoop({
    totalSteps,
    state: { model, optimizer, scheduler, loader },
    backend,
    itemsPerStep: B,
    logEvery: o.logEvery ?? 50,
    ...(o.runDir ? { metricsPath: join(o.runDir, 'metrics.jsonl'), checkpointPath: join(o.runDir, 'checkpoint.safetensors'), checkpointEvery: o.checkpointEvery ?? 200 } : {}),
    resume: o.resume ?? true,
    extra: { config: model.cfg, batchSize: B, epochs: o.epochs ?? 3, limit: o.limit ?? null },
    ...(o.log ? { log: o.log } : {}),
    step: () => {
      const b = uploader.next(loader);
      const logits = model.logits(b.x);
      const loss = E.crossEntropy(logits, b.labels);
      optimizer.zeroGrad();
      loss.backward();
      optimizer.step();
      scheduler.step();
      return { terms: { loss: loss.detach() }, epoch: b.batch.epoch };
    },
  });
  const seconds = (performance.now() - t0) / 1000;
  // The upload ring and the optimizer state live for the run; the model is returned.
  uploader.dispose();
  optimizer.dispose();
  model.eval();
  return { ...r, model, totalSteps, val: data.val, seconds, imagesPerSec: ((totalSteps - r.startStep) * B) / seconds };
}

/** Top-1 accuracy of `model` on the first `limit` images of `ds` (all by default), in batches. */
export async function evaluateFeatNet(model: FeatNet, ds: ImageDataset, backend: E.Backend, opts: { limit?: number; batchSize?: number } = {}): Promise<number> {
  const d = opts.limit ? firstN(ds, opts.limit) : ds;
  const [n, c, h, w] = d.shape;
  const bs = opts.batchSize ?? 500;
  let correct = 0;
  for (let i = 0; i < n; i += bs) {
    const m = Math.min(bs, n - i);
    const x = new Float32Array(m * c * h * w);
    const off = i * c * h * w;
    for (let k = 0; k < x.length; k++) x[k] = (d.images[off + k]! / 255) * 2 - 1;
    using xt = E.tensor(x, [m, c, h, w], { backend });
    using logits = featnetBatched(model, xt, bs, (b) => model.logits(b));
    correct += Math.round((await featnetAccuracy(logits, d.labels.subarray(i, i + m))) * m);
  }
  return n ? correct / n : 0;
}

/** The flags main() takes; anything else is refused (a misspelled flag would silently train the defaults). */
const VALUE_FLAGS = ['epochs', 'batch', 'lr', 'limit', 'val-limit', 'seed', 'out', 'channels', 'run-dir', 'log-every'] as const;
const SWITCHES = ['no-resume', 'force'] as const;

function parseArgs(argv: string[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (!a.startsWith('--')) throw new Error(`train-featnet: unexpected argument '${a}'`);
    const eq = a.indexOf('=');
    const name = a.slice(2, eq > 0 ? eq : undefined);
    if ((SWITCHES as readonly string[]).includes(name)) {
      if (eq > 0) throw new Error(`train-featnet: --${name} is a switch and takes no value`);
      out[name] = '1';
    } else if ((VALUE_FLAGS as readonly string[]).includes(name)) {
      const v = eq > 0 ? a.slice(eq + 1) : argv[++i];
      if (v === undefined) throw new Error(`train-featnet: ${a} needs a value`);
      out[name] = v;
    } else throw new Error(`train-featnet: unknown option --${name} (options: ${[...VALUE_FLAGS, ...SWITCHES].map((f) => `--${f}`).join(', ')})`);
  }
  return out;
}

/** The weights file shipped in this checkout (every FID in the project uses it). */
const SHIPPED_WEIGHTS = resolve(dirname(fileURLToPath(import.meta.url)), '..', DEFAULT_FEATNET_WEIGHTS);

/** True when `p` is the shipped weights file: the same path, or the same file through a link. */
function isShippedWeights(p: string): boolean {
  if (resolve(p) === SHIPPED_WEIGHTS) return true;
  const a = statSync(p, { throwIfNoEntry: false });
  const b = statSync(SHIPPED_WEIGHTS, { throwIfNoEntry: false });
  return !!a && !!b && a.dev === b.dev && a.ino === b.ino;
}

export async function main(argv = process.argv.slice(2)): Promise<void> {
  const a = parseArgs(argv);
  const num = (k: string, env: string, d: number | undefined, int = false) => {
    const v = a[k] ?? process.env[env];
    if (v === undefined || v === '') return d;
    const n = Number(v);
    if (!Number.isFinite(n) || n < 0) throw new Error(`train-featnet: --${k} must be a non-negative number, got '${v}'`);
    // Counts beyond 2^31 - 1 would run for ever or overflow an index (--limit 1e99 is an integer to Number).
    if (int && !(Number.isInteger(n) && n <= INT_MAX_OPTION)) throw new Error(`train-featnet: --${k} must be an integer in [0, ${INT_MAX_OPTION}], got '${v}'`);
    return n;
  };
  const epochs = num('epochs', 'EPOCHS', 3)!;
  // 0 epochs used to train one step (totalSteps is at least 1) and write the weights anyway.
  if (!(epochs > 0)) throw new Error(`train-featnet: --epochs must be > 0, got ${epochs}`);
  if (epochs > MAX_EPOCHS) throw new Error(`train-featnet: --epochs must be at most ${MAX_EPOCHS}, got ${epochs}`);
  const batchSize = num('batch', 'BATCH', 128, true)!;
  if (!(batchSize > 0)) throw new Error(`train-featnet: --batch must be a positive integer, got ${batchSize}`);
  const lr = num('lr', 'LR', 2e-3)!;
  const limit = num('limit', 'LIMIT', undefined, true);
  const valLimit = num('val-limit', 'VAL_LIMIT', undefined, true);
  const seed = num('seed', 'SEED', 0, true)!;
  const logEvery = num('log-every', 'LOG_EVERY', 50, true)!;
  if (!(logEvery > 0)) throw new Error(`train-featnet: --log-every must be a positive integer, got ${logEvery}`);
  const chan = a.channels ?? process.env.CHANNELS;
  const channels = chan ? (chan.split(',').map((c) => (c.trim() === '' ? NaN : Number(c))) as [number, number, number]) : undefined;
  if (channels && channels.length !== 3) throw new Error(`train-featnet: --channels needs three positive integers like 32,64,64, got '${chan}'`);
  // The widths are checked by FeatNet's config schema (integers, bounded, the whole network bounded).
  if (channels) await withFlagNames('train-featnet', { '--channels': { 'channels[0]': 'channels', 'channels[1]': 'channels', 'channels[2]': 'channels', channels: 'channels' } }, async () => validateConfig('--channels', FEATNET_CONFIG_SCHEMA, { channels }));
  const runDir = a['run-dir'] ?? process.env.RUN_DIR ?? 'runs/featnet';
  checkOutputPath('train-featnet', '--run-dir', runDir, 'dir');
  // Without --out the weights go beside the run's checkpoint, never over the shipped file that
  // every FID in the project is computed with; replacing that file takes --out naming it and --force.
  const out = a.out ?? process.env.OUT ?? join(runDir, 'featnet-fashion.safetensors');
  checkOutputPath('train-featnet', '--out', out, 'file');
  if (isShippedWeights(out) && !a.force)
    throw new Error(`train-featnet: --out ${out} is the shipped FeatNet weights (${DEFAULT_FEATNET_WEIGHTS}), which every FID uses; add --force to replace them`);
  const backend = await getDevice();
  console.log(`device: ${backend.name}; FeatNet on Fashion-MNIST: ${epochs} epochs, batch ${batchSize}, lr ${lr}${limit ? `, first ${limit} training images` : ''}`);
  const r = await withFlagNames('train-featnet', { trainFeatNet: { batchSize: 'batch' } }, () =>
    trainFeatNet({ backend, epochs, batchSize, lr, seed, runDir, resume: !a['no-resume'], ...(limit ? { limit } : {}), ...(channels ? { config: { channels } } : {}), logEvery }),
  );
  console.log(`trained ${r.totalSteps - r.startStep} steps in ${r.seconds.toFixed(1)} s (${r.imagesPerSec.toFixed(0)} images/s); ${r.model.summary()}`);
  const te = performance.now();
  const valAccuracy = await evaluateFeatNet(r.model, r.val, backend, valLimit ? { limit: valLimit } : {});
  const valN = valLimit ? Math.min(valLimit, r.val.shape[0]) : r.val.shape[0];
  const val512 = await evaluateFeatNet(r.model, r.val, backend, { limit: 512 });
  console.log(`validation accuracy ${(valAccuracy * 100).toFixed(2)}% on ${valN} images (${((performance.now() - te) / 1000).toFixed(1)} s); first 512: ${(val512 * 100).toFixed(2)}%`);
  mkdirSync(dirname(out), { recursive: true });
  await saveCheckpoint(out, r.model.stateDict(), { format: 'pt', featnet_config: JSON.stringify(r.model.cfg), val_accuracy: String(valAccuracy) });
  const command = `npx tsx examples/train-featnet.ts ${argv.join(' ')}`.trim();
  const sidecar = {
    valAccuracy,
    valImages: valN,
    valAccuracyFirst512: val512,
    epochs,
    batchSize,
    lr,
    seed,
    trainImages: limit ? Math.min(limit, 60000) : 60000,
    steps: r.totalSteps,
    trainSeconds: r.seconds,
    imagesPerSec: r.imagesPerSec,
    finalLoss: r.history.at(-1)?.terms.loss ?? null,
    parameters: r.model.numParameters(),
    config: r.model.cfg,
    command,
    date: new Date().toISOString(),
    device: backend.name,
  };
  writeFileSync(out.replace(/\.safetensors$/, '') + '.json', JSON.stringify(sidecar, null, 2) + '\n');
  console.log(`wrote ${out} and its .json sidecar`);
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  await main();
  process.exit(0);
}
