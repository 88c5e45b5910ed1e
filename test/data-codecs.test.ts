/**
 * Image codecs and image ops of the data pipeline (nn/data): zlib inflate/deflate against Node's
 * zlib, PNG encode -> decode round trips, decoding of committed PNG/JPEG fixtures against the
 * pixels PIL decodes (test/fixtures/make_data.py), resize against PIL, corrupt-file errors.
 *
 * Tolerances: PNG is lossless, so PNG decoding must match PIL exactly. JPEG: this decoder's IDCT is
 * exact float while libjpeg's (PIL) is 13-bit fixed point; both round to 8 bits, so samples differ
 * by 1 where the exact value is near .5, and 4:2:0/4:2:2 chroma upsampling mixes 2-4 such samples:
 * allow max |diff| <= 4 and mean |diff| <= 0.15 (observed: max 2, mean < 0.06). Resize: PIL rounds
 * the horizontal pass to 8 bits, this code keeps float: max |diff| <= 1 (observed 1, mean < 0.2).
 */
import fc from 'fast-check';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import zlib from 'node:zlib';
import { describe, expect, it } from 'vitest';
import {
  centerCrop,
  crc32,
  decodeImage,
  decodeJpeg,
  decodePng,
  deflateRaw,
  encodePng,
  flipHorizontal,
  inflateRaw,
  padImage,
  resize,
  resizeCenterCrop,
  toChannels,
  zlibDeflate,
  zlibInflate,
  type Image,
} from '../nn/data/index.js';

const FIX = join(import.meta.dirname, 'fixtures');
const fixtures = JSON.parse(readFileSync(join(FIX, 'data.json'), 'utf8')) as Record<string, unknown>;
interface Entry {
  width: number;
  height: number;
  channels: number;
  pixels: string;
}
const pixelsOf = (e: Entry) => new Uint8Array(Buffer.from(e.pixels, 'base64'));
const file = (name: string) => new Uint8Array(readFileSync(join(FIX, 'data', name)));

/** Fast exact equality (vitest's deep equality is slow on large typed arrays). */
function same(a: Uint8Array, b: Uint8Array): boolean {
  return Buffer.compare(Buffer.from(a.buffer, a.byteOffset, a.byteLength), Buffer.from(b.buffer, b.byteOffset, b.byteLength)) === 0;
}

function diffStats(a: Uint8Array, b: Uint8Array): { max: number; mean: number } {
  expect(a.length).toBe(b.length);
  let max = 0;
  let sum = 0;
  for (let i = 0; i < a.length; i++) {
    const d = Math.abs(a[i]! - b[i]!);
    if (d > max) max = d;
    sum += d;
  }
  return { max, mean: sum / a.length };
}

const bytesArb = (maxLen: number) =>
  fc.oneof(
    fc.uint8Array({ maxLength: maxLen }),
    // low-entropy data with long repeats (exercises matches and overlapping copies)
    fc.array(fc.tuple(fc.integer({ min: 0, max: 3 }), fc.integer({ min: 1, max: 300 })), { maxLength: 40 }).map((runs) => Uint8Array.from(runs.flatMap(([v, n]) => Array(n).fill(v)))),
  );

describe('zlib', () => {
  it('crc32 and adler32 agree with Node', () => {
    const d = new TextEncoder().encode('The quick brown fox jumps over the lazy dog');
    expect(crc32(d)).toBe(zlib.crc32(d));
    const z = zlib.deflateSync(d);
    const adler = z.readUInt32BE(z.length - 4);
    expect(zlibInflate(new Uint8Array(z))).toEqual(d);
    expect(adler).toBe(0x5bdc0fda);
  });

  it('deflate output inflates with Node, and Node output inflates here (all levels)', () => {
    fc.assert(
      fc.property(bytesArb(3000), fc.constantFrom(0, 1, 6, 9), (data, level) => {
        const mine = zlibDeflate(data, { level });
        expect(new Uint8Array(zlib.inflateSync(mine))).toEqual(data);
        expect(zlibInflate(mine)).toEqual(data);
        expect(inflateRaw(deflateRaw(data, { level }))).toEqual(data);
        // Node uses stored, fixed and dynamic Huffman blocks depending on level and data.
        expect(zlibInflate(new Uint8Array(zlib.deflateSync(data, { level })))).toEqual(data);
      }),
      { numRuns: 60 },
    );
  });

  it('multi-block streams (64 KiB stored blocks, large dynamic blocks) round trip', () => {
    const big = new Uint8Array(200_000);
    for (let i = 0; i < big.length; i++) big[i] = (i * 7 + (i >> 9)) & 255;
    expect(same(zlibInflate(zlibDeflate(big, { level: 0 })), big)).toBe(true);
    expect(same(zlibInflate(new Uint8Array(zlib.deflateSync(big))), big)).toBe(true);
    expect(same(new Uint8Array(zlib.inflateSync(zlibDeflate(big))), big)).toBe(true);
    expect(same(zlibInflate(new Uint8Array(zlib.deflateSync(big, { level: 1 }))), big.slice(1))).toBe(false); // the check can fail
  });

  it('corrupt and truncated streams are errors, never wrong data', () => {
    const data = new TextEncoder().encode('hello hello hello hello, zlib! '.repeat(50));
    const z = new Uint8Array(zlib.deflateSync(data));
    expect(() => zlibInflate(z.subarray(0, z.length - 6))).toThrow(/truncated|end of compressed data|Adler/);
    expect(() => zlibInflate(z.subarray(0, 12))).toThrow(/truncated|end of compressed data/);
    const bad = z.slice();
    bad[0] = 0x79;
    expect(() => zlibInflate(bad)).toThrow(/compression method|header check/);
    const flipped = z.slice();
    flipped[z.length - 1]! ^= 1;
    expect(() => zlibInflate(flipped)).toThrow(/Adler-32 mismatch/);
    expect(() => inflateRaw(new Uint8Array([0x07]))).toThrow(/invalid block type/);
  });
});

