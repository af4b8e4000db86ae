/**
 * Ollama's native API (/api/chat, /api/embed, /api/tags), client side: what an Ollama client sends us and what
 * it gets back (JSON and NDJSON lines).
 */
import { z } from 'zod';
import type { CanonicalMessage, CanonicalRequest, CanonicalResponse, ContentPart, EmbeddingsRequest, EmbeddingsResponse, ReasoningRequest, ResponseFormat, StreamEvent, ToolCall } from '../../core/canonical.ts';
import { AnswerCollector } from '../../core/answer.ts';
import { parseBody } from '../validate.ts';
import { argumentsText, base64ToDataUrl, encodeCounts, encodeDoneReason, encodeToolCalls, toolCallId } from './shared.ts';

export const NDJSON_CONTENT_TYPE = 'application/x-ndjson';
/** The Ollama API level Hapax speaks; clients gate features (tools, structured outputs) on this. */
export const OLLAMA_API_VERSION = '0.9.0';

const toolCallSchema = z.looseObject({
  function: z.looseObject({ name: z.string(), arguments: z.union([z.record(z.string(), z.unknown()), z.string()]).nullish() }),
});

const messageSchema = z.looseObject({
  role: z.enum(['system', 'user', 'assistant', 'tool']),
  content: z.string().nullish(),
  images: z.array(z.string()).nullish(),
  tool_calls: z.array(toolCallSchema).nullish(),
  tool_name: z.string().nullish(),
  thinking: z.string().nullish(),
});

export const chatRequestSchema = z.looseObject({
  model: z.string().optional(),
  messages: z.array(messageSchema).nullish(),
  tools: z
    .array(
      z.looseObject({
        type: z.literal('function').optional(),
        function: z.looseObject({
          name: z.string().min(1),
          description: z.string().optional(),
          parameters: z.record(z.string(), z.unknown()).optional(),
        }),
      }),
    )
    .nullish(),
  format: z.union([z.literal('json'), z.literal(''), z.record(z.string(), z.unknown())]).nullish(),
  options: z
    .looseObject({
      temperature: z.number().nullish(),
      top_p: z.number().nullish(),
      top_k: z.number().int().nullish(),
      num_predict: z.number().int().nullish(),
      stop: z.union([z.string(), z.array(z.string())]).nullish(),
      seed: z.number().int().nullish(),
      presence_penalty: z.number().nullish(),
      frequency_penalty: z.number().nullish(),
    })
    .nullish(),
  stream: z.boolean().nullish(),
  think: z.union([z.boolean(), z.enum(['low', 'medium', 'high'])]).nullish(),
  // Accepted for compatibility: models behind Hapax are not loaded or unloaded on a client's word.
  keep_alive: z.union([z.string(), z.number()]).nullish(),
});

/** Top-level request fields the canonical model carries; any other is reported as dropped when translated. */
const KNOWN_FIELDS = new Set(['model', 'messages', 'tools', 'format', 'options', 'stream', 'think', 'keep_alive']);
const KNOWN_OPTIONS = new Set(['temperature', 'top_p', 'top_k', 'num_predict', 'stop', 'seed', 'presence_penalty', 'frequency_penalty']);

/** `think: true` leaves the depth to the model; a level is an effort. */
function decodeThink(think: boolean | 'low' | 'medium' | 'high' | null | undefined): ReasoningRequest | undefined {
  if (think == null) return undefined;
  if (think === false) return { off: true };
  return think === true ? { effort: 'medium' } : { effort: think };
}

function decodeContent(text: string, images: string[] | null | undefined): string | ContentPart[] {
  if (!images?.length) return text;
  const parts: ContentPart[] = text ? [{ type: 'text', text }] : [];
  for (const image of images) parts.push({ type: 'image', url: base64ToDataUrl(image) });
  return parts;
}

function decodeFormat(format: z.infer<typeof chatRequestSchema>['format']): ResponseFormat | undefined {
  if (format === 'json') return { type: 'json_object' };
  if (format && typeof format === 'object') return { type: 'json_schema', name: 'response', schema: format };
  return undefined;
}

