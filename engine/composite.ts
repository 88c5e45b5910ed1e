/**
 * Ops composed of other ops create intermediates. When no gradient is being recorded nothing can
 * refer to them afterwards, so they are freed at once; when recording, the tape refers to them and
 * the caller's tidy scope frees them after backward.
 */
import { isGradEnabled } from './grad-mode.js';
import { tidy } from './scope.js';
import type { Tensor } from './tensor.js';

export function composite<T>(inputs: readonly (Tensor | null | undefined)[], fn: () => T): T {
  if (isGradEnabled() && inputs.some((t) => t?.requiresGrad)) return fn();
  return tidy(fn);
}
