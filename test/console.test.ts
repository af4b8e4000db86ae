/**
 * The operator console: access rules, the JSON snapshot (secrets masked, usage by key and route label),
 * the event stream, and the page itself in a real headless Chromium while a provider fails.
 */
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium, type BrowserContext, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MASK, redactSecrets } from '../src/observability/redact.ts';
import type { FakeProvider } from './fakes/common.ts';
import { startTestGateway, type TestGateway } from './helpers/gateway.ts';
import { fakeOpenAIs, useStarted } from './helpers/started.ts';

const ADMIN_KEY = 'admin-0123456789abcdef';
const CLIENT_KEY = 'hx-marketing-key-0001';
const UPSTREAM_SECRET = 'sk-upstream-very-secret';

function config(primary: FakeProvider, backup: FakeProvider, extra = ''): string {
  return `
providers:
  primary: {type: openai, base_url: "${primary.url}", api_key: ${UPSTREAM_SECRET}, model: gpt-4o-mini, headers: {x-upstream-token: header-secret-value}}
  backup: {type: openai_compatible, base_url: "${backup.url}", model: llama-3.1-8b}
provider_preference: [primary, backup]
circuit_breaker: {failure_threshold: 2, timeout: 60s}
pricing: {gpt-4o-mini: {input: 1000, output: 2000}}
routes:
  - {path: /v1/marketing/completions, handler: completion, metrics_labels: {department: marketing}}
  - {path: /v1/support/completions, handler: completion, metrics_labels: {department: support}}
${extra}`;
}

async function complete(gateway: TestGateway, path: string, body: unknown, key?: string): Promise<Response> {
  const headers: Record<string, string> = { 'content-type': 'application/json' };
  if (key) headers['x-api-key'] = key;
  return fetch(`${gateway.url}${path}`, { method: 'POST', headers, body: JSON.stringify(body) });
}

