/**
 * Fake Anthropic Messages API, from the public API reference.
 *
 *   POST /v1/messages        plain JSON or SSE (`event: X\ndata: {...}\n\n`); a query string such as
 *                            `?beta=true` (what the SDK's beta client and Claude Code send) is accepted
 *   POST /v1/messages/count_tokens   {"input_tokens": N} for a Messages request without max_tokens
 *   GET  /v1/models[/{id}]
 *   anything else            404 {"type":"error","error":{"type":"not_found_error",...}}
 *
 * Like the real API, every /v1 request needs an `anthropic-version` header (400 otherwise),
 * and when opts.apiKey is set the key in `x-api-key` or `Authorization: Bearer` (401 otherwise).
 *
 * Extended thinking (`thinking: {type: enabled, budget_tokens} | {type: adaptive}`): the answer opens with a
 * thinking block signed by the fake; thinking blocks sent back in the history must carry that signature
 * (400 otherwise, as the real API verifies them). With thinking on, a temperature other than 1, a budget under
 * 1024 or not below max_tokens are 400s. Prompt caching: `cache_control` markers on tools, system and message
 * blocks make breakpoints; the first request with a prefix writes it (cache_creation_input_tokens), later ones
 * read it (cache_read_input_tokens); unlike the real API there is no minimum length. `stop_sequences`: the answer
 * stops before the first sequence it contains (stop_reason stop_sequence, stop_sequence says which).
 */
import { createHash, createHmac } from 'node:crypto';
import {
  type Ctx,
  type FakeOptions,
  type FakeProvider,
  type ScriptedTurn,
  countWords,
  makeId,
  promptTokens,
  replyTo,
  sseEvent,
  startFakeServer,
  textOf,
  wordChunks,
  continueAnswer,
  trailingAssistantText,
} from './common.ts';

const MESSAGES_PATH = '/v1/messages';
const COUNT_TOKENS_PATH = '/v1/messages/count_tokens';

export function anthropicError(type: string, message: string) {
  return { type: 'error', error: { type, message }, request_id: makeId('req_') };
}

function errorForStatus(status: number) {
  switch (status) {
    case 400:
      return anthropicError('invalid_request_error', 'Invalid request.');
    case 401:
      return anthropicError('authentication_error', 'invalid x-api-key');
    case 403:
      return anthropicError('permission_error', 'Your API key does not have permission to use the specified resource.');
    case 404:
      return anthropicError('not_found_error', 'The requested resource could not be found.');
    case 413:
      return anthropicError('request_too_large', 'Request exceeds the maximum allowed number of bytes.');
    case 429:
      return anthropicError('rate_limit_error', 'Number of requests has exceeded your rate limit.');
    case 504:
      return anthropicError('timeout_error', 'Request timed out.');
    case 529:
      return anthropicError('overloaded_error', 'Overloaded');
    default:
      return status >= 500
        ? anthropicError('api_error', 'Internal server error')
        : anthropicError('invalid_request_error', `Request failed with status ${status}.`);
  }
}

