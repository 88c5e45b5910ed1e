/**
 * Evaluation of a continuous (KL) tokenizer (browser-safe), the counterpart of eval.ts. Given the
 * model, a feature network, batches of validation images and the normalized latents of (a subset
 * of) the training set, computes
 *  - rFID: Fréchet distance between the features of the real images x and of their clean
 *    reconstructions D(z), z = encodeLatents(x) (normalized posterior means, [C, h, w] each);
 *  - PSNR and SSIM of the clean reconstructions (images mapped to [0, 1], data range 1; means of
 *    the per-image values), and the Inception-Score analogue when the network has `logits`;
 *  - nFID(tau), a noise FID (pFID has no continuous definition in the papers; this is ours):
 *        z' = (1 - tau) * z + tau * eps,   eps ~ N(0, I) in the normalized latent space,
 *        nFID(tau) = FID(x, D(z')),
 *    over a grid of tau (default 0.1, 0.2, 0.3); the documented single number is tau = 0.2
 *    (DEFAULT_NFID_TAU, the middle of the grid, as pFID's alpha = 0.3 is of its grid). Every tau
 *    draws eps from its own Generator(seed), so the taus share their noise (z' moves along one
 *    straight line per image as tau grows) and the grid is less noisy than independent draws. At
 *    tau = 0 the clean reconstruction itself is used, so nFID(0) = rFID exactly. The latents are
 *    normalized per channel (unit std when `latentStats` were measured), so tau * eps is the
 *    training noise of latent-noise.ts (tau * gamma * std(z) * eps) with gamma * std = 1.
 *  - iFID, the interpolation FID of arXiv 2603.05630: with u = z / |z| over the flattened latent
 *    (C*h*w dims) and the training latents t_1..t_M,
 *        N_K(z) = the K (default 10) training latents of largest cos(z, t_m) = u . t_m / |t_m|,
 *        P(n | z) = softmax_{n in N_K(z)}(-MSE(z, n)),   MSE(z, n) = mean_i (z_i - n_i)^2,
 *        z'' = slerp(z, n, alpha = 0.5),   n drawn from P(. | z) (Generator(seed)),
 *        iFID = FID(x, D(z'')),
 *    where slerp(a, b, alpha) = sin((1 - alpha) theta) / sin(theta) * a + sin(alpha theta) / sin(theta) * b
 *    with theta the angle between a and b: the standard formula applied to the vectors as they are
 *    (as latent-interpolation code usually does). For equal norms r the path stays on the sphere of
 *    radius r at angle alpha * theta from a; for different norms the norm varies smoothly from |a|
 *    to |b| and the angle is not exactly alpha * theta. It falls back to (1 - alpha) a + alpha b
 *    when sin(theta) < 1e-6 (theta ~ 0: the formula's limit; theta ~ pi: no unique great circle)
 *    or when a or b is zero.
 *    The K nearest are found on the device by E.nearestCodes on l2-normalized rows (for unit
 *    vectors |u - v|^2 = 2 - 2 cos, so its top-K by distance is the cosine top-K), without an
 *    [N, M] matrix; the draw is E.sampleLogits on the logits -MSE (one uniform per query). A validation latent that is also
 *    in the training set is its own nearest neighbour (MSE 0, the likeliest draw, interpolating to
 *    itself): iFID assumes disjoint sets, as the paper's validation / training split.
 * Limits and memory of the neighbour search: M training latents of D = C*h*w floats stay on the
 * device twice (the caller's tensor and its l2-normalized copy: 2 * 60000 * 256 * 4 B = 123 MB for
 * M = 60000, D = 256, plus one transient M x D buffer while normalizing; each must fit one storage
 * binding, 128 MiB on lavapipe); on the GPU K <= E.NEAREST_CODES_MAX_K_GPU (512) and, for K > 1,
 * M <= E.NEAREST_CODES_MAX_CODES_GPU (65536). `ifidMaxTrain` caps M (the first M rows given; the
 * default is all). Each query costs a few sweeps over M * D (measured on lavapipe: 16 queries
 * against M = 60000, D = 256 in 4.9 s). The K candidate rows are gathered for the MSE in query
 * chunks of at most 2^24 floats (64 MB).
 * Features are accumulated batch by batch in float64 (ImageFeatureStats), reconstructions are
 * clamped to the data range before every metric, and runs are reproducible from the seed.
 */