describe('console access and snapshot (auth on, admin key set)', () => {
  const setup = useStarted(fakeOpenAIs('primary', 'backup')).and({
    gateway: ({ primary, backup }) =>
      startTestGateway(
        config(
          primary,
          backup,
          `auth:
  enabled: true
  keys: [{name: marketing-team, key: ${CLIENT_KEY}}]
admin: {key: ${ADMIN_KEY}}
`,
        ),
      ),
  });

  it('asks for the admin key: sign-in form for the page, 401 for the API and the event stream', async () => {
    const page = await fetch(`${setup.gateway.url}/console`);
    expect(page.status).toBe(401);
    expect(page.headers.get('content-type')).toMatch(/^text\/html/);
    expect(page.headers.get('content-security-policy')).toContain("script-src 'self'");
    const html = await page.text();
    expect(html).toContain('<form method="post" action="/console/login">');

    for (const path of ['/console/api/state', '/console/events']) {
      const res = await fetch(`${setup.gateway.url}${path}`);
      expect(res.status).toBe(401);
      const body = (await res.json()) as { error: { type: string; request_id: string } };
      expect(body.error.type).toBe('AuthenticationError');
      expect(body.error.request_id).toBe(res.headers.get('x-request-id'));
    }
    // A client key is not the admin key.
    expect((await fetch(`${setup.gateway.url}/console/api/state`, { headers: { 'x-api-key': CLIENT_KEY } })).status).toBe(401);
  });

  it('signs in once with ?key= (redirect and an HttpOnly cookie that is not the key) and refuses a wrong key', async () => {
    const wrong = await fetch(`${setup.gateway.url}/console?key=not-the-admin-key`, { redirect: 'manual' });
    expect(wrong.status).toBe(401);
    expect(wrong.headers.get('set-cookie')).toBeNull();
    expect(await wrong.text()).toContain('That is not the admin key.');

    const right = await fetch(`${setup.gateway.url}/console?key=${ADMIN_KEY}`, { redirect: 'manual' });
    expect(right.status).toBe(303);
    expect(right.headers.get('location')).toBe('/console');
    const cookie = right.headers.get('set-cookie') as string;
    expect(cookie).toMatch(/^hapax_console=\d+\.[\w-]+; Path=\/console; Max-Age=\d+; HttpOnly; SameSite=Strict$/);
    expect(cookie).not.toContain(ADMIN_KEY);

    const session = cookie.split(';', 1)[0];
    const page = await fetch(`${setup.gateway.url}/console`, { headers: { cookie: session } });
    expect(page.status).toBe(200);
    expect(await page.text()).toContain('<script src="/console/assets/app.js"></script>');
    expect((await fetch(`${setup.gateway.url}/console/api/state`, { headers: { cookie: session } })).status).toBe(200);
    // A forged or tampered cookie is refused.
    const forged = session.replace(/\.[\w-]+$/, '.AAAA');
    expect((await fetch(`${setup.gateway.url}/console/api/state`, { headers: { cookie: forged } })).status).toBe(401);
  });

  it('signs in with the form too, and signs out', async () => {
    const wrong = await fetch(`${setup.gateway.url}/console/login`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: 'key=nope',
      redirect: 'manual',
    });
    expect(wrong.status).toBe(401);
    const ok = await fetch(`${setup.gateway.url}/console/login`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ key: ADMIN_KEY }).toString(),
      redirect: 'manual',
    });
    expect(ok.status).toBe(303);
    expect(ok.headers.get('set-cookie')).toMatch(/^hapax_console=/);
    const out = await fetch(`${setup.gateway.url}/console/logout`, { method: 'POST', redirect: 'manual' });
    expect(out.status).toBe(303);
    expect(out.headers.get('set-cookie')).toMatch(/^hapax_console=; Path=\/console; Max-Age=0/);
  });

  it('serves its assets, uPlot included, from this server', async () => {
    for (const [name, type] of [
      ['app.js', 'text/javascript'],
      ['app.css', 'text/css'],
      ['uPlot.iife.min.js', 'text/javascript'],
      ['uPlot.min.css', 'text/css'],
      ['favicon.svg', 'image/svg+xml'],
    ]) {
      const res = await fetch(`${setup.gateway.url}/console/assets/${name}`);
      expect(res.status, name).toBe(200);
      expect(res.headers.get('content-type')).toContain(type);
      const etag = res.headers.get('etag') as string;
      expect((await res.arrayBuffer()).byteLength).toBeGreaterThan(100);
      expect((await fetch(`${setup.gateway.url}/console/assets/${name}`, { headers: { 'if-none-match': etag } })).status).toBe(304);
    }
    expect(await (await fetch(`${setup.gateway.url}/console/assets/uPlot.iife.min.js`)).text()).toContain('uPlot');
    expect((await fetch(`${setup.gateway.url}/console/assets/..%2Fpackage.json`)).status).toBe(404);
    expect((await fetch(`${setup.gateway.url}/console/assets/feed.ts`)).status).toBe(404);
  });

  it('reports tokens by key and by route label, and masks every secret of the running config', async () => {
    for (const [path, input] of [
      ['/v1/marketing/completions', 'one two three'],
      ['/v1/marketing/completions', 'four five'],
      ['/v1/support/completions', 'six'],
    ]) {
      const res = await complete(setup.gateway, path, { input }, CLIENT_KEY);
      expect(res.status).toBe(200);
    }
    const res = await fetch(`${setup.gateway.url}/console/api/state`, { headers: { 'x-api-key': ADMIN_KEY } });
    expect(res.status).toBe(200);
    expect(res.headers.get('cache-control')).toBe('no-store');
    const text = await res.text();
    for (const secret of [ADMIN_KEY, CLIENT_KEY, UPSTREAM_SECRET, 'header-secret-value']) expect(text).not.toContain(secret);
    const state = JSON.parse(text);

    const marketing = state.usage.by_label.find((row: { name: string }) => row.name === 'department=marketing');
    expect(marketing).toMatchObject({ requests: 2 });
    expect(marketing.input_tokens).toBeGreaterThan(0);
    expect(marketing.output_tokens).toBeGreaterThan(0);
    expect(state.usage.by_label.find((row: { name: string }) => row.name === 'department=support')).toMatchObject({ requests: 1 });
    const team = state.usage.by_client.find((row: { name: string }) => row.name === 'marketing-team');
    expect(team.requests).toBe(3);
    expect(team.total_tokens).toBe(team.input_tokens + team.output_tokens);
    // Cost comes from the pricing table (USD per million tokens), through hapax_cost_usd_total.
    const expectedCost = (team.input_tokens * 1000 + team.output_tokens * 2000) / 1e6;
    expect(team.cost_usd).toBeCloseTo(expectedCost, 6);
    expect(marketing.cost_usd).toBeCloseTo((marketing.input_tokens * 1000 + marketing.output_tokens * 2000) / 1e6, 6);
    expect(state.usage.cost_usd).toBeCloseTo(expectedCost, 6);
    expect(state.usage.by_route.map((row: { name: string }) => row.name)).toEqual(expect.arrayContaining(['/v1/marketing/completions', '/v1/support/completions']));

    expect(state.config.values.providers.primary.api_key).toBe('********');
    expect(state.config.values.providers.primary.headers['x-upstream-token']).toBe('********');
    expect(state.config.values.auth.keys[0]).toMatchObject({ name: 'marketing-team', key: '********' });
    expect(state.config.values.admin.key).toBe('********');
    expect(state.config.values.circuit_breaker.failure_threshold).toBe(2);
    expect(Date.parse(state.config.loaded_at)).toBe(setup.gateway.holder.current.loadedAt.getTime());

    expect(state.providers.map((p: { name: string }) => p.name)).toEqual(['primary', 'backup']);
    expect(state.providers[0]).toMatchObject({ healthy: true, breaker: 'closed', type: 'openai', model: 'gpt-4o-mini' });
    expect(state.traffic.totals.requests).toBeGreaterThanOrEqual(3);
    expect(state.traffic.p50_ms).toBeGreaterThan(0);
    expect(state.requests[0]).toMatchObject({ route: '/v1/support/completions', status: 200, provider: 'primary', attempts: 1 });
  });

  it('counts the tokens and cost of a shared (deduplicated) answer once', async () => {
    const before = setup.primary.requests.length;
    setup.primary.queueFaults({ kind: 'delay', ms: 300 });
    const answers = await Promise.all([1, 2].map(() => complete(setup.gateway, '/v1/completions', { input: 'the same question' }, CLIENT_KEY)));
    expect(answers.map((a) => a.status)).toEqual([200, 200]);
    expect(setup.primary.requests.length - before).toBe(1);
    const usage = ((await answers[0].json()) as { usage: { total_tokens: number } }).usage;
    const state = await (await fetch(`${setup.gateway.url}/console/api/state`, { headers: { 'x-api-key': ADMIN_KEY } })).json();
    const route = state.usage.by_route.find((row: { name: string }) => row.name === '/v1/completions');
    expect(route).toMatchObject({ requests: 2, total_tokens: usage.total_tokens });
  });

  it('streams snapshots as Server-Sent Events', async () => {
    const controller = new AbortController();
    const res = await fetch(`${setup.gateway.url}/console/events`, { headers: { 'x-api-key': ADMIN_KEY }, signal: controller.signal });
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toMatch(/^text\/event-stream/);
    const reader = (res.body as ReadableStream<Uint8Array>).getReader();
    const decoder = new TextDecoder();
    let text = '';
    while (!/event: state\ndata: .*\n\n[\s\S]*event: state\ndata: .*\n\n/.test(text)) {
      const { value, done } = await reader.read();
      if (done) break;
      text += decoder.decode(value, { stream: true });
    }
    controller.abort();
    const frames = [...text.matchAll(/event: state\ndata: (.*)\n\n/g)].map((m) => JSON.parse(m[1]));
    expect(frames.length).toBeGreaterThanOrEqual(2);
    expect(frames[1].now).toBeGreaterThan(frames[0].now);
    expect(frames[0].providers).toHaveLength(2);
  });
});

