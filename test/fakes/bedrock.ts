/**
 * Fake Amazon Bedrock runtime (and the one control-plane call a gateway makes), from AWS's API reference.
 *
 *   POST /model/{modelId}/converse                      Converse: JSON answer
 *   POST /model/{modelId}/converse-stream               ConverseStream: application/vnd.amazon.eventstream
 *   POST /model/{modelId}/invoke                        InvokeModel with an Anthropic Messages body
 *   POST /model/{modelId}/invoke-with-response-stream   the same, streamed as `chunk` events ({"bytes": base64})
 *   POST /model/{modelId}/count-tokens                  CountTokens: {input: {invokeModel: {body: base64}}} → {inputTokens}
 *   GET  /foundation-models                             ListFoundationModels ({modelSummaries: [...]})
 *
 * Every request must be signed with SigV4 for service `bedrock` in the fake's region by one of the fake's known
 * credentials; the fake recomputes the signature with AWS's own signer (@smithy/signature-v4) over the method,
 * path, signed headers and the body's exact bytes, and refuses a wrong one with 403 InvalidSignatureException
 * (an unknown key id: UnrecognizedClientException), as Bedrock does. A Bedrock API key (`apiKey`) is accepted
 * as `Authorization: Bearer`. Model ids come URL-escaped in the path (`us.anthropic.…-v1%3A0`).
 *
 * InvokeModel bodies are checked as Bedrock checks them (anthropic_version `bedrock-2023-05-31`, no `model`,
 * no `stream`, `anthropic_beta` a list) and answered by a fake Anthropic model behind the fake (started with the
 * same options), as Bedrock hands them to Claude; its stream events come back wrapped in chunk events, the last
 * with `amazon-bedrock-invocationMetrics`. Converse is answered by the fake's own deterministic model: echo,
 * a tool call when tools are offered, "tool said: …" after a tool result, reasoning when Claude's thinking is on;
 * opts.turn scripts its turn (a toolUse or text) for agent tests.
 *
 * Stream exceptions (throttlingException, modelStreamErrorException, …) are queued with `queueStreamException`:
 * the next stream sends `afterEvents` events, then the exception message, and ends (a `breakAfter` fault with how
 * 'error' sends a modelStreamErrorException the same way).
 *
 * Prefill: Converse messages that end with an assistant message are continued, as Bedrock documents for models
 * that take it (Claude): the answer goes on from that message's text (the deterministic answer's rest). Claude
 * refuses a final assistant turn ending in whitespace; Bedrock passes the model's error on as a 400
 * ValidationException.
 */
import http from 'node:http';
import { EventStreamCodec } from '@smithy/core/event-streams';
import { Hash } from '@smithy/core/serde';
import { SignatureV4 } from '@smithy/signature-v4';
import { startFakeAnthropic } from './anthropic.ts';
import { type Ctx, type FakeOptions, type FakeProvider, continueAnswer, countWords, makeId, promptTokens, replyTo, startFakeServer, textOf } from './common.ts';

export interface AwsTestCredentials {
  accessKeyId: string;
  secretAccessKey: string;
  sessionToken?: string;
}

/** The credentials tests sign with (AWS's documented example keys). */
export const TEST_AWS_CREDENTIALS: AwsTestCredentials = { accessKeyId: 'AKIAIOSFODNN7EXAMPLE', secretAccessKey: 'wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY' };

export interface FakeBedrockOptions extends FakeOptions {
  region?: string;
  /** Keys the fake accepts (default: TEST_AWS_CREDENTIALS). */
  credentials?: AwsTestCredentials[];
}

export interface StreamException {
  type: 'throttlingException' | 'modelStreamErrorException' | 'internalServerException' | 'serviceUnavailableException' | 'validationException' | 'modelTimeoutException';
  message?: string;
  /** Events sent before the exception. */
  afterEvents?: number;
}

export interface FakeBedrock extends FakeProvider {
  queueStreamException(exception: StreamException): void;
  /** Requests refused for their signature. */
  badSignatures: number;
}

const codec = new EventStreamCodec(
  (bytes) => Buffer.from(bytes).toString('utf8'),
  (text) => Buffer.from(text, 'utf8'),
);
const header = (value: string) => ({ type: 'string' as const, value });

