import http from 'node:http';
import type { AddressInfo } from 'node:net';
import OpenAI from 'openai';
import { describe, expect, it } from 'vitest';
import { formatTraceparent, parseTraceparent } from '../src/observability/tracing.ts';
import { startTestGateway } from './helpers/gateway.ts';
import { fakeOpenAIs, useStarted } from './helpers/started.ts';

interface OtlpSpan {
  traceId: string;
  spanId: string;
  parentSpanId?: string;
  name: string;
  kind: number;
  startTimeUnixNano: string;
  endTimeUnixNano: string;
  attributes: Array<{ key: string; value: Record<string, unknown> }>;
  status?: { code?: number };
}

/** A stand-in OpenTelemetry collector: accepts OTLP/HTTP JSON on /v1/traces and keeps what it got. */
async function startCollector(): Promise<{ url: string; spans: OtlpSpan[]; services: string[]; headers: http.IncomingHttpHeaders[]; close(): Promise<void> }> {
  const spans: OtlpSpan[] = [];
  const services: string[] = [];
  const headers: http.IncomingHttpHeaders[] = [];
  const server = http.createServer((req, res) => {
    const parts: Buffer[] = [];
    req.on('data', (chunk: Buffer) => parts.push(chunk));
    req.on('end', () => {
      headers.push(req.headers);
      if (req.url !== '/v1/traces' || !String(req.headers['content-type']).startsWith('application/json')) {
        res.writeHead(415).end();
        return;
      }
      const body = JSON.parse(Buffer.concat(parts).toString('utf8'));
      for (const resource of body.resourceSpans ?? []) {
        const service = resource.resource?.attributes?.find((a: { key: string }) => a.key === 'service.name')?.value.stringValue;
        for (const scope of resource.scopeSpans ?? []) {
          for (const span of scope.spans ?? []) {
            spans.push(span);
            services.push(service);
          }
        }
      }
      res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/v1/traces`,
    spans,
    services,
    headers,
    close: () => new Promise((resolve) => server.close(() => resolve())),
  };
}

const attr = (span: OtlpSpan | undefined, key: string) => {
  const value = span?.attributes.find((a) => a.key === key)?.value;
  return value && (value.stringValue ?? value.intValue ?? value.doubleValue ?? value.boolValue);
};

const CLIENT_TRACE = '4bf92f3577b34da6a3ce929d0e0e4736';
const CLIENT_SPAN = '00f067aa0ba902b7';

describe('W3C traceparent', () => {
  it('parses valid headers and refuses malformed ones', () => {
    expect(parseTraceparent(`00-${CLIENT_TRACE}-${CLIENT_SPAN}-01`)).toEqual({ traceId: CLIENT_TRACE, spanId: CLIENT_SPAN, sampled: true });
    expect(parseTraceparent(`00-${CLIENT_TRACE}-${CLIENT_SPAN}-00`)?.sampled).toBe(false);
    // A future version may append fields; version 00 may not.
    expect(parseTraceparent(`01-${CLIENT_TRACE}-${CLIENT_SPAN}-01-extra`)?.traceId).toBe(CLIENT_TRACE);
    for (const bad of [
      `00-${CLIENT_TRACE}-${CLIENT_SPAN}-01-extra`,
      `ff-${CLIENT_TRACE}-${CLIENT_SPAN}-01`,
      `00-${'0'.repeat(32)}-${CLIENT_SPAN}-01`,
      `00-${CLIENT_TRACE}-${'0'.repeat(16)}-01`,
      `00-${CLIENT_TRACE.toUpperCase()}-${CLIENT_SPAN}-01`,
      'garbage',
      undefined,
    ]) {
      expect(parseTraceparent(bad), String(bad)).toBeUndefined();
    }
    expect(formatTraceparent({ traceId: CLIENT_TRACE, spanId: CLIENT_SPAN, sampled: true })).toBe(`00-${CLIENT_TRACE}-${CLIENT_SPAN}-01`);
  });
});

describe('OpenTelemetry export over OTLP/HTTP', () => {
  const setup = useStarted({ ...fakeOpenAIs('primary', 'backup'), collector: () => startCollector() });

  it('sends a server span per request, in the client trace, with a client span per upstream attempt', async () => {
    const gateway = await startTestGateway(`
providers:
  primary: {type: openai, base_url: "${setup.primary.url}", model: gpt-4o-mini}
  backup: {type: openai, base_url: "${setup.backup.url}", model: gpt-4o}
provider_preference: [primary, backup]
retry: {max_retries: 0}
tracing:
  otlp_endpoint: ${setup.collector.url}
  service_name: hapax-under-test
  headers: {x-collector-token: collector-secret-1}
`);
    const client = new OpenAI({ baseURL: `${gateway.url}/v1`, apiKey: 'x', maxRetries: 0 });
    setup.primary.queueFaults({ kind: 'status', status: 502 });
    const { response } = await client.chat.completions
      .create({ model: '', messages: [{ role: 'user', content: 'trace me' }] }, { headers: { traceparent: `00-${CLIENT_TRACE}-${CLIENT_SPAN}-01` } })
      .withResponse();
    expect(response.headers.get('x-hapax-provider')).toBe('backup');
    // A second request without trace context starts a trace of its own.
    await client.chat.completions.create({ model: 'backup', messages: [{ role: 'user', content: 'fresh trace' }] });
    const requestLog = gateway.logs.filter((line) => line.msg === 'request');
    // Closing the gateway flushes the batch.
    await gateway.close();

    expect(setup.collector.headers.at(-1)?.['x-collector-token']).toBe('collector-secret-1');
    expect(new Set(setup.collector.services)).toEqual(new Set(['hapax-under-test']));
    const servers = setup.collector.spans.filter((s) => s.kind === 2);
    const clients = setup.collector.spans.filter((s) => s.kind === 3);
    expect(servers).toHaveLength(2);
    expect(clients).toHaveLength(3);

    const traced = servers.find((s) => s.traceId === CLIENT_TRACE);
    expect(traced).toMatchObject({ name: 'POST /v1/chat/completions', parentSpanId: CLIENT_SPAN });
    expect(attr(traced, 'http.response.status_code')).toBe(200);
    expect(attr(traced, 'hapax.provider')).toBe('backup');
    expect(attr(traced, 'hapax.attempts')).toBe(2);
    expect(attr(traced, 'hapax.request_id')).toBe(response.headers.get('x-request-id'));
    expect(attr(traced, 'gen_ai.usage.output_tokens')).toBeGreaterThan(0);

    const attempts = clients.filter((s) => s.parentSpanId === traced?.spanId);
    expect(attempts.map((s) => s.name)).toEqual(['upstream primary', 'upstream backup']);
    expect(attempts.every((s) => s.traceId === CLIENT_TRACE)).toBe(true);
    expect(attr(attempts[0], 'hapax.outcome')).toBe('server');
    expect(attr(attempts[0], 'http.response.status_code')).toBe(502);
    expect(attempts[0].status?.code).toBe(2);
    expect(attr(attempts[1], 'hapax.outcome')).toBe('success');
    expect(BigInt(attempts[0].startTimeUnixNano)).toBeGreaterThanOrEqual(BigInt(traced?.startTimeUnixNano ?? 0));
    expect(BigInt(attempts[1].endTimeUnixNano)).toBeLessThanOrEqual(BigInt(traced?.endTimeUnixNano ?? 0));

    // Upstream calls carry Hapax's span as their parent, in the client's trace.
    expect(setup.primary.requests.at(-1)?.headers.traceparent).toBe(`00-${CLIENT_TRACE}-${traced?.spanId}-01`);
    expect(setup.backup.requests.at(-2)?.headers.traceparent).toBe(`00-${CLIENT_TRACE}-${traced?.spanId}-01`);

    const fresh = servers.find((s) => s.traceId !== CLIENT_TRACE);
    expect(fresh?.parentSpanId ?? '').toBe('');
    expect(setup.backup.requests.at(-1)?.headers.traceparent).toBe(`00-${fresh?.traceId}-${fresh?.spanId}-01`);

    // The log lines name the spans.
    expect(requestLog.map((line) => line.trace_id)).toEqual([CLIENT_TRACE, fresh?.traceId]);
    expect(requestLog[0].span_id).toBe(traced?.spanId);
  });

  it('keeps a client trace that is not sampled out of the export, and still propagates it', async () => {
    setup.collector.spans.length = 0;
    const gateway = await startTestGateway(`
providers:
  primary: {type: openai, base_url: "${setup.primary.url}", model: gpt-4o-mini}
tracing: {otlp_endpoint: ${setup.collector.url}}
`);
    await new OpenAI({ baseURL: `${gateway.url}/v1`, apiKey: 'x', maxRetries: 0 }).chat.completions.create(
      { model: '', messages: [{ role: 'user', content: 'unsampled' }] },
      { headers: { traceparent: `00-${CLIENT_TRACE}-${CLIENT_SPAN}-00` } },
    );
    await gateway.close();
    expect(setup.collector.spans).toEqual([]);
    expect(setup.primary.requests.at(-1)?.headers.traceparent).toMatch(new RegExp(`^00-${CLIENT_TRACE}-[0-9a-f]{16}-00$`));
  });
});
