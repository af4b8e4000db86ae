/**
 * The operator console at /console: providers (health, breaker, latency, error rate), live traffic,
 * failovers, tokens and cost by key and route label, and the running config with secrets masked.
 *
 * - GET  /console                the page (or the sign-in form); `?key=ADMIN_KEY` signs in once and redirects
 * - POST /console/login          sign-in form (`key=...`, form-encoded or JSON); sets a session cookie
 * - POST /console/logout         clears the cookie
 * - GET  /console/api/state      one JSON snapshot
 * - GET  /console/events         the same snapshot as Server-Sent Events, once a second
 * - GET  /console/assets/{file}  the page's script, styles and the charting library (uPlot, from node_modules)
 *
 * Access: with `admin.key` set, the console needs it (X-API-Key / Bearer header, or the session cookie).
 * With no admin key it is open while auth is off, and refused (403) while auth is on.
 * The cookie holds an expiry and an HMAC of it keyed by the admin key, never the key itself, so changing
 * `admin.key` signs every browser out.
 */
import { createHash, createHmac, timingSafeEqual } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { PassThrough } from 'node:stream';
import { fileURLToPath } from 'node:url';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { ConsoleFeed, type RequestRecord, type RuntimeSource } from '../../console/feed.ts';
import type { Metrics } from '../../observability/metrics.ts';
import { GatewayError } from '../../core/errors.ts';
import { presentedKey } from '../auth.ts';
import { sameSecret } from '../../state/keys.ts';
import { budgetReport, type BudgetRow } from '../budget-report.ts';

export interface ConsoleOptions {
  holder: RuntimeSource;
  metrics: Metrics;
  /** How often /console/events sends a snapshot. */
  intervalMs?: number;
}

const COOKIE = 'hapax_console';
const SESSION_SECONDS = 12 * 60 * 60;

const CSP = [
  "default-src 'self'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self' data:",
  "connect-src 'self'",
  "base-uri 'none'",
  "form-action 'self'",
  "frame-ancestors 'none'",
].join('; ');

/** The page's own files sit in console/ at the package root: three levels up from src/ or dist/server/routes. */
const PAGE_DIR = fileURLToPath(new URL('../../../console/', import.meta.url));
const UPLOT_DIR = join(dirname(createRequire(import.meta.url).resolve('uplot/package.json')), 'dist');

const ASSETS: Record<string, { file: string; type: string }> = {
  'app.js': { file: join(PAGE_DIR, 'app.js'), type: 'text/javascript; charset=utf-8' },
  'app.css': { file: join(PAGE_DIR, 'app.css'), type: 'text/css; charset=utf-8' },
  'favicon.svg': { file: join(PAGE_DIR, 'favicon.svg'), type: 'image/svg+xml' },
  'uPlot.iife.min.js': { file: join(UPLOT_DIR, 'uPlot.iife.min.js'), type: 'text/javascript; charset=utf-8' },
  'uPlot.min.css': { file: join(UPLOT_DIR, 'uPlot.min.css'), type: 'text/css; charset=utf-8' },
};

type Access = 'open' | 'granted' | 'sign-in' | 'disabled';

