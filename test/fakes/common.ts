/**
 * Shared plumbing for the fake upstream LLM servers (OpenAI, Anthropic, Ollama).
 *
 * Each fake is a plain node:http server on 127.0.0.1:<free port>. This module owns
 * everything that is not provider specific: request recording, fault injection,
 * abort / in-flight accounting, JSON / SSE / NDJSON writing, and the deterministic
 * "model" helpers (token counting, word chunking, embeddings).
 */
import http from 'node:http';
import http2 from 'node:http2';
import type { AddressInfo, Socket } from 'node:net';
import { randomBytes } from 'node:crypto';

// ---------------------------------------------------------------------------
// Public types
// ---------------------------------------------------------------------------

export type Fault =
  | { kind: 'status'; status: number; body?: unknown; headers?: Record<string, string> }
  | { kind: 'reset' }
  | { kind: 'hang' }
  | { kind: 'delay'; ms: number }
  | { kind: 'cut'; afterChunks: number }
  | { kind: 'slowStream'; chunkDelayMs: number }
  /** a stream whose headers go out at once and whose first chunk only after ms (a model slow to start) */
  | { kind: 'slowFirst'; ms: number }
  /**
   * a stream whose first chunk waits until this many requests are in flight at once (or timeoutMs has passed):
   * a barrier that only opens if a client can really have them all open together
   */
  | { kind: 'holdUntil'; inFlight: number; timeoutMs: number }
  /** an error answer with this status (the provider's own error body), after ms */
  | { kind: 'failAfter'; ms: number; status: number }
  /**
   * a stream that breaks after this many chunks (each chunkDelayMs apart): the connection reset, the provider's
   * own mid-stream error event (then the end of the body), or silence with the connection held open
   */
  | { kind: 'breakAfter'; afterChunks: number; how: 'reset' | 'error' | 'silence'; chunkDelayMs?: number };

export interface RecordedRequest {
  method: string;
  /** pathname only (no query string) */
  path: string;
  /** the query string as sent, without the '?' ('' when there was none), e.g. 'beta=true' */
  query?: string;
  headers: Record<string, string | string[] | undefined>;
  /** parsed JSON body, or undefined when there was none / it was not JSON */
  body: any;
  /** the HTTP version the request came over: '1.1', or '2.0' on a TLS fake whose client chose h2 */
  httpVersion?: string;
}

export interface FakeProvider {
  url: string;
  port: number;
  name: string;
  requests: RecordedRequest[];
  fault: Fault | null;
  queueFaults(...faults: Fault[]): void;
  aborted: number;
  inFlight: number;
  /** the most requests that were in flight at once (since start or the last reset) */
  peakInFlight: number;
  /** connections accepted so far (TLS fakes: after the handshake); HTTP/2 carries many requests on one */
  connections: number;
  reset(): void;
  close(): Promise<void>;
}

export interface FakeOptions {
  name?: string;
  apiKey?: string;
  models?: string[];
  reply?: (lastUserText: string, req: any) => string;
  /**
   * Scripts the model's turn on the chat endpoint, for clients that drive a tool loop (coding agents): called
   * with what the request asks for; the turn it returns is played in the provider's own wire format, streamed
   * or not. `undefined` leaves the turn to the fake's default behaviour.
   */
  turn?: (view: TurnView) => ScriptedTurn | undefined;
  /** OpenAI fake: cache every prompt's prefix, as OpenAI does by itself (without it, only with prompt_cache_key). */
  autoPromptCache?: boolean;
  /** OpenAI fake: false ignores stream_options.include_usage, as some OpenAI-compatible servers do (streams carry no usage). */
  streamUsage?: boolean;
  /** Serve HTTPS with this certificate, offering HTTP/2 and HTTP/1.1 by ALPN (as hosted APIs do). */
  tls?: FakeTls;
}

export interface FakeTls {
  key: string | Buffer;
  cert: string | Buffer;
}

/** What a scripted turn sees of a chat request, the same for every provider's dialect. */
export interface TurnView {
  /** Text of the tool result(s) the conversation ends with (Anthropic `tool_result` blocks, OpenAI `tool` messages); undefined when it ends with anything else. */
  toolResult?: string;
  /** Text of the last user message. */
  lastUserText: string;
  /** Names of the tools the request offers. */
  tools: string[];
  /** The request body as received. */
  body: any;
}

/** One model turn: call a tool with this input (the id is made up when not given), or answer with text. */
export type ScriptedTurn = { tool: string; input: Record<string, unknown>; id?: string } | { text: string };

// ---------------------------------------------------------------------------
// Per-request context handed to provider handlers
// ---------------------------------------------------------------------------

