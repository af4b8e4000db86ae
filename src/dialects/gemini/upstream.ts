/**
 * The Gemini API wire format (generateContent / streamGenerateContent), upstream side: canonical requests
 * encoded as `contents` of `parts` with a `systemInstruction`, tools and a `generationConfig`; answers and
 * stream chunks (`candidates`, `promptFeedback`, `usageMetadata`) decoded back. Shared by every provider that
 * serves Gemini models this way (Google AI Studio; Vertex AI's publisher models speak the same body).
 */
import type { CanonicalMessage, CanonicalRequest, CanonicalResponse, ContentPart, FinishReason, ReasoningRequest, StreamEvent, ToolCall, ToolChoice, Usage } from '../../core/canonical.ts';
import { argumentsObject, contentText } from '../../core/canonical.ts';
import { thinkingBudget } from '../../core/reasoning.ts';

type Part = Record<string, unknown>;
interface Content {
  role: 'user' | 'model';
  parts: Part[];
}

/**
 * Gemini 3 refuses a replayed function call without the thought signature it was answered with. Calls keep the
 * signature Gemini gave them (ToolCall.signature); a step whose calls have none (they came from another
 * provider, or from a client that kept no id, such as Ollama's) carries on its first call the placeholder Google
 * documents for history it did not produce.
 */
export const SKIP_THOUGHT_SIGNATURE = 'skip_thought_signature_validator';

const DATA_URL = /^data:([^;,]+);base64,/;

/** Inline (data:) images and documents go as inlineData; URLs and other providers' file ids have no place here. */
function encodeMedia(part: Exclude<ContentPart, { type: 'text' }>, dropped: Set<string>): Part | undefined {
  const url = part.url;
  const data = url ? DATA_URL.exec(url) : null;
  if (url && data) return { inlineData: { mimeType: data[1], data: url.slice(data[0].length) } };
  if (part.type === 'image') dropped.add('messages.content.image.url');
  else dropped.add(part.url !== undefined ? 'messages.content.document.url' : part.fileId !== undefined ? 'messages.content.document.file_id' : 'messages.content.document');
  return undefined;
}

function encodeParts(content: string | ContentPart[], dropped: Set<string>): Part[] {
  if (typeof content === 'string') return content === '' ? [] : [{ text: content }];
  const parts: Part[] = [];
  for (const p of content) {
    if (p.cache) dropped.add('cache_control');
    if (p.type === 'text') {
      if (p.text !== '') parts.push({ text: p.text });
      continue;
    }
    const media = encodeMedia(p, dropped);
    if (media) parts.push(media);
  }
  return parts;
}

/** A tool's text as the object functionResponse.response takes: its JSON when it is an object, else wrapped. */
function toolResponse(m: CanonicalMessage): Record<string, unknown> {
  const text = contentText(m.content);
  if (m.isError) return { error: text };
  const parsed = argumentsObject(text);
  return Object.keys(parsed).length > 0 ? parsed : { result: text };
}

function encodeContents(messages: readonly CanonicalMessage[], dropped: Set<string>): { contents: Content[]; system: Part[] } {
  const contents: Content[] = [];
  const system: Part[] = [];
  // functionResponse names the function, not the call: the name is found from the call's id.
  const callNames = new Map<string, string>();
  const push = (role: Content['role'], parts: Part[]) => {
    if (parts.length === 0) return;
    const last = contents.at(-1);
    // Consecutive turns of one role become one: tool results after a call are one user turn.
    if (last?.role === role) last.parts.push(...parts);
    else contents.push({ role, parts });
  };
  for (const m of messages) {
    if (m.role === 'system') {
      system.push(...encodeParts(m.content, dropped).filter((p) => 'text' in p));
      continue;
    }
    if (m.name !== undefined && m.role !== 'tool') dropped.add('messages.name');
    if (m.role === 'tool') {
      if (m.cache) dropped.add('cache_control');
      const name = callNames.get(m.toolCallId ?? '') ?? m.name ?? 'tool';
      const parts: Part[] = [{ functionResponse: { name, response: toolResponse(m) } }];
      // Images a tool returned follow its response in the same turn.
      if (typeof m.content !== 'string') parts.push(...encodeParts(m.content, dropped).filter((p) => !('text' in p)));
      push('user', parts);
      continue;
    }
    if (m.role === 'user') {
      push('user', encodeParts(m.content, dropped));
      continue;
    }
    // Thoughts are not sent back as text (Gemini reads only its own signatures); they are reported.
    if (m.reasoning?.length) dropped.add('messages.reasoning');
    const parts = encodeParts(m.content, dropped);
    // Only a step's first call is signed (parallel calls share its signature): each goes back as it came.
    const signed = m.toolCalls?.some((call) => call.signature !== undefined);
    for (const [i, call] of (m.toolCalls ?? []).entries()) {
      callNames.set(call.id, call.name);
      const part: Part = { functionCall: { name: call.name, args: argumentsObject(call.arguments) } };
      const signature = call.signature ?? (i === 0 && !signed ? SKIP_THOUGHT_SIGNATURE : undefined);
      if (signature !== undefined) part.thoughtSignature = signature;
      parts.push(part);
    }
    push('model', parts);
  }
  return { contents, system };
}

