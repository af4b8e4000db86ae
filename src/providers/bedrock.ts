/**
 * Adapter for Amazon Bedrock. Translated requests go through the Converse API (ConverseStream for streams),
 * which every model family on Bedrock speaks. Anthropic clients asking for a Claude model keep the lossless
 * lane: their Messages body goes to InvokeModel / InvokeModelWithResponseStream as Bedrock takes it, and the
 * stream's event-stream messages come back to them as Anthropic's SSE events, each payload as Bedrock sent it.
 *
 * Requests are signed with SigV4 (credentials from the standard AWS chain, or the config's keys); a Bedrock
 * API key (`api_key`) is sent as a bearer token instead. Model names are foundation-model ids, cross-region
 * inference profile ids (`us.anthropic.…`, `global.…`) or ARNs; they go in the path, escaped.
 */
import { decodeConverseResponse, encodeConverseRequest, isAnthropicModel, ConverseStreamDecoder, type ConverseResponseJson } from '../dialects/bedrock/upstream.ts';
import { ANTHROPIC_RELAY } from '../dialects/anthropic/relay.ts';
import { reportDropped, type AdapterInit, type AttemptContext, type ModelTarget, type ProviderAdapter } from './adapter.ts';
import type { CanonicalRequest, CanonicalResponse, StreamEvent } from '../core/canonical.ts';
import { UpstreamError } from '../core/errors.ts';
import type { ChatStreamEvent, LosslessRequest } from '../core/lossless.ts';
import type { CountTokensAnswer } from '../dialects/anthropic/shared.ts';
import { cloudMessagesBody } from '../dialects/anthropic/clouds.ts';
import { AwsSigner } from './aws.ts';
import { awsEvents } from './aws-event-stream.ts';
import { CloudAnthropicTransport } from './cloud-anthropic.ts';
import { HttpAdapter } from './http-adapter.ts';
import { UpstreamClient, type UpstreamRequest } from './http.ts';

const BEDROCK_ANTHROPIC_VERSION = 'bedrock-2023-05-31';
const JSON_TYPE = 'application/json';

const runtimeUrl = (region: string) => `https://bedrock-runtime.${region}.amazonaws.com`;

/**
 * The control plane (model lists) is another host: `bedrock.` beside `bedrock-runtime.`. A base_url that is
 * not an AWS runtime host (a proxy, a VPC endpoint, a test) is taken to serve both.
 */
const controlUrl = (runtime: string) => runtime.replace('://bedrock-runtime.', '://bedrock.');

/** The path of one operation on a model: ids, profile ids and ARNs escaped as the SDK does (`:` and `/` too). */
const modelPath = (model: string, operation: string) => `/model/${encodeURIComponent(model)}/${operation}`;

/** One signer per config load; requests pass through it with their exact path and body. */
class BedrockAuth {
  private readonly signer?: AwsSigner;
  private readonly base: URL;

  constructor(signer: AwsSigner | undefined, baseUrl: string) {
    this.signer = signer;
    this.base = new URL(baseUrl);
  }

  /** The headers that authorize this request; none when a bearer key (api_key) already does. */
  async headers(method: string, path: string, body: string | undefined, sent: readonly string[]): Promise<string[]> {
    if (!this.signer) return [];
    for (let i = 0; i < sent.length; i += 2) if (sent[i] === 'authorization') return [];
    const url = new URL(this.base.pathname.replace(/\/+$/, '') + path, this.base.origin);
    return this.signer.sign(method, url, body === undefined ? {} : { 'content-type': JSON_TYPE }, body);
  }
}

export class BedrockAdapter extends HttpAdapter implements ProviderAdapter {
  private readonly auth: BedrockAuth;
  private readonly control: UpstreamClient;
  private readonly controlAuth: BedrockAuth;
  private readonly version: string;

