/**
 * Fake Google Cloud Vertex AI (Anthropic's models through Model Garden) and the OAuth 2.0 token endpoint in front
 * of it, from Google's and Anthropic's published references.
 *
 *   POST /token      Google's token endpoint: the JWT-bearer grant of a service account (RFC 7523). The
 *                    assertion must be an RS256 JWT signed by a known service account's key, for the token
 *                    endpoint's audience, with the cloud-platform scope; answers {access_token, expires_in}.
 *   GET  /computeMetadata/v1/instance/service-accounts/default/token   the metadata server's token (needs the
 *                    `Metadata-Flavor: Google` header)
 *   POST /v1/projects/{project}/locations/{location}/publishers/anthropic/models/{model}:rawPredict
 *   POST /v1/projects/{project}/locations/{location}/publishers/anthropic/models/{model}:streamRawPredict
 *                    an Anthropic Messages body without `model`, with `anthropic_version: vertex-2023-10-16`;
 *                    betas as the `anthropic-beta` header. Answered by a fake Claude behind the fake (started
 *                    with the same options), in Anthropic's JSON and SSE events.
 *   POST /v1/projects/{project}/locations/{location}/publishers/anthropic/models/count-tokens:rawPredict
 *                    Anthropic's token count; here the body names the model (and carries anthropic_version)
 *   POST /v1/projects/{project}/locations/{location}/publishers/google/models/{model}:generateContent
 *   POST /v1/projects/{project}/locations/{location}/publishers/google/models/{model}:streamGenerateContent?alt=sse
 *                    Gemini's own format, answered by a fake Gemini model behind the fake (same options)
 *   GET  /v1beta1/publishers/anthropic/models   Model Garden's list of Anthropic's models (publishers.models.list)
 *   GET  /v1beta1/publishers/google/models      the same list of Google's own (the fake's Gemini models)
 *
 * Every Vertex call needs `Authorization: Bearer <a token this fake issued>` (401 UNAUTHENTICATED otherwise)
 * and the fake's own project and location (403 / 400 otherwise).
 */
import http from 'node:http';
import { createVerify, generateKeyPairSync, type KeyObject } from 'node:crypto';
import { startFakeAnthropic } from './anthropic.ts';
import { startFakeGemini } from './gemini.ts';
import { type Ctx, type FakeOptions, type FakeProvider, makeId, startFakeServer } from './common.ts';

export const GOOGLE_TOKEN_URL = 'https://oauth2.googleapis.com/token';
const CLOUD_PLATFORM = 'https://www.googleapis.com/auth/cloud-platform';

export interface TestServiceAccount {
  /** The key file's JSON, as the Cloud console hands it out. */
  keyFile: Record<string, string>;
  publicKey: KeyObject;
}

/** A service account with a fresh RSA key, for tests to write as a key file. */
export function makeServiceAccount(project: string, name = 'hapax-test'): TestServiceAccount {
  const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const email = `${name}@${project}.iam.gserviceaccount.com`;
  return {
    publicKey,
    keyFile: {
      type: 'service_account',
      project_id: project,
      private_key_id: makeId('', 40).toLowerCase(),
      private_key: privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(),
      client_email: email,
      client_id: '100000000000000000001',
      auth_uri: 'https://accounts.google.com/o/oauth2/auth',
      token_uri: GOOGLE_TOKEN_URL,
    },
  };
}

export interface FakeVertexOptions extends FakeOptions {
  project?: string;
  location?: string;
  serviceAccounts?: TestServiceAccount[];
  /** Gemini models the project may use (default: gemini-2.5-flash). */
  geminiModels?: string[];
  /** Another fake's token endpoint is Google's for this one too: the tokens it issued are accepted here. */
  tokenIssuer?: FakeVertex;
  /** The metadata server hands out tokens too (as on GCE, Cloud Run, GKE). */
  metadataServer?: boolean;
}

export interface FakeVertex extends FakeProvider {
  /** Tokens issued so far (each is accepted until it expires). */
  issued: string[];
  /** Token requests the endpoint refused. */
  refusedGrants: number;
  /** Bearer tokens the Vertex API refused. */
  refusedTokens: number;
}

