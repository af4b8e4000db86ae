/** The config loader, without sockets: what a user's YAML turns into, and what they are told when it is wrong. */
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { defaultConfig } from '../src/config/default.ts';
import { parseDuration } from '../src/config/duration.ts';
import { expandString } from '../src/config/env.ts';
import { ConfigError } from '../src/config/errors.ts';
import { loadConfigFile, parseConfig } from '../src/config/load.ts';
import { PROVIDER_TYPES } from '../src/config/schema.ts';

/** The accepted provider types as problem reports list them (the list grows with every new provider type). */
const TYPES = PROVIDER_TYPES.join(', ');

const NO_ENV: NodeJS.ProcessEnv = {};

/** The problems a config is rejected with; fails the test when it loads. */
function problemsOf(yaml: string, env: NodeJS.ProcessEnv = NO_ENV): string[] {
  try {
    parseConfig(yaml, 'test.yaml', env);
  } catch (error) {
    if (error instanceof ConfigError) return error.problems;
    throw error;
  }
  throw new Error('expected the config to be rejected');
}

const MOCK = 'providers:\n  m: {type: mock}\n';

describe('the configuration examples of the product documents', () => {
  it('loads a provider with a models map, each model with its own key and endpoint', () => {
    const { config, warnings } = parseConfig(
      `
providers:
  anthropic:
    type: anthropic
    models:
      claude-3.5-haiku:
        api_key: \${ANTHROPIC_API_KEY}
        endpoint: /v1/anthropic/haiku
`,
      'spec',
      { ANTHROPIC_API_KEY: 'sk-ant-example' },
    );
    const anthropic = config.providers.anthropic;
    expect(anthropic.type).toBe('anthropic');
    expect(anthropic.models).toEqual({ 'claude-3.5-haiku': { api_key: 'sk-ant-example', endpoint: '/v1/anthropic/haiku' } });
    expect(anthropic.model).toBe('claude-3.5-haiku'); // the first listed model is the default
    expect(warnings).toEqual([]);
  });

  it('loads versioned routes with their handlers', () => {
    const { config } = parseConfig(`${MOCK}
routes:
  - path: /v1/completions
    handler: completion
    version: v1
  - path: /v2/completions
    handler: advanced_completion
    version: v2
`);
    expect(config.routes?.map((r) => [r.path, r.handler, r.version])).toEqual([
      ['/v1/completions', 'completion', 'v1'],
      ['/v2/completions', 'advanced_completion', 'v2'],
    ]);
  });

  it('loads a route with metrics labels', () => {
    const { config } = parseConfig(`${MOCK}
routes:
  - path: "/v1/marketing/completions"
    handler: completion
    version: v1
    metrics_labels:
      department: marketing
`);
    expect(config.routes?.[0].metrics_labels).toEqual({ department: 'marketing' });
  });

  it('loads two providers with a provider_preference', () => {
    const { config } = parseConfig(
      `
providers:
  anthropic:
    type: anthropic
    model: claude-3-haiku
    api_key: \${ANTHROPIC_API_KEY}
  openai:
    type: openai
    model: gpt-4
    api_key: \${OPENAI_API_KEY}

provider_preference:
  - anthropic
  - openai
`,
      'spec',
      { ANTHROPIC_API_KEY: 'sk-ant-1', OPENAI_API_KEY: 'sk-oai-2' },
    );
    expect(config.provider_preference).toEqual(['anthropic', 'openai']);
    expect(config.providers.anthropic).toMatchObject({ type: 'anthropic', model: 'claude-3-haiku', api_key: 'sk-ant-1' });
    expect(config.providers.openai).toMatchObject({ type: 'openai', model: 'gpt-4', api_key: 'sk-oai-2' });
  });

  it('loads the camelCase circuitBreaker and providerPreference spellings', () => {
    const { config, warnings } = parseConfig(`
providers:
  ollama: {type: ollama, model: llama3.2}
  anthropic: {type: anthropic, model: claude-3-5-haiku-latest}
  openai: {type: openai, model: gpt-4o-mini}

circuitBreaker:
  maxRequests: 100
  interval: 30s
  timeout: 10s
  failureThreshold: 5

providerPreference:
  - ollama
  - anthropic
  - openai
`);
    expect(config.circuit_breaker).toEqual({ max_requests: 100, interval: 30_000, timeout: 10_000, failure_threshold: 5 });
    expect(config.provider_preference).toEqual(['ollama', 'anthropic', 'openai']);
    expect(warnings).toEqual([]);
  });

  it('says what is missing when the preference snippet is used without its providers', () => {
    expect(problemsOf('providers:\n  m: {type: mock}\nauth:\n  keys:\n    - {name: a, key: k1, expires: next tuesday}\n')).toEqual([
      'auth.keys[0].expires: expected an ISO date, e.g. 2027-01-31',
    ]);
    expect(problemsOf('providerPreference: [ollama, anthropic]\n')).toEqual([
      'providers: no provider configured; add one under providers (or an llm block)',
      'provider_preference[0]: unknown provider "ollama" (no providers are configured)',
      'provider_preference[1]: unknown provider "anthropic" (no providers are configured)',
    ]);
  });
});

