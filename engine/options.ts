/**
 * Options objects of the public ops. A positional value where the options belong would otherwise
 * read as "no options" (`variance(x, 1, false, 0)` silently keeps correction 1; a weight tensor
 * passed to `layerNorm` where `{ weight }` goes silently drops the affine), and a misspelled or
 * PyTorch-named key (`{ unbiased: false }` for `{ correction: 0 }`) would be ignored: both throw,
 * naming the op.
 */
import { isTensor } from './tensor.js';

function describeValue(v: unknown): string {
  if (isTensor(v)) return `a tensor ${v.describe()}`;
  if (Array.isArray(v)) return `an array [${v.join(', ')}]`;
  return typeof v === 'string' ? `'${v}'` : String(v);
}

/** Returns `opts` after checking it is a plain options object with only the listed keys. */
export function checkOptions<T extends object>(op: string, opts: T, keys: readonly (keyof T & string)[]): T {
  if (typeof opts !== 'object' || opts === null || Array.isArray(opts) || isTensor(opts)) {
    throw new TypeError(`${op}: expected an options object { ${keys.join(', ')} }, got ${describeValue(opts)}`);
  }
  for (const k in opts) {
    if (!(keys as readonly string[]).includes(k)) throw new TypeError(`${op}: unknown option '${k}' (expected ${keys.join(', ')})`);
  }
  return opts;
}
