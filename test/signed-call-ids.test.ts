/** Gemini's thought signatures in clients' call ids (src/core/signed-call-ids.ts): the encoding and its round trips. */
import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import type { CanonicalRequest } from '../src/core/canonical.ts';
import { readCallId, readSignedCallIds, signedCallId, withSignedCallId, withSignedCallIds } from '../src/core/signed-call-ids.ts';

describe('signed call ids', () => {
  it('round-trips every signature length (padding included) through ids of [A-Za-z0-9_-] only', () => {
    for (let n = 1; n < 70; n++) {
      const signature = randomBytes(n).toString('base64');
      const wire = signedCallId('call_1', signature);
      expect(wire).toMatch(/^call_1__thought__[A-Za-z0-9_-]+$/);
      expect(readCallId(wire)).toEqual({ id: 'call_1', signature });
    }
  });

  it('leaves ids without a signature alone, and ids that only look signed', () => {
    expect(signedCallId('toolu_01', undefined)).toBe('toolu_01');
    expect(readCallId('toolu_01')).toEqual({ id: 'toolu_01' });
    expect(readCallId('a__thought__not base64!')).toEqual({ id: 'a__thought__not base64!' });
  });

  it('splits a request into plain ids and signatures, lossless body included, and joins answers and stream starts back', () => {
    const wire = signedCallId('call_7', 'c2lnbmF0dXJl');
    const request: CanonicalRequest = {
      stream: false,
      messages: [
        { role: 'user', content: 'hi' },
        { role: 'assistant', content: '', toolCalls: [{ id: wire, name: 'f', arguments: '{}' }] },
        { role: 'tool', toolCallId: wire, content: 'ok' },
      ],
      lossless: {
        dialect: 'openai_chat',
        raw: '{}',
        headers: {},
        query: '',
        body: { model: 'm', messages: [{ role: 'assistant', tool_calls: [{ id: wire, type: 'function' }] }, { role: 'tool', tool_call_id: wire, content: 'ok' }] },
      },
    };
    readSignedCallIds(request);
    expect(request.messages[1].toolCalls?.[0]).toEqual({ id: 'call_7', name: 'f', arguments: '{}', signature: 'c2lnbmF0dXJl' });
    expect(request.messages[2].toolCallId).toBe('call_7');
    expect(request.lossless?.raw).toBeUndefined();
    expect(request.lossless?.body).toEqual({ model: 'm', messages: [{ role: 'assistant', tool_calls: [{ id: 'call_7', type: 'function' }] }, { role: 'tool', tool_call_id: 'call_7', content: 'ok' }] });

    const answer = { id: 'r', model: 'm', text: '', created: 0, finishReason: 'tool_calls' as const, usage: { inputTokens: 1, outputTokens: 1 }, toolCalls: [{ id: 'call_7', name: 'f', arguments: '{}', signature: 'c2lnbmF0dXJl' }] };
    expect(withSignedCallIds(answer).toolCalls).toEqual([{ id: wire, name: 'f', arguments: '{}' }]);
    // The cached answer itself is not changed.
    expect(answer.toolCalls[0].id).toBe('call_7');
    expect(withSignedCallId({ type: 'tool_call_start', index: 0, id: 'call_7', name: 'f', signature: 'c2lnbmF0dXJl' })).toEqual({ type: 'tool_call_start', index: 0, id: wire, name: 'f' });
  });
});
