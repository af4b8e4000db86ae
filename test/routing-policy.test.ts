/** Unit tests without sockets: preference tiers in the catalog, and answers turned into streams and back. */
import { describe, expect, it } from 'vitest';
import { parseConfig } from '../src/config/load.ts';
import { AnswerCollector, answerEvents } from '../src/core/answer.ts';
import { ModelCatalog } from '../src/gateway/catalog.ts';
import type { CanonicalResponse } from '../src/core/canonical.ts';

function catalogFor(extra: string): ModelCatalog {
  return new ModelCatalog(
    parseConfig(`
providers:
  a: {type: openai, model: shared, models: [shared, only-a]}
  b: {type: openai, model: shared}
  c: {type: openai, model: other}
${extra}
`).config,
  );
}

const names = (targets: readonly { provider: string }[]) => targets.map((t) => t.provider);

describe('routing policy', () => {
  it('flattens tiers into the failover order and balances only tiers of two or more', () => {
    const catalog = catalogFor('provider_preference: [[a, b], c]');
    const policy = catalog.defaultPolicy;
    expect(policy.names).toEqual(['a', 'b', 'c']);
    expect([...policy.tierOf]).toEqual([['a', 0], ['b', 0], ['c', 1]]);
    expect([...policy.balanced.keys()]).toEqual([0]);
    expect(policy.balanced.get(0)?.balancer.strategy).toBe('weighted');
  });

  it('builds no balancer for priority or for a flat list', () => {
    expect(catalogFor('provider_preference: [[a, b], c]\nload_balancing: {strategy: priority}').defaultPolicy.balanced.size).toBe(0);
    expect(catalogFor('provider_preference: [a, b, c]\nload_balancing: {strategy: round_robin}').defaultPolicy.balanced.size).toBe(0);
    expect(catalogFor('').resolve(undefined).spans).toBeUndefined();
  });

  it('takes weights from the providers unless load_balancing overrides them', () => {
    const catalog = catalogFor('provider_preference: [[a, b, c]]\nload_balancing: {weights: {b: 5}}');
    expect([...(catalog.defaultPolicy.balanced.get(0)?.weights ?? [])]).toEqual([['a', 1], ['b', 5], ['c', 1]]);
  });

  it('marks the balanced tier in the candidates, and resolves each request model once per policy', () => {
    const catalog = catalogFor('provider_preference: [[a, b], c]');
    const all = catalog.resolve(undefined);
    expect(names(all)).toEqual(['a', 'b', 'c']);
    expect(all.explicit).toBe(0);
    expect(all.spans?.map(({ start, end }) => [start, end])).toEqual([[0, 2]]);
    expect(catalog.resolve(undefined)).toBe(all);
  });

  it('keeps what the client named first and balances inside that group and inside the rest separately', () => {
    const catalog = catalogFor('provider_preference: [[a, b], c]');
    const named = catalog.resolve('c');
    expect(names(named)).toEqual(['c', 'a', 'b']);
    expect(named.explicit).toBe(1);
    expect(named.spans?.map(({ start, end }) => [start, end])).toEqual([[1, 3]]);

    const servedByTwo = catalog.resolve('shared');
    expect(servedByTwo.map((t) => `${t.provider}/${t.model}`)).toEqual(['a/shared', 'b/shared', 'c/other']);
    expect(servedByTwo.explicit).toBe(2);
    expect(servedByTwo.spans?.map(({ start, end }) => [start, end])).toEqual([[0, 2]]);

    const one = catalog.resolve('only-a');
    expect(one.explicit).toBe(1);
    expect(one.spans).toBeUndefined();
  });

  it('gives a route its own policy, and so its own rotation', () => {
    const catalog = catalogFor('provider_preference: [[a, b], c]');
    const own = catalog.policy([['b', 'c'], 'a'], { strategy: 'round_robin' });
    expect(own.names).toEqual(['b', 'c', 'a']);
    expect(own.balanced.get(0)?.balancer).not.toBe(catalog.defaultPolicy.balanced.get(0)?.balancer);
    expect(names(catalog.resolve(undefined, own))).toEqual(['b', 'c', 'a']);
  });
});

describe('model resolution', () => {
  it('passes any provider/model through, without keeping every name a client makes up', () => {
    const catalog = catalogFor('');
    for (let i = 0; i < 3000; i++) {
      const [first] = catalog.resolve(`a/made-up-${i}`);
      expect(first).toMatchObject({ provider: 'a', model: `made-up-${i}` });
    }
    const memoized = (catalog as unknown as { resolved: WeakMap<object, Map<string, unknown>> }).resolved.get(catalog.defaultPolicy);
    expect(memoized?.size).toBe(1024);
    // Configured names still resolve (and stay correct) once the memo is full.
    expect(names(catalog.resolve('only-a'))[0]).toBe('a');
  });
});

describe('answers and streams', () => {
  const answer: CanonicalResponse = {
    id: 'chatcmpl-1',
    model: 'gpt-4o-mini',
    text: 'Let me look.',
    toolCalls: [
      { id: 'call_1', name: 'lookup', arguments: '{"q":"x"}' },
      { id: 'call_2', name: 'fetch', arguments: '' },
    ],
    finishReason: 'tool_calls',
    usage: { inputTokens: 12, outputTokens: 7 },
    created: 1_700_000_000,
  };

  it('replays an answer as start, content, usage, finish', () => {
    expect(answerEvents(answer).map((e) => e.type)).toEqual(['start', 'text', 'tool_call_start', 'tool_call_delta', 'tool_call_start', 'usage', 'finish']);
  });

  it('assembles the replayed events back into the same answer', () => {
    const collector = new AnswerCollector('configured-model');
    for (const event of answerEvents(answer)) collector.add(event);
    expect(collector.answer()).toEqual({ ...answer, created: expect.any(Number) });
  });

  it('assembles text and tool-call arguments that arrive in pieces', () => {
    const collector = new AnswerCollector('configured-model');
    collector.add({ type: 'text', text: 'one ' });
    collector.add({ type: 'text', text: 'two' });
    collector.add({ type: 'tool_call_start', index: 0, id: 'c', name: 'f' });
    collector.add({ type: 'tool_call_delta', index: 0, arguments: '{"a":' });
    collector.add({ type: 'tool_call_delta', index: 0, arguments: '1}' });
    collector.add({ type: 'finish', reason: 'stop' });
    expect(collector.answer()).toMatchObject({ model: 'configured-model', text: 'one two', toolCalls: [{ id: 'c', name: 'f', arguments: '{"a":1}' }], finishReason: 'stop' });
  });

  it('has no answer for a stream that never finished', () => {
    const collector = new AnswerCollector('m');
    collector.add({ type: 'text', text: 'half' });
    expect(collector.answer()).toBeUndefined();
  });
});
