/**
 * The translated lane's pure parts: each client decoder and each upstream encoder/decoder, for what 2026
 * models do (reasoning, prompt caching, cached and reasoning usage, documents, tool-result images,
 * stop sequences, parallel tool calls, structured output), and what each target drops.
 */
import { describe, expect, it } from 'vitest';
import { decodeMessagesRequest, encodeMessagesResponse, MessageStreamEncoder } from '../src/dialects/anthropic/client.ts';
import { decodeMessagesResponse, encodeMessagesRequest, MessagesStreamDecoder, type AnthropicStreamEvent } from '../src/dialects/anthropic/upstream.ts';
import { decodeChatRequest as decodeOllamaRequest, encodeChatResponse as encodeOllamaResponse } from '../src/dialects/ollama/client.ts';
import { decodeChatResponse as decodeOllamaResponse, encodeChatRequest as encodeOllamaRequest } from '../src/dialects/ollama/upstream.ts';
import { ChunkEncoder, decodeChatRequest, encodeChatResponse } from '../src/dialects/openai/client.ts';
import { decodeChatResponse, decodeChunk, encodeChatRequest } from '../src/dialects/openai/upstream.ts';
import { AnswerCollector, answerEvents } from '../src/core/answer.ts';
import type { CanonicalRequest, StreamEvent } from '../src/core/canonical.ts';
import { budgetEffort, EFFORT_BUDGET, openaiEffort, thinkingBudget } from '../src/core/reasoning.ts';
import { costUsd } from '../src/observability/usage.ts';

const PDF = 'JVBERi0xLjQKJcfsj6IKNSAwIG9iago=';
const PNG = 'iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg==';
const EPHEMERAL = { type: 'ephemeral' } as const;

/** What Claude Code sends on a turn that answers a tool call, trimmed to the parts that matter here. */
function claudeCodeTurn(extra: Record<string, unknown> = {}) {
  return {
    model: 'claude-sonnet-4-5',
    max_tokens: 32000,
    thinking: { type: 'enabled', budget_tokens: 10000 },
    metadata: { user_id: 'user_abc' },
    system: [
      { type: 'text', text: 'You are Claude Code.' },
      { type: 'text', text: 'Project rules.', cache_control: EPHEMERAL },
    ],
    tools: [{ name: 'Read', description: 'Read a file', input_schema: { type: 'object', properties: { path: { type: 'string' } } }, cache_control: EPHEMERAL }],
    messages: [
      { role: 'user', content: [{ type: 'document', source: { type: 'base64', media_type: 'application/pdf', data: PDF }, title: 'spec' }, { type: 'text', text: 'read it' }] },
      {
        role: 'assistant',
        content: [
          { type: 'thinking', thinking: 'I should read the file.', signature: 'sig-abc' },
          { type: 'redacted_thinking', data: 'opaque' },
          { type: 'tool_use', id: 'toolu_1', name: 'Read', input: { path: 'a.png' } },
        ],
      },
      {
        role: 'user',
        content: [
          { type: 'tool_result', tool_use_id: 'toolu_1', is_error: true, content: [{ type: 'text', text: 'the picture' }, { type: 'image', source: { type: 'base64', media_type: 'image/png', data: PNG } }], cache_control: EPHEMERAL },
        ],
      },
    ],
    ...extra,
  };
}

describe('reasoning settings between effort levels and thinking budgets', () => {
  it('maps effort to a budget and a budget back to the nearest of low/medium/high', () => {
    expect(EFFORT_BUDGET).toMatchObject({ low: 2048, medium: 8192, high: 24576 });
    expect([1024, 4095, 4096, 16383, 16384, 64000].map(budgetEffort)).toEqual(['low', 'low', 'medium', 'medium', 'high', 'high']);
    for (const effort of ['low', 'medium', 'high'] as const) expect(budgetEffort(EFFORT_BUDGET[effort])).toBe(effort);
    expect(openaiEffort({ effort: 'max' })).toBe('xhigh');
    expect(openaiEffort({ adaptive: true })).toBeUndefined();
    expect(openaiEffort({ off: true, effort: 'high' })).toBeUndefined();
    expect(thinkingBudget({ effort: 'minimal' })).toBe(1024);
    expect(thinkingBudget({ budgetTokens: 5000, effort: 'high' })).toBe(5000);
  });
});

