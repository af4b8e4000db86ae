/**
 * The fakes' reasoning, prompt-cache and stop-sequence behaviour, called directly with the official SDKs
 * (no gateway), so the translated-lane tests stand on fakes that behave as the API references say.
 */
import Anthropic from '@anthropic-ai/sdk';
import { Ollama } from 'ollama';
import OpenAI from 'openai';
import { describe, expect, it } from 'vitest';
import { useStarted } from '../helpers/started.ts';
import { startFakeAnthropic } from './anthropic.ts';
import { startFakeOllama } from './ollama.ts';
import { startFakeOpenAI } from './openai.ts';

describe('fake Anthropic', () => {
  const setup = useStarted({ fake: () => startFakeAnthropic({ name: 'an' }) }).and({
    client: ({ fake }) => new Anthropic({ baseURL: fake.url, apiKey: 'x', maxRetries: 0 }),
  });
  const thinking = { type: 'enabled', budget_tokens: 1024 } as const;

  it('signs its thinking blocks and refuses a changed one sent back', async () => {
    const first = await setup.client.messages.create({ model: 'm', max_tokens: 2000, thinking, messages: [{ role: 'user', content: 'hi' }] });
    const block = first.content[0] as Anthropic.ThinkingBlock;
    expect(block).toMatchObject({ type: 'thinking', thinking: 'Thinking about: hi' });
    expect(block.signature.length).toBeGreaterThan(20);
    const history = (b: Anthropic.ThinkingBlock): Anthropic.MessageParam[] => [
      { role: 'user', content: 'hi' },
      { role: 'assistant', content: [b, { type: 'text', text: 'x' }] },
      { role: 'user', content: 'again' },
    ];
    await expect(setup.client.messages.create({ model: 'm', max_tokens: 2000, thinking, messages: history(block) })).resolves.toBeDefined();
    await expect(setup.client.messages.create({ model: 'm', max_tokens: 2000, thinking, messages: history({ ...block, thinking: 'edited' }) })).rejects.toMatchObject({ status: 400 });
  });

  it('streams thinking and signature deltas before the text', async () => {
    const stream = setup.client.messages.stream({ model: 'm', max_tokens: 2000, thinking, messages: [{ role: 'user', content: 'a b' }] });
    let signature = '';
    stream.on('signature', (s) => (signature = s));
    const final = await stream.finalMessage();
    expect(final.content.map((b) => b.type)).toEqual(['thinking', 'text']);
    expect(signature).toBe((final.content[0] as Anthropic.ThinkingBlock).signature);
  });

  it('refuses what the API refuses while thinking', async () => {
    const warm: Anthropic.MessageCreateParamsNonStreaming = { model: 'm', max_tokens: 2000, thinking, messages: [{ role: 'user', content: 'hi' }] };
    await expect(setup.client.messages.create({ ...warm, temperature: 0.5 } as Anthropic.MessageCreateParamsNonStreaming)).rejects.toMatchObject({ status: 400 });
    await expect(setup.client.messages.create({ model: 'm', max_tokens: 1024, thinking, messages: [{ role: 'user', content: 'hi' }] })).rejects.toMatchObject({ status: 400 });
  });

  it('writes a cache_control prefix once and reads it after', async () => {
    const system: Anthropic.TextBlockParam[] = [{ type: 'text', text: 'long rules '.repeat(40), cache_control: { type: 'ephemeral' } }];
    const ask = (content: string) => setup.client.messages.create({ model: 'm', max_tokens: 100, system, messages: [{ role: 'user', content }] });
    const first = await ask('one');
    const second = await ask('two');
    expect(first.usage).toMatchObject({ cache_read_input_tokens: 0 });
    expect(first.usage.cache_creation_input_tokens).toBeGreaterThan(100);
    expect(second.usage).toMatchObject({ cache_creation_input_tokens: 0, cache_read_input_tokens: first.usage.cache_creation_input_tokens });
    expect(second.usage.input_tokens).toBeLessThan(first.usage.cache_creation_input_tokens ?? 0);
  });

  it('stops at a stop sequence and says which', async () => {
    const res = await setup.client.messages.create({ model: 'm', max_tokens: 100, stop_sequences: ['zz', 'b'], messages: [{ role: 'user', content: 'a b c' }] });
    expect(res).toMatchObject({ stop_reason: 'stop_sequence', stop_sequence: 'b', content: [{ type: 'text', text: '[an] a ' }] });
  });
});

describe('fake OpenAI', () => {
  const setup = useStarted({ fake: () => startFakeOpenAI({ name: 'oa' }) }).and({
    client: ({ fake }) => new OpenAI({ baseURL: fake.url, apiKey: 'x', maxRetries: 0 }),
  });

  it('answers reasoning_effort with reasoning_content and reasoning tokens, and refuses max_tokens with it', async () => {
    const res = await setup.client.chat.completions.create({ model: 'm', reasoning_effort: 'low', messages: [{ role: 'user', content: 'hi' }] });
    expect((res.choices[0].message as { reasoning_content?: string }).reasoning_content).toBe('Thinking (low) about: hi');
    expect(res.usage?.completion_tokens_details?.reasoning_tokens).toBe(4);
    await expect(setup.client.chat.completions.create({ model: 'm', reasoning_effort: 'low', max_tokens: 10, messages: [{ role: 'user', content: 'hi' }] })).rejects.toMatchObject({ status: 400 });
  });

  it('reports a prefix seen under the same prompt_cache_key as cached', async () => {
    const ask = (content: string, key: string) =>
      setup.client.chat.completions.create({ model: 'm', prompt_cache_key: key, messages: [{ role: 'system', content: 'rules '.repeat(50) }, { role: 'user', content }] });
    expect((await ask('one', 'k1')).usage?.prompt_tokens_details?.cached_tokens).toBe(0);
    expect((await ask('two', 'k1')).usage?.prompt_tokens_details?.cached_tokens).toBeGreaterThan(50);
    expect((await ask('three', 'k2')).usage?.prompt_tokens_details?.cached_tokens).toBe(0);
  });
});

describe('fake Ollama', () => {
  const setup = useStarted({ fake: () => startFakeOllama({ name: 'ol' }) }).and({ client: ({ fake }) => new Ollama({ host: fake.url }) });

  it('answers think with thinking, whole and streamed', async () => {
    const res = await setup.client.chat({ model: 'm', think: true, messages: [{ role: 'user', content: 'hi' }] });
    expect(res.message).toMatchObject({ thinking: 'Thinking about: hi', content: '[ol] hi' });
    let thinking = '';
    for await (const part of await setup.client.chat({ model: 'm', think: true, stream: true, messages: [{ role: 'user', content: 'yo' }] })) thinking += part.message.thinking ?? '';
    expect(thinking).toBe('Thinking about: yo');
  });
});
