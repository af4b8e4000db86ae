/**
 * The Anthropic Messages wire format, upstream side: canonical requests encoded for an Anthropic provider, its
 * answers and SSE events decoded back. Providers import this side only.
 */
import type { CacheMarker, CanonicalMessage, CanonicalRequest, CanonicalResponse, ContentPart, DocumentPart, FinishReason, ReasoningBlock, StreamEvent, ToolCall, ToolChoice, Usage } from '../../core/canonical.ts';
import { argumentsObject } from '../../core/canonical.ts';
import { MIN_THINKING_BUDGET, thinkingBudget, withoutSamplingWhileThinking } from '../../core/reasoning.ts';
import { type Block } from './shared.ts';

const cacheField = (cache: CacheMarker | undefined) => (cache ? { cache_control: cache } : {});

/** Only inline PDFs go as base64; Anthropic reads other inline text through a `text` source. */
function encodeDocument(part: DocumentPart, dropped: Set<string>): Block | undefined {
  const extra = { ...(part.title ? { title: part.title } : {}), ...cacheField(part.cache) };
  if (part.url === undefined) {
    // A file id belongs to another provider's Files API; a document of no known kind has nothing to send.
    dropped.add(part.fileId === undefined ? 'messages.content.document' : 'messages.content.document.file_id');
    return undefined;
  }
  const data = /^data:([^;,]+);base64,/.exec(part.url);
  if (!data) return { type: 'document', source: { type: 'url', url: part.url }, ...extra };
  const payload = part.url.slice(data[0].length);
  if (data[1].startsWith('text/')) return { type: 'document', source: { type: 'text', media_type: 'text/plain', data: Buffer.from(payload, 'base64').toString('utf8') }, ...extra };
  return { type: 'document', source: { type: 'base64', media_type: data[1], data: payload }, ...extra };
}

function encodePart(part: ContentPart, dropped: Set<string>): Block | undefined {
  if (part.type === 'text') return { type: 'text', text: part.text, ...cacheField(part.cache) };
  if (part.type === 'document') return encodeDocument(part, dropped);
  const data = /^data:([^;,]+);base64,/.exec(part.url);
  const source = data ? { type: 'base64', media_type: data[1], data: part.url.slice(data[0].length) } : { type: 'url', url: part.url };
  return { type: 'image', source, ...cacheField(part.cache) };
}

/** Anthropic rejects empty text blocks, so they are left out. */
function encodeBlocks(content: string | ContentPart[], dropped: Set<string>): Block[] {
  if (typeof content === 'string') return content === '' ? [] : [{ type: 'text', text: content }];
  const blocks: Block[] = [];
  for (const part of content) {
    if (part.type === 'text' && part.text === '') continue;
    const block = encodePart(part, dropped);
    if (block) blocks.push(block);
  }
  return blocks;
}

/** Thinking goes back only as Anthropic signed it; anything else would be refused or mean nothing. */
function encodeReasoning(reasoning: readonly ReasoningBlock[] | undefined, blocks: Block[], dropped: Set<string>): void {
  for (const block of reasoning ?? []) {
    if (block.origin !== 'anthropic') dropped.add('messages.reasoning');
    else if (block.redacted !== undefined) blocks.push({ type: 'redacted_thinking', data: block.redacted });
    else if (block.signature) blocks.push({ type: 'thinking', thinking: block.text, signature: block.signature });
    else dropped.add('messages.reasoning');
  }
}

function encodeTurn(m: CanonicalMessage, dropped: Set<string>): Block[] {
  if (m.name !== undefined && m.role !== 'tool') dropped.add('messages.name');
  if (m.role === 'tool') {
    const content = typeof m.content === 'string' ? m.content : encodeBlocks(m.content, dropped);
    return [{ type: 'tool_result', tool_use_id: m.toolCallId ?? '', ...(content.length > 0 ? { content } : {}), ...(m.isError ? { is_error: true } : {}), ...cacheField(m.cache) }];
  }
  const blocks: Block[] = [];
  if (m.role === 'assistant') encodeReasoning(m.reasoning, blocks, dropped);
  blocks.push(...encodeBlocks(m.content, dropped));
  for (const call of m.toolCalls ?? []) blocks.push({ type: 'tool_use', id: call.id, name: call.name, input: argumentsObject(call.arguments), ...cacheField(call.cache) });
  return blocks;
}

