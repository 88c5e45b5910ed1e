/**
 * The CNN tokenizer against the reference PyTorch model of the performance anchor
 * (shared/reference/torch_step_bench.py, fixture test/fixtures/make_tokenizer.py): the default
 * config has its parameters (same shapes, count and order, names mapped by referenceNameMap), and
 * a small config with the same weights computes the same function (latents, codes, loss and
 * gradients) in float64 on the CPU.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import * as E from '../engine/index.js';
import { AdamW } from '../nn/index.js';
import { referenceNameMap, tokenizerTrainStep, VQTokenizer } from '../models/tokenizer/index.js';
import { expectClose } from './helpers/compare.js';
import { expectNoLeaks } from './helpers/leak-check.js';

interface Formula {
  name: string;
  shape: number[];
  base: number;
  scale: number;
  freq: number;
  phase: number;
}
const fx = JSON.parse(readFileSync(join(import.meta.dirname, 'fixtures/tokenizer.json'), 'utf8')) as {
  default: { config: { ch: number; chMult: number[]; codebookSize: number; codeDim: number; inChannels: number }; params: [string, number[]][]; numParameters: number };
  small: {
    config: { ch: number; chMult: number[]; codebookSize: number; codeDim: number; inChannels: number };
    params: Formula[];
    grads: Record<string, number[]>;
    x: number[];
    xShape: number[];
    z: number[];
    indices: number[];
    loss: number;
  };
};

describe('CNN tokenizer vs the reference PyTorch model', () => {
  it('default config: the reference parameters in the same order and shapes, 3,159,889 in all', () => {
    const m = new VQTokenizer({}, { backend: E.cpuF64, generator: new E.Generator(0) });
    expect(fx.default.config).toEqual({ ch: m.cfg.ch, chMult: m.cfg.chMult, codebookSize: m.cfg.codebookSize, codeDim: m.cfg.codeDim, inChannels: m.cfg.inChannels });
    const map = referenceNameMap(m.cfg);
    const ours = m.namedParameters();
    expect(ours.map(([n]) => map.get(n))).toEqual(fx.default.params.map(([n]) => n));
    ours.forEach(([n, t], i) => expect([...t.shape], n).toEqual(fx.default.params[i]![1]));
    expect(m.numParameters()).toBe(fx.default.numParameters);
    expect(m.numParameters()).toBe(3159889);
    // Taming-style names.
    const names = ours.map(([n]) => n);
    for (const n of ['encoder.conv_in.weight', 'encoder.down.0.block.0.norm1.weight', 'encoder.down.1.block.0.nin_shortcut.weight', 'encoder.down.0.downsample.conv.weight', 'encoder.norm_out.weight', 'encoder.conv_out.weight', 'quantize.embedding.weight', 'decoder.conv_in.weight', 'decoder.up.2.block.1.conv2.weight', 'decoder.up.2.upsample.conv.weight', 'decoder.up.0.block.0.nin_shortcut.weight', 'decoder.conv_out.bias']) {
      expect(names).toContain(n);
    }
    expect(names).not.toContain('decoder.up.0.upsample.conv.weight');
    expect(names).not.toContain('encoder.down.2.downsample.conv.weight');
    m.dispose();
  });

  it('small config with the same weights: same latents, codes, loss and gradients (float64 CPU)', async () => {
    const s = fx.small;
    const backend = E.cpuF64;
    const m = new VQTokenizer({ ...s.config }, { backend, generator: new E.Generator(0) });
    const map = referenceNameMap(m.cfg);
    const back = new Map([...map].map(([a, b]) => [b, a]));
    const state: Record<string, E.Tensor> = {};
    for (const f of s.params) {
      const n = f.shape.reduce((a, b) => a * b, 1);
      const v = Array.from({ length: n }, (_, i) => f.base + f.scale * Math.sin(f.freq * i + f.phase));
      state[back.get(f.name)!] = E.tensor(v, f.shape, { backend });
    }
    m.loadStateDict(state);
    const x = E.tensor(s.x, s.xShape, { backend });
    // Tolerance: float64 on both sides; the only differences are summation orders (~1e-15
    // relative), so 1e-9 leaves a wide margin while catching any structural difference.
    const tol = { atol: 1e-9, rtol: 1e-9 };
    const enc = m.encode(x);
    expect([...enc.z.shape]).toEqual([2, 8, 4, 4]);
    expectClose(await enc.z.toArray(), s.z, tol, 'normalized latents');
    expect(Array.from(await enc.indices.toArray())).toEqual(s.indices);
    const out = m.forward(x, { perturb: null });
    expect(Array.from(await out.indices!.toArray())).toEqual(s.indices);
    expectClose([await out.losses.total.item()], [s.loss], tol, 'loss');
    out.losses.total.backward();
    const params = Object.fromEntries(m.namedParameters());
    for (const [refName, g] of Object.entries(s.grads)) expectClose(await params[back.get(refName)!]!.grad!.toArray(), g, tol, `grad ${refName}`);
    m.dispose();
  });
});

describe('VQTokenizer API (float64 CPU, tiny config)', () => {
  const cfg = { ch: 8, chMult: [1, 2], numResBlocks: 1, codebookSize: 16, codeDim: 4 };
  const backend = E.cpuF64;

  it('decodeIndices(encode(x).indices) is the clean reconstruction; shapes and factor', async () => {
    const m = new VQTokenizer(cfg, { backend, generator: new E.Generator(1) });
    expect(m.factor).toBe(2);
    const x = E.rand([3, 1, 8, 8], { backend, generator: new E.Generator(2) });
    const enc = m.encode(x);
    expect([...enc.z.shape]).toEqual([3, 4, 4, 4]);
    expect([...enc.indices.shape]).toEqual([3, 4, 4]);
    expect(enc.indices.dtype).toBe('i32');
    // Latents are unit vectors along the channel axis.
    const zv = await enc.z.toArray();
    for (let b = 0; b < 3; b++) for (let p = 0; p < 16; p++) {
      let s = 0;
      for (let c = 0; c < 4; c++) s += zv[b * 64 + c * 16 + p]! ** 2;
      expect(Math.abs(s - 1)).toBeLessThan(1e-12);
    }
    const out = m.forward(x, { perturb: null });
    expect(Array.from(await out.indices!.toArray())).toEqual(Array.from(await enc.indices.toArray()));
    const a = await m.decodeIndices(enc.indices).toArray();
    // Equal up to the rounding of the straight-through sum z + (q - z) (float64: ~1e-16).
    expectClose(a, await out.recon.toArray(), { atol: 1e-12, rtol: 1e-12 }, 'decodeIndices vs forward');
    expect(() => m.forward(E.zeros([1, 1, 7, 8], { backend }))).toThrow(/expected images \[B, 1, H, W\] with H, W multiples of 2, got \[1, 1, 7, 8\]/);
    m.dispose();
  });

  it('L1 option, extra-loss hook added to the total, and config validation', async () => {
    const x = E.rand([2, 1, 8, 8], { backend, generator: new E.Generator(2) });
    const m = new VQTokenizer({ ...cfg, recLoss: 'l1' }, { backend, generator: new E.Generator(1) });
    const out = m.forward(x, { perturb: null, extraLosses: ({ recon }) => ({ p: recon.abs().mean().mul(0.5) }) });
    const r = await out.recon.toArray();
    const xv = await x.toArray();
    const l1 = Array.from(r).reduce((s, v, i) => s + Math.abs(v - xv[i]!), 0) / r.length;
    expect(Math.abs((await out.losses.rec.item()) - l1)).toBeLessThan(1e-12);
    const extra = (0.5 * Array.from(r).reduce((s, v) => s + Math.abs(v), 0)) / r.length;
    expect(Math.abs((await out.losses.p!.item()) - extra)).toBeLessThan(1e-12);
    const parts = l1 + extra + (await out.losses.codebook!.item()) + (await out.losses.commit!.item());
    expect(Math.abs((await out.losses.total.item()) - parts)).toBeLessThan(1e-12);
    expect(() => m.forward(x, { extraLosses: ({ recon }) => ({ rec: recon.mean() }) })).toThrow(/extra loss 'rec' clashes/);
    m.dispose();
    expect(() => new VQTokenizer({ ...cfg, chMult: [] }, { backend })).toThrow(/chMult must be a non-empty list/);
    expect(() => new VQTokenizer({ ...cfg, recLoss: 'l2' as 'l1' }, { backend })).toThrow(/recLoss must be 'mse' or 'l1'/);
    expect(() => referenceNameMap({ midBlocks: 1 })).toThrow(/no mid blocks/);
  });

  it('leaves no tensor behind: encode, decode, (perturbed) reconstructions, evaluation forward, training steps', async () => {
    const m = new VQTokenizer({ ...cfg, perturbation: { alpha: 1, beta: 0.5, delta: 4 } }, { backend, generator: new E.Generator(1) });
    const opt = new AdamW(m.parameters(), { lr: 1e-3 });
    const x = E.rand([4, 1, 8, 8], { backend, generator: new E.Generator(2) });
    const enc = await expectNoLeaks(() => E.noGrad(() => m.encode(x)), 'encode');
    (await expectNoLeaks(() => E.noGrad(() => m.decodeIndices(enc.indices)), 'decodeIndices')).dispose();
    E.disposeAll(enc);
    (await expectNoLeaks(() => m.reconstruct(x), 'reconstruct')).dispose();
    (await expectNoLeaks(() => m.reconstruct(x, { alpha: 1, delta: 4 }, new E.Generator(3)), 'perturbed reconstruct')).dispose();
    m.eval();
    E.disposeAll(await expectNoLeaks(() => E.noGrad(() => E.tidy(() => m.forward(x).losses)), 'evaluation forward'));
    m.train();
    // The first step creates the optimizer state and the gradients; later steps replace them.
    E.disposeAll(tokenizerTrainStep(m, opt, x, { step: 1, totalSteps: 4 }));
    E.disposeAll(await expectNoLeaks(() => tokenizerTrainStep(m, opt, x, { step: 2, totalSteps: 4 }), 'training step (perturbed)'));
    opt.dispose();
    x.dispose();
    m.dispose();
  });

  it('mid blocks are optional extra residual blocks at the lowest resolution', () => {
    const m = new VQTokenizer({ ...cfg, midBlocks: 2 }, { backend, generator: new E.Generator(1) });
    const names = m.namedParameters().map(([n]) => n);
    expect(names).toContain('encoder.mid.1.conv2.weight');
    expect(names).toContain('decoder.mid.0.norm1.weight');
    m.dispose();
  });
});

describe('models/tokenizer is browser-safe', () => {
  it('imports nothing from Node (all of it browser-safe)', () => {
    const dir = join(import.meta.dirname, '..', 'models', 'tokenizer');
    const files = readdirSync(dir).filter((f) => f.endsWith('.ts') && f !== 'train-node.ts');
    expect(files).toContain('model.ts');
    const offenders: string[] = [];
    for (const f of files) {
      const src = readFileSync(join(dir, f), 'utf8');
      for (const m of src.matchAll(/\b(?:from|import)\s*\(?\s*['"]([^'"]+)['"]/g)) {
        const spec = m[1]!;
        if (spec.startsWith('node:') || spec === 'webgpu' || /(^|\/)node\//.test(spec) || /^(fs|path|os|url|child_process)$/.test(spec)) offenders.push(`${f}: ${spec}`);
      }
    }
    expect(offenders).toEqual([]);
    expect(readFileSync(join(dir, 'index.ts'), 'utf8')).not.toMatch(/train-node/);
  });
});
