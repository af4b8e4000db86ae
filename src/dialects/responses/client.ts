/**
 * The OpenAI Responses wire format, client side: what `client.responses.create` (the openai SDKs, Codex, the
 * Agents SDK) sends us, validated and decoded into the canonical model, and the Response object and event
 * stream it gets back, encoded from canonical answers. Written from OpenAI's published API reference.
 *
 * Items become canonical messages: consecutive model-side items (reasoning, an assistant message, function
 * calls) form one assistant message, so a provider that needs the thinking before its tool calls gets them so.
 * Custom (free-form) tools become function tools with one string argument, `input`, and their calls are
 * answered as custom tool calls again. Anthropic thinking signatures travel in a reasoning item's
 * `encrypted_content` under a prefix of ours, so a client that hands reasoning back gives Anthropic its own.
 */
import { z } from 'zod';
import type { CanonicalMessage, CanonicalRequest, CanonicalResponse, ContentPart, FinishReason, ReasoningBlock, ResponseFormat, StreamEvent, ToolCall, ToolChoice, ToolDefinition, Usage } from '../../core/canonical.ts';
import { EMPTY_USAGE } from '../../core/canonical.ts';
import { relayedEvents } from '../../core/lossless.ts';
import { validationError } from '../../core/errors.ts';
import { isEffort } from '../../core/reasoning.ts';
import { parseBody } from '../validate.ts';

// ---------------------------------------------------------------------------------------------------
// Requests

/** Every item type of the API reference; another is a 400 (a typo, or an API we do not know yet). */
const ITEM_TYPES = new Set([
  'message', 'function_call', 'function_call_output', 'reasoning', 'custom_tool_call', 'custom_tool_call_output', 'item_reference',
  'web_search_call', 'file_search_call', 'computer_call', 'computer_call_output', 'code_interpreter_call', 'image_generation_call',
  'local_shell_call', 'local_shell_call_output', 'shell_call', 'shell_call_output', 'apply_patch_call', 'apply_patch_call_output',
  'mcp_list_tools', 'mcp_approval_request', 'mcp_approval_response', 'mcp_call', 'compaction', 'tool_search_call', 'tool_search_output',
]);

const contentParts = z.array(z.looseObject({ type: z.string() }));
const messageItem = z.looseObject({
  type: z.literal('message').optional(),
  role: z.enum(['user', 'assistant', 'system', 'developer']),
  content: z.union([z.string(), contentParts]),
});
const functionCallItem = z.looseObject({ type: z.literal('function_call'), call_id: z.string().min(1), name: z.string().min(1), arguments: z.string() });
const callOutputItem = z.looseObject({ type: z.enum(['function_call_output', 'custom_tool_call_output']), call_id: z.string().min(1), output: z.union([z.string(), contentParts]) });
const reasoningItem = z.looseObject({
  type: z.literal('reasoning'),
  summary: z.array(z.looseObject({ type: z.string(), text: z.string() })).optional(),
  content: z.array(z.looseObject({ type: z.string(), text: z.string() })).nullish(),
  encrypted_content: z.string().nullish(),
});
const customCallItem = z.looseObject({ type: z.literal('custom_tool_call'), call_id: z.string().min(1), name: z.string().min(1), input: z.string() });

const item = z.looseObject({ type: z.string().optional(), role: z.string().optional() }).superRefine((value, ctx) => {
  if (value.type === undefined && value.role === undefined) ctx.addIssue({ code: 'custom', message: 'an input item needs a type (or a role for a message)' });
  else if (value.type !== undefined && !ITEM_TYPES.has(value.type)) ctx.addIssue({ code: 'custom', path: ['type'], message: `unknown item type "${value.type}"` });
});

const functionTool = z.looseObject({
  type: z.literal('function'),
  name: z.string().min(1),
  description: z.string().nullish(),
  parameters: z.record(z.string(), z.unknown()).nullish(),
  strict: z.boolean().nullish(),
});
const customTool = z.looseObject({ type: z.literal('custom'), name: z.string().min(1), description: z.string().nullish() });
/** Codex groups tools (MCP servers' among them) under a namespace; the model sees the tools inside it. */
const namespaceTool = z.looseObject({ type: z.literal('namespace'), name: z.string().optional(), tools: z.array(z.looseObject({ type: z.string() })) });