/** One event-stream message: an event with its JSON payload (padded with `p`, as Bedrock pads them). */
function eventMessage(eventType: string, payload: Record<string, unknown>): Buffer {
  const body = Buffer.from(JSON.stringify({ ...payload, p: 'abcdefghijklmnopqrstuvwxyzABCDEF'.slice(0, 1 + (eventType.length % 30)) }));
  return Buffer.from(codec.encode({ headers: { ':event-type': header(eventType), ':content-type': header('application/json'), ':message-type': header('event') }, body }));
}

function exceptionMessage(exception: StreamException): Buffer {
  const body = Buffer.from(JSON.stringify({ message: exception.message ?? `${exception.type} from the fake` }));
  return Buffer.from(codec.encode({ headers: { ':exception-type': header(exception.type), ':content-type': header('application/json'), ':message-type': header('exception') }, body }));
}

const ERROR_TYPES: Record<number, string> = {
  400: 'ValidationException',
  403: 'AccessDeniedException',
  404: 'ResourceNotFoundException',
  408: 'ModelTimeoutException',
  424: 'ModelErrorException',
  429: 'ThrottlingException',
  500: 'InternalServerException',
  503: 'ServiceUnavailableException',
};

function awsError(ctx: Ctx, status: number, message: string, type = ERROR_TYPES[status] ?? 'InternalServerException') {
  return ctx.json(status, { message }, { 'x-amzn-errortype': `${type}:http://internal.amazon.com/coral/com.amazon.bedrock/` });
}

/** `AWS4-HMAC-SHA256 Credential=AKID/date/region/service/aws4_request, SignedHeaders=a;b, Signature=hex` */
function parseAuthorization(value: string): { keyId: string; region: string; service: string; signedHeaders: string[]; signature: string } | undefined {
  const match = /^AWS4-HMAC-SHA256 Credential=([^/]+)\/(\d{8})\/([^/]+)\/([^/]+)\/aws4_request, ?SignedHeaders=([^,]+), ?Signature=([0-9a-f]{64})$/.exec(value);
  if (!match) return undefined;
  return { keyId: match[1], region: match[3], service: match[4], signedHeaders: match[5].split(';'), signature: match[6] };
}

/** `20261203T101500Z` → Date */
function amzDate(value: string | undefined): Date | undefined {
  const m = value && /^(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})Z$/.exec(value);
  return m ? new Date(Date.UTC(+m[1], +m[2] - 1, +m[3], +m[4], +m[5], +m[6])) : undefined;
}

/** Checks the request's SigV4 signature; answers the refusal itself and returns false when it is wrong. */
async function verifySignature(ctx: Ctx, opts: FakeBedrockOptions, region: string, counters: { bad: number }): Promise<boolean> {
  const auth = String(ctx.req.headers.authorization ?? '');
  if (opts.apiKey && auth === `Bearer ${opts.apiKey}`) return true;
  const parsed = parseAuthorization(auth);
  const date = amzDate(ctx.req.headers['x-amz-date'] as string | undefined);
  const refuse = async (status: number, message: string, type: string) => {
    counters.bad++;
    await awsError(ctx, status, message, type);
    return false;
  };
  if (!parsed || !date) return refuse(403, 'Authorization header requires Credential, SignedHeaders and Signature, and X-Amz-Date.', 'IncompleteSignatureException');
  const credentials = (opts.credentials ?? [TEST_AWS_CREDENTIALS]).find((c) => c.accessKeyId === parsed.keyId);
  if (!credentials) return refuse(403, 'The security token included in the request is invalid.', 'UnrecognizedClientException');
  if (Math.abs(Date.now() - date.getTime()) > 5 * 60_000) return refuse(403, 'Signature expired.', 'InvalidSignatureException');
  if (parsed.region !== region || parsed.service !== 'bedrock') return refuse(403, `Credential should be scoped to a valid region and service 'bedrock'.`, 'InvalidSignatureException');
  if (credentials.sessionToken !== undefined && ctx.req.headers['x-amz-security-token'] !== credentials.sessionToken) {
    return refuse(403, 'The security token included in the request is invalid.', 'UnrecognizedClientException');
  }
  const headers: Record<string, string> = {};
  for (const name of parsed.signedHeaders) {
    const value = ctx.req.headers[name];
    if (value === undefined) return refuse(403, `Signed header ${name} is missing.`, 'InvalidSignatureException');
    headers[name] = Array.isArray(value) ? value.join(',') : value;
  }
  const rawPath = (ctx.req.url ?? '/').split('?')[0];
  const signer = new SignatureV4({ service: 'bedrock', region, credentials, sha256: Hash.bind(null, 'sha256'), uriEscapePath: true });
  const expected = await signer.sign(
    { method: ctx.method, protocol: 'http:', hostname: '127.0.0.1', path: rawPath, query: Object.fromEntries(ctx.query), headers, body: ctx.raw.length > 0 ? ctx.raw.toString('utf8') : undefined },
    { signingDate: date },
  );
  const signature = /Signature=([0-9a-f]{64})/.exec(String(expected.headers.authorization))?.[1];
  if (signature !== parsed.signature) {
    return refuse(403, 'The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method. Consult the service documentation for details.', 'InvalidSignatureException');
  }
  return true;
}

