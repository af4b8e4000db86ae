/**
 * The Responses API's lossless lane, upstream side: to an OpenAI provider (or an OpenAI-compatible one that
 * says it speaks Responses) the client's body goes as it came (encrypted reasoning, built-in tools, every
 * field) and every event comes back as sent; usage and the finish are read on the side from the Response
 * object, or from the stream's response.completed.
 */
import type { EventSourceMessage } from 'eventsource-parser';
import type { CanonicalResponse, FinishReason, ReasoningBlock, StreamEvent, ToolCall, Usage } from '../../core/canonical.ts';
import type { UpstreamFailureKind } from '../../core/errors.ts';
import { answerEvents } from '../../core/answer.ts';
import { relayedEvents, type AnswerFacts, type FrameVerdict, type RelayDialect, type StreamReader } from '../../core/lossless.ts';

/** The Response object's fields the gateway reads. */
export interface UpstreamResponse {
  id?: string;
  object?: string;
  model?: string;
  status?: string;
  output?: Array<Record<string, unknown> & { type?: string }>;
  usage?: {
    input_tokens?: number;
    output_tokens?: number;
    input_tokens_details?: { cached_tokens?: number } | null;
    output_tokens_details?: { reasoning_tokens?: number } | null;
  } | null;
  incomplete_details?: { reason?: string } | null;
  error?: { code?: string; message?: string } | null;
}

export function decodeResponseUsage(usage: UpstreamResponse['usage']): Usage {
  const out: Usage = { inputTokens: usage?.input_tokens ?? 0, outputTokens: usage?.output_tokens ?? 0 };
  const cached = usage?.input_tokens_details?.cached_tokens;
  const reasoning = usage?.output_tokens_details?.reasoning_tokens;
  if (cached) out.cacheReadTokens = cached;
  if (reasoning) out.reasoningTokens = reasoning;
  return out;
}

function finishOf(response: UpstreamResponse): FinishReason {
  if (response.status === 'incomplete') return response.incomplete_details?.reason === 'content_filter' ? 'content_filter' : 'length';
  return response.output?.some((item) => item.type === 'function_call' || item.type === 'custom_tool_call') ? 'tool_calls' : 'stop';
}

/** What a Response object says in canonical terms: text, function calls, reasoning summaries. */
export function readResponseOutput(response: UpstreamResponse): { text: string; toolCalls: ToolCall[]; reasoning?: ReasoningBlock[] } {
  let text = '';
  const toolCalls: ToolCall[] = [];
  const reasoning: ReasoningBlock[] = [];
  for (const item of response.output ?? []) {
    if (item.type === 'message') {
      for (const part of (item.content as Array<{ type?: string; text?: string }> | undefined) ?? []) if (part.type === 'output_text') text += part.text ?? '';
    } else if (item.type === 'function_call') {
      toolCalls.push({ id: String(item.call_id), name: String(item.name), arguments: String(item.arguments ?? '') });
    } else if (item.type === 'reasoning') {
      reasoning.push({ text: ((item.summary as Array<{ text?: string }> | undefined) ?? []).map((s) => s.text ?? '').join('\n\n') });
    }
  }
  return reasoning.length > 0 ? { text, toolCalls, reasoning } : { text, toolCalls };
}

const isResponse = (json: unknown): json is UpstreamResponse =>
  json !== null && typeof json === 'object' && (json as UpstreamResponse).object === 'response' && Array.isArray((json as UpstreamResponse).output);

/** The final Response object of a relayed stream (from response.completed or .incomplete), when it has one. */
export function finalResponseOf(frames: string): UpstreamResponse | undefined {
  return finalResponseIn(relayedEvents(frames));
}

function finalResponseIn(messages: readonly EventSourceMessage[]): UpstreamResponse | undefined {
  for (const message of messages) {
    if (!message.data.includes('"response.completed"') && !message.data.includes('"response.incomplete"')) continue;
    const event = JSON.parse(message.data) as { type?: string; response?: UpstreamResponse };
    if ((event.type === 'response.completed' || event.type === 'response.incomplete') && event.response) return event.response;
  }
  return undefined;
}

/** A whole Response read into the canonical model. */
function decodeResponse(response: UpstreamResponse, fallbackModel: string): CanonicalResponse {
  return {
    id: response.id ?? '',
    model: response.model ?? fallbackModel,
    created: Math.floor(Date.now() / 1000),
    usage: decodeResponseUsage(response.usage),
    finishReason: finishOf(response),
    ...readResponseOutput(response),
  };
}

