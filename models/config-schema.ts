/**
 * A small schema checker for the JSON configs that build models (a CLI --config file, a
 * checkpoint's metadata): every field has a type and a range, unknown keys are refused with a
 * did-you-mean, and a schema may bound the whole model (e.g. its parameter count). It runs before
 * anything is built, because a model built from an unchecked config can ask the device for more
 * than it holds (a checkpoint saying numResBlocks 3000 crashed the process with SIGSEGV) and a
 * misspelled key would otherwise fall back to its default without a word. Browser-safe.
 *
 * Errors are ConfigError: one line, `<source>: <field>: <problem>`.
 */

export class ConfigError extends Error {
  override name = 'ConfigError';
  // Private: the error compares equal to one made from its message alone.
  readonly #at: { source: string; field: string; problem: string } | null;
  constructor(message: string, at: { source: string; field: string; problem: string } | null = null) {
    super(message);
    this.#at = at;
  }
  /** Where the config came from, the field (path) at fault and what is wrong with it, when known (the CLI names the flag behind a field). */
  get source(): string | null {
    return this.#at?.source ?? null;
  }
  get field(): string | null {
    return this.#at?.field ?? null;
  }
  get problem(): string | null {
    return this.#at?.problem ?? null;
  }
}

/** ConfigError `<source>: <field>: <problem>` for one field (also for a setting outside any schema, e.g. a batch larger than the data). */
export function fieldError(source: string, field: string, problem: string): ConfigError {
  return new ConfigError(`${source}: ${field}: ${problem}`, { source, field, problem });
}

export type FieldSpec =
  | { type: 'int'; min: number; max: number }
  | { type: 'number'; min: number; max: number; /** The max itself is not allowed (e.g. a probability < 1). */ maxExclusive?: boolean }
  | { type: 'bool' }
  | { type: 'enum'; values: readonly (string | null)[] }
  | { type: 'array'; of: FieldSpec; minLength: number; maxLength: number }
  | { type: 'object'; schema: ConfigSchema }
  /** The first alternative that the value's JSON type fits decides (e.g. a preset name or an object). */
  | { type: 'oneOf'; options: readonly FieldSpec[] };

export interface ConfigSchema {
  /** Used in messages ("tokenizer config"). */
  name: string;
  fields: Readonly<Record<string, FieldSpec>>;
  required?: readonly string[];
  /**
   * Checks across fields once each field is valid (e.g. a parameter-count bound); returns the
   * field to blame and the problem, or null.
   */
  whole?: (cfg: Record<string, unknown>) => { field: string; problem: string } | null;
}

/** Levenshtein distance (case-insensitive): how far a misspelled key is from a known one. */
export function editDistance(a: string, b: string): number {
  a = a.toLowerCase();
  b = b.toLowerCase();
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const cur = [i];
    for (let j = 1; j <= b.length; j++) cur[j] = Math.min(prev[j]! + 1, cur[j - 1]! + 1, prev[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1));
    prev = cur;
  }
  return prev[b.length]!;
}

/** The known key nearest to `key`, if near enough to be a typo (at most a third of its length, min 2). */
export function didYouMean(key: string, known: readonly string[]): string | null {
  let best: string | null = null;
  let bestD = Infinity;
  for (const k of known) {
    const d = editDistance(key, k);
    if (d < bestD) [best, bestD] = [k, d];
  }
  return bestD <= Math.max(2, Math.floor(key.length / 3)) ? best : null;
}

function describe(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return `an array (${JSON.stringify(v).slice(0, 40)})`;
  if (typeof v === 'string') return `the string ${JSON.stringify(v.slice(0, 40))}`;
  if (typeof v === 'object') return 'an object';
  return `${typeof v} ${String(v)}`;
}

