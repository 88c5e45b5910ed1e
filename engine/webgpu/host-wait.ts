/**
 * Waiting for the device without taking a CPU core from it.
 *
 * Dawn's Node binding (npm `webgpu`) resolves its promises (mapAsync, onSubmittedWorkDone) by
 * polling: while one is pending it calls `setImmediate` in a loop, each turn processing Dawn's
 * events, so the main thread spins at 100% of a core until the GPU finishes. On a hardware GPU
 * that costs nothing the device needs. On a software adapter (lavapipe) the "GPU" is the CPU's
 * worker threads: on a 2-core machine the spinning main thread takes a third of the CPU from
 * them (bench/host-wait.ts measures it: a 1 s wait ran ~1.3x longer with the spin).
 *
 * `politeWait` therefore replaces the global `setImmediate` while a device wait is pending with
 * one that lets the first few turns through and then defers each turn by a 1 ms timer, so the
 * binding polls about a thousand times a second instead of continuously; waits get at most ~1 ms
 * longer. The binding looks the global up on every turn, so nothing else changes; a binding that
 * captured it earlier just keeps spinning (correct, only slower). Other code's setImmediate calls
 * during such a wait are deferred the same way. Nested and overlapping waits share one
 * replacement (reference-counted); the original is restored when the last one settles.
 */

/** Turns allowed through at full speed at the start of each wait (short waits stay short). */
const EAGER_TURNS = 16;
const POLL_MS = 1;

type Immediate = typeof globalThis.setImmediate;

let active = 0;
let original: Immediate | null = null;
let turns = 0;

function deferred(this: unknown, fn: (...args: unknown[]) => void, ...args: unknown[]): unknown {
  if (turns++ < EAGER_TURNS) return original!.call(globalThis, fn, ...args);
  return setTimeout(fn, POLL_MS, ...args);
}

function begin(): void {
  if (active++ > 0) return;
  original = globalThis.setImmediate;
  turns = 0;
  globalThis.setImmediate = deferred as unknown as Immediate;
}

function end(): void {
  if (--active > 0) return;
  globalThis.setImmediate = original!;
  original = null;
}

/** Whether this runtime has the polling binding to tame (Node; browsers have no setImmediate). */
export function canWaitPolitely(): boolean {
  return typeof globalThis.setImmediate === 'function' && typeof setTimeout === 'function';
}

/**
 * Awaits a device promise; with `polite` (software adapters), with the binding's polling slowed
 * down as described above.
 */
export async function politeWait<T>(p: Promise<T>, polite: boolean): Promise<T> {
  if (!polite || !canWaitPolitely()) return p;
  begin();
  try {
    return await p;
  } finally {
    end();
  }
}
