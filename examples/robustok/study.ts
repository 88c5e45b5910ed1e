/**
 * The whole RobusTok study as one function: tokenizers (with and without latent perturbation)
 * -> rFID / pFID -> one AR generator per tokenizer -> gFID -> correlations -> decoder
 * post-training of the best tokenizer -> HTML report. Every stage writes its record next to its
 * checkpoints, so an interrupted run continues where it stopped.
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
import { studyCorrelations, writeStudyReport, type StudyResults } from './report.js';
import { runTokenizer, type TokenizerRecord } from './tokenizers.js';

export interface StudyOptions {
  backend: E.Backend;
  cfg: StudyConfig;
  outDir: string;
  /** The command line, shown in the report. */
  command?: string;
  featnetPath?: string;
  /** Skip the generators and post-training (tokenizer metrics only). */
  tokenizersOnly?: boolean;
  log?: (line: string) => void;
}

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
  const realStats = await realFeatureStats(cfg, data, featnet, o.backend);
  const ctx: StudyContext = { cfg, backend: o.backend, data, outDir: o.outDir, log, featnet, realStats };

  const tokenizers: TokenizerRecord[] = [];
  const generators: GeneratorRecord[] = [];
  for (const v of cfg.tokenizer.variants) {
    const t = await runTokenizer(ctx, v);
    tokenizers.push(t.record);
    if (!o.tokenizersOnly) {
      const g = await runGenerator(ctx, t.record, t.model);
      generators.push(g.record);
      g.model.dispose();
    }
    t.model.dispose();
  }

  let posttrain: PostTrainRecord | null = null;
  if (generators.length) {
    const best = generators.reduce((a, b) => (b.gfid < a.gfid ? b : a));
    const tok = tokenizers.find((t) => t.name === best.tokenizer)!;
    log(`[posttrain] best generator: tokenizer '${best.tokenizer}' (gFID ${best.gfid.toFixed(2)})`);
    const ar = (await loadARCheckpoint(best.checkpoint, o.backend)).model;
    posttrain = await runPostTrain(ctx, tok, best, ar);
    ar.dispose();
  }
  featnet.dispose();

  const results: StudyResults = {
    cfg,
    command: o.command ?? '',
    device: o.backend.name,
    seconds: (performance.now() - t0) / 1000,
    tokenizers,
    generators,
    posttrain,
  };
  writeFileAtomicSync(join(o.outDir, 'results.json'), JSON.stringify({ ...results, correlations: generators.length ? studyCorrelations(results) : null }, null, 2));
  const reportPath = writeStudyReport(o.outDir, results);
  log(`report: ${reportPath} (${(results.seconds / 60).toFixed(1)} min)`);
  return { ...results, reportPath };
}
