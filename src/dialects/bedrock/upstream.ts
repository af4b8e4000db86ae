/**
 * Amazon Bedrock's Converse API, upstream side: canonical requests encoded as a Converse body, Converse answers
 * and ConverseStream events decoded back. One format for every model family on Bedrock; what only some
 * families take (top_k, Anthropic's thinking) goes in `additionalModelRequestFields`.
 */
import type { CacheMarker, CanonicalMessage, CanonicalRequest, CanonicalResponse, ContentPart, FinishReason, ReasoningBlock, StreamEvent, ToolCall, Usage } from '../../core/canonical.ts';
import { argumentsObject } from '../../core/canonical.ts';
import { MIN_THINKING_BUDGET, thinkingBudget, withoutSamplingWhileThinking } from '../../core/reasoning.ts';

type Block = Record<string, unknown>;

/** Model ids of Anthropic's models (foundation ids, cross-region profiles such as `us.anthropic.…`, ARNs that name them). */
export const isAnthropicModel = (model: string): boolean => /(^|[.:/])anthropic\./.test(model);

/** Converse's image formats, by media type. */
const IMAGE_FORMATS: Record<string, string> = { 'image/png': 'png', 'image/jpeg': 'jpeg', 'image/jpg': 'jpeg', 'image/gif': 'gif', 'image/webp': 'webp' };
/** Converse's document formats, by media type. */
const DOCUMENT_FORMATS: Record<string, string> = {
  'application/pdf': 'pdf',
  'text/csv': 'csv',
  'text/html': 'html',
  'text/plain': 'txt',
  'text/markdown': 'md',
  'application/msword': 'doc',
  'application/vnd.openxmlformats-officedocument.wordprocessingml.document': 'docx',
  'application/vnd.ms-excel': 'xls',
  'application/vnd.openxmlformats-officedocument.spreadsheetml.sheet': 'xlsx',
};

/** A cache marker becomes a cachePoint block right after what it marks. */
const cachePoint = (cache: CacheMarker | undefined): Block[] => (cache ? [{ cachePoint: { type: 'default' } }] : []);

function dataUrl(url: string): { mediaType: string; base64: string } | undefined {
  const match = /^data:([^;,]+);base64,/.exec(url);
  return match ? { mediaType: match[1].toLowerCase(), base64: url.slice(match[0].length) } : undefined;
}

/** Converse takes images and documents as bytes only (or S3 locations): a web URL cannot be sent. */
function encodePart(part: ContentPart, documents: { count: number }, dropped: Set<string>): Block[] {
  if (part.type === 'text') return part.text === '' ? [] : [{ text: part.text }, ...cachePoint(part.cache)];
  const data = part.url === undefined ? undefined : dataUrl(part.url);
  if (part.type === 'image') {
    const format = data && IMAGE_FORMATS[data.mediaType];
    if (!data || !format) {
      dropped.add(data ? 'messages.content.image.format' : 'messages.content.image_url');
      return [];
    }
    return [{ image: { format, source: { bytes: data.base64 } } }, ...cachePoint(part.cache)];
  }
  const format = data && DOCUMENT_FORMATS[data.mediaType];
  if (!data || !format) {
    dropped.add(part.fileId !== undefined ? 'messages.content.document.file_id' : 'messages.content.document');
    return [];
  }
  // Bedrock requires a name, unique in the request, of letters, digits, spaces and a few marks.
  documents.count++;
  const name = (part.title ?? part.filename ?? `document ${documents.count}`).replace(/[^A-Za-z0-9 ()[\]-]/g, ' ').trim() || `document ${documents.count}`;
  return [{ document: { format, name, source: { bytes: data.base64 } } }, ...cachePoint(part.cache)];
}

function encodeContent(content: string | ContentPart[], documents: { count: number }, dropped: Set<string>): Block[] {
  if (typeof content === 'string') return content === '' ? [] : [{ text: content }];
  return content.flatMap((part) => encodePart(part, documents, dropped));
}

/** Reasoning goes back only where the model family that made it can check it (Anthropic's signed thinking). */
function encodeReasoning(reasoning: readonly ReasoningBlock[] | undefined, anthropic: boolean, dropped: Set<string>): Block[] {
  const blocks: Block[] = [];
  for (const block of reasoning ?? []) {
    if (!anthropic || block.origin !== 'anthropic') dropped.add('messages.reasoning');
    else if (block.redacted !== undefined) blocks.push({ reasoningContent: { redactedContent: block.redacted } });
    else if (block.signature) blocks.push({ reasoningContent: { reasoningText: { text: block.text, signature: block.signature } } });
    else dropped.add('messages.reasoning');
  }
  return blocks;
}

