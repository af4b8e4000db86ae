/**
 * The one source of config types and defaults. Snake_case is canonical; the camelCase spellings found in
 * the product documents are renamed before validation (see load.ts), so every key has one name here.
 */
import { z } from 'zod';
import { parseDuration } from './duration.ts';
import { PRESET_NAMES } from './presets.ts';

/**
 * A duration in milliseconds, written as "30s", "100ms", "1m" or a number of milliseconds.
 * The message never repeats the value: it may have come from the environment.
 */
export const duration = z.unknown().transform((value, ctx) => {
  const ms = typeof value === 'string' || typeof value === 'number' ? parseDuration(value) : undefined;
  if (ms === undefined) {
    ctx.addIssue({ code: 'custom', message: 'expected a duration such as 100ms, 30s or 1m' });
    return z.NEVER;
  }
  return ms;
});

/** An http(s) URL, or empty (the original Hapax wrote `endpoint: ""` for "the provider's default"). */
const urlOrEmpty = z.string().refine((text) => text === '' || /^https?:\/\/[^/\s]+/.test(text), {
  message: 'expected an http:// or https:// URL',
});

/** Route paths are looked up without a trailing slash, so they are stored without one. */
export const normalizeRoutePath = (path: string): string => path.replace(/\/+$/, '') || '/';

const routePath = z.string().startsWith('/', 'expected a path starting with /').transform(normalizeRoutePath);

export const PROVIDER_TYPES = ['openai', 'anthropic', 'ollama', 'openai_compatible', 'mock', 'azure_openai', 'gemini', 'bedrock', 'vertex'] as const;

/** Azure OpenAI: which API shape a resource is reached through, its deployments and its Entra credentials. */
const azure = z.strictObject({
  /** `deployments`: /openai/deployments/{deployment}/...?api-version=; `v1`: /openai/v1/... (deployment as the model). */
  api: z.enum(['deployments', 'v1']).default('deployments'),
  /** The api-version query parameter (deployments: default 2024-10-21; v1: sent only when set, e.g. preview). */
  api_version: z.string().min(1).optional(),
  /** Model name → deployment name; a model not listed is sent as a deployment of the same name. */
  deployments: z.record(z.string().min(1), z.string().min(1)).optional(),
  /** A Microsoft Entra access token, sent as a bearer token instead of an api-key. */
  entra_token: z.string().min(1).optional(),
  /** A command that prints an Entra access token (plain, or az's JSON with expiresOn); re-run before it expires. */
  entra_token_command: z.string().min(1).optional(),
});

const retry = z.strictObject({
  max_retries: z.number().int().min(0).max(10).default(2),
  initial_delay: duration.default(100),
  max_delay: duration.default(2000),
  multiplier: z.number().min(1).default(2),
  /** Original Hapax key; every retryable failure is retried, so it is accepted for compatibility. */
  retryable_errors: z.array(z.string()).optional(),
});

const healthCheck = z.strictObject({
  enabled: z.boolean().default(true),
  interval: duration.default(60_000),
  timeout: duration.default(5_000),
  failure_threshold: z.number().int().min(1).default(1),
  probe: z.enum(['models', 'completion']).default('models'),
});

const rateLimit = z.strictObject({
  requests_per_minute: z.number().int().positive().optional(),
  tokens_per_minute: z.number().int().positive().optional(),
  burst: z.number().int().positive().optional(),
});

/**
 * A spending cap over a window: US dollars (priced from `pricing`) and/or tokens. Past `soft` (a share of
 * the cap) a warning is counted and logged once per window; a request whose reservation would pass the
 * cap is refused with `status`.
 */
export const budgetLimit = z
  .strictObject({
    window: z.enum(['daily', 'weekly', 'monthly', 'rolling']),
    /** Rolling windows: how far back spend counts, e.g. 24h. */
    period: duration.optional(),
    usd: z.number().min(0).max(1_000_000).optional(),
    tokens: z.number().int().min(0).max(1e15).optional(),
    soft: z.number().gt(0).max(1).default(0.8),
    status: z.union([z.literal(429), z.literal(402)]).default(429),
  })
  .superRefine((budget, ctx) => {
    if (budget.usd === undefined && budget.tokens === undefined) ctx.addIssue({ code: 'custom', message: 'a budget needs `usd` or `tokens`' });
    if (budget.window === 'rolling' && !budget.period) ctx.addIssue({ code: 'custom', path: ['period'], message: 'a rolling budget needs a period, e.g. 24h' });
    if (budget.window !== 'rolling' && budget.period !== undefined) ctx.addIssue({ code: 'custom', path: ['period'], message: 'only rolling budgets have a period' });
  });
