/**
 * Per-channel statistics of a continuous tokenizer's latents (the posterior means over the
 * training set, measured after training), kept as module buffers so they travel in the
 * checkpoint (`latent_stats.mean`, `latent_stats.std`, [C]). The diffusion generator works on
 * normalized latents (z - mean) / std, per channel, as latent-diffusion scales by one global
 * factor and newer tokenizers (e.g. SD3, MAETok) by per-channel mean/std; decoding denormalizes.
 * A fresh tokenizer has mean 0, std 1 (`measured` false) until `set` is called.
 */
import * as E from '../../engine/index.js';
import { Module, type InitOptions } from '../../nn/index.js';

export class LatentStats extends Module {
  readonly mean: E.Tensor;
  readonly std: E.Tensor;
  constructor(readonly channels: number, init: InitOptions = {}) {
    super();
    const backend = init.backend;
    this.mean = this.buffer('mean', E.zeros([channels], backend ? { backend } : {}));
    this.std = this.buffer('std', E.ones([channels], backend ? { backend } : {}));
  }

  /** Stores measured per-channel mean and std (std floored at 1e-6). */
  set(mean: ArrayLike<number>, std: ArrayLike<number>): void {
    if (mean.length !== this.channels || std.length !== this.channels) throw new Error(`LatentStats.set: expected ${this.channels} values each, got ${mean.length} and ${std.length}`);
    for (let i = 0; i < this.channels; i++) {
      if (!Number.isFinite(mean[i]!) || !Number.isFinite(std[i]!)) throw new Error(`LatentStats.set: channel ${i} has a non-finite mean or std (${mean[i]}, ${std[i]})`);
    }
    const backend = this.mean.backend;
    E.noGrad(() => E.tidy(() => {
      this.mean.assign(E.tensor(Array.from(mean), [this.channels], { backend }));
      this.std.assign(E.tensor(Array.from(std, (v) => Math.max(v, 1e-6)), [this.channels], { backend }));
    }));
  }

  /** Whether the stats are not the defaults (mean 0, std 1), i.e. were measured. */
  async measured(): Promise<boolean> {
    const [m, s] = await Promise.all([this.mean.toArray(), this.std.toArray()]);
    return m.some((v) => v !== 0) || s.some((v) => v !== 1);
  }

  /** Raw latents [B, C, h, w] -> normalized. */
  normalize(z: E.Tensor): E.Tensor {
    return E.composite(() => z.sub(this.mean.reshape([1, this.channels, 1, 1])).div(this.std.reshape([1, this.channels, 1, 1])));
  }

  /** Normalized latents [B, C, h, w] -> raw. */
  denormalize(z: E.Tensor): E.Tensor {
    return E.composite(() => z.mul(this.std.reshape([1, this.channels, 1, 1])).add(this.mean.reshape([1, this.channels, 1, 1])));
  }
}

/**
 * Accumulates per-channel sums of latent batches [B, C, h, w] in float64 on the host and returns
 * the mean and (population) std over every position of every image.
 */
export class LatentMoments {
  private readonly sum: Float64Array;
  private readonly sumSq: Float64Array;
  private n = 0;
  constructor(readonly channels: number) {
    this.sum = new Float64Array(channels);
    this.sumSq = new Float64Array(channels);
  }
  async add(z: E.Tensor): Promise<void> {
    if (z.rank !== 4 || z.shape[1] !== this.channels) throw new Error(`LatentMoments: expected latents [B, ${this.channels}, h, w], got ${E.fmtShape(z.shape)}`);
    const [B, C, h, w] = z.shape as [number, number, number, number];
    const v = await z.toArray();
    const hw = h * w;
    for (let b = 0; b < B; b++) {
      for (let c = 0; c < C; c++) {
        const o = (b * C + c) * hw;
        let s = 0;
        let q = 0;
        for (let i = 0; i < hw; i++) {
          const x = v[o + i]!;
          s += x;
          q += x * x;
        }
        this.sum[c]! += s;
        this.sumSq[c]! += q;
      }
    }
    this.n += B * hw;
  }
  get count(): number {
    return this.n;
  }
  result(): { mean: number[]; std: number[] } {
    if (this.n === 0) throw new Error('LatentMoments: no latents were added');
    const mean = Array.from(this.sum, (s) => s / this.n);
    const std = Array.from(this.sumSq, (q, c) => Math.sqrt(Math.max(0, q / this.n - mean[c]! ** 2)));
    return { mean, std };
  }
}

/** What measureLatentStats needs of a KL tokenizer. */
export interface LatentEncoder {
  readonly latentStats: LatentStats;
  encodeLatents(x: E.Tensor): E.Tensor;
  training: boolean;
  train(mode?: boolean): unknown;
}

/**
 * Measures the per-channel mean and std of the posterior means of `batches` (images, not
 * disposed here), in eval mode, and stores them in model.latentStats. Returns them with the
 * number of images seen.
 */
export async function measureLatentStats(model: LatentEncoder, batches: Iterable<E.Tensor> | AsyncIterable<E.Tensor>): Promise<{ mean: number[]; std: number[]; images: number }> {
  const acc = new LatentMoments(model.latentStats.channels);
  const wasTraining = model.training;
  model.train(false);
  let images = 0;
  try {
    for await (const x of batches) {
      // Raw means whatever stats are stored now: denormalize what encodeLatents normalized.
      using z = E.noGrad(() => E.tidy(() => model.latentStats.denormalize(model.encodeLatents(x))));
      await acc.add(z);
      images += x.shape[0]!;
    }
  } finally {
    model.train(wasTraining);
  }
  const r = acc.result();
  model.latentStats.set(r.mean, r.std);
  return { ...r, images };
}
