/** Strided iteration for the CPU reference: visits output elements in row-major order. */
import type { Tensor } from '../tensor.js';
import { sizeOf } from '../shape.js';
import { CpuStorage, type CpuArray } from './backend.js';

/**
 * Calls `fn(i, offsets)` for every element of `shape`, where offsets[k] is the element offset of
 * input k (given per-input strides and base offsets). An odometer avoids a division per element.
 */
export function forEachStrided(shape: readonly number[], strides: readonly (readonly number[])[], bases: readonly number[], fn: (i: number, offs: number[]) => void): void {
  const n = sizeOf(shape);
  if (n === 0) return;
  const rank = shape.length;
  const idx = new Array<number>(rank).fill(0);
  const offs = [...bases];
  for (let i = 0; i < n; i++) {
    fn(i, offs);
    for (let d = rank - 1; d >= 0; d--) {
      idx[d]!++;
      for (let k = 0; k < offs.length; k++) offs[k]! += strides[k]![d]!;
      if (idx[d]! < shape[d]!) break;
      for (let k = 0; k < offs.length; k++) offs[k]! -= strides[k]![d]! * shape[d]!;
      idx[d] = 0;
    }
  }
}

/** The typed array behind a CPU tensor. */
export function cpuData(t: Tensor): CpuArray {
  return (t.storage as CpuStorage).data;
}

/** The elements of a CPU tensor in logical row-major order (a copy only when it is a strided view). */
export function cpuContiguous(t: Tensor): CpuArray {
  const data = cpuData(t);
  if (t.isContiguous) return t.offset === 0 && data.length === t.size ? data : data.subarray(t.offset, t.offset + t.size);
  const out = new (data.constructor as { new (n: number): CpuArray })(t.size);
  forEachStrided(t.shape, [t.strides], [t.offset], (i, o) => (out[i] = data[o[0]!]!));
  return out;
}