const budgetList = z.array(budgetLimit);

/** Whether Intl knows an IANA time zone name. */
function isTimeZone(name: string): boolean {
  try {
    new Intl.DateTimeFormat('en-US', { timeZone: name });
    return true;
  } catch {
    return false;
  }
}

/** Budgets that are not a key's or a route's own, and how reservations are estimated. */
const budgets = z.strictObject({
  /** Calendar windows start at midnight here (IANA name). */
  time_zone: z
    .string()
    .refine(isTimeZone, { message: 'expected an IANA time zone such as Europe/Berlin or UTC' })
    .default('UTC'),
  /** Output tokens reserved for a request that sets no max_tokens (budgets and tokens_per_minute). */
  reserve_output_tokens: z.number().int().positive().default(512),
  /** Budgets of every key that has none of its own. */
  per_key: budgetList.optional(),
  /** By route metrics label, then value: `{department: {marketing: [...]}}`. */
  labels: z.record(z.string(), z.record(z.string(), budgetList)).optional(),
});

/**
 * A model name in `models` is a glob pattern when it has a wildcard: `*` matches any run of characters
 * (`/` included: model names are not paths), `?` one character. Other glob syntax is refused rather than
 * taken literally, so `claude-[0-9]*` cannot silently match nothing.
 */
export const isModelPattern = (name: string): boolean => name.includes('*') || name.includes('?');
const UNSUPPORTED_GLOB = /[[\]{}\\]/;
const UNSUPPORTED_GLOB_MESSAGE = 'only * and ? are wildcards in a model name; [ ] { } \\ are not allowed';
const modelName = z
  .string()
  .min(1)
  .refine((name) => !UNSUPPORTED_GLOB.test(name), { message: UNSUPPORTED_GLOB_MESSAGE });

/** The upstream name a model is sent as: a concrete name, never a pattern. */
const upstreamModel = z
  .string()
  .min(1)
  .refine((name) => !isModelPattern(name) && !UNSUPPORTED_GLOB.test(name), { message: 'the model sent upstream must be a plain name, not a pattern' });

/**
 * The shape the product documents use: `models: {name: {api_key, endpoint}}`; `model` renames (the
 * upstream model a request for this name is sent as).
 */
const modelEntry = z.strictObject({
  model: upstreamModel.optional(),
  api_key: z.string().optional(),
  endpoint: routePath.optional(),
});

/**
 * `models`: a list of names and patterns, or a map of them to settings. In the map a plain string value is
 * an alias (`claude-opus-5-5: gpt-5`): the upstream model the name is sent as.
 */
const providerModels = z
  // Map keys are checked below, not by the record: a key that fails inside the record makes zod report the
  // whole map as "expected a list" instead of naming the key.
  .union([z.array(modelName), z.record(z.string(), z.union([upstreamModel, modelEntry.nullable()]))])
  .superRefine((models, ctx) => {
    if (Array.isArray(models)) return;
    for (const [name, entry] of Object.entries(models)) {
      if (name === '') ctx.addIssue({ code: 'custom', path: [name], message: 'a model name cannot be empty' });
      if (UNSUPPORTED_GLOB.test(name)) ctx.addIssue({ code: 'custom', path: [name], message: UNSUPPORTED_GLOB_MESSAGE });
      // An endpoint route always serves one model; a pattern names many.
      if (isModelPattern(name) && entry !== null && typeof entry === 'object' && entry.endpoint !== undefined) {
        ctx.addIssue({ code: 'custom', path: [name, 'endpoint'], message: 'a pattern serves many models, so it cannot have an endpoint; list the model by name' });
      }
    }
  });