describe('Anthropic client → canonical', () => {
  it('keeps thinking, cache markers, documents, tool-result images, signatures and the parallel switch', () => {
    const req = decodeMessagesRequest(claudeCodeTurn({ tool_choice: { type: 'auto', disable_parallel_tool_use: true }, context_management: { edits: [] } }));
    expect(req.reasoning).toEqual({ budgetTokens: 10000 });
    expect(req.user).toBe('user_abc');
    expect(req.parallelToolCalls).toBe(false);
    expect(req.unsupported).toEqual(['context_management']);
    expect(req.messages[0]).toEqual({ role: 'system', content: [{ type: 'text', text: 'You are Claude Code.' }, { type: 'text', text: 'Project rules.', cache: EPHEMERAL }] });
    expect(req.tools?.[0].cache).toEqual(EPHEMERAL);
    expect(req.messages[1].content).toEqual([{ type: 'document', url: `data:application/pdf;base64,${PDF}`, title: 'spec' }, { type: 'text', text: 'read it' }]);
    expect(req.messages[2].reasoning).toEqual([
      { text: 'I should read the file.', signature: 'sig-abc', origin: 'anthropic' },
      { text: '', redacted: 'opaque', origin: 'anthropic' },
    ]);
    expect(req.messages[3]).toMatchObject({ role: 'tool', toolCallId: 'toolu_1', cache: EPHEMERAL, isError: true, content: [{ type: 'text', text: 'the picture' }, { type: 'image', url: `data:image/png;base64,${PNG}` }] });
  });

  it('accepts document sources and thinking types it does not know, and reports them dropped', () => {
    const req = decodeMessagesRequest({
      max_tokens: 10,
      thinking: { type: 'telepathic' },
      messages: [{ role: 'user', content: [{ type: 'document', source: { type: 'hologram', id: 'h1' } }, { type: 'document', source: { type: 'content', content: [{ type: 'text', text: 'clause 1' }] } }, { type: 'text', text: 'x' }] }],
    });
    expect(req.unsupported).toEqual(['thinking']);
    expect(req.reasoning).toBeUndefined();
    const dropped = new Set<string>();
    const sent = encodeMessagesRequest(req, 'claude', 4096, dropped);
    expect((sent.messages as any[])[0].content[0]).toEqual({ type: 'document', source: { type: 'text', media_type: 'text/plain', data: 'clause 1' } });
    expect([...dropped]).toEqual(['messages.content.document']);
  });

  it('reads adaptive thinking with an effort, disabled thinking, and a plain system prompt as one string', () => {
    const adaptive = decodeMessagesRequest({ max_tokens: 10, thinking: { type: 'adaptive' }, output_config: { effort: 'high' }, system: [{ type: 'text', text: 'a' }, { type: 'text', text: 'b' }], messages: [{ role: 'user', content: 'x' }] });
    expect(adaptive.reasoning).toEqual({ adaptive: true, effort: 'high' });
    expect(adaptive.messages[0].content).toBe('a\nb');
    expect(decodeMessagesRequest({ max_tokens: 10, thinking: { type: 'disabled' }, messages: [{ role: 'user', content: 'x' }] }).reasoning).toEqual({ off: true });
    // An effort without thinking stays that for Anthropic, and is a reasoning effort elsewhere.
    const effortOnly = decodeMessagesRequest({ max_tokens: 100, output_config: { effort: 'low' }, messages: [{ role: 'user', content: 'x' }] });
    expect(effortOnly.reasoning).toEqual({ effort: 'low', effortOnly: true });
    const toAnthropic = encodeMessagesRequest(effortOnly, 'claude', 4096);
    expect(toAnthropic).toMatchObject({ max_tokens: 100, output_config: { effort: 'low' } });
    expect(toAnthropic.thinking).toBeUndefined();
    expect(encodeChatRequest(effortOnly, 'gpt-5').reasoning_effort).toBe('low');
  });
});

