/**
 * safetensors metadata is a flat map of strings. Structured values (model config, step, optimizer
 * scalars, RNG state, data order) are stored as JSON text under their key; these helpers do the
 * (de)serialization and name the key in every error.
 */
import { SafetensorsError, setOwn, type SafetensorsMetadata } from './safetensors.js';

function stringify(key: string, value: unknown): string {
  let text: string | undefined;
  try {
    text = JSON.stringify(value, function (this: unknown, k: string, v: unknown) {
      if (typeof v === 'number' && !Number.isFinite(v)) throw new Error(`${k ? `field ${JSON.stringify(k)} is` : 'value is'} ${v}, which JSON cannot store`);
      if (typeof v === 'bigint') throw new Error(`${k ? `field ${JSON.stringify(k)} is` : 'value is'} a bigint (${v}n); store it as a string or as [low, high] u32 words`);
      return v;
    });
  } catch (e) {
    throw new SafetensorsError(`metadata ${JSON.stringify(key)}: cannot store as JSON: ${(e as Error).message}`);
  }
  if (text === undefined) throw new SafetensorsError(`metadata ${JSON.stringify(key)}: cannot store ${typeof value} as JSON`);
  return text;
}

/** Stores `value` as JSON text under `key` (in place) and returns `meta`. */
export function setJson(meta: SafetensorsMetadata, key: string, value: unknown): SafetensorsMetadata {
  setOwn(meta, key, stringify(key, value));
  return meta;
}

/** The JSON value stored under `key`; throws naming the key when it is missing or not JSON. */
export function getJson<T = unknown>(meta: SafetensorsMetadata, key: string): T {
  if (!Object.prototype.hasOwnProperty.call(meta, key)) {
    const keys = Object.keys(meta);
    throw new SafetensorsError(`metadata has no key ${JSON.stringify(key)} (keys: ${keys.length ? keys.map((k) => JSON.stringify(k)).join(', ') : 'none'})`);
  }
  return parse<T>(key, meta[key]!);
}

/** Like getJson, but `fallback` when the key is absent (a present but invalid value still throws). */
export function getJsonOr<T>(meta: SafetensorsMetadata, key: string, fallback: T): T {
  return Object.prototype.hasOwnProperty.call(meta, key) ? parse<T>(key, meta[key]!) : fallback;
}

function parse<T>(key: string, text: string): T {
  try {
    return JSON.parse(text) as T;
  } catch (e) {
    const shown = text.length > 60 ? `${text.slice(0, 60)}...` : text;
    throw new SafetensorsError(`metadata ${JSON.stringify(key)} is not valid JSON (${(e as Error).message}): ${JSON.stringify(shown)}`);
  }
}

/** Metadata with every value of `values` stored as JSON text (strings too, so they read back with getJson). */
export function jsonMetadata(values: Record<string, unknown>): SafetensorsMetadata {
  const meta: SafetensorsMetadata = {};
  for (const [k, v] of Object.entries(values)) setOwn(meta, k, stringify(k, v));
  return meta;
}