// ---------------------------------------------------------------------------
// Converse
// ---------------------------------------------------------------------------

const IMAGE_FORMATS = new Set(['png', 'jpeg', 'gif', 'webp']);

function validateConverse(body: any): string | null {
  if (!body || typeof body !== 'object') return 'Malformed input request, please reformat your input and try again.';
  if (!Array.isArray(body.messages) || body.messages.length === 0) return 'A conversation must start with a user message. Try again with a conversation that starts with a user message.';
  if (body.messages[0]?.role !== 'user') return 'A conversation must start with a user message. Try again with a conversation that starts with a user message.';
  let usesTools = false;
  for (let i = 0; i < body.messages.length; i++) {
    const m = body.messages[i];
    if (m?.role !== 'user' && m?.role !== 'assistant') return `1 validation error detected: Value at 'messages.${i + 1}.member.role' failed to satisfy constraint: Member must satisfy enum value set: [user, assistant]`;
    if (i > 0 && body.messages[i - 1].role === m.role) return 'A conversation must alternate between user and assistant roles. Make sure the conversation alternates between user and assistant roles and try again.';
    if (!Array.isArray(m.content) || m.content.length === 0) return `The content field in the Message object at messages.${i}.content is empty. Add a ContentBlock object to the content field and try again.`;
    for (const block of m.content) {
      if (block?.toolUse || block?.toolResult) usesTools = true;
      if (block?.image) {
        if (!IMAGE_FORMATS.has(block.image.format)) return `Value at 'messages.${i + 1}.member.content.member.image.format' failed to satisfy constraint`;
        if (typeof block.image.source?.bytes !== 'string' || Buffer.from(block.image.source.bytes, 'base64').length === 0) return 'The image bytes are not valid base64.';
      }
      if (block?.text !== undefined && typeof block.text !== 'string') return 'text must be a string';
    }
  }
  if (usesTools && !Array.isArray(body.toolConfig?.tools)) return 'The toolConfig field must be defined when using toolUse and toolResult content blocks.';
  if (body.system !== undefined && !Array.isArray(body.system)) return 'system must be a list of SystemContentBlock';
  return null;
}

interface ConverseAnswer {
  text: string | null;
  toolUse: { toolUseId: string; name: string; input: Record<string, unknown> } | null;
  reasoning: { text: string; signature: string } | null;
  inputTokens: number;
  outputTokens: number;
}

