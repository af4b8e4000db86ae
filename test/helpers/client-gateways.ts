/**
 * The two gateways the TypeScript and Python clients are tested against, shared so that both clients are
 * held to the same server behaviour.
 */
import { startFakeOpenAI } from '../fakes/openai.ts';
import { startTestGateway } from './gateway.ts';
import { useStarted } from './started.ts';

/** The key the auth-on gateway accepts. */
export const APP_KEY = 'hx-app-key-000000001';

/**
 * One fake provider and no gateway-side retries, so the client sees the 429s and 503s itself; a route
 * limited to one request a minute for the client's rate-limit handling.
 */
export const useClientGateway = () =>
  useStarted({ upstream: () => startFakeOpenAI({ name: 'solo' }) }).and({
    gateway: ({ upstream }) =>
      startTestGateway(`
providers:
  solo: {type: openai, base_url: "${upstream.url}", api_key: sk-test, model: gpt-4o-mini}
retry: {max_retries: 0}
circuit_breaker: {failure_threshold: 50}
routes:
  - {path: /v1/limited/completions, handler: completion, rate_limit: {requests_per_minute: 1}}
`),
  });

/** A mock provider behind auth with one key, APP_KEY. */
export const useAuthGateway = () =>
  useStarted({
    gateway: () =>
      startTestGateway(`
providers:
  mock: {type: mock, reply: "hello from the mock"}
auth:
  enabled: true
  keys: [{name: app, key: ${APP_KEY}}]
`),
  });
