/**
 * The console as a newcomer reads it in the first hour: the running config as it is in effect (flags,
 * durations as written, settings that wait for a restart), recent requests with their key and protocol,
 * refused requests kept out of usage, no invented latency, a hint where pricing is missing, and a page
 * that fits a phone. In a real Chromium, at desktop and at 390 px wide, with screenshots.
 */
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { chromium, type BrowserContext } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfigFile } from '../src/config/load.ts';
import { startGateway, type Gateway } from '../src/server/start.ts';

const ADMIN_KEY = 'admin-0123456789abcdef';
const CLIENT_KEY = 'hx-first-hour-key-0001';

const yaml = (port: number) => `
server: {port: ${port}, request_timeout: 45s}
health_check: {enabled: false}
providers:
  dead: {type: openai, base_url: "http://127.0.0.1:9/v1", api_key: sk-dead-upstream, model: gpt-4o-mini}
  mock: {type: mock}
provider_preference: [mock, dead]
retry: {max_retries: 0}
circuit_breaker: {timeout: 1m30s}
auth:
  enabled: true
  keys: [{name: first-hour, key: ${CLIENT_KEY}}]
admin: {key: ${ADMIN_KEY}}
routes:
  - {path: /v1/dead/completions, handler: completion, provider_preference: [dead]}
`;

