/**
 * Fake Gemini API (Google AI Studio), from Google's Gemini API reference:
 *
 *   POST /v1beta/models/{model}:generateContent
 *   POST /v1beta/models/{model}:streamGenerateContent?alt=sse   `data: {GenerateContentResponse}` per chunk, CRLF CRLF
 *                                                                between events, no end marker
 *   GET  /v1beta/models                                          {models: [{name: "models/...", ...}]}
 *
 * Auth: `x-goog-api-key` (or `?key=`). No key: 403 PERMISSION_DENIED; a wrong one: 400 INVALID_ARGUMENT with
 * reason API_KEY_INVALID, as Google answers. Errors are `{error: {code, message, status}}`. Requests are checked
 * the way the API does: roles `user` / `model`, every part with exactly one data field, `parameters` of a
 * function declaration in the OpenAPI subset (no additionalProperties, no $schema: parametersJsonSchema takes
 * those), not both thinkingBudget and thinkingLevel.
 *
 * The model: the last user text echoed as "[name] text" (with the number of inline images); with tools and a
 * user turn last, a functionCall of the first allowed function with {input: text} (with a thoughtSignature);
 * after a functionResponse, "tool said: <result>"; with thinkingConfig.includeThoughts (budget not 0) a thought
 * part first, counted in thoughtsTokenCount; responseMimeType application/json wraps the text as {"answer": ...}.
 * A prompt containing `blockWord` is blocked (promptFeedback.blockReason SAFETY, no candidates); an answer
 * containing `answerBlockWord` stops there with finishReason SAFETY. Implicit caching: a request whose contents
 * before the last turn were seen before reports their tokens as cachedContentTokenCount. opts.turn scripts the
 * model's turn (a functionCall, with the given id, or text) for agent tests; opts.streamErrorAfter ends streams with
 * an error object after that many chunks (a `breakAfter` fault with how 'error' sends the same object mid-stream).
 *
 * Prefill: contents that end with a `model` turn of text are continued, as Gemini 2.x/3.x models do: the answer
 * goes on from where that turn stops (the deterministic answer's rest). The models Google made refuse it
 * (gemini-3.5-flash-lite, gemini-3.6-flash) answer 400 INVALID_ARGUMENT "Requests ending with a model turn are
 * not supported.", unless the last part is a function response.
 *
 * Thought signatures: every functionCall part the fake answers with carries a thoughtSignature of its own (base64,
 * unique per call). Models named gemini-3… check them as Google documents for Gemini 3: in the current turn (the
 * model contents after the last user content that is not only functionResponses) the first functionCall part of
 * every model step must carry a signature, or the request is refused with 400 INVALID_ARGUMENT; a signature that
 * the fake never issued is refused as corrupted. Google's documented placeholders for history the model did not
 * produce (`skip_thought_signature_validator`, `context_engineering_is_the_way_to_go`) pass. Gemini 2.5 models
 * (and every other name) accept calls with or without signatures.
 */
import { createHash, randomBytes } from 'node:crypto';
import { type Ctx, type FakeOptions, type FakeProvider, continueAnswer, countWords, makeId, promptTokens, replyTo, startFakeServer, wordChunks } from './common.ts';

export interface FakeGeminiOptions extends FakeOptions {
  blockWord?: string;
  answerBlockWord?: string;
  /** Streams end after this many chunks with an error object instead of a finish reason (a backend failure). */
  streamErrorAfter?: number;
}

const STATUS: Record<number, string> = { 400: 'INVALID_ARGUMENT', 403: 'PERMISSION_DENIED', 404: 'NOT_FOUND', 429: 'RESOURCE_EXHAUSTED', 500: 'INTERNAL', 503: 'UNAVAILABLE', 504: 'DEADLINE_EXCEEDED' };

export const geminiError = (code: number, message: string, details?: unknown[]) => ({ error: { code, message, status: STATUS[code] ?? 'UNKNOWN', ...(details ? { details } : {}) } });

