/**
 * What each request leaves behind: Prometheus series (requests, latency, tokens, cost, overhead), ONE
 * JSON log line, and, with tracing on, a server span with one child per upstream attempt.
 *
 * Gateway overhead is the time not spent waiting on providers: total time minus the dispatcher's
 * upstream time. For streams it is measured at the first byte (time to first byte minus the upstream's
 * time to first event), which is also when the X-Hapax-Overhead-Ms header has to be set.
 */
import type { Span } from '@opentelemetry/api';
import type { FastifyReply, FastifyRequest, onSendHookHandler } from 'fastify';
import type { Logger } from 'pino';
import { redactSecrets } from '../observability/redact.ts';
import type { Metrics } from '../observability/metrics.ts';
import { costUsd, type Rate } from '../observability/usage.ts';
import { parseTraceparent, type TraceContext } from '../observability/traceparent.ts';
import type { Tracing } from '../observability/tracing.ts';
import type { Usage } from '../core/canonical.ts';
import { spentBy, type RequestState } from './context.ts';

/** The observability hooks' own per-request notes. */
export interface Observation {
  span?: Span;
  /** The client's trace context, when it sent a valid traceparent. */
  client?: TraceContext;
  /** Streams: overhead measured at the first byte. */
  streamOverheadMs?: number;
  /** Only with logging.log_bodies. */
  responseBody?: string;
  responseTruncated?: boolean;
}

/**
 * A stream the gateway writes itself (onSend does not see it): the overhead header, measured now that the
 * first event is in, and a keeper for its frames when bodies are logged.
 */
export function observeStreamStart(reply: FastifyReply, state: RequestState): ((frame: string) => void) | undefined {
  const overhead = overheadOf(state, reply.elapsedTime);
  if (overhead !== undefined) {
    reply.header('x-hapax-overhead-ms', overhead.toFixed(2));
    (state.observed ??= {}).streamOverheadMs = overhead;
  }
  if (!logsBodies(state)) return undefined;
  const observed = (state.observed ??= {});
  return (frame) => keepBody(observed, frame);
}

/** `logging.log_bodies` is about model traffic: never the metrics page, health or other operational routes. */
function logsBodies(state: RequestState): boolean {
  return state.runtime.config.logging.log_bodies && state.route !== undefined && !state.route.operational;
}

/**
 * The gateway's own time in a request: elapsed minus the time spent waiting on providers. Undefined when no
 * provider was called, or for an answer shared from another request (it waited on someone else's call).
 */
function overheadOf(state: RequestState, elapsedMs: number): number | undefined {
  return state.spent.upstreamMs > 0 && !state.shared ? Math.max(0, elapsedMs - state.spent.upstreamMs) : undefined;
}

/** Logged bodies are capped: a log line is not an archive. */
const BODY_LOG_LIMIT = 256 * 1024;
const NO_LABELS: Readonly<Record<string, string>> = Object.freeze({});

interface RouteLike {
  path: string;
  handler: string;
  metricsLabels: Readonly<Record<string, string>>;
}

export class RequestObserver {
  private readonly metrics: Metrics;
  private readonly tracing?: Tracing;
  private readonly labelNames: ReadonlySet<string>;
  /** Each route's metrics_labels, limited to the label names the metrics were created with. */
  private readonly routeLabels = new WeakMap<RouteLike, Readonly<Record<string, string>>>();

  /**
   * The request line's own logger: its fields are ours and carry no secrets, so it skips pino's wildcard
   * redaction (three quarters of the line's cost); logged bodies go through redactSecrets() instead.
   */
  private readonly lines: Logger;

  constructor(metrics: Metrics, tracing: Tracing | undefined, logger: Logger) {
    this.metrics = metrics;
    this.tracing = tracing;
    this.lines = logger.child({}, { redact: { paths: [] } });
    this.labelNames = new Set(metrics.routeLabelNames);
  }

  /** onRequest, once the request's state exists: trace context in, span started. */
  begin(request: FastifyRequest, state: RequestState): void {
    const header = request.headers.traceparent;
    const client = header === undefined ? undefined : parseTraceparent(header);
    // Scrapes and probes would drown the traces that matter.
    if (this.tracing && state.route && !state.route.operational) {
      const span = this.tracing.startRequest(`${request.method} ${state.route.path}`, client, state.startedAt);
      state.observed = { span, client };
      state.traceparent = this.tracing.traceparentOf(span);
    } else if (client) {
      state.observed = { client };
      state.traceparent = header as string;
    }
  }

