/**
 * Ollama's native API, upstream side: canonical requests encoded for an Ollama server, its answers and NDJSON
 * lines decoded back. Providers import this side only.
 */
import type { CanonicalMessage, CanonicalRequest, CanonicalResponse, ContentPart, EmbeddingsRequest, EmbeddingsResponse, StreamEvent, ToolCall } from '../../core/canonical.ts';
import { contentText, systemText } from '../../core/canonical.ts';
import { argumentsText, toolCallId, encodeToolCalls, decodeDoneReason, type OllamaCounts, decodeUsage, dataUrlToBase64 } from './shared.ts';

export const NDJSON_CONTENT_TYPE = 'application/x-ndjson';
/** The Ollama API level Hapax speaks; clients gate features (tools, structured outputs) on this. */
export const OLLAMA_API_VERSION = '0.9.0';

function imagesOf(content: string | ContentPart[]): string[] {
  if (typeof content === 'string') return [];
  const images: string[] = [];
  for (const part of content) if (part.type === 'image') images.push(dataUrlToBase64(part.url));
  return images;
}

/**
 * Throws a 400 ValidationError for content Ollama cannot carry (images given by http URL); what it has no
 * place for (documents, cache markers, signatures) is left out and named in `dropped`.
 */
export function encodeChatRequest(req: CanonicalRequest, model: string, dropped: Set<string> = new Set()): Record<string, unknown> {
  // Ollama names the tool a result belongs to, not the call: remember each call's name by id.
  const callNames = new Map<string, string>();
  const messages = req.messages.map((m) => {
    const out: Record<string, unknown> = { role: m.role, content: m.role === 'system' ? systemText(m.content) : contentText(m.content) };
    noteDropped(m, dropped);
    if (m.role === 'assistant' && m.reasoning?.length) {
      const thinking = m.reasoning.map((b) => b.text).join('');
      if (thinking) out.thinking = thinking;
    }
    const images = imagesOf(m.content);
    if (images.length > 0) out.images = images;
    if (m.role === 'assistant' && m.toolCalls?.length) {
      out.tool_calls = encodeToolCalls(m.toolCalls);
      for (const call of m.toolCalls) callNames.set(call.id, call.name);
    }
    if (m.role === 'tool') {
      const name = m.name ?? callNames.get(m.toolCallId ?? '');
      if (name) out.tool_name = name;
    }
    return out;
  });
  const body: Record<string, unknown> = { model, messages, stream: req.stream };
  const options: Record<string, unknown> = {};
  if (req.temperature !== undefined) options.temperature = req.temperature;
  if (req.topP !== undefined) options.top_p = req.topP;
  if (req.topK !== undefined) options.top_k = req.topK;
  if (req.maxTokens !== undefined) options.num_predict = req.maxTokens;
  if (req.stop !== undefined) options.stop = req.stop;
  if (req.seed !== undefined) options.seed = req.seed;
  if (req.presencePenalty !== undefined) options.presence_penalty = req.presencePenalty;
  if (req.frequencyPenalty !== undefined) options.frequency_penalty = req.frequencyPenalty;
  if (Object.keys(options).length > 0) body.options = options;
  // Ollama has no tool_choice: "none" sends no tools, a named tool sends only that one.
  const choice = req.toolChoice;
  const tools = choice === 'none' ? [] : typeof choice === 'object' ? (req.tools ?? []).filter((t) => t.name === choice.name) : (req.tools ?? []);
  if (tools.length > 0) {
    body.tools = tools.map((t) => ({ type: 'function', function: { name: t.name, description: t.description, parameters: t.parameters } }));
  }
  const format = req.responseFormat;
  if (format?.type === 'json_object') body.format = 'json';
  else if (format?.type === 'json_schema') body.format = format.schema ?? 'json';
  // Ollama's think is a switch (a few models also take a level, which not every model accepts).
  if (req.reasoning) body.think = !req.reasoning.off;
  if (choice === 'required') dropped.add('tool_choice');
  if (req.parallelToolCalls === false) dropped.add('parallel_tool_calls');
  if (req.tools?.some((t) => t.cache)) dropped.add('cache_control');
  if (req.tools?.some((t) => t.strict)) dropped.add('tools.strict');
  if (req.user !== undefined) dropped.add('user');
  if (req.promptCacheKey !== undefined) dropped.add('prompt_cache_key');
  return body;
}

