/**
 * Train in Node, continue and sample in a browser, same checkpoint, same numbers.
 *
 * test/browser/scenario.ts (a tiny VQ tokenizer with latent perturbation, AdamW, seeded sampling)
 * is bundled for the browser with esbuild (platform 'browser': a Node import anywhere under it
 * fails the bundle) and loaded into headless Chromium (Debian's `chromium`, driven by
 * playwright-core; WebGPU there is Chromium's own Dawn on SwiftShader). Node (Dawn on lavapipe)
 * trains steps 1-3, saves the whole training state to safetensors bytes and trains on to step 6;
 * the page restores those bytes and trains steps 4-6 itself, then both sample. The page's own
 * checkpoint then comes back and Node resumes from it.
 *
 * What must match: the restored step; the losses of steps 4-6 and the parameters after step 6
 * within float32 rounding carried through three AdamW steps (two WebGPU implementations compile
 * the same WGSL differently: FMA contraction, exp/sqrt, subgroup sizes in reductions); the
 * nearest-code indices and the sampleLogits draws exactly (Philox counters are integers); and the
 * page's checkpoint bit for bit when Node reads it back. Then a small AR generator saved in Node
 * samples in the page (KV cache, classifier-free guidance, top-k, top-p): the same token sequences.
 * And a diffusion transformer trained 12 steps in Node samples in the page (Euler and Heun, CFG 2 in
 * a guidance interval, seeded noise): the same latents within 1e-4, and a KL tokenizer saved in
 * Node decodes them to the same pixels within 1e-4 (measured and derived at the check).
 *
 * Chromium is found at $CHROMIUM_PATH or /usr/bin/chromium (.ci/install-system.sh installs it);
 * without it the test is skipped, unless REQUIRE_WEBGPU=1 (CI), where it fails.
 */
import { existsSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { build } from 'esbuild';
import type { Page } from 'playwright-core';
import { afterAll, describe, expect, it } from 'vitest';
import * as E from '../engine/index.js';
import { saveTensors } from '../nn/index.js';
import * as scenario from './browser/scenario.js';
import { requireGpu } from './helpers/backends.js';

const gpu = await requireGpu();
const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
const haveChromium = existsSync(CHROMIUM);
if (!haveChromium && process.env.REQUIRE_WEBGPU === '1') {
  throw new Error(`REQUIRE_WEBGPU=1 but Chromium was not found at ${CHROMIUM} (install Debian's chromium: .ci/install-system.sh, or set CHROMIUM_PATH)`);
}

/** The scenario as one browser script exposing `globalThis.scenario`. */
async function bundleScenario(): Promise<string> {
  const r = await build({
    entryPoints: [join(import.meta.dirname, 'browser', 'scenario.ts')],
    bundle: true,
    platform: 'browser',
    format: 'iife',
    globalName: 'scenario',
    target: 'es2022',
    write: false,
    logLevel: 'silent',
  });
  return r.outputFiles[0]!.text;
}

/** A page on http://127.0.0.1 (WebGPU needs a secure context; localhost is one). */
function serve(script: string): Promise<Server> {
  const server = createServer((req, res) => {
    if (req.url === '/scenario.js') {
      res.setHeader('content-type', 'text/javascript');
      res.end(script);
    } else {
      res.setHeader('content-type', 'text/html');
      res.end('<!doctype html><html><head><script src="/scenario.js"></script></head><body></body></html>');
    }
  });
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve(server)));
}

