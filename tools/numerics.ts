/**
 * Regenerates docs/numerics.md: every op case of test/op-check (the same cases the tests run) on
 * this machine's WebGPU device, with the largest errors measured against the float64 reference
 * and against finite differences, next to the tolerance and its reason.
 *
 *   npx tsx tools/numerics.ts            # measure this device, then rewrite docs/numerics.md
 *   npx tsx tools/numerics.ts --render   # only rewrite the page from the saved measurements
 *
 * Each device's measurements are saved as docs/numerics/<device>.json, so a run on a lent GPU adds
 * its own columns beside lavapipe's.
 */
import { mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { WebGPUBackend } from '../engine/index.js';
import { getDevice } from '../node/index.js';
import { caseName, checkOp, type Measured, type OpCheckResult } from '../test/op-check/kit.js';
import { OP_CASES } from '../test/op-check/cases/index.js';

const DIR = 'docs/numerics';
const PAGE = 'docs/numerics.md';

interface DeviceRun {
  device: string;
  date: string;
  results: OpCheckResult[];
}

function slug(s: string): string {
  return s.toLowerCase().replace(/[^a-z0-9]+/g, '-').replace(/^-|-$/g, '').slice(0, 60);
}

async function measureThisDevice(): Promise<void> {
  const b = await getDevice({ setDefault: false, quiet: true, requireWebGPU: true });
  if (!(b instanceof WebGPUBackend)) throw new Error('numerics: needs a WebGPU device');
  const device = b.softwareAdapter ?? (b.info.description || b.info.device || b.info.vendor);
  const results: OpCheckResult[] = [];
  for (const c of OP_CASES) {
    const t0 = performance.now();
    const r = await checkOp(c, b);
    results.push(r);
    console.log(`${r.ok ? 'ok  ' : 'FAIL'} ${caseName(c).padEnd(28)} forward ${fmt(r.forward)}  grad ${fmt(r.grad)}  fd ${fmt(r.fd)}  (${(performance.now() - t0).toFixed(0)} ms)`);
    for (const f of r.failures) console.log(`     ${f}`);
  }
  mkdirSync(DIR, { recursive: true });
  const run: DeviceRun = { device, date: new Date().toISOString().slice(0, 10), results };
  writeFileSync(join(DIR, `${slug(device)}.json`), `${JSON.stringify(run, null, 1)}\n`);
  const failed = results.filter((r) => !r.ok).length;
  if (failed) console.log(`${failed} case(s) over tolerance`);
}

function fmt(m: Measured | null): string {
  if (!m) return '-';
  return m.maxAbs === 0 ? '0' : m.maxAbs.toExponential(1);
}

/** A measured error and the share of its tolerance it uses (the worst element's). */
function fmtUse(m: Measured | null): string {
  if (!m) return '-';
  if (m.maxAbs === 0) return '0';
  const use = m.ratio * 100;
  return `${fmt(m)} (${use < 0.1 ? '<0.1' : use < 10 ? use.toFixed(1) : use.toFixed(0)}%)`;
}

/** Two significant digits, without trailing zeros: 1.2e-5, 2e-6. */
function num(x: number): string {
  return x.toExponential(1).replace('.0e', 'e');
}

function tolText(t: { atol: number; rtol: number } | undefined): string {
  if (!t) return '-';
  if (t.atol === 0 && t.rtol === 0) return 'exact';
  const parts = [...(t.atol ? [num(t.atol)] : []), ...(t.rtol ? [`${num(t.rtol)}·|ref|`] : [])];
  return parts.join(' + ');
}

/** Table cell text: pipes escaped so they do not split the cell. */
function cell(s: string): string {
  return s.replace(/\|/g, '\\|');
}

function render(): void {
  const runs: DeviceRun[] = readdirSync(DIR)
    .filter((f) => f.endsWith('.json'))
    .sort()
    .map((f) => JSON.parse(readFileSync(join(DIR, f), 'utf8')) as DeviceRun);
  if (runs.length === 0) throw new Error(`numerics: no measurements in ${DIR}; run without --render first`);
  const base = runs[0]!;
  const lines: string[] = [
    '# Numerics: measured error of every op',
    '',
    'Each row is one case of `test/op-check/cases` (deterministic inputs; the test suite runs the same',
    'cases and fails when an error exceeds its tolerance). Columns, largest absolute error over all',
    'elements:',
    '- **forward**: the device result against the float64 CPU reference;',
    '- **gradient**: the device gradient of sum(w · f(x)) (fixed weights w) against the float64 one;',
    '- **FD**: the float64 gradient against central finite differences (eps 1e-6 unless the case sets',
    '  another), device-independent;',
    '- **grad²**: d/dx sum(v · grad f(x)) in float64 against finite differences of the gradient.',
    '',
    'A value passes when |error| <= atol + rtol · |reference| elementwise: the tolerance columns give',
    'atol + rtol·|ref| ("exact": 0). In parentheses, the share of its tolerance the worst element uses',
    '(100% would fail); FD and grad² use the case\'s FD tolerance (1e-6 + 1e-5·|ref| unless it sets one).',
    'Each case file\'s header derives its tolerances; the last column says why in short.',
    `Regenerate with \`npx tsx tools/numerics.ts\` (measured here: ${runs.map((r) => `${r.device}, ${r.date}`).join('; ')}).`,
    '',
  ];
  const devCols = runs.flatMap((r) => [`forward (${r.device})`, `gradient (${r.device})`]);
  const header = ['case', 'ops', ...devCols, 'forward tol', 'gradient tol', 'FD', 'grad²', 'why'];
  lines.push(`| ${header.join(' | ')} |`);
  lines.push(`|${' --- |'.repeat(header.length)}`);
  base.results.forEach((r) => {
    const measured = runs.flatMap((run) => {
      const m = run.results.find((x) => x.name === r.name);
      return [fmtUse(m?.forward ?? null), fmtUse(m?.grad ?? null)];
    });
    const row = [r.name, r.covers.join(', '), ...measured, tolText(r.tol.forward), r.grad ? tolText(r.tol.grad ?? r.tol.forward) : '-', fmtUse(r.fd), fmtUse(r.gradOfGrad), r.tol.why];
    lines.push(`| ${row.map(cell).join(' | ')} |`);
  });
  lines.push('');
  writeFileSync(PAGE, lines.join('\n'));
  console.log(`wrote ${PAGE} (${base.results.length} cases, ${runs.length} device(s))`);
}

if (!process.argv.includes('--render')) await measureThisDevice();
render();
process.exit(0);
