/**
 * The translated lane with the official SDKs: what 2026 models do crosses from one dialect to the other
 * (reasoning, prompt caching and its usage, documents, tool-result images, stop sequences, parallel tool
 * calls, structured output), and what the target cannot express is named in X-Hapax-Dropped and the log.
 */
import Anthropic from '@anthropic-ai/sdk';
import OpenAI from 'openai';
import { afterEach, describe, expect, it } from 'vitest';
import { startFakeAnthropic } from './fakes/anthropic.ts';
import { startFakeOllama } from './fakes/ollama.ts';
import { startFakeOpenAI } from './fakes/openai.ts';
import { startTestGateway, type TestGateway } from './helpers/gateway.ts';
import { metricValue } from './helpers/metrics.ts';
import { useStarted } from './helpers/started.ts';

const PDF = 'JVBERi0xLjQKJcfsj6IKNSAwIG9iago=';
const PNG = 'iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg==';
const EPHEMERAL = { type: 'ephemeral' } as const;
const readTool = { name: 'read_file', description: 'Read a file', input_schema: { type: 'object' as const, properties: { input: { type: 'string' } } } };

/** A structured-output request gets JSON back from the fakes; everything else the usual echo. */
const jsonWhenAsked = (name: string) => (said: string, body: any) =>
  body.output_config?.format || body.response_format?.type === 'json_schema' || (body.format && typeof body.format === 'object') ? JSON.stringify({ city: said }) : `[${name}] ${said}`;

const requestLine = (gateway: TestGateway, id: string | null) => gateway.logs.findLast((l) => l.msg === 'request' && l.request_id === id);

