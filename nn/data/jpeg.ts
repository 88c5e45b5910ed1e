/**
 * Baseline JPEG decoder in plain TypeScript (browser-safe).
 *
 * Supports sequential Huffman JPEG (SOF0 baseline and SOF1 extended, 8-bit samples), 1 component
 * (gray) or 3 components (YCbCr, or RGB per the Adobe marker), any sampling factors (4:4:4, 4:2:2,
 * 4:2:0, 4:4:0, ...), interleaved and non-interleaved scans, restart intervals. Chroma is
 * upsampled like libjpeg's default "fancy" (triangle) upsampling for 2x1 and 2x2 subsampling
 * (replication otherwise) and converted with libjpeg's fixed-point YCbCr tables, so results match
 * libjpeg (PIL) up to IDCT rounding (the IDCT here is exact float, libjpeg's is 13-bit fixed
 * point). Progressive, lossless, arithmetic-coded, 12-bit and CMYK files are rejected with an error
 * that says so.
 */
import type { Image } from './image.js';

export function isJpeg(bytes: Uint8Array): boolean {
  return bytes.length >= 3 && bytes[0] === 0xff && bytes[1] === 0xd8 && bytes[2] === 0xff;
}

// Zigzag index -> natural (row-major) index.
const ZIGZAG = new Int32Array([
  0, 1, 8, 16, 9, 2, 3, 10, 17, 24, 32, 25, 18, 11, 4, 5, 12, 19, 26, 33, 40, 48, 41, 34, 27, 20, 13, 6, 7, 14, 21, 28, 35, 42, 49, 56, 57, 50, 43, 36, 29,
  22, 15, 23, 30, 37, 44, 51, 58, 59, 52, 45, 38, 31, 39, 46, 53, 60, 61, 54, 47, 55, 62, 63,
]);

const SOF_NAMES: Record<number, string> = {
  0xc2: 'progressive JPEG (SOF2)',
  0xc3: 'lossless JPEG (SOF3)',
  0xc5: 'differential sequential JPEG (SOF5)',
  0xc6: 'differential progressive JPEG (SOF6)',
  0xc7: 'differential lossless JPEG (SOF7)',
  0xc9: 'arithmetic-coded JPEG (SOF9)',
  0xca: 'progressive arithmetic-coded JPEG (SOF10)',
  0xcb: 'lossless arithmetic-coded JPEG (SOF11)',
  0xcd: 'differential arithmetic-coded JPEG (SOF13)',
  0xce: 'differential progressive arithmetic-coded JPEG (SOF14)',
  0xcf: 'differential lossless arithmetic-coded JPEG (SOF15)',
};

interface Huffman {
  /** 9-bit lookahead: (length << 8) | symbol, 0 when the code is longer. */
  look: Uint16Array;
  maxcode: Int32Array; // per length 1..16 (index 17 = sentinel)
  valoffset: Int32Array;
  values: Uint8Array;
}

const LOOK = 9;

function buildHuffman(counts: Uint8Array, values: Uint8Array): Huffman {
  const look = new Uint16Array(1 << LOOK);
  const maxcode = new Int32Array(18).fill(-1);
  const valoffset = new Int32Array(18);
  let code = 0;
  let k = 0;
  for (let len = 1; len <= 16; len++) {
    const n = counts[len - 1]!;
    valoffset[len] = k - code;
    for (let i = 0; i < n; i++) {
      if (len <= LOOK) {
        const shift = LOOK - len;
        const base = code << shift;
        for (let j = 0; j < 1 << shift; j++) look[base + j] = (len << 8) | values[k]!;
      }
      code++;
      k++;
    }
    if (n) maxcode[len] = code - 1;
    if (code > 1 << len) throw new Error('JPEG: invalid Huffman table (over-subscribed)');
    code <<= 1;
  }
  maxcode[17] = 0x7fffffff;
  return { look, maxcode, valoffset, values };
}

class BitReader {
  buf = 0;
  cnt = 0;
  /** Zero bits supplied past a marker or the end of data; consuming them means truncated data. */
  fake = 0;
  hitMarker = false;
  constructor(readonly d: Uint8Array, public pos: number) {}