describe('config masking for the console', () => {
  it('masks credential-named keys, header values and URL passwords, and keeps everything else', () => {
    const masked = redactSecrets({
      state: { redis_url: 'redis://app:redis-pass@cache:6379/0', key_prefix: 'hapax:' },
      tracing: { otlp_endpoint: 'https://otel.example/v1/traces?token=otlp-token&env=prod', headers: { 'x-honeycomb-team': 'team-secret', plain: 'also-masked' } },
      providers: { a: { api_key: 'sk-1', base_url: 'https://api.example/v1', max_tokens: 100, models: { m: { api_key: 'sk-2', endpoint: '/v1/m' } } } },
      auth: { key_file: '.hapax/keys.json', keys: [{ name: 'k', key: 'hx-1', key_sha256: 'ab'.repeat(32), rate_limit: { tokens_per_minute: 5 } }] },
      admin: { key: 'admin-key-123456789' },
      llm: { cache: { redis: { address: 'cache:6379', password: 'pw' } } },
      custom: { client_secret: 'cs', access_token: 'at', some_password: 'sp', empty_key: '' },
    }, MASK) as any;
    expect(masked.state.redis_url).toBe(`redis://app:${MASK}@cache:6379/0`);
    expect(masked.state.key_prefix).toBe('hapax:');
    expect(masked.tracing.otlp_endpoint).toContain(`token=${encodeURIComponent(MASK)}`);
    expect(masked.tracing.otlp_endpoint).toContain('env=prod');
    expect(masked.tracing.headers).toEqual({ 'x-honeycomb-team': MASK, plain: MASK });
    expect(masked.providers.a).toMatchObject({ api_key: MASK, base_url: 'https://api.example/v1', max_tokens: 100, models: { m: { api_key: MASK, endpoint: '/v1/m' } } });
    expect(masked.auth).toMatchObject({ key_file: '.hapax/keys.json', keys: [{ name: 'k', key: MASK, key_sha256: MASK, rate_limit: { tokens_per_minute: 5 } }] });
    expect(masked.admin.key).toBe(MASK);
    expect(masked.llm.cache.redis).toEqual({ address: 'cache:6379', password: MASK });
    expect(masked.custom).toEqual({ client_secret: MASK, access_token: MASK, some_password: MASK, empty_key: '' });
    const text = JSON.stringify(masked);
    for (const secret of ['redis-pass', 'otlp-token', 'team-secret', 'sk-1', 'sk-2', 'hx-1', 'admin-key', '"pw"', '"cs"', '"at"', '"sp"']) expect(text).not.toContain(secret);
  });
});

