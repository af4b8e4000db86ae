/**
 * The Python client (clients/python, standard library only) against a running Hapax: each case runs a
 * short script in python3 that prints one JSON line of what it saw.
 */
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { beforeEach, describe, expect, it } from 'vitest';
import { APP_KEY, useAuthGateway, useClientGateway } from './helpers/client-gateways.ts';

const CLIENT_DIR = fileURLToPath(new URL('../clients/python/', import.meta.url));

/** Runs `code` after `import hapax, json, os, time` with HAPAX_URL set; returns the JSON it printed last. */
function python(code: string, env: Record<string, string>): Promise<any> {
  const script = `import hapax, json, os, sys, time\nURL = os.environ["HAPAX_URL"]\n${code}\n`;
  return new Promise((resolve, reject) => {
    const child = spawn('python3', ['-c', script], {
      env: { ...process.env, ...env, PYTHONPATH: CLIENT_DIR, PYTHONDONTWRITEBYTECODE: '1', PYTHONUNBUFFERED: '1' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    let err = '';
    child.stdout.on('data', (chunk) => (out += chunk));
    child.stderr.on('data', (chunk) => (err += chunk));
    child.on('error', reject);
    child.on('close', (status) => {
      const last = out.trim().split('\n').at(-1);
      if (status !== 0 || !last) reject(new Error(`python3 exited ${status}\n${err}\n${out}`));
      else resolve(JSON.parse(last));
    });
  });
}

/** Prints a raised HapaxError as JSON (class, status, type, request_id, retry_after, details). */
const SHOW_ERROR = `
def show(e):
    return {"class": type(e).__name__, "hapax": isinstance(e, hapax.HapaxError), "status": e.status, "type": e.type,
            "request_id": e.request_id, "retry_after": e.retry_after, "details": e.details}
`;

describe('Python client against a running Hapax', () => {
  const setup = useClientGateway().and({ env: ({ gateway }): Record<string, string> => ({ HAPAX_URL: gateway.url }) });
  const chatRequests = () => setup.upstream.requests.filter((r) => r.path === '/v1/chat/completions');
  beforeEach(() => setup.upstream.reset());

  it('completes with messages, as the API document shows, sending X-Request-ID', async () => {
    const seen = await python(
      `
client = hapax.Client(URL)
r = client.completion(messages=[{"role": "user", "content": "What is the capital of France?"}])
mine = client.completion(input="hi", request_id="py-order-1")
print(json.dumps({"completion": r.completion, "request_id": r.request_id, "provider": r.provider, "usage": vars(r.usage),
                  "mine": mine.request_id, "mine_text": mine.completion}))`,
      setup.env,
    );
    expect(seen.completion).toBe('[solo] What is the capital of France?');
    expect(seen.provider).toBe('solo');
    expect(seen.request_id).toMatch(/^[0-9a-f-]{36}$/);
    expect(seen.usage.total_tokens).toBe(seen.usage.prompt_tokens + seen.usage.completion_tokens);
    expect(seen.mine).toBe('py-order-1');
    expect(seen.mine_text).toBe('[solo] hi');
    expect(chatRequests().map((r) => r.headers['x-request-id'])).toEqual([seen.request_id, 'py-order-1']);
  });

  it('streams Delta events, then one Done event', async () => {
    const seen = await python(
      `
events = list(hapax.Client(URL).stream(input="one two three four", request_id="py-stream"))
print(json.dumps({"types": [e.type for e in events], "text": "".join(e.text for e in events if e.type == "delta"),
                  "done": events[-1].completion, "request_id": events[-1].request_id, "out": events[-1].usage.completion_tokens}))`,
      setup.env,
    );
    expect(seen.types.at(-1)).toBe('done');
    expect(seen.types.filter((t: string) => t === 'delta').length).toBeGreaterThan(1);
    expect(seen.text).toBe('[solo] one two three four');
    expect(seen.done).toBe('[solo] one two three four');
    expect(seen.request_id).toBe('py-stream');
    expect(seen.out).toBeGreaterThan(0);
  });

  it('reports health', async () => {
    const seen = await python(`print(json.dumps(hapax.Client(URL).health()))`, setup.env);
    expect(seen.status.global).toBe(true);
    expect(seen.providers.solo).toMatchObject({ healthy: true, circuit_breaker: 'closed' });
  });

  it('retries a 429 after the Retry-After, with the same request id', async () => {
    setup.upstream.queueFaults({ kind: 'status', status: 429, headers: { 'retry-after': '1' } });
    const seen = await python(
      `
started = time.monotonic()
r = hapax.Client(URL).completion(input="after a rate limit", request_id="py-429")
print(json.dumps({"text": r.completion, "waited": time.monotonic() - started}))`,
      setup.env,
    );
    expect(seen.text).toBe('[solo] after a rate limit');
    expect(seen.waited).toBeGreaterThanOrEqual(0.95);
    expect(chatRequests().map((r) => r.headers['x-request-id'])).toEqual(['py-429', 'py-429']);
  });

  it('retries a 503 (streams too) and gives up after max_retries with a typed error', async () => {
    const overloaded = { kind: 'status' as const, status: 503, headers: { 'retry-after': '0' } };
    setup.upstream.queueFaults(overloaded);
    const first = await python(`print(json.dumps(hapax.Client(URL).completion(input="after an overload").completion))`, setup.env);
    expect(first).toBe('[solo] after an overload');
    expect(chatRequests()).toHaveLength(2);

    setup.upstream.reset();
    setup.upstream.queueFaults(overloaded);
    const streamed = await python(`print(json.dumps("".join(e.text for e in hapax.Client(URL).stream(input="streamed after an overload") if e.type == "delta")))`, setup.env);
    expect(streamed).toBe('[solo] streamed after an overload');
    expect(chatRequests()).toHaveLength(2);

    setup.upstream.reset();
    setup.upstream.queueFaults(overloaded, overloaded, overloaded);
    const failure = await python(
      `${SHOW_ERROR}
try:
    hapax.Client(URL, initial_retry_delay=0.05).completion(input="never", request_id="py-gives-up")
except hapax.ProcessingError as e:
    print(json.dumps(show(e)))`,
      setup.env,
    );
    expect(failure).toMatchObject({ class: 'ProcessingError', hapax: true, status: 503, type: 'ProcessingError', request_id: 'py-gives-up', retry_after: 0 });
    expect(chatRequests()).toHaveLength(3); // the first try and two retries
  });

  it('raises RateLimitError at once when Retry-After is longer than max_retry_delay', async () => {
    const seen = await python(
      `${SHOW_ERROR}
client = hapax.Client(URL, path="/v1/limited/completions")
client.completion(input="first")
started = time.monotonic()
try:
    client.completion(input="second", request_id="py-limited")
except hapax.RateLimitError as e:
    print(json.dumps({"error": show(e), "took": time.monotonic() - started}))`,
      setup.env,
    );
    expect(seen.took).toBeLessThan(1);
    expect(seen.error).toMatchObject({ class: 'RateLimitError', status: 429, type: 'RateLimitError', request_id: 'py-limited' });
    expect(seen.error.retry_after).toBeGreaterThan(8);
  });

  it('does not retry what the caller must fix, and reports the error event of a stream cut midway', async () => {
    setup.upstream.queueFaults({ kind: 'cut', afterChunks: 2 });
    const seen = await python(
      `${SHOW_ERROR}
client = hapax.Client(URL)
try:
    client.completion(request_id="py-bad")
except hapax.ValidationError as e:
    bad = show(e)
texts = []
try:
    for event in client.stream(input="this stream will be cut short by the provider", request_id="py-cut"):
        if event.type == "delta":
            texts.append(event.text)
    cut = None
except hapax.HapaxError as e:
    cut = show(e)
print(json.dumps({"bad": bad, "cut": cut, "deltas": len(texts)}))`,
      setup.env,
    );
    expect(seen.bad).toMatchObject({ class: 'ValidationError', status: 400, type: 'ValidationError', request_id: 'py-bad', details: { field: 'messages' } });
    expect(seen.deltas).toBeGreaterThan(0);
    expect(seen.cut.request_id).toBe('py-cut');
    expect(seen.cut.status).toBeGreaterThanOrEqual(500);
    expect(chatRequests()).toHaveLength(1);
  });

  it('raises APIConnectionError (status 0) when the gateway cannot be reached', async () => {
    const seen = await python(
      `${SHOW_ERROR}
try:
    hapax.Client("http://127.0.0.1:9", max_retries=0).completion(input="x", request_id="py-dead")
except hapax.APIConnectionError as e:
    print(json.dumps(show(e)))`,
      setup.env,
    );
    expect(seen).toMatchObject({ class: 'APIConnectionError', status: 0, type: 'ConnectionError', request_id: 'py-dead' });
  });
});

describe('Python client with auth on', () => {
  const setup = useAuthGateway();

  it('sends the API key, and raises AuthenticationError without it', async () => {
    const seen = await python(
      `${SHOW_ERROR}
ok = hapax.Client(URL, api_key="${APP_KEY}").completion(input="hi").completion
try:
    hapax.Client(URL).completion(input="hi")
except hapax.AuthenticationError as e:
    print(json.dumps({"ok": ok, "error": show(e)}))`,
      { HAPAX_URL: setup.gateway.url },
    );
    expect(seen.ok).toBe('hello from the mock');
    expect(seen.error).toMatchObject({ class: 'AuthenticationError', status: 401, type: 'AuthenticationError' });
    expect(seen.error.request_id).toMatch(/^[0-9a-f-]{36}$/);
  });
});