describe('configs written for the original Go Hapax', () => {
  // Every section the original understood, in its spelling, with values of our own.
  const GO_CONFIG = `
server:
  port: 9090
  read_timeout: 45s
  write_timeout: 1m
  max_header_bytes: 2097152
  shutdown_timeout: 20s
  http3:
    enabled: false
    port: 8443
    tls_cert_file: /etc/hapax/tls.crt
    tls_key_file: /etc/hapax/tls.key
    idle_timeout: 1m
    max_bi_streams_concurrent: 50
    enable_0rtt: true

llm:
  provider: openai
  model: gpt-4o-mini
  api_key: \${OPENAI_API_KEY}
  endpoint: https://llm-proxy.internal.example/v1
  system_prompt: You answer questions about the staff handbook.
  max_context_tokens: 128000
  options:
    temperature: 0.2
    max_tokens: 800
  retry:
    max_retries: 4
    initial_delay: 250ms
    max_delay: 8s
    multiplier: 1.5
    retryable_errors: [rate_limit, timeout, server_error]
  backup_providers:
    - provider: anthropic
      model: claude-3-5-haiku-latest
      api_key: \${ANTHROPIC_API_KEY}
    - provider: ollama
      model: qwen2.5:7b
  health_check:
    enabled: true
    interval: 20s
    timeout: 3s
    failure_threshold: 2
  cache:
    enable: true
    type: redis
    ttl: 12h
    max_size: 5000
    redis: {address: "redis.internal:6379", password: "", db: 2}

circuit_breaker:
  max_requests: 10
  interval: 1m
  timeout: 15s
  failure_threshold: 4
  test_mode: false

logging:
  level: debug
  format: text

metrics:
  enabled: true

routes:
  - path: /v1/completions
    handler: completion
    version: v1
    methods: [post, OPTIONS]
    headers:
      Content-Type: application/json
    middleware: [auth, rate-limit]
    health_check:
      enabled: true
      interval: 30s
      timeout: 2s
      threshold: 3
      checks: {api: http}
  - path: /health
    handler: health
    version: v1
    methods: [GET]

queue:
  enabled: true
  initial_size: 250
  state_path: /var/lib/hapax/queue.json
  save_interval: 30s

processing:
  request_templates:
    summary: "Summarise: {{.Input}}"
  response_formatting:
    clean_json: true
    trim_whitespace: true
    max_length: 4000
`;
  const ENV = { OPENAI_API_KEY: 'sk-oai-go', ANTHROPIC_API_KEY: 'sk-ant-go' };

  it('loads unchanged, with the llm block folded into providers and the preference', () => {
    const { config } = parseConfig(GO_CONFIG, 'go.yaml', ENV);
    expect(config.server).toMatchObject({ port: 9090, read_timeout: 45_000, write_timeout: 60_000, shutdown_timeout: 20_000, max_header_bytes: 2_097_152 });
    expect(config.providers).toEqual({
      openai: { type: 'openai', model: 'gpt-4o-mini', api_key: 'sk-oai-go', base_url: 'https://llm-proxy.internal.example/v1', weight: 1, lossless: true },
      anthropic: { type: 'anthropic', model: 'claude-3-5-haiku-latest', api_key: 'sk-ant-go', weight: 1, lossless: true },
      ollama: { type: 'ollama', model: 'qwen2.5:7b', weight: 1, lossless: true },
    });
    expect(config.provider_preference).toEqual(['openai', 'anthropic', 'ollama']);
    expect(config.retry).toMatchObject({ max_retries: 4, initial_delay: 250, max_delay: 8_000, multiplier: 1.5 });
    expect(config.health_check).toMatchObject({ enabled: true, interval: 20_000, timeout: 3_000, failure_threshold: 2 });
    expect(config.circuit_breaker).toMatchObject({ max_requests: 10, interval: 60_000, timeout: 15_000, failure_threshold: 4 });
    expect(config.logging).toMatchObject({ level: 'debug', format: 'text' });
    expect(config.llm?.system_prompt).toBe('You answer questions about the staff handbook.');
    expect(config.routes?.[0].methods).toEqual(['POST', 'OPTIONS']);
    expect(config.queue?.max_size).toBe(250); // the original's initial_size
  });

  it('warns once for each key it accepts but does not act on', () => {
    const { warnings } = parseConfig(GO_CONFIG, 'go.yaml', ENV);
    expect(warnings).toEqual(
      [
        'server.write_timeout',
        'llm.max_context_tokens',
        'llm.options',
        'llm.cache',
        'circuit_breaker.test_mode',
        'queue.enabled',
        'queue.state_path',
        'queue.save_interval',
        'processing',
        'routes[].middleware',
        'routes[].headers',
        'routes[].health_check',
      ].map((key) => `${key}: accepted but not applied by this version of Hapax`),
    );
  });

  it('warns once per key however many routes set it', () => {
    const { warnings } = parseConfig(`${MOCK}
routes:
  - {path: /a, handler: completion, middleware: [auth]}
  - {path: /b, handler: completion, middleware: [cors]}
`);
    expect(warnings).toEqual(['routes[].middleware: accepted but not applied by this version of Hapax']);
  });

  it('loads the minimal llm-only file, with an empty endpoint meaning the default', () => {
    const { config } = parseConfig('server:\n  port: 8080\nllm:\n  provider: ollama\n  model: llama2\n  endpoint: ""\nmetrics:\n  enabled: true\n');
    expect(config.providers).toEqual({ ollama: { type: 'ollama', model: 'llama2', weight: 1, lossless: true } });
    expect(config.provider_preference).toEqual(['ollama']);
  });

  it('defaults llm.provider to ollama, as the original did, and says so', () => {
    const { config, warnings } = parseConfig('llm:\n  model: llama3.2\n');
    expect(config.providers.ollama).toMatchObject({ type: 'ollama', model: 'llama3.2' });
    expect(warnings).toEqual(['llm.provider: not set; using ollama, as the original Hapax did']);
  });

  it('lets llm.provider name an entry under providers, and keeps the other providers as failover', () => {
    const { config } = parseConfig(`
providers:
  local: {type: openai_compatible, base_url: "http://127.0.0.1:8000/v1", model: llama}
  spare: {type: mock}
llm:
  provider: local
  backup_providers:
    - {provider: openai, model: gpt-4o-mini, api_key: sk-x}
`);
    expect(Object.keys(config.providers)).toEqual(['local', 'spare', 'openai']);
    expect(config.providers.local.base_url).toBe('http://127.0.0.1:8000/v1'); // not replaced by the llm block
    expect(config.provider_preference).toEqual(['local', 'openai', 'spare']);
  });

  it('keeps an explicit provider_preference over the llm order', () => {
    const { config } = parseConfig('llm: {provider: openai, model: gpt-4o, backup_providers: [{provider: mock}]}\nprovider_preference: [mock, openai]\n');
    expect(config.provider_preference).toEqual(['mock', 'openai']);
  });

  it('rejects unknown llm providers, missing models and bad endpoints', () => {
    expect(
      problemsOf(`
llm:
  provider: openia
  model: gpt-4o
  endpoint: localhost:11434
  backup_providers:
    - {provider: anthropic}
    - {provider: palm, model: flash}
`),
    ).toEqual([
      'llm.endpoint: expected an http:// or https:// URL',
      `llm.provider: expected one of ${TYPES} or a name under providers (did you mean openai?)`,
      'llm.backup_providers[0].model: required',
      `llm.backup_providers[1].provider: expected one of ${TYPES} or a name under providers`,
    ]);
  });
});

