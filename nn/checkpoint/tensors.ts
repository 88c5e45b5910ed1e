/**
 * Engine-facing safetensors: a record of Tensors (e.g. a module's stateDict()) to file bytes and
 * back. f32 tensors are written as F32 and i32 tensors as I32 unless `dtypes` says otherwise
 * (F16/BF16/F64 for f32; I64/U8/BOOL for i32, e.g. I64 to match PyTorch's int64 buffers). On
 * load, float dtypes become f32 tensors and integer dtypes i32 tensors.
 */
import type { Backend } from '../../engine/backend.js';
import { getBackend } from '../../engine/default-backend.js';
import { readContiguous } from '../../engine/ops/creation.js';
import { tidy } from '../../engine/scope.js';
import { Tensor } from '../../engine/tensor.js';
import {
  decodeSafetensors,
  encodeSafetensors,
  SafetensorsError,
  setOwn,
  type DecodedTensor,
  type SafetensorsDType,
  type SafetensorsMetadata,
  type TensorEntry,
} from './safetensors.js';

export interface SaveTensorsOptions {
  /** File dtype per tensor name (or a function of name and tensor); unnamed ones use the default. */
  dtypes?: Record<string, SafetensorsDType> | ((name: string, t: Tensor) => SafetensorsDType | undefined);
  /**
   * Adds `format: "pt"` to the metadata unless it has a `format` key: Hugging Face loaders expect
   * it; safetensors.torch.load_file does not care. Default true.
   */
  formatPt?: boolean;
}

const FLOAT_FILE: readonly SafetensorsDType[] = ['F32', 'F16', 'BF16', 'F64'];
const INT_FILE: readonly SafetensorsDType[] = ['I32', 'I64', 'U8', 'BOOL'];

function fileDType(name: string, t: Tensor, opts: SaveTensorsOptions): SafetensorsDType {
  const d = typeof opts.dtypes === 'function' ? opts.dtypes(name, t) : opts.dtypes?.[name];
  const chosen = d ?? (t.dtype === 'f32' ? 'F32' : 'I32');
  const allowed = t.dtype === 'f32' ? FLOAT_FILE : INT_FILE;
  if (!allowed.includes(chosen)) {
    throw new SafetensorsError(`tensor ${JSON.stringify(name)}: cannot write a ${t.dtype} tensor as ${chosen} (allowed: ${allowed.join(', ')})`);
  }
  return chosen;
}

/**
 * Reads every tensor back (all readbacks are issued before any is awaited) and returns the raw
 * entries that encodeSafetensors takes.
 */
export async function tensorsToEntries(record: Record<string, Tensor>, opts: SaveTensorsOptions = {}): Promise<Record<string, TensorEntry>> {
  const names = Object.keys(record);
  for (const name of names) {
    const t = record[name];
    if (!(t instanceof Tensor)) throw new SafetensorsError(`tensor ${JSON.stringify(name)}: expected a Tensor, got ${t === null ? 'null' : typeof t}`);
    if (t.isDisposed) throw new SafetensorsError(`tensor ${JSON.stringify(name)}: ${t.describe()} was disposed`);
  }
  const dtypes = names.map((n) => fileDType(n, record[n]!, opts));
  const datas = await Promise.all(names.map((n) => readContiguous(record[n]!)));
  const out: Record<string, TensorEntry> = {};
  names.forEach((n, i) => {
    setOwn(out, n, { dtype: dtypes[i]!, shape: record[n]!.shape, data: datas[i]! });
  });
  return out;
}

/** Encodes a record of tensors (read back from the device) and string metadata as safetensors bytes. */
export async function saveTensors(record: Record<string, Tensor>, metadata: SafetensorsMetadata = {}, opts: SaveTensorsOptions = {}): Promise<Uint8Array> {
  return encodeSafetensors(await tensorsToEntries(record, opts), withFormat(metadata, opts));
}

/** `metadata` plus format: "pt" unless disabled or already set. */
export function withFormat(metadata: SafetensorsMetadata, opts: SaveTensorsOptions = {}): SafetensorsMetadata {
  if (opts.formatPt === false || Object.prototype.hasOwnProperty.call(metadata, 'format')) return metadata;
  return { ...metadata, format: 'pt' };
}

/** The engine dtype a file dtype loads as. */
export function engineDType(d: SafetensorsDType): 'f32' | 'i32' {
  return d === 'F32' || d === 'F16' || d === 'BF16' || d === 'F64' ? 'f32' : 'i32';
}

/** Uploads decoded tensors to `backend`; each Tensor is named after its key (for error messages). */
export function entriesToTensors(decoded: Record<string, DecodedTensor>, backend: Backend = getBackend()): Record<string, Tensor> {
  return tidy(() => {
    const out: Record<string, Tensor> = {};
    for (const [name, d] of Object.entries(decoded)) {
      const dtype = engineDType(d.dtype);
      const t = new Tensor(backend.fromArray(d.data, dtype), d.shape, dtype, 'loadTensors');
      t.name = name;
      setOwn(out, name, t);
    }
    return out;
  });
}

/** Decodes safetensors bytes into tensors on `backend` (default: the current default backend). */
export function loadTensors(bytes: Uint8Array | ArrayBuffer, backend: Backend = getBackend()): Record<string, Tensor> {
  return entriesToTensors(decodeSafetensors(bytes).tensors, backend);
}

/** Like loadTensors, also returning the metadata. */
export function loadTensorsWithMetadata(bytes: Uint8Array | ArrayBuffer, backend: Backend = getBackend()): { tensors: Record<string, Tensor>; metadata: SafetensorsMetadata } {
  const { tensors, metadata } = decodeSafetensors(bytes);
  return { tensors: entriesToTensors(tensors, backend), metadata };
}
