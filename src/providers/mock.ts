/**
 * The built-in mock provider: deterministic answers with no network, so a fresh install answers out of
 * the box and benchmarks have an upstream that costs nothing. Optional `reply` and `latency` in config.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import type { AdapterInit, AttemptContext, ModelTarget, ProviderAdapter } from './adapter.ts';
import type { CanonicalRequest, CanonicalResponse, EmbeddingsRequest, EmbeddingsResponse, StreamEvent, Usage } from '../core/canonical.ts';
import { contentText } from '../core/canonical.ts';
import { UpstreamError } from '../core/errors.ts';

export class MockAdapter implements ProviderAdapter {
  readonly name: string;
  readonly type = 'mock' as const;
  private readonly reply?: string;
  private readonly latencyMs: number;

  constructor({ name, config }: AdapterInit) {
    this.name = name;
    this.reply = config.reply;
    this.latencyMs = config.latency ?? 0;
  }

  private answer(request: CanonicalRequest): { text: string; toolCall?: { name: string; arguments: string }; usage: Usage } {
    const last = [...request.messages].reverse().find((m) => m.role === 'user' || m.role === 'tool');
    const said = last ? contentText(last.content) : '';
    const promptChars = request.messages.reduce((n, m) => n + contentText(m.content).length, 0);
    const inputTokens = Math.max(1, Math.ceil(promptChars / 4));
    if (request.tools?.length && last?.role === 'user' && request.toolChoice !== 'none') {
      const name = typeof request.toolChoice === 'object' ? request.toolChoice.name : request.tools[0].name;
      return { text: '', toolCall: { name, arguments: JSON.stringify({ input: said }) }, usage: { inputTokens, outputTokens: 8 } };
    }
    const text = this.reply ?? (last?.role === 'tool' ? `The tool answered: ${said}` : `Hello from the Hapax mock provider. You said: ${said}`);
    return { text, usage: { inputTokens, outputTokens: text.split(/\s+/).filter(Boolean).length } };
  }

  private async wait(ctx: AttemptContext): Promise<void> {
    if (this.latencyMs <= 0) return;
    try {
      await sleep(this.latencyMs, undefined, { signal: ctx.signal });
    } catch {
      throw new UpstreamError(this.name, 'aborted', `${this.name}: client went away`);
    }
  }

  async chat(request: CanonicalRequest, target: ModelTarget, ctx: AttemptContext): Promise<CanonicalResponse> {
    await this.wait(ctx);
    const { text, toolCall, usage } = this.answer(request);
    return {
      id: `chatcmpl-mock-${ctx.requestId}`,
      model: target.model,
      created: Math.floor(Date.now() / 1000),
      text,
      toolCalls: toolCall ? [{ id: `call_mock_${ctx.requestId.slice(0, 8)}`, ...toolCall }] : [],
      finishReason: toolCall ? 'tool_calls' : 'stop',
      usage,
    };
  }

  async *chatStream(request: CanonicalRequest, target: ModelTarget, ctx: AttemptContext): AsyncGenerator<StreamEvent> {
    await this.wait(ctx);
    const { text, toolCall, usage } = this.answer(request);
    yield { type: 'start', id: `chatcmpl-mock-${ctx.requestId}`, model: target.model };
    if (toolCall) {
      yield { type: 'tool_call_start', index: 0, id: `call_mock_${ctx.requestId.slice(0, 8)}`, name: toolCall.name };
      yield { type: 'tool_call_delta', index: 0, arguments: toolCall.arguments };
    }
    for (const word of text.match(/\s*\S+/g) ?? []) yield { type: 'text', text: word };
    yield { type: 'usage', usage };
    yield { type: 'finish', reason: toolCall ? 'tool_calls' : 'stop' };
  }

  async embeddings(request: EmbeddingsRequest, target: ModelTarget): Promise<EmbeddingsResponse> {
    // A stable vector per input: character codes folded into 8 dimensions.
    const vectors = request.input.map((text) => {
      const vector = new Array<number>(8).fill(0);
      for (let i = 0; i < text.length; i++) vector[i % 8] += text.charCodeAt(i) / 1000;
      return vector;
    });
    const inputTokens = request.input.reduce((n, t) => n + Math.ceil(t.length / 4), 0);
    return { model: target.model, vectors, usage: { inputTokens, outputTokens: 0 } };
  }

  async listModels(): Promise<string[]> {
    return ['mock'];
  }
}