  /** onSend: the overhead header (the last moment headers can change), and the answer when bodies are logged. */
  readonly onSend: onSendHookHandler = (request, reply, payload, done) => {
    const state = request.hapax as RequestState | null;
    if (!state) return done(null, payload);
    const overhead = overheadOf(state, reply.elapsedTime);
    if (overhead !== undefined) reply.header('x-hapax-overhead-ms', overhead.toFixed(2));
    if (logsBodies(state)) {
      const text = typeof payload === 'string' ? payload : Buffer.isBuffer(payload) ? payload.toString('utf8') : undefined;
      if (text !== undefined) keepBody((state.observed ??= {}), text);
    }
    done(null, payload);
  };

  /** onResponse: metrics, the request's one log line, and the spans. */
  finish(request: FastifyRequest, reply: FastifyReply, endpoint: string): void {
    const state = request.hapax;
    const { metrics } = this;
    const status = reply.statusCode;
    const elapsedMs = reply.elapsedTime;
    const labels = state.route ? this.labelsOf(state.route) : NO_LABELS;
    const plain = labels === NO_LABELS;
    metrics.httpRequests.inc(plain ? { endpoint, status } : { ...labels, endpoint, status });
    metrics.httpDuration.observe(plain ? { endpoint } : { ...labels, endpoint }, elapsedMs / 1000);

    let overheadMs: number | undefined;
    overheadMs = state.observed?.streamOverheadMs ?? overheadOf(state, elapsedMs);
    if (overheadMs !== undefined) metrics.overhead.observe(overheadMs / 1000);

    const { usage } = state;
    // Each attempt that spent (one, or every attempt of a resumed stream) at its own provider's price, counted
    // under its own provider. A shared (deduplicated) answer spent its tokens once, on the request that called upstream.
    let cost: number | undefined;
    let priced: boolean | undefined;
    for (const part of spentBy(state)) {
      const rate = state.runtime.usageMeter.rate(part.target);
      const partCost = rate.price ? costUsd(rate.price, part.usage) : undefined;
      // An unpriced attempt is flagged (priced: false), never counted as free.
      priced = (priced ?? true) && partCost !== undefined;
      if (partCost !== undefined) cost = (cost ?? 0) + partCost;
      if (state.shared) continue;
      if (partCost === undefined) this.unpriced(part.target.provider, rate);
      const base = { ...labels, provider: part.target.provider, model: rate.model, client: state.key?.name ?? 'anonymous' };
      const usage_source = part.estimated ? 'estimated' : 'provider';
      const spent = part.usage;
      metrics.tokens.inc({ ...base, usage_source, type: 'prompt' }, spent.inputTokens);
      metrics.tokens.inc({ ...base, usage_source, type: 'completion' }, spent.outputTokens);
      // Parts of the two above, for cache hit rates and reasoning spend; only when the provider reported them.
      if (spent.cacheReadTokens) metrics.tokenDetails.inc({ ...base, kind: 'cache_read' }, spent.cacheReadTokens);
      if (spent.cacheWriteTokens) metrics.tokenDetails.inc({ ...base, kind: 'cache_write' }, spent.cacheWriteTokens);
      if (spent.reasoningTokens) metrics.tokenDetails.inc({ ...base, kind: 'reasoning' }, spent.reasoningTokens);
      if (partCost !== undefined) metrics.cost.inc(base, partCost);
    }
    if (cost !== undefined) state.costUsd = cost;

    if (state.streamFailed) metrics.errors.inc({ type: state.errorType as string });
    const failover = failedAttempts(state);
    const observed = state.observed;
    const logBodies = logsBodies(state);
    this.lines.info(
      {
        request_id: request.id,
        method: request.method,
        route: endpoint,
        status,
        key: state.key?.name,
        provider: state.provider,
        model: state.model,
        attempts: state.attempts ?? (state.trail?.length || undefined),
        failover,
        resumed: state.resumed?.resumes.length ? resumedField(state) : undefined,
        shared: state.shared,
        error: state.errorType,
        latency_ms: round2(elapsedMs),
        overhead_ms: overheadMs === undefined ? undefined : round2(overheadMs),
        tokens: usage ? tokensField(usage) : undefined,
        usage_source: usage ? (state.usageSource ?? 'provider') : undefined,
        lane: state.lane,
        dropped: state.dropped,
        cost_usd: cost,
        priced,
        traceparent: observed?.client ? request.headers.traceparent : undefined,
        trace_id: observed?.span ? observed.span.spanContext().traceId : undefined,
        span_id: observed?.span ? observed.span.spanContext().spanId : undefined,
        request_body: logBodies ? redactSecrets(request.body) : undefined,
        response_body: logBodies ? observed?.responseBody : undefined,
        response_truncated: logBodies ? observed?.responseTruncated : undefined,
      },
      'request',
    );

    if (observed?.span) this.endSpans(observed.span, request, state, { endpoint, status, overheadMs, cost });
  }

