/**
 * Usage counters in Redis, so every instance adds to the same totals and any instance can report them.
 * Layout under the key prefix P:
 *   P usage:day:YYYY-MM-DD  hash  "<measure>|<dimensions>" → count (HINCRBY), expiring after the retention
 *   P usage:days            set   the days that have a hash, so a report reads only those
 *
 * Counts are added up in memory and written together once a second (one MULTI for everything counted),
 * before a read, and on close: Redis sees a write per second per instance instead of one per request.
 * Counting is best effort: a failed write is reported to the state health and never fails a request;
 * counts that certainly did not reach Redis (no connection) wait for the next write.
 */
import type { Redis } from 'ioredis';
import type { StateHealth } from './health.ts';
import { USAGE_MEASURES, type UsageCounters, type UsageCounts, type UsageEntry, type UsageMeasure, type UsageRange, type UsageRecord } from './store.ts';
import { addCounts, dimensionsId, entryOf, inRange, USAGE_RETENTION_DAYS, zeroCounts } from './usage-rows.ts';

const FLUSH_MS = 1000;
const RETENTION_SECONDS = USAGE_RETENTION_DAYS * 86_400;

export class RedisUsage implements UsageCounters {
  private readonly client: Redis;
  private readonly health: StateHealth;
  private readonly prefix: string;
  /** Counts not written yet, by dimensions id (which starts with the day). */
  private pending = new Map<string, UsageCounts>();
  private timer: NodeJS.Timeout | undefined;
  private closed = false;

  constructor(client: Redis, prefix: string, health: StateHealth) {
    this.client = client;
    this.health = health;
    this.prefix = prefix;
  }

  private dayKey(day: string): string {
    return `${this.prefix}usage:day:${day}`;
  }

  async record(entry: UsageRecord): Promise<void> {
    if (this.closed) return;
    this.add(dimensionsId(entry), entry);
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
    const days = new Set<string>();
    for (const [id, counts] of batch) {
      const day = id.slice(0, 10);
      days.add(day);
      for (const measure of USAGE_MEASURES) if (counts[measure]) multi.hincrby(this.dayKey(day), `${measure}|${id}`, counts[measure]);
    }
    for (const day of days) multi.expire(this.dayKey(day), RETENTION_SECONDS);
    multi.sadd(`${this.prefix}usage:days`, ...days);
    const sendable = this.client.status === 'ready';
    try {
      await multi.exec();
    } catch (error) {
      this.health.failed('usage', error);
      // Without a connection nothing was sent: keep the counts for the next write. After a timeout they
      // may have been applied, and counting them twice would be worse than losing them.
      if (!sendable && !this.closed) {
        for (const [id, counts] of batch) this.add(id, counts);
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

  private add(id: string, delta: Partial<UsageCounts>): void {
    let counts = this.pending.get(id);
    if (!counts) this.pending.set(id, (counts = zeroCounts()));
    addCounts(counts, delta);
  }

  async read(range?: UsageRange): Promise<UsageEntry[]> {
    await this.flush();
    const daysKey = `${this.prefix}usage:days`;
    try {
      const days = (await this.client.smembers(daysKey)).filter((day) => inRange(day, range)).sort();
      const hashes = await Promise.all(days.map((day) => this.client.hgetall(this.dayKey(day))));
      // A day whose hash expired leaves the set.
      const gone = days.filter((_, i) => Object.keys(hashes[i]).length === 0);
      if (gone.length > 0) await this.client.srem(daysKey, ...gone);
      const rows = new Map<string, UsageCounts>();
      for (const hash of hashes) {
        for (const [field, value] of Object.entries(hash)) {
          const bar = field.indexOf('|');
          const measure = field.slice(0, bar) as UsageMeasure;
          const id = field.slice(bar + 1);
          let counts = rows.get(id);
          if (!counts) rows.set(id, (counts = zeroCounts()));
          if (measure in counts) counts[measure] += Number(value);
        }
      }
      return [...rows].map(([id, counts]) => entryOf(id, counts));
    } catch (error) {
      this.health.failed('usage', error);
      throw error;
    }
  }
}
