/**
 * A small HTML report builder: a title, sections with headings, paragraphs, tables built from row
 * objects, inline SVG charts, images by relative path and <pre> blocks for commands. All text is
 * escaped; the page is self-contained (inline CSS) apart from the referenced images.
 *
 *   const r = new Report('RobusTok at small scale');
 *   r.section('Tokenizers').table(rows, { caption: 'rFID / pFID' }).svg(scatterChart(...));
 *   r.write('out/experiment');   // -> out/experiment/report.html, written atomically
 */
import { extname, join } from 'node:path';
import { writeFileAtomicSync } from '../data/files.js';
import { escapeXml } from '../../nn/data/plot/index.js';

export type Cell = string | number | boolean | null | undefined;
export type Row = Record<string, Cell>;

export interface TableOptions {
  /** Column order (default: keys in order of first appearance over all rows). */
  columns?: string[];
  caption?: string;
  /** Significant digits for non-integer numbers (default 4). */
  digits?: number;
}

/**
 * Formats a number for a table: integers in full (up to 1e15), others with `digits` significant
 * digits and no trailing zeros, exponent form below 1e-3 or from 1e6; NaN and ±∞ spelled out.
 */
export function formatCell(v: number, digits = 4): string {
  if (Number.isNaN(v)) return 'NaN';
  if (!Number.isFinite(v)) return v > 0 ? '∞' : '−∞';
  if (Number.isInteger(v) && Math.abs(v) < 1e15) return String(v);
  const a = Math.abs(v);
  if (a < 1e-3 || a >= 1e6) return v.toExponential(Math.max(0, digits - 1)).replace(/\.?0+e/, 'e');
  return String(Number(v.toPrecision(digits)));
}

function cellHtml(c: Cell, digits: number): { html: string; numeric: boolean } {
  if (c === null || c === undefined) return { html: '', numeric: false };
  if (typeof c === 'number') return { html: escapeXml(formatCell(c, digits)), numeric: true };
  return { html: escapeXml(String(c)), numeric: false };
}

/** A <table> from row objects; numeric cells are right-aligned. */
export function tableHtml(rows: readonly Row[], opts: TableOptions = {}): string {
  const digits = opts.digits ?? 4;
  const columns = opts.columns ?? [...new Set(rows.flatMap((r) => Object.keys(r)))];
  const out = ['<table>'];
  if (opts.caption) out.push(`<caption>${escapeXml(opts.caption)}</caption>`);
  out.push(`<thead><tr>${columns.map((c) => `<th>${escapeXml(c)}</th>`).join('')}</tr></thead>`, '<tbody>');
  for (const r of rows) {
    const cells = columns.map((c) => {
      const { html, numeric } = cellHtml(r[c], digits);
      return numeric ? `<td class="num">${html}</td>` : `<td>${html}</td>`;
    });
    out.push(`<tr>${cells.join('')}</tr>`);
  }
  out.push('</tbody>', '</table>');
  return out.join('\n');
}

const STYLE = `body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222;line-height:1.45}
h1{border-bottom:2px solid #ddd;padding-bottom:.2em}h2{margin-top:2em;border-bottom:1px solid #eee}
table{border-collapse:collapse;margin:1em 0;font-size:14px}caption{text-align:left;font-weight:bold;padding:.3em 0}
th,td{border:1px solid #ccc;padding:.25em .6em}th{background:#f4f4f4}td.num{text-align:right;font-variant-numeric:tabular-nums}
pre{background:#f6f8fa;padding:.8em;overflow-x:auto;border-radius:4px}figure{margin:1em 0}figcaption{font-size:13px;color:#555}
img{image-rendering:pixelated;max-width:100%}`;

interface Section {
  title: string;
  blocks: string[];
}

export interface ImageOptions {
  alt?: string;
  caption?: string;
  /** Displayed width in CSS pixels (small images are scaled up, pixelated). */
  width?: number;
}

/** Builds one HTML page. Methods append to the current section and return `this`. */
export class Report {
  private readonly intro: string[] = [];
  private readonly sections: Section[] = [];

  constructor(readonly title: string) {}

  private get blocks(): string[] {
    return this.sections.length ? this.sections[this.sections.length - 1]!.blocks : this.intro;
  }

  /** Starts a new section (<h2>); later blocks go into it. */
  section(title: string): this {
    this.sections.push({ title, blocks: [] });
    return this;
  }

  /** A sub-heading inside the current section (level 3..6). */
  heading(text: string, level: 3 | 4 | 5 | 6 = 3): this {
    this.blocks.push(`<h${level}>${escapeXml(text)}</h${level}>`);
    return this;
  }

  paragraph(text: string): this {
    this.blocks.push(`<p>${escapeXml(text)}</p>`);
    return this;
  }

  table(rows: readonly Row[], opts: TableOptions = {}): this {
    this.blocks.push(tableHtml(rows, opts));
    return this;
  }

  /** Inlines an SVG document produced by lineChart / scatterChart (or any trusted SVG text). */
  svg(svgText: string, caption?: string): this {
    const body = svgText.replace(/^\s*<\?xml[^>]*\?>\s*/, '');
    this.blocks.push(`<figure>${body}${caption ? `<figcaption>${escapeXml(caption)}</figcaption>` : ''}</figure>`);
    return this;
  }

  /** An image referenced by a path relative to the report file. */
  image(relPath: string, opts: ImageOptions = {}): this {
    const src = relPath.split(/[\\/]/).map(encodeURIComponent).join('/');
    const width = opts.width ? ` width="${Math.round(opts.width)}"` : '';
    const img = `<img src="${escapeXml(src)}" alt="${escapeXml(opts.alt ?? opts.caption ?? relPath)}"${width}>`;
    this.blocks.push(`<figure>${img}${opts.caption ? `<figcaption>${escapeXml(opts.caption)}</figcaption>` : ''}</figure>`);
    return this;
  }

  /** Preformatted text, e.g. the command that produced the report. */
  pre(text: string): this {
    this.blocks.push(`<pre>${escapeXml(text)}</pre>`);
    return this;
  }

  /** Trusted raw HTML (not escaped). */
  raw(html: string): this {
    this.blocks.push(html);
    return this;
  }

  toHtml(): string {
    const parts = [
      '<!DOCTYPE html>',
      '<html lang="en">',
      '<head>',
      '<meta charset="utf-8">',
      `<title>${escapeXml(this.title)}</title>`,
      `<style>${STYLE}</style>`,
      '</head>',
      '<body>',
      `<h1>${escapeXml(this.title)}</h1>`,
      ...this.intro,
    ];
    for (const s of this.sections) parts.push('<section>', `<h2>${escapeXml(s.title)}</h2>`, ...s.blocks, '</section>');
    parts.push('</body>', '</html>', '');
    return parts.join('\n');
  }

  /**
   * Writes the page atomically (temp file + rename; parent directories created). `path` is a
   * directory (the file is `report.html` inside it) or a path ending in .html. Returns the file path.
   */
  write(path: string): string {
    const file = extname(path).toLowerCase() === '.html' ? path : join(path, 'report.html');
    writeFileAtomicSync(file, this.toHtml());
    return file;
  }
}