export const responsesRequestSchema = z.looseObject({
  model: z.string().optional(),
  input: z.union([z.string(), z.array(item)]).optional(),
  instructions: z.string().nullish(),
  stream: z.boolean().nullish(),
  max_output_tokens: z.number().int().positive().nullish(),
  temperature: z.number().min(0).max(2).nullish(),
  top_p: z.number().min(0).max(1).nullish(),
  // Built-in tools (web_search, file_search, ...) pass on the lossless lane; translated they are dropped, named.
  tools: z.array(z.looseObject({ type: z.string() })).optional(),
  tool_choice: z.union([z.enum(['auto', 'none', 'required']), z.looseObject({ type: z.string(), name: z.string().optional() })]).nullish(),
  parallel_tool_calls: z.boolean().nullish(),
  text: z
    .looseObject({
      format: z
        .looseObject({ type: z.string(), name: z.string().optional(), schema: z.record(z.string(), z.unknown()).optional(), strict: z.boolean().nullish() })
        .nullish(),
    })
    .nullish(),
  reasoning: z.looseObject({ effort: z.string().nullish(), summary: z.string().nullish() }).nullish(),
  metadata: z.record(z.string(), z.string()).nullish(),
  store: z.boolean().nullish(),
  previous_response_id: z.string().min(1).nullish(),
  prompt_cache_key: z.string().nullish(),
  include: z.array(z.string()).nullish(),
  user: z.string().nullish(),
  safety_identifier: z.string().nullish(),
});
export type ResponsesRequest = z.infer<typeof responsesRequestSchema>;

/** Top-level fields the gateway reads or answers itself; any other is reported as dropped when translated. */
const KNOWN_FIELDS = new Set([
  'model', 'input', 'instructions', 'stream', 'max_output_tokens', 'temperature', 'top_p', 'tools', 'tool_choice', 'parallel_tool_calls', 'text',
  'reasoning', 'metadata', 'store', 'previous_response_id', 'prompt_cache_key', 'include', 'user', 'safety_identifier',
  // Asking for `include` data, a service tier or truncation changes nothing a translated answer could carry.
  'service_tier', 'truncation',
]);

/** Validates a request body: a 400 in the client's dialect for anything the API would refuse. */
export function parseResponsesRequest(body: unknown): ResponsesRequest {
  return parseBody(responsesRequestSchema, body);
}

/** The request's input as items (a string is one user message). */
export function inputItems(request: ResponsesRequest): Record<string, unknown>[] {
  const input = request.input;
  if (input === undefined) return [];
  return typeof input === 'string' ? [{ type: 'message', role: 'user', content: input }] : (input as Record<string, unknown>[]);
}

/** Prefixes of the reasoning items' `encrypted_content` that carry another provider's reasoning payloads. */
const SIGNED = 'hapax.anthropic.signature:';
const REDACTED = 'hapax.anthropic.redacted:';

function decodeParts(content: string | z.infer<typeof contentParts>, at: string, unsupported: string[]): string | ContentPart[] {
  if (typeof content === 'string') return content;
  const parts: ContentPart[] = [];
  content.forEach((part, j) => {
    const p = part as Record<string, unknown>;
    switch (part.type) {
      case 'input_text':
      case 'output_text':
        if (typeof p.text === 'string') return void parts.push({ type: 'text', text: p.text });
        break;
      case 'refusal':
        if (typeof p.refusal === 'string') return void parts.push({ type: 'text', text: p.refusal });
        break;
      case 'input_image':
        if (typeof p.image_url === 'string') return void parts.push({ type: 'image', url: p.image_url });
        break;
      case 'input_file': {
        const url = typeof p.file_data === 'string' ? p.file_data : typeof p.file_url === 'string' ? p.file_url : undefined;
        const fileId = typeof p.file_id === 'string' ? p.file_id : undefined;
        if (url === undefined && fileId === undefined) break;
        return void parts.push({ type: 'document', ...(url ? { url } : {}), ...(fileId ? { fileId } : {}), ...(typeof p.filename === 'string' ? { filename: p.filename } : {}) });
      }
    }
    // An image by file id, audio, or a part type added later: only OpenAI can read it.
    unsupported.push(`${at}.content[${j}]`);
  });
  return parts;
}

