/**
 * GET /openapi.json against the real routes: every operation in the document is called with its own
 * examples and must answer a documented status with a body matching the documented schema (streams
 * event by event), refuse a missing key and a malformed body the documented way; every built-in route
 * must be in the document.
 */
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import type { z } from 'zod';
import { CLIENT_APIS } from '../src/server/client-apis.ts';
import { startTestGateway } from './helpers/gateway.ts';
import { tempDir, useStarted } from './helpers/started.ts';

const ADMIN_KEY = 'admin-0123456789abcdef';
const CLIENT_KEY = 'hx-docs-client-000001';
const METHODS = ['get', 'post', 'put', 'patch', 'delete'] as const;

type Schema = Record<string, any>;
interface Operation {
  path: string;
  method: (typeof METHODS)[number];
  op: Schema;
}

/** A JSON Schema (2020-12) check for what the document uses: $ref, type, enum, const, objects, arrays, anyOf/oneOf/allOf. */
function validate(schema: Schema, value: unknown, root: Schema, at = '$'): string[] {
  if (schema.$ref) {
    const name = String(schema.$ref).replace('#/components/schemas/', '');
    const target = root.components.schemas[name];
    if (!target) return [`${at}: unresolved ${schema.$ref}`];
    return validate(target, value, root, at);
  }
  const problems: string[] = [];
  if (schema.anyOf && !schema.anyOf.some((s: Schema) => validate(s, value, root, at).length === 0)) problems.push(`${at}: matches none of anyOf`);
  if (schema.oneOf && schema.oneOf.filter((s: Schema) => validate(s, value, root, at).length === 0).length !== 1) problems.push(`${at}: does not match exactly one of oneOf`);
  for (const s of schema.allOf ?? []) problems.push(...validate(s, value, root, at));
  if ('const' in schema && value !== schema.const) problems.push(`${at}: expected ${JSON.stringify(schema.const)}`);
  if (schema.enum && !schema.enum.includes(value)) problems.push(`${at}: ${JSON.stringify(value)} not in ${JSON.stringify(schema.enum)}`);
  if (schema.type) {
    const types: string[] = Array.isArray(schema.type) ? schema.type : [schema.type];
    const actual = value === null ? 'null' : Array.isArray(value) ? 'array' : typeof value;
    const ok = types.some((t) => t === actual || (t === 'integer' && Number.isInteger(value)) || (t === 'number' && actual === 'number'));
    if (!ok) return [...problems, `${at}: expected ${types.join('|')}, got ${actual}`];
  }
  if (value !== null && typeof value === 'object' && !Array.isArray(value)) {
    const object = value as Record<string, unknown>;
    for (const key of schema.required ?? []) if (!(key in object)) problems.push(`${at}: missing ${key}`);
    for (const [key, inner] of Object.entries(object)) {
      const property = schema.properties?.[key];
      if (property) problems.push(...validate(property, inner, root, `${at}.${key}`));
      else if (schema.additionalProperties === false) problems.push(`${at}: unexpected property ${key}`);
      else if (schema.additionalProperties && typeof schema.additionalProperties === 'object') problems.push(...validate(schema.additionalProperties, inner, root, `${at}.${key}`));
    }
  }
  if (Array.isArray(value)) {
    if (schema.minItems !== undefined && value.length < schema.minItems) problems.push(`${at}: fewer than ${schema.minItems} items`);
    if (schema.items) value.forEach((item, i) => problems.push(...validate(schema.items, item, root, `${at}[${i}]`)));
  }
  return problems;
}

function operations(doc: Schema): Operation[] {
  const out: Operation[] = [];
  for (const [path, item] of Object.entries(doc.paths as Record<string, Schema>)) {
    for (const method of METHODS) if (item[method]) out.push({ path, method, op: item[method] });
  }
  return out;
}

function urlFor({ path, op }: Operation): string {
  return path.replace(/\{(\w+)\}/g, (_, name) => {
    const parameter = (op.parameters ?? []).find((p: Schema) => p.name === name && p.in === 'path');
    if (parameter?.example === undefined) throw new Error(`${path}: no example for path parameter ${name}`);
    return String(parameter.example);
  });
}

/** The key an operation's security asks for: the admin key, a client key, or none. */
function keyFor(op: Schema): string | undefined {
  const schemes = (op.security ?? []).flatMap((s: Schema) => Object.keys(s));
  if (schemes.some((s: string) => s.startsWith('Admin'))) return ADMIN_KEY;
  if (schemes.length > 0) return CLIENT_KEY;
  return undefined;
}

function mediaType(contentType: string | null): string {
  return (contentType ?? '').split(';', 1)[0].trim();
}