describe('console access without an admin key', () => {
  const fakes = useStarted(fakeOpenAIs('primary', 'backup'));

  it('is refused (403) while auth is on', async () => {
    const gateway = await startTestGateway(config(fakes.primary, fakes.backup, `auth: {enabled: true, keys: [{name: a, key: ${CLIENT_KEY}}]}\n`));
    try {
      const page = await fetch(`${gateway.url}/console`);
      expect(page.status).toBe(403);
      expect(await page.text()).toContain('admin.key');
      const api = await fetch(`${gateway.url}/console/api/state`, { headers: { 'x-api-key': CLIENT_KEY } });
      expect(api.status).toBe(403);
      expect(((await api.json()) as { error: { type: string } }).error.type).toBe('AuthenticationError');
    } finally {
      await gateway.close();
    }
  });

  it('is open while auth is off (a local gateway), and closing the gateway ends open event streams', async () => {
    const gateway = await startTestGateway(config(fakes.primary, fakes.backup));
    const page = await fetch(`${gateway.url}/console`);
    expect(page.status).toBe(200);
    expect(await page.text()).not.toContain('Sign out');
    const events = await fetch(`${gateway.url}/console/events`);
    expect(events.status).toBe(200);
    const started = Date.now();
    await gateway.close();
    expect(Date.now() - started).toBeLessThan(5000);
    // The stream was ended by the server, not left hanging.
    const rest = await events.text();
    expect(rest).toContain('event: state');
  });
});

