/**
 * zlib / DEFLATE (RFC 1950 / 1951) in plain TypeScript, for the PNG codec: a complete inflater
 * (stored, fixed and dynamic Huffman blocks) and a compressor that emits one fixed-Huffman block
 * with greedy LZ77 matches found through hash chains (or stored blocks at level 0).
 * Browser-safe: no Node imports, no DecompressionStream, so it works the same everywhere.
 */

// ---- checksums ----

let crcTable: Uint32Array | null = null;

/** CRC-32 (ISO-HDLC, the one PNG and gzip use); pass a previous result to continue it. */
export function crc32(data: Uint8Array, crc = 0): number {
  if (!crcTable) {
    crcTable = new Uint32Array(256);
    for (let n = 0; n < 256; n++) {
      let c = n;
      for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
      crcTable[n] = c >>> 0;
    }
  }
  const t = crcTable;
  let c = ~crc >>> 0;
  for (let i = 0; i < data.length; i++) c = t[(c ^ data[i]!) & 0xff]! ^ (c >>> 8);
  return ~c >>> 0;
}

/** Adler-32 (the zlib trailer). */
export function adler32(data: Uint8Array, adler = 1): number {
  let a = adler & 0xffff;
  let b = adler >>> 16;
  let i = 0;
  while (i < data.length) {
    const end = Math.min(i + 3800, data.length); // keeps b below 2^31 between reductions
    for (; i < end; i++) {
      a += data[i]!;
      b += a;
    }
    a %= 65521;
    b %= 65521;
  }
  return ((b << 16) | a) >>> 0;
}

// ---- shared tables ----

const LEN_BASE = [3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 15, 17, 19, 23, 27, 31, 35, 43, 51, 59, 67, 83, 99, 115, 131, 163, 195, 227, 258];
const LEN_EXTRA = [0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3, 4, 4, 4, 4, 5, 5, 5, 5, 0];
const DIST_BASE = [1, 2, 3, 4, 5, 7, 9, 13, 17, 25, 33, 49, 65, 97, 129, 193, 257, 385, 513, 769, 1025, 1537, 2049, 3073, 4097, 6145, 8193, 12289, 16385, 24577];
const DIST_EXTRA = [0, 0, 0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7, 8, 8, 9, 9, 10, 10, 11, 11, 12, 12, 13, 13];
const CL_ORDER = [16, 17, 18, 0, 8, 7, 9, 6, 10, 5, 11, 4, 12, 3, 13, 2, 14, 1, 15];

function fixedLitLenLengths(): Uint8Array {
  const l = new Uint8Array(288);
  l.fill(8, 0, 144);
  l.fill(9, 144, 256);
  l.fill(7, 256, 280);
  l.fill(8, 280, 288);
  return l;
}

function reverseBits(v: number, n: number): number {
  let r = 0;
  for (let i = 0; i < n; i++) {
    r = (r << 1) | (v & 1);
    v >>>= 1;
  }
  return r;
}

// ---- inflate ----

/** A decoding table indexed by the next `bits` input bits (LSB first): entry = symbol << 4 | length. */
interface HuffTable {
  table: Uint16Array | Uint32Array;
  bits: number;
}

function buildDecodeTable(lengths: Uint8Array, what: string): HuffTable {
  let maxLen = 0;
  const count = new Uint16Array(16);
  for (const l of lengths) {
    if (l) count[l]!++;
    if (l > maxLen) maxLen = l;
  }
  const table = new Uint32Array(1 << Math.max(maxLen, 1));
  if (maxLen === 0) return { table, bits: 1 }; // an empty code: every lookup is invalid (length 0)
  // Over-subscription check (incomplete codes are legal: e.g. a single distance code).
  let left = 1;
  for (let len = 1; len <= 15; len++) {
    left = (left << 1) - count[len]!;
    if (left < 0) throw new Error(`inflate: over-subscribed ${what} Huffman code`);
  }
  const next = new Uint16Array(16);
  let code = 0;
  for (let len = 1; len <= 15; len++) {
    code = (code + count[len - 1]!) << 1;
    next[len] = code;
  }
  const size = 1 << maxLen;
  for (let sym = 0; sym < lengths.length; sym++) {
    const len = lengths[sym]!;
    if (!len) continue;
    const rev = reverseBits(next[len]!++, len);
    const entry = (sym << 4) | len;
    for (let i = rev; i < size; i += 1 << len) table[i] = entry;
  }
  return { table, bits: maxLen };
}

