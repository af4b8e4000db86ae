/**
 * Fake Ollama API, from the public API reference (docs/api.md).
 *
 *   POST /api/chat      NDJSON stream by default (`stream` absent ⇒ streaming); `stream:false` ⇒ one JSON object
 *   POST /api/embed     deterministic 8-dim vectors
 *   GET  /api/tags      local models
 *   GET  /api/version, GET / ("Ollama is running")
 *   anything else       404 text/plain "404 page not found" (what Ollama's router really answers)
 *
 * Ollama has no auth; errors are `{"error":"..."}`.
 *
 * Thinking (`think: true` or a level): the answer's message carries `thinking` (streamed in lines of their own
 * before the content), as thinking models do.
 */
import {
  type Ctx,
  type FakeOptions,
  type FakeProvider,
  countWords,
  fakeEmbedding,
  ndjson,
  promptTokens,
  readMessages,
  replyTo,
  startFakeServer,
  textOf,
  wordChunks,
  continueAnswer,
  trailingAssistantText,
} from './common.ts';

export function ollamaError(message: string) {
  return { error: message };
}

function errorForStatus(status: number) {
  switch (status) {
    case 400:
      return ollamaError('invalid request');
    case 404:
      return ollamaError('model not found, try pulling it first');
    case 429:
      return ollamaError('server busy, please try again.  maximum pending requests exceeded');
    case 503:
      return ollamaError('server busy, please try again.  maximum pending requests exceeded');
    default:
      return ollamaError(status >= 500 ? 'llama runner process has terminated: exit status 2' : `request failed with status ${status}`);
  }
}

export function startFakeOllama(opts: FakeOptions = {}): Promise<FakeProvider> {
  const name = opts.name ?? 'ollama';
  const models = opts.models ?? ['llama3:latest'];

  return startFakeServer({
    name,
    basePath: '',
    isChat: (method, path) => method === 'POST' && path === '/api/chat',
    errorBody: errorForStatus,
    // Ollama reports a failure in the middle of a stream as a line with an `error` field.
    streamError: () => ndjson(ollamaError('an error was encountered while running the model: unexpected EOF')),
    async handle(ctx) {
      const { method, path } = ctx;
      if (method === 'POST' && path === '/api/chat') return chat(ctx, name, opts);
      if (method === 'POST' && path === '/api/embed') return embed(ctx);
      if (method === 'GET' && path === '/api/tags') {
        return ctx.json(200, { models: models.map(tagObject) }, { 'content-type': 'application/json; charset=utf-8' });
      }
      if (method === 'GET' && path === '/api/version') return ctx.json(200, { version: '0.9.0' });
      if ((method === 'GET' || method === 'HEAD') && path === '/') return ctx.text(200, 'Ollama is running');
      return ctx.text(404, '404 page not found');
    },
  });
}

function tagObject(name: string) {
  return {
    name,
    model: name,
    modified_at: '2024-05-01T12:00:00.000000000Z',
    size: 4661224676,
    digest: 'a6990ed6be412c6a217614b0ec8e9cd6800a743d5dd7e1d7fbe9df09e61d5615',
    details: {
      parent_model: '',
      format: 'gguf',
      family: 'llama',
      families: ['llama'],
      parameter_size: '8.0B',
      quantization_level: 'Q4_0',
    },
  };
}

function nowIso(): string {
  return new Date().toISOString();
}

/** nanosecond duration fields, derived deterministically from the counts */
function durations(promptCount: number, evalCount: number) {
  const prompt_eval_duration = promptCount * 1_000_000;
  const eval_duration = evalCount * 10_000_000;
  const load_duration = 1_000_000;
  return {
    total_duration: load_duration + prompt_eval_duration + eval_duration,
    load_duration,
    prompt_eval_count: promptCount,
    prompt_eval_duration,
    eval_count: evalCount,
    eval_duration,
  };
}

interface Answer {
  text: string;
  toolCall: { name: string; arguments: { input: string } } | null;
  promptTokens: number;
  completionTokens: number;
}

