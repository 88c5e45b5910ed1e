/**
 * The safetensors format (https://github.com/huggingface/safetensors), browser-safe: bytes in,
 * bytes out, no file I/O.
 *
 * Layout: an 8-byte little-endian u64 N, then N bytes of UTF-8 JSON
 *   {"__metadata__": {string: string}, name: {"dtype", "shape", "data_offsets": [begin, end]}, ...}
 * padded with spaces to a multiple of 8, then the data section. Offsets are relative to the data
 * section, and the tensors' byte ranges cover it exactly (no gaps, no overlap, nothing after).
 * Tensors are row-major and little-endian.
 *
 * The writer orders tensors as the reference library does (descending dtype alignment, then by
 * name): with an 8-aligned header, every tensor then starts at a multiple of its element size
 * without padding, which readers that map the file in place rely on. The JSON is compact, with
 * `__metadata__` first (its keys sorted) and the tensors in data order, so a file written here is
 * byte-identical to one written by `safetensors.torch.save_file` apart from metadata key order.
 */

/** Element types this module reads and writes. */
export type SafetensorsDType = 'F64' | 'F32' | 'F16' | 'BF16' | 'I64' | 'I32' | 'U8' | 'BOOL';

interface DTypeSpec {
  bytes: number;
  /** Position in the reference library's Dtype enum (increasing alignment): it sorts the writer. */
  rank: number;
}

const DTYPES: Record<SafetensorsDType, DTypeSpec> = {
  BOOL: { bytes: 1, rank: 0 },
  U8: { bytes: 1, rank: 1 },
  F16: { bytes: 2, rank: 7 },
  BF16: { bytes: 2, rank: 8 },
  I32: { bytes: 4, rank: 9 },
  F32: { bytes: 4, rank: 11 },
  F64: { bytes: 8, rank: 12 },
  I64: { bytes: 8, rank: 13 },
};

/** Every dtype name the format defines (so an unsupported one is named as such, not as garbage). */
const KNOWN_UNSUPPORTED = new Set(['I8', 'I16', 'U16', 'U32', 'U64', 'F8_E5M2', 'F8_E4M3', 'F8_E8M0', 'F4', 'F6_E2M3', 'F6_E3M2', 'C64']);

export const SAFETENSORS_DTYPES: readonly SafetensorsDType[] = ['F32', 'F16', 'BF16', 'F64', 'I32', 'I64', 'U8', 'BOOL'];

/** The reference reader's limit; a larger length means a corrupt or foreign file. */
export const MAX_HEADER_BYTES = 100_000_000;

export function isSafetensorsDType(d: unknown): d is SafetensorsDType {
  return typeof d === 'string' && Object.prototype.hasOwnProperty.call(DTYPES, d);
}

/** A tensor to write. `data` is row-major; its length must be the product of `shape`. */
export interface TensorEntry {
  dtype: SafetensorsDType;
  shape: readonly number[];
  /**
   * Numbers (any typed array or array). Float dtypes round to the target precision (F16/BF16:
   * round to nearest even). Integer dtypes need integers in range; I64 also takes a BigInt64Array.
   */
  data: ArrayLike<number> | BigInt64Array;
}

/**
 * A tensor read from a file. F32/F16/BF16 come back as Float32Array (F16/BF16 widened exactly),
 * F64 as Float64Array, I32 and I64 as Int32Array (I64 values must fit in i32), U8/BOOL as Uint8Array.
 */
export interface DecodedTensor {
  /** The dtype stored in the file. */
  dtype: SafetensorsDType;
  shape: number[];
  data: Float32Array | Float64Array | Int32Array | Uint8Array;
}

export type SafetensorsMetadata = Record<string, string>;

export interface DecodedSafetensors {
  tensors: Record<string, DecodedTensor>;
  metadata: SafetensorsMetadata;
}

/** Every format problem is reported with this class; the message names the tensor or key. */
export class SafetensorsError extends Error {
  constructor(message: string) {
    super(`safetensors: ${message}`);
    this.name = 'SafetensorsError';
  }
}

const LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

/** Sets an own enumerable property, even for keys like "__proto__" that a crafted file may use. */
export function setOwn<T>(obj: Record<string, T>, key: string, value: T): void {
  Object.defineProperty(obj, key, { value, enumerable: true, writable: true, configurable: true });
}