function converseAnswer(body: any, name: string, opts: FakeOptions): ConverseAnswer {
  const msgs: any[] = body.messages;
  let chars = 0;
  for (const block of body.system ?? []) chars += String(block?.text ?? '').length;
  const textOfBlocks = (blocks: any[]) => blocks.map((b) => (typeof b?.text === 'string' ? b.text : '')).join('');
  for (const m of msgs) for (const b of m.content) chars += String(b?.text ?? '').length + (b?.toolResult ? textOfBlocks(b.toolResult.content ?? []).length : 0);
  const inputTokens = promptTokens(chars);
  const last = msgs[msgs.length - 1];
  const lastUser = [...msgs].reverse().find((m) => m.role === 'user' && m.content.some((b: any) => typeof b?.text === 'string'));
  const lastUserText = lastUser ? textOfBlocks(lastUser.content) : '';
  const thinkingOn = ['enabled', 'adaptive'].includes(body.additionalModelRequestFields?.thinking?.type);
  const reasoning = thinkingOn ? { text: `Thinking about: ${lastUserText}`, signature: Buffer.from(`fake-bedrock:${lastUserText}`).toString('base64') } : null;
  const extra = reasoning ? countWords(reasoning.text) : 0;
  const results = last.role === 'user' ? last.content.filter((b: any) => b?.toolResult) : [];
  const tools: any[] = body.toolConfig?.tools?.filter((t: any) => t?.toolSpec) ?? [];
  const toolResult = results.length > 0 ? results.map((b: any) => textOfBlocks(b.toolResult.content ?? [])).join('\n') : undefined;
  const scripted = opts.turn?.({ toolResult, lastUserText, tools: tools.map((t) => t.toolSpec.name), body });
  if (scripted && 'tool' in scripted) {
    const toolUse = { toolUseId: scripted.id ?? makeId('tooluse_'), name: scripted.tool, input: scripted.input };
    return { text: null, toolUse, reasoning, inputTokens, outputTokens: countWords(JSON.stringify(scripted.input)) + extra };
  }
  if (scripted) return { text: scripted.text, toolUse: null, reasoning, inputTokens, outputTokens: countWords(scripted.text) + extra };
  if (results.length > 0) {
    const text = `tool said: ${textOfBlocks(results[results.length - 1].toolResult.content ?? [])}`;
    return { text, toolUse: null, reasoning, inputTokens, outputTokens: countWords(text) + extra };
  }
  if (tools.length > 0 && last.role === 'user') {
    const named = body.toolConfig?.toolChoice?.tool?.name;
    const input = { input: lastUserText };
    return { text: null, toolUse: { toolUseId: makeId('tooluse_'), name: named ?? tools[0].toolSpec.name, input }, reasoning, inputTokens, outputTokens: countWords(JSON.stringify(input)) + extra };
  }
  const prefill = last.role === 'assistant' ? textOfBlocks(last.content) : undefined;
  const text = continueAnswer(replyTo(lastUserText || textOf(''), body, name, opts), prefill);
  return { text, toolUse: null, reasoning, inputTokens, outputTokens: countWords(text) + extra };
}

async function converse(ctx: Ctx, name: string, model: string, opts: FakeOptions, stream: boolean, exceptions: StreamException[]) {
  const invalid = validateConverse(ctx.body);
  if (invalid) return awsError(ctx, 400, invalid);
  const last = ctx.body.messages.at(-1);
  if (model.startsWith('anthropic.') && last.role === 'assistant' && /\s$/.test(last.content.map((b: any) => b?.text ?? '').join(''))) {
    return awsError(ctx, 400, 'The model returned the following errors: messages: final assistant content cannot end with trailing whitespace');
  }
  const a = converseAnswer(ctx.body, name, opts);
  const stopReason = a.toolUse ? 'tool_use' : 'end_turn';
  const usage = { inputTokens: a.inputTokens, outputTokens: a.outputTokens, totalTokens: a.inputTokens + a.outputTokens };
  if (!stream) {
    const content: any[] = [];
    if (a.reasoning) content.push({ reasoningContent: { reasoningText: a.reasoning } });
    content.push(a.toolUse ? { toolUse: a.toolUse } : { text: a.text });
    return ctx.json(200, { output: { message: { role: 'assistant', content } }, stopReason, usage, metrics: { latencyMs: 12 } });
  }
  const events: Buffer[] = [eventMessage('messageStart', { role: 'assistant' })];
  let index = 0;
  if (a.reasoning) {
    for (const word of a.reasoning.text.match(/\s*\S+/g) ?? []) events.push(eventMessage('contentBlockDelta', { contentBlockIndex: 0, delta: { reasoningContent: { text: word } } }));
    events.push(eventMessage('contentBlockDelta', { contentBlockIndex: 0, delta: { reasoningContent: { signature: a.reasoning.signature } } }));
    events.push(eventMessage('contentBlockStop', { contentBlockIndex: 0 }));
    index = 1;
  }
  if (a.toolUse) {
    events.push(eventMessage('contentBlockStart', { contentBlockIndex: index, start: { toolUse: { toolUseId: a.toolUse.toolUseId, name: a.toolUse.name } } }));
    for (const part of JSON.stringify(a.toolUse.input).match(/.{1,8}/g) ?? []) events.push(eventMessage('contentBlockDelta', { contentBlockIndex: index, delta: { toolUse: { input: part } } }));
  } else {
    for (const word of (a.text ?? '').match(/\s*\S+/g) ?? []) events.push(eventMessage('contentBlockDelta', { contentBlockIndex: index, delta: { text: word } }));
  }
  events.push(eventMessage('contentBlockStop', { contentBlockIndex: index }));
  events.push(eventMessage('messageStop', { stopReason }));
  events.push(eventMessage('metadata', { usage, metrics: { latencyMs: 12 } }));
  return sendStream(ctx, events, exceptions.shift());
}