describe('PNG', () => {
  const imageArb = fc
    .record({ w: fc.integer({ min: 1, max: 37 }), h: fc.integer({ min: 1, max: 23 }), c: fc.constantFrom(1, 2, 3, 4) as fc.Arbitrary<1 | 2 | 3 | 4>, seed: fc.integer(), smooth: fc.boolean() })
    .map(({ w, h, c, seed, smooth }): Image => {
      const data = new Uint8Array(w * h * c);
      let s = seed >>> 0;
      for (let i = 0; i < data.length; i++) {
        s = (Math.imul(s, 1103515245) + 12345) >>> 0;
        data[i] = smooth ? (((i % (w * c)) * 5 + Math.floor(i / (w * c)) * 3 + ((s >>> 28) & 3)) & 255) : s >>> 24;
      }
      return { width: w, height: h, channels: c, data };
    });

  it('encode -> decode round trips gray / gray+alpha / RGB / RGBA, odd sizes, stored and compressed', () => {
    fc.assert(
      fc.property(imageArb, fc.constantFrom(0, 6), (img, level) => {
        const png = encodePng(img, { level });
        const back = decodePng(png);
        expect([back.width, back.height, back.channels]).toEqual([img.width, img.height, img.channels]);
        expect(back.data).toEqual(img.data);
      }),
      { numRuns: 80 },
    );
  });

  const pngs = Object.keys(fixtures).filter((k) => k.endsWith('.png'));
  it('has the expected fixtures', () => {
    expect(pngs.sort()).toEqual(
      ['bw1_13x9.png', 'gray16_7x5.png', 'gray8_13x9.png', 'gray_interlaced_7x5.png', 'la_7x5.png', 'palette4bit_13x9.png', 'palette_trns_13x9.png', 'rgb_13x9.png', 'rgba_13x9.png', 'rgba_interlaced_13x9.png'].sort(),
    );
  });
  for (const name of pngs) {
    it(`decodes ${name} exactly as PIL does`, () => {
      const e = fixtures[name] as Entry;
      const img = decodeImage(file(name));
      expect([img.width, img.height, img.channels]).toEqual([e.width, e.height, e.channels]);
      expect(img.data).toEqual(pixelsOf(e));
    });
  }

  it('reports corruption: bad CRC, truncation, wrong signature', () => {
    const png = file('rgb_13x9.png');
    const crcBad = png.slice();
    crcBad[60]! ^= 0xff; // inside the IDAT data (chunk at byte 33)
    expect(() => decodePng(crcBad)).toThrow(/CRC mismatch in IDAT/);
    expect(() => decodePng(png.subarray(0, png.length - 30))).toThrow(/truncated/);
    expect(() => decodePng(png.subarray(0, 20))).toThrow(/truncated/);
    expect(() => decodeImage(new TextEncoder().encode('GIF89a...'))).toThrow(/unknown image format/);
    expect(() => decodeImage(new Uint8Array(0))).toThrow(/empty file/);
  });
});

describe('JPEG', () => {
  for (const name of ['rgb444_45x29.jpg', 'rgb422_45x29.jpg', 'rgb420_45x29.jpg', 'gray_45x29.jpg', 'restart_45x29.jpg']) {
    it(`decodes ${name} like PIL (libjpeg) within IDCT rounding`, () => {
      const e = fixtures[name] as Entry;
      const img = decodeJpeg(file(name));
      expect([img.width, img.height, img.channels]).toEqual([e.width, e.height, e.channels]);
      const { max, mean } = diffStats(img.data, pixelsOf(e));
      expect(max).toBeLessThanOrEqual(4);
      expect(mean).toBeLessThanOrEqual(0.15);
    });
  }

  it('the restart-marker file decodes to the same pixels as its source', () => {
    expect(decodeJpeg(file('restart_45x29.jpg')).data).toEqual(decodeJpeg(file('rgb420_45x29.jpg')).data);
  });

  it('rejects progressive JPEG with a clear error, and truncated files', () => {
    expect(() => decodeImage(file('progressive_45x29.jpg'))).toThrow(/progressive JPEG \(SOF2\) is not supported/);
    const j = file('rgb444_45x29.jpg');
    expect(() => decodeJpeg(j.subarray(0, Math.floor(j.length * 0.6)))).toThrow(/truncated|ends early|corrupt/);
    expect(() => decodeJpeg(j.subarray(0, 100))).toThrow(/truncated|no image data/);
  });
});

