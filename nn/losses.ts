/**
 * Losses used by the models beyond the engine's (crossEntropy, mseLoss, l1Loss live in
 * engine/ops/loss.ts and are re-exported here): hinge GAN losses as in VQGAN/StyleGAN-T.
 */
import * as E from '../engine/index.js';

export { crossEntropy, mseLoss, l1Loss } from '../engine/index.js';

/** Discriminator hinge loss: mean(relu(1 - D(real))) + mean(relu(1 + D(fake))), halved as in taming-transformers. */
export function hingeDiscriminatorLoss(realLogits: E.Tensor, fakeLogits: E.Tensor): E.Tensor {
  return E.composite(() => E.relu(E.sub(1, realLogits)).mean().add(E.relu(E.add(1, fakeLogits)).mean()).mul(0.5));
}

/** Generator hinge loss: -mean(D(fake)). */
export function hingeGeneratorLoss(fakeLogits: E.Tensor): E.Tensor {
  return E.composite(() => fakeLogits.mean().neg());
}