function decodeReasoning(value: z.infer<typeof reasoningItem>, at: string, unsupported: string[]): ReasoningBlock {
  const raw = value.content?.map((c) => c.text).join('');
  const text = raw || (value.summary ?? []).map((s) => s.text).join('\n\n');
  const sealed = value.encrypted_content;
  if (sealed?.startsWith(SIGNED)) return { text, signature: sealed.slice(SIGNED.length), origin: 'anthropic' };
  if (sealed?.startsWith(REDACTED)) return { text: '', redacted: sealed.slice(REDACTED.length), origin: 'anthropic' };
  // OpenAI's own encrypted reasoning: only OpenAI reads it (the lossless lane passes it on).
  if (sealed) unsupported.push(`${at}.encrypted_content`);
  return { text };
}

function parse<S extends z.ZodType>(schema: S, value: unknown, at: string): z.infer<S> {
  const result = schema.safeParse(value);
  if (result.success) return result.data;
  const issue = result.error.issues[0];
  const field = [at, ...issue.path.map((p) => (typeof p === 'number' ? `[${p}]` : `.${String(p)}`))].join('');
  throw validationError(`${field}: ${issue.message.replace(/^Invalid (input|option): /, '')}`, field);
}

/** The items as canonical messages; `first` is the index of this request's own first item (earlier ones are history). */
function decodeItems(items: readonly Record<string, unknown>[], unsupported: string[], first: number): CanonicalMessage[] {
  const messages: CanonicalMessage[] = [];
  const calls = new Set<string>();
  let turn: CanonicalMessage | undefined;
  const assistant = (): CanonicalMessage => {
    if (!turn) messages.push((turn = { role: 'assistant', content: '' }));
    return turn;
  };
  items.forEach((raw, i) => {
    // History items are named by their place in the history; this request's by their place in `input`.
    const at = i >= first ? `input[${i - first}]` : `previous_response.input[${i}]`;
    const type = (raw.type as string | undefined) ?? 'message';
    switch (type) {
      case 'message': {
        const m = parse(messageItem, raw, at);
        const content = decodeParts(m.content, at, unsupported);
        if (m.role === 'assistant') {
          const into = assistant();
          into.content = typeof into.content === 'string' && into.content === '' ? content : [...asParts(into.content), ...asParts(content)];
          return;
        }
        turn = undefined;
        messages.push({ role: m.role === 'user' ? 'user' : 'system', content });
        return;
      }
      case 'reasoning':
        (assistant().reasoning ??= []).push(decodeReasoning(parse(reasoningItem, raw, at), at, unsupported));
        return;
      case 'function_call': {
        const c = parse(functionCallItem, raw, at);
        calls.add(c.call_id);
        (assistant().toolCalls ??= []).push({ id: c.call_id, name: c.name, arguments: c.arguments });
        return;
      }
      case 'custom_tool_call': {
        const c = parse(customCallItem, raw, at);
        calls.add(c.call_id);
        (assistant().toolCalls ??= []).push({ id: c.call_id, name: c.name, arguments: JSON.stringify({ input: c.input }) });
        return;
      }
      case 'function_call_output':
      case 'custom_tool_call_output': {
        const o = parse(callOutputItem, raw, at);
        if (!calls.has(o.call_id)) throw validationError(`${at}.call_id: no function call with call_id "${o.call_id}" comes before this output`, `${at}.call_id`);
        turn = undefined;
        messages.push({ role: 'tool', toolCallId: o.call_id, content: decodeParts(o.output, `${at}.output`, unsupported) });
        return;
      }
      default:
        // Built-in tools' calls and results, item references: only OpenAI runs or resolves them.
        unsupported.push(at);
    }
  });
  return messages;
}

const asParts = (content: string | ContentPart[]): ContentPart[] => (typeof content === 'string' ? (content ? [{ type: 'text', text: content }] : []) : content);

/** A custom tool as a function of one string: what every provider can call. */
const customAsFunction = (name: string, description?: string | null): ToolDefinition => ({
  name,
  ...(description ? { description } : {}),
  parameters: { type: 'object', properties: { input: { type: 'string', description: 'The raw input for the tool' } }, required: ['input'] },
});

