/**
 * Per-request costs of the gateway's own steps, in-process, from the built dist/: what one chat completion
 * pays for zod validation, the dedup key, the API key hash, JSON in and out, the log line with and without
 * redaction, the metrics updates, the rate limiters, the request's timers. Each figure is the best of
 * 15 rounds of ~30 ms (the least disturbed by other processes), in µs per call.
 *
 * These are the numbers behind the findings in docs/performance.md; the load benchmark (run.ts) says
 * what they add up to. A step missing from the build being measured is reported as unavailable.
 *
 * Usage: node bench/micro.ts [--hapax-dir DIR] [--json FILE]
 */
import { openSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { writeFileSync } from 'node:fs';
import { randomUUID } from 'node:crypto';
import { REPO } from './lib.ts';

const { values: args } = parseArgs({ options: { 'hapax-dir': { type: 'string' }, json: { type: 'string' } } });
const DIST = pathToFileURL(join(resolve(args['hapax-dir'] ?? REPO), 'dist/')).href;

type Any = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any
async function load(path: string): Promise<Any> {
  try {
    return (await import(DIST + path)) as Any;
  } catch {
    return {};
  }
}

const REQUEST_BODY = `{"model":"gpt-4o-mini","messages":[{"role":"system","content":"You are terse."},{"role":"user","content":"bench abc123 prompt 42"}],"stream":false}`;
const UPSTREAM_BODY = `{"id":"chatcmpl-bench0000000000000000000001","object":"chat.completion","created":1700000000,"model":"gpt-4o-mini","choices":[{"index":0,"message":{"role":"assistant","content":"Hello! This is the fixed answer of the benchmark upstream.","refusal":null},"logprobs":null,"finish_reason":"stop"}],"usage":{"prompt_tokens":12,"completion_tokens":13,"total_tokens":25}}`;
const SSE_CHUNK = `data: {"id":"chatcmpl-bench0000000000000000000002","object":"chat.completion.chunk","created":1700000000,"model":"gpt-4o-mini","system_fingerprint":null,"choices":[{"index":0,"delta":{"content":" streamed"},"logprobs":null,"finish_reason":null}]}\n\n`;

export interface MicroResult {
  step: string;
  usPerCall: number | null;
  perRequest: number;
  note?: string;
}

let sink: unknown;

/** Best µs per call over `rounds` rounds of a loop sized to ~20 ms. */
async function measure(fn: () => unknown, asyncFn = false, rounds = 15): Promise<number> {
  // Warm up (JIT) and size the loop.
  let n = 1;
  for (;;) {
    const t = performance.now();
    for (let i = 0; i < n; i++) sink = asyncFn ? await (fn() as Promise<unknown>) : fn();
    if (performance.now() - t > 30 || n > 1e7) break;
    n *= 2;
  }
  let best = Infinity;
  for (let r = 0; r < rounds; r++) {
    const t = performance.now();
    for (let i = 0; i < n; i++) sink = asyncFn ? await (fn() as Promise<unknown>) : fn();
    best = Math.min(best, ((performance.now() - t) * 1000) / n);
  }
  return best;
}

async function main(): Promise<MicroResult[]> {
  const openai = await load('dialects/openai.js');
  const singleflight = await load('gateway/singleflight.js');
  const keys = await load('state/keys.js');
  const logger = await load('observability/logger.js');
  const metricsMod = await load('observability/metrics.js');
  const rateLimit = await load('server/rate-limit.js');
  const memory = await load('state/memory.js');
  const pino = (await import('pino')).default;
  const { createParser } = await import('eventsource-parser');

  const results: MicroResult[] = [];
  const add = async (step: string, perRequest: number, fn: (() => unknown) | undefined, opts: { async?: boolean; note?: string } = {}) => {
    if (!fn) {
      results.push({ step, usPerCall: null, perRequest, note: 'unavailable in this build' });
      return;
    }
    try {
      const us = await measure(fn, opts.async);
      results.push({ step, usPerCall: Math.round(us * 100) / 100, perRequest, note: opts.note });
    } catch (error) {
      results.push({ step, usPerCall: null, perRequest, note: `failed: ${(error as Error).message}` });
    }
  };

  const body = JSON.parse(REQUEST_BODY);
  const canonical = openai.decodeChatRequest?.(body);
  await add('JSON.parse of the request body (150 B)', 1, () => JSON.parse(REQUEST_BODY));
  await add('zod: chatRequestSchema.parse', 1, openai.chatRequestSchema && (() => openai.chatRequestSchema.parse(body)));
  await add('decodeChatRequest (zod + canonical mapping)', 1, openai.decodeChatRequest && (() => openai.decodeChatRequest(body)));
  await add('flightKey(client, request) (dedup: JSON of the request)', 1, singleflight.flightKey && (() => singleflight.flightKey('bench', canonical)));
  await add('stableKey([client, request]) (cache key: stable JSON + sha256)', 0, singleflight.stableKey && (() => singleflight.stableKey(['bench', canonical])));
  await add('hashKey(api key) (sha256 hex)', 1, keys.hashKey && (() => keys.hashKey('hpx-bench-0123456789abcdef0123456789abcdef')));
  if (keys.KeyTable && keys.hashKey) {
    const table = new keys.KeyTable([{ name: 'bench', sha256: keys.hashKey('hpx-bench-0123456789abcdef0123456789abcdef') }]);
    await add('KeyTable.verify (hash + lookup + timingSafeEqual)', 1, () => table.verify('hpx-bench-0123456789abcdef0123456789abcdef'));
  } else await add('KeyTable.verify', 1, undefined);
  await add(
    'encodeChatRequest + JSON.stringify (upstream body)',
    1,
    openai.encodeChatRequest && (() => JSON.stringify(openai.encodeChatRequest({ ...canonical, stream: false }, 'gpt-4o-mini'))),
  );
  await add('JSON.parse upstream answer + decodeChatResponse', 1, openai.decodeChatResponse && (() => openai.decodeChatResponse(JSON.parse(UPSTREAM_BODY), 'gpt-4o-mini')));
  const decoded = openai.decodeChatResponse?.(JSON.parse(UPSTREAM_BODY), 'gpt-4o-mini');
  await add('encodeChatResponse + JSON.stringify (client body)', 1, openai.encodeChatResponse && (() => JSON.stringify(openai.encodeChatResponse(decoded))));
  await add('randomUUID (request id)', 1, () => randomUUID());
  await add('AbortController + setTimeout + clearTimeout (deadline)', 1, () => {
    const c = new AbortController();
    const t = setTimeout(() => c.abort(), 30_000);
    clearTimeout(t);
    return c;
  });

  // The request's log line, shaped like the onResponse line, to /dev/null (synchronous, so the cost is in the call).
  const line = {
    method: 'POST',
    route: '/v1/chat/completions',
    status: 200,
    key: 'bench',
    provider: 'upstream',
    model: 'gpt-4o-mini',
    attempts: 1,
    latency_ms: 1.23,
    overhead_ms: 0.31,
    tokens: { prompt: 12, completion: 13 },
  };
  const devnull = () => pino.destination({ dest: openSync('/dev/null', 'w'), sync: true });
  if (logger.createLogger) {
    const log = logger.createLogger({ level: 'info', format: 'json' }, devnull()).child({ request_id: 'req-1' });
    await add('pino: request log line, as configured (redaction on)', 1, () => log.info(line, 'request'));
  } else await add('pino: request log line, as configured', 1, undefined);
  if (logger.REDACT_PATHS) {
    const exact = (logger.REDACT_PATHS as string[]).filter((path) => !path.includes('*'));
    const exactLog = pino({ base: { service: 'hapax' }, timestamp: pino.stdTimeFunctions.isoTime, redact: { paths: exact, censor: '[redacted]' } }, devnull()).child({ request_id: 'req-1' });
    await add(`pino: same line, only the ${exact.length} exact redact paths (no wildcards)`, 0, () => exactLog.info(line, 'request'), { note: 'wildcard paths are the costly part' });
    const unredacted = logger.createLogger({ level: 'info', format: 'json' }, devnull()).child({ request_id: 'req-1' }, { redact: [] });
    await add("pino: same line through a child logger with { redact: [] }", 0, () => unredacted.info(line, 'request'), { note: 'the fix: a request-line logger without redaction' });
  }
  const plain = pino({ base: { service: 'hapax' }, timestamp: pino.stdTimeFunctions.isoTime }, devnull()).child({ request_id: 'req-1' });
  await add('pino: same line without redact paths', 0, () => plain.info(line, 'request'), { note: 'what the line costs without redaction' });
  const epoch = pino({ base: { service: 'hapax' } }, devnull()).child({ request_id: 'req-1' });
  await add('pino: same line, no redaction, epoch-ms timestamp', 0, () => epoch.info(line, 'request'), { note: 'isoTime builds a Date string per line' });

  if (metricsMod.Metrics) {
    const m = new metricsMod.Metrics([]);
    await add('prom-client: request metrics with label objects (active inc/dec, requests, duration, overhead)', 1, () => {
      m.httpActive.inc({ endpoint: '/v1/chat/completions' });
      m.httpActive.dec({ endpoint: '/v1/chat/completions' });
      m.httpRequests.inc({ endpoint: '/v1/chat/completions', status: 200 });
      m.httpDuration.observe({ endpoint: '/v1/chat/completions' }, 0.0012);
      m.overhead?.observe(0.0003);
    });
    const active = m.httpActive.labels({ endpoint: '/v1/chat/completions' });
    const requests = m.httpRequests.labels({ endpoint: '/v1/chat/completions', status: '200' });
    const duration = m.httpDuration.labels({ endpoint: '/v1/chat/completions' });
    await add('prom-client: same updates through cached .labels() children', 0, () => {
      active.inc();
      active.dec();
      requests.inc();
      duration.observe(0.0012);
      m.overhead?.observe(0.0003);
    }, { note: 'children cached per route/status' });
    await add('prom-client: provider metrics (requests, latency, tokens ×2)', 1, () => {
      m.providerRequests.inc({ provider: 'upstream', outcome: 'success' });
      m.providerLatency.observe({ provider: 'upstream' }, 0.001);
      m.tokens.inc({ provider: 'upstream', model: 'gpt-4o-mini', type: 'prompt', client: 'bench' }, 12);
      m.tokens.inc({ provider: 'upstream', model: 'gpt-4o-mini', type: 'completion', client: 'bench' }, 13);
    });
  }

  if (rateLimit.RateLimits && memory.MemoryStore) {
    const limits = new rateLimit.RateLimits();
    const store = new memory.MemoryStore();
    const settings = { requests_per_minute: 1_000_000_000, tokens_per_minute: 1_000_000_000_000 };
    await add('RateLimits.admit (requests + tokens limiters, memory store)', 1, () => limits.admit(store, 'bench', settings, 'key'), { async: true });
    await add('RateLimits.chargeTokens', 1, () => limits.chargeTokens(store, 'bench', settings, 'key', 25), { async: true });
    await add('usage.record (admin usage counters)', 2, () => store.usage.record('bench', { requests: 1 }), { async: true });
  }

  // Streams: per upstream chunk (×11 per response in the benchmark).
  await add('SSE in: eventsource-parser feed + JSON.parse per chunk', 11, () => {
    let data = '';
    const parser = createParser({ onEvent: (e) => (data = e.data) });
    parser.feed(SSE_CHUNK);
    return JSON.parse(data);
  }, { note: 'a new parser per call: an upper bound' });
  if (openai.ChunkEncoder) {
    const encoder = new openai.ChunkEncoder('chatcmpl-1', 'gpt-4o-mini', 1_700_000_000, false);
    await add('SSE out: ChunkEncoder.encode per text event', 9, () => encoder.encode({ type: 'text', text: ' streamed' }));
  }
  await add('new Error() with stack (as the AbortError on [DONE])', 1, () => new DOMException('aborted', 'AbortError').stack, { note: 'streams only: see the findings' });
  return results;
}

const results = await main();
void sink;
const jsonTotal = results.filter((r) => r.usPerCall != null && r.perRequest > 0 && !r.step.startsWith('SSE') && !r.step.startsWith('new Error')).reduce((s, r) => s + (r.usPerCall as number) * r.perRequest, 0);
const lines = ['| step | µs per call | calls per request | µs per request | note |', '| --- | ---: | ---: | ---: | --- |'];
for (const r of results) {
  lines.push(`| ${r.step} | ${r.usPerCall ?? '–'} | ${r.perRequest || '–'} | ${r.usPerCall != null && r.perRequest ? (r.usPerCall * r.perRequest).toFixed(2) : '–'} | ${r.note ?? ''} |`);
}
lines.push('', `Sum over a JSON chat completion (steps with calls per request > 0, SSE rows apart): ${jsonTotal.toFixed(1)} µs.`);
process.stdout.write(`${lines.join('\n')}\n`);
if (args.json) writeFileSync(args.json, `${JSON.stringify({ date: new Date().toISOString(), results, jsonTotalUs: jsonTotal }, null, 2)}\n`);
