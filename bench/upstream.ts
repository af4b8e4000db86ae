/**
 * The fake OpenAI-style upstream, in its own process. Answers every POST /v1/chat/completions at once:
 * a fixed ~300-byte chat.completion, or (when the body asks for `"stream":true`) a 10-chunk SSE stream,
 * one chunk per event-loop turn so a proxy sees separate reads. GET /v1/models answers the health probe.
 * Everything is prebuilt: the upstream's own cost per request is a body read and a write or eleven.
 *
 * `--chunks N --gap MS` makes it a slow model for the scale scenario (scale.ts): every stream is N content chunks
 * MS apart (the first at once), then the finish and [DONE], like a real completion of N tokens; a request's own
 * `max_tokens` sets N for its stream.
 *
 * `--tls-cert FILE --tls-key FILE` also listens with TLS, offering HTTP/2 (and HTTP/1.1) as hosted APIs do: the
 * scale scenario's largest counts multiplex their upstream streams there, as a proxy could not hold one
 * connection per stream on each side within the machine's open-files limit.
 *
 * Started by run.ts with fork(); reports { ready: port, tlsPort? } over IPC.
 */
import { readFileSync } from 'node:fs';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { createSecureServer } from 'node:http2';
import { parseArgs } from 'node:util';

const CREATED = 1_700_000_000;
const MODEL = 'gpt-4o-mini';

export const COMPLETION = Buffer.from(
  JSON.stringify({
    id: 'chatcmpl-bench0000000000000000000001',
    object: 'chat.completion',
    created: CREATED,
    model: MODEL,
    choices: [
      {
        index: 0,
        message: { role: 'assistant', content: 'Hello! This is the fixed answer of the benchmark upstream.', refusal: null },
        logprobs: null,
        finish_reason: 'stop',
      },
    ],
    usage: { prompt_tokens: 12, completion_tokens: 13, total_tokens: 25 },
  }),
);

const WORDS = ['Hello', '!', ' This', ' is', ' a', ' streamed', ' benchmark', ' answer', '.'];

/** Ten `data:` chunks (role + first word, eight more words, finish with usage), then `data: [DONE]`. */
export const STREAM_CHUNKS: Buffer[] = (() => {
  const head = { id: 'chatcmpl-bench0000000000000000000002', object: 'chat.completion.chunk', created: CREATED, model: MODEL, system_fingerprint: null };
  const frame = (body: object) => Buffer.from(`data: ${JSON.stringify({ ...head, ...body })}\n\n`);
  const chunks = WORDS.map((word, i) =>
    frame({ choices: [{ index: 0, delta: i === 0 ? { role: 'assistant', content: word } : { content: word }, logprobs: null, finish_reason: null }] }),
  );
  chunks.push(frame({ choices: [{ index: 0, delta: {}, logprobs: null, finish_reason: 'stop' }], usage: { prompt_tokens: 12, completion_tokens: 9, total_tokens: 21 } }));
  chunks.push(Buffer.from('data: [DONE]\n\n'));
  return chunks;
})();

const MODELS = Buffer.from(JSON.stringify({ object: 'list', data: [{ id: MODEL, object: 'model', created: CREATED, owned_by: 'bench' }] }));
const STREAM_MARK = Buffer.from('"stream":true');

function sendStream(res: ServerResponse): void {
  res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' });
  let i = 0;
  const next = () => {
    if (res.destroyed) return;
    if (i === STREAM_CHUNKS.length - 1) {
      res.end(STREAM_CHUNKS[i]);
      return;
    }
    res.write(STREAM_CHUNKS[i++]);
    setImmediate(next);
  };
  next();
}

/** A slow stream: `chunks` content chunks `gapMs` apart, then the finish chunk and [DONE]. */
function sendSlowStream(res: ServerResponse, chunks: number, gapMs: number): void {
  res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' });
  let i = 0;
  const next = () => {
    if (res.destroyed) return;
    if (i === chunks) {
      res.end(Buffer.concat([STREAM_CHUNKS[STREAM_CHUNKS.length - 2], STREAM_CHUNKS[STREAM_CHUNKS.length - 1]]));
      return;
    }
    res.write(STREAM_CHUNKS[Math.min(i, STREAM_CHUNKS.length - 3)]);
    i++;
    setTimeout(next, gapMs);
  };
  next();
}

let slow: { chunks: number; gapMs: number } | undefined;

const MAX_TOKENS = /"max_tokens":(\d+)/;

function maxTokensOf(body: Buffer): number | undefined {
  const match = MAX_TOKENS.exec(body.toString('latin1'));
  return match ? Number(match[1]) : undefined;
}

/** The handler for both listeners: HTTP/2's compatibility request and response have the same shape. */
function handle(req: IncomingMessage, res: ServerResponse): void {
  if (req.method === 'GET' && req.url?.endsWith('/models')) {
    res.writeHead(200, { 'content-type': 'application/json', 'content-length': MODELS.length });
    res.end(MODELS);
    return;
  }
  const chunks: Buffer[] = [];
  req.on('data', (chunk: Buffer) => chunks.push(chunk));
  req.on('end', () => {
    if (req.method !== 'POST' || !req.url?.endsWith('/chat/completions')) {
      res.writeHead(404, { 'content-type': 'application/json' });
      res.end('{"error":{"message":"not found","type":"invalid_request_error"}}');
      return;
    }
    const body = chunks.length === 1 ? chunks[0] : Buffer.concat(chunks);
    if (body.includes(STREAM_MARK)) {
      // A slow stream is as long as the request's max_tokens asks (one chunk a token), else --chunks.
      if (slow) sendSlowStream(res, maxTokensOf(body) ?? slow.chunks, slow.gapMs);
      else sendStream(res);
      return;
    }
    res.writeHead(200, { 'content-type': 'application/json', 'content-length': COMPLETION.length });
    res.end(COMPLETION);
  });
}

const isMain = process.argv[1] && import.meta.filename === process.argv[1];
if (isMain) {
  const { values } = parseArgs({ options: { chunks: { type: 'string' }, gap: { type: 'string' }, 'tls-cert': { type: 'string' }, 'tls-key': { type: 'string' } } });
  if (values.chunks) slow = { chunks: Number(values.chunks), gapMs: Number(values.gap ?? 300) };
  const server = createServer({ keepAliveTimeout: 120_000 }, handle);
  // Connections opened so far: run.ts reports them per scenario, to show whether a proxy reuses its pool.
  let connections = 0;
  server.on('connection', () => connections++);
  process.on('message', (message: { stats?: boolean }) => {
    if (message.stats) process.send?.({ stats: { connections } });
  });
  // A backlog for the scale scenario's bursts of thousands of connections (Node's default, 511, resets some).
  const listening = (listener: { listen: typeof server.listen; address: typeof server.address }) =>
    new Promise<number>((resolve) => listener.listen({ port: 0, host: '127.0.0.1', backlog: 4096 }, () => resolve((listener.address() as { port: number }).port)));
  const port = await listening(server);
  let tlsPort: number | undefined;
  if (values['tls-cert'] && values['tls-key']) {
    const secure = createSecureServer({ cert: readFileSync(values['tls-cert']), key: readFileSync(values['tls-key']), allowHTTP1: true }, handle as never);
    secure.on('secureConnection', () => connections++);
    tlsPort = await listening(secure as never);
  }
  process.send?.({ ready: port, tlsPort });
  process.on('disconnect', () => process.exit(0));
  process.on('SIGTERM', () => process.exit(0));
}
