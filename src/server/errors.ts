/**
 * Error bodies in each client dialect. Native and OpenAI routes use the spec's
 * `{"error":{type,message,code,request_id,details}}`; /v1/messages uses Anthropic's shape so its SDK
 * raises the right error classes.
 */
import { randomUUID } from 'node:crypto';
import type { ErrorDialect } from '../gateway/runtime.ts';
import { GatewayError, type ErrorType } from '../core/errors.ts';

export type { ErrorDialect };

const SANE_REQUEST_ID = /^[\x21-\x7e]{1,128}$/;

/** The client's X-Request-ID when it is sane (printable ASCII, at most 128 characters), else a new UUID. */
export function requestIdFrom(header: string | string[] | undefined): string {
  return typeof header === 'string' && SANE_REQUEST_ID.test(header) ? header : randomUUID();
}

const ANTHROPIC_TYPES: Record<number, string> = {
  400: 'invalid_request_error',
  401: 'authentication_error',
  403: 'permission_error',
  404: 'not_found_error',
  413: 'request_too_large',
  429: 'rate_limit_error',
  503: 'overloaded_error',
  529: 'overloaded_error',
};

export function errorBody(error: GatewayError, requestId: string, dialect: ErrorDialect): unknown {
  // Ollama clients read `error` as a string (an object prints as [object Object]).
  if (dialect === 'ollama') return { error: error.message };
  if (dialect === 'anthropic') {
    const type = ANTHROPIC_TYPES[error.status] ?? (error.status >= 500 ? 'api_error' : 'invalid_request_error');
    return { type: 'error', error: { type, message: error.message }, request_id: requestId };
  }
  return {
    error: {
      type: error.type,
      message: error.message,
      code: error.status,
      request_id: requestId,
      ...(error.details ? { details: error.details } : {}),
    },
  };
}

/** Fastify's own errors (body parsing, limits) and anything unexpected, as a GatewayError. */
export function toGatewayError(error: unknown): GatewayError {
  if (error instanceof GatewayError) return error;
  const e = error as { statusCode?: number; code?: string; message?: string };
  const status = e.statusCode ?? 500;
  // The client sees a plain message; the original error stays attached for the log.
  if (status >= 500) return new GatewayError('internal error', { status: 500, type: 'InternalError', cause: error });
  if (e.code === 'FST_ERR_CTP_INVALID_MEDIA_TYPE') {
    return new GatewayError('content-type must be application/json', { status: 415, type: 'ValidationError', details: { field: 'content-type' } });
  }
  const type: ErrorType = status === 401 ? 'AuthenticationError' : status === 429 ? 'RateLimitError' : 'ValidationError';
  return new GatewayError(e.message ?? 'bad request', { status, type, details: e.code ? { code: e.code } : undefined });
}
