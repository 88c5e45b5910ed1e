/**
 * The FeatNet config stored in a weights file (`featnet_config` metadata, as
 * examples/train-featnet.ts writes it; `config` in older files), checked against its schema
 * before a network is built from it: a crafted file must not build a network the device cannot
 * hold, and a misspelled key must not silently fall back to a default. Browser-safe.
 */
import { ConfigError, validateConfig } from '../config-schema.js';
import { FEATNET_CONFIG_SCHEMA } from '../config-schemas.js';
import type { FeatNetConfig } from './featnet.js';

/** The checked config of a FeatNet weights file's metadata ({} when it records none); ConfigError naming `source` and the field. */
export function featnetConfigOf(source: string, metadata: Record<string, string>): Partial<FeatNetConfig> {
  const key = metadata.featnet_config !== undefined ? 'featnet_config' : metadata.config !== undefined ? 'config' : null;
  if (key === null) return {};
  let parsed: unknown;
  try {
    parsed = JSON.parse(metadata[key]!);
  } catch (e) {
    throw new ConfigError(`${source}: its ${key} metadata is not valid JSON (${(e as Error).message})`);
  }
  return validateConfig<Partial<FeatNetConfig>>(source, FEATNET_CONFIG_SCHEMA, parsed);
}
