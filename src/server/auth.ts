/**
 * Client authentication. Keys arrive as `X-API-Key` (the spec, and the Anthropic SDK's x-api-key)
 * or `Authorization: Bearer` (the openai and Anthropic SDKs).
 */
import type { FastifyRequest } from 'fastify';
import { GatewayError } from '../providers/errors.ts';
import type { ApiKeyRecord } from '../state/keys.ts';

export function presentedKey(request: FastifyRequest): string | undefined {
  const header = request.headers['x-api-key'];
  if (typeof header === 'string' && header) return header;
  const authorization = request.headers.authorization;
  if (typeof authorization === 'string' && authorization.length > 7 && authorization.slice(0, 7).toLowerCase() === 'bearer ') {
    return authorization.slice(7).trim();
  }
  return undefined;
}

/** Routes a key may use when it may use another: counting a request's tokens goes with sending it. */
const IMPLIED_BY: Readonly<Record<string, string>> = { '/v1/messages/count_tokens': '/v1/messages' };

/** A key limited to some routes or models may use only those. */
export function checkKeyScope(record: ApiKeyRecord, routePath: string): void {
  if (record.routes && !record.routes.includes(routePath) && !record.routes.includes(IMPLIED_BY[routePath])) {
    throw new GatewayError(`API key ${record.name} may not use ${routePath}`, { status: 403, type: 'AuthenticationError' });
  }
}

/** Whether a key's `models` scope lets it use this provider and model (or the name the client asked for). */
export function keyAllowsModel(record: ApiKeyRecord | undefined, provider: string, model: string, requested?: string): boolean {
  const allowed = record?.models;
  return !allowed || allowed.includes(provider) || allowed.includes(model) || allowed.includes(`${provider}/${model}`) || (requested !== undefined && allowed.includes(requested));
}

export function checkKeyModel(record: ApiKeyRecord | undefined, provider: string, model: string, requested: string | undefined): void {
  if (!record?.models || keyAllowsModel(record, provider, model, requested)) return;
  const allowed = record.models;
  throw new GatewayError(`API key ${record.name} may not use model ${requested ?? `${provider}/${model}`}`, {
    status: 403,
    type: 'AuthenticationError',
    details: { field: 'model', allowed_models: allowed },
  });
}
