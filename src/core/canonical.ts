/**
 * The canonical model every dialect translates to and from (N + M, never N × M).
 * Client APIs decode into these types; provider adapters encode them upstream and decode answers back.
 */
import type { LosslessRequest, RelayedAnswer } from './lossless.ts';
export type Role = 'system' | 'user' | 'assistant' | 'tool';

/**
 * A prompt-cache breakpoint (Anthropic's `cache_control`): the prompt up to and including the marked item may
 * be cached. Kept as the client sent it, so an Anthropic upstream gets the same marker back.
 */
export interface CacheMarker {
  type: 'ephemeral';
  /** '5m' or '1h' where the provider offers a choice. */
  ttl?: string;
}

export interface TextPart {
  type: 'text';
  text: string;
  cache?: CacheMarker;
}
export interface ImagePart {
  type: 'image';
  /** An http(s) URL or a data: URL. */
  url: string;
  cache?: CacheMarker;
}
/** A document the model reads (a PDF, plain text): inline as a data: URL, by http(s) URL, or a provider file id. */
export interface DocumentPart {
  type: 'document';
  /** A data: URL (base64) or an http(s) URL; absent when the document is a provider's file id. */
  url?: string;
  fileId?: string;
  filename?: string;
  title?: string;
  cache?: CacheMarker;
}
export type ContentPart = TextPart | ImagePart | DocumentPart;

/**
 * What the model thought before answering. `signature` (and `redacted`, Anthropic's encrypted thinking) only
 * mean something to the provider family that made them (`origin`): they are sent back there, and only there.
 */
export interface ReasoningBlock {
  text: string;
  signature?: string;
  /** Anthropic's redacted_thinking data: no text, only the opaque payload. */
  redacted?: string;
  origin?: 'anthropic';
}

export interface ToolCall {
  id: string;
  name: string;
  /** JSON text of the arguments, exactly as the model produced it. */
  arguments: string;
  cache?: CacheMarker;
  /**
   * Gemini's thoughtSignature on the part that carried this call (Gemini API and Vertex AI): sent back on the
   * same part there, and nowhere else. Clients carry it in the call's id (core/signed-call-ids.ts).
   */
  signature?: string;
}

export interface CanonicalMessage {
  role: Role;
  content: string | ContentPart[];
  /** Assistant messages: the tool calls the model made. */
  toolCalls?: ToolCall[];
  /** Tool messages: the call this message answers. */
  toolCallId?: string;
  name?: string;
  /** Assistant messages: the reasoning that came before the content, in order. */
  reasoning?: ReasoningBlock[];
  /** Tool messages: a cache marker on the tool result as a whole. */
  cache?: CacheMarker;
  /** Tool messages: the tool reported a failure. */
  isError?: boolean;
}

export interface ToolDefinition {
  name: string;
  description?: string;
  /** JSON Schema of the arguments. */
  parameters: Record<string, unknown>;
  cache?: CacheMarker;
  /** The model's arguments must match the schema exactly (OpenAI function.strict, Anthropic tool strict). */
  strict?: boolean;
}

export type ToolChoice = 'auto' | 'none' | 'required' | { name: string };

export interface ResponseFormat {
  type: 'text' | 'json_object' | 'json_schema';
  name?: string;
  schema?: Record<string, unknown>;
  strict?: boolean;
}

/** OpenAI's reasoning_effort levels, plus Anthropic's `max`. */
export type ReasoningEffort = 'minimal' | 'low' | 'medium' | 'high' | 'xhigh' | 'max';

/**
 * How much the model should reason. Dialects say it differently (an effort level, a token budget, "adaptive",
 * a boolean); src/providers/reasoning.ts maps between them.
 */
export interface ReasoningRequest {
  effort?: ReasoningEffort;
  /** Anthropic's thinking.budget_tokens. */
  budgetTokens?: number;
  /** The model decides how much to think (Anthropic thinking.type adaptive, Ollama think: true). */
  adaptive?: boolean;
  /** Reasoning explicitly off (thinking disabled, reasoning_effort none, think: false). */
  off?: boolean;
  /**
   * Anthropic's output_config.effort without thinking: the effort shapes the whole answer and no thinking
   * was asked for, so an Anthropic upstream gets the effort alone (others read it as a reasoning effort).
   */
  effortOnly?: boolean;
}

