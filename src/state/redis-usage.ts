/**
 * Usage counters in Redis: one hash per measure (client → count) under the key prefix, so every
 * instance adds to the same totals and any instance can report them. Counting is best effort: a
 * failed write is reported to the state health and never fails the request.
 */
import type { Redis } from 'ioredis';
import type { StateHealth } from './health.ts';
import type { UsageCounters, UsageDelta, UsageRow } from './store.ts';

const MEASURES = ['requests', 'input_tokens', 'output_tokens'] as const;

export class RedisUsage implements UsageCounters {
  private readonly client: Redis;
  private readonly health: StateHealth;
  private readonly keys: Record<(typeof MEASURES)[number], string>;

  constructor(client: Redis, prefix: string, health: StateHealth) {
    this.client = client;
    this.health = health;
    this.keys = { requests: `${prefix}usage:requests`, input_tokens: `${prefix}usage:input_tokens`, output_tokens: `${prefix}usage:output_tokens` };
  }

  async record(client: string, delta: UsageDelta): Promise<void> {
    const multi = this.client.multi();
    let any = false;
    for (const measure of MEASURES) {
      const n = delta[measure];
      if (!n) continue;
      multi.hincrby(this.keys[measure], client, n);
      any = true;
    }
    if (!any) return;
    try {
      await multi.exec();
    } catch (error) {
      this.health.failed('usage', error);
    }
  }

  async read(): Promise<UsageRow[]> {
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