function decodeTools(tools: ResponsesRequest['tools'], unsupported: string[], custom: Set<string>): ToolDefinition[] | undefined {
  if (!tools) return undefined;
  const out: ToolDefinition[] = [];
  const add = (tool: Record<string, unknown>, at: string) => {
    if (tool.type === 'function') {
      const f = parse(functionTool, tool, at);
      out.push({ name: f.name, ...(f.description ? { description: f.description } : {}), parameters: f.parameters ?? { type: 'object', properties: {} }, ...(f.strict != null ? { strict: f.strict } : {}) });
    } else if (tool.type === 'custom') {
      const c = parse(customTool, tool, at);
      custom.add(c.name);
      out.push(customAsFunction(c.name, c.description));
    } else if (tool.type === 'namespace') {
      parse(namespaceTool, tool, at).tools.forEach((inner, j) => add(inner, `${at}.tools[${j}]`));
    } else {
      // web_search, file_search, code_interpreter, computer use, hosted MCP, ...: OpenAI runs them, others cannot.
      unsupported.push(at);
    }
  };
  tools.forEach((tool, i) => add(tool, `tools[${i}]`));
  return out;
}

function decodeToolChoice(choice: ResponsesRequest['tool_choice'], unsupported: string[]): ToolChoice | undefined {
  if (choice == null) return undefined;
  if (typeof choice === 'string') return choice;
  if ((choice.type === 'function' || choice.type === 'custom') && choice.name) return { name: choice.name };
  unsupported.push('tool_choice');
  return undefined;
}

function decodeFormat(text: ResponsesRequest['text'], unsupported: string[]): ResponseFormat | undefined {
  const format = text?.format;
  if (!format) return undefined;
  if (format.type === 'text' || format.type === 'json_object') return { type: format.type };
  if (format.type === 'json_schema') {
    if (!format.schema) throw validationError('text.format.schema: required for json_schema', 'text.format.schema');
    return { type: 'json_schema', name: format.name ?? 'response', schema: format.schema, ...(format.strict != null ? { strict: format.strict } : {}) };
  }
  unsupported.push('text.format');
  return undefined;
}

/** What the encoders need from a decoded request: which tool names are custom (their calls are answered as such). */
export interface DecodedResponsesRequest extends CanonicalRequest {
  customTools: ReadonlySet<string>;
}

/**
 * The request with its history (`previous` items, from a stored response) as a canonical request. Throws a
 * 400 for items the API would refuse, among them an output whose call is nowhere before it.
 */
export function decodeResponsesRequest(request: ResponsesRequest, body: Record<string, unknown>, previous: readonly Record<string, unknown>[] = []): DecodedResponsesRequest {
  const unsupported = Object.keys(body).filter((key) => !KNOWN_FIELDS.has(key));
  const items = [...previous, ...inputItems(request)];
  const messages = decodeItems(items, unsupported, previous.length);
  if (request.instructions) messages.unshift({ role: 'system', content: request.instructions });
  if (!messages.some((m) => m.role !== 'system')) throw validationError('input: needs at least one item (or previous_response_id)', 'input');
  const customTools = new Set<string>();
  const effort = request.reasoning?.effort;
  if (effort != null && effort !== 'none' && !isEffort(effort)) unsupported.push('reasoning.effort');
  return {
    model: request.model || undefined,
    messages,
    stream: request.stream === true,
    maxTokens: request.max_output_tokens ?? undefined,
    temperature: request.temperature ?? undefined,
    topP: request.top_p ?? undefined,
    tools: decodeTools(request.tools, unsupported, customTools),
    toolChoice: decodeToolChoice(request.tool_choice, unsupported),
    parallelToolCalls: request.parallel_tool_calls ?? undefined,
    responseFormat: decodeFormat(request.text, unsupported),
    reasoning: effort === 'none' ? { off: true } : isEffort(effort) ? { effort } : undefined,
    promptCacheKey: request.prompt_cache_key ?? undefined,
    user: request.safety_identifier ?? request.user ?? undefined,
    unsupported: unsupported.length > 0 ? unsupported : undefined,
    customTools,
  };
}

// ---------------------------------------------------------------------------------------------------
// Answers

/** The request's fields a Response object echoes, and the ids of the answer. */
export interface ResponseContext {
  id: string;
  createdAt: number;
  request: ResponsesRequest;
  customTools: ReadonlySet<string>;
}