import * as E from '../../engine/index.js';
import { frechetDistanceFromStats, ImageFeatureStats, msePerImage, pairedFidErrors, psnrFromMse, ssimPerImage, type BootstrapInterval, type FidErrorOptions, type InceptionScore } from '../metrics/index.js';
import type { ImageFeatureNet } from '../metrics/image-features.js';
import type { VQTokenizer } from './model.js';
import { l2Normalize } from './quantizer.js';

/** The documented single-number nFID: tau = 0.2. */
export const DEFAULT_NFID_TAU = 0.2;
/** The default nFID grid over tau. */
export const DEFAULT_NFID_TAUS: readonly number[] = Object.freeze([0.1, 0.2, 0.3]);
/** iFID: neighbours per validation latent (the paper's K). */
export const DEFAULT_IFID_K = 10;
/** iFID: slerp position between a latent and its drawn neighbour. */
export const DEFAULT_IFID_ALPHA = 0.5;
/** Below this sin(theta), slerp is linear interpolation. */
const SLERP_MIN_SIN = 1e-6;
/** Floats gathered at most per query chunk of the neighbour MSE (64 MB). */
const GATHER_BUDGET = 1 << 24;

export interface ContinuousEvalOptions {
  /** nFID taus (default DEFAULT_NFID_TAUS; the default tau is added when missing). */
  taus?: readonly number[];
  /** tau of the reported single nFID (default DEFAULT_NFID_TAU). */
  defaultTau?: number;
  /** iFID neighbours K (default DEFAULT_IFID_K). */
  ifidK?: number;
  /** iFID slerp alpha (default DEFAULT_IFID_ALPHA). */
  ifidAlpha?: number;
  /** Use only the first ifidMaxTrain training latents (default: all given). */
  ifidMaxTrain?: number;
  /** Seed of the nFID noise and of the iFID draws (default 0). */
  seed?: number;
  /** Value range of the images and reconstructions (default [-1, 1]). */
  range?: readonly [number, number];
  /** Maps images (real and reconstructed, clamped) to the feature network's input; default identity. */
  featureInput?: (x: E.Tensor) => E.Tensor;
  /** Compute the Inception-Score analogue when the network has logits (default true). */
  inceptionScore?: boolean;
  /** Called after each batch with the number of images done so far. */
  onBatch?: (done: number) => void;
  /**
   * Sampling error of rFID, each nFID and iFID by the paired image bootstrap (pairedFidErrors;
   * keeps every feature row, 4 bytes per value). Default: none.
   */
  fidError?: FidErrorOptions;
}

export interface NfidEntry {
  tau: number;
  fid: number;
  /** Interval and standard error (with `fidError`). */
  error?: BootstrapInterval;
}

export interface ContinuousEvalResult {
  /** Images evaluated. */
  count: number;
  rfid: number;
  /** Interval and standard error of rFID (with `fidError`). */
  rfidError?: BootstrapInterval;
  /** nFID over the tau grid (ascending tau). */
  nfid: NfidEntry[];
  /** The documented single nFID (tau = defaultTau). */
  nfidDefault: NfidEntry;
  /** iFID; null when no training latents were given. */
  ifid: number | null;
  /** Interval and standard error of iFID (with `fidError` and training latents). */
  ifidError?: BootstrapInterval;
  ifidK: number;
  ifidAlpha: number;
  /** Training latents searched (M after ifidMaxTrain; 0 without training latents). */
  ifidTrainCount: number;
  /** Mean per-image PSNR (dB) of clean reconstructions, images in [0, 1]. */
  psnr: number;
  /** Mean per-image SSIM of clean reconstructions. */
  ssim: number;
  /** 'valid' for images of at least 11x11, else 'same' (zero padding). */
  ssimPadding: 'valid' | 'same';
  featureDim: number;
  seed: number;
  /** Inception-Score analogue (when the feature network has logits). */
  inceptionScore?: { real: InceptionScore; recon: InceptionScore };
}

function checkUnit(v: number, what: string, op: string): number {
  if (!(typeof v === 'number' && v >= 0 && v <= 1)) throw new RangeError(`${op}: ${what} must be in [0, 1], got ${v}`);
  return v;
}

function checkContinuous(model: VQTokenizer, op: string): void {
  if (!model.continuous) throw new Error(`${op}: this is a VQ tokenizer; use evaluateTokenizer (rFID, pFID) for it`);
}

