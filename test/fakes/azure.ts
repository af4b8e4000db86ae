/**
 * Fake Azure OpenAI resource, from Azure's REST reference (data-plane inference):
 *
 *   POST /openai/deployments/{deployment}/chat/completions?api-version=YYYY-MM-DD[-preview]
 *   POST /openai/deployments/{deployment}/embeddings?api-version=...
 *   GET  /openai/models?api-version=...
 *   POST /openai/v1/chat/completions        (v1 API: the deployment is the body's `model`; api-version optional)
 *   POST /openai/v1/embeddings
 *   GET  /openai/v1/models
 *
 * Auth: an `api-key` header, or `Authorization: Bearer <Entra token>`. Errors have Azure's shape
 * `{error: {code, message, ...}}` (codes as strings: "401", "429", "DeploymentNotFound", "content_filter").
 * Missing api-version on the deployment paths: 404 "Resource not found", as Azure answers. Answers carry Azure's
 * content-filter annotations: `prompt_filter_results` and per-choice `content_filter_results`; a stream opens
 * with a chunk of empty `choices`, id and model that holds only the prompt's filter results. A prompt containing
 * `filterWord` is refused (400, code content_filter, innererror ResponsibleAIPolicyViolation); an answer
 * containing `filterAnswerWord` stops there with finish_reason content_filter. opts.turn scripts the model's
 * turn for agent tests.
 */
import { type Ctx, type FakeOptions, type FakeProvider, countWords, fakeEmbedding, makeId, promptTokens, readMessages, replyTo, sseData, startFakeServer, textOf, unixSeconds, wordChunks } from './common.ts';

export interface FakeAzureOptions extends FakeOptions {
  /** The resource's deployments: deployment name → the model it runs (default {chat: 'gpt-4o'}). */
  deployments?: Record<string, string>;
  /** An Entra access token the resource accepts as a bearer token. */
  entraToken?: string;
  filterWord?: string;
  filterAnswerWord?: string;
}

const azureError = (code: string, message: string, extra: Record<string, unknown> = {}) => ({ error: { code, message, ...extra } });

function errorForStatus(status: number) {
  switch (status) {
    case 401:
      return azureError('401', 'Access denied due to invalid subscription key or wrong API endpoint. Make sure to provide a valid key for an active subscription and use a correct regional API endpoint for your resource.');
    case 404:
      return azureError('404', 'Resource not found');
    case 429:
      return azureError('429', 'Requests to the ChatCompletions_Create Operation under Azure OpenAI API version 2024-10-21 have exceeded token rate limit of your current OpenAI S0 pricing tier. Please retry after 2 seconds.');
    default:
      return status >= 500 ? azureError('InternalServerError', 'The server had an error while processing your request. Sorry about that!') : azureError(String(status), `Request failed with status ${status}.`);
  }
}

const SAFE = { filtered: false, severity: 'safe' };
const safeResults = () => ({ hate: SAFE, self_harm: SAFE, sexual: SAFE, violence: SAFE });
const promptFilterResults = () => [{ prompt_index: 0, content_filter_results: safeResults() }];

const API_VERSION = /^\d{4}-\d{2}-\d{2}(-preview)?$|^preview$|^latest$/;

