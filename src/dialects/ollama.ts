/**
 * Ollama's native API wire format (/api/chat, /api/embed, /api/tags), both directions:
 * client side (decode requests, encode responses and NDJSON lines) and upstream side (the reverse).
 *
 * Where Ollama differs from the canonical model: tool calls have no ids and carry their arguments as a
 * JSON object, images are bare base64 strings beside the text, sampling settings sit under `options`,
 * `format` is "json" or a JSON schema, and a chat streams NDJSON unless `stream` is false.
 */
import { z } from 'zod';
import type {
  CanonicalMessage,
  CanonicalRequest,
  CanonicalResponse,
  ContentPart,
  EmbeddingsRequest,
  EmbeddingsResponse,
  FinishReason,
  ReasoningRequest,
  ResponseFormat,
  StreamEvent,
  ToolCall,
  Usage,
} from '../providers/canonical.ts';
import { argumentsObject, contentText, systemText } from '../providers/canonical.ts';
import { validationError } from '../providers/errors.ts';
import { AnswerCollector } from '../providers/answer-stream.ts';
import { parseBody } from './validate.ts';

export const NDJSON_CONTENT_TYPE = 'application/x-ndjson';
/** The Ollama API level Hapax speaks; clients gate features (tools, structured outputs) on this. */
export const OLLAMA_API_VERSION = '0.9.0';

// ---------- shared by both directions ----------

/** Some clients send arguments already serialized; keep those as they are. */
const argumentsText = (args: unknown): string => (typeof args === 'string' ? args : JSON.stringify(args ?? {}));

/** Ollama has no tool-call ids: derive them from the call's position so the same conversation gets the same ids. */
const toolCallId = (n: number): string => `call_${n}`;

function encodeToolCalls(calls: Iterable<Pick<ToolCall, 'name' | 'arguments'>>) {
  return Array.from(calls, (c) => ({ function: { name: c.name, arguments: argumentsObject(c.arguments) } }));
}

/** Ollama says "stop" after tool calls too; the canonical reason says why the model stopped. */
function decodeDoneReason(reason: string | undefined, madeToolCalls: boolean): FinishReason {
  if (reason === 'length') return 'length';
  return madeToolCalls ? 'tool_calls' : 'stop';
}
const encodeDoneReason = (reason: FinishReason): string => (reason === 'length' ? 'length' : 'stop');

interface OllamaCounts {
  prompt_eval_count?: number;
  eval_count?: number;
}
const decodeUsage = (json: OllamaCounts): Usage => ({ inputTokens: json.prompt_eval_count ?? 0, outputTokens: json.eval_count ?? 0 });
const encodeCounts = (usage: Usage) => ({ prompt_eval_count: usage.inputTokens, eval_count: usage.outputTokens });

/** Canonical images are URLs; Ollama takes bare base64, so the media type is read back from the bytes. */
const IMAGE_SIGNATURES: ReadonlyArray<[prefix: string, mediaType: string]> = [
  ['iVBORw0KGgo', 'image/png'],
  ['/9j/', 'image/jpeg'],
  ['R0lGOD', 'image/gif'],
  ['UklGR', 'image/webp'],
];
function base64ToDataUrl(base64: string): string {
  const mediaType = IMAGE_SIGNATURES.find(([prefix]) => base64.startsWith(prefix))?.[1] ?? 'application/octet-stream';
  return `data:${mediaType};base64,${base64}`;
}
function dataUrlToBase64(url: string): string {
  const match = /^data:[^,;]*(?:;[^,;]*)*;base64,/i.exec(url);
  // Ollama cannot fetch URLs; downloading on its behalf would let clients make the gateway fetch anything.
  if (!match) throw validationError('Ollama accepts images only inline, as base64 data: URLs', 'messages');
  return url.slice(match[0].length);
}

// ---------- client side: what an Ollama client sends us ----------

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

// ---------- upstream side: what we send an Ollama server ----------

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
