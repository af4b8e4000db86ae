/**
 * Agent frameworks whose default path is the Responses API, through Hapax: the OpenAI Agents SDK runs an agent
 * that calls a tool, and the Vercel AI SDK's generateText / streamText with createOpenAI({ baseURL }) answer,
 * in front of a Responses-speaking OpenAI provider and of Anthropic (translated).
 *
 * Both are test-only packages installed with `npm ci --prefix test/agents` (beside the agent CLIs); they are
 * loaded from there by path, so the type check does not depend on that install.
 */
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { pathToFileURL } from 'node:url';
import { describe, expect, it } from 'vitest';
import { startFakeAnthropic } from './fakes/anthropic.ts';
import type { TurnView } from './fakes/common.ts';
import { startFakeResponses } from './fakes/openai-responses.ts';
import { startTestGateway } from './helpers/gateway.ts';
import { useStarted } from './helpers/started.ts';

const fromAgents = createRequire(new URL('./agents/package.json', import.meta.url));
const resolved = (name: string): string | undefined => {
  try {
    return fromAgents.resolve(name);
  } catch {
    return undefined;
  }
};
const installed = ['ai', '@ai-sdk/openai', '@openai/agents', 'zod', 'openai'].every((name) => {
  const path = resolved(name);
  return path !== undefined && existsSync(path);
});
// The packages' own entry points (ESM), by path: the type check never sees them.
const load = async <T>(name: string): Promise<T> => (await import(pathToFileURL(resolved(name) as string).href)) as T;

/* Just the parts of each package these tests use. */
interface AiSdk {
  generateText(opts: { model: unknown; prompt: string }): Promise<{ text: string; usage: { inputTokens?: number; outputTokens?: number } }>;
  streamText(opts: { model: unknown; prompt: string }): { textStream: AsyncIterable<string>; text: PromiseLike<string> };
}
interface AiOpenAI {
  createOpenAI(opts: { baseURL: string; apiKey: string }): (model: string) => unknown;
}
interface AgentsSdk {
  Agent: new (opts: { name: string; instructions: string; model: string; tools: unknown[] }) => unknown;
  run(agent: unknown, input: string): Promise<{ finalOutput?: string }>;
  tool(opts: { name: string; description: string; parameters: unknown; execute: (input: { city: string }) => Promise<string> }): unknown;
  setDefaultOpenAIClient(client: unknown): void;
  setTracingDisabled(disabled: boolean): void;
}

/** The model: asks for the weather once, then says what the tool answered. */
const turn = (view: TurnView) => {
  if (view.toolResult !== undefined) return { text: `It is ${view.toolResult}.` };
  if (view.tools.includes('get_weather')) return { tool: 'get_weather', input: { city: 'Paris' } };
  return undefined;
};

describe.skipIf(!installed)('agent SDKs on the Responses API through Hapax', () => {
  const setup = useStarted({ openai: () => startFakeResponses({ name: 'openai', turn }), claude: () => startFakeAnthropic({ name: 'claude', turn }) }).and({
    gateway: ({ openai, claude }) =>
      startTestGateway(`
providers:
  openai: {type: openai, base_url: "${openai.url}", api_key: sk-upstream, model: gpt-5}
  claude: {type: anthropic, base_url: "${claude.url}", api_key: sk-ant-upstream, model: claude-sonnet-4-5}
retry: {max_retries: 0}
`),
  });

  it.each(['openai/gpt-5', 'claude/claude-sonnet-4-5'])('the Agents SDK runs an agent with a tool (%s)', async (model) => {
    const agents = await load<AgentsSdk>('@openai/agents');
    const { z } = await load<{ z: { object(shape: Record<string, unknown>): unknown; string(): unknown } }>('zod');
    const { default: OpenAI } = await load<{ default: new (opts: { baseURL: string; apiKey: string; maxRetries: number }) => unknown }>('openai');
    agents.setTracingDisabled(true);
    agents.setDefaultOpenAIClient(new OpenAI({ baseURL: `${setup.gateway.url}/v1`, apiKey: 'unused', maxRetries: 0 }));
    const calls: string[] = [];
    const weather = agents.tool({
      name: 'get_weather',
      description: 'The weather in a city',
      parameters: z.object({ city: z.string() }),
      execute: async ({ city }) => (calls.push(city), `sunny in ${city}`),
    });
    const agent = new agents.Agent({ name: 'Forecaster', instructions: 'Answer with the weather.', model, tools: [weather] });
    const result = await agents.run(agent, 'What is the weather in Paris?');
    expect(calls).toEqual(['Paris']);
    expect(result.finalOutput).toBe('It is sunny in Paris.');
    const routes = setup.gateway.logs.filter((line) => line.msg === 'request').slice(-2).map((line) => line.route);
    expect(routes).toEqual(['/v1/responses', '/v1/responses']);
  });

  it.each(['openai/gpt-5', 'claude/claude-sonnet-4-5'])('the AI SDK generates and streams text (%s)', async (model) => {
    const ai = await load<AiSdk>('ai');
    const { createOpenAI } = await load<AiOpenAI>('@ai-sdk/openai');
    const provider = createOpenAI({ baseURL: `${setup.gateway.url}/v1`, apiKey: 'unused' });
    const generated = await ai.generateText({ model: provider(model), prompt: 'hello there' });
    expect(generated.text).toMatch(/hello there$/);
    expect(generated.usage.outputTokens).toBeGreaterThan(0);
    const streamed = ai.streamText({ model: provider(model), prompt: 'one two three' });
    const pieces: string[] = [];
    for await (const piece of streamed.textStream) pieces.push(piece);
    expect(pieces.join('')).toMatch(/one two three$/);
    // The AI SDK's default OpenAI path is the Responses API.
    const upstream = model.startsWith('openai') ? setup.openai.requests : setup.claude.requests;
    expect(upstream.at(-1)?.path).toBe(model.startsWith('openai') ? '/v1/responses' : '/v1/messages');
  });
});