export const OPENAI_RESPONSES_RELAY: RelayDialect = {
  dialect: 'openai_responses',
  path: '/responses',
  upstreamBody: (request, model) => (request.body.model === model ? (request.raw ?? request.body) : { ...request.body, model }),
  readAnswer(json, fallbackModel): AnswerFacts | undefined {
    if (!isResponse(json)) return undefined;
    return { id: json.id ?? '', model: json.model ?? fallbackModel, usage: decodeResponseUsage(json.usage), finishReason: finishOf(json) };
  },
  streamReader: (_request, model) => new ResponseEventReader(model),
  decodeAnswer: (json, model) => decodeResponse(json as UpstreamResponse, model),
  decodeEvents(messages, out) {
    // The final Response object carries the whole answer: read it rather than every delta.
    const last = finalResponseIn(messages);
    // A Response read into the canonical model has no relayed text: its events are all canonical ones.
    if (last) out.push(...(answerEvents(decodeResponse(last, last.model ?? '')) as StreamEvent[]));
    // A stream cut before its end (resume_streams) has none: what it said so far is in its deltas.
    else decodePartialStream(messages, out);
  },
};

/**
 * The canonical events of a Responses stream that stopped part way: its start, text and reasoning-summary
 * deltas, and function calls begun. Items the canonical model has no place for (built-in tool calls) are
 * skipped; the encoder that continues the stream takes them over from the frames as they are.
 */
function decodePartialStream(messages: readonly EventSourceMessage[], out: StreamEvent[]): void {
  /** Function-call items by output index: their canonical index (order of appearance). */
  const calls = new Map<number, number>();
  for (const message of messages) {
    let event: { type?: string; response?: UpstreamResponse; delta?: unknown; output_index?: number; item?: Record<string, unknown> };
    try {
      event = JSON.parse(message.data);
    } catch {
      continue;
    }
    switch (event.type) {
      case 'response.created':
        if (event.response) out.push({ type: 'start', id: event.response.id ?? '', model: event.response.model ?? '' });
        break;
      case 'response.output_text.delta':
        if (typeof event.delta === 'string') out.push({ type: 'text', text: event.delta });
        break;
      case 'response.reasoning_summary_text.delta':
        if (typeof event.delta === 'string') out.push({ type: 'reasoning', text: event.delta });
        break;
      case 'response.output_item.added':
        if (event.item?.type === 'function_call' && typeof event.output_index === 'number') {
          const index = calls.size;
          calls.set(event.output_index, index);
          out.push({ type: 'tool_call_start', index, id: String(event.item.call_id ?? ''), name: String(event.item.name ?? '') });
        }
        break;
      case 'response.function_call_arguments.delta': {
        const index = typeof event.output_index === 'number' ? calls.get(event.output_index) : undefined;
        if (index !== undefined && typeof event.delta === 'string') out.push({ type: 'tool_call_delta', index, arguments: event.delta });
        break;
      }
      default:
        break;
    }
  }
}

/** Terminal events of a Responses stream. */
const DONE = new Set(['response.completed', 'response.incomplete']);
/** Events before any output: held back, so an overload reported right after them still fails over. */
const PREAMBLE = new Set(['response.created', 'response.in_progress', 'response.queued']);

class ResponseEventReader implements StreamReader {
  start?: { id: string; model: string };
  failure?: { kind: UpstreamFailureKind; message?: string };
  complete = false;
  outputChars = 0;
  private readonly model: string;

  constructor(model: string) {
    this.model = model;
  }

  read(message: EventSourceMessage, out: StreamEvent[]): FrameVerdict {
    let event: { type?: string; response?: UpstreamResponse; message?: string; code?: string; delta?: unknown };
    try {
      event = JSON.parse(message.data);
    } catch {
      this.failure = { kind: 'protocol', message: 'a stream event that is not JSON' };
      return 'fail';
    }
    const type = event.type ?? message.event ?? '';
    // Text, reasoning and function-call argument deltas all carry their piece as a string `delta`.
    if (typeof event.delta === 'string') this.outputChars += event.delta.length;
    if (event.response && !this.start) this.start = { id: event.response.id ?? '', model: event.response.model ?? this.model };
    if (type === 'error' || type === 'response.failed') {
      const error = type === 'error' ? event : event.response?.error;
      this.failure = { kind: error?.code === 'rate_limit_exceeded' ? 'rate_limited' : 'server', message: error?.message ?? undefined };
      return 'fail';
    }
    if (DONE.has(type) && event.response) {
      this.complete = true;
      out.push({ type: 'usage', usage: decodeResponseUsage(event.response.usage) }, { type: 'finish', reason: finishOf(event.response) });
      return 'forward';
    }
    return PREAMBLE.has(type) ? 'hold' : 'forward';
  }
}
