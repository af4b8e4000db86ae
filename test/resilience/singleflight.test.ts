import { describe, expect, it } from 'vitest';
import { flightKey, stableKey, SingleFlight, StreamFlight } from '../../src/gateway/singleflight.ts';

/** A promise plus its resolvers, to drive an upstream step by step. */
function deferred<T = void>() {
  let resolve!: (value: T) => void;
  let reject!: (error: unknown) => void;
  const promise = new Promise<T>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}

const tick = () => new Promise((resolve) => setImmediate(resolve));

/** A controllable upstream stream: push events, end or fail it, observe its signal and closing. */
function controllableUpstream<E>() {
  const queue: Array<{ kind: 'event'; value: E } | { kind: 'end' } | { kind: 'error'; error: unknown }> = [];
  let wake: (() => void) | undefined;
  const state = { starts: 0, signal: undefined as AbortSignal | undefined, closed: false };
  const push = (item: (typeof queue)[number]) => {
    queue.push(item);
    wake?.();
  };
  async function* source(signal: AbortSignal): AsyncGenerator<E> {
    state.starts++;
    state.signal = signal;
    try {
      for (;;) {
        while (queue.length === 0) {
          if (signal.aborted) throw signal.reason;
          await new Promise<void>((resolve) => {
            wake = resolve;
            signal.addEventListener('abort', () => resolve(), { once: true });
          });
        }
        const item = queue.shift() as (typeof queue)[number];
        if (item.kind === 'end') return;
        if (item.kind === 'error') throw item.error;
        yield item.value;
      }
    } finally {
      state.closed = true;
    }
  }
  return {
    state,
    start: (signal: AbortSignal) => source(signal),
    emit: (value: E) => push({ kind: 'event', value }),
    end: () => push({ kind: 'end' }),
    fail: (error: unknown) => push({ kind: 'error', error }),
  };
}

async function collect<E>(iterable: AsyncIterable<E>): Promise<E[]> {
  const out: E[] = [];
  for await (const event of iterable) out.push(event);
  return out;
}

describe('SingleFlight', () => {
  it('50 concurrent identical calls run the function once and all get its value', async () => {
    const done: number[] = [];
    const flight = new SingleFlight<{ answer: number }>({ onFlightDone: (_, callers) => done.push(callers) });
    const gate = deferred();
    let calls = 0;
    const fn = async () => {
      calls++;
      await gate.promise;
      return { answer: 42 };
    };
    const results = Array.from({ length: 50 }, () => flight.do('k', fn));
    expect(flight.size).toBe(1);
    gate.resolve();
    const values = await Promise.all(results);
    expect(calls).toBe(1);
    expect(values.every((v) => v.answer === 42 && v === values[0])).toBe(true);
    expect(done).toEqual([50]);
    expect(flight.size).toBe(0);
  });

  it('different keys run separately', async () => {
    const flight = new SingleFlight<string>();
    const calls: string[] = [];
    const fn = (key: string) => async () => (calls.push(key), key.toUpperCase());
    const [a, b] = await Promise.all([flight.do('a', fn('a')), flight.do('b', fn('b'))]);
    expect([a, b]).toEqual(['A', 'B']);
    expect(calls.sort()).toEqual(['a', 'b']);
  });

  it('shares an error with every caller and forgets the key afterwards', async () => {
    const flight = new SingleFlight<string>();
    const gate = deferred<string>();
    const boom = new Error('upstream down');
    const callers = Array.from({ length: 10 }, () => flight.do('k', () => gate.promise));
    gate.reject(boom);
    const settled = await Promise.allSettled(callers);
    expect(settled.every((r) => r.status === 'rejected' && r.reason === boom)).toBe(true);
    expect(await flight.do('k', async () => 'fresh')).toBe('fresh');
  });

  it('a synchronous throw is shared as a rejection', async () => {
    const flight = new SingleFlight<string>();
    await expect(
      flight.do('k', () => {
        throw new Error('sync');
      }),
    ).rejects.toThrow('sync');
    expect(flight.size).toBe(0);
  });

  it('a caller that aborts leaves alone; the upstream aborts when the last one leaves', async () => {
    const flight = new SingleFlight<string>();
    const gate = deferred<string>();
    let upstream: AbortSignal | undefined;
    const fn = (signal: AbortSignal) => ((upstream = signal), gate.promise);
    const first = new AbortController();
    const second = new AbortController();
    const p1 = flight.do('k', fn, first.signal);
    const p2 = flight.do('k', fn, second.signal);
    first.abort(new Error('client 1 left'));
    await expect(p1).rejects.toThrow('client 1 left');
    expect(upstream?.aborted).toBe(false);
    second.abort(new Error('client 2 left'));
    await expect(p2).rejects.toThrow('client 2 left');
    expect(upstream?.aborted).toBe(true);
    expect(flight.size).toBe(0); // a new caller starts afresh instead of joining the aborted flight
    gate.resolve('late');
  });

  it('a caller with a signal still gets the shared value', async () => {
    const flight = new SingleFlight<string>();
    const controller = new AbortController();
    const shared = flight.do('k', async () => 'v');
    expect(await flight.do('k', async () => 'other', controller.signal)).toBe('v');
    expect(await shared).toBe('v');
    await expect(flight.do('k', async () => 'x', AbortSignal.abort(new Error('already')))).rejects.toThrow('already');
  });
});