let fixedLit: HuffTable | null = null;
let fixedDist: HuffTable | null = null;

class Inflater {
  pos = 0;
  bitBuf = 0;
  bitCnt = 0;
  /** Zero bytes supplied past the end of input (only an error if their bits get consumed). */
  overrun = 0;
  out: Uint8Array;
  outPos = 0;

  constructor(readonly data: Uint8Array, sizeHint: number, readonly maxOutput: number) {
    this.out = new Uint8Array(Math.max(sizeHint, 1024));
  }

  private fill(n: number): void {
    while (this.bitCnt < n) {
      let byte = 0;
      if (this.pos < this.data.length) byte = this.data[this.pos++]!;
      else this.overrun++;
      this.bitBuf |= byte << this.bitCnt;
      this.bitCnt += 8;
    }
  }

  private checkOverrun(): void {
    if (this.overrun * 8 > this.bitCnt) throw new Error('inflate: unexpected end of compressed data (truncated stream)');
  }

  bits(n: number): number {
    if (n === 0) return 0;
    this.fill(n);
    const v = this.bitBuf & ((1 << n) - 1);
    this.bitBuf >>>= n;
    this.bitCnt -= n;
    this.checkOverrun();
    return v;
  }

  decode(h: HuffTable): number {
    this.fill(h.bits);
    const e = h.table[this.bitBuf & ((1 << h.bits) - 1)]!;
    const len = e & 15;
    if (len === 0) throw new Error('inflate: invalid Huffman code in compressed data');
    this.bitBuf >>>= len;
    this.bitCnt -= len;
    this.checkOverrun();
    return e >>> 4;
  }

  private ensure(extra: number): void {
    const need = this.outPos + extra;
    if (need > this.maxOutput) throw new Error(`inflate: output exceeds the expected ${this.maxOutput} bytes`);
    if (need <= this.out.length) return;
    let cap = this.out.length * 2;
    while (cap < need) cap *= 2;
    const grown = new Uint8Array(Math.min(cap, Math.max(this.maxOutput, need)));
    grown.set(this.out.subarray(0, this.outPos));
    this.out = grown;
  }

  stored(): void {
    // Drop to a byte boundary; the remaining buffered whole bytes are re-read from the input.
    this.bitBuf = 0;
    const unread = this.bitCnt >> 3;
    this.pos -= unread - this.overrun > 0 ? unread - this.overrun : 0;
    this.bitCnt = 0;
    this.overrun = 0;
    if (this.pos + 4 > this.data.length) throw new Error('inflate: unexpected end of compressed data (stored block header)');
    const d = this.data;
    const len = d[this.pos]! | (d[this.pos + 1]! << 8);
    const nlen = d[this.pos + 2]! | (d[this.pos + 3]! << 8);
    this.pos += 4;
    if ((len ^ 0xffff) !== nlen) throw new Error('inflate: stored block length check failed (corrupt data)');
    if (this.pos + len > d.length) throw new Error('inflate: unexpected end of compressed data (stored block)');
    this.ensure(len);
    this.out.set(d.subarray(this.pos, this.pos + len), this.outPos);
    this.outPos += len;
    this.pos += len;
  }

  huffmanBlock(lit: HuffTable, dist: HuffTable): void {
    for (;;) {
      const sym = this.decode(lit);
      if (sym < 256) {
        if (this.outPos >= this.out.length) this.ensure(1);
        this.out[this.outPos++] = sym;
      } else if (sym === 256) {
        return;
      } else {
        const li = sym - 257;
        if (li >= 29) throw new Error(`inflate: invalid length symbol ${sym}`);
        const len = LEN_BASE[li]! + this.bits(LEN_EXTRA[li]!);
        const ds = this.decode(dist);
        if (ds >= 30) throw new Error(`inflate: invalid distance symbol ${ds}`);
        const d = DIST_BASE[ds]! + this.bits(DIST_EXTRA[ds]!);
        if (d > this.outPos) throw new Error(`inflate: invalid distance ${d} too far back (only ${this.outPos} bytes written)`);
        this.ensure(len);
        const out = this.out;
        let p = this.outPos;
        const end = p + len;
        if (d >= len) out.copyWithin(p, p - d, p - d + len);
        else for (; p < end; p++) out[p] = out[p - d]!;
        this.outPos = end;
      }
    }
  }

