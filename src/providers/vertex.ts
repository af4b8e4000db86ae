/**
 * Adapter for Google Cloud's Vertex AI, Anthropic's models (Claude) through rawPredict / streamRawPredict: the
 * Messages body with `anthropic_version: vertex-2023-10-16` and the model in the URL, answered in Anthropic's
 * own JSON and SSE events. Anthropic clients (Claude Code) keep the lossless lane; every other client API is
 * translated to the same body. Project and location come from the config, credentials from
 * google-auth-library (a credentials file or Application Default Credentials).
 *
 * Vertex's Gemini models speak generateContent, Gemini's own format: that lane needs the Gemini dialect and is
 * refused clearly here until it is wired in.
 */
import { decodeMessagesResponse, encodeMessagesRequest, type AnthropicMessageJson } from '../dialects/anthropic/upstream.ts';
import { cloudMessagesBody } from '../dialects/anthropic/clouds.ts';
import { ANTHROPIC_RELAY } from '../dialects/anthropic/relay.ts';
import { reportDropped, type AdapterInit, type AttemptContext, type ModelTarget, type ProviderAdapter } from './adapter.ts';
import type { CanonicalRequest, CanonicalResponse, StreamEvent } from '../core/canonical.ts';
import { UpstreamError } from '../core/errors.ts';
import type { ChatStreamEvent, LosslessRequest } from '../core/lossless.ts';
import type { CountTokensAnswer } from '../dialects/anthropic/shared.ts';
import { messagesStream } from './anthropic.ts';
import { CloudAnthropicTransport } from './cloud-anthropic.ts';
import { GoogleCredentials } from './google-auth.ts';
import { HttpAdapter } from './http-adapter.ts';
import type { UpstreamRequest } from './http.ts';

const VERTEX_ANTHROPIC_VERSION = 'vertex-2023-10-16';
/** Anthropic requires max_tokens; used when neither the client nor the provider config gives one. */
const DEFAULT_MAX_TOKENS = 4096;

/** The regional endpoint, or the global one for location `global`. */
const vertexUrl = (location: string) => (location === 'global' ? 'https://aiplatform.googleapis.com' : `https://${location}-aiplatform.googleapis.com`);

/** Vertex names Claude `claude-…` (with an `@version`); its own models are Gemini and others. */
const isClaude = (model: string) => /^claude-/.test(model);

export class VertexAdapter extends HttpAdapter implements ProviderAdapter {
  private readonly credentials: GoogleCredentials;
  /** `/v1/projects/{project}/locations/{location}/publishers/anthropic/models/`, built once. */
  private readonly anthropicModels: string;
  private readonly version: string;
  private readonly maxTokens: number;

  constructor(init: AdapterInit) {
    const { config } = init;
    const location = config.location ?? '';
    const credentials = new GoogleCredentials(init.name, config.credentials_file);
    const anthropicModels = `/v1/projects/${encodeURIComponent(config.project ?? '')}/locations/${encodeURIComponent(location)}/publishers/anthropic/models/`;
    const version = config.anthropic_version ?? VERTEX_ANTHROPIC_VERSION;
    const transport = new CloudAnthropicTransport({
      version,
      keepStream: true,
      betasInBody: false,
      path: (model, stream) => `${anthropicModels}${encodeURIComponent(model)}:${stream ? 'streamRawPredict' : 'rawPredict'}`,
      authorize: () => credentials.headers(),
    });
    super(init, { defaultBaseUrl: vertexUrl(location), keyHeader: 'authorization', relay: { dialect: ANTHROPIC_RELAY, clientHeaders: ['anthropic-beta'], transport } });
    this.credentials = credentials;
    this.anthropicModels = anthropicModels;
    this.version = version;
    this.maxTokens = config.max_tokens ?? DEFAULT_MAX_TOKENS;
  }

