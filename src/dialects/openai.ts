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
  FinishReason,
  StreamEvent,
  ToolCall,
  ToolChoice,
  Usage,
} from '../providers/canonical.ts';
import { contentText, EMPTY_USAGE } from '../providers/canonical.ts';
import { parseBody } from './validate.ts';

// ---------- client side: what an OpenAI SDK sends us ----------

const textOrParts = z.union([
  z.string(),
  z.array(
    z.union([
      z.looseObject({ type: z.literal('text'), text: z.string() }),
      z.looseObject({ type: z.literal('image_url'), image_url: z.looseObject({ url: z.string() }) }),
    ]),
  ),
]);

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
    tool_calls: z.array(toolCallSchema).optional(),
    name: z.string().optional(),
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
  n: z.literal(1, 'only n=1 is supported').nullish(),
  user: z.string().optional(),
  tools: z
    .array(
      z.looseObject({
        type: z.literal('function'),
        function: z.looseObject({
          name: z.string().min(1),
          description: z.string().optional(),
          parameters: z.record(z.string(), z.unknown()).optional(),
        }),
      }),
    )
    .optional(),
  tool_choice: z
    .union([
      z.enum(['auto', 'none', 'required']),
      z.looseObject({ type: z.literal('function'), function: z.looseObject({ name: z.string() }) }),
    ])
    .optional(),
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

function decodeContent(content: z.infer<typeof textOrParts> | null | undefined): string | ContentPart[] {
  if (content == null) return '';
  if (typeof content === 'string') return content;
  return content.map((part) => (part.type === 'text' ? { type: 'text', text: part.text } : { type: 'image', url: part.image_url.url }));
}

export function decodeChatRequest(body: unknown): CanonicalRequest & { includeUsage: boolean } {
  const req = parseBody(chatRequestSchema, body);
  const messages: CanonicalMessage[] = req.messages.map((m) => {
    switch (m.role) {
      case 'system':
      case 'developer':
        return { role: 'system', content: decodeContent(m.content) };
      case 'user':
        return { role: 'user', content: decodeContent(m.content), name: m.name };
      case 'assistant':
        return {
          role: 'assistant',
          content: decodeContent(m.content),
          toolCalls: m.tool_calls?.map((c) => ({ id: c.id, name: c.function.name, arguments: c.function.arguments })),
        };
      case 'tool':
        return { role: 'tool', content: decodeContent(m.content), toolCallId: m.tool_call_id };
    }
  });
  const choice = req.tool_choice;
  const format = req.response_format;
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
    tools: req.tools?.map((t) => ({
      name: t.function.name,
      description: t.function.description,
      parameters: t.function.parameters ?? { type: 'object', properties: {} },
    })),
    toolChoice: choice === undefined ? undefined : typeof choice === 'string' ? choice : { name: choice.function.name },
    responseFormat: format && {
      type: format.type,
      name: format.json_schema?.name,
      schema: format.json_schema?.schema,
      strict: format.json_schema?.strict ?? undefined,
    },
  };
}

export function encodeUsage(usage: Usage) {
  return {
    prompt_tokens: usage.inputTokens,
    completion_tokens: usage.outputTokens,
    total_tokens: usage.inputTokens + usage.outputTokens,
  };
}

function encodeToolCalls(calls: ToolCall[]) {
  return calls.map((c) => ({ id: c.id, type: 'function' as const, function: { name: c.name, arguments: c.arguments } }));
}

export function encodeChatResponse(res: CanonicalResponse) {
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

function encodeContent(content: string | ContentPart[]) {
  if (typeof content === 'string') return content;
  return content.map((p) => (p.type === 'text' ? { type: 'text', text: p.text } : { type: 'image_url', image_url: { url: p.url } }));
}

function encodeToolChoice(choice: ToolChoice) {
  return typeof choice === 'string' ? choice : { type: 'function', function: { name: choice.name } };
}

export function encodeChatRequest(req: CanonicalRequest, model: string): Record<string, unknown> {
  const body: Record<string, unknown> = {
    model,
    messages: req.messages.map((m) => {
      if (m.role === 'tool') return { role: 'tool', content: contentText(m.content), tool_call_id: m.toolCallId };
      if (m.role === 'assistant' && m.toolCalls?.length) {
        return { role: 'assistant', content: contentText(m.content) || null, tool_calls: encodeToolCalls(m.toolCalls) };
      }
      return m.name ? { role: m.role, content: encodeContent(m.content), name: m.name } : { role: m.role, content: encodeContent(m.content) };
    }),
  };
  if (req.stream) {
    body.stream = true;
    body.stream_options = { include_usage: true };
  }
  if (req.maxTokens !== undefined) body.max_tokens = req.maxTokens;
  if (req.temperature !== undefined) body.temperature = req.temperature;
  if (req.topP !== undefined) body.top_p = req.topP;
  if (req.stop !== undefined) body.stop = req.stop;
  if (req.seed !== undefined) body.seed = req.seed;
  if (req.presencePenalty !== undefined) body.presence_penalty = req.presencePenalty;
  if (req.frequencyPenalty !== undefined) body.frequency_penalty = req.frequencyPenalty;
  if (req.user !== undefined) body.user = req.user;
  if (req.tools?.length) {
    body.tools = req.tools.map((t) => ({ type: 'function', function: { name: t.name, description: t.description, parameters: t.parameters } }));
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

export function decodeUsage(usage: { prompt_tokens?: number; completion_tokens?: number } | null | undefined): Usage {
  return { inputTokens: usage?.prompt_tokens ?? 0, outputTokens: usage?.completion_tokens ?? 0 };
}

interface UpstreamChoice {
  message?: { content?: string | null; tool_calls?: { id: string; function: { name: string; arguments: string } }[] };
  delta?: { content?: string | null; tool_calls?: { index: number; id?: string; function?: { name?: string; arguments?: string } }[] };
  finish_reason?: string | null;
}
interface UpstreamCompletion {
  id?: string;
  model?: string;
  created?: number;
  choices?: UpstreamChoice[];
  usage?: { prompt_tokens?: number; completion_tokens?: number } | null;
}

export function decodeChatResponse(json: UpstreamCompletion, fallbackModel: string): CanonicalResponse {
  const choice = json.choices?.[0];
  return {
    id: json.id ?? `chatcmpl-${crypto.randomUUID()}`,
    model: json.model ?? fallbackModel,
    created: json.created ?? Math.floor(Date.now() / 1000),
    text: choice?.message?.content ?? '',
    toolCalls: (choice?.message?.tool_calls ?? []).map((c) => ({ id: c.id, name: c.function.name, arguments: c.function.arguments })),
    finishReason: decodeFinishReason(choice?.finish_reason),
    usage: decodeUsage(json.usage),
  };
}

/** Decodes one upstream chunk into canonical events (pushes into `out` to avoid an array per chunk). */
export function decodeChunk(json: UpstreamCompletion, out: StreamEvent[]): FinishReason | undefined {
  const choice = json.choices?.[0];
  const delta = choice?.delta;
  if (delta?.content) out.push({ type: 'text', text: delta.content });
  if (delta?.tool_calls) {
    for (const call of delta.tool_calls) {
      if (call.id) out.push({ type: 'tool_call_start', index: call.index, id: call.id, name: call.function?.name ?? '' });
      if (call.function?.arguments) out.push({ type: 'tool_call_delta', index: call.index, arguments: call.function.arguments });
    }
  }
  if (json.usage) out.push({ type: 'usage', usage: decodeUsage(json.usage) });
  return choice?.finish_reason ? decodeFinishReason(choice.finish_reason) : undefined;
}
