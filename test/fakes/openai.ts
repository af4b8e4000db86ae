/**
 * Fake OpenAI API (Chat Completions, Embeddings, Models), from the public API reference.
 *
 *   POST /v1/chat/completions   plain JSON or SSE (`data: {chat.completion.chunk}` ... `data: [DONE]`)
 *   POST /v1/embeddings         deterministic 8-dim vectors; honours encoding_format 'base64'
 *   GET  /v1/models[/{id}]
 *   anything else               404 {"error":{...}}
 *
 * Reasoning (`reasoning_effort`): like an OpenAI-compatible server with a reasoning parser (DeepSeek, vLLM),
 * the answer carries `reasoning_content` (streamed as `delta.reasoning_content` before the content) and
 * usage counts it in completion_tokens_details.reasoning_tokens; as OpenAI's reasoning models do, such a
 * request with `max_tokens` is a 400 (they take max_completion_tokens). Prompt caching: with a
 * `prompt_cache_key`, a request whose messages before the last one were seen under that key reports them as
 * prompt_tokens_details.cached_tokens (OpenAI caches by prefix; unlike it, the fake has no minimum length).
 * With opts.autoPromptCache every request is cached that way, key or not, as OpenAI does by itself.
 */
import { createHash } from 'node:crypto';
import {
  type Ctx,
  type FakeOptions,
  type FakeProvider,
  countWords,
  fakeEmbedding,
  makeId,
  promptTokens,
  readMessages,
  replyTo,
  sseData,
  startFakeServer,
  textOf,
  continueAnswer,
  trailingAssistantText,
  unixSeconds,
  wordChunks,
} from './common.ts';

const CHAT_PATH = '/v1/chat/completions';

export function openaiError(message: string, type: string, code: string | null = null, param: string | null = null) {
  return { error: { message, type, param, code } };
}

function errorForStatus(status: number) {
  switch (status) {
    case 400:
      return openaiError('Bad request.', 'invalid_request_error');
    case 401:
      return openaiError('Incorrect API key provided.', 'invalid_request_error', 'invalid_api_key');
    case 403:
      return openaiError('You are not allowed to access this resource.', 'invalid_request_error', 'unsupported_country_region_territory');
    case 404:
      return openaiError('The model does not exist or you do not have access to it.', 'invalid_request_error', 'model_not_found');
    case 429:
      return openaiError(
        'Rate limit reached for requests per min (RPM). Please try again in 2s.',
        'requests',
        'rate_limit_exceeded',
      );
    case 503:
      return openaiError('The engine is currently overloaded, please try again later.', 'server_error');
    default:
      return status >= 500
        ? openaiError('The server had an error while processing your request. Sorry about that!', 'server_error')
        : openaiError(`Request failed with status ${status}.`, 'invalid_request_error');
  }
}

export function startFakeOpenAI(opts: FakeOptions = {}): Promise<FakeProvider> {
  const name = opts.name ?? 'openai';
  const cache = new Set<string>();
  const models = opts.models ?? ['gpt-4o-mini'];

  return startFakeServer({
    name,
    basePath: '/v1',
    isChat: (method, path) => method === 'POST' && path === CHAT_PATH,
    errorBody: errorForStatus,
    // OpenAI reports a failure in the middle of a stream as a data event carrying an error object.
    streamError: () => sseData(openaiError('The server had an error while processing your request. Sorry about that!', 'server_error')),
    async handle(ctx) {
      const { method, path } = ctx;

      if (opts.apiKey !== undefined && path.startsWith('/v1/')) {
        const auth = ctx.req.headers.authorization;
        if (!auth) {
          return ctx.json(
            401,
            openaiError(
              "You didn't provide an API key. You need to provide your API key in an Authorization header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY).",
              'invalid_request_error',
            ),
          );
        }
        if (auth !== `Bearer ${opts.apiKey}`) {
          return ctx.json(
            401,
            openaiError('Incorrect API key provided.', 'invalid_request_error', 'invalid_api_key'),
          );
        }
      }

      if (method === 'POST' && path === CHAT_PATH) return chat(ctx, name, opts, cache);
      if (method === 'POST' && path === '/v1/embeddings') return embeddings(ctx);
      if (method === 'GET' && path === '/v1/models') {
        return ctx.json(200, { object: 'list', data: models.map(modelObject) });
      }
      if (method === 'GET' && path.startsWith('/v1/models/')) {
        const id = decodeURIComponent(path.slice('/v1/models/'.length));
        if (models.includes(id)) return ctx.json(200, modelObject(id));
        return ctx.json(
          404,
          openaiError(`The model '${id}' does not exist`, 'invalid_request_error', 'model_not_found', 'model'),
        );
      }
      return ctx.json(404, openaiError(`Invalid URL (${method} ${path})`, 'invalid_request_error'));
    },
  }, { tls: opts.tls });
}