/** The problem with `v` under `spec` (the path names nested fields), or null when it fits. */
function checkField(path: string, spec: FieldSpec, v: unknown, source: string): string | null {
  switch (spec.type) {
    case 'int':
    case 'number': {
      const what = spec.type === 'int' ? 'an integer' : 'a number';
      if (typeof v !== 'number' || !Number.isFinite(v) || (spec.type === 'int' && !Number.isInteger(v))) return `must be ${what} in [${spec.min}, ${spec.max}${spec.type === 'number' && spec.maxExclusive ? ')' : ']'}, got ${describe(v)}`;
      const over = spec.type === 'number' && spec.maxExclusive ? v >= spec.max : v > spec.max;
      if (v < spec.min || over) return `must be in [${spec.min}, ${spec.max}${spec.type === 'number' && spec.maxExclusive ? ')' : ']'}, got ${v}`;
      return null;
    }
    case 'bool':
      return typeof v === 'boolean' ? null : `must be true or false, got ${describe(v)}`;
    case 'enum':
      return spec.values.includes(v as string | null) ? null : `must be one of ${spec.values.map((x) => JSON.stringify(x)).join(', ')}, got ${describe(v)}`;
    case 'array': {
      if (!Array.isArray(v)) return `must be an array of ${spec.minLength === spec.maxLength ? spec.minLength : `${spec.minLength} to ${spec.maxLength}`} values, got ${describe(v)}`;
      if (v.length < spec.minLength || v.length > spec.maxLength) return `must have ${spec.minLength === spec.maxLength ? spec.minLength : `${spec.minLength} to ${spec.maxLength}`} entries, got ${v.length}`;
      for (let i = 0; i < v.length; i++) {
        const p = checkField(`${path}[${i}]`, spec.of, v[i], source);
        if (p) return `[${i}]${p.startsWith('[') ? '' : ': '}${p}`;
      }
      return null;
    }
    case 'object':
      // Nested objects report their own field path (validateConfig throws).
      validateConfig(source, spec.schema, v, `${path}.`);
      return null;
    case 'oneOf': {
      const kind = (x: FieldSpec) => (x.type === 'object' ? 'object' : x.type === 'enum' ? 'enum' : 'other');
      const pick = spec.options.find((o) => (typeof v === 'object' && v !== null && !Array.isArray(v) ? kind(o) === 'object' : kind(o) !== 'object'));
      if (!pick) return `has the wrong type: ${describe(v)}`;
      return checkField(path, pick, v, source);
    }
  }
}

/**
 * Checks `value` against `schema`; throws ConfigError `<source>: <field>: <problem>` at the first
 * problem (a non-object, an unknown key with the nearest known one, a missing required field, a
 * type or range error, a whole-model bound). Returns the value, typed, when it is valid.
 */
export function validateConfig<T = Record<string, unknown>>(source: string, schema: ConfigSchema, value: unknown, prefix = ''): T {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    if (prefix) throw fieldError(source, prefix.slice(0, -1), `must be a JSON object of ${schema.name} fields, got ${describe(value)}`);
    throw new ConfigError(`${source}: ${schema.name} must be a JSON object of ${schema.name} fields, got ${describe(value)}`);
  }
  const obj = value as Record<string, unknown>;
  const known = Object.keys(schema.fields);
  for (const key of Object.keys(obj)) {
    if (key in schema.fields) continue;
    const near = didYouMean(key, known);
    throw fieldError(source, `${prefix}${key}`, `unknown ${schema.name} field${near ? ` (did you mean '${prefix}${near}'?)` : ` (known: ${known.join(', ')})`}`);
  }
  for (const key of schema.required ?? []) if (!(key in obj)) throw fieldError(source, `${prefix}${key}`, `missing (a ${schema.name} needs it)`);
  for (const [key, spec] of Object.entries(schema.fields)) {
    if (!(key in obj)) continue;
    const problem = checkField(`${prefix}${key}`, spec, obj[key], source);
    if (problem) {
      // An array's problem starts with the index: `chMult[1]: ...`.
      const at = problem.startsWith('[') ? /^((?:\[\d+\])+)(?:: )?(.*)$/.exec(problem)! : null;
      throw at ? fieldError(source, `${prefix}${key}${at[1]}`, at[2]!) : fieldError(source, `${prefix}${key}`, problem);
    }
  }
  const bad = schema.whole?.(obj);
  if (bad) throw fieldError(source, `${prefix}${bad.field}`, bad.problem);
  return value as T;
}
