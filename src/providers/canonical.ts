/**
 * The canonical model every dialect translates to and from (N + M, never N × M).
 * Client APIs decode into these types; provider adapters encode them upstream and decode answers back.
 */
import type { LosslessRequest, RelayedAnswer } from './lossless.ts';
export type Role = 'system' | 'user' | 'assistant' | 'tool';

export interface TextPart {
  type: 'text';
  text: string;
}
export interface ImagePart {
  type: 'image';
  /** An http(s) URL or a data: URL. */
  url: string;
}
export type ContentPart = TextPart | ImagePart;

export interface ToolCall {
  id: string;
  name: string;
  /** JSON text of the arguments, exactly as the model produced it. */
  arguments: string;
}

export interface CanonicalMessage {
  role: Role;
  content: string | ContentPart[];
  /** Assistant messages: the tool calls the model made. */
  toolCalls?: ToolCall[];
  /** Tool messages: the call this message answers. */
  toolCallId?: string;
  name?: string;
}

export interface ToolDefinition {
  name: string;
  description?: string;
  /** JSON Schema of the arguments. */
  parameters: Record<string, unknown>;
}

export type ToolChoice = 'auto' | 'none' | 'required' | { name: string };

export interface ResponseFormat {
  type: 'text' | 'json_object' | 'json_schema';
  name?: string;
  schema?: Record<string, unknown>;
  strict?: boolean;
}

export interface CanonicalRequest {
  /** What the client asked for: empty, a provider name, a model name, or provider/model. */
  model?: string;
  messages: CanonicalMessage[];
  stream: boolean;
  maxTokens?: number;
  temperature?: number;
  topP?: number;
  stop?: string[];
  seed?: number;
  presencePenalty?: number;
  frequencyPenalty?: number;
  tools?: ToolDefinition[];
  toolChoice?: ToolChoice;
  responseFormat?: ResponseFormat;
  /** Ask the provider for usage in streams; the gateway always does, for metrics. */
  user?: string;
  /** The client's own request, for a provider of its dialect (the lossless lane); others use the fields above. */
  lossless?: LosslessRequest;
}

export type FinishReason = 'stop' | 'length' | 'tool_calls' | 'content_filter';

export interface Usage {
  inputTokens: number;
  outputTokens: number;
}

export interface CanonicalResponse {
  id: string;
  model: string;
  text: string;
  toolCalls: ToolCall[];
  finishReason: FinishReason;
  usage: Usage;
  created: number;
  /**
   * Lossless lane: the provider's answer as it sent it. text and toolCalls stay empty unless the answer was
   * also read into them (for the cache, so that a request asking another way can be answered from it).
   */
  relayed?: RelayedAnswer;
}

/** The canonical stream: what every upstream stream decodes into and every client stream encodes from. */
export type StreamEvent =
  | { type: 'start'; id: string; model: string }
  | { type: 'text'; text: string }
  | { type: 'tool_call_start'; index: number; id: string; name: string }
  | { type: 'tool_call_delta'; index: number; arguments: string }
  | { type: 'usage'; usage: Usage }
  | { type: 'finish'; reason: FinishReason };

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

/** Flattens message content to plain text (images dropped), for providers and places that only take text. */
export function contentText(content: string | ContentPart[]): string {
  if (typeof content === 'string') return content;
  let text = '';
  for (const part of content) if (part.type === 'text') text += part.text;
  return text;
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
