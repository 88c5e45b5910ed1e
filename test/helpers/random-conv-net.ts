/**
 * A fixed random conv feature extractor for evaluation tests (a stand-in for FeatNet /
 * Inception): 8 channels of 5x5 stride-2 convolution, ReLU, 4x4 average pooling, flattened;
 * `featureDim` = 8 * (H / 8) * (W / 8) for H x W images (128 at 32x32, 32 at 16x16).
 */
import * as E from '../../engine/index.js';
import type { ImageFeatureNet } from '../../models/metrics/index.js';

export class RandomConvNet implements ImageFeatureNet {
  readonly w: E.Tensor;
  readonly head: E.Tensor;
  constructor(b: E.Backend, seed = 3, featureDim = 128) {
    const g = new E.Generator(seed);
    this.w = E.keep(E.randn([8, 1, 5, 5], { generator: g, backend: b }).mul(0.2));
    this.head = E.keep(E.randn([featureDim, 10], { generator: g, backend: b }).mul(0.1));
  }
  features(x: E.Tensor): E.Tensor {
    return E.tidy(() => E.avgPool2d(E.conv2d(x, this.w, null, { stride: 2, padding: 2 }).relu(), 4).reshape([x.shape[0]!, -1]));
  }
  logits(x: E.Tensor): E.Tensor {
    return E.tidy(() => E.matmul(this.features(x), this.head));
  }
  dispose(): void {
    this.w.dispose();
    this.head.dispose();
  }
}
