/** Public nn API: modules, layers, initializers (and, as they land, losses, optimizers, data). */
export * from './module.js';
export * from './init.js';
export * from './layers/basic.js';
export * from './layers/conv.js';
export * from './layers/norm.js';
export * from './layers/resblock.js';
export * from './layers/rope.js';
export * from './layers/attention.js';
export * from './layers/transformer.js';
export * from './checkpoint/index.js';
export * from './optim/index.js';
export * from './train/progress.js';
export * from './data/index.js';
export * from './train/state.js';
export * from './losses.js';