/** (1 - tau) * z + tau * eps, eps ~ N(0, I) from `generator`; at tau = 0 a copy of z, drawing nothing. */
export function nfidLatents(z: E.Tensor, tau: number, generator: E.Generator): E.Tensor {
  checkUnit(tau, 'tau', 'nfidLatents');
  return E.noGrad(() => E.tidy(() => {
    if (tau === 0) return z.add(0);
    const eps = E.randn(z.shape, { generator, backend: z.backend });
    return z.mul(1 - tau).add(eps.mul(tau));
  }));
}

// ---- slerp ----

/**
 * Weights (wa, wb) of slerp(a, b, alpha) = wa * a + wb * b for vectors at angle theta (radians):
 * sin((1 - alpha) theta) / sin(theta) and sin(alpha theta) / sin(theta), or (1 - alpha, alpha) when
 * sin(theta) < 1e-6. alpha = 0 and 1 give exactly (1, 0) and (0, 1).
 */
export function slerpWeights(theta: number, alpha: number): [number, number] {
  const s = Math.sin(theta);
  if (!(s >= SLERP_MIN_SIN)) return [1 - alpha, alpha];
  return [Math.sin((1 - alpha) * theta) / s, Math.sin(alpha * theta) / s];
}

/**
 * Row-wise slerp of a and b [N, ...] (flattened per row) at alpha. The angle is
 * 2 * atan2(|u - v|, |u + v|) with u, v the unit rows (accurate near 0 and pi, unlike acos of the
 * cosine); weights are computed in float64 on the host from those two norms, and rows where a or
 * b is zero are interpolated linearly.
 */
export async function slerp(a: E.Tensor, b: E.Tensor, alpha: number): Promise<E.Tensor> {
  checkUnit(alpha, 'alpha', 'slerp');
  if (a.rank < 1 || a.shape.length !== b.shape.length || a.shape.some((s, i) => s !== b.shape[i])) throw new Error(`slerp: expected a and b of one shape [N, ...], got ${E.fmtShape(a.shape)} and ${E.fmtShape(b.shape)}`);
  const N = a.shape[0]!;
  using geo = E.noGrad(() => E.tidy(() => {
    const af = a.reshape([N, -1]);
    const bf = b.reshape([N, -1]);
    const u = l2Normalize(af);
    const v = l2Normalize(bf);
    return E.stack([u.sub(v).square().sum(-1).sqrt(), u.add(v).square().sum(-1).sqrt(), af.square().sum(-1), bf.square().sum(-1)], 1);
  }));
  const g = await geo.toArray();
  const wa = new Float64Array(N);
  const wb = new Float64Array(N);
  for (let n = 0; n < N; n++) {
    const [s, c, na, nb] = [g[4 * n]!, g[4 * n + 1]!, g[4 * n + 2]!, g[4 * n + 3]!];
    const [x, y] = na > 0 && nb > 0 ? slerpWeights(2 * Math.atan2(s, c), alpha) : [1 - alpha, alpha];
    wa[n] = x;
    wb[n] = y;
  }
  const shape = [N, ...a.shape.slice(1).map(() => 1)];
  return E.noGrad(() => E.tidy(() => a.mul(E.tensor(wa, shape, { backend: a.backend })).add(b.mul(E.tensor(wb, shape, { backend: a.backend })))));
}

// ---- iFID neighbours ----

/** The neighbour draw of iFID for N query latents, as host arrays. */
export interface IfidPick {
  k: number;
  /** The K candidates of each query (training indices), by descending cosine similarity, [N * K]. */
  candidates: Int32Array;
  /** MSE between each query and each candidate (normalized latents), [N * K]. */
  mse: Float64Array;
  /** The drawn training index of each query, [N]; one of its candidates, with probability softmax(-mse). */
  chosen: Int32Array;
}

interface PickTensors {
  candidates: E.Tensor;
  mse: E.Tensor;
  chosen: E.Tensor;
}


/**
 * The training latents of iFID prepared for neighbour search: rows [M, D] (flattened C*h*w; a view
 * of the given tensor when it is contiguous) and their l2-normalized copy, kept until dispose()
 * (or the end of a `using` block).
 */