export interface CanonicalRequest {
  /** What the client asked for: empty, a provider name, a model name, or provider/model. */
  model?: string;
  messages: CanonicalMessage[];
  stream: boolean;
  maxTokens?: number;
  temperature?: number;
  topP?: number;
  /** Sample from the K likeliest tokens only (Anthropic top_k, Ollama options.top_k). */
  topK?: number;
  stop?: string[];
  seed?: number;
  presencePenalty?: number;
  frequencyPenalty?: number;
  tools?: ToolDefinition[];
  toolChoice?: ToolChoice;
  responseFormat?: ResponseFormat;
  /** Who the end user is (OpenAI `user`, Anthropic `metadata.user_id`). */
  user?: string;
  /** The client's own request, for a provider of its dialect (the lossless lane); others use the fields above. */
  lossless?: LosslessRequest;
  reasoning?: ReasoningRequest;
  /** False: at most one tool call per turn (OpenAI parallel_tool_calls, Anthropic disable_parallel_tool_use). */
  parallelToolCalls?: boolean;
  /** OpenAI's prompt_cache_key: groups requests that share a prompt prefix. */
  promptCacheKey?: string;
  /**
   * Client fields the decoder saw but the canonical model has no place for (dotted paths); the adapter adds
   * them to what it reports as dropped.
   */
  unsupported?: string[];
}

export type FinishReason = 'stop' | 'length' | 'tool_calls' | 'content_filter';

export interface Usage {
  /** Every prompt token, cached or not. */
  inputTokens: number;
  outputTokens: number;
  /** Of inputTokens: read from the provider's prompt cache. */
  cacheReadTokens?: number;
  /** Of inputTokens: written to the provider's prompt cache (Anthropic bills these higher). */
  cacheWriteTokens?: number;
  /** Of outputTokens: spent on reasoning. */
  reasoningTokens?: number;
}

export interface CanonicalResponse {
  id: string;
  model: string;
  text: string;
  toolCalls: ToolCall[];
  finishReason: FinishReason;
  /** Which of the request's stop sequences ended the answer, when the provider says. */
  stopSequence?: string;
  usage: Usage;
  created: number;
  /**
   * Lossless lane: the provider's answer as it sent it. text and toolCalls stay empty unless the answer was
   * also read into them (for the cache, so that a request asking another way can be answered from it).
   */
  relayed?: RelayedAnswer;
  /** The model's reasoning, in order, before the text. */
  reasoning?: ReasoningBlock[];
}

/** The canonical stream: what every upstream stream decodes into and every client stream encodes from. */
export type StreamEvent =
  | { type: 'start'; id: string; model: string }
  | { type: 'text'; text: string }
  /** Reasoning text; consecutive deltas belong to one block until a signature or redacted block ends it. */
  | { type: 'reasoning'; text: string }
  /** Ends the current reasoning block with its signature (origin: the provider family that signed it). */
  | { type: 'reasoning_signature'; signature: string; origin: 'anthropic' }
  /** A whole redacted reasoning block. */
  | { type: 'reasoning_redacted'; data: string; origin: 'anthropic' }
  /** signature: Gemini's thoughtSignature of the call's part (see ToolCall.signature). */
  | { type: 'tool_call_start'; index: number; id: string; name: string; signature?: string }
  | { type: 'tool_call_delta'; index: number; arguments: string }
  | { type: 'usage'; usage: Usage }
  | { type: 'finish'; reason: FinishReason; stopSequence?: string };

export interface EmbeddingsRequest {
  model?: string;
  input: string[];
  dimensions?: number;
}
export interface EmbeddingsResponse {
  model: string;
  vectors: number[][];
  usage: Usage;
}

/** Flattens message content to plain text (images and documents dropped), for places that only take text. */
export function contentText(content: string | ContentPart[]): string {
  if (typeof content === 'string') return content;
  let text = '';
  for (const part of content) if (part.type === 'text') text += part.text;
  return text;
}

/**
 * A system prompt's text as one string. System blocks stay apart only for their cache markers (Anthropic
 * clients): joined as Hapax joins Anthropic system blocks, one per line.
 */
export function systemText(content: string | ContentPart[]): string {
  if (typeof content === 'string') return content;
  return content.flatMap((p) => (p.type === 'text' ? [p.text] : [])).join('\n');
}

export const EMPTY_USAGE: Usage = Object.freeze({ inputTokens: 0, outputTokens: 0 }) as Usage;

/**
 * Tool-call arguments (a JSON string in the canonical model) as the object Anthropic and Ollama carry. Text
 * that is not a JSON object becomes `{}`: those dialects cannot say anything else.
 */
export function argumentsObject(text: string): Record<string, unknown> {
  try {
    const value: unknown = JSON.parse(text);
    if (value !== null && typeof value === 'object' && !Array.isArray(value)) return value as Record<string, unknown>;
  } catch {
    // not JSON: fall through
  }
  return {};
}