describe('canonical → Anthropic upstream', () => {
  it('sends an Anthropic turn back with its markers, signed thinking and documents unchanged', () => {
    const body = claudeCodeTurn();
    const dropped = new Set<string>();
    const sent = encodeMessagesRequest(decodeMessagesRequest(body), 'claude-sonnet-4-5', 4096, dropped);
    expect(sent.system).toEqual(body.system);
    expect(sent.tools).toEqual(body.tools);
    expect(sent.thinking).toEqual(body.thinking);
    expect(sent.metadata).toEqual(body.metadata);
    expect(sent.messages).toEqual(body.messages);
    expect([...dropped]).toEqual([]);
  });

  it('turns reasoning_effort into a thinking budget that fits max_tokens, and drops what thinking rules out', () => {
    const req = decodeChatRequest({ model: 'x', reasoning_effort: 'high', temperature: 0.3, max_completion_tokens: 10000, messages: [{ role: 'user', content: 'hi' }] });
    const dropped = new Set<string>();
    const sent = encodeMessagesRequest(req, 'claude', 4096, dropped);
    expect(sent.thinking).toEqual({ type: 'enabled', budget_tokens: 9999 });
    expect(sent.temperature).toBeUndefined();
    expect([...dropped]).toEqual(['temperature']);
    // Without a cap from the client, the budget comes on top of the default max_tokens.
    const uncapped = encodeMessagesRequest(decodeChatRequest({ model: 'x', reasoning_effort: 'high', messages: [{ role: 'user', content: 'hi' }] }), 'claude', 4096);
    expect(uncapped).toMatchObject({ max_tokens: 24576 + 4096, thinking: { type: 'enabled', budget_tokens: 24576 } });
  });

  it('drops reasoning that cannot fit (max_tokens too small, or a forced tool)', () => {
    const dropped = new Set<string>();
    const sent = encodeMessagesRequest(decodeChatRequest({ model: 'x', reasoning_effort: 'medium', max_tokens: 500, messages: [{ role: 'user', content: 'hi' }] }), 'claude', 4096, dropped);
    expect(sent.thinking).toBeUndefined();
    expect([...dropped]).toEqual(['reasoning']);
  });

  it('uses output_config.format for a JSON schema instead of a system-prompt instruction', () => {
    const schema = { type: 'object', properties: { city: { type: 'string' } }, required: ['city'], additionalProperties: false };
    const req = decodeChatRequest({ model: 'x', response_format: { type: 'json_schema', json_schema: { name: 'place', schema, strict: true } }, messages: [{ role: 'user', content: 'hi' }] });
    const sent = encodeMessagesRequest(req, 'claude', 4096);
    expect(sent.output_config).toEqual({ format: { type: 'json_schema', schema } });
    expect(sent.system).toBeUndefined();
  });

  it('maps parallel_tool_calls, user, file parts and names what Anthropic has no place for', () => {
    const req = decodeChatRequest({
      model: 'x',
      user: 'u-1',
      seed: 7,
      prompt_cache_key: 'k',
      logit_bias: { 1: 2 },
      parallel_tool_calls: false,
      tools: [{ type: 'function', function: { name: 'f', parameters: { type: 'object' }, strict: true } }],
      messages: [
        { role: 'user', content: [{ type: 'file', file: { file_data: `data:application/pdf;base64,${PDF}`, filename: 'a.pdf' } }, { type: 'text', text: 'sum up' }] },
        { role: 'assistant', content: 'ok', reasoning_content: 'unsigned thoughts' },
        { role: 'user', content: 'go' },
      ],
    });
    expect(req.unsupported).toEqual(['logit_bias']);
    const dropped = new Set<string>();
    const sent = encodeMessagesRequest(req, 'claude', 4096, dropped);
    expect(sent.tool_choice).toEqual({ type: 'auto', disable_parallel_tool_use: true });
    expect(sent.tools).toEqual([{ name: 'f', input_schema: { type: 'object' }, strict: true }]);
    expect(sent.metadata).toEqual({ user_id: 'u-1' });
    expect((sent.messages as any[])[0].content[0]).toEqual({ type: 'document', source: { type: 'base64', media_type: 'application/pdf', data: PDF } });
    // Unsigned reasoning never goes to Anthropic: it would be refused.
    expect((sent.messages as any[])[1]).toEqual({ role: 'assistant', content: 'ok' });
    expect([...dropped].sort()).toEqual(['messages.reasoning', 'seed']);
    // prompt_cache_key becomes cache breakpoints: the end of the last turn (there is no system prompt here).
    expect((sent.messages as any[])[2]).toEqual({ role: 'user', content: [{ type: 'text', text: 'go', cache_control: EPHEMERAL }] });
  });

  it('marks the system prompt and the last turn for caching when prompt_cache_key comes without markers', () => {
    const req = decodeChatRequest({ model: 'x', prompt_cache_key: 'k', messages: [{ role: 'system', content: 'rules' }, { role: 'user', content: [{ type: 'text', text: 'hi' }] }] });
    const sent = encodeMessagesRequest(req, 'claude', 4096);
    expect(sent.system).toEqual([{ type: 'text', text: 'rules', cache_control: EPHEMERAL }]);
    expect(sent.messages).toEqual([{ role: 'user', content: [{ type: 'text', text: 'hi', cache_control: EPHEMERAL }] }]);
    // The client's own markers are left as they are.
    const own = encodeMessagesRequest({ ...decodeMessagesRequest(claudeCodeTurn()), promptCacheKey: 'k' }, 'claude', 4096);
    expect(own.system).toEqual(claudeCodeTurn().system);
  });
});