function modelObject(id: string) {
  return { id, object: 'model', created: 1700000000, owned_by: 'system' };
}

// ---------------------------------------------------------------------------
// Chat completions
// ---------------------------------------------------------------------------

interface Answer {
  text: string | null;
  toolCall: { id: string; name: string; arguments: string } | null;
  promptTokens: number;
  completionTokens: number;
  reasoning?: string;
  cachedTokens?: number;
}

/** The prompt tokens a prompt_cache_key request finds cached: its messages before the last, if seen before. */
function cachedPrefixTokens(body: any, seen: Set<string>, always: boolean): number {
  if (typeof body.prompt_cache_key !== 'string' && !always) return 0;
  const prefix = body.messages.slice(0, -1);
  const key = createHash('sha256').update(String(body.prompt_cache_key ?? '')).update(JSON.stringify(prefix)).digest('hex');
  const hit = seen.has(key);
  seen.add(key);
  return hit ? readMessages(prefix).promptTokenCount : 0;
}

function answer(body: any, name: string, opts: FakeOptions): Answer {
  const { promptTokenCount, last, lastUserText } = readMessages(body.messages);

  const scripted = opts.turn?.({
    toolResult: toolResults(body.messages),
    lastUserText,
    tools: Array.isArray(body.tools) ? body.tools.map((t: any) => t?.function?.name).filter((n: unknown) => typeof n === 'string') : [],
    body,
  });
  if (scripted && 'tool' in scripted) {
    const args = JSON.stringify(scripted.input);
    const toolCall = { id: scripted.id ?? makeId('call_'), name: scripted.tool, arguments: args };
    return { text: null, toolCall, promptTokens: promptTokenCount, completionTokens: countWords(args) };
  }
  if (scripted) return { text: scripted.text, toolCall: null, promptTokens: promptTokenCount, completionTokens: countWords(scripted.text) };

  const tools: any[] = Array.isArray(body.tools) ? body.tools : [];
  if (tools.length > 0 && last?.role === 'user' && body.tool_choice !== 'none') {
    const named = body.tool_choice?.type === 'function' ? body.tool_choice.function?.name : undefined;
    const fn = named ?? tools[0]?.function?.name ?? 'tool';
    const args = JSON.stringify({ input: lastUserText });
    return {
      text: null,
      toolCall: { id: makeId('call_'), name: fn, arguments: args },
      promptTokens: promptTokenCount,
      completionTokens: countWords(args),
    };
  }

  // A `tool` message carries a tool's result: the model says it back.
  const text = last?.role === 'tool' ? `tool said: ${textOf(last.content)}` : replyTo(lastUserText, body, name, opts);
  return { text, toolCall: null, promptTokens: promptTokenCount, completionTokens: countWords(text) };
}

/** Text of the `tool` messages the conversation ends with (one per tool call of the last assistant turn), if it does. */
function toolResults(messages: any[]): string | undefined {
  let start = messages.length;
  while (start > 0 && messages[start - 1]?.role === 'tool') start--;
  if (start === messages.length) return undefined;
  return messages.slice(start).map((m) => textOf(m.content)).join('\n');
}

