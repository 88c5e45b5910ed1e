/**
 * Reliability, file system (issue 14; the cases are listed in docs/reliability.md, "Files"):
 * image folders hold a FIFO, a socket, a symlink loop, a dangling symlink and a symlinked folder
 * leading back up, each skipped and reported by name without being opened; output paths that are
 * empty or on procfs/sysfs are refused with one line and exit code 2 instead of writing into the
 * working directory or spinning in mkdir; train-featnet never replaces the shipped FeatNet weights
 * without --out naming them and --force, rejects unknown flags and --epochs 0. Cases that used to
 * hang run in a child process with a timeout, so a regression fails instead of hanging the run.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { DEFAULT_FEATNET_WEIGHTS } from '../examples/train-featnet.js';
import { main } from '../node/cli.js';
import { loadImageFolder } from '../node/data/index.js';
import { encodePng } from '../nn/data/png.js';
import { requireGpu } from './helpers/backends.js';

const ROOT = join(import.meta.dirname, '..');
const BIN = join(ROOT, 'bin', 'webgpu-tok.mjs');
const tmp = mkdtempSync(join(tmpdir(), 'wgtk-relfs-'));
const servers: Server[] = [];
afterAll(() => {
  for (const s of servers) s.close();
  rmSync(tmp, { recursive: true, force: true });
});

async function run(argv: string[]) {
  const out: string[] = [];
  const err: string[] = [];
  const code = await main(argv, { out: (l) => out.push(l), err: (l) => err.push(l) });
  return { code, out: out.join('\n'), err: err.join('\n'), errLines: err };
}

/** The CLI in a child process, killed after `timeoutMs`: status null means it hung. */
function runChild(argv: string[], timeoutMs = 20_000) {
  const r = spawnSync(process.execPath, [BIN, ...argv], { encoding: 'utf8', timeout: timeoutMs, cwd: tmp });
  return { status: r.status, stderr: r.stderr.trim(), stdout: r.stdout };
}

function png(w: number, h: number): Uint8Array {
  return encodePng({ width: w, height: h, channels: 3, data: new Uint8Array(w * h * 3).fill(128) });
}

const sha = (p: string) => createHash('sha256').update(readFileSync(p)).digest('hex');

describe('image folders: only regular files are read', async () => {
  // root/a: good.png, x.png (a FIFO), s.png (a socket), loop.png -> loop.png (ELOOP),
  // dangling.png -> missing.png, up -> . (a folder link leading back to itself: a cycle);
  // root/b: one good image; root/broken -> nowhere (a dangling link beside the class folders).
  const root = join(tmp, 'folder');
  mkdirSync(join(root, 'a'), { recursive: true });
  mkdirSync(join(root, 'b'));
  writeFileSync(join(root, 'a', 'good.png'), png(4, 4));
  writeFileSync(join(root, 'b', 'good.png'), png(4, 4));
  execFileSync('mkfifo', [join(root, 'a', 'x.png')]);
  const server = createServer();
  servers.push(server);
  await new Promise<void>((res) => server.listen(join(root, 'a', 's.png'), res));
  symlinkSync('loop.png', join(root, 'a', 'loop.png'));
  symlinkSync('missing.png', join(root, 'a', 'dangling.png'));
  symlinkSync('.', join(root, 'a', 'up'));
  symlinkSync('nowhere', join(root, 'broken'));

  const expected: [string, RegExp][] = [
    ['a/dangling.png', /dangling symlink.*missing\.png/],
    ['a/loop.png', /symlink loop \(ELOOP\)/],
    ['a/s.png', /a socket, not a regular file/],
    ['a/up', /symlink cycle/],
    ['a/x.png', /a FIFO, not a regular file/],
    ['broken', /dangling symlink/],
  ];

  it('skips a FIFO, a socket, a symlink loop, a dangling link and a folder cycle by name, without hanging (child process)', () => {
    // In a child: before the fix, reading x.png blocked forever (a synchronous read no test
    // timeout can interrupt), and the loop aborted the whole load with ELOOP.
    const script = join(tmp, 'load.ts');
    writeFileSync(
      script,
      `import { loadImageFolder } from ${JSON.stringify(join(ROOT, 'node', 'data', 'index.js'))};\n` +
        `const warnings: string[] = [];\n` +
        `const r = loadImageFolder(${JSON.stringify(root)}, { size: 4, channels: 3, warn: (l) => warnings.push(l) });\n` +
        `console.log(JSON.stringify({ shape: r.dataset.shape, classes: r.classes, files: r.files, skipped: r.skipped, warnings }));\n`,
    );
    const r = spawnSync(process.execPath, ['--import', 'tsx', script], { encoding: 'utf8', timeout: 20_000, cwd: ROOT });
    expect(r.status, `status ${r.status} (null: killed after hanging); stderr: ${r.stderr}`).toBe(0);
    const res = JSON.parse(r.stdout) as { shape: number[]; classes: string[]; files: string[]; skipped: { file: string; reason: string }[]; warnings: string[] };
    expect(res.classes).toEqual(['a', 'b']);
    expect(res.shape).toEqual([2, 3, 4, 4]);
    expect(res.files.map((f) => f.slice(root.length + 1))).toEqual(['a/good.png', 'b/good.png']);
    const skipped = res.skipped.map((s) => [s.file.slice(root.length + 1), s.reason] as const).sort((x, y) => x[0].localeCompare(y[0]));
    expect(skipped.map((s) => s[0])).toEqual(expected.map((e) => e[0]));
    skipped.forEach(([, reason], i) => expect(reason).toMatch(expected[i]![1]));
    // Each one is reported on its own warning line naming the entry and the reason.
    for (const s of res.skipped) expect(res.warnings.some((w) => w.includes(s.file) && w.includes(s.reason))).toBe(true);
  });

  it("onError 'fail' fails naming the first such entry (in-process: nothing is opened, so it cannot block)", () => {
    expect(() => loadImageFolder(root, { size: 4, channels: 3, onError: 'fail', warn: () => {} })).toThrow(/ImageFolder: cannot load .*broken: dangling symlink/);
  });
});