export function startFakeAnthropic(opts: FakeOptions = {}): Promise<FakeProvider> {
  const name = opts.name ?? 'anthropic';
  const cache = new Set<string>();
  const models = opts.models ?? ['claude-3-5-haiku-latest'];

  return startFakeServer({
    name,
    basePath: '',
    // Faults apply to token counts too: both are model calls a gateway fails over.
    isChat: (method, path) => method === 'POST' && (path === MESSAGES_PATH || path === COUNT_TOKENS_PATH),
    errorBody: errorForStatus,
    // Anthropic reports a failure in the middle of a stream as an `error` event (e.g. overloaded_error).
    streamError: () => sseEvent('error', anthropicError('overloaded_error', 'Overloaded')),
    async handle(ctx) {
      const { method, path } = ctx;
      const requestId = { 'request-id': makeId('req_') };

      if (!path.startsWith('/v1/')) {
        return ctx.json(404, anthropicError('not_found_error', 'Not Found'), requestId);
      }
      if (opts.apiKey !== undefined) {
        // The API takes the key in `x-api-key` or, per the current docs (and what
        // @anthropic-ai/sdk >= 1.x sends), as `Authorization: Bearer <key>`.
        const auth = ctx.req.headers.authorization;
        const key = ctx.req.headers['x-api-key'] ?? (auth?.startsWith('Bearer ') ? auth.slice(7) : undefined);
        if (key === undefined) {
          return ctx.json(401, anthropicError('authentication_error', 'x-api-key header is required'), requestId);
        }
        if (key !== opts.apiKey) {
          return ctx.json(401, anthropicError('authentication_error', 'invalid x-api-key'), requestId);
        }
      }
      if (ctx.req.headers['anthropic-version'] === undefined) {
        return ctx.json(
          400,
          anthropicError('invalid_request_error', 'anthropic-version: header is required'),
          requestId,
        );
      }

      if (method === 'POST' && path === MESSAGES_PATH) return messages(ctx, name, opts, requestId, cache);
      if (method === 'POST' && path === COUNT_TOKENS_PATH) return countTokens(ctx, requestId);
      if (method === 'GET' && path === '/v1/models') {
        const data = models.map(modelObject);
        return ctx.json(
          200,
          { data, has_more: false, first_id: data[0]?.id ?? null, last_id: data[data.length - 1]?.id ?? null },
          requestId,
        );
      }
      if (method === 'GET' && path.startsWith('/v1/models/')) {
        const id = decodeURIComponent(path.slice('/v1/models/'.length));
        if (models.includes(id)) return ctx.json(200, modelObject(id), requestId);
        return ctx.json(404, anthropicError('not_found_error', `model: ${id}`), requestId);
      }
      return ctx.json(404, anthropicError('not_found_error', 'Not Found'), requestId);
    },
  }, { tls: opts.tls });
}

function modelObject(id: string) {
  return { type: 'model', id, display_name: id, created_at: '2024-10-22T00:00:00Z' };
}

// ---------------------------------------------------------------------------
// Messages
// ---------------------------------------------------------------------------

interface Answer {
  text: string | null;
  toolUse: { id: string; name: string; input: Record<string, unknown> } | null;
  inputTokens: number;
  outputTokens: number;
}

/** text of a message's content, including the text inside tool_result blocks */
function contentChars(content: unknown): number {
  if (typeof content === 'string') return content.length;
  if (!Array.isArray(content)) return 0;
  let n = 0;
  for (const block of content) {
    if (block?.type === 'text') n += String(block.text ?? '').length;
    else if (block?.type === 'tool_result') n += textOf(block.content).length;
  }
  return n;
}

/**
 * The test's scripted turn, if it has one for this request. Beta `role: "system"` messages carry instructions
 * between turns, not a turn of their own, so the conversation "ends with" the last user or assistant message.
 */
function scriptedTurn(body: any, opts: FakeOptions): ScriptedTurn | undefined {
  if (!opts.turn) return undefined;
  const msgs: any[] = body.messages;
  const last = [...msgs].reverse().find((m) => m?.role !== 'system');
  const lastUser = [...msgs].reverse().find((m) => m?.role === 'user');
  const results = last?.role === 'user' && Array.isArray(last.content) ? last.content.filter((b: any) => b?.type === 'tool_result') : [];
  return opts.turn({
    toolResult: results.length > 0 ? results.map((b: any) => textOf(b.content)).join('\n') : undefined,
    lastUserText: textOf(lastUser?.content),
    tools: Array.isArray(body.tools) ? body.tools.map((t: any) => t?.name).filter((n: unknown) => typeof n === 'string') : [],
    body,
  });
}

