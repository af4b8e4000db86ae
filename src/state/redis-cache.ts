/**
 * A cache in Redis, shared by every instance: JSON values with a time to live (SET PX). Size is bounded
 * by Redis itself (run it with a maxmemory and an LRU eviction policy). A cache never fails a request:
 * an unreachable Redis reads as a miss and drops the write, and is reported to the state health.
 */
import type { Redis } from 'ioredis';
import type { StateHealth } from './health.ts';
import type { CacheStore } from './store.ts';

export class RedisCache<T> implements CacheStore<T> {
  private readonly client: Redis;
  private readonly prefix: string;
  private readonly health: StateHealth;

  constructor(client: Redis, prefix: string, health: StateHealth) {
    this.client = client;
    this.prefix = prefix;
    this.health = health;
  }

  async get(key: string): Promise<T | undefined> {
    try {
      const json = await this.client.get(this.prefix + key);
      return json === null ? undefined : (JSON.parse(json) as T);
    } catch (error) {
      this.health.failed('cache', error);
      return undefined;
    }
  }

  async set(key: string, value: T, ttlMs: number): Promise<void> {
    try {
      await this.client.set(this.prefix + key, JSON.stringify(value), 'PX', Math.max(1, Math.round(ttlMs)));
    } catch (error) {
      this.health.failed('cache', error);
    }
  }

  async delete(key: string): Promise<boolean> {
    try {
      return (await this.client.del(this.prefix + key)) > 0;
    } catch (error) {
      this.health.failed('cache', error);
      return false;
    }
  }
}
