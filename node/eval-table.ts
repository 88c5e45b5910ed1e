/**
 * `webgpu-tok eval-table`: several tokenizer evaluations (eval.json of eval-tokenizer) side by side
 * as one markdown table: rFID, pFID per alpha, the pFID - rFID gaps (how much a tokenizer's
 * reconstructions degrade under token perturbation), PSNR, SSIM, codebook usage and perplexity;
 * with --mean, rows sharing a label prefix before '#' (e.g. "paper#seed0", "paper#seed1") also get
 * a mean row. Evaluations of continuous (KL) tokenizers get their own table (continuousEvalTable):
 * rFID, nFID per tau, the nFID - rFID gaps, iFID and its gap, PSNR, SSIM; the two kinds are not
 * mixed in one table.
 */
import { readFileSync } from 'node:fs';
import { resolveLabeledPath } from './labeled-path.js';

export interface EvalEntry {
  kind: 'vq';
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

export interface ContinuousEvalEntry {
  kind: 'kl';
  label: string;
  path: string;
  rfid: number;
  nfid: { tau: number; fid: number }[];
  ifid: number | null;
  psnr: number;
  ssim: number;
  count: number;
}

/** Reads "PATH" or "PATH=LABEL": an eval.json or a folder holding one; label default: the folder name. */
export function readEvalArg(arg: string): EvalEntry | ContinuousEvalEntry {
  const { path, label } = resolveLabeledPath(arg, 'eval.json', (p) => `eval-table: no evaluation at '${p}' (give an eval.json written by eval-tokenizer, or its folder)`);
  let r: Record<string, unknown>;
  try {
    r = JSON.parse(readFileSync(path, 'utf8')) as Record<string, unknown>;
  } catch (e) {
    throw new Error(`eval-table: ${path} is not valid JSON: ${(e as Error).message}`);
  }
  if (r.quantizer === 'kl') {
    const miss = ['rfid', 'nfid', 'ifid', 'psnr', 'ssim', 'count'].filter((k) => !(k in r));
    if (miss.length || !Array.isArray(r.nfid)) throw new Error(`eval-table: ${path} is not an eval-tokenizer result of a KL tokenizer (missing ${miss.join(', ') || 'an nfid list'})`);
    return { kind: 'kl', label, path, rfid: r.rfid as number, nfid: r.nfid as ContinuousEvalEntry['nfid'], ifid: r.ifid as number | null, psnr: r.psnr as number, ssim: r.ssim as number, count: r.count as number };
  }
  const missing = ['rfid', 'pfid', 'psnr', 'ssim', 'usage', 'usedCodes', 'perplexity', 'count'].filter((k) => !(k in r));
  if (missing.length || !Array.isArray(r.pfid)) throw new Error(`eval-table: ${path} is not an eval-tokenizer result (missing ${missing.join(', ') || 'a pfid list'})`);
  return { kind: 'vq', label, path, ...(r as unknown as Omit<EvalEntry, 'kind' | 'label' | 'path'>) };
}

const f2 = (v: number) => (Number.isFinite(v) ? v.toFixed(2) : String(v));

/** Groups labels by their prefix before '#' (groups of two or more get a mean row). */
function meanGroups<T extends { label: string }>(entries: readonly T[]): [string, T[]][] {
  const groups = new Map<string, T[]>();
  for (const e of entries) {
    const key = e.label.includes('#') ? e.label.slice(0, e.label.indexOf('#')) : e.label;
    groups.set(key, [...(groups.get(key) ?? []), e]);
  }
  return [...groups].filter(([, es]) => es.length >= 2);
}

/** The comparison table of VQ evaluations (evalTable) or of KL ones (continuousEvalTable); the kinds are not mixed. */
export function anyEvalTable(entries: readonly (EvalEntry | ContinuousEvalEntry)[], opts: { mean?: boolean } = {}): string {
  if (entries.length === 0) throw new Error('eval-table: no evaluations given');
  const kl = entries.filter((e): e is ContinuousEvalEntry => e.kind === 'kl');
  const vq = entries.filter((e): e is EvalEntry => e.kind === 'vq');
  if (kl.length && vq.length) throw new Error(`eval-table: ${vq[0]!.path} evaluates a VQ tokenizer (pFID) and ${kl[0]!.path} a KL one (nFID, iFID): compare each kind in its own table`);
  return kl.length ? continuousEvalTable(kl, opts) : evalTable(vq, opts);
}

/** KL evaluations side by side; every entry must share one nFID grid (same taus). */
export function continuousEvalTable(entries: readonly ContinuousEvalEntry[], opts: { mean?: boolean } = {}): string {
  if (entries.length === 0) throw new Error('eval-table: no evaluations given');
  const grid = entries[0]!.nfid.map((n) => n.tau).join(',');
  for (const e of entries) {
    const g = e.nfid.map((n) => n.tau).join(',');
    if (g !== grid) throw new Error(`eval-table: ${e.path} has the nFID taus ${g}, ${entries[0]!.path} has ${grid}: evaluate them with the same --taus`);
  }
  const taus = entries[0]!.nfid.map((n) => n.tau);
  const gap = (v: number | null, r: number) => (v === null ? '-' : f2(v - r));
  const header = ['tokenizer', 'rFID', ...taus.map((t) => `nFID t=${t}`), ...taus.map((t) => `nFID(${t}) - rFID`), 'iFID', 'iFID - rFID', 'PSNR (dB)', 'SSIM', 'images'];
  const row = (label: string, e: Omit<ContinuousEvalEntry, 'kind' | 'label' | 'path'>) =>
    `| ${[label, f2(e.rfid), ...e.nfid.map((n) => f2(n.fid)), ...e.nfid.map((n) => f2(n.fid - e.rfid)), e.ifid === null ? '-' : f2(e.ifid), gap(e.ifid, e.rfid), f2(e.psnr), e.ssim.toFixed(3), String(e.count)].join(' | ')} |`;
  const lines = ['nFID: every latent decoded from (1 - tau) z + tau eps (normalized space); iFID: slerp halfway to a nearby training latent.', '', `| ${header.join(' | ')} |`, `|${header.map(() => '---').join('|')}|`];
  for (const e of entries) lines.push(row(e.label, e));
  if (opts.mean) {
    for (const [key, es] of meanGroups(entries)) {
      const m = (f: (e: ContinuousEvalEntry) => number) => es.reduce((s, e) => s + f(e), 0) / es.length;
      const ifid = es.every((e) => e.ifid !== null) ? m((e) => e.ifid!) : null;
      lines.push(row(`${key}, mean of ${es.length}`, { rfid: m((e) => e.rfid), nfid: es[0]!.nfid.map((n, i) => ({ ...n, fid: m((e) => e.nfid[i]!.fid) })), ifid, psnr: m((e) => e.psnr), ssim: m((e) => e.ssim), count: es[0]!.count }));
    }
  }
  return lines.join('\n') + '\n';
}

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
  const row = (label: string, e: Omit<EvalEntry, 'kind' | 'label' | 'path'>, usage: string) =>
    `| ${[label, f2(e.rfid), ...e.pfid.map((p) => f2(p.fid)), ...e.pfid.map((p) => f2(p.fid - e.rfid)), f2(e.psnr), e.ssim.toFixed(3), usage, e.perplexity.toFixed(1), String(e.count)].join(' | ')} |`;
  const lines = [`pFID: every token perturbed at alpha among the delta = ${delta} nearest codes.`, '', `| ${header.join(' | ')} |`, `|${header.map(() => '---').join('|')}|`];
  for (const e of entries) lines.push(row(e.label, e, `${e.usage.toFixed(1)}% (${e.usedCodes})`));
  if (opts.mean) {
    for (const [key, es] of meanGroups(entries)) {
      const m = (f: (e: EvalEntry) => number) => es.reduce((s, e) => s + f(e), 0) / es.length;
      const mean = { rfid: m((e) => e.rfid), pfid: es[0]!.pfid.map((p, i) => ({ ...p, fid: m((e) => e.pfid[i]!.fid) })), psnr: m((e) => e.psnr), ssim: m((e) => e.ssim), usage: m((e) => e.usage), usedCodes: m((e) => e.usedCodes), perplexity: m((e) => e.perplexity), count: es[0]!.count };
      lines.push(row(`${key}, mean of ${es.length}`, mean, `${mean.usage.toFixed(1)}%`));
    }
  }
  return lines.join('\n') + '\n';
}
