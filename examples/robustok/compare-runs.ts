/**
 * Two runs of the same study side by side (run to run variation: another seed, another device,
 * or code whose roundings differ): for every VQ tokenizer variant finished in both, rFID and
 * pFID (alpha 0.3) with their bootstrap SEs, and the AR generator's gFID ± SE where both have one;
 * the same for the continuous arm's KL tokenizers (rFID, nFID at tau 0.2) and diffusion
 * generators; as markdown tables with the differences.
 *
 *   npx tsx examples/robustok/compare-runs.ts docs/results/medium runs/robustok-medium-capture
 *
 * Reads <dir>/[continuous/]tokenizers/<variant>/record.json and <dir>/[continuous/]generators/<variant>/record.json.
 */
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { readJsonIfExists } from './context.js';

interface Fid {
  value: number;
  se: number | null;
}

interface Row {
  rfid: Fid;
  pfid: Fid | null;
  gfid: Fid | null;
}

const seOf = (e: unknown): number | null => ((e as { standardError?: number } | undefined)?.standardError ?? null);

/** The robustness metric of a record: pFID at alpha 0.3 (VQ) or nFID at tau 0.2 (KL). */
function robustOf(ev: { pfid?: { alpha: number; fid: number; error?: unknown }[]; nfid?: { tau: number; fid: number; error?: unknown }[] }) {
  const p = ev.pfid?.find((x) => Math.abs(x.alpha - 0.3) < 1e-9) ?? ev.nfid?.find((x) => Math.abs(x.tau - 0.2) < 1e-9) ?? null;
  return p ? { fid: p.fid, error: p.error } : null;
}

function rowOf(dir: string, variant: string): Row | null {
  const t = readJsonIfExists(join(dir, 'tokenizers', variant, 'record.json'), 'compare-runs');
  if (!t) return null;
  const ev = t.eval as { rfid: number; rfidError?: unknown };
  const p = robustOf(t.eval as Parameters<typeof robustOf>[0]);
  const g = readJsonIfExists(join(dir, 'generators', variant, 'record.json'), 'compare-runs');
  return {
    rfid: { value: ev.rfid, se: seOf(ev.rfidError) },
    pfid: p ? { value: p.fid, se: seOf(p.error) } : null,
    gfid: g ? { value: g.gfid as number, se: seOf(g.gfidError) } : null,
  };
}

const fmt = (f: Fid | null) => (f ? `${f.value.toFixed(2)}${f.se !== null ? ` ± ${f.se.toFixed(2)}` : ''}` : '-');
function diff(a: Fid | null, b: Fid | null): string {
  if (!a || !b) return '-';
  const d = b.value - a.value;
  return Math.abs(d) < 0.005 ? '0.00' : `${d > 0 ? '+' : ''}${d.toFixed(2)}`;
}

const [a, b] = process.argv.slice(2);
if (!a || !b) {
  console.error('usage: npx tsx examples/robustok/compare-runs.ts <first run dir> <second run dir>');
  process.exit(2);
}
for (const d of [a, b]) {
  if (!existsSync(join(d, 'tokenizers'))) {
    console.error(`compare-runs: ${d} has no tokenizers/ folder (not a study output)`);
    process.exit(2);
  }
}
/** One arm's table: the variants finished in both runs. */
function table(da: string, db: string, robust: string): void {
  const variants = readdirSync(join(da, 'tokenizers')).filter((v) => existsSync(join(db, 'tokenizers', v, 'record.json')));
  console.log(`| tokenizer | rFID first | rFID second | diff | ${robust} first | second | diff | gFID first | gFID second | diff |`);
  console.log('|---|---|---|---|---|---|---|---|---|---|');
  for (const v of variants) {
    const x = rowOf(da, v);
    const y = rowOf(db, v);
    if (!x || !y) continue;
    console.log(`| ${v} | ${fmt(x.rfid)} | ${fmt(y.rfid)} | ${diff(x.rfid, y.rfid)} | ${fmt(x.pfid)} | ${fmt(y.pfid)} | ${diff(x.pfid, y.pfid)} | ${fmt(x.gfid)} | ${fmt(y.gfid)} | ${diff(x.gfid, y.gfid)} |`);
  }
}

table(a, b, 'pFID a=0.3');
const [ka, kb] = [join(a, 'continuous'), join(b, 'continuous')];
if (existsSync(join(ka, 'tokenizers')) && existsSync(join(kb, 'tokenizers'))) {
  console.log('');
  table(ka, kb, 'nFID t=0.2');
}
