/**
 * The Responses fake against the official openai SDK directly (no gateway): its answers and event stream are
 * what the SDK's own accumulator accepts, and its faults look like OpenAI's. The gateway's tests rely on it.
 */
import OpenAI from 'openai';
import { afterEach, describe, expect, it } from 'vitest';
import { useStarted } from '../helpers/started.ts';
import { startFakeResponses } from './openai-responses.ts';

describe('the Responses fake', () => {
  const setup = useStarted({ fake: () => startFakeResponses({ name: 'fake', apiKey: 'sk-fake' }) });
  const client = () => new OpenAI({ baseURL: setup.fake.url, apiKey: 'sk-fake', maxRetries: 0 });
  afterEach(() => setup.fake.reset());

  it('answers, streams and continues a stored response as the SDK expects', async () => {
    const first = await client().responses.create({ model: 'gpt-5', input: 'hello' });
    expect(first.output_text).toBe('[fake] hello');
    const streamed = await client().responses.stream({ model: 'gpt-5', input: 'one two', previous_response_id: first.id }).finalResponse();
    expect(streamed.output_text).toBe('[fake] one two');
    expect(setup.fake.requests.at(-1)?.body.previous_response_id).toBe(first.id);
    await expect(client().responses.create({ model: 'gpt-5', input: 'x', previous_response_id: 'resp_none' })).rejects.toMatchObject({ status: 400, code: 'previous_response_not_found' });
  });

  it('calls a function tool and reads its output; refuses tampered encrypted reasoning', async () => {
    const tools = [{ type: 'function' as const, name: 'lookup', parameters: { type: 'object', properties: {} }, strict: false }];
    const first = await client().responses.create({ model: 'gpt-5', store: false, input: 'find it', tools, reasoning: { effort: 'low', summary: 'auto' }, include: ['reasoning.encrypted_content'] });
    expect(first.output.map((item) => item.type)).toEqual(['reasoning', 'function_call']);
    const call = first.output[1] as OpenAI.Responses.ResponseFunctionToolCall;
    const second = await client().responses.create({ model: 'gpt-5', store: false, tools, input: [...(first.output as never[]), { type: 'function_call_output', call_id: call.call_id, output: 'found' }] });
    expect(second.output_text).toBe('tool said: found');
    const tampered = { ...(first.output[0] as OpenAI.Responses.ResponseReasoningItem), encrypted_content: 'fake-sealed:bm9wZQ==:0000000000000000' };
    await expect(client().responses.create({ model: 'gpt-5', store: false, input: [tampered as never, { role: 'user', content: 'x' }] })).rejects.toMatchObject({ status: 400 });
  });

  it('has the faults of the other fakes: 429 with retry-after, 500, a wrong key, a reset', async () => {
    setup.fake.queueFaults({ kind: 'status', status: 429, headers: { 'retry-after': '7' } }, { kind: 'status', status: 500 }, { kind: 'reset' });
    const limited = await client().responses.create({ model: 'gpt-5', input: 'x' }).catch((e: InstanceType<typeof OpenAI.APIError>) => e);
    expect(limited).toMatchObject({ status: 429, code: 'rate_limit_exceeded' });
    expect((limited as InstanceType<typeof OpenAI.APIError>).headers?.get('retry-after')).toBe('7');
    await expect(client().responses.create({ model: 'gpt-5', input: 'x' })).rejects.toMatchObject({ status: 500 });
    await expect(client().responses.create({ model: 'gpt-5', input: 'x' })).rejects.toBeInstanceOf(OpenAI.APIConnectionError);
    await expect(new OpenAI({ baseURL: setup.fake.url, apiKey: 'wrong', maxRetries: 0 }).responses.create({ model: 'gpt-5', input: 'x' })).rejects.toMatchObject({ status: 401 });
  });
});
