/**
 * Data pipeline, browser-safe core: image codecs (PNG, baseline JPEG, zlib), image ops,
 * datasets as typed arrays, seeded splitting / shuffling / flips, batching, GPU upload without
 * churn, image grids, SVG charts and the metrics-log parser. File-system loaders live in node/data.
 */
export * from './zlib.js';
export * from './image.js';
export * from './png.js';
export * from './jpeg.js';
export { decodeImage } from './decode.js';
export * from './rng.js';
export * from './dataset.js';
export * from './folder.js';
export * from './loader.js';
export * from './upload.js';
export * from './grid.js';
export * from './plot/index.js';
export * from './row-loader.js';
