/**
 * The Anthropic Messages wire format, client side: what an Anthropic SDK or Claude Code sends us
 * (/v1/messages requests, validated and decoded into the canonical model) and what it gets back (messages and
 * SSE events encoded from canonical answers).
 */
import { z } from 'zod';
import type { CacheMarker, CanonicalMessage, CanonicalRequest, CanonicalResponse, ContentPart, DocumentPart, FinishReason, ReasoningBlock, ReasoningRequest, StreamEvent, TextPart, ToolCall, Usage } from '../../core/canonical.ts';
import { argumentsObject, EMPTY_USAGE } from '../../core/canonical.ts';
import { isEffort } from '../../core/reasoning.ts';
import { parseBody } from '../validate.ts';

const cacheControl = z.looseObject({ type: z.literal('ephemeral'), ttl: z.string().optional() }).nullish();
const textBlock = z.looseObject({ type: z.literal('text'), text: z.string(), cache_control: cacheControl });
const imageBlock = z.looseObject({
  type: z.literal('image'),
  source: z.discriminatedUnion('type', [
    z.looseObject({ type: z.literal('base64'), media_type: z.string(), data: z.string() }),
    z.looseObject({ type: z.literal('url'), url: z.string() }),
  ]),
  cache_control: cacheControl,
});
/** A type none of the known variants has: accepted (the API may add more), and reported as dropped when translated. */
const otherType = (known: readonly string[]) => z.looseObject({ type: z.string().refine((t) => !known.includes(t)) });

const DOCUMENT_SOURCES = ['base64', 'url', 'text', 'content', 'file'];
const documentBlock = z.looseObject({
  type: z.literal('document'),
  source: z.union([
    z.looseObject({ type: z.literal('base64'), media_type: z.string(), data: z.string() }),
    z.looseObject({ type: z.literal('url'), url: z.string() }),
    z.looseObject({ type: z.literal('text'), media_type: z.string().optional(), data: z.string() }),
    z.looseObject({ type: z.literal('content'), content: z.union([z.string(), z.array(z.looseObject({ type: z.string(), text: z.string().optional() }))]) }),
    z.looseObject({ type: z.literal('file'), file_id: z.string() }),
    otherType(DOCUMENT_SOURCES),
  ]),
  title: z.string().nullish(),
  cache_control: cacheControl,
});
const toolUseBlock = z.looseObject({ type: z.literal('tool_use'), id: z.string(), name: z.string(), input: z.unknown(), cache_control: cacheControl });
const toolResultBlock = z.looseObject({
  type: z.literal('tool_result'),
  tool_use_id: z.string(),
  content: z.union([z.string(), z.array(z.discriminatedUnion('type', [textBlock, imageBlock, documentBlock]))]).optional(),
  is_error: z.boolean().optional(),
  cache_control: cacheControl,
});
const thinkingBlock = z.looseObject({ type: z.literal('thinking'), thinking: z.string(), signature: z.string().optional() });
const redactedThinkingBlock = z.looseObject({ type: z.literal('redacted_thinking'), data: z.string() });

const systemContent = z.union([z.string(), z.array(textBlock)]);

const USER_BLOCKS = ['text', 'image', 'document', 'tool_result'];
const ASSISTANT_BLOCKS = ['text', 'tool_use', 'thinking', 'redacted_thinking'];
const userBlock = z.discriminatedUnion('type', [textBlock, imageBlock, documentBlock, toolResultBlock]);
const assistantBlock = z.discriminatedUnion('type', [textBlock, toolUseBlock, thinkingBlock, redactedThinkingBlock]);

/**
 * Block types the API has added beyond these (search results, server-tool blocks, containers...) are accepted:
 * the lossless lane passes them on; the translated lane reports them dropped.
 */
const messageSchema = z.discriminatedUnion('role', [
  z.looseObject({
    role: z.literal('user'),
    content: z.union([z.string(), z.array(z.union([userBlock, otherType(USER_BLOCKS)]))]),
  }),
  z.looseObject({
    role: z.literal('assistant'),
    content: z.union([z.string(), z.array(z.union([assistantBlock, otherType(ASSISTANT_BLOCKS)]))]),
  }),
  // @anthropic-ai/sdk 1.x also types system turns inside `messages`.
  z.looseObject({ role: z.literal('system'), content: systemContent }),
]);

