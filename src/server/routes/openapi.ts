/**
 * The OpenAPI 3.1 description of Hapax's HTTP interface, served at GET /openapi.json.
 *
 * Schemas are written once in zod and turned into JSON Schema (components.schemas); test/openapi.test.ts
 * calls every operation of this document against a running gateway and checks the answers against it,
 * and checks that every built-in route is described here. Streamed answers document the JSON carried by
 * each event under `x-item-schema` (OpenAPI 3.1 has no place for it; 3.2 calls it itemSchema).
 */
import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import { KEY_NAME } from '../../state/keys.ts';
import { VERSION } from '../../version.ts';
import { ERROR_TYPES } from '../../core/errors.ts';
import type { DeclaredApi, DocumentedOperation, HandlerDeclaration } from '../client-api.ts';
import { CLIENT_APIS, HANDLER_DECLARATIONS } from '../client-apis.ts';

const registry = z.registry<{ id: string; description?: string }>();
function component<T extends z.ZodType>(id: string, schema: T, description?: string): T {
  const described = (description ? schema.describe(description) : schema) as T;
  registry.add(described, { id });
  return described;
}
const ref = (id: string) => ({ $ref: `#/components/schemas/${id}` });

// ---------- shared ----------

const ErrorType = z.enum(ERROR_TYPES);
component(
  'Error',
  z.object({
    error: z.looseObject({
      type: ErrorType,
      message: z.string(),
      code: z.number().int().describe('the HTTP status'),
      request_id: z.string().describe('the X-Request-ID of this request'),
      details: z.record(z.string(), z.unknown()).optional().describe('e.g. the offending field, or the attempts made on each provider'),
    }),
  }),
  'Hapax error body (native, OpenAI-compatible and operations endpoints)',
);
component(
  'AnthropicError',
  z.looseObject({ type: z.literal('error'), error: z.looseObject({ type: z.string(), message: z.string() }), request_id: z.string().optional() }),
  "Error body of /v1/messages, in Anthropic's shape",
);
component('OllamaError', z.object({ error: z.string() }), "Error body of the Ollama-compatible endpoints, in Ollama's shape");

const Usage = component(
  'Usage',
  z.looseObject({ prompt_tokens: z.number().int(), completion_tokens: z.number().int(), total_tokens: z.number().int() }),
  'Tokens used by the request',
);

// ---------- native ----------

const Completion = component(
  'Completion',
  z.looseObject({
    completion: z.string(),
    request_id: z.string(),
    provider: z.string().describe('the configured provider that answered'),
    model: z.string(),
    finish_reason: z.string(),
    usage: Usage,
  }),
  'Native completion',
);
component(
  'CompletionStreamEvent',
  z.union([
    z.object({ type: z.literal('delta'), text: z.string() }),
    Completion.extend({ type: z.literal('done') }),
    z.object({ type: z.literal('error'), error: z.looseObject({ type: ErrorType, message: z.string(), code: z.number().int(), request_id: z.string() }) }),
  ]),
  'One `data:` event of a native stream: deltas, then `done` (or `error` if the stream fails midway)',
);

// ---------- OpenAI-compatible ----------

component(
  'ChatCompletion',
  z.looseObject({
    id: z.string(),
    object: z.literal('chat.completion'),
    created: z.number().int(),
    model: z.string(),
    choices: z.array(
      z.looseObject({
        index: z.number().int(),
        message: z.looseObject({ role: z.literal('assistant'), content: z.string().nullable(), tool_calls: z.array(z.looseObject({ id: z.string() })).optional() }),
        finish_reason: z.string().nullable(),
      }),
    ),
    usage: Usage.optional(),
  }),
  'OpenAI Chat Completions answer',
);
component(
  'ChatCompletionChunk',
  z.looseObject({ id: z.string(), object: z.literal('chat.completion.chunk'), created: z.number().int(), model: z.string(), choices: z.array(z.looseObject({ index: z.number().int(), delta: z.looseObject({}) })) }),
  'One `data:` event of an OpenAI stream (the stream ends with `data: [DONE]`)',
);
component(
  'ModelList',
  z.looseObject({ object: z.literal('list'), data: z.array(z.looseObject({ id: z.string().describe('provider/model'), object: z.literal('model'), owned_by: z.string() })) }),
  'Every model a client can ask for',
);
component(
  'Embeddings',
  z.looseObject({
    object: z.literal('list'),
    data: z.array(z.looseObject({ object: z.literal('embedding'), index: z.number().int(), embedding: z.union([z.array(z.number()), z.string()]) })),
    model: z.string(),
    usage: z.looseObject({ prompt_tokens: z.number().int(), total_tokens: z.number().int() }),
  }),
  'OpenAI embeddings answer',
);