  dynamicTables(): [HuffTable, HuffTable] {
    const hlit = this.bits(5) + 257;
    const hdist = this.bits(5) + 1;
    const hclen = this.bits(4) + 4;
    if (hlit > 286 || hdist > 30) throw new Error(`inflate: invalid dynamic block header (${hlit} literal/length, ${hdist} distance codes)`);
    const clLens = new Uint8Array(19);
    for (let i = 0; i < hclen; i++) clLens[CL_ORDER[i]!] = this.bits(3);
    const cl = buildDecodeTable(clLens, 'code-length');
    const lens = new Uint8Array(hlit + hdist);
    let i = 0;
    while (i < lens.length) {
      const sym = this.decode(cl);
      if (sym < 16) {
        lens[i++] = sym;
        continue;
      }
      let rep: number;
      let val = 0;
      if (sym === 16) {
        if (i === 0) throw new Error('inflate: repeat of a code length with no previous length');
        val = lens[i - 1]!;
        rep = 3 + this.bits(2);
      } else if (sym === 17) rep = 3 + this.bits(3);
      else rep = 11 + this.bits(7);
      if (i + rep > lens.length) throw new Error('inflate: code length repeat runs past the end of the code lengths');
      lens.fill(val, i, i + rep);
      i += rep;
    }
    if (lens[256] === 0) throw new Error('inflate: dynamic block has no end-of-block code');
    return [buildDecodeTable(lens.subarray(0, hlit), 'literal/length'), buildDecodeTable(lens.subarray(hlit), 'distance')];
  }

  run(): void {
    let final = 0;
    while (!final) {
      final = this.bits(1);
      const type = this.bits(2);
      if (type === 0) this.stored();
      else if (type === 1) {
        fixedLit ??= buildDecodeTable(fixedLitLenLengths(), 'fixed literal/length');
        fixedDist ??= buildDecodeTable(new Uint8Array(30).fill(5), 'fixed distance');
        this.huffmanBlock(fixedLit, fixedDist);
      } else if (type === 2) {
        const [l, d] = this.dynamicTables();
        this.huffmanBlock(l, d);
      } else throw new Error('inflate: invalid block type 3 (corrupt data)');
    }
  }

  /** Bytes of input consumed (whole bytes, after the final block). */
  consumed(): number {
    return this.pos - (this.bitCnt >> 3) + this.overrun;
  }
}

export interface InflateOptions {
  /** Expected output size (preallocates; not a limit). */
  sizeHint?: number;
  /** Hard limit on the output size (protects against decompression bombs). Default 1 GiB. */
  maxOutput?: number;
}

/** Inflates a raw DEFLATE stream. */
export function inflateRaw(data: Uint8Array, opts: InflateOptions = {}): Uint8Array {
  const inf = new Inflater(data, opts.sizeHint ?? data.length * 4, opts.maxOutput ?? 1 << 30);
  inf.run();
  return inf.out.subarray(0, inf.outPos);
}

