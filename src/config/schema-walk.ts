/**
 * Walks raw config data alongside the zod schema, to rename camelCase spellings (`circuitBreaker`,
 * `maxRequests`) to their canonical snake_case keys, to turn strings from `${ENV}` expansion into the
 * numbers and booleans the schema expects, and to find the keys an object accepts.
 */
import type { z } from 'zod';

type AnySchema = z.ZodType;
interface Def {
  type: string;
  innerType?: AnySchema;
  element?: AnySchema;
  valueType?: AnySchema;
  options?: AnySchema[];
  in?: AnySchema;
  shape?: Record<string, AnySchema>;
}
const defOf = (schema: AnySchema): Def => (schema as unknown as { _zod: { def: Def } })._zod.def;

/** The object schemas a value at this schema could be validated against (unions give several). */
function objectShapes(schema: AnySchema): Record<string, AnySchema>[] {
  const def = defOf(schema);
  switch (def.type) {
    case 'object':
      return [def.shape as Record<string, AnySchema>];
    case 'optional':
    case 'default':
    case 'prefault':
    case 'nullable':
    case 'readonly':
      return objectShapes(def.innerType as AnySchema);
    case 'pipe':
      return objectShapes(def.in as AnySchema);
    case 'union':
      return (def.options as AnySchema[]).flatMap(objectShapes);
    default:
      return [];
  }
}

function unwrapTo(schema: AnySchema, kind: 'array' | 'record'): AnySchema | undefined {
  const def = defOf(schema);
  if (def.type === kind) return kind === 'array' ? def.element : def.valueType;
  if (def.innerType) return unwrapTo(def.innerType, kind);
  if (def.type === 'pipe') return unwrapTo(def.in as AnySchema, kind);
  if (def.type === 'union') {
    for (const option of def.options as AnySchema[]) {
      const inner = unwrapTo(option, kind);
      if (inner) return inner;
    }
  }
  return undefined;
}

/** The keys the object at `path` accepts, for "did you mean" hints. */
export function keysAt(schema: AnySchema, path: readonly PropertyKey[]): string[] {
  let current: AnySchema | undefined = schema;
  for (const part of path) {
    if (!current) return [];
    if (typeof part === 'number') {
      current = unwrapTo(current, 'array');
      continue;
    }
    const shape = objectShapes(current).find((s) => Object.hasOwn(s, part as string));
    current = shape ? shape[part as string] : unwrapTo(current, 'record');
  }
  return current ? objectShapes(current).flatMap(Object.keys) : [];
}

export const snake = (key: string) => key.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`);

/** The scalar kinds (`number`, `string`, ...) a value at this schema may have. */
function scalarKinds(schema: AnySchema): Set<string> {
  const def = defOf(schema);
  if (def.type === 'union') return new Set((def.options as AnySchema[]).flatMap((o) => [...scalarKinds(o)]));
  if (def.type === 'pipe') return scalarKinds(def.in as AnySchema);
  if (def.innerType) return scalarKinds(def.innerType);
  return new Set([def.type]);
}

/**
 * `port: ${PORT:-8080}` is a string once expanded; where the schema wants a number or a boolean (and
 * no string), a string that spells one is converted. The other way round, `version: 1` or
 * `api_key: 12345` where only a string fits becomes "1" / "12345", as Go's YAML decoder did.
 * Anything else is left for zod to report.
 */
function coerceScalar(schema: AnySchema, value: string | number | boolean): unknown {
  const kinds = scalarKinds(schema);
  if (kinds.has('unknown') || kinds.has('any')) return value;
  if (typeof value !== 'string') {
    return kinds.has('string') && !kinds.has(typeof value) && !kinds.has('literal') ? String(value) : value;
  }
  if (kinds.has('string')) return value;
  const trimmed = value.trim();
  if (kinds.has('number') && /^-?\d+(\.\d+)?$/.test(trimmed)) return Number(trimmed);
  if (kinds.has('boolean') && (trimmed === 'true' || trimmed === 'false')) return trimmed === 'true';
  return value;
}

/**
 * Returns a copy of `data` with camelCase keys renamed where the schema knows the snake_case key, and
 * numeric/boolean strings converted where the schema wants those. Reports a problem when both
 * spellings of a key are present.
 */
export function canonicalizeKeys(schema: AnySchema, data: unknown, path: PropertyKey[], problems: string[], fmt: (p: PropertyKey[]) => string): unknown {
  if (Array.isArray(data)) {
    const element = unwrapTo(schema, 'array');
    return element ? data.map((item, i) => canonicalizeKeys(element, item, [...path, i], problems, fmt)) : data;
  }
  if (typeof data === 'string' || typeof data === 'number' || typeof data === 'boolean') return coerceScalar(schema, data);
  if (data === null || typeof data !== 'object') return data;
  const shapes = objectShapes(schema);
  if (shapes.length === 0) {
    const value = unwrapTo(schema, 'record');
    if (!value) return data;
    const out: Record<string, unknown> = {};
    for (const [key, item] of Object.entries(data)) out[key] = canonicalizeKeys(value, item, [...path, key], problems, fmt);
    return out;
  }
  const known = new Map<string, AnySchema>();
  for (const shape of shapes) for (const [key, child] of Object.entries(shape)) known.set(key, child);
  const out: Record<string, unknown> = {};
  for (const [key, item] of Object.entries(data)) {
    let name = key;
    if (!known.has(key) && known.has(snake(key))) {
      name = snake(key);
      if (Object.hasOwn(data, name)) {
        problems.push(`${fmt([...path, key])}: given twice, as ${key} and ${name}; keep one`);
        continue;
      }
    }
    const child = known.get(name);
    out[name] = child ? canonicalizeKeys(child, item, [...path, name], problems, fmt) : item;
  }
  return out;
}

/** Whether this schema (under defaults and optionals) is `target` itself: how a duration field is found. */
function isSchema(schema: AnySchema, target: AnySchema): boolean {
  if (schema === target) return true;
  const def = defOf(schema);
  return def.innerType !== undefined && isSchema(def.innerType, target);
}

/**
 * A copy of validated data with every value at a `leaf` schema (e.g. the duration type) replaced by
 * `show(value)`: the console shows `30s` where the config holds 30000.
 */
export function mapLeaves(schema: AnySchema, data: unknown, leaf: AnySchema, show: (value: unknown) => unknown): unknown {
  if (isSchema(schema, leaf)) return show(data);
  if (Array.isArray(data)) {
    const element = unwrapTo(schema, 'array');
    return element ? data.map((item) => mapLeaves(element, item, leaf, show)) : data;
  }
  if (data === null || typeof data !== 'object') return data;
  const shapes = objectShapes(schema);
  const record = shapes.length === 0 ? unwrapTo(schema, 'record') : undefined;
  const out: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(data)) {
    const child = shapes.find((shape) => Object.hasOwn(shape, key))?.[key] ?? record;
    out[key] = child ? mapLeaves(child, value, leaf, show) : value;
  }
  return out;
}
