/**
 * Leak check: runs a (possibly async) function and asserts that it leaves the engine's live
 * tensors and live bytes (memoryStats) as they were, apart from the tensors it returns (found as
 * tidy finds them: the value itself, or inside arrays, plain objects and Maps), which the caller
 * then owns. Run the code once before checking when its first call fills caches on purpose.
 */
import { expect } from 'vitest';
import * as E from '../../engine/index.js';
import { tensorsIn } from '../../engine/scope.js';

/** Bytes of the storages held only by `ts` (the storage a returned view shares with an older tensor was counted before). */
function ownedBytes(ts: Set<E.Tensor>): number {
  const handles = new Map<E.Storage, number>();
  for (const t of ts) if (!t.isDisposed) handles.set(t.storage, (handles.get(t.storage) ?? 0) + 1);
  let bytes = 0;
  for (const [s, n] of handles) if (s.refs === n) bytes += s.byteSize;
  return bytes;
}

export async function expectNoLeaks<T>(fn: () => T | Promise<T>, what = 'the checked code'): Promise<T> {
  const before = E.memoryStats();
  const firstNew = E.tensor([0], [1], { backend: E.cpuF64 });
  const newFrom = firstNew.id;
  firstNew.dispose();
  const result = await fn();
  const returned = new Set([...tensorsIn(result)].filter((t) => !t.isDisposed && t.id > newFrom));
  const after = E.memoryStats();
  expect(after.liveTensors - before.liveTensors, `${what}: live tensors after minus before (${returned.size} returned)`).toBe(returned.size);
  expect(after.liveBytes - before.liveBytes, `${what}: live bytes after minus before`).toBe(ownedBytes(returned));
  return result;
}