export function decodeChatRequest(body: unknown): CanonicalRequest {
  const req = parseBody(chatRequestSchema, body);
  let nextCall = 0;
  // Calls not answered yet, oldest first: a tool message answers the oldest one with its tool_name
  // (or simply the oldest one, when it names none or no pending call matches).
  const pending: ToolCall[] = [];
  const messages: CanonicalMessage[] = (req.messages ?? []).map((m) => {
    const content = decodeContent(m.content ?? '', m.images);
    if (m.role === 'assistant' && m.tool_calls?.length) {
      const toolCalls = m.tool_calls.map((c) => ({ id: toolCallId(nextCall++), name: c.function.name, arguments: argumentsText(c.function.arguments) }));
      pending.push(...toolCalls);
      return { role: 'assistant', content, toolCalls, ...(m.thinking ? { reasoning: [{ text: m.thinking }] } : {}) };
    }
    if (m.role === 'tool') {
      const toolName = m.tool_name ?? undefined;
      const at = toolName === undefined ? 0 : pending.findIndex((c) => c.name === toolName);
      const answered = pending.splice(Math.max(at, 0), 1)[0];
      return { role: 'tool', content, toolCallId: answered?.id ?? toolCallId(nextCall++), name: toolName ?? answered?.name };
    }
    if (m.role === 'assistant' && m.thinking) return { role: 'assistant', content, reasoning: [{ text: m.thinking }] };
    return { role: m.role, content };
  });
  const unsupported = Object.keys(body as object).filter((key) => !KNOWN_FIELDS.has(key));
  for (const key of Object.keys(req.options ?? {})) if (!KNOWN_OPTIONS.has(key)) unsupported.push(`options.${key}`);
  const options = req.options ?? {};
  const maxTokens = options.num_predict ?? undefined;
  return {
    model: req.model || undefined,
    messages,
    // Ollama streams unless told not to.
    stream: req.stream !== false,
    // num_predict -1 (no limit) and -2 (fill the context) both mean: no cap of ours.
    maxTokens: maxTokens !== undefined && maxTokens > 0 ? maxTokens : undefined,
    temperature: options.temperature ?? undefined,
    topP: options.top_p ?? undefined,
    topK: options.top_k ?? undefined,
    stop: options.stop == null ? undefined : typeof options.stop === 'string' ? [options.stop] : options.stop,
    seed: options.seed ?? undefined,
    presencePenalty: options.presence_penalty ?? undefined,
    frequencyPenalty: options.frequency_penalty ?? undefined,
    tools: req.tools?.map((t) => ({
      name: t.function.name,
      description: t.function.description,
      parameters: t.function.parameters ?? { type: 'object', properties: {} },
    })),
    responseFormat: decodeFormat(req.format),
    reasoning: decodeThink(req.think),
    unsupported: unsupported.length > 0 ? unsupported : undefined,
  };
}

const reasoningText = (reasoning: CanonicalResponse['reasoning']): string => (reasoning ?? []).map((b) => b.text).join('');

const isoNow = () => new Date().toISOString();

export function encodeChatResponse(res: CanonicalResponse) {
  return {
    model: res.model,
    created_at: new Date(res.created * 1000).toISOString(),
    message: {
      role: 'assistant',
      content: res.text,
      ...(reasoningText(res.reasoning) ? { thinking: reasoningText(res.reasoning) } : {}),
      ...(res.toolCalls.length > 0 ? { tool_calls: encodeToolCalls(res.toolCalls) } : {}),
    },
    done_reason: encodeDoneReason(res.finishReason),
    done: true,
    ...encodeCounts(res.usage),
  };
}

/** Ollama's answer to a chat without messages: the model is loaded and ready. */
export function encodeLoadResponse(model: string) {
  return { model, created_at: isoNow(), message: { role: 'assistant', content: '' }, done_reason: 'load', done: true };
}

/**
 * Encodes canonical stream events as Ollama NDJSON lines. Text goes out as it comes; tool calls are
 * collected, because Ollama sends each call whole, then go out in one line before the final `done` line.
 */
export class NdjsonEncoder {
  private readonly model: string;
  private readonly answer: AnswerCollector;

  constructor(model: string) {
    this.model = model;
    this.answer = new AnswerCollector(model);
  }

  private line(message: Record<string, unknown>, tail: Record<string, unknown> | undefined): string {
    return `${JSON.stringify({ model: this.model, created_at: isoNow(), message: { role: 'assistant', ...message }, ...(tail ?? { done: false }) })}\n`;
  }

  /** The NDJSON text for one event, or '' when the event has no line of its own. */
  encode(event: StreamEvent): string {
    this.answer.add(event);
    if (event.type === 'text') return this.line({ content: event.text }, undefined);
    if (event.type === 'reasoning') return this.line({ content: '', thinking: event.text }, undefined);
    if (event.type !== 'finish') return '';
    const whole = this.answer.answer() as CanonicalResponse;
    const calls = whole.toolCalls.length > 0 ? this.line({ content: '', tool_calls: encodeToolCalls(whole.toolCalls) }, undefined) : '';
    return calls + this.line({ content: '' }, { done_reason: encodeDoneReason(event.reason), done: true, ...encodeCounts(whole.usage) });
  }
}

export const embedRequestSchema = z.looseObject({
  model: z.string().optional(),
  input: z.union([z.string(), z.array(z.string()).min(1, 'input must not be empty')]),
  truncate: z.boolean().optional(),
  dimensions: z.number().int().positive().optional(),
  keep_alive: z.union([z.string(), z.number()]).nullish(),
});

export function decodeEmbedRequest(body: unknown): EmbeddingsRequest {
  const req = parseBody(embedRequestSchema, body);
  return { model: req.model || undefined, input: typeof req.input === 'string' ? [req.input] : req.input, dimensions: req.dimensions };
}

export function encodeEmbedResponse(res: EmbeddingsResponse) {
  return { model: res.model, embeddings: res.vectors, prompt_eval_count: res.usage.inputTokens };
}

/** /api/tags: the catalog's model ids (provider/model), so a client can pick any of them. */
export function encodeTags(ids: readonly string[], modifiedAt: Date) {
  return {
    models: ids.map((id) => ({
      name: id,
      model: id,
      modified_at: modifiedAt.toISOString(),
      size: 0,
      digest: '',
      details: { parent_model: '', format: '', family: '', families: null, parameter_size: '', quantization_level: '' },
    })),
  };
}
