/** Node-only data pipeline: dataset loaders with on-disk caches, ImageFolder, image/plot files. */
export * from './files.js';
export * from './mnist.js';
export * from './image-folder.js';
export * from '../../nn/data/index.js';
