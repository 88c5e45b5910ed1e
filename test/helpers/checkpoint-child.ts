/**
 * Child process for the atomic-write fault tests in test/checkpoint.test.ts:
 *
 *   node --import tsx test/helpers/checkpoint-child.ts <path> <mode> <elementsPerTensor> <version>
 *
 * Saves 4 f32 tensors of `elementsPerTensor` elements filled with version + tensor index, and
 * metadata {version}, over `path` with saveCheckpoint. Modes:
 *   hang    after the header and the first tensor are in the temp file, print "PARTIAL <tmp>" and
 *           wait forever (the parent SIGKILLs it)
 *   kill    SIGKILL itself after the temp file is complete and fsynced, just before the rename
 *   plain   no hooks; print "DONE" when saved (the parent may kill it at any moment)
 */
import { CpuBackend } from '../../engine/cpu/backend.js';
import { Tensor } from '../../engine/tensor.js';
import { saveCheckpoint, type AtomicWriteHooks } from '../../node/checkpoint.js';

const [path, mode, nArg, versionArg] = process.argv.slice(2);
if (!path || !mode || !nArg || !versionArg) throw new Error('usage: checkpoint-child.ts <path> <hang|kill|plain> <elementsPerTensor> <version>');
const n = Number(nArg);
const version = Number(versionArg);
const backend = new CpuBackend({ precision: 'f32' });
const record: Record<string, Tensor> = {};
for (let i = 0; i < 4; i++) record[`w${i}`] = new Tensor(backend.wrap(new Float32Array(n).fill(version + i)), [n], 'f32', 'child');

const hooks: AtomicWriteHooks = {};
if (mode === 'hang') {
  hooks.afterChunk = async (index, tmp) => {
    if (index !== 1) return;
    process.stdout.write(`PARTIAL ${tmp}\n`);
    await new Promise(() => setInterval(() => {}, 1000));
  };
} else if (mode === 'kill') {
  hooks.beforeRename = () => {
    process.stdout.write('KILLING\n');
    process.kill(process.pid, 'SIGKILL');
  };
} else if (mode !== 'plain') {
  throw new Error(`unknown mode ${mode}`);
}

process.stdout.write('START\n');
await saveCheckpoint(path, record, { version: String(version) }, { hooks });
process.stdout.write('DONE\n');
