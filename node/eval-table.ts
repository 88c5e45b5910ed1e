/**
 * `webgpu-tok eval-table`: several tokenizer evaluations (eval.json of eval-tokenizer) side by side
 * as one markdown table: rFID, pFID per alpha, the pFID - rFID gaps (how much a tokenizer's
 * reconstructions degrade under token perturbation), PSNR, SSIM, codebook usage and perplexity;
 * with --mean, rows sharing a label prefix before '#' (e.g. "paper#seed0", "paper#seed1") also get
 * a mean row.
 */
import { readFileSync } from 'node:fs';
import { resolveLabeledPath } from './labeled-path.js';

export interface EvalEntry {
  label: string;
  path: string;
  rfid: number;
  pfid: { alpha: number; delta: number; fid: number }[];
  psnr: number;
  ssim: number;
  usage: number;
  usedCodes: number;
  perplexity: number;
  count: number;
}

/** Reads "PATH" or "PATH=LABEL": an eval.json or a folder holding one; label default: the folder name. */
export function readEvalArg(arg: string): EvalEntry {
  const { path, label } = resolveLabeledPath(arg, 'eval.json', (p) => `eval-table: no evaluation at '${p}' (give an eval.json written by eval-tokenizer, or its folder)`);
  let r: Record<string, unknown>;
  try {
    r = JSON.parse(readFileSync(path, 'utf8')) as Record<string, unknown>;
  } catch (e) {
    throw new Error(`eval-table: ${path} is not valid JSON: ${(e as Error).message}`);
  }
  const missing = ['rfid', 'pfid', 'psnr', 'ssim', 'usage', 'usedCodes', 'perplexity', 'count'].filter((k) => !(k in r));
  if (missing.length || !Array.isArray(r.pfid)) throw new Error(`eval-table: ${path} is not an eval-tokenizer result (missing ${missing.join(', ') || 'a pfid list'})`);
  return { label, path, ...(r as unknown as Omit<EvalEntry, 'label' | 'path'>) };
}

const f2 = (v: number) => (Number.isFinite(v) ? v.toFixed(2) : String(v));

/** The comparison table; every entry must share one pFID grid (same alphas and delta). */
export function evalTable(entries: readonly EvalEntry[], opts: { mean?: boolean } = {}): string {
  if (entries.length === 0) throw new Error('eval-table: no evaluations given');
  const grid = entries[0]!.pfid.map((p) => `${p.alpha}/${p.delta}`).join(',');
  for (const e of entries) {
    const g = e.pfid.map((p) => `${p.alpha}/${p.delta}`).join(',');
    if (g !== grid) throw new Error(`eval-table: ${e.path} has the pFID grid (alpha/delta) ${g}, ${entries[0]!.path} has ${grid}: evaluate them with the same --alphas and --delta`);
  }
  const alphas = entries[0]!.pfid.map((p) => p.alpha);
  const delta = entries[0]!.pfid[0]?.delta;
  const header = ['tokenizer', 'rFID', ...alphas.map((a) => `pFID a=${a}`), ...alphas.map((a) => `pFID(${a}) - rFID`), 'PSNR (dB)', 'SSIM', 'usage', 'perplexity', 'images'];
  const row = (label: string, e: Omit<EvalEntry, 'label' | 'path'>, usage: string) =>
    `| ${[label, f2(e.rfid), ...e.pfid.map((p) => f2(p.fid)), ...e.pfid.map((p) => f2(p.fid - e.rfid)), f2(e.psnr), e.ssim.toFixed(3), usage, e.perplexity.toFixed(1), String(e.count)].join(' | ')} |`;
  const lines = [`pFID: every token perturbed at alpha among the delta = ${delta} nearest codes.`, '', `| ${header.join(' | ')} |`, `|${header.map(() => '---').join('|')}|`];
  for (const e of entries) lines.push(row(e.label, e, `${e.usage.toFixed(1)}% (${e.usedCodes})`));
  if (opts.mean) {
    const groups = new Map<string, EvalEntry[]>();
    for (const e of entries) {
      const key = e.label.includes('#') ? e.label.slice(0, e.label.indexOf('#')) : e.label;
      groups.set(key, [...(groups.get(key) ?? []), e]);
    }
    for (const [key, es] of groups) {
      if (es.length < 2) continue;
      const m = (f: (e: EvalEntry) => number) => es.reduce((s, e) => s + f(e), 0) / es.length;
      const mean = { rfid: m((e) => e.rfid), pfid: es[0]!.pfid.map((p, i) => ({ ...p, fid: m((e) => e.pfid[i]!.fid) })), psnr: m((e) => e.psnr), ssim: m((e) => e.ssim), usage: m((e) => e.usage), usedCodes: m((e) => e.usedCodes), perplexity: m((e) => e.perplexity), count: es[0]!.count };
      lines.push(row(`${key}, mean of ${es.length}`, mean, `${mean.usage.toFixed(1)}%`));
    }
  }
  return lines.join('\n') + '\n';
}