// ---------- OpenAI Responses ----------

component(
  'Response',
  z.looseObject({
    id: z.string(),
    object: z.literal('response'),
    created_at: z.number().int(),
    status: z.enum(['completed', 'incomplete', 'in_progress', 'failed']),
    model: z.string(),
    output: z.array(z.looseObject({ type: z.string() }).describe('message, function_call, custom_tool_call, reasoning, ...')),
    usage: z.looseObject({ input_tokens: z.number().int(), output_tokens: z.number().int(), total_tokens: z.number().int() }).nullable(),
  }),
  'OpenAI Responses answer',
);
component('ResponseDeleted', z.looseObject({ id: z.string(), object: z.literal('response'), deleted: z.literal(true) }), 'A stored response, deleted');
component(
  'ResponseItemList',
  z.looseObject({ object: z.literal('list'), data: z.array(z.looseObject({ id: z.string(), type: z.string() })), first_id: z.string().nullable(), last_id: z.string().nullable(), has_more: z.boolean() }),
  "A page of a stored response's input items",
);
component(
  'ResponseStreamEvent',
  z.looseObject({ type: z.string(), sequence_number: z.number().int() }),
  'One event of a Responses stream (response.created, response.output_text.delta, ..., response.completed or response.failed)',
);

// ---------- Anthropic-compatible ----------

component(
  'Message',
  z.looseObject({
    id: z.string(),
    type: z.literal('message'),
    role: z.literal('assistant'),
    model: z.string(),
    content: z.array(z.looseObject({ type: z.string() })),
    stop_reason: z.string().nullable(),
    usage: z.looseObject({ input_tokens: z.number().int(), output_tokens: z.number().int() }),
  }),
  'Anthropic Messages answer',
);
component('MessageTokensCount', z.looseObject({ input_tokens: z.number().int() }), 'Anthropic token count answer');
component('MessageStreamEvent', z.looseObject({ type: z.string() }), 'One event of an Anthropic stream (message_start, content_block_delta, message_stop, ...)');

// ---------- Ollama-compatible ----------

component(
  'OllamaChatResponse',
  z.looseObject({ model: z.string(), created_at: z.string(), message: z.looseObject({ role: z.string(), content: z.string() }), done: z.boolean() }),
  'Ollama chat answer (also each NDJSON line of a stream)',
);
component(
  'OllamaTags',
  z.looseObject({ models: z.array(z.looseObject({ name: z.string(), model: z.string(), modified_at: z.string(), size: z.number().int() })) }),
  'Ollama model list',
);
component('OllamaEmbedResponse', z.looseObject({ model: z.string(), embeddings: z.array(z.array(z.number())) }), 'Ollama embed answer');
component('OllamaVersion', z.object({ version: z.string() }), 'Ollama API version Hapax speaks');

// ---------- operations ----------