export class LatentNeighbours implements Disposable {
  /** Training latents [M, D] (a view of, or a copy of, the caller's tensor). */
  readonly rows: E.Tensor;
  readonly unit: E.Tensor;
  readonly count: number;
  readonly dim: number;
  /** Per-row shape of the latents, e.g. [C, h, w]. */
  readonly rowShape: readonly number[];
  private readonly source: E.Tensor;

  /** `train` [M, ...] normalized latents; `maxCount` keeps the first rows only (default all). */
  constructor(train: E.Tensor, maxCount?: number) {
    const op = 'LatentNeighbours';
    if (train.rank < 2 || train.dtype !== 'f32') throw new Error(`${op}: expected f32 training latents [M, C, h, w], got ${train.describe()}`);
    if (maxCount !== undefined && !(Number.isInteger(maxCount) && maxCount >= 1)) throw new RangeError(`${op}: ifidMaxTrain must be an integer >= 1, got ${maxCount}`);
    const M = Math.min(train.shape[0]!, maxCount ?? Infinity);
    if (M < 1) throw new Error(`${op}: the training latents ${E.fmtShape(train.shape)} are empty`);
    this.count = M;
    this.rowShape = train.shape.slice(1);
    this.dim = this.rowShape.reduce((p, s) => p * s, 1);
    const bindLimit = E.isWebGPU(train.backend) ? train.backend.device.limits.maxStorageBufferBindingSize : Infinity;
    if (M * this.dim * 4 > bindLimit) throw new RangeError(`${op}: ${M} training latents of ${this.dim} floats (${M * this.dim * 4} B) exceed the device's storage binding limit of ${bindLimit} B; cap them with ifidMaxTrain`);
    const D = this.dim;
    const { rows, unit } = E.noGrad(() => E.tidy(() => {
      const sub = M < train.shape[0]! ? train.slice([[0, M]]) : train;
      const flat = sub.reshape([M, D]);
      const rows = flat.isContiguous ? flat : flat.contiguous();
      return { rows, unit: l2Normalize(rows) };
    }));
    // Both live as long as this object, across the awaits of an evaluation.
    this.rows = rows === train ? rows : E.keep(rows);
    this.unit = E.keep(unit);
    this.source = train;
  }

  /** Checks K against M and the GPU kernel's limit; returns it. */
  checkK(k: number, op: string): number {
    if (!(Number.isInteger(k) && k >= 1 && k <= this.count)) throw new RangeError(`${op}: ifidK must be an integer in [1, M = ${this.count}], got ${k}`);
    if (E.isWebGPU(this.rows.backend) && k > 1) {
      if (k > E.NEAREST_CODES_MAX_K_GPU) throw new RangeError(`${op}: ifidK = ${k} exceeds the GPU neighbour search's limit of ${E.NEAREST_CODES_MAX_K_GPU}`);
      if (this.count > E.NEAREST_CODES_MAX_CODES_GPU) throw new RangeError(`${op}: ${this.count} training latents exceed the GPU neighbour search's limit of ${E.NEAREST_CODES_MAX_CODES_GPU} for ifidK > 1; cap them with ifidMaxTrain`);
    }
    return k;
  }

  /**
   * Device-side draw for queries z [N, ...] (same per-row shape): candidates i32 [N, K], their
   * MSE f32 [N, K], chosen training indices i32 [N]. Takes one uniform per query from `generator`.
   */
  pickTensors(z: E.Tensor, k: number, generator: E.Generator): PickTensors {
    const op = 'ifidNeighbours';
    this.checkK(k, op);
    const N = z.shape[0]!;
    if (z.rank < 1 || z.shape.length !== this.rowShape.length + 1 || this.rowShape.some((s, i) => s !== z.shape[i + 1])) throw new Error(`${op}: expected latents [N, ${this.rowShape.join(', ')}] like the training latents, got ${E.fmtShape(z.shape)}`);
    const D = this.dim;
    const chunk = Math.max(1, Math.floor(GATHER_BUDGET / (k * D)));
    return E.noGrad(() => E.tidy(() => {
      const zf = z.reshape([N, D]);
      const parts: PickTensors[] = [];
      for (let s = 0; s === 0 || s < N; s += chunk) {
        const n = Math.min(chunk, N - s);
        const q = N <= chunk ? zf : zf.slice([[s, s + n]]);
        const candidates = E.nearestCodes(l2Normalize(q), this.unit, k).indices; // [n, k]
        const nb = E.indexSelect(this.rows, 0, candidates.reshape([n * k])).reshape([n, k, D]);
        const mse = nb.sub(q.unsqueeze(1)).square().mean(-1); // [n, k]
        const slot = E.sampleLogits(mse.neg(), { generator }); // softmax(-mse) draw, [n]
        const chosen = E.takeAlongAxis(candidates, slot.reshape([n, 1]), 1).reshape([n]);
        parts.push({ candidates, mse, chosen });
      }
      if (parts.length === 1) return parts[0]!;
      return {
        candidates: E.concat(parts.map((p) => p.candidates), 0),
        mse: E.concat(parts.map((p) => p.mse), 0),
        chosen: E.concat(parts.map((p) => p.chosen), 0),
      };
    }));
  }

