/**
 * What both sides of Ollama's native API use.
 *
 * Where Ollama differs from the canonical model: tool calls have no ids and carry their arguments as a
 * JSON object, images are bare base64 strings beside the text, sampling settings sit under `options`,
 * `format` is "json" or a JSON schema, and a chat streams NDJSON unless `stream` is false.
 */
import type { FinishReason, ToolCall, Usage } from '../../core/canonical.ts';
import { argumentsObject } from '../../core/canonical.ts';
import { validationError } from '../../core/errors.ts';

export const NDJSON_CONTENT_TYPE = 'application/x-ndjson';
/** The Ollama API level Hapax speaks; clients gate features (tools, structured outputs) on this. */
export const OLLAMA_API_VERSION = '0.9.0';

/** Some clients send arguments already serialized; keep those as they are. */
export const argumentsText = (args: unknown): string => (typeof args === 'string' ? args : JSON.stringify(args ?? {}));

/** Ollama has no tool-call ids: derive them from the call's position so the same conversation gets the same ids. */
export const toolCallId = (n: number): string => `call_${n}`;

export function encodeToolCalls(calls: Iterable<Pick<ToolCall, 'name' | 'arguments'>>) {
  return Array.from(calls, (c) => ({ function: { name: c.name, arguments: argumentsObject(c.arguments) } }));
}

/** Ollama says "stop" after tool calls too; the canonical reason says why the model stopped. */
export function decodeDoneReason(reason: string | undefined, madeToolCalls: boolean): FinishReason {
  if (reason === 'length') return 'length';
  return madeToolCalls ? 'tool_calls' : 'stop';
}
export const encodeDoneReason = (reason: FinishReason): string => (reason === 'length' ? 'length' : 'stop');

export interface OllamaCounts {
  prompt_eval_count?: number;
  eval_count?: number;
}
export const decodeUsage = (json: OllamaCounts): Usage => ({ inputTokens: json.prompt_eval_count ?? 0, outputTokens: json.eval_count ?? 0 });
export const encodeCounts = (usage: Usage) => ({ prompt_eval_count: usage.inputTokens, eval_count: usage.outputTokens });

/** Canonical images are URLs; Ollama takes bare base64, so the media type is read back from the bytes. */
export const IMAGE_SIGNATURES: ReadonlyArray<[prefix: string, mediaType: string]> = [
  ['iVBORw0KGgo', 'image/png'],
  ['/9j/', 'image/jpeg'],
  ['R0lGOD', 'image/gif'],
  ['UklGR', 'image/webp'],
];
export function base64ToDataUrl(base64: string): string {
  const mediaType = IMAGE_SIGNATURES.find(([prefix]) => base64.startsWith(prefix))?.[1] ?? 'application/octet-stream';
  return `data:${mediaType};base64,${base64}`;
}
export function dataUrlToBase64(url: string): string {
  const match = /^data:[^,;]*(?:;[^,;]*)*;base64,/i.exec(url);
  // Ollama cannot fetch URLs; downloading on its behalf would let clients make the gateway fetch anything.
  if (!match) throw validationError('Ollama accepts images only inline, as base64 data: URLs', 'messages');
  return url.slice(match[0].length);
}
