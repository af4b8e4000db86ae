/**
 * The HTTP server. Routes come from the current Runtime's route table (so a reload can add or change
 * routes without restarting Fastify); one catch-all Fastify route looks the path up in that table.
 * Hooks, in order: request id → route lookup and deadline → body parsing → handler → log and metrics.
 */
import compress from '@fastify/compress';
import cors from '@fastify/cors';
import Fastify, { LogController, type FastifyBaseLogger, type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import type { Logger } from 'pino';
import type { HandlerName, Runtime } from '../gateway/runtime.ts';
import { findRoute } from '../gateway/runtime.ts';
import type { Metrics } from '../observability/metrics.ts';
import type { Tracing } from '../observability/tracing.ts';
import { LazyChildLogger } from '../observability/logger.ts';
import { GatewayError } from '../core/errors.ts';
import { checkKeyScope, presentedKey } from './auth.ts';
import { closeAfterAnswer, registerJsonParser } from './body.ts';
import { RateLimits, type LimitVerdict } from './rate-limit.ts';
import { quotaLines, reserveQuota, settleQuota } from './quota-admission.ts';
import { meterUsage } from './metering.ts';
import type { Handler, RequestState } from './context.ts';
import { errorBody, requestIdFrom, toGatewayError } from './errors.ts';
import { RequestObserver } from './observe.ts';
import { boundFirstRequest, clientErrorAnswer, receiveTimeouts } from './receive-timeouts.ts';
import { registerTransports, tcpServerOptions } from './tls.ts';
import { adminHandler } from './routes/admin.ts';
import { consoleRecord, registerConsole } from './routes/console.ts';
import { registerOpenApi } from './routes/openapi.ts';
import { healthHandler } from './routes/health.ts';
import { HANDLER_DECLARATIONS } from './client-apis.ts';
import { recordUsage } from './usage-record.ts';

export interface RuntimeHolder {
  current: Runtime;
  /** Restart-only settings as this process runs them (flags applied, the port bound); set once listening. */
  running?: RunningSettings;
}

export interface RunningSettings {
  /** By key path (`server.port`): the values in effect. */
  values: Record<string, unknown>;
  /** The same keys as the config file had them at start: a reload that changes one waits for a restart. */
  atStart: Record<string, unknown>;
}

export interface AppOptions {
  holder: RuntimeHolder;
  logger: Logger;
  metrics: Metrics;
  /** Rate-limit counters; kept across reloads. */
  rateLimits?: RateLimits;
  /** Handlers that replace the declared ones, by handler name (the cluster's fleet-wide metrics). */
  handlers?: Partial<Record<HandlerName, Handler>>;
  /** OpenTelemetry export, when `tracing.otlp_endpoint` is configured. */
  tracing?: Tracing;
}


export async function buildApp(opts: AppOptions): Promise<FastifyInstance> {
  const { holder, logger, metrics } = opts;
  const rateLimits = opts.rateLimits ?? new RateLimits();
  const config = holder.current.config;
  const receiving = receiveTimeouts(config.server);
  const app = Fastify({
    loggerInstance: logger as FastifyBaseLogger,
    // One log line per request comes from our onResponse hook, with provider, model and attempts.
    logController: new LogController({ disableRequestLogging: true, requestIdLogLabel: 'request_id' }),
    childLoggerFactory: (parent, bindings, options) => new LazyChildLogger(parent as Logger, bindings, options) as unknown as FastifyBaseLogger,
    genReqId: (req) => requestIdFrom(req.headers['x-request-id']),
    requestIdHeader: false,
    bodyLimit: 64 * 1024 * 1024, // hard ceiling; each route's own limit is enforced by the JSON parser
    // Bounds on receiving a request on plain HTTP/1.1 (Fastify sets requestTimeout on the server itself);
    // the TLS listener's are set up below (boundFirstRequest) and in tls.ts, the body's in body.ts.
    http: { maxHeaderSize: config.server.max_header_bytes, ...receiving },
    requestTimeout: receiving.requestTimeout,
    clientErrorHandler: clientErrorAnswer(metrics),
    connectionTimeout: 0,
    keepAliveTimeout: 72_000,
    return503OnClosing: true,
    routerOptions: { ignoreTrailingSlash: true, maxParamLength: 500 },
    // Errors Fastify meets before any hook runs (a URL that does not decode): still our error format.
    frameworkErrors: (error, request, reply) => {
      const requestId = requestIdFrom(request.headers['x-request-id']);
      (reply as FastifyReply)
        .code(400)
        .header('x-request-id', requestId)
        .type('application/json; charset=utf-8')
        .send(errorBody(new GatewayError(error.message, { status: 400, type: 'ValidationError', details: { code: error.code } }), requestId, 'hapax'));
    },
    // server.tls: HTTPS with HTTP/2 and HTTP/1.1 (ALPN) on the same port.
    ...(tcpServerOptions(config.server) as object),
  });
  registerTransports(app);
  if (config.server.tls) boundFirstRequest(app.server, config.server.read_header_timeout, metrics);

  // Each handler as its client API declares it; `opts.handlers` replaces some (the cluster's fleet-wide metrics).
  const serve = (name: HandlerName): Handler => opts.handlers?.[name] ?? HANDLER_DECLARATIONS[name].serve;

  app.decorateRequest('hapax', null as unknown as RequestState);
  // CORS settings come from the live config, so a reload can change them.
  await app.register(cors, { delegator: (_request, callback) => callback(null, holder.current.cors) });
  // Only whole JSON bodies are compressed: compressing SSE would hold back tokens.
  // Request bodies are decoded by our JSON parser (body.ts), which limits the decoded size; the plugin's
  // own decoding hands the parser a paused stream, and every compressed body hung (issue 19).
  await app.register(compress, { global: true, globalDecompression: false, threshold: 1024, encodings: ['br', 'gzip'], customTypes: /^application\/json/ });
  registerJsonParser(app, {
    limitFor: (request) => request.hapax.route?.maxBodySize ?? request.hapax.runtime.config.server.max_body_size,
    readTimeoutMs: config.server.read_timeout,
    onReadTimeout: () => metrics.clientTimeouts.inc({ phase: 'body' }),
  });
  const observer = new RequestObserver(metrics, opts.tracing, logger);
  app.addHook('onSend', observer.onSend);

  app.addHook('onRequest', async (request, reply) => {
    reply.header('x-request-id', request.id);
    const runtime = holder.current;
    const query = request.url.indexOf('?');
    const path = query < 0 ? request.url : request.url.slice(0, query);
    const route = findRoute(runtime.routes, path.length > 1 && path.endsWith('/') ? path.slice(0, -1) : path);
    const controller = new AbortController();
    const state: RequestState = { runtime, route, controller, client: request.ip, startedAt: Date.now(), spent: { upstreamMs: 0 } };
    request.hapax = state;
    observer.begin(request, state);
    // Counted until the response ends (or the client goes): a reload closes the old Runtime's pools only then.
    runtime.acquire();
    reply.raw.once('close', () => {
      runtime.release();
      if (!route) return;
      if (!reply.raw.writableEnded) {
        // The client hung up before we answered: abort upstream work at once.
        state.clientGone = true;
        controller.abort(new DOMException('client closed the connection', 'AbortError'));
      }
      // Fastify runs no onResponse for a reply it does not write, nor for one whose last bytes never left:
      // a stream cut by its client is accounted here (once: accountFor remembers).
      if (state.writesOwnResponse && !reply.raw.writableFinished) accountFor(request, reply);
      // A JSON answer whose client left gets no onResponse either: give its reservation back now.
      if (state.clientGone) settleQuota(state);
    });
    if (!route) return;
    metrics.requestStarted(route.path);
    state.deadline = setTimeout(() => controller.abort(new DOMException('request deadline passed', 'TimeoutError')), route.timeoutMs);
    if (request.method === 'OPTIONS') return;
    if (runtime.config.auth.enabled && route.auth) {
      state.key = await runtime.keys.verifyFresh(presentedKey(request));
      checkKeyScope(state.key, route.path);
      state.client = state.key.name;
    }
    if (!route.operational) {
      await applyRateLimits(state, reply);
      // Admitted: one request in the usage report when it ends (GET /admin/usage; fleet-wide with Redis).
      state.admitted = true;
    }
  });

  /** The key's own limit (else the default), and the route's limit on top; headers show the tighter. */
  /** The limit on the caller's key: its own, else the config's default (admission and token charges alike). */
  const keyLimit = (state: RequestState) => state.key?.rate_limit ?? state.runtime.config.rate_limit;

  async function applyRateLimits(state: RequestState, reply: FastifyReply): Promise<void> {
    const route = state.route as NonNullable<RequestState['route']>;
    const general = keyLimit(state);
    let tightest: LimitVerdict | undefined;
    const store = state.runtime.store;
    try {
      if (general) tightest = await rateLimits.admit(store, state.client, general, 'key');
      if (route.rateLimit) {
        const verdict = await rateLimits.admit(store, state.client, route.rateLimit, route.rateLimitScope);
        if (verdict && (!tightest || verdict.remaining < tightest.remaining)) tightest = verdict;
      }
    } catch (error) {
      const refused = (error as { verdict?: LimitVerdict }).verdict;
      if (refused) {
        metrics.rateLimitHits.inc({ client: state.client });
        setLimitHeaders(reply, refused);
      }
      throw error;
    }
    if (tightest) setLimitHeaders(reply, tightest);
  }

  // Once the body is parsed: reserve the request's tokens and dollars on its limits and budgets.
  app.addHook('preHandler', (request, reply, done) => {
    const state = request.hapax;
    const lines = request.method === 'OPTIONS' ? [] : quotaLines(state);
    if (lines.length === 0) return done();
    reserveQuota(request, reply, state, lines, metrics, request.log as Logger).then(() => done(), done);
  });

  app.addHook('onResponse', (request, reply, done) => {
    accountFor(request, reply);
    done();
  });

  /** Once per request, however its response ended: tokens charged, request, token, cost and overhead series, the one log line, the spans. */
  function accountFor(request: FastifyRequest, reply: FastifyReply): void {
    const state = request.hapax;
    if (state.accounted) return;
    state.accounted = true;
    if (state.route) meterUsage(request, state, metrics);
    settleQuota(state);
    recordUsage(state);
    // Routes Fastify knows by name (e.g. /health/ready) keep their path; the catch-all's own answers (health of one
    // provider or route, admin) their path template; its misses are 'unmatched'.
    const named = request.routeOptions.url;
    const endpoint = state.route?.path ?? (named && named !== '*' ? named : catchAllEndpoint(request));
    clearTimeout(state.deadline);
    if (state.route) metrics.requestEnded(endpoint);
    observer.finish(request, reply, endpoint);
    const record = consoleRecord(request, reply.statusCode, reply.elapsedTime);
    if (record) consoleFeed.record(record);
  }

  app.setErrorHandler((error, request, reply) => sendError(request, reply, toGatewayError(error), metrics));
  app.setNotFoundHandler((request, reply) =>
    sendError(request, reply, new GatewayError(`no route for ${request.method} ${request.url.split('?', 1)[0]}`, { status: 404, type: 'ValidationError' }), metrics),
  );

  app.route({
    method: ['GET', 'POST', 'PUT', 'PATCH', 'DELETE', 'HEAD'],
    url: '*',
    handler: async (request, reply) => {
      const state = request.hapax;
      const route = state.route;
      if (!route) {
        if (healthSubroute(request)) return healthHandler(request, reply, state);
        if (request.url.startsWith('/admin/')) return adminHandler(request, reply, state);
        throw new GatewayError(`no route for ${request.method} ${request.url.split('?', 1)[0]}`, { status: 404, type: 'ValidationError' });
      }
      // A route that serves subpaths checks the method of each itself (GET /v1/responses/{id}, POST /v1/responses).
      if (!route.subpaths && !route.methods.has(request.method) && !(request.method === 'HEAD' && route.methods.has('GET'))) {
        reply.header('allow', route.allow);
        throw new GatewayError(`method ${request.method} is not allowed on ${route.path}; allowed: ${route.allow}`, { status: 405, type: 'ValidationError' });
      }
      return serve(route.handler)(request, reply, state);
    },
  });

  // The operator console (/console) has Fastify routes of its own and a hook that feeds it.
  const consoleFeed = registerConsole(app, { holder, metrics });
  registerOpenApi(app);

  return app;
}

function setLimitHeaders(reply: FastifyReply, verdict: LimitVerdict): void {
  reply.header('x-ratelimit-limit', verdict.limit);
  reply.header('x-ratelimit-remaining', verdict.remaining);
  reply.header('x-ratelimit-reset', verdict.resetSeconds);
}

/** The label of a request the catch-all answered: a bounded set of path templates, never the raw path. */
function catchAllEndpoint(request: FastifyRequest): string {
  if (healthSubroute(request)) return request.url.startsWith('/health/provider/') ? '/health/provider/{provider}' : '/health/{route}';
  if (request.url.startsWith('/admin/')) return '/admin/*';
  return 'unmatched';
}

function healthSubroute(request: FastifyRequest): boolean {
  return request.method === 'GET' && request.url.startsWith('/health/');
}

function sendError(request: FastifyRequest, reply: FastifyReply, error: GatewayError, metrics: Metrics): FastifyReply {
  metrics.errors.inc({ type: error.type });
  if (request.hapax) request.hapax.errorType = error.type;
  // request.log already carries request_id.
  if (error.status >= 500 && error.type === 'InternalError') request.log.error({ err: error.cause ?? error }, 'internal error');
  if (error.retryAfterSeconds !== undefined) reply.header('retry-after', String(error.retryAfterSeconds));
  if (error.status === 408) closeAfterAnswer(request);
  // Fastify marks body errors `Connection: close`; HTTP/2 forbids that header (Node warns and drops it).
  if (request.raw.httpVersionMajor !== 1) reply.removeHeader('connection');
  const dialect = request.hapax?.route?.errorDialect ?? 'hapax';
  return reply.code(error.status).type('application/json; charset=utf-8').send(errorBody(error, request.id, dialect));
}