describe('StreamFlight', () => {
  it('50 waiters, one of them late, all receive the full event sequence from one upstream', async () => {
    const done: number[] = [];
    const flight = new StreamFlight<number>({ onFlightDone: (_, callers) => done.push(callers) });
    const upstream = controllableUpstream<number>();
    const early = Array.from({ length: 49 }, () => collect(flight.join('k', upstream.start)));
    for (let i = 0; i < 5; i++) upstream.emit(i);
    await tick();
    const late = collect(flight.join('k', upstream.start)); // replays 0..4, then follows live
    for (let i = 5; i < 10; i++) upstream.emit(i);
    upstream.end();
    const all = await Promise.all([...early, late]);
    const expected = Array.from({ length: 10 }, (_, i) => i);
    expect(all).toHaveLength(50);
    for (const events of all) expect(events).toEqual(expected);
    expect(upstream.state.starts).toBe(1);
    expect(done).toEqual([50]);
    expect(flight.size).toBe(0);
  });

  it('one waiter leaving early does not stop the others', async () => {
    const flight = new StreamFlight<string>();
    const upstream = controllableUpstream<string>();
    const quitter = flight.join('k', upstream.start);
    const stayer = collect(flight.join('k', upstream.start));
    upstream.emit('a');
    expect(await quitter.next()).toEqual({ value: 'a', done: false });
    await quitter.return?.();
    expect(await quitter.next()).toEqual({ value: undefined, done: true });
    upstream.emit('b');
    upstream.end();
    expect(await stayer).toEqual(['a', 'b']);
    expect(upstream.state.signal?.aborted).toBe(false);
  });

  it('break in for-await leaves just like return()', async () => {
    const flight = new StreamFlight<string>();
    const upstream = controllableUpstream<string>();
    const breaker = (async () => {
      for await (const event of flight.join('k', upstream.start)) if (event === 'a') break;
    })();
    const stayer = collect(flight.join('k', upstream.start));
    upstream.emit('a');
    await breaker;
    upstream.emit('b');
    upstream.end();
    expect(await stayer).toEqual(['a', 'b']);
  });

  it('aborts the upstream when every waiter has gone, and a new caller starts afresh', async () => {
    const flight = new StreamFlight<string>();
    const upstream = controllableUpstream<string>();
    const clientA = new AbortController();
    const a = flight.join('k', upstream.start, clientA.signal);
    const b = flight.join('k', upstream.start);
    upstream.emit('x');
    expect((await a.next()).value).toBe('x');
    const pendingA = a.next();
    clientA.abort(new Error('client A went away'));
    await expect(pendingA).rejects.toThrow('client A went away');
    expect(upstream.state.signal?.aborted).toBe(false);
    await b.return?.();
    expect(upstream.state.signal?.aborted).toBe(true);
    expect(flight.size).toBe(0);
    await tick();
    expect(upstream.state.closed).toBe(true);

    const again = controllableUpstream<string>();
    const c = collect(flight.join('k', again.start));
    again.emit('fresh');
    again.end();
    expect(await c).toEqual(['fresh']);
  });

  it('an upstream error reaches every waiter after the events before it', async () => {
    const flight = new StreamFlight<string>();
    const upstream = controllableUpstream<string>();
    const boom = new Error('stream broke');
    const waiters = Array.from({ length: 5 }, () => {
      const seen: string[] = [];
      const run = (async () => {
        for await (const event of flight.join('k', upstream.start)) seen.push(event);
      })();
      return { seen, run };
    });
    upstream.emit('a');
    upstream.emit('b');
    upstream.fail(boom);
    for (const waiter of waiters) {
      await expect(waiter.run).rejects.toBe(boom);
      expect(waiter.seen).toEqual(['a', 'b']);
    }
    expect(flight.size).toBe(0);
  });

  it('a start function that throws synchronously fails every waiter', async () => {
    const flight = new StreamFlight<string>();
    const start = () => {
      throw new Error('no stream');
    };
    await expect(collect(flight.join('k', start))).rejects.toThrow('no stream');
    expect(flight.size).toBe(0);
  });

  it('a caller already aborted when joining gets its reason and starts nothing', async () => {
    const flight = new StreamFlight<string>();
    let starts = 0;
    const start = async function* () {
      starts++;
      yield 'x';
    };
    await expect(collect(flight.join('k', start, AbortSignal.abort(new Error('gone'))))).rejects.toThrow('gone');
    expect(starts).toBe(0);
    expect(flight.size).toBe(0);
  });

  it('different keys are separate streams', async () => {
    const flight = new StreamFlight<string>();
    const one = controllableUpstream<string>();
    const two = controllableUpstream<string>();
    const a = collect(flight.join('one', one.start));
    const b = collect(flight.join('two', two.start));
    one.emit('1');
    two.emit('2');
    one.end();
    two.end();
    expect(await Promise.all([a, b])).toEqual([['1'], ['2']]);
  });
});

