/**
 * The webgpu-tok CLI: argument parsing errors name the flag; --help for the tool and each
 * command; an end-to-end run on a tiny config (MNIST, 8 training images, batch 4: 2 steps) that
 * writes a checkpoint, resumes it for 2 more steps, refuses to resume with other settings, and
 * evaluates it (16 validation images, untrained stand-in FeatNet) writing eval.json, eval.md and
 * the reconstruction grid PNG; train-ar (2 steps of a 1-block AR model on that tokenizer's codes,
 * resume, refusals) and sample-ar (20 samples, gFID against 20 validation images, class grid PNG);
 * and the bin launcher. Runs on WebGPU, or with --cpu when there is
 * no adapter. (~20 s on lavapipe.)
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import * as E from '../engine/index.js';
import { FeatNet } from '../models/features/featnet.js';
import { InceptionV3 } from '../models/features/inception.js';
import { CliError, CONFIG_PRESETS, main, parseArgs, type OptSpec } from '../node/cli.js';
import { saveCheckpoint } from '../node/checkpoint.js';
import { decodeImage } from '../nn/data/decode.js';
import { requireGpu } from './helpers/backends.js';

const gpu = await requireGpu();
const ROOT = join(import.meta.dirname, '..');

function capture() {
  const out: string[] = [];
  const err: string[] = [];
  return { io: { out: (l: string) => out.push(l), err: (l: string) => err.push(l) }, out, err };
}

async function run(argv: string[]) {
  const c = capture();
  const code = await main(argv, c.io);
  return { code, out: c.out.join('\n'), err: c.err.join('\n') };
}

const SPECS: OptSpec[] = [
  { name: 'out', type: 'string', required: true, help: '' },
  { name: 'epochs', type: 'int', min: 1, default: 1, help: '' },
  { name: 'lr', type: 'number', min: 0, help: '' },
  { name: 'perturb', type: 'string', choices: ['none', 'paper'], default: 'none', help: '' },
  { name: 'alphas', type: 'list', help: '' },
  { name: 'fresh', type: 'bool', help: '' },
];

describe('parseArgs', () => {
  it('parses values, defaults, --name=value, switches and lists', () => {
    const { args, help, rest } = parseArgs('t', SPECS, ['--out', 'd', '--epochs=3', '--lr', '1e-3', '--alphas', '0.1,0.5', '--fresh', 'x']);
    expect(args).toEqual({ out: 'd', epochs: 3, lr: 1e-3, perturb: 'none', alphas: [0.1, 0.5], fresh: true });
    expect(help).toBe(false);
    expect(rest).toEqual(['x']);
    expect(parseArgs('t', SPECS, ['--help']).help).toBe(true); // --help skips the required check
    expect(parseArgs('t', SPECS, ['--out', 'd', '--fresh=false']).args.fresh).toBe(false);
  });

  it('errors name the command and the flag', () => {
    const bad = (argv: string[]) => () => parseArgs('t', SPECS, argv);
    expect(bad(['--out', 'd', '--epochs', 'abc'])).toThrow(new CliError("t: --epochs must be an integer, got 'abc'"));
    expect(bad(['--out', 'd', '--epochs', '1.5'])).toThrow(/--epochs must be an integer, got '1.5'/);
    expect(bad(['--out', 'd', '--epochs', '0'])).toThrow(/--epochs must be >= 1, got 0/);
    expect(bad(['--out', 'd', '--lr', 'fast'])).toThrow(/--lr must be a number, got 'fast'/);
    expect(bad(['--out', 'd', '--perturb', 'strong'])).toThrow(/--perturb must be one of none, paper, got 'strong'/);
    expect(bad(['--out', 'd', '--alphas', '0.1,x'])).toThrow(/--alphas must be a number, got 'x'/);
    expect(bad(['--out', 'd', '--bogus', '1'])).toThrow(/unknown option --bogus/);
    expect(bad(['--out', 'd', '--epochs'])).toThrow(/--epochs needs a value/);
    expect(bad(['--out', '--epochs', '2'])).toThrow(/--out needs a value/);
    expect(bad(['--epochs', '2'])).toThrow(/missing required option --out/);
    expect(bad(['--out', 'd', '--fresh=yes'])).toThrow(/--fresh is a switch/);
  });
});

describe('main', () => {
  it('--help for the tool and for each command', async () => {
    const top = await run(['--help']);
    expect(top.code).toBe(0);
    for (const c of ['train-tokenizer', 'eval-tokenizer', 'train-featnet']) expect(top.out).toContain(c);
    expect((await run([])).code).toBe(2); // no command: usage, failure
    const t = await run(['train-tokenizer', '--help']);
    expect(t.code).toBe(0);
    for (const f of ['--dataset', '--config', '--perturb none|paper', '--epochs', '--batch', '--out', '--limit', '--fresh', '--perceptual-weight', '--perceptual-net', '--disc-weight', '--disc-start', '--disc-lr', '--disc-ch']) expect(t.out).toContain(f);
    expect(t.out).toMatch(/--perceptual-weight N .*\(default 0\)/);
    expect(t.out).toMatch(/--disc-weight N .*\(default 0\)/);
    const e = await run(['eval-tokenizer', '-h']);
    expect(e.code).toBe(0);
    for (const f of ['--checkpoint', '--featnet', '--alphas', '--delta', '--limit', '--grid']) expect(e.out).toContain(f);
    expect((await run(['train-featnet', '--help'])).code).toBe(0);
  });

  it('bad arguments exit with code 2 and a message naming the flag', async () => {
    const u = await run(['train-tokenzier']);
    expect(u.code).toBe(2);
    expect(u.err).toMatch(/unknown command 'train-tokenzier'/);
    const r = await run(['train-tokenizer', '--out', '/nonexistent/x', '--batch', '-4']);
    expect(r.code).toBe(2);
    expect(r.err).toMatch(/train-tokenizer: --batch must be >= 1, got -4/);
    expect((await run(['train-tokenizer', '--out', 'x', '--config', 'huge'])).err).toMatch(/--config must be one of default, small, tiny or a .json file, got 'huge'/);
    expect((await run(['train-tokenizer', '--out', 'x', 'extra'])).err).toMatch(/unexpected argument 'extra'/);
    // The optional losses: bad values and flags that would have no effect.
    expect((await run(['train-tokenizer', '--out', 'x', '--perceptual-weight', '-0.1'])).err).toMatch(/--perceptual-weight must be >= 0, got -0.1/);
    expect((await run(['train-tokenizer', '--out', 'x', '--disc-weight', 'big'])).err).toMatch(/--disc-weight must be a number, got 'big'/);
    expect((await run(['train-tokenizer', '--out', 'x', '--disc-weight', '0.8', '--disc-start', '1.5'])).err).toMatch(/--disc-start must be an integer, got '1.5'/);
    const ds = await run(['train-tokenizer', '--out', 'x', '--disc-start', '100']);
    expect(ds.code).toBe(2);
    expect(ds.err).toMatch(/--disc-start has no effect without --disc-weight > 0/);
    expect((await run(['train-tokenizer', '--out', 'x', '--disc-lr', '1e-4'])).err).toMatch(/--disc-lr has no effect without --disc-weight > 0/);
    expect((await run(['train-tokenizer', '--out', 'x', '--perceptual-net', 'f.safetensors'])).err).toMatch(/--perceptual-net has no effect without --perceptual-weight > 0/);
    expect((await run(['train-tokenizer', '--out', 'x', '--perceptual-weight', '0.1', '--perceptual-net', '/nonexistent/f.safetensors'])).err).toMatch(/--perceptual-net file \/nonexistent\/f.safetensors does not exist/);
    expect((await run(['eval-tokenizer', '--checkpoint', '/nonexistent/ckpt'])).err).toMatch(/--checkpoint \/nonexistent\/ckpt does not exist/);
    expect((await run(['eval-tokenizer'])).err).toMatch(/missing required option --checkpoint/);
    expect(CONFIG_PRESETS.tiny!.codebookSize).toBe(256);
  });
});

describe('train-featnet', () => {
  it("delegates to examples/train-featnet.ts's main (its argument errors exit with code 2)", async () => {
    const r = await run(['train-featnet', '--epochs']);
    expect(r.code).toBe(2);
    expect(r.err).toMatch(/train-featnet: --epochs needs a value/);
  });
});

describe('train-tokenizer then eval-tokenizer, end to end (tiny)', () => {
  const dir = mkdtempSync(join(tmpdir(), 'webgpu-tok-cli-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  const dev = gpu ? [] : ['--cpu'];
  const train = ['train-tokenizer', '--dataset', 'mnist', '--config', 'tiny', '--limit', '8', '--batch', '4', '--log-every', '1', '--out', dir, ...dev];

  it('trains 2 steps, resumes for 2 more, refuses other settings, evaluates', async () => {
    const a = await run([...train, '--epochs', '1']);
    expect(a.err).toBe('');
    expect(a.code).toBe(0);
    expect(a.out).toMatch(/step 2\/2 .*ETA .* \| peak mem \d+ MB/);
    expect(existsSync(join(dir, 'checkpoint.safetensors'))).toBe(true);
    expect(readFileSync(join(dir, 'metrics.jsonl'), 'utf8').trim().split('\n')).toHaveLength(2);

    const b = await run([...train, '--epochs', '2']);
    expect(b.code).toBe(0);
    expect(b.out).toMatch(/resumed from .*checkpoint.safetensors at step 2/);
    expect(b.out).toMatch(/step 4\/4/);
    expect(b.out).not.toMatch(/step [12]\//);

    const c = await run([...train, '--epochs', '2', '--perturb', 'paper']);
    expect(c.code).toBe(2);
    expect(c.err).toMatch(/was trained with --perturb none, not paper/);

    // A FeatNet weights file as examples/train-featnet.ts writes it (state dict + featnet_config),
    // with a non-default config so a loader ignoring the config would fail.
    const cfg = { channels: [4, 8, 8] as [number, number, number], featureDim: 16 };
    const net = new FeatNet(cfg, { backend: new (await import('../engine/cpu/backend.js')).CpuBackend({ precision: 'f32' }), generator: new E.Generator(5) });
    const featPath = join(dir, 'featnet.safetensors');
    await saveCheckpoint(featPath, net.stateDict(), { format: 'pt', featnet_config: JSON.stringify(net.cfg) });
    net.dispose();

    const evalDir = join(dir, 'eval');
    const e = await run(['eval-tokenizer', '--checkpoint', dir, '--featnet', featPath, '--limit', '16', '--batch', '8', '--grid', '4', '--alphas', '0,0.5', '--out', evalDir, ...dev]);
    expect(e.err).toBe('');
    expect(e.code).toBe(0);
    expect(e.out).toContain('| rFID |');
    const j = JSON.parse(readFileSync(join(evalDir, 'eval.json'), 'utf8'));
    expect(j.step).toBe(4);
    expect(j.count).toBe(16);
    expect(j.featureDim).toBe(16);
    expect(j.featnet).toBe(featPath);
    expect(j.dataset).toBe('mnist');
    expect(j.pfid.map((p: { alpha: number }) => p.alpha)).toEqual([0, 0.3, 0.5]);
    expect(j.pfid[0].delta).toBe(6); // round(256 * 100 / 4096)
    expect(j.pfid[0].fid).toBe(j.rfid);
    for (const k of ['rfid', 'psnr', 'ssim', 'usage', 'perplexity']) expect(Number.isFinite(j[k])).toBe(true);
    expect(j.usage).toBeGreaterThan(0);
    expect(j.usage).toBeLessThanOrEqual(100);
    expect(readFileSync(join(evalDir, 'eval.md'), 'utf8')).toMatch(/\| pFID \(alpha 0.3, delta 6\) \|/);
    const png = decodeImage(new Uint8Array(readFileSync(join(evalDir, 'recon-grid.png'))));
    // 4 rows (originals, clean, alpha 0, alpha 0.5) of 4 images of 32x32, with padding.
    expect(png.width).toBeGreaterThanOrEqual(4 * 32);
    expect(png.height).toBeGreaterThanOrEqual(4 * 32);
    expect(png.height).toBeLessThan(5 * 32);

    // The untrained stand-in, and the missing-file error.
    const r = await run(['eval-tokenizer', '--checkpoint', dir, '--featnet', 'random', '--limit', '4', '--alphas', '0.3', '--out', join(dir, 'eval2'), ...dev]);
    expect(r.code).toBe(0);
    expect(JSON.parse(readFileSync(join(dir, 'eval2', 'eval.json'), 'utf8')).featureDim).toBe(128);
    // Inception-v3 from a safetensors file (a random width/16 network: 128-d pool features).
    const cpu = new (await import('../engine/cpu/backend.js')).CpuBackend({ precision: 'f32' });
    const inc = new InceptionV3({ widthDivisor: 16, backend: cpu, generator: new E.Generator(2) });
    const incPath = join(dir, 'inception16.safetensors');
    await saveCheckpoint(incPath, inc.stateDict());
    inc.dispose();
    const ri = await run(['eval-tokenizer', '--checkpoint', dir, '--inception', incPath, '--limit', '4', '--alphas', '0.3', '--grid', '2', '--out', join(dir, 'eval3'), ...dev]);
    expect(ri.err).toBe('');
    const ji = JSON.parse(readFileSync(join(dir, 'eval3', 'eval.json'), 'utf8'));
    expect(ji.featureDim).toBe(128);
    expect(ji.featnet).toBe(`Inception-v3 ${incPath}`);
    expect(Number.isFinite(ji.rfid)).toBe(true);
    expect((await run(['eval-tokenizer', '--checkpoint', dir, '--featnet', 'random', '--inception', incPath])).err).toMatch(/either --featnet or --inception, not both/);

    const m = await run(['eval-tokenizer', '--checkpoint', dir, '--featnet', join(dir, 'nope.safetensors')]);
    expect(m.code).toBe(2);
    expect(m.err).toMatch(/--featnet file .*nope.safetensors does not exist/);
  }, 120_000);
});

describe('train-ar then sample-ar, end to end (tiny)', () => {
  const dir = mkdtempSync(join(tmpdir(), 'webgpu-tok-cli-ar-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  const dev = gpu ? [] : ['--cpu'];
  const tokDir = join(dir, 'tok');
  const arDir = join(dir, 'ar');
  const trainTok = (steps: number) => ['train-tokenizer', '--dataset', 'mnist', '--config', 'tiny', '--limit', '8', '--batch', '4', '--steps', String(steps), '--out', tokDir, ...dev];
  // 16x16 tokens of the tiny tokenizer; a 1-block, 16-wide AR model (head size 8).
  const trainAr = ['train-ar', '--tokenizer', tokDir, '--out', arDir, '--limit', '8', '--batch', '4', '--dim', '16', '--depth', '1', '--heads', '2', '--log-every', '1', ...dev];

  it('--help lists the options', async () => {
    const top = await run(['--help']);
    for (const c of ['train-ar', 'sample-ar']) expect(top.out).toContain(c);
    const t = await run(['train-ar', '--help']);
    expect(t.code).toBe(0);
    for (const f of ['--tokenizer PATH', '--out DIR', '--dataset', '--limit', '--epochs', '--steps', '--batch', '--lr', '--dim', '--depth', '--heads', '--class-dropout', '--seed', '--log-every', '--checkpoint-every', '--sample-every', '--fresh']) expect(t.out).toContain(f);
    const s = await run(['sample-ar', '-h']);
    expect(s.code).toBe(0);
    for (const f of ['--checkpoint PATH', '--tokenizer', '--cfg-scale', '--cfg-schedule constant|rar', '--temperature', '--top-k', '--top-p', '--featnet FILE|random', '--limit-val', '--out']) expect(s.out).toContain(f);
    expect(s.out).toMatch(/--num N .*\(default 10000\)/);
  });

  it('trains 2 steps, resumes, refuses a changed model or tokenizer, samples with gFID; bad arguments exit 2', async () => {
    expect((await run(trainTok(2))).code).toBe(0);
    const a = await run([...trainAr, '--steps', '2']);
    expect(a.err).toBe('');
    expect(a.code).toBe(0);
    expect(a.out).toMatch(/step 2\/2 .*ETA/);
    expect(existsSync(join(arDir, 'checkpoint.safetensors'))).toBe(true);
    expect(existsSync(join(arDir, 'tokens.safetensors'))).toBe(true);

    const b = await run([...trainAr, '--steps', '3']);
    expect(b.code).toBe(0);
    expect(b.out).toMatch(/resumed from .*checkpoint.safetensors at step 2/);
    expect(b.out).toMatch(/step 3\/3/);
    expect(b.out).not.toMatch(/step [12]\//);

    const c = await run([...trainAr, '--steps', '4', '--dim', '32']);
    expect(c.code).toBe(2);
    expect(c.err).toMatch(/was trained with --dim 16, not 32/);
    expect((await run([...trainAr, '--steps', '4', '--class-dropout', '0.2'])).err).toMatch(/was trained with --class-dropout 0.1, not 0.2/);

    // Bad arguments name the flag (exit 2).
    const bad = async (argv: string[], re: RegExp) => {
      const r = await run(argv);
      expect(r.err).toMatch(re);
      expect(r.code).toBe(2);
    };
    await bad(['train-ar', '--out', arDir], /train-ar: missing required option --tokenizer/);
    await bad(['train-ar', '--tokenizer', join(dir, 'nope'), '--out', arDir], /train-ar: --tokenizer .*nope does not exist/);
    await bad([...trainAr, '--heads', '3'], /--dim 16 is not divisible by --heads 3/);
    await bad([...trainAr, '--dim', '8', '--heads', '4'], /head size --dim \/ --heads = 2 must be a multiple of 4/);
    await bad([...trainAr, '--class-dropout', '1'], /--class-dropout must be < 1, got 1/);
    await bad([...trainAr, '--steps', '0'], /--steps must be >= 1, got 0/);
    await bad(['sample-ar', '--checkpoint', arDir, '--top-p', '0'], /sample-ar: --top-p must be in \(0, 1\], got 0/);
    await bad(['sample-ar', '--checkpoint', arDir, '--cfg-schedule', 'linear'], /--cfg-schedule must be one of constant, rar, got 'linear'/);
    await bad(['sample-ar', '--checkpoint', arDir, '--num', '5'], /--num must be at least the number of classes \(10\)/);
    await bad(['sample-ar', '--checkpoint', arDir, '--featnet', join(dir, 'nope.safetensors'), ...dev], /sample-ar: --featnet file .*nope.safetensors does not exist/);
    await bad(['sample-ar', '--checkpoint', join(dir, 'missing')], /sample-ar: --checkpoint .*missing does not exist/);
    await bad(['sample-ar', '--checkpoint', arDir, '--tokenizer', join(arDir, 'tokens.safetensors')], /--tokenizer .*tokens.safetensors is not a train-tokenizer checkpoint/);

    // The AR model's tokenizer (the one recorded in the checkpoint; passed explicitly here).
    const outDir = join(dir, 'sample');
    const s = await run(['sample-ar', '--checkpoint', arDir, '--tokenizer', tokDir, '--num', '20', '--batch', '10', '--limit-val', '20', '--featnet', 'random', '--grid', '2', '--cfg-scale', '1.5', '--out', outDir, ...dev]);
    expect(s.err).toBe('');
    expect(s.code).toBe(0);
    expect(s.out).toContain('| gFID |');
    const j = JSON.parse(readFileSync(join(outDir, 'gfid.json'), 'utf8'));
    expect(j.step).toBe(3);
    expect(j.numImages).toBe(20);
    expect(j.numClasses).toBe(10);
    expect(j.realImages).toBe(20);
    expect(j.dataset).toBe('mnist');
    expect(j.featureDim).toBe(128);
    expect(j.sampling).toEqual({ cfgScale: 1.5, cfgSchedule: 'constant', temperature: 1, topK: 0, topP: 1, seed: 0 });
    expect(Number.isFinite(j.gfid)).toBe(true);
    expect(j.gfid).toBeGreaterThanOrEqual(0);
    expect(Number.isFinite(j.inceptionScore.generated.mean)).toBe(true);
    expect(Number.isFinite(j.inceptionScore.real.mean)).toBe(true);
    expect(readFileSync(join(outDir, 'gfid.md'), 'utf8')).toMatch(/\| IS analogue \(generated \/ real\) \|/);
    expect(existsSync(join(outDir, 'samples.safetensors'))).toBe(true);
    // One row per class (10), 2 samples each, 32x32 images with padding.
    const png = decodeImage(new Uint8Array(readFileSync(join(outDir, 'samples.png'))));
    expect(png.width).toBeGreaterThanOrEqual(2 * 32);
    expect(png.width).toBeLessThan(3 * 32);
    expect(png.height).toBeGreaterThanOrEqual(10 * 32);
    expect(png.height).toBeLessThan(11 * 32);

    // A changed tokenizer (trained one step further): resuming the AR run is refused.
    expect((await run(trainTok(3))).code).toBe(0);
    const t = await run([...trainAr, '--steps', '4']);
    expect(t.code).toBe(2);
    expect(t.err).toMatch(/was trained on the codes of another tokenizer \(--tokenizer .*tok.*checkpoint.safetensors, sha256 [0-9a-f]{12}\.\.\.\)/);
    expect(t.err).toMatch(/or --fresh to start over/);
  }, 180_000);
});

describe('plot', () => {
  it('overlays runs (folders or files, PATH=LABEL) in one SVG; bad runs, terms and smoothing are refused', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'wgtk-plot-'));
    try {
      const log = (rec: number[]) => rec.map((r, i) => JSON.stringify({ step: (i + 1) * 10, epoch: 0, time: i, rec: r, total: r + 0.1 })).join('\n') + '\n';
      mkdirSync(join(dir, 'baseline'));
      writeFileSync(join(dir, 'baseline', 'metrics.jsonl'), log([0.5, 0.3, 0.2]));
      writeFileSync(join(dir, 'pert.jsonl'), log([0.6, 0.35, 0.25]));
      const svgPath = join(dir, 'rec.svg');
      const r = await run(['plot', '--out', svgPath, '--terms', 'rec', '--log-y', join(dir, 'baseline'), `${join(dir, 'pert.jsonl')}=perturbed`]);
      expect(r.code).toBe(0);
      expect(r.out).toContain('(baseline, perturbed)');
      const svg = readFileSync(svgPath, 'utf8');
      expect(svg.match(/<path class="series" data-name="(baseline|perturbed)"/g)!.length).toBe(2);
      // Without --terms: every term of the first run, "label: term".
      expect((await run(['plot', '--out', svgPath, join(dir, 'baseline')])).code).toBe(0);
      expect(readFileSync(svgPath, 'utf8')).toContain('data-name="baseline: total"');

      const bad = async (argv: string[], msg: RegExp) => {
        const b = await run(['plot', '--out', svgPath, ...argv]);
        expect(b.code).toBe(2);
        expect(b.err).toMatch(msg);
      };
      await bad([], /give at least one run/);
      await bad([join(dir, 'missing')], /no metrics log at '.*missing'/);
      await bad(['--terms', 'recon', join(dir, 'baseline')], /no run logs the term 'recon' \(logged terms: rec, total\)/);
      await bad(['--smoothing', '1', join(dir, 'baseline')], /--smoothing must be < 1/);
      expect((await run(['plot', '--help'])).out).toMatch(/usage: webgpu-tok plot \[options\] RUN\[=LABEL\] \.\.\./);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('eval-table', () => {
  it('puts evaluations side by side with pFID - rFID gaps and per-prefix means; mismatched grids and non-results are refused', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'wgtk-evaltable-'));
    try {
      const ev = (rfid: number, fids: number[], extra: Record<string, unknown> = {}) => ({
        count: 100, rfid, pfid: fids.map((fid, i) => ({ alpha: [0.1, 0.3][i], delta: 25, fid })), pfidDefault: { alpha: 0.3, delta: 25, fid: fids[1] },
        psnr: 25, ssim: 0.9, usage: 50, usedCodes: 512, perplexity: 100, ...extra,
      });
      const write = (rel: string, obj: unknown) => {
        mkdirSync(join(dir, rel, '..'), { recursive: true });
        writeFileSync(join(dir, rel), typeof obj === 'string' ? obj : JSON.stringify(obj));
      };
      write('a/eval.json', ev(1, [1.5, 3]));
      write('b.json', ev(2, [2.25, 2.5], { psnr: 26 }));
      const out = join(dir, 'table.md');
      const r = await run(['eval-table', '--mean', '--out', out, `${join(dir, 'a')}=paper#0`, `${join(dir, 'b.json')}=paper#1`]);
      expect(r.code).toBe(0);
      const md = readFileSync(out, 'utf8');
      expect(md).toContain('| tokenizer | rFID | pFID a=0.1 | pFID a=0.3 | pFID(0.1) - rFID | pFID(0.3) - rFID | PSNR (dB) |');
      expect(md).toContain('| paper#0 | 1.00 | 1.50 | 3.00 | 0.50 | 2.00 | 25.00 | 0.900 | 50.0% (512) | 100.0 | 100 |');
      expect(md).toContain('| paper, mean of 2 | 1.50 | 1.88 | 2.75 | 0.38 | 1.25 | 25.50 |');
      // Default label: the folder (or file) name.
      expect((await run(['eval-table', join(dir, 'a')])).out).toContain('| a | 1.00 |');

      const bad = async (argv: string[], msg: RegExp) => {
        const b = await run(['eval-table', ...argv]);
        expect(b.code).toBe(2);
        expect(b.err).toMatch(msg);
      };
      await bad([], /give at least one evaluation/);
      await bad([join(dir, 'none')], /no evaluation at '.*none'/);
      write('c.json', { ...ev(1, [1, 2]), pfid: [{ alpha: 0.5, delta: 25, fid: 3 }] });
      await bad([join(dir, 'a'), join(dir, 'c.json')], /has the pFID grid \(alpha\/delta\) 0.5\/25, .* has 0.1\/25,0.3\/25/);
      write('d.json', { rfid: 1 });
      await bad([join(dir, 'd.json')], /is not an eval-tokenizer result \(missing pfid, psnr/);
      write('e.json', '{"rfid": 1');
      await bad([join(dir, 'e.json')], /e\.json is not valid JSON/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('bin launcher', () => {
  it('bin/webgpu-tok.mjs runs the CLI (through tsx in a source checkout)', () => {
    const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8'));
    expect(pkg.bin['webgpu-tok']).toBe('bin/webgpu-tok.mjs');
    const out = execFileSync(process.execPath, [join(ROOT, 'bin', 'webgpu-tok.mjs'), 'eval-tokenizer', '--help'], { encoding: 'utf8' });
    expect(out).toMatch(/usage: webgpu-tok eval-tokenizer/);
    let code = 0;
    try {
      execFileSync(process.execPath, [join(ROOT, 'bin', 'webgpu-tok.mjs'), 'train-tokenizer', '--out', 'x', '--epochs', 'two'], { stdio: 'pipe' });
    } catch (e) {
      code = (e as { status: number }).status;
      expect(String((e as { stderr: Buffer }).stderr)).toMatch(/--epochs must be an integer, got 'two'/);
    }
    expect(code).toBe(2);
  }, 60_000);
});