describe('console in a real browser', () => {
  const setup = useStarted(fakeOpenAIs('primary', 'backup')).and({
    gateway: ({ primary, backup }) => startTestGateway(config(primary, backup, `admin: {key: ${ADMIN_KEY}}\n`)),
  });
  let context: BrowserContext;
  let profile: string;
  const problems: string[] = [];

  // The browser's own hooks run after the gateway has started and end before it closes.
  beforeAll(async () => {
    profile = await mkdtemp(join(tmpdir(), 'hapax-console-chromium-'));
    context = await chromium.launchPersistentContext(profile, {
      executablePath: '/usr/bin/chromium',
      headless: true,
      viewport: { width: 1440, height: 1000 },
      args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
    });
  }, 60_000);
  afterAll(async () => {
    await context?.close();
    if (profile) await rm(profile, { recursive: true, force: true });
  });

  async function open(): Promise<Page> {
    const page = await context.newPage();
    page.on('console', (message) => {
      if (message.type() === 'error' || message.type() === 'warning') problems.push(`${message.type()}: ${message.text()}`);
    });
    page.on('pageerror', (error) => problems.push(`pageerror: ${error.message}`));
    return page;
  }

  it('shows a provider turning unhealthy and its breaker opening, live, with no console errors', async () => {
    const page = await open();
    // Signing in with ?key= lands on the console without the key in the address bar.
    const response = await page.goto(`${setup.gateway.url}/console?key=${ADMIN_KEY}`);
    expect(response?.status()).toBe(200);
    expect(page.url()).toBe(`${setup.gateway.url}/console`);

    const primaryRow = page.locator('tr[data-provider="primary"]');
    await primaryRow.locator('.health .badge', { hasText: 'healthy' }).waitFor();
    await expect.poll(() => primaryRow.locator('.breaker .badge').textContent()).toBe('closed');
    await page.locator('#live', { hasText: 'live' }).waitFor();

    // Some good traffic, then the primary starts failing: requests that name it fail over to the backup.
    for (let i = 0; i < 3; i++) expect((await complete(setup.gateway, '/v1/marketing/completions', { input: `hello ${i}` })).status).toBe(200);
    setup.primary.fault = { kind: 'status', status: 500 };
    for (let i = 0; i < 4; i++) {
      const res = await complete(setup.gateway, '/v1/completions', { model: 'primary', input: `during the outage ${i}` });
      expect(res.status).toBe(200);
      expect(res.headers.get('x-hapax-provider')).toBe('backup');
    }

    // The page updates by itself (no reload).
    await expect.poll(() => primaryRow.locator('.health .badge').textContent(), { timeout: 10_000 }).toBe('unhealthy');
    await expect.poll(() => primaryRow.locator('.breaker .badge').textContent(), { timeout: 10_000 }).toBe('open');
    await expect.poll(() => primaryRow.locator('.breaker .detail').textContent(), { timeout: 10_000 }).toMatch(/half-opens in \d+s/);
    await expect.poll(() => page.locator('tr[data-provider="backup"] .breaker .badge').textContent()).toBe('closed');
    await expect.poll(() => page.locator('#events').textContent(), { timeout: 10_000 }).toContain('primary → backup');
    await expect.poll(() => page.locator('#events').textContent()).toContain('primary: breaker closed → open');
    await expect.poll(() => page.locator('#stat-failovers').textContent()).not.toBe('0');
    await expect.poll(() => page.locator('#usage-label tr[data-name="department=marketing"]').count()).toBe(1);
    expect(await page.locator('#config').textContent()).toContain('"api_key": "********"');
    expect(await page.locator('#config').textContent()).not.toContain(UPSTREAM_SECRET);
    expect(await page.locator('#chart-traffic canvas').count()).toBeGreaterThan(0);
    expect(await page.locator('#chart-latency canvas').count()).toBeGreaterThan(0);
    expect(await page.locator('#overall').textContent()).toBe('1/2 providers available');

    // Charts plot whole seconds: give the last second of traffic time to land before the picture.
    await page.waitForTimeout(1200);
    await mkdir('test-artifacts', { recursive: true });
    await page.screenshot({ path: 'test-artifacts/console.png', fullPage: true });
    expect(problems).toEqual([]);
    await page.close();
  }, 60_000);
});

describe('config masking for the cloud providers', () => {
  it("masks AWS keys and keeps region, profile, project, location and the credentials file's path", () => {
    const masked = redactSecrets({
      providers: {
        bd: { type: 'bedrock', region: 'us-east-1', profile: 'team', aws_access_key_id: 'AKIAEXAMPLEKEYID', aws_secret_access_key: 'aws-secret-value', aws_session_token: 'aws-session-value' },
        vx: { type: 'vertex', project: 'my-project', location: 'us-east5', credentials_file: '/etc/hapax/key.json' },
      },
    }, MASK) as any;
    expect(masked.providers.bd).toEqual({ type: 'bedrock', region: 'us-east-1', profile: 'team', aws_access_key_id: MASK, aws_secret_access_key: MASK, aws_session_token: MASK });
    expect(masked.providers.vx).toEqual({ type: 'vertex', project: 'my-project', location: 'us-east5', credentials_file: '/etc/hapax/key.json' });
  });
});