export function startFakeAzure(opts: FakeAzureOptions = {}): Promise<FakeProvider> {
  const name = opts.name ?? 'azure';
  const deployments = opts.deployments ?? { chat: 'gpt-4o' };
  const chatPath = /^\/openai\/deployments\/([^/]+)\/chat\/completions$/;
  const embedPath = /^\/openai\/deployments\/([^/]+)\/embeddings$/;

  return startFakeServer({
    name,
    basePath: '',
    isChat: (method, path) => method === 'POST' && (chatPath.test(path) || path === '/openai/v1/chat/completions'),
    errorBody: errorForStatus,
    async handle(ctx) {
      const { method, path } = ctx;
      const v1 = path.startsWith('/openai/v1/');
      const version = ctx.query.get('api-version');
      if (!v1 && (version === null || !API_VERSION.test(version))) return ctx.json(404, errorForStatus(404));

      const key = ctx.req.headers['api-key'];
      const bearer = ctx.req.headers.authorization;
      if (bearer !== undefined) {
        if (opts.entraToken === undefined || bearer !== `Bearer ${opts.entraToken}`) {
          return ctx.json(401, azureError('401', 'Unauthorized. Access token is missing, invalid, audience is incorrect (https://cognitiveservices.azure.com), or have expired.'));
        }
      } else if (opts.apiKey !== undefined && key !== opts.apiKey) {
        return ctx.json(401, errorForStatus(401));
      }

      if (method === 'GET' && (path === '/openai/models' || path === '/openai/v1/models')) {
        const models = [...new Set(Object.values(deployments))];
        return ctx.json(200, { object: 'list', data: models.map((id) => ({ id, object: 'model', created_at: 1700000000, status: 'succeeded', capabilities: { chat_completion: true } })) });
      }
      const chat = chatPath.exec(path);
      const embed = embedPath.exec(path);
      if (method === 'POST' && (chat || embed || path === '/openai/v1/chat/completions' || path === '/openai/v1/embeddings')) {
        const deployment = decodeURIComponent((chat ?? embed)?.[1] ?? String(ctx.body?.model ?? ''));
        const model = deployments[deployment];
        if (!model) {
          return ctx.json(404, azureError('DeploymentNotFound', 'The API deployment for this resource does not exist. If you created the deployment within the last 5 minutes, please wait a moment and try again.'));
        }
        return embed || path === '/openai/v1/embeddings' ? embeddings(ctx, model) : completion(ctx, name, model, opts);
      }
      return ctx.json(404, errorForStatus(404));
    },
  });
}

async function embeddings(ctx: Ctx, model: string) {
  const input: string[] = typeof ctx.body?.input === 'string' ? [ctx.body.input] : (ctx.body?.input ?? []);
  const tokens = promptTokens(input.join('').length);
  return ctx.json(200, { object: 'list', model, data: input.map((text, index) => ({ object: 'embedding', index, embedding: fakeEmbedding(text) })), usage: { prompt_tokens: tokens, total_tokens: tokens } });
}