const fmt = (shape: readonly number[]) => `[${shape.join(', ')}]`;
const q = (name: string) => JSON.stringify(name);

// ---------------------------------------------------------------- half precision conversions

let f16Table: Float32Array | null = null;

/** All 65536 f16 bit patterns widened to f32 (exact), built on first use. */
function f16ToF32Table(): Float32Array {
  if (f16Table) return f16Table;
  const t = new Float32Array(65536);
  for (let h = 0; h < 65536; h++) {
    const sign = h & 0x8000 ? -1 : 1;
    const exp = (h >> 10) & 0x1f;
    const mant = h & 0x3ff;
    if (exp === 0) t[h] = sign * mant * 2 ** -24;
    else if (exp === 31) t[h] = mant ? NaN : sign * Infinity;
    else t[h] = sign * (1 + mant / 1024) * 2 ** (exp - 15);
  }
  f16Table = t;
  return t;
}

/** f32 bit pattern -> f16 bit pattern, rounding to nearest even (overflow -> inf, NaN stays NaN). */
export function f32BitsToF16(x: number): number {
  const sign = (x >>> 16) & 0x8000;
  const exp = (x >>> 23) & 0xff;
  const mant = x & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (mant ? 0x200 | (mant >>> 13) : 0);
  const e = exp - 127 + 15;
  if (e >= 31) return sign | 0x7c00;
  if (e <= 0) {
    if (e < -10) return sign;
    const m = mant | 0x800000;
    const shift = 14 - e; // 14..24: the result is a subnormal count of 2^-24
    const half = 1 << (shift - 1);
    let r = m >>> shift;
    const rem = m & ((1 << shift) - 1);
    if (rem > half || (rem === half && r & 1)) r++;
    return sign | r; // r may round up to 0x400, the smallest normal: the encoding is still right
  }
  let r = (e << 10) | (mant >>> 13);
  const rem = mant & 0x1fff;
  if (rem > 0x1000 || (rem === 0x1000 && r & 1)) r++; // a carry into the exponent gives inf correctly
  return sign | r;
}

/** f32 bit pattern -> bf16 bit pattern, rounding to nearest even (NaN stays NaN). */
export function f32BitsToBF16(x: number): number {
  if ((x & 0x7f800000) === 0x7f800000 && x & 0x7fffff) return ((x >>> 16) | 0x40) & 0xffff;
  return ((x >>> 0) + 0x7fff + ((x >>> 16) & 1)) >>> 16;
}

// ---------------------------------------------------------------- byte order helpers

/** Little-endian bytes of a typed array (a view on little-endian hosts, a swapped copy otherwise). */
function leBytes(arr: Float32Array | Float64Array | Int32Array | Uint16Array | BigInt64Array | Uint8Array): Uint8Array {
  const bytes = new Uint8Array(arr.buffer, arr.byteOffset, arr.byteLength);
  const k = arr.BYTES_PER_ELEMENT;
  if (LITTLE_ENDIAN || k === 1) return bytes;
  const out = new Uint8Array(bytes.length);
  for (let i = 0; i < bytes.length; i += k) for (let j = 0; j < k; j++) out[i + j] = bytes[i + k - 1 - j]!;
  return out;
}

/** Copies little-endian file bytes into a fresh, aligned typed array in host order. */
function fromLE<T extends Float32Array | Float64Array | Int32Array | Uint16Array | BigInt64Array | Uint8Array>(
  src: Uint8Array,
  make: (n: number) => T,
): T {
  const k = make(0).BYTES_PER_ELEMENT;
  const out = make(src.length / k);
  const dst = new Uint8Array(out.buffer, out.byteOffset, out.byteLength);
  if (LITTLE_ENDIAN || k === 1) dst.set(src);
  else for (let i = 0; i < src.length; i += k) for (let j = 0; j < k; j++) dst[i + j] = src[i + k - 1 - j]!;
  return out;
}

// ---------------------------------------------------------------- writing

function checkName(name: string): void {
  if (name === '__metadata__') throw new SafetensorsError(`"__metadata__" is reserved for the metadata and cannot name a tensor`);
}