describe('canonical → OpenAI-type upstream', () => {
  it('carries a Claude Code turn as far as Chat Completions can, and names the rest', () => {
    const dropped = new Set<string>();
    const sent = encodeChatRequest(decodeMessagesRequest(claudeCodeTurn()), 'gpt-5', dropped);
    expect(sent.reasoning_effort).toBe('medium');
    expect(sent.max_completion_tokens).toBe(32000);
    expect(sent.max_tokens).toBeUndefined();
    expect(sent.user).toBe('user_abc');
    const messages = sent.messages as any[];
    expect(messages[0]).toEqual({ role: 'system', content: 'You are Claude Code.\nProject rules.' });
    expect(messages[1].content[0]).toEqual({ type: 'file', file: { file_data: `data:application/pdf;base64,${PDF}`, filename: 'spec' } });
    expect(messages[2]).toMatchObject({ role: 'assistant', content: null, tool_calls: [{ id: 'toolu_1' }] });
    // The tool's image follows the tool message in a user message, where Chat Completions accepts images.
    expect(messages[3]).toEqual({ role: 'tool', content: 'the picture', tool_call_id: 'toolu_1' });
    expect(messages[4]).toEqual({ role: 'user', content: [{ type: 'text', text: 'The result of tool call toolu_1 includes:' }, { type: 'image_url', image_url: { url: `data:image/png;base64,${PNG}` } }] });
    expect([...dropped].sort()).toEqual(['cache_control', 'messages.is_error', 'messages.reasoning']);
  });

  it('passes prompt_cache_key and parallel_tool_calls on, and drops document URLs it cannot fetch', () => {
    const dropped = new Set<string>();
    const req: CanonicalRequest = {
      messages: [{ role: 'user', content: [{ type: 'document', url: 'https://example.com/a.pdf' }, { type: 'text', text: 'hi' }] }],
      stream: false,
      promptCacheKey: 'repo-1',
      parallelToolCalls: false,
      tools: [{ name: 'f', parameters: { type: 'object' } }],
    };
    const sent = encodeChatRequest(req, 'gpt-5', dropped);
    expect(sent).toMatchObject({ prompt_cache_key: 'repo-1', parallel_tool_calls: false, messages: [{ role: 'user', content: [{ type: 'text', text: 'hi' }] }] });
    expect([...dropped]).toEqual(['messages.content.document.url']);
  });
});