/** Registers the console's routes and the hook that feeds it; returns the feed (for tests and embedding). */
export function registerConsole(app: FastifyInstance, opts: ConsoleOptions): ConsoleFeed {
  const { holder } = opts;
  const feed = new ConsoleFeed({ holder, metrics: opts.metrics });
  const intervalMs = opts.intervalMs ?? 1000;
  const streams = new Set<PassThrough>();
  const files = new Map<string, { body: Buffer; etag: string }>();
  let lastSnapshot: { at: number; value: Promise<Awaited<ReturnType<ConsoleFeed['snapshot']>> & { budgets: BudgetRow[] }> } | undefined;
  /** Budgets are read from the state store (Redis for a fleet): the last read, refreshed once per interval. */
  let budgets: BudgetRow[] = [];
  let readingBudgets = false;
  const refreshBudgets = () => {
    if (readingBudgets) return;
    readingBudgets = true;
    budgetReport(holder.current)
      .then((rows) => (budgets = rows), () => undefined)
      .finally(() => (readingBudgets = false));
  };

  /** One snapshot serves every open event stream for half a second. */
  const snapshot = () => {
    const now = Date.now();
    if (!lastSnapshot || now - lastSnapshot.at > intervalMs / 2) {
      refreshBudgets();
      const shown = budgets;
      lastSnapshot = { at: now, value: feed.snapshot().then((state) => ({ ...state, budgets: shown })) };
    }
    return lastSnapshot.value;
  };

  feed.start();
  app.addHook('preClose', (done) => {
    for (const stream of streams) stream.end();
    done();
  });
  app.addHook('onClose', (_instance, done) => {
    feed.stop();
    done();
  });

  function access(request: FastifyRequest): Access {
    const { config } = holder.current;
    const adminKey = config.admin.key;
    if (!adminKey) return config.auth.enabled ? 'disabled' : 'open';
    const presented = presentedKey(request);
    if (presented !== undefined && sameSecret(presented, adminKey)) return 'granted';
    const cookie = readCookie(request.headers.cookie, COOKIE);
    if (cookie && validSession(cookie, adminKey)) return 'granted';
    return 'sign-in';
  }

  /** For the JSON and SSE endpoints: throws the error the client should see. */
  function requireAccess(request: FastifyRequest): void {
    const verdict = access(request);
    if (verdict === 'disabled') throw consoleDisabled();
    if (verdict === 'sign-in') throw new GatewayError('the console needs the admin key (X-API-Key, Bearer, or sign in at /console)', { status: 401, type: 'AuthenticationError' });
  }

  function signIn(request: FastifyRequest, reply: FastifyReply, key: string | undefined): FastifyReply {
    const adminKey = holder.current.config.admin.key;
    if (!adminKey) {
      const verdict = access(request);
      return verdict === 'disabled' ? page(reply, 403, disabledPage()) : reply.redirect('/console', 303);
    }
    if (!key || !sameSecret(key, adminKey)) return page(reply, 401, signInPage('That is not the admin key.'));
    const expires = Math.floor(Date.now() / 1000) + SESSION_SECONDS;
    const secure = request.protocol === 'https' ? '; Secure' : '';
    reply.header('set-cookie', `${COOKIE}=${session(expires, adminKey)}; Path=/console; Max-Age=${SESSION_SECONDS}; HttpOnly; SameSite=Strict${secure}`);
    return reply.redirect('/console', 303);
  }

  app.register(async (scope) => {
    // The sign-in form posts form-encoded data; this parser is only seen by the console's routes.
    scope.addContentTypeParser('application/x-www-form-urlencoded', { parseAs: 'string', bodyLimit: 4096 }, (_request, body, done) => {
      done(null, Object.fromEntries(new URLSearchParams(String(body))));
    });

    scope.get('/console', async (request, reply) => {
      const key = (request.query as Record<string, unknown>).key;
      if (typeof key === 'string') return signIn(request, reply, key);
      const verdict = access(request);
      if (verdict === 'disabled') return page(reply, 403, disabledPage());
      if (verdict === 'sign-in') return page(reply, 401, signInPage());
      return page(reply, 200, consolePage(verdict === 'granted' && holder.current.config.admin.key !== undefined));
    });

    scope.post('/console/login', async (request, reply) => {
      const body = request.body as Record<string, unknown> | undefined;
      return signIn(request, reply, typeof body?.key === 'string' ? body.key : undefined);
    });

    scope.post('/console/logout', async (request, reply) => {
      const secure = request.protocol === 'https' ? '; Secure' : '';
      reply.header('set-cookie', `${COOKIE}=; Path=/console; Max-Age=0; HttpOnly; SameSite=Strict${secure}`);
      return reply.redirect('/console', 303);
    });

    scope.get('/console/api/state', async (request, reply) => {
      requireAccess(request);
      reply.header('cache-control', 'no-store');
      const [state, rows] = await Promise.all([feed.snapshot(), budgetReport(holder.current).catch((): BudgetRow[] => [])]);
      return { ...state, budgets: rows };
    });

    scope.get('/console/events', async (request, reply) => {
      requireAccess(request);
      const runtime = holder.current;
      const stream = new PassThrough();
      streams.add(stream);
      let timer: NodeJS.Timeout | undefined;
      const stop = () => {
        clearInterval(timer);
        streams.delete(stream);
        if (!stream.writableEnded) stream.end();
      };
      const send = async () => {
        // A reload or a new admin key ends the stream; the browser reconnects to the new config.
        if (holder.current !== runtime || access(request) === 'sign-in' || access(request) === 'disabled') return stop();
        try {
          const state = await snapshot();
          if (!stream.writableEnded) stream.write(`event: state\ndata: ${JSON.stringify(state)}\n\n`);
        } catch (error) {
          request.log.warn({ err: error }, 'console snapshot failed');
        }
      };
      reply.raw.once('close', stop);
      stream.write('retry: 2000\n\n');
      await send();
      timer = setInterval(() => void send(), intervalMs);
      reply.header('content-type', 'text/event-stream; charset=utf-8');
      reply.header('cache-control', 'no-store');
      reply.header('x-accel-buffering', 'no');
      return reply.send(stream);
    });

    scope.get('/console/assets/:name', async (request, reply) => {
      const name = (request.params as { name: string }).name;
      const asset = Object.hasOwn(ASSETS, name) ? ASSETS[name] : undefined;
      if (!asset) throw new GatewayError(`no console asset ${name}`, { status: 404, type: 'ValidationError' });
      let file = files.get(name);
      if (!file) {
        const body = await readFile(asset.file);
        file = { body, etag: `"${createHash('sha256').update(body).digest('base64url').slice(0, 22)}"` };
        files.set(name, file);
      }
      reply.header('etag', file.etag);
      reply.header('cache-control', 'no-cache');
      reply.header('x-content-type-options', 'nosniff');
      if (request.headers['if-none-match'] === file.etag) return reply.code(304).send();
      return reply.type(asset.type).send(file.body);
    });
  });

  return feed;
}

