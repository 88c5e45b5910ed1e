/**
 * The study pipeline end to end at its smallest size (examples/robustok, preset 'tiny': 128
 * Fashion-MNIST training images at 16x16; discrete arm: two VQ tokenizers, two AR generators,
 * post-training; continuous arm: two KL tokenizers, two diffusion generators, post-training; the
 * report with its statistics, verdicts and class consistency), then a second run over the same
 * folder, which must reuse every finished stage. Two tokenizers have no correlation, so the
 * correlation sections are exercised on the tiny run's own records plus one more point per arm.
 * Also: the medium preset validates and is planned from step times measured at the tiny sizes;
 * the progress line's ETA; the verdict rule.
 */
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { finishedStageResults } from '../examples/robustok/finished-stages.js';
import { resultsMarkdown } from '../examples/robustok/results-markdown.js';
import { GPU, MEDIUM, PRESETS, studySeeds, TINY, validateStudy, type StudyConfig } from '../examples/robustok/config.js';
import { runStudy } from '../examples/robustok/study.js';
import { finishedRecord } from '../examples/robustok/context.js';
import { measureStepTimes, planStudy } from '../examples/robustok/estimate.js';
import { StudyProgress } from '../examples/robustok/progress.js';
import { writeStudyReport, type StudyResults } from '../examples/robustok/report.js';
import { studyStatistics } from '../examples/robustok/statistics.js';
import { signVerdict, studyVerdicts } from '../examples/robustok/verdicts.js';
import { targetText } from '../examples/robustok/report-stats.js';
import { classConsistency, meanInterval, welchInterval } from '../models/metrics/index.js';
import { requireGpu } from './helpers/backends.js';

const gpu = await requireGpu();