  constructor(init: AdapterInit) {
    const { config } = init;
    const region = config.region ?? '';
    const runtime = config.base_url ?? runtimeUrl(region);
    const signer = config.api_key
      ? undefined
      : new AwsSigner({
          provider: init.name,
          region,
          service: 'bedrock',
          profile: config.profile,
          accessKeyId: config.aws_access_key_id,
          secretAccessKey: config.aws_secret_access_key,
          sessionToken: config.aws_session_token,
        });
    const auth = new BedrockAuth(signer, runtime);
    const transport = new CloudAnthropicTransport({
      version: config.anthropic_version ?? BEDROCK_ANTHROPIC_VERSION,
      keepStream: false,
      betasInBody: true,
      path: (model, stream) => modelPath(model, stream ? 'invoke-with-response-stream' : 'invoke'),
      authorize: (path, body, headers) => auth.headers('POST', path, body, headers),
      sse: (body) => anthropicFrames(init.name, body),
    });
    super(init, { defaultBaseUrl: runtime, keyHeader: 'authorization', relay: { dialect: ANTHROPIC_RELAY, clientHeaders: ['anthropic-beta'], transport } });
    this.auth = auth;
    this.version = config.anthropic_version ?? BEDROCK_ANTHROPIC_VERSION;
    const control = controlUrl(runtime);
    this.control = new UpstreamClient({
      provider: init.name,
      baseUrl: control,
      pools: init.pools,
      pool: { maxConnections: config.max_connections, http2: config.http2 !== false },
      headers: { ...config.headers },
      timeoutMs: config.timeout ?? 60_000,
    });
    this.controlAuth = new BedrockAuth(signer, control);
  }

  async chat(request: CanonicalRequest, target: ModelTarget, ctx: AttemptContext): Promise<CanonicalResponse> {
    const lossless = isAnthropicModel(target.model) ? this.losslessOf(request) : undefined;
    if (lossless) return this.relayComplete(lossless, target, ctx);
    const dropped = new Set<string>();
    const body = encodeConverseRequest(this.forProvider(request, false, dropped), target.model, dropped);
    const json = await this.client.json<ConverseResponseJson | null>(await this.signed(modelPath(target.model, 'converse'), body, target, ctx));
    reportDropped(ctx, dropped);
    if (!json?.output?.message) throw new UpstreamError(this.name, 'protocol', `${this.name} answered without a message`);
    return decodeConverseResponse(json, `msg_bdrk_${ctx.requestId}`, target.model);
  }

  chatStream(request: CanonicalRequest, target: ModelTarget, ctx: AttemptContext): AsyncIterable<ChatStreamEvent> {
    const lossless = isAnthropicModel(target.model) ? this.losslessOf(request) : undefined;
    return lossless ? this.relayStream(lossless, target, ctx) : this.converseStream(request, target, ctx);
  }

  private async *converseStream(request: CanonicalRequest, target: ModelTarget, ctx: AttemptContext): AsyncGenerator<StreamEvent> {
    const dropped = new Set<string>();
    const body = encodeConverseRequest(this.forProvider(request, true, dropped), target.model, dropped);
    const response = await this.client.send(await this.signed(modelPath(target.model, 'converse-stream'), body, target, ctx));
    reportDropped(ctx, dropped);
    const decoder = new ConverseStreamDecoder(`msg_bdrk_${ctx.requestId}`, target.model);
    const events: StreamEvent[] = [];
    try {
      for await (const event of awsEvents(this.name, response.body)) {
        let payload: unknown;
        try {
          payload = JSON.parse(event.payload);
        } catch {
          throw new UpstreamError(this.name, 'protocol', `${this.name} sent a stream event that is not JSON`);
        }
        decoder.decode(event.type, payload as Parameters<ConverseStreamDecoder['decode']>[1], events);
        for (const out of events) yield out;
        events.length = 0;
      }
    } catch (error) {
      throw this.client.transportError(error, ctx.signal);
    }
    decoder.finish(events);
    for (const out of events) yield out;
    if (!decoder.done) throw new UpstreamError(this.name, 'protocol', `${this.name} stream ended before messageStop`);
  }

