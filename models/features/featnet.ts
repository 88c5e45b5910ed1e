/**
 * FeatNet: a small LeNet-class CNN classifier for 1x32x32 images in [-1, 1] (Fashion-MNIST / MNIST
 * padded to 32x32), used as the dataset-specific feature network of the metrics: its penultimate
 * activations (`features`, 128-d after ReLU) give a Fréchet distance, its `logits` an
 * Inception-Score analogue. Browser-safe; trained by examples/train-featnet.ts, whose weights ship in
 * models/features/weights/featnet-fashion.safetensors (when a run produced them).
 *
 *   conv1 3x3 1->16 (pad 1) ReLU maxpool2   32x32 -> 16x16
 *   conv2 3x3 16->32 (pad 1) ReLU maxpool2  16x16 -> 8x8
 *   conv3 3x3 32->32 (pad 1) ReLU maxpool2  8x8 -> 4x4
 *   flatten 512 -> fc1 128 ReLU (features) -> fc2 10 (logits)
 *
 * About 81k parameters with the defaults (channels configurable). Parameter names (stable, used by the safetensors
 * file): conv1.weight, conv1.bias, conv2.*, conv3.*, fc1.*, fc2.*.
 */
import * as E from '../../engine/index.js';
import { decodeSafetensors, entriesToTensors } from '../../nn/checkpoint/index.js';
import type { InitOptions } from '../../nn/init.js';
import { Linear } from '../../nn/layers/basic.js';
import { Conv2d } from '../../nn/layers/conv.js';
import { Module } from '../../nn/module.js';

export interface FeatNetConfig {
  inChannels: number;
  imageSize: number;
  channels: [number, number, number];
  featureDim: number;
  numClasses: number;
}

export const FEATNET_DEFAULTS: FeatNetConfig = { inChannels: 1, imageSize: 32, channels: [16, 32, 32], featureDim: 128, numClasses: 10 };

export class FeatNet extends Module {
  readonly cfg: FeatNetConfig;
  readonly conv1: Conv2d;
  readonly conv2: Conv2d;
  readonly conv3: Conv2d;
  readonly fc1: Linear;
  readonly fc2: Linear;

  constructor(cfg: Partial<FeatNetConfig> = {}, init: InitOptions = {}) {
    super();
    this.cfg = { ...FEATNET_DEFAULTS, ...cfg };
    const { inChannels, imageSize, channels, featureDim, numClasses } = this.cfg;
    if (imageSize % 8 !== 0) throw new Error(`FeatNet: imageSize must be a multiple of 8 (three 2x2 poolings), got ${imageSize}`);
    const [c1, c2, c3] = channels;
    this.conv1 = this.module('conv1', new Conv2d(inChannels, c1, 3, { ...init, padding: 1 }));
    this.conv2 = this.module('conv2', new Conv2d(c1, c2, 3, { ...init, padding: 1 }));
    this.conv3 = this.module('conv3', new Conv2d(c2, c3, 3, { ...init, padding: 1 }));
    const s = imageSize / 8;
    this.fc1 = this.module('fc1', new Linear(c3 * s * s, featureDim, init));
    this.fc2 = this.module('fc2', new Linear(featureDim, numClasses, init));
  }

  private check(x: E.Tensor): void {
    const { inChannels: c, imageSize: n } = this.cfg;
    if (x.rank !== 4 || x.shape[1] !== c || x.shape[2] !== n || x.shape[3] !== n) {
      throw new Error(`FeatNet: input must be [N, ${c}, ${n}, ${n}], got ${E.fmtShape(x.shape)}`);
    }
  }

  /** Penultimate features [N, featureDim] (after the ReLU): the FID features. */
  features(x: E.Tensor): E.Tensor {
    this.check(x);
    return E.composite(() => {
      let h = E.maxPool2d(this.conv1.forward(x).relu(), 2);
      h = E.maxPool2d(this.conv2.forward(h).relu(), 2);
      h = E.maxPool2d(this.conv3.forward(h).relu(), 2);
      return this.fc1.forward(h.reshape([x.shape[0]!, -1])).relu();
    });
  }

  /** Class logits [N, numClasses] from the features. */
  head(features: E.Tensor): E.Tensor {
    return this.fc2.forward(features);
  }

  /** Class logits [N, numClasses]: the Inception-Score analogue's classifier. */
  logits(x: E.Tensor): E.Tensor {
    return E.composite(() => this.head(this.features(x)));
  }

  forward(x: E.Tensor): E.Tensor {
    return this.logits(x);
  }
}

/**
 * Runs `fn` over x in batches of `batchSize` without gradients, in eval mode, and concatenates the
 * outputs along dim 0 (e.g. `featnetBatched(net, x, 256, (b) => net.features(b))`).
 */
export function featnetBatched(net: FeatNet, x: E.Tensor, batchSize: number, fn: (b: E.Tensor) => E.Tensor): E.Tensor {
  const n = x.shape[0]!;
  const was = net.training;
  net.eval();
  try {
    return E.noGrad(() => E.tidy(() => {
      const parts: E.Tensor[] = [];
      for (let i = 0; i < n; i += batchSize) parts.push(fn(x.slice([[i, Math.min(n, i + batchSize)]])));
      return parts.length === 1 ? parts[0]! : E.concat(parts, 0);
    }));
  } finally {
    net.train(was);
  }
}

/** Top-1 accuracy of logits [N, C] against i32 labels [N] (reads back once). */
export async function featnetAccuracy(logits: E.Tensor, labels: Int32Array): Promise<number> {
  const [n, c] = logits.shape as [number, number];
  if (labels.length !== n) throw new Error(`accuracy: ${n} logits rows, ${labels.length} labels`);
  const flat = await logits.toArray();
  let ok = 0;
  for (let i = 0; i < n; i++) {
    let best = 0;
    for (let j = 1; j < c; j++) if (flat[i * c + j]! > flat[i * c + best]!) best = j;
    if (best === labels[i]) ok++;
  }
  return n ? ok / n : 0;
}

/**
 * A FeatNet from safetensors bytes (e.g. models/features/weights/featnet-fashion.safetensors read
 * with fs.readFileSync or fetch): the architecture comes from the file's `featnet_config` metadata
 * (written by examples/train-featnet.ts) or `config` (JSON), defaults otherwise, the weights are loaded strictly by
 * name. The model is returned in eval mode.
 */
export function featnetFromSafetensors(bytes: Uint8Array | ArrayBuffer, backend?: E.Backend): FeatNet {
  const { tensors, metadata } = decodeSafetensors(bytes);
  const text = metadata.featnet_config ?? metadata.config;
  const cfg = text ? (JSON.parse(text) as Partial<FeatNetConfig>) : {};
  using state = E.disposable(entriesToTensors(tensors, backend));
  const net = new FeatNet(cfg, backend ? { backend } : {});
  net.loadStateDict(state);
  return net.eval();
}