const providerFields = z.strictObject({
  type: z.enum(PROVIDER_TYPES),
  base_url: z.url({ protocol: /^https?$/ }).optional(),
  api_key: z.string().optional(),
  /** The default model: sent upstream as-is, so never a pattern. */
  model: upstreamModel.optional(),
  models: providerModels.optional(),
  timeout: duration.optional(),
  /** Streams: no first event within this (from the attempt's start) fails over to the next candidate. */
  first_token_timeout: duration.optional(),
  /** Streams: silence this long between two events after the first ends the stream (in place of `timeout`). */
  stream_idle_timeout: duration.optional(),
  headers: z.record(z.string(), z.string()).optional(),
  weight: z.number().min(0).default(1),
  max_concurrency: z.number().int().positive().optional(),
  /** Connections to the provider's origin at most; unset: no cap (max_concurrency and the fair queue bound traffic). */
  max_connections: z.number().int().positive().optional(),
  /** Offer HTTP/2 to an https origin (chosen by ALPN; HTTP/1.1 when the origin does not speak it). */
  http2: z.boolean().optional(),
  retry: retry.partial().optional(),
  /**
   * Same-dialect clients (Anthropic Messages to anthropic, Chat Completions to openai/openai_compatible) are
   * passed through unchanged (the lossless lane); false translates them like any other client.
   */
  lossless: z.boolean().default(true),
  /** Which beta names a client's anthropic-beta / openai-beta header may bring upstream (globs; default: all). */
  betas: z.strictObject({ allow: z.array(z.string().min(1)).optional(), deny: z.array(z.string().min(1)).optional() }).optional(),
  /** Anthropic: sent when the client gave no max_tokens (Anthropic requires one). */
  max_tokens: z.number().int().positive().optional(),
  /** Anthropic: the anthropic-version sent; when set, it also replaces the one a lossless-lane client sent. */
  anthropic_version: z.string().optional(),
  /** False: clients' reasoning settings (thinking, reasoning_effort) are not sent, for models that refuse them. */
  send_reasoning: z.boolean().optional(),
  /** azure_openai: the API shape, api-version, deployments and Entra credentials. */
  azure: azure.optional(),
  /** openai_compatible: a known host's base URL, auth and quirks (src/config/presets.ts). */
  preset: z.enum(PRESET_NAMES).optional(),
  /** openai_compatible: the server also speaks the Responses API, so Responses clients take the lossless lane to it. */
  responses: z.boolean().optional(),
  /** Mock provider: fixed reply text and an artificial latency. */
  reply: z.string().optional(),
  latency: duration.optional(),
  /** Bedrock: the AWS region whose endpoint (and signature) requests use. */
  region: z.string().min(1).optional(),
  /** Bedrock: a named profile of the shared AWS config and credentials files. */
  profile: z.string().min(1).optional(),
  /** Bedrock: fixed AWS keys (write them as ${ENV}); without them, the standard AWS credential chain. */
  aws_access_key_id: z.string().min(1).optional(),
  aws_secret_access_key: z.string().min(1).optional(),
  aws_session_token: z.string().min(1).optional(),
  /** Vertex AI: the Google Cloud project and location (e.g. us-east5, or global) requests go to. */
  project: z.string().min(1).optional(),
  location: z.string().min(1).optional(),
  /** Vertex AI: a service-account key (or workload identity federation) JSON file; without it, Application Default Credentials. */
  credentials_file: z.string().min(1).optional(),
});

/** What the cloud provider types cannot do without. */
function checkCloudSettings(provider: z.infer<typeof providerFields>, ctx: z.RefinementCtx): void {
  const need = (key: 'region' | 'project' | 'location', why: string) => {
    if (provider[key] === undefined) ctx.addIssue({ code: 'custom', path: [key], message: `required for type ${provider.type}: ${why}` });
  };
  if (provider.type === 'bedrock') {
    need('region', 'the AWS region, e.g. us-east-1');
    if ((provider.aws_access_key_id === undefined) !== (provider.aws_secret_access_key === undefined)) {
      const missing = provider.aws_access_key_id === undefined ? 'aws_access_key_id' : 'aws_secret_access_key';
      ctx.addIssue({ code: 'custom', path: [missing], message: 'aws_access_key_id and aws_secret_access_key go together' });
    }
  }
  if (provider.type === 'vertex') {
    need('project', 'the Google Cloud project id');
    need('location', 'the Vertex AI location, e.g. us-east5 or global');
  }
}

