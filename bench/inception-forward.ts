/**
 * Forward time of the FID Inception-v3 feature network (models/features/inception.ts) at full
 * width: `npx tsx bench/inception-forward.ts [batch=8] [runs=2] [inputSize=32]`.
 * Random weights (timing does not depend on them); input [batch, 3, s, s] resized to 299x299.
 * The first run includes shader compilation. Prints ms per run, per image, and the dispatch and
 * submit counts of the last run.
 */
import { getDevice, rand, WebGPUBackend } from '../node/index.js';
import { InceptionV3 } from '../models/features/inception.js';

const batch = Number(process.argv[2] ?? 8);
const runs = Number(process.argv[3] ?? 2);
const size = Number(process.argv[4] ?? 32);
const backend = await getDevice({ setDefault: false, quiet: true });
const name = backend instanceof WebGPUBackend ? backend.info.device : backend.name;
console.log(`device: ${name}`);
const model = new InceptionV3({ backend });
const x = rand([batch, 3, size, size], { backend });
console.log(`${model.summary()}; batch ${batch} split into chunks of ${model.batchChunk(x)}`);
for (let r = 0; r < runs; r++) {
  const c0 = backend instanceof WebGPUBackend ? { ...backend.counters } : null;
  const t0 = performance.now();
  const f = model.features(x);
  await f.toArray();
  const ms = performance.now() - t0;
  const counts = c0 && backend instanceof WebGPUBackend ? `, ${backend.counters.dispatches - c0.dispatches} dispatches, ${backend.counters.submits - c0.submits} submits` : '';
  console.log(`run ${r}${r === 0 ? ' (incl. compile)' : ''}: ${ms.toFixed(0)} ms, ${(ms / batch).toFixed(0)} ms/image${counts}`);
  f.dispose();
}
x.dispose();
model.dispose();