  /** The draw for queries z [N, ...], read back to the host. */
  async pick(z: E.Tensor, k: number, generator: E.Generator): Promise<IfidPick> {
    using t = E.disposable(this.pickTensors(z, k, generator));
    return { k, candidates: (await t.candidates.toArray()) as Int32Array, mse: Float64Array.from(await t.mse.toArray()), chosen: (await t.chosen.toArray()) as Int32Array };
  }

  /** slerp(z, chosen neighbour, alpha) for queries z [N, ...]: the iFID latents (same shape as z). */
  async interpolate(z: E.Tensor, k: number, alpha: number, generator: E.Generator): Promise<E.Tensor> {
    using nb = E.noGrad(() => E.tidy(() => E.indexSelect(this.rows, 0, this.pickTensors(z, k, generator).chosen).reshape(z.shape)));
    return await slerp(z, nb, alpha);
  }

  /** Frees the kept rows (unless they are the caller's tensor itself) and their normalized copy. */
  dispose(): void {
    E.disposeAll(this.rows === this.source ? this.unit : [this.rows, this.unit]);
  }

  [Symbol.dispose](): void {
    this.dispose();
  }
}

/**
 * iFID's neighbour draw for latents z [N, C, h, w] against training latents [M, C, h, w]: the K
 * nearest by cosine similarity and one drawn with probability softmax(-MSE) from `generator`.
 */
export async function ifidNeighbours(z: E.Tensor, train: E.Tensor, k: number, generator: E.Generator): Promise<IfidPick> {
  using idx = new LatentNeighbours(train);
  return await idx.pick(z, k, generator);
}

// ---- encoding a latent set ----

/**
 * Normalized latents [M, C, h, w] of image batches [B, ch, H, W] (model.encodeLatents in eval mode,
 * no gradient; batches are not disposed). Memory: only the latents are kept, per batch, and joined
 * at the end (twice their size for a moment). `maxCount` stops after that many images.
 */
export async function encodeLatentSet(model: VQTokenizer, batches: Iterable<E.Tensor> | AsyncIterable<E.Tensor>, opts: { maxCount?: number; onBatch?: (done: number) => void } = {}): Promise<E.Tensor> {
  const op = 'encodeLatentSet';
  checkContinuous(model, op);
  const max = opts.maxCount ?? Infinity;
  if (!(max === Infinity || (Number.isInteger(max) && max >= 1))) throw new RangeError(`${op}: maxCount must be an integer >= 1, got ${max}`);
  using parts = E.disposable<E.Tensor[]>([]);
  let count = 0;
  const wasTraining = model.training;
  model.eval();
  try {
    for await (const x of batches) {
      if (x.rank !== 4) throw new Error(`${op}: expected image batches [B, C, H, W], got ${E.fmtShape(x.shape)}`);
      const take = Math.min(x.shape[0]!, max - count);
      if (take <= 0) break;
      parts.push(E.noGrad(() => E.tidy(() => model.encodeLatents(take < x.shape[0]! ? x.slice([[0, take]]) : x))));
      count += take;
      opts.onBatch?.(count);
      if (count >= max) break;
    }
    if (parts.length === 0) throw new Error(`${op}: no images`);
    if (parts.length === 1) return parts.pop()!; // handed to the caller, not freed with the parts
    return E.noGrad(() => E.concat(parts, 0));
  } finally {
    model.train(wasTraining);
  }
}

// ---- evaluation ----

function resolveTaus(taus: readonly number[], op: string): number[] {
  return [...new Set(taus)].map((t) => checkUnit(t, 'tau', op)).sort((a, b) => a - b);
}

