#!/usr/bin/env node
// Launcher of the `webgpu-tok` CLI (node/cli.ts). In a source checkout (node/cli.ts present and
// tsx installed) it runs the TypeScript through tsx, so it never runs a stale build; in an
// installed package it runs the built dist/node/cli.js (`npm run build`).
import { existsSync } from 'node:fs';

const src = new URL('../node/cli.ts', import.meta.url);
const dist = new URL('../dist/node/cli.js', import.meta.url);
let mod;
if (existsSync(src) && process.env.WEBGPU_TOK_USE_DIST !== '1') {
  let tsImport;
  try {
    ({ tsImport } = await import('tsx/esm/api'));
  } catch {
    tsImport = null;
  }
  if (tsImport) mod = await tsImport(src.href, import.meta.url);
}
if (!mod) {
  if (!existsSync(dist)) {
    console.error('webgpu-tok: neither tsx (to run node/cli.ts) nor the build dist/node/cli.js is available; run `npm install` or `npm run build`');
    process.exit(1);
  }
  mod = await import(dist.href);
}
process.exitCode = await mod.main(process.argv.slice(2));
