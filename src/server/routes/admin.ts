/**
 * The admin API: /admin/keys to list, create and revoke managed client keys. Protected by
 * `admin.key` (X-API-Key or Bearer); disabled (404) when no admin key is configured.
 */
import { timingSafeEqual } from 'node:crypto';
import { z } from 'zod';
import { parseBody } from '../../dialects/validate.ts';
import { GatewayError } from '../../providers/errors.ts';
import { hashKey, KeyFile, type ApiKeyRecord } from '../../state/keys.ts';
import { presentedKey } from '../auth.ts';
import type { Handler } from '../context.ts';

const createSchema = z.strictObject({
  name: z.string().regex(/^[A-Za-z0-9_.-]{1,64}$/, 'use 1-64 letters, digits, _ . -'),
  requests_per_minute: z.number().int().positive().optional(),
  tokens_per_minute: z.number().int().positive().optional(),
  expires: z.string().optional(),
  routes: z.array(z.string()).optional(),
  models: z.array(z.string()).optional(),
});

/** What may be shown of a key: never the key, nor its hash. */
export function publicKeyView(record: ApiKeyRecord) {
  return {
    name: record.name,
    created: record.created ?? null,
    expires: record.expires ?? null,
    revoked: record.revoked ?? null,
    rate_limit: record.rate_limit ?? null,
    routes: record.routes ?? null,
    models: record.models ?? null,
  };
}

export function checkAdmin(expected: string | undefined, presented: string | undefined): void {
  if (!expected) throw new GatewayError('the admin API is disabled: set admin.key', { status: 404, type: 'ValidationError' });
  const ok = presented !== undefined && timingSafeEqual(Buffer.from(hashKey(presented), 'hex'), Buffer.from(hashKey(expected), 'hex'));
  if (!ok) throw new GatewayError('admin key required', { status: 401, type: 'AuthenticationError' });
}

export const adminHandler: Handler = async (request, reply, state) => {
  const { runtime } = state;
  checkAdmin(runtime.config.admin.key, presentedKey(request));
  const path = request.url.split('?', 1)[0].replace(/\/+$/, '');
  const file = new KeyFile(runtime.config.auth.key_file);
  if (path === '/admin/keys' && request.method === 'GET') {
    return { keys: (await file.read()).map(publicKeyView) };
  }
  if (path === '/admin/keys' && request.method === 'POST') {
    const body = parseBody(createSchema, request.body);
    const rate_limit = { requests_per_minute: body.requests_per_minute, tokens_per_minute: body.tokens_per_minute };
    let created;
    try {
      created = await file.create({ name: body.name, rate_limit: JSON.parse(JSON.stringify(rate_limit)), expires: body.expires, routes: body.routes, models: body.models });
    } catch (error) {
      throw new GatewayError((error as Error).message, { status: 409, type: 'ValidationError', details: { field: 'name' } });
    }
    await runtime.keys.refresh();
    reply.code(201);
    return { key: created.key, ...publicKeyView(created.record) };
  }
  if (path.startsWith('/admin/keys/') && request.method === 'DELETE') {
    const name = decodeURIComponent(path.slice('/admin/keys/'.length));
    if (!(await file.revoke(name))) throw new GatewayError(`no active key named ${name}`, { status: 404, type: 'ValidationError' });
    await runtime.keys.refresh();
    return { name, revoked: true };
  }
  throw new GatewayError(`no admin route for ${request.method} ${path}`, { status: 404, type: 'ValidationError' });
};
