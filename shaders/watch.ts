/**
 * The training loop's per-step watch (node/finite-watch.ts) in one dispatch per 7 terms: folds a
 * step's loss terms and gradient norm into the kept state buffer, with no readback.
 *
 * State (f32): [0] alive (1 until the first step with a non-finite loss sum or gradient norm),
 * [1] clean steps in the window, [2] what went bad first (1 loss, 2 gradient norm), [3] the step's
 * partial loss sum (across dispatches), [4] the step's gradient norm (0 without one), [5..7]
 * unused; then WATCH_MAX_TERMS values of the latest step's terms, then one gradient norm per step
 * of the window (up to `cap`).
 *
 * The test is |x| <= FLT_MAX, false for NaN and either infinity. WGSL lets a compiler assume no
 * NaN or Inf, so a driver may fold it to true: the loop also checks the values it reads.
 */
import { defineKernel, read, rw, type BindingDecls } from '../engine/kernel.js';

export const WATCH_HEADER = 8;
export const WATCH_MAX_TERMS = 32;
/** Terms per dispatch: the state plus 7 inputs fit WebGPU's default 8 storage buffers per stage. */
export const WATCH_TERMS_PER_DISPATCH = 7;
/** No term of this dispatch is the gradient norm. */
export const WATCH_NO_NORM = 0xffffffff;

export const watchKernel = defineKernel<{ n: number }>({
  name: 'finite_watch',
  key: (v) => String(v.n),
  signature: (v) => {
    const bindings: Record<string, ReturnType<typeof read>> = { state: rw() };
    for (let k = 0; k < v.n; k++) bindings[`t${k}`] = read();
    return {
      params: { first: 'u32', last: 'u32', reset: 'u32', term_base: 'u32', norm_slot: 'u32', slot: 'u32', cap: 'u32', off: ['u32', v.n] },
      bindings: bindings as BindingDecls,
    };
  },
  body: (v) => `
const FMAX = 3.4028234663852886e38;

@compute @workgroup_size(1)
fn main() {
  if (P.first == 1u) {
    if (P.reset == 1u) {
      state[0] = 1.0;
      state[1] = 0.0;
      state[2] = 0.0;
    }
    state[3] = 0.0;
    state[4] = 0.0;
  }
  var acc = state[3];
  ${Array.from({ length: v.n }, (_, k) => `{
    let x = t${k}[P.off_${k}];
    state[${WATCH_HEADER}u + P.term_base + ${k}u] = x;
    if (P.norm_slot == ${k}u) { state[4] = x; } else { acc += x; }
  }`).join('\n  ')}
  state[3] = acc;
  if (P.last == 1u) {
    let okLoss = abs(acc) <= FMAX;
    let okNorm = abs(state[4]) <= FMAX;
    let was = state[0];
    let now = select(0.0, was, okLoss && okNorm);
    if (was == 1.0 && now == 0.0) { state[2] = select(2.0, 1.0, !okLoss); }
    state[0] = now;
    state[1] = state[1] + now;
    if (P.slot < P.cap) { state[${WATCH_HEADER + WATCH_MAX_TERMS}u + P.slot] = state[4]; }
  }
}
`,
});