describe('stableKey', () => {
  const request = {
    model: 'gpt-4o-mini',
    stream: false,
    messages: [{ role: 'user', content: 'hello' }],
    temperature: 0.2,
  };

  it('is equal for equal data with a different key order', () => {
    const reordered = { temperature: 0.2, messages: [{ content: 'hello', role: 'user' }], stream: false, model: 'gpt-4o-mini' };
    expect(stableKey(['team-a', request])).toBe(stableKey(['team-a', reordered]));
    expect(stableKey(['team-a', { ...request, user: undefined }])).toBe(stableKey(['team-a', request]));
  });

  it('differs for a one-character change anywhere', () => {
    const base = stableKey(['team-a', request]);
    expect(stableKey(['team-b', request])).not.toBe(base);
    expect(stableKey(['team-a', { ...request, messages: [{ role: 'user', content: 'hellO' }] }])).not.toBe(base);
    expect(stableKey(['team-a', { ...request, stream: true }])).not.toBe(base);
    expect(stableKey(['team-a', { ...request, temperature: 0.3 }])).not.toBe(base);
  });

  it('keeps structure: no collisions from concatenation or type changes', () => {
    expect(stableKey(['ab', 'c'])).not.toBe(stableKey(['a', 'bc']));
    expect(stableKey([1])).not.toBe(stableKey(['1']));
    expect(stableKey([['a', 'b']])).not.toBe(stableKey(['a', 'b']));
    expect(stableKey([{ a: '"b"' }])).not.toBe(stableKey([{ a: 'b' }]));
    expect(stableKey([[undefined]])).toBe(stableKey([[null]]));
  });

  it('is a short url-safe string', () => {
    expect(stableKey(['x'])).toMatch(/^[A-Za-z0-9_-]{43}$/);
  });
});

describe('flightKey', () => {
  it('joins the same request from the same client, and nothing else', () => {
    const request = { model: 'm', messages: [{ role: 'user', content: 'hi' }] };
    expect(flightKey('team-a', request)).toBe(flightKey('team-a', { model: 'm', messages: [{ role: 'user', content: 'hi' }] }));
    expect(flightKey('team-b', request)).not.toBe(flightKey('team-a', request));
    expect(flightKey('team-a', { ...request, messages: [{ role: 'user', content: 'hI' }] })).not.toBe(flightKey('team-a', request));
    // Structure is kept: a client name cannot be confused with part of the request.
    expect(flightKey('a","b', { x: 1 })).not.toBe(flightKey('a', { b: 1 }));
  });
});
