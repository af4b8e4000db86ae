/**
 * The Anthropic Messages wire format, both directions:
 * client side (decode /v1/messages requests, encode messages and SSE events) and upstream side (the reverse).
 */
import { z } from 'zod';
import type {
  CanonicalMessage,
  CanonicalRequest,
  CanonicalResponse,
  ContentPart,
  FinishReason,
  StreamEvent,
  ToolCall,
  ToolChoice,
  Usage,
} from '../providers/canonical.ts';
import { argumentsObject, contentText, EMPTY_USAGE } from '../providers/canonical.ts';
import { parseBody } from './validate.ts';

// ---------- client side: what an Anthropic SDK sends us ----------

const textBlock = z.looseObject({ type: z.literal('text'), text: z.string() });
const imageBlock = z.looseObject({
  type: z.literal('image'),
  source: z.discriminatedUnion('type', [
    z.looseObject({ type: z.literal('base64'), media_type: z.string(), data: z.string() }),
    z.looseObject({ type: z.literal('url'), url: z.string() }),
  ]),
});
const toolUseBlock = z.looseObject({ type: z.literal('tool_use'), id: z.string(), name: z.string(), input: z.unknown() });
const toolResultBlock = z.looseObject({
  type: z.literal('tool_result'),
  tool_use_id: z.string(),
  content: z.union([z.string(), z.array(z.discriminatedUnion('type', [textBlock, imageBlock]))]).optional(),
  is_error: z.boolean().optional(),
});
// Extended-thinking blocks come back with the history; the canonical model has no place for them.
const thinkingBlock = z.looseObject({ type: z.literal('thinking') });
const redactedThinkingBlock = z.looseObject({ type: z.literal('redacted_thinking') });

const systemContent = z.union([z.string(), z.array(textBlock)]);

