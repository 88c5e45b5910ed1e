/**
 * PNG decoder and encoder in plain TypeScript (browser-safe).
 *
 * Decoding supports every standard colour type and bit depth (gray 1/2/4/8/16, RGB 8/16, palette
 * 1/2/4/8 with tRNS alpha, gray+alpha 8/16, RGBA 8/16) and Adam7 interlacing. Samples come out as
 * 8-bit interleaved (HWC) bytes: low bit depths are scaled to 0..255 and 16-bit samples keep
 * their high byte. Chunk CRCs and the zlib checksum are verified, so corruption is an error.
 * Encoding writes 8-bit gray / gray+alpha / RGB / RGBA with per-row adaptive filters.
 */
import type { Image } from './image.js';
import { crc32, zlibDeflate, zlibInflate } from './zlib.js';

const SIGNATURE = [137, 80, 78, 71, 13, 10, 26, 10];

export function isPng(bytes: Uint8Array): boolean {
  return bytes.length >= 8 && SIGNATURE.every((b, i) => bytes[i] === b);
}

function u32(b: Uint8Array, at: number): number {
  return ((b[at]! << 24) | (b[at + 1]! << 16) | (b[at + 2]! << 8) | b[at + 3]!) >>> 0;
}

function paeth(a: number, b: number, c: number): number {
  const p = a + b - c;
  const pa = Math.abs(p - a);
  const pb = Math.abs(p - b);
  const pc = Math.abs(p - c);
  return pa <= pb && pa <= pc ? a : pb <= pc ? b : c;
}

/** Reverses the filter of each scanline in place; `raw` holds (1 + rowBytes) * height bytes. */
function unfilter(raw: Uint8Array, start: number, rowBytes: number, height: number, bpp: number, out: Uint8Array): void {
  let prevRow = -1;
  for (let y = 0; y < height; y++) {
    const f = raw[start + y * (rowBytes + 1)]!;
    const src = start + y * (rowBytes + 1) + 1;
    const dst = y * rowBytes;
    switch (f) {
      case 0:
        out.set(raw.subarray(src, src + rowBytes), dst);
        break;
      case 1:
        for (let i = 0; i < rowBytes; i++) out[dst + i] = (raw[src + i]! + (i >= bpp ? out[dst + i - bpp]! : 0)) & 255;
        break;
      case 2:
        for (let i = 0; i < rowBytes; i++) out[dst + i] = (raw[src + i]! + (prevRow >= 0 ? out[prevRow + i]! : 0)) & 255;
        break;
      case 3:
        for (let i = 0; i < rowBytes; i++) {
          const a = i >= bpp ? out[dst + i - bpp]! : 0;
          const b = prevRow >= 0 ? out[prevRow + i]! : 0;
          out[dst + i] = (raw[src + i]! + ((a + b) >> 1)) & 255;
        }
        break;
      case 4:
        for (let i = 0; i < rowBytes; i++) {
          const a = i >= bpp ? out[dst + i - bpp]! : 0;
          const b = prevRow >= 0 ? out[prevRow + i]! : 0;
          const c = i >= bpp && prevRow >= 0 ? out[prevRow + i - bpp]! : 0;
          out[dst + i] = (raw[src + i]! + paeth(a, b, c)) & 255;
        }
        break;
      default:
        throw new Error(`PNG: invalid filter type ${f} on row ${y}`);
    }
    prevRow = dst;
  }
}

const ADAM7 = [
  [0, 0, 8, 8],
  [4, 0, 8, 8],
  [0, 4, 4, 8],
  [2, 0, 4, 4],
  [0, 2, 2, 4],
  [1, 0, 2, 2],
  [0, 1, 1, 2],
] as const; // [x0, y0, dx, dy]

export interface DecodePngOptions {
  /** Refuse images with more pixels than this (default 2^28). */
  maxPixels?: number;
}