function encodeToolConfig(choice: ToolChoice): Record<string, unknown> {
  if (typeof choice === 'object') return { functionCallingConfig: { mode: 'ANY', allowedFunctionNames: [choice.name] } };
  return { functionCallingConfig: { mode: choice === 'required' ? 'ANY' : choice === 'none' ? 'NONE' : 'AUTO' } };
}

/**
 * thinkingConfig: a token budget (Gemini 2.5 and 3 both take thinkingBudget; 3's thinkingLevel would be refused
 * by 2.5), -1 for "the model decides", 0 for off; thoughts are asked for whenever thinking is.
 */
function encodeThinking(reasoning: ReasoningRequest): Record<string, unknown> {
  if (reasoning.off) return { thinkingBudget: 0 };
  if (reasoning.adaptive && reasoning.budgetTokens === undefined) return { includeThoughts: true, thinkingBudget: -1 };
  const budget = thinkingBudget(reasoning);
  return budget === undefined ? { includeThoughts: true } : { includeThoughts: true, thinkingBudget: budget };
}

/** The generateContent body for a canonical request; what Gemini has no place for is named in `dropped`. */
export function encodeGenerateContentRequest(req: CanonicalRequest, dropped: Set<string> = new Set()): Record<string, unknown> {
  const { contents, system } = encodeContents(req.messages, dropped);
  const body: Record<string, unknown> = { contents };
  if (system.length > 0) body.systemInstruction = { parts: system };
  const config: Record<string, unknown> = {};
  if (req.maxTokens !== undefined) config.maxOutputTokens = req.maxTokens;
  if (req.temperature !== undefined) config.temperature = req.temperature;
  if (req.topP !== undefined) config.topP = req.topP;
  if (req.topK !== undefined) config.topK = req.topK;
  if (req.stop !== undefined) config.stopSequences = req.stop;
  if (req.seed !== undefined) config.seed = req.seed;
  if (req.presencePenalty !== undefined) config.presencePenalty = req.presencePenalty;
  if (req.frequencyPenalty !== undefined) config.frequencyPenalty = req.frequencyPenalty;
  if (req.reasoning) config.thinkingConfig = encodeThinking(req.reasoning);
  const format = req.responseFormat;
  if (format && format.type !== 'text') {
    config.responseMimeType = 'application/json';
    // responseJsonSchema takes JSON Schema as clients write it; responseSchema only an OpenAPI subset.
    if (format.type === 'json_schema' && format.schema) config.responseJsonSchema = format.schema;
  }
  if (Object.keys(config).length > 0) body.generationConfig = config;
  if (req.tools?.length) {
    // parametersJsonSchema, for the same reason: `parameters` refuses additionalProperties, $schema and more.
    body.tools = [{ functionDeclarations: req.tools.map((t) => ({ name: t.name, ...(t.description ? { description: t.description } : {}), parametersJsonSchema: t.parameters })) }];
    if (req.tools.some((t) => t.cache)) dropped.add('cache_control');
    if (req.tools.some((t) => t.strict !== undefined)) dropped.add('tools.strict');
    if (req.parallelToolCalls === false) dropped.add('parallel_tool_calls');
  }
  if (req.toolChoice !== undefined) body.toolConfig = encodeToolConfig(req.toolChoice);
  if (req.user !== undefined) dropped.add('user');
  if (req.promptCacheKey !== undefined) dropped.add('prompt_cache_key');
  return body;
}

// ---------------------------------------------------------------------------------------------------
// Answers

export interface GeminiPart {
  text?: string;
  thought?: boolean;
  thoughtSignature?: string;
  functionCall?: { name?: string; args?: unknown; id?: string };
}
export interface GeminiCandidate {
  content?: { role?: string; parts?: GeminiPart[] };
  finishReason?: string;
}
export interface GeminiUsage {
  promptTokenCount?: number;
  candidatesTokenCount?: number;
  cachedContentTokenCount?: number;
  thoughtsTokenCount?: number;
  toolUsePromptTokenCount?: number;
}
export interface GeminiResponse {
  candidates?: GeminiCandidate[];
  promptFeedback?: { blockReason?: string };
  usageMetadata?: GeminiUsage;
  modelVersion?: string;
  responseId?: string;
}

/** Every reason Gemini stops for its safety and policy checks reads as a content filter. */
const FILTERED = new Set(['SAFETY', 'RECITATION', 'BLOCKLIST', 'PROHIBITED_CONTENT', 'SPII', 'IMAGE_SAFETY', 'IMAGE_PROHIBITED_CONTENT', 'IMAGE_RECITATION', 'LANGUAGE']);

