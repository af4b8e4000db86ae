/**
 * AWS request signing (Signature Version 4) with the SDK's own signer, and credentials from the SDK's standard
 * chain: environment, SSO, web identity (IRSA), shared config and credentials files (a profile), container and
 * instance metadata. Built once per config load; the chain caches what it found and refreshes it before it
 * expires. Nothing here logs or echoes a credential: errors name where to look, never a value.
 */
import { defaultProvider } from '@aws-sdk/credential-provider-node';
import { Hash } from '@smithy/core/serde';
import { SignatureV4 } from '@smithy/signature-v4';
import { UpstreamError } from '../core/errors.ts';

export interface AwsSigningInit {
  provider: string;
  region: string;
  /** The signing name of the service, e.g. `bedrock`. */
  service: string;
  /** A named profile of the shared config files; else the chain's default (AWS_PROFILE or `default`). */
  profile?: string;
  /** Fixed keys from the config; without them, the standard chain. */
  accessKeyId?: string;
  secretAccessKey?: string;
  sessionToken?: string;
}

/** The signed request's own headers, to send with it unchanged (flat name, value pairs). */
export type SignedHeaders = string[];

export class AwsSigner {
  private readonly provider: string;
  private readonly signer: SignatureV4;

  constructor(init: AwsSigningInit) {
    this.provider = init.provider;
    const credentials =
      init.accessKeyId && init.secretAccessKey
        ? { accessKeyId: init.accessKeyId, secretAccessKey: init.secretAccessKey, ...(init.sessionToken ? { sessionToken: init.sessionToken } : {}) }
        : defaultProvider(init.profile ? { profile: init.profile } : {});
    this.signer = new SignatureV4({ service: init.service, region: init.region, credentials, sha256: Hash.bind(null, 'sha256'), uriEscapePath: true, applyChecksum: true });
  }

  /**
   * Signs one request: `url` is where it goes (host and the exact path sent), `headers` those it carries that
   * must be covered (lower-case names), `body` the exact text sent. Returns the headers to add.
   */
  async sign(method: string, url: URL, headers: Record<string, string>, body: string | undefined): Promise<SignedHeaders> {
    let signed;
    try {
      signed = await this.signer.sign({
        method,
        protocol: url.protocol,
        hostname: url.hostname,
        port: url.port ? Number(url.port) : undefined,
        path: url.pathname,
        query: Object.fromEntries(url.searchParams),
        headers: { ...headers, host: url.host },
        body,
      });
    } catch (error) {
      // The chain's messages say which sources it tried; they hold no secret.
      throw new UpstreamError(this.provider, 'auth', `${this.provider}: no AWS credentials (${(error as Error).message})`, { cause: error });
    }
    const out: string[] = [];
    for (const [name, value] of Object.entries(signed.headers)) {
      const lower = name.toLowerCase();
      if (lower === 'host' || headers[lower] !== undefined) continue;
      out.push(lower, value);
    }
    return out;
  }
}
