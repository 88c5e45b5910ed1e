/**
 * The whole RobusTok study as one function, in two arms that share data, feature network and the
 * real side of every FID:
 *  - discrete: VQ tokenizers (with and without latent perturbation) -> rFID / pFID -> one AR
 *    generator per tokenizer -> gFID -> correlations -> decoder post-training of the best;
 *  - continuous (when the config has it): KL tokenizers (with and without noise-augmented
 *    decoding) -> rFID / nFID / iFID -> one diffusion generator per tokenizer -> gFID ->
 *    correlations -> decoder post-training of the best on generator-denoised latents;
 * then one HTML report. Every stage writes its record next to its checkpoints, so an interrupted
 * run continues where it stopped. Models are disposed after each stage.
 */
import { join } from 'node:path';
import * as E from '../../engine/index.js';
import { writeFileAtomicSync } from '../../node/data/index.js';
import { loadARCheckpoint } from '../../node/train-ar.js';
import { validateStudy, type StudyConfig } from './config.js';
import { loadStudyFeatNet, realFeatureStats, type StudyContext } from './context.js';
import { loadStudyData } from './data.js';
import { runGenerator, type GeneratorRecord } from './generators.js';
import { runPostTrain, type PostTrainRecord } from './posttrain.js';
import { runDiffusionGenerator } from './continuous-generators.js';
import { runContinuousPostTrain } from './continuous-posttrain.js';
import { runContinuousTokenizer } from './continuous-tokenizers.js';
import { writeStudyReport, type StudyResults } from './report.js';
import type { ContinuousResults } from './report-continuous.js';
import { runTokenizer, type TokenizerRecord } from './tokenizers.js';
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

  const tokenizers: TokenizerRecord[] = [];
  const generators: GeneratorRecord[] = [];
  for (const v of cfg.tokenizer.variants) {
    const t = await runTokenizer(ctx, v);
    tokenizers.push(t.record);
    // Each stage's models are freed when the next stage starts (its checkpoints are on disk).
    using _tokenizer = t.model;
    if (o.tokenizersOnly) progress.skip(`generator ${v.name}`);
    else {
      const g = await runGenerator(ctx, t.record, t.model);
      using _generator = g.model;
      generators.push(g.record);
    }
  }

  let posttrain: PostTrainRecord | null = null;
  if (generators.length) {
    const best = generators.reduce((a, b) => (b.gfid < a.gfid ? b : a));
    const tok = tokenizers.find((t) => t.name === best.tokenizer)!;
    log(`[posttrain] best generator: tokenizer '${best.tokenizer}' (gFID ${best.gfid.toFixed(2)})`);
    using ar = (await loadARCheckpoint(best.checkpoint, o.backend)).model;
    posttrain = await runPostTrain(ctx, tok, best, ar);
  }
  const continuous = cfg.continuous ? await runContinuousArm(ctx, !o.tokenizersOnly) : null;
  featnet.dispose(); // used by every stage

  const results: StudyResults = {
    cfg,
    command: o.command ?? '',
    device: o.backend.name,
    seconds: (performance.now() - t0) / 1000,
    tokenizers,
    generators,
    posttrain,
    continuous,
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

/** The continuous arm: KL tokenizers, a diffusion generator each, post-training of the best. */
async function runContinuousArm(ctx: StudyContext, generate: boolean): Promise<ContinuousResults> {
  const r: ContinuousResults = { tokenizers: [], generators: [], posttrain: null };
  for (const v of ctx.cfg.continuous!.tokenizer.variants) {
    const t = await runContinuousTokenizer(ctx, v);
    r.tokenizers.push(t.record);
    using _tokenizer = t.model;
    if (generate) r.generators.push(await runDiffusionGenerator(ctx, t.record, t.model));
    else ctx.progress.skip(`diffusion ${v.name}`);
  }
  if (r.generators.length) {
    const best = r.generators.reduce((a, b) => (b.gfid < a.gfid ? b : a));
    ctx.log(`[kl-posttrain] best diffusion generator: tokenizer '${best.tokenizer}' (gFID ${best.gfid.toFixed(2)})`);
    r.posttrain = await runContinuousPostTrain(ctx, r.tokenizers.find((t) => t.name === best.tokenizer)!, best);
  }
  return r;
}
