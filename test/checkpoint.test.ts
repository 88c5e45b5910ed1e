/**
 * safetensors checkpoints: the byte format, PyTorch interop (fixtures from make_checkpoint.py),
 * validation of corrupt and truncated files, the engine-facing save/load, and atomic writes
 * (including child processes killed mid-write).
 *
 * Precision: F32/F64/I32/U8/BOOL round trips are bit-exact. F16/BF16 are checked against an
 * independent round-to-nearest-even reference (binary search over all representable values), bit
 * for bit. Engine round trips compare with Math.fround of the input (a tensor on the float64 CPU
 * backend is written as F32, so exactly one f32 rounding happens).
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync, watch, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { afterAll, describe, expect, it } from 'vitest';
import { CpuBackend, cpuF64, tensor, type Backend, type Tensor } from '../engine/index.js';
import {
  decodeSafetensors,
  encodeSafetensors,
  getJson,
  getJsonOr,
  jsonMetadata,
  loadTensors,
  loadTensorsWithMetadata,
  readSafetensorsHeader,
  SAFETENSORS_DTYPES,
  safetensorsChunks,
  saveTensors,
  SafetensorsError,
  setJson,
  type DecodedTensor,
  type SafetensorsDType,
  type TensorEntry,
} from '../nn/checkpoint/index.js';
import { loadCheckpoint, saveCheckpoint, writeFileAtomic } from '../node/checkpoint.js';
import { buildTsCheckpoint } from './fixtures/make_checkpoint_ts.js';
import { requireGpu } from './helpers/backends.js';

const ROOT = join(import.meta.dirname, '..');
const FIX = join(import.meta.dirname, 'fixtures');
const gpu = await requireGpu();

// ---------------------------------------------------------------- byte helpers

const enc = new TextEncoder();

function u64le(n: number): Uint8Array {
  const b = new Uint8Array(8);
  new DataView(b.buffer).setBigUint64(0, BigInt(n), true);
  return b;
}

function concat(...parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((a, p) => a + p.length, 0));
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

function f32le(values: number[]): Uint8Array {
  return new Uint8Array(new Float32Array(values).buffer);
}

/** A raw file: header JSON text (padded with spaces to 8 bytes unless pad is false) plus data bytes. */
function rawFile(json: string, data: Uint8Array = new Uint8Array(0), pad = true): Uint8Array {
  let h: Uint8Array = enc.encode(json);
  if (pad && h.length % 8) h = concat(h, enc.encode(' '.repeat(8 - (h.length % 8))));
  return concat(u64le(h.length), h, data);
}

function decodeError(bytes: Uint8Array): Error {
  try {
    decodeSafetensors(bytes);
  } catch (e) {
    return e as Error;
  }
  throw new Error('expected decodeSafetensors to throw');
}

// ---------------------------------------------------------------- independent f16/bf16 references

/** IEEE binary16 value of a bit pattern (the definition, not the decoder's table). */
function f16Value(p: number): number {
  const sign = p & 0x8000 ? -1 : 1;
  const e = (p >> 10) & 31;
  const m = p & 0x3ff;
  if (e === 31) return m ? NaN : sign * Infinity;
  return sign * (e === 0 ? m * 2 ** -24 : (1024 + m) * 2 ** (e - 25));
}

function bf16Value(p: number): number {
  const dv = new DataView(new ArrayBuffer(4));
  dv.setUint32(0, p << 16);
  return dv.getFloat32(0);
}

/**
 * Round-to-nearest-even by search: the largest non-negative pattern whose value is <= |x| among
 * 0..maxFinite, with the infinity pattern standing for the next power of two (so overflow
 * rounds to infinity exactly where IEEE says).
 */
function nearestPattern(x: number, kind: 'F16' | 'BF16'): number {
  const maxFinite = kind === 'F16' ? 0x7bff : 0x7f7f;
  const inf = maxFinite + 1;
  const value = (p: number) => (p === inf ? (kind === 'F16' ? 2 ** 16 : 2 ** 128) : kind === 'F16' ? f16Value(p) : bf16Value(p));
  const signBit = Object.is(x, -0) || x < 0 ? 0x8000 : 0;
  const a = Math.abs(x);
  if (a === Infinity) return signBit | inf;
  let lo = 0;
  let hi = inf; // invariant: value(lo) <= a < value(hi) unless a >= value(inf)
  if (a >= value(inf)) return signBit | inf;
  while (hi - lo > 1) {
    const mid = (lo + hi) >> 1;
    if (value(mid) <= a) lo = mid;
    else hi = mid;
  }
  const dl = a - value(lo);
  const dh = value(hi) - a;
  const p = dl < dh ? lo : dh < dl ? hi : lo % 2 === 0 ? lo : hi;
  return signBit | p;
}

function isNaNPattern(p: number, kind: 'F16' | 'BF16'): boolean {
  return kind === 'F16' ? (p & 0x7c00) === 0x7c00 && (p & 0x3ff) !== 0 : (p & 0x7f80) === 0x7f80 && (p & 0x7f) !== 0;
}

// ---------------------------------------------------------------- arbitraries

const RANGES: Record<SafetensorsDType, fc.Arbitrary<number>> = {
  F32: fc.float(),
  F64: fc.double(),
  F16: fc.float(),
  BF16: fc.float(),
  I32: fc.integer(),
  I64: fc.integer(),
  U8: fc.integer({ min: 0, max: 255 }),
  BOOL: fc.integer({ min: 0, max: 1 }),
};

const nameArb = fc.oneof(
  fc.constantFrom('0', '10', '2', 'a', 'a.b', 'blocks.0.attn.qkv.weight', 'ü.weight', '', '__proto__', 'constructor'),
  fc.string({ maxLength: 8, unit: 'grapheme' }),
).filter((n) => n !== '__metadata__');