function encodeToolChoice(choice: ToolChoice | undefined, parallel: boolean | undefined): Record<string, unknown> | undefined {
  const disable = parallel === false ? { disable_parallel_tool_use: true } : {};
  if (choice === undefined) return parallel === false ? { type: 'auto', ...disable } : undefined;
  if (typeof choice === 'object') return { type: 'tool', name: choice.name, ...disable };
  if (choice === 'none') return { type: 'none' };
  return { type: choice === 'required' ? 'any' : choice, ...disable };
}

/** Anthropic has no JSON mode without a schema: that one case is still asked for in the system prompt. */
const JSON_OBJECT_INSTRUCTION = 'Respond only with a valid JSON object, with no other text.';

/** Anthropic's output_config.effort levels. */
const ANTHROPIC_EFFORT: Record<string, string> = { minimal: 'low', low: 'low', medium: 'medium', high: 'high', xhigh: 'max', max: 'max' };

/**
 * thinking, and what it rules out: Anthropic needs max_tokens above the budget, and refuses a changed
 * temperature, a top_p under 0.95 and a forced tool choice while thinking. Those lose to the client's
 * explicit settings only where the client asked for reasoning alone.
 */
function encodeThinking(req: CanonicalRequest, body: Record<string, unknown>, maxTokens: number, dropped: Set<string>): void {
  const reasoning = req.reasoning;
  if (!reasoning) return;
  if (reasoning.off) {
    body.thinking = { type: 'disabled' };
    return;
  }
  if (reasoning.effortOnly && reasoning.effort) {
    body.output_config = { ...(body.output_config as object), effort: ANTHROPIC_EFFORT[reasoning.effort] };
    return;
  }
  const forcedTool = req.toolChoice === 'required' || typeof req.toolChoice === 'object';
  let thinking: Record<string, unknown> | undefined;
  if (reasoning.adaptive) thinking = { type: 'adaptive' };
  else {
    const budget = thinkingBudget(reasoning);
    if (budget !== undefined) {
      const fitted = Math.min(budget, maxTokens - 1);
      if (fitted >= MIN_THINKING_BUDGET) thinking = { type: 'enabled', budget_tokens: fitted };
    }
  }
  if (!thinking || forcedTool) {
    if (thinking || reasoning.budgetTokens !== undefined || reasoning.effort) dropped.add('reasoning');
    return;
  }
  body.thinking = thinking;
  if (reasoning.adaptive && reasoning.effort) body.output_config = { ...(body.output_config as object), effort: ANTHROPIC_EFFORT[reasoning.effort] };
  withoutSamplingWhileThinking(body, { temperature: 'temperature', topP: 'top_p' }, dropped);
}

/**
 * The Messages body for a canonical request. Fields Anthropic has no place for are left out and named in
 * `dropped` (the caller reports them).
 */
