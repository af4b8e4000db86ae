/** The Gemini upstream dialect's pure parts: canonical requests encoded, answers and streams decoded. */
import { describe, expect, it } from 'vitest';
import type { CanonicalRequest, StreamEvent } from '../src/core/canonical.ts';
import { decodeGenerateContentResponse, decodeUsage, encodeGenerateContentRequest, GenerateContentStreamDecoder, SKIP_THOUGHT_SIGNATURE } from '../src/dialects/gemini/upstream.ts';

const request = (over: Partial<CanonicalRequest>): CanonicalRequest => ({ messages: [{ role: 'user', content: 'hi' }], stream: false, ...over });

describe('encodeGenerateContentRequest', () => {
  it('sends each call back with the thought signature Gemini gave it; a step with none gets the placeholder on its first call', () => {
    const body = encodeGenerateContentRequest(
      request({
        messages: [
          { role: 'user', content: 'look both up' },
          { role: 'assistant', content: '', toolCalls: [{ id: 'a', name: 'first', arguments: '{}', signature: 'c2lnLWE=' }, { id: 'b', name: 'second', arguments: '{}' }] },
          { role: 'tool', toolCallId: 'a', content: 'one' },
          { role: 'tool', toolCallId: 'b', content: 'two' },
          { role: 'assistant', content: '', toolCalls: [{ id: 'c', name: 'third', arguments: '{}' }] },
          { role: 'tool', toolCallId: 'c', content: 'three' },
        ],
      }),
    );
    const models = (body.contents as { role: string; parts: unknown[] }[]).filter((c) => c.role === 'model');
    expect(models.map((c) => c.parts)).toEqual([
      [{ functionCall: { name: 'first', args: {} }, thoughtSignature: 'c2lnLWE=' }, { functionCall: { name: 'second', args: {} } }],
      [{ functionCall: { name: 'third', args: {} }, thoughtSignature: SKIP_THOUGHT_SIGNATURE }],
    ]);
  });

  it('joins the tool results of one turn into one user turn, names each by its call, and puts images a tool returned after its response', () => {
    const dropped = new Set<string>();
    const body = encodeGenerateContentRequest(
      request({
        messages: [
          { role: 'user', content: 'look both up' },
          { role: 'assistant', content: '', toolCalls: [{ id: 'a', name: 'first', arguments: '{"q":1}' }, { id: 'b', name: 'second', arguments: 'not json' }] },
          { role: 'tool', toolCallId: 'a', content: '{"temp": 21}' },
          { role: 'tool', toolCallId: 'b', content: [{ type: 'text', text: 'broken' }, { type: 'image', url: 'data:image/png;base64,AAAA' }], isError: true },
        ],
      }),
      dropped,
    );
    expect(body.contents).toEqual([
      { role: 'user', parts: [{ text: 'look both up' }] },
      {
        role: 'model',
        parts: [
          { functionCall: { name: 'first', args: { q: 1 } }, thoughtSignature: SKIP_THOUGHT_SIGNATURE },
          // Only a step's first call is signed (Google's rule for parallel calls).
          { functionCall: { name: 'second', args: {} } },
        ],
      },
      {
        role: 'user',
        parts: [
          { functionResponse: { name: 'first', response: { temp: 21 } } },
          { functionResponse: { name: 'second', response: { error: 'broken' } } },
          { inlineData: { mimeType: 'image/png', data: 'AAAA' } },
        ],
      },
    ]);
    expect([...dropped]).toEqual([]);
  });

  it('names what Gemini has no place for', () => {
    const dropped = new Set<string>();
    const body = encodeGenerateContentRequest(
      request({
        messages: [
          { role: 'system', content: [{ type: 'text', text: 'sys', cache: { type: 'ephemeral' } }] },
          { role: 'user', name: 'ann', content: [{ type: 'image', url: 'https://example.com/a.png' }, { type: 'document', fileId: 'file-1' }, { type: 'text', text: 'q' }] },
          { role: 'assistant', content: 'a', reasoning: [{ text: 'thought', signature: 's', origin: 'anthropic' }] },
          { role: 'user', content: 'again' },
        ],
        tools: [{ name: 't', parameters: { type: 'object' }, strict: true }],
        parallelToolCalls: false,
        user: 'u',
        promptCacheKey: 'k',
      }),
      dropped,
    );
    expect(body.systemInstruction).toEqual({ parts: [{ text: 'sys' }] });
    expect((body.contents as { parts: unknown[] }[])[0].parts).toEqual([{ text: 'q' }]);
    expect([...dropped].sort()).toEqual(
      ['cache_control', 'messages.content.document.file_id', 'messages.content.image.url', 'messages.name', 'messages.reasoning', 'parallel_tool_calls', 'prompt_cache_key', 'tools.strict', 'user'].sort(),
    );
  });

  it('maps reasoning settings to thinkingConfig and tool choices to functionCallingConfig', () => {
    const config = (reasoning: CanonicalRequest['reasoning']) => (encodeGenerateContentRequest(request({ reasoning })).generationConfig as Record<string, unknown>).thinkingConfig;
    expect(config({ budgetTokens: 5000 })).toEqual({ includeThoughts: true, thinkingBudget: 5000 });
    expect(config({ effort: 'high' })).toEqual({ includeThoughts: true, thinkingBudget: 24576 });
    expect(config({ adaptive: true })).toEqual({ includeThoughts: true, thinkingBudget: -1 });
    expect(config({ off: true })).toEqual({ thinkingBudget: 0 });
    const choice = (toolChoice: CanonicalRequest['toolChoice']) => encodeGenerateContentRequest(request({ toolChoice })).toolConfig;
    expect(choice('auto')).toEqual({ functionCallingConfig: { mode: 'AUTO' } });
    expect(choice('none')).toEqual({ functionCallingConfig: { mode: 'NONE' } });
    expect(choice('required')).toEqual({ functionCallingConfig: { mode: 'ANY' } });
    expect(encodeGenerateContentRequest(request({ responseFormat: { type: 'json_object' } })).generationConfig).toEqual({ responseMimeType: 'application/json' });
  });
});