  private fill(): void {
    while (this.cnt <= 24) {
      let byte = 0;
      let real = false;
      if (!this.hitMarker && this.pos < this.d.length) {
        const b = this.d[this.pos]!;
        if (b !== 0xff) {
          this.pos++;
          byte = b;
          real = true;
        } else if (this.d[this.pos + 1] === 0x00) {
          this.pos += 2; // stuffed 0xFF
          byte = 0xff;
          real = true;
        } else this.hitMarker = true;
      }
      if (!real) this.fake += 8;
      this.buf = ((this.buf << 8) | byte) >>> 0;
      this.cnt += 8;
    }
  }

  private consumed(n: number): void {
    this.cnt -= n;
    if (this.cnt < this.fake) throw new Error('JPEG: entropy-coded data ends early (truncated or corrupt file)');
  }

  bits(n: number): number {
    if (n === 0) return 0;
    if (this.cnt < n) this.fill();
    const v = (this.buf >>> (this.cnt - n)) & ((1 << n) - 1);
    this.consumed(n);
    return v;
  }

  decode(h: Huffman): number {
    if (this.cnt < 16) this.fill();
    const peek = (this.buf >>> (this.cnt - LOOK)) & ((1 << LOOK) - 1);
    const e = h.look[peek]!;
    if (e) {
      this.consumed(e >> 8);
      return e & 0xff;
    }
    let len = LOOK + 1;
    let code = (this.buf >>> (this.cnt - len)) & ((1 << len) - 1);
    while (len <= 16 && code > h.maxcode[len]!) {
      len++;
      code = (this.buf >>> (this.cnt - len)) & ((1 << len) - 1);
    }
    if (len > 16) throw new Error('JPEG: invalid Huffman code (corrupt data)');
    this.consumed(len);
    return h.values[h.valoffset[len]! + code]!;
  }

  /** Restart: drop buffered bits, expect RSTn at the current position. */
  restart(): void {
    this.buf = 0;
    this.cnt = 0;
    this.fake = 0;
    this.hitMarker = false;
    while (this.pos < this.d.length && this.d[this.pos] === 0xff && this.d[this.pos + 1] === 0xff) this.pos++;
    const m = this.d[this.pos + 1]!;
    if (this.d[this.pos] !== 0xff || m < 0xd0 || m > 0xd7) throw new Error(`JPEG: expected a restart marker at byte ${this.pos} (corrupt or truncated file)`);
    this.pos += 2;
  }
}

function extend(v: number, t: number): number {
  return v < 1 << (t - 1) ? v - (1 << t) + 1 : v;
}

interface Component {
  id: number;
  h: number;
  v: number;
  tq: number;
  blocksPerLine: number; // real blocks covering the component
  blocksPerColumn: number;
  planeW: number; // padded to whole MCUs (in samples)
  planeH: number;
  compW: number; // real samples
  compH: number;
  plane: Uint8Array;
  pred: number;
  dc: Huffman | null;
  ac: Huffman | null;
}

// IDCT basis: COS[x * 8 + u] = C(u) / 2 * cos((2x + 1) u pi / 16).
const COS = new Float64Array(64);
for (let x = 0; x < 8; x++) for (let u = 0; u < 8; u++) COS[x * 8 + u] = ((u === 0 ? Math.SQRT1_2 : 1) / 2) * Math.cos(((2 * x + 1) * u * Math.PI) / 16);

const tmpBlock = new Float64Array(64);

/** Inverse DCT of dequantized coefficients (natural order) into 8x8 samples of `plane`. */
function idctBlock(coef: Int32Array, plane: Uint8Array, stride: number, at: number): void {
  const t = tmpBlock;
  // Columns: t[y * 8 + u] = sum_v COS[y, v] * coef[v * 8 + u]
  for (let u = 0; u < 8; u++) {
    let nz = false;
    for (let v = 1; v < 8; v++) if (coef[v * 8 + u] !== 0) nz = true;
    if (!nz) {
      const dc = coef[u]! * COS[0]!;
      for (let y = 0; y < 8; y++) t[y * 8 + u] = dc;
      continue;
    }
    for (let y = 0; y < 8; y++) {
      let s = 0;
      for (let v = 0; v < 8; v++) s += COS[y * 8 + v]! * coef[v * 8 + u]!;
      t[y * 8 + u] = s;
    }
  }
  // Rows.
  for (let y = 0; y < 8; y++) {
    const row = at + y * stride;
    for (let x = 0; x < 8; x++) {
      let s = 0;
      for (let u = 0; u < 8; u++) s += COS[x * 8 + u]! * t[y * 8 + u]!;
      const p = Math.round(s + 128);
      plane[row + x] = p < 0 ? 0 : p > 255 ? 255 : p;
    }
  }
}

