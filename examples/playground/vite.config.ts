/**
 * The playground's Vite config (root: examples/playground). `base: './'` makes every URL of the
 * built site relative, so dist/ can be served from any path (GitHub Pages project sites, a
 * subfolder). The engine, models and nn are imported from the repository's TypeScript sources.
 */
import { defineConfig } from 'vite';

export default defineConfig({
  base: './',
  // ES2022 in dev as in the build: the library's `using` declarations are lowered for browsers
  // that have WebGPU but not explicit resource management yet (Safari).
  oxc: { target: 'es2022' },
  build: { outDir: 'dist', emptyOutDir: true, target: 'es2022', chunkSizeWarningLimit: 2000 },
});
