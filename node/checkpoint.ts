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
 *
 * Integrity: saveCheckpoint stores the SHA-256 of every tensor's bytes (as written) in the
 * metadata under `tensor_sha256`, and readSafetensorsFile (so loadCheckpoint) verifies them: a
 * flipped bit in a tensor's data is ChecksumError naming the file and the tensor, where it would
 * otherwise load silently. A file without checksums (written before they existed, or by another
 * writer) still loads, unverified, with a one-time note. The metadata itself is not covered
 * (damage there mostly breaks its JSON, which is refused anyway).
 */
import { createHash, randomBytes } from 'node:crypto';
import { open, readdir, readFile, rename, unlink } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import type { Backend } from '../engine/backend.js';
import type { Tensor } from '../engine/tensor.js';
import { preserveCurrent, prunePrevious } from './checkpoint-history.js';
import {
  decodeSafetensors,
  entriesToTensors,
  getJson,
  readSafetensorsHeader,
  SafetensorsError,
  safetensorsChunks,
  setJson,
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

/** Metadata key of the checksums: JSON { "<tensor name>": "<SHA-256 hex of its bytes in the file>" }. */
export const CHECKSUM_KEY = 'tensor_sha256';

const sha256 = (bytes: Uint8Array): string => createHash('sha256').update(bytes).digest('hex');

/** The SHA-256 of each entry's bytes as the file holds them (encoded alone: its one data chunk). */
function entryChecksums(entries: Record<string, TensorEntry>): Record<string, string> {
  const sums: Record<string, string> = {};
  for (const [name, e] of Object.entries(entries)) {
    const [, data] = [...safetensorsChunks({ [name]: e }).chunks];
    sums[name] = sha256(data ?? new Uint8Array(0));
  }
  return sums;
}

/** A tensor's bytes no longer match the checksum written with it: the file was damaged or edited. */
export class ChecksumError extends SafetensorsError {
  constructor(
    readonly path: string,
    readonly tensor: string,
    problem: string,
  ) {
    super(`tensor ${JSON.stringify(tensor)}: ${problem}`);
    this.name = 'ChecksumError';
    this.message = `${path}: ${this.message}`;
  }
}

/**
 * Saves tensors (read back from the device) and string metadata to `path` as safetensors,
 * atomically, with the checksum of every tensor in the metadata. The data is streamed to disk one
 * tensor at a time.
 */
export async function saveCheckpoint(path: string, record: Record<string, Tensor>, metadata: SafetensorsMetadata = {}, opts: SaveCheckpointOptions = {}): Promise<void> {
  const entries = await tensorsToEntries(record, opts);
  if (opts.requireFinite) {
    const bad = nonFiniteTensor(entries);
    if (bad !== null) throw new NonFiniteTensorError(bad);
  }
  const meta = setJson({ ...metadata }, CHECKSUM_KEY, entryChecksums(entries));
  if (opts.keep !== undefined) await preserveCurrent(path, opts.keep);
  const { chunks } = safetensorsChunks(entries, withFormat(meta, opts));
  await writeFileAtomic(path, chunks, opts);
  if (opts.keep !== undefined) await prunePrevious(path, opts.keep);
}

export interface ReadSafetensorsOptions {
  /** Called for a file without checksums (readSafetensorsFile: nothing; loadCheckpoint: noteUnverified). */
  onUnverified?: (path: string) => void;
  /** loadCheckpoint: load float tensors holding NaN or Inf instead of refusing the file (default false). */
  allowNonFinite?: boolean;
}

/** loadCheckpoint refused a file whose float tensor holds NaN or Inf (the weights of a diverged run). */
export class NonFiniteCheckpointError extends SafetensorsError {
  constructor(
    readonly path: string,
    readonly tensor: string,
  ) {
    super(`tensor ${JSON.stringify(tensor)} holds NaN or Inf (the weights of a diverged run?): not loaded; an earlier checkpoint (checkpoint.prev-<step>.safetensors) may be intact`);
    this.name = 'NonFiniteCheckpointError';
    this.message = `${path}: ${this.message}`;
  }
}

const noted = new Set<string>();

/** The note on a file without checksums. */
export function unverifiedNote(path: string): string {
  return `note: ${path} holds no tensor checksums (written before they were added, or by another program): loaded without verifying its data`;
}

/** loadCheckpoint's default for a file without checksums: the note on stderr, once per file per process. */
export function noteUnverified(path: string): void {
  if (noted.has(path)) return;
  noted.add(path);
  console.warn(unverifiedNote(path));
}

/** Checks every tensor of the file `bytes` against the checksums in its metadata. */
function verifyChecksums(path: string, bytes: Uint8Array, metadata: SafetensorsMetadata): void {
  const sums = getJson<unknown>(metadata, CHECKSUM_KEY);
  if (typeof sums !== 'object' || sums === null || Array.isArray(sums)) throw new ChecksumError(path, CHECKSUM_KEY, 'the checksum metadata is not an object of tensor names');
  const { tensors, dataStart } = readSafetensorsHeader(bytes);
  for (const [name, t] of Object.entries(tensors)) {
    if (!Object.prototype.hasOwnProperty.call(sums, name)) throw new ChecksumError(path, name, 'no checksum for this tensor (added to the file after it was written?)');
    const want = (sums as Record<string, unknown>)[name];
    if (sha256(bytes.subarray(dataStart + t.dataOffsets[0], dataStart + t.dataOffsets[1])) !== want) {
      throw new ChecksumError(path, name, 'its data does not match the checksum written with it (the file is damaged or was edited)');
    }
  }
  for (const name of Object.keys(sums)) {
    if (!Object.prototype.hasOwnProperty.call(tensors, name)) throw new ChecksumError(path, name, 'the tensor is missing (removed from the file after it was written?)');
  }
}

/** Reads and validates a safetensors file, verifying its checksums if it has them; errors name the file. */
export async function readSafetensorsFile(path: string, opts: ReadSafetensorsOptions = {}): Promise<DecodedSafetensors> {
  const bytes = await readFile(path);
  let decoded: DecodedSafetensors;
  try {
    decoded = decodeSafetensors(bytes);
  } catch (e) {
    (e as Error).message = `${path}: ${(e as Error).message}`;
    throw e;
  }
  if (Object.prototype.hasOwnProperty.call(decoded.metadata, CHECKSUM_KEY)) verifyChecksums(path, bytes, decoded.metadata);
  else opts.onUnverified?.(path);
  return decoded;
}

/**
 * Loads a checkpoint: tensors on `backend` (default: the default backend) and the metadata. Its
 * checksums are verified; a file without them loads with a note (noteUnverified by default). A
 * float tensor holding NaN or Inf refuses the file (NonFiniteCheckpointError) unless
 * `allowNonFinite`: a diverged run's weights evaluate and sample as if they were a model.
 */
export async function loadCheckpoint(path: string, backend?: Backend, opts: ReadSafetensorsOptions = {}): Promise<{ tensors: Record<string, Tensor>; metadata: SafetensorsMetadata }> {
  const { tensors, metadata } = await readSafetensorsFile(path, { onUnverified: opts.onUnverified ?? noteUnverified });
  if (!opts.allowNonFinite) {
    const bad = nonFiniteTensor(tensors);
    if (bad !== null) throw new NonFiniteCheckpointError(path, bad);
  }
  return { tensors: entriesToTensors(tensors, backend), metadata };
}