/** What a message carries that Ollama has no place for. */
function noteDropped(m: CanonicalMessage, dropped: Set<string>): void {
  if (m.cache || m.toolCalls?.some((c) => c.cache)) dropped.add('cache_control');
  if (m.isError) dropped.add('messages.is_error');
  if (m.reasoning?.some((b) => b.signature !== undefined || b.redacted !== undefined)) dropped.add('messages.reasoning.signature');
  if (typeof m.content === 'string') return;
  for (const part of m.content) {
    if (part.cache) dropped.add('cache_control');
    if (part.type === 'document') dropped.add('messages.content.document');
  }
}

export interface OllamaChatChunk extends OllamaCounts {
  model?: string;
  created_at?: string;
  message?: { content?: string | null; thinking?: string | null; tool_calls?: { function: { name: string; arguments?: unknown } }[] | null };
  done?: boolean;
  done_reason?: string;
}

function decodeToolCalls(calls: NonNullable<NonNullable<OllamaChatChunk['message']>['tool_calls']>, first: number): ToolCall[] {
  return calls.map((c, i) => ({ id: toolCallId(first + i), name: c.function.name, arguments: argumentsText(c.function.arguments) }));
}

function decodeCreated(createdAt: string | undefined): number {
  const ms = createdAt ? Date.parse(createdAt) : Number.NaN;
  return Math.floor((Number.isNaN(ms) ? Date.now() : ms) / 1000);
}

export function decodeChatResponse(json: OllamaChatChunk, id: string, fallbackModel: string): CanonicalResponse {
  const toolCalls = decodeToolCalls(json.message?.tool_calls ?? [], 0);
  const thinking = json.message?.thinking;
  return {
    ...(thinking ? { reasoning: [{ text: thinking }] } : {}),
    id,
    model: json.model ?? fallbackModel,
    created: decodeCreated(json.created_at),
    text: json.message?.content ?? '',
    toolCalls,
    finishReason: decodeDoneReason(json.done_reason, toolCalls.length > 0),
    usage: decodeUsage(json),
  };
}

/** Decodes one upstream stream's NDJSON objects into canonical events. One decoder per stream. */
export class OllamaStreamDecoder {
  private readonly id: string;
  private readonly fallbackModel: string;
  private started = false;
  private toolCalls = 0;

  constructor(id: string, fallbackModel: string) {
    this.id = id;
    this.fallbackModel = fallbackModel;
  }

  /** Pushes the events of one object into `out` (no array per line); true once the final `done` object arrived. */
  decode(json: OllamaChatChunk, out: StreamEvent[]): boolean {
    if (!this.started) {
      this.started = true;
      out.push({ type: 'start', id: this.id, model: json.model ?? this.fallbackModel });
    }
    const message = json.message;
    if (message?.thinking) out.push({ type: 'reasoning', text: message.thinking });
    if (message?.content) out.push({ type: 'text', text: message.content });
    if (message?.tool_calls?.length) {
      // Each call arrives whole: its start and all of its arguments at once.
      for (const call of decodeToolCalls(message.tool_calls, this.toolCalls)) {
        const index = this.toolCalls++;
        out.push({ type: 'tool_call_start', index, id: call.id, name: call.name });
        out.push({ type: 'tool_call_delta', index, arguments: call.arguments });
      }
    }
    if (json.done !== true) return false;
    out.push({ type: 'usage', usage: decodeUsage(json) });
    out.push({ type: 'finish', reason: decodeDoneReason(json.done_reason, this.toolCalls > 0) });
    return true;
  }
}

export function encodeEmbedRequest(req: EmbeddingsRequest, model: string): Record<string, unknown> {
  return { model, input: req.input, ...(req.dimensions ? { dimensions: req.dimensions } : {}) };
}

export interface OllamaEmbedResponse {
  model?: string;
  embeddings?: number[][];
  prompt_eval_count?: number;
}

export function decodeEmbedResponse(json: OllamaEmbedResponse, fallbackModel: string): EmbeddingsResponse {
  return { model: json.model ?? fallbackModel, vectors: json.embeddings ?? [], usage: { inputTokens: json.prompt_eval_count ?? 0, outputTokens: 0 } };
}

export function decodeTags(json: { models?: { name?: string; model?: string }[] } | null): string[] {
  return (json?.models ?? []).map((m) => m.name ?? m.model ?? '').filter(Boolean);
}