describe('environment variables', () => {
  const env = { HOST_NAME: 'gw.example', EMPTY: '', KEY: 'sk-123' };
  const expand = (text: string) => expandString(text, env);

  it('expands ${VAR}, $VAR, ${VAR:-default} and ${VAR-default}', () => {
    expect(expand('https://${HOST_NAME}/v1')).toBe('https://gw.example/v1');
    expect(expand('$HOST_NAME:8080')).toBe('gw.example:8080');
    expect(expand('${MISSING:-fallback}')).toBe('fallback');
    expect(expand('${EMPTY:-fallback}')).toBe('fallback'); // `:-` also replaces an empty value
    expect(expand('${EMPTY-fallback}')).toBe(''); // `-` replaces only an unset one
    expect(expand('${MISSING-fallback}')).toBe('fallback');
    expect(expand('${HOST_NAME:-fallback}')).toBe('gw.example');
    expect(expand('${MISSING:-${HOST_NAME}}')).toBe('gw.example'); // a default may hold a reference
    expect(expand('${MISSING}')).toBe('');
  });

  it('reads $$ as a literal dollar and leaves a lone $ alone', () => {
    expect(expand('pa$$word')).toBe('pa$word');
    expect(expand('$${HOST_NAME}')).toBe('${HOST_NAME}');
    expect(expand('costs $5')).toBe('costs $5');
  });

  it('expands values after parsing, so a value cannot inject YAML', () => {
    const { config } = parseConfig(`${MOCK}llm:\n  system_prompt: \${PROMPT}\n`, 't', { PROMPT: 'a: b\nproviders: {}' });
    expect(config.llm?.system_prompt).toBe('a: b\nproviders: {}');
    expect(Object.keys(config.providers)).toEqual(['m']);
  });

  it('turns expanded numbers and booleans into the types the schema wants', () => {
    const { config } = parseConfig(
      `
server:
  port: \${PORT:-8080}
  max_body_size: $BODY
dedup:
  enabled: \${DEDUP:-false}
providers:
  m: {type: mock, latency: "\${LATENCY:-25ms}", reply: "\${REPLY:-42}"}
`,
      't',
      { BODY: '2048' },
    );
    expect(config.server.port).toBe(8080);
    expect(config.server.max_body_size).toBe(2048);
    expect(config.dedup.enabled).toBe(false);
    expect(config.providers.m.latency).toBe(25);
    expect(config.providers.m.reply).toBe('42'); // a string where the schema wants a string
  });

  it('reads YAML numbers as strings where only a string fits, as the original did', () => {
    const { config } = parseConfig(`providers:\n  a: {type: openai, model: 4, api_key: 12345}\nroutes:\n  - {path: /x, handler: chat, version: 2}\n`);
    expect(config.providers.a).toMatchObject({ model: '4', api_key: '12345' });
    expect(config.routes?.[0].version).toBe('2');
  });

  it('warns about unset variables without a default, by key path and name only', () => {
    const { warnings } = parseConfig('providers:\n  openai: {type: openai, model: gpt-4o, api_key: "${OPENAI_API_KEY}"}\n', 't', NO_ENV);
    expect(warnings).toEqual(['providers.openai.api_key: environment variable OPENAI_API_KEY is not set; using an empty value']);
  });

  it('rejects a malformed reference with its key path', () => {
    expect(problemsOf(`${MOCK}llm:\n  system_prompt: "Hello \${NAME"\n  model: "\${}"\n`)).toEqual([
      'llm.system_prompt: unterminated ${ (close it with }, or write $$ for a literal $)',
      'llm.model: expected a variable name inside ${...}, optionally followed by :-default',
    ]);
  });

  it('hints at quoting when ${VAR} breaks a flow mapping', () => {
    const problems = problemsOf('server: {port: ${PORT}}\n');
    expect(problems[0]).toMatch(/^YAML /);
    expect(problems.at(-1)).toBe('hint: inside { } or [ ], quote values that use ${VAR}: {port: "${PORT}"}');
  });
});