function errorForStatus(status: number) {
  switch (status) {
    case 429:
      return geminiError(429, 'You exceeded your current quota, please check your plan and billing details.', [{ '@type': 'type.googleapis.com/google.rpc.RetryInfo', retryDelay: '2s' }]);
    case 503:
      return geminiError(503, 'The model is overloaded. Please try again later.');
    case 500:
      return geminiError(500, 'An internal error has occurred. Please retry or report in https://developers.generativeai.google/guide/troubleshooting');
    default:
      return geminiError(status, `Request failed with status ${status}.`);
  }
}

const DATA_FIELDS = ['text', 'inlineData', 'fileData', 'functionCall', 'functionResponse', 'executableCode', 'codeExecutionResult'];
/** JSON Schema keywords outside the OpenAPI subset `parameters` accepts. */
const NOT_OPENAPI = ['additionalProperties', '$schema', '$ref', '$defs', 'const'];

function schemaProblem(schema: unknown, at: string): string | undefined {
  if (schema === null || typeof schema !== 'object') return undefined;
  for (const [key, value] of Object.entries(schema)) {
    if (NOT_OPENAPI.includes(key)) return `Invalid JSON payload received. Unknown name "${key}" at '${at}': Cannot find field.`;
    const inner = schemaProblem(value, `${at}.${key}`);
    if (inner) return inner;
  }
  return undefined;
}

/** Google's documented values that skip the signature check, for function calls another model made. */
const PLACEHOLDER_SIGNATURES = new Set(['skip_thought_signature_validator', 'context_engineering_is_the_way_to_go']);

/** Gemini 3's check: every step of the current turn opens with a signed function call, signed by this model. */
function signatureProblem(contents: any[], issued: Set<string>): string | undefined {
  let start = contents.length;
  while (start > 0) {
    const content = contents[start - 1];
    if ((content.role ?? 'user') === 'user' && content.parts.some((p: any) => p.functionResponse === undefined)) break;
    start--;
  }
  for (let i = start; i < contents.length; i++) {
    const content = contents[i];
    if (content.role !== 'model') continue;
    const j = content.parts.findIndex((p: any) => p.functionCall !== undefined);
    if (j < 0) continue;
    const part = content.parts[j];
    const signature = part.thoughtSignature;
    if (signature === undefined) {
      return `Function call is missing a thought_signature in functionCall parts. This is required for tools to work correctly, and missing thought_signature may lead to degraded model performance. Additional data, function call \`default_api:${part.functionCall.name}\` , position ${i + 1}. Please refer to https://ai.google.dev/gemini-api/docs/thought-signatures for more details.`;
    }
    if (!PLACEHOLDER_SIGNATURES.has(signature) && !issued.has(signature)) return 'Corrupted thought signature.';
  }
  return undefined;
}

function validate(body: any): string | undefined {
  if (!body || !Array.isArray(body.contents) || body.contents.length === 0) return '* GenerateContentRequest.contents: contents is not specified';
  for (const [i, content] of body.contents.entries()) {
    if (content.role !== undefined && content.role !== 'user' && content.role !== 'model') return `Please use a valid role: user, model.`;
    if (!Array.isArray(content.parts) || content.parts.length === 0) return `* GenerateContentRequest.contents[${i}].parts: contents.parts must not be empty.`;
    for (const [j, part] of content.parts.entries()) {
      const fields = DATA_FIELDS.filter((f) => part?.[f] !== undefined);
      if (fields.length !== 1) return `* GenerateContentRequest.contents[${i}].parts[${j}].data: required oneof field 'data' must have one initialized field`;
    }
  }
  for (const tool of body.tools ?? []) {
    for (const [k, fn] of (tool.functionDeclarations ?? []).entries()) {
      if (typeof fn?.name !== 'string' || fn.name === '') return `* GenerateContentRequest.tools[0].function_declarations[${k}].name: Name cannot be empty.`;
      const problem = schemaProblem(fn.parameters, `tools[0].function_declarations[${k}].parameters`);
      if (problem) return problem;
    }
  }
  const thinking = body.generationConfig?.thinkingConfig;
  if (thinking?.thinkingBudget !== undefined && thinking?.thinkingLevel !== undefined) return 'You can only set only one of thinking budget and thinking level.';
  return undefined;
}