function encodeTurn(m: CanonicalMessage, anthropic: boolean, documents: { count: number }, dropped: Set<string>): Block[] {
  if (m.name !== undefined && m.role !== 'tool') dropped.add('messages.name');
  if (m.role === 'tool') {
    const content = typeof m.content === 'string' ? [{ text: m.content }] : encodeContent(m.content, documents, dropped).filter((b) => !('cachePoint' in b));
    return [{ toolResult: { toolUseId: m.toolCallId ?? '', content: content.length > 0 ? content : [{ text: '' }], ...(m.isError ? { status: 'error' } : {}) } }, ...cachePoint(m.cache)];
  }
  const blocks: Block[] = m.role === 'assistant' ? encodeReasoning(m.reasoning, anthropic, dropped) : [];
  blocks.push(...encodeContent(m.content, documents, dropped));
  for (const call of m.toolCalls ?? []) blocks.push({ toolUse: { toolUseId: call.id, name: call.name, input: argumentsObject(call.arguments) } }, ...cachePoint(call.cache));
  return blocks;
}

function encodeToolChoice(req: CanonicalRequest, dropped: Set<string>): Block | undefined {
  const choice = req.toolChoice;
  if (req.parallelToolCalls === false) dropped.add('parallel_tool_calls');
  if (choice === undefined || choice === 'auto') return undefined;
  if (choice === 'none') {
    // Converse has no "none"; the tools stay (a history with tool calls needs them), the choice is dropped.
    dropped.add('tool_choice');
    return undefined;
  }
  if (choice === 'required') return { any: {} };
  return { tool: { name: choice.name } };
}

/** Anthropic's thinking, as Converse passes it to Claude (in additionalModelRequestFields); other families' are not sent. */
function encodeThinking(req: CanonicalRequest, anthropic: boolean, maxTokens: number | undefined, extra: Block, inference: Block, dropped: Set<string>): void {
  const reasoning = req.reasoning;
  if (!reasoning) return;
  if (!anthropic) {
    if (!reasoning.off) dropped.add('reasoning');
    return;
  }
  if (reasoning.off) return;
  const forced = req.toolChoice === 'required' || typeof req.toolChoice === 'object';
  let thinking: Block | undefined;
  if (reasoning.adaptive) thinking = { type: 'adaptive' };
  else {
    const budget = thinkingBudget(reasoning);
    if (budget !== undefined) {
      const fitted = maxTokens === undefined ? budget : Math.min(budget, maxTokens - 1);
      if (fitted >= MIN_THINKING_BUDGET) thinking = { type: 'enabled', budget_tokens: fitted };
    }
  }
  if (!thinking || forced) {
    dropped.add('reasoning');
    return;
  }
  extra.thinking = thinking;
  withoutSamplingWhileThinking(inference, { temperature: 'temperature', topP: 'topP' }, dropped);
}

/** Without a cap from the client, Claude's thinking budget comes on top of this many answer tokens. */
const THINKING_ANSWER_TOKENS = 4096;

/**
 * The Converse body (the model goes in the path). Fields Converse has no place for are left out and named in
 * `dropped`.
 */
