/**
 * Adapter for Google Cloud's Vertex AI. Anthropic's models (Claude, `claude-…`) go through rawPredict /
 * streamRawPredict: the Messages body with `anthropic_version: vertex-2023-10-16` and the model in the URL,
 * answered in Anthropic's own JSON and SSE events; Anthropic clients (Claude Code) keep the lossless lane, every
 * other client API is translated to the same body. Every other model (Gemini) goes through generateContent /
 * streamGenerateContent under the project's `publishers/google` path, with the Gemini dialect's adapter.
 * Project and location come from the config, credentials from google-auth-library (a credentials file or
 * Application Default Credentials).
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
import { GeminiAdapter, type GenerateMethod } from './gemini.ts';
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

type Publisher = 'anthropic' | 'google';

/**
 * Whose models this provider serves, from the names its config sends upstream (the default model, listed
 * names and patterns, aliases' targets): the health probe lists those publishers' models. A config that says
 * nothing either way (no model at all) is probed for both.
 */
function publishersOf(config: AdapterInit['config']): Publisher[] {
  const names: string[] = config.model === undefined ? [] : [config.model];
  const models = config.models;
  if (Array.isArray(models)) names.push(...models);
  else if (models) {
    for (const [name, entry] of Object.entries(models)) names.push(typeof entry === 'string' ? entry : (entry?.model ?? name));
  }
  const publishers = new Set<Publisher>(names.map((name) => (isClaude(name) ? 'anthropic' : 'google')));
  return publishers.size === 0 ? ['anthropic', 'google'] : [...publishers].sort();
}

/** Gemini's adapter under Vertex's paths, with the access token as its bearer key (given per attempt). */
class VertexGemini extends GeminiAdapter {
  private readonly models: string;

  constructor(init: AdapterInit, baseUrl: string, models: string) {
    // The token comes with each attempt (ModelTarget.apiKey); the config's api_key is not Vertex's.
    super({ ...init, config: { ...init.config, api_key: undefined } }, { defaultBaseUrl: baseUrl, keyHeader: 'authorization' });
    this.models = models;
  }

  protected override path(target: ModelTarget, method: GenerateMethod): string {
    return `${this.models}${encodeURIComponent(target.model)}:${method}`;
  }
}

export class VertexAdapter extends HttpAdapter implements ProviderAdapter {
  private readonly credentials: GoogleCredentials;
  private readonly gemini: VertexGemini;
  /** `/v1/projects/{project}/locations/{location}/publishers/anthropic/models/`, built once. */
  private readonly anthropicModels: string;
  private readonly version: string;
  private readonly maxTokens: number;
  /** The publishers the health probe lists, built once per config load. */
  private readonly publishers: Publisher[];

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
    this.gemini = new VertexGemini(init, config.base_url ?? vertexUrl(location), anthropicModels.replace(/anthropic\/models\/$/, 'google/models/'));
    this.version = version;
    this.maxTokens = config.max_tokens ?? DEFAULT_MAX_TOKENS;
    this.publishers = publishersOf(config);
  }

  async chat(request: CanonicalRequest, target: ModelTarget, ctx: AttemptContext): Promise<CanonicalResponse> {
    if (!isClaude(target.model)) return this.gemini.chat(request, await this.withToken(target), ctx);
    const lossless = this.losslessOf(request);
    if (lossless) return this.relayComplete(lossless, target, ctx);
    const dropped = new Set<string>();
    const json = await this.client.json<AnthropicMessageJson | null>(await this.predict(request, false, target, ctx, dropped));
    reportDropped(ctx, dropped);
    if (!Array.isArray(json?.content)) throw new UpstreamError(this.name, 'protocol', `${this.name} answered without content`);
    return decodeMessagesResponse(json, target.model);
  }

  chatStream(request: CanonicalRequest, target: ModelTarget, ctx: AttemptContext): AsyncIterable<ChatStreamEvent> {
    if (!isClaude(target.model)) return this.geminiStream(request, target, ctx);
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

  private async *geminiStream(request: CanonicalRequest, target: ModelTarget, ctx: AttemptContext): AsyncGenerator<StreamEvent> {
    yield* this.gemini.chatStream(request, await this.withToken(target), ctx);
  }

  /** The target with this attempt's access token as its key, which the Gemini adapter sends as a bearer token. */
  private async withToken(target: ModelTarget): Promise<ModelTarget> {
    return { ...target, apiKey: await this.credentials.token() };
  }

  /**
   * Vertex's own count of a Messages request (the `count-tokens` model's rawPredict): the client's body with
   * the target's model in it (this one call names the model in the body) and the version Vertex takes.
   */
  async countTokens(request: LosslessRequest, target: ModelTarget, ctx: AttemptContext): Promise<CountTokensAnswer> {
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

  /**
   * The health probe: Model Garden's list of the models of each publisher this provider serves (Anthropic's
   * for Claude, Google's for Gemini; publishers.models.list, no tokens spent). Each must answer.
   */
  async listModels(ctx: AttemptContext): Promise<string[]> {
    const auth = await this.credentials.headers();
    const lists = await Promise.all(
      this.publishers.map(async (publisher) => {
        const request = this.get(`/v1beta1/publishers/${publisher}/models`, ctx);
        (request.headers as string[]).push(...auth);
        const json = await this.client.json<{ publisherModels?: { name?: string }[] }>(request);
        return (json.publisherModels ?? []).flatMap((m) => (typeof m.name === 'string' ? [m.name.slice(m.name.lastIndexOf('/') + 1)] : []));
      }),
    );
    return lists.flat();
  }
}

