/**
 * What the device wait costs the device: the same GPU work (a chain of 1024x1024 matmuls, about a
 * second on lavapipe) awaited with the Node binding's polling as it is (spinning) and slowed down
 * (engine/webgpu/host-wait.ts), alternating, with the CPU time of every thread of the process
 * (Linux /proc) during each wait.
 *
 *   npx tsx bench/host-wait.ts            (ROUNDS=3, CHAIN=10)
 */
import { readdirSync, readFileSync } from 'node:fs';
import * as E from '../node/index.js';

const backend = (await E.getDevice({ setDefault: true, requireWebGPU: true, quiet: true })) as E.WebGPUBackend;
const rounds = Number(process.env.ROUNDS ?? 3);
const chain = Number(process.env.CHAIN ?? 10);

/** CPU ticks (1/100 s) per thread id; empty where /proc is missing. */
function threadTicks(): Map<string, number> {
  const r = new Map<string, number>();
  try {
    for (const id of readdirSync('/proc/self/task')) {
      const st = readFileSync(`/proc/self/task/${id}/stat`, 'utf8').split(') ')[1]!.split(' ');
      r.set(id, Number(st[11]) + Number(st[12]));
    }
  } catch {
    /* not Linux */
  }
  return r;
}

const a = E.rand([1024, 1024], { backend, generator: new E.Generator(0) });
const mainId = String(process.pid);
console.log(`${backend.name}: ${chain} chained 1024x1024 matmuls per wait, ${rounds} rounds`);
for (let r = 0; r < rounds; r++) {
  for (const polite of [false, true]) {
    const restore = backend.tune({ host: { politeWait: polite } });
    let y = a;
    for (let i = 0; i < chain; i++) {
      const next = E.matmul(y, a);
      if (y !== a) y.dispose();
      y = next;
    }
    const t0 = threadTicks();
    const w0 = performance.now();
    await backend.sync();
    const ms = performance.now() - w0;
    const t1 = threadTicks();
    restore();
    let main = 0;
    let others = 0;
    for (const [id, v] of t1) {
      const d = v - (t0.get(id) ?? 0);
      if (id === mainId) main += d;
      else others += d;
    }
    console.log(`${polite ? 'polite  ' : 'spinning'} wait ${ms.toFixed(0).padStart(5)} ms   CPU: main thread ${(main * 10).toFixed(0).padStart(5)} ms, other threads ${(others * 10).toFixed(0).padStart(5)} ms`);
    y.dispose();
  }
}