const provider = providerFields.superRefine((provider, ctx) => {
  checkCloudSettings(provider, ctx);
  // The default model comes from `model`, else the first listed name; a pattern cannot be sent upstream.
  const names = Array.isArray(provider.models) ? provider.models : Object.keys(provider.models ?? {});
  if (provider.type !== 'mock' && provider.model === undefined && names.length > 0 && names.every(isModelPattern)) {
    ctx.addIssue({ code: 'custom', path: ['model'], message: "required when models lists only patterns (the provider's default model)" });
  }
});

const circuitBreaker = z.strictObject({
  max_requests: z.number().int().positive().default(1),
  interval: duration.default(30_000),
  timeout: duration.default(10_000),
  failure_threshold: z.number().int().positive().default(3),
  test_mode: z.boolean().optional(),
});

/** The handler names a route may use; src/server/client-apis.ts declares each one exactly once (type-checked). */
const HANDLERS = ['completion', 'chat', 'messages', 'health', 'metrics', 'advanced_completion', 'models', 'embeddings', 'ollama_chat', 'ollama_tags', 'ollama_embed', 'ollama_version', 'count_tokens', 'responses'] as const;

/** The original Hapax per-route health check. */
const routeHealthCheck = z.strictObject({
  enabled: z.boolean().optional(),
  interval: duration.optional(),
  timeout: duration.optional(),
  threshold: z.number().int().min(0).optional(),
  checks: z.record(z.string(), z.string()).optional(),
});

/**
 * Failover order. A name is a tier of its own; a nested list is one tier whose providers share traffic
 * (`[[openai, azure], anthropic]`): the tier is balanced by `load_balancing`, the next tier is the fallback.
 */
const providerPreference = z.array(z.union([z.string(), z.array(z.string()).min(1, 'a tier names at least one provider')]));

/** How traffic is shared inside a tier of `provider_preference` (flat lists are pure failover). */
const loadBalancing = z.strictObject({
  /** weighted (the default) uses each provider's `weight`; with equal weights it is round robin. */
  strategy: z.enum(['priority', 'round_robin', 'weighted', 'least_latency', 'least_busy']).default('weighted'),
  /** Overrides `providers.<name>.weight` for this policy. */
  weights: z.record(z.string(), z.number().min(0)).optional(),
});

/** Answers kept in memory (or the shared state store) and served again for identical requests. Off by default. */
const responseCache = z.strictObject({
  enabled: z.boolean().default(false),
  ttl: duration.default(300_000),
  max_entries: z.number().int().positive().default(1000),
});

const route = z.strictObject({
  path: routePath,
  handler: z.enum(HANDLERS),
  version: z.string().optional(),
  methods: z.array(z.string().toUpperCase()).optional(),
  headers: z.record(z.string(), z.string()).optional(),
  middleware: z.array(z.string()).optional(),
  health_check: routeHealthCheck.optional(),
  metrics_labels: z.record(z.string(), z.string()).optional(),
  timeout: duration.optional(),
  /** Overrides each provider's first_token_timeout on this route. */
  first_token_timeout: duration.optional(),
  /** Overrides each provider's stream_idle_timeout on this route. */
  stream_idle_timeout: duration.optional(),
  /** Streams: no first event from the first candidate within this, start the next one too; the first to answer wins. Off unless set. */
  hedge_after: duration.optional(),
  /**
   * Streams: an upstream stream that fails after the client got part of the answer is continued on the next
   * candidate (the partial answer sent as a prefill, the rest spliced into the same client stream). Off unless set.
   */
  resume_streams: z.boolean().optional(),
  max_body_size: z.number().int().positive().optional(),
  provider_preference: providerPreference.optional(),
  load_balancing: loadBalancing.optional(),
  rate_limit: rateLimit.optional(),
  /** Spending caps on all of this route's traffic. */
  budgets: budgetList.optional(),
  auth: z.boolean().optional(),
  dedup: z.boolean().optional(),
});

