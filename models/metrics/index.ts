/** Evaluation metrics: Fréchet distance (FID-style), PSNR, SSIM, codebook statistics, Inception-Score analogue, correlation, resampling statistics (bootstrap, permutation), class consistency. */
export * from './linalg.js';
export * from './fid.js';
export * from './image.js';
export * from './codes.js';
export * from './correlation.js';
export * from './image-features.js';
export * from './class-balance.js';
export * from './seeded-random.js';
export * from './normal.js';
export * from './bootstrap.js';
export * from './permutation.js';
export * from './correlation-stats.js';
export * from './fid-bootstrap.js';
export * from './reconstruction-fid-error.js';
export * from './class-consistency.js';
export * from './student-t.js';