describe('upstream answers → canonical → client answers', () => {
  const anthropicAnswer = {
    id: 'msg_1',
    model: 'claude',
    content: [
      { type: 'thinking', thinking: 'Let me see.', signature: 'sig-1' },
      { type: 'redacted_thinking', data: 'enc' },
      { type: 'text', text: 'Hello' },
    ],
    stop_reason: 'stop_sequence',
    stop_sequence: 'END',
    usage: { input_tokens: 10, cache_creation_input_tokens: 20, cache_read_input_tokens: 70, output_tokens: 5 },
  };

  it('keeps an Anthropic answer whole for an Anthropic client: signatures, stop_sequence, cache counts', () => {
    const res = decodeMessagesResponse(anthropicAnswer, 'claude');
    expect(res.usage).toEqual({ inputTokens: 100, outputTokens: 5, cacheReadTokens: 70, cacheWriteTokens: 20 });
    expect(res.stopSequence).toBe('END');
    const back = encodeMessagesResponse(res);
    expect(back.content).toEqual(anthropicAnswer.content);
    expect(back).toMatchObject({ stop_reason: 'stop_sequence', stop_sequence: 'END', usage: anthropicAnswer.usage });
  });

  it('gives an OpenAI client the reasoning text and the cached tokens', () => {
    const out = encodeChatResponse(decodeMessagesResponse(anthropicAnswer, 'claude'));
    expect(out.choices[0].message).toMatchObject({ content: 'Hello', reasoning_content: 'Let me see.' });
    expect(out.usage).toEqual({ prompt_tokens: 100, completion_tokens: 5, total_tokens: 105, prompt_tokens_details: { cached_tokens: 70 } });
  });

  it('reads reasoning_content (or reasoning), token details and vLLM stop_reason from an OpenAI-type answer', () => {
    const res = decodeChatResponse(
      {
        choices: [{ message: { content: 'Hi', reasoning_content: 'hmm' }, finish_reason: 'stop', stop_reason: '###' }],
        usage: { prompt_tokens: 50, completion_tokens: 9, prompt_tokens_details: { cached_tokens: 40 }, completion_tokens_details: { reasoning_tokens: 4 } },
      },
      'gpt',
    );
    expect(res).toMatchObject({ text: 'Hi', reasoning: [{ text: 'hmm' }], stopSequence: '###', usage: { inputTokens: 50, outputTokens: 9, cacheReadTokens: 40, reasoningTokens: 4 } });
    expect(decodeChatResponse({ choices: [{ message: { content: '', reasoning: 'or so' } }] }, 'gpt').reasoning).toEqual([{ text: 'or so' }]);
    // An Anthropic client sees the reasoning as a thinking block without a signature, and the cache split.
    const anthropic = encodeMessagesResponse(res);
    expect(anthropic.content[0]).toEqual({ type: 'thinking', thinking: 'hmm', signature: '' });
    expect(anthropic).toMatchObject({ stop_reason: 'stop_sequence', stop_sequence: '###', usage: { input_tokens: 10, cache_read_input_tokens: 40, cache_creation_input_tokens: 0 } });
  });
});