function usageOf(a: Answer) {
  return {
    prompt_tokens: a.promptTokens,
    completion_tokens: a.completionTokens,
    total_tokens: a.promptTokens + a.completionTokens,
    prompt_tokens_details: { cached_tokens: a.cachedTokens ?? 0, audio_tokens: 0 },
    completion_tokens_details: {
      reasoning_tokens: a.reasoning ? countWords(a.reasoning) : 0,
      audio_tokens: 0,
      accepted_prediction_tokens: 0,
      rejected_prediction_tokens: 0,
    },
  };
}

async function chat(ctx: Ctx, name: string, opts: FakeOptions, seen: Set<string>) {
  const body = ctx.body;
  if (body === undefined || typeof body !== 'object') {
    return ctx.json(
      400,
      openaiError(
        "We could not parse the JSON body of your request. (HINT: This likely means you aren't using your HTTP library correctly. The OpenAI API expects a JSON payload, but what was sent was not valid JSON.)",
        'invalid_request_error',
      ),
    );
  }
  if (body.messages === undefined) {
    return ctx.json(
      400,
      openaiError("Missing required parameter: 'messages'.", 'invalid_request_error', 'missing_required_parameter', 'messages'),
    );
  }
  if (!Array.isArray(body.messages) || body.messages.length === 0) {
    return ctx.json(
      400,
      openaiError(
        "Invalid 'messages': empty array. Expected an array with minimum length 1, but got an empty array instead.",
        'invalid_request_error',
        'empty_array',
        'messages',
      ),
    );
  }
  if (typeof body.model !== 'string') {
    return ctx.json(
      400,
      openaiError('you must provide a model parameter', 'invalid_request_error', null, null),
    );
  }

  if (body.reasoning_effort != null && body.max_tokens != null) {
    return ctx.json(
      400,
      openaiError("Unsupported parameter: 'max_tokens' is not supported with this model. Use 'max_completion_tokens' instead.", 'invalid_request_error', 'unsupported_parameter', 'max_tokens'),
    );
  }

  // A conversation that ends with an assistant message (a prefill, as OpenAI-compatible servers such as
  // Mistral and DeepSeek document it with `prefix: true`): the model goes on with that message.
  const prefill = trailingAssistantText(body.messages);
  const a = answer(prefill === undefined ? body : { ...body, messages: body.messages.slice(0, -1) }, name, opts);
  if (prefill !== undefined && a.text !== null) {
    a.text = continueAnswer(a.text, prefill);
    a.completionTokens = countWords(a.text);
    a.promptTokens = readMessages(body.messages).promptTokenCount;
  }
  if (body.reasoning_effort != null && body.reasoning_effort !== 'none') {
    a.reasoning = `Thinking (${body.reasoning_effort}) about: ${readMessages(body.messages).lastUserText}`;
    a.completionTokens += countWords(a.reasoning);
  }
  a.cachedTokens = Math.min(cachedPrefixTokens(body, seen, opts.autoPromptCache === true), a.promptTokens);
  const id = makeId('chatcmpl-', 29);
  const created = unixSeconds();
  const model = body.model;
  const finishReason = a.toolCall ? 'tool_calls' : 'stop';

  if (body.stream !== true) {
    return ctx.json(200, {
      id,
      object: 'chat.completion',
      created,
      model,
      choices: [
        {
          index: 0,
          message: withReasoning(a, a.toolCall
            ? {
                role: 'assistant',
                content: null,
                tool_calls: [
                  { id: a.toolCall.id, type: 'function', function: { name: a.toolCall.name, arguments: a.toolCall.arguments } },
                ],
                refusal: null,
                annotations: [],
              }
            : { role: 'assistant', content: a.text, refusal: null, annotations: [] }),

          logprobs: null,
          finish_reason: finishReason,
        },
      ],
      usage: usageOf(a),
      service_tier: 'default',
      system_fingerprint: 'fp_fake0001',
    });
  }

  // Streaming: every chunk carries the same id/created/model; with include_usage every
  // chunk has `usage: null` and one extra chunk with empty choices carries the totals.
  const includeUsage = body.stream_options?.include_usage === true && opts.streamUsage !== false;
  const chunkHead = { id, object: 'chat.completion.chunk', created, model, service_tier: 'default', system_fingerprint: 'fp_fake0001' };
  const chunk = (delta: object, finish: string | null) => ({
    ...chunkHead,
    choices: [{ index: 0, delta, logprobs: null, finish_reason: finish }],
    ...(includeUsage ? { usage: null } : {}),
  });

  const events: string[] = [];
  if (a.reasoning) {
    events.push(sseData(chunk({ role: 'assistant', content: null, reasoning_content: '' }, null)));
    for (const word of wordChunks(a.reasoning)) events.push(sseData(chunk({ reasoning_content: word }, null)));
  }
  if (a.toolCall) {
    events.push(
      sseData(
        chunk(
          {
            role: 'assistant',
            content: null,
            tool_calls: [
              { index: 0, id: a.toolCall.id, type: 'function', function: { name: a.toolCall.name, arguments: '' } },
            ],
            refusal: null,
          },
          null,
        ),
      ),
    );
    for (const frag of wordChunks(a.toolCall.arguments)) {
      events.push(sseData(chunk({ tool_calls: [{ index: 0, function: { arguments: frag } }] }, null)));
    }
  } else {
    events.push(sseData(chunk({ role: 'assistant', content: '', refusal: null }, null)));
    for (const word of wordChunks(a.text ?? '')) events.push(sseData(chunk({ content: word }, null)));
  }
  events.push(sseData(chunk({}, finishReason)));
  if (includeUsage) {
    events.push(sseData({ ...chunkHead, choices: [], usage: usageOf(a) }));
  }
  events.push(sseData('[DONE]'));
  return ctx.stream('text/event-stream; charset=utf-8', events);
}

