/**
 * The live key table: keys from the config plus managed keys from the key file, rebuilt whenever the
 * file changes (polled), so a revoked or new key takes effect within a second without a restart.
 */
import { GatewayError } from '../providers/errors.ts';
import { hashKey, KeyFile, KeyTable, type ApiKeyRecord } from './keys.ts';

const POLL_MS = 250;

export interface ConfigKey {
  name: string;
  key?: string;
  key_sha256?: string;
  rate_limit?: ApiKeyRecord['rate_limit'];
  routes?: string[];
  models?: string[];
  expires?: string;
}

export class KeyService {
  private table: KeyTable;
  private readonly configRecords: ApiKeyRecord[];
  private readonly file: KeyFile;
  private lastMtime = -1;
  private timer?: NodeJS.Timeout;

  constructor(configKeys: ConfigKey[], keyFile: string) {
    this.configRecords = configKeys.map((k) => ({
      name: k.name,
      sha256: k.key_sha256 ?? hashKey(k.key as string),
      rate_limit: k.rate_limit,
      routes: k.routes,
      models: k.models,
      expires: k.expires ? new Date(k.expires).toISOString() : undefined,
    }));
    this.table = new KeyTable(this.configRecords);
    this.file = new KeyFile(keyFile);
  }

  /** Loads the managed keys and keeps watching the file. */
  async start(): Promise<void> {
    await this.refresh();
    this.timer = setInterval(() => void this.refresh().catch(() => undefined), POLL_MS);
    this.timer.unref();
  }

  stop(): void {
    clearInterval(this.timer);
  }

  async refresh(): Promise<void> {
    const mtime = await this.file.mtime();
    if (mtime === this.lastMtime) return;
    this.lastMtime = mtime;
    const managed = await this.file.read();
    this.table = new KeyTable([...this.configRecords, ...managed]);
  }

  /** The record for a presented key; a 401 AuthenticationError when missing, unknown, revoked or expired. */
  verify(presented: string | undefined): ApiKeyRecord {
    if (!presented) {
      throw new GatewayError('missing API key: send it as X-API-Key or Authorization: Bearer', { status: 401, type: 'AuthenticationError' });
    }
    const verdict = this.table.verify(presented);
    if ('refused' in verdict) throw new GatewayError(verdict.refused, { status: 401, type: 'AuthenticationError' });
    return verdict.record;
  }
}

