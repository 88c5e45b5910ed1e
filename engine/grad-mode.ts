/** Whether ops record onto the autodiff tape, and the one function that records. */
import type { GradNode, Tensor } from './tensor.js';

let enabled = true;

export function isGradEnabled(): boolean {
  return enabled;
}

function withMode<T>(mode: boolean, fn: () => T): T {
  const prev = enabled;
  enabled = mode;
  try {
    return fn();
  } finally {
    enabled = prev;
  }
}

/** Runs `fn` without recording gradients (like torch.no_grad). */
export function noGrad<T>(fn: () => T): T {
  return withMode(false, fn);
}

export function enableGrad<T>(fn: () => T): T {
  return withMode(true, fn);
}

/** @internal used by autograd to run backward with or without building a graph. */
export function withGradMode<T>(mode: boolean, fn: () => T): T {
  return withMode(mode, fn);
}

/**
 * Attaches a tape node to `out` when recording is on and some input requires a gradient.
 * `backward` receives the output gradient and returns one gradient per input.
 */
export function record(out: Tensor, op: string, inputs: Tensor[], backward: GradNode['backward'], accumulates?: readonly number[]): Tensor {
  if (enabled && inputs.some((t) => t.requiresGrad)) {
    out.requiresGrad = true;
    out.node = { op, inputs, backward, needsGrad: inputs.map((t) => t.requiresGrad), ...(accumulates ? { accumulates } : {}) };
  }
  return out;
}
