/**
 * The results of a study's finished stages, read from their records without running anything: a
 * report of a run still in progress (or stopped), from another process, while the run goes on.
 * A stage counts when its record.json exists; stages not yet run are simply absent, and the
 * report's verdicts say "cannot tell" where their numbers are missing. Replicates of other
 * training seeds are read from their folders (seeds/seed-<s>).
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { studySeeds, type StudyConfig } from './config.js';
import { replicateDir } from './context.js';
import { bestByMeanGfid, type ReplicateResults } from './replicates.js';
import type { ContinuousResults } from './report-continuous.js';
import type { StudyResults } from './report.js';

function record<T>(path: string): T | null {
  if (!existsSync(path)) return null;
  try {
    return JSON.parse(readFileSync(path, 'utf8')) as T;
  } catch {
    return null; // being written by the running study: not finished
  }
}

const present = <T>(xs: (T | null)[]): T[] => xs.filter((x): x is T => x !== null);

/** The first post-training record under `dir` in `names` order (one per study: the best generator's tokenizer). */
function postTrainRecord<T>(dir: string, names: readonly string[]): T | null {
  for (const n of names) {
    const r = record<T>(join(dir, n, 'record.json'));
    if (r) return r;
  }
  return null;
}

/** The finished stages of one replicate, read from its folder. */
function replicateRecords(cfg: StudyConfig, outDir: string, seed: number): ReplicateResults {
  const names = cfg.tokenizer.variants.map((v) => v.name);
  const tokenizers = present(names.map((n) => record<StudyResults['tokenizers'][number]>(join(outDir, 'tokenizers', n, 'record.json'))));
  const generators = present(names.map((n) => record<StudyResults['generators'][number]>(join(outDir, 'generators', n, 'record.json'))));
  const posttrain = postTrainRecord<NonNullable<StudyResults['posttrain']>>(join(outDir, 'posttrain'), names);
  let continuous: ContinuousResults | null = null;
  if (cfg.continuous) {
    const kn = cfg.continuous.tokenizer.variants.map((v) => v.name);
    continuous = {
      tokenizers: present(kn.map((n) => record<ContinuousResults['tokenizers'][number]>(join(outDir, 'continuous', 'tokenizers', n, 'record.json')))),
      generators: present(kn.map((n) => record<ContinuousResults['generators'][number]>(join(outDir, 'continuous', 'generators', n, 'record.json')))),
      posttrain: postTrainRecord<NonNullable<ContinuousResults['posttrain']>>(join(outDir, 'continuous', 'posttrain'), kn),
    };
  }
  // Only generators whose tokenizer record is there can be placed on the correlation plots.
  const tok = new Set(tokenizers.map((t) => t.name));
  return { seed, tokenizers, generators: generators.filter((g) => tok.has(g.tokenizer)), posttrain, continuous };
}

export function finishedStageResults(cfg: StudyConfig, outDir: string, command: string): StudyResults {
  const all = studySeeds(cfg).map((seed, r) => replicateRecords(cfg, replicateDir(outDir, cfg, r), seed));
  // Post-training runs on the variant with the best mean gFID over the seeds: its record where there is one.
  const ar = bestByMeanGfid(all.map((x) => x.generators))?.tokenizer;
  const kl = bestByMeanGfid(all.map((x) => x.continuous?.generators ?? []))?.tokenizer;
  all.forEach((x, r) => {
    const dir = replicateDir(outDir, cfg, r);
    if (ar) x.posttrain = record<NonNullable<StudyResults['posttrain']>>(join(dir, 'posttrain', ar, 'record.json')) ?? x.posttrain;
    if (kl && x.continuous) x.continuous.posttrain = record<NonNullable<ContinuousResults['posttrain']>>(join(dir, 'continuous', 'posttrain', kl, 'record.json')) ?? x.continuous.posttrain;
  });
  const [first, ...rest] = all;
  // Replicates with no finished tokenizer yet are left out.
  const replicates = rest.filter((x) => x.tokenizers.length > 0);
  // The recorded training, evaluation and sampling times of the stages (not the wall time of the run).
  const t = (r: { trainSeconds?: number; evalSeconds?: number; sampleSeconds?: number }) => (r.trainSeconds ?? 0) + (r.evalSeconds ?? 0) + (r.sampleSeconds ?? 0);
  const seconds = [first!, ...replicates].flatMap((x) => [...x.tokenizers, ...x.generators, ...(x.continuous ? [...x.continuous.tokenizers, ...x.continuous.generators] : [])]).reduce((a, r) => a + t(r), 0);
  return { cfg, command, device: 'the records of the finished stages (time: their recorded stage times)', seconds, tokenizers: first!.tokenizers, generators: first!.generators, posttrain: first!.posttrain, continuous: first!.continuous, ...(replicates.length ? { replicates } : {}) };
}
