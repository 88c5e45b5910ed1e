/** webgpu-tok itself, on Dawn through the Node entry. */
import type { Case, Lib, OverheadCase } from '../common.js';
import type { WebGPUBackend } from '../../engine/index.js';

type Engine = typeof import('../../node/index.js');

export function makeOurs(eng: Engine, backend: WebGPUBackend, version: string): Lib {
  const opts = { backend };
  const sync = () => backend.sync();
  return {
    id: 'ours',
    label: `webgpu-tok ${version}`,
    adapter: backend.name,

    async matmul(a, b, n) {
      const mm = eng.matmul;
      const ta = eng.tensor(a, [n, n], opts);
      const tb = eng.tensor(b, [n, n], opts);
      await sync();
      return {
        async batch(reps) {
          for (let r = 0; r < reps; r++) mm(ta, tb).dispose();
          await sync();
        },
        async result() {
          const c = mm(ta, tb);
          const d = await eng.readContiguous(c);
          c.dispose();
          return Float32Array.from(d);
        },
        dispose() {
          ta.dispose();
          tb.dispose();
        },
      } satisfies Case;
    },

    async add(a, b) {
      const ta = eng.tensor(a, [a.length], opts);
      const tb = eng.tensor(b, [b.length], opts);
      await sync();
      return {
        async batch(reps) {
          for (let r = 0; r < reps; r++) eng.add(ta, tb).dispose();
          await sync();
        },
        async result() {
          const c = eng.add(ta, tb);
          const d = await eng.readContiguous(c);
          c.dispose();
          return Float32Array.from(d);
        },
        dispose() {
          ta.dispose();
          tb.dispose();
        },
      } satisfies Case;
    },

    async overhead(x) {
      const tx = eng.tensor(x, [x.length], opts);
      await sync();
      let perOp: number | undefined;
      return {
        record(count) {
          const d0 = backend.counters.dispatches;
          for (let i = 0; i < count; i++) eng.add(tx, tx).dispose();
          backend.flush();
          perOp = (backend.counters.dispatches - d0) / count;
        },
        sync,
        dispatchesPerOp: () => perOp,
        dispose() {
          tx.dispose();
        },
      } satisfies OverheadCase;
    },
  };
}