/** Models that refuse contents ending with a model turn (newer Flash models; older ones continue it). */
const NO_PREFILL_MODELS = new Set(['gemini-3.5-flash-lite', 'gemini-3.6-flash']);

/** The text of a trailing model turn the model is to continue, or undefined when the contents end otherwise. */
function prefillOf(contents: any[]): string | undefined {
  const last = contents.at(-1);
  if (last?.role !== 'model' || last.parts.some((p: any) => p.functionCall !== undefined)) return undefined;
  return textOfParts(last.parts);
}

const textOfParts = (parts: any[] | undefined) => (parts ?? []).map((p) => (typeof p?.text === 'string' && !p.thought ? p.text : '')).join('');

/** A functionResponse's result as text: its `result` or `error` when it has one, else its JSON. */
const resultText = (response: any): string => {
  const value = response?.response?.result ?? response?.response?.error ?? response?.response;
  return typeof value === 'string' ? value : JSON.stringify(value);
};

interface Turn {
  thought?: string;
  text?: string;
  call?: { name: string; args: Record<string, unknown>; id?: string };
  finishReason: string;
}

function play(body: any, name: string, opts: FakeGeminiOptions): Turn {
  const contents: any[] = body.contents;
  const last = contents.at(-1);
  const lastUser = [...contents].reverse().find((c) => (c.role ?? 'user') === 'user' && c.parts.some((p: any) => typeof p.text === 'string'));
  const lastUserText = textOfParts(lastUser?.parts);
  const thinking = body.generationConfig?.thinkingConfig;
  const thought = thinking?.includeThoughts && thinking.thinkingBudget !== 0 ? `Thinking about: ${lastUserText}` : undefined;
  const response = last?.parts.find((p: any) => p.functionResponse)?.functionResponse;
  const declarations: any[] = (body.tools ?? []).flatMap((t: any) => t.functionDeclarations ?? []);
  const toolResult = last?.role === 'user' ? last.parts.filter((p: any) => p.functionResponse).map((p: any) => resultText(p.functionResponse)).join('\n') || undefined : undefined;
  const scripted = opts.turn?.({ toolResult, lastUserText, tools: declarations.map((d) => d.name), body });
  if (scripted && 'tool' in scripted) return { thought, call: { name: scripted.tool, args: scripted.input, ...(scripted.id ? { id: scripted.id } : {}) }, finishReason: 'STOP' };
  if (scripted) return { thought, text: scripted.text, finishReason: 'STOP' };
  if (response) {
    return { thought, text: `tool said: ${resultText(response)}`, finishReason: 'STOP' };
  }
  const mode = body.toolConfig?.functionCallingConfig?.mode ?? 'AUTO';
  const allowed: string[] | undefined = body.toolConfig?.functionCallingConfig?.allowedFunctionNames;
  if (declarations.length > 0 && mode !== 'NONE') {
    return { thought, call: { name: allowed?.[0] ?? declarations[0].name, args: { input: lastUserText } }, finishReason: 'STOP' };
  }
  const images = (lastUser?.parts ?? []).filter((p: any) => p.inlineData?.mimeType?.startsWith('image/')).length;
  let text = replyTo(lastUserText, body, name, opts) + (images > 0 ? ` (${images} image${images > 1 ? 's' : ''})` : '');
  if (body.generationConfig?.responseMimeType === 'application/json') text = JSON.stringify({ answer: text });
  text = continueAnswer(text, prefillOf(contents));
  const cut = opts.answerBlockWord ? text.indexOf(opts.answerBlockWord) : -1;
  if (cut >= 0) return { thought, text: text.slice(0, cut), finishReason: 'SAFETY' };
  return { thought, text, finishReason: 'STOP' };
}

