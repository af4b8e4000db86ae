/**
 * Usage counters in a real Redis: many requests become one write, reads include what is not written
 * yet, and counts made while Redis is down are written once it is back (not lost, not doubled).
 */
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Metrics } from '../src/observability/metrics.ts';
import { RedisStore } from '../src/state/redis.ts';
import { startRedis, type RedisServer } from './helpers/redis.ts';

let redis: RedisServer;
beforeAll(async () => {
  redis = await startRedis();
});
afterAll(async () => redis?.stop());

/** HINCRBY commands Redis has run so far (INFO commandstats). */
async function hincrbyCalls(): Promise<number> {
  const reader = new Redis(redis.url, { lazyConnect: true });
  try {
    await reader.connect();
    const stats = await reader.info('commandstats');
    return Number(/cmdstat_hincrby:calls=(\d+)/.exec(stats)?.[1] ?? 0);
  } finally {
    reader.disconnect();
  }
}

async function hash(key: string): Promise<Record<string, string>> {
  const reader = new Redis(redis.url, { lazyConnect: true });
  try {
    await reader.connect();
    return await reader.hgetall(key);
  } finally {
    reader.disconnect();
  }
}

const DAY = '2026-12-03';
/** One request's row under the report's dimensions. */
const row = (key: string, counts: Record<string, number>, day = DAY) => ({ day, key, route: '/v1/chat/completions', label: 'department=support', provider: 'openai', model: 'gpt-4o', ...counts });
const ID = (key: string, day = DAY) => [day, key, '/v1/chat/completions', 'department=support', 'openai', 'gpt-4o'].join('\u001f');
const zero = { requests: 0, input_tokens: 0, output_tokens: 0, cache_read_tokens: 0, cache_write_tokens: 0, reasoning_tokens: 0, cost_nano_usd: 0, unpriced_requests: 0 };

describe('Redis usage counters', () => {
  it('add up in memory, reach Redis in one write within a second, and are read whole', async () => {
    const store = new RedisStore({ url: redis.url, prefix: 'u1:', policy: 'open' });
    await store.start();
    try {
      const before = await hincrbyCalls();
      for (let i = 0; i < 50; i++) await store.usage.record(row('team-a', { requests: 1 }));
      await store.usage.record(row('team-a', { input_tokens: 120, output_tokens: 30, cost_nano_usd: 675_000 }));
      await store.usage.record(row('team-b', { requests: 2, input_tokens: 5 }));
      await store.usage.record(row('team-b', { requests: 1 }, '2026-12-04'));
      // Read through the store: what is still in memory is written first.
      expect(await store.usage.read()).toEqual(
        expect.arrayContaining([
          { ...row('team-a', zero), requests: 50, input_tokens: 120, output_tokens: 30, cost_nano_usd: 675_000 },
          { ...row('team-b', zero), requests: 2, input_tokens: 5 },
          { ...row('team-b', zero, '2026-12-04'), requests: 1 },
        ]),
      );
      // A range reads only its days.
      expect(await store.usage.read({ from: '2026-12-04' })).toEqual([{ ...row('team-b', zero, '2026-12-04'), requests: 1 }]);
      // 54 records, one write: a HINCRBY per row and measure that changed (4 for team-a, 2 + 1 for team-b).
      expect((await hincrbyCalls()) - before).toBe(7);
      await store.usage.record(row('team-a', { requests: 1 }));
      // Another instance sees it once the timer has written it.
      await expect.poll(async () => (await hash(`u1:usage:day:${DAY}`))[`requests|${ID('team-a')}`], { timeout: 3000 }).toBe('51');
    } finally {
      await store.close();
    }
  });

  it('keeps counts made while Redis is unreachable and writes them once it is back, once', async () => {
    const store = new RedisStore({ url: redis.url, prefix: 'u2:', policy: 'open' });
    await store.start();
    try {
      await store.usage.record(row('team-c', { requests: 3 }));
      await store.usage.flush();
      await redis.kill();
      await expect.poll(() => store.available, { timeout: 3000 }).toBe(false);
      await store.usage.record(row('team-c', { requests: 4, output_tokens: 7 }));
      await store.usage.flush(); // fails: no connection, the counts stay
      await redis.restart(); // empty: the 3 written before are gone with it
      await expect.poll(async () => (await hash(`u2:usage:day:${DAY}`))[`requests|${ID('team-c')}`], { timeout: 5000 }).toBe('4');
      expect((await hash(`u2:usage:day:${DAY}`))[`output_tokens|${ID('team-c')}`]).toBe('7');
      await store.usage.flush();
      expect((await hash(`u2:usage:day:${DAY}`))[`requests|${ID('team-c')}`]).toBe('4');
    } finally {
      await store.close();
    }
  });

  it('writes what is left when the store closes', async () => {
    const store = new RedisStore({ url: redis.url, prefix: 'u3:', policy: 'open' });
    await store.start();
    await store.usage.record(row('team-d', { requests: 9 }));
    await store.close();
    expect((await hash(`u3:usage:day:${DAY}`))[`requests|${ID('team-d')}`]).toBe('9');
  });

  it('stops retrying once closed while Redis is unreachable (a reload away from a dead Redis)', async () => {
    const metrics = new Metrics();
    const usageErrors = async () => (await metrics.stateErrors.get()).values.find((v) => v.labels.operation === 'usage')?.value ?? 0;
    const store = new RedisStore({ url: redis.url, prefix: 'u4:', policy: 'open', metrics });
    await store.start();
    await redis.kill();
    await expect.poll(() => store.available, { timeout: 3000 }).toBe(false);
    await store.usage.record(row('team-e', { requests: 1 }));
    await store.close();
    await store.usage.record(row('team-e', { requests: 1 })); // after close: ignored
    const atClose = await usageErrors();
    // No timer of the closed store keeps trying (and failing) once a second.
    await new Promise((resolve) => setTimeout(resolve, 2500));
    expect(await usageErrors()).toBe(atClose);
    await redis.restart();
    expect(await hash(`u4:usage:day:${DAY}`)).toEqual({});
  });
});