export function decodeFinishReason(reason: string | undefined, calledTools: boolean): FinishReason {
  if (reason === 'MAX_TOKENS') return 'length';
  if (reason !== undefined && FILTERED.has(reason)) return 'content_filter';
  return calledTools ? 'tool_calls' : 'stop';
}

/** Gemini counts thoughts apart from the answer; canonical output tokens include them. */
export function decodeUsage(usage: GeminiUsage | undefined): Usage {
  const thoughts = usage?.thoughtsTokenCount ?? 0;
  const decoded: Usage = { inputTokens: (usage?.promptTokenCount ?? 0) + (usage?.toolUsePromptTokenCount ?? 0), outputTokens: (usage?.candidatesTokenCount ?? 0) + thoughts };
  if (usage?.cachedContentTokenCount) decoded.cacheReadTokens = usage.cachedContentTokenCount;
  if (thoughts) decoded.reasoningTokens = thoughts;
  return decoded;
}

/** A part that carries a function call (and, from thinking models, the signature of its step). */
type CallPart = GeminiPart & { functionCall: NonNullable<GeminiPart['functionCall']> };

const toolCallOf = (part: CallPart, makeId: () => string): ToolCall => {
  const call: ToolCall = { id: part.functionCall.id || makeId(), name: part.functionCall.name ?? '', arguments: JSON.stringify(part.functionCall.args ?? {}) };
  if (part.thoughtSignature) call.signature = part.thoughtSignature;
  return call;
};

export function decodeGenerateContentResponse(json: GeminiResponse, fallbackModel: string, id: string): CanonicalResponse {
  const candidate = json.candidates?.[0];
  let text = '';
  let thoughts = '';
  const toolCalls: ToolCall[] = [];
  for (const part of candidate?.content?.parts ?? []) {
    if (part.functionCall) toolCalls.push(toolCallOf(part as CallPart, () => `call_${id}_${toolCalls.length}`));
    else if (part.thought && part.text) thoughts += part.text;
    else if (part.text) text += part.text;
  }
  const blocked = json.promptFeedback?.blockReason !== undefined;
  const response: CanonicalResponse = {
    id: json.responseId || id,
    model: json.modelVersion || fallbackModel,
    created: Math.floor(Date.now() / 1000),
    text,
    toolCalls,
    finishReason: blocked ? 'content_filter' : decodeFinishReason(candidate?.finishReason, toolCalls.length > 0),
    usage: decodeUsage(json.usageMetadata),
  };
  if (thoughts) response.reasoning = [{ text: thoughts }];
  return response;
}

/** One stream's chunks into canonical events; each chunk is a GenerateContentResponse with the new parts. */
export class GenerateContentStreamDecoder {
  private started = false;
  private toolIndex = 0;
  private finishReason: string | undefined;
  private blocked = false;
  private usage: GeminiUsage | undefined;
  private readonly id: string;
  private readonly model: string;

  constructor(id: string, model: string) {
    this.id = id;
    this.model = model;
  }

  /** Whether a chunk said how the answer ended (the stream may still carry usage after it). */
  get finished(): boolean {
    return this.finishReason !== undefined || this.blocked;
  }

  decode(json: GeminiResponse, out: StreamEvent[]): void {
    if (!this.started) {
      this.started = true;
      out.push({ type: 'start', id: json.responseId || this.id, model: json.modelVersion || this.model });
    }
    const candidate = json.candidates?.[0];
    for (const part of candidate?.content?.parts ?? []) {
      if (part.functionCall) {
        const call = toolCallOf(part as CallPart, () => `call_${this.id}_${this.toolIndex}`);
        const start: StreamEvent = { type: 'tool_call_start', index: this.toolIndex, id: call.id, name: call.name };
        if (call.signature !== undefined) start.signature = call.signature;
        out.push(start);
        out.push({ type: 'tool_call_delta', index: this.toolIndex, arguments: call.arguments });
        this.toolIndex++;
      } else if (part.thought && part.text) out.push({ type: 'reasoning', text: part.text });
      else if (part.text) out.push({ type: 'text', text: part.text });
    }
    if (candidate?.finishReason) this.finishReason = candidate.finishReason;
    if (json.promptFeedback?.blockReason) this.blocked = true;
    // Each chunk's usageMetadata counts the answer so far: the last one is the total.
    if (json.usageMetadata) this.usage = json.usageMetadata;
  }

  /** The closing events, once the stream has ended. */
  end(out: StreamEvent[]): void {
    if (this.usage) out.push({ type: 'usage', usage: decodeUsage(this.usage) });
    out.push({ type: 'finish', reason: this.blocked ? 'content_filter' : decodeFinishReason(this.finishReason, this.toolIndex > 0) });
  }
}

/** Model ids in Gemini's lists are `models/NAME`; requests take NAME. */
export const modelId = (name: string): string => name.replace(/^models\//, '');
