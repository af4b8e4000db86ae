/**
 * The OpenAI Chat Completions wire format, both directions:
 * client side (decode requests, encode responses and chunks) and upstream side (the reverse).
 */
import { z } from 'zod';
import type {
  CanonicalMessage,
  CanonicalRequest,
  CanonicalResponse,
  ContentPart,
  DocumentPart,
  FinishReason,
  ReasoningBlock,
  ReasoningRequest,
  StreamEvent,
  ToolCall,
  ToolChoice,
  Usage,
} from '../providers/canonical.ts';
import { contentText, EMPTY_USAGE, systemText } from '../providers/canonical.ts';
import { isEffort, openaiEffort } from '../providers/reasoning.ts';
import { parseBody } from './validate.ts';

// ---------- client side: what an OpenAI SDK sends us ----------

const PART_TYPES = ['text', 'image_url', 'file'];
const textPart = z.looseObject({ type: z.literal('text'), text: z.string() });
const imagePart = z.looseObject({ type: z.literal('image_url'), image_url: z.looseObject({ url: z.string() }) });
const filePart = z.looseObject({
  type: z.literal('file'),
  file: z.looseObject({ file_data: z.string().optional(), file_id: z.string().optional(), filename: z.string().optional() }),
});
const textOrParts = z.union([
  z.string(),
  z.array(
    z.union([
      textPart,
      imagePart,
      filePart,
      // Part types beyond these (input_audio, ...): passed on by the lossless lane, reported dropped when translated.
      z.looseObject({ type: z.string().refine((t) => !PART_TYPES.includes(t)) }),
    ]),
  ),
]);
type KnownPart = z.infer<typeof textPart> | z.infer<typeof imagePart> | z.infer<typeof filePart>;

const toolCallSchema = z.looseObject({
  id: z.string(),
  type: z.literal('function').optional(),
  function: z.looseObject({ name: z.string(), arguments: z.string() }),
});

const messageSchema = z.discriminatedUnion('role', [
  z.looseObject({ role: z.enum(['system', 'developer']), content: textOrParts, name: z.string().optional() }),
  z.looseObject({ role: z.literal('user'), content: textOrParts, name: z.string().optional() }),
  z.looseObject({
    role: z.literal('assistant'),
    content: textOrParts.nullish(),
    // Calls of custom tools (`type: "custom"`) pass on the lossless lane; the canonical model carries function calls.
    tool_calls: z.array(z.union([toolCallSchema, z.looseObject({ type: z.string().refine((t) => t !== 'function') })])).optional(),
    name: z.string().optional(),
    // DeepSeek-style servers hand reasoning back in the history.
    reasoning_content: z.string().nullish(),
  }),
  z.looseObject({ role: z.literal('tool'), content: textOrParts, tool_call_id: z.string() }),
]);

export const chatRequestSchema = z.looseObject({
  model: z.string().optional(),
  messages: z.array(messageSchema).min(1, 'messages must contain at least one message'),
  stream: z.boolean().nullish(),
  stream_options: z.looseObject({ include_usage: z.boolean().optional() }).nullish(),
  max_tokens: z.number().int().positive().nullish(),
  max_completion_tokens: z.number().int().positive().nullish(),
  temperature: z.number().min(0).max(2).nullish(),
  top_p: z.number().min(0).max(1).nullish(),
  stop: z.union([z.string(), z.array(z.string()).max(4)]).nullish(),
  seed: z.number().int().nullish(),
  presence_penalty: z.number().min(-2).max(2).nullish(),
  frequency_penalty: z.number().min(-2).max(2).nullish(),
  // More than one choice passes on the lossless lane; translated, one is asked for and `n` is reported dropped.
  n: z.number().int().positive().nullish(),
  user: z.string().optional(),
  tools: z
    .array(
      z.union([
        z.looseObject({
          type: z.literal('function'),
          function: z.looseObject({
            name: z.string().min(1),
            description: z.string().optional(),
            parameters: z.record(z.string(), z.unknown()).optional(),
            strict: z.boolean().nullish(),
          }),
        }),
        // Custom (free-form) tools and types added later: passed on by the lossless lane, dropped when translated.
        z.looseObject({ type: z.string().refine((t) => t !== 'function') }),
      ]),
    )
    .optional(),
  tool_choice: z
    .union([
      z.enum(['auto', 'none', 'required']),
      z.looseObject({ type: z.literal('function'), function: z.looseObject({ name: z.string() }) }),
    ])
    .optional(),
  parallel_tool_calls: z.boolean().nullish(),
  // Any text: a level added after this was written must still reach an OpenAI provider on the lossless lane.
  reasoning_effort: z.string().nullish(),
  prompt_cache_key: z.string().nullish(),
  response_format: z
    .looseObject({
      type: z.enum(['text', 'json_object', 'json_schema']),
      json_schema: z
        .looseObject({ name: z.string(), schema: z.record(z.string(), z.unknown()).optional(), strict: z.boolean().nullish() })
        .optional(),
    })
    .optional(),
});
export type OpenAIChatRequest = z.infer<typeof chatRequestSchema>;
type FunctionTool = Extract<NonNullable<OpenAIChatRequest['tools']>[number], { function: unknown }>;

