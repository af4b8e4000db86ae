/**
 * The live key table: keys from the config plus managed keys from the key store (the key file, or
 * Redis shared by every instance). The store's version is polled, and the table rebuilt when it
 * changes, so a key created or revoked anywhere takes effect everywhere within a second.
 */
import type { HapaxConfig } from '../config/schema.ts';
import { GatewayError } from '../core/errors.ts';
import { stateUnavailable } from './health.ts';
import { hashKey, KeyTable, type ApiKeyRecord } from './keys.ts';
import type { KeyStore, StateStore } from './store.ts';

const POLL_MS = 250;

/** A key as the config gives it (`auth.keys[]`). */
export type ConfigKey = HapaxConfig['auth']['keys'][number];

export class KeyService {
  private table: KeyTable;
  private readonly configRecords: ApiKeyRecord[];
  /** The config keys alone: judged locally even when shared state is out of reach. */
  private readonly configTable: KeyTable;
  private all: ApiKeyRecord[];
  readonly store: KeyStore;
  private readonly state: Pick<StateStore, 'available' | 'policy'>;
  private lastVersion?: string;
  private timer?: NodeJS.Timeout;
  private refreshing?: Promise<void>;
  /** The store look an unknown key waits for, and the one queued behind it for misses that came later. */
  private looking?: Promise<void>;
  private lookQueued?: Promise<void>;

  constructor(configKeys: ConfigKey[], store: KeyStore, state: Pick<StateStore, 'available' | 'policy'>) {
    this.configRecords = configKeys.map((k) => ({
      name: k.name,
      sha256: k.key_sha256 ?? hashKey(k.key as string),
      rate_limit: k.rate_limit,
      budgets: k.budgets,
      routes: k.routes,
      models: k.models,
      expires: k.expires ? new Date(k.expires).toISOString() : undefined,
    }));
    this.configTable = new KeyTable(this.configRecords);
    this.all = this.configRecords;
    this.table = this.configTable;
    this.store = store;
    this.state = state;
  }

  /** Loads the managed keys and keeps watching the store. An unreachable store is retried by the poll. */
  async start(): Promise<void> {
    await this.refresh().catch(() => undefined);
    this.timer = setInterval(() => this.poll(), POLL_MS);
    this.timer.unref();
  }

  stop(): void {
    clearInterval(this.timer);
  }

  /** A poll is skipped while the previous one runs: a slow store must not pile them up. */
  private poll(): void {
    if (!this.refreshing) void this.refresh().catch(() => undefined);
  }

  /** Rebuilds the table if the store changed; a change made just before the call is always seen. */
  async refresh(): Promise<void> {
    const previous = this.refreshing;
    const run = (async () => {
      await previous?.catch(() => undefined);
      await this.reload();
    })();
    this.refreshing = run;
    try {
      await run;
    } finally {
      if (this.refreshing === run) this.refreshing = undefined;
    }
  }

  private async reload(): Promise<void> {
    const version = await this.store.version();
    if (version === this.lastVersion) return;
    const managed = await this.store.list();
    this.lastVersion = version;
    this.all = [...this.configRecords, ...managed];
    this.table = new KeyTable(this.all);
  }

  /** Every key the table knows, revoked ones left out (for reports such as budgets in /admin/usage). */
  records(): ApiKeyRecord[] {
    return this.all.filter((record) => !record.revoked);
  }

  /**
   * `verify`, but a key the table does not know waits for one look at the store first: a key made by
   * `hapax keys create` (or on another instance) works as soon as the command returns, not at the next
   * poll. The look is one stat of the key file or one Redis read, shared by all misses in flight, so a
   * flood of bad keys costs the store no more than the poll does.
   */
  async verifyFresh(presented: string | undefined): Promise<ApiKeyRecord> {
    try {
      return this.verify(presented);
    } catch (error) {
      if (!presented || !(error instanceof GatewayError) || error.status !== 401 || !('unknown' in this.table.verify(presented))) throw error;
      await this.lookAgain();
      return this.verify(presented);
    }
  }

  /**
   * One look at the store that starts after this call: a look already under way may have read the store
   * before the key was written, so later misses share the next one (at most one queued at a time).
   */
  private lookAgain(): Promise<void> {
    if (!this.looking) {
      this.looking = this.refresh()
        .catch(() => undefined)
        .finally(() => (this.looking = undefined));
      return this.looking;
    }
    this.lookQueued ??= this.looking.then(() => {
      this.lookQueued = undefined;
      return this.lookAgain();
    });
    return this.lookQueued;
  }

  /**
   * The record for a presented key; a 401 AuthenticationError when missing, unknown, revoked or expired.
   * With `on_failure: closed` and shared state out of reach, only config keys are judged (a managed key
   * may have been revoked meanwhile): anything else is a 503.
   */
  verify(presented: string | undefined): ApiKeyRecord {
    if (!presented) {
      throw new GatewayError('missing API key: send it as X-API-Key or Authorization: Bearer', { status: 401, type: 'AuthenticationError' });
    }
    // With shared state out of reach and `on_failure: closed`, only a config key can be judged.
    const judgedLocally = this.state.policy === 'closed' && !this.state.available;
    const verdict = (judgedLocally ? this.configTable : this.table).verify(presented);
    if (judgedLocally && 'unknown' in verdict) throw stateUnavailable();
    if ('refused' in verdict) throw new GatewayError(verdict.refused, { status: 401, type: 'AuthenticationError' });
    return verdict.record;
  }
}
