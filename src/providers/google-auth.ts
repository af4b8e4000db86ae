/**
 * Google Cloud credentials for Vertex AI, through google-auth-library: a credentials file from the config (a
 * service-account key, or a workload identity federation config), else Application Default Credentials
 * (GOOGLE_APPLICATION_CREDENTIALS, the gcloud user's, GKE workload identity and the metadata server). One per
 * config load; the library caches the access token and refreshes it before it expires. Tokens never reach a
 * log line or an error.
 */
import { readFile } from 'node:fs/promises';
import { GoogleAuth, JWT } from 'google-auth-library';
import { UpstreamError } from '../core/errors.ts';

const CLOUD_PLATFORM = 'https://www.googleapis.com/auth/cloud-platform';

export class GoogleCredentials {
  private readonly provider: string;
  private readonly file: string | undefined;
  /** Made at the first request (the file is read then, not at config load), then reused. */
  private auth: Promise<GoogleAuth> | undefined;

  constructor(provider: string, credentialsFile: string | undefined) {
    this.provider = provider;
    this.file = credentialsFile;
  }

  /**
   * A service-account key becomes a JWT client directly (the library's recommended way for a file the operator
   * chose); other credential files (workload identity federation, a user's) go through GoogleAuth's loader.
   */
  private async load(): Promise<GoogleAuth> {
    if (!this.file) return new GoogleAuth({ scopes: [CLOUD_PLATFORM] });
    let json: { type?: string; client_email?: string; private_key?: string; private_key_id?: string };
    try {
      json = JSON.parse(await readFile(this.file, 'utf8'));
    } catch (error) {
      // Never the parser's message: it quotes the file, which holds a private key.
      const reason = (error as NodeJS.ErrnoException).code ?? 'not JSON';
      throw new Error(`cannot read credentials_file ${this.file}: ${reason}`);
    }
    if (json.type !== 'service_account') return new GoogleAuth({ scopes: [CLOUD_PLATFORM], keyFilename: this.file });
    const client = new JWT({ email: json.client_email, key: json.private_key, keyId: json.private_key_id, scopes: [CLOUD_PLATFORM] });
    return new GoogleAuth({ authClient: client, scopes: [CLOUD_PLATFORM] });
  }

  /** `authorization: Bearer …` for this attempt. */
  async headers(): Promise<string[]> {
    return ['authorization', `Bearer ${await this.token()}`];
  }

  /** This attempt's access token (cached, refreshed when it is about to expire). */
  async token(): Promise<string> {
    let token: string | null | undefined;
    try {
      this.auth ??= this.load();
      token = await (await this.auth).getAccessToken();
    } catch (error) {
      this.auth = undefined; // a file fixed later is read again
      // The library's messages name the source it tried (a file, the metadata server); they hold no token.
      throw new UpstreamError(this.provider, 'auth', `${this.provider}: no Google credentials (${firstLine(error)})`, { cause: error });
    }
    if (!token) throw new UpstreamError(this.provider, 'auth', `${this.provider}: Google credentials gave no access token`);
    return token;
  }
}

function firstLine(error: unknown): string {
  return String((error as Error)?.message ?? error).split('\n')[0].slice(0, 200);
}