describe.runIf(gpu)('robustok study (tiny preset)', () => {
  const out = mkdtempSync(join(tmpdir(), 'robustok-'));
  afterAll(() => rmSync(out, { recursive: true, force: true }));

  it('runs every stage, writes the records and the report, and resumes without retraining', async () => {
    const lines: string[] = [];
    const r = await runStudy({ backend: gpu!, cfg: TINY, outDir: out, log: (l) => lines.push(l) });
    expect(r.tokenizers.map((t) => t.name)).toEqual(TINY.tokenizer.variants.map((v) => v.name));
    expect(r.generators).toHaveLength(2);
    for (const t of r.tokenizers) {
      for (const v of [t.eval.rfid, t.eval.psnr, t.eval.ssim, ...t.eval.pfid.map((p) => p.fid)]) expect(Number.isFinite(v)).toBe(true);
      expect(t.eval.count).toBe(TINY.valImages);
      expect(existsSync(t.reconGrid)).toBe(true);
    }
    for (const g of [...r.generators, ...r.continuous!.generators]) {
      expect(Number.isFinite(g.gfid) && g.gfid > 0).toBe(true);
      expect(g.numImages).toBe(TINY.sampling.numImages);
      expect(existsSync(g.sampleGrid) && existsSync(g.samples)).toBe(true);
      // gFID's sampling error: TINY's 20 bootstrap replicates of 40 samples vs 64 real images.
      expect([g.gfidError.resamples, g.gfidError.method]).toEqual([TINY.stats!.fidResamples, 'percentile']);
      expect(g.gfidError.standardError).toBeGreaterThan(0);
      expect(g.gfidError.low).toBeLessThan(g.gfidError.high);
      expect(g.classConsistency.count).toBe(TINY.sampling.numImages);
      expect(g.classConsistency.perClass.map((c) => c.count)).toEqual(Array(10).fill(4)); // class-balanced: 40 / 10
      expect(g.classConsistency.accuracy).toBeGreaterThanOrEqual(0);
    }
    // The plan: real features, then per arm 2 tokenizers + 2 generators + post-training = 11 stages.
    expect(lines.filter((l) => /^\[study\] \d+\/11 stages done .*ETA/.test(l))).toHaveLength(11);
    const p = r.posttrain!;
    expect(p.tokenizer).toBe(r.generators.reduce((a, b) => (b.gfid < a.gfid ? b : a)).tokenizer);
    // 32 images x 16 tokens at sigma 0.7: 5 sd of the kept fraction is 0.1.
    expect(Math.abs(p.keptFraction - TINY.posttrain.sigma)).toBeLessThan(0.1);
    expect(Number.isFinite(p.after.gfid) && Number.isFinite(p.after.rfid)).toBe(true);
    expect(Number.isFinite(p.control!.gfid) && p.control!.gfid !== p.after.gfid).toBe(true);
    // The paired differences come from the feature rows (float64) of the same decodings as the
    // recorded gFIDs (accumulated per batch): equal up to rounding.
    for (const q of [p, r.continuous!.posttrain!]) {
      const cmp = q.comparison;
      for (const iv of [cmp.afterMinusBefore, cmp.controlMinusBefore!, cmp.afterMinusControl!]) expect(iv.low).toBeLessThan(iv.high);
      expect(cmp.afterMinusBefore.estimate).toBeCloseTo(q.after.gfid - q.before.gfid, 6);
      expect(cmp.controlMinusBefore!.estimate).toBeCloseTo(q.control!.gfid - q.before.gfid, 6);
      expect(cmp.afterMinusControl!.estimate).toBeCloseTo(q.after.gfid - q.control!.gfid, 6);
    }
    expect(p.after.classConsistency.count).toBe(TINY.sampling.numImages);

    const k = TINY.continuous!;
    const c = r.continuous!;
    expect(c.tokenizers.map((t) => t.name)).toEqual(k.tokenizer.variants.map((v) => v.name));
    expect(c.generators.map((g) => g.tokenizer)).toEqual(k.tokenizer.variants.map((v) => v.name));
    for (const t of c.tokenizers) {
      expect(t.eval.nfid.map((e) => e.tau)).toEqual(k.eval.taus);
      expect(t.eval.nfidDefault.tau).toBe(k.eval.nfidTau);
      for (const v of [t.eval.rfid, t.eval.ifid!, t.eval.psnr, t.eval.ssim, ...t.eval.nfid.map((e) => e.fid)]) expect(Number.isFinite(v)).toBe(true);
      expect([t.eval.count, t.eval.ifidTrainCount, t.eval.ifidK]).toEqual([TINY.valImages, k.eval.ifidMaxTrain, k.eval.ifidK]);
      expect(t.latentStats.std.every((v) => v > 0 && v !== 1)).toBe(true); // measured after training
      expect(existsSync(t.reconGrid)).toBe(true);
    }
    for (const g of c.generators) {
      expect(Number.isFinite(g.gfid) && g.gfid > 0).toBe(true);
      expect(g.numImages).toBe(k.sampling.numImages);
      expect(existsSync(g.sampleGrid) && existsSync(g.samples)).toBe(true);
    }
    const cp = c.posttrain!;
    expect(cp.tokenizer).toBe(c.generators.reduce((a, b) => (b.gfid < a.gfid ? b : a)).tokenizer);
    // before is the generator stage's gFID of the same saved latents, decoded by the same decoder.
    expect(cp.before.gfid).toBe(c.generators.find((g) => g.tokenizer === cp.tokenizer)!.gfid);
    expect(cp.latentRmsChange).toBeGreaterThan(0); // the generator moved the noised latents
    for (const s of [cp.after, cp.control!]) for (const v of [s.gfid, s.rfid, s.nfid, s.psnr]) expect(Number.isFinite(v)).toBe(true);
    expect(cp.control!.gfid).not.toBe(cp.after.gfid);

    const html = readFileSync(r.reportPath, 'utf8');
    for (const s of ['Tokenizers', 'Generators', 'Decoder post-training', 'control (clean tokens', 'recon.png', 'samples.png', '<svg']) expect(html).toContain(s);
    for (const s of ['Verdicts', 'cannot tell at this scale', 'gFID sampling error (AR generators)', 'Post-training with error bars', 'paired gFID differences', 'Class consistency of the samples', 'T-shirt/top', 'best AR generator', 'best diffusion generator', 'below the 80.0% target']) expect(html).toContain(s);
    for (const s of ['Continuous tokenizers (KL)', 'Diffusion generators', 'Decoder post-training, continuous', 'control (clean latents', 'continuous/tokenizers/kl-baseline/recon.png', 'continuous/generators/kl-noised/samples.png']) expect(html).toContain(s);
    const results = JSON.parse(readFileSync(join(out, 'results.json'), 'utf8'));
    for (const s of ['Does pFID track gFID?', 'Do nFID / iFID track gFID?', 't approximation']) expect(html).not.toContain(s); // one correlation section per arm, with intervals
    expect(results.correlations).toBeUndefined();
    const md = resultsMarkdown(results);
    for (const s of ['### VQ tokenizers', '### Diffusion generators', '### Verdicts', `| ${r.generators[0]!.tokenizer} | ${r.generators[0]!.gfid.toFixed(2)} ± ${r.generators[0]!.gfidError.standardError.toFixed(2)} |`, 'after - control']) expect(md).toContain(s);
    // Every reconstruction FID carries its paired-bootstrap error, shown as "value ± SE".
    for (const t of r.tokenizers) for (const iv of [t.eval.rfidError!, ...t.eval.pfid.map((q) => q.error!)]) expect(iv.standardError).toBeGreaterThan(0);
    for (const t of c.tokenizers) for (const iv of [t.eval.rfidError!, t.eval.ifidError!, ...t.eval.nfid.map((q) => q.error!)]) expect(iv.standardError).toBeGreaterThan(0);
    expect(html).toContain(`${r.tokenizers[0]!.eval.rfid.toFixed(2)} ± ${r.tokenizers[0]!.eval.rfidError!.standardError.toFixed(2)}`);
    expect(results.verdicts.filter((v: { claim: number }) => v.claim === 2).map((v: { verdict: string; evidence: string }) => [v.verdict, v.evidence])).toEqual(Array(4).fill(['cannot tell at this scale', '2 tokenizers with generators: a correlation needs at least 3']));
    expect(results.verdicts.filter((v: { claim: number }) => v.claim === 3)).toHaveLength(4);

    // One more point per arm (a copy of the first tokenizer and generator with other numbers): the
    // correlation sections, their intervals, permutation p-values and plots on real records.
    const t0 = r.tokenizers[0]!;
    const g0 = r.generators[0]!;
    const k0 = r.continuous!.tokenizers[0]!;
    const d0 = r.continuous!.generators[0]!;
    const three: StudyResults = {
      ...r,
      tokenizers: [...r.tokenizers, { ...t0, name: 'extra', eval: { ...t0.eval, rfid: t0.eval.rfid * 1.5, pfid: t0.eval.pfid.map((q) => ({ ...q, fid: q.fid * 1.7 })) } }],
      generators: [...r.generators, { ...g0, tokenizer: 'extra', gfid: g0.gfid * 1.6 }],
      continuous: { ...r.continuous!, tokenizers: [...r.continuous!.tokenizers, { ...k0, name: 'kl-extra', eval: { ...k0.eval, rfid: k0.eval.rfid * 1.2, nfid: k0.eval.nfid.map((q) => ({ ...q, fid: q.fid * 1.3 })), nfidDefault: { ...k0.eval.nfidDefault, fid: k0.eval.nfidDefault.fid * 1.3 } } }], generators: [...r.continuous!.generators, { ...d0, tokenizer: 'kl-extra', gfid: d0.gfid * 1.4 }] },
    };
    const stats = studyStatistics(three);
    const pf = stats.discrete!.metrics.find((m) => m.metric === 'pFID a=0.3')!;
    expect(pf.spearman.permutation).toMatchObject({ exact: true, permutations: 6 });
    expect(Number.isFinite(pf.spearman.interval.estimate)).toBe(true);
    expect(stats.discrete!.comparison!.metric).toBe('pFID a=0.3');
    expect(stats.continuous!.metrics.map((m) => m.metric)).toEqual(['rFID', 'nFID t=0.1', 'nFID t=0.2', 'nFID t=0.3', 'iFID']);
    const verdicts = studyVerdicts(three, stats);
    expect(verdicts.filter((v) => v.claim === 2).every((v) => v.interval !== null)).toBe(true);
    const html3 = readFileSync(writeStudyReport(join(out, 'three'), three), 'utf8');
    for (const s of ['Correlation with gFID, with intervals (discrete)', 'Correlation with gFID, with intervals (continuous)', 'rho(pFID a=0.3) - rho(rFID)', 'pFID a=0.5 vs gFID (discrete)', 'iFID vs gFID (continuous)', 'Spearman p (perm.)', 'Spearman rho with gFID (discrete)', 'horizontal: rFID +-', ' x in [']) expect(html3).toContain(s);

    const again: string[] = [];
    const r2 = await runStudy({ backend: gpu!, cfg: TINY, outDir: out, log: (l) => again.push(l) });
    expect(again.filter((l) => l.includes('done earlier'))).toHaveLength(10); // 2 + 2 + 1 stages per arm
    expect(again.some((l) => /^step \d+\//.test(l))).toBe(false);
    expect(r2.generators.map((g) => g.gfid)).toEqual(r.generators.map((g) => g.gfid));
    expect(r2.posttrain!.after.gfid).toBe(p.after.gfid);
    expect(r2.continuous!.generators.map((g) => g.gfid)).toEqual(c.generators.map((g) => g.gfid));
    expect(r2.continuous!.posttrain!.after.gfid).toBe(cp.after.gfid);

    // --report-only reads the same records back without running anything; a missing stage is absent.
    const fin = finishedStageResults(TINY, out, 'report-only');
    expect([fin.tokenizers, fin.generators, fin.posttrain, fin.continuous]).toEqual([r.tokenizers, r.generators, r.posttrain, r.continuous]);
    rmSync(join(out, 'generators', r.generators[1]!.tokenizer, 'record.json'));
    expect(finishedStageResults(TINY, out, 'report-only').generators.map((g) => g.tokenizer)).toEqual([r.generators[0]!.tokenizer]);
  });
});

describe.runIf(gpu)('robustok study with two training seeds (tiny, discrete arm)', () => {
  const out = mkdtempSync(join(tmpdir(), 'robustok-seeds-'));
  afterAll(() => rmSync(out, { recursive: true, force: true }));

  it('trains every variant per seed, reuses a single-seed run as seed 0, and takes the claims over the seeds', async () => {
    const one: StudyConfig = { ...TINY, continuous: undefined };
    const r1 = await runStudy({ backend: gpu!, cfg: one, outDir: out, log: () => {} });
    const lines: string[] = [];
    const two: StudyConfig = { ...one, seeds: 2 };
    const r = await runStudy({ backend: gpu!, cfg: two, outDir: out, log: (l) => lines.push(l) });
    // Seed 0 is the single-seed run, loaded; seed 1 trains in seeds/seed-1 with its own stage names and log lines.
    expect(lines.filter((l) => /^\[(tokenizer|generator) [^\]]+\] done earlier/.test(l))).toHaveLength(4);
    expect(lines.filter((l) => l.startsWith('[seed') && l.includes('done earlier'))).toHaveLength(0);
    expect(r.generators.map((g) => g.gfid)).toEqual(r1.generators.map((g) => g.gfid));
    expect(r.replicates).toHaveLength(1);
    const s1 = r.replicates![0]!;
    expect(s1.seed).toBe(TINY.seed + 1);
    for (const t of s1.tokenizers) expect(t.dir).toBe(join(out, 'seeds', `seed-${TINY.seed + 1}`, 'tokenizers', t.name));
    expect(s1.generators.map((g) => g.gfid)).not.toEqual(r.generators.map((g) => g.gfid)); // another training seed
    expect(lines.some((l) => l.startsWith(`[seed ${TINY.seed + 1}] [tokenizer baseline]`))).toBe(true);
    expect(lines.some((l) => /^\[study\] \d+\/\d+ stages done \(generator perturbed \(seed 1\)/.test(l))).toBe(true);
    // Post-training: the variant with the best mean gFID, in both seeds.
    const means = r.generators.map((g, i) => ({ name: g.tokenizer, m: (g.gfid + s1.generators[i]!.gfid) / 2 }));
    const best = means.reduce((a, b) => (b.m < a.m ? b : a)).name;
    expect([r.posttrain!.tokenizer, s1.posttrain!.tokenizer]).toEqual([best, best]);

    const stats = studyStatistics(r);
    expect(stats.discrete!.gfidSeeds).toEqual(r.generators.map((g, i) => [g.gfid, s1.generators[i]!.gfid]));
    expect(stats.discrete!.gfid).toEqual(means.map((x) => x.m));
    const v = studyVerdicts(r, stats);
    const claim1 = v.find((x) => x.claim === 1)!;
    const g = (list: typeof r.generators, n: string) => list.find((x) => x.tokenizer === n)!.gfid;
    const welch = welchInterval([g(r.generators, 'perturbed'), g(s1.generators, 'perturbed')], [g(r.generators, 'baseline'), g(s1.generators, 'baseline')]);
    expect(claim1.interval).toEqual(welch);
    expect(claim1.evidence).toContain('Welch t over 2 and 2 training seeds');
    const claim3 = v.filter((x) => x.claim === 3);
    expect(claim3[0]!.interval).toEqual(meanInterval([r.posttrain!.after.gfid - r.posttrain!.before.gfid, s1.posttrain!.after.gfid - s1.posttrain!.before.gfid]));
    expect(claim3[0]!.evidence).toContain('mean over 2 training seeds');

    const html = readFileSync(r.reportPath, 'utf8');
    for (const x of ['Training seeds', 'gFID per seed', 'post-training per seed (AR)', 'range of the per-seed values']) expect(html).toContain(x);
    const md = resultsMarkdown(JSON.parse(readFileSync(join(out, 'results.json'), 'utf8')));
    expect(md).toContain('### Spread over training seeds (discrete');
    // --report-only reads every seed's records back.
    const fin = finishedStageResults(two, out, 'report-only');
    expect(fin.replicates).toEqual(r.replicates);
    expect(fin.posttrain).toEqual(r.posttrain);
  });
});

describe.runIf(gpu)('the medium preset', () => {
  it('validates, and is planned from step times measured at the tiny sizes', async () => {
    expect(PRESETS.medium).toBe(MEDIUM);
    expect(() => validateStudy(MEDIUM)).not.toThrow();
    expect([MEDIUM.imageSize, MEDIUM.tokenizer.variants.length >= 8, MEDIUM.continuous!.tokenizer.variants.length >= 4]).toEqual([32, true, true]);
    const times = await measureStepTimes(TINY, gpu!, 1);
    for (const v of Object.values(times)) expect(v).toBeGreaterThan(0);
    const e = planStudy(MEDIUM, MEDIUM.trainImages!, times);
    // real features; tokenizer + generator per VQ variant; AR post-training; the same for the KL arm.
    expect(e.plan).toHaveLength(1 + 2 * 8 + 1 + 2 * 4 + 1);
    expect(e.plan.every((s) => s.seconds > 0)).toBe(true);
    expect(e.totalSeconds).toBeCloseTo(e.plan.reduce((a, s) => a + s.seconds, 0), 6);
    expect(e.plan.map((s) => s.name)).toContain('generator paper-K2048');
    // The gpu preset: the same study (same variants, same stages) at a larger scale.
    expect(PRESETS.gpu).toBe(GPU);
    expect(() => validateStudy(GPU)).not.toThrow();
    expect(GPU.tokenizer.variants).toEqual(MEDIUM.tokenizer.variants);
    expect(GPU.continuous!.tokenizer.variants).toEqual(MEDIUM.continuous!.tokenizer.variants);
    expect([GPU.trainImages! > MEDIUM.trainImages!, GPU.valImages > MEDIUM.valImages, GPU.sampling.numImages > MEDIUM.sampling.numImages, GPU.ar.dim > MEDIUM.ar.dim]).toEqual([true, true, true, true]);
    const g = planStudy(GPU, GPU.trainImages!, times);
    expect(g.plan.map((s) => s.name)).toEqual(e.plan.map((s) => s.name));
  });
});

describe('study progress and verdicts', () => {
  it('the ETA scales the remaining planned time by the pace so far; resumed stages leave the plan', () => {
    let t = 0;
    const lines: string[] = [];
    const p = new StudyProgress([{ name: 'a', seconds: 10 }, { name: 'b', seconds: 10 }, { name: 'c', seconds: 20 }, { name: 'd', seconds: 5 }], (l) => lines.push(l), () => t);
    p.resumed('a');
    t = 20_000; // b took 20 s for 10 planned: twice as slow as planned
    p.done('b');
    expect(lines.pop()).toBe('[study] 2/4 stages done (b; 1 loaded from an earlier run); elapsed 20s, ETA 50s');
    p.skip('d');
    t = 60_000;
    p.done('c');
    expect(lines.pop()).toMatch(/4\/4 stages done \(c.*ETA 0s$/);
    // A first stage under 5% of the plan: the ETA is the plan's, not scaled by its pace.
    const q = new StudyProgress([{ name: 'x', seconds: 1 }, { name: 'y', seconds: 99 }], (l) => lines.push(l), () => t);
    t += 200;
    q.done('x');
    expect(lines.pop()).toMatch(/1\/2 stages done \(x\); elapsed 0s, ETA 1m39s$/);
  });

  it('plans every stage once per training seed; seeds must be a positive integer', () => {
    const t = { tokenizerStep: 1, arStep: 1, arSampleBatch: 1, evalBatch: 1, fidReplicate: 0.01, klTokenizerStep: 1, ditStep: 1, ditEval: 1 };
    const one = planStudy(TINY, 128, t);
    const two = planStudy({ ...TINY, seeds: 2 }, 128, t);
    expect(two.plan).toHaveLength(1 + 2 * (one.plan.length - 1));
    const names = two.plan.map((s) => s.name);
    for (const n of ['generator baseline (seed 1)', 'posttrain (AR) (seed 1)', 'diffusion kl-noised (seed 1)', 'posttrain (diffusion)']) expect(names).toContain(n);
    expect(two.totalSeconds - two.plan[0]!.seconds).toBeCloseTo(2 * (one.totalSeconds - one.plan[0]!.seconds), 9);
    expect(studySeeds({ ...TINY, seed: 5, seeds: 3 })).toEqual([5, 6, 7]);
    expect(studySeeds(TINY)).toEqual([TINY.seed]);
    expect(() => validateStudy({ ...TINY, seeds: 0 })).toThrow(/seeds must be a positive integer, got 0/);
    expect(() => validateStudy({ ...TINY, seeds: 1.5 })).toThrow(/seeds must be a positive integer/);
  });

  it('the verdict rule: the side of 0 the interval lies on, or cannot tell', () => {
    expect(signVerdict({ low: -3, high: -1 }, 'negative')).toBe('holds');
    expect(signVerdict({ low: 1, high: 3 }, 'negative')).toBe('does not hold');
    expect(signVerdict({ low: -1, high: 3 }, 'negative')).toBe('cannot tell at this scale');
    expect(signVerdict({ low: 0.2, high: 0.9 }, 'positive')).toBe('holds');
    expect(signVerdict({ low: -0.9, high: -0.2 }, 'positive')).toBe('does not hold');
    expect(signVerdict({ low: NaN, high: 0.9 }, 'positive')).toBe('cannot tell at this scale');
    expect(signVerdict(null, 'positive')).toBe('cannot tell at this scale');
  });

  it('class consistency reaches the 80% target only when its whole Wilson interval does', () => {
    const cc = (k: number, n: number) => classConsistency(Array.from({ length: n * 2 }, (_, i) => (i % 2 === 0 ? 1 : 0)), 2, Array.from({ length: n }, (_, i) => (i < k ? 0 : 1)));
    expect(targetText(cc(950, 1000))).toMatch(/^reaches the 80.0% target/);
    expect(targetText(cc(500, 1000))).toMatch(/^below the 80.0% target/);
    expect(targetText(cc(8, 10))).toMatch(/^cannot tell whether it reaches 80.0%/);
  });
});

describe('validateStudy (continuous arm)', () => {
  it('accepts the presets and lists every bad continuous field in one error', () => {
    expect(() => validateStudy(TINY)).not.toThrow();
    expect(() => validateStudy({ ...TINY, stats: { fidResamples: 0, level: 1.2, bogus: 1 } as never })).toThrow(/stats\.bogus is not a setting.*stats\.fidResamples must be a positive integer, got 0; stats\.level must be in \(0, 1\), got 1\.2/);
    const k = TINY.continuous!;
    const bad: StudyConfig = {
      ...TINY,
      continuous: {
        ...k,
        tokenizer: { ...k.tokenizer, variants: [k.tokenizer.variants[0]!, { ...k.tokenizer.variants[0]!, latentNoise: { beta: 2, tauMax: 1, gamma: 3 } }] },
        eval: { ...k.eval, nfidTau: 0.25 },
        diffusion: { ...k.diffusion, dim: 30, patchSize: 3 },
        sampling: { ...k.sampling, sampler: 'rk4' as 'euler' },
        posttrain: { ...k.posttrain, tStar: 1.5 },
      },
    };
    let msg = '';
    try {
      validateStudy(bad);
    } catch (e) {
      msg = (e as Error).message;
    }
    for (const s of ["'kl-baseline' is used twice", 'beta must be in [0, 1]', 'nfidTau 0.25 must be one of', 'dim 30 must be a multiple of 4', 'not divisible by diffusion.patchSize 3', "sampler must be 'euler' or 'heun'", 'tStar must be in [0, 1]']) expect(msg).toContain(s);
  });
});

describe('finishedRecord (resuming a study stage)', () => {
  it('returns the record only when it parses, matches and its files exist; a cut-off record reruns the stage', () => {
    const dir = mkdtempSync(join(tmpdir(), 'robustok-record-'));
    try {
      const lines: string[] = [];
      const same = (r: { steps: number }) => r.steps === 10;
      expect(finishedRecord(dir, same)).toBeNull(); // nothing there
      writeFileSync(join(dir, 'record.json'), JSON.stringify({ steps: 10 }));
      expect(finishedRecord(dir, same)).toEqual({ steps: 10 });
      expect(finishedRecord(dir, (r: { steps: number }) => r.steps === 20)).toBeNull(); // other settings
      expect(finishedRecord(dir, same, ['checkpoint.safetensors'])).toBeNull(); // its checkpoint is missing
      writeFileSync(join(dir, 'checkpoint.safetensors'), '');
      expect(finishedRecord(dir, same, ['checkpoint.safetensors'])).toEqual({ steps: 10 });
      writeFileSync(join(dir, 'record.json'), '{"steps": 1');
      expect(finishedRecord(dir, same, [], (l) => lines.push(l))).toBeNull();
      expect(lines[0]).toMatch(/record\.json is not valid JSON .*running the stage again/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