/** The original Hapax response cache under `llm.cache`. */
const llmCache = z.strictObject({
  enable: z.boolean().optional(),
  type: z.enum(['memory', 'redis', 'file']).optional(),
  ttl: duration.optional(),
  max_size: z.number().int().min(0).optional(),
  dir: z.string().optional(),
  redis: z
    .strictObject({ address: z.string().optional(), password: z.string().optional(), db: z.number().int().min(0).optional() })
    .optional(),
});

/** The original Go Hapax single-provider block; folded into `providers` by load.ts. */
const llm = z.strictObject({
  provider: z.string().optional(),
  model: z.string().optional(),
  api_key: z.string().optional(),
  endpoint: urlOrEmpty.optional(),
  system_prompt: z.string().optional(),
  max_context_tokens: z.number().int().optional(),
  options: z.record(z.string(), z.unknown()).optional(),
  retry: retry.partial().optional(),
  backup_providers: z
    .array(z.strictObject({ provider: z.string(), model: z.string().optional(), api_key: z.string().optional() }))
    .optional(),
  health_check: healthCheck.partial().optional(),
  cache: llmCache.optional(),
});

/** The original Hapax HTTP/3 (QUIC) listener settings. */
const http3 = z.strictObject({
  enabled: z.boolean().optional(),
  port: z.number().int().min(0).max(65535).optional(),
  tls_cert_file: z.string().optional(),
  tls_key_file: z.string().optional(),
  idle_timeout: duration.optional(),
  max_bi_streams_concurrent: z.number().int().min(0).optional(),
  max_uni_streams_concurrent: z.number().int().min(0).optional(),
  max_stream_receive_window: z.number().int().min(0).optional(),
  max_connection_receive_window: z.number().int().min(0).optional(),
  enable_0rtt: z.boolean().optional(),
  max_0rtt_size: z.number().int().min(0).optional(),
  allow_0rtt_replay: z.boolean().optional(),
  udp_receive_buffer_size: z.number().int().min(0).optional(),
});

/** Requests waiting for a provider at its `max_concurrency`; also takes the original Hapax's queue keys. */
const queue = z.strictObject({
  /** Requests waiting for a provider's max_concurrency slot, at most; beyond: 503 with Retry-After. */
  max_size: z.number().int().positive().default(1000),
  /** Longest wait for a slot. */
  timeout: duration.default(30_000),
  // The original Hapax's keys; `initial_size` stands in for `max_size` when that is not given (load.ts).
  enabled: z.boolean().optional(),
  initial_size: z.number().int().positive().optional(),
  state_path: z.string().optional(),
  save_interval: duration.optional(),
});

/** The original Hapax request/response processing. */
const processing = z.strictObject({
  request_templates: z.record(z.string(), z.string()).optional(),
  response_formatting: z
    .strictObject({
      clean_json: z.boolean().optional(),
      trim_whitespace: z.boolean().optional(),
      max_length: z.number().int().min(0).optional(),
    })
    .optional(),
});

const apiKey = z
  .strictObject({
    name: z.string().min(1),
    key: z.string().min(1).optional(),
    key_sha256: z.string().regex(/^[0-9a-f]{64}$/i, 'expected 64 hex characters').optional(),
    rate_limit: rateLimit.optional(),
    budgets: budgetList.optional(),
    routes: z.array(z.string()).optional(),
    models: z.array(z.string()).optional(),
    expires: z
      .string()
      .refine((v) => !Number.isNaN(Date.parse(v)), 'expected an ISO date, e.g. 2027-01-31')
      .optional(),
  })
  .refine((k) => k.key !== undefined || k.key_sha256 !== undefined, { message: 'a key needs `key` or `key_sha256`' });

/**
 * Prices in US dollars per million tokens, for budgets, the hapax_cost_usd_total metric, request logs and
 * usage reports. Prompt tokens read from or written to the provider's prompt cache have prices of their own
 * (without one they cost `input`); reasoning tokens are part of the output and cost `output` unless
 * `reasoning` says otherwise.
 */
