/**
 * The whole RobusTok study as one function, in two arms that share data, feature network and the
 * real side of every FID:
 *  - discrete: VQ tokenizers (with and without latent perturbation) -> rFID / pFID -> one AR
 *    generator per tokenizer -> gFID -> correlations -> decoder post-training of the best;
 *  - continuous (when the config has it): KL tokenizers (with and without noise-augmented
 *    decoding) -> rFID / nFID / iFID -> one diffusion generator per tokenizer -> gFID ->
 *    correlations -> decoder post-training of the best on generator-denoised latents;
 * then one HTML report. Every stage writes its record next to its checkpoints, so an interrupted
 * run continues where it stopped. Models are disposed after each stage. With `seeds` > 1 each arm's
 * stages run once per training seed (replicates 1.. in <out>/seeds/seed-<s>), and post-training
 * takes the variant with the best mean gFID in every replicate.
 */
import { join } from 'node:path';
import * as E from '../../engine/index.js';
import { writeFileAtomicSync } from '../../node/data/index.js';
import { loadARCheckpoint } from '../../node/train-ar.js';
import { studySeeds, validateStudy, type StudyConfig } from './config.js';
import { loadStudyFeatNet, realFeatureStats, replicateContext, type StudyContext } from './context.js';
import { loadStudyData } from './data.js';
import { runGenerator } from './generators.js';
import { runPostTrain } from './posttrain.js';
import { bestByMeanGfid, type ReplicateResults } from './replicates.js';
import { runDiffusionGenerator } from './continuous-generators.js';
import { runContinuousPostTrain } from './continuous-posttrain.js';
import { runContinuousTokenizer } from './continuous-tokenizers.js';
import { writeStudyReport, type StudyResults } from './report.js';
import type { ContinuousResults } from './report-continuous.js';
import { runTokenizer } from './tokenizers.js';
import { planStudy, type PlannedStage, type StepTimes } from './estimate.js';
import { StudyProgress } from './progress.js';
import { studyStatistics } from './statistics.js';
import { studyVerdicts } from './verdicts.js';

export interface StudyOptions {
  backend: E.Backend;
  cfg: StudyConfig;
  outDir: string;
  /** The command line, shown in the report. */
  command?: string;
  featnetPath?: string;
  /** Skip the generators and post-training of both arms (tokenizer metrics only). */
  tokenizersOnly?: boolean;
  log?: (line: string) => void;
  /** Planned seconds per stage (estimateStudy's plan) for the progress line's ETA; default: planned from step counts. */
  plan?: PlannedStage[];
  /** Train with captured, replayed steps (E.captureStep; results bit-identical to eager steps). */
  capture?: boolean;
}

/** Relative costs of the unit operations, for an ETA without a measured estimate (weights only). */
const UNIT_TIMES: StepTimes = { tokenizerStep: 1, arStep: 0.5, arSampleBatch: 10, evalBatch: 0.5, fidReplicate: 0.05, klTokenizerStep: 1, ditStep: 0.5, ditEval: 0.2 };

export interface StudyRun extends StudyResults {
  reportPath: string;
}