/** Inflates a zlib stream (2-byte header, DEFLATE data, Adler-32 trailer, which is verified). */
export function zlibInflate(data: Uint8Array, opts: InflateOptions = {}): Uint8Array {
  if (data.length < 6) throw new Error(`zlib: stream too short (${data.length} bytes)`);
  const cmf = data[0]!;
  const flg = data[1]!;
  if ((cmf & 15) !== 8) throw new Error(`zlib: unsupported compression method ${cmf & 15} (only deflate = 8)`);
  if (((cmf << 8) | flg) % 31 !== 0) throw new Error('zlib: header check failed (corrupt data)');
  if (flg & 0x20) throw new Error('zlib: preset dictionaries are not supported');
  const inf = new Inflater(data.subarray(2), opts.sizeHint ?? data.length * 4, opts.maxOutput ?? 1 << 30);
  inf.run();
  const out = inf.out.subarray(0, inf.outPos);
  const at = 2 + inf.consumed();
  if (at + 4 > data.length) throw new Error('zlib: missing Adler-32 trailer (truncated stream)');
  const want = ((data[at]! << 24) | (data[at + 1]! << 16) | (data[at + 2]! << 8) | data[at + 3]!) >>> 0;
  const got = adler32(out);
  if (want !== got) throw new Error(`zlib: Adler-32 mismatch (stored ${want.toString(16)}, computed ${got.toString(16)}): corrupt data`);
  return out;
}

// ---- deflate ----

class BitWriter {
  buf = new Uint8Array(1 << 16);
  pos = 0;
  private acc = 0;
  private n = 0;

  private grow(extra: number): void {
    if (this.pos + extra <= this.buf.length) return;
    let cap = this.buf.length * 2;
    while (cap < this.pos + extra) cap *= 2;
    const b = new Uint8Array(cap);
    b.set(this.buf.subarray(0, this.pos));
    this.buf = b;
  }

  /** Writes the low `n` bits of `v` (n <= 24), LSB first. */
  write(v: number, n: number): void {
    this.acc |= v << this.n; // this.n < 8 here, so at most 31 bits are pending
    this.n += n;
    if (this.n >= 8) {
      if (this.pos + 4 > this.buf.length) this.grow(4);
      do {
        this.buf[this.pos++] = this.acc & 0xff;
        this.acc >>>= 8;
        this.n -= 8;
      } while (this.n >= 8);
    }
  }

  alignByte(): void {
    this.grow(4);
    while (this.n > 0) {
      this.buf[this.pos++] = this.acc & 0xff;
      this.acc >>>= 8;
      this.n = Math.max(0, this.n - 8);
    }
    this.acc = 0;
  }

  bytes(data: Uint8Array): void {
    this.grow(data.length);
    this.buf.set(data, this.pos);
    this.pos += data.length;
  }
}

// Fixed-Huffman codes, bit-reversed for LSB-first output.
let fixedLitCodes: { code: Uint16Array; len: Uint8Array } | null = null;
let lenSymbol: Uint16Array | null = null; // length 3..258 -> symbol index 0..28
let distSymbolSmall: Uint8Array | null = null; // distance 1..512 -> symbol

function deflateTables(): void {
  if (fixedLitCodes) return;
  const lens = fixedLitLenLengths();
  const code = new Uint16Array(288);
  const count = new Uint16Array(16);
  for (const l of lens) count[l]!++;
  const next = new Uint16Array(16);
  let c = 0;
  for (let l = 1; l <= 15; l++) {
    c = (c + count[l - 1]!) << 1; // RFC 1951 3.2.2 (no zero lengths here, so count[0] = 0)
    next[l] = c;
  }
  for (let s = 0; s < 288; s++) code[s] = reverseBits(next[lens[s]!]!++, lens[s]!);
  fixedLitCodes = { code, len: lens };
  lenSymbol = new Uint16Array(259);
  for (let i = 0; i < 29; i++) {
    const hi = i === 28 ? 258 : LEN_BASE[i + 1]! - 1;
    for (let l = LEN_BASE[i]!; l <= hi; l++) lenSymbol[l] = i;
  }
  lenSymbol[258] = 28;
  distSymbolSmall = new Uint8Array(513);
  for (let i = 0; i < 18; i++) for (let d = DIST_BASE[i]!; d < DIST_BASE[i + 1]! && d <= 512; d++) distSymbolSmall[d] = i;
}

function distSymbol(d: number): number {
  if (d <= 512) return distSymbolSmall![d]!;
  let i = 18;
  while (i < 29 && DIST_BASE[i + 1]! <= d) i++;
  return i;
}

export interface DeflateOptions {
  /** 0 = stored blocks only; 1..9 = fixed-Huffman LZ77, higher searches longer hash chains. Default 6. */
  level?: number;
}

