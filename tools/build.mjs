#!/usr/bin/env node
// `npm run build` (and `prepack`): a clean dist/ from tsconfig.build.json, then reference
// directives at the top of each entry's declarations, for what they name as globals and a user's
// tsconfig may not load: GPUDevice, GPUBuffer, ... (@webgpu/types), and Disposable /
// Symbol.dispose (TypeScript's esnext.disposable lib; not in the ES2022 lib).
import { execFileSync } from 'node:child_process';
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const require = createRequire(import.meta.url);
rmSync(join(root, 'dist'), { recursive: true, force: true });
const tsc = join(dirname(require.resolve('typescript/package.json')), 'bin', 'tsc');
execFileSync(process.execPath, [tsc, '-p', join(root, 'tsconfig.build.json')], { stdio: 'inherit' });

const REF = '/// <reference types="@webgpu/types" />\n/// <reference lib="esnext.disposable" />\n';
const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8'));
const typeFiles = new Set(Object.values(pkg.exports).flatMap((e) => (typeof e === 'object' && e.types ? [e.types] : [])));
for (const rel of typeFiles) {
  const file = join(root, rel);
  const text = readFileSync(file, 'utf8');
  if (!text.startsWith(REF)) writeFileSync(file, REF + text);
}