describe('durations', () => {
  it('reads 100ms, 30s, 1m, compound Go durations and bare milliseconds', () => {
    expect(parseDuration('100ms')).toBe(100);
    expect(parseDuration('30s')).toBe(30_000);
    expect(parseDuration('1m')).toBe(60_000);
    expect(parseDuration('1h30m')).toBe(5_400_000);
    expect(parseDuration('1.5s')).toBe(1_500);
    expect(parseDuration(250)).toBe(250);
    expect(parseDuration('250')).toBe(250);
    for (const bad of ['', 'soon', '10 s', '-1s', '5x', -3]) expect(parseDuration(bad)).toBeUndefined();
  });

  it('converts every duration key to milliseconds', () => {
    const { config } = parseConfig(`${MOCK}circuit_breaker: {interval: 1m, timeout: 100ms}\nserver: {read_timeout: 2500}\n`);
    expect(config.circuit_breaker.interval).toBe(60_000);
    expect(config.circuit_breaker.timeout).toBe(100);
    expect(config.server.read_timeout).toBe(2_500);
  });

  it('rejects a bad duration without repeating the value', () => {
    expect(problemsOf(`${MOCK}circuit_breaker: {timeout: ten seconds}\nretry: {max_delay: [1]}\n`)).toEqual([
      'circuit_breaker.timeout: expected a duration such as 100ms, 30s or 1m',
      'retry.max_delay: expected a duration such as 100ms, 30s or 1m',
    ]);
  });
});