/** Decodes a baseline / extended-sequential Huffman JPEG into 8-bit gray (1 channel) or RGB (3). */
export function decodeJpeg(bytes: Uint8Array, opts: { maxPixels?: number } = {}): Image {
  const d = bytes;
  if (!(d[0] === 0xff && d[1] === 0xd8)) throw new Error('JPEG: missing SOI marker (not a JPEG file)');
  let pos = 2;
  const qt: (Int32Array | null)[] = [null, null, null, null];
  const dcTables: (Huffman | null)[] = [null, null, null, null];
  const acTables: (Huffman | null)[] = [null, null, null, null];
  let comps: Component[] = [];
  let width = 0;
  let height = 0;
  let hmax = 1;
  let vmax = 1;
  let mcusX = 0;
  let mcusY = 0;
  let restartInterval = 0;
  let adobeTransform = -1;
  let jfif = false;
  let frame = false;
  let scans = 0;
  const coef = new Int32Array(64);

  const seg = (): Uint8Array => {
    if (pos + 2 > d.length) throw new Error('JPEG: truncated segment header');
    const len = (d[pos]! << 8) | d[pos + 1]!;
    if (len < 2 || pos + len > d.length) throw new Error(`JPEG: truncated segment (length ${len} at byte ${pos})`);
    const body = d.subarray(pos + 2, pos + len);
    pos += len;
    return body;
  };

  for (;;) {
    // Find the next marker (skipping fill bytes and any garbage after a scan).
    while (pos < d.length && d[pos] !== 0xff) pos++;
    while (pos < d.length && d[pos] === 0xff) pos++;
    if (pos >= d.length) {
      if (scans > 0) break; // missing EOI: libjpeg warns and accepts what it decoded
      throw new Error('JPEG: file ends before any image data (truncated file)');
    }
    const marker = d[pos++]!;
    if (marker === 0x00) continue; // a stuffed 0xFF in data after a scan, not a marker
    if (marker === 0xd9) break; // EOI
    if (marker >= 0xd0 && marker <= 0xd7) continue; // stray RSTn
    if (marker === 0x01) continue; // TEM
    if (SOF_NAMES[marker]) throw new Error(`JPEG: ${SOF_NAMES[marker]} is not supported (only baseline/sequential Huffman JPEG)`);
    switch (marker) {
      case 0xc0:
      case 0xc1: {
        const b = seg();
        if (frame) throw new Error('JPEG: more than one frame header');
        frame = true;
        if (b[0] !== 8) throw new Error(`JPEG: ${b[0]}-bit samples are not supported (only 8-bit)`);
        height = (b[1]! << 8) | b[2]!;
        width = (b[3]! << 8) | b[4]!;
        const nc = b[5]!;
        if (height === 0) throw new Error('JPEG: images whose height is given by a DNL marker are not supported');
        if (width === 0) throw new Error('JPEG: zero width');
        if (width * height > (opts.maxPixels ?? 1 << 28)) throw new Error(`JPEG: image ${width}x${height} is too large`);
        if (nc !== 1 && nc !== 3) throw new Error(`JPEG: ${nc}-component images${nc === 4 ? ' (CMYK/YCCK)' : ''} are not supported (only gray or YCbCr/RGB)`);
        if (b.length < 6 + 3 * nc) throw new Error('JPEG: truncated frame header');
        comps = [];
        for (let i = 0; i < nc; i++) {
          const o = 6 + 3 * i;
          const h = b[o + 1]! >> 4;
          const v = b[o + 1]! & 15;
          if (h < 1 || h > 4 || v < 1 || v > 4) throw new Error(`JPEG: invalid sampling factors ${h}x${v}`);
          comps.push({ id: b[o]!, h, v, tq: b[o + 2]! & 3, blocksPerLine: 0, blocksPerColumn: 0, planeW: 0, planeH: 0, compW: 0, compH: 0, plane: new Uint8Array(0), pred: 0, dc: null, ac: null });
        }
        hmax = Math.max(...comps.map((c) => c.h));
        vmax = Math.max(...comps.map((c) => c.v));
        mcusX = Math.ceil(width / (8 * hmax));
        mcusY = Math.ceil(height / (8 * vmax));
        for (const c of comps) {
          c.compW = Math.ceil((width * c.h) / hmax);
          c.compH = Math.ceil((height * c.v) / vmax);
          c.blocksPerLine = Math.ceil(c.compW / 8);
          c.blocksPerColumn = Math.ceil(c.compH / 8);
          c.planeW = mcusX * c.h * 8;
          c.planeH = mcusY * c.v * 8;
          c.plane = new Uint8Array(c.planeW * c.planeH);
        }
        break;
      }
      case 0xc4: {
        const b = seg();
        let o = 0;
        while (o < b.length) {
          const tc = b[o]! >> 4;
          const th = b[o]! & 15;
          if (tc > 1 || th > 3) throw new Error(`JPEG: invalid Huffman table class ${tc} / id ${th}`);
          if (o + 17 > b.length) throw new Error('JPEG: truncated Huffman table');
          const counts = b.subarray(o + 1, o + 17);
          let total = 0;
          for (const c of counts) total += c;
          if (o + 17 + total > b.length || total > 256) throw new Error('JPEG: truncated Huffman table');
          const h = buildHuffman(counts, b.slice(o + 17, o + 17 + total));
          (tc === 0 ? dcTables : acTables)[th] = h;
          o += 17 + total;
        }
        break;
      }
      case 0xdb: {
        const b = seg();
        let o = 0;
        while (o < b.length) {
          const pq = b[o]! >> 4;
          const tq = b[o]! & 15;
          if (tq > 3 || pq > 1) throw new Error(`JPEG: invalid quantization table header ${b[o]}`);
          const n = pq ? 128 : 64;
          if (o + 1 + n > b.length) throw new Error('JPEG: truncated quantization table');
          const q = new Int32Array(64);
          for (let k = 0; k < 64; k++) q[ZIGZAG[k]!] = pq ? (b[o + 1 + 2 * k]! << 8) | b[o + 2 + 2 * k]! : b[o + 1 + k]!;
          qt[tq] = q;
          o += 1 + n;
        }
        break;
      }
      case 0xdd: {
        const b = seg();
        restartInterval = (b[0]! << 8) | b[1]!;
        break;
      }
      case 0xda: {
        if (!frame) throw new Error('JPEG: scan before frame header');
        const b = seg();
        const ns = b[0]!;
        if (ns < 1 || ns > 4 || b.length < 1 + 2 * ns + 3) throw new Error('JPEG: invalid scan header');
        const scomps: Component[] = [];
        for (let i = 0; i < ns; i++) {
          const c = comps.find((x) => x.id === b[1 + 2 * i]);
          if (!c) throw new Error(`JPEG: scan refers to unknown component ${b[1 + 2 * i]}`);
          const td = b[2 + 2 * i]! >> 4;
          const ta = b[2 + 2 * i]! & 15;
          c.dc = dcTables[td & 3] ?? null;
          c.ac = acTables[ta & 3] ?? null;
          if (!c.dc || !c.ac) throw new Error(`JPEG: scan uses an undefined Huffman table (DC ${td}, AC ${ta})`);
          if (!qt[c.tq]) throw new Error(`JPEG: component ${c.id} uses undefined quantization table ${c.tq}`);
          c.pred = 0;
          scomps.push(c);
        }
        pos = decodeScan(d, pos, scomps, ns === 1 ? null : { mcusX, mcusY }, restartInterval, qt as Int32Array[], coef);
        scans++;
        break;
      }
      case 0xee: {
        const b = seg();
        if (b.length >= 12 && String.fromCharCode(...b.subarray(0, 5)) === 'Adobe') adobeTransform = b[11]!;
        break;
      }
      case 0xe0: {
        const b = seg();
        if (b.length >= 5 && String.fromCharCode(...b.subarray(0, 5)) === 'JFIF\0') jfif = true;
        break;
      }
      default:
        if ((marker >= 0xe0 && marker <= 0xef) || marker === 0xfe || marker === 0xdc || marker === 0xdf || marker === 0xc8 || (marker >= 0xf0 && marker <= 0xfd)) {
          seg(); // APPn, COM, DNL, EXP, JPG extensions: skip
          break;
        }
        throw new Error(`JPEG: unexpected marker 0xFF${marker.toString(16).toUpperCase()} at byte ${pos - 2}`);
    }
  }
  if (!frame || scans === 0) throw new Error('JPEG: no image data');

  if (comps.length === 1) {
    const c = comps[0]!;
    const out = new Uint8Array(width * height);
    for (let y = 0; y < height; y++) out.set(c.plane.subarray(y * c.planeW, y * c.planeW + width), y * width);
    return { width, height, channels: 1, data: out };
  }
  const full = comps.map((c) => upsample(c, hmax, vmax, width, height));
  const out = new Uint8Array(width * height * 3);
  const rgb = adobeTransform === 0 || (adobeTransform < 0 && !jfif && comps[0]!.id === 0x52 && comps[1]!.id === 0x47 && comps[2]!.id === 0x42);
  const [p0, p1, p2] = full as [Uint8Array, Uint8Array, Uint8Array];
  if (rgb) {
    for (let i = 0; i < width * height; i++) {
      out[3 * i] = p0[i]!;
      out[3 * i + 1] = p1[i]!;
      out[3 * i + 2] = p2[i]!;
    }
  } else {
    const t = colorTables();
    for (let i = 0; i < width * height; i++) {
      const y = p0[i]!;
      const cb = p1[i]!;
      const cr = p2[i]!;
      const r = y + t.crR[cr]!;
      const g = y + ((t.cbG[cb]! + t.crG[cr]!) >> 16);
      const b = y + t.cbB[cb]!;
      out[3 * i] = r < 0 ? 0 : r > 255 ? 255 : r;
      out[3 * i + 1] = g < 0 ? 0 : g > 255 ? 255 : g;
      out[3 * i + 2] = b < 0 ? 0 : b > 255 ? 255 : b;
    }
  }
  return { width, height, channels: 3, data: out };
}