const WINDOW = 32768;
const HASH_BITS = 15;

/** Compresses `data` into a raw DEFLATE stream. */
export function deflateRaw(data: Uint8Array, opts: DeflateOptions = {}): Uint8Array {
  const level = opts.level ?? 6;
  const w = new BitWriter();
  if (level <= 0 || data.length === 0) {
    let i = 0;
    do {
      const n = Math.min(65535, data.length - i);
      const last = i + n >= data.length;
      w.write(last ? 1 : 0, 1);
      w.write(0, 2);
      w.alignByte();
      w.bytes(new Uint8Array([n & 0xff, n >> 8, ~n & 0xff, (~n >> 8) & 0xff]));
      w.bytes(data.subarray(i, i + n));
      i += n;
    } while (i < data.length);
    return w.buf.slice(0, w.pos);
  }
  deflateTables();
  const { code: litCode, len: litLen } = fixedLitCodes!;
  const maxChain = level >= 8 ? 1024 : level >= 5 ? 128 : 16;
  const goodEnough = level >= 8 ? 258 : level >= 5 ? 128 : 32;
  const head = new Int32Array(1 << HASH_BITS).fill(-1);
  const prev = new Int32Array(WINDOW);
  const n = data.length;
  const hashAt = (i: number) => (((data[i]! << 10) ^ (data[i + 1]! << 5) ^ data[i + 2]!) * 2654435761) >>> (32 - HASH_BITS);
  const insert = (i: number) => {
    if (i + 2 >= n) return;
    const h = hashAt(i);
    prev[i & (WINDOW - 1)] = head[h]!;
    head[h] = i;
  };
  const emitLit = (b: number) => w.write(litCode[b]!, litLen[b]!);
  w.write(1, 1); // final
  w.write(1, 2); // fixed Huffman
  let i = 0;
  while (i < n) {
    let bestLen = 0;
    let bestDist = 0;
    if (i + 2 < n) {
      const h = hashAt(i);
      let cand = head[h]!;
      let chain = maxChain;
      const maxLen = Math.min(258, n - i);
      while (cand >= 0 && i - cand <= WINDOW && chain-- > 0) {
        if (data[cand + bestLen] === data[i + bestLen] && data[cand] === data[i]) {
          let l = 0;
          while (l < maxLen && data[cand + l] === data[i + l]) l++;
          if (l > bestLen) {
            bestLen = l;
            bestDist = i - cand;
            if (l >= goodEnough) break;
          }
        }
        const p = prev[cand & (WINDOW - 1)]!;
        if (p >= cand) break; // stale entry from an older window position
        cand = p;
      }
    }
    if (bestLen >= 3) {
      const ls = lenSymbol![bestLen]!;
      w.write(litCode[257 + ls]!, litLen[257 + ls]!);
      if (LEN_EXTRA[ls]) w.write(bestLen - LEN_BASE[ls]!, LEN_EXTRA[ls]!);
      const ds = distSymbol(bestDist);
      w.write(reverseBits(ds, 5), 5);
      if (DIST_EXTRA[ds]) w.write(bestDist - DIST_BASE[ds]!, DIST_EXTRA[ds]!);
      const end = i + bestLen;
      for (; i < end; i++) insert(i);
    } else {
      emitLit(data[i]!);
      insert(i);
      i++;
    }
  }
  emitLit(256);
  w.alignByte();
  return w.buf.slice(0, w.pos);
}

/** Compresses `data` into a zlib stream (header, DEFLATE data, Adler-32). */
export function zlibDeflate(data: Uint8Array, opts: DeflateOptions = {}): Uint8Array {
  const body = deflateRaw(data, opts);
  const out = new Uint8Array(body.length + 6);
  out[0] = 0x78;
  out[1] = 0x01; // 0x7801 % 31 === 0, no dictionary, fastest-level flag
  out.set(body, 2);
  const a = adler32(data);
  out[out.length - 4] = a >>> 24;
  out[out.length - 3] = (a >>> 16) & 0xff;
  out[out.length - 2] = (a >>> 8) & 0xff;
  out[out.length - 1] = a & 0xff;
  return out;
}
