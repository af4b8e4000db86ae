/** What both sides of the OpenAI Chat Completions format use. */
import type { ToolCall } from '../../core/canonical.ts';

export function encodeToolCalls(calls: ToolCall[]) {
  return calls.map((c) => ({ id: c.id, type: 'function' as const, function: { name: c.name, arguments: c.arguments } }));
}
