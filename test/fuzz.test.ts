/**
 * Property-based checks: random and hostile bodies, headers and paths against every endpoint.
 * Whatever arrives, the gateway answers with a non-5xx status in the error format (or a normal answer),
 * never crashes or hangs, and the next good request still works.
 */
import fc from 'fast-check';
import { request as httpRequest } from 'node:http';
import { describe, expect, it } from 'vitest';
import { useGateway } from './helpers/started.ts';

const ENDPOINTS = [
  ['POST', '/v1/completions'],
  ['POST', '/v1/completion'],
  ['POST', '/v1/chat/completions'],
  ['POST', '/v1/messages'],
  ['POST', '/v1/messages/count_tokens'],
  ['POST', '/v1/responses'],
  ['GET', '/v1/responses/resp_unknown'],
  ['GET', '/v1/responses/resp_unknown/input_items'],
  ['POST', '/v1/embeddings'],
  ['POST', '/api/chat'],
  ['POST', '/api/embed'],
  ['GET', '/v1/models'],
  ['GET', '/health'],
  ['GET', '/api/tags'],
] as const;

interface RawAnswer {
  status: number;
  body: string;
}

/** A raw HTTP request (no client-side validation), bounded in time so a hang fails the test. */
function raw(url: string, method: string, path: string, headers: Record<string, string>, body?: Buffer | string): Promise<RawAnswer> {
  return new Promise((resolve, reject) => {
    const { hostname, port } = new URL(url);
    const req = httpRequest({ hostname, port, path, method, headers, timeout: 5_000, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8') }));
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error(`no answer within 5s for ${method} ${path}`)));
    req.on('error', reject);
    if (body !== undefined) req.end(body);
    else req.end();
  });
}

const jsonValue = fc.jsonValue({ maxDepth: 4 });
const hostileString = fc.oneof(
  fc.string({ maxLength: 50 }),
  fc.string({ unit: 'binary', maxLength: 50 }),
  fc.constantFrom('__proto__', 'constructor', '\u0000', '\ud800', '💥'.repeat(20), 'a'.repeat(5000), '${HOME}', '../../etc/passwd'),
);
/** Bodies that look almost right: real field names with wrong or extreme values. */
const nearMiss = fc.record(
  {
    model: fc.oneof(hostileString, jsonValue),
    messages: fc.oneof(
      fc.array(fc.record({ role: fc.oneof(fc.constantFrom('user', 'system', 'assistant', 'tool', 'function', ''), hostileString), content: fc.oneof(hostileString, jsonValue) }, { requiredKeys: [] }), { maxLength: 4 }),
      jsonValue,
    ),
    input: fc.oneof(
      hostileString,
      jsonValue,
      // Responses API items: real item types with wrong or missing fields.
      fc.array(
        fc.record(
          {
            type: fc.oneof(fc.constantFrom('message', 'function_call', 'function_call_output', 'reasoning', 'custom_tool_call', 'item_reference', 'web_search_call'), hostileString),
            role: fc.oneof(fc.constantFrom('user', 'assistant', 'developer', 'system'), hostileString),
            content: fc.oneof(hostileString, jsonValue, fc.array(fc.record({ type: fc.constantFrom('input_text', 'input_image', 'input_file', 'output_text'), text: jsonValue }, { requiredKeys: [] }), { maxLength: 3 })),
            call_id: fc.oneof(hostileString, jsonValue),
            output: fc.oneof(hostileString, jsonValue),
            arguments: fc.oneof(hostileString, jsonValue),
            summary: jsonValue,
            encrypted_content: fc.oneof(hostileString, jsonValue),
          },
          { requiredKeys: [] },
        ),
        { maxLength: 4 },
      ),
    ),
    instructions: fc.oneof(hostileString, jsonValue),
    previous_response_id: fc.oneof(hostileString, jsonValue),
    text: jsonValue,
    reasoning: jsonValue,
    max_tokens: fc.oneof(fc.integer(), fc.double(), hostileString),
    temperature: fc.oneof(fc.double(), hostileString),
    top_p: fc.double(),
    stream: fc.oneof(fc.boolean(), hostileString),
    tools: jsonValue,
    stop: jsonValue,
  },
  { requiredKeys: [] },
);