const ProviderHealth = component(
  'ProviderHealth',
  z.looseObject({
    healthy: z.boolean(),
    last_check: z.string().nullable().describe('ISO 8601 time of the last health probe; null before the first'),
    consecutive_fails: z.number().int(),
    latency_ms: z.number().int(),
    error_count: z.number().int().describe('errors since the provider last became healthy'),
    request_count: z.number().int(),
    circuit_breaker: z.enum(['closed', 'half_open', 'open']),
  }),
  'Health of one provider',
);
component(
  'HealthReport',
  z.looseObject({
    status: z.object({ global: z.boolean() }),
    services: z.record(z.string(), z.enum(['healthy', 'unhealthy'])),
    providers: z.record(z.string(), ProviderHealth),
  }),
  'Health of every route and provider',
);
component('RouteHealth', z.object({ status: z.enum(['healthy', 'unhealthy']) }), 'Health of one route');
component('Readiness', z.object({ status: z.enum(['ready', 'draining']) }), 'Readiness of this instance');
component('Liveness', z.object({ status: z.literal('alive') }), 'Liveness of this process');

const KeyView = z.looseObject({
  name: z.string(),
  created: z.string().nullable(),
  updated: z.string().nullable(),
  expires: z.string().nullable(),
  revoked: z.string().nullable(),
  rate_limit: z.record(z.string(), z.unknown()).nullable(),
  budgets: z.array(z.record(z.string(), z.unknown())).nullable(),
  routes: z.array(z.string()).nullable(),
  models: z.array(z.string()).nullable(),
});
component('KeyList', z.object({ keys: z.array(KeyView) }), 'Managed client keys (never the keys themselves)');
component('Key', KeyView, 'A managed client key (never the key itself)');
component(
  'KeyCreateRequest',
  z.object({
    name: z.string().regex(KEY_NAME),
    requests_per_minute: z.number().int().positive().optional(),
    tokens_per_minute: z.number().int().positive().optional(),
    expires: z.string().optional().describe('ISO 8601 time'),
    routes: z.array(z.string()).optional(),
    models: z.array(z.string()).optional(),
  }),
  'A managed key to create',
);
component(
  'KeyUpdateRequest',
  z.object({
    budgets: z.array(z.record(z.string(), z.unknown())).nullable().optional().describe('replaces all its budgets; [] or null removes them'),
    requests_per_minute: z.number().int().positive().nullable().optional().describe('null removes the limit'),
    tokens_per_minute: z.number().int().positive().nullable().optional().describe('null removes the limit'),
  }),
  "A managed key's new budgets or limits; what it spent in the current windows still counts",
);
component('KeyCreated', KeyView.extend({ key: z.string().describe('shown once: store it now') }), 'The new key');
component('KeyRevoked', z.object({ name: z.string(), revoked: z.literal(true) }), 'A revoked key');
component(
  'UsageReport',
  z.looseObject({
    scope: z.enum(['instance', 'shared']),
    usage: z.array(z.looseObject({ client: z.string() })),
    report: z.looseObject({
      group_by: z.array(z.enum(['key', 'label', 'route', 'provider', 'model', 'day'])),
      from: z.string().nullable(),
      to: z.string().nullable(),
      time_zone: z.string(),
      rows: z.array(z.looseObject({ requests: z.number().int(), cost_usd: z.number(), unpriced_requests: z.number().int() })),
    }),
    budgets: z.array(z.looseObject({ scope: z.string(), budget: z.string() })),
  }),
  'Requests, tokens and spend, grouped as asked, for this instance or shared through Redis; with every budget',
);
component('ReloadOutcome', z.looseObject({ ok: z.boolean() }), 'What a reload did');
component(
  'ConsoleState',
  z.looseObject({
    now: z.number().int(),
    providers: z.array(z.looseObject({ name: z.string(), healthy: z.boolean(), breaker: z.enum(['closed', 'half_open', 'open']) })),
    traffic: z.looseObject({ requests_per_second: z.number() }),
    events: z.array(z.looseObject({ at: z.number().int(), kind: z.string(), text: z.string() })),
    usage: z.looseObject({}),
    config: z.looseObject({ loaded_at: z.string(), values: z.looseObject({}) }),
  }),
  'Everything the operator console shows',
);

// ---------- the document ----------

type Json = Record<string, unknown>;

