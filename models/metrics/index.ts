/** Evaluation metrics: Fréchet distance (FID-style), PSNR, SSIM, codebook statistics, Inception-Score analogue, correlation. */
export * from './linalg.js';
export * from './fid.js';
export * from './image.js';
export * from './codes.js';
export * from './correlation.js';
export * from './image-features.js';
export * from './class-balance.js';
