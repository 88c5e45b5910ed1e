/** What every stage of the study gets: config, device, data, output folder, feature network. */
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type * as E from '../../engine/index.js';
import { featnetFromSafetensors, type FeatNet } from '../../models/features/featnet.js';
import { ImageFeatureStats, ResamplableFeatures } from '../../models/metrics/index.js';
import type { StudyConfig } from './config.js';
import { suffixedProgress, type StageProgress } from './progress.js';
import { deviceBatches, featureInputFor, type StudyData } from './data.js';

export interface StudyContext {
  cfg: StudyConfig;
  backend: E.Backend;
  data: StudyData;
  outDir: string;
  log: (line: string) => void;
  featnet: FeatNet;
  /** Features of the validation images: the real side of every gFID. */
  realStats: ImageFeatureStats;
  /** The same feature rows, ready for the bootstrap of every gFID's sampling error. */
  realRows: ResamplableFeatures;
  /** The overall progress line (stages done, elapsed, ETA). */
  progress: StageProgress;
  /** Train with captured, replayed steps (bit-identical results, less host time per step). */
  capture: boolean;
}

/** Where replicate r of a study writes its stages: the study's folder for r = 0, else seeds/seed-<seed + r>. */
export const replicateDir = (outDir: string, cfg: StudyConfig, r: number): string => (r === 0 ? outDir : join(outDir, 'seeds', `seed-${cfg.seed + r}`));

/** A replicate's stage names: the plain names for r = 0, else with ' (seed s)'. */
export const replicateSuffix = (cfg: StudyConfig, r: number): string => (r === 0 ? '' : ` (seed ${cfg.seed + r})`);

/**
 * The context of replicate r: the same data, real features and feature network; the training
 * seed seed + r, its own folder, its stage names and log lines marked with the seed. r = 0 is the
 * study's own context (a single-seed study is replicate 0).
 */
export function replicateContext(ctx: StudyContext, r: number): StudyContext {
  if (r === 0) return ctx;
  const seed = ctx.cfg.seed + r;
  return { ...ctx, cfg: { ...ctx.cfg, seed }, outDir: replicateDir(ctx.outDir, ctx.cfg, r), progress: suffixedProgress(ctx.progress, replicateSuffix(ctx.cfg, r)), log: (l) => ctx.log(`[seed ${seed}] ${l}`) };
}

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');

/** The shipped FeatNet for the dataset (trained by examples/train-featnet.ts). */
export function loadStudyFeatNet(dataset: StudyConfig['dataset'], backend: E.Backend, path?: string): { net: FeatNet; path: string } {
  const file = path ?? join(ROOT, 'models', 'features', 'weights', `featnet-${dataset === 'mnist' ? 'mnist' : 'fashion'}.safetensors`);
  let bytes: Uint8Array;
  try {
    bytes = new Uint8Array(readFileSync(file));
  } catch (e) {
    throw new Error(`study: cannot read the feature network ${file} (${(e as Error).message}); train one with 'npx tsx examples/train-featnet.ts' or pass --featnet FILE`, { cause: e });
  }
  return { net: featnetFromSafetensors(bytes, backend), path: file };
}

/** Accumulates the FeatNet statistics of the validation images (the real side of gFID), keeping the rows. */
export async function realFeatureStats(cfg: StudyConfig, data: StudyData, net: FeatNet, backend: E.Backend): Promise<{ stats: ImageFeatureStats; rows: ResamplableFeatures }> {
  const fi = featureInputFor(cfg.imageSize);
  const s = new ImageFeatureStats(net, { keepFeatures: true, ...(fi ? { featureInput: fi } : {}) });
  for (const b of deviceBatches(data.val, cfg.eval.batchSize, backend)) await s.add(b.x);
  const f = s.features();
  return { stats: s, rows: new ResamplableFeatures(f.rows, f.dim) };
}

/** A JSON file as an object, null when it does not exist; a file that is not JSON is an error naming `tool` and the path. */
export function readJsonIfExists(path: string, tool: string): Record<string, unknown> | null {
  if (!existsSync(path)) return null;
  try {
    return JSON.parse(readFileSync(path, 'utf8')) as Record<string, unknown>;
  } catch (e) {
    throw new Error(`${tool}: ${path} is not JSON (${(e as Error).message})`);
  }
}

/**
 * The record of a stage that finished in an earlier run: `<dir>/record.json` when it (and every
 * file in `needs`) exists and `matches` accepts it (same settings), else null. A record that does
 * not parse (a write cut short) counts as unfinished: the stage runs again and rewrites it.
 */
export function finishedRecord<T>(dir: string, matches: (r: T) => boolean, needs: readonly string[] = [], log?: (line: string) => void): T | null {
  const path = join(dir, 'record.json');
  if (!existsSync(path) || !needs.every((f) => existsSync(join(dir, f)))) return null;
  let rec: T;
  try {
    rec = JSON.parse(readFileSync(path, 'utf8')) as T;
  } catch (e) {
    log?.(`${path} is not valid JSON (${(e as Error).message}): running the stage again`);
    return null;
  }
  return matches(rec) ? rec : null;
}

/** Progress lines ~10 times per stage (at most every 50 steps) and 4 checkpoints per stage. */
export function stageIntervals(steps: number): { logEvery: number; checkpointEvery: number } {
  return { logEvery: Math.max(1, Math.min(50, Math.floor(steps / 10))), checkpointEvery: Math.max(1, Math.floor(steps / 4)) };
}
