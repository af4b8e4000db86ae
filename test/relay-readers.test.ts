/**
 * The lossless lane's stream readers estimate how much answer a stream carried (for a stream whose usage never
 * comes) without parsing most of its events: the estimate must match the text the events really hold.
 */
import { describe, expect, it } from 'vitest';
import type { StreamEvent } from '../src/core/canonical.ts';
import type { LosslessRequest } from '../src/core/lossless.ts';
import { ANTHROPIC_RELAY } from '../src/dialects/anthropic/relay.ts';
import { OPENAI_CHAT_RELAY } from '../src/dialects/openai/relay.ts';

const request = (dialect: LosslessRequest['dialect'], body: Record<string, unknown>): LosslessRequest => ({ dialect, body, headers: {}, query: '' });

describe('answer characters read off relayed frames', () => {
  it('Anthropic: text, thinking and tool-input deltas, escapes and other shapes included', () => {
    const reader = ANTHROPIC_RELAY.streamReader(request('anthropic_messages', { stream: true }), 'claude-x');
    const out: StreamEvent[] = [];
    const pieces = [
      { type: 'thinking_delta', thinking: 'Let me think' },
      { type: 'signature_delta', signature: 'c2lnbmF0dXJl' },
      { type: 'text_delta', text: 'Hello, "world"\n' },
      { type: 'text_delta', text: 'ünïcödé ✓' },
      { type: 'input_json_delta', partial_json: '{"city": "Par' },
      { type: 'citations_delta', citation: { type: 'char_location', cited_text: 'x' } },
    ];
    pieces.forEach((delta, index) => reader.read({ event: 'content_block_delta', data: JSON.stringify({ type: 'content_block_delta', index, delta }) }, out));
    const text = 'Let me think' + 'Hello, "world"\n' + 'ünïcödé ✓' + '{"city": "Par';
    // Each JSON escape (seven here: \" and \n) is a character more in the frame: an estimate's slack, never less.
    expect(reader.outputChars).toBeGreaterThanOrEqual(text.length);
    expect(reader.outputChars).toBeLessThanOrEqual(text.length + 7);
  });

  it('OpenAI chat: plain chunks go unparsed, their text estimated from the chunks that were', () => {
    const reader = OPENAI_CHAT_RELAY.streamReader(request('openai_chat', { stream: true }), 'gpt-x');
    const out: StreamEvent[] = [];
    const chunk = (delta: object, finish: string | null = null, usage?: object) =>
      JSON.stringify({ id: 'chatcmpl-1', object: 'chat.completion.chunk', created: 1, model: 'gpt-x', choices: [{ index: 0, delta, logprobs: null, finish_reason: finish }], ...(usage ? { usage } : {}) });
    const words = ['Hello', ' there', ', how', ' are', ' you', ' today', '?'];
    reader.read({ data: chunk({ role: 'assistant', content: '' }) }, out);
    for (const word of words) reader.read({ data: chunk({ content: word }) }, out);
    reader.read({ data: chunk({}, 'stop') }, out);
    reader.read({ data: '[DONE]' }, out);
    expect(reader.outputChars).toBe(words.join('').length);
    expect(reader.complete).toBe(true);
    expect(out).toEqual([{ type: 'finish', reason: 'stop' }]);
  });
});
