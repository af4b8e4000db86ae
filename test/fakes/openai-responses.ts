/**
 * Fake OpenAI Responses API (POST /v1/responses, GET/DELETE /v1/responses/{id}), from the public API reference.
 *
 * Input is a string or items; the answer is a Response object, or with `stream: true` the event stream:
 * response.created, response.in_progress, then per output item output_item.added, its parts and deltas and
 * output_item.done, then response.completed with usage; every event has `event:` and a sequence_number.
 *
 * The model: with function tools and a conversation that ends in a user message it calls the first tool
 * (or the one tool_choice names) with {"input": <last user text>}; after function_call_output items it says
 * "tool said: <outputs>"; otherwise it echoes "[name] <last user text>". `opts.turn` scripts turns instead.
 * With `reasoning.effort` a reasoning item comes first, its summary when `reasoning.summary` is set and its
 * `encrypted_content` when `include` asks for reasoning.encrypted_content; such a sealed item sent back is
 * checked (a tampered one is a 400, as OpenAI refuses content it cannot decrypt). A `web_search` tool makes
 * a web_search_call item before the message, as OpenAI runs that tool itself. Stored responses (store, on by
 * default) continue with previous_response_id. Faults (common.ts) apply to POST /v1/responses; a `breakAfter` with
 * how 'error' sends the `error` event.
 */
import { createHash } from 'node:crypto';
import { type Ctx, type FakeOptions, type FakeProvider, countWords, makeId, promptTokens, startFakeServer, textOf, unixSeconds, wordChunks } from './common.ts';
import { openaiError } from './openai.ts';

const PATH = '/v1/responses';

interface Turn {
  items: any[];
  lastUserText: string;
  toolResult?: string;
}

/** The items of an input, a string being one user message. */
const itemsOf = (input: unknown): any[] => (typeof input === 'string' ? [{ type: 'message', role: 'user', content: input }] : Array.isArray(input) ? input : []);

function read(items: any[]): Turn {
  const users = items.filter((item) => (item.type ?? 'message') === 'message' && item.role === 'user');
  let start = items.length;
  while (start > 0 && items[start - 1]?.type === 'function_call_output') start--;
  const outputs = items.slice(start).map((item) => (typeof item.output === 'string' ? item.output : textOf(item.output)));
  return { items, lastUserText: partsText(users.at(-1)?.content), toolResult: outputs.length > 0 ? outputs.join('\n') : undefined };
}

function partsText(content: unknown): string {
  if (typeof content === 'string') return content;
  if (!Array.isArray(content)) return '';
  return content.map((part: any) => (typeof part?.text === 'string' ? part.text : '')).join('');
}

/** The sealed reasoning a fake model hands out: verifiable, so a changed one can be refused. */
const seal = (text: string) => `fake-sealed:${Buffer.from(text).toString('base64')}:${createHash('sha256').update(`fake|${text}`).digest('hex').slice(0, 16)}`;
function unsealable(sealed: string): boolean {
  const [, body, mac] = /^fake-sealed:([^:]*):(\w+)$/.exec(sealed) ?? [];
  return body === undefined || seal(Buffer.from(body, 'base64').toString()) !== `fake-sealed:${body}:${mac}`;
}

export function startFakeResponses(opts: FakeOptions = {}): Promise<FakeProvider> {
  const name = opts.name ?? 'openai';
  const stored = new Map<string, { input: any[]; output: any[] }>();

  return startFakeServer({
    name,
    basePath: '/v1',
    isChat: (method, path) => method === 'POST' && path === PATH,
    errorBody: (status) =>
      status === 429
        ? openaiError('Rate limit reached for requests per min (RPM). Please try again in 2s.', 'requests', 'rate_limit_exceeded')
        : status >= 500
          ? openaiError('The server had an error while processing your request. Sorry about that!', 'server_error')
          : openaiError(`Request failed with status ${status}.`, 'invalid_request_error'),
    // The `error` event OpenAI documents for a stream that fails part way.
    streamError: () => `event: error\ndata: ${JSON.stringify({ type: 'error', code: 'server_error', message: 'The server had an error while processing your request. Sorry about that!', param: null })}\n\n`,
    async handle(ctx) {
      if (opts.apiKey !== undefined && ctx.req.headers.authorization !== `Bearer ${opts.apiKey}`) {
        return ctx.json(401, openaiError('Incorrect API key provided.', 'invalid_request_error', 'invalid_api_key'));
      }
      if (ctx.method === 'POST' && ctx.path === PATH) return create(ctx, name, opts, stored);
      const id = ctx.path.startsWith(`${PATH}/`) ? ctx.path.slice(PATH.length + 1) : undefined;
      if (id && ctx.method === 'DELETE') return stored.delete(id) ? ctx.json(200, { id, object: 'response', deleted: true }) : notFound(ctx, id);
      if (id && ctx.method === 'GET' && stored.has(id)) return ctx.json(200, { id, object: 'response', output: stored.get(id)?.output });
      if (id) return notFound(ctx, id);
      return ctx.json(404, openaiError(`Invalid URL (${ctx.method} ${ctx.path})`, 'invalid_request_error'));
    },
  });
}