const messageSchema = z.discriminatedUnion('role', [
  z.looseObject({
    role: z.literal('user'),
    content: z.union([z.string(), z.array(z.discriminatedUnion('type', [textBlock, imageBlock, toolResultBlock]))]),
  }),
  z.looseObject({
    role: z.literal('assistant'),
    content: z.union([z.string(), z.array(z.discriminatedUnion('type', [textBlock, toolUseBlock, thinkingBlock, redactedThinkingBlock]))]),
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
  metadata: z.looseObject({ user_id: z.string().nullish() }).optional(),
  tools: z
    .array(
      z.looseObject({
        name: z.string().min(1),
        description: z.string().optional(),
        input_schema: z.record(z.string(), z.unknown()),
      }),
    )
    .optional(),
  tool_choice: z
    .discriminatedUnion('type', [
      z.looseObject({ type: z.literal('auto') }),
      z.looseObject({ type: z.literal('any') }),
      z.looseObject({ type: z.literal('none') }),
      z.looseObject({ type: z.literal('tool'), name: z.string() }),
    ])
    .optional(),
  output_config: z
    .looseObject({ format: z.looseObject({ type: z.literal('json_schema'), schema: z.record(z.string(), z.unknown()) }).nullish() })
    .optional(),
});
export type AnthropicMessagesRequest = z.infer<typeof messagesRequestSchema>;

type ImageBlock = z.infer<typeof imageBlock>;
type TextBlock = z.infer<typeof textBlock>;

function decodePart(block: TextBlock | ImageBlock): ContentPart {
  if (block.type === 'text') return { type: 'text', text: block.text };
  const source = block.source;
  return { type: 'image', url: source.type === 'url' ? source.url : `data:${source.media_type};base64,${source.data}` };
}

const joinText = (content: string | TextBlock[]): string => (typeof content === 'string' ? content : content.map((b) => b.text).join('\n'));

const TOOL_CHOICE = { auto: 'auto', any: 'required', none: 'none' } as const;

export function decodeMessagesRequest(body: unknown): CanonicalRequest {
  const req = parseBody(messagesRequestSchema, body);
  const messages: CanonicalMessage[] = [];
  const system = req.system === undefined ? '' : joinText(req.system);
  if (system) messages.push({ role: 'system', content: system });
  for (const m of req.messages) {
    if (m.role === 'system') {
      messages.push({ role: 'system', content: joinText(m.content) });
    } else if (m.role === 'assistant') {
      if (typeof m.content === 'string') {
        messages.push({ role: 'assistant', content: m.content });
        continue;
      }
      let text = '';
      const toolCalls: ToolCall[] = [];
      for (const block of m.content) {
        if (block.type === 'text') text += block.text;
        else if (block.type === 'tool_use') toolCalls.push({ id: block.id, name: block.name, arguments: JSON.stringify(block.input ?? {}) });
      }
      messages.push(toolCalls.length > 0 ? { role: 'assistant', content: text, toolCalls } : { role: 'assistant', content: text });
    } else if (typeof m.content === 'string') {
      messages.push({ role: 'user', content: m.content });
    } else {
      // One user turn answers every tool_use of the previous turn; canonically that is one tool message each.
      const parts: ContentPart[] = [];
      for (const block of m.content) {
        if (block.type !== 'tool_result') parts.push(decodePart(block));
        else {
          const content = block.content === undefined ? '' : typeof block.content === 'string' ? block.content : block.content.map(decodePart);
          messages.push({ role: 'tool', content, toolCallId: block.tool_use_id });
        }
      }
      if (parts.length > 0) messages.push({ role: 'user', content: parts });
    }
  }
  const choice = req.tool_choice;
  const format = req.output_config?.format;
  return {
    model: req.model || undefined,
    messages,
    stream: req.stream === true,
    maxTokens: req.max_tokens,
    temperature: req.temperature,
    topP: req.top_p,
    stop: req.stop_sequences?.length ? req.stop_sequences : undefined,
    user: req.metadata?.user_id ?? undefined,
    tools: req.tools?.map((t) => ({ name: t.name, description: t.description, parameters: t.input_schema })),
    toolChoice: choice === undefined ? undefined : choice.type === 'tool' ? { name: choice.name } : TOOL_CHOICE[choice.type],
    responseFormat: format ? { type: 'json_schema', schema: format.schema } : undefined,
  };
}

const STOP_REASON: Record<FinishReason, string> = {
  stop: 'end_turn',
  length: 'max_tokens',
  tool_calls: 'tool_use',
  content_filter: 'refusal',
};

/** Cache counters are always 0: cache_control is not forwarded, so nothing is cached on our behalf. */
export function encodeAnthropicUsage(usage: Usage) {
  return {
    input_tokens: usage.inputTokens,
    output_tokens: usage.outputTokens,
    cache_creation_input_tokens: 0,
    cache_read_input_tokens: 0,
  };
}

/** Anthropic SDKs and tools expect `msg_` ids; upstream ids from other dialects keep their text behind it. */
const messageId = (id: string) => (id.startsWith('msg_') ? id : `msg_${id}`);

/**
 * tool_use.input must be an object, but other dialects carry arguments as text the model wrote. Text that is
 * not a JSON object (a model slip) becomes {} rather than failing the whole answer.
 */
export function encodeMessagesResponse(res: CanonicalResponse) {
  const content: Record<string, unknown>[] = [];
  if (res.text !== '') content.push({ type: 'text', text: res.text });
  for (const call of res.toolCalls) content.push({ type: 'tool_use', id: call.id, name: call.name, input: argumentsObject(call.arguments) });
  return {
    id: messageId(res.id),
    type: 'message',
    role: 'assistant',
    model: res.model,
    content,
    stop_reason: STOP_REASON[res.finishReason],
    stop_sequence: null,
    usage: encodeAnthropicUsage(res.usage),
  };
}

const sseFrame = (event: string, data: unknown) => `event: ${event}\ndata: ${JSON.stringify(data)}\n\n`;

/**
 * Encodes canonical stream events as Anthropic SSE events. One encoder per response.
 * Content blocks are numbered in the order they open; a text block opens lazily on the first text, each tool
 * call gets a block of its own, and the open block is stopped before the next one starts.
 */
export class MessageStreamEncoder {
  private readonly id: string;
  private readonly model: string;
  private started = false;
  private openBlock: { index: number; kind: 'text' | 'tool' } | undefined;
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
            delta: { stop_reason: STOP_REASON[event.reason], stop_sequence: null },
            // input_tokens here too: message_start went out before the upstream reported usage.
            usage: { input_tokens: this.usage.inputTokens, output_tokens: this.usage.outputTokens },
          }) +
          sseFrame('message_stop', { type: 'message_stop' })
        );
    }
  }

  /** The frame that tells an Anthropic client the stream failed; `body` is the dialect's error body. */
  error(body: unknown): string {
    return sseFrame('error', body);
  }

  private open(kind: 'text' | 'tool', block: Record<string, unknown>): string {
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

function encodePart(part: ContentPart): Block {
  if (part.type === 'text') return { type: 'text', text: part.text };
  const data = /^data:([^;,]+);base64,/.exec(part.url);
  return data
    ? { type: 'image', source: { type: 'base64', media_type: data[1], data: part.url.slice(data[0].length) } }
    : { type: 'image', source: { type: 'url', url: part.url } };
}

/** Anthropic rejects empty text blocks, so they are left out. */
function encodeBlocks(content: string | ContentPart[]): Block[] {
  if (typeof content === 'string') return content === '' ? [] : [{ type: 'text', text: content }];
  return content.filter((p) => p.type !== 'text' || p.text !== '').map(encodePart);
}

function encodeTurn(m: CanonicalMessage): Block[] {
  if (m.role === 'tool') {
    const content = typeof m.content === 'string' ? m.content : encodeBlocks(m.content);
    return [{ type: 'tool_result', tool_use_id: m.toolCallId ?? '', ...(content.length > 0 ? { content } : {}) }];
  }
  const blocks = encodeBlocks(m.content);
  for (const call of m.toolCalls ?? []) blocks.push({ type: 'tool_use', id: call.id, name: call.name, input: argumentsObject(call.arguments) });
  return blocks;
}

function encodeToolChoice(choice: ToolChoice) {
  if (typeof choice === 'object') return { type: 'tool', name: choice.name };
  return { type: choice === 'required' ? 'any' : choice };
}

function formatInstruction(req: CanonicalRequest): string | undefined {
  const format = req.responseFormat;
  if (!format || format.type === 'text') return undefined;
  return format.schema
    ? `Respond only with a JSON object that matches this JSON Schema, with no other text: ${JSON.stringify(format.schema)}`
    : 'Respond only with a valid JSON object, with no other text.';
}

export function encodeMessagesRequest(req: CanonicalRequest, model: string, defaultMaxTokens: number): Record<string, unknown> {
  const system: string[] = [];
  const turns: { role: 'user' | 'assistant'; content: Block[] }[] = [];
  for (const m of req.messages) {
    if (m.role === 'system') {
      const text = contentText(m.content);
      if (text) system.push(text);
      continue;
    }
    const blocks = encodeTurn(m);
    if (blocks.length === 0) continue;
    const role = m.role === 'assistant' ? 'assistant' : 'user';
    const last = turns[turns.length - 1];
    // Anthropic requires user and assistant turns to alternate: consecutive ones (e.g. several tool results) merge.
    if (last?.role === role) last.content.push(...blocks);
    else turns.push({ role, content: blocks });
  }
  const instruction = formatInstruction(req);
  if (instruction) system.push(instruction);

  const body: Record<string, unknown> = {
    model,
    max_tokens: req.maxTokens ?? defaultMaxTokens,
    messages: turns.map(({ role, content }) => {
      // tool_result blocks must open the user turn that answers a tool_use (stable sort keeps the rest in order).
      if (role === 'user') content.sort((a, b) => Number(b.type === 'tool_result') - Number(a.type === 'tool_result'));
      return { role, content: content.length === 1 && content[0].type === 'text' ? content[0].text : content };
    }),
  };
  if (system.length > 0) body.system = system.join('\n\n');
  if (req.stream) body.stream = true;
  // Anthropic's range is 0..1; OpenAI clients may send up to 2.
  if (req.temperature !== undefined) body.temperature = Math.min(1, Math.max(0, req.temperature));
  if (req.topP !== undefined) body.top_p = req.topP;
  if (req.stop?.length) body.stop_sequences = req.stop;
  if (req.user !== undefined) body.metadata = { user_id: req.user };
  if (req.tools?.length) {
    body.tools = req.tools.map((t) => ({ name: t.name, ...(t.description ? { description: t.description } : {}), input_schema: t.parameters }));
    // tool_choice without tools is a 400 upstream.
    if (req.toolChoice !== undefined) body.tool_choice = encodeToolChoice(req.toolChoice);
  }
  return body;
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
}
export interface AnthropicMessageJson {
  id?: string;
  type?: string;
  model?: string;
  content?: AnthropicBlock[];
  stop_reason?: string | null;
  usage?: AnthropicUsage;
}

/** Cached prompt tokens are prompt tokens too: the canonical input count is all three together. */
export function promptTokens(usage: AnthropicUsage): number {
  return (usage.input_tokens ?? 0) + (usage.cache_creation_input_tokens ?? 0) + (usage.cache_read_input_tokens ?? 0);
}

export function decodeMessagesResponse(json: AnthropicMessageJson, fallbackModel: string): CanonicalResponse {
  let text = '';
  const toolCalls: ToolCall[] = [];
  for (const block of json.content ?? []) {
    if (block.type === 'text') text += block.text ?? '';
    else if (block.type === 'tool_use') toolCalls.push({ id: block.id ?? '', name: block.name ?? '', arguments: JSON.stringify(block.input ?? {}) });
  }
  return {
    id: json.id ?? `msg_${crypto.randomUUID()}`,
    model: json.model ?? fallbackModel,
    created: Math.floor(Date.now() / 1000),
    text,
    toolCalls,
    finishReason: decodeStopReason(json.stop_reason),
    usage: { inputTokens: promptTokens(json.usage ?? {}), outputTokens: json.usage?.output_tokens ?? 0 },
  };
}

export interface AnthropicStreamEvent {
  type: string;
  message?: AnthropicMessageJson;
  index?: number;
  content_block?: AnthropicBlock;
  delta?: { type?: string; text?: string; partial_json?: string; stop_reason?: string | null };
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
  private inputTokens = 0;
  private reason: FinishReason = 'stop';
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
        this.inputTokens = promptTokens(message.usage ?? {});
        return;
      }
      case 'content_block_start': {
        const block = event.content_block;
        if (block?.type === 'text' && block.text) this.push(out, { type: 'text', text: block.text });
        else if (block?.type === 'tool_use') {
          const index = this.tools.size;
          this.tools.set(event.index ?? 0, index);
          this.push(out, { type: 'tool_call_start', index, id: block.id ?? '', name: block.name ?? '' });
        }
        return;
      }
      case 'content_block_delta': {
        const delta = event.delta;
        if (delta?.type === 'text_delta' && delta.text) this.push(out, { type: 'text', text: delta.text });
        else if (delta?.type === 'input_json_delta' && delta.partial_json) {
          const index = this.tools.get(event.index ?? 0);
          if (index !== undefined) this.push(out, { type: 'tool_call_delta', index, arguments: delta.partial_json });
        }
        return;
      }
      case 'message_delta': {
        if (event.delta?.stop_reason) this.reason = decodeStopReason(event.delta.stop_reason);
        const usage = event.usage ?? {};
        // Newer API versions repeat the (cumulative) input counts here; older ones only send output_tokens.
        const inputTokens = usage.input_tokens == null ? this.inputTokens : promptTokens(usage);
        this.push(out, { type: 'usage', usage: { inputTokens, outputTokens: usage.output_tokens ?? 0 } });
        return;
      }
      case 'message_stop':
        this.done = true;
        this.push(out, { type: 'finish', reason: this.reason });
        return;
      default:
        // ping, thinking and signature deltas, and event types added later carry nothing canonical.
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