describe('the console in the first hour', () => {
  let dir: string;
  let file: string;
  let gateway: Gateway;
  let context: BrowserContext;
  let profile: string;
  const problems: string[] = [];

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'hapax-console-first-hour-'));
    file = join(dir, 'hapax.yaml');
    await writeFile(file, yaml(0));
    const quiet = new Writable({ write: (_chunk, _encoding, callback) => callback() });
    // As `hapax serve --host 127.0.0.1` would: the file says 0.0.0.0 (the default), the flag wins.
    gateway = await startGateway({ loaded: await loadConfigFile(file), configFile: file, watch: false, host: '127.0.0.1', logDestination: quiet });
    profile = await mkdtemp(join(tmpdir(), 'hapax-console-chromium-'));
    context = await chromium.launchPersistentContext(profile, {
      executablePath: '/usr/bin/chromium',
      headless: true,
      viewport: { width: 1440, height: 1000 },
      args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
    });
  }, 60_000);

  afterAll(async () => {
    await context?.close();
    await gateway?.close();
    for (const path of [profile, dir]) if (path) await rm(path, { recursive: true, force: true });
  });

  const call = (body: unknown, key?: string, path = '/v1/completions') =>
    fetch(`${gateway.url}${path}`, { method: 'POST', headers: { 'content-type': 'application/json', ...(key ? { 'x-api-key': key } : {}) }, body: JSON.stringify(body) });
  const snapshot = async () =>
    (await (await fetch(`${gateway.url}/console/api/state`, { headers: { 'x-api-key': ADMIN_KEY } })).json()) as Record<string, any>;

  it('shows what runs: flags over the file, durations as written, restart-only changes as pending', async () => {
    await writeFile(file, yaml(18_080));
    expect((await gateway.reload('admin')).ok).toBe(true);
    const { config } = await snapshot();
    expect(config.values.server).toMatchObject({ host: '127.0.0.1', port: gateway.port, request_timeout: '45s', read_timeout: '30s' });
    expect(config.values.circuit_breaker.timeout).toBe('1m30s');
    expect(config.overridden).toContain('server.host');
    expect(config.pending_restart).toEqual([{ key: 'server.port', running: gateway.port, file: 18_080 }]);
  });

  it('keeps refused requests out of usage, counts the tries of a failed one, and invents no latency', async () => {
    expect((await call({ input: 'no key' })).status).toBe(401);
    expect((await call({ input: 'hello' }, CLIENT_KEY)).status).toBe(200);
    const failed = await call({ input: 'to the dead one' }, CLIENT_KEY, '/v1/dead/completions');
    expect(failed.status).toBeGreaterThanOrEqual(500);
    const state = await snapshot();
    expect(state.usage.by_client.map((row: { name: string }) => row.name)).toEqual(['first-hour']);
    expect(state.usage.priced).toBe(false);
    const [dead, ok, refused] = state.requests;
    expect(refused).toMatchObject({ status: 401, key: null, protocol: 'HTTP/1.1', attempts: 0 });
    expect(ok).toMatchObject({ status: 200, key: 'first-hour', protocol: 'HTTP/1.1', provider: 'mock', attempts: 1 });
    expect(dead).toMatchObject({ key: 'first-hour', provider: null, attempts: 1 });
    const deadProvider = state.providers.find((p: { name: string }) => p.name === 'dead');
    expect(deadProvider).toMatchObject({ latency_ms: null, latency_avg_ms: null });
  });

  for (const [name, viewport] of [
    ['desktop', { width: 1440, height: 1000 }],
    ['phone', { width: 390, height: 844 }],
  ] as const) {
    it(`reads well on a ${name} (${viewport.width} px), with no console errors`, async () => {
      const page = await context.newPage();
      await page.setViewportSize(viewport);
      page.on('console', (message) => {
        if (message.type() === 'error' || message.type() === 'warning') problems.push(`${message.type()}: ${message.text()}`);
      });
      page.on('pageerror', (error) => problems.push(`pageerror: ${error.message}`));
      await page.goto(`${gateway.url}/console?key=${ADMIN_KEY}`);
      await page.locator('#live', { hasText: 'live' }).waitFor();
      await page.locator('#requests tbody tr:not(.empty)').first().waitFor();

      const rows = page.locator('#requests tbody tr');
      const texts = await rows.allInnerTexts();
      expect(texts.some((t) => t.includes('no valid key') && t.includes('HTTP/1.1') && t.includes('401'))).toBe(true);
      expect(texts.some((t) => t.includes('first-hour') && t.includes('mock'))).toBe(true);
      expect(texts.some((t) => t.includes('none answered'))).toBe(true);
      expect(await page.locator('tr[data-provider="dead"]').innerText()).toContain('no answer yet');
      expect(await page.locator('tr[data-provider="dead"]').innerText()).not.toContain('0.0 ms');
      await expect.poll(() => page.locator('#pricing-hint').isVisible()).toBe(true);
      expect(await page.locator('#latency-sparse').isVisible()).toBe(true);
      expect(await page.locator('#restart').innerText()).toContain(`server.port: 18080 in the file, ${gateway.port} running; takes effect after a restart`);
      expect(await page.locator('#restart').innerText()).toContain('server.host: running value set at start');
      expect(await page.locator('#config').textContent()).toContain('"request_timeout": "45s"');
      expect(await page.locator('#usage-client').innerText()).not.toContain('anonymous');

      // Nothing is cut off: the page is no wider than the screen, and every provider cell is on it.
      const overflow = await page.evaluate(() => document.documentElement.scrollWidth - document.documentElement.clientWidth);
      expect(overflow).toBeLessThanOrEqual(0);
      for (const cell of await page.locator('#providers td, #requests td, table.usage td').all()) {
        const box = await cell.boundingBox();
        if (box === null) continue; // not rendered (an empty detail)
        expect(box.x >= 0 && box.x + box.width <= viewport.width + 1, await cell.innerText()).toBe(true);
      }
      for (const id of ['chart-traffic', 'chart-latency']) {
        const box = await page.locator(`#${id} canvas`).first().boundingBox();
        expect(box && box.x + box.width <= viewport.width).toBe(true);
      }
      if (name === 'phone') expect(await page.locator('tr[data-provider="dead"] td').first().getAttribute('data-label')).toBe('Provider');

      await page.waitForTimeout(1200);
      await mkdir('test-artifacts', { recursive: true });
      await page.screenshot({ path: `test-artifacts/console-first-hour-${name}.png`, fullPage: true });
      expect(problems).toEqual([]);
      await page.close();
    }, 60_000);
  }
});