  /** A signed POST of `body` (its exact text is what was signed). */
  private async signed(path: string, body: unknown, target: ModelTarget, ctx: AttemptContext): Promise<UpstreamRequest> {
    const request = this.post(path, JSON.stringify(body), target, ctx);
    const headers = request.headers as string[];
    headers.push(...(await this.auth.headers('POST', path, request.body as string, headers)));
    return request;
  }

  /**
   * Bedrock's own count (CountTokens) of an Anthropic Messages request: the InvokeModel body it would run,
   * base64 inside `input.invokeModel`. CountTokens takes foundation-model ids only, so a cross-region profile's
   * geography prefix is left off. Other families' bodies are not Messages: the gateway counts those itself
   * (countsTokensFor).
   */
  async countTokens(request: LosslessRequest, target: ModelTarget, ctx: AttemptContext): Promise<CountTokensAnswer> {
    if (!isAnthropicModel(target.model)) throw new UpstreamError(this.name, 'client', `${this.name} counts tokens only for Anthropic models`, { status: 400 });
    const headers = this.protocolHeaders(request, target, ctx);
    const betas = headers.findIndex((name, i) => i % 2 === 0 && name === 'anthropic-beta');
    const invoke = cloudMessagesBody(request.body, { version: this.version, keepStream: false, betas: betas >= 0 ? headers[betas + 1] : undefined });
    if (betas >= 0) headers.splice(betas, 2);
    // count_tokens bodies carry no max_tokens; InvokeModel's body needs one.
    invoke.max_tokens ??= 1;
    const model = target.model.replace(/^(us|eu|apac|global|us-gov|jp|au)\./, '');
    const path = modelPath(model, 'count-tokens');
    const body = JSON.stringify({ input: { invokeModel: { body: Buffer.from(JSON.stringify(invoke)).toString('base64') } } });
    headers.push(...(await this.auth.headers('POST', path, body, headers)));
    const json = await this.client.json<{ inputTokens?: unknown }>({ method: 'POST', path, body, headers, signal: ctx.signal });
    if (typeof json?.inputTokens !== 'number') throw new UpstreamError(this.name, 'protocol', `${this.name} answered a token count without inputTokens`);
    return { input_tokens: json.inputTokens };
  }

  countsTokensFor(model: string): boolean {
    return isAnthropicModel(model);
  }

  /** The health probe: the control plane's foundation-model list (no tokens spent). */
  async listModels(ctx: AttemptContext): Promise<string[]> {
    const request = this.get('/foundation-models', ctx);
    const headers = request.headers as string[];
    headers.push(...(await this.controlAuth.headers('GET', '/foundation-models', undefined, headers)));
    const json = await this.control.json<{ modelSummaries?: { modelId?: string }[] }>(request);
    return (json.modelSummaries ?? []).flatMap((m) => (typeof m.modelId === 'string' ? [m.modelId] : []));
  }
}

/**
 * InvokeModelWithResponseStream's `chunk` events carry the model's own stream events, base64 in `bytes`. For
 * Claude those are Anthropic's Messages events: each becomes the SSE event Anthropic's API would have sent,
 * its JSON exactly as Bedrock relayed it.
 */
async function* anthropicFrames(provider: string, body: AsyncIterable<Buffer>): AsyncGenerator<string> {
  for await (const event of awsEvents(provider, body)) {
    if (event.type !== 'chunk') continue;
    let data: string;
    let type: unknown;
    try {
      data = Buffer.from((JSON.parse(event.payload) as { bytes: string }).bytes, 'base64').toString('utf8');
      type = (JSON.parse(data) as { type?: unknown }).type;
    } catch {
      throw new UpstreamError(provider, 'protocol', `${provider} sent a chunk that is not a JSON event`);
    }
    if (typeof type !== 'string') throw new UpstreamError(provider, 'protocol', `${provider} sent a chunk without an event type`);
    // SSE data is one line: compact JSON (as Bedrock sends it) passes as is, anything else is compacted.
    yield `event: ${type}\ndata: ${data.includes('\n') ? JSON.stringify(JSON.parse(data)) : data}\n\n`;
  }
}
