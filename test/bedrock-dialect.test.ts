/** The Converse dialect's pure parts: what a canonical request becomes, and what Converse answers decode to. */
import { describe, expect, it } from 'vitest';
import type { StreamEvent } from '../src/core/canonical.ts';
import { ConverseStreamDecoder, decodeConverseResponse, decodeConverseUsage, encodeConverseRequest, isAnthropicModel } from '../src/dialects/bedrock/upstream.ts';

const NOVA = 'amazon.nova-pro-v1:0';
const CLAUDE = 'us.anthropic.claude-sonnet-4-5-20250929-v1:0';

describe('encodeConverseRequest', () => {
  it('puts cache markers as cachePoint blocks after what they mark, and documents as named bytes', () => {
    const body = encodeConverseRequest(
      {
        stream: false,
        messages: [
          { role: 'system', content: [{ type: 'text', text: 'Long rules.', cache: { type: 'ephemeral' } }] },
          { role: 'user', content: [{ type: 'document', url: 'data:application/pdf;base64,JVBERi0=', title: 'Q3 report.pdf' }, { type: 'text', text: 'Summarize.' }] },
        ],
        tools: [{ name: 'lookup', parameters: { type: 'object' }, cache: { type: 'ephemeral' } }],
      },
      CLAUDE,
    );
    expect(body.system).toEqual([{ text: 'Long rules.' }, { cachePoint: { type: 'default' } }]);
    expect((body.messages as any)[0].content).toEqual([{ document: { format: 'pdf', name: 'Q3 report pdf', source: { bytes: 'JVBERi0=' } } }, { text: 'Summarize.' }]);
    expect((body.toolConfig as any).tools).toEqual([{ toolSpec: { name: 'lookup', inputSchema: { json: { type: 'object' } } } }, { cachePoint: { type: 'default' } }]);
  });

  it('names what Converse cannot carry: a web image, tool_choice none, seed, penalties, response_format', () => {
    const dropped = new Set<string>();
    const body = encodeConverseRequest(
      {
        stream: false,
        messages: [{ role: 'user', content: [{ type: 'image', url: 'https://example.com/cat.png' }, { type: 'text', text: 'hi' }] }],
        tools: [{ name: 'lookup', parameters: { type: 'object' } }],
        toolChoice: 'none',
        seed: 1,
        presencePenalty: 0.5,
        responseFormat: { type: 'json_object' },
      },
      NOVA,
      dropped,
    );
    expect((body.messages as any)[0].content).toEqual([{ text: 'hi' }]);
    expect(body.toolConfig).toEqual({ tools: [{ toolSpec: { name: 'lookup', inputSchema: { json: { type: 'object' } } } }] });
    expect([...dropped].sort()).toEqual(['messages.content.image_url', 'presence_penalty', 'response_format', 'seed', 'tool_choice']);
  });

  it('maps tool choices and merges consecutive tool results into one user turn, results first', () => {
    const body = encodeConverseRequest(
      {
        stream: false,
        toolChoice: 'required',
        tools: [{ name: 'a', parameters: {} }],
        messages: [
          { role: 'user', content: 'go' },
          { role: 'assistant', content: '', toolCalls: [{ id: 't1', name: 'a', arguments: '{"x":1}' }, { id: 't2', name: 'a', arguments: 'not json' }] },
          { role: 'tool', toolCallId: 't1', content: 'one' },
          { role: 'tool', toolCallId: 't2', content: 'two', isError: true },
          { role: 'user', content: 'and?' },
        ],
      },
      NOVA,
    );
    expect((body.toolConfig as any).toolChoice).toEqual({ any: {} });
    expect(body.messages).toEqual([
      { role: 'user', content: [{ text: 'go' }] },
      { role: 'assistant', content: [{ toolUse: { toolUseId: 't1', name: 'a', input: { x: 1 } } }, { toolUse: { toolUseId: 't2', name: 'a', input: {} } }] },
      { role: 'user', content: [{ toolResult: { toolUseId: 't1', content: [{ text: 'one' }] } }, { toolResult: { toolUseId: 't2', content: [{ text: 'two' }], status: 'error' } }, { text: 'and?' }] },
    ]);
  });

  it("sends Claude's thinking and top_k in additionalModelRequestFields, and other families' not at all", () => {
    const claude = encodeConverseRequest({ stream: false, messages: [{ role: 'user', content: 'x' }], reasoning: { budgetTokens: 2000 }, topK: 5, temperature: 0.3 }, CLAUDE);
    expect(claude.additionalModelRequestFields).toEqual({ top_k: 5, thinking: { type: 'enabled', budget_tokens: 2000 } });
    // Claude refuses a temperature while thinking.
    expect(claude.inferenceConfig).toEqual({ maxTokens: 6096 });
    const dropped = new Set<string>();
    const nova = encodeConverseRequest({ stream: false, messages: [{ role: 'user', content: 'x' }], reasoning: { effort: 'high' }, topK: 5 }, NOVA, dropped);
    expect(nova.additionalModelRequestFields).toBeUndefined();
    expect([...dropped].sort()).toEqual(['reasoning', 'top_k']);
  });
});

