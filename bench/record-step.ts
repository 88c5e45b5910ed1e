/**
 * The host side of a training step: how much JavaScript (and Dawn encoding) it takes to record
 * one step of the default VQ tokenizer (or of bench:train's GPT), and what it creates per step, as numbers a loaded
 * machine does not distort much: CPU time of the recording (process CPU, while the GPU is idle:
 * every step is awaited before the next is recorded), and counts per step (dispatches;
 * pipelines, bind groups and buffers created) and sampled allocations per dispatch.
 *
 *   nice -n 19 npx tsx bench/record-step.ts                     (batch 1, 20 steps)
 *   BATCH=8 STEPS=40 ... ; PROFILE=/tmp/rec.cpuprofile ... writes a CPU profile of the steps and
 *   prints the recording's self time by file and by function (sample counts, not durations).
 *   CAPTURE=1 ... runs the step through E.captureStep (replayed once captured) and says how it ran.
 *   MODEL=gpt BATCH=8 ... the GPT of bench:train (d 384, 6 layers) instead of the tokenizer.
 *   ALLOC_TOP=30 ... lists the 30 functions that allocate the most bytes (sampled) in those steps.
 *
 * Wall time on a shared machine is mostly other processes; compare CPU times and the profile's
 * proportions between two versions measured the same way, and counts anywhere.
 */
import { writeFileSync } from 'node:fs';
import { Session } from 'node:inspector/promises';
import * as E from '../node/index.js';
import { AdamW } from '../nn/index.js';
import { tokenizerStepKey, tokenizerTrainStep, VQTokenizer } from '../models/tokenizer/index.js';
import { gptReference } from './gpt-reference.js';

const backend = (await E.getDevice({ setDefault: true, requireWebGPU: true, quiet: true })) as E.WebGPUBackend;
const B = Number(process.env.BATCH ?? 1);
const N = Number(process.env.STEPS ?? 20);
const profilePath = process.env.PROFILE;

// Buffers and bind groups Dawn is asked for (the backend's counters see only its own caches).
const created = { buffers: 0, bindGroups: 0 };
const device = backend.device;
const createBuffer = device.createBuffer.bind(device);
device.createBuffer = (d) => (created.buffers++, createBuffer(d));
const createBindGroup = device.createBindGroup.bind(device);
device.createBindGroup = (d) => (created.bindGroups++, createBindGroup(d));

const gpt = process.env.MODEL === 'gpt';
let current = 0;
/** One step's recording; returns the step's outputs (the first one is awaited). */
let record: () => E.Tensor[];
/** The function whose samples count as the recording in the CPU profile. */
let root: string;
/** How the captured step ran, when CAPTURE=1. */
let captured: { mode: string; reason?: string | null; stats: unknown } | null = null;
if (gpt) {
  const ref = gptReference(backend, B);
  const c = process.env.CAPTURE === '1' ? E.captureStep(ref.step) : null;
  captured = c;
  record = () => [(c ?? ref.step)()];
  root = 'step';
} else {
  const model = new VQTokenizer({ perturbation: 'paper' }, { backend, generator: new E.Generator(0) });
  const opt = new AdamW(model.parameters(), { lr: 1e-4, betas: [0.5, 0.9] });
  const x = E.rand([B, 1, 32, 32], { backend, generator: new E.Generator(1), low: -1, high: 1 });
  const eagerStep = (xb: E.Tensor) => E.tidy(() => tokenizerTrainStep(model, opt, xb, { step: current, totalSteps: 1000 }));
  const c = process.env.CAPTURE === '1' ? E.captureStep(eagerStep, { key: () => tokenizerStepKey({ step: current, totalSteps: 1000 }) }) : null;
  captured = c;
  record = () => {
    const terms = (c ?? eagerStep)(x);
    return [terms.total!, ...Object.values(terms).filter((t) => t !== terms.total)];
  };
  root = 'tokenizerTrainStep';
}

/** Records step s (timed), then waits for it; returns the recording's CPU and wall ms. */
async function step(s: number): Promise<{ cpu: number; wall: number }> {
  const c0 = process.cpuUsage();
  const t0 = performance.now();
  current = s;
  const outs = record();
  const wall = performance.now() - t0;
  const c = process.cpuUsage(c0);
  await outs[0]!.item();
  for (const t of outs) t.dispose();
  return { cpu: (c.user + c.system) / 1000, wall };
}

const median = (v: number[]) => [...v].sort((a, b) => a - b)[v.length >> 1]!;
let s = 0;
while (s < 8) await step(++s); // pipelines compile, the pool settles, bind groups are cached
const c0 = { ...backend.counters, ...created };
const times: { cpu: number; wall: number }[] = [];
for (let i = 0; i < N; i++) times.push(await step(++s));
// Counts over the timed steps only (the sampled steps below run as many again).
const c1 = { ...backend.counters, ...created };
const per = (k: keyof typeof c0) => (c1[k] - c0[k]) / N;
const dispatches = per('dispatches');

