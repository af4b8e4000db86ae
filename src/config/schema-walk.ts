/**
 * Walks raw config data alongside the zod schema, to rename camelCase spellings (`circuitBreaker`,
 * `maxRequests`) to their canonical snake_case keys and to find the keys an object accepts.
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

const snake = (key: string) => key.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`);

/**
 * Returns a copy of `data` with camelCase keys renamed where the schema knows the snake_case key.
 * Reports a problem when both spellings are present.
 */
export function canonicalizeKeys(schema: AnySchema, data: unknown, path: PropertyKey[], problems: string[], fmt: (p: PropertyKey[]) => string): unknown {
  if (Array.isArray(data)) {
    const element = unwrapTo(schema, 'array');
    return element ? data.map((item, i) => canonicalizeKeys(element, item, [...path, i], problems, fmt)) : data;
  }
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
