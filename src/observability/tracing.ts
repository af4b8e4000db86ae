/**
 * W3C trace context and the optional OpenTelemetry export.
 *
 * Without `tracing.otlp_endpoint`, Hapax only passes a client's valid `traceparent` upstream and logs
 * it. With it, each request gets a server span (a child of the client's trace when it sent one, else a
 * new trace), upstream calls carry that span as their parent, and every upstream attempt is recorded
 * as a client span under it. Spans leave in batches over OTLP/HTTP; the SDK is only loaded when
 * tracing is configured.
 */
import { ROOT_CONTEXT, SpanKind, SpanStatusCode, TraceFlags, trace, type Attributes, type Span, type Tracer } from '@opentelemetry/api';
import type { TracingConfig } from '../config/schema.ts';
import { formatTraceparent, type TraceContext } from './traceparent.ts';

export { formatTraceparent, parseTraceparent, type TraceContext } from './traceparent.ts';

/** One upstream attempt, timed by the dispatcher. */
export interface AttemptSpanInput {
  provider: string;
  model: string;
  /** Epoch milliseconds. */
  startTime: number;
  durationMs: number;
  /** The failure kind (timeout, server, rate_limited, ...) when the attempt failed. */
  failure?: string;
  status?: number;
}

export class Tracing {
  private readonly tracer: Tracer;
  private readonly shutdownProvider: () => Promise<void>;

  private constructor(tracer: Tracer, shutdown: () => Promise<void>) {
    this.tracer = tracer;
    this.shutdownProvider = shutdown;
  }

  /** Undefined when no OTLP endpoint is configured: nothing is loaded and nothing is exported. */
  static async create(settings: TracingConfig | undefined): Promise<Tracing | undefined> {
    if (!settings?.otlp_endpoint) return undefined;
    const [{ TracerProvider, BatchSpanProcessor, ParentBasedSampler, TraceIdRatioBasedSampler }, { OTLPTraceExporter }, { resourceFromAttributes }] = await Promise.all([
      import('@opentelemetry/sdk-trace'),
      import('@opentelemetry/exporter-trace-otlp-http'),
      import('@opentelemetry/resources'),
    ]);
    const exporter = new OTLPTraceExporter({ url: settings.otlp_endpoint, headers: settings.headers });
    const provider = new TracerProvider({
      resource: resourceFromAttributes({ 'service.name': settings.service_name }),
      sampler: new ParentBasedSampler({ root: new TraceIdRatioBasedSampler(settings.sample_ratio) }),
      spanProcessors: [new BatchSpanProcessor({ exporter, scheduledDelayMillis: 1000 })],
    });
    // Not registered globally: Hapax's spans are its own, and a host application keeps its provider.
    return new Tracing(provider.getTracer('hapax'), () => provider.shutdown());
  }

  /** Starts a request's server span, in the client's trace when it sent a valid traceparent. */
  startRequest(name: string, client: TraceContext | undefined, startTime: number): Span {
    const parent = client
      ? trace.setSpanContext(ROOT_CONTEXT, { traceId: client.traceId, spanId: client.spanId, traceFlags: client.sampled ? TraceFlags.SAMPLED : TraceFlags.NONE, isRemote: true })
      : ROOT_CONTEXT;
    return this.tracer.startSpan(name, { kind: SpanKind.SERVER, startTime }, parent);
  }

  /** The traceparent upstream calls carry: this request's span as their parent. */
  traceparentOf(span: Span): string {
    const context = span.spanContext();
    return formatTraceparent({ traceId: context.traceId, spanId: context.spanId, sampled: (context.traceFlags & TraceFlags.SAMPLED) === TraceFlags.SAMPLED });
  }

  /** Records an upstream attempt after the fact (the dispatcher only times it), under the request's span. */
  attempt(parent: Span, input: AttemptSpanInput): void {
    if (!parent.isRecording()) return;
    const attributes: Attributes = { 'hapax.provider': input.provider, 'gen_ai.request.model': input.model, 'hapax.outcome': input.failure ?? 'success' };
    if (input.failure) attributes['error.type'] = input.failure;
    if (input.status) attributes['http.response.status_code'] = input.status;
    const span = this.tracer.startSpan(`upstream ${input.provider}`, { kind: SpanKind.CLIENT, startTime: input.startTime, attributes }, trace.setSpan(ROOT_CONTEXT, parent));
    if (input.failure) span.setStatus({ code: SpanStatusCode.ERROR, message: input.failure });
    span.end(input.startTime + input.durationMs);
  }

  /** Sends what is buffered and stops. */
  shutdown(): Promise<void> {
    return this.shutdownProvider();
  }
}
