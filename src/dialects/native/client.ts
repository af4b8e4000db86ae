/**
 * Hapax's own completion API (/v1/completion, /v1/completions): `messages` or `input`, an optional
 * `function_description` given to the model as system guidance, answers `{completion, request_id, ...}`.
 */
import { z } from 'zod';
import type { CanonicalMessage, CanonicalRequest, CanonicalResponse, StreamEvent } from '../../core/canonical.ts';
import { AnswerCollector } from '../../core/answer.ts';
import { validationError } from '../../core/errors.ts';
import { encodeUsage } from '../openai/client.ts';
import { parseBody } from '../validate.ts';

export const nativeRequestSchema = z.looseObject({
  messages: z
    .array(
      z.looseObject({
        role: z.enum(['system', 'user', 'assistant']),
        content: z.string(),
      }),
    )
    .min(1, 'messages must contain at least one message')
    .optional(),
  input: z.string().min(1, 'input must not be empty').optional(),
  function_description: z.string().optional(),
  model: z.string().optional(),
  stream: z.boolean().optional(),
  max_tokens: z.number().int().positive().optional(),
  temperature: z.number().min(0).max(2).optional(),
  top_p: z.number().min(0).max(1).optional(),
  reasoning_effort: z.enum(['none', 'minimal', 'low', 'medium', 'high', 'xhigh']).optional(),
});

/** Request fields the canonical model carries; any other is reported as dropped. */
const KNOWN_FIELDS = new Set(['messages', 'input', 'function_description', 'model', 'stream', 'max_tokens', 'temperature', 'top_p', 'reasoning_effort']);

export function decodeNativeRequest(body: unknown): CanonicalRequest {
  const req = parseBody(nativeRequestSchema, body);
  if (!req.messages && req.input === undefined) throw validationError('either messages or input is required', 'messages');
  const messages: CanonicalMessage[] = [];
  if (req.function_description) messages.push({ role: 'system', content: req.function_description });
  if (req.messages) for (const m of req.messages) messages.push({ role: m.role, content: m.content });
  else messages.push({ role: 'user', content: req.input as string });
  const unsupported = Object.keys(body as object).filter((key) => !KNOWN_FIELDS.has(key));
  const effort = req.reasoning_effort;
  return {
    model: req.model || undefined,
    messages,
    stream: req.stream === true,
    maxTokens: req.max_tokens,
    temperature: req.temperature,
    topP: req.top_p,
    reasoning: effort === undefined ? undefined : effort === 'none' ? { off: true } : { effort },
    unsupported: unsupported.length > 0 ? unsupported : undefined,
  };
}

export interface NativeMeta {
  requestId: string;
  provider: string;
  model: string;
}

export function encodeNativeResponse(res: CanonicalResponse, meta: NativeMeta) {
  return {
    completion: res.text,
    request_id: meta.requestId,
    provider: meta.provider,
    model: res.model || meta.model,
    finish_reason: res.finishReason,
    usage: encodeUsage(res.usage),
    ...(res.reasoning?.length ? { reasoning: res.reasoning.map((b) => b.text).join('') } : {}),
  };
}

/** Native streams: `data: {"type":"delta","text":...}` frames, then one `{"type":"done",...}` frame with the whole text. */
export class NativeStreamEncoder {
  private readonly meta: NativeMeta;
  private readonly answer: AnswerCollector;
  constructor(meta: NativeMeta) {
    this.meta = meta;
    this.answer = new AnswerCollector(meta.model);
  }

  encode(event: StreamEvent): string {
    this.answer.add(event);
    if (event.type === 'text') return `data: {"type":"delta","text":${JSON.stringify(event.text)}}\n\n`;
    if (event.type === 'reasoning') return `data: {"type":"reasoning","text":${JSON.stringify(event.text)}}\n\n`;
    if (event.type !== 'finish') return '';
    const whole = this.answer.answer() as CanonicalResponse;
    return `data: ${JSON.stringify({
      type: 'done',
      completion: whole.text,
      request_id: this.meta.requestId,
      provider: this.meta.provider,
      model: this.meta.model,
      finish_reason: event.reason,
      usage: encodeUsage(whole.usage),
      ...(whole.reasoning?.length ? { reasoning: whole.reasoning.map((b) => b.text).join('') } : {}),
    })}\n\n`;
  }
}