const usdPerMillion = z.number({ error: 'expected US dollars per million tokens (a number, e.g. 2.5)' }).min(0, 'a price cannot be negative').max(100_000);
const price = z.strictObject(
  {
    input: usdPerMillion,
    output: usdPerMillion,
    cached_input: usdPerMillion.optional(),
    cache_write: usdPerMillion.optional(),
    reasoning: usdPerMillion.optional(),
  },
  { error: (issue) => (issue.code === 'invalid_type' ? 'expected {input, output} in US dollars per million tokens, e.g. {input: 2.5, output: 10}' : undefined) },
);

/** `pricing` keys: a model name or `provider/model`, where `*` and `?` are wildcards (as in `models`). */
const pricingKey = z
  .string()
  .min(1, 'a model name cannot be empty')
  .refine((name) => !UNSUPPORTED_GLOB.test(name), { message: UNSUPPORTED_GLOB_MESSAGE });

/** OpenTelemetry export: one span per request and one per upstream attempt, over OTLP/HTTP (JSON). */
const tracing = z.strictObject({
  /** The collector's traces URL, e.g. http://otel-collector:4318/v1/traces. No endpoint, no export. */
  otlp_endpoint: z.url({ protocol: /^https?$/ }).optional(),
  service_name: z.string().min(1).default('hapax'),
  /** Sent with every export (e.g. a vendor's auth header); never logged. */
  headers: z.record(z.string(), z.string()).optional(),
  /** Share of new traces to keep (0-1); a client's sampled flag is followed when it sends a traceparent. */
  sample_ratio: z.number().min(0).max(1).default(1),
});

export const configSchema = z.strictObject({
  server: z
    .strictObject({
      host: z.string().default('0.0.0.0'),
      port: z.number().int().min(0).max(65535).default(8080),
      /** How long a client may take to send its request headers (0: no bound). */
      read_header_timeout: duration.default(10_000),
      /** How long the request body may take to arrive once the headers are in (0: no bound). */
      read_timeout: duration.default(30_000),
      write_timeout: duration.optional(),
      max_header_bytes: z.number().int().positive().default(16_384),
      shutdown_timeout: duration.default(30_000),
      request_timeout: duration.default(30_000),
      max_body_size: z.number().int().positive().default(1_048_576),
      http3: http3.optional(),
      tls: z.strictObject({ cert_file: z.string(), key_file: z.string() }).optional(),
      workers: z.union([z.number().int().positive(), z.literal('auto')]).optional(),
    })
    .prefault({}),
  llm: llm.optional(),
  providers: z.record(z.string().regex(/^[A-Za-z0-9_.-]+$/, 'provider names use letters, digits, _ . -'), provider).default({}),
  provider_preference: providerPreference.optional(),
  load_balancing: loadBalancing.optional(),
  circuit_breaker: circuitBreaker.prefault({}),
  retry: retry.prefault({}),
  health_check: healthCheck.prefault({}),
  logging: z
    .strictObject({
      level: z.enum(['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent']).default('info'),
      format: z.enum(['auto', 'json', 'text']).default('auto'),
      log_bodies: z.boolean().default(false),
    })
    .prefault({}),
  metrics: z
    .strictObject({ enabled: z.boolean().default(true), path: routePath.default('/metrics'), auth: z.boolean().default(false) })
    .prefault({}),
  routes: z.array(route).optional(),
  queue: queue.prefault({}),
  processing: processing.optional(),
  auth: z
    .strictObject({
      enabled: z.boolean().default(false),
      keys: z.array(apiKey).default([]),
      /** Managed keys (`hapax keys create`), stored as hashes. */
      key_file: z.string().min(1, 'expected a file path').default('.hapax/keys.json'),
    })
    .prefault({}),
  rate_limit: rateLimit.optional(),
  budgets: budgets.prefault({}),
  dedup: z.strictObject({ enabled: z.boolean().default(true) }).prefault({}),
  cache: responseCache.prefault({}),
  cors: z
    .strictObject({
      origins: z.union([z.literal('*'), z.array(z.string())]).default('*'),
      methods: z.array(z.string().toUpperCase()).default(['GET', 'POST', 'DELETE', 'OPTIONS']),
      headers: z.array(z.string()).default(['content-type', 'authorization', 'x-api-key', 'x-request-id', 'anthropic-version', 'traceparent']),
      credentials: z.boolean().default(false),
      max_age: duration.default(600_000),
    })
    .optional(),
  /** Shared state for many instances (rate limits, keys, cache, usage); in memory when redis_url is unset. */
  state: z
    .strictObject({
      /** redis://[user:password@]host:port[/db] or rediss:// (TLS); never echoed, it may hold a password. */
      redis_url: z.string().refine((url) => /^rediss?:\/\/[^\s]+$/.test(url), { message: 'expected a redis:// or rediss:// URL' }).optional(),
      /** Prefix of every Redis key Hapax writes, so gateways that must not share state can share a Redis. */
      key_prefix: z.string().min(1).default('hapax:'),
      /** Redis unreachable: `open` admits requests on per-instance limits; `closed` answers 503. */
      on_failure: z.enum(['open', 'closed']).default('open'),
    })
    .prefault({}),
  /** The Responses API's stored responses (`store`): how long each is kept, and how many at most in memory (Redis bounds its own). */
  responses: z
    .strictObject({
      ttl: duration.default(30 * 86_400_000),
      max_entries: z.number().int().positive().default(1_000),
    })
    .prefault({}),
  /**
   * USD per million tokens by model name, `provider/model`, or a pattern of either (`claude-*`), over the
   * table Hapax ships; which entry wins is src/observability/pricing.ts's rule.
   */
  pricing: z.record(pricingKey, price).optional(),
  admin: z.strictObject({ key: z.string().min(16, 'use at least 16 characters').optional() }).prefault({}),
  tracing: tracing.optional(),
});