  /**
   * Never a silent $0: the answer is counted by provider and model, and the first one of each model per
   * config load is logged with what to do about it.
   */
  private unpriced(provider: string, rate: Rate): void {
    this.metrics.unpriced.inc({ provider, model: rate.model });
    if (rate.unpricedLogged) return;
    rate.unpricedLogged = true;
    this.lines.warn(
      { provider, model: rate.model },
      'model has no price: its tokens are counted (and charged to token budgets) but it costs $0 in dollar budgets and reports; add it under `pricing` (see hapax pricing)',
    );
  }

  private labelsOf(route: RouteLike): Readonly<Record<string, string>> {
    let labels = this.routeLabels.get(route);
    if (!labels) {
      // A reload may bring label names the metrics were not created with: those are left out.
      const kept = Object.entries(route.metricsLabels).filter(([name]) => this.labelNames.has(name));
      labels = kept.length === 0 ? NO_LABELS : Object.freeze(Object.fromEntries(kept));
      this.routeLabels.set(route, labels);
    }
    return labels;
  }

  private endSpans(span: Span, request: FastifyRequest, state: RequestState, facts: { endpoint: string; status: number; overheadMs?: number; cost?: number }): void {
    const tracing = this.tracing as Tracing;
    const origin = performance.timeOrigin;
    for (const attempt of state.trail ?? []) {
      tracing.attempt(span, {
        provider: attempt.target.provider,
        model: attempt.target.model,
        startTime: origin + attempt.startedAt,
        durationMs: attempt.ms,
        failure: attempt.failure?.kind,
        status: attempt.failure?.status,
      });
    }
    span.setAttributes({
      'http.request.method': request.method,
      'http.route': facts.endpoint,
      'http.response.status_code': facts.status,
      'hapax.request_id': request.id,
    });
    if (state.key) span.setAttribute('hapax.key', state.key.name);
    if (state.provider) span.setAttribute('hapax.provider', state.provider);
    if (state.model) span.setAttribute('gen_ai.response.model', state.model);
    if (state.attempts) span.setAttribute('hapax.attempts', state.attempts);
    if (state.usage) {
      span.setAttribute('gen_ai.usage.input_tokens', state.usage.inputTokens);
      span.setAttribute('gen_ai.usage.output_tokens', state.usage.outputTokens);
      // OTel GenAI names (experimental), each a part of input_tokens.
      if (state.usage.cacheReadTokens) span.setAttribute('gen_ai.usage.cache_read.input_tokens', state.usage.cacheReadTokens);
      if (state.usage.cacheWriteTokens) span.setAttribute('gen_ai.usage.cache_creation.input_tokens', state.usage.cacheWriteTokens);
    }
    if (facts.cost !== undefined) span.setAttribute('hapax.cost_usd', facts.cost);
    if (facts.overheadMs !== undefined) span.setAttribute('hapax.overhead_ms', facts.overheadMs);
    if (facts.status >= 500) span.setStatus({ code: 2, message: state.errorType });
    span.end();
  }
}

/** The request log's account of a resumed stream: each cut and where it went on, and what each attempt spent. */
function resumedField(state: RequestState) {
  const resumed = state.resumed as NonNullable<RequestState['resumed']>;
  return {
    at: resumed.resumes.map((r) => ({ from: r.from, to: r.to, reason: r.reason, after_chars: r.afterChars })),
    spent: resumed.spent.map((p) => ({ provider: p.target.provider, prompt: p.usage.inputTokens, completion: p.usage.outputTokens, estimated: p.estimated })),
  };
}

/** The providers that failed before the answer (or the error), with how: the request's failover path. */
function failedAttempts(state: RequestState): Array<{ provider: string; kind: string; status?: number }> | undefined {
  const trail = state.trail;
  if (!trail) return undefined;
  let out: Array<{ provider: string; kind: string; status?: number }> | undefined;
  for (const attempt of trail) {
    if (attempt.failure) (out ??= []).push({ provider: attempt.target.provider, kind: attempt.failure.kind, status: attempt.failure.status });
  }
  return out;
}

function keepBody(observed: Observation, text: string): void {
  const kept = observed.responseBody ?? '';
  if (kept.length >= BODY_LOG_LIMIT) {
    observed.responseTruncated = true;
    return;
  }
  observed.responseBody = kept + (kept.length + text.length > BODY_LOG_LIMIT ? text.slice(0, BODY_LOG_LIMIT - kept.length) : text);
  if (kept.length + text.length > BODY_LOG_LIMIT) observed.responseTruncated = true;
}

const round2 = (ms: number) => Math.round(ms * 100) / 100;

/** The log line's token counts: cache and reasoning counts only when the provider reported them. */
function tokensField(usage: Usage) {
  return {
    prompt: usage.inputTokens,
    completion: usage.outputTokens,
    cache_read: usage.cacheReadTokens,
    cache_write: usage.cacheWriteTokens,
    reasoning: usage.reasoningTokens,
  };
}
