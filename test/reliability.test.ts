/**
 * Reliability of training runs (issue 14; cases listed in docs/reliability.md): a non-finite loss
 * or non-finite weights stop the run with a message naming the step and the last good checkpoint,
 * whose bytes stay as they were; --keep-checkpoints N leaves the newest plus N-1 earlier files; a
 * stop request (AbortSignal in the loop, SIGINT or SIGTERM to the CLI) finishes the step, saves,
 * prints the command that resumes and exits 130 / 143, and rerunning resumes from that step. Tiny models, a few steps each.
 */
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import * as E from '../engine/index.js';
import * as nn from '../nn/index.js';
import { main } from '../node/cli.js';
import { runMain } from './helpers/cli-main.js';
import { readSafetensorsFile } from '../node/checkpoint.js';
import { NonFiniteError } from '../node/finite-watch.js';
import { trainLoop } from '../node/train.js';
import { TrainingStopped } from '../node/train-stop.js';
import { requireGpu } from './helpers/backends.js';
import { runCli } from './helpers/cli-child.js';

const gpu = await requireGpu();
const backend: E.Backend = gpu ?? new E.CpuBackend();
const dir = mkdtempSync(join(tmpdir(), 'reliability-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const quiet = () => {};

/**
 * A linear regression whose step returns its loss, or NaN as the loss from step `nanFrom`, or
 * poisons the weights with NaN at step `poisonAt` while its returned loss stays finite.
 */
function setup(o: { nanFrom?: number; poisonAt?: number; onStep?: (step: number) => void } = {}) {
  const model = new nn.Linear(4, 1, { backend, generator: new E.Generator(1) });
  const optimizer = new nn.AdamW(model.parameters(), { lr: 0.01 });
  const x = E.keep(E.tensor(Float32Array.from({ length: 32 }, (_, i) => Math.sin(i)), [8, 4], { backend }));
  const state: nn.TrainingState = { model, optimizer };
  const step = (s: number) => {
    o.onStep?.(s);
    const loss = model.forward(x).square().mean();
    loss.backward();
    optimizer.step();
    optimizer.zeroGrad();
    if (s === o.poisonAt) model.weight.assign(model.weight.mul(NaN));
    return { terms: { loss: s >= (o.nanFrom ?? Infinity) ? loss.detach().mul(0).add(E.log(E.zeros([], { backend }).sub(1))) : loss.detach() } };
  };
  return { state, step, dispose: () => [model, optimizer, x].forEach((t) => t.dispose()) };
}

const files = (d: string) => readdirSync(d).filter((n) => n.endsWith('.safetensors')).sort();

function allFinite(t: Record<string, { data: ArrayLike<number> | BigInt64Array }>): boolean {
  return Object.values(t).every((e) => Array.from(e.data as ArrayLike<number>).every(Number.isFinite));
}

describe('non-finite guard (trainLoop)', () => {
  it('a NaN loss stops the run naming its step and the last good checkpoint, whose bytes are unchanged', async () => {
    const d = mkdtempSync(join(dir, 'nan-'));
    const ckpt = join(d, 'checkpoint.safetensors');
    const r = setup({ nanFrom: 7 });
    let saved: Buffer | null = null;
    const run = trainLoop({
      totalSteps: 12, state: r.state, backend, step: r.step, log: quiet, logEvery: 10, checkpointPath: ckpt, checkpointEvery: 4,
      sampleEvery: 4, onSample: async (s) => { if (s === 4) saved = readFileSync(ckpt); },
    });
    // The device flag knows the first bad step although no line was read between steps 5 and 10.
    await expect(run).rejects.toThrow(new NonFiniteError(`non-finite loss (NaN or Inf) at step 7: training stopped; the last good checkpoint is ${ckpt} (step 4), left as it was`));
    expect(saved).not.toBeNull();
    expect(readFileSync(ckpt).equals(saved!)).toBe(true);
    expect(files(d)).toEqual(['checkpoint.safetensors']);
    r.dispose();
  });

  it('non-finite weights behind a finite loss are refused at the save', async () => {
    const d = mkdtempSync(join(dir, 'weights-'));
    const ckpt = join(d, 'checkpoint.safetensors');
    const r = setup({ poisonAt: 6 });
    await expect(trainLoop({ totalSteps: 12, state: r.state, backend, step: r.step, log: quiet, logEvery: 100, checkpointPath: ckpt, checkpointEvery: 3 })).rejects.toThrow(
      /non-finite weights \(model\.weight\) after step 6, with finite losses: the update diverged: training stopped; the last good checkpoint is .*checkpoint\.safetensors \(step 3\)/,
    );
    const kept = await readSafetensorsFile(ckpt);
    expect(kept.metadata.step).toBe('3');
    expect(allFinite(kept.tensors)).toBe(true);
    r.dispose();
  });
});

describe('keep-checkpoints', () => {
  it.each([1, 2, 3])('keepCheckpoints %i leaves the newest plus %i - 1 earlier ones', async (keep) => {
    const d = mkdtempSync(join(dir, `keep${keep}-`));
    const r = setup();
    await trainLoop({ totalSteps: 5, state: r.state, backend, step: r.step, log: quiet, checkpointPath: join(d, 'checkpoint.safetensors'), checkpointEvery: 1, keepCheckpoints: keep });
    expect(files(d)).toEqual(['checkpoint.prev-4.safetensors', 'checkpoint.prev-3.safetensors'].slice(0, keep - 1).concat('checkpoint.safetensors').sort());
    if (keep > 1) expect((await readSafetensorsFile(join(d, 'checkpoint.prev-4.safetensors'))).metadata.step).toBe('4');
    r.dispose();
  });
});

describe('stop request (trainLoop)', () => {
  it('finishes the step, saves, throws TrainingStopped (exit code 130) and leaves no signal handlers', async () => {
    const d = mkdtempSync(join(dir, 'stop-'));
    const ckpt = join(d, 'checkpoint.safetensors');
    const ctrl = new AbortController();
    const listeners = [process.listenerCount('SIGINT'), process.listenerCount('SIGTERM')];
    const r = setup({ onStep: (s) => s === 3 && ctrl.abort('SIGINT') });
    const e = await trainLoop({ totalSteps: 50, state: r.state, backend, step: r.step, log: quiet, checkpointPath: ckpt, checkpointEvery: 100, stop: ctrl.signal, handleSignals: true }).catch((x) => x);
    expect(e).toBeInstanceOf(TrainingStopped);
    expect(e.message).toBe(`SIGINT: stopped after step 3; saved ${ckpt}`);
    expect(e.exitCode).toBe(130);
    expect((await readSafetensorsFile(ckpt)).metadata.step).toBe('3');
    expect([process.listenerCount('SIGINT'), process.listenerCount('SIGTERM')]).toEqual(listeners);
    r.dispose();
  });
});

describe('the CLI (tiny tokenizer)', () => {
  const dev = gpu ? [] : ['--cpu'];
  const base = ['train-tokenizer', '--dataset', 'mnist', '--config', 'tiny', '--limit', '8', '--batch', '4', ...dev];
  const run = runMain;

  it('--lr 1e20 diverges: exit 2, one line naming the step and the step-1 checkpoint, which stays finite', async () => {
    const d = join(dir, 'diverge');
    const r = await run([...base, '--steps', '6', '--lr', '1e20', '--checkpoint-every', '1', '--log-every', '3', '--out', d]);
    expect(r.code).toBe(2);
    expect(r.err).toMatch(/^webgpu-tok train-tokenizer: non-finite loss \(NaN or Inf\) (at step 2|between steps 1 and 3): training stopped; the last good checkpoint is .*diverge\/checkpoint\.safetensors \(step 1\), left as it was$/);
    const kept = await readSafetensorsFile(join(d, 'checkpoint.safetensors'));
    expect(kept.metadata.step).toBe('1');
    expect(allFinite(kept.tensors)).toBe(true);
  });

  it('--keep-checkpoints 2 leaves exactly two checkpoint files after several saves', async () => {
    const d = join(dir, 'keep-cli');
    const r = await run([...base, '--steps', '4', '--checkpoint-every', '1', '--keep-checkpoints', '2', '--out', d]);
    expect(r.code).toBe(0);
    expect(files(d)).toEqual(['checkpoint.prev-3.safetensors', 'checkpoint.safetensors']);
    expect((await run([...base, '--keep-checkpoints', '0', '--out', d])).err).toMatch(/--keep-checkpoints must be >= 1, got 0/);
  });

  it.each([['SIGINT', 130], ['SIGTERM', 143]] as const)('%s after the first progress line: saves, prints the resume command, exits %i; rerunning resumes there', async (signal, exitCode) => {
    const d = join(dir, signal);
    const argv = [...base, '--steps', '2000', '--log-every', '1', '--fresh', '--out', d];
    // A child killed (SIGKILL) after 50 s if the graceful stop never comes, failing the test.
    const r = await runCli(argv, {
      timeoutMs: 50_000,
      onStdout: (out, child) => {
        if (/step +1\/2000/.test(out) && child.exitCode === null && !child.killed) child.kill(signal);
      },
    });
    const err = r.stderr;
    expect(r.code, err).toBe(exitCode);
    const m = new RegExp(`${signal}: stopped after step (\\d+); saved (.*checkpoint\\.safetensors); resume with: webgpu-tok (.*) \\(an existing checkpoint in --out is resumed by default\\)`).exec(err);
    expect(m, err).not.toBeNull();
    const step = Number(m![1]);
    expect(step).toBeGreaterThanOrEqual(1);
    expect(step).toBeLessThan(2000);
    // The same command minus --fresh, which would start over.
    expect(m![3]).toBe(argv.filter((a) => a !== '--fresh').join(' '));
    expect((await readSafetensorsFile(join(d, 'checkpoint.safetensors'))).metadata.step).toBe(String(step));
    const again = await run([...base, '--steps', String(step + 1), '--log-every', '1', '--out', d]);
    expect(again.code).toBe(0);
    expect(again.out).toContain(`resumed from ${join(d, 'checkpoint.safetensors')} at step ${step}`);
    expect(again.out).toContain(`trained steps ${step + 1}..${step + 1}`);
  }, 60_000);
});

describe('a second signal (child process)', () => {
  it('SIGINT twice: exits at once with 130, without finishing the step or saving; the last saved checkpoint is intact and resumes', async () => {
    // Batch 32 of the tiny tokenizer: a step takes over a second on lavapipe, so the second
    // signal (sent as soon as the first is acknowledged) lands while the graceful stop would still
    // be finishing its step; checkpoints every step, so one exists before the first signal.
    const d = join(dir, 'second-signal');
    const argv = ['train-tokenizer', '--dataset', 'mnist', '--config', 'tiny', '--limit', '64', '--batch', '32', '--steps', '2000', '--log-every', '1', '--checkpoint-every', '1', '--fresh', '--out', d, ...(gpu ? [] : ['--cpu'])];
    let first = false;
    let second = 0;
    const r = await runCli(argv, {
      timeoutMs: 60_000,
      onStdout: (out, child) => {
        if (!first && /step +2\/2000/.test(out)) {
          first = true;
          child.kill('SIGINT');
        } else if (first && !second && /SIGINT: finishing the current step/.test(out)) {
          second = performance.now();
          child.kill('SIGINT');
        }
      },
    });
    expect(second, r.stdout).toBeGreaterThan(0);
    expect(r.code, r.stderr).toBe(130);
    // The graceful path would have finished the step, saved it and said so.
    expect(r.stderr).not.toMatch(/stopped after step|resume with/);
    const kept = await readSafetensorsFile(join(d, 'checkpoint.safetensors'));
    const step = Number(kept.metadata.step);
    expect(step).toBeGreaterThanOrEqual(1);
    expect(allFinite(kept.tensors)).toBe(true);
    const again = await main([...argv.filter((a) => a !== '--fresh').map((a) => (a === '2000' ? String(step + 1) : a))], { out: () => {}, err: () => {} });
    expect(again).toBe(0);
    expect((await readSafetensorsFile(join(d, 'checkpoint.safetensors'))).metadata.step).toBe(String(step + 1));
  }, 90_000);
});