describe('decoding Converse answers', () => {
  it('counts cache reads and writes as input, and reads signed reasoning as Anthropic thinking for Claude', () => {
    expect(decodeConverseUsage({ inputTokens: 10, outputTokens: 5, cacheReadInputTokens: 100, cacheWriteInputTokens: 20 })).toEqual({ inputTokens: 130, outputTokens: 5, cacheReadTokens: 100, cacheWriteTokens: 20 });
    const answer = decodeConverseResponse(
      { output: { message: { role: 'assistant', content: [{ reasoningContent: { reasoningText: { text: 'hm', signature: 'sig' } } }, { text: 'done' }] } }, stopReason: 'guardrail_intervened', usage: { inputTokens: 1, outputTokens: 2 } },
      'id-1',
      CLAUDE,
    );
    expect(answer).toMatchObject({ id: 'id-1', text: 'done', finishReason: 'content_filter', reasoning: [{ text: 'hm', signature: 'sig', origin: 'anthropic' }] });
  });

  it('streams: tool calls by block index, and the finish only after the metadata that carries usage', () => {
    const decoder = new ConverseStreamDecoder('id-2', NOVA);
    const out: StreamEvent[] = [];
    decoder.decode('messageStart', { }, out);
    decoder.decode('contentBlockDelta', { contentBlockIndex: 0, delta: { text: 'Let me look.' } }, out);
    decoder.decode('contentBlockStart', { contentBlockIndex: 1, start: { toolUse: { toolUseId: 't', name: 'lookup' } } }, out);
    decoder.decode('contentBlockDelta', { contentBlockIndex: 1, delta: { toolUse: { input: '{"q":' } } }, out);
    decoder.decode('contentBlockDelta', { contentBlockIndex: 1, delta: { toolUse: { input: '1}' } } }, out);
    decoder.decode('messageStop', { stopReason: 'tool_use' }, out);
    expect(decoder.done).toBe(false);
    decoder.decode('metadata', { usage: { inputTokens: 3, outputTokens: 4 } }, out);
    expect(decoder.done).toBe(true);
    expect(out).toEqual([
      { type: 'start', id: 'id-2', model: NOVA },
      { type: 'text', text: 'Let me look.' },
      { type: 'tool_call_start', index: 0, id: 't', name: 'lookup' },
      { type: 'tool_call_delta', index: 0, arguments: '{"q":' },
      { type: 'tool_call_delta', index: 0, arguments: '1}' },
      { type: 'usage', usage: { inputTokens: 3, outputTokens: 4 } },
      { type: 'finish', reason: 'tool_calls' },
    ]);
  });

  it('tells Anthropic model ids from others: foundation ids, cross-region profiles and foundation-model ARNs', () => {
    expect(isAnthropicModel('anthropic.claude-3-5-haiku-20241022-v1:0')).toBe(true);
    expect(isAnthropicModel('global.anthropic.claude-sonnet-4-5-20250929-v1:0')).toBe(true);
    expect(isAnthropicModel('arn:aws:bedrock:us-east-1::foundation-model/anthropic.claude-3-haiku-20240307-v1:0')).toBe(true);
    expect(isAnthropicModel('amazon.nova-pro-v1:0')).toBe(false);
    expect(isAnthropicModel('arn:aws:bedrock:us-east-1:123456789012:application-inference-profile/a1b2c3')).toBe(false);
  });
});