const session = new Session();
session.connect();
await session.post('HeapProfiler.enable');
await session.post('HeapProfiler.startSampling', { samplingInterval: 256, includeObjectsCollectedByMajorGC: true, includeObjectsCollectedByMinorGC: true });
const d0 = backend.counters.dispatches;
if (profilePath) {
  await session.post('Profiler.enable');
  await session.post('Profiler.setSamplingInterval', { interval: 100 });
  await session.post('Profiler.start');
}
for (let i = 0; i < N; i++) await step(++s);
const heap = (await session.post('HeapProfiler.stopSampling')).profile;
let allocated = 0;
const walk = (n: { selfSize: number; children: unknown[] }): void => {
  allocated += n.selfSize;
  for (const c of n.children) walk(c as typeof n);
};
walk(heap.head);
if (process.env.ALLOC_TOP) {
  // Self bytes by allocating function (sampled), the largest first.
  const by = new Map<string, number>();
  const visit = (n: { selfSize: number; callFrame: { functionName: string; url: string; lineNumber: number }; children: unknown[] }): void => {
    const k = `${n.callFrame.functionName || '(anonymous)'} ${n.callFrame.url.replace(/^.*?\/(engine|nn|models|shaders|bench)\//, '$1/')}:${n.callFrame.lineNumber + 1}`;
    by.set(k, (by.get(k) ?? 0) + n.selfSize);
    for (const c of n.children) visit(c as typeof n);
  };
  visit(heap.head as never);
  for (const [k, v] of [...by].sort((a, b) => b[1] - a[1]).slice(0, Number(process.env.ALLOC_TOP))) console.log(`${((100 * v) / allocated).toFixed(1).padStart(6)}%  ${k}`);
}

if (captured) console.log(`captureStep: last step ${captured.mode}${captured.reason ? ` (${captured.reason})` : ''}; ${JSON.stringify(captured.stats)}`);
console.log(`${gpt ? 'GPT' : 'tokenizer'} step, batch ${B}, ${backend.name}: recording ${median(times.map((t) => t.cpu)).toFixed(1)} ms CPU (median of ${N}; mean ${(times.reduce((a, t) => a + t.cpu, 0) / N).toFixed(1)}), ${median(times.map((t) => t.wall)).toFixed(1)} ms wall`);
console.log(`per step: ${dispatches} dispatches, ${per('submits')} submits; created ${per('pipelines')} pipelines, ${per('bindGroups')} bind groups, ${per('buffers')} buffers (1 is the readback's staging buffer); ~${Math.round(allocated / (backend.counters.dispatches - d0))} bytes allocated per dispatch (sampled)`);

if (profilePath) {
  const { profile } = await session.post('Profiler.stop');
  writeFileSync(profilePath, JSON.stringify(profile));
  selfTime(profile);
}

/** Self samples inside the recording (under the step's root function), by file and by function. */
function selfTime(p: { nodes: { id: number; callFrame: { functionName: string; url: string }; children?: number[] }[]; samples?: number[] }): void {
  const byId = new Map(p.nodes.map((n) => [n.id, n]));
  const parent = new Map<number, number>();
  for (const n of p.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  const inStep = new Map<number, boolean>();
  const under = (id: number): boolean => {
    let r = inStep.get(id);
    if (r === undefined) {
      const up = parent.get(id);
      r = byId.get(id)!.callFrame.functionName === root || (up !== undefined && under(up));
      inStep.set(id, r);
    }
    return r;
  };
  const files = new Map<string, number>();
  const fns = new Map<string, number>();
  let total = 0;
  for (const id of p.samples ?? []) {
    if (!under(id)) continue;
    total++;
    const cf = byId.get(id)!.callFrame;
    // Native frames (Dawn's encoder calls, builtins) count for the function that called them.
    const owner = cf.url ? cf : byId.get(parent.get(id)!)!.callFrame;
    const file = owner.url.replace(/^.*?\/(engine|nn|models|node|shaders|bench)\//, '$1/');
    const fn = `${cf.url ? '' : '[native] '}${owner.functionName || '(anonymous)'} ${file}`;
    files.set(file, (files.get(file) ?? 0) + 1);
    fns.set(fn, (fns.get(fn) ?? 0) + 1);
  }
  const show = (m: Map<string, number>, n: number) => [...m].sort((a, b) => b[1] - a[1]).slice(0, n).forEach(([k, v]) => console.log(`${((100 * v) / total).toFixed(1).padStart(6)}%  ${k}`));
  console.log(`recording self time, ${total} samples: by file`);
  show(files, 15);
  console.log('by function');
  show(fns, 25);
}