function page(reply: FastifyReply, status: number, html: string): FastifyReply {
  return reply
    .code(status)
    .header('content-security-policy', CSP)
    .header('x-content-type-options', 'nosniff')
    .header('x-frame-options', 'DENY')
    .header('referrer-policy', 'no-referrer')
    .header('cache-control', 'no-store')
    .type('text/html; charset=utf-8')
    .send(html);
}

function consoleDisabled(): GatewayError {
  return new GatewayError('the console is disabled while auth is on and admin.key is not set', { status: 403, type: 'AuthenticationError' });
}

function session(expires: number, adminKey: string): string {
  return `${expires}.${createHmac('sha256', adminKey).update(`hapax-console/v1/${expires}`).digest('base64url')}`;
}

function validSession(value: string, adminKey: string): boolean {
  const dot = value.indexOf('.');
  const expires = Number(value.slice(0, dot));
  if (dot < 1 || !Number.isInteger(expires) || expires < Date.now() / 1000) return false;
  const expected = Buffer.from(session(expires, adminKey));
  const given = Buffer.from(value);
  return given.length === expected.length && timingSafeEqual(given, expected);
}

function readCookie(header: string | undefined, name: string): string | undefined {
  if (!header) return undefined;
  for (const part of header.split(';')) {
    const eq = part.indexOf('=');
    if (eq > 0 && part.slice(0, eq).trim() === name) return part.slice(eq + 1).trim();
  }
  return undefined;
}

const HEAD = (title: string) => `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${title}</title>
<link rel="icon" href="/console/assets/favicon.svg" type="image/svg+xml">
<link rel="stylesheet" href="/console/assets/uPlot.min.css">
<link rel="stylesheet" href="/console/assets/app.css">
</head>`;

function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

function signInPage(message?: string): string {
  return `${HEAD('Hapax console: sign in')}
<body class="narrow">
<main class="card signin">
<h1>Hapax console</h1>
<p>Sign in with the gateway's admin key (<code>admin.key</code> in the config).</p>
${message ? `<p class="error" role="alert">${escapeHtml(message)}</p>` : ''}
<form method="post" action="/console/login">
<label for="key">Admin key</label>
<input id="key" name="key" type="password" autocomplete="current-password" required autofocus>
<button type="submit">Sign in</button>
</form>
</main>
</body>
</html>
`;
}

function disabledPage(): string {
  return `${HEAD('Hapax console: disabled')}
<body class="narrow">
<main class="card signin">
<h1>Hapax console</h1>
<p class="error">The console is off: auth is enabled and no <code>admin.key</code> is configured.</p>
<p>Set <code>admin.key</code> (16 characters or more) in the config, reload, and sign in with it.</p>
</main>
</body>
</html>
`;
}