function answer(body: any, name: string, opts: FakeOptions): Answer {
  const { promptTokenCount, last, lastUserText } = readMessages(body.messages);

  const tools: any[] = Array.isArray(body.tools) ? body.tools : [];
  if (tools.length > 0 && last?.role === 'user') {
    const args = { input: lastUserText };
    return {
      text: '',
      toolCall: { name: tools[0]?.function?.name ?? 'tool', arguments: args },
      promptTokens: promptTokenCount,
      completionTokens: countWords(JSON.stringify(args)),
    };
  }
  // A `tool` message carries a tool's result: the model says it back.
  const text = last?.role === 'tool' ? `tool said: ${textOf(last.content)}` : replyTo(lastUserText, body, name, opts);
  return { text, toolCall: null, promptTokens: promptTokenCount, completionTokens: countWords(text) };
}

async function chat(ctx: Ctx, name: string, opts: FakeOptions) {
  const body = ctx.body;
  if (body === undefined || typeof body !== 'object') return ctx.json(400, ollamaError('invalid character in request body'));
  if (typeof body.model !== 'string' || body.model === '') return ctx.json(400, ollamaError('model is required'));

  // An empty/missing messages array just loads the model.
  if (!Array.isArray(body.messages) || body.messages.length === 0) {
    return ctx.json(200, {
      model: body.model,
      created_at: nowIso(),
      message: { role: 'assistant', content: '' },
      done_reason: 'load',
      done: true,
    });
  }

  // A conversation that ends with an assistant message: the model continues that message (Ollama's prefill).
  const prefill = trailingAssistantText(body.messages);
  const a = answer(prefill === undefined ? body : { ...body, messages: body.messages.slice(0, -1) }, name, opts);
  if (prefill !== undefined && !a.toolCall) {
    a.text = continueAnswer(a.text, prefill);
    a.completionTokens = countWords(a.text);
    a.promptTokens = readMessages(body.messages).promptTokenCount;
  }
  const thinking = body.think === true || typeof body.think === 'string' ? `Thinking about: ${readMessages(body.messages).lastUserText}` : undefined;
  if (thinking) a.completionTokens += countWords(thinking);
  const model = body.model;
  const toolCalls = a.toolCall ? [{ function: { name: a.toolCall.name, arguments: a.toolCall.arguments } }] : undefined;
  const stats = durations(a.promptTokens, a.completionTokens);

  if (body.stream === false) {
    return ctx.json(200, {
      model,
      created_at: nowIso(),
      message: { role: 'assistant', content: a.text, ...(thinking ? { thinking } : {}), ...(toolCalls ? { tool_calls: toolCalls } : {}) },
      done_reason: 'stop',
      done: true,
      ...stats,
    });
  }

  const lines: string[] = [];
  for (const word of thinking ? wordChunks(thinking) : []) {
    lines.push(ndjson({ model, created_at: nowIso(), message: { role: 'assistant', content: '', thinking: word }, done: false }));
  }
  if (toolCalls) {
    lines.push(ndjson({ model, created_at: nowIso(), message: { role: 'assistant', content: '', tool_calls: toolCalls }, done: false }));
  } else {
    for (const word of wordChunks(a.text)) {
      lines.push(ndjson({ model, created_at: nowIso(), message: { role: 'assistant', content: word }, done: false }));
    }
  }
  lines.push(
    ndjson({
      model,
      created_at: nowIso(),
      message: { role: 'assistant', content: '' },
      done_reason: 'stop',
      done: true,
      ...stats,
    }),
  );
  return ctx.stream('application/x-ndjson', lines);
}

async function embed(ctx: Ctx) {
  const body = ctx.body;
  if (!body || typeof body.model !== 'string') return ctx.json(400, ollamaError('model is required'));
  const inputs: string[] =
    typeof body.input === 'string' ? [body.input] : Array.isArray(body.input) ? body.input.map(String) : [];
  const chars = inputs.reduce((n, s) => n + s.length, 0);
  const count = promptTokens(chars);
  return ctx.json(200, {
    model: body.model,
    embeddings: inputs.map((s) => fakeEmbedding(s)),
    total_duration: 1_000_000 + count * 1_000_000,
    load_duration: 1_000_000,
    prompt_eval_count: count,
  });
}