function answer(body: any, name: string, opts: FakeOptions): Answer {
  const msgs: any[] = body.messages;
  let chars = textOf(body.system).length;
  for (const m of msgs) chars += contentChars(m?.content);
  const inputTokens = promptTokens(chars);

  const scripted = scriptedTurn(body, opts);
  if (scripted && 'tool' in scripted) {
    const toolUse = { id: scripted.id ?? makeId('toolu_'), name: scripted.tool, input: scripted.input };
    return { text: null, toolUse, inputTokens, outputTokens: countWords(JSON.stringify(scripted.input)) };
  }
  if (scripted) return { text: scripted.text, toolUse: null, inputTokens, outputTokens: countWords(scripted.text) };

  const last = msgs[msgs.length - 1];
  const lastUser = [...msgs].reverse().find((m) => m?.role === 'user');
  const lastUserText = textOf(lastUser?.content);
  const toolResults = Array.isArray(last?.content) ? last.content.filter((b: any) => b?.type === 'tool_result') : [];

  if (last?.role === 'user' && toolResults.length > 0) {
    const text = `tool said: ${textOf(toolResults[toolResults.length - 1].content)}`;
    return { text, toolUse: null, inputTokens, outputTokens: countWords(text) };
  }

  const tools: any[] = Array.isArray(body.tools) ? body.tools : [];
  if (tools.length > 0 && last?.role === 'user' && body.tool_choice?.type !== 'none') {
    const named = body.tool_choice?.type === 'tool' ? body.tool_choice.name : undefined;
    const input = { input: lastUserText };
    return {
      text: null,
      toolUse: { id: makeId('toolu_'), name: named ?? tools[0]?.name ?? 'tool', input },
      inputTokens,
      outputTokens: countWords(JSON.stringify(input)),
    };
  }

  const text = replyTo(lastUserText, body, name, opts);
  return { text, toolUse: null, inputTokens, outputTokens: countWords(text) };
}

/**
 * Betas under which the API takes `role: "system"` input messages (instructions placed between turns, with a
 * per-message `output_config`), as Claude Code sends them; without one of them that role is refused.
 */
const SYSTEM_MESSAGE_BETAS = /(^|,)\s*(mid-conversation-system-|per-turn-control-)/;

/** The signature the fake gives a thinking text; the real API's are opaque too, and checked when sent back. */
export function fakeThinkingSignature(thinking: string): string {
  return createHmac('sha256', 'fake-anthropic-thinking').update(thinking).digest('base64');
}

const thinkingOn = (body: any) => body.thinking?.type === 'enabled' || body.thinking?.type === 'adaptive';

function validateThinking(body: any): string | null {
  if (body.thinking?.type === 'enabled') {
    const budget = body.thinking.budget_tokens;
    if (typeof budget !== 'number' || budget < 1024) return 'thinking.enabled.budget_tokens: Input should be greater than or equal to 1024';
    if (budget >= body.max_tokens) return '`max_tokens` must be greater than `thinking.budget_tokens`.';
  }
  if (thinkingOn(body) && body.temperature !== undefined && body.temperature !== 1) {
    return '`temperature` may only be set to 1 when thinking is enabled or in adaptive mode.';
  }
  if (thinkingOn(body) && (body.tool_choice?.type === 'any' || body.tool_choice?.type === 'tool')) {
    return 'Thinking may not be enabled when tool_choice forces tool use.';
  }
  for (let i = 0; i < body.messages.length; i++) {
    const content = body.messages[i]?.content;
    if (!Array.isArray(content)) continue;
    for (let j = 0; j < content.length; j++) {
      const block = content[j];
      if (block?.type === 'thinking' && block.signature !== fakeThinkingSignature(String(block.thinking ?? ''))) {
        return `messages.${i}.content.${j}: Invalid \`signature\` in \`thinking\` block`;
      }
    }
  }
  return null;
}

/** Cache breakpoints in prefix order (tools, system, messages): the prefix up to each marked block. */
function cacheUsage(body: any, seen: Set<string>, totalTokens: number): { read: number; write: number } {
  const breakpoints: { key: string; chars: number }[] = [];
  const prefix = createHash('sha256');
  let chars = 0;
  const visit = (block: any, size: number) => {
    prefix.update(JSON.stringify({ ...block, cache_control: undefined }));
    chars += size;
    if (block?.cache_control) breakpoints.push({ key: prefix.copy().digest('hex'), chars });
  };
  for (const tool of Array.isArray(body.tools) ? body.tools : []) visit(tool, 0);
  if (Array.isArray(body.system)) for (const block of body.system) visit(block, String(block?.text ?? '').length);
  else if (typeof body.system === 'string') visit({ type: 'text', text: body.system }, body.system.length);
  for (const m of body.messages) {
    const blocks = typeof m.content === 'string' ? [{ type: 'text', text: m.content }] : m.content;
    for (const block of blocks) visit({ role: m.role, ...block }, contentChars([block]));
  }
  if (breakpoints.length === 0) return { read: 0, write: 0 };
  let hit = 0;
  for (const bp of breakpoints) if (seen.has(bp.key)) hit = bp.chars;
  for (const bp of breakpoints) seen.add(bp.key);
  const read = Math.min(promptTokens(hit), totalTokens);
  const write = Math.min(promptTokens(breakpoints[breakpoints.length - 1].chars), totalTokens) - read;
  return { read, write: Math.max(0, write) };
}

