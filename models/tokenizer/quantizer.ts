/**
 * Vector quantizer as in RobusTok's code (and the reference tokenizer of torch_step_bench.py):
 * latents and codebook rows are l2-normalized, each latent takes the nearest code by squared
 * distance (engine nearestCodes: one GPU kernel, no [N, K] matrix, so K = 16384 is fine),
 *   codebookLoss = mean((z_q - sg(z))^2)
 *   commitLoss   = commitmentCost * mean((sg(z_q) - z)^2)      (commitmentCost 0.25)
 * and the straight-through estimator z + sg(z_q - z), all in the normalized space.
 */
import * as E from '../../engine/index.js';
import { Embedding, Module, type InitOptions } from '../../nn/index.js';

/** F.normalize(x, p=2, dim=-1): x / max(||x||, 1e-12) (as x * rsqrt(max(||x||^2, 1e-24))). */
export function l2Normalize(x: E.Tensor): E.Tensor {
  return E.composite(() => x.mul(x.square().sum(-1, true).maximum(1e-24).rsqrt()));
}

export interface QuantizerOutput {
  /** Straight-through quantized latents [B, T, d]: values of the normalized codes, gradient to z. */
  zq: E.Tensor;
  /** l2-normalized continuous latents [B, T, d] (with gradient). */
  zn: E.Tensor;
  /** Nearest code per token, i32 [B, T]. */
  indices: E.Tensor;
  /** mean((z_q - sg(z))^2): trains the codebook. */
  codebookLoss: E.Tensor;
  /** commitmentCost * mean((sg(z_q) - z)^2): trains the encoder. */
  commitLoss: E.Tensor;
}

export class VectorQuantizer extends Module {
  readonly embedding: Embedding;
  constructor(readonly codebookSize: number, readonly codeDim: number, readonly commitmentCost = 0.25, init: InitOptions = {}) {
    super();
    if (!(Number.isInteger(codebookSize) && codebookSize > 0 && Number.isInteger(codeDim) && codeDim > 0)) {
      throw new Error(`VectorQuantizer: codebookSize and codeDim must be positive integers, got ${codebookSize}, ${codeDim}`);
    }
    // nn.Embedding's N(0, 1) init, as the reference model.
    this.embedding = this.module('embedding', new Embedding(codebookSize, codeDim, init));
  }

  get codebook(): E.Tensor {
    return this.embedding.weight;
  }

  /** The l2-normalized codebook [K, d] (differentiable w.r.t. the codebook). */
  normalizedCodebook(): E.Tensor {
    return l2Normalize(this.embedding.weight);
  }

  /** Nearest codes of latents z [B, T, d] (no gradient): i32 [B, T]. */
  nearest(z: E.Tensor): E.Tensor {
    return E.noGrad(() => E.tidy(() => E.nearestCodes(l2Normalize(z), this.normalizedCodebook(), 1).indices.reshape(z.shape.slice(0, -1))));
  }

  /** Normalized code vectors [..., d] of i32 indices [...]. */
  lookup(indices: E.Tensor): E.Tensor {
    return E.embedding(this.normalizedCodebook(), indices);
  }

  /** z: continuous latents [B, T, d]. */
  forward(z: E.Tensor): QuantizerOutput {
    if (z.rank !== 3 || z.shape[2] !== this.codeDim) throw new Error(`VectorQuantizer: expected latents [B, T, ${this.codeDim}], got ${E.fmtShape(z.shape)}`);
    const [B, T] = [z.shape[0]!, z.shape[1]!];
    const zn = l2Normalize(z);
    const en = this.normalizedCodebook();
    const zd = zn.detach();
    const indices = E.noGrad(() => E.tidy(() => E.nearestCodes(zd, en.detach(), 1).indices.reshape([B, T])));
    const q = E.embedding(en, indices); // [B, T, d], gradient to the codebook
    const qd = q.detach();
    const codebookLoss = E.mseLoss(q, zd);
    const commitLoss = E.mseLoss(zn, qd).mul(this.commitmentCost);
    const zq = zn.add(qd.sub(zn).detach());
    return { zq, zn, indices, codebookLoss, commitLoss };
  }
}
