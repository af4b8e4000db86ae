/**
 * The Anthropic Messages lossless lane, upstream side: the body an attempt sends and how its answers are read
 * on the side (usage, stop reason, errors) while they pass through unchanged.
 */
import type { EventSourceMessage } from 'eventsource-parser';
import { EMPTY_USAGE, type FinishReason, type StreamEvent, type Usage } from '../../core/canonical.ts';
import type { UpstreamFailureKind } from '../../core/errors.ts';
import type { AnswerFacts, FrameVerdict, LosslessRequest, RelayDialect, StreamReader } from '../../core/lossless.ts';
import { decodeAnthropicUsage, decodeMessagesResponse, decodeStopReason, MessagesStreamDecoder, type AnthropicMessageJson, type AnthropicUsage } from './upstream.ts';

/** Error types of an `event: error` frame, which arrives with a 200 status already sent. */
export const STREAM_ERROR_KINDS: Record<string, UpstreamFailureKind> = {
  overloaded_error: 'overloaded',
  rate_limit_error: 'rate_limited',
  timeout_error: 'timeout',
  invalid_request_error: 'client',
  authentication_error: 'auth',
  permission_error: 'auth',
};

interface MessageFacts {
  id?: string;
  type?: string;
  model?: string;
  content?: unknown;
  stop_reason?: string | null;
  usage?: AnthropicUsage;
}

interface StreamedEvent {
  type?: string;
  message?: MessageFacts;
  delta?: { stop_reason?: string | null; text?: string; thinking?: string; partial_json?: string };
  usage?: AnthropicUsage;
  error?: { type?: string; message?: string };
}

export const ANTHROPIC_RELAY: RelayDialect = {
  dialect: 'anthropic_messages',
  path: '/v1/messages',
  upstreamBody: (request, model) => (request.body.model === model ? (request.raw ?? request.body) : { ...request.body, model }),
  readAnswer(json, fallbackModel): AnswerFacts | undefined {
    const message = json as MessageFacts | null;
    if (!message || !Array.isArray(message.content)) return undefined;
    const usage = message.usage ?? {};
    return {
      id: message.id ?? '',
      model: message.model ?? fallbackModel,
      usage: decodeAnthropicUsage(usage),
      finishReason: decodeStopReason(message.stop_reason),
    };
  },
  streamReader: (_request: LosslessRequest, model: string) => new MessagesStreamReader(model),
  decodeAnswer: (json, model) => decodeMessagesResponse(json as AnthropicMessageJson, model),
  decodeEvents(messages, out) {
    const decoder = new MessagesStreamDecoder();
    for (const message of messages) decoder.decode(JSON.parse(message.data), out);
  },
};

/**
 * message_start and pings are held (an overload can still follow them, and the gateway fails over only before
 * the client has seen a byte); everything from the first content block on goes straight through.
 */
class MessagesStreamReader implements StreamReader {
  start?: { id: string; model: string };
  failure?: { kind: UpstreamFailureKind; message?: string };
  complete = false;
  outputChars = 0;
  /** Input counts (cache reads and writes among them) from message_start. */
  private headUsage: Usage = EMPTY_USAGE;
  private reason: FinishReason = 'stop';
  private readonly model: string;

  constructor(model: string) {
    this.model = model;
  }

  read(message: EventSourceMessage, out: StreamEvent[]): FrameVerdict {
    const type = message.event;
    if (type === 'ping') return 'hold';
    if (type === 'content_block_delta') {
      this.outputChars += deltaChars(message.data);
      return 'forward';
    }
    if (type !== 'message_start' && type !== 'message_delta' && type !== 'message_stop' && type !== 'error') return 'forward';
    let event: StreamedEvent;
    try {
      event = JSON.parse(message.data);
    } catch {
      this.failure = { kind: 'protocol', message: `a ${type} event that is not JSON` };
      return 'fail';
    }
    switch (type) {
      case 'message_start': {
        const head = event.message ?? {};
        this.start = { id: head.id ?? '', model: head.model ?? this.model };
        this.headUsage = decodeAnthropicUsage(head.usage ?? {});
        return 'hold';
      }
      case 'message_delta': {
        if (event.delta?.stop_reason) this.reason = decodeStopReason(event.delta.stop_reason);
        const usage = event.usage ?? {};
        // Newer API versions repeat the (cumulative) input counts here; older ones only send output_tokens.
        const outputTokens = usage.output_tokens ?? 0;
        out.push({ type: 'usage', usage: usage.input_tokens == null ? { ...this.headUsage, outputTokens } : decodeAnthropicUsage(usage, outputTokens) });
        return 'forward';
      }
      case 'message_stop':
        this.complete = true;
        out.push({ type: 'finish', reason: this.reason });
        return 'forward';
      default:
        this.failure = { kind: STREAM_ERROR_KINDS[event.error?.type ?? ''] ?? 'server', message: event.error?.message };
        return 'fail';
    }
  }
}

/**
 * What a content_block_delta adds to the answer: its text, thinking or tool-input JSON. The delta's one string
 * field is the last thing in the event (`…_delta","text":"…"}}`), so its length is read off the frame without
 * parsing it (most of a stream's events, and only an estimate's input); other shapes are parsed. A frame that
 * is not JSON counts as nothing (it goes on as sent).
 */
function deltaChars(data: string): number {
  const type = data.lastIndexOf('_delta","');
  if (type > 0 && data.endsWith('"}}')) {
    const field = data.indexOf('":"', type + 9);
    if (field > 0 && data.indexOf('"', type + 9) === field) return data.startsWith('signature', type + 9) ? 0 : Math.max(0, data.length - field - 6);
  }
  let event: StreamedEvent;
  try {
    event = JSON.parse(data);
  } catch {
    return 0;
  }
  const delta = event.delta;
  return (delta?.text?.length ?? 0) + (delta?.thinking?.length ?? 0) + (delta?.partial_json?.length ?? 0);
}