function sendStream(ctx: Ctx, events: Buffer[], exception: StreamException | undefined) {
  const chunks = exception ? [...events.slice(0, exception.afterEvents ?? 0), exceptionMessage(exception)] : events;
  // Real streams split messages across reads: the first write carries a message and a half.
  const first = chunks.length > 1 ? Buffer.concat(chunks.slice(0, 2)) : undefined;
  const split = first ? [first.subarray(0, chunks[0].length + 7), first.subarray(chunks[0].length + 7), ...chunks.slice(2)] : chunks;
  return ctx.stream('application/vnd.amazon.eventstream', split, { 'x-amzn-requestid': makeId('', 32) });
}

// ---------------------------------------------------------------------------
// InvokeModel with an Anthropic body
// ---------------------------------------------------------------------------

function validateInvoke(body: any): string | null {
  if (!body || typeof body !== 'object') return 'Malformed input request, please reformat your input and try again.';
  if (body.anthropic_version !== 'bedrock-2023-05-31') return 'Malformed input request: #: required key [anthropic_version] not found or invalid';
  if ('model' in body) return 'Malformed input request: #: extraneous key [model] is not permitted, please reformat your input and try again.';
  if ('stream' in body) return 'Malformed input request: #: extraneous key [stream] is not permitted, please reformat your input and try again.';
  if (body.anthropic_beta !== undefined && (!Array.isArray(body.anthropic_beta) || !body.anthropic_beta.every((b: unknown) => typeof b === 'string'))) {
    return 'Malformed input request: #/anthropic_beta: expected type: JSONArray';
  }
  return null;
}

/** What the fake Claude behind Bedrock gets: the body as Anthropic's API takes it. */
function anthropicRequest(body: any, model: string, stream: boolean): { body: string; headers: Record<string, string> } {
  const { anthropic_version: _version, anthropic_beta: betas, ...rest } = body;
  const headers: Record<string, string> = { 'content-type': 'application/json', 'anthropic-version': '2023-06-01' };
  if (Array.isArray(betas) && betas.length > 0) headers['anthropic-beta'] = betas.join(',');
  return { body: JSON.stringify({ ...rest, model, ...(stream ? { stream: true } : {}) }), headers };
}