const SAFE_RATINGS = ['HARM_CATEGORY_HATE_SPEECH', 'HARM_CATEGORY_DANGEROUS_CONTENT', 'HARM_CATEGORY_HARASSMENT', 'HARM_CATEGORY_SEXUALLY_EXPLICIT'].map((category) => ({ category, probability: 'NEGLIGIBLE' }));
const BLOCKED_RATINGS = SAFE_RATINGS.map((r) => (r.category === 'HARM_CATEGORY_DANGEROUS_CONTENT' ? { ...r, probability: 'HIGH', blocked: true } : r));

export function startFakeGemini(opts: FakeGeminiOptions = {}): Promise<FakeProvider> {
  const name = opts.name ?? 'gemini';
  const models = opts.models ?? ['gemini-2.5-flash', 'gemini-2.5-pro'];
  const seenPrefixes = new Set<string>();
  const issued = new Set<string>();
  const methodPath = /^\/v1beta\/models\/([^/:]+):(generateContent|streamGenerateContent)$/;

  return startFakeServer({
    name,
    basePath: '',
    isChat: (method, path) => method === 'POST' && methodPath.test(path),
    errorBody: errorForStatus,
    streamError: () => `data: ${JSON.stringify(geminiError(500, 'An internal error has occurred.'))}\r\n\r\n`,
    async handle(ctx) {
      const key = (ctx.req.headers['x-goog-api-key'] as string | undefined) ?? ctx.query.get('key') ?? undefined;
      if (opts.apiKey !== undefined) {
        if (key === undefined) return ctx.json(403, geminiError(403, "Method doesn't allow unregistered callers (callers without established identity). Please use API Key or other form of API consumer identity to call this API."));
        if (key !== opts.apiKey) {
          return ctx.json(400, geminiError(400, 'API key not valid. Please pass a valid API key.', [{ '@type': 'type.googleapis.com/google.rpc.ErrorInfo', reason: 'API_KEY_INVALID', domain: 'googleapis.com' }]));
        }
      }
      if (ctx.method === 'GET' && ctx.path === '/v1beta/models') {
        return ctx.json(200, { models: models.map((m) => ({ name: `models/${m}`, version: '001', displayName: m, supportedGenerationMethods: ['generateContent', 'countTokens'] })) });
      }
      const route = methodPath.exec(ctx.path);
      if (ctx.method !== 'POST' || !route) return ctx.json(404, geminiError(404, `Method not found: ${ctx.method} ${ctx.path}`));
      const model = decodeURIComponent(route[1]);
      if (!models.includes(model)) return ctx.json(404, geminiError(404, `models/${model} is not found for API version v1beta, or is not supported for generateContent. Call ListModels to see the list of available models and their supported methods.`));
      const problem = validate(ctx.body) ?? (model.startsWith('gemini-3') ? signatureProblem(ctx.body.contents, issued) : undefined);
      if (problem) return ctx.json(400, geminiError(400, problem));
      if (NO_PREFILL_MODELS.has(model) && prefillOf(ctx.body.contents) !== undefined) return ctx.json(400, geminiError(400, 'Requests ending with a model turn are not supported.'));
      if (route[2] === 'streamGenerateContent' && ctx.query.get('alt') !== 'sse') return ctx.json(400, geminiError(400, 'this fake streams only with alt=sse'));
      return generate(ctx, model, route[2] === 'streamGenerateContent', name, opts, seenPrefixes, issued);
    },
  });
}

