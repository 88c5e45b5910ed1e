/**
 * Reliability, user errors (issue 14; the cases are listed in docs/reliability.md, "User errors"):
 * every mistake a user can make on the command line (a batch larger than the data, --out naming
 * a file, numbers out of range or of the wrong kind, unknown flags, missing values, damaged or
 * wrong-kind checkpoints and feature networks, oversized settings) ends with one line naming the
 * flag or the file and exit code 2: no stack trace unless --verbose (or WEBGPU_TOK_VERBOSE=1)
 * asks for one. Most cases run in-process (main() with captured output); the stack-trace cases run
 * the real binary in a child process with a timeout. Fixtures: a 2-step tiny tokenizer and AR
 * model, plus crafted files.
 */
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runMain as run } from './helpers/cli-main.js';
import { encodeSafetensors } from '../nn/checkpoint/index.js';
import { runCli } from './helpers/cli-child.js';
import * as E from '../engine/index.js';
import { validateConfig } from '../models/config-schema.js';
import { DISCRIMINATOR_CONFIG_SCHEMA, discriminatorParams, FEATNET_CONFIG_SCHEMA, featnetParams } from '../models/config-schemas.js';
import { FeatNet } from '../models/features/featnet.js';
import { featnetConfigOf } from '../models/features/featnet-config.js';
import { PatchDiscriminator } from '../models/tokenizer/discriminator.js';
import { readSafetensorsHeader } from '../nn/checkpoint/index.js';
import { requireGpu } from './helpers/backends.js';