describe('translated lane', () => {
  const setup = useStarted({
    claude: () => startFakeAnthropic({ name: 'claude', models: ['claude-sonnet-4-5'], reply: jsonWhenAsked('claude') }),
    gpt: () => startFakeOpenAI({ name: 'gpt', models: ['gpt-5'], autoPromptCache: true, reply: jsonWhenAsked('gpt') }),
    llama: () => startFakeOllama({ name: 'llama', models: ['qwen3'], reply: jsonWhenAsked('llama') }),
  })
    .and({
      gateway: ({ claude, gpt, llama }) =>
        startTestGateway(`
providers:
  claude: {type: anthropic, base_url: "${claude.url}", model: claude-sonnet-4-5}
  gpt: {type: openai, base_url: "${gpt.url}", model: gpt-5}
  llama: {type: ollama, base_url: "${llama.url}", model: qwen3}
pricing:
  gpt-5: {input: 2, output: 10, cached_input: 0.5}
cors: {origins: ["https://app.example"]}
retry: {max_retries: 0}
`),
    })
    .and({
      openai: ({ gateway }) => new OpenAI({ baseURL: `${gateway.url}/v1`, apiKey: 'x', maxRetries: 0 }),
      anthropic: ({ gateway }) => new Anthropic({ baseURL: gateway.url, apiKey: 'x', maxRetries: 0 }),
    });
  afterEach(() => {
    setup.claude.reset();
    setup.gpt.reset();
    setup.llama.reset();
  });

  describe('the openai SDK against an Anthropic provider', () => {
    it('sends reasoning_effort as a thinking budget and gets the thinking back as reasoning_content', async () => {
      const { data, response } = await setup.openai.chat.completions
        .create({ model: 'claude', reasoning_effort: 'high', max_completion_tokens: 30000, messages: [{ role: 'user', content: 'plan the trip' }] })
        .withResponse();
      expect(setup.claude.requests.at(-1)?.body).toMatchObject({ thinking: { type: 'enabled', budget_tokens: 24576 }, max_tokens: 30000 });
      const message = data.choices[0].message as OpenAI.Chat.ChatCompletionMessage & { reasoning_content?: string };
      expect(message.content).toBe('[claude] plan the trip');
      expect(message.reasoning_content).toBe('Thinking about: plan the trip');
      expect(response.headers.get('x-hapax-dropped')).toBeNull();
    });

    it('streams the reasoning as reasoning_content deltas before the content', async () => {
      const stream = await setup.openai.chat.completions.create({ model: 'claude', reasoning_effort: 'low', stream: true, stream_options: { include_usage: true }, messages: [{ role: 'user', content: 'go on' }] });
      let reasoning = '';
      let content = '';
      let usage: OpenAI.CompletionUsage | undefined | null;
      for await (const chunk of stream) {
        const delta = chunk.choices[0]?.delta as { content?: string; reasoning_content?: string } | undefined;
        if (delta?.reasoning_content) {
          expect(content).toBe('');
          reasoning += delta.reasoning_content;
        }
        content += delta?.content ?? '';
        if (chunk.usage) usage = chunk.usage;
      }
      expect(reasoning).toBe('Thinking about: go on');
      expect(content).toBe('[claude] go on');
      expect(usage?.completion_tokens).toBeGreaterThan(3);
      expect(setup.claude.requests.at(-1)?.body.thinking).toEqual({ type: 'enabled', budget_tokens: 2048 });
    });

    it('names the temperature it had to leave out for thinking, in the header and the log', async () => {
      const { response } = await setup.openai.chat.completions
        .create({ model: 'claude', reasoning_effort: 'medium', temperature: 0.2, seed: 3, messages: [{ role: 'user', content: 'hi' }] })
        .withResponse();
      expect(setup.claude.requests.at(-1)?.body.temperature).toBeUndefined();
      expect(response.headers.get('x-hapax-dropped')?.split(',').sort()).toEqual(['seed', 'temperature']);
      await expect.poll(() => requestLine(setup.gateway, response.headers.get('x-request-id'))?.dropped).toEqual(['temperature', 'seed']);
    });

    it('asks for a JSON schema through output_config.format, not the system prompt', async () => {
      const schema = { type: 'object', properties: { city: { type: 'string' } }, required: ['city'], additionalProperties: false };
      const res = await setup.openai.chat.completions.create({
        model: 'claude',
        response_format: { type: 'json_schema', json_schema: { name: 'place', schema, strict: true } },
        messages: [{ role: 'user', content: 'Paris' }],
      });
      expect(JSON.parse(res.choices[0].message.content ?? '')).toEqual({ city: 'Paris' });
      const sent = setup.claude.requests.at(-1)?.body;
      expect(sent.output_config).toEqual({ format: { type: 'json_schema', schema } });
      expect(sent.system).toBeUndefined();
    });

    it('turns prompt_cache_key into cache breakpoints and sees the cached tokens come back', async () => {
      const system = 'A long and stable system prompt. '.repeat(20);
      const ask = (content: string) => setup.openai.chat.completions.create({ model: 'claude', prompt_cache_key: 'repo-7', messages: [{ role: 'system', content: system }, { role: 'user', content }] });
      const first = await ask('first');
      expect(setup.claude.requests.at(-1)?.body.system).toEqual([{ type: 'text', text: system, cache_control: EPHEMERAL }]);
      expect(first.usage?.prompt_tokens_details?.cached_tokens).toBe(0);
      const second = await ask('second');
      expect(second.usage?.prompt_tokens_details?.cached_tokens).toBeGreaterThan(100);
      expect(second.usage?.prompt_tokens).toBe(first.usage?.prompt_tokens);
    });

    it('maps parallel_tool_calls, user, stop and file parts', async () => {
      const res = await setup.openai.chat.completions.create({
        model: 'claude',
        user: 'dev-7',
        parallel_tool_calls: false,
        stop: ['three'],
        tools: [{ type: 'function', function: { name: 'lookup', parameters: { type: 'object' } } }],
        tool_choice: 'none',
        messages: [{ role: 'user', content: [{ type: 'file', file: { file_data: `data:application/pdf;base64,${PDF}`, filename: 'a.pdf' } }, { type: 'text', text: 'one two three four' }] }],
      });
      const sent = setup.claude.requests.at(-1)?.body;
      expect(sent).toMatchObject({ metadata: { user_id: 'dev-7' }, stop_sequences: ['three'], tool_choice: { type: 'none' } });
      expect(sent.messages[0].content[0]).toEqual({ type: 'document', source: { type: 'base64', media_type: 'application/pdf', data: PDF } });
      expect(res.choices[0]).toMatchObject({ finish_reason: 'stop', message: { content: '[claude] one two ' } });

      await setup.openai.chat.completions.create({ model: 'claude', parallel_tool_calls: false, tools: [{ type: 'function', function: { name: 'lookup', parameters: { type: 'object' } } }], messages: [{ role: 'user', content: 'x' }] });
      expect(setup.claude.requests.at(-1)?.body.tool_choice).toEqual({ type: 'auto', disable_parallel_tool_use: true });
    });
  });

  describe('the openai SDK against an OpenAI-type provider', () => {
    it('passes prompt_cache_key on and sees cached tokens come back, priced as cached in the log', async () => {
      const messages: OpenAI.Chat.ChatCompletionMessageParam[] = [
        { role: 'system', content: 'A long and stable system prompt. '.repeat(20) },
        { role: 'user', content: 'first question' },
      ];
      await setup.openai.chat.completions.create({ model: 'gpt', prompt_cache_key: 'repo-42', messages });
      const { data, response } = await setup.openai.chat.completions.create({ model: 'gpt', prompt_cache_key: 'repo-42', messages: [...messages.slice(0, 1), { role: 'user', content: 'second question' }] }).withResponse();
      expect(setup.gpt.requests.at(-1)?.body.prompt_cache_key).toBe('repo-42');
      const cached = data.usage?.prompt_tokens_details?.cached_tokens ?? 0;
      expect(cached).toBeGreaterThan(0);
      await expect.poll(() => requestLine(setup.gateway, response.headers.get('x-request-id'))).toBeDefined();
      const logged = requestLine(setup.gateway, response.headers.get('x-request-id')) as any;
      expect(logged.tokens).toMatchObject({ prompt: data.usage?.prompt_tokens, cache_read: cached });
      const uncached = (data.usage?.prompt_tokens ?? 0) - cached;
      expect(logged.cost_usd).toBeCloseTo((uncached * 2 + cached * 0.5 + (data.usage?.completion_tokens ?? 0) * 10) / 1e6, 12);
      expect(await metricValue(setup.gateway.url, 'hapax_token_details_total{provider="gpt",model="gpt-5",client="anonymous",kind="cache_read"}')).toBeGreaterThanOrEqual(cached);
    });

    it('lets a browser read X-Hapax-Dropped', async () => {
      const res = await fetch(`${setup.gateway.url}/v1/chat/completions`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', origin: 'https://app.example' },
        body: JSON.stringify({ model: 'llama', prompt_cache_key: 'k', messages: [{ role: 'user', content: 'hi' }] }),
      });
      expect(res.status).toBe(200);
      expect(res.headers.get('x-hapax-dropped')).toBe('prompt_cache_key');
      expect(res.headers.get('access-control-expose-headers')).toContain('x-hapax-dropped');
    });
  });

  describe('the Anthropic SDK against an OpenAI-type provider', () => {
    const system: Anthropic.TextBlockParam[] = [
      { type: 'text', text: 'You are a coding agent. '.repeat(20) },
      { type: 'text', text: 'Project rules.', cache_control: EPHEMERAL },
    ];

    it('sends thinking as reasoning_effort and gets the reasoning back as a thinking block', async () => {
      const { data, response } = await setup.anthropic.messages
        .create({ model: 'gpt', max_tokens: 20000, thinking: { type: 'enabled', budget_tokens: 10000 }, system, tools: [{ ...readTool, cache_control: EPHEMERAL }], messages: [{ role: 'user', content: 'hello' }], tool_choice: { type: 'none' } })
        .withResponse();
      expect(setup.gpt.requests.at(-1)?.body).toMatchObject({ reasoning_effort: 'medium', max_completion_tokens: 20000, messages: [{ role: 'system', content: `${system[0].text}\nProject rules.` }, { role: 'user', content: 'hello' }] });
      expect(data.content).toEqual([
        { type: 'thinking', thinking: 'Thinking (medium) about: hello', signature: '' },
        { type: 'text', text: '[gpt] hello' },
      ]);
      // Chat Completions has no cache markers: named, not silently lost.
      expect(response.headers.get('x-hapax-dropped')).toBe('cache_control');
    });

    it('streams thinking blocks through .stream() and reports cached tokens on the next turn', async () => {
      const turn = (content: string) => setup.anthropic.messages.stream({ model: 'gpt', max_tokens: 20000, thinking: { type: 'enabled', budget_tokens: 2000 }, system, messages: [{ role: 'user', content }] });
      await turn('first').finalMessage();
      const stream = turn('second');
      const thinking: string[] = [];
      stream.on('thinking', (delta) => thinking.push(delta));
      const final = await stream.finalMessage();
      expect(thinking.join('')).toBe('Thinking (low) about: second');
      expect(final.content.map((b) => b.type)).toEqual(['thinking', 'text']);
      expect(final.usage.cache_read_input_tokens).toBeGreaterThan(0);
      // Uncached input is what remains of the prompt once the cached part is taken out.
      expect(final.usage.input_tokens).toBeGreaterThan(0);
    });

    it('carries documents and images a tool returned, and names the signed thinking it cannot send', async () => {
      const { response } = await setup.anthropic.messages
        .create({
          model: 'gpt',
          max_tokens: 1000,
          tools: [readTool],
          messages: [
            { role: 'user', content: [{ type: 'document', source: { type: 'base64', media_type: 'application/pdf', data: PDF }, title: 'spec.pdf' }, { type: 'text', text: 'read the chart' }] },
            {
              role: 'assistant',
              content: [
                { type: 'thinking', thinking: 'I need the chart.', signature: 'sig-from-anthropic' },
                { type: 'tool_use', id: 'toolu_9', name: 'read_file', input: { input: 'chart.png' } },
              ],
            },
            { role: 'user', content: [{ type: 'tool_result', tool_use_id: 'toolu_9', content: [{ type: 'text', text: 'a chart' }, { type: 'image', source: { type: 'base64', media_type: 'image/png', data: PNG } }] }] },
          ],
        })
        .withResponse();
      const sent = setup.gpt.requests.at(-1)?.body;
      expect(sent.messages[0].content[0]).toEqual({ type: 'file', file: { file_data: `data:application/pdf;base64,${PDF}`, filename: 'spec.pdf' } });
      expect(sent.messages[2]).toEqual({ role: 'tool', content: 'a chart', tool_call_id: 'toolu_9' });
      expect(sent.messages[3].content[1]).toEqual({ type: 'image_url', image_url: { url: `data:image/png;base64,${PNG}` } });
      expect(response.headers.get('x-hapax-dropped')).toBe('messages.reasoning');
    });
  });

  describe('the Anthropic SDK against an Anthropic provider', () => {
    it('round-trips signed thinking blocks, cache_control and documents, and reports cache reads', async () => {
      const system: Anthropic.TextBlockParam[] = [{ type: 'text', text: 'Stable instructions. '.repeat(20), cache_control: EPHEMERAL }];
      const document: Anthropic.DocumentBlockParam = { type: 'document', source: { type: 'base64', media_type: 'application/pdf', data: PDF }, cache_control: EPHEMERAL };
      const first = await setup.anthropic.messages.create({
        model: 'claude',
        max_tokens: 4000,
        thinking: { type: 'enabled', budget_tokens: 1024 },
        system,
        tools: [readTool],
        messages: [{ role: 'user', content: [document, { type: 'text', text: 'read spec' }] }],
      });
      expect(first.usage.cache_creation_input_tokens).toBeGreaterThan(0);
      const [thinking, toolUse] = first.content;
      expect(thinking).toMatchObject({ type: 'thinking', thinking: 'Thinking about: read spec' });
      expect(toolUse.type).toBe('tool_use');
      const second = await setup.anthropic.messages.create({
        model: 'claude',
        max_tokens: 4000,
        thinking: { type: 'enabled', budget_tokens: 1024 },
        system,
        tools: [readTool],
        messages: [
          { role: 'user', content: [document, { type: 'text', text: 'read spec' }] },
          { role: 'assistant', content: first.content },
          { role: 'user', content: [{ type: 'tool_result', tool_use_id: (toolUse as Anthropic.ToolUseBlock).id, content: 'it says hi' }] },
        ],
      });
      // The fake checks the signature: a changed thinking block would be a 400.
      expect(second.content.at(-1)).toEqual({ type: 'text', text: 'tool said: it says hi' });
      expect(second.usage.cache_read_input_tokens).toBeGreaterThan(0);
      const sent = setup.claude.requests.at(-1)?.body;
      expect(sent.system).toEqual(system);
      expect(sent.messages[0].content[0]).toEqual(document);
      expect(sent.messages[1].content[0]).toEqual(thinking);
    });

    it('says which stop sequence ended the answer', async () => {
      const res = await setup.anthropic.messages.create({ model: 'claude', max_tokens: 100, stop_sequences: ['STOP'], messages: [{ role: 'user', content: 'go STOP now' }] });
      expect(res).toMatchObject({ stop_reason: 'stop_sequence', stop_sequence: 'STOP', content: [{ type: 'text', text: '[claude] go ' }] });
    });
  });

  describe('bad input', () => {
    it('is refused in the client dialect\'s error shape', async () => {
      const anthropic = await fetch(`${setup.gateway.url}/v1/messages`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ model: 'gpt', max_tokens: 10, thinking: { type: 'enabled' }, messages: [{ role: 'user', content: [{ type: 'document', source: { type: 'base64' } }] }] }),
      });
      expect(anthropic.status).toBe(400);
      expect(await anthropic.json()).toMatchObject({ type: 'error', error: { type: 'invalid_request_error' } });
      await expect(setup.openai.chat.completions.create({ model: 'claude', reasoning_effort: 7 as unknown as 'high', messages: [{ role: 'user', content: 'x' }] })).rejects.toMatchObject({ status: 400 });
      expect(setup.claude.requests).toHaveLength(0);
      expect(setup.gpt.requests).toHaveLength(0);
    });

    it('an effort level Hapax does not know yet is not refused: it is named as dropped', async () => {
      const { response } = await setup.openai.chat.completions.create({ model: 'claude', reasoning_effort: 'ultra' as 'high', messages: [{ role: 'user', content: 'x' }] }).withResponse();
      expect(response.headers.get('x-hapax-dropped')).toBe('reasoning_effort');
      expect(setup.claude.requests.at(-1)?.body.thinking).toBeUndefined();
    });
  });

  describe('a provider that takes no reasoning setting', () => {
    const plain = useStarted({ gpt4: () => startFakeOpenAI({ name: 'gpt4' }) }).and({
      gateway: ({ gpt4 }) => startTestGateway(`
providers:
  gpt4: {type: openai, base_url: "${gpt4.url}", model: gpt-4o, send_reasoning: false}
`),
    });

    it('gets no reasoning_effort, and the client is told', async () => {
      const anthropic = new Anthropic({ baseURL: plain.gateway.url, apiKey: 'x', maxRetries: 0 });
      const { data, response } = await anthropic.messages.create({ model: 'gpt4', max_tokens: 3000, thinking: { type: 'enabled', budget_tokens: 2000 }, messages: [{ role: 'user', content: 'hi' }] }).withResponse();
      const sent = plain.gpt4.requests.at(-1)?.body;
      expect(sent.reasoning_effort).toBeUndefined();
      expect(sent.max_tokens).toBe(3000);
      expect(data.content).toEqual([{ type: 'text', text: '[gpt4] hi' }]);
      expect(response.headers.get('x-hapax-dropped')).toBe('reasoning');
    });
  });

  describe('the native API', () => {
    it('takes reasoning_effort to a thinking budget and answers the reasoning beside the completion', async () => {
      const res = await fetch(`${setup.gateway.url}/v1/completions`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ model: 'claude', input: 'why is the sky blue', reasoning_effort: 'low', max_tokens: 5000, top_k: 3 }),
      });
      expect(res.status).toBe(200);
      expect(res.headers.get('x-hapax-dropped')).toBe('top_k');
      expect(setup.claude.requests.at(-1)?.body.thinking).toEqual({ type: 'enabled', budget_tokens: 2048 });
      expect(await res.json()).toMatchObject({ completion: '[claude] why is the sky blue', reasoning: 'Thinking about: why is the sky blue' });

      const stream = await fetch(`${setup.gateway.url}/v1/completions`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ model: 'claude', input: 'hi', reasoning_effort: 'low', max_tokens: 5000, stream: true }),
      });
      const frames = (await stream.text()).split('\n\n').filter(Boolean).map((f) => JSON.parse(f.slice('data: '.length)));
      expect(frames[0].type).toBe('reasoning');
      expect(frames.filter((f) => f.type === 'reasoning').map((f) => f.text).join('')).toBe('Thinking about: hi');
      expect(frames.at(-1)).toMatchObject({ type: 'done', completion: '[claude] hi', reasoning: 'Thinking about: hi' });
    });
  });

  describe('Ollama providers', () => {
    it('take thinking as think and a JSON schema as format, and answer thinking as a thinking block', async () => {
      const res = await setup.anthropic.messages.create({ model: 'llama', max_tokens: 3000, thinking: { type: 'enabled', budget_tokens: 2000 }, messages: [{ role: 'user', content: 'why' }] });
      expect(setup.llama.requests.at(-1)?.body.think).toBe(true);
      expect(res.content[0]).toEqual({ type: 'thinking', thinking: 'Thinking about: why', signature: '' });

      const schema = { type: 'object', properties: { city: { type: 'string' } } };
      const json = await setup.openai.chat.completions.create({ model: 'llama', response_format: { type: 'json_schema', json_schema: { name: 'p', schema } }, messages: [{ role: 'user', content: 'Rome' }] });
      expect(setup.llama.requests.at(-1)?.body.format).toEqual(schema);
      expect(JSON.parse(json.choices[0].message.content ?? '')).toEqual({ city: 'Rome' });
    });
  });
});
