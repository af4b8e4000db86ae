/** Per-request state shared by hooks and handlers. One object per request, created in onRequest. */
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { Runtime, RouteSpec } from '../gateway/runtime.ts';
import type { AttemptContext, ModelTarget } from '../providers/adapter.ts';
import { checkKeyModel } from './auth.ts';
import type { Usage } from '../providers/canonical.ts';
import type { ApiKeyRecord } from '../state/keys.ts';

export interface RequestState {
  runtime: Runtime;
  route: RouteSpec | undefined;
  /** Aborted when the client disconnects or the route's deadline passes. */
  controller: AbortController;
  deadline?: NodeJS.Timeout;
  /** The authenticated key, when auth is on. */
  key?: ApiKeyRecord;
  /** Who is calling, for limits and metrics: the key's name, or the client IP when auth is off. */
  client: string;
  provider?: string;
  model?: string;
  attempts?: number;
  /** Tokens the answer used, once known (streams report it at their end). */
  usage?: Usage;
}

declare module 'fastify' {
  interface FastifyRequest {
    hapax: RequestState;
  }
}

export type Handler = (request: FastifyRequest, reply: FastifyReply, state: RequestState) => Promise<unknown>;

export function attemptContext(request: FastifyRequest): AttemptContext {
  const traceparent = request.headers.traceparent;
  return {
    signal: request.hapax.controller.signal,
    requestId: request.id,
    traceparent: typeof traceparent === 'string' ? traceparent : undefined,
  };
}

/** Headers that say who served the request. */
export function setServedBy(reply: FastifyReply, state: RequestState, provider: string, model: string, attempts: number, usage?: Usage): void {
  state.provider = provider;
  if (usage) state.usage = usage;
  state.model = model;
  state.attempts = attempts;
  reply.header('x-hapax-provider', provider);
  reply.header('x-hapax-attempts', attempts);
}

/**
 * The ordered providers for this request: the route's pinned model or the client's `model`, in the
 * route's preference order, limited to what the caller's key may use.
 */
export function candidatesFor(state: RequestState, requested: string | undefined): readonly ModelTarget[] {
  const { route, runtime, key } = state;
  const model = route?.pinnedModel ?? requested;
  const candidates = runtime.catalog.resolve(model, route?.preference);
  if (!key?.models) return candidates;
  const allowed = candidates.filter((t) => {
    try {
      checkKeyModel(key, t.provider, t.model, undefined);
      return true;
    } catch {
      return false;
    }
  });
  // Nothing allowed: explain with the first candidate (names the requested model and the allowed list).
  if (allowed.length === 0) checkKeyModel(key, candidates[0]?.provider ?? '', candidates[0]?.model ?? '', model);
  return allowed;
}
