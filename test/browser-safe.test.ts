/**
 * engine/, shaders/, nn/ and models/ must bundle for browsers: no Node built-ins, no file I/O, no
 * Dawn. Node-only code lives under node/. This scans every import/require in those folders.
 */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';

const ROOT = join(import.meta.dirname, '..');
const NODE_BUILTINS = new Set([
  'fs', 'path', 'os', 'child_process', 'crypto', 'url', 'util', 'stream', 'events', 'worker_threads', 'module',
  'process', 'buffer', 'zlib', 'http', 'https', 'net', 'tls', 'readline', 'perf_hooks', 'v8', 'vm', 'assert',
]);
const FORBIDDEN_PACKAGES = new Set(['webgpu']);

function walk(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const p = join(dir, name);
    return statSync(p).isDirectory() ? walk(p) : p.endsWith('.ts') ? [p] : [];
  });
}

/** Module specifiers used by static imports, re-exports, dynamic import() and require(). */
export function importSpecifiers(source: string): string[] {
  const out: string[] = [];
  const patterns = [/\bfrom\s+['"]([^'"]+)['"]/g, /\bimport\s*\(\s*['"]([^'"]+)['"]\s*\)/g, /\bimport\s+['"]([^'"]+)['"]/g, /\brequire\s*\(\s*['"]([^'"]+)['"]\s*\)/g];
  for (const re of patterns) for (const m of source.matchAll(re)) out.push(m[1]!);
  return out;
}

function isForbidden(spec: string): boolean {
  if (spec.startsWith('node:')) return true;
  const pkg = spec.split('/')[0]!;
  return NODE_BUILTINS.has(pkg) || FORBIDDEN_PACKAGES.has(pkg) || /(^|\/)node\/index(\.js)?$/.test(spec) || spec.startsWith('../node/') || spec.startsWith('../../node/');
}

describe('browser-safe core', () => {
  it('the detector catches Node imports (so the scan below can fail)', () => {
    const bad = `import { readFileSync } from 'node:fs';\nconst p = await import('path');\nexport * from '../node/index.js';\nimport 'webgpu';`;
    expect(importSpecifiers(bad).filter(isForbidden).sort()).toEqual(['../node/index.js', 'node:fs', 'path', 'webgpu']);
    expect(importSpecifiers(`import { x } from './ops/unary.js';`).filter(isForbidden)).toEqual([]);
  });

  it('engine/, shaders/, nn/ and models/ import nothing from Node', () => {
    const files = ['engine', 'shaders', 'nn', 'models'].flatMap((d) => walk(join(ROOT, d)));
    expect(files.length).toBeGreaterThan(10);
    const nodeDir = join(ROOT, 'node');
    const offenders: string[] = [];
    for (const f of files) {
      for (const spec of importSpecifiers(readFileSync(f, 'utf8'))) {
        const intoNode = spec.startsWith('.') && resolve(dirname(f), spec).startsWith(nodeDir + '/');
        if (isForbidden(spec) || intoNode) offenders.push(`${relative(ROOT, f)} imports '${spec}'`);
      }
    }
    expect(offenders).toEqual([]);
  });

  it('engine code does not touch Node globals (process, Buffer, __dirname)', () => {
    const offenders: string[] = [];
    for (const f of [...walk(join(ROOT, 'engine')), ...walk(join(ROOT, 'shaders'))]) {
      const src = readFileSync(f, 'utf8').replace(/\/\*[\s\S]*?\*\/|\/\/.*$/gm, '');
      for (const g of [/\bprocess\./, /\bBuffer\./, /\b__dirname\b/, /\brequire\(/]) if (g.test(src)) offenders.push(`${relative(ROOT, f)} uses ${g.source}`);
    }
    expect(offenders).toEqual([]);
  });
});
