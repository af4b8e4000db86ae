/**
 * The Anthropic Messages wire format, both directions:
 * client side (decode /v1/messages requests, encode messages and SSE events) and upstream side (the reverse).
 */
import { z } from 'zod';
import type {
  CacheMarker,
  CanonicalMessage,
  CanonicalRequest,
  CanonicalResponse,
  ContentPart,
  DocumentPart,
  FinishReason,
  ReasoningBlock,
  ReasoningRequest,
  StreamEvent,
  TextPart,
  ToolCall,
  ToolChoice,
  Usage,
} from '../providers/canonical.ts';
import { argumentsObject, EMPTY_USAGE } from '../providers/canonical.ts';
import { isEffort, MIN_THINKING_BUDGET, thinkingBudget } from '../providers/reasoning.ts';
import { parseBody } from './validate.ts';

// ---------- client side: what an Anthropic SDK sends us ----------

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

// ---------- upstream side: what we send Anthropic ----------

type Block = Record<string, unknown> & { type: string };

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
  if (body.temperature !== undefined) {
    delete body.temperature;
    dropped.add('temperature');
  }
  if (typeof body.top_p === 'number' && body.top_p < 0.95) {
    delete body.top_p;
    dropped.add('top_p');
  }
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