describe('thought signatures on answers', () => {
  it('keeps the signature of a call part, whole and streamed', () => {
    const json = { candidates: [{ content: { role: 'model', parts: [{ functionCall: { name: 'f', args: {} }, thoughtSignature: 'c2ln' }, { functionCall: { name: 'g', args: {} } }] }, finishReason: 'STOP' }] };
    const whole = decodeGenerateContentResponse(json, 'gemini-3-pro-preview', 'r1');
    expect(whole.toolCalls.map((c) => c.signature)).toEqual(['c2ln', undefined]);
    const out: StreamEvent[] = [];
    new GenerateContentStreamDecoder('r1', 'gemini-3-pro-preview').decode(json, out);
    expect(out.filter((e) => e.type === 'tool_call_start')).toEqual([
      { type: 'tool_call_start', index: 0, id: 'call_r1_0', name: 'f', signature: 'c2ln' },
      { type: 'tool_call_start', index: 1, id: 'call_r1_1', name: 'g' },
    ]);
  });
});

describe('decoding answers', () => {
  it('reads thoughts, text and calls, with output tokens counting the thoughts', () => {
    const answer = decodeGenerateContentResponse(
      {
        candidates: [{ content: { parts: [{ text: 'hmm', thought: true }, { text: 'Hi' }, { functionCall: { name: 'f', args: { a: 1 } } }, { functionCall: { name: 'g', id: 'own-id' } }] }, finishReason: 'STOP' }],
        usageMetadata: { promptTokenCount: 10, candidatesTokenCount: 4, thoughtsTokenCount: 6, cachedContentTokenCount: 8 },
        modelVersion: 'gemini-2.5-pro',
        responseId: 'r1',
      },
      'fallback',
      'gen-x',
    );
    expect(answer).toMatchObject({ id: 'r1', model: 'gemini-2.5-pro', text: 'Hi', finishReason: 'tool_calls', reasoning: [{ text: 'hmm' }] });
    expect(answer.toolCalls).toEqual([
      { id: 'call_gen-x_0', name: 'f', arguments: '{"a":1}' },
      { id: 'own-id', name: 'g', arguments: '{}' },
    ]);
    expect(answer.usage).toEqual({ inputTokens: 10, outputTokens: 10, cacheReadTokens: 8, reasoningTokens: 6 });
  });

  it('reads safety and length stops', () => {
    expect(decodeGenerateContentResponse({ promptFeedback: { blockReason: 'PROHIBITED_CONTENT' } }, 'm', 'i').finishReason).toBe('content_filter');
    expect(decodeGenerateContentResponse({ candidates: [{ finishReason: 'RECITATION' }] }, 'm', 'i').finishReason).toBe('content_filter');
    expect(decodeGenerateContentResponse({ candidates: [{ finishReason: 'MAX_TOKENS' }] }, 'm', 'i').finishReason).toBe('length');
    expect(decodeUsage(undefined)).toEqual({ inputTokens: 0, outputTokens: 0 });
  });

  it('streams: one start, calls numbered in order, the last usage and the finish at the end', () => {
    const decoder = new GenerateContentStreamDecoder('gen-1', 'm');
    const out: StreamEvent[] = [];
    decoder.decode({ candidates: [{ content: { parts: [{ text: 'a' }] } }], usageMetadata: { promptTokenCount: 3 } }, out);
    decoder.decode({ candidates: [{ content: { parts: [{ functionCall: { name: 'f', args: {} } }, { functionCall: { name: 'g', args: { x: 1 } } }] }, finishReason: 'STOP' }], usageMetadata: { promptTokenCount: 3, candidatesTokenCount: 5 } }, out);
    expect(decoder.finished).toBe(true);
    decoder.end(out);
    expect(out).toEqual([
      { type: 'start', id: 'gen-1', model: 'm' },
      { type: 'text', text: 'a' },
      { type: 'tool_call_start', index: 0, id: 'call_gen-1_0', name: 'f' },
      { type: 'tool_call_delta', index: 0, arguments: '{}' },
      { type: 'tool_call_start', index: 1, id: 'call_gen-1_1', name: 'g' },
      { type: 'tool_call_delta', index: 1, arguments: '{"x":1}' },
      { type: 'usage', usage: { inputTokens: 3, outputTokens: 5 } },
      { type: 'finish', reason: 'tool_calls' },
    ]);
  });
});
