/**
 * Checkpoint integrity (issue 14; cases in docs/reliability.md): saveCheckpoint stores the SHA-256
 * of every tensor's bytes in the metadata (`tensor_sha256`) and loading verifies them, so a flipped
 * byte in a tensor's data is refused with one line naming the file and the tensor (exit code 2
 * from the CLI) instead of loading silently; a file without checksums still loads, with one note.
 */
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import * as E from '../engine/index.js';
import * as nn from '../nn/index.js';
import { decodeSafetensors, encodeSafetensors, readSafetensorsHeader, SafetensorsError } from '../nn/checkpoint/index.js';
import { CHECKSUM_KEY, ChecksumError, loadCheckpoint, readSafetensorsFile, saveCheckpoint, unverifiedNote } from '../node/checkpoint.js';
import { main, CONFIG_PRESETS } from '../node/cli.js';
import { saveTrainingCheckpoint, trainLoop } from '../node/train.js';
import { VQTokenizer } from '../models/tokenizer/model.js';

const cpu = new E.CpuBackend();
const dir = mkdtempSync(join(tmpdir(), 'integrity-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function record(): Record<string, E.Tensor> {
  return {
    'model.w': E.tensor(Float32Array.from({ length: 24 }, (_, i) => Math.sin(i)), [4, 6], { backend: cpu }),
    'model.b': E.tensor(Float32Array.from([0.5, -1, 2]), [3], { backend: cpu }),
    'optim.0.step': E.tensor(Int32Array.from([7, 8]), [2], { backend: cpu, dtype: 'i32' }),
    empty: E.zeros([0, 3], { backend: cpu }),
  };
}

/** A copy of the file at `path` with one byte of tensor `name`'s data flipped (xor 0x01 at `at`). */
function flipByte(path: string, name: string, out: string, at = 0): string {
  const bytes = new Uint8Array(readFileSync(path));
  const { tensors, dataStart } = readSafetensorsHeader(bytes);
  bytes[dataStart + tensors[name]!.dataOffsets[0] + at]! ^= 0x01;
  writeFileSync(out, bytes);
  return out;
}

describe('tensor checksums (node/checkpoint.ts)', () => {
  const path = join(dir, 'ckpt.safetensors');
  beforeAll(() => saveCheckpoint(path, record(), { step: '3' }));

  it('saveCheckpoint stores the SHA-256 of each tensor as the file holds it; the file loads', async () => {
    const bytes = readFileSync(path);
    const { tensors, metadata, dataStart } = readSafetensorsHeader(bytes);
    const sums = JSON.parse(metadata[CHECKSUM_KEY]!) as Record<string, string>;
    expect(Object.keys(sums).sort()).toEqual(['empty', 'model.b', 'model.w', 'optim.0.step']);
    for (const [name, t] of Object.entries(tensors)) {
      expect(sums[name], name).toBe(createHash('sha256').update(bytes.subarray(dataStart + t.dataOffsets[0], dataStart + t.dataOffsets[1])).digest('hex'));
    }
    const loaded = await loadCheckpoint(path, cpu, { onUnverified: () => expect.unreachable('the file has checksums') });
    expect(Array.from(await loaded.tensors['model.b']!.toArray())).toEqual([0.5, -1, 2]);
    expect(loaded.metadata.step).toBe('3');
  });

  it.each([['model.w', 37], ['model.b', 0], ['optim.0.step', 5]])('one flipped byte in %s (byte %i of its data) is refused, naming the file and the tensor', async (name, at) => {
    const bad = flipByte(path, name, join(dir, `flip-${name}.safetensors`), at);
    const err = await loadCheckpoint(bad, cpu).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ChecksumError);
    expect(err).toBeInstanceOf(SafetensorsError);
    expect((err as ChecksumError).tensor).toBe(name);
    expect((err as Error).message).toBe(`${bad}: safetensors: tensor "${name}": its data does not match the checksum written with it (the file is damaged or was edited)`);
    // Without the check the damaged file would decode: only the checksum catches it.
    expect(() => decodeSafetensors(readFileSync(bad))).not.toThrow();
  });

  it('a tensor added after writing, or one removed, is refused by name', async () => {
    const { tensors, metadata } = decodeSafetensors(readFileSync(path));
    const added = join(dir, 'added.safetensors');
    writeFileSync(added, encodeSafetensors({ ...tensors, extra: { dtype: 'F32', shape: [1], data: [1] } }, metadata));
    await expect(readSafetensorsFile(added)).rejects.toThrow(`${added}: safetensors: tensor "extra": no checksum for this tensor (added to the file after it was written?)`);
    const removed = join(dir, 'removed.safetensors');
    const { 'model.b': _, ...rest } = tensors;
    writeFileSync(removed, encodeSafetensors(rest, metadata));
    await expect(readSafetensorsFile(removed)).rejects.toThrow(`${removed}: safetensors: tensor "model.b": the tensor is missing (removed from the file after it was written?)`);
  });

  it('a file without checksums loads; loadCheckpoint notes it once per file', async () => {
    const old = join(dir, 'old.safetensors');
    writeFileSync(old, encodeSafetensors({ w: { dtype: 'F32', shape: [2], data: [1, 2] } }, { step: '1' }));
    const warn = vi.spyOn(console, 'warn').mockImplementation(() => {});
    try {
      for (let i = 0; i < 3; i++) expect(Array.from(await (await loadCheckpoint(old, cpu)).tensors.w!.toArray())).toEqual([1, 2]);
      expect(warn.mock.calls).toEqual([[unverifiedNote(old)]]);
      expect(unverifiedNote(old)).toBe(`note: ${old} holds no tensor checksums (written before they were added, or by another program): loaded without verifying its data`);
      // readSafetensorsFile (metadata peeks, caches) verifies when it can and says nothing otherwise.
      await readSafetensorsFile(old);
      expect(warn).toHaveBeenCalledTimes(1);
    } finally {
      warn.mockRestore();
    }
  });

  it('trainLoop resumes from a file without checksums and says so on its log', async () => {
    const model = new nn.Linear(2, 1, { backend: cpu, generator: new E.Generator(1) });
    const old = join(dir, 'old-run.safetensors');
    const { tensors, metadata } = decodeSafetensors(await (async () => {
      await saveTrainingCheckpoint(old, { model }, 2);
      return readFileSync(old);
    })());
    const { [CHECKSUM_KEY]: _, ...unsummed } = metadata;
    writeFileSync(old, encodeSafetensors(tensors, unsummed));
    const lines: string[] = [];
    const r = await trainLoop({ totalSteps: 3, state: { model }, backend: cpu, step: () => ({ terms: {} }), checkpointPath: old, checkpointEvery: 100, log: (l) => lines.push(l) });
    expect(r.startStep).toBe(2);
    expect(lines.slice(0, 2)).toEqual([unverifiedNote(old), `resumed from ${old} at step 2`]);
    // The save at the end writes checksums again.
    expect(Object.keys(JSON.parse(readSafetensorsHeader(readFileSync(old)).metadata[CHECKSUM_KEY]!) as object).sort()).toEqual(['model.bias', 'model.weight']);
  });
});

