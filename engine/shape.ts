/** Shape arithmetic shared by every op: sizes, strides, broadcasting and axis normalization. */
export type Shape = readonly number[];

export function sizeOf(shape: Shape): number {
  let n = 1;
  for (let i = 0; i < shape.length; i++) n *= shape[i]!;
  return n;
}

export function contiguousStrides(shape: Shape): number[] {
  const strides = new Array<number>(shape.length);
  let s = 1;
  for (let i = shape.length - 1; i >= 0; i--) {
    strides[i] = s;
    s *= shape[i]!;
  }
  return strides;
}

export function shapesEqual(a: Shape, b: Shape): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

export function fmtShape(shape: Shape): string {
  return `[${shape.join(', ')}]`;
}

export function checkShape(shape: Shape, where: string): number[] {
  if (!Array.isArray(shape)) throw new TypeError(`${where}: shape must be an array of integers, got ${String(shape)}`);
  for (const d of shape) {
    if (!Number.isInteger(d) || d < 0) throw new RangeError(`${where}: invalid shape ${fmtShape(shape)} (dims must be integers >= 0)`);
  }
  return [...shape];
}

/** NumPy broadcasting of two shapes; the error names the op and both shapes. */
export function broadcastShapes(a: Shape, b: Shape, op: string): number[] {
  const n = Math.max(a.length, b.length);
  const out = new Array<number>(n);
  for (let i = 0; i < n; i++) {
    const da = a[a.length - n + i] ?? 1;
    const db = b[b.length - n + i] ?? 1;
    if (da !== db && da !== 1 && db !== 1) {
      throw new Error(`${op}: shapes ${fmtShape(a)} and ${fmtShape(b)} cannot be broadcast together (dim ${i}: ${da} vs ${db})`);
    }
    out[i] = da === 1 ? db : da;
  }
  return out;
}

/** Normalizes a possibly negative axis; names the op and the shape when out of range. */
export function normAxis(axis: number, rank: number, op: string): number {
  if (!Number.isInteger(axis) || axis < -rank || axis >= rank) {
    throw new RangeError(`${op}: axis ${axis} is out of range for a tensor of rank ${rank}`);
  }
  return axis < 0 ? axis + rank : axis;
}

/** Sorted, de-duplicated, non-negative axes. `undefined` means all axes. */
export function normAxes(axes: number | readonly number[] | undefined, rank: number, op: string): number[] {
  if (axes === undefined) return Array.from({ length: rank }, (_, i) => i);
  const list = typeof axes === 'number' ? [axes] : [...axes];
  const out = [...new Set(list.map((a) => normAxis(a, rank, op)))].sort((x, y) => x - y);
  if (out.length !== list.length) throw new Error(`${op}: repeated axis in ${JSON.stringify(axes)}`);
  return out;
}

/** Shape after reducing `axes`, keeping them as size 1 when keepdim. */
export function reducedShape(shape: Shape, axes: readonly number[], keepdim: boolean): number[] {
  const out: number[] = [];
  shape.forEach((d, i) => {
    if (axes.includes(i)) {
      if (keepdim) out.push(1);
    } else out.push(d);
  });
  return out;
}

/**
 * Merges adjacent dims that are contiguous with each other in every stride list, so kernels
 * index fewer dims. Size-1 dims are dropped. Returns at least rank 1.
 */
export function collapseDims(shape: Shape, stridesList: readonly (readonly number[])[]): { shape: number[]; strides: number[][] } {
  // Runs for most dispatches: plain loops, no closures.
  const L = stridesList.length;
  const dims: number[] = [];
  const strides: number[][] = new Array<number[]>(L);
  for (let k = 0; k < L; k++) strides[k] = [];
  for (let i = 0; i < shape.length; i++) {
    const d = shape[i]!;
    if (d === 1) continue;
    const last = dims.length - 1;
    let merge = last >= 0;
    for (let k = 0; merge && k < L; k++) merge = strides[k]![last] === stridesList[k]![i]! * d;
    if (merge) {
      dims[last]! *= d;
      for (let k = 0; k < L; k++) strides[k]![last] = stridesList[k]![i]!;
    } else {
      dims.push(d);
      for (let k = 0; k < L; k++) strides[k]!.push(stridesList[k]![i]!);
    }
  }
  if (dims.length === 0) {
    for (let k = 0; k < L; k++) strides[k] = [1];
    return { shape: [1], strides };
  }
  return { shape: dims, strides };
}

/** Strides for viewing a tensor of `shape`/`strides` broadcast to `target` (0 on expanded dims). */
export function broadcastStrides(shape: Shape, strides: readonly number[], target: Shape): number[] {
  const out = new Array<number>(target.length).fill(0);
  const off = target.length - shape.length;
  for (let i = 0; i < shape.length; i++) out[off + i] = shape[i] === 1 ? 0 : strides[i]!;
  return out;
}