/** Top-level request fields the canonical model carries; any other is reported as dropped when translated. */
const KNOWN_FIELDS = new Set([
  'model', 'messages', 'stream', 'stream_options', 'max_tokens', 'max_completion_tokens', 'temperature', 'top_p', 'stop', 'seed', 'presence_penalty',
  'frequency_penalty', 'n', 'user', 'tools', 'tool_choice', 'parallel_tool_calls', 'reasoning_effort', 'prompt_cache_key', 'response_format',
]);

/** Message content; parts of a type the canonical model has no place for are left out and named in `unsupported`. */
function decodeContent(content: z.infer<typeof textOrParts> | null | undefined, at: string, unsupported: string[]): string | ContentPart[] {
  if (content == null) return '';
  if (typeof content === 'string') return content;
  const known: KnownPart[] = [];
  content.forEach((part, j) => (PART_TYPES.includes(part.type) ? known.push(part as KnownPart) : unsupported.push(`${at}.content[${j}]`)));
  return known.map((part): ContentPart => {
    if (part.type === 'text') return { type: 'text', text: part.text };
    if (part.type === 'image_url') return { type: 'image', url: part.image_url.url };
    const document: DocumentPart = { type: 'document' };
    if (part.file.file_data !== undefined) document.url = part.file.file_data;
    if (part.file.file_id !== undefined) document.fileId = part.file.file_id;
    if (part.file.filename !== undefined) document.filename = part.file.filename;
    return document;
  });
}

/** The reasoning setting; an effort level it does not know is left for `unsupported`. */
function decodeReasoningEffort(effort: OpenAIChatRequest['reasoning_effort']): ReasoningRequest | undefined {
  if (effort === 'none') return { off: true };
  return isEffort(effort) ? { effort } : undefined;
}

export function decodeChatRequest(body: unknown): CanonicalRequest & { includeUsage: boolean } {
  const req = parseBody(chatRequestSchema, body);
  const unsupported = Object.keys(body as object).filter((key) => !KNOWN_FIELDS.has(key));
  const messages: CanonicalMessage[] = req.messages.map((m, i): CanonicalMessage => {
    const at = `messages[${i}]`;
    switch (m.role) {
      case 'system':
      case 'developer':
        return { role: 'system', content: decodeContent(m.content, at, unsupported) };
      case 'user':
        return { role: 'user', content: decodeContent(m.content, at, unsupported), name: m.name };
      case 'assistant':
        return {
          role: 'assistant',
          content: decodeContent(m.content, at, unsupported),
          toolCalls: m.tool_calls?.flatMap((c, j) => {
            if (!('function' in c)) return (unsupported.push(`${at}.tool_calls[${j}]`), []);
            const call = c as z.infer<typeof toolCallSchema>;
            return [{ id: call.id, name: call.function.name, arguments: call.function.arguments }];
          }),
          ...(m.reasoning_content ? { reasoning: [{ text: m.reasoning_content }] } : {}),
        };
      case 'tool':
        return { role: 'tool', content: decodeContent(m.content, at, unsupported), toolCallId: m.tool_call_id };
    }
  });
  const choice = req.tool_choice;
  const format = req.response_format;
  if (req.n != null && req.n > 1) unsupported.push('n');
  const functions: FunctionTool[] = [];
  req.tools?.forEach((tool, i) => (tool.type === 'function' && 'function' in tool ? functions.push(tool as FunctionTool) : unsupported.push(`tools[${i}]`)));
  if (req.reasoning_effort != null && req.reasoning_effort !== 'none' && !isEffort(req.reasoning_effort)) unsupported.push('reasoning_effort');
  return {
    model: req.model || undefined,
    messages,
    stream: req.stream === true,
    includeUsage: req.stream_options?.include_usage === true,
    maxTokens: req.max_completion_tokens ?? req.max_tokens ?? undefined,
    temperature: req.temperature ?? undefined,
    topP: req.top_p ?? undefined,
    stop: req.stop == null ? undefined : typeof req.stop === 'string' ? [req.stop] : req.stop,
    seed: req.seed ?? undefined,
    presencePenalty: req.presence_penalty ?? undefined,
    frequencyPenalty: req.frequency_penalty ?? undefined,
    user: req.user,
    tools: req.tools && functions.map((t) => ({
      name: t.function.name,
      description: t.function.description,
      parameters: t.function.parameters ?? { type: 'object', properties: {} },
      ...(t.function.strict != null ? { strict: t.function.strict } : {}),
    })),
    toolChoice: choice === undefined ? undefined : typeof choice === 'string' ? choice : { name: choice.function.name },
    parallelToolCalls: req.parallel_tool_calls ?? undefined,
    reasoning: decodeReasoningEffort(req.reasoning_effort),
    promptCacheKey: req.prompt_cache_key ?? undefined,
    responseFormat: format && {
      type: format.type,
      name: format.json_schema?.name,
      schema: format.json_schema?.schema,
      strict: format.json_schema?.strict ?? undefined,
    },
    unsupported: unsupported.length > 0 ? unsupported : undefined,
  };
}