export const messagesRequestSchema = z.looseObject({
  model: z.string().optional(),
  // Required, as in the real API: a client written against Anthropic must not get different limits here.
  max_tokens: z.number({ error: (issue) => (issue.input === undefined ? 'Field required' : undefined) }).int().positive(),
  messages: z.array(messageSchema).min(1, 'messages must contain at least one message'),
  system: systemContent.optional(),
  stream: z.boolean().optional(),
  stop_sequences: z.array(z.string()).optional(),
  temperature: z.number().min(0).max(1).optional(),
  top_p: z.number().min(0).max(1).optional(),
  top_k: z.number().int().min(0).optional(),
  metadata: z.looseObject({ user_id: z.string().nullish() }).optional(),
  tools: z
    .array(
      z.union([
        z.looseObject({
          type: z.literal('custom').optional(),
          name: z.string().min(1),
          description: z.string().optional(),
          input_schema: z.record(z.string(), z.unknown()),
          cache_control: cacheControl,
          strict: z.boolean().optional(),
        }),
        // Server tools (web_search_20250305, code_execution_..., bash_...): run by Anthropic, named by type.
        z.looseObject({ type: z.string().refine((t) => t !== 'custom'), name: z.string().min(1) }),
      ]),
    )
    .optional(),
  tool_choice: z
    .discriminatedUnion('type', [
      z.looseObject({ type: z.literal('auto'), disable_parallel_tool_use: z.boolean().optional() }),
      z.looseObject({ type: z.literal('any'), disable_parallel_tool_use: z.boolean().optional() }),
      z.looseObject({ type: z.literal('none') }),
      z.looseObject({ type: z.literal('tool'), name: z.string(), disable_parallel_tool_use: z.boolean().optional() }),
    ])
    .optional(),
  thinking: z
    .union([
      z.looseObject({ type: z.literal('enabled'), budget_tokens: z.number().int().min(1) }),
      z.looseObject({ type: z.literal('adaptive') }),
      z.looseObject({ type: z.literal('disabled') }),
      otherType(['enabled', 'adaptive', 'disabled']),
    ])
    .optional(),
  output_config: z
    .looseObject({
      format: z.looseObject({ type: z.literal('json_schema'), schema: z.record(z.string(), z.unknown()) }).nullish(),
      effort: z.string().nullish(),
    })
    .optional(),
});
export type AnthropicMessagesRequest = z.infer<typeof messagesRequestSchema>;

/** Top-level request fields the canonical model carries; any other is reported as dropped when translated. */
const KNOWN_FIELDS = new Set([
  'model', 'max_tokens', 'messages', 'system', 'stream', 'stop_sequences', 'temperature', 'top_p', 'top_k', 'metadata', 'tools', 'tool_choice', 'thinking', 'output_config',
]);

type ImageBlock = z.infer<typeof imageBlock>;
type CustomTool = Extract<NonNullable<AnthropicMessagesRequest['tools']>[number], { input_schema: unknown }>;
type TextBlock = z.infer<typeof textBlock>;
type DocumentBlock = z.infer<typeof documentBlock>;
type CacheControl = z.infer<typeof cacheControl>;

const decodeCache = (cache: CacheControl): CacheMarker | undefined =>
  cache ? (cache.ttl === undefined ? { type: 'ephemeral' } : { type: 'ephemeral', ttl: cache.ttl }) : undefined;

function withCache<T extends object>(part: T, cache: CacheControl): T & { cache?: CacheMarker } {
  const marker = decodeCache(cache);
  return marker ? { ...part, cache: marker } : part;
}

const textDataUrl = (text: string, mediaType = 'text/plain') => `data:${mediaType};base64,${Buffer.from(text).toString('base64')}`;

/** A document block, or undefined for a source kind the canonical model has no place for. */
function decodeDocument(block: DocumentBlock): DocumentPart | undefined {
  const source = block.source as { type: string; media_type?: string; data?: string; url?: string; file_id?: string; content?: string | { text?: string }[] };
  const part: DocumentPart = { type: 'document' };
  if (source.type === 'base64') part.url = `data:${source.media_type};base64,${source.data}`;
  else if (source.type === 'url') part.url = source.url;
  else if (source.type === 'text') part.url = textDataUrl(source.data ?? '', source.media_type);
  // Custom content documents: their text is what a model of another dialect can read.
  else if (source.type === 'content') part.url = textDataUrl(typeof source.content === 'string' ? source.content : (source.content ?? []).map((b) => b.text ?? '').join('\n'));
  else if (source.type === 'file') part.fileId = source.file_id;
  else return undefined;
  if (block.title) part.title = block.title;
  return withCache(part, block.cache_control);
}