describe('hostile input never breaks the gateway', () => {
  const setup = useGateway('providers:\n  mock: {type: mock}\n');

  const assertSane = (answer: RawAnswer) => {
    expect(answer.status, answer.body).toBeLessThan(500);
    if (answer.status >= 400 && answer.body) {
      const parsed = JSON.parse(answer.body) as { error?: unknown; type?: string };
      expect(parsed.error ?? parsed.type).toBeTruthy();
    }
  };

  const stillWorks = async () => {
    const ok = await raw(setup.gateway.url, 'POST', '/v1/completions', { 'content-type': 'application/json' }, JSON.stringify({ input: 'still there?' }));
    expect(ok.status).toBe(200);
    expect(JSON.parse(ok.body).completion).toContain('still there?');
  };

  it('answers random JSON and near-miss bodies on every endpoint with a client error or an answer', async () => {
    await fc.assert(
      fc.asyncProperty(fc.constantFrom(...ENDPOINTS), fc.oneof(jsonValue, nearMiss), async ([method, path], body) => {
        const answer = await raw(setup.gateway.url, method, path, { 'content-type': 'application/json' }, method === 'GET' ? undefined : JSON.stringify(body));
        assertSane(answer);
      }),
      { numRuns: 300 },
    );
    await stillWorks();
  });

  it('answers random bytes, content types and truncated JSON', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.constantFrom(...ENDPOINTS.filter(([m]) => m === 'POST')),
        fc.oneof(fc.uint8Array({ maxLength: 300 }).map((b) => Buffer.from(b)), fc.string().map((s) => `{"messages": [${s}`)),
        fc.constantFrom('application/json', 'application/json; charset=utf-16', 'text/plain', 'application/x-www-form-urlencoded', 'multipart/form-data; boundary=x', ''),
        async ([method, path], body, contentType) => {
          const headers: Record<string, string> = contentType ? { 'content-type': contentType } : {};
          assertSane(await raw(setup.gateway.url, method, path, headers, body));
        },
      ),
      { numRuns: 200 },
    );
    await stillWorks();
  });

  it('answers hostile paths, methods and headers', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.oneof(fc.webPath(), fc.constantFrom('/health/provider/%00', '/health/%E0%A4%A', '/v1/../admin/keys', '//v1//chat/completions', '/health/provider/' + 'x'.repeat(3000), '/admin/keys/%FF')),
        fc.constantFrom('GET', 'POST', 'PUT', 'DELETE', 'PATCH', 'OPTIONS', 'HEAD'),
        fc.record(
          {
            'x-request-id': hostileString.filter((s) => /^[\t\x20-\x7e]*$/.test(s)),
            'x-api-key': fc.string({ maxLength: 40 }).filter((s) => /^[\x21-\x7e]*$/.test(s)),
            authorization: fc.constantFrom('Bearer', 'Bearer ', 'Basic abc', 'bearer x'),
            'cache-control': fc.constantFrom('no-cache', 'max-age=-1', ''),
            traceparent: fc.string({ maxLength: 60 }).filter((s) => /^[\x21-\x7e]*$/.test(s)),
          },
          { requiredKeys: [] },
        ),
        async (path, method, headers) => {
          let answer: RawAnswer;
          try {
            answer = await raw(setup.gateway.url, method, path.startsWith('/') ? path : `/${path}`, headers, method === 'POST' ? '{}' : undefined);
          } catch (error) {
            // Node's client refuses some paths before sending; that is not the server's doing.
            if ((error as NodeJS.ErrnoException).code === 'ERR_UNESCAPED_CHARACTERS') return;
            throw error;
          }
          assertSane(answer);
        },
      ),
      { numRuns: 300 },
    );
    await stillWorks();
  });

  it('refuses headers larger than server.max_header_bytes with 431 and keeps serving', async () => {
    const answer = await raw(setup.gateway.url, 'GET', '/health', { 'x-filler': 'y'.repeat(40_000) }).catch((e: Error) => ({ status: 0, body: e.message }));
    expect(answer.status).toBe(431);
    await stillWorks();
  });
});
