/** Public models API (browser-safe): tokenizers, feature networks and metrics. */
export * from './tokenizer/index.js';
export * from './features/inception.js';
export * from './metrics/index.js';
export * from './features/featnet.js';
export * from './ar/index.js';
export * from './diffusion/index.js';
