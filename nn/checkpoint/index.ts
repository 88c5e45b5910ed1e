/** Checkpoints in the safetensors format (browser-safe; file I/O lives in node/checkpoint.ts). */
export * from './safetensors.js';
export * from './metadata.js';
export * from './tensors.js';
