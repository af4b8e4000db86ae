/**
 * The OpenAI Chat Completions wire format, upstream side: canonical requests encoded for an OpenAI-compatible
 * provider, its answers and chunks decoded back. Providers import this side only.
 */
import type { CanonicalMessage, CanonicalRequest, CanonicalResponse, ContentPart, DocumentPart, FinishReason, StreamEvent, ToolChoice, Usage } from '../../core/canonical.ts';
import { contentText, systemText } from '../../core/canonical.ts';
import { openaiEffort } from '../../core/reasoning.ts';
import { encodeToolCalls } from './shared.ts';

function hasCache(m: CanonicalMessage): boolean {
  if (m.cache || m.toolCalls?.some((c) => c.cache)) return true;
  return typeof m.content !== 'string' && m.content.some((p) => p.cache);
}

/** OpenAI's file parts take inline data only; a URL or another provider's file id has no place here. */
function encodeDocument(part: DocumentPart, dropped: Set<string>) {
  if (part.url?.startsWith('data:')) return { type: 'file', file: { file_data: part.url, filename: part.filename ?? part.title ?? 'document.pdf' } };
  dropped.add(part.url !== undefined ? 'messages.content.document.url' : part.fileId !== undefined ? 'messages.content.document.file_id' : 'messages.content.document');
  return undefined;
}

function encodeContent(content: string | ContentPart[], dropped: Set<string>) {
  if (typeof content === 'string') return content;
  const parts: Record<string, unknown>[] = [];
  for (const p of content) {
    if (p.type === 'text') parts.push({ type: 'text', text: p.text });
    else if (p.type === 'image') parts.push({ type: 'image_url', image_url: { url: p.url } });
    else {
      const file = encodeDocument(p, dropped);
      if (file) parts.push(file);
    }
  }
  return parts;
}

function encodeToolChoice(choice: ToolChoice) {
  return typeof choice === 'string' ? choice : { type: 'function', function: { name: choice.name } };
}

/**
 * The chat messages. A tool message carries text only: images (and documents) a tool returned go in a user
 * message right after the run of tool messages, where OpenAI accepts them.
 */
function encodeMessages(messages: readonly CanonicalMessage[], dropped: Set<string>): Record<string, unknown>[] {
  const out: Record<string, unknown>[] = [];
  let toolMedia: Record<string, unknown>[] = [];
  const flushToolMedia = () => {
    if (toolMedia.length === 0) return;
    out.push({ role: 'user', content: toolMedia });
    toolMedia = [];
  };
  for (const m of messages) {
    if (m.role !== 'tool') flushToolMedia();
    if (hasCache(m)) dropped.add('cache_control');
    if (m.role === 'tool') {
      // Chat Completions has no failed-tool flag; the tool's text has to say it.
      if (m.isError) dropped.add('messages.is_error');
      out.push({ role: 'tool', content: contentText(m.content), tool_call_id: m.toolCallId });
      if (typeof m.content !== 'string') {
        const media = (encodeContent(m.content, dropped) as Record<string, unknown>[]).filter((p) => p.type !== 'text');
        if (media.length > 0) toolMedia.push({ type: 'text', text: `The result of tool call ${m.toolCallId ?? ''} includes:` }, ...media);
      }
      continue;
    }
    // System blocks kept apart for their cache markers join back into one string, as plain servers expect.
    if (m.role === 'system' && hasCache(m)) {
      out.push({ role: 'system', content: systemText(m.content) });
      continue;
    }
    if (m.role === 'assistant' && m.reasoning?.length) dropped.add('messages.reasoning');
    if (m.role === 'assistant' && m.toolCalls?.length) {
      out.push({ role: 'assistant', content: contentText(m.content) || null, tool_calls: encodeToolCalls(m.toolCalls) });
      continue;
    }
    const content = m.role === 'assistant' ? contentText(m.content) : encodeContent(m.content, dropped);
    out.push(m.name ? { role: m.role, content, name: m.name } : { role: m.role, content });
  }
  flushToolMedia();
  return out;
}

export function encodeChatRequest(req: CanonicalRequest, model: string, dropped: Set<string> = new Set()): Record<string, unknown> {
  const body: Record<string, unknown> = { model, messages: encodeMessages(req.messages, dropped) };
  if (req.stream) {
    body.stream = true;
    body.stream_options = { include_usage: true };
  }
  const effort = req.reasoning ? openaiEffort(req.reasoning) : undefined;
  // Reasoning models refuse max_tokens; the newer name means the same on every server that knows it.
  if (req.maxTokens !== undefined) body[effort ? 'max_completion_tokens' : 'max_tokens'] = req.maxTokens;
  if (effort) body.reasoning_effort = effort;
  if (req.temperature !== undefined) body.temperature = req.temperature;
  if (req.topP !== undefined) body.top_p = req.topP;
  if (req.stop !== undefined) body.stop = req.stop;
  if (req.seed !== undefined) body.seed = req.seed;
  if (req.presencePenalty !== undefined) body.presence_penalty = req.presencePenalty;
  if (req.frequencyPenalty !== undefined) body.frequency_penalty = req.frequencyPenalty;
  if (req.user !== undefined) body.user = req.user;
  if (req.promptCacheKey !== undefined) body.prompt_cache_key = req.promptCacheKey;
  // OpenAI refuses top_k (a few compatible servers take it, but not all).
  if (req.topK !== undefined) dropped.add('top_k');
  if (req.tools?.length) {
    body.tools = req.tools.map((t) => ({ type: 'function', function: { name: t.name, description: t.description, parameters: t.parameters, ...(t.strict !== undefined ? { strict: t.strict } : {}) } }));
    if (req.tools.some((t) => t.cache)) dropped.add('cache_control');
    if (req.parallelToolCalls !== undefined) body.parallel_tool_calls = req.parallelToolCalls;
  }
  if (req.toolChoice !== undefined) body.tool_choice = encodeToolChoice(req.toolChoice);
  const format = req.responseFormat;
  if (format && format.type !== 'text') {
    body.response_format =
      format.type === 'json_schema'
        ? { type: 'json_schema', json_schema: { name: format.name ?? 'response', schema: format.schema, strict: format.strict } }
        : { type: 'json_object' };
  }
  return body;
}