function googleError(ctx: Ctx, code: number, status: string, message: string) {
  return ctx.json(code, { error: { code, message, status } });
}

const base64url = (text: string) => Buffer.from(text, 'base64url');

/** Checks a JWT-bearer assertion: RS256, signed by a known account, for the token endpoint, unexpired. */
function verifyAssertion(assertion: string, accounts: TestServiceAccount[]): string | null {
  const parts = assertion.split('.');
  if (parts.length !== 3) return 'Invalid JWT: Token must be a short-lived token and in a reasonable timeframe';
  let header: any;
  let claims: any;
  try {
    header = JSON.parse(base64url(parts[0]).toString('utf8'));
    claims = JSON.parse(base64url(parts[1]).toString('utf8'));
  } catch {
    return 'Invalid JWT: malformed';
  }
  if (header.alg !== 'RS256') return 'Invalid JWT: the algorithm must be RS256';
  const account = accounts.find((a) => a.keyFile.client_email === claims.iss);
  if (!account) return 'Invalid JWT Signature.';
  const verifier = createVerify('RSA-SHA256');
  verifier.update(`${parts[0]}.${parts[1]}`);
  if (!verifier.verify(account.publicKey, base64url(parts[2]))) return 'Invalid JWT Signature.';
  const now = Math.floor(Date.now() / 1000);
  if (claims.aud !== GOOGLE_TOKEN_URL) return 'Invalid JWT: aud must be the token endpoint';
  if (typeof claims.exp !== 'number' || claims.exp < now || claims.iat > now + 300) return 'Invalid JWT: Token must be a short-lived token and in a reasonable timeframe';
  if (!String(claims.scope ?? '').split(' ').includes(CLOUD_PLATFORM)) return 'Invalid OAuth scope or ID token audience provided.';
  return null;
}