function checkShapeOf(name: string, shape: unknown): number[] {
  if (!Array.isArray(shape) || !shape.every((d) => Number.isSafeInteger(d) && d >= 0)) {
    throw new SafetensorsError(`tensor ${q(name)}: shape must be an array of integers >= 0, got ${JSON.stringify(shape)}`);
  }
  return [...(shape as number[])];
}

function sizeOfChecked(name: string, shape: readonly number[]): number {
  let n = 1;
  for (const d of shape) {
    n *= d;
    if (!Number.isSafeInteger(n)) throw new SafetensorsError(`tensor ${q(name)}: shape ${fmt(shape)} has too many elements`);
  }
  return n;
}

function checkMetadata(metadata: SafetensorsMetadata | undefined): [string, string][] {
  if (metadata === undefined) return [];
  if (typeof metadata !== 'object' || metadata === null || Array.isArray(metadata)) throw new SafetensorsError(`metadata must be an object of strings`);
  const entries = Object.entries(metadata).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  for (const [k, v] of entries) {
    if (typeof v !== 'string') {
      throw new SafetensorsError(`metadata value for key ${q(k)} must be a string, got ${typeof v} (store JSON with setJson/jsonMetadata)`);
    }
  }
  return entries;
}

function integerArray(name: string, dtype: SafetensorsDType, data: ArrayLike<number>, lo: number, hi: number): ArrayLike<number> {
  if (dtype === 'I32' && data instanceof Int32Array) return data;
  if (dtype === 'U8' && data instanceof Uint8Array) return data;
  for (let i = 0; i < data.length; i++) {
    const v = data[i]!;
    if (!Number.isInteger(v) || v < lo || v > hi) {
      throw new SafetensorsError(`tensor ${q(name)}: element ${i} is ${v}, which is not ${dtype === 'BOOL' ? '0 or 1' : `an integer in [${lo}, ${hi}]`} as dtype ${dtype} needs`);
    }
  }
  return data;
}

/** The little-endian bytes of one tensor's data in its file dtype. */
function encodeData(name: string, t: TensorEntry): Uint8Array {
  const { dtype, data } = t;
  if (data instanceof BigInt64Array) {
    if (dtype !== 'I64') throw new SafetensorsError(`tensor ${q(name)}: BigInt64Array data can only be written as I64, not ${dtype}`);
    return leBytes(data);
  }
  switch (dtype) {
    case 'F32':
      return leBytes(data instanceof Float32Array ? data : Float32Array.from(data));
    case 'F64':
      return leBytes(data instanceof Float64Array ? data : Float64Array.from(data));
    case 'F16':
    case 'BF16': {
      const f = data instanceof Float32Array ? data : Float32Array.from(data);
      const bits = new Uint32Array(f.buffer, f.byteOffset, f.length);
      const out = new Uint16Array(f.length);
      const conv = dtype === 'F16' ? f32BitsToF16 : f32BitsToBF16;
      for (let i = 0; i < f.length; i++) out[i] = conv(bits[i]!);
      return leBytes(out);
    }
    case 'I32': {
      const v = integerArray(name, dtype, data, -0x80000000, 0x7fffffff);
      return leBytes(v instanceof Int32Array ? v : Int32Array.from(v));
    }
    case 'I64': {
      const v = data instanceof Int32Array ? data : integerArray(name, dtype, data, Number.MIN_SAFE_INTEGER, Number.MAX_SAFE_INTEGER);
      const out = new BigInt64Array(v.length);
      for (let i = 0; i < v.length; i++) out[i] = BigInt(v[i]!);
      return leBytes(out);
    }
    case 'U8':
    case 'BOOL': {
      const v = integerArray(name, dtype, data, 0, dtype === 'BOOL' ? 1 : 255);
      return v instanceof Uint8Array ? v : Uint8Array.from(v);
    }
  }
}

interface PlannedTensor {
  name: string;
  entry: TensorEntry;
  shape: number[];
  begin: number;
  end: number;
}

interface Plan {
  /** The 8-byte length plus the padded JSON header. */
  head: Uint8Array;
  tensors: PlannedTensor[];
  dataBytes: number;
}

