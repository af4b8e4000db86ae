/**
 * Usage counters in Redis: one hash per measure (client → count) under the key prefix, so every
 * instance adds to the same totals and any instance can report them.
 *
 * Counts are added up in memory and written together once a second (one MULTI for every client and
 * measure), before a read, and on close: Redis sees a write per second per instance instead of two per
 * request. Counting is best effort: a failed write is reported to the state health and never fails a
 * request; counts that certainly did not reach Redis (no connection) wait for the next write.
 */
import type { Redis } from 'ioredis';
import type { StateHealth } from './health.ts';
import type { UsageCounters, UsageDelta, UsageRow } from './store.ts';

const MEASURES = ['requests', 'input_tokens', 'output_tokens'] as const;
type Measure = (typeof MEASURES)[number];
type Counts = Record<Measure, number>;

const FLUSH_MS = 1000;

export class RedisUsage implements UsageCounters {
  private readonly client: Redis;
  private readonly health: StateHealth;
  private readonly keys: Record<Measure, string>;
  /** Counts not written yet, per client. */
  private pending = new Map<string, Counts>();
  private timer: NodeJS.Timeout | undefined;
  private closed = false;

  constructor(client: Redis, prefix: string, health: StateHealth) {
    this.client = client;
    this.health = health;
    this.keys = { requests: `${prefix}usage:requests`, input_tokens: `${prefix}usage:input_tokens`, output_tokens: `${prefix}usage:output_tokens` };
  }

  async record(client: string, delta: UsageDelta): Promise<void> {
    if (this.closed) return;
    this.add(client, delta);
    this.schedule();
  }

  private schedule(): void {
    if (this.timer || this.closed) return;
    this.timer = setTimeout(() => void this.flush(), FLUSH_MS);
    this.timer.unref();
  }

  /** Writes what was counted since the last write, in one MULTI. */
  async flush(): Promise<void> {
    clearTimeout(this.timer);
    this.timer = undefined;
    if (this.pending.size === 0) return;
    const batch = this.pending;
    this.pending = new Map();
    const multi = this.client.multi();
    for (const [client, counts] of batch) {
      for (const measure of MEASURES) if (counts[measure]) multi.hincrby(this.keys[measure], client, counts[measure]);
    }
    const sendable = this.client.status === 'ready';
    try {
      await multi.exec();
    } catch (error) {
      this.health.failed('usage', error);
      // Without a connection nothing was sent: keep the counts for the next write. After a timeout they
      // may have been applied, and counting them twice would be worse than losing them.
      if (!sendable && !this.closed) {
        for (const [client, counts] of batch) this.add(client, counts);
        this.schedule();
      }
    }
  }

  /** The store is closing: one last write if Redis is there, then nothing is kept or retried. */
  async close(connected: boolean): Promise<void> {
    if (connected) await this.flush();
    this.closed = true;
    clearTimeout(this.timer);
    this.timer = undefined;
    this.pending.clear();
  }

  private add(client: string, delta: UsageDelta): void {
    let counts = this.pending.get(client);
    if (!counts) this.pending.set(client, (counts = { requests: 0, input_tokens: 0, output_tokens: 0 }));
    for (const measure of MEASURES) counts[measure] += delta[measure] ?? 0;
  }

  async read(): Promise<UsageRow[]> {
    await this.flush();
    let hashes: Record<string, string>[];
    try {
      hashes = await Promise.all(MEASURES.map((measure) => this.client.hgetall(this.keys[measure])));
    } catch (error) {
      this.health.failed('usage', error);
      throw error;
    }
    const rows = new Map<string, UsageRow>();
    MEASURES.forEach((measure, i) => {
      for (const [client, value] of Object.entries(hashes[i])) {
        let row = rows.get(client);
        if (!row) rows.set(client, (row = { client, requests: 0, input_tokens: 0, output_tokens: 0, total_tokens: 0 }));
        row[measure] = Number(value);
      }
    });
    for (const row of rows.values()) row.total_tokens = row.input_tokens + row.output_tokens;
    return [...rows.values()];
  }
}