function decodeScan(
  d: Uint8Array,
  start: number,
  comps: Component[],
  interleaved: { mcusX: number; mcusY: number } | null,
  restartInterval: number,
  qt: Int32Array[],
  coef: Int32Array,
): number {
  const br = new BitReader(d, start);
  const decodeBlock = (c: Component, row: number, col: number) => {
    coef.fill(0);
    const q = qt[c.tq]!;
    const t = br.decode(c.dc!);
    if (t > 16) throw new Error(`JPEG: invalid DC magnitude category ${t} (corrupt data)`);
    const diff = t === 0 ? 0 : extend(br.bits(t), t);
    c.pred += diff;
    coef[0] = c.pred * q[0]!;
    for (let k = 1; k < 64; ) {
      const rs = br.decode(c.ac!);
      const r = rs >> 4;
      const s = rs & 15;
      if (s === 0) {
        if (r === 15) {
          k += 16;
          continue;
        }
        break;
      }
      k += r;
      if (k > 63) throw new Error('JPEG: AC coefficient index out of range (corrupt data)');
      const z = ZIGZAG[k]!;
      coef[z] = extend(br.bits(s), s) * q[z]!;
      k++;
    }
    idctBlock(coef, c.plane, c.planeW, row * 8 * c.planeW + col * 8);
  };
  let mcu = 0;
  const total = interleaved ? interleaved.mcusX * interleaved.mcusY : comps[0]!.blocksPerLine * comps[0]!.blocksPerColumn;
  while (mcu < total) {
    if (restartInterval && mcu > 0 && mcu % restartInterval === 0) {
      br.restart();
      for (const c of comps) c.pred = 0;
    }
    if (interleaved) {
      const my = Math.floor(mcu / interleaved.mcusX);
      const mx = mcu % interleaved.mcusX;
      for (const c of comps) for (let v = 0; v < c.v; v++) for (let h = 0; h < c.h; h++) decodeBlock(c, my * c.v + v, mx * c.h + h);
    } else {
      const c = comps[0]!;
      decodeBlock(c, Math.floor(mcu / c.blocksPerLine), mcu % c.blocksPerLine);
    }
    mcu++;
  }
  // Bytes the reader pre-read are padding; the caller scans forward to the next marker.
  return br.pos;
}