function post(url: string, body: string, headers: Record<string, string>): Promise<{ status: number; text: string }> {
  return new Promise((resolve, reject) => {
    const req = http.request(url, { method: 'POST', headers }, (res) => {
      const parts: Buffer[] = [];
      res.on('data', (c: Buffer) => parts.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, text: Buffer.concat(parts).toString('utf8') }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end(body);
  });
}

async function invoke(ctx: Ctx, claudeUrl: string, model: string, stream: boolean, exceptions: StreamException[]) {
  const invalid = validateInvoke(ctx.body);
  if (invalid) return awsError(ctx, 400, invalid);
  const upstream = anthropicRequest(ctx.body, model, stream);
  const answer = await post(`${claudeUrl}/v1/messages`, upstream.body, upstream.headers);
  if (answer.status !== 200) return awsError(ctx, answer.status === 529 ? 503 : answer.status, JSON.parse(answer.text)?.error?.message ?? 'model error');
  if (!stream) return ctx.text(200, answer.text, { 'content-type': 'application/json', 'x-amzn-bedrock-input-token-count': '1' });
  let input = 0;
  let output = 0;
  const events: Buffer[] = [];
  for (const frame of answer.text.split('\n\n')) {
    const data = /^data: (.*)$/m.exec(frame)?.[1];
    if (!data) continue;
    const event = JSON.parse(data);
    if (event.type === 'message_start') input = event.message?.usage?.input_tokens ?? 0;
    if (event.type === 'message_delta') output = event.usage?.output_tokens ?? 0;
    // Bedrock adds its own invocation metrics to the last event.
    const sent = event.type === 'message_stop' ? JSON.stringify({ ...event, 'amazon-bedrock-invocationMetrics': { inputTokenCount: input, outputTokenCount: output, invocationLatency: 20, firstByteLatency: 5 } }) : data;
    events.push(eventMessage('chunk', { bytes: Buffer.from(sent).toString('base64') }));
  }
  return sendStream(ctx, events, exceptions.shift());
}

/** CountTokens: the InvokeModel body it would run, counted by the model behind; foundation-model ids only. */
async function countTokens(ctx: Ctx, claudeUrl: string, model: string, base: string) {
  if (model !== base) return awsError(ctx, 400, "The provided model doesn't support counting tokens.");
  const encoded = ctx.body?.input?.invokeModel?.body;
  let body: any;
  try {
    body = JSON.parse(Buffer.from(String(encoded), 'base64').toString('utf8'));
  } catch {
    return awsError(ctx, 400, 'Malformed input request: input.invokeModel.body must be a base64 JSON body');
  }
  const invalid = validateInvoke(body);
  if (invalid) return awsError(ctx, 400, invalid);
  const upstream = anthropicRequest(body, base, false);
  const { max_tokens: _max, ...counted } = JSON.parse(upstream.body);
  const answer = await post(`${claudeUrl}/v1/messages/count_tokens`, JSON.stringify(counted), upstream.headers);
  if (answer.status !== 200) return awsError(ctx, answer.status, JSON.parse(answer.text)?.error?.message ?? 'model error');
  return ctx.json(200, { inputTokens: JSON.parse(answer.text).input_tokens });
}

// ---------------------------------------------------------------------------
// Server
// ---------------------------------------------------------------------------

const MODEL_PATH = /^\/model\/([^/]+)\/(converse|converse-stream|invoke|invoke-with-response-stream|count-tokens)$/;

export async function startFakeBedrock(opts: FakeBedrockOptions = {}): Promise<FakeBedrock> {
  const name = opts.name ?? 'bedrock';
  const region = opts.region ?? 'us-east-1';
  const models = opts.models ?? ['anthropic.claude-3-5-haiku-20241022-v1:0', 'amazon.nova-lite-v1:0'];
  const exceptions: StreamException[] = [];
  const counters = { bad: 0 };
  const claude = await startFakeAnthropic({ ...opts, name });
  const fake = await startFakeServer({
    name,
    basePath: '',
    isChat: (method, path) => method === 'POST' && MODEL_PATH.test(path),
    errorBody: (status) => ({ message: status === 429 ? 'Too many requests, please wait before trying again.' : `Request failed with status ${status}.` }),
    streamError: () => exceptionMessage({ type: 'modelStreamErrorException', message: 'The model stream failed. Try your request again.' }),
    async handle(ctx) {
      if (!(await verifySignature(ctx, opts, region, counters))) return;
      if (ctx.method === 'GET' && ctx.path === '/foundation-models') {
        return ctx.json(200, { modelSummaries: models.map((modelId) => ({ modelId, modelName: modelId, providerName: modelId.split('.')[0], responseStreamingSupported: true })) });
      }
      const match = ctx.method === 'POST' ? MODEL_PATH.exec(ctx.path) : null;
      if (!match) return awsError(ctx, 404, 'The requested operation is not recognized by the service.', 'UnknownOperationException');
      const model = decodeURIComponent(match[1]);
      // Cross-region inference profiles (us., eu., apac., global.) name the same models.
      const base = model.replace(/^(us|eu|apac|global|us-gov)\./, '');
      if (!models.includes(base) && !models.includes(model)) return awsError(ctx, 404, 'The provided model identifier is invalid.', 'ResourceNotFoundException');
      const operation = match[2];
      if (operation === 'converse' || operation === 'converse-stream') return converse(ctx, name, base, opts, operation === 'converse-stream', exceptions);
      if (!base.startsWith('anthropic.')) return awsError(ctx, 400, 'Malformed input request, please reformat your input and try again.');
      if (operation === 'count-tokens') return countTokens(ctx, claude.url, model, base);
      return invoke(ctx, claude.url, base, operation === 'invoke-with-response-stream', exceptions);
    },
  });
  const close = fake.close;
  const reset = fake.reset;
  const bedrock = fake as FakeBedrock;
  bedrock.queueStreamException = (exception) => void exceptions.push(exception);
  Object.defineProperty(bedrock, 'badSignatures', { get: () => counters.bad });
  bedrock.reset = () => {
    reset();
    exceptions.length = 0;
    counters.bad = 0;
  };
  bedrock.close = async () => {
    await close();
    await claude.close();
  };
  return bedrock;
}
