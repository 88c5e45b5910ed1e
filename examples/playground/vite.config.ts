/**
 * The playground's Vite config (root: examples/playground). `base: './'` makes every URL of the
 * built site relative, so dist/ can be served from any path (GitHub Pages project sites, a
 * subfolder). The engine, models and nn are imported from the repository's TypeScript sources.
 */
import { defineConfig } from 'vite';

export default defineConfig({
  base: './',
  build: { outDir: 'dist', emptyOutDir: true, target: 'es2022', chunkSizeWarningLimit: 2000 },
});
