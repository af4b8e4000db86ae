/** The lossless lane's dialects by name, for code that holds a relayed answer but not its adapter (the cache). */
import { AnswerCollector } from '../core/answer.ts';
import type { CanonicalResponse, StreamEvent } from '../core/canonical.ts';
import { relayedEvents } from '../core/lossless.ts';
import { ANTHROPIC_RELAY } from '../dialects/anthropic/relay.ts';
import { OPENAI_CHAT_RELAY } from '../dialects/openai/relay.ts';
import { OPENAI_RESPONSES_RELAY } from '../dialects/responses/relay.ts';
import type { RelayDialect, WireDialect } from '../core/lossless.ts';

const DIALECTS: Record<WireDialect, RelayDialect> = {
  anthropic_messages: ANTHROPIC_RELAY,
  openai_chat: OPENAI_CHAT_RELAY,
  openai_responses: OPENAI_RESPONSES_RELAY,
};

export const relayDialect = (name: WireDialect): RelayDialect => DIALECTS[name];

/**
 * A relayed answer with its text, tool calls and reasoning read from what the provider sent, so a request that
 * asks for it another way (streamed instead of whole) can be answered from the cache.
 */
export function readRelayed(answer: CanonicalResponse): CanonicalResponse {
  const relayed = answer.relayed;
  if (!relayed) return answer;
  const dialect = relayDialect(relayed.dialect);
  let read: CanonicalResponse | undefined;
  if (relayed.body !== undefined) read = dialect.decodeAnswer(JSON.parse(relayed.body), answer.model);
  else {
    const events: StreamEvent[] = [];
    dialect.decodeEvents(relayedEvents(relayed.frames ?? ''), events);
    const collector = new AnswerCollector(answer.model);
    for (const event of events) collector.add(event);
    read = collector.answer();
  }
  return read ? { ...answer, text: read.text, toolCalls: read.toolCalls, reasoning: read.reasoning } : answer;
}
