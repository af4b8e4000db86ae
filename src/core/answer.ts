/**
 * A whole answer and a canonical stream, each turned into the other: a cached answer is replayed to a
 * streaming client as the events a provider would have sent, and a streamed answer is assembled into a
 * whole one so it can be cached.
 */
import type { CanonicalResponse, FinishReason, ReasoningBlock, ToolCall, Usage } from './canonical.ts';
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
  for (const block of response.reasoning ?? []) {
    if (block.redacted !== undefined) {
      events.push({ type: 'reasoning_redacted', data: block.redacted, origin: 'anthropic' });
      continue;
    }
    if (block.text) events.push({ type: 'reasoning', text: block.text });
    if (block.signature !== undefined && block.origin) events.push({ type: 'reasoning_signature', signature: block.signature, origin: block.origin });
  }
  if (response.text) events.push({ type: 'text', text: response.text });
  response.toolCalls.forEach((call, index) => {
    events.push(call.signature === undefined ? { type: 'tool_call_start', index, id: call.id, name: call.name } : { type: 'tool_call_start', index, id: call.id, name: call.name, signature: call.signature });
    if (call.arguments) events.push({ type: 'tool_call_delta', index, arguments: call.arguments });
  });
  events.push({ type: 'usage', usage: response.usage });
  events.push(response.stopSequence === undefined ? { type: 'finish', reason: response.finishReason } : { type: 'finish', reason: response.finishReason, stopSequence: response.stopSequence });
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
  private stopSequence: string | undefined;
  private readonly reasoning: ReasoningBlock[] = [];
  /** The reasoning block deltas go to; a signature or a redacted block closes it. */
  private openReasoning: ReasoningBlock | undefined;

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
      case 'reasoning':
        if (!this.openReasoning) this.reasoning.push((this.openReasoning = { text: '' }));
        this.openReasoning.text += event.text;
        break;
      case 'reasoning_signature': {
        const block = this.openReasoning ?? { text: '' };
        if (!this.openReasoning) this.reasoning.push(block);
        block.signature = event.signature;
        block.origin = event.origin;
        this.openReasoning = undefined;
        break;
      }
      case 'reasoning_redacted':
        this.reasoning.push({ text: '', redacted: event.data, origin: event.origin });
        this.openReasoning = undefined;
        break;
      case 'tool_call_start':
        this.toolCalls[event.index] = event.signature === undefined ? { id: event.id, name: event.name, arguments: '' } : { id: event.id, name: event.name, arguments: '', signature: event.signature };
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
        this.stopSequence = event.stopSequence;
        break;
    }
  }

  /** The whole answer; undefined when the stream never said it finished. */
  answer(): CanonicalResponse | undefined {
    if (this.finishReason === undefined) return undefined;
    const answer: CanonicalResponse = {
      id: this.id,
      model: this.model,
      text: this.text,
      toolCalls: this.toolCalls.filter(Boolean),
      finishReason: this.finishReason,
      usage: this.usage,
      created: Math.floor(Date.now() / 1000),
      ...(this.lane === undefined ? {} : { relayed: { dialect: this.lane.dialect, delivery: this.lane.delivery, frames: this.frames } }),
    };
    if (this.reasoning.length > 0) answer.reasoning = this.reasoning;
    if (this.stopSequence !== undefined) answer.stopSequence = this.stopSequence;
    return answer;
  }
}
