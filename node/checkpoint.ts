/**
 * Checkpoint files (Node only): atomic safetensors writes and reads.
 *
 * saveCheckpoint writes `${path}.tmp-<pid>-<random>` (created exclusively), fsyncs it, renames it
 * over `path` and fsyncs the directory. rename() is atomic on POSIX filesystems, so at every
 * instant `path` is either the complete previous file or the complete new one: a crash or kill
 * mid-write leaves the previous checkpoint intact plus, at worst, a stale temp file, which the
 * next save to the same path removes (only temp files whose writer process is gone).
 *
 * A training checkpoint can also refuse non-finite values (a diverged run must not replace the
 * last good file) and keep the previous file beside the new one (node/checkpoint-history.ts).
 */
import { randomBytes } from 'node:crypto';
import { open, readdir, readFile, rename, unlink } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import type { Backend } from '../engine/backend.js';
import type { Tensor } from '../engine/tensor.js';
import { preserveCurrent, prunePrevious } from './checkpoint-history.js';
import {
  decodeSafetensors,
  entriesToTensors,
  safetensorsChunks,
  tensorsToEntries,
  withFormat,
  type DecodedSafetensors,
  type SafetensorsMetadata,
  type SaveTensorsOptions,
  type TensorEntry,
} from '../nn/checkpoint/index.js';

/** Fault-injection points for tests (each may throw, or kill the process, to simulate a crash). */
export interface AtomicWriteHooks {
  /** After chunk `index` was written to the temp file (before fsync). */
  afterChunk?: (index: number, tmpPath: string) => void | Promise<void>;
  /** After the temp file was fsynced and closed, before the rename. */
  beforeRename?: (tmpPath: string) => void | Promise<void>;
}

export interface AtomicWriteOptions {
  /** fsync the file and the directory (default true; false only for throwaway files). */
  fsync?: boolean;
  /** Remove stale temp files of `path` left by dead processes after a successful write (default true). */
  cleanStale?: boolean;
  hooks?: AtomicWriteHooks;
}

const TMP_RE = /^(.*)\.tmp-(\d+)-[0-9a-f]+$/;

async function writeAll(fh: import('node:fs/promises').FileHandle, chunk: Uint8Array): Promise<void> {
  let done = 0;
  while (done < chunk.length) {
    const { bytesWritten } = await fh.write(chunk, done, chunk.length - done);
    done += bytesWritten;
  }
}

async function fsyncDir(dir: string): Promise<void> {
  let dh: import('node:fs/promises').FileHandle | undefined;
  try {
    dh = await open(dir, 'r');
    await dh.sync();
  } catch (e) {
    // Some platforms (Windows) cannot open or fsync a directory; the rename is still atomic there.
    const code = (e as NodeJS.ErrnoException).code;
    if (!['EISDIR', 'EPERM', 'EINVAL', 'ENOTSUP', 'EBADF', 'EACCES'].includes(code ?? '')) throw e;
  } finally {
    await dh?.close();
  }
}

