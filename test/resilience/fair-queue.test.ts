import { afterEach, describe, expect, it, vi } from 'vitest';
import { FairQueue, QueueRejectedError, type QueueOutcome, type Release } from '../../src/gateway/fair-queue.ts';
import { GatewayError } from '../../src/core/errors.ts';

const flush = () => new Promise((resolve) => setImmediate(resolve));

/** Acquires and records the order in which grants happen. */
function recorder(queue: FairQueue) {
  const granted: string[] = [];
  const releases = new Map<string, Release>();
  const request = (key: string, label: string, signal?: AbortSignal) =>
    queue.acquire(key, signal).then((release) => {
      granted.push(label);
      releases.set(label, release);
      return release;
    });
  const finish = async (label: string) => {
    (releases.get(label) as Release)();
    await flush();
  };
  return { granted, request, finish };
}

describe('FairQueue', () => {
  afterEach(() => {
    vi.useRealTimers();
  });

  it('never lets more than max_concurrency through at once', async () => {
    const queue = new FairQueue({ maxConcurrency: 3 });
    let running = 0;
    let peak = 0;
    const work = async (key: string) => {
      const release = await queue.acquire(key);
      running++;
      peak = Math.max(peak, running);
      await flush();
      running--;
      release();
    };
    await Promise.all(Array.from({ length: 30 }, (_, i) => work(`key-${i % 4}`)));
    expect(peak).toBe(3);
    expect(queue.active).toBe(0);
    expect(queue.depth).toBe(0);
  });

  it('grants immediately while slots are free, then queues', async () => {
    const queue = new FairQueue({ maxConcurrency: 2 });
    const r1 = await queue.acquire('a');
    await queue.acquire('a');
    expect(queue.active).toBe(2);
    const waiting = queue.acquire('a');
    expect(queue.depth).toBe(1);
    r1();
    r1(); // a second release does nothing
    await waiting;
    expect(queue.active).toBe(2);
    expect(queue.depth).toBe(0);
  });

  it('serves each key first in, first out', async () => {
    const queue = new FairQueue({ maxConcurrency: 1 });
    const { granted, request, finish } = recorder(queue);
    await request('a', 'holder');
    for (let i = 1; i <= 4; i++) void request('a', `a${i}`);
    for (const label of ['holder', 'a1', 'a2', 'a3']) await finish(label);
    expect(granted).toEqual(['holder', 'a1', 'a2', 'a3', 'a4']);
  });

  it('a flooding key does not delay another key beyond one slot turn', async () => {
    const queue = new FairQueue({ maxConcurrency: 1 });
    const { granted, request, finish } = recorder(queue);
    await request('flood', 'f0');
    for (let i = 1; i <= 100; i++) void request('flood', `f${i}`);
    void request('quiet', 'q1');
    expect(queue.depth).toBe(101);
    expect(queue.depthOf('flood')).toBe(100);
    await finish('f0');
    await finish('f1'); // the flood had one turn; the next slot is the quiet key's
    expect(granted).toEqual(['f0', 'f1', 'q1']);
    await finish('q1');
    expect(granted.at(-1)).toBe('f2');
  });

  it('rotates among several keys', async () => {
    const queue = new FairQueue({ maxConcurrency: 1 });
    const { granted, request, finish } = recorder(queue);
    await request('x', 'hold');
    for (const key of ['a', 'b', 'c']) for (let i = 1; i <= 2; i++) void request(key, `${key}${i}`);
    let last = 'hold';
    for (let i = 0; i < 6; i++) {
      await finish(last);
      last = granted.at(-1) as string;
    }
    expect(granted).toEqual(['hold', 'a1', 'b1', 'c1', 'a2', 'b2', 'c2']);
  });

  it('a new request cannot jump ahead of waiters when a slot frees', async () => {
    const queue = new FairQueue({ maxConcurrency: 1 });
    const { granted, request, finish } = recorder(queue);
    await request('a', 'first');
    void request('b', 'waiting');
    await finish('first');
    void request('c', 'newcomer');
    await flush();
    expect(granted).toEqual(['first', 'waiting']);
    expect(queue.depth).toBe(1);
  });

  it('rejects at once when the queue is full', async () => {
    const outcomes: QueueOutcome[] = [];
    const queue = new FairQueue({ maxConcurrency: 1, maxSize: 2, name: 'openai', retryAfterSeconds: 3, onWait: (_, __, outcome) => outcomes.push(outcome) });
    await queue.acquire('a');
    void queue.acquire('a');
    void queue.acquire('b');
    const rejected = queue.acquire('c');
    await expect(rejected).rejects.toBeInstanceOf(QueueRejectedError);
    const error = (await rejected.catch((e: unknown) => e)) as QueueRejectedError;
    expect(error).toBeInstanceOf(GatewayError);
    expect(error).toMatchObject({ reason: 'full', code: 'QUEUE_FULL', status: 503, retryAfterSeconds: 3 });
    expect(error.message).toContain('openai');
    expect(queue.depth).toBe(2);
    expect(outcomes).toEqual(['acquired', 'full']);
  });

  it('maxSize 0 never queues', async () => {
    const queue = new FairQueue({ maxConcurrency: 1, maxSize: 0 });
    await queue.acquire('a');
    await expect(queue.acquire('a')).rejects.toMatchObject({ reason: 'full' });
  });

  it('rejects a waiter that waited longer than timeoutMs and reports the wait', async () => {
    vi.useFakeTimers();
    const waits: Array<[string, number, QueueOutcome]> = [];
    const queue = new FairQueue({ maxConcurrency: 1, timeoutMs: 2_000, onWait: (key, ms, outcome) => waits.push([key, ms, outcome]) });
    const release = await queue.acquire('a');
    const late = queue.acquire('b');
    const caught = late.catch((e: unknown) => e);
    await vi.advanceTimersByTimeAsync(1_999);
    expect(queue.depth).toBe(1);
    await vi.advanceTimersByTimeAsync(1);
    expect(await caught).toMatchObject({ reason: 'timeout', code: 'QUEUE_TIMEOUT', retryAfterSeconds: 1 });
    expect(queue.depth).toBe(0);
    release();
    expect(queue.active).toBe(0);
    expect(waits).toEqual([
      ['a', 0, 'acquired'],
      ['b', 2_000, 'timeout'],
    ]);
    expect(vi.getTimerCount()).toBe(0);
  });

  it('reports how long a granted waiter waited and clears its timer', async () => {
    vi.useFakeTimers();
    const waits: number[] = [];
    const queue = new FairQueue({ maxConcurrency: 1, timeoutMs: 10_000, onWait: (_, ms) => waits.push(ms) });
    const release = await queue.acquire('a');
    const next = queue.acquire('b');
    await vi.advanceTimersByTimeAsync(750);
    release();
    await next;
    expect(waits).toEqual([0, 750]);
    expect(vi.getTimerCount()).toBe(0);
  });

  it('a waiter that aborts leaves the queue and the others move up', async () => {
    const outcomes: QueueOutcome[] = [];
    const queue = new FairQueue({ maxConcurrency: 1, onWait: (_, __, outcome) => outcomes.push(outcome) });
    const { granted, request, finish } = recorder(queue);
    await request('a', 'holder');
    const controller = new AbortController();
    const leaving = request('a', 'leaver', controller.signal);
    void request('a', 'stayer');
    expect(queue.depth).toBe(2);
    controller.abort(new Error('client went away'));
    await expect(leaving).rejects.toThrow('client went away');
    expect(queue.depth).toBe(1);
    await finish('holder');
    expect(granted).toEqual(['holder', 'stayer']);
    expect(outcomes).toEqual(['acquired', 'aborted', 'acquired']);
  });

  it('an already aborted signal is rejected without queueing', async () => {
    const queue = new FairQueue({ maxConcurrency: 1 });
    await expect(queue.acquire('a', AbortSignal.abort(new Error('gone')))).rejects.toThrow('gone');
    expect(queue.active).toBe(0);
  });

  it('aborting after the grant changes nothing', async () => {
    const queue = new FairQueue({ maxConcurrency: 1 });
    const holder = await queue.acquire('a');
    const controller = new AbortController();
    const next = queue.acquire('b', controller.signal);
    holder();
    const release = await next;
    controller.abort();
    expect(queue.active).toBe(1);
    release();
    expect(queue.active).toBe(0);
  });
});
