/**
 * Stored responses in a real redis-server shared by two Hapax instances: a conversation started on one
 * continues on the other (streamed: stored before response.completed goes out), is read and deleted from
 * either, stays invisible to another key, and expires after responses.ttl.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestGateway, type TestGateway } from './helpers/gateway.ts';
import { sdk } from './helpers/openai.ts';
import { startRedis, type RedisServer } from './helpers/redis.ts';

let redis: RedisServer;
let a: TestGateway;
let b: TestGateway;

const yaml = (url: string) => `
providers:
  mock: {type: mock}
state: {redis_url: "${url}", key_prefix: "responses-test:"}
responses: {ttl: 2s}
auth:
  enabled: true
  keys:
    - {name: alice, key: alice-key-0123456789}
    - {name: bob, key: bob-key-0123456789}
`;

beforeAll(async () => {
  redis = await startRedis();
  a = await startTestGateway(yaml(redis.url));
  b = await startTestGateway(yaml(redis.url));
});
afterAll(async () => {
  await a?.close();
  await b?.close();
  await redis?.stop();
});

describe('stored responses shared through Redis', () => {
  it('continues on another instance the conversation one instance stored, for its key only', async () => {
    const onA = sdk(a, '/v1', 'alice-key-0123456789');
    const onB = sdk(b, '/v1', 'alice-key-0123456789');
    const first = await onA.responses.stream({ model: '', input: 'remember the word tangerine' }).finalResponse();
    const second = await onB.responses.create({ model: '', input: 'which word?', previous_response_id: first.id });
    expect(second.status).toBe('completed');
    const items = await onB.responses.inputItems.list(second.id, { order: 'asc' });
    expect(items.data.map((item) => (item as { role?: string }).role)).toEqual(['user', 'assistant', 'user']);
    expect((await onA.responses.retrieve(second.id)).id).toBe(second.id);

    const bob = sdk(b, '/v1', 'bob-key-0123456789');
    await expect(bob.responses.retrieve(second.id)).rejects.toMatchObject({ status: 404 });
    await expect(bob.responses.create({ model: '', input: 'x', previous_response_id: first.id })).rejects.toMatchObject({ status: 400 });

    await onB.responses.delete(first.id);
    await expect(onA.responses.retrieve(first.id)).rejects.toMatchObject({ status: 404 });
  });

  it('forgets a response after responses.ttl', async () => {
    const client = sdk(a, '/v1', 'alice-key-0123456789');
    const kept = await client.responses.create({ model: '', input: 'short-lived' });
    expect((await sdk(b, '/v1', 'alice-key-0123456789').responses.retrieve(kept.id)).id).toBe(kept.id);
    await new Promise((resolve) => setTimeout(resolve, 2_300));
    await expect(client.responses.retrieve(kept.id)).rejects.toMatchObject({ status: 404 });
  });
});