/** Usage as the Responses API reports it. */
export function encodeUsage(usage: Usage) {
  return {
    input_tokens: usage.inputTokens,
    input_tokens_details: { cached_tokens: usage.cacheReadTokens ?? 0 },
    output_tokens: usage.outputTokens,
    output_tokens_details: { reasoning_tokens: usage.reasoningTokens ?? 0 },
    total_tokens: usage.inputTokens + usage.outputTokens,
  };
}

type Status = 'in_progress' | 'completed' | 'incomplete' | 'failed';

/** The Response object around its output: what the request asked for, echoed as the API does. */
export function responseObject(ctx: ResponseContext, model: string, status: Status, output: unknown[], usage: Usage | null, extra: { finish?: FinishReason; error?: { code: string; message: string } } = {}) {
  const r = ctx.request;
  return {
    id: ctx.id,
    object: 'response',
    created_at: ctx.createdAt,
    status,
    background: false,
    error: extra.error ?? null,
    incomplete_details: status === 'incomplete' ? { reason: extra.finish === 'content_filter' ? 'content_filter' : 'max_output_tokens' } : null,
    instructions: r.instructions ?? null,
    max_output_tokens: r.max_output_tokens ?? null,
    metadata: r.metadata ?? {},
    model,
    output,
    parallel_tool_calls: r.parallel_tool_calls ?? true,
    previous_response_id: r.previous_response_id ?? null,
    prompt_cache_key: r.prompt_cache_key ?? null,
    reasoning: { effort: r.reasoning?.effort ?? null, summary: r.reasoning?.summary ?? null },
    store: r.store !== false,
    temperature: r.temperature ?? 1,
    text: { format: r.text?.format ?? { type: 'text' } },
    tool_choice: r.tool_choice ?? 'auto',
    tools: r.tools ?? [],
    top_p: r.top_p ?? 1,
    truncation: 'disabled',
    usage: usage && encodeUsage(usage),
    user: r.user ?? null,
  };
}
export type ResponseObject = ReturnType<typeof responseObject>;

const finalStatus = (reason: FinishReason): Status => (reason === 'length' || reason === 'content_filter' ? 'incomplete' : 'completed');

/** Output item ids, unique per response: the response id's random part (48 hex digits) and the item's place (4). */
const itemId = (prefix: string, ctx: ResponseContext, index: number) => `${prefix}_${ctx.id.slice(ctx.id.indexOf('_') + 1)}${index.toString(16).padStart(4, '0')}`;
const HAPAX_ITEM_ID = /^[a-z]+_[0-9a-f]{52}$/;

/**
 * History items as an OpenAI upstream may take them: items Hapax made on the translated lane lose their ids
 * (OpenAI would look for items it never made), and their reasoning items are left out (only the provider that
 * wrote them could read them). Items OpenAI made pass as they are.
 */
export function forOpenAI(items: readonly Record<string, unknown>[]): Record<string, unknown>[] {
  return items.flatMap((item) => {
    if (typeof item.id !== 'string' || !HAPAX_ITEM_ID.test(item.id)) return [item];
    if (item.type === 'reasoning') return [];
    const { id: _id, ...rest } = item;
    return [rest];
  });
}

function reasoningItemOf(block: ReasoningBlock, id: string) {
  const sealed = block.redacted !== undefined ? REDACTED + block.redacted : block.signature !== undefined && block.origin ? SIGNED + block.signature : undefined;
  return { id, type: 'reasoning', summary: block.text ? [{ type: 'summary_text', text: block.text }] : [], ...(sealed ? { encrypted_content: sealed } : {}) };
}

const messageItemOf = (text: string, id: string, status: Status = 'completed') => ({
  id,
  type: 'message',
  status,
  role: 'assistant',
  content: [{ type: 'output_text', text, annotations: [], logprobs: [] }],
});

function callItemOf(call: ToolCall, id: string, custom: ReadonlySet<string>, status: Status = 'completed') {
  if (custom.has(call.name)) {
    const input = call.arguments === '' ? {} : (JSON.parse(call.arguments) as { input?: unknown });
    return { id, type: 'custom_tool_call', status, call_id: call.id, name: call.name, input: typeof input.input === 'string' ? input.input : call.arguments };
  }
  return { id, type: 'function_call', status, call_id: call.id, name: call.name, arguments: call.arguments };
}