/** The answer cut before the first of the request's stop sequences it contains. */
function applyStopSequences(text: string, body: any): { text: string; sequence: string | null } {
  let at = -1;
  let sequence: string | null = null;
  for (const candidate of Array.isArray(body.stop_sequences) ? body.stop_sequences : []) {
    const index = typeof candidate === 'string' && candidate !== '' ? text.indexOf(candidate) : -1;
    if (index >= 0 && (at < 0 || index < at)) [at, sequence] = [index, candidate];
  }
  return at < 0 ? { text, sequence: null } : { text: text.slice(0, at), sequence };
}

function validate(body: any, betas: string): string | null {
  if (body === undefined || typeof body !== 'object') return 'There was an error parsing the body of your request.';
  if (typeof body.model !== 'string') return 'model: Field required';
  if (body.max_tokens === undefined) return 'max_tokens: Field required';
  if (typeof body.max_tokens !== 'number' || body.max_tokens < 1) return 'max_tokens: Input should be greater than or equal to 1';
  if (!Array.isArray(body.messages)) return 'messages: Field required';
  if (body.messages.length === 0) return 'messages: at least one message is required';
  for (let i = 0; i < body.messages.length; i++) {
    const role = body.messages[i]?.role;
    if (role === 'system' && SYSTEM_MESSAGE_BETAS.test(betas)) continue;
    if (role === 'system') {
      return `messages: Unexpected role "system". The Messages API accepts a top-level \`system\` parameter, not "system" as an input message role.`;
    }
    if (role !== 'user' && role !== 'assistant') {
      return `messages.${i}.role: Input should be 'user' or 'assistant'`;
    }
  }
  return null;
}