function decodePart(block: TextBlock | ImageBlock | DocumentBlock): ContentPart {
  if (block.type === 'text') return withCache<TextPart>({ type: 'text', text: block.text }, block.cache_control);
  // An unknown document kind becomes an empty document, which no encoder can send: each reports it dropped.
  if (block.type === 'document') return decodeDocument(block) ?? { type: 'document' };
  const source = block.source;
  return withCache<ContentPart>({ type: 'image', url: source.type === 'url' ? source.url : `data:${source.media_type};base64,${source.data}` }, block.cache_control);
}

/** Text blocks as one string, unless one carries a cache marker: then the blocks stay apart, marker and all. */
function textContent(content: string | TextBlock[]): string | ContentPart[] {
  if (typeof content === 'string') return content;
  if (content.some((b) => b.cache_control)) return content.map(decodePart);
  return content.map((b) => b.text).join('\n');
}

const TOOL_CHOICE = { auto: 'auto', any: 'required', none: 'none' } as const;

function decodeThinking(req: AnthropicMessagesRequest): ReasoningRequest | undefined {
  const thinking = req.thinking;
  const effort = req.output_config?.effort;
  const reasoning: ReasoningRequest = {};
  if (thinking?.type === 'enabled') reasoning.budgetTokens = (thinking as { budget_tokens: number }).budget_tokens;
  else if (thinking?.type === 'adaptive') reasoning.adaptive = true;
  else if (thinking?.type === 'disabled') reasoning.off = true;
  if (isEffort(effort)) {
    reasoning.effort = effort;
    if (thinking === undefined) reasoning.effortOnly = true;
  }
  return Object.keys(reasoning).length > 0 ? reasoning : undefined;
}

export function decodeMessagesRequest(body: unknown): CanonicalRequest {
  const req = parseBody(messagesRequestSchema, body);
  const messages: CanonicalMessage[] = [];
  const unsupported = Object.keys(body as object).filter((key) => !KNOWN_FIELDS.has(key));
  if (req.system !== undefined) {
    const system = textContent(req.system);
    if (system.length > 0) messages.push({ role: 'system', content: system });
  }
  for (const [i, m] of req.messages.entries()) {
    if (m.role === 'system') {
      messages.push({ role: 'system', content: textContent(m.content) });
    } else if (m.role === 'assistant') {
      if (typeof m.content === 'string') {
        messages.push({ role: 'assistant', content: m.content });
        continue;
      }
      const texts: TextBlock[] = [];
      const toolCalls: ToolCall[] = [];
      const reasoning: ReasoningBlock[] = [];
      for (const [j, anyBlock] of m.content.entries()) {
        if (!ASSISTANT_BLOCKS.includes(anyBlock.type)) {
          unsupported.push(`messages[${i}].content[${j}]`);
          continue;
        }
        const block = anyBlock as z.infer<typeof assistantBlock>;
        if (block.type === 'text') texts.push(block);
        else if (block.type === 'tool_use') {
          toolCalls.push(withCache<ToolCall>({ id: block.id, name: block.name, arguments: JSON.stringify(block.input ?? {}) }, block.cache_control));
        } else if (block.type === 'thinking') {
          reasoning.push(block.signature ? { text: block.thinking, signature: block.signature, origin: 'anthropic' } : { text: block.thinking });
        } else reasoning.push({ text: '', redacted: block.data, origin: 'anthropic' });
      }
      const message: CanonicalMessage = { role: 'assistant', content: texts.some((b) => b.cache_control) ? texts.map(decodePart) : texts.map((b) => b.text).join('') };
      if (toolCalls.length > 0) message.toolCalls = toolCalls;
      if (reasoning.length > 0) message.reasoning = reasoning;
      messages.push(message);
    } else if (typeof m.content === 'string') {
      messages.push({ role: 'user', content: m.content });
    } else {
      // One user turn answers every tool_use of the previous turn; canonically that is one tool message each.
      const parts: ContentPart[] = [];
      for (const [j, anyBlock] of m.content.entries()) {
        if (!USER_BLOCKS.includes(anyBlock.type)) {
          unsupported.push(`messages[${i}].content[${j}]`);
          continue;
        }
        const block = anyBlock as z.infer<typeof userBlock>;
        if (block.type !== 'tool_result') parts.push(decodePart(block));
        else {
          const content = block.content === undefined ? '' : typeof block.content === 'string' ? block.content : block.content.map(decodePart);
          const message: CanonicalMessage = withCache({ role: 'tool', content, toolCallId: block.tool_use_id }, block.cache_control);
          if (block.is_error) message.isError = true;
          messages.push(message);
        }
      }
      if (parts.length > 0) messages.push({ role: 'user', content: parts });
    }
  }
  const choice = req.tool_choice;
  const format = req.output_config?.format;
  const tools: CustomTool[] = [];
  req.tools?.forEach((tool, i) => {
    if ('input_schema' in tool) tools.push(tool as CustomTool);
    else unsupported.push(`tools[${i}]`);
  });
  if (req.thinking && !['enabled', 'adaptive', 'disabled'].includes(req.thinking.type)) unsupported.push('thinking');
  return {
    model: req.model || undefined,
    messages,
    stream: req.stream === true,
    maxTokens: req.max_tokens,
    temperature: req.temperature,
    topP: req.top_p,
    topK: req.top_k,
    stop: req.stop_sequences?.length ? req.stop_sequences : undefined,
    user: req.metadata?.user_id ?? undefined,
    tools: req.tools && tools.map((t) => withCache({ name: t.name, description: t.description, parameters: t.input_schema, ...(t.strict !== undefined ? { strict: t.strict } : {}) }, t.cache_control)),
    toolChoice: choice === undefined ? undefined : choice.type === 'tool' ? { name: choice.name } : TOOL_CHOICE[choice.type],
    parallelToolCalls: choice && 'disable_parallel_tool_use' in choice && choice.disable_parallel_tool_use !== undefined ? !choice.disable_parallel_tool_use : undefined,
    responseFormat: format ? { type: 'json_schema', schema: format.schema } : undefined,
    reasoning: decodeThinking(req),
    unsupported: unsupported.length > 0 ? unsupported : undefined,
  };
}

