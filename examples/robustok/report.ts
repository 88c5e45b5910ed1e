/**
 * The study's HTML report: tokenizer table (rFID, pFID grid with their bootstrap errors, PSNR, SSIM,
 * usage), generator table (gFID, IS), decoder post-training before/after, image grids and loss
 * curves; then the continuous arm's sections (report-continuous.ts) and the statistics with the
 * correlations (report-stats.ts). Paths are relative to the report.
 */
import { existsSync } from 'node:fs';
import { relative } from 'node:path';
import { lineChart, readMetricsLog, Report, type Row } from '../../node/report/index.js';
import type { StudyConfig } from './config.js';
import type { GeneratorRecord } from './generators.js';
import type { PostTrainRecord } from './posttrain.js';
import type { ReplicateResults } from './replicates.js';
import { addContinuousReport, type ContinuousResults } from './report-continuous.js';
import type { TokenizerRecord } from './tokenizers.js';
import { addStatisticsSections, addVerdicts, withError } from './report-stats.js';
import { studyStatistics, type StudyStatistics } from './statistics.js';
import { studyVerdicts, type ClaimVerdict } from './verdicts.js';

export interface StudyResults {
  cfg: StudyConfig;
  command: string;
  device: string;
  seconds: number;
  tokenizers: TokenizerRecord[];
  generators: GeneratorRecord[];
  posttrain: PostTrainRecord | null;
  /** The continuous arm (null when the config has none). */
  continuous: ContinuousResults | null;
  /** Class names of the dataset, in label order. */
  classes?: string[];
  /** The stages of the other training seeds (StudyConfig.seeds > 1); the fields above are seed `cfg.seed`'s. */
  replicates?: ReplicateResults[];
}

/** Writes <outDir>/report.html; the statistics and verdicts are computed unless given. */
export function writeStudyReport(outDir: string, r: StudyResults, pre?: { statistics: StudyStatistics; verdicts: ClaimVerdict[] }): string {
  const statistics = pre?.statistics ?? studyStatistics(r);
  const verdicts = pre?.verdicts ?? studyVerdicts(r, statistics);
  const rel = (p: string) => relative(outDir, p);
  const c = r.cfg;
  const rep = new Report(`RobusTok at small scale: ${c.name} study on ${c.dataset}`);
  rep.section('Run');
  const arms = r.continuous ? `discrete arm: ${r.tokenizers.length} VQ tokenizers, ${r.generators.length} AR generators; continuous arm: ${r.continuous.tokenizers.length} KL tokenizers, ${r.continuous.generators.length} diffusion generators` : `${r.tokenizers.length} tokenizers, ${r.generators.length} generators`;
  rep.paragraph(`${arms}; ${c.imageSize}x${c.imageSize} images, ${r.tokenizers[0]?.eval.count ?? 0} validation images; ${(r.seconds / 60).toFixed(1)} min on ${r.device}.`);
  rep.pre(r.command);
  addVerdicts(rep, c, verdicts);

  rep.section('Tokenizers');
  const tokRows: Row[] = r.tokenizers.map((t) => {
    const row: Row = { tokenizer: t.name, perturbation: t.description, params: t.params, steps: t.steps, rFID: withError(t.eval.rfid, t.eval.rfidError) };
    for (const p of t.eval.pfid) row[`pFID a=${p.alpha}`] = withError(p.fid, p.error);
    Object.assign(row, { PSNR: t.eval.psnr, SSIM: t.eval.ssim, 'usage %': t.eval.usage, perplexity: t.eval.perplexity });
    return row;
  });
  rep.table(tokRows, { caption: `FID with the FeatNet feature network (± bootstrap standard error over the validation images, where recorded); pFID: every token of every validation image perturbed with probability alpha among the delta = ${r.tokenizers[0]?.eval.pfid[0]?.delta ?? '?'} nearest codes (the study's pFID is alpha = ${c.eval.pfidAlpha}).` });
  for (const t of r.tokenizers) {
    rep.heading(`${t.name}: reconstructions`, 3);
    rep.image(rel(t.reconGrid), { alt: `${t.name} reconstructions`, caption: `rows: originals, clean reconstructions, then reconstructions from perturbed tokens at alpha = ${c.eval.alphas.join(', ')}` });
    const metrics = `${t.dir}/metrics.jsonl`;
    if (existsSync(metrics)) rep.svg(lineChart(readMetricsLog(metrics, { terms: ['rec', 'codebook', 'commit'] }), { title: `${t.name}: training losses`, xLabel: 'step', yLabel: 'loss', logY: true }));
  }

  if (r.generators.length) {
    rep.section('Generators');
    const byName = new Map(r.tokenizers.map((t) => [t.name, t]));
    rep.table(r.generators.map((g) => ({ tokenizer: g.tokenizer, 'AR params': g.params, steps: g.steps, 'final loss': g.finalLoss, gFID: g.gfid, IS: g.inceptionScore, rFID: byName.get(g.tokenizer)!.eval.rfid, pFID: byName.get(g.tokenizer)!.eval.pfidDefault.fid, 'sampling s': g.sampleSeconds })), { caption: `${c.sampling.numImages} class-balanced samples per generator (temperature ${c.sampling.temperature}, top-k ${c.sampling.topK || 'off'}, top-p ${c.sampling.topP}, CFG ${c.sampling.cfgScale} ${c.sampling.cfgSchedule}) against the validation images.` });
    for (const g of r.generators) {
      rep.heading(`${g.tokenizer}: samples`, 3);
      rep.image(rel(g.sampleGrid), { alt: `${g.tokenizer} samples`, caption: 'one row per class' });
      if (existsSync(g.metrics)) rep.svg(lineChart(readMetricsLog(g.metrics, { terms: ['loss'] }), { title: `${g.tokenizer}: AR cross-entropy`, xLabel: 'step', yLabel: 'loss' }));
    }
  }

  if (r.posttrain) {
    const p = r.posttrain;
    rep.section(`Decoder post-training (${p.tokenizer})`);
    rep.paragraph(`Mixed token sequences from ${p.images} training images (preservation ratio sigma = ${p.sigma}; measured kept fraction ${p.keptFraction.toFixed(3)}); decoder trained ${p.steps} steps, encoder, codebook and generator frozen.`);
    rep.table([
      { decoder: 'before', gFID: p.before.gfid, IS: p.before.inceptionScore, rFID: p.before.rfid, PSNR: p.before.psnr },
      { decoder: 'after (mixed tokens)', gFID: p.after.gfid, IS: p.after.inceptionScore, rFID: p.after.rfid, PSNR: p.after.psnr },
      ...(p.control ? [{ decoder: 'control (clean tokens, same training)', gFID: p.control.gfid, IS: p.control.inceptionScore, rFID: p.control.rfid, PSNR: p.control.psnr }] : []),
    ], { caption: 'gFID: the same generated token sequences decoded by each decoder. The control separates the effect of the generator-mixed tokens from that of training the decoder longer.' });
    rep.image(rel(p.grid), { alt: 'post-training samples', caption: 'generated tokens decoded by the decoder before (top half) and after (bottom half) post-training' });
    if (existsSync(p.metrics)) rep.svg(lineChart(readMetricsLog(p.metrics, { terms: ['loss'] }), { title: 'decoder post-training loss', xLabel: 'step', yLabel: 'loss' }));
  }
  if (r.continuous && c.continuous) addContinuousReport(rep, rel, c, r.continuous);
  addStatisticsSections(rep, rel, r, statistics);
  return rep.write(outDir);
}
