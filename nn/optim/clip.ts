/** Gradient clipping by global norm (torch.nn.utils.clip_grad_norm_), computed on the device without readback. */
import * as E from '../../engine/index.js';
import { elementwise } from '../../engine/ops/elementwise.js';
import { normalizeParams, type ParamList } from './optimizer.js';

function gradsOf(params: ParamList): { params: E.Tensor[]; grads: E.Tensor[] } {
  const ps = [...new Set(normalizeParams(params, 'clipGradNorm').params)].filter((p) => p.grad);
  return { params: ps, grads: ps.map((p) => p.grad!) };
}

/**
 * The norm of all gradients together (2 or Infinity), as a 0-d tensor on the device. Parameters
 * without a gradient are ignored; with none at all the result is 0 (on the default backend, or the
 * first parameter's).
 */
export function gradNorm(params: ParamList, normType = 2): E.Tensor {
  const list = [...normalizeParams(params, 'gradNorm').params];
  const { grads } = gradsOf(list);
  return E.totalNorm(grads, normType, { backend: list[0]?.backend ?? E.getBackend() });
}

/**
 * Scales all gradients in place so their total norm is at most `maxNorm`:
 * g *= min(1, maxNorm / (norm + 1e-6)), and returns the total norm before clipping as a 0-d
 * tensor. Nothing is read back: the coefficient is computed on the device (2 dispatches per
 * gradient plus one). A gradient that is a strided view or shares memory with another gradient
 * (e.g. the same tensor given to two parameters by backward) is first replaced by its own copy.
 */
export function clipGradNorm(params: ParamList, maxNorm: number, normType = 2): E.Tensor {
  if (!(maxNorm >= 0)) throw new RangeError(`clipGradNorm: maxNorm must be >= 0, got ${maxNorm}`);
  const list = [...normalizeParams(params, 'clipGradNorm').params];
  const { params: ps } = gradsOf(list);
  // Give every gradient exclusive contiguous storage so in-place scaling touches it exactly once.
  const seen = new Set<unknown>();
  for (const p of ps) {
    const g = p.grad!;
    if (!g.isContiguous || g.storage.refs > 1 || seen.has(g.storage)) {
      const c = E.keep(elementwise('clipGradNorm', [g], { expr: 'a', cpu: (a) => a, outDtype: 'f32' }));
      p.grad = c;
      // A gradient is kept state of its parameter: free the replaced one unless another parameter still holds it.
      if (!ps.some((q) => q.grad === g)) g.dispose();
    }
    seen.add(p.grad!.storage);
  }
  const grads = ps.map((p) => p.grad!);
  const norm = E.totalNorm(grads, normType, { backend: list[0]?.backend ?? E.getBackend() });
  E.clipByNorm(grads, norm, maxNorm);
  return norm;
}