/** Decodes a PNG file into 8-bit interleaved samples (channels: 1 gray, 2 gray+alpha, 3 RGB, 4 RGBA). */
export function decodePng(bytes: Uint8Array, opts: DecodePngOptions = {}): Image {
  if (!isPng(bytes)) throw new Error('PNG: missing PNG signature (not a PNG file)');
  let pos = 8;
  let width = 0;
  let height = 0;
  let depth = 0;
  let colorType = -1;
  let interlace = 0;
  let palette: Uint8Array | null = null;
  let trns: Uint8Array | null = null;
  const idat: Uint8Array[] = [];
  let sawEnd = false;
  while (pos < bytes.length) {
    if (pos + 12 > bytes.length) throw new Error(`PNG: truncated chunk header at byte ${pos}`);
    const len = u32(bytes, pos);
    const type = String.fromCharCode(bytes[pos + 4]!, bytes[pos + 5]!, bytes[pos + 6]!, bytes[pos + 7]!);
    if (pos + 12 + len > bytes.length) throw new Error(`PNG: truncated ${type} chunk (needs ${len} bytes, file ends first)`);
    const body = bytes.subarray(pos + 8, pos + 8 + len);
    const crc = u32(bytes, pos + 8 + len);
    if (crc32(bytes.subarray(pos + 4, pos + 8 + len)) !== crc) throw new Error(`PNG: CRC mismatch in ${type} chunk (corrupt file)`);
    pos += 12 + len;
    if (type === 'IHDR') {
      if (len !== 13) throw new Error(`PNG: IHDR has length ${len}, expected 13`);
      width = u32(body, 0);
      height = u32(body, 4);
      depth = body[8]!;
      colorType = body[9]!;
      if (body[10] !== 0 || body[11] !== 0) throw new Error('PNG: unknown compression or filter method');
      interlace = body[12]!;
      if (interlace > 1) throw new Error(`PNG: unknown interlace method ${interlace}`);
    } else if (type === 'PLTE') palette = body.slice();
    else if (type === 'tRNS') trns = body.slice();
    else if (type === 'IDAT') idat.push(body);
    else if (type === 'IEND') {
      sawEnd = true;
      break;
    } else if (!(type.charCodeAt(0) & 0x20)) {
      throw new Error(`PNG: unknown critical chunk ${type}`);
    }
  }
  if (colorType < 0) throw new Error('PNG: no IHDR chunk');
  if (!sawEnd && idat.length === 0) throw new Error('PNG: no image data (truncated file)');
  if (width === 0 || height === 0) throw new Error(`PNG: empty image ${width}x${height}`);
  if (width * height > (opts.maxPixels ?? 1 << 28)) throw new Error(`PNG: image ${width}x${height} is too large`);
  const allowed: Record<number, number[]> = { 0: [1, 2, 4, 8, 16], 2: [8, 16], 3: [1, 2, 4, 8], 4: [8, 16], 6: [8, 16] };
  if (!allowed[colorType]?.includes(depth)) throw new Error(`PNG: invalid colour type ${colorType} with bit depth ${depth}`);
  if (colorType === 3 && !palette) throw new Error('PNG: palette image without a PLTE chunk');
  const samples = { 0: 1, 2: 3, 3: 1, 4: 2, 6: 4 }[colorType]!;
  const bitsPerPixel = samples * depth;
  const bpp = Math.max(1, bitsPerPixel >> 3);

  // Concatenate IDAT and inflate to exactly the expected size.
  const passes = interlace
    ? ADAM7.map(([x0, y0, dx, dy]) => ({ x0, y0, dx, dy, w: Math.ceil((width - x0) / dx), h: Math.ceil((height - y0) / dy) }))
    : [{ x0: 0, y0: 0, dx: 1, dy: 1, w: width, h: height }];
  let expected = 0;
  for (const p of passes) if (p.w > 0 && p.h > 0) expected += (Math.ceil((p.w * bitsPerPixel) / 8) + 1) * p.h;
  let total = 0;
  for (const c of idat) total += c.length;
  const z = new Uint8Array(total);
  let o = 0;
  for (const c of idat) (z.set(c, o), (o += c.length));
  // Deflate expands at most 1032:1, so a header declaring more pixel data than the stream can
  // hold is refused before the output is allocated (a 100-byte file must not cost 256 MB).
  if (expected > total * 1032 + 64) throw new Error(`PNG: the header declares ${width}x${height} (${expected} bytes of pixel data), more than its ${total} compressed bytes can hold: truncated or crafted file`);
  let raw: Uint8Array;
  try {
    raw = zlibInflate(z, { sizeHint: expected, maxOutput: expected + 64 });
  } catch (e) {
    const m = (e as Error).message;
    if (/output exceeds/.test(m)) throw new Error(`PNG: image data inflates to more than the ${expected} bytes its ${width}x${height} header declares: corrupt or crafted file`);
    throw new Error(`PNG: image data is corrupt or truncated (${m})`);
  }
  if (raw.length < expected) throw new Error(`PNG: image data too short (${raw.length} of ${expected} bytes; truncated file?)`);

  // Output channels: palette -> RGB(A); everything else keeps its sample count.
  const outCh = colorType === 3 ? (trns ? 4 : 3) : samples;
  const out = new Uint8Array(width * height * outCh);
  const maxV = (1 << depth) - 1;
  let at = 0;
  for (const p of passes) {
    if (p.w === 0 || p.h === 0) continue;
    const rowBytes = Math.ceil((p.w * bitsPerPixel) / 8);
    const rows = new Uint8Array(rowBytes * p.h);
    unfilter(raw, at, rowBytes, p.h, bpp, rows);
    at += (rowBytes + 1) * p.h;
    for (let y = 0; y < p.h; y++) {
      const r = y * rowBytes;
      const oy = p.y0 + y * p.dy;
      for (let x = 0; x < p.w; x++) {
        const ox = p.x0 + x * p.dx;
        const dst = (oy * width + ox) * outCh;
        if (depth < 8) {
          const bit = x * depth;
          const v = (rows[r + (bit >> 3)]! >> (8 - depth - (bit & 7))) & maxV;
          if (colorType === 3) {
            if (v * 3 + 2 >= palette!.length) throw new Error(`PNG: palette index ${v} out of range (${palette!.length / 3} entries)`);
            out[dst] = palette![v * 3]!;
            out[dst + 1] = palette![v * 3 + 1]!;
            out[dst + 2] = palette![v * 3 + 2]!;
            if (outCh === 4) out[dst + 3] = v < trns!.length ? trns![v]! : 255;
          } else out[dst] = Math.round((v * 255) / maxV);
        } else if (depth === 8) {
          const src = r + x * samples;
          if (colorType === 3) {
            const v = rows[src]!;
            if (v * 3 + 2 >= palette!.length) throw new Error(`PNG: palette index ${v} out of range (${palette!.length / 3} entries)`);
            out[dst] = palette![v * 3]!;
            out[dst + 1] = palette![v * 3 + 1]!;
            out[dst + 2] = palette![v * 3 + 2]!;
            if (outCh === 4) out[dst + 3] = v < trns!.length ? trns![v]! : 255;
          } else for (let c = 0; c < samples; c++) out[dst + c] = rows[src + c]!;
        } else {
          const src = r + x * samples * 2;
          for (let c = 0; c < samples; c++) out[dst + c] = rows[src + 2 * c]!; // high byte
        }
      }
    }
  }
  return { width, height, channels: outCh as Image['channels'], data: out };
}