/** The options shared by the evaluation and the grid, checked. */
function resolveCommon(opts: { ifidK?: number; ifidAlpha?: number; seed?: number; range?: readonly [number, number] }, op: string) {
  const alpha = checkUnit(opts.ifidAlpha ?? DEFAULT_IFID_ALPHA, 'ifidAlpha', op);
  const [lo, hi] = opts.range ?? [-1, 1];
  if (!(Number.isFinite(lo) && Number.isFinite(hi) && hi > lo)) throw new RangeError(`${op}: range must be [lo, hi] with lo < hi, got [${lo}, ${hi}]`);
  return { k: opts.ifidK ?? DEFAULT_IFID_K, alpha, seed: opts.seed ?? 0, lo, hi };
}

/** Decodes normalized latents without gradient, clamped to [lo, hi]. */
function decodeClamped(model: VQTokenizer, z: E.Tensor, lo: number, hi: number): E.Tensor {
  return E.noGrad(() => E.tidy(() => model.decodeLatents(z).maximum(lo).minimum(hi)));
}

/**
 * Evaluates a continuous tokenizer on `batches` of validation images [B, C, H, W] (in opts.range;
 * not disposed here) against `trainLatents` [M, C, h, w] (normalized latents of the training set,
 * e.g. from encodeLatentSet; null skips iFID). The model runs in eval mode (restored afterwards).
 */
export async function evaluateContinuousTokenizer(model: VQTokenizer, net: ImageFeatureNet, batches: Iterable<E.Tensor> | AsyncIterable<E.Tensor>, trainLatents: E.Tensor | null, opts: ContinuousEvalOptions = {}): Promise<ContinuousEvalResult> {
  const op = 'evaluateContinuousTokenizer';
  checkContinuous(model, op);
  const defaultTau = checkUnit(opts.defaultTau ?? DEFAULT_NFID_TAU, 'defaultTau', op);
  const taus = resolveTaus([...(opts.taus ?? DEFAULT_NFID_TAUS), defaultTau], op);
  const { k, alpha, seed, lo, hi } = resolveCommon(opts, op);
  const wantIs = (opts.inceptionScore ?? true) && typeof net.logits === 'function';
  const statsOpts = { range: [lo, hi] as const, featureInput: opts.featureInput ?? ((x: E.Tensor) => x), keepFeatures: opts.fidError !== undefined };
  using neighbours = trainLatents ? new LatentNeighbours(trainLatents, opts.ifidMaxTrain) : null;
  neighbours?.checkK(k, op);
  if (neighbours && (neighbours.rowShape.length !== 3 || neighbours.rowShape[0] !== model.cfg.codeDim)) throw new Error(`${op}: expected training latents [M, ${model.cfg.codeDim}, h, w], got ${E.fmtShape(trainLatents!.shape)}`);

  const real = new ImageFeatureStats(net, { ...statsOpts, logits: wantIs });
  const recon = new ImageFeatureStats(net, { ...statsOpts, logits: wantIs });
  const noised = new Map(taus.map((t) => [t, new ImageFeatureStats(net, { ...statsOpts, logits: false })] as const));
  const gens = new Map(taus.map((t) => [t, new E.Generator(seed)] as const));
  const interp = new ImageFeatureStats(net, { ...statsOpts, logits: false });
  const ifidGen = new E.Generator(seed);
  let psnrSum = 0;
  let ssimSum = 0;
  let count = 0;
  let ssimPadding: 'valid' | 'same' = 'valid';

  const wasTraining = model.training;
  model.eval();
  try {
    for await (const x of batches) {
      if (x.rank !== 4) throw new Error(`${op}: expected image batches [B, C, H, W], got ${E.fmtShape(x.shape)}`);
      const B = x.shape[0]!;
      if (B === 0) continue;
      ssimPadding = x.shape[2]! >= 11 && x.shape[3]! >= 11 ? 'valid' : 'same';
      const toUnit = (t: E.Tensor) => t.sub(lo).div(hi - lo);
      using out = E.disposable(E.noGrad(() => E.tidy(() => {
        const z = model.encodeLatents(x);
        const rec = model.decodeLatents(z).maximum(lo).minimum(hi);
        const xi = toUnit(x);
        const ri = toUnit(rec);
        return { z, rec, mse: msePerImage(xi, ri), ssim: ssimPerImage(xi, ri, { dataRange: 1, padding: ssimPadding }) };
      })));
      await real.add(x);
      await recon.add(out.rec);
      for (const t of taus) {
        // tau = 0: the clean reconstruction itself, so nFID(0) = rFID exactly.
        if (t === 0) {
          await noised.get(t)!.add(out.rec);
          continue;
        }
        using r = E.tidy(() => decodeClamped(model, nfidLatents(out.z, t, gens.get(t)!), lo, hi));
        await noised.get(t)!.add(r);
      }
      if (neighbours) {
        using zi = await neighbours.interpolate(out.z, k, alpha, ifidGen);
        using r = decodeClamped(model, zi, lo, hi);
        await interp.add(r);
      }
      const m = psnrFromMse(await out.mse.toArray(), 1);
      for (const v of m.perImage) psnrSum += v;
      for (const v of await out.ssim.toArray()) ssimSum += v;
      count += B;
      opts.onBatch?.(count);
    }
  } finally {
    model.train(wasTraining);
  }
  if (count < 2) throw new Error(`${op}: need at least 2 images, got ${count}`);
  const sReal = real.stats();
  const errors = opts.fidError ? pairedFidErrors(real, [recon, ...taus.map((t) => noised.get(t)!), ...(neighbours ? [interp] : [])], opts.fidError) : null;
  const nfid: NfidEntry[] = taus.map((tau, i) => ({ tau, fid: frechetDistanceFromStats(sReal, noised.get(tau)!.stats()), ...(errors ? { error: errors[i + 1]! } : {}) }));
  const result: ContinuousEvalResult = {
    count,
    rfid: frechetDistanceFromStats(sReal, recon.stats()),
    ...(errors ? { rfidError: errors[0]! } : {}),
    nfid,
    nfidDefault: nfid.find((e) => e.tau === defaultTau)!,
    ifid: neighbours ? frechetDistanceFromStats(sReal, interp.stats()) : null,
    ...(errors && neighbours ? { ifidError: errors[taus.length + 1]! } : {}),
    ifidK: k,
    ifidAlpha: alpha,
    ifidTrainCount: neighbours?.count ?? 0,
    psnr: psnrSum / count,
    ssim: ssimSum / count,
    ssimPadding,
    featureDim: sReal.dim,
    seed,
  };
  const isReal = real.inceptionScore(10);
  const isRecon = recon.inceptionScore(10);
  if (isReal && isRecon) result.inceptionScore = { real: isReal, recon: isRecon };
  return result;
}