interface Case {
  name: string;
  dtype: SafetensorsDType;
  shape: number[];
  values: number[];
}

const caseArb: fc.Arbitrary<Case> = fc
  .tuple(nameArb, fc.constantFrom(...SAFETENSORS_DTYPES), fc.array(fc.integer({ min: 0, max: 4 }), { maxLength: 3 }))
  .chain(([name, dtype, shape]) => {
    const n = shape.reduce((a, b) => a * b, 1);
    return fc.array(RANGES[dtype], { minLength: n, maxLength: n }).map((values) => ({ name, dtype, shape, values }));
  });

const casesArb = fc.uniqueArray(caseArb, { maxLength: 7, selector: (c) => c.name });
const metaArb = fc.dictionary(fc.string({ maxLength: 6, unit: 'grapheme' }), fc.string({ maxLength: 12, unit: 'grapheme' }), { maxKeys: 4 });

function typedInput(c: Case): TensorEntry['data'] {
  switch (c.dtype) {
    case 'F32':
    case 'F16':
    case 'BF16':
      return Float32Array.from(c.values);
    case 'F64':
      return Float64Array.from(c.values);
    case 'I32':
      return Int32Array.from(c.values);
    case 'I64':
      return c.values; // plain numbers: the writer range-checks them
    case 'U8':
    case 'BOOL':
      return Uint8Array.from(c.values);
  }
}

function makeRecord(cases: Case[]): Record<string, TensorEntry> {
  const rec: Record<string, TensorEntry> = {};
  for (const c of cases) Object.defineProperty(rec, c.name, { value: { dtype: c.dtype, shape: c.shape, data: typedInput(c) }, enumerable: true });
  return rec;
}

function sameNumber(a: number, b: number): boolean {
  return Object.is(a, b) || (Number.isNaN(a) && Number.isNaN(b));
}

function expectDecoded(got: DecodedTensor | undefined, c: Case): void {
  expect(got, c.name).toBeDefined();
  expect(got!.dtype).toBe(c.dtype);
  expect(got!.shape).toEqual(c.shape);
  const d = got!.data;
  switch (c.dtype) {
    case 'F32':
      expect(d).toBeInstanceOf(Float32Array);
      expect(new Uint8Array(d.buffer, d.byteOffset, d.byteLength)).toEqual(new Uint8Array(Float32Array.from(c.values).buffer));
      break;
    case 'F64':
      expect(d).toBeInstanceOf(Float64Array);
      expect(new Uint8Array(d.buffer, d.byteOffset, d.byteLength)).toEqual(new Uint8Array(Float64Array.from(c.values).buffer));
      break;
    case 'F16':
    case 'BF16': {
      expect(d).toBeInstanceOf(Float32Array);
      const val = c.dtype === 'F16' ? f16Value : bf16Value;
      c.values.forEach((v, i) => {
        const want = Number.isNaN(v) ? NaN : val(nearestPattern(v, c.dtype as 'F16' | 'BF16'));
        if (!sameNumber(d[i]!, want)) expect.fail(`${c.name}[${i}]: ${v} as ${c.dtype} decoded to ${d[i]}, expected ${want}`);
      });
      break;
    }
    case 'I32':
    case 'I64':
      expect(d).toBeInstanceOf(Int32Array);
      expect(Array.from(d)).toEqual(c.values);
      break;
    case 'U8':
    case 'BOOL':
      expect(d).toBeInstanceOf(Uint8Array);
      expect(Array.from(d)).toEqual(c.values);
      break;
  }
}

const RANK: Record<SafetensorsDType, number> = { BOOL: 0, U8: 1, F16: 7, BF16: 8, I32: 9, F32: 11, F64: 12, I64: 13 };
const SIZE: Record<SafetensorsDType, number> = { BOOL: 1, U8: 1, F16: 2, BF16: 2, I32: 4, F32: 4, F64: 8, I64: 8 };

// ---------------------------------------------------------------- format

