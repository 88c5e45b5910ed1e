/** Evaluation metrics: Fréchet distance (FID-style), PSNR, SSIM, codebook statistics, Inception-Score analogue. */
export * from './linalg.js';
export * from './fid.js';
export * from './image.js';
export * from './codes.js';