const FINISH: Record<string, FinishReason> = {
  stop: 'stop',
  length: 'length',
  tool_calls: 'tool_calls',
  function_call: 'tool_calls',
  content_filter: 'content_filter',
};
export const decodeFinishReason = (reason: string | null | undefined): FinishReason => FINISH[reason ?? 'stop'] ?? 'stop';

interface UpstreamUsage {
  prompt_tokens?: number;
  completion_tokens?: number;
  prompt_tokens_details?: { cached_tokens?: number | null } | null;
  completion_tokens_details?: { reasoning_tokens?: number | null } | null;
  /** DeepSeek's name for cached prompt tokens. */
  prompt_cache_hit_tokens?: number | null;
}

export function decodeUsage(usage: UpstreamUsage | null | undefined): Usage {
  const decoded: Usage = { inputTokens: usage?.prompt_tokens ?? 0, outputTokens: usage?.completion_tokens ?? 0 };
  const cached = usage?.prompt_tokens_details?.cached_tokens ?? usage?.prompt_cache_hit_tokens;
  if (cached) decoded.cacheReadTokens = cached;
  const reasoning = usage?.completion_tokens_details?.reasoning_tokens;
  if (reasoning) decoded.reasoningTokens = reasoning;
  return decoded;
}

/** Servers that return reasoning call it `reasoning_content` (DeepSeek, vLLM, LM Studio) or `reasoning` (OpenRouter, newer vLLM). */
interface ReasoningFields {
  reasoning_content?: string | null;
  reasoning?: unknown;
}
const reasoningOf = (fields: ReasoningFields | undefined): string | undefined =>
  fields?.reasoning_content || (typeof fields?.reasoning === 'string' ? fields.reasoning : undefined) || undefined;

interface UpstreamChoice {
  message?: { content?: string | null; tool_calls?: { id: string; function: { name: string; arguments: string } }[] } & ReasoningFields;
  delta?: { content?: string | null; tool_calls?: { index: number; id?: string; function?: { name?: string; arguments?: string } }[] } & ReasoningFields;
  finish_reason?: string | null;
  /** vLLM: the stop string that ended the answer. */
  stop_reason?: string | number | null;
}
interface UpstreamCompletion {
  id?: string;
  model?: string;
  created?: number;
  choices?: UpstreamChoice[];
  usage?: UpstreamUsage | null;
}

export function decodeChatResponse(json: UpstreamCompletion, fallbackModel: string): CanonicalResponse {
  const choice = json.choices?.[0];
  const response: CanonicalResponse = {
    id: json.id ?? `chatcmpl-${crypto.randomUUID()}`,
    model: json.model ?? fallbackModel,
    created: json.created ?? Math.floor(Date.now() / 1000),
    text: choice?.message?.content ?? '',
    toolCalls: (choice?.message?.tool_calls ?? []).map((c) => ({ id: c.id, name: c.function.name, arguments: c.function.arguments })),
    finishReason: decodeFinishReason(choice?.finish_reason),
    usage: decodeUsage(json.usage),
  };
  const reasoning = reasoningOf(choice?.message);
  if (reasoning) response.reasoning = [{ text: reasoning }];
  if (choice?.finish_reason === 'stop' && typeof choice.stop_reason === 'string') response.stopSequence = choice.stop_reason;
  return response;
}

export type FinishEvent = Extract<StreamEvent, { type: 'finish' }>;

/**
 * Decodes one upstream chunk into canonical events (pushes into `out` to avoid an array per chunk); returns
 * the finish event when this chunk ends the answer (the caller holds it until the usage chunk has passed).
 */
export function decodeChunk(json: UpstreamCompletion, out: StreamEvent[]): FinishEvent | undefined {
  const choice = json.choices?.[0];
  const delta = choice?.delta;
  const reasoning = reasoningOf(delta);
  if (reasoning) out.push({ type: 'reasoning', text: reasoning });
  if (delta?.content) out.push({ type: 'text', text: delta.content });
  if (delta?.tool_calls) {
    for (const call of delta.tool_calls) {
      if (call.id) out.push({ type: 'tool_call_start', index: call.index, id: call.id, name: call.function?.name ?? '' });
      if (call.function?.arguments) out.push({ type: 'tool_call_delta', index: call.index, arguments: call.function.arguments });
    }
  }
  if (json.usage) out.push({ type: 'usage', usage: decodeUsage(json.usage) });
  if (!choice?.finish_reason) return undefined;
  const reason = decodeFinishReason(choice.finish_reason);
  return choice.finish_reason === 'stop' && typeof choice.stop_reason === 'string' ? { type: 'finish', reason, stopSequence: choice.stop_reason } : { type: 'finish', reason };
}
