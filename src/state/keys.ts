/**
 * Client API keys. Keys from the config (`key` or `key_sha256`) and managed keys (created with
 * `hapax keys create`, kept as SHA-256 hashes in a JSON file) live in one lookup table by hash.
 * Lookup is by the key's SHA-256, confirmed with a constant-time compare: timing can reveal at most
 * something about a hash, never the key itself.
 */
import { hash, randomBytes, timingSafeEqual } from 'node:crypto';
import { mkdir, readFile, rename, stat, writeFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import { parseDuration } from '../config/duration.ts';
import { budgetLimit, type BudgetLimit } from '../config/schema.ts';
import type { KeyStore } from './store.ts';

export interface RateLimitSettings {
  requests_per_minute?: number;
  tokens_per_minute?: number;
  burst?: number;
}

export interface ApiKeyRecord {
  name: string;
  sha256: string;
  rate_limit?: RateLimitSettings;
  /** Spending caps of this key (see config `auth.keys[].budgets`). */
  budgets?: BudgetLimit[];
  routes?: string[];
  models?: string[];
  /** ISO time after which the key is refused. */
  expires?: string;
  created?: string;
  /** When its limits or budgets were last changed. */
  updated?: string;
  revoked?: string;
}

/** One-shot hashing: on the request path for every authenticated call, where createHash() costs ~2.5× more. */
export const hashKey = (key: string): string => hash('sha256', key, 'hex');

export interface NewKeyOptions {
  name: string;
  rate_limit?: RateLimitSettings;
  /** As written by the caller (admin API, CLI): validated and given their defaults here. */
  budgets?: unknown[];
  expires?: string;
  routes?: string[];
  models?: string[];
}

/** An active key already has the requested name. */
export class KeyExistsError extends Error {
  readonly code = 'KEY_EXISTS';
  constructor(name: string) {
    super(`a key named ${name} already exists`);
    this.name = 'KeyExistsError';
  }
}

/** Names a managed key may have (they appear in URLs, metrics labels and logs). */
export const KEY_NAME = /^[A-Za-z0-9_.-]{1,64}$/;
export const KEY_NAME_RULE = 'use 1-64 letters, digits, _ . -';

/** A key cannot be created with these options: `field` says which one. */
export class KeyOptionError extends Error {
  readonly field: string;
  constructor(field: string, message: string) {
    super(message);
    this.name = 'KeyOptionError';
    this.field = field;
  }
}

/**
 * A fresh secret and the record that stores only its hash. The rules for a new key live here, so the admin
 * API and `hapax keys create` accept and refuse the same things.
 */
export function newKeyRecord(opts: NewKeyOptions, now = Date.now()): { key: string; record: ApiKeyRecord } {
  if (!KEY_NAME.test(opts.name)) throw new KeyOptionError('name', `name: ${KEY_NAME_RULE}`);
  let expires: string | undefined;
  try {
    expires = expiryFrom(opts.expires, now);
  } catch (error) {
    throw new KeyOptionError('expires', (error as Error).message);
  }
  const budgets = opts.budgets?.length ? keyBudgets(opts.budgets) : undefined;
  const limits = Object.fromEntries(Object.entries(opts.rate_limit ?? {}).filter(([, value]) => value !== undefined));
  const key = newKeySecret();
  const record: ApiKeyRecord = {
    name: opts.name,
    sha256: hashKey(key),
    created: new Date(now).toISOString(),
    ...(Object.keys(limits).length ? { rate_limit: limits } : {}),
    ...(budgets ? { budgets } : {}),
    ...(expires ? { expires } : {}),
    ...(opts.routes ? { routes: opts.routes } : {}),
    ...(opts.models ? { models: opts.models } : {}),
  };
  return { key, record };
}

/** Budgets as the admin API or the CLI wrote them, checked and given their defaults (KeyOptionError names the field). */
function keyBudgets(budgets: unknown[]): BudgetLimit[] {
  const parsed = budgetLimit.array().safeParse(budgets);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new KeyOptionError(['budgets', ...issue.path].join('.'), `budgets.${issue.path.join('.')}: ${issue.message}`.replace(/\.: /, ': '));
  }
  return parsed.data;
}

/** What `hapax keys update` and PATCH /admin/keys/{name} may change; a field left out is kept. */
export interface KeyChanges {
  /** The key's budgets, replacing its old ones; [] removes them (the key then falls under `per_key`). */
  budgets?: unknown[];
  /** Each limit given replaces the old one; null removes it. */
  rate_limit?: { requests_per_minute?: number | null; tokens_per_minute?: number | null };
}

/**
 * A key's record with `changes` applied. What was spent stays: budget counters are named by key name and
 * window, not by amount, so a changed cap applies to the spend already in the current window.
 */