/** A whole answer as a Response object. */
export function encodeResponse(answer: CanonicalResponse, ctx: ResponseContext): ResponseObject {
  const output: unknown[] = [];
  for (const block of answer.reasoning ?? []) output.push(reasoningItemOf(block, itemId('rs', ctx, output.length)));
  if (answer.text) output.push(messageItemOf(answer.text, itemId('msg', ctx, output.length)));
  for (const call of answer.toolCalls) output.push(safeCallItem(call, itemId('fc', ctx, output.length), ctx.customTools));
  return responseObject(ctx, answer.model, finalStatus(answer.finishReason), output, answer.usage, { finish: answer.finishReason });
}

/** A custom tool's arguments that are not our `{input}` JSON are passed on as its input text. */
function safeCallItem(call: ToolCall, id: string, custom: ReadonlySet<string>) {
  try {
    return callItemOf(call, id, custom);
  } catch {
    return { id, type: 'custom_tool_call', status: 'completed', call_id: call.id, name: call.name, input: call.arguments };
  }
}

// ---------------------------------------------------------------------------------------------------
// Streams

type OpenItem =
  | { kind: 'reasoning'; index: number; id: string; text: string }
  | { kind: 'message'; index: number; id: string; text: string }
  | { kind: 'call'; index: number; id: string; call: ToolCall };

/**
 * Canonical stream events as the Responses API's SSE: response.created and .in_progress, then each output
 * item added, filled (text, reasoning summary, call arguments) and done, then response.completed (or
 * .incomplete) with usage; response.failed when the stream breaks. Every event carries its sequence_number.
 * One encoder per response.
 */
export class ResponseStreamEncoder {
  /** The response's id and creation time: a resumed lossless stream goes on under the provider's. */
  private ctx: ResponseContext;
  private model: string;
  /** A resumed lossless stream: the output items the provider had opened, whose ids and indices go on. */
  private adopted: Array<{ index: number; id: string; type: string }> = [];
  private sequence = 0;
  private usage: Usage = EMPTY_USAGE;
  private readonly output: unknown[] = [];
  private open: OpenItem | undefined;
  /** Tool calls by their canonical index: deltas may come to any call still open. */
  private readonly calls = new Map<number, Extract<OpenItem, { kind: 'call' }>>();
  private finished?: { frames: string; response: ResponseObject };

  constructor(ctx: ResponseContext, model: string) {
    this.ctx = ctx;
    this.model = model;
  }

  private event(type: string, fields: Record<string, unknown>): string {
    return `event: ${type}\ndata: ${JSON.stringify({ type, sequence_number: this.sequence++, ...fields })}\n\n`;
  }

  private snapshot(status: Status, usage: Usage | null, extra?: Parameters<typeof responseObject>[5]) {
    return responseObject(this.ctx, this.model, status, [...this.output.filter(Boolean)], usage, extra);
  }

  /** Closes the open text or reasoning item (calls stay open until the end: parallel calls interleave). */
  private closeOpen(): string {
    const item = this.open;
    if (!item) return '';
    this.open = undefined;
    if (item.kind === 'reasoning') return this.closeReasoning(item, {});
    if (item.kind === 'message') {
      const at = { item_id: item.id, output_index: item.index, content_index: 0 };
      const part = { type: 'output_text', text: item.text, annotations: [], logprobs: [] };
      const done = messageItemOf(item.text, item.id);
      this.output[item.index] = done;
      return (
        this.event('response.output_text.done', { ...at, text: item.text, logprobs: [] }) +
        this.event('response.content_part.done', { ...at, part }) +
        this.event('response.output_item.done', { output_index: item.index, item: done })
      );
    }
    return '';
  }

  private closeReasoning(item: Extract<OpenItem, { kind: 'reasoning' }>, sealed: Pick<ReasoningBlock, 'signature' | 'origin'>): string {
    const at = { item_id: item.id, output_index: item.index, summary_index: 0 };
    const done = reasoningItemOf({ text: item.text, ...sealed }, item.id);
    this.output[item.index] = done;
    let out = '';
    if (item.text) {
      out += this.event('response.reasoning_summary_text.done', { ...at, text: item.text });
      out += this.event('response.reasoning_summary_part.done', { ...at, part: { type: 'summary_text', text: item.text } });
    }
    return out + this.event('response.output_item.done', { output_index: item.index, item: done });
  }