export function encodeMessagesRequest(req: CanonicalRequest, model: string, defaultMaxTokens: number, dropped: Set<string> = new Set()): Record<string, unknown> {
  const system: Block[] = [];
  const turns: { role: 'user' | 'assistant'; content: Block[] }[] = [];
  for (const m of req.messages) {
    if (m.role === 'system') {
      system.push(...encodeBlocks(m.content, dropped).filter((b) => b.type === 'text'));
      continue;
    }
    const blocks = encodeTurn(m, dropped);
    if (blocks.length === 0) continue;
    const role = m.role === 'assistant' ? 'assistant' : 'user';
    const last = turns[turns.length - 1];
    // Anthropic requires user and assistant turns to alternate: consecutive ones (e.g. several tool results) merge.
    if (last?.role === role) last.content.push(...blocks);
    else turns.push({ role, content: blocks });
  }
  const format = req.responseFormat;
  if (format?.type === 'json_object' || (format?.type === 'json_schema' && !format.schema)) system.push({ type: 'text', text: JSON_OBJECT_INSTRUCTION });

  // Thinking counts against max_tokens: without a cap from the client, the budget comes on top of the default.
  const budget = req.reasoning && !req.reasoning.adaptive && !req.reasoning.effortOnly ? thinkingBudget(req.reasoning) : undefined;
  const maxTokens = req.maxTokens ?? (budget === undefined ? defaultMaxTokens : budget + defaultMaxTokens);
  const body: Record<string, unknown> = {
    model,
    max_tokens: maxTokens,
    messages: turns.map(({ role, content }) => {
      // tool_result blocks must open the user turn that answers a tool_use (stable sort keeps the rest in order).
      if (role === 'user') content.sort((a, b) => Number(b.type === 'tool_result') - Number(a.type === 'tool_result'));
      return { role, content: content.length === 1 && content[0].type === 'text' && !content[0].cache_control ? content[0].text : content };
    }),
  };
  // Plain system text goes as one string; blocks stay blocks when one carries a cache marker.
  if (system.length > 0) body.system = system.some((b) => b.cache_control) ? system : system.map((b) => b.text).join('\n\n');
  if (req.stream) body.stream = true;
  // Anthropic's range is 0..1; OpenAI clients may send up to 2.
  if (req.temperature !== undefined) body.temperature = Math.min(1, Math.max(0, req.temperature));
  if (req.topP !== undefined) body.top_p = req.topP;
  if (req.topK !== undefined) body.top_k = req.topK;
  if (req.stop?.length) body.stop_sequences = req.stop;
  if (req.user !== undefined) body.metadata = { user_id: req.user };
  if (req.tools?.length) {
    body.tools = req.tools.map((t) => ({ name: t.name, ...(t.description ? { description: t.description } : {}), input_schema: t.parameters, ...(t.strict !== undefined ? { strict: t.strict } : {}), ...cacheField(t.cache) }));
    // tool_choice without tools is a 400 upstream.
    const choice = encodeToolChoice(req.toolChoice, req.parallelToolCalls);
    if (choice) body.tool_choice = choice;
  }
  if (format?.type === 'json_schema' && format.schema) body.output_config = { format: { type: 'json_schema', schema: format.schema } };
  encodeThinking(req, body, maxTokens, dropped);
  if (req.seed !== undefined) dropped.add('seed');
  if (req.presencePenalty !== undefined) dropped.add('presence_penalty');
  if (req.frequencyPenalty !== undefined) dropped.add('frequency_penalty');
  if (req.promptCacheKey !== undefined) markCachePrefix(body);
  return body;
}

const EPHEMERAL: CacheMarker = { type: 'ephemeral' };

/**
 * OpenAI's prompt_cache_key asks the provider to cache the prompt's prefix; Anthropic caches only up to
 * cache_control markers. So a request with the key and no markers of its own gets two: at the end of the
 * system prompt (tools and system, stable across turns) and at the end of the last turn (the whole
 * conversation, which the next turn starts with).
 */
function markCachePrefix(body: Record<string, unknown>): void {
  const messages = body.messages as { role: string; content: string | Block[] }[];
  const marked = (blocks: unknown) => Array.isArray(blocks) && blocks.some((b) => (b as Block).cache_control);
  if (marked(body.system) || marked(body.tools) || messages.some((m) => marked(m.content))) return;
  if (typeof body.system === 'string') body.system = [{ type: 'text', text: body.system, cache_control: EPHEMERAL }];
  const last = messages[messages.length - 1];
  if (!last) return;
  if (typeof last.content === 'string') last.content = [{ type: 'text', text: last.content, cache_control: EPHEMERAL }];
  else {
    const block = last.content[last.content.length - 1];
    // Thinking blocks take no marker (they are never last in a turn Hapax sends, but say so).
    if (block && block.type !== 'thinking' && block.type !== 'redacted_thinking') last.content[last.content.length - 1] = { ...block, cache_control: EPHEMERAL };
  }
}

