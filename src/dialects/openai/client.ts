/**
 * The OpenAI Chat Completions wire format, client side: what an OpenAI SDK sends us (validated and decoded into
 * the canonical model) and what it gets back (completions and chunks encoded from canonical answers).
 */
import { z } from 'zod';
import type { CanonicalMessage, CanonicalRequest, CanonicalResponse, ContentPart, DocumentPart, FinishReason, ReasoningBlock, ReasoningRequest, StreamEvent, Usage } from '../../core/canonical.ts';
import { EMPTY_USAGE } from '../../core/canonical.ts';
import { isEffort } from '../../core/reasoning.ts';
import { parseBody } from '../validate.ts';
import { encodeToolCalls } from './shared.ts';

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
