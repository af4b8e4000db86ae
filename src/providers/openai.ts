/** Adapter for OpenAI and every OpenAI-compatible server (vLLM, LM Studio, Groq, corporate proxies). */
import { decodeChatResponse, decodeChunk, encodeChatRequest } from '../dialects/openai/upstream.ts';
import { OPENAI_CHAT_RELAY } from '../dialects/openai/relay.ts';
import { OPENAI_RESPONSES_RELAY } from '../dialects/responses/relay.ts';
import { reportDropped, type AdapterInit, type AttemptContext, type ModelTarget, type ProviderAdapter } from './adapter.ts';
import type { CanonicalRequest, CanonicalResponse, EmbeddingsRequest, EmbeddingsResponse, StreamEvent } from '../core/canonical.ts';
import { upstreamErrorMessage, UpstreamError } from '../core/errors.ts';
import { HttpAdapter, type HttpAdapterOptions } from './http-adapter.ts';
import type { ChatStreamEvent, LosslessRequest } from '../core/lossless.ts';
import { presetOf, type PresetQuirks } from '../config/presets.ts';

const OPENAI_BASE_URL = 'https://api.openai.com/v1';

export class OpenAIAdapter extends HttpAdapter implements ProviderAdapter {
  /** A preset host's quirks (config `preset`), applied to translated requests. */
  private readonly quirks?: PresetQuirks;

  /** `options` lets hosts that speak this dialect under other paths and auth (Azure) reuse the adapter. */
  constructor(init: AdapterInit, options?: HttpAdapterOptions) {
    const preset = presetOf(init.config.preset);
    // OpenAI itself serves the Responses API; an OpenAI-compatible server only when its config says so.
    const responses = init.config.type === 'openai' || init.config.responses === true;
    super(
      init,
      options ?? {
        defaultBaseUrl: preset?.base_url ?? OPENAI_BASE_URL,
        keyHeader: 'authorization',
        protocolHeaders: preset?.headers,
        relay: { dialect: OPENAI_CHAT_RELAY, clientHeaders: ['openai-beta'], more: responses ? [OPENAI_RESPONSES_RELAY] : [] },
      },
    );
    this.quirks = preset?.quirks;
  }

  /** Where chat completions go for this target (with any query string). */
  protected chatPath(_target: ModelTarget): string {
    return '/chat/completions';
  }

  /** Where the lossless lane goes: undefined for the dialect's own path plus the client's query. */
  protected relayPath(_lossless: LosslessRequest, _target: ModelTarget): string | undefined {
    return undefined;
  }

  protected embeddingsPath(_target: ModelTarget): string {
    return '/embeddings';
  }

  protected modelsPath(): string {
    return '/models';
  }

  /** The Chat Completions body for a translated request, with the host's quirks applied. */
  private encode(request: CanonicalRequest, stream: boolean, target: ModelTarget, dropped: Set<string>): Record<string, unknown> {
    const body = encodeChatRequest(this.forProvider(request, stream, dropped), target.model, dropped);
    return this.quirks ? applyQuirks(body, this.quirks, dropped) : body;
  }

  async chat(request: CanonicalRequest, target: ModelTarget, ctx: AttemptContext): Promise<CanonicalResponse> {
    const lossless = this.losslessOf(request);
    if (lossless) return this.relayComplete(lossless, target, ctx, this.relayPath(lossless, target));
    const dropped = new Set<string>();
    const body = this.encode(request, false, target, dropped);
    const json = await this.client.json<Parameters<typeof decodeChatResponse>[0]>(this.post(this.chatPath(target), body, target, ctx));
    reportDropped(ctx, dropped);
    if (!Array.isArray(json?.choices)) throw new UpstreamError(this.name, 'protocol', `${this.name} answered without choices`);
    return decodeChatResponse(json, target.model);
  }

  chatStream(request: CanonicalRequest, target: ModelTarget, ctx: AttemptContext): AsyncIterable<ChatStreamEvent> {
    const lossless = this.losslessOf(request);
    return lossless ? this.relayStream(lossless, target, ctx, this.relayPath(lossless, target)) : this.translatedStream(request, target, ctx);
  }

