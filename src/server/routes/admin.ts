/**
 * The admin API: /admin/keys to list, create, update (limits and budgets) and revoke managed client keys,
 * /admin/usage for requests, tokens and spend by key, label, route, provider, model and day. Protected by `admin.key` (X-API-Key or Bearer); disabled (404) when
 * no admin key is configured.
 */
import { z } from 'zod';
import { parseBody } from '../../dialects/validate.ts';
import { GatewayError, validationError } from '../../core/errors.ts';
import type { Runtime } from '../../gateway/runtime.ts';
import { stateUnavailable } from '../../state/health.ts';
import { KEY_NAME, KEY_NAME_RULE, KeyExistsError, KeyOptionError, sameSecret, type ApiKeyRecord, type KeyChanges } from '../../state/keys.ts';
import { groupUsage, parseReportQuery, reportColumns, ReportQueryError, toCsv, type ReportQuery } from '../../observability/usage-report.ts';
import { presentedKey } from '../auth.ts';
import type { Handler } from '../context.ts';
import { budgetReport } from '../budget-report.ts';

const createSchema = z.strictObject({
  name: z.string().regex(KEY_NAME, KEY_NAME_RULE),
  requests_per_minute: z.number().int().positive().optional(),
  tokens_per_minute: z.number().int().positive().optional(),
  expires: z.string().optional(),
  /** Checked by newKeyRecord, so the CLI and the admin API accept the same budgets. */
  budgets: z.array(z.unknown()).optional(),
  routes: z.array(z.string()).optional(),
  models: z.array(z.string()).optional(),
});

/** PATCH /admin/keys/{name}: the limits to replace; a field left out is kept, `null` removes it. */
const updateSchema = z.strictObject({
  requests_per_minute: z.number().int().positive().nullable().optional(),
  tokens_per_minute: z.number().int().positive().nullable().optional(),
  /** Checked by the key store (updateKeyRecord), like a new key's. */
  budgets: z.array(z.unknown()).nullable().optional(),
});

function keyChanges(body: z.infer<typeof updateSchema>): KeyChanges {
  const changes: KeyChanges = {};
  if (body.budgets !== undefined) changes.budgets = body.budgets ?? [];
  if (body.requests_per_minute !== undefined || body.tokens_per_minute !== undefined) {
    changes.rate_limit = {};
    if (body.requests_per_minute !== undefined) changes.rate_limit.requests_per_minute = body.requests_per_minute;
    if (body.tokens_per_minute !== undefined) changes.rate_limit.tokens_per_minute = body.tokens_per_minute;
  }
  return changes;
}

/** What may be shown of a key: never the key, nor its hash. */
export function publicKeyView(record: ApiKeyRecord) {
  return {
    name: record.name,
    created: record.created ?? null,
    updated: record.updated ?? null,
    expires: record.expires ?? null,
    revoked: record.revoked ?? null,
    rate_limit: record.rate_limit ?? null,
    budgets: record.budgets ?? null,
    routes: record.routes ?? null,
    models: record.models ?? null,
  };
}

export function checkAdmin(expected: string | undefined, presented: string | undefined): void {
  if (!expected) throw new GatewayError('the admin API is disabled: set admin.key', { status: 404, type: 'ValidationError' });
  const ok = presented !== undefined && sameSecret(presented, expected);
  if (!ok) throw new GatewayError('admin key required', { status: 401, type: 'AuthenticationError' });
}

/** A name already taken is the caller's conflict; an unreachable Redis is a 503 the caller may retry. */
async function viaStore<T>(runtime: Runtime, work: () => Promise<T>): Promise<T> {
  try {
    return await work();
  } catch (error) {
    if (error instanceof KeyExistsError) throw new GatewayError(error.message, { status: 409, type: 'ValidationError', details: { field: 'name' } });
    if (error instanceof KeyOptionError) throw validationError(error.message, error.field);
    if (runtime.store.kind === 'redis') throw stateUnavailable();
    throw error;
  }
}

export const adminHandler: Handler = async (request, reply, state) => {
  const { runtime } = state;
  checkAdmin(runtime.config.admin.key, presentedKey(request));
  const path = request.url.split('?', 1)[0].replace(/\/+$/, '');
  // The key file, or Redis when `state.redis_url` is set (then every instance sees the change).
  const keys = runtime.keys.store;
  if (path === '/admin/keys' && request.method === 'GET') {
    return { keys: (await viaStore(runtime, () => keys.list())).map(publicKeyView) };
  }
  if (path === '/admin/keys' && request.method === 'POST') {
    const body = parseBody(createSchema, request.body);
    const rate_limit = { requests_per_minute: body.requests_per_minute, tokens_per_minute: body.tokens_per_minute };
    const created = await viaStore(runtime, () => keys.create({ name: body.name, rate_limit, budgets: body.budgets, expires: body.expires, routes: body.routes, models: body.models }));
    await runtime.keys.refresh().catch(() => undefined);
    reply.code(201);
    return { key: created.key, ...publicKeyView(created.record) };
  }
  if (path.startsWith('/admin/keys/') && request.method === 'DELETE') {
    const name = decodeURIComponent(path.slice('/admin/keys/'.length));
    if (!(await viaStore(runtime, () => keys.revoke(name)))) throw new GatewayError(`no active key named ${name}`, { status: 404, type: 'ValidationError' });
    await runtime.keys.refresh().catch(() => undefined);
    return { name, revoked: true };
  }
  if (path.startsWith('/admin/keys/') && request.method === 'PATCH') {
    const name = decodeURIComponent(path.slice('/admin/keys/'.length));
    const body = parseBody(updateSchema, request.body);
    const updated = await viaStore(runtime, () => keys.update(name, keyChanges(body)));
    if (!updated) throw new GatewayError(`no active key named ${name}`, { status: 404, type: 'ValidationError' });
    await runtime.keys.refresh().catch(() => undefined);
    return publicKeyView(updated);
  }
  if (path === '/admin/usage' && request.method === 'GET') {
    let query: ReportQuery;
    try {
      query = parseReportQuery(request.query as Record<string, string | undefined>);
    } catch (error) {
      if (error instanceof ReportQueryError) throw validationError(error.message, error.field);
      throw error;
    }
    // Everything retained: this process in memory, the whole fleet with Redis.
    const entries = await viaStore(runtime, () => runtime.store.usage.read(query.range));
    const rows = groupUsage(entries, query);
    if (query.format === 'csv') {
      reply.header('content-type', 'text/csv; charset=utf-8');
      return toCsv(rows, reportColumns(query.groupBy));
    }
    const budgets = await viaStore(runtime, () => budgetReport(runtime));
    const usage = groupUsage(entries, { groupBy: ['key'], key: query.key }).map((row) => ({
      client: row.key as string,
      requests: row.requests,
      input_tokens: row.input_tokens,
      output_tokens: row.output_tokens,
      total_tokens: row.total_tokens,
    }));
    return {
      scope: runtime.store.kind === 'redis' ? 'shared' : 'instance',
      usage,
      report: { group_by: query.groupBy, from: query.range.from ?? null, to: query.range.to ?? null, time_zone: runtime.config.budgets.time_zone, rows },
      budgets,
    };
  }
  throw new GatewayError(`no admin route for ${request.method} ${path}`, { status: 404, type: 'ValidationError' });
};
