/**
 * The quota ledger in Redis: each counter is one hash (bucket → amount) under the key prefix. A
 * reservation over several counters is one Lua script, which Redis runs without interleaving anything
 * else: every instance of a fleet sees the same counts, and a burst spread over them admits exactly what
 * fits. Like the rate limiters, a failed call follows `on_failure`: `open` reserves in this process
 * (per-instance counts until Redis is back), `closed` refuses with 503.
 */
import type { Redis } from 'ioredis';
import { stateUnavailable, type FailurePolicy, type StateHealth } from './health.ts';
import { MemoryQuota, type QuotaCharge, type QuotaEntry, type QuotaLedger, type ReserveResult } from './quota.ts';

/** KEYS: the counters. ARGV, five per counter: amount, limit, bucket, from, ttl_ms. All or nothing. */
const RESERVE = `
local used = {}
for i = 1, #KEYS do
  local base = (i - 1) * 5
  local amount = tonumber(ARGV[base + 1])
  local limit = tonumber(ARGV[base + 2])
  local from = tonumber(ARGV[base + 4])
  local fields = redis.call('HGETALL', KEYS[i])
  local sum = 0
  for j = 1, #fields, 2 do
    if tonumber(fields[j]) < from then redis.call('HDEL', KEYS[i], fields[j]) else sum = sum + tonumber(fields[j + 1]) end
  end
  if sum + amount > limit then return {0, i - 1, sum} end
  used[i] = sum
end
for i = 1, #KEYS do
  local base = (i - 1) * 5
  redis.call('HINCRBY', KEYS[i], ARGV[base + 3], ARGV[base + 1])
  local ttl = tonumber(ARGV[base + 5])
  if redis.call('PTTL', KEYS[i]) < ttl then redis.call('PEXPIRE', KEYS[i], ttl) end
end
return {1, unpack(used)}
`;

/** KEYS: the counters. ARGV, three per counter: bucket, delta, ttl_ms. */
const ADJUST = `
for i = 1, #KEYS do
  local base = (i - 1) * 3
  redis.call('HINCRBY', KEYS[i], ARGV[base + 1], ARGV[base + 2])
  local ttl = tonumber(ARGV[base + 3])
  if redis.call('PTTL', KEYS[i]) < ttl then redis.call('PEXPIRE', KEYS[i], ttl) end
end
return 1
`;

type Scripted = Redis & {
  hapaxQuotaReserve(keys: number, ...args: Array<string | number>): Promise<number[]>;
  hapaxQuotaAdjust(keys: number, ...args: Array<string | number>): Promise<number>;
};

export class RedisQuota implements QuotaLedger {
  private readonly client: Scripted;
  private readonly prefix: string;
  private readonly health: StateHealth;
  /** Counts while Redis is out of reach, with `on_failure: open`. */
  private readonly local?: MemoryQuota;

  constructor(client: Redis, prefix: string, policy: FailurePolicy, health: StateHealth) {
    // defineCommand sends EVALSHA and falls back to EVAL once when Redis does not know the script yet.
    client.defineCommand('hapaxQuotaReserve', { lua: RESERVE });
    client.defineCommand('hapaxQuotaAdjust', { lua: ADJUST });
    this.client = client as Scripted;
    this.prefix = `${prefix}quota:`;
    this.health = health;
    if (policy === 'open') this.local = new MemoryQuota();
  }

  /** The local ledger after a failed call, or a 503 (closed). */
  private fallback(error: unknown): MemoryQuota {
    this.health.failed('quota', error);
    if (!this.local) throw stateUnavailable();
    return this.local;
  }

  async reserve(charges: readonly QuotaCharge[]): Promise<ReserveResult> {
    if (charges.length === 0) return { ok: true, used: [] };
    const keys = charges.map((c) => this.prefix + c.counter);
    const args: Array<string | number> = [];
    for (const c of charges) args.push(c.amount, c.limit, c.bucket, c.from, c.ttlMs);
    let reply: number[];
    try {
      if (this.client.status !== 'ready') throw new Error('not connected');
      reply = await this.client.hapaxQuotaReserve(keys.length, ...keys, ...args);
    } catch (error) {
      const local = this.fallback(error);
      return { ...local.reserveNow(charges), ledger: local };
    }
    if (reply[0] === 1) return { ok: true, used: reply.slice(1).map(Number) };
    return { ok: false, index: Number(reply[1]), used: Number(reply[2]) };
  }

  async adjust(entries: readonly QuotaEntry[]): Promise<void> {
    const changed = entries.filter((e) => e.delta !== 0);
    if (changed.length === 0) return;
    const keys = changed.map((e) => this.prefix + e.counter);
    const args: Array<string | number> = [];
    for (const e of changed) args.push(e.bucket, e.delta, e.ttlMs);
    try {
      await this.client.hapaxQuotaAdjust(keys.length, ...keys, ...args);
    } catch (error) {
      // A settle that did not land leaves the reservation standing: the counter over-counts until its window ends.
      this.health.failed('quota', error);
    }
  }

  async used(counter: string, from: number): Promise<number> {
    try {
      const fields = await this.client.hgetall(this.prefix + counter);
      let sum = 0;
      for (const [bucket, amount] of Object.entries(fields)) if (Number(bucket) >= from) sum += Number(amount);
      return sum;
    } catch (error) {
      return this.fallback(error).used(counter, from);
    }
  }
}
