/**
 * The real Codex CLI through Hapax: `codex exec` with a model provider whose base URL is Hapax (wire_api
 * "responses") completes a turn that runs a shell command with its exec_command tool and answers from the
 * command's output, against a Responses-speaking OpenAI provider (the lossless lane) and against Anthropic
 * (translated: namespace tools flattened, web_search and Codex's client_metadata named as dropped).
 */
import { describe, expect, it } from 'vitest';
import { startFakeAnthropic } from './fakes/anthropic.ts';
import type { TurnView } from './fakes/common.ts';
import { startFakeResponses } from './fakes/openai-responses.ts';
import { codexInstalled, runCodex } from './helpers/codex.ts';
import { startTestGateway } from './helpers/gateway.ts';
import { useStarted } from './helpers/started.ts';

/** The model's side of the turn: run a command first, then report what it printed. */
const turn = (view: TurnView) => {
  if (view.toolResult !== undefined) return { text: `The command printed: ${view.toolResult.includes('hapax-42') ? 'hapax-42' : view.toolResult}` };
  if (view.tools.includes('exec_command')) return { tool: 'exec_command', input: { cmd: 'echo hapax-$((6*7))' } };
  return undefined;
};

describe.skipIf(!codexInstalled())('Codex CLI through Hapax', () => {
  const setup = useStarted({ openai: () => startFakeResponses({ name: 'openai', turn }), claude: () => startFakeAnthropic({ name: 'claude', turn }) }).and({
    gateway: ({ openai, claude }) =>
      startTestGateway(`
providers:
  openai: {type: openai, base_url: "${openai.url}", api_key: sk-upstream, model: gpt-5-codex}
  claude: {type: anthropic, base_url: "${claude.url}", api_key: sk-ant-upstream, model: claude-sonnet-4-5}
auth:
  enabled: true
  keys: [{name: dev, key: codex-test-key-0123}]
retry: {max_retries: 0}
`),
  });

  it('runs a shell command and answers from its output, over the lossless lane to OpenAI', async () => {
    const run = await runCodex({ prompt: 'What does `echo hapax-$((6*7))` print? Run it.', baseUrl: `${setup.gateway.url}/v1`, apiKey: 'codex-test-key-0123', model: 'openai/gpt-5-codex' });
    expect(run.timedOut, run.stderr).toBe(false);
    expect(run.exitCode, run.stderr).toBe(0);
    expect(run.stdout).toContain('The command printed: hapax-42');
    const sent = setup.openai.requests.filter((r) => r.path === '/v1/responses');
    expect(sent).toHaveLength(2);
    // What Codex sends goes upstream as it is: streaming, store off, encrypted reasoning asked for, its tools.
    expect(sent[0].body).toMatchObject({ stream: true, store: false, include: ['reasoning.encrypted_content'], model: 'gpt-5-codex' });
    expect(sent[0].body.tools.map((t: { type: string }) => t.type)).toContain('web_search');
    const output = sent[1].body.input.find((item: { type: string }) => item.type === 'function_call_output');
    expect(output.output).toContain('hapax-42');
    expect(sent[1].headers.authorization).toBe('Bearer sk-upstream');
  }, 120_000);

  it('runs the same turn against Anthropic through the translated lane', async () => {
    const run = await runCodex({ prompt: 'What does `echo hapax-$((6*7))` print? Run it.', baseUrl: `${setup.gateway.url}/v1`, apiKey: 'codex-test-key-0123', model: 'claude/claude-sonnet-4-5' });
    expect(run.timedOut, run.stderr).toBe(false);
    expect(run.exitCode, run.stderr).toBe(0);
    expect(run.stdout).toContain('The command printed: hapax-42');
    const sent = setup.claude.requests.filter((r) => r.path === '/v1/messages');
    expect(sent).toHaveLength(2);
    const names = sent[0].body.tools.map((t: { name: string }) => t.name);
    expect(names).toContain('exec_command');
    // Tools inside Codex's namespace groups are offered as tools of their own.
    expect(names).toContain('close_agent');
    const last = sent[1].body.messages.at(-1);
    expect(JSON.stringify(last.content)).toContain('hapax-42');
    const logged = setup.gateway.logs.filter((l) => l.msg === 'request' && l.route === '/v1/responses' && l.provider === 'claude');
    expect(logged.at(-1)?.dropped).toEqual(expect.arrayContaining(['client_metadata']));
  }, 120_000);
});