const json = (schema: string, example?: unknown): Json => ({ 'application/json': { schema: ref(schema), ...(example === undefined ? {} : { example }) } });
const response = (description: string, content?: Json): Json => ({ description, ...(content ? { content } : {}) });
const errors = (codes: number[], schema = 'Error'): Json =>
  Object.fromEntries(codes.map((code) => [String(code), response(ERROR_TEXT[code] ?? 'error', json(schema))]));
const ERROR_TEXT: Record<number, string> = {
  400: 'the request is invalid',
  401: 'missing or unknown key',
  403: 'the key may not use this route or model',
  404: 'not found',
  413: 'the body is larger than the route allows',
  415: 'the body is not JSON',
  429: 'a rate limit was hit (Retry-After says when to try again)',
  502: 'the provider failed',
  503: 'no provider could answer (Retry-After says when to try again)',
  409: 'conflict: a key with that name exists',
  504: 'the request deadline passed',
};
const REQUEST_ID = { $ref: '#/components/parameters/RequestId' };
const CLIENT_AUTH = [{}, { ApiKey: [] }, { Bearer: [] }];
const ADMIN_AUTH = [{ AdminKey: [] }, { AdminBearer: [] }];

const ERROR_SCHEMA = { hapax: 'Error', anthropic: 'AnthropicError', ollama: 'OllamaError' } as const;

/**
 * Request bodies are the schemas the handlers validate with, registered as they are (not copies), so the
 * document cannot drift from what the routes accept. Once, on the first document.
 */
let requestsRegistered = false;
function registerRequestSchemas(): void {
  if (requestsRegistered) return;
  requestsRegistered = true;
  const seen = new Set<string>();
  for (const declared of Object.values(HANDLER_DECLARATIONS) as HandlerDeclaration[]) {
    const request = declared.openapi?.request;
    if (!request || seen.has(request.id)) continue;
    seen.add(request.id);
    registry.add(request.schema, { id: request.id, description: request.description });
  }
}

/** One operation of a client API's route, from its declaration. */
function operation(api: DeclaredApi, doc: DocumentedOperation, summary: string | undefined, key: HandlerDeclaration['key']): Json {
  const responses: Json = {};
  for (const [status, answer] of Object.entries(doc.responses)) {
    const content: Json = {};
    if (answer.json) Object.assign(content, json(answer.json));
    if (answer.sse) content['text/event-stream'] = { schema: { type: 'string' }, 'x-item-schema': ref(answer.sse) };
    if (answer.ndjson) content['application/x-ndjson'] = { schema: { type: 'string' }, 'x-item-schema': ref(answer.ndjson) };
    if (answer.text) content[answer.text] = { schema: { type: 'string' } };
    responses[status] = response(answer.description, Object.keys(content).length > 0 ? content : undefined);
  }
  return {
    tags: [doc.tag],
    summary: summary ?? doc.summary,
    ...(doc.description ? { description: doc.description } : {}),
    // Health never asks for a key; metrics only with metrics.auth (documented in its description).
    ...(key === 'required' ? { security: CLIENT_AUTH } : {}),
    ...(key === 'required' || doc.pathParameters ? { parameters: [...(key === 'required' ? [REQUEST_ID] : []), ...(doc.pathParameters ?? []).map(({ name, description, example }) => ({ name, in: 'path', required: true, description, schema: { type: 'string' }, example }))] } : {}),
    ...(doc.request ? { requestBody: { required: true, content: json(doc.request.id, doc.request.example) } } : {}),
    responses: { ...responses, ...errors([...doc.errors], ERROR_SCHEMA[api.errorDialect]) },
  };
}

/** Every standard route of every client API, as its declaration describes it. */
function clientPaths(): Json {
  const paths: Json = {};
  for (const api of CLIENT_APIS) {
    for (const route of api.routes) {
      const declared = api.handlers[route.handler] as HandlerDeclaration;
      if (!declared.openapi) continue;
      const item: Json = {};
      for (const method of declared.openapi.methods ?? declared.methods) item[method.toLowerCase()] = operation(api, declared.openapi, route.summary, declared.key);
      paths[route.path] = item;
      for (const sub of declared.subroutes ?? []) {
        const path = route.path + sub.path;
        paths[path] = { ...(paths[path] as Json | undefined), [sub.method.toLowerCase()]: operation(api, sub.openapi, undefined, declared.key) };
      }
    }
  }
  return paths;
}