  private openItem(kind: 'reasoning' | 'message', prefix: string): string {
    let out = this.closeOpen();
    const { index, id } = this.slot(kind, prefix);
    this.open = { kind, index, id, text: '' };
    if (kind === 'reasoning') {
      out += this.event('response.output_item.added', { output_index: index, item: { id, type: 'reasoning', summary: [] } });
      return out + this.event('response.reasoning_summary_part.added', { item_id: id, output_index: index, summary_index: 0, part: { type: 'summary_text', text: '' } });
    }
    out += this.event('response.output_item.added', { output_index: index, item: { id, type: 'message', status: 'in_progress', role: 'assistant', content: [] } });
    return out + this.event('response.content_part.added', { item_id: id, output_index: index, content_index: 0, part: { type: 'output_text', text: '', annotations: [], logprobs: [] } });
  }

  encode(event: StreamEvent): string {
    switch (event.type) {
      case 'start': {
        if (event.model) this.model = event.model;
        const response = this.snapshot('in_progress', null);
        return this.event('response.created', { response }) + this.event('response.in_progress', { response });
      }
      case 'reasoning': {
        const out = this.open?.kind === 'reasoning' ? '' : this.openItem('reasoning', 'rs');
        const item = this.open as Extract<OpenItem, { kind: 'reasoning' }>;
        item.text += event.text;
        return out + this.event('response.reasoning_summary_text.delta', { item_id: item.id, output_index: item.index, summary_index: 0, delta: event.text });
      }
      case 'reasoning_signature': {
        const out = this.open?.kind === 'reasoning' ? '' : this.openItem('reasoning', 'rs');
        const item = this.open as Extract<OpenItem, { kind: 'reasoning' }>;
        this.open = undefined;
        return out + this.closeReasoning(item, { signature: event.signature, origin: event.origin });
      }
      case 'reasoning_redacted': {
        const out = this.closeOpen();
        const { index, id } = this.slot('reasoning', 'rs');
        const item = reasoningItemOf({ text: '', redacted: event.data, origin: event.origin }, id);
        this.output[index] = item;
        return out + this.event('response.output_item.added', { output_index: index, item: { ...item, encrypted_content: undefined } }) + this.event('response.output_item.done', { output_index: index, item });
      }
      case 'text': {
        const out = this.open?.kind === 'message' ? '' : this.openItem('message', 'msg');
        const item = this.open as Extract<OpenItem, { kind: 'message' }>;
        item.text += event.text;
        return out + this.event('response.output_text.delta', { item_id: item.id, output_index: item.index, content_index: 0, delta: event.text, logprobs: [] });
      }
      case 'tool_call_start': {
        const out = this.closeOpen();
        const { index, id } = this.slot(this.ctx.customTools.has(event.name) ? 'custom_tool_call' : 'function_call', 'fc');
        const call = { id: event.id, name: event.name, arguments: '' };
        const item = { kind: 'call' as const, index, id, call };
        this.calls.set(event.index, item);
        const added = this.ctx.customTools.has(call.name)
          ? { id: item.id, type: 'custom_tool_call', status: 'in_progress', call_id: call.id, name: call.name, input: '' }
          : { id: item.id, type: 'function_call', status: 'in_progress', call_id: call.id, name: call.name, arguments: '' };
        return out + this.event('response.output_item.added', { output_index: index, item: added });
      }
      case 'tool_call_delta': {
        const item = this.calls.get(event.index);
        if (!item) return '';
        item.call.arguments += event.arguments;
        // A custom tool's input is known only whole (it is unwrapped from its JSON at the end).
        if (this.ctx.customTools.has(item.call.name)) return '';
        return this.event('response.function_call_arguments.delta', { item_id: item.id, output_index: item.index, delta: event.arguments });
      }
      case 'usage':
        this.usage = event.usage;
        return '';
      case 'finish':
        return this.finish(event.reason).frames;
    }
  }