describe('output paths', () => {
  it.each([
    ['train-tokenizer', ['--dataset', 'mnist']],
    ['plot', ['run']],
    ['eval-table', ['x.json']],
  ])('%s --out "" is refused: exit 2, one line naming --out (child process in a temp folder)', (cmd, extra) => {
    // A child in a temp folder: before the fix this trained into the working directory.
    const r = runChild([cmd, ...extra, '--out', '']);
    expect(r.status, `status ${r.status} (null: killed, it was running)`).toBe(2);
    expect(r.stderr.split('\n')).toHaveLength(1);
    expect(r.stderr).toMatch(new RegExp(`^webgpu-tok: ${cmd}: --out must not be empty`));
  });

  it.each([
    ['/proc/webgpu-tok-x', 'procfs'],
    ['/proc/self/webgpu-tok/deeper', 'procfs'],
    ['/sys/webgpu-tok-x', 'sysfs'],
  ])('--out %s is refused (was: mkdir spinning forever): exit 2, one line (child process)', (out, fs) => {
    const r = runChild(['train-tokenizer', '--out', out, '--epochs', '1']);
    expect(r.status, `status ${r.status} (null: killed after hanging)`).toBe(2);
    expect(r.stderr.split('\n')).toHaveLength(1);
    expect(r.stderr).toContain(`train-tokenizer: --out ${out} is on ${fs}`);
  });

  it('a symlink into /proc is refused by its real path (child process)', () => {
    const link = join(tmp, 'to-proc');
    symlinkSync('/proc', link);
    const r = runChild(['train-tokenizer', '--out', join(link, 'run')]);
    expect(r.status, `status ${r.status} (null: killed after hanging)`).toBe(2);
    expect(r.stderr).toMatch(/--out .*to-proc\/run is on procfs \(\/proc\)/);
  });
});

describe('train-featnet and the shipped weights', async () => {
  const shipped = join(ROOT, DEFAULT_FEATNET_WEIGHTS);
  const bytes = existsSync(shipped) ? readFileSync(shipped) : null;
  const before = bytes ? sha(shipped) : null;
  afterAll(() => {
    // Whatever ran above, the shipped file is byte for byte what it was; if a regression replaced
    // it, the original is put back first so a failing run cannot cost the checkout its weights.
    const after = existsSync(shipped) ? sha(shipped) : null;
    if (bytes && after !== before) writeFileSync(shipped, bytes);
    expect(after).toBe(before);
  });

  it.each([
    [['--out', DEFAULT_FEATNET_WEIGHTS, '--limit', '8', '--batch', '4', '--val-limit', '8'], /--out models\/features\/weights\/featnet-fashion\.safetensors is the shipped FeatNet weights .*add --force/],
    [['--out', shipped, '--limit', '8', '--batch', '4', '--val-limit', '8'], /is the shipped FeatNet weights/],
    [['--epoch', '3'], /unknown option --epoch \(options: --epochs/],
    [['--force=yes'], /--force is a switch/],
    [['--epochs', '0', '--limit', '8', '--batch', '4', '--val-limit', '8', '--run-dir', join(tmp, 'e0')], /--epochs must be > 0, got 0/],
    [['--batch', '0'], /--batch must be a positive integer, got 0/],
    [['--out', ''], /--out must not be empty/],
    [['--run-dir', '/proc/featnet'], /--run-dir \/proc\/featnet is on procfs/],
  ])('train-featnet %j is refused before training: exit 2, one line', async (argv, msg) => {
    // (--limit 8 --batch 4 --val-limit 8 where a regression would train: it ends in seconds.)
    const r = await run(['train-featnet', ...argv]);
    expect(r.code).toBe(2);
    expect(r.errLines).toHaveLength(1);
    expect(r.err).toMatch(/^webgpu-tok: train-featnet: /);
    expect(r.err).toMatch(msg);
    expect(r.out).toBe('');
  });

  const gpu = await requireGpu();
  it.skipIf(!gpu)('without --out the weights go to <run-dir>/featnet-fashion.safetensors, not the shipped file', async () => {
    const runDir = join(tmp, 'featnet-run');
    const r = await run(['train-featnet', '--limit', '8', '--batch', '4', '--epochs', '1', '--val-limit', '8', '--run-dir', runDir, '--log-every', '1']);
    expect(r.code, r.err).toBe(0);
    expect(existsSync(join(runDir, 'featnet-fashion.safetensors'))).toBe(true);
    expect(existsSync(join(runDir, 'featnet-fashion.json'))).toBe(true);
    expect(existsSync(shipped) ? sha(shipped) : null).toBe(before);
  }, 60_000);
});