const notFound = (ctx: Ctx, id: string) => ctx.json(404, openaiError(`Response with id '${id}' not found.`, 'invalid_request_error', null, 'response_id'));

async function create(ctx: Ctx, name: string, opts: FakeOptions, stored: Map<string, { input: any[]; output: any[] }>) {
  const body = ctx.body;
  if (!body || typeof body.model !== 'string' || body.model === '') return ctx.json(400, openaiError("Missing required parameter: 'model'.", 'invalid_request_error', 'missing_required_parameter', 'model'));
  let history: any[] = [];
  if (body.previous_response_id) {
    const previous = stored.get(body.previous_response_id);
    if (!previous) return ctx.json(400, openaiError(`Previous response with id '${body.previous_response_id}' not found.`, 'invalid_request_error', 'previous_response_not_found', 'previous_response_id'));
    history = [...previous.input, ...previous.output];
  }
  const items = [...history, ...itemsOf(body.input)];
  for (const item of items) {
    if (item?.type === 'reasoning' && typeof item.encrypted_content === 'string' && unsealable(item.encrypted_content)) {
      return ctx.json(400, openaiError('The encrypted content could not be verified.', 'invalid_request_error', 'invalid_encrypted_content', 'input'));
    }
  }
  const turn = read(items);
  const tools: any[] = Array.isArray(body.tools) ? body.tools : [];
  const functions = tools.filter((t) => t?.type === 'function').map((t) => t.name as string);
  const id = makeId('resp_');
  const output: any[] = [];

  if (body.reasoning?.effort) {
    const thought = `Thinking about: ${turn.lastUserText}`;
    output.push({
      id: makeId('rs_'),
      type: 'reasoning',
      summary: body.reasoning.summary ? [{ type: 'summary_text', text: thought }] : [],
      ...(Array.isArray(body.include) && body.include.includes('reasoning.encrypted_content') ? { encrypted_content: seal(thought) } : {}),
    });
  }
  if (tools.some((t) => t?.type === 'web_search' || t?.type === 'web_search_preview')) {
    output.push({ id: makeId('ws_'), type: 'web_search_call', status: 'completed', action: { type: 'search', query: turn.lastUserText } });
  }
  const scripted = opts.turn?.({ toolResult: turn.toolResult, lastUserText: turn.lastUserText, tools: functions, body });
  const last = items.at(-1);
  const lastIsUser = (last?.type ?? 'message') === 'message' && last?.role === 'user';
  const named = body.tool_choice?.type === 'function' ? body.tool_choice.name : undefined;
  if (scripted && 'tool' in scripted) {
    output.push(callItem(scripted.id ?? makeId('call_'), scripted.tool, JSON.stringify(scripted.input)));
  } else if (!scripted && functions.length > 0 && lastIsUser && body.tool_choice !== 'none') {
    output.push(callItem(makeId('call_'), named ?? functions[0], JSON.stringify({ input: turn.lastUserText })));
  } else {
    const text = scripted ? scripted.text : turn.toolResult !== undefined ? `tool said: ${turn.toolResult}` : opts.reply ? opts.reply(turn.lastUserText, body) : `[${name}] ${turn.lastUserText}`;
    output.push({ id: makeId('msg_'), type: 'message', status: 'completed', role: 'assistant', content: [{ type: 'output_text', text, annotations: [], logprobs: [] }] });
  }

  const inputTokens = promptTokens(JSON.stringify(items).length + String(body.instructions ?? '').length);
  const outputTokens = output.reduce((n, item) => n + countWords(item.type === 'message' ? item.content[0].text : item.type === 'function_call' ? item.arguments : item.type === 'reasoning' ? 'a b c' : ''), 0);
  const reasoningTokens = body.reasoning?.effort ? 3 : 0;
  const response = {
    id,
    object: 'response',
    created_at: unixSeconds(),
    status: 'completed',
    error: null,
    incomplete_details: null,
    instructions: body.instructions ?? null,
    max_output_tokens: body.max_output_tokens ?? null,
    model: body.model,
    output,
    parallel_tool_calls: body.parallel_tool_calls ?? true,
    previous_response_id: body.previous_response_id ?? null,
    reasoning: { effort: body.reasoning?.effort ?? null, summary: body.reasoning?.summary ?? null },
    store: body.store !== false,
    temperature: body.temperature ?? 1,
    text: body.text ?? { format: { type: 'text' } },
    tool_choice: body.tool_choice ?? 'auto',
    tools,
    top_p: body.top_p ?? 1,
    truncation: 'disabled',
    usage: {
      input_tokens: inputTokens,
      input_tokens_details: { cached_tokens: 0 },
      output_tokens: outputTokens,
      output_tokens_details: { reasoning_tokens: reasoningTokens },
      total_tokens: inputTokens + outputTokens,
    },
    metadata: body.metadata ?? {},
  };
  if (body.store !== false) stored.set(id, { input: items, output });
  if (body.stream !== true) return ctx.json(200, response);
  return ctx.stream('text/event-stream; charset=utf-8', streamEvents(response));
}