async function generate(ctx: Ctx, model: string, stream: boolean, name: string, opts: FakeGeminiOptions, seen: Set<string>, issued: Set<string>) {
  const body = ctx.body;
  const chars = [...body.contents, body.systemInstruction ?? { parts: [] }].reduce((n: number, c: any) => n + textOfParts(c.parts).length, 0);
  const promptTokenCount = promptTokens(chars);
  const prefix = createHash('sha256').update(JSON.stringify([body.systemInstruction, body.contents.slice(0, -1)])).digest('hex');
  const cached = seen.has(prefix) ? Math.min(promptTokenCount, promptTokens(body.contents.slice(0, -1).reduce((n: number, c: any) => n + textOfParts(c.parts).length, 0))) : 0;
  seen.add(prefix);
  const responseId = makeId('', 22);
  const head = { modelVersion: model, responseId };

  const allText = body.contents.map((c: any) => textOfParts(c.parts)).join(' ') + textOfParts(body.systemInstruction?.parts);
  if (opts.blockWord && allText.includes(opts.blockWord)) {
    const blocked = { promptFeedback: { blockReason: 'SAFETY', safetyRatings: BLOCKED_RATINGS }, usageMetadata: { promptTokenCount, totalTokenCount: promptTokenCount }, ...head };
    return stream ? ctx.stream('text/event-stream', [`data: ${JSON.stringify(blocked)}\r\n\r\n`]) : ctx.json(200, blocked);
  }

  const turn = play(body, name, opts);
  const thoughtsTokenCount = turn.thought ? countWords(turn.thought) : 0;
  const candidatesTokenCount = countWords(turn.text ?? '') + (turn.call ? countWords(JSON.stringify(turn.call.args)) : 0);
  const usage = (done: boolean) => ({
    promptTokenCount,
    ...(done ? { candidatesTokenCount } : {}),
    totalTokenCount: promptTokenCount + (done ? candidatesTokenCount + thoughtsTokenCount : 0),
    ...(cached ? { cachedContentTokenCount: cached } : {}),
    ...(done && thoughtsTokenCount ? { thoughtsTokenCount } : {}),
    promptTokensDetails: [{ modality: 'TEXT', tokenCount: promptTokenCount }],
  });
  const ratings = turn.finishReason === 'SAFETY' ? BLOCKED_RATINGS : SAFE_RATINGS;
  const signature = turn.call ? randomBytes(49).toString('base64') : undefined;
  if (signature) issued.add(signature);
  const callPart = turn.call ? { functionCall: turn.call, thoughtSignature: signature } : undefined;

  if (!stream) {
    const parts: any[] = [];
    if (turn.thought) parts.push({ text: turn.thought, thought: true });
    if (turn.text) parts.push({ text: turn.text });
    if (callPart) parts.push(callPart);
    return ctx.json(200, { candidates: [{ content: { parts, role: 'model' }, finishReason: turn.finishReason, safetyRatings: ratings, index: 0 }], usageMetadata: usage(true), ...head });
  }

  const chunks: any[][] = [];
  if (turn.thought) chunks.push([{ text: turn.thought, thought: true }]);
  for (const word of wordChunks(turn.text ?? '')) chunks.push([{ text: word }]);
  if (callPart) chunks.push([callPart]);
  // An answer cut to nothing still ends with a chunk that carries its finish reason.
  if (chunks.length === 0) chunks.push([]);
  const events = chunks.map((parts, i) => {
    const last = i === chunks.length - 1;
    const candidate = { content: { parts, role: 'model' }, index: 0, ...(last ? { finishReason: turn.finishReason, safetyRatings: ratings } : {}) };
    return `data: ${JSON.stringify({ candidates: [candidate], usageMetadata: usage(last), ...head })}\r\n\r\n`;
  });
  if (opts.streamErrorAfter !== undefined && opts.streamErrorAfter < events.length) {
    events.splice(opts.streamErrorAfter, events.length, `data: ${JSON.stringify(geminiError(500, 'An internal error has occurred.'))}\r\n\r\n`);
  }
  return ctx.stream('text/event-stream', events);
}