describe('streams', () => {
  const upstream: AnthropicStreamEvent[] = [
    { type: 'message_start', message: { id: 'msg_s', model: 'claude', usage: { input_tokens: 3, cache_read_input_tokens: 90, cache_creation_input_tokens: 0, output_tokens: 1 } } },
    { type: 'content_block_start', index: 0, content_block: { type: 'thinking', thinking: '', signature: '' } },
    { type: 'content_block_delta', index: 0, delta: { type: 'thinking_delta', thinking: 'Think' } },
    { type: 'content_block_delta', index: 0, delta: { type: 'thinking_delta', thinking: 'ing.' } },
    { type: 'content_block_delta', index: 0, delta: { type: 'signature_delta', signature: 'sig-s' } },
    { type: 'content_block_stop', index: 0 },
    { type: 'content_block_start', index: 1, content_block: { type: 'text', text: '' } },
    { type: 'content_block_delta', index: 1, delta: { type: 'text_delta', text: 'Done' } },
    { type: 'content_block_stop', index: 1 },
    { type: 'message_delta', delta: { stop_reason: 'stop_sequence', stop_sequence: 'STOP' }, usage: { output_tokens: 7 } },
    { type: 'message_stop' },
  ];

  function decoded(): StreamEvent[] {
    const decoder = new MessagesStreamDecoder();
    const events: StreamEvent[] = [];
    for (const event of upstream) decoder.decode(event, events);
    return events;
  }

  it('decodes thinking and signature deltas, cached usage and the stop sequence', () => {
    expect(decoded()).toEqual([
      { type: 'start', id: 'msg_s', model: 'claude' },
      { type: 'reasoning', text: 'Think' },
      { type: 'reasoning', text: 'ing.' },
      { type: 'reasoning_signature', signature: 'sig-s', origin: 'anthropic' },
      { type: 'text', text: 'Done' },
      { type: 'usage', usage: { inputTokens: 93, outputTokens: 7, cacheReadTokens: 90 } },
      { type: 'finish', reason: 'stop', stopSequence: 'STOP' },
    ]);
  });

  it('re-encodes them as the same Anthropic blocks, and assembles the same answer', () => {
    const encoder = new MessageStreamEncoder('msg_s', 'claude');
    const frames = decoded()
      .map((e) => encoder.encode(e))
      .join('')
      .split('\n\n')
      .filter(Boolean)
      .map((frame) => JSON.parse(frame.slice(frame.indexOf('data: ') + 6)));
    // The same content blocks, frame for frame, as the upstream sent.
    expect(frames.filter((f) => f.type.startsWith('content_block'))).toEqual(upstream.filter((e) => e.type.startsWith('content_block')));
    expect(frames.map((f) => f.delta?.type ?? f.content_block?.type ?? f.type)).toEqual([
      'message_start', 'thinking', 'thinking_delta', 'thinking_delta', 'signature_delta', 'content_block_stop', 'text', 'text_delta', 'content_block_stop', 'message_delta', 'message_stop',
    ]);
    expect(frames.at(-2)).toMatchObject({ delta: { stop_reason: 'stop_sequence', stop_sequence: 'STOP' }, usage: { input_tokens: 3, cache_read_input_tokens: 90, output_tokens: 7 } });

    const collector = new AnswerCollector('claude');
    for (const event of decoded()) collector.add(event);
    const answer = collector.answer();
    expect(answer).toMatchObject({ text: 'Done', stopSequence: 'STOP', reasoning: [{ text: 'Thinking.', signature: 'sig-s', origin: 'anthropic' }] });
    // A cached answer replays as the events it was made of.
    expect(answerEvents(answer!).filter((e) => e.type.startsWith('reasoning'))).toEqual([
      { type: 'reasoning', text: 'Thinking.' },
      { type: 'reasoning_signature', signature: 'sig-s', origin: 'anthropic' },
    ]);
  });

  it('streams reasoning to an OpenAI client as reasoning_content, and reads it from OpenAI-type chunks', () => {
    const encoder = new ChunkEncoder('c1', 'm', 1, true);
    const text = decoded().map((e) => encoder.encode(e)).join('');
    const chunks = text.split('\n\n').filter((f) => f && f !== 'data: [DONE]').map((f) => JSON.parse(f.slice(6)));
    expect(chunks.flatMap((c) => c.choices.map((ch: any) => ch.delta.reasoning_content)).filter(Boolean)).toEqual(['Think', 'ing.']);
    expect(chunks.at(-1).usage).toEqual({ prompt_tokens: 93, completion_tokens: 7, total_tokens: 100, prompt_tokens_details: { cached_tokens: 90 } });

    const events: StreamEvent[] = [];
    decodeChunk({ choices: [{ delta: { reasoning_content: 'a' } }] }, events);
    decodeChunk({ choices: [{ delta: { reasoning: 'b' } }] }, events);
    const finish = decodeChunk({ choices: [{ delta: {}, finish_reason: 'stop', stop_reason: 'END' }] }, events);
    expect(events).toEqual([{ type: 'reasoning', text: 'a' }, { type: 'reasoning', text: 'b' }]);
    expect(finish).toEqual({ type: 'finish', reason: 'stop', stopSequence: 'END' });
  });
});