function callItem(callId: string, name: string, args: string) {
  return { id: makeId('fc_'), type: 'function_call', status: 'completed', call_id: callId, name, arguments: args };
}

/** The events of a response as OpenAI streams them. */
function streamEvents(response: any): string[] {
  let sequence = 0;
  const event = (type: string, fields: Record<string, unknown>) => `event: ${type}\ndata: ${JSON.stringify({ type, sequence_number: sequence++, ...fields })}\n\n`;
  const pending = { ...response, status: 'in_progress', output: [], usage: null };
  const events = [event('response.created', { response: pending }), event('response.in_progress', { response: pending })];
  response.output.forEach((item: any, index: number) => {
    if (item.type === 'message') {
      const text: string = item.content[0].text;
      const at = { item_id: item.id, output_index: index, content_index: 0 };
      events.push(event('response.output_item.added', { output_index: index, item: { ...item, status: 'in_progress', content: [] } }));
      events.push(event('response.content_part.added', { ...at, part: { type: 'output_text', text: '', annotations: [] } }));
      for (const delta of wordChunks(text)) events.push(event('response.output_text.delta', { ...at, delta, logprobs: [] }));
      events.push(event('response.output_text.done', { ...at, text, logprobs: [] }));
      events.push(event('response.content_part.done', { ...at, part: item.content[0] }));
    } else if (item.type === 'function_call') {
      events.push(event('response.output_item.added', { output_index: index, item: { ...item, status: 'in_progress', arguments: '' } }));
      const half = Math.ceil(item.arguments.length / 2);
      for (const delta of [item.arguments.slice(0, half), item.arguments.slice(half)]) events.push(event('response.function_call_arguments.delta', { item_id: item.id, output_index: index, delta }));
      events.push(event('response.function_call_arguments.done', { item_id: item.id, output_index: index, name: item.name, arguments: item.arguments }));
    } else if (item.type === 'reasoning') {
      events.push(event('response.output_item.added', { output_index: index, item: { ...item, summary: [], encrypted_content: undefined } }));
      item.summary.forEach((part: any, summaryIndex: number) => {
        const at = { item_id: item.id, output_index: index, summary_index: summaryIndex };
        events.push(event('response.reasoning_summary_part.added', { ...at, part: { type: 'summary_text', text: '' } }));
        events.push(event('response.reasoning_summary_text.delta', { ...at, delta: part.text }));
        events.push(event('response.reasoning_summary_text.done', { ...at, text: part.text }));
        events.push(event('response.reasoning_summary_part.done', { ...at, part }));
      });
    } else {
      events.push(event('response.output_item.added', { output_index: index, item: { ...item, status: 'in_progress' } }));
      if (item.type === 'web_search_call') {
        for (const phase of ['in_progress', 'searching', 'completed']) events.push(event(`response.web_search_call.${phase}`, { item_id: item.id, output_index: index }));
      }
    }
    events.push(event('response.output_item.done', { output_index: index, item }));
  });
  events.push(event('response.completed', { response }));
  return events;
}