function withReasoning(a: Answer, message: Record<string, unknown>): Record<string, unknown> {
  return a.reasoning ? { ...message, reasoning_content: a.reasoning } : message;
}

// ---------------------------------------------------------------------------
// Embeddings
// ---------------------------------------------------------------------------

async function embeddings(ctx: Ctx) {
  const body = ctx.body;
  if (!body || body.input === undefined) {
    return ctx.json(400, openaiError("Missing required parameter: 'input'.", 'invalid_request_error', 'missing_required_parameter', 'input'));
  }
  if (typeof body.model !== 'string') {
    return ctx.json(400, openaiError("Missing required parameter: 'model'.", 'invalid_request_error', 'missing_required_parameter', 'model'));
  }
  // input: string | string[] | number[] (tokens) | number[][]
  const raw = body.input;
  const inputs: string[] =
    typeof raw === 'string'
      ? [raw]
      : Array.isArray(raw) && raw.length > 0 && typeof raw[0] === 'number'
        ? [JSON.stringify(raw)]
        : Array.isArray(raw)
          ? raw.map((x: unknown) => (typeof x === 'string' ? x : JSON.stringify(x)))
          : [String(raw)];
  const base64 = body.encoding_format === 'base64';
  let chars = 0;
  const data = inputs.map((text, index) => {
    chars += text.length;
    const vec = fakeEmbedding(text);
    return {
      object: 'embedding',
      index,
      embedding: base64 ? Buffer.from(new Float32Array(vec).buffer).toString('base64') : vec,
    };
  });
  const tokens = promptTokens(chars);
  return ctx.json(200, {
    object: 'list',
    data,
    model: body.model,
    usage: { prompt_tokens: tokens, total_tokens: tokens },
  });
}