let tables: { crR: Int32Array; cbB: Int32Array; crG: Int32Array; cbG: Int32Array } | null = null;

/** libjpeg's jdcolor.c fixed-point YCbCr -> RGB tables. */
function colorTables(): NonNullable<typeof tables> {
  if (tables) return tables;
  const FIX = (x: number) => Math.round(x * 65536);
  const HALF = 1 << 15;
  const crR = new Int32Array(256);
  const cbB = new Int32Array(256);
  const crG = new Int32Array(256);
  const cbG = new Int32Array(256);
  for (let i = 0; i < 256; i++) {
    const x = i - 128;
    crR[i] = (FIX(1.402) * x + HALF) >> 16;
    cbB[i] = (FIX(1.772) * x + HALF) >> 16;
    crG[i] = -FIX(0.71414) * x;
    cbG[i] = -FIX(0.34414) * x + HALF;
  }
  return (tables = { crR, cbB, crG, cbG });
}

/** A component plane at full resolution (width x height). */
function upsample(c: Component, hmax: number, vmax: number, width: number, height: number): Uint8Array {
  const out = new Uint8Array(width * height);
  const fx = hmax / c.h;
  const fy = vmax / c.v;
  const P = c.plane;
  const W = c.planeW;
  if (fx === 1 && fy === 1) {
    for (let y = 0; y < height; y++) out.set(P.subarray(y * W, y * W + width), y * width);
    return out;
  }
  const cw = c.compW;
  const ch = c.compH;
  if (fx === 2 && (fy === 1 || fy === 2) && cw >= 2) {
    // libjpeg h2v1 / h2v2 fancy upsampling (jdsample.c), clipped to the image.
    const row = new Uint8Array(cw * 2);
    for (let y = 0; y < height; y++) {
      const r = fy === 2 ? y >> 1 : y;
      if (fy === 1) {
        const s = r * W;
        row[0] = P[s]!;
        row[1] = (P[s]! * 3 + P[s + 1]! + 2) >> 2;
        for (let i = 1; i < cw - 1; i++) {
          const v = P[s + i]! * 3;
          row[2 * i] = (v + P[s + i - 1]! + 1) >> 2;
          row[2 * i + 1] = (v + P[s + i + 1]! + 2) >> 2;
        }
        const l = P[s + cw - 1]!;
        row[2 * cw - 2] = (l * 3 + P[s + cw - 2]! + 1) >> 2;
        row[2 * cw - 1] = l;
      } else {
        const nb = y & 1 ? Math.min(r + 1, ch - 1) : Math.max(r - 1, 0);
        const s0 = r * W;
        const s1 = nb * W;
        let last = 0;
        let cur = P[s0]! * 3 + P[s1]!;
        let next = P[s0 + 1]! * 3 + P[s1 + 1]!;
        row[0] = (cur * 4 + 8) >> 4;
        row[1] = (cur * 3 + next + 7) >> 4;
        last = cur;
        cur = next;
        for (let i = 1; i < cw - 1; i++) {
          next = P[s0 + i + 1]! * 3 + P[s1 + i + 1]!;
          row[2 * i] = (cur * 3 + last + 8) >> 4;
          row[2 * i + 1] = (cur * 3 + next + 7) >> 4;
          last = cur;
          cur = next;
        }
        row[2 * cw - 2] = (cur * 3 + last + 8) >> 4;
        row[2 * cw - 1] = (cur * 4 + 7) >> 4;
      }
      out.set(row.subarray(0, width), y * width);
    }
    return out;
  }
  for (let y = 0; y < height; y++) {
    const s = Math.floor(y / fy) * W;
    for (let x = 0; x < width; x++) out[y * width + x] = P[s + Math.floor(x / fx)]!;
  }
  return out;
}