const FINISH: Record<string, FinishReason> = {
  end_turn: 'stop',
  stop_sequence: 'stop',
  pause_turn: 'stop',
  max_tokens: 'length',
  model_context_window_exceeded: 'length',
  tool_use: 'tool_calls',
  refusal: 'content_filter',
};
export const decodeStopReason = (reason: string | null | undefined): FinishReason => FINISH[reason ?? 'end_turn'] ?? 'stop';

export interface AnthropicUsage {
  input_tokens?: number | null;
  output_tokens?: number | null;
  cache_creation_input_tokens?: number | null;
  cache_read_input_tokens?: number | null;
}
interface AnthropicBlock {
  type: string;
  text?: string;
  id?: string;
  name?: string;
  input?: unknown;
  thinking?: string;
  signature?: string;
  data?: string;
}
export interface AnthropicMessageJson {
  id?: string;
  type?: string;
  model?: string;
  content?: AnthropicBlock[];
  stop_reason?: string | null;
  stop_sequence?: string | null;
  usage?: AnthropicUsage;
}

/**
 * Cached prompt tokens are prompt tokens too: the canonical input count is all three together. Also what any
 * reader of Anthropic usage (the lossless lane's accounting) should use, so cost and metrics agree.
 */
export function decodeAnthropicUsage(usage: AnthropicUsage, outputTokens = usage.output_tokens ?? 0): Usage {
  const read = usage.cache_read_input_tokens ?? 0;
  const written = usage.cache_creation_input_tokens ?? 0;
  const decoded: Usage = { inputTokens: (usage.input_tokens ?? 0) + read + written, outputTokens };
  if (read > 0) decoded.cacheReadTokens = read;
  if (written > 0) decoded.cacheWriteTokens = written;
  return decoded;
}

function decodeReasoningBlock(block: AnthropicBlock): ReasoningBlock | undefined {
  if (block.type === 'thinking') return { text: block.thinking ?? '', ...(block.signature ? { signature: block.signature } : {}), origin: 'anthropic' };
  if (block.type === 'redacted_thinking') return { text: '', redacted: block.data ?? '', origin: 'anthropic' };
  return undefined;
}

export function decodeMessagesResponse(json: AnthropicMessageJson, fallbackModel: string): CanonicalResponse {
  let text = '';
  const toolCalls: ToolCall[] = [];
  const reasoning: ReasoningBlock[] = [];
  for (const block of json.content ?? []) {
    if (block.type === 'text') text += block.text ?? '';
    else if (block.type === 'tool_use') toolCalls.push({ id: block.id ?? '', name: block.name ?? '', arguments: JSON.stringify(block.input ?? {}) });
    else {
      const thought = decodeReasoningBlock(block);
      if (thought) reasoning.push(thought);
    }
  }
  const response: CanonicalResponse = {
    id: json.id ?? `msg_${crypto.randomUUID()}`,
    model: json.model ?? fallbackModel,
    created: Math.floor(Date.now() / 1000),
    text,
    toolCalls,
    finishReason: decodeStopReason(json.stop_reason),
    usage: decodeAnthropicUsage(json.usage ?? {}),
  };
  if (reasoning.length > 0) response.reasoning = reasoning;
  if (json.stop_reason === 'stop_sequence' && typeof json.stop_sequence === 'string') response.stopSequence = json.stop_sequence;
  return response;
}

export interface AnthropicStreamEvent {
  type: string;
  message?: AnthropicMessageJson;
  index?: number;
  content_block?: AnthropicBlock;
  delta?: { type?: string; text?: string; partial_json?: string; thinking?: string; signature?: string; stop_reason?: string | null; stop_sequence?: string | null };
  usage?: AnthropicUsage;
  error?: { type?: string; message?: string };
}