export function updateKeyRecord(record: ApiKeyRecord, changes: KeyChanges, now = Date.now()): ApiKeyRecord {
  const next: ApiKeyRecord = { ...record, updated: new Date(now).toISOString() };
  if (changes.budgets !== undefined) {
    const budgets = keyBudgets(changes.budgets);
    if (budgets.length > 0) next.budgets = budgets;
    else delete next.budgets;
  }
  if (changes.rate_limit) {
    const limits: RateLimitSettings = { ...record.rate_limit };
    for (const name of ['requests_per_minute', 'tokens_per_minute'] as const) {
      const value = changes.rate_limit[name];
      if (value === null) delete limits[name];
      else if (value !== undefined) {
        if (!Number.isInteger(value) || value <= 0) throw new KeyOptionError(name, `${name}: expected a positive whole number`);
        limits[name] = value;
      }
    }
    if (Object.keys(limits).length > 0) next.rate_limit = limits;
    else delete next.rate_limit;
  }
  return next;
}

/** Compares two secrets in constant time (through their SHA-256, so lengths leak nothing either). */
export function sameSecret(presented: string, expected: string): boolean {
  return timingSafeEqual(hash('sha256', presented, 'buffer'), hash('sha256', expected, 'buffer'));
}

export function newKeySecret(): string {
  return `hpx_${randomBytes(24).toString('base64url')}`;
}

/** `expires` as written in config or on the command line: an ISO date or a duration from now ("90d"). */
export function expiryFrom(value: string | undefined, now = Date.now()): string | undefined {
  if (!value) return undefined;
  const ms = parseDuration(value);
  if (ms !== undefined && !/^\d+$/.test(value)) return new Date(now + ms).toISOString();
  const date = Date.parse(value);
  if (Number.isNaN(date)) throw new Error(`expires: expected an ISO date or a duration like 90d, got ${value}`);
  return new Date(date).toISOString();
}

export class KeyTable {
  /** By the SHA-256 digest as a latin1 string (one char per byte): the cheapest output of a one-shot hash. */
  private readonly byDigest = new Map<string, { record: ApiKeyRecord; digest: Buffer }>();

  constructor(records: Iterable<ApiKeyRecord>) {
    for (const record of records) {
      const digest = Buffer.from(record.sha256, 'hex');
      this.byDigest.set(digest.toString('latin1'), { record, digest });
    }
  }

  get size(): number {
    return this.byDigest.size;
  }

  /** The live record for a presented key, or why it is refused. */
  verify(presented: string, now = Date.now()): { record: ApiKeyRecord } | { refused: string; unknown?: true } {
    const digest = hash('sha256', presented, 'latin1');
    const entry = this.byDigest.get(digest);
    if (!entry || !timingSafeEqual(entry.digest, Buffer.from(digest, 'latin1'))) return { refused: 'invalid API key', unknown: true };
    if (entry.record.revoked) return { refused: 'API key has been revoked' };
    if (entry.record.expires && Date.parse(entry.record.expires) <= now) return { refused: 'API key has expired' };
    return { record: entry.record };
  }
}

/**
 * Managed keys in a JSON file (the key store when there is no Redis). Writes go through a temp file and
 * rename, so readers never see half a file.
 */
export class KeyFile implements KeyStore {
  readonly path: string;
  constructor(path: string) {
    this.path = path;
  }

  async read(): Promise<ApiKeyRecord[]> {
    try {
      const json = JSON.parse(await readFile(this.path, 'utf8')) as { keys?: ApiKeyRecord[] };
      return Array.isArray(json.keys) ? json.keys : [];
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return [];
      throw error;
    }
  }

  list(): Promise<ApiKeyRecord[]> {
    return this.read();
  }

  /** The file's modification time: changes when any process (the CLI, another instance) writes it. */
  async version(): Promise<string> {
    return String(await this.mtime());
  }

  async write(keys: ApiKeyRecord[]): Promise<void> {
    await mkdir(dirname(this.path), { recursive: true });
    const temp = `${this.path}.${process.pid}.tmp`;
    await writeFile(temp, `${JSON.stringify({ keys }, null, 2)}\n`, { mode: 0o600 });
    await rename(temp, this.path);
  }

  /** Modification time, to notice changes made by another process (the CLI or another instance). */
  async mtime(): Promise<number> {
    try {
      return (await stat(this.path)).mtimeMs;
    } catch {
      return 0;
    }
  }

  async create(opts: NewKeyOptions): Promise<{ key: string; record: ApiKeyRecord }> {
    const keys = await this.read();
    if (keys.some((k) => k.name === opts.name && !k.revoked)) throw new KeyExistsError(opts.name);
    const created = newKeyRecord(opts);
    await this.write([...keys, created.record]);
    return created;
  }

  async update(name: string, changes: KeyChanges): Promise<ApiKeyRecord | undefined> {
    const keys = await this.read();
    const index = keys.findIndex((k) => k.name === name && !k.revoked);
    if (index < 0) return undefined;
    keys[index] = updateKeyRecord(keys[index], changes);
    await this.write(keys);
    return keys[index];
  }

  async revoke(name: string): Promise<boolean> {
    const keys = await this.read();
    let found = false;
    for (const key of keys) {
      if (key.name === name && !key.revoked) {
        key.revoked = new Date().toISOString();
        found = true;
      }
    }
    if (found) await this.write(keys);
    return found;
  }
}