export function openapiDocument(version = VERSION) {
  registerRequestSchemas();
  const schemas = z.toJSONSchema(registry, { uri: (id) => `#/components/schemas/${id}`, unrepresentable: 'any' }).schemas as Record<string, Json>;
  for (const schema of Object.values(schemas)) {
    delete schema.$schema;
    delete schema.$id;
  }
  return {
    openapi: '3.1.0',
    info: {
      title: 'Hapax',
      version,
      description:
        'An LLM gateway. One port speaks Hapax\'s native API, the OpenAI and Anthropic APIs and the Ollama API, in front of every configured provider, with failover, circuit breakers, health checks, keys and rate limits. Every response carries X-Request-ID; answers from providers carry X-Hapax-Provider and X-Hapax-Attempts.',
      license: { name: 'Apache-2.0', identifier: 'Apache-2.0' },
    },
    servers: [{ url: '/' }],
    tags: [
      { name: 'Native', description: "Hapax's own completion API" },
      { name: 'OpenAI', description: 'OpenAI-compatible: use the official OpenAI SDKs with their base URL set to Hapax /v1' },
      { name: 'Anthropic', description: 'Anthropic-compatible: use the official Anthropic SDKs with their base URL set to Hapax' },
      { name: 'Ollama', description: 'Ollama-compatible: use the ollama client libraries with their host set to Hapax' },
      { name: 'Operations', description: 'Health, metrics, this document' },
      { name: 'Admin', description: 'Needs admin.key; answers 404 while no admin key is configured' },
    ],
    paths: {
      ...clientPaths(),
      '/health/{route}': {
        get: {
          tags: ['Operations'],
          summary: 'Health of one route',
          description: 'The route path without its leading slash, e.g. /health/v1/completions. Healthy while any provider the route can use is available.',
          parameters: [{ name: 'route', in: 'path', required: true, schema: { type: 'string' }, example: 'v1/completions' }],
          responses: { 200: response('healthy', json('RouteHealth')), 503: response('unhealthy', json('RouteHealth')), ...errors([404]) },
        },
      },
      '/health/provider/{provider}': {
        get: {
          tags: ['Operations'],
          summary: 'Health of one provider',
          parameters: [{ name: 'provider', in: 'path', required: true, schema: { type: 'string' }, example: 'mock' }],
          responses: { 200: response('healthy', json('ProviderHealth')), 503: response('unhealthy or its breaker is open', json('ProviderHealth')), ...errors([404]) },
        },
      },
      '/health/ready': {
        get: { tags: ['Operations'], summary: 'Readiness (for load balancers)', responses: { 200: response('serving', json('Readiness')), 503: response('draining for shutdown', json('Readiness')) } },
      },
      '/health/live': { get: { tags: ['Operations'], summary: 'Liveness', responses: { 200: response('the process answers', json('Liveness')) } } },
      '/openapi.json': { get: { tags: ['Operations'], summary: 'This document', responses: { 200: response('OpenAPI 3.1', { 'application/json': { schema: { type: 'object' } } }) } } },
      '/admin/keys': {
        get: { tags: ['Admin'], summary: 'List managed keys', security: ADMIN_AUTH, responses: { 200: response('the keys', json('KeyList')), ...errors([401, 404]) } },
        post: {
          tags: ['Admin'],
          summary: 'Create a managed key',
          security: ADMIN_AUTH,
          requestBody: { required: true, content: json('KeyCreateRequest', { name: 'marketing', requests_per_minute: 60 }) },
          responses: { 201: response('created; the key is in the answer, once', json('KeyCreated')), ...errors([400, 401, 404, 409]) },
        },
      },
      '/admin/keys/{name}': {
        patch: {
          tags: ['Admin'],
          summary: "Change a managed key's budgets or limits",
          security: ADMIN_AUTH,
          parameters: [{ name: 'name', in: 'path', required: true, schema: { type: 'string' }, example: 'marketing' }],
          requestBody: { required: true, content: json('KeyUpdateRequest', { budgets: [{ window: 'monthly', usd: 800 }] }) },
          responses: { 200: response('the key as it is now', json('Key')), ...errors([400, 401, 404]) },
        },
        delete: {
          tags: ['Admin'],
          summary: 'Revoke a managed key',
          security: ADMIN_AUTH,
          parameters: [{ name: 'name', in: 'path', required: true, schema: { type: 'string' }, example: 'marketing' }],
          responses: { 200: response('revoked', json('KeyRevoked')), ...errors([401, 404]) },
        },
      },
      '/admin/usage': {
        get: {
          tags: ['Admin'],
          summary: 'Requests, tokens and spend by key, label, route, provider, model and day',
          security: ADMIN_AUTH,
          parameters: [
            { name: 'group_by', in: 'query', schema: { type: 'string', default: 'key' }, example: 'key,model', description: 'comma-separated: key, label, route, provider, model, day' },
            { name: 'from', in: 'query', schema: { type: 'string', format: 'date' }, description: 'first day (budgets.time_zone), inclusive' },
            { name: 'to', in: 'query', schema: { type: 'string', format: 'date' }, description: 'last day, inclusive' },
            { name: 'key', in: 'query', schema: { type: 'string' }, description: "only this key's rows" },
            { name: 'format', in: 'query', schema: { type: 'string', enum: ['json', 'csv'], default: 'json' } },
          ],
          responses: { 200: response('usage', { ...json('UsageReport'), 'text/csv': { schema: { type: 'string' } } }), ...errors([400, 401, 404]) },
        },
      },
      '/admin/reload': {
        post: {
          tags: ['Admin'],
          summary: 'Reload the config file now',
          security: ADMIN_AUTH,
          responses: {
            200: response('reloaded', json('ReloadOutcome')),
            409: response('there is no config file to reload', json('ReloadOutcome')),
            422: response('the file is invalid; the running config stays', json('ReloadOutcome')),
            ...errors([401, 404]),
          },
        },
      },
      '/console/api/state': {
        get: {
          tags: ['Admin'],
          summary: 'The operator console snapshot',
          description: 'Needs admin.key when it is set (header or the console cookie); open when there is none and auth is off; 403 when auth is on without an admin key.',
          security: [{}, ...ADMIN_AUTH],
          responses: { 200: response('the snapshot', json('ConsoleState')), ...errors([401, 403]) },
        },
      },
    },
    components: {
      schemas,
      parameters: {
        RequestId: {
          name: 'X-Request-ID',
          in: 'header',
          required: false,
          description: 'Your id for this request (1-128 visible ASCII characters); echoed back, else a UUID is made',
          schema: { type: 'string', maxLength: 128 },
        },
      },
      securitySchemes: {
        ApiKey: { type: 'apiKey', in: 'header', name: 'X-API-Key', description: 'A client key, when auth.enabled is true' },
        Bearer: { type: 'http', scheme: 'bearer', description: 'The same client key as a bearer token (what the OpenAI SDKs send)' },
        AdminKey: { type: 'apiKey', in: 'header', name: 'X-API-Key', description: 'admin.key' },
        AdminBearer: { type: 'http', scheme: 'bearer', description: 'admin.key as a bearer token' },
      },
    },
  };
}

/** GET /openapi.json, built once. */
export function registerOpenApi(app: FastifyInstance): void {
  let body: string | undefined;
  app.get('/openapi.json', async (_request, reply) => {
    body ??= JSON.stringify(openapiDocument());
    return reply.type('application/json; charset=utf-8').header('cache-control', 'no-cache').send(body);
  });
}
