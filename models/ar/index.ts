/** The class-conditional autoregressive generator over tokenizer codes (browser-safe). */
export * from './model.js';
export * from './sample.js';
export * from './train-step.js';
export * from './generate.js';
