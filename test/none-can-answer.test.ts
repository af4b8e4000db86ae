/**
 * When every provider is down, every request gets the same answer: 503, a Retry-After from the soonest any
 * provider may answer again, and every provider listed with why it did not — the first request (both fail) and
 * the later ones (both breakers open, so nothing is even tried) alike.
 */
import OpenAI from 'openai';
import { describe, expect, it } from 'vitest';
import { startTestGateway } from './helpers/gateway.ts';
import { fakeOpenAIs, useStarted } from './helpers/started.ts';

describe('nothing can answer now', () => {
  const setup = useStarted(fakeOpenAIs('primary', 'backup')).and({
    gateway: ({ primary, backup }) =>
      startTestGateway(`
providers:
  primary: {type: openai, base_url: "${primary.url}", model: gpt-4o-mini}
  backup: {type: openai, base_url: "${backup.url}", model: gpt-4o-mini}
provider_preference: [primary, backup]
retry: {max_retries: 0}
circuit_breaker: {failure_threshold: 1, timeout: 30s}
`),
  });

  it('answers 503 with Retry-After and both providers, before and after the breakers open', async () => {
    setup.primary.fault = { kind: 'status', status: 500 };
    setup.backup.fault = { kind: 'status', status: 500 };
    const client = new OpenAI({ baseURL: `${setup.gateway.url}/v1`, apiKey: 'unused', maxRetries: 0 });
    const answers: InstanceType<typeof OpenAI.APIError>[] = [];
    for (let i = 0; i < 3; i++) {
      const error = await client.chat.completions.create({ model: '', messages: [{ role: 'user', content: `try ${i}` }] }).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(OpenAI.APIError);
      answers.push(error as InstanceType<typeof OpenAI.APIError>);
    }
    for (const [i, answer] of answers.entries()) {
      expect(answer.status, `request ${i}`).toBe(503);
      expect(Number(answer.headers?.get('retry-after')), `request ${i}`).toBeGreaterThanOrEqual(1);
      const details = (answer.error as { details?: { providers?: { provider: string; state: string }[] } }).details;
      expect(details?.providers?.map((p) => p.provider).sort(), `request ${i}`).toEqual(['backup', 'primary']);
    }
    // The first request saw both fail; later ones found both breakers open (up to 30 s to wait).
    const first = (answers[0].error as { details: { providers: { state: string }[] } }).details.providers;
    expect(first.every((p) => p.state === 'failed')).toBe(true);
    const later = (answers[2].error as { details: { providers: { state: string }[] } }).details.providers;
    expect(later.some((p) => p.state === 'circuit_open')).toBe(true);
    expect(Number(answers[2].headers?.get('retry-after'))).toBeGreaterThan(1);
  });
});
