/**
 * Configs that build models are checked against their schemas (models/config-schemas.ts) before
 * anything is built: unknown keys with a did-you-mean, wrong types, out-of-range sizes, non-object
 * files, and a bound on the estimated parameter count; the CLI turns the error into one line with
 * exit code 2. Crafted checkpoints are tiny real ones (built on the CPU backend, saved by
 * saveTrainingCheckpoint) whose metadata config is rewritten. Every shipped --config preset must
 * pass. (A few seconds; the eval-tokenizer case runs the CLI in a child process because the
 * unchecked crash was a SIGSEGV, which an in-process test could not report.)
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { CpuBackend } from '../engine/cpu/backend.js';
import { ARTransformer } from '../models/ar/model.js';
import { ConfigError, didYouMean, validateConfig } from '../models/config-schema.js';
import { AR_CONFIG_SCHEMA, arParams, cnnTokenizerParams, DIFFUSION_CONFIG_SCHEMA, diffusionParams, TOKENIZER_CONFIG_SCHEMA, vitTokenizerParams } from '../models/config-schemas.js';
import { DiffusionTransformer } from '../models/diffusion/model.js';
import { VQTokenizer } from '../models/tokenizer/model.js';
import { decodeSafetensors, encodeSafetensors } from '../nn/checkpoint/index.js';
import type { Module } from '../nn/module.js';
import { CONFIG_PRESETS } from '../node/cli.js';
import { runMain as run } from './helpers/cli-main.js';
import { saveTrainingCheckpoint } from '../node/train.js';
import { continuousVariantConfig, PRESETS as STUDY_PRESETS, TINY } from '../examples/robustok/config.js';
import { variantConfig } from '../examples/robustok/tokenizers.js';
import { loadTokenizerCheckpoint } from '../node/train-tokenizer.js';

const ROOT = join(import.meta.dirname, '..');
const dir = mkdtempSync(join(tmpdir(), 'config-validation-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const cpu = new CpuBackend({ precision: 'f32' });


const tok = (c: unknown) => () => validateConfig('src', TOKENIZER_CONFIG_SCHEMA, c);

describe('validateConfig', () => {
  it('refuses an unknown key, naming the nearest known one', () => {
    expect(tok({ codebooksize: 64 })).toThrow(new ConfigError("src: codebooksize: unknown tokenizer config field (did you mean 'codebookSize'?)"));
    expect(tok({ numResBlock: 2 })).toThrow(/numResBlock: unknown .*did you mean 'numResBlocks'/);
    // Nothing near: the known fields are listed instead.
    expect(tok({ zzzzzzzz: 1 })).toThrow(/zzzzzzzz: unknown tokenizer config field \(known: arch, quantizer, /);
    expect(didYouMean('hedas', ['heads', 'depth'])).toBe('heads');
    expect(didYouMean('learningRate', ['heads', 'depth'])).toBeNull();
  });

  it('refuses wrong types, naming the field', () => {
    expect(tok({ ch: '64' })).toThrow(/^src: ch: must be an integer in \[1, 1024\], got the string "64"$/);
    expect(tok({ ch: 6.5 })).toThrow(/ch: must be an integer/);
    expect(tok({ arch: 'resnet' })).toThrow(/arch: must be one of "cnn", "vit", got the string "resnet"/);
    expect(tok({ chMult: 2 })).toThrow(/chMult: must be an array of 1 to 8 values, got number 2/);
    expect(tok({ chMult: [1, 0] })).toThrow(/chMult\[1\]: must be in \[1, 16\], got 0/);
    expect(tok({ perturbation: { alpha: 1, beta: 0.1, anneel: true } })).toThrow(/perturbation\.anneel: unknown perturbation field \(did you mean 'perturbation\.anneal'\?\)/);
    expect(tok({ perturbation: 'strong' })).toThrow(/perturbation: must be one of "none", "paper"/);
    expect(() => validateConfig('src', AR_CONFIG_SCHEMA, { vocabSize: 16, numClasses: 10, seqLen: 16, qkNorm: 'l2' })).toThrow(/qkNorm: must be one of "rms", "layer", null/);
  });

  it('refuses out-of-range sizes and oversized models before anything is built', () => {
    expect(tok({ numResBlocks: 3000 })).toThrow(/^src: numResBlocks: must be in \[1, 32\], got 3000$/);
    expect(tok({ dropout: 1 })).toThrow(/dropout: must be in \[0, 1\), got 1/);
    // Each field within its range, the product not: the parameter bound names a field.
    expect(tok({ ch: 1024, chMult: [1, 4, 8] })).toThrow(/ch: this CNN tokenizer .* would have about \d+M parameters, more than the 300M/);
    expect(tok({ arch: 'vit', imageSize: 1024, patchSize: 1 })).toThrow(/patchSize: 1024x1024 images in 1x1 patches make 1048576 tokens/);
    expect(() => validateConfig('src', DIFFUSION_CONFIG_SCHEMA, { latentChannels: 4, grid: [8, 8], numClasses: 10, dim: 8192, depth: 128, heads: 8 })).toThrow(/dim: this diffusion transformer .* parameters/);
    expect(() => validateConfig('src', AR_CONFIG_SCHEMA, { vocabSize: 16, numClasses: 10 })).toThrow(/seqLen: missing/);
  });

  it('refuses a config that is not an object', () => {
    for (const v of [[1, 2, 3], null, 5, 'tiny']) expect(tok(v)).toThrow(/^src: tokenizer config must be a JSON object of tokenizer config fields, got /);
  });

  it('the parameter estimates match the built models (CNN exactly, ViT, AR and DiT within 5%)', () => {
    const count = (m: Module) => {
      const n = m.numParameters();
      m.dispose();
      return n;
    };
    for (const c of [{}, CONFIG_PRESETS.small!, CONFIG_PRESETS.tiny!, { midBlocks: 1, chMult: [1, 2, 4, 4] }]) {
      for (const quantizer of ['vq', 'kl'] as const) {
        const m = new VQTokenizer({ ...c, quantizer }, { backend: cpu });
        expect(cnnTokenizerParams(m.cfg, quantizer === 'kl')).toBe(count(m));
      }
    }
    const vit = new VQTokenizer({ arch: 'vit' }, { backend: cpu });
    expect(vitTokenizerParams(vit.cfg) / count(vit)).toBeCloseTo(1, 1);
    for (const c of [{ dim: 256, depth: 4, heads: 4 }, { dim: 128, depth: 2, heads: 4, mlp: 'gelu' as const, adaLN: true }]) {
      const ar = new ARTransformer({ vocabSize: 1024, numClasses: 10, seqLen: 64, ...c }, { backend: cpu });
      expect(Math.abs(arParams(ar.cfg) / count(ar) - 1)).toBeLessThan(0.05);
    }
    const dit = new DiffusionTransformer({ latentChannels: 4, grid: [8, 8], numClasses: 10, dim: 128, depth: 4, heads: 4 }, { backend: cpu });
    expect(Math.abs(diffusionParams(dit.cfg) / count(dit) - 1)).toBeLessThan(0.05);
  });
});

describe('shipped presets', () => {
  it('every --config preset validates, with either arch and either quantizer, and builds', () => {
    expect(Object.keys(CONFIG_PRESETS).sort()).toEqual(['default', 'small', 'tiny']);
    for (const [name, preset] of Object.entries(CONFIG_PRESETS)) {
      for (const extra of [{}, { arch: 'vit' as const }, { quantizer: 'kl' as const, codeDim: 4 }]) {
        const c = { ...preset, ...extra };
        expect(() => validateConfig(`preset ${name}`, TOKENIZER_CONFIG_SCHEMA, c)).not.toThrow();
        // What a model saves as its config (the resolved cfg) validates too: checkpoints of presets load.
        const m = new VQTokenizer(c, { backend: cpu });
        expect(() => validateConfig(`cfg of ${name}`, TOKENIZER_CONFIG_SCHEMA, m.cfg)).not.toThrow();
        m.dispose();
      }
    }
  });

  it('every tokenizer variant of the shipped robustok study presets validates (trainTokenizer checks them)', () => {
    for (const study of [...Object.values(STUDY_PRESETS), TINY]) {
      for (const v of study.tokenizer.variants) expect(() => validateConfig(`${study.name}/${v.name}`, TOKENIZER_CONFIG_SCHEMA, { ...variantConfig(study, v), perturbation: v.perturbation })).not.toThrow();
      for (const v of study.continuous?.tokenizer.variants ?? []) expect(() => validateConfig(`${study.name}/${v.name}`, TOKENIZER_CONFIG_SCHEMA, continuousVariantConfig(study.continuous!, v))).not.toThrow();
    }
  });
});

describe('CLI --config files', () => {
  const file = (name: string, text: string) => {
    const p = join(dir, name);
    writeFileSync(p, text);
    return p;
  };
  const train = (cfg: string) => run(['train-tokenizer', '--out', join(dir, 'never'), '--config', cfg, '--steps', '1', '--cpu']);

  it.each([
    ['a misspelled key', '{"codebooksize": 64}', /--config file .*typo\.json: codebooksize: unknown tokenizer config field \(did you mean 'codebookSize'\?\)/],
    ['a wrong type', '{"ch": "wide"}', /--config file .*typo\.json: ch: must be an integer in \[1, 1024\], got the string "wide"/],
    ['an out-of-range size', '{"numResBlocks": 3000}', /--config file .*typo\.json: numResBlocks: must be in \[1, 32\], got 3000/],
    ['an array', '[1,2,3]', /--config file .*typo\.json: tokenizer config must be a JSON object of tokenizer config fields, got an array/],
    ['null', 'null', /--config file .*typo\.json: tokenizer config must be a JSON object .* got null/],
  ])('%s is refused before training: exit 2, one line naming the file and the field', async (_, text, msg) => {
    const r = await train(file('typo.json', text));
    expect(r.code).toBe(2);
    expect(r.err).toMatch(msg);
    expect(r.err.split('\n')).toHaveLength(1);
    expect(r.out).toBe(''); // nothing trained, no data loaded
  });
});

// --- crafted checkpoints: tiny real ones whose metadata config is rewritten ---

/** Saves `model` as a trainLoop checkpoint with `extra` (its config and what the samplers read). */
async function saveTiny(name: string, model: Module, extra: Record<string, unknown>): Promise<string> {
  const p = join(dir, name);
  await saveTrainingCheckpoint(p, { model }, 1, extra);
  model.dispose();
  return p;
}