describe('Ollama', () => {
  it('maps think to reasoning and back, and names what Ollama has no place for', () => {
    expect(decodeOllamaRequest({ model: 'm', think: true, messages: [] }).reasoning).toEqual({ effort: 'medium' });
    expect(decodeOllamaRequest({ model: 'm', think: 'high', messages: [] }).reasoning).toEqual({ effort: 'high' });
    expect(decodeOllamaRequest({ model: 'm', think: false, messages: [] }).reasoning).toEqual({ off: true });
    expect(decodeOllamaRequest({ model: 'm', options: { temperature: 1, num_ctx: 8192 }, messages: [] }).unsupported).toEqual(['options.num_ctx']);
    // top_k crosses between Anthropic and Ollama, and is named where Chat Completions has no place for it.
    const topK = decodeMessagesRequest({ max_tokens: 10, top_k: 40, messages: [{ role: 'user', content: 'x' }] });
    expect((encodeOllamaRequest(topK, 'm').options as any).top_k).toBe(40);
    const toOpenAI = new Set<string>();
    expect(encodeChatRequest(topK, 'gpt', toOpenAI).top_k).toBeUndefined();
    expect([...toOpenAI]).toEqual(['top_k']);
    const dropped = new Set<string>();
    const sent = encodeOllamaRequest(decodeMessagesRequest(claudeCodeTurn()), 'qwen3', dropped);
    expect(sent.think).toBe(true);
    expect((sent.messages as any[])[0]).toEqual({ role: 'system', content: 'You are Claude Code.\nProject rules.' });
    expect((sent.messages as any[])[2]).toMatchObject({ role: 'assistant', thinking: 'I should read the file.' });
    // The tool's image goes with the tool message, as Ollama takes images on any message.
    expect((sent.messages as any[])[3]).toMatchObject({ role: 'tool', content: 'the picture', images: [PNG] });
    expect([...dropped].sort()).toEqual(['cache_control', 'messages.content.document', 'messages.is_error', 'messages.reasoning.signature', 'user']);
  });

  it('reads thinking from an Ollama answer and gives it to Ollama clients', () => {
    const res = decodeOllamaResponse({ model: 'qwen3', message: { content: 'Hi', thinking: 'so' }, done: true, prompt_eval_count: 3, eval_count: 2 }, 'id', 'qwen3');
    expect(res.reasoning).toEqual([{ text: 'so' }]);
    expect(encodeOllamaResponse(res).message).toMatchObject({ content: 'Hi', thinking: 'so' });
  });
});

describe('cost with cached tokens', () => {
  const usage = { inputTokens: 1_000_000, outputTokens: 100_000, cacheReadTokens: 600_000, cacheWriteTokens: 200_000 };
  it('prices cache reads and writes at their own prices', () => {
    // 200k uncached × 3 + 600k × 0.30 + 200k × 3.75 + 100k × 15, per million.
    expect(costUsd({ input: 3, output: 15, cached_input: 0.3, cache_write: 3.75 }, usage)).toBeCloseTo(0.6 + 0.18 + 0.75 + 1.5, 10);
  });
  it('prices them as input when the table gives no cache prices', () => {
    expect(costUsd({ input: 3, output: 15 }, usage)).toBeCloseTo(3 + 1.5, 10);
  });
});
