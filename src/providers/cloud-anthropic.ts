/**
 * The lossless lane for Anthropic clients on a cloud that hosts Claude (Bedrock, Vertex AI): the client's body
 * goes as the cloud takes it (model in the path, anthropic_version in the body, Bedrock's betas in the body
 * too), then the request is authorized (signed, or given a fresh token) over its exact text.
 */
import { cloudMessagesBody } from '../dialects/anthropic/clouds.ts';
import type { LosslessRequest } from '../core/lossless.ts';
import type { RelaySend, RelayTransport } from './relay.ts';

export interface CloudAnthropicOptions {
  version: string;
  /** Vertex keeps `stream` in the body; Bedrock picks the streaming operation by path. */
  keepStream: boolean;
  /** Bedrock: the client's anthropic-beta header travels as the body's anthropic_beta. */
  betasInBody: boolean;
  path(model: string, stream: boolean): string;
  /** The headers to add for this exact request (a signature, a bearer token). */
  authorize(path: string, body: string, headers: readonly string[]): Promise<string[]>;
  sse?(body: AsyncIterable<Buffer>): AsyncIterable<Buffer | string>;
}

export class CloudAnthropicTransport implements RelayTransport {
  private readonly opts: CloudAnthropicOptions;
  readonly sse?: (body: AsyncIterable<Buffer>) => AsyncIterable<Buffer | string>;

  constructor(opts: CloudAnthropicOptions) {
    this.opts = opts;
    this.sse = opts.sse;
  }

  async prepare({ request, model, stream, headers }: { request: LosslessRequest; model: string; stream: boolean; headers: string[] }): Promise<RelaySend> {
    const own = headers.slice();
    // The version is the body's; the client's header (an Anthropic API version) means nothing here.
    takeHeader(own, 'anthropic-version');
    const betas = this.opts.betasInBody ? takeHeader(own, 'anthropic-beta') : undefined;
    const body = JSON.stringify(cloudMessagesBody(request.body, { version: this.opts.version, keepStream: this.opts.keepStream, betas }));
    // The client's query (Claude Code's ?beta=true) belongs to Anthropic's own API: the clouds take none.
    const path = this.opts.path(model, stream);
    own.push(...(await this.opts.authorize(path, body, own)));
    return { path, body, headers: own };
  }
}

/** Takes a header out of a flat name, value list (lower-case names) and returns its value. */
export function takeHeader(headers: string[], name: string): string | undefined {
  for (let i = 0; i < headers.length; i += 2) {
    if (headers[i] !== name) continue;
    const value = headers[i + 1];
    headers.splice(i, 2);
    return value;
  }
  return undefined;
}