function post(url: string, body: string, headers: Record<string, string>): Promise<{ status: number; text: string; type: string }> {
  return new Promise((resolve, reject) => {
    const req = http.request(url, { method: 'POST', headers }, (res) => {
      const parts: Buffer[] = [];
      res.on('data', (c: Buffer) => parts.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, text: Buffer.concat(parts).toString('utf8'), type: String(res.headers['content-type'] ?? '') }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end(body);
  });
}

const GEMINI_PATH = /^\/v1\/projects\/([^/]+)\/locations\/([^/]+)\/publishers\/google\/models\/([^/:]+):(generateContent|streamGenerateContent)$/;
const PREDICT_PATH = /^\/v1\/projects\/([^/]+)\/locations\/([^/]+)\/publishers\/anthropic\/models\/([^/:]+):(rawPredict|streamRawPredict)$/;

export async function startFakeVertex(opts: FakeVertexOptions = {}): Promise<FakeVertex> {
  const name = opts.name ?? 'vertex';
  const project = opts.project ?? 'hapax-test-project';
  const location = opts.location ?? 'us-east5';
  const accounts = opts.serviceAccounts ?? [];
  const models = opts.models ?? ['claude-3-5-haiku@20241022'];
  const tokens = new Map<string, number>();
  const counters = { grants: 0, tokens: 0 };
  const claude = await startFakeAnthropic({ ...opts, name });
  const geminiKey = makeId('gemini-key-', 16);
  const geminiModels = opts.geminiModels ?? ['gemini-2.5-flash'];
  const gemini = await startFakeGemini({ ...opts, name, apiKey: geminiKey, models: geminiModels });

  const issue = (ctx: Ctx) => {
    const token = `ya29.fake-${makeId('', 40)}`;
    tokens.set(token, Date.now() + 3600_000);
    return ctx.json(200, { access_token: token, expires_in: 3599, token_type: 'Bearer' }, { 'metadata-flavor': 'Google' });
  };

  const fake = await startFakeServer({
    name,
    basePath: '',
    isChat: (method, path) => method === 'POST' && (PREDICT_PATH.test(path) || GEMINI_PATH.test(path)),
    errorBody: (status) => ({ error: { code: status, message: status === 429 ? 'Resource exhausted. Please try again later.' : `Request failed with status ${status}.`, status: status === 429 ? 'RESOURCE_EXHAUSTED' : status >= 500 ? 'INTERNAL' : 'INVALID_ARGUMENT' } }),
    // Mid-stream, Vertex's Gemini streams carry Google's error object as an event, as the Gemini API's do.
    streamError: () => `data: ${JSON.stringify({ error: { code: 500, message: 'Internal error encountered.', status: 'INTERNAL' } })}\r\n\r\n`,
    async handle(ctx) {
      if (ctx.method === 'POST' && ctx.path === '/token') {
        const form = new URLSearchParams(ctx.raw.toString('utf8'));
        if (form.get('grant_type') !== 'urn:ietf:params:oauth:grant-type:jwt-bearer') {
          counters.grants++;
          return ctx.json(400, { error: 'unsupported_grant_type', error_description: 'Invalid grant_type.' });
        }
        const invalid = verifyAssertion(form.get('assertion') ?? '', accounts);
        if (invalid) {
          counters.grants++;
          return ctx.json(400, { error: 'invalid_grant', error_description: invalid });
        }
        return issue(ctx);
      }
      if (ctx.method === 'GET' && ctx.path.startsWith('/computeMetadata/v1/') && opts.metadataServer) {
        if (ctx.req.headers['metadata-flavor'] !== 'Google') return ctx.text(403, 'Missing Metadata-Flavor:Google header.');
        if (ctx.path === '/computeMetadata/v1/instance/service-accounts/default/token') return issue(ctx);
        // Clients probe the server before they trust it: any answer with the flavor header says "on Google Cloud".
        if (ctx.path === '/computeMetadata/v1/instance' || ctx.path === '/computeMetadata/v1/instance/') return ctx.text(200, '', { 'metadata-flavor': 'Google' });
        if (ctx.path === '/computeMetadata/v1/project/project-id') return ctx.text(200, project, { 'metadata-flavor': 'Google' });
        return ctx.text(404, 'Not Found', { 'metadata-flavor': 'Google' });
      }
      const bearer = /^Bearer (.+)$/.exec(String(ctx.req.headers.authorization ?? ''))?.[1];
      const expires = bearer === undefined ? undefined : (tokens.get(bearer) ?? (opts.tokenIssuer?.issued.includes(bearer) ? Date.now() + 1 : undefined));
      if (expires === undefined || expires < Date.now()) {
        counters.tokens++;
        return googleError(ctx, 401, 'UNAUTHENTICATED', 'Request had invalid authentication credentials. Expected OAuth 2 access token, login cookie or other valid authentication credential.');
      }
      if (ctx.method === 'GET' && ctx.path === '/v1beta1/publishers/anthropic/models') {
        return ctx.json(200, { publisherModels: models.map((m) => ({ name: `publishers/anthropic/models/${m.split('@')[0]}`, versionId: m.split('@')[1] ?? '001' })) });
      }
      if (ctx.method === 'GET' && ctx.path === '/v1beta1/publishers/google/models') {
        return ctx.json(200, { publisherModels: geminiModels.map((m) => ({ name: `publishers/google/models/${m}`, versionId: '001', launchStage: 'GA' })) });
      }
      const generate = ctx.method === 'POST' ? GEMINI_PATH.exec(ctx.path) : null;
      if (generate) {
        const [, gotProject, gotLocation, escapedModel, method] = generate;
        if (decodeURIComponent(gotProject) !== project) return googleError(ctx, 403, 'PERMISSION_DENIED', `Permission denied on resource project ${decodeURIComponent(gotProject)}.`);
        if (decodeURIComponent(gotLocation) !== location) return googleError(ctx, 400, 'FAILED_PRECONDITION', `Model is not available in location ${decodeURIComponent(gotLocation)}.`);
        const model = decodeURIComponent(escapedModel);
        if (!geminiModels.includes(model)) return googleError(ctx, 404, 'NOT_FOUND', `Publisher Model \`projects/${project}/locations/${location}/publishers/google/models/${model}\` not found.`);
        const query = method === 'streamGenerateContent' ? `?${ctx.query.toString()}` : '';
        const answer = await post(`${gemini.url}/v1beta/models/${encodeURIComponent(model)}:${method}${query}`, ctx.raw.toString('utf8'), { 'content-type': 'application/json', 'x-goog-api-key': geminiKey });
        if (answer.status !== 200 || method !== 'streamGenerateContent') return ctx.text(answer.status, answer.text, { 'content-type': answer.type });
        return ctx.stream(answer.type || 'text/event-stream', answer.text.split(/(?<=\r?\n\r?\n)/));
      }
      const match = ctx.method === 'POST' ? PREDICT_PATH.exec(ctx.path) : null;
      if (!match) return googleError(ctx, 404, 'NOT_FOUND', 'The requested URL was not found on this server.');
      const [, gotProject, gotLocation, escapedModel, method] = match;
      if (decodeURIComponent(gotProject) !== project) return googleError(ctx, 403, 'PERMISSION_DENIED', `Permission denied on resource project ${decodeURIComponent(gotProject)}.`);
      if (decodeURIComponent(gotLocation) !== location) return googleError(ctx, 400, 'FAILED_PRECONDITION', `Model is not available in location ${decodeURIComponent(gotLocation)}.`);
      const model = decodeURIComponent(escapedModel);
      if (model === 'count-tokens' && method === 'rawPredict') {
        const body = ctx.body;
        if (body?.anthropic_version !== 'vertex-2023-10-16') return ctx.json(400, { type: 'error', error: { type: 'invalid_request_error', message: 'anthropic_version: Input should be vertex-2023-10-16' } });
        if (!models.includes(body.model)) return googleError(ctx, 404, 'NOT_FOUND', `Publisher Model ${body.model} not found.`);
        const { anthropic_version: _version, ...rest } = body;
        const headers: Record<string, string> = { 'content-type': 'application/json', 'anthropic-version': '2023-06-01' };
        if (typeof ctx.req.headers['anthropic-beta'] === 'string') headers['anthropic-beta'] = ctx.req.headers['anthropic-beta'];
        const answer = await post(`${claude.url}/v1/messages/count_tokens`, JSON.stringify(rest), headers);
        return ctx.text(answer.status, answer.text, { 'content-type': answer.type });
      }
      if (!models.includes(model)) return googleError(ctx, 404, 'NOT_FOUND', `Publisher Model \`projects/${project}/locations/${location}/publishers/anthropic/models/${model}\` not found.`);
      const body = ctx.body;
      if (!body || typeof body !== 'object') return googleError(ctx, 400, 'INVALID_ARGUMENT', 'Invalid JSON payload received.');
      if (body.anthropic_version !== 'vertex-2023-10-16') return ctx.json(400, { type: 'error', error: { type: 'invalid_request_error', message: 'anthropic_version: Input should be vertex-2023-10-16' } });
      if ('model' in body) return ctx.json(400, { type: 'error', error: { type: 'invalid_request_error', message: 'model: Extra inputs are not permitted' } });
      const stream = method === 'streamRawPredict';
      if ((body.stream === true) !== stream) return ctx.json(400, { type: 'error', error: { type: 'invalid_request_error', message: `stream must be ${stream} for ${method}` } });
      const { anthropic_version: _version, ...rest } = body;
      const headers: Record<string, string> = { 'content-type': 'application/json', 'anthropic-version': '2023-06-01' };
      const beta = ctx.req.headers['anthropic-beta'];
      if (typeof beta === 'string') headers['anthropic-beta'] = beta;
      const answer = await post(`${claude.url}/v1/messages`, JSON.stringify({ ...rest, model }), headers);
      if (answer.status !== 200 || !stream) return ctx.text(answer.status, answer.text, { 'content-type': answer.type });
      // The events as the model sent them, one write per event.
      return ctx.stream('text/event-stream; charset=utf-8', answer.text.split(/(?<=\n\n)/));
    },
  });
  const close = fake.close;
  const reset = fake.reset;
  const vertex = fake as FakeVertex;
  Object.defineProperty(vertex, 'issued', { get: () => [...tokens.keys()] });
  Object.defineProperty(vertex, 'refusedGrants', { get: () => counters.grants });
  Object.defineProperty(vertex, 'refusedTokens', { get: () => counters.tokens });
  vertex.reset = () => {
    reset();
    counters.grants = 0;
    counters.tokens = 0;
  };
  vertex.close = async () => {
    await close();
    await claude.close();
    await gemini.close();
  };
  return vertex;
}
