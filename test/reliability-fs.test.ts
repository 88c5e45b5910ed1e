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
import { runMain as run } from './helpers/cli-main.js';
import { loadImageFolder } from '../node/data/index.js';
import { encodePng } from '../nn/data/png.js';
import { crc32, zlibDeflate } from '../nn/data/zlib.js';
import { requireGpu } from './helpers/backends.js';

const ROOT = join(import.meta.dirname, '..');
const BIN = join(ROOT, 'bin', 'webgpu-tok.mjs');
const tmp = mkdtempSync(join(tmpdir(), 'wgtk-relfs-'));
const servers: Server[] = [];
afterAll(() => {
  for (const s of servers) s.close();
  rmSync(tmp, { recursive: true, force: true });
});


/**
 * The CLI in a child process that cannot hang the run: after `timeoutMs` it is killed with
 * SIGKILL (SIGTERM would only ask a training loop to finish its step and save, which can take
 * minutes) and the test fails saying so.
 */
function runChild(argv: string[], timeoutMs = 20_000) {
  const r = spawnSync(process.execPath, [BIN, ...argv], { encoding: 'utf8', timeout: timeoutMs, killSignal: 'SIGKILL', cwd: tmp });
  if ((r.error as NodeJS.ErrnoException | undefined)?.code === 'ETIMEDOUT') throw new Error(`webgpu-tok ${argv.join(' ')} did not exit within ${timeoutMs / 1000} s (killed): it hung or ran instead of refusing; stderr: ${r.stderr.slice(-400)}`);
  return { status: r.status, stderr: r.stderr.split('\n').filter((l) => l.trim() !== '' && !/^Warning: maxDynamic|^note: /.test(l)).join('\n'), stdout: r.stdout };
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
    const r = spawnSync(process.execPath, ['--import', 'tsx', script], { encoding: 'utf8', timeout: 20_000, killSignal: 'SIGKILL', cwd: ROOT });
    expect(r.status, `status ${r.status} (null: killed after 20 s, it hung); stderr: ${r.stderr}`).toBe(0);
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

/** A PNG assembled chunk by chunk: an IHDR declaring `w` x `h` RGB, one IDAT holding `pixelData` deflated, IEND. */
function craftedPng(w: number, h: number, pixelData: Uint8Array): Uint8Array {
  const chunk = (type: string, body: Uint8Array) => {
    const c = new Uint8Array(12 + body.length);
    const dv = new DataView(c.buffer);
    dv.setUint32(0, body.length);
    c.set(new TextEncoder().encode(type), 4);
    c.set(body, 8);
    dv.setUint32(8 + body.length, crc32(c.subarray(4, 8 + body.length)));
    return c;
  };
  const ihdr = new Uint8Array(13);
  new DataView(ihdr.buffer).setUint32(0, w);
  new DataView(ihdr.buffer).setUint32(4, h);
  ihdr.set([8, 2, 0, 0, 0], 8);
  const parts = [new Uint8Array([137, 80, 78, 71, 13, 10, 26, 10]), chunk('IHDR', ihdr), chunk('IDAT', zlibDeflate(pixelData)), chunk('IEND', new Uint8Array(0))];
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let o = 0;
  for (const p of parts) (out.set(p, o), (o += p.length));
  return out;
}

describe('image files with crafted sizes', () => {
  // root/c: good.png, huge.png (header 100000x100000), claims.png (header 8000x8000, under the
  // pixel bound, over a few compressed bytes), bomb.png (header 4x4, data inflating to 1 MB),
  // truncated.png (the first half of a real PNG).
  const root = join(tmp, 'crafted');
  mkdirSync(join(root, 'c'), { recursive: true });
  writeFileSync(join(root, 'c', 'good.png'), png(4, 4));
  writeFileSync(join(root, 'c', 'huge.png'), craftedPng(100_000, 100_000, new Uint8Array(16)));
  writeFileSync(join(root, 'c', 'claims.png'), craftedPng(8000, 8000, new Uint8Array(16)));
  writeFileSync(join(root, 'c', 'bomb.png'), craftedPng(4, 4, new Uint8Array(1 << 20)));
  const real = encodePng({ width: 32, height: 32, channels: 3, data: Uint8Array.from({ length: 32 * 32 * 3 }, (_, i) => (i * 37) % 251) });
  writeFileSync(join(root, 'c', 'truncated.png'), real.subarray(0, real.length >> 1));
  const expected: [string, RegExp][] = [
    ['bomb.png', /^PNG: image data inflates to more than the 52 bytes its 4x4 header declares: corrupt or crafted file$/],
    ['claims.png', /^PNG: the header declares 8000x8000 \(192008000 bytes of pixel data\), more than its \d+ compressed bytes can hold: truncated or crafted file$/],
    ['huge.png', /^PNG: image 100000x100000 is too large$/],
    ['truncated.png', /^PNG: truncated IDAT chunk/],
  ];

  it('refuses each before allocating its declared size: one warning line naming the file, the good image loads', () => {
    const warnings: string[] = [];
    const r = loadImageFolder(root, { size: 4, channels: 3, warn: (l) => warnings.push(l) });
    expect(r.dataset.shape).toEqual([1, 3, 4, 4]);
    const skipped = r.skipped.map((x) => [x.file.slice(join(root, 'c').length + 1), x.reason] as const).sort((a, b) => a[0].localeCompare(b[0]));
    expect(skipped.map((x) => x[0])).toEqual(expected.map((e) => e[0]));
    skipped.forEach(([, reason], i) => expect(reason).toMatch(expected[i]![1]));
    for (const [f] of expected) expect(warnings.filter((w) => w.includes(join(root, 'c', f)))).toHaveLength(1);
  });

  it.each(expected)("onError 'fail': %s fails the load with one line naming it", (name, reason) => {
    const only = join(tmp, `crafted-${name}`, 'c');
    mkdirSync(only, { recursive: true });
    writeFileSync(join(only, name), readFileSync(join(root, 'c', name)));
    let msg = '';
    try {
      loadImageFolder(join(only, '..'), { size: 4, channels: 3, onError: 'fail', warn: () => {} });
    } catch (e) {
      msg = (e as Error).message;
    }
    expect(msg).toBe(`ImageFolder: cannot load ${join(only, name)}: ${msg.slice(`ImageFolder: cannot load ${join(only, name)}: `.length)}`);
    expect(msg.split('\n')).toHaveLength(1);
    expect(msg.slice(`ImageFolder: cannot load ${join(only, name)}: `.length)).toMatch(reason);
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
