// Bundles the benchmark (bench/run.ts + the engine + tinybench + tfjs + jax-js) into one plain-node
// ES module, bench/dist/bench.mjs (ignored by git), so it runs without tsx or node_modules: only the
// native `webgpu` package stays external (the GPU bundle of ../shared/gpu/make-bundle.sh brings it).
//
//   node bench/build.mjs && node bench/dist/bench.mjs
import { build } from 'esbuild';
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const version = (p) => JSON.parse(readFileSync(join(root, p, 'package.json'), 'utf8')).version;
const versions = {
  '.': version('.'),
  '@tensorflow/tfjs-core': version('node_modules/@tensorflow/tfjs-core'),
  '@tensorflow/tfjs-backend-webgpu': version('node_modules/@tensorflow/tfjs-backend-webgpu'),
  '@jax-js/jax': version('node_modules/@jax-js/jax'),
};

const outfile = join(root, 'bench', 'dist', 'bench.mjs');
await build({
  entryPoints: [join(root, 'bench', 'run.ts')],
  outfile,
  bundle: true,
  platform: 'node',
  format: 'esm',
  target: 'node20',
  external: ['webgpu'],
  // tfjs's CommonJS builds call require() for Node built-ins: give the ES module a real require.
  banner: { js: "import { createRequire as __benchCreateRequire } from 'node:module'; const require = __benchCreateRequire(import.meta.url);" },
  define: { BENCH_BUNDLED_VERSIONS: JSON.stringify(versions) },
  logLevel: 'warning',
  legalComments: 'none',
});
console.log(`wrote ${outfile}`);
