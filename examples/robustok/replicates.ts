/**
 * A study's training-seed replicates (StudyConfig.seeds): replicate 0 is the study's own results,
 * replicates 1.. are the same stages trained with other seeds. Helpers group the per-seed records
 * by variant: the values of one metric across seeds, their mean, the variant with the best mean.
 */
import type { GeneratorRecord } from './generators.js';
import type { PostTrainRecord } from './posttrain.js';
import type { ContinuousResults } from './report-continuous.js';
import type { StudyResults } from './report.js';
import type { TokenizerRecord } from './tokenizers.js';

/** One replicate's stage records (the same shape as a single-seed study's). */
export interface ReplicateResults {
  seed: number;
  tokenizers: TokenizerRecord[];
  generators: GeneratorRecord[];
  posttrain: PostTrainRecord | null;
  continuous: ContinuousResults | null;
}

/** Every replicate, replicate 0 (the study's own fields) first. */
export function allReplicates(r: StudyResults): ReplicateResults[] {
  return [{ seed: r.cfg.seed, tokenizers: r.tokenizers, generators: r.generators, posttrain: r.posttrain, continuous: r.continuous }, ...(r.replicates ?? [])];
}

/** How many replicates a study has results for (1 for a single-seed study). */
export const replicateCount = (r: StudyResults): number => 1 + (r.replicates?.length ?? 0);

export const mean = (v: readonly number[]): number => v.reduce((a, b) => a + b, 0) / v.length;

/** Sample standard deviation (ddof 1; NaN for fewer than 2 values). */
export function sd(v: readonly number[]): number {
  if (v.length < 2) return NaN;
  const m = mean(v);
  return Math.sqrt(v.reduce((a, b) => a + (b - m) * (b - m), 0) / (v.length - 1));
}

/** "12.34 ± 0.56" (mean ± sd) of per-seed values; the value alone for one seed. */
export const meanSdText = (v: readonly number[]): string => {
  const f2 = (x: number) => (Number.isFinite(x) ? x.toFixed(2) : 'n/a');
  return v.length > 1 ? `${f2(mean(v))} ± ${f2(sd(v))}` : f2(v[0] ?? NaN);
};

/** For each name (in first-seen order), the values `pick` gives in each list that has it. */
export function valuesByName<T>(lists: readonly (readonly T[])[], name: (x: T) => string, pick: (x: T) => number): Map<string, number[]> {
  const out = new Map<string, number[]>();
  for (const list of lists) {
    for (const x of list) {
      const k = name(x);
      if (!out.has(k)) out.set(k, []);
      out.get(k)!.push(pick(x));
    }
  }
  return out;
}

/**
 * The generator (tokenizer name) with the lowest mean gFID over its seeds; the first in order on
 * a tie. With one seed: the generator with the lowest gFID.
 */
export function bestByMeanGfid(lists: readonly (readonly { tokenizer: string; gfid: number }[])[]): { tokenizer: string; gfid: number; seeds: number } | null {
  let best: { tokenizer: string; gfid: number; seeds: number } | null = null;
  for (const [tokenizer, v] of valuesByName(lists, (g) => g.tokenizer, (g) => g.gfid)) {
    const m = mean(v);
    if (!best || m < best.gfid) best = { tokenizer, gfid: m, seeds: v.length };
  }
  return best;
}
