/**
 * A bearer token for an upstream, from the config or from a command that prints one (`az account
 * get-access-token`), kept until shortly before it expires and refreshed by one run for all requests.
 * Hand-written rather than @azure/identity: that library brings MSAL and a credential chain of its own, while a
 * token command covers every way an operator already gets a token (az CLI, a workload-identity sidecar, a
 * script) with no new dependency. The token never reaches a log or an error message.
 */
import { execFile } from 'node:child_process';
import { UpstreamError } from '../core/errors.ts';

/** A printed token without an expiry is used this long. */
const PLAIN_TOKEN_LIFETIME_MS = 10 * 60_000;
/** A token is refreshed this long before it expires, so no request carries one that expires on the way. */
const REFRESH_MARGIN_MS = 2 * 60_000;
const COMMAND_TIMEOUT_MS = 30_000;

interface Held {
  token: string;
  expiresAt: number;
}

export class BearerToken {
  private readonly provider: string;
  private readonly command?: string;
  private held?: Held;
  private running?: Promise<Held>;

  constructor(provider: string, source: { token?: string; command?: string }) {
    this.provider = provider;
    this.command = source.command;
    if (source.token) this.held = { token: source.token, expiresAt: Infinity };
  }

  /** The current token, running the command when the held one is missing or about to expire. */
  async get(): Promise<string> {
    const held = this.held;
    if (held && held.expiresAt - REFRESH_MARGIN_MS > Date.now()) return held.token;
    this.running ??= this.run().finally(() => (this.running = undefined));
    return (await this.running).token;
  }

  private run(): Promise<Held> {
    const command = this.command as string;
    return new Promise((resolve, reject) => {
      execFile('/bin/sh', ['-c', command], { timeout: COMMAND_TIMEOUT_MS, maxBuffer: 1 << 20 }, (error, stdout) => {
        // stderr and stdout are left out of the error: either may hold a token or a secret.
        if (error) return reject(new UpstreamError(this.provider, 'auth', `${this.provider}: the token command failed (${error.code ?? error.signal ?? 'error'})`));
        const held = parseTokenOutput(stdout, Date.now());
        if (!held) return reject(new UpstreamError(this.provider, 'auth', `${this.provider}: the token command printed no token`));
        this.held = held;
        resolve(held);
      });
    });
  }
}

/**
 * A command's output as a token: az's JSON (`accessToken` with `expires_on` in epoch seconds or `expiresOn` as a
 * date), a similar `{access_token, expires_in}` object, or the token alone on a line.
 */
export function parseTokenOutput(stdout: string, now: number): Held | undefined {
  const text = stdout.trim();
  if (!text) return undefined;
  if (text.startsWith('{')) {
    let json: Record<string, unknown>;
    try {
      json = JSON.parse(text);
    } catch {
      return undefined;
    }
    const token = json.accessToken ?? json.access_token ?? json.token;
    if (typeof token !== 'string' || token === '') return undefined;
    let expiresAt = now + PLAIN_TOKEN_LIFETIME_MS;
    if (typeof json.expires_on === 'number') expiresAt = json.expires_on * 1000;
    else if (typeof json.expires_in === 'number') expiresAt = now + json.expires_in * 1000;
    else if (typeof json.expiresOn === 'string' && !Number.isNaN(Date.parse(json.expiresOn))) expiresAt = Date.parse(json.expiresOn);
    return { token, expiresAt };
  }
  return { token: text.split('\n')[0].trim(), expiresAt: now + PLAIN_TOKEN_LIFETIME_MS };
}
