/**
 * ImageFolder: root/<class>/<image files>, like torchvision.datasets.ImageFolder. Classes are the
 * subfolder names in sorted order (label = position); files with a .png/.jpg/.jpeg extension
 * (any case, searched recursively inside each class folder) are decoded with the pure-TS codecs
 * and resized to one size. Unreadable or undecodable files are reported by name: skipped with a
 * warning line (default) or the load fails, by `onError`; so are entries that are not regular
 * files (FIFOs, sockets, devices: never opened), symlink loops, dangling symlinks and symlinked
 * folders that lead back into the tree. Node-only (see nn/data/folder.ts for
 * the browser-safe core).
 */
import { closeSync, constants, fstatSync, lstatSync, openSync, readdirSync, readFileSync, readlinkSync, realpathSync, statSync, type Stats } from 'node:fs';
import { extname, join, relative } from 'node:path';
import { buildImageDataset, type BuildOptions, type BuildResult, type ImageEntry, type SkippedFile } from '../../nn/data/folder.js';

export interface ImageFolderOptions extends BuildOptions {
  /** File extensions accepted (lowercase, with the dot). Default ['.png', '.jpg', '.jpeg']. */
  extensions?: readonly string[];
  /** Use only these class folders, in this label order (default: all subfolders, sorted). */
  classes?: readonly string[];
}

export interface ImageFolderResult extends BuildResult {
  classes: string[];
  /** Files present but not images by extension (hidden files excluded), relative to root. */
  ignored: string[];
}

/** What an entry other than a regular file or a directory is, for the skip line. */
function kindOf(st: Stats): string {
  if (st.isFIFO()) return 'a FIFO';
  if (st.isSocket()) return 'a socket';
  if (st.isCharacterDevice()) return 'a character device';
  if (st.isBlockDevice()) return 'a block device';
  return 'not a regular file';
}

/**
 * Follows `p` if it is a symlink. A loop (ELOOP), a dangling link (ENOENT) or an unreadable entry
 * gives a reason instead of a Stats, so one bad entry is skipped rather than failing the folder.
 */
function statEntry(p: string): Stats | string {
  let st: Stats;
  try {
    st = lstatSync(p);
  } catch (e) {
    return `cannot stat: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`;
  }
  if (!st.isSymbolicLink()) return st;
  try {
    return statSync(p);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ELOOP') return 'symlink loop (ELOOP)';
    if (code === 'ENOENT') return `dangling symlink (its target ${readlinkOr(p)} does not exist)`;
    return `cannot follow symlink: ${code ?? (e as Error).message}`;
  }
}

function readlinkOr(p: string): string {
  try {
    return readlinkSync(p);
  } catch {
    return '?';
  }
}

/**
 * Collects the regular files under `dir` (recursively, hidden names excluded). Entries that are
 * not regular files (FIFOs, sockets, devices: reading a FIFO blocks forever), broken symlinks, and
 * symlinked folders already visited (a cycle) go to `bad` with a reason, unopened.
 */
function walk(dir: string, out: string[], bad: SkippedFile[], seen: Set<string>): void {
  for (const name of readdirSync(dir).sort()) {
    if (name.startsWith('.')) continue;
    const p = join(dir, name);
    const st = statEntry(p);
    if (typeof st === 'string') bad.push({ file: p, reason: st });
    else if (st.isDirectory()) {
      const real = realpathSync(p);
      if (seen.has(real)) bad.push({ file: p, reason: `symlink cycle (a folder already read: ${real})` });
      else {
        seen.add(real);
        walk(p, out, bad, seen);
      }
    } else if (st.isFile()) out.push(p);
    else bad.push({ file: p, reason: `${kindOf(st)}, not a regular file` });
  }
}

/**
 * Reads an image file without blocking: opened non-blocking and checked to be a regular file
 * (the entry could have been swapped for a FIFO since the walk), so a read never hangs.
 */
function readRegularFile(path: string): Uint8Array {
  const fd = openSync(path, constants.O_RDONLY | constants.O_NONBLOCK);
  try {
    const st = fstatSync(fd);
    if (!st.isFile()) throw new Error(`${kindOf(st)}, not a regular file`);
    return new Uint8Array(readFileSync(fd));
  } finally {
    closeSync(fd);
  }
}

export function loadImageFolder(root: string, opts: ImageFolderOptions): ImageFolderResult {
  let st;
  try {
    st = statSync(root);
  } catch {
    throw new Error(`ImageFolder: ${root} does not exist`);
  }
  if (!st.isDirectory()) throw new Error(`ImageFolder: ${root} is not a directory`);
  const exts = new Set((opts.extensions ?? ['.png', '.jpg', '.jpeg']).map((e) => e.toLowerCase()));
  // Entries of root that are not folders (files, broken links) are not classes; a broken link is
  // reported with the skipped entries rather than failing the whole load.
  const bad: SkippedFile[] = [];
  const found = readdirSync(root)
    .filter((n) => {
      if (n.startsWith('.')) return false;
      const s = statEntry(join(root, n));
      if (typeof s === 'string') bad.push({ file: join(root, n), reason: s });
      return typeof s !== 'string' && s.isDirectory();
    })
    .sort();
  const classes = opts.classes ? [...opts.classes] : found;
  for (const c of classes) if (!found.includes(c)) throw new Error(`ImageFolder: class folder ${join(root, c)} does not exist`);
  if (classes.length === 0) throw new Error(`ImageFolder: ${root} has no class subfolders (expected root/<class>/<images>)`);
  const warn = opts.warn ?? ((l: string) => console.warn(l));
  const entries: ImageEntry[] = [];
  const ignored: string[] = [];
  classes.forEach((c, label) => {
    const files: string[] = [];
    // Folders read so far in this class's tree (real paths): a link back up is a cycle.
    walk(join(root, c), files, bad, new Set([realpathSync(join(root, c))]));
    let n = 0;
    for (const f of files) {
      if (!exts.has(extname(f).toLowerCase())) {
        ignored.push(relative(root, f));
        continue;
      }
      entries.push({ name: f, label, bytes: () => readRegularFile(f) });
      n++;
    }
    if (n === 0) warn(`warning: ImageFolder class '${c}' (${join(root, c)}) has no ${[...exts].join('/')} files`);
  });
  if (ignored.length > 0) warn(`warning: ImageFolder ignored ${ignored.length} file(s) without an image extension, e.g. ${ignored.slice(0, 3).join(', ')}`);
  // Entries that are not readable regular files are skipped like undecodable ones (by name, with
  // the reason), or fail the load under onError 'fail'; none of them is opened.
  for (const b of bad) {
    if (opts.onError === 'fail') throw new Error(`ImageFolder: cannot load ${b.file}: ${b.reason}`);
    warn(`warning: ImageFolder skipped ${b.file}: ${b.reason}`);
  }
  const res = buildImageDataset(entries, classes, { ...opts, warn });
  return { ...res, skipped: [...bad, ...res.skipped], classes, ignored };
}