describe('the OpenAPI document against the real routes', () => {
  const setup = useStarted({ keyDir: () => tempDir('hapax-openapi-') }).and({
    gateway: ({ keyDir }) =>
      startTestGateway(`
providers:
  mock: {type: mock}
auth:
  enabled: true
  keys: [{name: docs, key: ${CLIENT_KEY}}]
  key_file: ${join(keyDir.path, 'keys.json')}
admin: {key: ${ADMIN_KEY}}
`),
  });
  let doc: Schema;

  async function call(operation: Operation, opts: { key?: string | null; body?: unknown; raw?: string } = {}): Promise<Response> {
    const headers: Record<string, string> = {};
    const key = opts.key === null ? undefined : (opts.key ?? keyFor(operation.op));
    if (key) headers['x-api-key'] = key;
    let body: string | undefined;
    if (opts.raw !== undefined || opts.body !== undefined || operation.op.requestBody) {
      headers['content-type'] = 'application/json';
      body = opts.raw ?? JSON.stringify(opts.body ?? operation.op.requestBody?.content['application/json'].example ?? {});
    }
    return fetch(`${setup.gateway.url}${urlFor(operation)}`, { method: operation.method.toUpperCase(), headers, body });
  }

  /** Checks status and body against the document; returns the problems found. */
  async function conforms(operation: Operation, res: Response): Promise<string[]> {
    const where = `${operation.method.toUpperCase()} ${operation.path} → ${res.status}`;
    const documented = operation.op.responses[String(res.status)];
    if (!documented) return [`${where}: status not documented (${Object.keys(operation.op.responses).join(', ')})`];
    const type = mediaType(res.headers.get('content-type'));
    const text = await res.text();
    if (!documented.content) return [];
    const media = documented.content[type];
    if (!media) return [`${where}: content-type ${type} not documented (${Object.keys(documented.content).join(', ')})`];
    if (type === 'application/json') return validate(media.schema, JSON.parse(text), doc, where);
    if (media['x-item-schema']) {
      const items =
        type === 'text/event-stream'
          ? [...text.matchAll(/^data: (.*)$/gm)].map((m) => m[1]).filter((data) => data !== '[DONE]')
          : text.split('\n').filter(Boolean);
      if (items.length === 0) return [`${where}: an empty stream`];
      return items.flatMap((item, i) => validate(media['x-item-schema'], JSON.parse(item), doc, `${where} event ${i}`));
    }
    return text.length > 0 ? [] : [`${where}: empty body`];
  }

  // After the gateway has started (hooks run in the order they are registered).
  beforeAll(async () => {
    const res = await fetch(`${setup.gateway.url}/openapi.json`);
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toMatch(/^application\/json/);
    doc = (await res.json()) as Schema;
  });

  it('is an OpenAPI 3.1 document whose references all resolve', () => {
    expect(doc.openapi).toBe('3.1.0');
    expect(doc.info).toMatchObject({ title: 'Hapax', license: { identifier: 'Apache-2.0' } });
    const refs = JSON.stringify(doc).match(/"\$ref":"[^"]+"/g) ?? [];
    expect(refs.length).toBeGreaterThan(20);
    for (const ref of refs) {
      const [, section, name] = /#\/components\/(\w+)\/(\w+)/.exec(ref) ?? [];
      expect(doc.components[section]?.[name], ref).toBeDefined();
    }
    for (const { path, method, op } of operations(doc)) {
      expect(op.summary, `${method} ${path}`).toBeTruthy();
      expect(Object.keys(op.responses).length, `${method} ${path}`).toBeGreaterThan(0);
    }
  });

  it('has a checker that does reject what does not match (so the checks below mean something)', () => {
    expect(operations(doc).length).toBeGreaterThan(20);
    const completion = { $ref: '#/components/schemas/Completion' };
    const good = { completion: 'hi', request_id: 'r', provider: 'p', model: 'm', finish_reason: 'stop', usage: { prompt_tokens: 1, completion_tokens: 1, total_tokens: 2 } };
    expect(validate(completion, good, doc)).toEqual([]);
    expect(validate(completion, { ...good, completion: 42 }, doc)).not.toEqual([]);
    expect(validate(completion, { ...good, usage: undefined }, doc)).not.toEqual([]);
    expect(validate({ $ref: '#/components/schemas/Error' }, { error: { type: 'Oops', message: 'x', code: 400, request_id: 'r' } }, doc)).not.toEqual([]);
    expect(validate({ $ref: '#/components/schemas/KeyRevoked' }, { name: 'x', revoked: true, extra: 1 }, doc)).not.toEqual([]);
    expect(validate({ $ref: '#/components/schemas/CompletionStreamEvent' }, { type: 'delta', text: 'a' }, doc)).toEqual([]);
    expect(validate({ $ref: '#/components/schemas/CompletionStreamEvent' }, { type: 'delta' }, doc)).not.toEqual([]);
  });

  it('describes every built-in route with its methods', () => {
    // This config adds no routes, so the route table is exactly the built-in one.
    const routes = [...setup.gateway.holder.current.routes.values()];
    expect(routes.length).toBeGreaterThanOrEqual(14);
    for (const route of routes) {
      for (const method of route.methods) {
        expect(doc.paths[route.path]?.[method.toLowerCase()], `${method} ${route.path}`).toBeDefined();
      }
    }
  });

  it('every operation answers its own example with a documented status and shape', async () => {
    const problems: string[] = [];
    // Without a config file there is nothing to reload: the documented 409.
    // No stored response has the example id: the documented 404 (test/responses.test.ts reads real ones).
    const expected: Record<string, number> = {
      'POST /admin/reload': 409,
      'GET /v1/responses/{response_id}': 404,
      'DELETE /v1/responses/{response_id}': 404,
      'GET /v1/responses/{response_id}/input_items': 404,
    };
    for (const operation of operations(doc)) {
      const res = await call(operation);
      const name = `${operation.method.toUpperCase()} ${operation.path}`;
      const wanted = expected[name];
      if (wanted !== undefined ? res.status !== wanted : res.status < 200 || res.status > 299) problems.push(`${name}: status ${res.status}`);
      problems.push(...(await conforms(operation, res)));
    }
    expect(problems).toEqual([]);
  });

  it('every streamed answer matches its per-event schema', async () => {
    const problems: string[] = [];
    let streams = 0;
    for (const operation of operations(doc)) {
      const content = operation.op.responses['200']?.content ?? {};
      const streamed = Object.keys(content).find((type) => content[type]['x-item-schema']);
      if (!streamed) continue;
      streams++;
      const example = operation.op.requestBody.content['application/json'].example;
      const res = await call(operation, { body: { ...example, stream: true } });
      expect(mediaType(res.headers.get('content-type')), operation.path).toBe(streamed);
      problems.push(...(await conforms(operation, res)));
    }
    expect(streams).toBeGreaterThanOrEqual(5);
    expect(problems).toEqual([]);
  });

  it('a missing key gets the documented 401 wherever the document asks for one', async () => {
    const problems: string[] = [];
    let checked = 0;
    for (const operation of operations(doc)) {
      if (!keyFor(operation.op)) continue;
      checked++;
      const res = await call(operation, { key: null });
      if (res.status !== 401) problems.push(`${operation.method.toUpperCase()} ${operation.path}: ${res.status} without a key`);
      problems.push(...(await conforms(operation, res)));
    }
    expect(checked).toBeGreaterThan(15);
    expect(problems).toEqual([]);
  });

  it('a malformed body gets the documented 400', async () => {
    const problems: string[] = [];
    let checked = 0;
    for (const operation of operations(doc)) {
      if (!operation.op.requestBody) continue;
      checked++;
      const res = await call(operation, { raw: '[1, 2, 3]' });
      if (res.status !== 400) problems.push(`${operation.method.toUpperCase()} ${operation.path}: ${res.status} for a malformed body`);
      problems.push(...(await conforms(operation, res)));
    }
    expect(checked).toBeGreaterThanOrEqual(8);
    expect(problems).toEqual([]);
  });

  it("documents each route's request body with the very schema that validates it", async () => {
    // The same schema objects the handlers parse with, for every client route with a body.
    const declared = new Map<string, z.ZodType>();
    for (const api of CLIENT_APIS) {
      for (const route of api.routes) {
        const request = api.handlers[route.handler]?.openapi?.request;
        if (request) declared.set(route.path, request.schema);
      }
    }
    expect(declared.size).toBeGreaterThanOrEqual(8);
    const problems: string[] = [];
    for (const [path, validating] of declared) {
      const op = doc.paths[path].post;
      const id = String(op.requestBody.content['application/json'].schema.$ref).replace('#/components/schemas/', '');
      const documented = doc.components.schemas[id];
      const example = op.requestBody.content['application/json'].example;
      // The document's example is valid for both the document and the validator.
      if (!validating.safeParse(example).success) problems.push(`${path}: the validator refuses the example`);
      if (validate(documented, example, doc).length > 0) problems.push(`${path}: the document refuses the example`);
      // Every field the document requires, the validator requires: without it the route answers 400.
      for (const field of documented.required ?? []) {
        const { [field]: _dropped, ...without } = example;
        const res = await call({ path, method: 'post', op }, { body: without });
        if (res.status !== 400) problems.push(`${path}: without ${field}, the document says 400, the route answered ${res.status}`);
        await res.body?.cancel();
      }
      // And the other way round: what the validator requires, the document says is required.
      for (const field of Object.keys(example)) {
        const { [field]: _dropped, ...without } = example;
        const refused = !validating.safeParse(without).success;
        if (refused !== (documented.required ?? []).includes(field)) problems.push(`${path}: ${field} is ${refused ? '' : 'not '}required by the validator but ${refused ? 'not ' : ''}by the document`);
      }
    }
    expect(problems).toEqual([]);
  });

  it('unknown providers and routes answer the documented 404', async () => {
    const provider = { path: '/health/provider/{provider}', method: 'get' as const, op: doc.paths['/health/provider/{provider}'].get };
    const res = await fetch(`${setup.gateway.url}/health/provider/no-such-provider`);
    expect(res.status).toBe(404);
    expect(await conforms(provider, res)).toEqual([]);
    const route = { path: '/health/{route}', method: 'get' as const, op: doc.paths['/health/{route}'].get };
    const missing = await fetch(`${setup.gateway.url}/health/no/such/route`);
    expect(missing.status).toBe(404);
    expect(await conforms(route, missing)).toEqual([]);
  });
});