export function encodeConverseRequest(req: CanonicalRequest, model: string, dropped: Set<string> = new Set()): Record<string, unknown> {
  const anthropic = isAnthropicModel(model);
  const documents = { count: 0 };
  const system: Block[] = [];
  const messages: { role: 'user' | 'assistant'; content: Block[] }[] = [];
  for (const m of req.messages) {
    if (m.role === 'system') {
      system.push(...encodeContent(m.content, documents, dropped).filter((b) => 'text' in b || 'cachePoint' in b));
      continue;
    }
    const blocks = encodeTurn(m, anthropic, documents, dropped);
    if (blocks.length === 0) continue;
    const role = m.role === 'assistant' ? 'assistant' : 'user';
    const last = messages[messages.length - 1];
    // Turns alternate: consecutive ones of a role (several tool results) merge, tool results first.
    if (last?.role === role) last.content.push(...blocks);
    else messages.push({ role, content: blocks });
  }
  for (const turn of messages) if (turn.role === 'user') turn.content.sort((a, b) => Number('toolResult' in b) - Number('toolResult' in a));

  const body: Record<string, unknown> = { messages };
  if (system.length > 0) body.system = system;
  const budget = anthropic && req.reasoning && !req.reasoning.adaptive && !req.reasoning.off ? thinkingBudget(req.reasoning) : undefined;
  const maxTokens = req.maxTokens ?? (budget === undefined ? undefined : budget + THINKING_ANSWER_TOKENS);
  const inference: Block = {};
  if (maxTokens !== undefined) inference.maxTokens = maxTokens;
  if (req.temperature !== undefined) inference.temperature = anthropic ? Math.min(1, Math.max(0, req.temperature)) : req.temperature;
  if (req.topP !== undefined) inference.topP = req.topP;
  if (req.stop?.length) inference.stopSequences = req.stop;
  const extra: Block = {};
  if (req.topK !== undefined) {
    if (anthropic) extra.top_k = req.topK;
    else dropped.add('top_k');
  }
  encodeThinking(req, anthropic, maxTokens, extra, inference, dropped);
  if (Object.keys(inference).length > 0) body.inferenceConfig = inference;
  if (Object.keys(extra).length > 0) body.additionalModelRequestFields = extra;
  if (req.tools?.length) {
    const tools: Block[] = [];
    for (const t of req.tools) {
      tools.push({ toolSpec: { name: t.name, ...(t.description ? { description: t.description } : {}), inputSchema: { json: t.parameters } } }, ...cachePoint(t.cache));
      if (t.strict !== undefined) dropped.add('tools.strict');
    }
    const toolChoice = encodeToolChoice(req, dropped);
    body.toolConfig = toolChoice ? { tools, toolChoice } : { tools };
  }
  if (req.responseFormat && req.responseFormat.type !== 'text') dropped.add('response_format');
  if (req.seed !== undefined) dropped.add('seed');
  if (req.presencePenalty !== undefined) dropped.add('presence_penalty');
  if (req.frequencyPenalty !== undefined) dropped.add('frequency_penalty');
  if (req.user !== undefined) dropped.add('user');
  if (req.promptCacheKey !== undefined) dropped.add('prompt_cache_key');
  return body;
}

const FINISH: Record<string, FinishReason> = {
  end_turn: 'stop',
  stop_sequence: 'stop',
  max_tokens: 'length',
  model_context_window_exceeded: 'length',
  tool_use: 'tool_calls',
  guardrail_intervened: 'content_filter',
  content_filtered: 'content_filter',
};
export const decodeStopReason = (reason: string | undefined): FinishReason => FINISH[reason ?? 'end_turn'] ?? 'stop';

export interface ConverseUsage {
  inputTokens?: number;
  outputTokens?: number;
  cacheReadInputTokens?: number;
  cacheWriteInputTokens?: number;
}

/** Converse counts cache reads and writes apart from inputTokens; the canonical input count is all of them. */
export function decodeConverseUsage(usage: ConverseUsage | undefined): Usage {
  const read = usage?.cacheReadInputTokens ?? 0;
  const written = usage?.cacheWriteInputTokens ?? 0;
  const decoded: Usage = { inputTokens: (usage?.inputTokens ?? 0) + read + written, outputTokens: usage?.outputTokens ?? 0 };
  if (read > 0) decoded.cacheReadTokens = read;
  if (written > 0) decoded.cacheWriteTokens = written;
  return decoded;
}

interface ConverseBlock {
  text?: string;
  toolUse?: { toolUseId?: string; name?: string; input?: unknown };
  reasoningContent?: { reasoningText?: { text?: string; signature?: string }; redactedContent?: string };
}

export interface ConverseResponseJson {
  output?: { message?: { role?: string; content?: ConverseBlock[] } };
  stopReason?: string;
  usage?: ConverseUsage;
}

function decodeReasoning(block: NonNullable<ConverseBlock['reasoningContent']>, anthropic: boolean): ReasoningBlock {
  const origin = anthropic ? { origin: 'anthropic' as const } : {};
  if (block.redactedContent !== undefined) return { text: '', redacted: block.redactedContent, ...origin };
  const signature = block.reasoningText?.signature;
  return { text: block.reasoningText?.text ?? '', ...(signature ? { signature } : {}), ...origin };
}

