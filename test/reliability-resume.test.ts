/**
 * Reliability, resuming with other flags (issue 14; docs/reliability.md, "Resume"): for every
 * trainer (train-tokenizer, train-ar, train-diffusion, posttrain), a schedule flag given on the
 * resuming command line (--lr, --steps, --epochs) is applied and printed against the
 * checkpoint's value, and is what the next checkpoint holds; a schedule flag not given keeps the
 * checkpoint's (a default must not silently replace it); a flag of the model or the data is
 * refused with one line naming the flag and --fresh; a checkpoint whose state does not fit the
 * run fails with one line naming --fresh. Tiny models, 2-4 steps each.
 */
import { cpSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { runMain as run } from './helpers/cli-main.js';
import { readSafetensorsFile } from '../node/checkpoint.js';
import { encodeSafetensors, getJson } from '../nn/checkpoint/index.js';
import { requireGpu } from './helpers/backends.js';

const gpu = await requireGpu();
const dev = gpu ? [] : ['--cpu'];
const tmp = mkdtempSync(join(tmpdir(), 'wgtk-relres-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));


async function ok(argv: string[]) {
  const r = await run(argv);
  expect(r.code, r.err).toBe(0);
  return r;
}

async function refused(argv: string[], msg: RegExp) {
  const r = await run(argv);
  expect(r.code, r.out).toBe(2);
  expect(r.errLines).toHaveLength(1);
  expect(r.err).toMatch(msg);
  expect(r.err).toMatch(/--fresh/);
}

/** The step and the learning rate a checkpoint holds: the optimizer's (no schedule) or the schedule's base. */
async function saved(dir: string): Promise<{ step: number; lr: number }> {
  const { metadata } = await readSafetensorsFile(join(dir, 'checkpoint.safetensors'));
  const sched = metadata.scheduler ? getJson<{ base_lrs: number[] }>(metadata, 'scheduler') : null;
  const lr = sched ? sched.base_lrs[0]! : getJson<{ param_groups: { lr: number }[] }>(metadata, 'optimizer').param_groups[0]!.lr;
  return { step: getJson<number>(metadata, 'step'), lr };
}

const tok = join(tmp, 'tok');
const tokBase = ['train-tokenizer', '--dataset', 'mnist', '--config', 'tiny', '--limit', '8', '--batch', '4', '--log-every', '1', ...dev];
const ar = join(tmp, 'ar');
const arBase = ['train-ar', '--tokenizer', tok, '--limit', '8', '--batch', '4', '--dim', '16', '--depth', '1', '--heads', '2', '--log-every', '1', ...dev];

describe('train-tokenizer', () => {
  it('--lr and --steps given on resume are applied and printed; not given, the checkpoint keeps its own; a model flag is refused naming --fresh', async () => {
    await ok([...tokBase, '--steps', '2', '--lr', '2e-4', '--out', tok]);
    expect(await saved(tok)).toEqual({ step: 2, lr: 2e-4 });
    const r = await ok([...tokBase, '--steps', '3', '--lr', '1e-3', '--out', tok]);
    expect(r.out).toContain('resume: --lr 0.001 (checkpoint had 0.0002)');
    expect(r.out).toContain('resume: --steps 3 (checkpoint had 2)');
    expect(await saved(tok)).toEqual({ step: 3, lr: 1e-3 });
    // No --lr: the checkpoint's 1e-3 stays (the default 2e-4 must not replace it), nothing printed about it.
    const kept = await ok([...tokBase, '--steps', '4', '--out', tok]);
    expect(kept.out).not.toMatch(/resume: --lr/);
    expect(await saved(tok)).toEqual({ step: 4, lr: 1e-3 });
    // Neither --steps nor --epochs: the run's own length (4), not the default one epoch (2 steps).
    expect((await ok([...tokBase, '--out', tok])).out).toMatch(/already complete: .* is at step 4 of 4/);
    await refused([...tokBase, '--steps', '5', '--seed', '1', '--out', tok], /^webgpu-tok: train-tokenizer: .*checkpoint\.safetensors was trained with --seed 0, not 1: pass the same value to resume, or --fresh to start over$/);
    await refused([...tokBase, '--steps', '5', '--config', 'small', '--out', tok], /was trained with --config tiny, not small/);
  }, 120_000);

  it('a checkpoint whose state does not fit the run (no CLI record to compare) fails with one line naming --fresh', async () => {
    // The checkpoint without its `cli` record (as trainTokenizer alone writes it): only the restore can tell.
    const d = join(tmp, 'no-record');
    cpSync(tok, d, { recursive: true });
    const f = join(d, 'checkpoint.safetensors');
    const { tensors, metadata } = await readSafetensorsFile(f);
    const extra = getJson<Record<string, unknown>>(metadata, 'extra');
    delete extra.cli;
    writeFileSync(f, encodeSafetensors(tensors, { ...metadata, extra: JSON.stringify(extra) }));
    await refused([...tokBase, '--steps', '5', '--config', 'small', '--out', d], /^webgpu-tok train-tokenizer: cannot resume from .*no-record\/checkpoint\.safetensors: .*loadStateDict.*; pass --fresh to start over/);
  }, 60_000);
});

describe('train-ar', () => {
  it('a new --lr on resume replaces the schedule base and is printed; --dim is refused naming --fresh', async () => {
    await ok([...arBase, '--steps', '2', '--out', ar]);
    expect(await saved(ar)).toEqual({ step: 2, lr: 4e-4 });
    const r = await ok([...arBase, '--steps', '3', '--lr', '1e-3', '--out', ar]);
    expect(r.out).toContain('resume: --lr 0.001 (checkpoint had 0.0004)');
    expect(await saved(ar)).toEqual({ step: 3, lr: 1e-3 });
    await ok([...arBase, '--steps', '4', '--out', ar]);
    expect((await saved(ar)).lr).toBe(1e-3);
    await refused([...arBase, '--steps', '5', '--dim', '32', '--out', ar], /was trained with --dim 16, not 32: pass the same value to resume, or --fresh to start over/);
  }, 120_000);
});

describe('train-diffusion', () => {
  it('a new --lr on resume replaces the schedule base and is printed; --patch is refused naming --fresh', async () => {
    const kl = join(tmp, 'kl');
    const dit = join(tmp, 'dit');
    await ok(['train-tokenizer', '--quantizer', 'kl', '--dataset', 'mnist', '--config', 'tiny', '--limit', '8', '--batch', '4', '--steps', '1', '--out', kl, ...dev]);
    const base = ['train-diffusion', '--tokenizer', kl, '--out', dit, '--limit', '8', '--batch', '4', '--dim', '16', '--depth', '1', '--heads', '2', '--patch', '2', '--log-every', '1', ...dev];
    await ok([...base, '--steps', '2']);
    expect(await saved(dit)).toEqual({ step: 2, lr: 2e-4 });
    const r = await ok([...base, '--steps', '3', '--lr', '5e-4']);
    expect(r.out).toContain('resume: --lr 0.0005 (checkpoint had 0.0002)');
    expect(await saved(dit)).toEqual({ step: 3, lr: 5e-4 });
    await refused([...base, '--steps', '4', '--patch', '1'], /was trained with --patch 2, not 1: .*--fresh/);
  }, 120_000);
});

describe('posttrain', () => {
  it('--epochs and --lr on resume are applied and printed; --sigma is refused naming --fresh', async () => {
    const pt = join(tmp, 'pt');
    const base = ['posttrain', '--tokenizer', tok, '--generator', ar, '--out', pt, '--images', '8', '--batch', '4', '--gen-batch', '8', '--sigma', '0.5', '--log-every', '1', ...dev];
    await ok([...base, '--epochs', '1']);
    expect(await saved(pt)).toEqual({ step: 2, lr: 5e-5 });
    const r = await ok([...base, '--epochs', '2', '--lr', '1e-4']);
    expect(r.out).toContain('resume: --epochs 2 (checkpoint had 1)');
    expect(r.out).toContain('resume: --lr 0.0001 (checkpoint had 0.00005)');
    expect(await saved(pt)).toEqual({ step: 4, lr: 1e-4 });
    await refused([...base, '--sigma', '0.7'], /was trained with --sigma 0.5, not 0.7: .*--fresh/);
  }, 120_000);
});