function plan(tensors: Record<string, TensorEntry>, metadata: SafetensorsMetadata | undefined): Plan {
  if (typeof tensors !== 'object' || tensors === null) throw new SafetensorsError('tensors must be an object of {dtype, shape, data}');
  const metaEntries = checkMetadata(metadata);
  const list: PlannedTensor[] = [];
  for (const [name, entry] of Object.entries(tensors)) {
    checkName(name);
    if (!entry || typeof entry !== 'object') throw new SafetensorsError(`tensor ${q(name)}: expected {dtype, shape, data}, got ${String(entry)}`);
    if (!isSafetensorsDType(entry.dtype)) {
      throw new SafetensorsError(`tensor ${q(name)}: unsupported dtype ${JSON.stringify(entry.dtype)} (supported: ${SAFETENSORS_DTYPES.join(', ')})`);
    }
    const shape = checkShapeOf(name, entry.shape);
    const n = sizeOfChecked(name, shape);
    if (!entry.data || typeof entry.data.length !== 'number') throw new SafetensorsError(`tensor ${q(name)}: data must be an array or typed array`);
    if (entry.data.length !== n) {
      throw new SafetensorsError(`tensor ${q(name)}: data has ${entry.data.length} elements but shape ${fmt(shape)} needs ${n}`);
    }
    list.push({ name, entry, shape, begin: 0, end: n * DTYPES[entry.dtype].bytes });
  }
  // The reference writer's order: descending dtype alignment, then name. (Names compare by UTF-16 code
  // units; Rust compares UTF-8 bytes, which orders the same except for characters above U+FFFF.)
  list.sort((a, b) => DTYPES[b.entry.dtype].rank - DTYPES[a.entry.dtype].rank || (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  let offset = 0;
  const parts: string[] = [];
  if (metaEntries.length) parts.push(`"__metadata__":{${metaEntries.map(([k, v]) => `${JSON.stringify(k)}:${JSON.stringify(v)}`).join(',')}}`);
  for (const t of list) {
    const bytes = t.end;
    t.begin = offset;
    t.end = offset + bytes;
    offset = t.end;
    parts.push(`${JSON.stringify(t.name)}:{"dtype":"${t.entry.dtype}","shape":[${t.shape.join(',')}],"data_offsets":[${t.begin},${t.end}]}`);
  }
  // Built by hand: a JS object would move integer-like names ("0") to the front.
  const json = new TextEncoder().encode(`{${parts.join(',')}}`);
  const padded = Math.ceil(json.length / 8) * 8;
  const head = new Uint8Array(8 + padded).fill(0x20, 8 + json.length);
  new DataView(head.buffer).setBigUint64(0, BigInt(padded), true);
  head.set(json, 8);
  return { head, tensors: list, dataBytes: offset };
}

/**
 * The file as a sequence of byte chunks (header first, then one chunk per tensor, each encoded
 * only when reached), for writers that stream to disk. `byteLength` is the total size. The
 * tensors' shapes, dtypes and lengths are checked before the first chunk; integer values as
 * their chunk is produced.
 */
export function safetensorsChunks(tensors: Record<string, TensorEntry>, metadata?: SafetensorsMetadata): { byteLength: number; chunks: Iterable<Uint8Array> } {
  const p = plan(tensors, metadata);
  return {
    byteLength: p.head.length + p.dataBytes,
    chunks: (function* () {
      yield p.head;
      for (const t of p.tensors) yield encodeData(t.name, t.entry);
    })(),
  };
}

/** Encodes tensors (and string metadata) as a safetensors file. */
export function encodeSafetensors(tensors: Record<string, TensorEntry>, metadata?: SafetensorsMetadata): Uint8Array {
  const p = plan(tensors, metadata);
  const out = new Uint8Array(p.head.length + p.dataBytes);
  out.set(p.head, 0);
  for (const t of p.tensors) out.set(encodeData(t.name, t.entry), p.head.length + t.begin);
  return out;
}

// ---------------------------------------------------------------- reading

interface HeaderEntry {
  name: string;
  dtype: SafetensorsDType;
  shape: number[];
  begin: number;
  end: number;
}

function asBytes(input: Uint8Array | ArrayBuffer | ArrayBufferView): Uint8Array {
  if (input instanceof Uint8Array) return input;
  if (input instanceof ArrayBuffer) return new Uint8Array(input);
  if (ArrayBuffer.isView(input)) return new Uint8Array(input.buffer, input.byteOffset, input.byteLength);
  throw new SafetensorsError(`expected a Uint8Array or ArrayBuffer, got ${input === null ? 'null' : typeof input}`);
}

function parseEntry(name: string, raw: unknown): HeaderEntry {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) throw new SafetensorsError(`tensor ${q(name)}: header entry must be an object {dtype, shape, data_offsets}`);
  const { dtype, shape, data_offsets: offs } = raw as Record<string, unknown>;
  if (!isSafetensorsDType(dtype)) {
    const known = typeof dtype === 'string' && KNOWN_UNSUPPORTED.has(dtype);
    throw new SafetensorsError(
      `tensor ${q(name)}: ${known ? 'unsupported' : 'unknown'} dtype ${JSON.stringify(dtype)} (supported: ${SAFETENSORS_DTYPES.join(', ')})`,
    );
  }
  const s = checkShapeOf(name, shape);
  if (!Array.isArray(offs) || offs.length !== 2 || !offs.every((o) => Number.isSafeInteger(o) && o >= 0)) {
    throw new SafetensorsError(`tensor ${q(name)}: data_offsets must be [begin, end] with integers >= 0, got ${JSON.stringify(offs)}`);
  }
  const [begin, end] = offs as [number, number];
  if (end < begin) throw new SafetensorsError(`tensor ${q(name)}: data_offsets [${begin}, ${end}] end before they begin`);
  const need = sizeOfChecked(name, s) * DTYPES[dtype].bytes;
  if (end - begin !== need) {
    throw new SafetensorsError(`tensor ${q(name)}: data_offsets [${begin}, ${end}] hold ${end - begin} bytes but dtype ${dtype} with shape ${fmt(s)} needs ${need}`);
  }
  return { name, dtype, shape: s, begin, end };
}

/** Parses and validates the header; returns the entries sorted by offset and where the data starts. */
function readHeader(bytes: Uint8Array): { entries: HeaderEntry[]; metadata: SafetensorsMetadata; dataStart: number } {
  if (bytes.length < 8) throw new SafetensorsError(`file is ${bytes.length} bytes, too short for the 8-byte header length: truncated or not a safetensors file`);
  const n64 = new DataView(bytes.buffer, bytes.byteOffset, 8).getBigUint64(0, true);
  if (n64 > BigInt(MAX_HEADER_BYTES)) throw new SafetensorsError(`header length ${n64} is over the ${MAX_HEADER_BYTES}-byte limit: corrupt or not a safetensors file`);
  const n = Number(n64);
  if (8 + n > bytes.length) throw new SafetensorsError(`header length ${n} runs past the end of the file (${bytes.length} bytes): truncated file`);
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(bytes.subarray(8, 8 + n));
  } catch {
    throw new SafetensorsError('header is not valid UTF-8: corrupt file');
  }
  let header: unknown;
  try {
    header = JSON.parse(text);
  } catch (e) {
    throw new SafetensorsError(`header is not valid JSON (${(e as Error).message}): corrupt file`);
  }
  if (typeof header !== 'object' || header === null || Array.isArray(header)) throw new SafetensorsError(`header must be a JSON object, got ${Array.isArray(header) ? 'an array' : String(header)}`);

  const metadata: SafetensorsMetadata = {};
  const entries: HeaderEntry[] = [];
  for (const [key, value] of Object.entries(header as Record<string, unknown>)) {
    if (key === '__metadata__') {
      if (value === null) continue;
      if (typeof value !== 'object' || Array.isArray(value)) throw new SafetensorsError(`__metadata__ must be an object of strings`);
      for (const [k, v] of Object.entries(value as Record<string, unknown>)) {
        if (typeof v !== 'string') throw new SafetensorsError(`__metadata__ value for key ${q(k)} must be a string, got ${JSON.stringify(v)}`);
        setOwn(metadata, k, v);
      }
      continue;
    }
    entries.push(parseEntry(key, value));
  }

  const dataStart = 8 + n;
  const dataBytes = bytes.length - dataStart;
  entries.sort((a, b) => a.begin - b.begin || a.end - b.end);
  let covered = 0;
  let prev: HeaderEntry | null = null;
  for (const e of entries) {
    if (e.end > dataBytes) {
      throw new SafetensorsError(`tensor ${q(e.name)}: data_offsets [${e.begin}, ${e.end}] run past the end of the data section (${dataBytes} bytes): truncated file`);
    }
    if (e.begin < covered) {
      throw new SafetensorsError(`tensors ${q(prev!.name)} [${prev!.begin}, ${prev!.end}] and ${q(e.name)} [${e.begin}, ${e.end}] overlap`);
    }
    if (e.begin > covered) {
      throw new SafetensorsError(`tensor ${q(e.name)}: data_offsets start at ${e.begin} but the previous tensor ends at ${covered} (bytes ${covered}..${e.begin} belong to no tensor)`);
    }
    covered = e.end;
    if (e.end > e.begin || !prev) prev = e;
  }
  if (covered !== dataBytes) throw new SafetensorsError(`the tensors cover ${covered} bytes of the data section but it has ${dataBytes}: ${dataBytes - covered} bytes after the last tensor`);
  return { entries, metadata, dataStart };
}