export async function runStudy(o: StudyOptions): Promise<StudyRun> {
  const cfg = validateStudy(o.cfg);
  const log = o.log ?? ((l: string) => console.log(l));
  const t0 = performance.now();
  const data = loadStudyData(cfg, log);
  const { net: featnet, path: featnetPath } = loadStudyFeatNet(cfg.dataset, o.backend, o.featnetPath);
  log(`study '${cfg.name}': ${data.train.shape[0]} training / ${data.val.shape[0]} validation images of ${cfg.imageSize}x${cfg.imageSize}; feature network ${featnetPath}; output ${o.outDir}`);
  const progress = new StudyProgress(o.plan ?? planStudy(cfg, data.train.shape[0], UNIT_TIMES).plan, log);
  const real = await realFeatureStats(cfg, data, featnet, o.backend);
  const ctx: StudyContext = { cfg, backend: o.backend, data, outDir: o.outDir, log, featnet, realStats: real.stats, realRows: real.rows, progress, capture: o.capture ?? false };
  progress.done('real features');

  // Replicate r trains with seed cfg.seed + r (one replicate unless cfg.seeds says more); every
  // replicate of an arm's stages runs before its post-training, which takes the variant with the
  // best mean gFID over the seeds and post-trains it in every replicate.
  const reps = studySeeds(cfg).map((_, r) => replicateContext(ctx, r));
  const out: ReplicateResults[] = reps.map((rc) => ({ seed: rc.cfg.seed, tokenizers: [], generators: [], posttrain: null, continuous: null }));
  for (const [r, rc] of reps.entries()) {
    for (const v of cfg.tokenizer.variants) {
      const t = await runTokenizer(rc, v);
      out[r]!.tokenizers.push(t.record);
      // Each stage's models are freed when the next stage starts (its checkpoints are on disk).
      using _tokenizer = t.model;
      if (o.tokenizersOnly) rc.progress.skip(`generator ${v.name}`);
      else {
        const g = await runGenerator(rc, t.record, t.model);
        using _generator = g.model;
        out[r]!.generators.push(g.record);
      }
    }
  }
  const best = bestByMeanGfid(out.map((x) => x.generators));
  if (best) {
    log(`[posttrain] best generator: tokenizer '${best.tokenizer}' (${best.seeds > 1 ? `mean gFID over ${best.seeds} seeds` : 'gFID'} ${best.gfid.toFixed(2)})`);
    for (const [r, rc] of reps.entries()) {
      const g = out[r]!.generators.find((x) => x.tokenizer === best.tokenizer);
      if (!g) continue;
      using ar = (await loadARCheckpoint(g.checkpoint, o.backend)).model;
      out[r]!.posttrain = await runPostTrain(rc, out[r]!.tokenizers.find((t) => t.name === best.tokenizer)!, g, ar);
    }
  }
  if (cfg.continuous) {
    const arms = await runContinuousArm(reps, !o.tokenizersOnly);
    arms.forEach((a, r) => (out[r]!.continuous = a));
  }
  featnet.dispose(); // used by every stage

  const [first, ...replicates] = out;
  const results: StudyResults = {
    cfg,
    command: o.command ?? '',
    device: o.backend.name,
    seconds: (performance.now() - t0) / 1000,
    tokenizers: first!.tokenizers,
    generators: first!.generators,
    posttrain: first!.posttrain,
    continuous: first!.continuous,
    ...(replicates.length ? { replicates } : {}),
    classes: data.classes,
  };
  const statistics = studyStatistics(results);
  const verdicts = studyVerdicts(results, statistics);
  const json = {
    ...results,
    statistics,
    verdicts,
  };
  writeFileAtomicSync(join(o.outDir, 'results.json'), JSON.stringify(json, null, 2));
  const reportPath = writeStudyReport(o.outDir, results, { statistics, verdicts });
  for (const v of verdicts) log(`[verdict] claim ${v.claim}: ${v.verdict}: ${v.statement} (${v.evidence})`);
  log(`report: ${reportPath} (${(results.seconds / 60).toFixed(1)} min)`);
  return { ...results, reportPath };
}

/** The continuous arm of every replicate: KL tokenizers, a diffusion generator each, post-training of the best mean. */
async function runContinuousArm(reps: readonly StudyContext[], generate: boolean): Promise<ContinuousResults[]> {
  const out: ContinuousResults[] = reps.map(() => ({ tokenizers: [], generators: [], posttrain: null }));
  for (const [r, rc] of reps.entries()) {
    for (const v of rc.cfg.continuous!.tokenizer.variants) {
      const t = await runContinuousTokenizer(rc, v);
      out[r]!.tokenizers.push(t.record);
      using _tokenizer = t.model;
      if (generate) out[r]!.generators.push(await runDiffusionGenerator(rc, t.record, t.model));
      else rc.progress.skip(`diffusion ${v.name}`);
    }
  }
  const best = bestByMeanGfid(out.map((x) => x.generators));
  if (best) {
    reps[0]!.log(`[kl-posttrain] best diffusion generator: tokenizer '${best.tokenizer}' (${best.seeds > 1 ? `mean gFID over ${best.seeds} seeds` : 'gFID'} ${best.gfid.toFixed(2)})`);
    for (const [r, rc] of reps.entries()) {
      const g = out[r]!.generators.find((x) => x.tokenizer === best.tokenizer);
      if (g) out[r]!.posttrain = await runContinuousPostTrain(rc, out[r]!.tokenizers.find((t) => t.name === best.tokenizer)!, g);
    }
  }
  return out;
}