/** A copy of `src` whose metadata config has `patch` applied. */
function craft(src: string, name: string, patch: Record<string, unknown>): string {
  const { tensors, metadata } = decodeSafetensors(readFileSync(src));
  const extra = JSON.parse(metadata.extra!) as { config: Record<string, unknown> };
  extra.config = { ...extra.config, ...patch };
  const p = join(dir, name);
  writeFileSync(p, encodeSafetensors(tensors, { ...metadata, extra: JSON.stringify(extra) }));
  return p;
}

describe('checkpoint metadata', async () => {
  const tokCfg = { ...CONFIG_PRESETS.tiny!, codebookSize: 16 };
  const vqTok = new VQTokenizer(tokCfg, { backend: cpu });
  const vqPath = await saveTiny('vq.safetensors', vqTok, { config: vqTok.cfg, dataset: 'mnist' });
  const klTok = new VQTokenizer({ ...tokCfg, quantizer: 'kl', codeDim: 4 }, { backend: cpu });
  const klPath = await saveTiny('kl.safetensors', klTok, { config: klTok.cfg, dataset: 'mnist' });
  const ar = new ARTransformer({ vocabSize: 16, numClasses: 10, seqLen: 256, dim: 16, depth: 1, heads: 1 }, { backend: cpu });
  const arPath = await saveTiny('ar.safetensors', ar, { config: ar.cfg, tokenizerPath: vqPath, dataset: 'mnist' });
  const dit = new DiffusionTransformer({ latentChannels: 4, grid: [16, 16], numClasses: 10, patchSize: 2, dim: 16, depth: 1, heads: 1 }, { backend: cpu });
  const ditPath = await saveTiny('dit.safetensors', dit, { config: dit.cfg, tokenizerPath: klPath, dataset: 'mnist' });

  it('the untouched tiny checkpoints load (so the refusals below come from the rewritten fields)', async () => {
    const { model } = await loadTokenizerCheckpoint(vqPath, cpu);
    expect(model.cfg.numResBlocks).toBe(1);
    model.dispose();
  });

  it('eval-tokenizer of a tokenizer whose metadata says numResBlocks 3000: exit 2 and one line, no crash (child process)', () => {
    const bad = craft(vqPath, 'vq-3000.safetensors', { numResBlocks: 3000 });
    const r = spawnSync(process.execPath, [join(ROOT, 'bin', 'webgpu-tok.mjs'), 'eval-tokenizer', '--checkpoint', bad, '--featnet', 'random', '--cpu'], { encoding: 'utf8', timeout: 60_000 });
    expect(r.signal).toBeNull();
    expect(r.status).toBe(2);
    expect(r.stderr.trim()).toBe(`webgpu-tok eval-tokenizer: checkpoint metadata of ${bad}: numResBlocks: must be in [1, 32], got 3000`);
  }, 60_000);

  it.each([
    ['sample-ar', 'an AR depth of 3000', () => ['sample-ar', '--checkpoint', craft(arPath, 'ar-bad.safetensors', { depth: 3000 }), '--num', '10'], /checkpoint metadata of .*ar-bad\.safetensors: depth: must be in \[1, 128\], got 3000/],
    ['sample-ar', 'a misspelled AR key', () => ['sample-ar', '--checkpoint', craft(arPath, 'ar-typo.safetensors', { dimm: 16 }), '--num', '10'], /ar-typo\.safetensors: dimm: unknown AR config field \(did you mean 'dim'\?\)/],
    ['sample-ar', 'a tokenizer with codebookSize "16"', () => ['sample-ar', '--checkpoint', arPath, '--tokenizer', craft(vqPath, 'vq-str.safetensors', { codebookSize: '16' }), '--num', '10'], /vq-str\.safetensors: codebookSize: must be an integer .* got the string "16"/],
    ['sample-diffusion', 'a DiT dim of 10^6', () => ['sample-diffusion', '--checkpoint', craft(ditPath, 'dit-bad.safetensors', { dim: 1_000_000 }), '--num', '10'], /checkpoint metadata of .*dit-bad\.safetensors: dim: must be in \[1, 8192\], got 1000000/],
  ])('%s with %s: exit 2, one line naming the file and the field', async (_, __, argv, msg) => {
    const r = await run([...argv(), '--featnet', 'random', '--cpu']);
    expect(r.err).toMatch(msg);
    expect(r.code).toBe(2);
    expect(r.err.split('\n')).toHaveLength(1);
  });
});