function decodeData(e: HeaderEntry, src: Uint8Array): DecodedTensor['data'] {
  switch (e.dtype) {
    case 'F32':
      return fromLE(src, (k) => new Float32Array(k));
    case 'F64':
      return fromLE(src, (k) => new Float64Array(k));
    case 'F16': {
      const h = fromLE(src, (k) => new Uint16Array(k));
      const table = f16ToF32Table();
      const out = new Float32Array(h.length);
      for (let i = 0; i < h.length; i++) out[i] = table[h[i]!]!;
      return out;
    }
    case 'BF16': {
      const h = fromLE(src, (k) => new Uint16Array(k));
      const bits = new Uint32Array(h.length);
      for (let i = 0; i < h.length; i++) bits[i] = h[i]! << 16;
      return new Float32Array(bits.buffer);
    }
    case 'I32':
      return fromLE(src, (k) => new Int32Array(k));
    case 'I64': {
      // Host-order 64-bit words viewed as i32 pairs: it fits in i32 iff the high word is the sign of the low one.
      const words = new Int32Array(fromLE(src, (k) => new BigInt64Array(k)).buffer);
      const lo = LITTLE_ENDIAN ? 0 : 1;
      const out = new Int32Array(words.length / 2);
      for (let i = 0; i < out.length; i++) {
        const l = words[2 * i + lo]!;
        if (words[2 * i + 1 - lo]! !== l >> 31) {
          const v = new DataView(src.buffer, src.byteOffset + 8 * i, 8).getBigInt64(0, true);
          throw new SafetensorsError(`tensor ${q(e.name)}: I64 element ${i} is ${v}, outside the i32 range [-2147483648, 2147483647] that integer tensors here hold`);
        }
        out[i] = l;
      }
      return out;
    }
    case 'U8':
    case 'BOOL':
      return src.slice();
  }
}