  /** The place and id of a new output item: the provider's own for one it had opened (a resumed stream), else the next. */
  private slot(type: string, prefix: string): { index: number; id: string } {
    const at = this.adopted.findIndex((item) => item.type === type);
    const slot = at < 0 ? undefined : this.adopted.splice(at, 1)[0];
    const index = slot?.index ?? this.output.length;
    // A hole until the item is done (the snapshot skips it); the output array grows to cover it.
    if (index >= this.output.length) this.output.length = index + 1;
    return { index, id: slot?.id ?? itemId(prefix, this.ctx, index) };
  }

  /**
   * A lossless stream resumed (resume_streams): the client has the provider's frames, `prior` is what they
   * said. The encoder goes on as that stream: the provider's response id, its items' ids and output indices,
   * the items it had finished kept as it sent them (encrypted reasoning, built-in tool calls the canonical model
   * has no place for), the text so far, and its sequence numbers; nothing is written.
   */
  catchUp(frames: string, prior: readonly StreamEvent[]): void {
    const done = new Map<number, unknown>();
    for (const message of relayedEvents(frames)) {
      let event: { type?: string; output_index?: number; item?: { id?: string; type?: string }; response?: { id?: string; created_at?: number } };
      try {
        event = JSON.parse(message.data);
      } catch {
        continue;
      }
      if (event.type === 'response.created' && event.response?.id) {
        this.ctx = { ...this.ctx, id: event.response.id, createdAt: event.response.created_at ?? this.ctx.createdAt };
      } else if (event.type === 'response.output_item.added' && typeof event.output_index === 'number' && event.item?.id && event.item.type) {
        this.adopted.push({ index: event.output_index, id: event.item.id, type: event.item.type });
        if (event.output_index >= this.output.length) this.output.length = event.output_index + 1;
      } else if (event.type === 'response.output_item.done' && typeof event.output_index === 'number' && event.item) {
        done.set(event.output_index, event.item);
      }
    }
    for (const event of prior) this.encode(event);
    for (const [index, item] of done) this.output[index] = item;
    // The provider had closed the item its text was in: the continuation does not close it again.
    if (this.open && done.has(this.open.index)) this.open = undefined;
    this.sequence = 0;
    this.continueAfter(frames);
  }

  /** Relayed frames went out before (lossless lane): events written after them continue their numbering. */
  continueAfter(frames: string): void {
    const at = frames.lastIndexOf('"sequence_number":');
    if (at < 0) return;
    const number = Number.parseInt(frames.slice(at + '"sequence_number":'.length), 10);
    if (Number.isFinite(number) && number >= this.sequence) this.sequence = number + 1;
  }

  /** The closing events and the final Response object (computed once: the handler stores it before the events go out). */
  finish(reason: FinishReason): { frames: string; response: ResponseObject } {
    if (this.finished) return this.finished;
    let frames = this.closeOpen();
    for (const item of this.calls.values()) {
      const done = safeCallItem(item.call, item.id, this.ctx.customTools);
      this.output[item.index] = done;
      if (done.type === 'custom_tool_call') {
        frames += this.event('response.custom_tool_call_input.done', { item_id: item.id, output_index: item.index, input: (done as { input: string }).input });
      } else {
        frames += this.event('response.function_call_arguments.done', { item_id: item.id, output_index: item.index, name: item.call.name, arguments: item.call.arguments });
      }
      frames += this.event('response.output_item.done', { output_index: item.index, item: done });
    }
    this.calls.clear();
    const status = finalStatus(reason);
    const response = this.snapshot(status, this.usage, { finish: reason });
    frames += this.event(status === 'completed' ? 'response.completed' : 'response.incomplete', { response });
    this.finished = { frames, response };
    return this.finished;
  }

  /**
   * The stream broke: an `error` event (the openai SDKs raise it) and response.failed with what went wrong
   * (what Codex and other readers of the response's status look for).
   */
  failed(error: { type: string; message: string }): string {
    const code = error.type === 'RateLimitError' ? 'rate_limit_exceeded' : 'server_error';
    return (
      // `error` inside as well: the openai SDKs raise a data frame that carries one.
      this.event('error', { code, message: error.message, param: null, error: { type: code, code, message: error.message } }) +
      this.event('response.failed', { response: this.snapshot('failed', this.usage, { error: { code, message: error.message } }) })
    );
  }
}