function consolePage(signedIn: boolean): string {
  return `${HEAD('Hapax console')}
<body>
<header class="top">
  <h1>Hapax <span>console</span></h1>
  <div class="status"><span id="live" class="pill muted">connecting…</span><span id="overall" class="pill muted">–</span></div>
  <div class="meta"><span id="loaded">config –</span>${signedIn ? '<form method="post" action="/console/logout"><button type="submit" class="link">Sign out</button></form>' : ''}</div>
</header>
<main>
  <section class="stats" aria-label="Traffic in the last minute">
    <div class="stat"><span class="label">Requests / s</span><span class="value" id="stat-rps">–</span><span class="sub" id="stat-requests"></span></div>
    <div class="stat"><span class="label">Latency p50</span><span class="value" id="stat-p50">–</span><span class="sub">last minute</span></div>
    <div class="stat"><span class="label">Latency p95</span><span class="value" id="stat-p95">–</span><span class="sub" id="stat-p99"></span></div>
    <div class="stat"><span class="label">Errors (5xx)</span><span class="value" id="stat-errors">–</span><span class="sub" id="stat-error-rate"></span></div>
    <div class="stat"><span class="label">Failovers</span><span class="value" id="stat-failovers">–</span><span class="sub">in the event log</span></div>
  </section>
  <section class="card">
    <h2>Providers</h2>
    <table id="providers" class="stack">
      <thead><tr><th>Provider</th><th>Type / model</th><th>Health</th><th>Circuit breaker</th><th class="num">Latency (last / avg)</th><th class="num">Error rate (1 min)</th><th class="num">Requests</th><th class="num">In flight</th></tr></thead>
      <tbody></tbody>
    </table>
  </section>
  <section class="charts">
    <div class="card"><h2>Requests per second</h2><div id="chart-traffic" class="chart"></div></div>
    <div class="card"><h2>Latency (ms)</h2><p id="latency-sparse" class="note" hidden>Too few requests yet for a latency curve: it fills in as requests arrive in more seconds.</p><div id="chart-latency" class="chart"></div></div>
  </section>
  <section class="columns">
    <div class="card"><h2>Failovers and state changes</h2><ol id="events" class="events"></ol></div>
    <div class="card"><h2>Recent requests</h2>
      <table id="requests" class="stack"><thead><tr><th>Time</th><th>Route</th><th>Key</th><th>Protocol</th><th class="num">Status</th><th>Served by</th><th class="num">Tries</th><th class="num">ms</th></tr></thead><tbody></tbody></table>
    </div>
  </section>
  <p id="pricing-hint" class="note" hidden>Some answers came from models without a price (<span id="unpriced-models"></span>): their cost is left out of these totals, not counted as $0. Add them under <code>pricing</code> in the config (US dollars per million input and output tokens); <code>hapax pricing</code> shows what each model is charged.</p>
  <section class="columns three">
    <div class="card"><h2>Usage by key</h2><table id="usage-client" class="usage stack"><thead><tr><th>Key</th><th class="num">Requests</th><th class="num">Tokens in</th><th class="num">Tokens out</th><th class="num">Cost</th></tr></thead><tbody></tbody></table></div>
    <div class="card"><h2>Usage by route label</h2><table id="usage-label" class="usage stack"><thead><tr><th>Label</th><th class="num">Requests</th><th class="num">Tokens in</th><th class="num">Tokens out</th><th class="num">Cost</th></tr></thead><tbody></tbody></table></div>
    <div class="card"><h2>Budgets</h2><table id="budgets" class="usage stack"><thead><tr><th>Budget</th><th>Window</th><th class="num">Spent</th><th class="num">Limit</th><th>State</th></tr></thead><tbody></tbody></table></div>
    <div class="card"><h2>Usage by route</h2><table id="usage-route" class="usage stack"><thead><tr><th>Route</th><th class="num">Requests</th><th class="num">Tokens in</th><th class="num">Tokens out</th><th class="num">Cost</th></tr></thead><tbody></tbody></table></div>
  </section>
  <section class="card">
    <h2>Running config <span class="hint" id="config-source"></span></h2>
    <ul id="warnings" class="warnings"></ul>
    <ul id="restart" class="restart"></ul>
    <pre id="config" class="config"></pre>
  </section>
</main>
<script src="/console/assets/uPlot.iife.min.js"></script>
<script src="/console/assets/app.js"></script>
</body>
</html>
`;
}

/**
 * What the console keeps of a finished client request (not health or metrics), once it is accounted for:
 * called from the same place as the metrics and the log line, so a stream cut by its client is there too.
 */
export function consoleRecord(request: FastifyRequest, statusCode: number, elapsedMs: number): RequestRecord | undefined {
  const state = request.hapax;
  const route = state?.route;
  if (!route || route.operational) return undefined;
  // A shared (deduplicated or cached) answer spent its tokens on the request that called upstream.
  const usage = state.shared ? undefined : state.usage;
  return {
    at: Date.now(),
    requestId: request.id,
    method: request.method,
    route: route.path,
    status: statusCode,
    latencyMs: elapsedMs,
    // Grouped like the token and cost metrics: by key name, 'anonymous' without one (auth off).
    client: state.key?.name ?? 'anonymous',
    key: state.key?.name,
    protocol: request.raw.httpVersionMajor === 1 ? `HTTP/${request.raw.httpVersion}` : `HTTP/${request.raw.httpVersionMajor}`,
    provider: state.provider,
    model: state.model,
    // A request every provider failed has no answer's count: its trail says how many were tried.
    attempts: state.attempts ?? state.trail?.length ?? 0,
    inputTokens: usage?.inputTokens,
    outputTokens: usage?.outputTokens,
    costUsd: usage ? state.costUsd : undefined,
    unpriced: usage && state.target && !state.shared ? state.costUsd === undefined : undefined,
    labels: route.metricsLabels,
  };
}