async function completion(ctx: Ctx, name: string, model: string, opts: FakeAzureOptions) {
  const body = ctx.body;
  if (!body || !Array.isArray(body.messages) || body.messages.length === 0) {
    return ctx.json(400, azureError('BadRequest', "'messages' is a required property", { param: 'messages', type: 'invalid_request_error' }));
  }
  const { promptTokenCount, last, lastUserText } = readMessages(body.messages);
  if (opts.filterWord && body.messages.some((m: any) => textOf(m?.content).includes(opts.filterWord as string))) {
    return ctx.json(400, {
      error: {
        message: "The response was filtered due to the prompt triggering Azure OpenAI's content management policy. Please modify your prompt and retry.",
        type: null,
        param: 'prompt',
        code: 'content_filter',
        status: 400,
        innererror: { code: 'ResponsibleAIPolicyViolation', content_filter_result: { ...safeResults(), violence: { filtered: true, severity: 'high' } } },
      },
    });
  }

  const tools: any[] = Array.isArray(body.tools) ? body.tools : [];
  const images = body.messages.flatMap((m: any) => (Array.isArray(m?.content) ? m.content.filter((p: any) => p?.type === 'image_url') : []));
  let text: string | null = null;
  let toolCall: { id: string; name: string; arguments: string } | null = null;
  let trailing = body.messages.length;
  while (trailing > 0 && body.messages[trailing - 1]?.role === 'tool') trailing--;
  const toolResult = trailing < body.messages.length ? body.messages.slice(trailing).map((m: any) => textOf(m.content)).join('\n') : undefined;
  const scripted = opts.turn?.({ toolResult, lastUserText, tools: tools.map((t) => t?.function?.name), body });
  if (scripted && 'tool' in scripted) toolCall = { id: scripted.id ?? makeId('call_'), name: scripted.tool, arguments: JSON.stringify(scripted.input) };
  else if (scripted) text = scripted.text;
  else if (tools.length > 0 && last?.role === 'user' && body.tool_choice !== 'none') {
    toolCall = { id: makeId('call_'), name: tools[0]?.function?.name ?? 'tool', arguments: JSON.stringify({ input: lastUserText }) };
  } else if (last?.role === 'tool') {
    text = `tool said: ${textOf(last.content)}`;
  } else {
    text = replyTo(lastUserText, body, name, opts);
    if (images.length > 0) text += ` (${images.length} image${images.length > 1 ? 's' : ''})`;
  }
  let finish = toolCall ? 'tool_calls' : 'stop';
  const filterAt = opts.filterAnswerWord && text ? text.indexOf(opts.filterAnswerWord) : -1;
  if (text && filterAt >= 0) {
    text = text.slice(0, filterAt);
    finish = 'content_filter';
  }
  const reasoningTokens = body.reasoning_effort ? 16 : 0;
  const completionTokens = countWords(text ?? toolCall?.arguments ?? '') + reasoningTokens;
  const usage = {
    prompt_tokens: promptTokenCount,
    completion_tokens: completionTokens,
    total_tokens: promptTokenCount + completionTokens,
    prompt_tokens_details: { cached_tokens: 0 },
    completion_tokens_details: { reasoning_tokens: reasoningTokens },
  };
  const choiceFilter = finish === 'content_filter' ? { ...safeResults(), violence: { filtered: true, severity: 'medium' } } : safeResults();
  const id = makeId('chatcmpl-', 29);
  const created = unixSeconds();

  if (body.stream !== true) {
    const message = toolCall
      ? { role: 'assistant', content: null, tool_calls: [{ id: toolCall.id, type: 'function', function: { name: toolCall.name, arguments: toolCall.arguments } }] }
      : { role: 'assistant', content: text };
    return ctx.json(200, {
      id,
      object: 'chat.completion',
      created,
      model,
      prompt_filter_results: promptFilterResults(),
      choices: [{ index: 0, finish_reason: finish, logprobs: null, message, content_filter_results: choiceFilter }],
      usage,
      system_fingerprint: 'fp_azure01',
    });
  }

  const includeUsage = body.stream_options?.include_usage === true;
  const chunk = (delta: object, finishReason: string | null, filter = true) => ({
    id,
    object: 'chat.completion.chunk',
    created,
    model,
    system_fingerprint: 'fp_azure01',
    choices: [{ index: 0, delta, finish_reason: finishReason, logprobs: null, ...(filter ? { content_filter_results: finishReason === 'content_filter' ? choiceFilter : safeResults() } : {}) }],
    ...(includeUsage ? { usage: null } : {}),
  });
  const events = [sseData({ choices: [], created: 0, id: '', model: '', object: '', prompt_filter_results: promptFilterResults() })];
  if (toolCall) {
    events.push(sseData(chunk({ role: 'assistant', content: null, tool_calls: [{ index: 0, id: toolCall.id, type: 'function', function: { name: toolCall.name, arguments: '' } }] }, null, false)));
    for (const part of wordChunks(toolCall.arguments)) events.push(sseData(chunk({ tool_calls: [{ index: 0, function: { arguments: part } }] }, null, false)));
  } else {
    events.push(sseData(chunk({ role: 'assistant', content: '' }, null, false)));
    for (const word of wordChunks(text ?? '')) events.push(sseData(chunk({ content: word }, null)));
  }
  events.push(sseData(chunk({}, finish)));
  if (includeUsage) events.push(sseData({ id, object: 'chat.completion.chunk', created, model, choices: [], usage }));
  events.push(sseData('[DONE]'));
  return ctx.stream('text/event-stream; charset=utf-8', events);
}