function chunk(type: string, body: Uint8Array): Uint8Array {
  const out = new Uint8Array(12 + body.length);
  const dv = new DataView(out.buffer);
  dv.setUint32(0, body.length);
  for (let i = 0; i < 4; i++) out[4 + i] = type.charCodeAt(i);
  out.set(body, 8);
  dv.setUint32(8 + body.length, crc32(out.subarray(4, 8 + body.length)));
  return out;
}

export interface EncodePngOptions {
  /** zlib level: 0 stores, 1..9 compress (default 6). */
  level?: number;
}

/** Encodes 8-bit interleaved samples (1 gray, 2 gray+alpha, 3 RGB, 4 RGBA channels) as PNG. */
export function encodePng(img: Image, opts: EncodePngOptions = {}): Uint8Array {
  const { width, height, channels, data } = img;
  if (![1, 2, 3, 4].includes(channels)) throw new Error(`encodePng: channels must be 1, 2, 3 or 4, got ${channels}`);
  if (!Number.isInteger(width) || !Number.isInteger(height) || width < 1 || height < 1) throw new Error(`encodePng: invalid size ${width}x${height}`);
  if (data.length !== width * height * channels) throw new Error(`encodePng: ${data.length} bytes do not match ${width}x${height}x${channels}`);
  const colorType = { 1: 0, 2: 4, 3: 2, 4: 6 }[channels]!;
  const rowBytes = width * channels;
  const raw = new Uint8Array((rowBytes + 1) * height);
  const cand = new Uint8Array(rowBytes);
  const filters = (opts.level ?? 6) === 0 ? [0] : [0, 1, 2, 3, 4];
  for (let y = 0; y < height; y++) {
    const cur = y * rowBytes;
    const prev = (y - 1) * rowBytes;
    let bestScore = Infinity;
    const base = y * (rowBytes + 1);
    for (const f of filters) {
      let score = 0;
      for (let i = 0; i < rowBytes; i++) {
        const x = data[cur + i]!;
        const a = i >= channels ? data[cur + i - channels]! : 0;
        const b = y > 0 ? data[prev + i]! : 0;
        const c = y > 0 && i >= channels ? data[prev + i - channels]! : 0;
        const v = (f === 0 ? x : f === 1 ? x - a : f === 2 ? x - b : f === 3 ? x - ((a + b) >> 1) : x - paeth(a, b, c)) & 255;
        cand[i] = v;
        score += v < 128 ? v : 256 - v;
      }
      if (score < bestScore) {
        bestScore = score;
        raw[base] = f;
        raw.set(cand, base + 1);
      }
    }
  }
  const ihdr = new Uint8Array(13);
  const dv = new DataView(ihdr.buffer);
  dv.setUint32(0, width);
  dv.setUint32(4, height);
  ihdr[8] = 8;
  ihdr[9] = colorType;
  const parts = [new Uint8Array(SIGNATURE), chunk('IHDR', ihdr), chunk('IDAT', zlibDeflate(raw, { level: opts.level ?? 6 })), chunk('IEND', new Uint8Array(0))];
  const out = new Uint8Array(parts.reduce((s, p) => s + p.length, 0));
  let o = 0;
  for (const p of parts) (out.set(p, o), (o += p.length));
  return out;
}