describe('camelCase spellings', () => {
  it('renames camelCase keys at any depth to their snake_case names', () => {
    const { config } = parseConfig(`
providers:
  m: {type: mock, maxConcurrency: 4}
healthCheck: {failureThreshold: 2}
routes:
  - {path: /x, handler: chat, metricsLabels: {teamName: search}}
`);
    expect(config.providers.m.max_concurrency).toBe(4);
    expect(config.health_check.failure_threshold).toBe(2);
    expect(config.routes?.[0].metrics_labels).toEqual({ teamName: 'search' }); // label names are data, kept as written
  });

  it('rejects a key given in both spellings, at the top and nested', () => {
    expect(problemsOf(`${MOCK}circuitBreaker: {maxRequests: 1}\ncircuit_breaker: {max_requests: 2}\n`)).toEqual([
      'circuitBreaker: given twice, as circuitBreaker and circuit_breaker; keep one',
    ]);
    expect(problemsOf(`${MOCK}circuit_breaker: {failureThreshold: 3, failure_threshold: 5}\n`)).toEqual([
      'circuit_breaker.failureThreshold: given twice, as failureThreshold and failure_threshold; keep one',
    ]);
  });
});

describe('unknown keys', () => {
  it('names the path and the likely key, at the top level', () => {
    expect(problemsOf(`${MOCK}circuit_braker: {}\nlogging: {level: info}\n`)).toEqual(['circuit_braker: unknown key (did you mean circuit_breaker?)']);
  });

  it('names the path and the likely key, nested', () => {
    expect(problemsOf('providers:\n  x: {tyep: mock}\ncircuit_breaker:\n  failure_treshold: 3\n')).toEqual([
      `providers.x.type: required, expected one of ${TYPES}`,
      'providers.x.tyep: unknown key (did you mean type?)',
      'circuit_breaker.failure_treshold: unknown key (did you mean failure_threshold?)',
    ]);
  });

  it('answers a camelCase typo in camelCase', () => {
    expect(problemsOf(`${MOCK}circuitBreaker: {failureTreshold: 3}\n`)).toEqual([
      'circuit_breaker.failureTreshold: unknown key (did you mean failureThreshold?)',
    ]);
  });

  it('finds typos inside lists, model maps and the original sections', () => {
    expect(
      problemsOf(`
providers:
  a:
    type: anthropic
    models:
      haiku: {endpiont: /haiku}
routes:
  - {path: /x, hander: chat}
server:
  http3: {enable: true}
queue: {initial_szie: 10}
`),
    ).toEqual([
      'server.http3.enable: unknown key (did you mean enabled?)',
      'providers.a.models.haiku.endpiont: unknown key (did you mean endpoint?)',
      expect.stringMatching(/^routes\[0\]\.handler: required, expected one of completion, chat, /),
      'routes[0].hander: unknown key (did you mean handler?)',
      'queue.initial_szie: unknown key (did you mean initial_size?)',
    ]);
  });

  it('gives no hint when nothing is close', () => {
    expect(problemsOf(`${MOCK}telemetry: {}\n`)).toEqual(['telemetry: unknown key']);
  });
});

