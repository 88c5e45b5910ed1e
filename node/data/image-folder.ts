/**
 * ImageFolder: root/<class>/<image files>, like torchvision.datasets.ImageFolder. Classes are the
 * subfolder names in sorted order (label = position); files with a .png/.jpg/.jpeg extension
 * (any case, searched recursively inside each class folder) are decoded with the pure-TS codecs
 * and resized to one size. Unreadable or undecodable files are reported by name: skipped with a
 * warning line (default) or the load fails, by `onError`. Node-only (see nn/data/folder.ts for
 * the browser-safe core).
 */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { extname, join, relative } from 'node:path';
import { buildImageDataset, type BuildOptions, type BuildResult, type ImageEntry } from '../../nn/data/folder.js';

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

function walk(dir: string, out: string[]): void {
  for (const name of readdirSync(dir).sort()) {
    if (name.startsWith('.')) continue;
    const p = join(dir, name);
    const st = statSync(p, { throwIfNoEntry: false });
    if (!st) continue;
    if (st.isDirectory()) walk(p, out);
    else out.push(p);
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
  const found = readdirSync(root)
    .filter((n) => !n.startsWith('.') && statSync(join(root, n)).isDirectory())
    .sort();
  const classes = opts.classes ? [...opts.classes] : found;
  for (const c of classes) if (!found.includes(c)) throw new Error(`ImageFolder: class folder ${join(root, c)} does not exist`);
  if (classes.length === 0) throw new Error(`ImageFolder: ${root} has no class subfolders (expected root/<class>/<images>)`);
  const warn = opts.warn ?? ((l: string) => console.warn(l));
  const entries: ImageEntry[] = [];
  const ignored: string[] = [];
  classes.forEach((c, label) => {
    const files: string[] = [];
    walk(join(root, c), files);
    let n = 0;
    for (const f of files) {
      if (!exts.has(extname(f).toLowerCase())) {
        ignored.push(relative(root, f));
        continue;
      }
      entries.push({ name: f, label, bytes: () => new Uint8Array(readFileSync(f)) });
      n++;
    }
    if (n === 0) warn(`warning: ImageFolder class '${c}' (${join(root, c)}) has no ${[...exts].join('/')} files`);
  });
  if (ignored.length > 0) warn(`warning: ImageFolder ignored ${ignored.length} file(s) without an image extension, e.g. ${ignored.slice(0, 3).join(', ')}`);
  const res = buildImageDataset(entries, classes, { ...opts, warn });
  return { ...res, classes, ignored };
}
