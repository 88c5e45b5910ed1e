/**
 * The continuous arm's part of the study report, beside the discrete one: KL tokenizer table
 * (rFID, nFID grid, iFID, PSNR, SSIM, each FID with its bootstrap error), diffusion generator
 * table (gFID, IS), decoder post-training before / after / control, image grids and loss curves.
 * The correlations with gFID are in report-stats.ts, with the discrete arm's.
 */
import { existsSync } from 'node:fs';
import { lineChart, readMetricsLog, type Report, type Row } from '../../node/report/index.js';
import type { StudyConfig } from './config.js';
import { withError } from './report-stats.js';
import type { DiffusionGeneratorRecord } from './continuous-generators.js';
import type { ContinuousPostTrainRecord } from './continuous-posttrain.js';
import type { ContinuousTokenizerRecord } from './continuous-tokenizers.js';

export interface ContinuousResults {
  tokenizers: ContinuousTokenizerRecord[];
  generators: DiffusionGeneratorRecord[];
  posttrain: ContinuousPostTrainRecord | null;
}

const noiseText = (t: ContinuousTokenizerRecord) => (t.latentNoise.beta === 0 || t.latentNoise.tauMax === 0 ? 'none' : `beta ${t.latentNoise.beta}, tau ~ U(0, ${t.latentNoise.tauMax}), gamma ${t.latentNoise.gamma}${t.latentNoise.anneal ? ', annealed' : ''}`);

/** Appends the continuous arm's sections to `rep`; `rel` makes paths relative to the report. */
export function addContinuousReport(rep: Report, rel: (p: string) => string, cfg: StudyConfig, r: ContinuousResults): void {
  const k = cfg.continuous!;
  rep.section('Continuous tokenizers (KL)');
  const t0 = r.tokenizers[0];
  rep.paragraph(
    `The continuous arm: KL tokenizers${t0 ? ` (${t0.latentChannels}x${t0.latentGrid.join('x')} latents)` : ''} with and without noise-augmented decoding (the continuous analogue of latent perturbation), then a class-conditional diffusion transformer (flow matching) per tokenizer over its normalized latents.`,
  );
  const rows: Row[] = r.tokenizers.map((t) => {
    const row: Row = { tokenizer: t.name, 'latent noise': noiseText(t), channels: t.latentChannels, 'KL weight': t.config.klWeight ?? null, params: t.params, steps: t.steps, rFID: withError(t.eval.rfid, t.eval.rfidError) };
    for (const e of t.eval.nfid) row[`nFID t=${e.tau}`] = withError(e.fid, e.error);
    Object.assign(row, { iFID: t.eval.ifid === null ? null : withError(t.eval.ifid, t.eval.ifidError), PSNR: t.eval.psnr, SSIM: t.eval.ssim });
    return row;
  });
  rep.table(rows, {
    caption: `FID with the FeatNet feature network. nFID(tau): the decoder on (1 - tau) z + tau eps, eps ~ N(0, I) in the normalized latent space (the study's nFID is tau = ${k.eval.nfidTau}); iFID: the decoder on slerp(z, n, 0.5) with n drawn among the K = ${k.eval.ifidK} cosine-nearest of ${t0?.eval.ifidTrainCount ?? '?'} training latents with probability softmax(-MSE).`,
  });
  for (const t of r.tokenizers) {
    rep.heading(`${t.name}: reconstructions`, 3);
    rep.image(rel(t.reconGrid), { alt: `${t.name} reconstructions`, caption: `rows: originals, clean reconstructions, decodings of noised latents at tau = ${k.eval.taus.join(', ')}, iFID interpolations` });
    const metrics = `${t.dir}/metrics.jsonl`;
    if (existsSync(metrics)) rep.svg(lineChart(readMetricsLog(metrics, { terms: ['rec', 'kl'] }), { title: `${t.name}: training losses`, xLabel: 'step', yLabel: 'loss', logY: true }));
  }

  if (r.generators.length) {
    rep.section('Diffusion generators');
    const byName = new Map(r.tokenizers.map((t) => [t.name, t]));
    const s = k.sampling;
    rep.table(
      r.generators.map((g) => {
        const e = byName.get(g.tokenizer)!.eval;
        return { tokenizer: g.tokenizer, 'DiT params': g.params, steps: g.steps, 'final loss': g.finalLoss, gFID: g.gfid, IS: g.inceptionScore, rFID: e.rfid, nFID: e.nfidDefault.fid, iFID: e.ifid, 'sampling s': g.sampleSeconds };
      }),
      { caption: `DiT dim ${k.diffusion.dim}, depth ${k.diffusion.depth}, patch ${k.diffusion.patchSize}, EMA ${k.diffusion.emaDecay}; ${s.numImages} class-balanced samples per generator (${s.sampler}, ${s.steps} steps, CFG ${s.cfgScale}${s.guidanceInterval ? ` on t in [${s.guidanceInterval.join(', ')}]` : ''}) against the validation images (the discrete arm's real statistics).` },
    );
    for (const g of r.generators) {
      rep.heading(`${g.tokenizer}: samples`, 3);
      rep.image(rel(g.sampleGrid), { alt: `${g.tokenizer} samples`, caption: 'one row per class' });
      if (existsSync(g.metrics)) rep.svg(lineChart(readMetricsLog(g.metrics, { terms: ['loss'] }), { title: `${g.tokenizer}: flow-matching loss`, xLabel: 'step', yLabel: 'loss' }));
    }
  }

  if (r.posttrain) {
    const p = r.posttrain;
    rep.section(`Decoder post-training, continuous (${p.tokenizer})`);
    rep.paragraph(
      `Latents of ${p.images} training images noised to t* = ${p.tStar} and denoised back to t = 0 by the frozen diffusion generator (${p.odeSteps} ODE steps, guided for the image's class; RMS change of the normalized latents ${p.latentRmsChange.toFixed(3)}); decoder trained ${p.steps} steps on them, encoder and generator frozen.`,
    );
    const row = (decoder: string, s: ContinuousPostTrainRecord['before']) => ({ decoder, gFID: s.gfid, IS: s.inceptionScore, rFID: s.rfid, nFID: s.nfid, PSNR: s.psnr, SSIM: s.ssim });
    rep.table([row('before', p.before), row(`after (denoised latents, t* = ${p.tStar})`, p.after), ...(p.control ? [row('control (clean latents, same training)', p.control)] : [])], {
      caption: 'gFID: the same generated latents decoded by each decoder. The control separates the effect of the generator-denoised latents from that of training the decoder longer.',
    });
    rep.image(rel(p.grid), { alt: 'continuous post-training samples', caption: `generated latents decoded by the decoder before (top), after${p.control ? ' (middle) and by the control (bottom)' : ' (bottom)'}` });
    if (existsSync(p.metrics)) rep.svg(lineChart(readMetricsLog(p.metrics, { terms: ['loss'] }), { title: 'continuous decoder post-training loss', xLabel: 'step', yLabel: 'loss' }));
  }
}