describe('problem reports', () => {
  it('lists a bad provider type with every accepted value', () => {
    expect(problemsOf('providers:\n  openai: {type: opnai, model: gpt-4o}\n')).toEqual([
      `providers.openai.type: expected one of ${TYPES}`,
    ]);
  });

  it('lists every problem of a file at once, schema and cross-checks together', () => {
    expect(
      problemsOf(`
server:
  port: 70000
  read_timeout: forever
logging:
  level: loud
providers:
  local: {type: openai_compatible, model: llama}
  spare: {type: mock, wieght: 2}
provider_preference: [local, spere, gemini]
routes:
  - {path: /v1/ask, handler: completion}
  - {path: /v1/ask/, handler: chat}
  - {path: ask, handler: summarise}
`),
    ).toEqual([
      'server.port: too big: expected number to be <=65535',
      'server.read_timeout: expected a duration such as 100ms, 30s or 1m',
      'providers.spare.wieght: unknown key (did you mean weight?)',
      'logging.level: expected one of trace, debug, info, warn, error, fatal, silent',
      'routes[2].path: expected a path starting with /',
      expect.stringMatching(/^routes\[2\]\.handler: expected one of completion, chat, messages, health, metrics, advanced_completion, /),
      'providers.local.base_url: required for type openai_compatible',
      'provider_preference[1]: unknown provider "spere" (did you mean spare?)',
      'provider_preference[2]: unknown provider "gemini" (configured: local, spare)',
      'routes[1].path: /v1/ask is already served by routes[0].path',
    ]);
  });

  it('rejects openai_compatible without base_url', () => {
    expect(problemsOf('providers:\n  vllm: {type: openai_compatible, model: qwen}\n')).toEqual([
      'providers.vllm.base_url: required for type openai_compatible',
    ]);
  });

  it('rejects unknown providers in route preferences, and names listed twice', () => {
    expect(problemsOf(`${MOCK}provider_preference: [m, m]\nroutes:\n  - {path: /x, handler: chat, provider_preference: [n]}\n`)).toEqual([
      'provider_preference[1]: "m" is listed twice',
      'routes[0].provider_preference[0]: unknown provider "n" (did you mean m?)',
    ]);
  });

  it('rejects two routes, or a route and a model endpoint, on one path', () => {
    expect(
      problemsOf(`
providers:
  anthropic:
    type: anthropic
    models:
      haiku: {endpoint: /v1/fast}
      sonnet: {endpoint: /v1/fast/}
routes:
  - {path: /v1/fast, handler: completion}
  - {path: /v1/chat, handler: chat}
  - {path: /v1/chat, handler: completion}
`),
    ).toEqual([
      'providers.anthropic.models.sonnet.endpoint: /v1/fast is already served by providers.anthropic.models.haiku.endpoint',
      'routes[0].path: /v1/fast is already served by providers.anthropic.models.haiku.endpoint',
      'routes[2].path: /v1/chat is already served by routes[1].path',
    ]);
  });

  it('requires a default model for real providers, and at least one provider', () => {
    expect(problemsOf('providers:\n  openai: {type: openai}\n')).toEqual([
      "providers.openai.model: required (the provider's default model), or list its models",
    ]);
    expect(problemsOf('server: {port: 8080}\n')).toEqual(['providers: no provider configured; add one under providers (or an llm block)']);
    expect(problemsOf('')).toEqual(['providers: no provider configured; add one under providers (or an llm block)']);
  });

  it('explains wrong shapes in YAML words', () => {
    expect(problemsOf('providers:\n  a:\n  b: {type: anthropic, models: 5}\nserver: {workers: many}\n')).toEqual([
      'server.workers: expected number or "auto"',
      'providers.a: expected a mapping, received null',
      'providers.b.models: expected a list or a mapping',
      "providers.b.model: required (the provider's default model), or list its models",
    ]);
    expect(problemsOf('- just\n- a list\n')).toEqual(['(root): expected a mapping of settings']);
  });

  it('resolves YAML anchors and << merge keys, as the original did', () => {
    const { config } = parseConfig(`
providers:
  fast: &openai {type: openai, api_key: sk-shared, model: gpt-4o-mini}
  smart: {<<: *openai, model: gpt-4o}
`);
    expect(config.providers.smart).toMatchObject({ type: 'openai', api_key: 'sk-shared', model: 'gpt-4o' });
  });

  it('reports YAML syntax errors and duplicate keys', () => {
    expect(problemsOf(`${MOCK}providers: {}\n`)[0]).toMatch(/^YAML Map keys must be unique/);
    expect(problemsOf('providers:\n  m: {type: mock\n')[0]).toMatch(/^YAML /);
  });

  it('never repeats a secret, whatever is wrong around it', () => {
    const error = (() => {
      try {
        parseConfig(
          `
providers:
  openai: {type: openia, model: gpt-4o, api_key: sk-live-written-in-file, base_url: "sk-live-in-url"}
  other: {type: openai, api_key: \${OPENAI_API_KEY}, timeout: \${OPENAI_API_KEY}, max_concurrency: \${OPENAI_API_KEY}}
  [sk-live-written-in-file]: oops
`,
          't',
          { OPENAI_API_KEY: 'sk-live-from-env' },
        );
      } catch (e) {
        return e as ConfigError;
      }
    })();
    expect(error).toBeInstanceOf(ConfigError);
    expect(error?.message).not.toMatch(/sk-live/);
  });

  it('accepts the same values the schema wants from a file on disk, and names a missing file', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'hapax-config-'));
    const file = join(dir, 'hapax.yaml');
    writeFileSync(file, MOCK);
    expect((await loadConfigFile(file, NO_ENV)).source).toBe(file);
    await expect(loadConfigFile(join(dir, 'missing.yaml'))).rejects.toThrow(/cannot read config file .*missing\.yaml: no such file \[ENOENT\]/);
  });
});

