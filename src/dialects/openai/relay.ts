/**
 * The OpenAI Chat Completions lossless lane, upstream side: the body an attempt sends and how its answers are
 * read on the side (usage, finish reason, errors) while they pass through unchanged.
 */
import type { EventSourceMessage } from 'eventsource-parser';
import type { FinishReason, StreamEvent } from '../../core/canonical.ts';
import type { UpstreamFailureKind } from '../../core/errors.ts';
import { upstreamErrorMessage } from '../../core/errors.ts';
import type { AnswerFacts, FrameVerdict, LosslessRequest, RelayDialect, StreamReader } from '../../core/lossless.ts';
import { decodeChatResponse, decodeChunk, decodeFinishReason, decodeUsage } from './upstream.ts';

interface Completion {
  id?: string;
  model?: string;
  choices?: { finish_reason?: string | null; delta?: ChunkDelta }[];
  usage?: { prompt_tokens?: number; completion_tokens?: number } | null;
  error?: unknown;
}

/** What a chunk's delta adds to the answer (reasoning_content: DeepSeek and others; reasoning: OpenRouter, vLLM). */
interface ChunkDelta {
  role?: string;
  content?: string | null;
  reasoning_content?: string | null;
  reasoning?: string | null;
  tool_calls?: { function?: { arguments?: string } }[];
}

function deltaChars(delta: ChunkDelta | undefined): number {
  if (!delta) return 0;
  let chars = (delta.content?.length ?? 0) + (delta.reasoning_content?.length ?? 0) + (typeof delta.reasoning === 'string' ? delta.reasoning.length : 0);
  if (delta.tool_calls) for (const call of delta.tool_calls) chars += call.function?.arguments?.length ?? 0;
  return chars;
}

type StreamOptions = { include_usage?: boolean } | null | undefined;

/** The client asked for the usage chunk itself; otherwise the gateway asks for it and keeps it. */
const clientWantsUsage = (request: LosslessRequest) => (request.body.stream_options as StreamOptions)?.include_usage === true;

export const OPENAI_CHAT_RELAY: RelayDialect = {
  dialect: 'openai_chat',
  path: '/chat/completions',
  upstreamBody(request, model) {
    // Usage arrives in streams only when asked for; metrics, limits and cost need it.
    const addUsage = request.body.stream === true && !clientWantsUsage(request);
    if (request.body.model === model && !addUsage) return request.raw ?? request.body;
    const body: Record<string, unknown> = { ...request.body, model };
    if (addUsage) body.stream_options = { ...(body.stream_options as object | null), include_usage: true };
    return body;
  },
  readAnswer(json, fallbackModel): AnswerFacts | undefined {
    const completion = json as Completion | null;
    if (!completion || !Array.isArray(completion.choices)) return undefined;
    return {
      id: completion.id ?? '',
      model: completion.model ?? fallbackModel,
      usage: decodeUsage(completion.usage),
      finishReason: decodeFinishReason(completion.choices[0]?.finish_reason),
    };
  },
  streamReader: (request, model) => new ChunkReader(clientWantsUsage(request), model),
  decodeAnswer: (json, model) => decodeChatResponse(json as Parameters<typeof decodeChatResponse>[0], model),
  decodeEvents(messages, out) {
    for (const message of messages) {
      if (message.data === '[DONE]') continue;
      const finish = decodeChunk(JSON.parse(message.data), out);
      if (finish) out.push(finish);
    }
  },
};

/** Chunks go through as they come (the first one already is the answer's start); the usage chunk only if asked for. */
class ChunkReader implements StreamReader {
  start?: { id: string; model: string };
  failure?: { kind: UpstreamFailureKind; message?: string };
  complete = false;
  outputChars = 0;
  private finish: FinishReason | undefined;
  /** A plain delta chunk's length beyond its delta's text (the smallest seen), for estimating skimmed ones. */
  private envelope = Number.POSITIVE_INFINITY;
  private readonly keepUsageChunk: boolean;
  private readonly model: string;

  constructor(keepUsageChunk: boolean, model: string) {
    this.keepUsageChunk = keepUsageChunk;
    this.model = model;
  }

  read(message: EventSourceMessage, out: StreamEvent[]): FrameVerdict {
    if (message.data === '[DONE]') {
      if (this.finish === undefined) {
        this.failure = { kind: 'protocol', message: 'the stream ended before a finish reason' };
        return 'fail';
      }
      this.complete = true;
      out.push({ type: 'finish', reason: this.finish });
      return 'forward';
    }
    const data = message.data;
    // Most chunks are one more piece of the answer and say nothing accounting needs: once the answer has
    // started, a chunk that says its finish reason is null and mentions neither usage nor an error goes on
    // unparsed (parsing each one was the lane's largest cost per event); its length stands in for its text.
    if (this.start && data.includes('"finish_reason":null') && !data.includes('"usage":{') && !data.includes('"error"')) {
      if (this.envelope !== Number.POSITIVE_INFINITY) this.outputChars += Math.max(0, data.length - this.envelope);
      else this.measure(data);
      return 'forward';
    }
    let chunk: Completion;
    try {
      chunk = JSON.parse(data);
    } catch {
      this.failure = { kind: 'protocol', message: 'a stream chunk that is not JSON' };
      return 'fail';
    }
    if (chunk.error) {
      this.failure = { kind: 'server', message: upstreamErrorMessage(chunk) };
      return 'fail';
    }
    // Azure opens with a chunk of no choices, id or model (its prompt filter results): held like any frame
    // before the first output, so a failure right after it still fails over; the next chunk says who answers.
    if (!this.start && !chunk.id && chunk.choices?.length === 0 && !chunk.usage) return 'hold';
    this.start ??= { id: chunk.id ?? '', model: chunk.model || this.model };
    this.count(data, chunk);
    const reason = chunk.choices?.[0]?.finish_reason;
    if (reason) {
      this.finish = decodeFinishReason(reason);
      // Some OpenAI-compatible servers end without [DONE]: a finish reason is enough.
      this.complete = true;
    }
    if (chunk.usage) {
      out.push({ type: 'usage', usage: decodeUsage(chunk.usage) });
      if (!this.keepUsageChunk && chunk.choices?.length === 0) return 'drop';
    }
    return 'forward';
  }

  /** Counts a parsed chunk's text, and learns from a plain delta chunk how much of it is not text. */
  private count(data: string, chunk: Completion): void {
    const delta = chunk.choices?.[0]?.delta;
    const chars = deltaChars(delta);
    this.outputChars += chars;
    // The opening chunk also names the role: not a plain one.
    if (chars > 0 && !delta?.role && chunk.choices?.[0]?.finish_reason == null && !chunk.usage) this.envelope = Math.min(this.envelope, data.length - chars);
  }

  /** A skimmed chunk before any plain one was measured: parsed after all (once or twice a stream). */
  private measure(data: string): void {
    try {
      this.count(data, JSON.parse(data) as Completion);
    } catch {
      // not JSON: it goes on as the provider sent it, and counts as nothing
    }
  }
}