/**
 * Decodes one upstream Messages stream into canonical events. One decoder per stream.
 *
 * The `start` event is held back until the first real output: Anthropic sends message_start at once and may
 * still report an overload right after it, and the gateway can only fail over before the first event.
 */
export class MessagesStreamDecoder {
  private head: StreamEvent | undefined;
  private startUsage: AnthropicUsage = {};
  private reason: FinishReason = 'stop';
  private stopSequence: string | undefined;
  /** content block index → canonical tool-call index */
  private readonly tools = new Map<number, number>();
  /** True once message_stop arrived: the stream is complete. */
  done = false;

  /** Pushes the canonical events for one upstream event into `out` (no array per event). */
  decode(event: AnthropicStreamEvent, out: StreamEvent[]): void {
    switch (event.type) {
      case 'message_start': {
        const message = event.message ?? {};
        this.head = { type: 'start', id: message.id ?? `msg_${crypto.randomUUID()}`, model: message.model ?? '' };
        this.startUsage = message.usage ?? {};
        return;
      }
      case 'content_block_start': {
        const block = event.content_block;
        if (block?.type === 'text' && block.text) this.push(out, { type: 'text', text: block.text });
        else if (block?.type === 'tool_use') {
          const index = this.tools.size;
          this.tools.set(event.index ?? 0, index);
          this.push(out, { type: 'tool_call_start', index, id: block.id ?? '', name: block.name ?? '' });
        } else if (block?.type === 'thinking' && block.thinking) this.push(out, { type: 'reasoning', text: block.thinking });
        else if (block?.type === 'redacted_thinking') this.push(out, { type: 'reasoning_redacted', data: block.data ?? '', origin: 'anthropic' });
        return;
      }
      case 'content_block_delta': {
        const delta = event.delta;
        if (delta?.type === 'text_delta' && delta.text) this.push(out, { type: 'text', text: delta.text });
        else if (delta?.type === 'input_json_delta' && delta.partial_json) {
          const index = this.tools.get(event.index ?? 0);
          if (index !== undefined) this.push(out, { type: 'tool_call_delta', index, arguments: delta.partial_json });
        } else if (delta?.type === 'thinking_delta' && delta.thinking) this.push(out, { type: 'reasoning', text: delta.thinking });
        else if (delta?.type === 'signature_delta' && delta.signature) this.push(out, { type: 'reasoning_signature', signature: delta.signature, origin: 'anthropic' });
        return;
      }
      case 'message_delta': {
        if (event.delta?.stop_reason) this.reason = decodeStopReason(event.delta.stop_reason);
        if (event.delta?.stop_reason === 'stop_sequence' && typeof event.delta.stop_sequence === 'string') this.stopSequence = event.delta.stop_sequence;
        const usage = event.usage ?? {};
        // Newer API versions repeat the (cumulative) input counts here; older ones only send output_tokens.
        const input = usage.input_tokens == null ? this.startUsage : { ...this.startUsage, ...withoutNulls(usage) };
        this.push(out, { type: 'usage', usage: decodeAnthropicUsage(input, usage.output_tokens ?? 0) });
        return;
      }
      case 'message_stop':
        this.done = true;
        this.push(out, this.stopSequence === undefined ? { type: 'finish', reason: this.reason } : { type: 'finish', reason: this.reason, stopSequence: this.stopSequence });
        return;
      default:
        // ping, and event types added later, carry nothing canonical.
        return;
    }
  }

  private push(out: StreamEvent[], event: StreamEvent): void {
    if (this.head) {
      out.push(this.head);
      this.head = undefined;
    }
    out.push(event);
  }
}

function withoutNulls(usage: AnthropicUsage): AnthropicUsage {
  const kept: AnthropicUsage = {};
  for (const [key, value] of Object.entries(usage)) if (value != null) kept[key as keyof AnthropicUsage] = value;
  return kept;
}
