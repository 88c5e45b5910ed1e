/** The VQ tokenizer (browser-safe): CNN encoder/decoder, quantizer, latent perturbation, model. */
export * from './cnn.js';
export * from './quantizer.js';
export * from './perturbation.js';
export * from './model.js';
export * from './train-step.js';
export * from './eval.js';