const STOP_REASON: Record<FinishReason, string> = {
  stop: 'end_turn',
  length: 'max_tokens',
  tool_calls: 'tool_use',
  content_filter: 'refusal',
};

/**
 * Anthropic counts uncached, cache-written and cache-read prompt tokens apart; the canonical input count is
 * all three together.
 */
export function encodeAnthropicUsage(usage: Usage) {
  const read = usage.cacheReadTokens ?? 0;
  const written = usage.cacheWriteTokens ?? 0;
  return {
    input_tokens: Math.max(0, usage.inputTokens - read - written),
    output_tokens: usage.outputTokens,
    cache_creation_input_tokens: written,
    cache_read_input_tokens: read,
  };
}

/** Anthropic SDKs and tools expect `msg_` ids; upstream ids from other dialects keep their text behind it. */
const messageId = (id: string) => (id.startsWith('msg_') ? id : `msg_${id}`);

/**
 * Reasoning as Anthropic content blocks. Reasoning from another provider family has no signature: the block
 * carries an empty one, which Hapax never sends to an Anthropic upstream.
 */
function encodeReasoningBlocks(reasoning: readonly ReasoningBlock[] | undefined, content: Record<string, unknown>[]): void {
  for (const block of reasoning ?? []) {
    if (block.redacted !== undefined) content.push({ type: 'redacted_thinking', data: block.redacted });
    else content.push({ type: 'thinking', thinking: block.text, signature: block.origin === 'anthropic' ? (block.signature ?? '') : '' });
  }
}

const stopReasonOf = (reason: FinishReason, stopSequence: string | undefined) => (stopSequence !== undefined ? 'stop_sequence' : STOP_REASON[reason]);

/**
 * tool_use.input must be an object, but other dialects carry arguments as text the model wrote. Text that is
 * not a JSON object (a model slip) becomes {} rather than failing the whole answer.
 */
export function encodeMessagesResponse(res: CanonicalResponse) {
  const content: Record<string, unknown>[] = [];
  encodeReasoningBlocks(res.reasoning, content);
  if (res.text !== '') content.push({ type: 'text', text: res.text });
  for (const call of res.toolCalls) content.push({ type: 'tool_use', id: call.id, name: call.name, input: argumentsObject(call.arguments) });
  return {
    id: messageId(res.id),
    type: 'message',
    role: 'assistant',
    model: res.model,
    content,
    stop_reason: stopReasonOf(res.finishReason, res.stopSequence),
    stop_sequence: res.stopSequence ?? null,
    usage: encodeAnthropicUsage(res.usage),
  };
}