const gpu = await requireGpu();
const dev = gpu ? [] : ['--cpu'];
const tmp = mkdtempSync(join(tmpdir(), 'wgtk-relcli-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));


const tok = join(tmp, 'tok');
const ar = join(tmp, 'ar');
const file = join(tmp, 'a-file');
const trunc = join(tmp, 'trunc.safetensors');
const truncDir = join(tmp, 'trunc-dir');
const garbage = join(tmp, 'garbage.safetensors');
const bigFeatnet = join(tmp, 'featnet-huge.safetensors');
const tokArgs = ['--dataset', 'mnist', '--config', 'tiny', '--limit', '8', '--batch', '4', '--steps', '1', ...dev];

beforeAll(async () => {
  for (const argv of [
    ['train-tokenizer', ...tokArgs, '--steps', '2', '--out', tok],
    ['train-ar', '--tokenizer', tok, '--out', ar, '--limit', '8', '--batch', '4', '--dim', '16', '--depth', '1', '--heads', '2', '--steps', '2', ...dev],
  ]) {
    const r = await run(argv);
    if (r.code !== 0) throw new Error(`fixture ${argv[0]} failed: ${r.err}`);
  }
  writeFileSync(file, 'not a folder\n');
  writeFileSync(garbage, 'garbage, not safetensors\n');
  // The first 3000 bytes of a real checkpoint: the header says more than the file holds.
  writeFileSync(trunc, readFileSync(join(tok, 'checkpoint.safetensors')).subarray(0, 3000));
  mkdirSync(truncDir);
  writeFileSync(join(truncDir, 'checkpoint.safetensors'), readFileSync(trunc));
  // A FeatNet file whose config asks for 5000-wide convs: refused before anything is built.
  writeFileSync(bigFeatnet, encodeSafetensors({ 'conv1.weight': { dtype: 'F32', shape: [1], data: new Float32Array(1) } }, { featnet_config: JSON.stringify({ channels: [5000, 8, 8] }) }));
}, 120_000);

const cases: [string, () => string[], RegExp][] = [
  // train-tokenizer
  ['a batch larger than the data', () => ['train-tokenizer', ...tokArgs, '--batch', '100', '--out', join(tmp, 'b100')], /^webgpu-tok: train-tokenizer: --batch: 100 is more than the 8 training images/],
  ['--out naming a file', () => ['train-tokenizer', ...tokArgs, '--out', file], /--out .*a-file is a file; --out names a folder/],
  ['--out under a file', () => ['train-tokenizer', ...tokArgs, '--out', join(file, 'run')], /--out .*a-file\/run cannot be created: .*a-file is a file, not a folder/],
  ['--steps 2.5', () => ['train-tokenizer', ...tokArgs, '--steps', '2.5', '--out', join(tmp, 'x')], /--steps must be an integer, got '2.5'/],
  ['--lr -1', () => ['train-tokenizer', ...tokArgs, '--lr', '-1', '--out', join(tmp, 'x')], /--lr must be >= 0, got -1/],
  ['--lr abc', () => ['train-tokenizer', ...tokArgs, '--lr', 'abc', '--out', join(tmp, 'x')], /--lr must be a number, got 'abc'/],
  ['--lr 1e400 (Infinity)', () => ['train-tokenizer', ...tokArgs, '--lr', '1e400', '--out', join(tmp, 'x')], /--lr must be a number, got '1e400'/],
  ['an unknown flag', () => ['train-tokenizer', ...tokArgs, '--learning-rate', '1', '--out', join(tmp, 'x')], /unknown option --learning-rate/],
  ['a flag without its value', () => ['train-tokenizer', '--out', join(tmp, 'x'), '--batch'], /--batch needs a value/],
  ['a config file field of the wrong type', () => ['train-tokenizer', ...tokArgs, '--config', join(tmp, 'chmult.json'), '--out', join(tmp, 'x')], /--config file .*chmult\.json: chMult: must be an array of 1 to 8 values, got the string "12"/],
  ['--disc-ch 5000 (the discriminator schema, named by its flag)', () => ['train-tokenizer', ...tokArgs, '--disc-weight', '0.5', '--disc-ch', '5000', '--out', join(tmp, 'x')], /^webgpu-tok: train-tokenizer: --disc-ch: must be in \[1, 1024\], got 5000$/],
  ['--latent-channels 5000 (a config field set by a flag)', () => ['train-tokenizer', ...tokArgs, '--quantizer', 'kl', '--latent-channels', '5000', '--out', join(tmp, 'x')], /^webgpu-tok: train-tokenizer: --latent-channels: must be in \[1, 1024\], got 5000$/],
  ['resuming a truncated checkpoint', () => ['train-tokenizer', ...tokArgs, '--out', truncDir], /cannot resume from .*trunc-dir\/checkpoint\.safetensors: not a readable checkpoint \(.*truncated file\); pass --fresh to start over/],
  ['resuming a checkpoint of another trainer', () => ['train-tokenizer', ...tokArgs, '--out', ar], /cannot resume from .*ar\/checkpoint\.safetensors: it was written by train-ar, not train-tokenizer; choose another --out, or pass --fresh/],
  // eval-tokenizer
  // The path is named once: the reason in parentheses does not repeat it.
  ['eval of a truncated checkpoint', () => ['eval-tokenizer', '--checkpoint', trunc, '--featnet', 'random', ...dev], /--checkpoint [^ ]*trunc\.safetensors is not a readable checkpoint \((?!.*trunc\.safetensors).*truncated file\)/],
  ['eval of a garbage file', () => ['eval-tokenizer', '--checkpoint', garbage, '--featnet', 'random', ...dev], /--checkpoint .*garbage\.safetensors is not a readable checkpoint \(.*not a safetensors file\)/],
  ['eval of an AR checkpoint', () => ['eval-tokenizer', '--checkpoint', ar, '--featnet', 'random', ...dev], /--checkpoint .*ar\/checkpoint\.safetensors was written by train-ar, not train-tokenizer or posttrain/],
  ['a garbage --featnet', () => ['eval-tokenizer', '--checkpoint', tok, '--featnet', garbage, '--limit', '8', ...dev], /--featnet .*garbage\.safetensors cannot be loaded: .*not a safetensors file/],
  ['a --featnet that is an AR checkpoint', () => ['eval-tokenizer', '--checkpoint', tok, '--featnet', join(ar, 'checkpoint.safetensors'), '--limit', '8', ...dev], /--featnet .*checkpoint\.safetensors cannot be loaded: FeatNet\.loadStateDict: missing keys/],
  ['a --featnet whose config is oversized (FeatNet schema)', () => ['eval-tokenizer', '--checkpoint', tok, '--featnet', bigFeatnet, '--limit', '8', ...dev], /--featnet file .*featnet-huge\.safetensors: channels\[0\]: must be in \[1, 1024\], got 5000/],
  ['a garbage --inception', () => ['eval-tokenizer', '--checkpoint', tok, '--inception', garbage, '--limit', '8', ...dev], /--inception .*garbage\.safetensors cannot be loaded/],
  ['eval --out naming a file', () => ['eval-tokenizer', '--checkpoint', tok, '--featnet', 'random', '--limit', '8', '--out', file, ...dev], /--out .*a-file is a file/],
  ['eval --batch 1e99', () => ['eval-tokenizer', '--checkpoint', tok, '--featnet', 'random', '--limit', '8', '--batch', '1e99', ...dev], /--batch must be <= 2147483647/],
  // sample-ar / sample-diffusion
  ['sample-ar with an AR checkpoint as --tokenizer', () => ['sample-ar', '--checkpoint', ar, '--tokenizer', ar, '--featnet', 'random', ...dev], /--tokenizer .*ar\/checkpoint\.safetensors was written by train-ar, not train-tokenizer or posttrain/],
  ['sample-ar of a truncated checkpoint', () => ['sample-ar', '--checkpoint', trunc, '--featnet', 'random', ...dev], /--checkpoint .*trunc\.safetensors is not a readable checkpoint/],
  ['sample-diffusion of a truncated checkpoint', () => ['sample-diffusion', '--checkpoint', trunc, '--featnet', 'random', ...dev], /--checkpoint .*trunc\.safetensors is not a readable checkpoint/],
  // train-ar / train-diffusion / posttrain
  ['train-ar: a batch larger than the data', () => ['train-ar', '--tokenizer', tok, '--out', join(tmp, 'ar-b'), '--limit', '8', '--batch', '100', '--dim', '16', '--depth', '1', '--heads', '2', ...dev], /^webgpu-tok: train-ar: --batch: 100 is more than the 8 training token sequences/],
  ['train-ar --dim 100000 (the AR schema, named by its flag)', () => ['train-ar', '--tokenizer', tok, '--out', join(tmp, 'ar-d'), '--limit', '8', '--batch', '4', '--dim', '100000', '--depth', '1', '--heads', '2', ...dev], /^webgpu-tok: train-ar: --dim: must be in \[1, 8192\], got 100000$/],
  ['train-ar resuming a tokenizer checkpoint', () => ['train-ar', '--tokenizer', tok, '--out', tok, '--limit', '8', '--batch', '4', '--dim', '16', '--depth', '1', '--heads', '2', ...dev], /cannot resume from .*tok\/checkpoint\.safetensors: it was written by train-tokenizer, not train-ar; .*--fresh/],
  ['train-ar with an AR checkpoint as --tokenizer', () => ['train-ar', '--tokenizer', ar, '--out', join(tmp, 'ar-t'), ...dev], /--tokenizer .* was written by train-ar, not train-tokenizer or posttrain/],
  ['train-diffusion with an AR checkpoint as --tokenizer', () => ['train-diffusion', '--tokenizer', ar, '--out', join(tmp, 'dit'), ...dev], /--tokenizer .* was written by train-ar, not train-tokenizer or posttrain/],
  ['posttrain into a tokenizer run', () => ['posttrain', '--tokenizer', tok, '--generator', ar, '--out', tok, '--images', '8', '--batch', '4', ...dev], /cannot resume from .*tok\/checkpoint\.safetensors: it was written by train-tokenizer, not posttrain; .*--fresh/],
  // train-featnet, plot
  ['train-featnet: a batch larger than the data', () => ['train-featnet', '--limit', '8', '--batch', '100', '--val-limit', '8', '--epochs', '1', '--run-dir', join(tmp, 'fn')], /^webgpu-tok: train-featnet: --batch: 100 is more than the 8 training images/],
  ['train-featnet --run-dir naming a file', () => ['train-featnet', '--run-dir', file], /--run-dir .*a-file is a file/],
  ['train-featnet --channels 5000,4,4 (the FeatNet schema)', () => ['train-featnet', '--channels', '5000,4,4'], /^webgpu-tok: train-featnet: --channels: must be in \[1, 1024\], got 5000$/],
  ['train-featnet --limit 2.5', () => ['train-featnet', '--limit', '2.5'], /--limit must be an integer in \[0, 2147483647\], got '2\.5'/],
  ['plot --out under a file', () => ['plot', '--out', join(file, 'x.svg'), tok], /--out .* cannot be created: .*a-file is a file, not a folder/],
];

describe('user errors: one line, exit code 2, the flag or file named', () => {
  beforeAll(() => writeFileSync(join(tmp, 'chmult.json'), '{"chMult": "12"}'));
  it.each(cases)('%s', async (_, argv, msg) => {
    const r = await run(argv());
    expect(r.code, r.err).toBe(2);
    expect(r.errLines, r.err).toHaveLength(1);
    expect(r.err).not.toMatch(/\n\s+at /);
    expect(r.err).toMatch(msg);
  }, 60_000);

  it('WEBGPU_TOK_CACHE naming a file: one line naming the variable, before the dataset JSON is parsed', async () => {
    const was = process.env.WEBGPU_TOK_CACHE;
    process.env.WEBGPU_TOK_CACHE = file;
    try {
      const r = await run(['train-tokenizer', ...tokArgs, '--out', join(tmp, 'cache-file')]);
      expect(r.code).toBe(2);
      expect(r.errLines).toEqual([`webgpu-tok train-tokenizer: dataset cache: WEBGPU_TOK_CACHE: ${file} is a file, not a folder: point it at a folder (or unset it)`]);
    } finally {
      if (was === undefined) delete process.env.WEBGPU_TOK_CACHE;
      else process.env.WEBGPU_TOK_CACHE = was;
    }
  });
});

describe('the FeatNet and discriminator schemas', () => {
  it('accept the shipped FeatNet weights and the default discriminator; their parameter estimates match the built networks', () => {
    const shipped = join(import.meta.dirname, '..', 'models', 'features', 'weights', 'featnet-fashion.safetensors');
    const cfg = featnetConfigOf(shipped, readSafetensorsHeader(readFileSync(shipped)).metadata);
    const backend = new E.CpuBackend();
    for (const c of [cfg, { channels: [8, 16, 24] as [number, number, number], featureDim: 32, imageSize: 16 }]) {
      using net = new FeatNet(validateConfig('test', FEATNET_CONFIG_SCHEMA, c), { backend });
      expect(featnetParams(net.cfg)).toBe(net.numParameters());
    }
    for (const c of [{}, { ch: 16, nLayers: 3, inChannels: 3 }]) {
      using d = new PatchDiscriminator(validateConfig('test', DISCRIMINATOR_CONFIG_SCHEMA, c), { backend });
      expect(discriminatorParams(d.cfg)).toBe(d.numParameters());
    }
    expect(() => validateConfig('x', FEATNET_CONFIG_SCHEMA, { imageSize: 12 })).toThrow(/imageSize: must be a multiple of 8/);
    expect(() => validateConfig('x', FEATNET_CONFIG_SCHEMA, { channels: [1024, 1024, 1024], imageSize: 1024, featureDim: 8192 })).toThrow(/channels: this FeatNet .* parameters, more than the 300M/);
    expect(() => validateConfig('x', DISCRIMINATOR_CONFIG_SCHEMA, { nLayers: 9 })).toThrow(/nLayers: must be in \[1, 8\], got 9/);
  });
});

describe('child processes (killed after 20 s: a regression fails instead of training on)', () => {
  it('--steps 1e99 is refused (it used to start a run that never ends)', async () => {
    const r = await runCli(['train-tokenizer', ...tokArgs, '--steps', '1e99', '--out', join(tmp, 'forever')], { cwd: tmp });
    expect(r.code, r.stderr).toBe(2);
    expect(r.errLines).toEqual(['webgpu-tok: train-tokenizer: --steps must be <= 2147483647, got 1e99']);
  }, 30_000);


  it('stack traces only with --verbose or WEBGPU_TOK_VERBOSE=1: a user error prints one line without, the line and its stack with', async () => {
    const argv = ['train-tokenizer', ...tokArgs, '--out', truncDir];
    const plain = await runCli(argv, { cwd: tmp });
    expect(plain.code, plain.stderr).toBe(2);
    expect(plain.errLines, plain.stderr).toHaveLength(1);
    expect(plain.stderr).not.toMatch(/\n\s+at /);
    const verbose = await runCli([...argv, '--verbose'], { cwd: tmp });
    expect(verbose.code).toBe(2);
    expect(verbose.errLines[0]).toBe(plain.errLines[0]);
    expect(verbose.stderr).toMatch(/\n\s+at .*planResume/);
    const env = await runCli(argv, { cwd: tmp, env: { ...process.env, WEBGPU_TOK_VERBOSE: '1' } });
    expect(env.code).toBe(2);
    expect(env.stderr).toMatch(/\n\s+at /);
  }, 60_000);
});