export interface Ctx {
  req: http.IncomingMessage;
  res: http.ServerResponse;
  method: string;
  path: string;
  query: URLSearchParams;
  body: any;
  /** the body's bytes as received (for checks over the exact bytes, such as a request signature) */
  raw: Buffer;
  /** fault selected for this request (only ever set on chat endpoints); 'status'/'reset'/'hang'/'delay' are already handled */
  fault: Fault | null;
  /** true once the client connection went away (or we destroyed it) */
  readonly closed: boolean;
  /** wait ms; resolves false early if the connection closes meanwhile */
  sleep(ms: number): Promise<boolean>;
  /** JSON response; a 'cut' fault truncates the body mid-way */
  json(status: number, body: unknown, headers?: Record<string, string>): Promise<void>;
  /** plain text response */
  text(status: number, text: string, headers?: Record<string, string>): Promise<void>;
  /** streamed response: one write per element (text, or bytes for binary framings); honours 'cut' and 'slowStream' */
  stream(contentType: string, chunks: (string | Buffer)[], headers?: Record<string, string>): Promise<void>;
}

export interface ProviderSpec {
  name: string;
  /** appended to http://127.0.0.1:PORT to form FakeProvider.url */
  basePath: string;
  /** which requests faults apply to */
  isChat(method: string, path: string): boolean;
  /** the provider's own JSON error body for a status (used for 'status' faults without a body) */
  errorBody(status: number): unknown;
  /** the provider's own error event in the middle of a stream (a 'breakAfter' fault with how 'error'); bytes for binary framings */
  streamError?(): string | Buffer;
  handle(ctx: Ctx): Promise<void>;
}

// ---------------------------------------------------------------------------
// Server
// ---------------------------------------------------------------------------