  async chat(request: CanonicalRequest, target: ModelTarget, ctx: AttemptContext): Promise<CanonicalResponse> {
    if (!isClaude(target.model)) throw this.notClaude(target.model);
    const lossless = this.losslessOf(request);
    if (lossless) return this.relayComplete(lossless, target, ctx);
    const dropped = new Set<string>();
    const json = await this.client.json<AnthropicMessageJson | null>(await this.predict(request, false, target, ctx, dropped));
    reportDropped(ctx, dropped);
    if (!Array.isArray(json?.content)) throw new UpstreamError(this.name, 'protocol', `${this.name} answered without content`);
    return decodeMessagesResponse(json, target.model);
  }

  chatStream(request: CanonicalRequest, target: ModelTarget, ctx: AttemptContext): AsyncIterable<ChatStreamEvent> {
    if (!isClaude(target.model)) return refused(this.notClaude(target.model));
    const lossless = this.losslessOf(request);
    return lossless ? this.relayStream(lossless, target, ctx) : this.translatedStream(request, target, ctx);
  }

  private async *translatedStream(request: CanonicalRequest, target: ModelTarget, ctx: AttemptContext): AsyncGenerator<StreamEvent> {
    const dropped = new Set<string>();
    const response = await this.client.send(await this.predict(request, true, target, ctx, dropped));
    reportDropped(ctx, dropped);
    yield* messagesStream(this.client, response.body, ctx.signal);
  }

  /** A translated request as rawPredict / streamRawPredict takes it, with this attempt's token. */
  private async predict(request: CanonicalRequest, stream: boolean, target: ModelTarget, ctx: AttemptContext, dropped: Set<string>): Promise<UpstreamRequest> {
    const messages = encodeMessagesRequest(this.forProvider(request, stream, dropped), target.model, this.maxTokens, dropped);
    const body = cloudMessagesBody(messages, { version: this.version, keepStream: true });
    const path = `${this.anthropicModels}${encodeURIComponent(target.model)}:${stream ? 'streamRawPredict' : 'rawPredict'}`;
    const sent = this.post(path, body, target, ctx);
    (sent.headers as string[]).push(...(await this.credentials.headers()));
    return sent;
  }

  private notClaude(model: string): UpstreamError {
    const message = `${model} is not an Anthropic model; Gemini models on Vertex AI are not served by this provider yet`;
    return new UpstreamError(this.name, 'client', `${this.name}: ${message}`, { status: 400, upstreamMessage: message });
  }

  /**
   * Vertex's own count of a Messages request (the `count-tokens` model's rawPredict): the client's body with
   * the target's model in it (this one call names the model in the body) and the version Vertex takes.
   */
  async countTokens(request: LosslessRequest, target: ModelTarget, ctx: AttemptContext): Promise<CountTokensAnswer> {
    if (!isClaude(target.model)) throw this.notClaude(target.model);
    const headers = this.protocolHeaders(request, target, ctx);
    headers.push(...(await this.credentials.headers()));
    const json = await this.client.json<CountTokensAnswer>({
      method: 'POST',
      path: `${this.anthropicModels}count-tokens:rawPredict`,
      body: { anthropic_version: this.version, ...request.body, model: target.model },
      headers,
      signal: ctx.signal,
    });
    if (typeof json?.input_tokens !== 'number') throw new UpstreamError(this.name, 'protocol', `${this.name} answered a token count without input_tokens`);
    return json;
  }

  countsTokensFor(model: string): boolean {
    return isClaude(model);
  }

  /** The health probe: Model Garden's list of Anthropic's models (no tokens spent). */
  async listModels(ctx: AttemptContext): Promise<string[]> {
    const request = this.get('/v1beta1/publishers/anthropic/models', ctx);
    (request.headers as string[]).push(...(await this.credentials.headers()));
    const json = await this.client.json<{ publisherModels?: { name?: string }[] }>(request);
    return (json.publisherModels ?? []).flatMap((m) => (typeof m.name === 'string' ? [m.name.slice(m.name.lastIndexOf('/') + 1)] : []));
  }
}

/** A stream that fails when it is read, as every upstream failure of a stream does. */
async function* refused(error: UpstreamError): AsyncGenerator<never> {
  throw error;
}