/** Reads only the header: names, dtypes, shapes and byte ranges (validated) plus the metadata. */
export function readSafetensorsHeader(input: Uint8Array | ArrayBuffer | ArrayBufferView): {
  tensors: Record<string, { dtype: SafetensorsDType; shape: number[]; dataOffsets: [number, number] }>;
  metadata: SafetensorsMetadata;
  dataStart: number;
} {
  const { entries, metadata, dataStart } = readHeader(asBytes(input));
  const tensors: Record<string, { dtype: SafetensorsDType; shape: number[]; dataOffsets: [number, number] }> = {};
  for (const e of entries) setOwn(tensors, e.name, { dtype: e.dtype, shape: e.shape, dataOffsets: [e.begin, e.end] as [number, number] });
  return { tensors, metadata, dataStart };
}

/** Decodes a safetensors file (validating it fully); each tensor's data is a fresh copy. */
export function decodeSafetensors(input: Uint8Array | ArrayBuffer | ArrayBufferView): DecodedSafetensors {
  const bytes = asBytes(input);
  const { entries, metadata, dataStart } = readHeader(bytes);
  const tensors: Record<string, DecodedTensor> = {};
  for (const e of entries) {
    setOwn(tensors, e.name, { dtype: e.dtype, shape: e.shape, data: decodeData(e, bytes.subarray(dataStart + e.begin, dataStart + e.end)) });
  }
  return { tensors, metadata };
}
