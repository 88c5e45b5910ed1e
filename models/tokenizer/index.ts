/** The VQ tokenizer (browser-safe): CNN and ViT encoders/decoders, quantizer, latent perturbation, model. */
export * from './cnn.js';
export * from './vit.js';
export * from './quantizer.js';
export * from './perturbation.js';
export * from './model.js';
export * from './train-step.js';
export * from './perceptual.js';
export * from './discriminator.js';
export * from './eval.js';
export * from './posttrain.js';
export * from './gaussian.js';
export * from './latent-noise.js';
export * from './latent-stats.js';
export * from './eval-continuous.js';
