/** The class-conditional flow-matching diffusion transformer over continuous latent grids (browser-safe). */
export * from './model.js';
export * from './flow.js';
export * from './train-step.js';
export * from './sample.js';
export * from './latent-data.js';
export * from './generate.js';
export * from './posttrain.js';