async function messages(ctx: Ctx, name: string, opts: FakeOptions, headers: Record<string, string>, seen: Set<string>) {
  const body = ctx.body;
  const beta = ctx.req.headers['anthropic-beta'];
  const invalid = validate(body, Array.isArray(beta) ? beta.join(',') : (beta ?? '')) ?? validateThinking(body);
  if (invalid) return ctx.json(400, anthropicError('invalid_request_error', invalid), headers);

  // A conversation that ends with an assistant turn is a prefill: the answer continues from it.
  const prefill = trailingAssistantText(body.messages);
  if (prefill !== undefined && /\s$/.test(prefill)) {
    return ctx.json(400, anthropicError('invalid_request_error', 'messages: final assistant content cannot end with trailing whitespace'), headers);
  }
  const a = answer(body, name, opts);
  if (prefill !== undefined && a.text !== null) {
    a.text = continueAnswer(a.text, prefill);
    a.outputTokens = countWords(a.text);
  }
  const stopped = a.text === null ? { text: null, sequence: null } : applyStopSequences(a.text, body);
  a.text = stopped.text;
  const lastUser = [...body.messages].reverse().find((m: any) => m?.role === 'user');
  const thinking = thinkingOn(body) ? `Thinking about: ${textOf(lastUser?.content)}` : null;
  const signature = thinking === null ? null : fakeThinkingSignature(thinking);
  if (thinking !== null) a.outputTokens += countWords(thinking);
  const id = makeId('msg_01');
  const model = body.model;
  const stopReason = a.toolUse ? 'tool_use' : stopped.sequence !== null ? 'stop_sequence' : 'end_turn';
  const cached = cacheUsage(body, seen, a.inputTokens);
  const usage = (outputTokens: number) => ({
    input_tokens: a.inputTokens - cached.read - cached.write,
    cache_creation_input_tokens: cached.write,
    cache_read_input_tokens: cached.read,
    output_tokens: outputTokens,
    service_tier: 'standard',
  });

  if (body.stream !== true) {
    return ctx.json(
      200,
      {
        id,
        type: 'message',
        role: 'assistant',
        model,
        content: [
          ...(thinking !== null ? [{ type: 'thinking', thinking, signature }] : []),
          ...(a.toolUse ? [{ type: 'tool_use', id: a.toolUse.id, name: a.toolUse.name, input: a.toolUse.input }] : [{ type: 'text', text: a.text }]),
        ],
        stop_reason: stopReason,
        stop_sequence: stopped.sequence,
        usage: usage(a.outputTokens),
      },
      headers,
    );
  }

  const events: string[] = [];
  events.push(
    sseEvent('message_start', {
      type: 'message_start',
      message: {
        id,
        type: 'message',
        role: 'assistant',
        model,
        content: [],
        stop_reason: null,
        stop_sequence: null,
        usage: usage(1),
      },
    }),
  );
  // With thinking, the thinking block is block 0 and the answer's block comes after it.
  const at = thinking === null ? 0 : 1;
  if (thinking !== null) {
    events.push(sseEvent('content_block_start', { type: 'content_block_start', index: 0, content_block: { type: 'thinking', thinking: '', signature: '' } }));
    for (const word of wordChunks(thinking)) {
      events.push(sseEvent('content_block_delta', { type: 'content_block_delta', index: 0, delta: { type: 'thinking_delta', thinking: word } }));
    }
    events.push(sseEvent('content_block_delta', { type: 'content_block_delta', index: 0, delta: { type: 'signature_delta', signature } }));
    events.push(sseEvent('content_block_stop', { type: 'content_block_stop', index: 0 }));
  }
  if (a.toolUse) {
    events.push(
      sseEvent('content_block_start', {
        type: 'content_block_start',
        index: at,
        content_block: { type: 'tool_use', id: a.toolUse.id, name: a.toolUse.name, input: {} },
      }),
    );
    events.push(sseEvent('ping', { type: 'ping' }));
    // the real API opens tool input with an empty partial_json delta
    for (const frag of ['', ...wordChunks(JSON.stringify(a.toolUse.input))]) {
      events.push(
        sseEvent('content_block_delta', {
          type: 'content_block_delta',
          index: at,
          delta: { type: 'input_json_delta', partial_json: frag },
        }),
      );
    }
  } else {
    events.push(
      sseEvent('content_block_start', { type: 'content_block_start', index: at, content_block: { type: 'text', text: '' } }),
    );
    events.push(sseEvent('ping', { type: 'ping' }));
    for (const word of wordChunks(a.text ?? '')) {
      events.push(
        sseEvent('content_block_delta', { type: 'content_block_delta', index: at, delta: { type: 'text_delta', text: word } }),
      );
    }
  }
  events.push(sseEvent('content_block_stop', { type: 'content_block_stop', index: at }));
  events.push(
    sseEvent('message_delta', {
      type: 'message_delta',
      delta: { stop_reason: stopReason, stop_sequence: stopped.sequence },
      usage: { output_tokens: a.outputTokens },
    }),
  );
  events.push(sseEvent('message_stop', { type: 'message_stop' }));
  return ctx.stream('text/event-stream; charset=utf-8', events, headers);
}

// ---------------------------------------------------------------------------
// Token counting
// ---------------------------------------------------------------------------

/**
 * The fake's count: the same deterministic estimate its answers report as input_tokens, plus the tools' JSON
 * (the real API counts tool definitions too).
 */
export function fakeInputTokens(body: any): number {
  let chars = textOf(body.system).length;
  for (const m of body.messages) chars += contentChars(m?.content);
  if (Array.isArray(body.tools)) chars += JSON.stringify(body.tools).length;
  return promptTokens(chars);
}

/** Like a Messages request, except that there is no max_tokens to give (nor stream). */
function validateCount(body: any): string | null {
  if (body === undefined || typeof body !== 'object') return 'There was an error parsing the body of your request.';
  if (typeof body.model !== 'string') return 'model: Field required';
  if (!Array.isArray(body.messages)) return 'messages: Field required';
  if (body.messages.length === 0) return 'messages: at least one message is required';
  for (let i = 0; i < body.messages.length; i++) {
    const role = body.messages[i]?.role;
    if (role !== 'user' && role !== 'assistant') return `messages.${i}.role: Input should be 'user' or 'assistant'`;
  }
  return null;
}

async function countTokens(ctx: Ctx, headers: Record<string, string>) {
  const invalid = validateCount(ctx.body);
  if (invalid) return ctx.json(400, anthropicError('invalid_request_error', invalid), headers);
  return ctx.json(200, { input_tokens: fakeInputTokens(ctx.body) }, headers);
}