describe('the CLI', () => {
  it('eval-tokenizer and a resumed train-tokenizer refuse a checkpoint with a flipped byte: exit 2, one line naming the file and the tensor', async () => {
    const tok = new VQTokenizer({ ...CONFIG_PRESETS.tiny!, codebookSize: 16 }, { backend: cpu });
    const good = join(dir, 'tok.safetensors');
    await saveTrainingCheckpoint(good, { model: tok }, 1, { config: tok.cfg, dataset: 'mnist' });
    tok.dispose();
    const run = async (argv: string[]) => {
      const err: string[] = [];
      const code = await main(argv, { out: () => {}, err: (l) => err.push(l) });
      return { code, err };
    };
    const bad = flipByte(good, 'model.quantize.embedding.weight', join(dir, 'tok-bad.safetensors'), 9);
    const ev = await run(['eval-tokenizer', '--checkpoint', bad, '--featnet', 'random', '--cpu']);
    expect(ev.code).toBe(2);
    expect(ev.err).toHaveLength(1);
    expect(ev.err[0]).toMatch(/^webgpu-tok:? eval-tokenizer: .*tok-bad\.safetensors.*tensor "model\.quantize\.embedding\.weight": its data does not match the checksum written with it/);
    const out = join(dir, 'resume');
    const trained = await run(['train-tokenizer', '--dataset', 'mnist', '--config', 'tiny', '--limit', '8', '--batch', '4', '--steps', '1', '--cpu', '--out', out]);
    expect(trained.code).toBe(0);
    const ckpt = join(out, 'checkpoint.safetensors');
    flipByte(ckpt, 'model.decoder.conv_out.weight', ckpt, 3);
    const resumed = await run(['train-tokenizer', '--dataset', 'mnist', '--config', 'tiny', '--limit', '8', '--batch', '4', '--steps', '2', '--cpu', '--out', out]);
    expect(resumed.code).toBe(2);
    expect(resumed.err).toHaveLength(1);
    expect(resumed.err[0]).toMatch(/^webgpu-tok:? train-tokenizer: .*checkpoint\.safetensors.*tensor "model\.decoder\.conv_out\.weight": its data does not match the checksum written with it/);
  }, 60_000);
});