describe('image ops', () => {
  const src = (() => {
    const e = fixtures.resize_source as Entry;
    return { width: e.width, height: e.height, channels: 3 as const, data: pixelsOf(e) };
  })();

  for (const [key, e] of Object.entries(fixtures.resize as Record<string, Entry>)) {
    it(`resize ${key} matches PIL within 1`, () => {
      const [filter, wh] = key.split('_') as ['bilinear' | 'area', string];
      const [w, h] = wh.split('x').map(Number) as [number, number];
      const out = resize(src, w, h, filter);
      expect(diffStats(out.data, pixelsOf(e)).max).toBeLessThanOrEqual(1);
    });
  }

  it('area downsampling by 2 averages 2x2 blocks; identity resize copies', () => {
    const img: Image = { width: 4, height: 2, channels: 1, data: Uint8Array.from([0, 10, 20, 40, 2, 12, 100, 200]) };
    expect(Array.from(resize(img, 2, 1, 'area').data)).toEqual([6, 90]);
    expect(resize(img, 4, 2).data).toEqual(img.data);
    expect(Array.from(resize(img, 2, 1, 'nearest').data)).toEqual([12, 200]); // source centers (1, 1) and (3, 1)
  });

  it('center crop, cover-resize + crop, pad, flip, channel conversion', () => {
    const img: Image = { width: 4, height: 3, channels: 1, data: Uint8Array.from([0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11]) };
    expect(Array.from(centerCrop(img, 2, 1).data)).toEqual([5, 6]);
    // A 4x3 image covered onto 3x3: scale 1 in y, a centered 3-wide box: x from 0.5 to 3.5.
    const rc = resizeCenterCrop(img, 3, 3, 'bilinear');
    expect([rc.width, rc.height]).toEqual([3, 3]);
    expect(Array.from(rc.data.subarray(0, 3))).toEqual([1, 2, 3]); // 0.5 / 1.5 / 2.5 interpolated, halves round up
    const wide = resizeCenterCrop({ width: 8, height: 2, channels: 1, data: Uint8Array.from([9, 9, 0, 0, 0, 0, 9, 9, 9, 9, 0, 0, 0, 0, 9, 9]) }, 2, 2, 'area');
    expect(Array.from(wide.data)).toEqual([0, 0, 0, 0]); // the sides are cropped away
    const p = padImage(img, 1, 7);
    expect([p.width, p.height]).toEqual([6, 5]);
    expect(p.data[0]).toBe(7);
    expect(p.data[6 + 1]).toBe(0);
    expect(Array.from(flipHorizontal(img).data.subarray(0, 4))).toEqual([3, 2, 1, 0]);
    const rgb: Image = { width: 1, height: 1, channels: 4, data: Uint8Array.from([255, 0, 0, 128]) };
    expect(Array.from(toChannels(rgb, 1).data)).toEqual([76]); // 299 * 255 / 1000 = 76.2
    expect(Array.from(toChannels(rgb, 3).data)).toEqual([255, 0, 0]);
    expect(Array.from(toChannels(rgb, 3, { background: 255 }).data)).toEqual([255, 127, 127]);
    expect(Array.from(toChannels({ width: 1, height: 1, channels: 1, data: Uint8Array.from([9]) }, 3).data)).toEqual([9, 9, 9]);
  });
});

describe('nn/data is browser-safe', () => {
  it('imports nothing from Node and uses no Node globals', async () => {
    const { readdirSync } = await import('node:fs');
    const dir = join(import.meta.dirname, '..', 'nn', 'data');
    const files = readdirSync(dir).filter((f) => f.endsWith('.ts'));
    expect(files.length).toBeGreaterThan(8);
    const offenders: string[] = [];
    for (const f of files) {
      const src = readFileSync(join(dir, f), 'utf8').replace(/\/\*[\s\S]*?\*\/|\/\/.*$/gm, '');
      for (const m of src.matchAll(/\bfrom\s+['"]([^'"]+)['"]|\bimport\s*\(\s*['"]([^'"]+)['"]\s*\)|\brequire\s*\(/g)) {
        const spec = m[1] ?? m[2] ?? 'require(';
        if (spec === 'require(' || spec.startsWith('node:') || !spec.startsWith('.') || spec.includes('/node/')) offenders.push(`${f} imports ${spec}`);
      }
      for (const g of [/\bprocess\./, /\bBuffer\b/, /\b__dirname\b/]) if (g.test(src)) offenders.push(`${f} uses ${g.source}`);
    }
    expect(offenders).toEqual([]);
  });
});
