/** Per-request state shared by hooks and handlers. One object per request, created in onRequest. */
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { Runtime, RouteSpec } from '../gateway/runtime.ts';
import type { AttemptContext } from '../providers/adapter.ts';

export interface RequestState {
  runtime: Runtime;
  route: RouteSpec | undefined;
  /** Aborted when the client disconnects or the route's deadline passes. */
  controller: AbortController;
  deadline?: NodeJS.Timeout;
  provider?: string;
  model?: string;
  attempts?: number;
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
export function setServedBy(reply: FastifyReply, state: RequestState, provider: string, model: string, attempts: number): void {
  state.provider = provider;
  state.model = model;
  state.attempts = attempts;
  reply.header('x-hapax-provider', provider);
  reply.header('x-hapax-attempts', attempts);
}