/** Usage as OpenAI reports it; the token details appear when the provider reported them. */
export function encodeUsage(usage: Usage) {
  return {
    prompt_tokens: usage.inputTokens,
    completion_tokens: usage.outputTokens,
    total_tokens: usage.inputTokens + usage.outputTokens,
    ...(usage.cacheReadTokens !== undefined || usage.cacheWriteTokens !== undefined ? { prompt_tokens_details: { cached_tokens: usage.cacheReadTokens ?? 0 } } : {}),
    ...(usage.reasoningTokens !== undefined ? { completion_tokens_details: { reasoning_tokens: usage.reasoningTokens } } : {}),
  };
}

function encodeToolCalls(calls: ToolCall[]) {
  return calls.map((c) => ({ id: c.id, type: 'function' as const, function: { name: c.name, arguments: c.arguments } }));
}

/** Reasoning text as the one string `reasoning_content` carries (signatures have no place in this dialect). */
const reasoningText = (reasoning: readonly ReasoningBlock[] | undefined): string => (reasoning ?? []).map((b) => b.text).join('');

export function encodeChatResponse(res: CanonicalResponse) {
  const reasoning = reasoningText(res.reasoning);
  return {
    id: res.id,
    object: 'chat.completion',
    created: res.created,
    model: res.model,
    choices: [
      {
        index: 0,
        message: {
          role: 'assistant',
          content: res.toolCalls.length > 0 && res.text === '' ? null : res.text,
          ...(reasoning ? { reasoning_content: reasoning } : {}),
          ...(res.toolCalls.length > 0 ? { tool_calls: encodeToolCalls(res.toolCalls) } : {}),
          refusal: null,
        },
        logprobs: null,
        finish_reason: res.finishReason,
      },
    ],
    usage: encodeUsage(res.usage),
  };
}

/** Encodes canonical stream events as OpenAI chat.completion.chunk SSE frames. One encoder per response. */
export class ChunkEncoder {
  private readonly head: string;
  private readonly includeUsage: boolean;
  private usage: Usage | undefined;

  constructor(id: string, model: string, created: number, includeUsage: boolean) {
    this.head = `{"id":${JSON.stringify(id)},"object":"chat.completion.chunk","created":${created},"model":${JSON.stringify(model)},"system_fingerprint":null,`;
    this.includeUsage = includeUsage;
  }

  private frame(delta: unknown, finish: FinishReason | null): string {
    const usage = this.includeUsage ? ',"usage":null' : '';
    return `data: ${this.head}"choices":[{"index":0,"delta":${JSON.stringify(delta)},"logprobs":null,"finish_reason":${finish === null ? 'null' : `"${finish}"`}}]${usage}}\n\n`;
  }

  /** The SSE text for one event, or '' when the event has no frame of its own. */
  encode(event: StreamEvent): string {
    switch (event.type) {
      case 'start':
        return this.frame({ role: 'assistant', content: '', refusal: null }, null);
      case 'text':
        return this.frame({ content: event.text }, null);
      case 'reasoning':
        return this.frame({ reasoning_content: event.text }, null);
      case 'reasoning_signature':
      case 'reasoning_redacted':
        return '';
      case 'tool_call_start':
        return this.frame({ tool_calls: [{ index: event.index, id: event.id, type: 'function', function: { name: event.name, arguments: '' } }] }, null);
      case 'tool_call_delta':
        return this.frame({ tool_calls: [{ index: event.index, function: { arguments: event.arguments } }] }, null);
      case 'usage':
        this.usage = event.usage;
        return '';
      case 'finish': {
        let out = this.frame({}, event.reason);
        if (this.includeUsage) {
          out += `data: ${this.head}"choices":[],"usage":${JSON.stringify(encodeUsage(this.usage ?? EMPTY_USAGE))}}\n\n`;
        }
        return out + 'data: [DONE]\n\n';
      }
    }
  }
}

// ---------- upstream side: what we send an OpenAI-compatible provider ----------

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