function maxAbsDiff(a: readonly number[], b: readonly number[]): number {
  expect(a.length).toBe(b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
}

const cleanups: (() => Promise<void> | void)[] = [];
afterAll(async () => {
  for (const c of cleanups.reverse()) await c();
});

type PageScenario = { scenario: typeof scenario };
let pagePromise: Promise<{ page: Page; pageErrors: string[] }> | null = null;

/** One Chromium page with the bundled scenario loaded, shared by the tests (launched on first use). */
function openPage(): Promise<{ page: Page; pageErrors: string[] }> {
  pagePromise ??= (async () => {
    const { chromium } = await import('playwright-core');
    const server = await serve(await bundleScenario());
    cleanups.push(() => new Promise<void>((r) => server.close(() => r())));
    const browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--enable-unsafe-webgpu', '--no-sandbox'] });
    cleanups.push(() => browser.close());
    const page = await browser.newPage();
    const pageErrors: string[] = [];
    page.on('pageerror', (e) => pageErrors.push(String(e)));
    await page.goto(`http://127.0.0.1:${(server.address() as AddressInfo).port}/`);
    return { page, pageErrors };
  })();
  return pagePromise;
}

describe.runIf(gpu && haveChromium)('browser: the same run in Node and in Chromium', () => {
  it('bundles the engine for the browser with no Node imports', async () => {
    const js = await bundleScenario();
    expect(js).toContain('navigator.gpu');
    expect(js).not.toMatch(/require\(["']node:|from ["']node:/);
  });

  it('continues a Node checkpoint in the page with the same losses, parameters and samples; Node resumes the page checkpoint; AR sampling matches', async () => {
    const { page, pageErrors } = await openPage();

    // Node: steps 1-3, snapshot, steps 4-6, sample.
    const run = scenario.buildRun(gpu!);
    let nodeLosses: number[], nodeParams: number[], nodeSamples: scenario.Samples, at3: Uint8Array;
    try {
      await scenario.train(run, 0, 3);
      at3 = await scenario.snapshot(run, 3);
      nodeLosses = await scenario.train(run, 3, scenario.TOTAL_STEPS);
      nodeParams = await scenario.parameters(run);
      nodeSamples = await scenario.sample(run);
    } finally {
      scenario.disposeRun(run);
    }

    // The page: restore step 3, steps 4-6, sample, snapshot.
    const b64 = scenario.toBase64(at3);
    const page6 = await page.evaluate((s) => (globalThis as unknown as PageScenario).scenario.continueInBrowser(s), b64);
    expect(pageErrors).toEqual([]);
    expect(page6.adapter).toMatch(/^webgpu/);
    expect(page6.step).toBe(3);

    const lossDiff = maxAbsDiff(page6.losses, nodeLosses);
    const paramDiff = maxAbsDiff(page6.params, nodeParams);
    const decodedDiff = maxAbsDiff(page6.samples.decoded, nodeSamples.decoded);
    const report = `node losses ${nodeLosses.map((v) => v.toFixed(6)).join(' ')}, page ${page6.losses.map((v) => v.toFixed(6)).join(' ')}; max |dparam| ${paramDiff.toExponential(2)}, max |ddecoded| ${decodedDiff.toExponential(2)} (${page6.adapter})`;
    // Losses ~0.1-1; float32 differences between the two implementations stay near 1e-6 after
    // three steps; 1e-4 would still catch a wrong kernel, a lost moment or a reset RNG (those
    // move losses by >= 1e-2 here).
    expect(lossDiff, report).toBeLessThan(1e-4);
    // AdamW's normalized step amplifies tiny gradient differences only for near-zero gradients:
    // bounded by a few lr (3e-3) in the worst case; typical differences are ~1e-7.
    expect(paramDiff, report).toBeLessThan(1e-3);
    expect(decodedDiff, report).toBeLessThan(1e-3);
    expect(page6.samples.codes, report).toEqual(nodeSamples.codes);
    expect(page6.samples.draws, report).toEqual(nodeSamples.draws);

    // Back to Node: the page's checkpoint restores bit for bit and samples the page's codes.
    const back = scenario.buildRun(gpu!);
    try {
      expect(scenario.restore(back, scenario.fromBase64(page6.snapshotBase64))).toBe(scenario.TOTAL_STEPS);
      expect(await scenario.parameters(back)).toEqual(page6.params);
      const s = await scenario.sample(back);
      expect(s.draws).toEqual(page6.samples.draws);
      expect(s.codes).toEqual(page6.samples.codes);
    } finally {
      scenario.disposeRun(back);
    }

    // A generator saved in Node samples the same sequences in the page (KV cache, CFG, top-k/p).
    const ar = scenario.buildAR(gpu!);
    let weights: Uint8Array, nodeTokens: number[];
    try {
      // Randomize the weights beyond init so the logits are far from uniform.
      E.noGrad(() => {
        for (const p of ar.parameters()) E.tidy(() => void E.assign(p, p.add(E.randn(p.shape, { backend: gpu!, generator: new E.Generator(p.size), std: 0.2 }))));
      });
      weights = await saveTensors(ar.stateDict());
      nodeTokens = await scenario.sampleAR(ar);
    } finally {
      ar.dispose();
    }
    const pageTokens = await page.evaluate((w) => (globalThis as unknown as PageScenario).scenario.sampleARInBrowser(w), scenario.toBase64(weights));
    expect(pageErrors).toEqual([]);
    expect(nodeTokens.length).toBe(6 * 16);
    expect(new Set(nodeTokens).size).toBeGreaterThan(8); // not a degenerate constant sequence
    expect(pageTokens).toEqual(nodeTokens);
  }, 240_000);

  it('a diffusion transformer trained in Node samples the same latents in the page (Euler and Heun, CFG in a guidance interval); a KL decoder gives the same pixels', async () => {
    const { page, pageErrors } = await openPage();

    // Node: train the DiT a few steps (a fresh one predicts exactly 0), save it and a KL
    // tokenizer (with non-trivial latent statistics, so decoding denormalizes), sample, decode.
    const dit = scenario.buildDiT(gpu!);
    const kl = scenario.buildKL(gpu!);
    let ditWeights: Uint8Array, klWeights: Uint8Array, node: scenario.DiffusionSamples, unguided: scenario.DiffusionSamples;
    let noise: number[];
    try {
      const losses = await scenario.trainDiT(dit, 12);
      expect(losses.every(Number.isFinite)).toBe(true);
      kl.latentStats.set([0.3, -0.2], [0.5, 1.5]);
      ditWeights = await saveTensors(dit.stateDict());
      klWeights = await saveTensors(kl.stateDict());
      node = await scenario.sampleDiT(dit, kl);
      unguided = await scenario.sampleDiT(dit, kl, { cfgScale: 1 });
      const n = E.randn([4, 2, 4, 4], { backend: gpu!, generator: new E.Generator(scenario.DIT_SAMPLING.euler.seed) });
      noise = Array.from(await n.toArray());
      n.dispose();
    } finally {
      dit.dispose();
      kl.dispose();
    }

    const t0 = performance.now();
    const pageOut = await page.evaluate(([d, k]) => (globalThis as unknown as PageScenario).scenario.sampleDiTInBrowser(d, k), [scenario.toBase64(ditWeights), scenario.toBase64(klWeights)] as const);
    const pageMs = performance.now() - t0;
    expect(pageErrors).toEqual([]);

    const eulerDiff = maxAbsDiff(pageOut.euler, node.euler);
    const heunDiff = maxAbsDiff(pageOut.heun, node.heun);
    const pixelDiff = maxAbsDiff(pageOut.pixels, node.pixels);
    // What a wrong kernel, a lost weight, a skipped guidance or a different seed would move:
    const moved = maxAbsDiff(node.euler, noise); // the trained model's drift from its starting noise
    const cfgEffect = maxAbsDiff(node.euler, unguided.euler); // guidance on vs off
    const report = `max |dz| euler ${eulerDiff.toExponential(2)}, heun ${heunDiff.toExponential(2)}, max |dpixel| ${pixelDiff.toExponential(2)}; samples moved ${moved.toFixed(3)} from the noise, CFG moves them ${cfgEffect.toFixed(3)} (page ${pageMs.toFixed(0)} ms)`;
    console.log(`browser diffusion: ${report}`);
    // Not vacuous: the samples are far from their noise (a zero-velocity model returns it) and
    // guidance changes them by far more than the tolerance.
    expect(moved, report).toBeGreaterThan(0.1);
    expect(cfgEffect, report).toBeGreaterThan(0.01);
    // Tolerance. Both sides run the same WGSL on different software adapters (Dawn on lavapipe
    // here, Chromium's Dawn on SwiftShader there). Matmuls, norms and softmax differ only in
    // float32 rounding order (~1e-7 relative per op), but the timestep features are cos/sin of
    // t * 1000 * freq, arguments up to 1000, and WGSL bounds sin/cos error only on [-pi, pi]:
    // measured against float64, lavapipe's are within 5.5e-8 and SwiftShader's off by up to
    // 2.0e-4. That error, through the timestep MLP and adaLN, dominates: over 8 Euler / 11 Heun
    // evaluations with CFG 2 (which doubles v_c - v_u) on latents of magnitude ~1-3 the measured
    // max |dz| is 1.3e-5 (Euler) and 7.0e-6 (Heun). 1e-4 leaves a margin of ~8x and stays three
    // orders below what a real fault moves (a lost weight, skipped guidance, another seed:
    // >= 0.3 here, see `moved` and `cfgEffect`).
    expect(eulerDiff, report).toBeLessThan(1e-4);
    expect(heunDiff, report).toBeLessThan(1e-4);
    // The decoder (conv, GroupNorm, SiLU, upsampling; no trig) adds rounding only; it carries the
    // latents' difference through at a gain below 1 here: measured max |dpixel| 4.4e-6 on
    // pixels of magnitude ~1; the same 1e-4 (20x margin).
    expect(pixelDiff, report).toBeLessThan(1e-4);
  }, 120_000);
});