export async function startFakeServer(spec: ProviderSpec, transport: { tls?: FakeTls } = {}): Promise<FakeProvider> {
  const sockets = new Set<Socket>();
  let queue: Fault[] = [];
  let closing = false;

  const provider: FakeProvider = {
    url: '',
    port: 0,
    name: spec.name,
    requests: [],
    fault: null,
    aborted: 0,
    inFlight: 0,
    peakInFlight: 0,
    connections: 0,
    queueFaults(...faults: Fault[]) {
      queue.push(...faults);
    },
    reset() {
      provider.requests.length = 0;
      provider.fault = null;
      queue = [];
      provider.aborted = 0;
      provider.peakInFlight = provider.inFlight;
      // inFlight reflects live connections; it is not something a reset can change.
    },
    async close() {
      closing = true;
      await new Promise<void>((resolve) => {
        server.close(() => resolve());
        if ('closeAllConnections' in server) server.closeAllConnections();
        for (const s of sockets) s.destroy();
      });
    },
  };

  /** Streams held by a 'holdUntil' fault, each released once peakInFlight reaches its count. */
  let held: Array<{ count: number; release: () => void }> = [];
  const holdUntil = (count: number, timeoutMs: number) =>
    new Promise<void>((resolve) => {
      if (provider.peakInFlight >= count) return resolve();
      const timer = setTimeout(resolve, timeoutMs);
      held.push({ count, release: () => (clearTimeout(timer), resolve()) });
    });
  const onRequest = (req: http.IncomingMessage, res: http.ServerResponse) => {
    void handleRequest(req, res);
  };
  // Over TLS the client picks HTTP/2 or HTTP/1.1; node's compatibility API gives both the same req/res.
  const server = transport.tls
    ? http2.createSecureServer({ key: transport.tls.key, cert: transport.tls.cert, allowHTTP1: true }, onRequest as any)
    : http.createServer(onRequest);
  server.on('connection', (socket: Socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    if (!transport.tls) provider.connections++;
  });
  server.on('secureConnection', () => provider.connections++);

  async function handleRequest(req: http.IncomingMessage, res: http.ServerResponse) {
    provider.inFlight++;
    if (provider.inFlight > provider.peakInFlight) {
      provider.peakInFlight = provider.inFlight;
      if (held.length > 0) {
        const ready = held.filter((h) => h.count <= provider.peakInFlight);
        held = held.filter((h) => h.count > provider.peakInFlight);
        for (const h of ready) h.release();
      }
    }
    const h2 = req.httpVersionMajor === 2;
    let closed = false;
    let selfDestroyed = false;
    let onClose!: () => void;
    const closedPromise = new Promise<void>((r) => (onClose = r));
    res.on('close', () => {
      closed = true;
      provider.inFlight--;
      if (!res.writableFinished && !selfDestroyed && !closing) provider.aborted++;
      onClose();
    });

    const destroy = () => {
      selfDestroyed = true;
      // HTTP/2: reset this request's stream only, as a server does; the connection carries others.
      if (h2) (req as unknown as http2.Http2ServerRequest).stream.close(http2.constants.NGHTTP2_INTERNAL_ERROR);
      else req.socket.destroy();
    };

    const sleep = (ms: number) =>
      new Promise<boolean>((resolve) => {
        if (closed) return resolve(false);
        const t = setTimeout(() => resolve(!closed), ms);
        void closedPromise.then(() => {
          clearTimeout(t);
          resolve(false);
        });
      });

    const write = (chunk: string | Buffer) =>
      new Promise<void>((resolve) => {
        if (closed) return resolve();
        res.write(chunk, () => resolve());
      });

    const url = new URL(req.url ?? '/', 'http://localhost');
    const raw = await readBody(req);
    let body: any;
    if (raw.length > 0) {
      try {
        body = JSON.parse(raw.toString('utf8'));
      } catch {
        body = undefined;
      }
    }
    const method = req.method ?? 'GET';
    const path = url.pathname;
    provider.requests.push({ method, path, query: url.search.slice(1), headers: { ...req.headers }, body, httpVersion: req.httpVersion });

    let fault: Fault | null = null;
    if (spec.isChat(method, path)) fault = queue.shift() ?? provider.fault;

    const ctx: Ctx = {
      req,
      res,
      method,
      path,
      query: url.searchParams,
      body,
      raw,
      fault,
      get closed() {
        return closed;
      },
      sleep,
      async json(status, payload, headers = {}) {
        if (closed) return;
        const buf = Buffer.from(JSON.stringify(payload));
        res.writeHead(status, {
          'content-type': 'application/json',
          'content-length': String(buf.length),
          ...headers,
        });
        if (fault?.kind === 'cut') {
          await write(buf.subarray(0, Math.floor(buf.length / 2)));
          destroy();
          return;
        }
        res.end(buf);
      },
      async text(status, text, headers = {}) {
        if (closed) return;
        res.writeHead(status, { 'content-type': 'text/plain; charset=utf-8', ...headers });
        res.end(text);
      },
      async stream(contentType, chunks, headers = {}) {
        if (closed) return;
        res.writeHead(200, {
          'content-type': contentType,
          'cache-control': 'no-cache',
          // HTTP/2 forbids connection headers.
          ...(h2 ? {} : { connection: 'keep-alive' }),
          ...headers,
        });
        res.flushHeaders();
        for (let i = 0; i < chunks.length; i++) {
          if (fault?.kind === 'cut' && i >= fault.afterChunks) {
            destroy();
            return;
          }
          if (fault?.kind === 'breakAfter' && i >= fault.afterChunks) {
            if (fault.how === 'reset') destroy();
            else if (fault.how === 'error') {
              await write(spec.streamError?.() ?? '');
              res.end();
            } else await closedPromise;
            return;
          }
          if (fault?.kind === 'breakAfter' && i > 0 && fault.chunkDelayMs && !(await sleep(fault.chunkDelayMs))) return;
          if (fault?.kind === 'slowStream' && i > 0 && !(await sleep(fault.chunkDelayMs))) return;
          if (fault?.kind === 'slowFirst' && i === 0 && !(await sleep(fault.ms))) return;
          if (fault?.kind === 'holdUntil' && i === 0) await holdUntil(fault.inFlight, fault.timeoutMs);
          if (closed) return;
          await write(chunks[i]);
        }
        if (fault?.kind === 'cut') {
          // fewer chunks than afterChunks: still never finish cleanly
          destroy();
          return;
        }
        if (!closed) res.end();
      },
    };

    try {
      if (fault) {
        switch (fault.kind) {
          case 'reset':
            destroy();
            return;
          case 'hang':
            await closedPromise;
            return;
          case 'status':
            await ctx.json(fault.status, fault.body ?? spec.errorBody(fault.status), fault.headers);
            return;
          case 'delay':
            if (!(await sleep(fault.ms))) return;
            break;
          case 'failAfter':
            if (!(await sleep(fault.ms))) return;
            await ctx.json(fault.status, spec.errorBody(fault.status));
            return;
          default:
            break; // 'cut', 'slowStream', 'slowFirst', 'holdUntil' and 'breakAfter' are applied while writing
        }
      }
      await spec.handle(ctx);
    } catch (err) {
      if (!closed && !res.headersSent) {
        await ctx.json(500, spec.errorBody(500));
      } else if (!closed) {
        destroy();
      }
      // surface bugs in the fakes themselves
      console.error(`[fake ${spec.name}] handler error`, err);
    }
  }

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const port = (server.address() as AddressInfo).port;
  provider.port = port;
  provider.url = `${transport.tls ? "https" : "http"}://127.0.0.1:${port}${spec.basePath}`;
  return provider;
}