  private async *translatedStream(request: CanonicalRequest, target: ModelTarget, ctx: AttemptContext): AsyncGenerator<StreamEvent> {
    const dropped = new Set<string>();
    const body = this.encode(request, true, target, dropped);
    const response = await this.client.send(this.post(this.chatPath(target), body, target, ctx));
    reportDropped(ctx, dropped);
    const events: StreamEvent[] = [];
    let started = false;
    let finish: StreamEvent | undefined;
    let done = false;
    for await (const message of this.client.sse(response.body, ctx.signal)) {
      if (done) continue;
      if (message.data === '[DONE]') {
        if (!finish) throw new UpstreamError(this.name, 'protocol', `${this.name} stream ended before it finished`);
        // Finish now, but let the body end by itself: leaving the loop early destroys it with an error.
        done = true;
        yield finish;
        continue;
      }
      let json: Parameters<typeof decodeChunk>[0] & { error?: unknown };
      try {
        json = JSON.parse(message.data);
      } catch {
        throw new UpstreamError(this.name, 'protocol', `${this.name} sent a stream chunk that is not JSON`);
      }
      if (json.error) {
        throw new UpstreamError(this.name, 'server', `${this.name} reported an error mid-stream`, { upstreamMessage: upstreamErrorMessage(json) });
      }
      if (!started) {
        started = true;
        // Azure's first chunk (its prompt filter results) has an empty id and model.
        yield { type: 'start', id: json.id || `chatcmpl-${ctx.requestId}`, model: json.model || target.model };
      }
      const finished = decodeChunk(json, events);
      for (const event of events) yield event;
      events.length = 0;
      // Usage arrives in a chunk after the finish reason; hold the finish until the stream ends.
      if (finished) finish = finished;
    }
    if (done) return;
    if (!finish) throw new UpstreamError(this.name, 'protocol', `${this.name} stream ended before it finished`);
    yield finish;
  }

  async embeddings(request: EmbeddingsRequest, target: ModelTarget, ctx: AttemptContext): Promise<EmbeddingsResponse> {
    const json = await this.client.json<{ model?: string; data: { embedding: number[]; index: number }[]; usage?: { prompt_tokens?: number } }>(this.post(this.embeddingsPath(target), { model: target.model, input: request.input, ...(request.dimensions ? { dimensions: request.dimensions } : {}) }, target, ctx));
    const vectors = [...json.data].sort((a, b) => a.index - b.index).map((d) => d.embedding);
    return { model: json.model ?? target.model, vectors, usage: { inputTokens: json.usage?.prompt_tokens ?? 0, outputTokens: 0 } };
  }

  async listModels(ctx: AttemptContext): Promise<string[]> {
    const json = await this.client.json<{ data?: { id: string }[] }>(this.get(this.modelsPath(), ctx));
    return (json.data ?? []).map((m) => m.id);
  }
}

/** A preset host's quirks (src/config/presets.ts) applied to an encoded body; what it refuses is reported as dropped. */
function applyQuirks(body: Record<string, unknown>, quirks: PresetQuirks, dropped: Set<string>): Record<string, unknown> {
  if (body.reasoning_effort !== undefined && quirks.reasoning && quirks.reasoning !== 'reasoning_effort') {
    if (quirks.reasoning === 'reasoning_object') body.reasoning = { effort: body.reasoning_effort };
    else dropped.add('reasoning');
    delete body.reasoning_effort;
  }
  for (const [from, to] of Object.entries(quirks.rename ?? {})) {
    if (body[from] === undefined) continue;
    body[to] = body[from];
    delete body[from];
  }
  for (const field of quirks.refuses ?? []) {
    if (field === 'messages.name') {
      const messages = body.messages as Record<string, unknown>[];
      if (!messages.some((m) => m.name !== undefined)) continue;
      body.messages = messages.map(({ name: _name, ...rest }) => rest);
      dropped.add(field);
    } else if (body[field] !== undefined) {
      delete body[field];
      dropped.add(field);
    }
  }
  return body;
}