export type HapaxConfig = z.infer<typeof configSchema>;
export type ProviderConfig = z.infer<typeof provider>;
export type AzureConfig = z.infer<typeof azure>;
export type ModelEntry = z.infer<typeof modelEntry>;
export type RouteConfig = z.infer<typeof route>;
export type HandlerName = (typeof HANDLERS)[number];
export type RetryConfig = z.infer<typeof retry>;
export type CircuitBreakerConfig = z.infer<typeof circuitBreaker>;
export type HealthCheckConfig = z.infer<typeof healthCheck>;
export type PreferenceConfig = z.infer<typeof providerPreference>;
export type LoadBalancingConfig = z.infer<typeof loadBalancing>;
export type ResponseCacheConfig = z.infer<typeof responseCache>;
export type StateConfig = HapaxConfig['state'];
export type ProviderType = (typeof PROVIDER_TYPES)[number];
export type TracingConfig = z.infer<typeof tracing>;
export type PriceConfig = z.infer<typeof price>;
export type BudgetLimit = z.infer<typeof budgetLimit>;
export type BudgetsConfig = z.infer<typeof budgets>;

/** Every `models` entry, whichever way it was written, as [name or pattern, settings] in the file's order. */
function modelEntries(provider: Pick<ProviderConfig, 'models'>): Array<[string, ModelEntry | undefined]> {
  const { models } = provider;
  if (!models) return [];
  if (Array.isArray(models)) return models.map((name) => [name, undefined]);
  // A plain string value is an alias: the upstream model name.
  return Object.entries(models).map(([name, entry]) => [name, typeof entry === 'string' ? { model: entry } : (entry ?? undefined)]);
}

/**
 * A provider's listed models (names and aliases, not patterns), whichever way `models` was written (a
 * list of names, or a map of names to per-model settings): [name, settings] pairs in the file's order.
 * `settings.model`, when set, is the upstream name the listed name is sent as.
 */
export function listedModels(provider: Pick<ProviderConfig, 'models'>): Array<[string, ModelEntry | undefined]> {
  return modelEntries(provider).filter(([name]) => !isModelPattern(name));
}

/** A provider's model patterns (`claude-*`), with their settings, in the file's order. */
export function modelPatterns(provider: Pick<ProviderConfig, 'models'>): Array<[string, ModelEntry | undefined]> {
  return modelEntries(provider).filter(([name]) => isModelPattern(name));
}
