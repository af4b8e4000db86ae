/**
 * Which state store a Runtime uses. Stores are kept per gateway and per `state` setting: a reload that
 * keeps `state` keeps the same store (its counters, its Redis connection); one that changes it gets a
 * new store, and the old one closes when the last Runtime holding it closes.
 *
 * One registry per gateway, made at start and handed to every Runtime of that gateway (the first one and
 * every reload); several gateways in one process (tests) stay apart.
 */
import type { Logger } from 'pino';
import type { StateConfig } from '../config/schema.ts';
import type { Metrics } from '../observability/metrics.ts';
import { MemoryStore } from './memory.ts';
import { RedisStore } from './redis.ts';
import type { StateStore } from './store.ts';

export interface StateLease {
  readonly store: StateStore;
  /** Gives the store back; the last holder closes it. Safe to call twice. */
  release(): Promise<void>;
}

interface Entry {
  store: StateStore;
  holders: number;
}

export function createStore(settings: StateConfig, deps: { logger?: Logger; metrics?: Metrics } = {}): StateStore {
  if (!settings.redis_url) return new MemoryStore(deps);
  return new RedisStore({ url: settings.redis_url, prefix: settings.key_prefix, policy: settings.on_failure, ...deps });
}

export class StateStores {
  private readonly entries = new Map<string, Entry>();
  private readonly metrics: Metrics;
  private readonly logger?: Logger;

  /** `logger` gets the outage lines of shared (Redis) stores. */
  constructor(metrics: Metrics, logger?: Logger) {
    this.metrics = metrics;
    this.logger = logger;
  }

  acquire(settings: StateConfig): StateLease {
    const id = settings.redis_url ? JSON.stringify([settings.redis_url, settings.key_prefix, settings.on_failure]) : 'memory';
    let entry = this.entries.get(id);
    if (!entry) {
      entry = { store: createStore(settings, { logger: this.logger, metrics: this.metrics }), holders: 0 };
      this.entries.set(id, entry);
    }
    entry.holders++;
    const held = entry;
    let released = false;
    return {
      store: held.store,
      release: async () => {
        if (released) return;
        released = true;
        if (--held.holders > 0) return;
        this.entries.delete(id);
        await held.store.close();
      },
    };
  }
}