describe('the built-in default config', () => {
  it('serves the mock provider alone when no key is in the environment', () => {
    const { config, warnings, source } = defaultConfig(NO_ENV);
    expect(source).toBe('(built-in default)');
    expect(Object.keys(config.providers)).toEqual(['mock']);
    expect(config.provider_preference).toEqual(['mock']);
    expect(config.server).toMatchObject({ host: '0.0.0.0', port: 8080 });
    expect(warnings).toEqual([]);
  });

  it('puts OpenAI and Anthropic ahead of the mock when their keys are set', () => {
    const { config } = defaultConfig({ OPENAI_API_KEY: 'sk-oai', ANTHROPIC_API_KEY: 'sk-ant' });
    expect(config.provider_preference).toEqual(['openai', 'anthropic', 'mock']);
    expect(config.providers.openai).toMatchObject({ type: 'openai', api_key: 'sk-oai' });
    expect(config.providers.anthropic).toMatchObject({ type: 'anthropic', api_key: 'sk-ant' });
  });

  it('treats an empty key as no key', () => {
    expect(defaultConfig({ OPENAI_API_KEY: '', ANTHROPIC_API_KEY: 'sk-ant' }).config.provider_preference).toEqual(['anthropic', 'mock']);
  });
});

describe('model patterns and aliases', () => {
  it('loads patterns in either form and aliases as plain strings or `model` in an entry', () => {
    const { config, warnings } = parseConfig(
      `
providers:
  anthropic: {type: anthropic, model: claude-sonnet-4-5, models: ["claude-*", "claude-?-haiku"]}
  openai:
    type: openai
    models:
      claude-opus-5-5: gpt-5
      claude-haiku-9: {model: gpt-5-mini, api_key: sk-model-key, endpoint: /v1/haiku}
      "gpt-4o*": {api_key: sk-pattern-key}
      "*": null
`,
      'test.yaml',
      NO_ENV,
    );
    expect(warnings).toEqual([]);
    expect(config.providers.anthropic.models).toEqual(['claude-*', 'claude-?-haiku']);
    expect(config.providers.openai.models).toEqual({
      'claude-opus-5-5': 'gpt-5',
      'claude-haiku-9': { model: 'gpt-5-mini', api_key: 'sk-model-key', endpoint: '/v1/haiku' },
      'gpt-4o*': { api_key: 'sk-pattern-key' },
      '*': null,
    });
    // The default model is the first listed name; patterns are not names.
    expect(config.providers.openai.model).toBe('claude-opus-5-5');
  });

  it('refuses bad patterns and bad values with the path of the offending key', () => {
    expect(
      problemsOf(`
providers:
  a:
    type: openai
    model: gpt-4o
    models: [gpt-4o, "claude-[0-9]*", ""]
  b:
    type: openai
    model: "gpt-*"
    models:
      "claude-{opus,sonnet}": gpt-5
      fast: "gpt-4o*"
      slow: ""
      deep: {model: 7x*, api_key: k}
      "claude-*": {endpoint: /v1/claude}
  c:
    type: anthropic
    models: ["claude-*"]
`),
    ).toEqual([
      'providers.a.models[1]: only * and ? are wildcards in a model name; [ ] { } \\ are not allowed',
      'providers.a.models[2]: too small: expected string to have >=1 characters',
      'providers.b.model: the model sent upstream must be a plain name, not a pattern',
      'providers.b.models.fast: the model sent upstream must be a plain name, not a pattern',
      'providers.b.models.slow: too small: expected string to have >=1 characters',
      'providers.b.models.deep.model: the model sent upstream must be a plain name, not a pattern',
      'providers.b.models.claude-{opus,sonnet}: only * and ? are wildcards in a model name; [ ] { } \\ are not allowed',
      'providers.b.models.claude-*.endpoint: a pattern serves many models, so it cannot have an endpoint; list the model by name',
      "providers.c.model: required when models lists only patterns (the provider's default model)",
    ]);
  });

  it('keeps the original shapes: a list of names, and a map to {api_key, endpoint} or nothing', () => {
    const { config } = parseConfig(
      'providers:\n  a: {type: openai, models: [gpt-4o, gpt-4o-mini]}\n  b: {type: anthropic, models: {claude-3-5-haiku: {api_key: k, endpoint: /v1/h}, claude-3-opus: }}\n',
      'test.yaml',
      NO_ENV,
    );
    expect(config.providers.a).toMatchObject({ model: 'gpt-4o', models: ['gpt-4o', 'gpt-4o-mini'] });
    expect(config.providers.b).toMatchObject({ model: 'claude-3-5-haiku', models: { 'claude-3-5-haiku': { api_key: 'k', endpoint: '/v1/h' }, 'claude-3-opus': null } });
  });
});
