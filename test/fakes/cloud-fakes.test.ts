/**
 * The Azure and Gemini fakes behave as their references say, checked without Hapax: the Azure fake with the
 * official `openai` package's own AzureOpenAI client (its deployment paths, api-version and auth), the Gemini
 * fake over plain HTTP against the shapes in Google's reference.
 */
import { AzureOpenAI } from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startFakeAzure } from './azure.ts';
import type { FakeProvider } from './common.ts';
import { startFakeGemini } from './gemini.ts';

describe('fake Azure OpenAI, through the openai package AzureOpenAI client', () => {
  let azure: FakeProvider;
  beforeAll(async () => {
    azure = await startFakeAzure({ name: 'az', apiKey: 'key', entraToken: 'tok', deployments: { prod: 'gpt-4o' }, filterWord: 'forbidden' });
  });
  afterAll(() => azure.close());
  const client = (opts: ConstructorParameters<typeof AzureOpenAI>[0] = {}) => new AzureOpenAI({ endpoint: azure.url, apiKey: 'key', apiVersion: '2024-10-21', maxRetries: 0, ...opts });

  it('answers on the deployment path with filter results, streamed too', async () => {
    const res = await client().chat.completions.create({ model: 'prod', messages: [{ role: 'user', content: 'hi there' }] });
    expect(res.choices[0].message.content).toBe('[az] hi there');
    expect(res.model).toBe('gpt-4o');
    expect(azure.requests.at(-1)).toMatchObject({ path: '/openai/deployments/prod/chat/completions', query: 'api-version=2024-10-21' });
    let text = '';
    let chunks = 0;
    for await (const chunk of await client().chat.completions.create({ model: 'prod', messages: [{ role: 'user', content: 'a b' }], stream: true })) {
      chunks++;
      text += chunk.choices[0]?.delta?.content ?? '';
    }
    expect(text).toBe('[az] a b');
    expect(chunks).toBeGreaterThan(3);
  });

  it('takes an Entra token from the client, and refuses a wrong key, an unknown deployment and a filtered prompt as Azure does', async () => {
    const entra = new AzureOpenAI({ endpoint: azure.url, azureADTokenProvider: async () => 'tok', apiVersion: '2024-10-21', maxRetries: 0 });
    expect((await entra.chat.completions.create({ model: 'prod', messages: [{ role: 'user', content: 'x' }] })).choices[0].message.content).toBe('[az] x');
    expect(azure.requests.at(-1)?.headers.authorization).toBe('Bearer tok');

    await expect(client({ apiKey: 'nope' }).chat.completions.create({ model: 'prod', messages: [{ role: 'user', content: 'x' }] })).rejects.toMatchObject({ status: 401, code: '401' });
    await expect(client().chat.completions.create({ model: 'nope', messages: [{ role: 'user', content: 'x' }] })).rejects.toMatchObject({ status: 404, code: 'DeploymentNotFound' });
    await expect(client().chat.completions.create({ model: 'prod', messages: [{ role: 'user', content: 'forbidden' }] })).rejects.toMatchObject({ status: 400, code: 'content_filter' });
  });

  it('needs an api-version on the deployment paths', async () => {
    const res = await fetch(`${azure.url}/openai/deployments/prod/chat/completions`, { method: 'POST', headers: { 'api-key': 'key', 'content-type': 'application/json' }, body: '{}' });
    expect(res.status).toBe(404);
    expect(await res.json()).toEqual({ error: { code: '404', message: 'Resource not found' } });
  });
});

describe('fake Gemini API, over HTTP', () => {
  let gemini: FakeProvider;
  beforeAll(async () => {
    gemini = await startFakeGemini({ name: 'gm', apiKey: 'key' });
  });
  afterAll(() => gemini.close());
  const post = (path: string, body: unknown, key = 'key') =>
    fetch(`${gemini.url}/v1beta/models/${path}`, { method: 'POST', headers: { 'x-goog-api-key': key, 'content-type': 'application/json' }, body: JSON.stringify(body) });
  const hello = { contents: [{ role: 'user', parts: [{ text: 'hello' }] }] };

  it('answers generateContent and streams with alt=sse, CRLF-separated, the last chunk with the finish reason and usage', async () => {
    const whole = await (await post('gemini-2.5-flash:generateContent', hello)).json();
    expect(whole.candidates[0]).toMatchObject({ content: { role: 'model', parts: [{ text: '[gm] hello' }] }, finishReason: 'STOP' });
    expect(whole.usageMetadata).toMatchObject({ candidatesTokenCount: 2 });
    const text = await (await post('gemini-2.5-flash:streamGenerateContent?alt=sse', hello)).text();
    const events = text.split('\r\n\r\n').filter(Boolean).map((e) => JSON.parse(e.replace(/^data: /, '')));
    expect(events.map((e) => e.candidates[0].content.parts[0].text).join('')).toBe('[gm] hello');
    expect(events.at(-1)).toMatchObject({ candidates: [{ finishReason: 'STOP' }], usageMetadata: { candidatesTokenCount: 2 } });
  });

  it("refuses as Google does: a bad key (400 API_KEY_INVALID), no key (403), OpenAPI-only parameters, both thinking settings", async () => {
    const bad = await post('gemini-2.5-flash:generateContent', hello, 'nope');
    expect(bad.status).toBe(400);
    expect((await bad.json()).error).toMatchObject({ status: 'INVALID_ARGUMENT', details: [{ reason: 'API_KEY_INVALID' }] });
    const none = await fetch(`${gemini.url}/v1beta/models/gemini-2.5-flash:generateContent`, { method: 'POST', body: JSON.stringify(hello) });
    expect(none.status).toBe(403);
    const schema = await post('gemini-2.5-flash:generateContent', { ...hello, tools: [{ functionDeclarations: [{ name: 'f', parameters: { type: 'object', additionalProperties: false } }] }] });
    expect(schema.status).toBe(400);
    const jsonSchema = await post('gemini-2.5-flash:generateContent', { ...hello, tools: [{ functionDeclarations: [{ name: 'f', parametersJsonSchema: { type: 'object', additionalProperties: false } }] }] });
    expect(jsonSchema.status).toBe(200);
    const thinking = await post('gemini-2.5-flash:generateContent', { ...hello, generationConfig: { thinkingConfig: { thinkingBudget: 10, thinkingLevel: 'low' } } });
    expect(thinking.status).toBe(400);
    const missing = await post('gemini-0:generateContent', hello);
    expect((await missing.json()).error).toMatchObject({ code: 404, status: 'NOT_FOUND' });
  });
});