function processAlive(pid: number): boolean {
  if (pid === process.pid) return true;
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Removes `${path}.tmp-<pid>-*` files whose writer process no longer exists; returns their names. */
export async function removeStaleTemps(path: string): Promise<string[]> {
  const dir = dirname(path);
  const base = basename(path);
  const removed: string[] = [];
  let names: string[];
  try {
    names = await readdir(dir);
  } catch {
    return removed;
  }
  for (const name of names) {
    const m = TMP_RE.exec(name);
    if (!m || m[1] !== base || processAlive(Number(m[2]))) continue;
    try {
      await unlink(join(dir, name));
      removed.push(name);
    } catch {
      // Already gone (another writer cleaned it): fine.
    }
  }
  return removed;
}

/**
 * Writes `data` (bytes or a sequence of chunks) to `path` atomically: temp file, fsync, rename,
 * directory fsync. On any error the temp file is removed and `path` is untouched.
 */
export async function writeFileAtomic(path: string, data: Uint8Array | Iterable<Uint8Array> | AsyncIterable<Uint8Array>, opts: AtomicWriteOptions = {}): Promise<void> {
  const sync = opts.fsync ?? true;
  const hooks = opts.hooks ?? {};
  const tmp = `${path}.tmp-${process.pid}-${randomBytes(6).toString('hex')}`;
  const fh = await open(tmp, 'wx', 0o644);
  let closed = false;
  try {
    const chunks = data instanceof Uint8Array ? [data] : data;
    let i = 0;
    for await (const chunk of chunks) {
      await writeAll(fh, chunk);
      await hooks.afterChunk?.(i++, tmp);
    }
    if (sync) await fh.sync();
    closed = true;
    await fh.close();
    await hooks.beforeRename?.(tmp);
    await rename(tmp, path);
  } catch (e) {
    if (!closed) await fh.close().catch(() => {});
    await unlink(tmp).catch(() => {});
    throw e;
  }
  if (sync) await fsyncDir(dirname(path));
  if (opts.cleanStale ?? true) await removeStaleTemps(path);
}

export interface SaveCheckpointOptions extends SaveTensorsOptions, AtomicWriteOptions {
  /** Refuse (NonFiniteTensorError, nothing written) if a float tensor holds NaN or Inf. */
  requireFinite?: boolean;
  /** Checkpoints kept: the new file plus keep - 1 earlier ones as `.prev-<step>` files (unset: `.prev-` files are left alone). */
  keep?: number;
}

/** A checkpoint was refused because `tensor` holds a NaN or an infinity. */
export class NonFiniteTensorError extends Error {
  override name = 'NonFiniteTensorError';
  constructor(readonly tensor: string) {
    super(`tensor ${tensor} holds non-finite values (NaN or Inf)`);
  }
}

/** The first float entry holding a NaN or an infinity, or null. */
export function nonFiniteTensor(entries: Record<string, TensorEntry>): string | null {
  for (const [name, e] of Object.entries(entries)) {
    if (!(e.dtype === 'F32' || e.dtype === 'F16' || e.dtype === 'BF16' || e.dtype === 'F64')) continue;
    const d = e.data as ArrayLike<number>;
    for (let i = 0; i < d.length; i++) if (!Number.isFinite(d[i]!)) return name;
  }
  return null;
}

/**
 * Saves tensors (read back from the device) and string metadata to `path` as safetensors,
 * atomically. The data is streamed to disk one tensor at a time.
 */
export async function saveCheckpoint(path: string, record: Record<string, Tensor>, metadata: SafetensorsMetadata = {}, opts: SaveCheckpointOptions = {}): Promise<void> {
  const entries = await tensorsToEntries(record, opts);
  if (opts.requireFinite) {
    const bad = nonFiniteTensor(entries);
    if (bad !== null) throw new NonFiniteTensorError(bad);
  }
  if (opts.keep !== undefined) await preserveCurrent(path, opts.keep);
  const { chunks } = safetensorsChunks(entries, withFormat(metadata, opts));
  await writeFileAtomic(path, chunks, opts);
  if (opts.keep !== undefined) await prunePrevious(path, opts.keep);
}

/** Reads and validates a safetensors file; errors name the file. */
export async function readSafetensorsFile(path: string): Promise<DecodedSafetensors> {
  const bytes = await readFile(path);
  try {
    return decodeSafetensors(bytes);
  } catch (e) {
    (e as Error).message = `${path}: ${(e as Error).message}`;
    throw e;
  }
}

/** Loads a checkpoint: tensors on `backend` (default: the default backend) and the metadata. */
export async function loadCheckpoint(path: string, backend?: Backend): Promise<{ tensors: Record<string, Tensor>; metadata: SafetensorsMetadata }> {
  const { tensors, metadata } = await readSafetensorsFile(path);
  return { tensors: entriesToTensors(tensors, backend), metadata };
}
