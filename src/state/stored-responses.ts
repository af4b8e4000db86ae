/**
 * Responses kept for the Responses API (`store`, on by default): each one with every item the model saw, so
 * `previous_response_id` continues the conversation on any provider, and on any instance that shares the
 * state store (Redis). Kept per owner: one key's responses are invisible to every other key.
 */
import { createHash } from 'node:crypto';
import type { CacheStore } from './store.ts';

export interface StoredResponse {
  /** The Response object as the client got it (the provider's own on the lossless lane). */
  response: Record<string, unknown> & { id: string; output?: unknown[] };
  /** Every input item of the conversation up to this response: the previous ones' and this request's own. */
  input: Record<string, unknown>[];
}

export class StoredResponses {
  private readonly cache: CacheStore<StoredResponse>;
  private readonly ttlMs: number;

  constructor(cache: CacheStore<StoredResponse>, ttlMs: number) {
    this.cache = cache;
    this.ttlMs = ttlMs;
  }

  /** The owner is hashed into the key: a key name never appears in Redis, and no id is shared across owners. */
  private key(owner: string, id: string): string {
    return `${createHash('sha256').update(owner).digest('hex').slice(0, 32)}:${id}`;
  }

  get(owner: string, id: string): Promise<StoredResponse | undefined> {
    return this.cache.get(this.key(owner, id));
  }

  put(owner: string, stored: StoredResponse): Promise<void> {
    return this.cache.set(this.key(owner, stored.response.id), stored, this.ttlMs);
  }

  delete(owner: string, id: string): Promise<boolean> {
    return this.cache.delete(this.key(owner, id));
  }
}

/** The items a continuation starts from: what the stored response was given, then what it answered. */
export const historyOf = (stored: StoredResponse): Record<string, unknown>[] => [...stored.input, ...((stored.response.output ?? []) as Record<string, unknown>[])];
