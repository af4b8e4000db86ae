/**
 * Anthropic's Token Counting API (POST /v1/messages/count_tokens), client side: a Messages request without
 * `max_tokens`, answered with `{"input_tokens": N}`.
 *
 * The schema checks the shape a count needs (messages with roles and content, system, tools) and lets every
 * other field and block type through: the body goes to an Anthropic upstream as the client sent it, and block
 * types this gateway does not know yet must not turn a count into a 400.
 */
import { z } from 'zod';
import { parseBody } from '../validate.ts';

/** Any content block: the local counter reads the types it knows and counts the rest from their JSON. */
const block = z.looseObject({ type: z.string() });
const content = z.union([z.string(), z.array(block)]);

export const countTokensRequestSchema = z.looseObject({
  model: z.string().optional(),
  messages: z
    .array(
      z.looseObject({
        // @anthropic-ai/sdk 1.x also types system turns inside `messages` (as /v1/messages accepts them).
        role: z.enum(['user', 'assistant', 'system']),
        content,
      }),
    )
    .min(1, 'messages must contain at least one message'),
  system: z.union([z.string(), z.array(z.looseObject({ type: z.literal('text'), text: z.string() }))]).optional(),
  // Custom tools carry name, description and input_schema; server tools (web search, bash, ...) a `type`.
  tools: z.array(z.looseObject({ name: z.string().min(1) })).optional(),
  tool_choice: z.looseObject({ type: z.string() }).optional(),
});

export type CountTokensRequest = z.infer<typeof countTokensRequestSchema>;

/** The validated body, every field kept; a 400 ValidationError naming the field otherwise. */
export function decodeCountTokensRequest(body: unknown): CountTokensRequest {
  return parseBody(countTokensRequestSchema, body);
}
