/**
 * Ops composed of other ops run their body in a composite scope (engine/scope.ts): without a
 * recorded result the intermediates are freed at once; with one, the tape refers to them and they
 * move to the caller's scope, which frees them after backward.
 */
import { composite as compositeScope } from './scope.js';
import type { Tensor } from './tensor.js';

/** `composite(fn)`; the ops' form also names the inputs, which the rule does not need. */
export function composite<T>(fn: () => T): T;
export function composite<T>(inputs: readonly (Tensor | null | undefined)[], fn: () => T): T;
export function composite<T>(a: readonly (Tensor | null | undefined)[] | (() => T), b?: () => T): T {
  return compositeScope(typeof a === 'function' ? a : b!);
}
