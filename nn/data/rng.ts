/**
 * Counter-based randomness for the data pipeline, from the engine's Philox4x32-10. Every draw is a
 * pure function of (seed, stream tag, epoch, index), so a loader's whole random state is
 * {seed, epoch, position}: saving and restoring it resumes the exact same order and flips.
 */
import { philox4x32 } from '../../engine/random.js';

/** Stream tags: independent random streams for the same seed. */
export const STREAM = { shuffle: 1, flip: 2, split: 3 } as const;

function seedKey(seed: number): [number, number] {
  if (!Number.isSafeInteger(seed) || seed < 0) throw new TypeError(`data seed must be a non-negative safe integer, got ${seed}`);
  return [seed >>> 0, Math.floor(seed / 0x100000000) >>> 0];
}

/** u32 words start .. start + n - 1 of the stream (seed, tag, epoch). */
export function randomWords(seed: number, tag: number, epoch: number, start: number, n: number): Uint32Array {
  const key = seedKey(seed);
  const out = new Uint32Array(n);
  let block = -1;
  let words: number[] = [];
  for (let i = 0; i < n; i++) {
    const w = start + i;
    const b = Math.floor(w / 4);
    if (b !== block) {
      block = b;
      words = philox4x32([b >>> 0, epoch >>> 0, tag >>> 0, Math.floor(b / 0x100000000) >>> 0], key);
    }
    out[i] = words[w & 3]!;
  }
  return out;
}

/** A seeded permutation of 0..n-1 (Fisher-Yates; j = floor(u32 * (i + 1) / 2^32), bias < n / 2^32). */
export function permutation(n: number, seed: number, tag: number, epoch = 0): Int32Array {
  const p = new Int32Array(n);
  for (let i = 0; i < n; i++) p[i] = i;
  const r = randomWords(seed, tag, epoch, 0, n);
  for (let i = n - 1; i > 0; i--) {
    const j = Math.floor((r[i]! * (i + 1)) / 0x100000000);
    const t = p[i]!;
    p[i] = p[j]!;
    p[j] = t;
  }
  return p;
}
