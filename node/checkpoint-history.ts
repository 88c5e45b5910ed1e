/**
 * The checkpoints kept beside the newest (Node only). Before a new checkpoint replaces `path`, the
 * current file gets a second name, `<stem>.prev-<step>.safetensors` (a hard link, so `path` is
 * complete at every instant and nothing is copied); after the write, the oldest of those beyond
 * `keep - 1` are removed. Resume reads `path`, the newest; a `.prev-` file is the fallback when
 * the newest turns out bad (rename it over `path` to resume from it).
 */
import { copyFile, link, open, readdir, stat, unlink } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';

function stem(path: string): string {
  return basename(path).replace(/\.safetensors$/, '');
}

/** The name a checkpoint saved at `step` gets when a newer one replaces it. */
export function previousCheckpointPath(path: string, step: number | null): string {
  return join(dirname(path), `${stem(path)}.prev-${step ?? 'unknown'}.safetensors`);
}

/** The step in a trainLoop checkpoint's metadata, from its header only; null when unreadable. */
export async function checkpointStep(path: string): Promise<number | null> {
  let fh: import('node:fs/promises').FileHandle | undefined;
  try {
    fh = await open(path, 'r');
    const len = Buffer.alloc(8);
    if ((await fh.read(len, 0, 8, 0)).bytesRead !== 8) return null;
    const n = Number(len.readBigUInt64LE(0));
    // A header is a few KB; a bigger claim is not one of ours.
    if (n > 16 << 20) return null;
    const header = Buffer.alloc(n);
    if ((await fh.read(header, 0, n, 8)).bytesRead !== n) return null;
    const raw = (JSON.parse(header.toString('utf8')) as { __metadata__?: { step?: string } }).__metadata__?.step;
    const step = raw === undefined ? NaN : Number(JSON.parse(raw));
    return Number.isInteger(step) && step >= 0 ? step : null;
  } catch {
    return null;
  } finally {
    await fh?.close();
  }
}

/** The `.prev-` files of `path`, newest first (by modification time). */
export async function previousCheckpoints(path: string): Promise<string[]> {
  const dir = dirname(path);
  const prefix = `${stem(path)}.prev-`;
  let names: string[];
  try {
    names = await readdir(dir);
  } catch {
    return [];
  }
  const found = names.filter((n) => n.startsWith(prefix) && n.endsWith('.safetensors')).map((n) => join(dir, n));
  const times = await Promise.all(found.map(async (p) => (await stat(p, { bigint: true })).mtimeNs));
  return found.map((p, i) => ({ p, t: times[i]! })).sort((a, b) => (a.t === b.t ? 0 : a.t > b.t ? -1 : 1)).map((x) => x.p);
}

/** Gives the current `path` (if any) its `.prev-<step>` name; call right before replacing it. */
export async function preserveCurrent(path: string, keep: number): Promise<void> {
  if (keep < 2) return;
  const step = await checkpointStep(path).catch(() => null);
  if (step === null && !(await stat(path).then(() => true, () => false))) return;
  const prev = previousCheckpointPath(path, step);
  await unlink(prev).catch(() => {});
  try {
    await link(path, prev);
  } catch (e) {
    // Filesystems without hard links: a copy keeps the file as well (path is untouched either way).
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return;
    await copyFile(path, prev);
  }
}

/** Removes the oldest `.prev-` files so that `keep - 1` remain beside `path`; returns the removed ones. */
export async function prunePrevious(path: string, keep: number): Promise<string[]> {
  const extra = (await previousCheckpoints(path)).slice(Math.max(0, keep - 1));
  for (const p of extra) await unlink(p).catch(() => {});
  return extra;
}
