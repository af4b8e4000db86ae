/**
 * A whole answer and a canonical stream, each turned into the other: a cached answer is replayed to a
 * streaming client as the events a provider would have sent, and a streamed answer is assembled into a
 * whole one so it can be cached.
 */
import type { CanonicalResponse, FinishReason, ToolCall, Usage } from './canonical.ts';
import { EMPTY_USAGE } from './canonical.ts';
import type { ChatStreamEvent, RelayLane } from './lossless.ts';

/** The events of an answer, in the order adapters emit them: start, content, usage, finish. */
export function answerEvents(response: CanonicalResponse): ChatStreamEvent[] {
  const relayed = response.relayed;
  if (relayed?.frames !== undefined) {
    // A lossless-lane stream: its frames as they came, then what accounting reads from them.
    const start = { id: response.id, model: response.model };
    const lane = { dialect: relayed.dialect, delivery: relayed.delivery };
    return [{ type: 'relayed', text: relayed.frames, lane, start }, { type: 'usage', usage: response.usage }, { type: 'finish', reason: response.finishReason }];
  }
  const events: ChatStreamEvent[] = [{ type: 'start', id: response.id, model: response.model }];
  if (response.text) events.push({ type: 'text', text: response.text });
  response.toolCalls.forEach((call, index) => {
    events.push({ type: 'tool_call_start', index, id: call.id, name: call.name });
    if (call.arguments) events.push({ type: 'tool_call_delta', index, arguments: call.arguments });
  });
  events.push({ type: 'usage', usage: response.usage });
  events.push({ type: 'finish', reason: response.finishReason });
  return events;
}

/** Assembles streamed events into the answer they add up to. */
export class AnswerCollector {
  private id = '';
  private model: string;
  private text = '';
  private readonly toolCalls: ToolCall[] = [];
  private usage: Usage = EMPTY_USAGE;
  private finishReason: FinishReason | undefined;
  /** Lossless-lane frames, when the stream was relayed. */
  private frames: string | undefined;
  private lane: RelayLane | undefined;

  constructor(model: string) {
    this.model = model;
  }

  add(event: ChatStreamEvent): void {
    switch (event.type) {
      case 'relayed':
        this.frames = (this.frames ?? '') + event.text;
        this.lane = event.lane;
        if (event.start) {
          this.id = event.start.id;
          this.model = event.start.model;
        }
        break;
      case 'start':
        this.id = event.id;
        this.model = event.model;
        break;
      case 'text':
        this.text += event.text;
        break;
      case 'tool_call_start':
        this.toolCalls[event.index] = { id: event.id, name: event.name, arguments: '' };
        break;
      case 'tool_call_delta': {
        const call = this.toolCalls[event.index];
        if (call) call.arguments += event.arguments;
        break;
      }
      case 'usage':
        this.usage = event.usage;
        break;
      case 'finish':
        this.finishReason = event.reason;
        break;
    }
  }

  /** The whole answer; undefined when the stream never said it finished. */
  answer(): CanonicalResponse | undefined {
    if (this.finishReason === undefined) return undefined;
    return {
      id: this.id,
      model: this.model,
      text: this.text,
      toolCalls: this.toolCalls.filter(Boolean),
      finishReason: this.finishReason,
      usage: this.usage,
      created: Math.floor(Date.now() / 1000),
      ...(this.lane === undefined ? {} : { relayed: { dialect: this.lane.dialect, delivery: this.lane.delivery, frames: this.frames } }),
    };
  }
}
