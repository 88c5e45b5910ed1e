/**
 * Ops composed of other ops run their body in a scope (engine/scope.ts): without a recorded result
 * the intermediates are freed at once; with one, the tape refers to them and they move to the
 * caller's scope, which frees them after backward.
 */
import { tidy } from './scope.js';
import type { Tensor } from './tensor.js';

/** `tidy(fn)` for an op's body; `inputs` is accepted for the ops' call sites and not needed by the rule. */
export function composite<T>(_inputs: readonly (Tensor | null | undefined)[], fn: () => T): T {
  return tidy(fn);
}
