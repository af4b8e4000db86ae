/** Per-request state shared by hooks and handlers. One object per request, created in onRequest. */
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { AttemptRecord, DispatchContext, DispatchResult, StreamResumes } from '../gateway/dispatch.ts';
import type { Runtime, RouteSpec } from '../gateway/runtime.ts';
import type { ModelTarget } from '../providers/adapter.ts';
import { checkKeyModel, keyAllowsModel } from './auth.ts';
import type { Usage } from '../core/canonical.ts';
import type { ApiKeyRecord } from '../state/keys.ts';
import type { Observation } from './observe.ts';
import type { Reservation } from './quota-admission.ts';

export interface RequestState {
  runtime: Runtime;
  route: RouteSpec | undefined;
  /** Aborted when the client disconnects or the route's deadline passes. */
  controller: AbortController;
  /** Epoch ms when the request arrived. */
  startedAt: number;
  /** Time spent waiting on providers, filled in by the dispatcher. */
  spent: { upstreamMs: number };
  deadline?: NodeJS.Timeout;
  /** The authenticated key, when auth is on. */
  key?: ApiKeyRecord;
  /** Who is calling, for limits and metrics: the key's name, or the client IP when auth is off. */
  client: string;
  /** The provider and configured model that answered (bounded values, for metrics). */
  target?: ModelTarget;
  provider?: string;
  /** The model name the provider reported. */
  model?: string;
  attempts?: number;
  /** Tokens the answer used, once known (streams report it at their end). */
  usage?: Usage;
  /** Upstream attempts in order, filled in by the dispatcher (failover path in the log, trace spans). */
  trail?: AttemptRecord[];
  /** Sent upstream: the client's traceparent when valid, or this request's span when tracing is on. */
  traceparent?: string;
  /** The answer came from an identical request in flight (dedup): no upstream time of its own. */
  shared?: boolean;
  /** The error type answered to the client, for the request log. */
  errorType?: string;
  /** A stream that broke after its 200 went out (ended with an error frame). */
  streamFailed?: boolean;
  /** The gateway writes this answer itself (a hijacked reply): no onResponse if the client leaves mid-way. */
  writesOwnResponse?: boolean;
  /** The connection closed before the answer was complete (set by the 'close' listener, on every transport). */
  clientGone?: boolean;
  /** Passed auth and rate limits: counted as a request in the usage report. */
  admitted?: boolean;
  /** Metrics and the log line are done (they must happen once, whichever way the response ended). */
  accounted?: boolean;
  /** Request fields left out on the way to the provider (translated lane), for the log line. */
  dropped?: string[];
  /** What the answer cost in US dollars (pricing table), once accounted for; undefined without a price. */
  costUsd?: number;
  /** The request body's text as it arrived (decoded, without a byte-order mark), when it was JSON. */
  rawBody?: string;
  /** Tokens and dollars reserved before going upstream, settled when the request ends. */
  reservation?: Reservation;
  /** Whether `usage` is the provider's own figures or estimated by the gateway (a stream that gave none). */
  usageSource?: 'provider' | 'estimated';
  /** Which lane served a chat answer: the provider's own bytes (lossless) or through the canonical model. */
  lane?: 'lossless' | 'translated';
  /** Characters of answer text streamed so far: the estimate when a stream ends without usage. */
  streamedChars?: number;
  /** A stream resumed on another candidate after a cut (resume_streams): where, and what each attempt spent. */
  resumed?: StreamResumes;
  /** Per-request notes of the observability hooks (span, overhead, logged bodies). */
  observed?: Observation;
}

declare module 'fastify' {
  interface FastifyRequest {
    hapax: RequestState;
  }
}

export type Handler = (request: FastifyRequest, reply: FastifyReply, state: RequestState) => Promise<unknown>;

export function attemptContext(request: FastifyRequest): DispatchContext {
  const { 'cache-control': cacheControl } = request.headers;
  const fresh = typeof cacheControl === 'string' && cacheControl.includes('no-cache');
  const state = request.hapax;
  return {
    signal: state.controller.signal,
    requestId: request.id,
    traceparent: state.traceparent,
    client: state.client,
    deadlineAt: state.startedAt + (state.route?.timeoutMs ?? state.runtime.config.server.request_timeout),
    firstTokenTimeoutMs: state.route?.firstTokenTimeoutMs,
    streamIdleTimeoutMs: state.route?.streamIdleTimeoutMs,
    hedgeAfterMs: state.route?.hedgeAfterMs,
    ...(state.route?.resumeStreams ? { resume: (state.resumed ??= { resumes: [], spent: [] }), resumable: true, resumeWindowMs: state.route.timeoutMs } : {}),
    // `Cache-Control: no-cache` asks for a fresh answer: no sharing, no cache.
    dedup: (state.route?.dedup ?? false) && !fresh,
    cache: !fresh,
    spent: state.spent,
    trail: (state.trail ??= []),
    dropped: new Set(),
  };
}

/**
 * What did not reach the provider: client fields the canonical model has no place for, then what the
 * answering adapter could not express. Named in X-Hapax-Dropped and in the request log.
 */
export function setDropped(reply: FastifyReply, state: RequestState, unsupported: readonly string[] | undefined, dropped: ReadonlySet<string> | undefined): void {
  if (!unsupported?.length && !dropped?.size) return;
  const fields = [...new Set([...(unsupported ?? []), ...(dropped ?? [])])];
  state.dropped = fields;
  reply.header('x-hapax-dropped', fields.join(','));
}

/** Headers that say who served the request. */
/** One attempt's share of a request's usage, at its own provider's price. */
export type SpentPart = StreamResumes['spent'][number];

/**
 * What the request spent, attempt by attempt: one part for an ordinary answer, one per attempt that took part
 * in a resumed stream. Metrics, the log's cost, the budgets and the usage report all price these parts.
 */
export function spentBy(state: RequestState): readonly SpentPart[] {
  const parts = state.resumed?.spent;
  if (parts?.length) return parts;
  return state.target && state.usage ? [{ target: state.target, usage: state.usage, estimated: state.usageSource === 'estimated' }] : NOTHING_SPENT;
}
const NOTHING_SPENT: readonly SpentPart[] = [];

export function setServedBy(reply: FastifyReply, state: RequestState, result: DispatchResult<unknown>, model: string, usage?: Usage): void {
  state.target = result.target;
  state.provider = result.target.provider;
  state.model = model;
  state.attempts = result.attempts;
  // A cached answer, like a shared one, spent its upstream time and tokens on an earlier request.
  if (result.shared || result.cached) state.shared = true;
  if (usage) state.usage = usage;
  reply.header('x-hapax-provider', result.target.provider);
  reply.header('x-hapax-attempts', result.attempts);
  if (result.cached) reply.header('x-hapax-cache', 'hit');
}

/**
 * The ordered providers for this request: the route's pinned model or the client's `model`, in the
 * route's preference order, limited to what the caller's key may use.
 */
export function candidatesFor(state: RequestState, requested: string | undefined): readonly ModelTarget[] {
  const { route, runtime, key } = state;
  const model = route?.pinnedModel ?? requested;
  const candidates = runtime.catalog.resolve(model, route?.routing);
  if (!key?.models) return candidates;
  const allowed = candidates.filter((t) => keyAllowsModel(key, t.provider, t.model));
  // Nothing allowed: explain with the first candidate (names the requested model and the allowed list).
  if (allowed.length === 0) checkKeyModel(key, candidates[0]?.provider ?? '', candidates[0]?.model ?? '', model);
  return allowed;
}
