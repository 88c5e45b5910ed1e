/**
 * Rotary position embedding (used by nn/layers/rope.ts), interleaved-pair convention (LLaMA /
 * LlamaGen): for each pair (x[2i], x[2i+1]) and angle theta_i of the row's position,
 *   y[2i]   = x[2i] cos - x[2i+1] sin
 *   y[2i+1] = x[2i+1] cos + x[2i] sin.
 * The kernel is the elementwise kernel over strided views of x, the table and y: one expression
 * a * c + b * d over the pairs, so no dedicated shader exists.
 */
import { noGrad } from '../grad-mode.js';
import { defineOp, type OpArgs } from '../op.js';
import { tidy } from '../scope.js';
import { broadcastShapes, broadcastStrides, fmtShape, shapesEqual } from '../shape.js';
import { Tensor } from '../tensor.js';
import { elementwiseKernels, type ElementwiseSpec } from './elementwise.js';
import { mul } from './binary.js';
import { concat } from './movement.js';
import { checkOptions } from '../options.js';

const OP = 'rotary_embedding';

/**
 * Packs cos / sin tables [..., L, D/2] into the [..., L, D/2, 4] table (cos, sin, -sin, cos) that
 * `rotaryEmbedding` reads.
 */
export function rotaryTable(cos: Tensor, sin: Tensor): Tensor {
  if (!shapesEqual(cos.shape, sin.shape)) throw new Error(`rotary_table: cos ${fmtShape(cos.shape)} and sin ${fmtShape(sin.shape)} differ`);
  return noGrad(() =>
    tidy(() => {
      const c = cos.reshape([...cos.shape, 1]);
      const s = sin.reshape([...sin.shape, 1]);
      return concat([c, s, mul(s, -1), c], -1);
    }),
  );
}

interface RotaryAttrs {
  /** Rotate by -theta (the gradient). */
  inverse: boolean;
}

const PAIR_SPEC: ElementwiseSpec = { expr: 'a * c + b * d', cpu: (a, b, c, d) => a * c + b * d, outDtype: 'f32' };

/**
 * The elementwise arguments over pairs [..., D/2, 2]: x's first and second elements of each pair,
 * the table's two coefficients for each output element, and y. Forward: A = (cos, sin) at 0/1,
 * B = (-sin, cos) at 2/3. Inverse: A = (cos, -sin) at 0/2, B = (sin, cos) at 1/3.
 */
function pairArgs({ inputs: [x, table], outputs: [y], attrs }: OpArgs<RotaryAttrs>): OpArgs<ElementwiseSpec> {
  const D = x!.shape[x!.rank - 1]!;
  const half = [...x!.shape.slice(0, -1), D / 2];
  const shape = [...half, 2];
  const sD = x!.strides[x!.rank - 1]!;
  const xs = [...x!.strides.slice(0, -1), 2 * sD, 0];
  const tb = broadcastStrides(table!.shape.slice(0, -1), table!.strides.slice(0, -1), half);
  const tl = table!.strides[table!.rank - 1]!;
  const ts = [...tb, attrs.inverse ? 2 * tl : tl];
  return {
    inputs: [
      new Tensor(x!.storage, shape, 'f32', OP, xs, x!.offset),
      new Tensor(x!.storage, shape, 'f32', OP, xs, x!.offset + sD),
      new Tensor(table!.storage, shape, 'f32', OP, ts, table!.offset),
      new Tensor(table!.storage, shape, 'f32', OP, ts, table!.offset + (attrs.inverse ? tl : 2 * tl)),
    ],
    outputs: [new Tensor(y!.storage, shape, 'f32', OP)],
    attrs: PAIR_SPEC,
  };
}

/** Runs an elementwise kernel on the pair views, then frees the views. */
function onPairs(args: OpArgs<RotaryAttrs>, kernel: (a: OpArgs<ElementwiseSpec>) => void): void {
  const pa = pairArgs(args);
  try {
    kernel(pa);
  } finally {
    for (const t of [...pa.inputs, ...pa.outputs]) t.dispose();
  }
}

const rotaryOp = defineOp<RotaryAttrs>({
  name: OP,
  outputs: ([x, table]) => {
    if (x!.dtype !== 'f32' || table!.dtype !== 'f32') throw new TypeError(`${OP}: expected f32 tensors, got ${x!.describe()} and ${table!.describe()}`);
    const D = x!.shape[x!.rank - 1] ?? 0;
    if (x!.rank < 1 || D % 2 !== 0) throw new Error(`${OP}: last dim of x must be even, got shape ${fmtShape(x!.shape)}`);
    if (table!.rank < 2 || table!.shape[table!.rank - 1] !== 4 || table!.shape[table!.rank - 2] !== D / 2) {
      throw new Error(`${OP}: table must be [..., ${D / 2}, 4] (from rotaryTable) for x ${fmtShape(x!.shape)}, got ${fmtShape(table!.shape)}`);
    }
    const half = [...x!.shape.slice(0, -1), D / 2];
    const tLead = table!.shape.slice(0, -1);
    let ok = tLead.length <= half.length;
    if (ok) {
      try {
        ok = shapesEqual(broadcastShapes(tLead, half, OP), half);
      } catch {
        ok = false;
      }
    }
    if (!ok) throw new Error(`${OP}: table ${fmtShape(table!.shape)} does not broadcast to x ${fmtShape(x!.shape)} (pairs ${fmtShape(half)})`);
    return [{ shape: x!.shape, dtype: 'f32' }];
  },
  kernels: {
    cpu: (cpu, args) => onPairs(args, (pa) => elementwiseKernels.cpu!(cpu, pa)),
    webgpu: (gpu, args) => onPairs(args, (pa) => elementwiseKernels.webgpu!(gpu, pa)),
  },
  // The gradient is the inverse rotation (the table is a constant), so gradients of gradients work.
  grad: (g, { inputs: [, table], attrs }) => [rotaryEmbedding(g, table!, { inverse: !attrs.inverse }), null],
  nondiff: [1],
});

/**
 * Rotary embedding of x with the packed [..., L, D/2, 4] table from `rotaryTable` (broadcast
 * against x's [..., L, D/2]); `{ inverse: true }` rotates by -theta. Differentiable in x.
 */
export function rotaryEmbedding(x: Tensor, table: Tensor, opts: { inverse?: boolean } = {}): Tensor {
  const { inverse = false } = checkOptions('rotary_embedding', opts, ['inverse']);
  return rotaryOp([x, table], { inverse })[0]!;
}
