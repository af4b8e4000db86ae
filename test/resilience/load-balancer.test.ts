import { describe, expect, it } from 'vitest';
import { type BalanceStats, LoadBalancer, preferenceTiers } from '../../src/gateway/load-balancer.ts';

function statsFrom(table: Record<string, Partial<BalanceStats>>): (name: string) => BalanceStats {
  return (name) => ({ ewmaMs: undefined, inFlight: 0, weight: 1, ...table[name] });
}

function firstPicks(balancer: LoadBalancer, candidates: string[], stats: (name: string) => BalanceStats, rounds: number): Record<string, number> {
  const counts: Record<string, number> = {};
  for (let i = 0; i < rounds; i++) {
    const first = balancer.order(candidates, stats)[0];
    counts[first] = (counts[first] ?? 0) + 1;
  }
  return counts;
}

describe('LoadBalancer', () => {
  const names = ['a', 'b', 'c'];
  const idle = statsFrom({});

  it('priority keeps config order and returns a copy', () => {
    const balancer = new LoadBalancer({ strategy: 'priority' });
    const order = balancer.order(names, idle);
    expect(order).toEqual(['a', 'b', 'c']);
    expect(order).not.toBe(names);
    expect(balancer.order(names, idle)).toEqual(['a', 'b', 'c']);
  });

  it('round_robin rotates the whole order by one each call', () => {
    const balancer = new LoadBalancer({ strategy: 'round_robin' });
    expect([0, 1, 2, 3].map(() => balancer.order(names, idle))).toEqual([
      ['a', 'b', 'c'],
      ['b', 'c', 'a'],
      ['c', 'a', 'b'],
      ['a', 'b', 'c'],
    ]);
    expect(firstPicks(balancer, names, idle, 300)).toEqual({ a: 100, b: 100, c: 100 });
  });

  it('weighted 3:1 over 400 picks is exactly 300/100, smoothly interleaved', () => {
    const balancer = new LoadBalancer({ strategy: 'weighted' });
    const stats = statsFrom({ a: { weight: 3 }, b: { weight: 1 } });
    const firsts = Array.from({ length: 8 }, () => balancer.order(['a', 'b'], stats)[0]);
    expect(firsts.join('')).toBe('aabaaaba');
    expect(firstPicks(balancer, ['a', 'b'], stats, 400)).toEqual({ a: 300, b: 100 });
  });

  it('weighted 5:1:1 follows the nginx sequence and keeps everyone as failover', () => {
    const balancer = new LoadBalancer({ strategy: 'weighted' });
    const stats = statsFrom({ a: { weight: 5 }, b: { weight: 1 }, c: { weight: 1 } });
    const orders = Array.from({ length: 7 }, () => balancer.order(names, stats));
    expect(orders.map((o) => o[0]).join('')).toBe('aabacaa');
    for (const order of orders) expect([...order].sort()).toEqual(names);
    expect(firstPicks(balancer, names, stats, 700)).toEqual({ a: 500, b: 100, c: 100 });
  });

  it('weight 0 is backup only: never first, always last', () => {
    const balancer = new LoadBalancer({ strategy: 'weighted' });
    const stats = statsFrom({ a: { weight: 0 }, b: { weight: 1 }, c: { weight: 1 } });
    for (let i = 0; i < 10; i++) expect(balancer.order(names, stats).at(-1)).toBe('a');
    expect(balancer.order(['a'], stats)).toEqual(['a']);
    expect(balancer.order(['a', 'x'], statsFrom({ a: { weight: 0 }, x: { weight: 0 } }))).toEqual(['a', 'x']);
  });

  it('weighted picks stay exact when the candidate set shrinks (a provider filtered out)', () => {
    const balancer = new LoadBalancer({ strategy: 'weighted' });
    const stats = statsFrom({ a: { weight: 2 }, b: { weight: 1 }, c: { weight: 1 } });
    firstPicks(balancer, names, stats, 5);
    expect(firstPicks(balancer, ['a', 'b'], stats, 300)).toEqual({ a: 200, b: 100 });
  });

  it('least_latency orders by EWMA, unmeasured providers first, ties in config order', () => {
    const balancer = new LoadBalancer({ strategy: 'least_latency' });
    const stats = statsFrom({ a: { ewmaMs: 300 }, b: { ewmaMs: 120 }, c: { ewmaMs: 200 } });
    expect(balancer.order(names, stats)).toEqual(['b', 'c', 'a']);
    const withNew = statsFrom({ a: { ewmaMs: 300 }, b: { ewmaMs: 120 } });
    expect(balancer.order(names, withNew)).toEqual(['c', 'b', 'a']);
    expect(balancer.order(names, statsFrom({ a: { ewmaMs: 50 }, b: { ewmaMs: 50 }, c: { ewmaMs: 50 } }))).toEqual(names);
    expect(balancer.order(names, idle)).toEqual(names);
  });

  it('least_busy prefers fewest in flight per weight, rotating among ties', () => {
    const balancer = new LoadBalancer({ strategy: 'least_busy' });
    expect(balancer.order(names, statsFrom({ a: { inFlight: 4 }, b: { inFlight: 1 }, c: { inFlight: 2 } }))).toEqual(['b', 'c', 'a']);
    expect(balancer.order(names, statsFrom({ a: { inFlight: 4, weight: 4 }, b: { inFlight: 2 }, c: { inFlight: 3 } }))).toEqual(['a', 'b', 'c']);
    expect(firstPicks(balancer, names, idle, 300)).toEqual({ a: 100, b: 100, c: 100 });
    expect(balancer.order(['a', 'b'], statsFrom({ a: { weight: 0 } }))[1]).toBe('a');
  });

  it('orders objects through nameOf and calls stats once per candidate', () => {
    const balancer = new LoadBalancer<{ provider: string; model: string }>({ strategy: 'least_latency', nameOf: (t) => t.provider });
    const targets = [
      { provider: 'a', model: 'm1' },
      { provider: 'b', model: 'm2' },
    ];
    let calls = 0;
    const order = balancer.order(targets, (name) => (calls++, { ewmaMs: name === 'a' ? 90 : 10, inFlight: 0, weight: 1 }));
    expect(order.map((t) => t.provider)).toEqual(['b', 'a']);
    expect(order[0]).toBe(targets[1]);
    expect(calls).toBe(2);
  });

  it('handles empty and single candidate lists', () => {
    for (const strategy of ['priority', 'round_robin', 'weighted', 'least_latency', 'least_busy'] as const) {
      const balancer = new LoadBalancer({ strategy });
      expect(balancer.order([], idle)).toEqual([]);
      expect(balancer.order(['only'], idle)).toEqual(['only']);
    }
  });
});

describe('preferenceTiers', () => {
  it('turns nested lists into tiers and plain names into tiers of one', () => {
    expect(preferenceTiers([['openai', 'azure'], 'anthropic', 'ollama'])).toEqual([['openai', 'azure'], ['anthropic'], ['ollama']]);
  });

  it('keeps a provider in its first tier only and drops empty tiers', () => {
    expect(preferenceTiers(['a', ['a', 'b'], [], ['b']])).toEqual([['a'], ['b']]);
  });
});