export function decodeConverseResponse(json: ConverseResponseJson, id: string, model: string): CanonicalResponse {
  const anthropic = isAnthropicModel(model);
  let text = '';
  const toolCalls: ToolCall[] = [];
  const reasoning: ReasoningBlock[] = [];
  for (const block of json.output?.message?.content ?? []) {
    if (typeof block.text === 'string') text += block.text;
    else if (block.toolUse) toolCalls.push({ id: block.toolUse.toolUseId ?? '', name: block.toolUse.name ?? '', arguments: JSON.stringify(block.toolUse.input ?? {}) });
    else if (block.reasoningContent) reasoning.push(decodeReasoning(block.reasoningContent, anthropic));
  }
  const response: CanonicalResponse = {
    id,
    model,
    created: Math.floor(Date.now() / 1000),
    text,
    toolCalls,
    finishReason: decodeStopReason(json.stopReason),
    usage: decodeConverseUsage(json.usage),
  };
  if (reasoning.length > 0) response.reasoning = reasoning;
  return response;
}

interface StreamPayload {
  contentBlockIndex?: number;
  start?: { toolUse?: { toolUseId?: string; name?: string } };
  delta?: { text?: string; toolUse?: { input?: string }; reasoningContent?: { text?: string; signature?: string; redactedContent?: string } };
  stopReason?: string;
  usage?: ConverseUsage;
}

/**
 * Decodes one ConverseStream's events (already unframed: the event type and its JSON payload) into canonical
 * events. The finish waits for the metadata event that follows messageStop, so usage comes before it.
 */
export class ConverseStreamDecoder {
  private started = false;
  private reason: FinishReason = 'stop';
  private stopped = false;
  /** content block index → canonical tool-call index */
  private readonly tools = new Map<number, number>();
  private readonly id: string;
  private readonly model: string;
  private readonly origin: { origin?: 'anthropic' };
  /** True once the stream said everything: messageStop and the metadata after it. */
  done = false;

  constructor(id: string, model: string) {
    this.id = id;
    this.model = model;
    this.origin = isAnthropicModel(model) ? { origin: 'anthropic' } : {};
  }

  decode(eventType: string, payload: StreamPayload, out: StreamEvent[]): void {
    switch (eventType) {
      case 'messageStart':
        return;
      case 'contentBlockStart': {
        const use = payload.start?.toolUse;
        if (!use) return;
        const index = this.tools.size;
        this.tools.set(payload.contentBlockIndex ?? 0, index);
        this.push(out, { type: 'tool_call_start', index, id: use.toolUseId ?? '', name: use.name ?? '' });
        return;
      }
      case 'contentBlockDelta': {
        const delta = payload.delta;
        if (typeof delta?.text === 'string' && delta.text) this.push(out, { type: 'text', text: delta.text });
        else if (delta?.toolUse) {
          const index = this.tools.get(payload.contentBlockIndex ?? 0);
          if (index !== undefined && delta.toolUse.input) this.push(out, { type: 'tool_call_delta', index, arguments: delta.toolUse.input });
        } else if (delta?.reasoningContent) {
          const thought = delta.reasoningContent;
          if (thought.text) this.push(out, { type: 'reasoning', text: thought.text });
          else if (thought.signature && this.origin.origin) this.push(out, { type: 'reasoning_signature', signature: thought.signature, origin: 'anthropic' });
          else if (thought.redactedContent && this.origin.origin) this.push(out, { type: 'reasoning_redacted', data: thought.redactedContent, origin: 'anthropic' });
        }
        return;
      }
      case 'messageStop':
        this.stopped = true;
        this.reason = decodeStopReason(payload.stopReason);
        return;
      case 'metadata':
        this.push(out, { type: 'usage', usage: decodeConverseUsage(payload.usage) });
        if (this.stopped) {
          this.done = true;
          out.push({ type: 'finish', reason: this.reason });
        }
        return;
      default:
        return;
    }
  }

  /** A stream that stopped without its metadata event still finished. */
  finish(out: StreamEvent[]): void {
    if (!this.stopped || this.done) return;
    this.done = true;
    this.push(out, { type: 'finish', reason: this.reason });
  }

  private push(out: StreamEvent[], event: StreamEvent): void {
    if (!this.started) {
      this.started = true;
      out.push({ type: 'start', id: this.id, model: this.model });
    }
    out.push(event);
  }
}