describe('safetensors format', () => {
  it('writes the reference layout byte for byte (the safetensors crate test vectors)', () => {
    const data = [0, 1, 2, 3, 4, 5];
    const a = encodeSafetensors({ 'attn.0': { dtype: 'F32', shape: [1, 2, 3], data } });
    const j = '{"attn.0":{"dtype":"F32","shape":[1,2,3],"data_offsets":[0,24]}}';
    expect(j.length).toBe(64);
    expect(a).toEqual(concat(u64le(64), enc.encode(j), f32le(data)));
    // A 65-byte header is padded with 7 spaces so the data starts 8-aligned.
    const b = encodeSafetensors({ attn0: { dtype: 'F32', shape: [1, 1, 2, 3], data } });
    const jb = '{"attn0":{"dtype":"F32","shape":[1,1,2,3],"data_offsets":[0,24]}}';
    expect(b).toEqual(concat(u64le(72), enc.encode(jb + ' '.repeat(72 - jb.length)), f32le(data)));
    expect(encodeSafetensors({})).toEqual(concat(u64le(8), enc.encode('{}      ')));
    expect(encodeSafetensors({}, { framework: 'pt' })).toEqual(concat(u64le(40), enc.encode('{"__metadata__":{"framework":"pt"}}     ')));
  });

  it('round-trips random records of every dtype, with empty tensors, scalars and metadata', () => {
    fc.assert(
      fc.property(casesArb, metaArb, (cases, meta) => {
        const bytes = encodeSafetensors(makeRecord(cases), meta);
        const out = decodeSafetensors(bytes);
        expect(Object.keys(out.tensors).sort()).toEqual(cases.map((c) => c.name).sort());
        for (const c of cases) expectDecoded(out.tensors[c.name], c);
        expect(out.metadata).toEqual(meta);
        // A chunked write produces the same bytes.
        const { byteLength, chunks } = safetensorsChunks(makeRecord(cases), meta);
        const joined = concat(...chunks);
        expect(joined.length).toBe(byteLength);
        expect(joined).toEqual(bytes);
      }),
      { numRuns: 300 },
    );
  });

  it('orders data by descending dtype alignment then name, contiguous, each tensor aligned to its element size', () => {
    fc.assert(
      fc.property(casesArb, (cases) => {
        const bytes = encodeSafetensors(makeRecord(cases));
        const h = readSafetensorsHeader(bytes);
        expect(h.dataStart % 8).toBe(0);
        const byOffset = Object.entries(h.tensors).sort(([, a], [, b]) => a.dataOffsets[0] - b.dataOffsets[0] || a.dataOffsets[1] - b.dataOffsets[1]);
        const expected = [...cases].sort((a, b) => RANK[b.dtype] - RANK[a.dtype] || (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
        let pos = 0;
        for (const [name, t] of byOffset) {
          expect(t.dataOffsets[0], name).toBe(pos);
          expect((h.dataStart + t.dataOffsets[0]) % SIZE[t.dtype], `${name} alignment`).toBe(0);
          pos = t.dataOffsets[1];
        }
        expect(pos).toBe(bytes.length - h.dataStart);
        // The header text lists tensors in exactly the expected order (parsed by hand: JSON objects reorder integer keys).
        const text = new TextDecoder().decode(bytes.subarray(8, h.dataStart));
        const order = [...text.matchAll(/("(?:[^"\\]|\\.)*"):\{"dtype"/g)].map((m) => JSON.parse(m[1]!) as string);
        expect(order).toEqual(expected.map((c) => c.name));
      }),
      { numRuns: 200 },
    );
  });

  it('F16 and BF16 writes round to nearest even, bit for bit against a search over all values', () => {
    const special = [0, -0, 1, -1, 65504, 65519.99, 65520, 65536, 1e9, -1e9, 2 ** -24, 2 ** -25, 2 ** -25 * 1.0000001, 3 * 2 ** -26, 2 ** -14, 2 ** -14 - 2 ** -25, 1 + 2 ** -11, 1 + 3 * 2 ** -11, 3.3895313892515355e38, 3.4028234663852886e38, 1e-40, 1e-45, Infinity, -Infinity];
    const check = (values: number[]) => {
      const f = Float32Array.from(values);
      for (const kind of ['F16', 'BF16'] as const) {
        const bytes = encodeSafetensors({ x: { dtype: kind, shape: [f.length], data: f } });
        const h = readSafetensorsHeader(bytes);
        const dv = new DataView(bytes.buffer, bytes.byteOffset + h.dataStart);
        for (let i = 0; i < f.length; i++) {
          const got = dv.getUint16(2 * i, true);
          if (Number.isNaN(f[i]!)) {
            if (!isNaNPattern(got, kind)) expect.fail(`${kind}: NaN written as 0x${got.toString(16)}`);
          } else if (got !== nearestPattern(f[i]!, kind)) {
            expect.fail(`${kind}: ${f[i]} written as 0x${got.toString(16)}, nearest-even is 0x${nearestPattern(f[i]!, kind).toString(16)}`);
          }
        }
      }
    };
    check(special);
    check(special.map((v) => -v));
    fc.assert(fc.property(fc.array(fc.float(), { minLength: 1, maxLength: 64 }), check), { numRuns: 300 });
  });

  it('decodes every F16 and BF16 bit pattern to its exact value', () => {
    for (const kind of ['F16', 'BF16'] as const) {
      const bits = new Uint16Array(65536).map((_, i) => i);
      const bytes = rawFile(`{"x":{"dtype":"${kind}","shape":[65536],"data_offsets":[0,131072]}}`, new Uint8Array(bits.buffer));
      const d = decodeSafetensors(bytes).tensors.x!.data;
      for (let p = 0; p < 65536; p++) {
        const want = kind === 'F16' ? f16Value(p) : bf16Value(p);
        if (!sameNumber(d[p]!, want)) expect.fail(`${kind} 0x${p.toString(16)} decoded to ${d[p]}, expected ${want}`);
      }
    }
    expect(f16Value(0x3c00)).toBe(1);
    expect(f16Value(0x7bff)).toBe(65504);
    expect(f16Value(0x0001)).toBe(2 ** -24);
  });

  it('I64 converts to and from i32 with a range check naming the tensor and value', () => {
    const big = [-(2 ** 31), -1, 0, 1, 2 ** 31 - 1];
    for (const data of [Int32Array.from(big), big, BigInt64Array.from(big.map(BigInt))]) {
      const out = decodeSafetensors(encodeSafetensors({ idx: { dtype: 'I64', shape: [5], data } }));
      expect(Array.from(out.tensors.idx!.data)).toEqual(big);
    }
    // Values past i32 are written (safe integers or bigints) but not read into i32.
    for (const v of [2 ** 31, -(2 ** 31) - 1, 2 ** 40, Number.MAX_SAFE_INTEGER]) {
      const bytes = encodeSafetensors({ ok: { dtype: 'I64', shape: [1], data: [7] }, 'layer.step': { dtype: 'I64', shape: [2], data: [1, v] } });
      const e = decodeError(bytes);
      expect(e).toBeInstanceOf(SafetensorsError);
      expect(e.message).toContain(`tensor "layer.step": I64 element 1 is ${v}, outside the i32 range`);
    }
    expect(() => encodeSafetensors({ s: { dtype: 'I64', shape: [1], data: [2 ** 60] } })).toThrow(/tensor "s": element 0 is 1152921504606847000, which is not an integer in \[-9007199254740991, 9007199254740991\] as dtype I64 needs/);
  });

  it('rejects bad inputs to the writer with errors naming the tensor or key', () => {
    const cases: [Record<string, TensorEntry>, Record<string, string> | undefined, RegExp][] = [
      [{ w: { dtype: 'F32', shape: [2, 3], data: [1, 2, 3] } }, undefined, /tensor "w": data has 3 elements but shape \[2, 3\] needs 6/],
      [{ w: { dtype: 'F8' as SafetensorsDType, shape: [1], data: [1] } }, undefined, /tensor "w": unsupported dtype "F8" \(supported: /],
      [{ w: { dtype: 'F32', shape: [-1], data: [] } }, undefined, /tensor "w": shape must be an array of integers >= 0/],
      [{ w: { dtype: 'F32', shape: [1.5], data: [1] } }, undefined, /tensor "w": shape must be/],
      [{ i: { dtype: 'I32', shape: [2], data: [1, 0.5] } }, undefined, /tensor "i": element 1 is 0.5, which is not an integer in \[-2147483648, 2147483647\]/],
      [{ i: { dtype: 'I32', shape: [1], data: [2 ** 31] } }, undefined, /tensor "i": element 0 is 2147483648/],
      [{ u: { dtype: 'U8', shape: [1], data: [256] } }, undefined, /tensor "u": element 0 is 256, which is not an integer in \[0, 255\]/],
      [{ b: { dtype: 'BOOL', shape: [1], data: [2] } }, undefined, /tensor "b": element 0 is 2, which is not 0 or 1/],
      [{ i: { dtype: 'I64', shape: [1], data: [NaN] } }, undefined, /tensor "i": element 0 is NaN/],
      [{ f: { dtype: 'F32', shape: [1], data: new BigInt64Array(1) } }, undefined, /tensor "f": BigInt64Array data can only be written as I64/],
      [{ __metadata__: { dtype: 'F32', shape: [0], data: [] } }, undefined, /"__metadata__" is reserved/],
      [{}, { step: 5 as unknown as string }, /metadata value for key "step" must be a string, got number/],
    ];
    for (const [t, m, re] of cases) {
      let err: unknown;
      try {
        encodeSafetensors(t, m);
      } catch (e) {
        err = e;
      }
      expect(err, String(re)).toBeInstanceOf(SafetensorsError);
      expect((err as Error).message).toMatch(re);
    }
  });
});

describe('safetensors validation of corrupt files', () => {
  const good = encodeSafetensors(
    {
      'enc.w': { dtype: 'F32', shape: [2, 3], data: [1, 2, 3, 4, 5, 6] },
      'enc.b': { dtype: 'F16', shape: [3], data: [1, 2, 3] },
      step: { dtype: 'I64', shape: [], data: [9] },
      empty: { dtype: 'U8', shape: [0, 4], data: [] },
    },
    { config: '{"dim":3}' },
  );

  const cases: [string, Uint8Array, RegExp][] = [
    ['empty file', new Uint8Array(0), /file is 0 bytes, too short for the 8-byte header length: truncated/],
    ['7 bytes', new Uint8Array(7), /file is 7 bytes, too short/],
    ['header length past the end', concat(u64le(1000), enc.encode('{}')), /header length 1000 runs past the end of the file \(10 bytes\): truncated file/],
    ['absurd header length', concat(u64le(2 ** 53), enc.encode('{}')), /header length 9007199254740992 is over the 100000000-byte limit/],
    ['invalid UTF-8', concat(u64le(4), new Uint8Array([0x7b, 0xff, 0xfe, 0x7d])), /header is not valid UTF-8/],
    ['bad JSON', rawFile('{"w":{"dtype":"F32",'), /header is not valid JSON \(.+\): corrupt file/],
    ['JSON array', rawFile('[1,2]'), /header must be a JSON object, got an array/],
    ['unknown dtype', rawFile('{"w":{"dtype":"Q7","shape":[1],"data_offsets":[0,4]}}', new Uint8Array(4)), /tensor "w": unknown dtype "Q7" \(supported: F32, F16, BF16, F64, I32, I64, U8, BOOL\)/],
    ['unsupported dtype', rawFile('{"w":{"dtype":"I16","shape":[2],"data_offsets":[0,4]}}', new Uint8Array(4)), /tensor "w": unsupported dtype "I16"/],
    ['missing dtype', rawFile('{"w":{"shape":[1],"data_offsets":[0,4]}}', new Uint8Array(4)), /tensor "w": unknown dtype undefined/],
    ['entry not an object', rawFile('{"w":[1,2]}'), /tensor "w": header entry must be an object/],
    ['negative shape', rawFile('{"w":{"dtype":"F32","shape":[-1],"data_offsets":[0,4]}}', new Uint8Array(4)), /tensor "w": shape must be an array of integers >= 0, got \[-1\]/],
    ['bad offsets', rawFile('{"w":{"dtype":"F32","shape":[1],"data_offsets":[0]}}', new Uint8Array(4)), /tensor "w": data_offsets must be \[begin, end\]/],
    ['reversed offsets', rawFile('{"w":{"dtype":"F32","shape":[0],"data_offsets":[4,0]}}', new Uint8Array(4)), /tensor "w": data_offsets \[4, 0\] end before they begin/],
    ['size mismatch', rawFile('{"w":{"dtype":"F32","shape":[2,3],"data_offsets":[0,20]}}', new Uint8Array(20)), /tensor "w": data_offsets \[0, 20\] hold 20 bytes but dtype F32 with shape \[2, 3\] needs 24/],
    [
      'overlap',
      rawFile('{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}}', new Uint8Array(12)),
      /tensors "a" \[0, 8\] and "b" \[4, 12\] overlap/,
    ],
    [
      'gap',
      rawFile('{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"b":{"dtype":"F32","shape":[1],"data_offsets":[8,12]}}', new Uint8Array(12)),
      /tensor "b": data_offsets start at 8 but the previous tensor ends at 4/,
    ],
    ['offsets past the data', rawFile('{"w":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}}', new Uint8Array(12)), /tensor "w": data_offsets \[0, 16\] run past the end of the data section \(12 bytes\): truncated file/],
    ['trailing bytes', rawFile('{"w":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}', new Uint8Array(9)), /cover 4 bytes of the data section but it has 9: 5 bytes after the last tensor/],
    ['metadata not strings', rawFile('{"__metadata__":{"step":5}}'), /__metadata__ value for key "step" must be a string, got 5/],
    ['truncated good file', good.subarray(0, good.length - 3), /tensor "enc.b": data_offsets \[32, 38\] run past the end of the data section \(35 bytes\): truncated file/],
  ];
  for (const [what, bytes, re] of cases) {
    it(`${what}: clear error`, () => {
      const e = decodeError(bytes);
      expect(e).toBeInstanceOf(SafetensorsError);
      expect(e.message).toMatch(re);
    });
  }

  it('the good file decodes (so the corruptions above are what fails)', () => {
    const d = decodeSafetensors(good);
    expect(Array.from(d.tensors['enc.w']!.data)).toEqual([1, 2, 3, 4, 5, 6]);
    expect(d.metadata).toEqual({ config: '{"dim":3}' });
  });

  it('every truncation of a real checkpoint is rejected with a SafetensorsError', () => {
    const bytes = readFileSync(join(FIX, 'checkpoint_torch.safetensors'));
    let n = 0;
    for (let len = 0; len < bytes.length; len++) {
      const e = decodeError(bytes.subarray(0, len));
      if (!(e instanceof SafetensorsError)) expect.fail(`prefix of ${len} bytes: ${e}`);
      n++;
    }
    expect(n).toBe(bytes.length);
  });

  it('a corrupted byte anywhere either still decodes or gives a SafetensorsError (never another exception)', () => {
    const bytes = readFileSync(join(FIX, 'checkpoint_torch.safetensors'));
    const hdrEnd = 8 + Number(new DataView(bytes.buffer, bytes.byteOffset).getBigUint64(0, true));
    let rejected = 0;
    fc.assert(
      fc.property(fc.integer({ min: 0, max: hdrEnd + 64 }), fc.integer({ min: 0, max: 255 }), (pos, val) => {
        const b = Uint8Array.from(bytes);
        b[pos] = val;
        try {
          decodeSafetensors(b);
        } catch (e) {
          if (!(e instanceof SafetensorsError)) throw e;
          rejected++;
        }
      }),
      { numRuns: 500 },
    );
    expect(rejected).toBeGreaterThan(0);
  });
});

// ---------------------------------------------------------------- PyTorch interop

interface TorchFixture {
  model_keys: string[];
  metadata: Record<string, string>;
  tensors: Record<string, { dtype: SafetensorsDType; shape: number[]; values: (number | string)[] }>;
}

describe('PyTorch interop (fixtures from test/fixtures/make_checkpoint.py)', () => {
  const torchBytes = new Uint8Array(readFileSync(join(FIX, 'checkpoint_torch.safetensors')));
  const expected = JSON.parse(readFileSync(join(FIX, 'checkpoint_torch.json'), 'utf8')) as TorchFixture;
  const num = (v: number | string) => (typeof v === 'number' ? v : Number(v));

  it('reads every tensor written by PyTorch: names, dtypes, shapes and values exactly', () => {
    const { tensors, metadata } = decodeSafetensors(torchBytes);
    expect(metadata).toEqual(expected.metadata);
    expect(Object.keys(tensors).sort()).toEqual(Object.keys(expected.tensors).sort());
    expect(expected.model_keys).toContain('blocks.1.attn.qkv.weight');
    expect(expected.model_keys).toContain('bn.num_batches_tracked');
    for (const [name, e] of Object.entries(expected.tensors)) {
      const t = tensors[name]!;
      expect(t.dtype, name).toBe(e.dtype);
      expect(t.shape, name).toEqual(e.shape);
      expect(t.data.length, name).toBe(e.values.length);
      e.values.forEach((v, i) => {
        if (!sameNumber(t.data[i]!, num(v))) expect.fail(`${name}[${i}]: got ${t.data[i]}, PyTorch wrote ${v}`);
      });
    }
    expect(new Set(Object.values(tensors).map((t) => t.dtype))).toEqual(new Set(SAFETENSORS_DTYPES));
  });

  it('re-encoding the PyTorch file gives identical bytes', () => {
    const { tensors, metadata } = decodeSafetensors(torchBytes);
    const again = encodeSafetensors(tensors, metadata);
    expect(again.length).toBe(torchBytes.length);
    expect(Buffer.compare(Buffer.from(again), Buffer.from(torchBytes))).toBe(0);
  });

  it('an I64 value outside i32 in a PyTorch file is a clear error', () => {
    const e = decodeError(new Uint8Array(readFileSync(join(FIX, 'checkpoint_torch_i64_big.safetensors'))));
    expect(e.message).toMatch(/tensor "big": I64 element 1 is 1099511627776, outside the i32 range/);
  });

  it('our writer still produces the committed checkpoint_ts.safetensors that PyTorch verified', async () => {
    const built = await buildTsCheckpoint(torchBytes);
    const committed = new Uint8Array(readFileSync(join(FIX, 'checkpoint_ts.safetensors')));
    expect(Buffer.compare(Buffer.from(built), Buffer.from(committed))).toBe(0);
    const meta = decodeSafetensors(committed).metadata;
    expect(getJson(meta, 'optimizer')).toEqual({ name: 'adamw', lr: 0.001, betas: [0.9, 0.999], step: 1234 });
  });
});

// ---------------------------------------------------------------- metadata helpers

describe('JSON metadata helpers', () => {
  it('round-trip config, step, optimizer scalars and RNG state through the file', () => {
    const meta = jsonMetadata({ config: { dim: 8, blocks: [2, 2], name: 'vq' }, step: 1200 });
    setJson(meta, 'rng', { key: [0xdeadbeef, 7], offset: [4096, 0] });
    setJson(meta, 'label', 'plain string');
    meta.format = 'pt';
    const back = decodeSafetensors(encodeSafetensors({}, meta)).metadata;
    expect(getJson(back, 'config')).toEqual({ dim: 8, blocks: [2, 2], name: 'vq' });
    expect(getJson<number>(back, 'step')).toBe(1200);
    expect(getJson(back, 'rng')).toEqual({ key: [0xdeadbeef, 7], offset: [4096, 0] });
    expect(getJson(back, 'label')).toBe('plain string');
    expect(back.format).toBe('pt');
    expect(getJsonOr(back, 'missing', 3)).toBe(3);
  });

  it('errors name the key', () => {
    expect(() => getJson({ a: '1' }, 'step')).toThrow(/metadata has no key "step" \(keys: "a"\)/);
    expect(() => getJson({ format: 'pt' }, 'format')).toThrow(/metadata "format" is not valid JSON .*"pt"/);
    expect(() => getJsonOr({ step: '{' }, 'step', 0)).toThrow(/metadata "step" is not valid JSON/);
    expect(() => jsonMetadata({ opt: { lr: NaN } })).toThrow(/metadata "opt": cannot store as JSON: field "lr" is NaN/);
    expect(() => setJson({}, 'seed', 5n)).toThrow(/metadata "seed": cannot store as JSON: value is a bigint/);
    expect(() => setJson({}, 'fn', () => 1)).toThrow(/metadata "fn": cannot store function as JSON/);
  });
});

// ---------------------------------------------------------------- engine tensors

async function values(t: Tensor): Promise<number[]> {
  return Array.from(await t.toArray());
}

async function engineRoundTrip(backend: Backend): Promise<void> {
  const x = tensor([1.1, -2.2, 3.3, 4.4, 5.5, 6.6], [2, 3], { backend });
  const xt = x.permute([1, 0]); // non-contiguous view
  const sl = tensor(Array.from({ length: 20 }, (_, i) => i / 7), [4, 5], { backend }).slice([[0, 4, 2], [1, 5, 2]]);
  const ids = tensor(Int32Array.from([-3, 0, 2 ** 31 - 1]), [3], { backend });
  const scalar = tensor(2.5, [], { backend });
  const empty = tensor([], [0, 3], { backend });
  const record = { 'enc.w': x, 'enc.wT': xt, 'enc.sl': sl, ids, scalar, empty, half: x };
  const meta = setJson({}, 'step', 7);
  const bytes = await saveTensors(record, meta, { dtypes: { ids: 'I64', half: 'F16' } });
  const header = readSafetensorsHeader(bytes);
  expect(header.tensors.ids!.dtype).toBe('I64');
  expect(header.tensors.half!.dtype).toBe('F16');
  expect(header.tensors['enc.w']!.dtype).toBe('F32');
  expect(header.metadata).toEqual({ step: '7', format: 'pt' });

  for (const target of [backend, cpuF64]) {
    const { tensors, metadata } = loadTensorsWithMetadata(bytes, target);
    expect(getJson(metadata, 'step')).toBe(7);
    const f = (v: number[]) => v.map(Math.fround);
    expect(tensors['enc.w']!.shape).toEqual([2, 3]);
    expect(tensors['enc.w']!.name).toBe('enc.w');
    expect(tensors['enc.w']!.backend).toBe(target);
    expect(await values(tensors['enc.w']!)).toEqual(f([1.1, -2.2, 3.3, 4.4, 5.5, 6.6]));
    expect(tensors['enc.wT']!.shape).toEqual([3, 2]);
    expect(await values(tensors['enc.wT']!)).toEqual(f([1.1, 4.4, -2.2, 5.5, 3.3, 6.6]));
    expect(tensors['enc.sl']!.shape).toEqual([2, 2]);
    expect(await values(tensors['enc.sl']!)).toEqual(f([1 / 7, 3 / 7, 11 / 7, 13 / 7]));
    expect(tensors.ids!.dtype).toBe('i32');
    expect(await values(tensors.ids!)).toEqual([-3, 0, 2 ** 31 - 1]);
    expect(tensors.scalar!.shape).toEqual([]);
    expect(await values(tensors.scalar!)).toEqual([2.5]);
    expect(tensors.empty!.shape).toEqual([0, 3]);
    expect(await values(tensors.empty!)).toEqual([]);
    // F16: 1.1 -> 1.099609375 etc. (nearest even in binary16).
    expect(await values(tensors.half!)).toEqual([1.1, -2.2, 3.3, 4.4, 5.5, 6.6].map((v) => f16Value(nearestPattern(Math.fround(v), 'F16'))));
    for (const t of Object.values(tensors)) t.dispose();
  }
  for (const t of [x, sl, ids, scalar, empty]) t.dispose();
}

describe('engine tensors: saveTensors / loadTensors', () => {
  it('round-trips f32/i32 tensors, views, scalars and empty tensors on the CPU backends', async () => {
    await engineRoundTrip(cpuF64);
    await engineRoundTrip(new CpuBackend({ precision: 'f32' }));
  });

  it.runIf(gpu)('round-trips on WebGPU (readback of views included)', async () => {
    await engineRoundTrip(gpu!);
  });

  it('loads the PyTorch fixture: floats as f32, integers as i32', async () => {
    const t = loadTensors(readFileSync(join(FIX, 'checkpoint_torch.safetensors')), cpuF64);
    expect(t['bn.num_batches_tracked']!.dtype).toBe('i32');
    expect(t['bn.num_batches_tracked']!.shape).toEqual([]);
    expect(await values(t['bn.num_batches_tracked']!)).toEqual([5]);
    expect(t['extra.bf16']!.dtype).toBe('f32');
    expect(t['extra.u8']!.dtype).toBe('i32');
    expect(await values(t['extra.u8']!)).toEqual([0, 1, 127, 128, 255]);
    expect(t['blocks.0.attn.qkv.weight']!.shape).toEqual([24, 8]);
  });

  it('rejects lossy dtype choices and disposed tensors, naming the tensor', async () => {
    const x = tensor([1.5], [1], { backend: cpuF64 });
    await expect(saveTensors({ w: x }, {}, { dtypes: { w: 'I32' } })).rejects.toThrow(/tensor "w": cannot write a f32 tensor as I32 \(allowed: F32, F16, BF16, F64\)/);
    const i = tensor(Int32Array.from([1]), [1], { backend: cpuF64 });
    await expect(saveTensors({ i }, {}, { dtypes: () => 'F16' })).rejects.toThrow(/tensor "i": cannot write a i32 tensor as F16/);
    const y = tensor([1], [1], { backend: cpuF64 });
    y.dispose();
    await expect(saveTensors({ 'm.y': y })).rejects.toThrow(/tensor "m.y": .* was disposed/);
    x.dispose();
    i.dispose();
  });
});

// ---------------------------------------------------------------- browser safety

describe('nn/checkpoint is browser-safe', () => {
  it('imports nothing from Node and touches no Node globals', () => {
    const dir = join(ROOT, 'nn', 'checkpoint');
    const files = readdirSync(dir).filter((f) => f.endsWith('.ts'));
    expect(files.length).toBeGreaterThanOrEqual(3);
    const offenders: string[] = [];
    for (const f of files) {
      const src = readFileSync(join(dir, f), 'utf8');
      const code = src.replace(/\/\*[\s\S]*?\*\/|\/\/.*$/gm, '');
      for (const m of src.matchAll(/\bfrom\s+['"]([^'"]+)['"]|\bimport\s*\(\s*['"]([^'"]+)['"]\s*\)/g)) {
        const spec = m[1] ?? m[2]!;
        if (!spec.startsWith('.') || /node\//.test(spec)) offenders.push(`${f} imports ${spec}`);
      }
      for (const g of [/\bprocess\./, /\bBuffer\b/, /\brequire\(/, /__dirname/]) if (g.test(code)) offenders.push(`${f} uses ${g.source}`);
    }
    expect(offenders).toEqual([]);
  });
});

// ---------------------------------------------------------------- files: atomic writes

const tmpRoot = mkdtempSync(join(tmpdir(), 'webgpu-tok-ckpt-'));
afterAll(() => rmSync(tmpRoot, { recursive: true, force: true }));
const freshDir = () => mkdtempSync(join(tmpRoot, 'd'));

function ckptRecord(version: number, n: number, backend: Backend = new CpuBackend({ precision: 'f32' })): Record<string, Tensor> {
  const rec: Record<string, Tensor> = {};
  for (let i = 0; i < 4; i++) rec[`w${i}`] = tensor(new Float32Array(n).fill(version + i), [n], { backend });
  return rec;
}

/** Loads `path` and checks it is a complete checkpoint; returns its version. */
async function checkIntact(path: string, allowed: { version: number; n: number }[]): Promise<number> {
  const { tensors, metadata } = await loadCheckpoint(path, new CpuBackend({ precision: 'f32' }));
  const version = Number(metadata.version);
  const spec = allowed.find((a) => a.version === version);
  expect(spec, `checkpoint version ${metadata.version}`).toBeDefined();
  expect(Object.keys(tensors).sort()).toEqual(['w0', 'w1', 'w2', 'w3']);
  for (let i = 0; i < 4; i++) {
    const v = (await tensors[`w${i}`]!.toArray()) as Float32Array;
    expect(v.length).toBe(spec!.n);
    expect(v.every((x) => x === version + i), `w${i} filled with ${version + i}`).toBe(true);
  }
  return version;
}

const temps = (dir: string) => readdirSync(dir).filter((n) => n.includes('.tmp-'));

interface ChildResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  out: string;
}

function runChild(args: string[], onLine: (line: string, kill: () => void) => void = () => {}): Promise<ChildResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', join(ROOT, 'test', 'helpers', 'checkpoint-child.ts'), ...args], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let buf = '';
    child.stdout.on('data', (d: Buffer) => {
      out += d;
      buf += d;
      let i: number;
      while ((i = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, i);
        buf = buf.slice(i + 1);
        onLine(line, () => child.kill('SIGKILL'));
      }
    });
    child.stderr.on('data', (d: Buffer) => (out += d));
    child.on('error', reject);
    child.on('exit', (code, signal) => resolve({ code, signal, out }));
  });
}

describe('checkpoint files (node/checkpoint.ts)', () => {
  it('saveCheckpoint / loadCheckpoint round trip, overwrite, no temp files left', async () => {
    const dir = freshDir();
    const path = join(dir, 'model.safetensors');
    await saveCheckpoint(path, ckptRecord(1, 5), { version: '1' });
    expect(await checkIntact(path, [{ version: 1, n: 5 }])).toBe(1);
    await saveCheckpoint(path, ckptRecord(2, 9), { version: '2' });
    expect(await checkIntact(path, [{ version: 2, n: 9 }])).toBe(2);
    expect(readdirSync(dir)).toEqual(['model.safetensors']);
    const { metadata } = await loadCheckpoint(path, cpuF64);
    expect(metadata.format).toBe('pt');
  });

  it('a truncated or corrupt file on disk gives an error naming the file and the problem', async () => {
    const dir = freshDir();
    const path = join(dir, 'bad.safetensors');
    const bytes = encodeSafetensors({ w: { dtype: 'F32', shape: [4], data: [1, 2, 3, 4] } });
    writeFileSync(path, bytes.subarray(0, bytes.length - 2));
    await expect(loadCheckpoint(path, cpuF64)).rejects.toThrow(`${path}: safetensors: tensor "w": data_offsets [0, 16] run past the end of the data section (14 bytes): truncated file`);
    writeFileSync(path, rawFile('{"w":'));
    await expect(loadCheckpoint(path, cpuF64)).rejects.toThrow(/bad\.safetensors: safetensors: header is not valid JSON/);
  });

  it('an error thrown mid-write or before the rename leaves the previous checkpoint and no temp file', async () => {
    const dir = freshDir();
    const path = join(dir, 'model.safetensors');
    await saveCheckpoint(path, ckptRecord(1, 64), { version: '1' });
    const boom = new Error('injected fault');
    await expect(saveCheckpoint(path, ckptRecord(2, 64), { version: '2' }, { hooks: { afterChunk: (i) => { if (i === 2) throw boom; } } })).rejects.toBe(boom);
    expect(await checkIntact(path, [{ version: 1, n: 64 }])).toBe(1);
    expect(temps(dir)).toEqual([]);
    let seenTmp = '';
    await expect(
      saveCheckpoint(path, ckptRecord(3, 64), { version: '3' }, {
        hooks: {
          beforeRename: (tmp) => {
            seenTmp = tmp;
            expect(statSync(tmp).size).toBe(statSync(path).size); // complete, same layout, not yet renamed
            throw boom;
          },
        },
      }),
    ).rejects.toBe(boom);
    expect(seenTmp).toMatch(/model\.safetensors\.tmp-\d+-[0-9a-f]+$/);
    expect(await checkIntact(path, [{ version: 1, n: 64 }])).toBe(1);
    expect(temps(dir)).toEqual([]);
    // writeFileAtomic does not clobber an existing temp name and leaves nothing behind on success.
    await writeFileAtomic(join(dir, 'notes.json'), enc.encode('{}'));
    expect(readFileSync(join(dir, 'notes.json'), 'utf8')).toBe('{}');
    expect(temps(dir)).toEqual([]);
  });

  it('a process SIGKILLed mid-write leaves the previous checkpoint loadable; the next save removes its temp file', async () => {
    const dir = freshDir();
    const path = join(dir, 'model.safetensors');
    await saveCheckpoint(path, ckptRecord(1, 1000), { version: '1' });
    const n = 1 << 20;
    let partial = '';
    let partialSize = -1;
    const r = await runChild([path, 'hang', String(n), '2'], (line, kill) => {
      if (line.startsWith('PARTIAL ')) {
        partial = line.slice(8);
        partialSize = statSync(partial).size;
        kill();
      }
    });
    expect(r.signal, r.out).toBe('SIGKILL');
    expect(partial).not.toBe('');
    // Header plus the first 4 MiB tensor were on disk, of a ~16 MiB file: the kill was mid-write.
    expect(partialSize).toBeGreaterThan(4 * n);
    expect(partialSize).toBeLessThan(2 * 4 * n);
    expect(await checkIntact(path, [{ version: 1, n: 1000 }])).toBe(1);
    expect(temps(dir)).toEqual([partial.split('/').pop()]);
    await saveCheckpoint(path, ckptRecord(3, 10), { version: '3' });
    expect(await checkIntact(path, [{ version: 3, n: 10 }])).toBe(3);
    expect(readdirSync(dir)).toEqual(['model.safetensors']);
  });

  it('a process SIGKILLed after fsync but before the rename leaves the previous checkpoint', async () => {
    const dir = freshDir();
    const path = join(dir, 'model.safetensors');
    await saveCheckpoint(path, ckptRecord(1, 1000), { version: '1' });
    const r = await runChild([path, 'kill', String(1 << 18), '2']);
    expect(r.signal, r.out).toBe('SIGKILL');
    expect(r.out).toContain('KILLING');
    expect(await checkIntact(path, [{ version: 1, n: 1000 }])).toBe(1);
    expect(temps(dir).length).toBe(1);
  });

  it('a process SIGKILLed at an arbitrary moment of a large save leaves a complete old or new checkpoint', async () => {
    const n = 1 << 22; // 4 tensors of 16 MiB
    const outcomes: number[] = [];
    // Kill 0 or 100 ms after the temp file appears (mid-write or mid-fsync here); the last run is not killed.
    for (const delayMs of [0, 100, null]) {
      const dir = freshDir();
      const path = join(dir, 'model.safetensors');
      await saveCheckpoint(path, ckptRecord(1, 100), { version: '1' });
      const watcher = watch(dir);
      let killer: (() => void) | null = null;
      let timer: ReturnType<typeof setTimeout> | undefined;
      watcher.on('change', (_ev, name) => {
        if (timer === undefined && delayMs !== null && String(name).includes('.tmp-') && killer) timer = setTimeout(killer, delayMs);
      });
      const r = await runChild([path, 'plain', String(n), '2'], (line, kill) => {
        if (line === 'START') killer = kill;
      });
      clearTimeout(timer);
      watcher.close();
      expect(r.signal === 'SIGKILL' || r.code === 0, r.out).toBe(true);
      outcomes.push(await checkIntact(path, [{ version: 1, n: 100 }, { version: 2, n }]));
      expect(readdirSync(dir).filter((f) => !f.includes('.tmp-'))).toEqual(['model.safetensors']);
    }
    // The immediate kill lands before the rename of a 64 MiB write; the run left alone completes.
    expect(outcomes[0]).toBe(1);
    expect(outcomes[outcomes.length - 1]).toBe(2);
  });
});
