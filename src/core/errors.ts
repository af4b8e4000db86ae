/**
 * Errors carry a machine-readable kind so callers switch on it instead of matching strings.
 * `type` is the spec's error type that reaches the client; `retryable` drives failover.
 */
export const ERROR_TYPES = ['ValidationError', 'AuthenticationError', 'RateLimitError', 'ProcessingError', 'InternalError', 'NotFoundError'] as const;
export type ErrorType = (typeof ERROR_TYPES)[number];

export interface GatewayErrorOptions {
  status: number;
  type: ErrorType;
  details?: Record<string, unknown>;
  retryAfterSeconds?: number;
  cause?: unknown;
}

export class GatewayError extends Error {
  readonly status: number;
  readonly type: ErrorType;
  readonly details?: Record<string, unknown>;
  retryAfterSeconds?: number;
  constructor(message: string, opts: GatewayErrorOptions) {
    super(message, { cause: opts.cause });
    this.name = 'GatewayError';
    this.status = opts.status;
    this.type = opts.type;
    this.details = opts.details;
    this.retryAfterSeconds = opts.retryAfterSeconds;
  }
}

export function validationError(message: string, field?: string, extra?: Record<string, unknown>): GatewayError {
  return new GatewayError(message, {
    status: 400,
    type: 'ValidationError',
    details: field === undefined ? extra : { field, ...extra },
  });
}

/** Why an upstream attempt failed; decides whether another provider may succeed where this one did not. */
export type UpstreamFailureKind =
  | 'connect' // refused, DNS, reset before an answer
  | 'timeout'
  | 'server' // 5xx
  | 'rate_limited' // 429
  | 'overloaded' // 529 and friends
  | 'client' // 4xx the caller caused: another provider cannot fix it
  | 'auth' // 401/403 on our provider key: a config problem, try the next provider
  | 'protocol' // an answer we could not understand
  | 'aborted'; // the client went away

export class UpstreamError extends Error {
  readonly provider: string;
  readonly kind: UpstreamFailureKind;
  readonly status?: number;
  readonly retryAfterSeconds?: number;
  /** The provider's own message, safe to show (never contains our key). */
  readonly upstreamMessage?: string;
  /** The provider's own error event already reached the client (lossless streams): the client needs no second one. */
  readonly reportedToClient: boolean;
  constructor(
    provider: string,
    kind: UpstreamFailureKind,
    message: string,
    opts: { status?: number; retryAfterSeconds?: number; upstreamMessage?: string; cause?: unknown; reportedToClient?: boolean } = {},
  ) {
    super(message, { cause: opts.cause });
    this.name = 'UpstreamError';
    this.provider = provider;
    this.kind = kind;
    this.status = opts.status;
    this.retryAfterSeconds = opts.retryAfterSeconds;
    this.upstreamMessage = opts.upstreamMessage;
    this.reportedToClient = opts.reportedToClient ?? false;
  }

  /** Another attempt (same or other provider) may succeed. */
  get retryable(): boolean {
    return this.kind !== 'client' && this.kind !== 'aborted';
  }
}

export function failureKindForStatus(status: number): UpstreamFailureKind {
  if (status === 429) return 'rate_limited';
  if (status === 529 || status === 503) return 'overloaded';
  if (status === 401 || status === 403) return 'auth';
  if (status === 408) return 'timeout';
  // Failed Dependency: the model behind the service failed (Bedrock's ModelErrorException), not the request.
  if (status === 424) return 'server';
  if (status >= 500) return 'server';
  return 'client';
}

/** Parses a Retry-After header (seconds or HTTP date) into whole seconds. */
export function parseRetryAfter(value: string | string[] | undefined): number | undefined {
  if (value === undefined) return undefined;
  const raw = Array.isArray(value) ? value[0] : value;
  const seconds = Number(raw);
  if (Number.isFinite(seconds) && seconds >= 0) return Math.ceil(seconds);
  const date = Date.parse(raw);
  if (Number.isNaN(date)) return undefined;
  return Math.max(0, Math.ceil((date - Date.now()) / 1000));
}

/** An abort reason that says a deadline passed (an AbortSignal.timeout or our request deadline), not a client leaving. */
export function isDeadline(reason: unknown): boolean {
  return (reason as Error | undefined)?.name === 'TimeoutError';
}

/**
 * The message in a provider's error body. The three dialects say it the same way or close to it: OpenAI and
 * Anthropic as `{error: {message}}`, Ollama and some OpenAI-compatible servers as `{error: "..."}`.
 */
export function upstreamErrorMessage(body: unknown): string | undefined {
  const error = (body as { error?: { message?: unknown } | string } | null)?.error;
  if (typeof error === 'string') return error;
  if (typeof error?.message === 'string') return error.message;
  // AWS services answer `{message}` (or `{Message}`) at the top.
  const top = body as { message?: unknown; Message?: unknown } | null;
  const message = top?.message ?? top?.Message;
  return typeof message === 'string' ? message : undefined;
}

/**
 * The retry delay Google APIs put in the error body instead of a Retry-After header: a google.rpc.RetryInfo
 * entry of `error.details` with `retryDelay` as a duration string ("2s", "0.5s"), in whole seconds.
 */
export function bodyRetryDelay(body: unknown): number | undefined {
  const details = (body as { error?: { details?: unknown } } | null)?.error?.details;
  if (!Array.isArray(details)) return undefined;
  for (const detail of details) {
    const info = detail as { '@type'?: unknown; retryDelay?: unknown } | null;
    if (typeof info?.['@type'] !== 'string' || !info['@type'].endsWith('google.rpc.RetryInfo') || typeof info.retryDelay !== 'string') continue;
    const seconds = /^(\d+(?:\.\d+)?)s$/.exec(info.retryDelay);
    if (seconds) return Math.ceil(Number(seconds[1]));
  }
  return undefined;
}