/**
 * The reconstruction grid of a continuous tokenizer as one batch, row by row (n images each): the
 * originals, their clean reconstructions, the decodings of noised latents at each tau
 * (Generator(seed) per tau), and, given training latents, the iFID interpolations (slerp at
 * ifidAlpha towards a neighbour drawn from Generator(seed)); all clamped to `range`.
 */
export async function continuousReconstructionGrid(
  model: VQTokenizer,
  x: E.Tensor,
  opts: { taus?: readonly number[]; seed?: number; range?: readonly [number, number]; trainLatents?: E.Tensor | null; ifidK?: number; ifidAlpha?: number; ifidMaxTrain?: number } = {},
): Promise<E.Tensor> {
  const op = 'continuousReconstructionGrid';
  checkContinuous(model, op);
  if (x.rank !== 4) throw new Error(`${op}: expected images [B, C, H, W], got ${E.fmtShape(x.shape)}`);
  const taus = (opts.taus ?? DEFAULT_NFID_TAUS).map((t) => checkUnit(t, 'tau', op));
  const { k, alpha, seed, lo, hi } = resolveCommon(opts, op);
  using neighbours = opts.trainLatents ? new LatentNeighbours(opts.trainLatents, opts.ifidMaxTrain) : null;
  const wasTraining = model.training;
  model.eval();
  try {
    neighbours?.checkK(k, op);
    using z = E.noGrad(() => E.tidy(() => model.encodeLatents(x)));
    using rows = E.disposable([decodeClamped(model, z, lo, hi)]);
    for (const t of taus) rows.push(E.tidy(() => decodeClamped(model, nfidLatents(z, t, new E.Generator(seed)), lo, hi)));
    if (neighbours) {
      using zi = await neighbours.interpolate(z, k, alpha, new E.Generator(seed));
      rows.push(decodeClamped(model, zi, lo, hi));
    }
    return E.noGrad(() => E.tidy(() => E.concat([x, ...rows], 0)));
  } finally {
    model.train(wasTraining);
  }
}
