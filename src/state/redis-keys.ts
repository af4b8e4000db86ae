/**
 * Managed API keys in Redis, shared by every instance. Only SHA-256 hashes are stored. Layout under the
 * key prefix P:
 *   P keys:records  hash  sha256 → record JSON (name, limits, scope, created, expires)
 *   P keys:active   hash  name → sha256 of the active key with that name (one per name)
 *   P keys:revoked  hash  sha256 → revocation time
 *   P keys:version  string, a fresh random token on every change (a counter could repeat after a
 *                   Redis restart without persistence; a token cannot)
 * Create and revoke are Lua scripts, so two instances racing on one name cannot both win.
 */
import { randomUUID } from 'node:crypto';
import type { Redis } from 'ioredis';
import type { StateHealth } from './health.ts';
import { KeyExistsError, newKeyRecord, updateKeyRecord, type ApiKeyRecord, type KeyChanges, type NewKeyOptions } from './keys.ts';
import type { KeyStore } from './store.ts';

const CREATE = `
if redis.call('HSETNX', KEYS[1], ARGV[1], ARGV[2]) == 0 then return 0 end
redis.call('HSET', KEYS[2], ARGV[2], ARGV[3])
redis.call('SET', KEYS[3], ARGV[4])
return 1`;

const REVOKE = `
local sha = redis.call('HGET', KEYS[1], ARGV[1])
if not sha then return 0 end
redis.call('HDEL', KEYS[1], ARGV[1])
redis.call('HSET', KEYS[2], sha, ARGV[2])
redis.call('SET', KEYS[3], ARGV[3])
return 1`;

// Replaces the record only if it is still the one read (another instance may have changed it meanwhile).
const UPDATE = `
local sha = redis.call('HGET', KEYS[1], ARGV[1])
if sha ~= ARGV[2] then return 0 end
if redis.call('HGET', KEYS[2], sha) ~= ARGV[3] then return 0 end
redis.call('HSET', KEYS[2], sha, ARGV[4])
redis.call('SET', KEYS[3], ARGV[5])
return 1`;

interface KeyScripts {
  hapaxUpdateKey(active: string, records: string, version: string, name: string, sha: string, before: string, after: string, token: string): Promise<number>;
  hapaxCreateKey(active: string, records: string, version: string, name: string, sha: string, json: string, token: string): Promise<number>;
  hapaxRevokeKey(active: string, revoked: string, version: string, name: string, at: string, token: string): Promise<number>;
}

export class RedisKeyStore implements KeyStore {
  private readonly client: Redis & KeyScripts;
  private readonly health: StateHealth;
  private readonly k: { records: string; active: string; revoked: string; version: string };

  constructor(client: Redis, prefix: string, health: StateHealth) {
    client.defineCommand('hapaxCreateKey', { numberOfKeys: 3, lua: CREATE });
    client.defineCommand('hapaxRevokeKey', { numberOfKeys: 3, lua: REVOKE });
    client.defineCommand('hapaxUpdateKey', { numberOfKeys: 3, lua: UPDATE });
    this.client = client as Redis & KeyScripts;
    this.health = health;
    this.k = { records: `${prefix}keys:records`, active: `${prefix}keys:active`, revoked: `${prefix}keys:revoked`, version: `${prefix}keys:version` };
  }

  private async tracked<T>(work: () => Promise<T>): Promise<T> {
    try {
      const result = await work();
      this.health.recovered();
      return result;
    } catch (error) {
      this.health.failed('keys', error);
      throw error;
    }
  }

  version(): Promise<string> {
    return this.tracked(async () => (await this.client.get(this.k.version)) ?? '');
  }

  list(): Promise<ApiKeyRecord[]> {
    return this.tracked(async () => {
      const [records, revoked] = await Promise.all([this.client.hgetall(this.k.records), this.client.hgetall(this.k.revoked)]);
      return Object.entries(records).map(([sha, json]) => {
        const record = JSON.parse(json) as ApiKeyRecord;
        return { ...record, sha256: sha, ...(revoked[sha] ? { revoked: revoked[sha] } : {}) };
      });
    });
  }

  async create(opts: NewKeyOptions): Promise<{ key: string; record: ApiKeyRecord }> {
    const created = newKeyRecord(opts);
    const stored = await this.tracked(() =>
      this.client.hapaxCreateKey(this.k.active, this.k.records, this.k.version, opts.name, created.record.sha256, JSON.stringify(created.record), randomUUID()),
    );
    if (stored !== 1) throw new KeyExistsError(opts.name);
    return created;
  }

  async update(name: string, changes: KeyChanges): Promise<ApiKeyRecord | undefined> {
    // Read, change, write if unchanged; a lost race is retried on the fresh record.
    for (let attempt = 0; attempt < 5; attempt++) {
      const sha = await this.tracked(() => this.client.hget(this.k.active, name));
      if (!sha) return undefined;
      const before = await this.tracked(() => this.client.hget(this.k.records, sha));
      if (!before) return undefined;
      const next = updateKeyRecord({ ...(JSON.parse(before) as ApiKeyRecord), sha256: sha }, changes);
      const done = await this.tracked(() => this.client.hapaxUpdateKey(this.k.active, this.k.records, this.k.version, name, sha, before, JSON.stringify(next), randomUUID()));
      if (done === 1) return next;
    }
    throw new Error(`key ${name} kept changing while it was being updated; try again`);
  }

  async revoke(name: string): Promise<boolean> {
    const done = await this.tracked(() => this.client.hapaxRevokeKey(this.k.active, this.k.revoked, this.k.version, name, new Date().toISOString(), randomUUID()));
    return done === 1;
  }
}