const sseFrame = (event: string, data: unknown) => `event: ${event}\ndata: ${JSON.stringify(data)}\n\n`;

type BlockKind = 'text' | 'tool' | 'thinking' | 'signed';

/**
 * Encodes canonical stream events as Anthropic SSE events. One encoder per response.
 * Content blocks are numbered in the order they open; a text or thinking block opens lazily on its first
 * delta, each tool call gets a block of its own, and the open block is stopped before the next one starts.
 */
export class MessageStreamEncoder {
  private readonly id: string;
  private readonly model: string;
  private started = false;
  private openBlock: { index: number; kind: BlockKind } | undefined;
  private nextBlock = 0;
  /** canonical tool-call index → content block index */
  private readonly toolBlocks = new Map<number, number>();
  private usage: Usage = EMPTY_USAGE;

  constructor(id: string, model: string) {
    this.id = messageId(id);
    this.model = model;
  }

  /** The SSE text for one event, or '' when the event has no frame of its own. */
  encode(event: StreamEvent): string {
    // Every Anthropic stream opens with message_start, even when the upstream stream did not begin with `start`.
    let out = '';
    if (!this.started) {
      this.started = true;
      const id = event.type === 'start' ? messageId(event.id) : this.id;
      const model = event.type === 'start' ? event.model : this.model;
      out = sseFrame('message_start', {
        type: 'message_start',
        message: { id, type: 'message', role: 'assistant', model, content: [], stop_reason: null, stop_sequence: null, usage: encodeAnthropicUsage(EMPTY_USAGE) },
      });
    }
    switch (event.type) {
      case 'start':
        return out;
      case 'text':
        if (this.openBlock?.kind !== 'text') out += this.open('text', { type: 'text', text: '' });
        // The open text block is always the latest one opened.
        return out + this.delta(this.nextBlock - 1, { type: 'text_delta', text: event.text });
      case 'reasoning':
        if (this.openBlock?.kind !== 'thinking') out += this.open('thinking', { type: 'thinking', thinking: '', signature: '' });
        return out + this.delta(this.nextBlock - 1, { type: 'thinking_delta', thinking: event.text });
      case 'reasoning_signature':
        // A signature ends its thinking block; one without text before it still gets a block of its own.
        if (this.openBlock?.kind !== 'thinking') out += this.open('thinking', { type: 'thinking', thinking: '', signature: '' });
        out += this.delta(this.nextBlock - 1, { type: 'signature_delta', signature: event.signature });
        (this.openBlock as { kind: BlockKind }).kind = 'signed';
        return out;
      case 'reasoning_redacted':
        return out + this.open('signed', { type: 'redacted_thinking', data: event.data });
      case 'tool_call_start':
        out += this.open('tool', { type: 'tool_use', id: event.id, name: event.name, input: {} });
        this.toolBlocks.set(event.index, this.nextBlock - 1);
        return out;
      case 'tool_call_delta': {
        const index = this.toolBlocks.get(event.index);
        // Arguments for a call that never started have no block to belong to.
        return index === undefined || event.arguments === '' ? out : out + this.delta(index, { type: 'input_json_delta', partial_json: event.arguments });
      }
      case 'usage':
        this.usage = event.usage;
        return out;
      case 'finish':
        return (
          out +
          this.close() +
          sseFrame('message_delta', {
            type: 'message_delta',
            delta: { stop_reason: stopReasonOf(event.reason, event.stopSequence), stop_sequence: event.stopSequence ?? null },
            // input_tokens here too: message_start went out before the upstream reported usage.
            usage: encodeAnthropicUsage(this.usage),
          }) +
          sseFrame('message_stop', { type: 'message_stop' })
        );
    }
  }

  /** The frame that tells an Anthropic client the stream failed; `body` is the dialect's error body. */
  error(body: unknown): string {
    return sseFrame('error', body);
  }

  private open(kind: BlockKind, block: Record<string, unknown>): string {
    const index = this.nextBlock++;
    const out = this.close() + sseFrame('content_block_start', { type: 'content_block_start', index, content_block: block });
    this.openBlock = { index, kind };
    return out;
  }

  private close(): string {
    if (!this.openBlock) return '';
    const index = this.openBlock.index;
    this.openBlock = undefined;
    return sseFrame('content_block_stop', { type: 'content_block_stop', index });
  }

  private delta(index: number, delta: Record<string, unknown>): string {
    return sseFrame('content_block_delta', { type: 'content_block_delta', index, delta });
  }
}
