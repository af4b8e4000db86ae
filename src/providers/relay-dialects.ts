/** The lossless lane's dialects by name, for code that holds a relayed answer but not its adapter (the cache). */
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