function readBody(req: http.IncomingMessage): Promise<Buffer> {
  return new Promise((resolve) => {
    const parts: Buffer[] = [];
    req.on('data', (c: Buffer) => parts.push(c));
    req.on('end', () => resolve(Buffer.concat(parts)));
    req.on('error', () => resolve(Buffer.concat(parts)));
  });
}

// ---------------------------------------------------------------------------
// Wire-format helpers
// ---------------------------------------------------------------------------

/** `data: {...}\n\n` (OpenAI style; pass a string to send it verbatim, e.g. '[DONE]') */
export function sseData(data: unknown): string {
  return `data: ${typeof data === 'string' ? data : JSON.stringify(data)}\n\n`;
}

/** `event: X\ndata: {...}\n\n` (Anthropic style) */
export function sseEvent(event: string, data: unknown): string {
  return `event: ${event}\ndata: ${JSON.stringify(data)}\n\n`;
}

/** one NDJSON line (Ollama style) */
export function ndjson(data: unknown): string {
  return `${JSON.stringify(data)}\n`;
}

// ---------------------------------------------------------------------------
// Deterministic "model" helpers
// ---------------------------------------------------------------------------

/** random-looking id with a provider prefix, e.g. id('chatcmpl-') */
export function makeId(prefix: string, len = 24): string {
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789';
  const bytes = randomBytes(len);
  let s = '';
  for (const b of bytes) s += alphabet[b % alphabet.length];
  return prefix + s;
}

/** split text into word chunks, each word carrying its leading whitespace; joins back to the input */
export function wordChunks(text: string): string[] {
  return text.match(/\s*\S+|\s+$/g) ?? [];
}

export function countWords(text: string): number {
  return text.split(/\s+/).filter(Boolean).length;
}

export function promptTokens(totalChars: number): number {
  return Math.ceil(totalChars / 4);
}

/** deterministic 8-dim vector in [-1, 1] derived from the text (FNV-1a per dimension) */
export function fakeEmbedding(text: string, dims = 8): number[] {
  const out: number[] = [];
  for (let d = 0; d < dims; d++) {
    let h = 0x811c9dc5 ^ d;
    for (let i = 0; i < text.length; i++) {
      h ^= text.charCodeAt(i);
      h = Math.imul(h, 0x01000193);
    }
    out.push(Math.round((((h >>> 0) / 0xffffffff) * 2 - 1) * 1e6) / 1e6);
  }
  return out;
}

/** text of a content value that is a string or an array of {type:'text', text} parts/blocks */
export function textOf(content: unknown): string {
  if (typeof content === 'string') return content;
  if (Array.isArray(content)) {
    return content
      .map((p) => (p && typeof p === 'object' && (p as any).type === 'text' && typeof (p as any).text === 'string' ? (p as any).text : ''))
      .join('');
  }
  return '';
}

/**
 * What the fake model reads from a list of role-tagged messages whose content is a string or text parts
 * (OpenAI's and Ollama's chat requests): the prompt's token count, the last message, and the text of the last
 * user message.
 */
export function readMessages(messages: any[]): { promptTokenCount: number; last: any; lastUserText: string } {
  let chars = 0;
  for (const m of messages) chars += textOf(m?.content).length;
  const lastUser = [...messages].reverse().find((m) => m?.role === 'user');
  return { promptTokenCount: promptTokens(chars), last: messages[messages.length - 1], lastUserText: textOf(lastUser?.content) };
}

/** The fake model's plain answer to the last user text: the test's own `reply`, or the text echoed as "[name] text". */
export function replyTo(lastUserText: string, body: unknown, name: string, opts: FakeOptions): string {
  return opts.reply ? opts.reply(lastUserText, body) : `[${name}] ${lastUserText}`;
}

export function unixSeconds(): number {
  return Math.floor(Date.now() / 1000);
}

/**
 * A prefill: the text of the assistant message a conversation ends with (the model is to continue it), or
 * undefined when it ends with anything else.
 */
export function trailingAssistantText(messages: any[], role = 'assistant'): string | undefined {
  const last = messages[messages.length - 1];
  return last?.role === role ? textOf(last.content) : undefined;
}

/**
 * How the fake model continues a prefill: its answer to the conversation without it, from where the prefill
 * ends (a deterministic model writes the same answer, so the continuation is exactly the rest of it). An
 * answer the prefill does not start is written whole.
 */
export function continueAnswer(answer: string, prefill: string | undefined): string {
  if (!prefill) return answer;
  return answer.startsWith(prefill) ? answer.slice(prefill.length) : answer;
}
