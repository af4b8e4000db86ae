/**
 * The user docs stay true: docs/configuration.md names every key the config schema accepts and states the
 * schema's defaults; getting-started's failover walk-through happens as written; api.md covers every
 * path of the OpenAPI document; the docs' relative links resolve.
 */
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { parseDuration } from '../src/config/duration.ts';
import { parseConfig } from '../src/config/load.ts';
import { configSchema } from '../src/config/schema.ts';
import { keysAt } from '../src/config/schema-walk.ts';
import { openapiDocument } from '../src/server/routes/openapi.ts';
import { startTestGateway, type TestGateway } from './helpers/gateway.ts';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const read = (file: string) => readFileSync(join(ROOT, file), 'utf8');
const ANY = '__any__';

/** `## \`name\`` sections of a markdown page, by name. */
function sections(markdown: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const part of markdown.split(/^## /m).slice(1)) {
    const name = /^`([a-z_]+)`/.exec(part)?.[1];
    if (name) out.set(name, part);
  }
  return out;
}

/** The keys an object at `path` accepts, also through arrays (`[0]`) and records (any key). */
function childKeys(path: PropertyKey[]): { path: PropertyKey[]; keys: string[] } | undefined {
  for (const suffix of [[], [0], [ANY], [ANY, ANY]] as PropertyKey[][]) {
    const keys = keysAt(configSchema, [...path, ...suffix]);
    if (keys.length > 0) return { path: [...path, ...suffix], keys };
  }
  return undefined;
}

/** Every key path the schema accepts, below `path`. */
function allKeys(path: PropertyKey[] = [], depth = 0): string[][] {
  const found = childKeys(path);
  if (!found || depth > 5) return [];
  return found.keys.flatMap((key) => [[...found.path.filter((p) => typeof p === 'string' && p !== ANY), key] as string[], ...allKeys([...found.path, key], depth + 1)]);
}

const plain = (text: string) => text.replace(/[`"'\s[\]]/g, '');

describe('docs/configuration.md against the config schema', () => {
  const doc = read('docs/configuration.md');
  const bySection = sections(doc);

  it('has a section for every top-level key', () => {
    const topLevel = keysAt(configSchema, []);
    expect(topLevel.length).toBeGreaterThan(20);
    const missing = topLevel.filter((key) => !bySection.has(key));
    expect(missing, 'add a "## `key`" section to docs/configuration.md').toEqual([]);
  });

  it('names every key of a section (for lists and maps: of their entries) in that section', () => {
    const missing: string[] = [];
    for (const top of keysAt(configSchema, [])) {
      const found = childKeys([top]);
      if (!found) continue;
      const text = bySection.get(top) ?? '';
      for (const key of found.keys) if (!text.includes(`\`${key}\``)) missing.push(`${top}: ${key}`);
    }
    expect(missing, 'document these keys in their section of docs/configuration.md').toEqual([]);
  });

  it('names every key at any depth somewhere', () => {
    const paths = allKeys();
    expect(paths.length).toBeGreaterThan(120);
    const missing = paths.filter((path) => !doc.includes(`\`${path.at(-1)}\``)).map((path) => path.join('.'));
    expect(missing).toEqual([]);
  });

  it("states the schema's defaults", () => {
    // Optional sections get their defaults once present.
    const full = configSchema.parse({ cors: {}, queue: {}, tracing: {}, load_balancing: {}, providers: { p: { type: 'mock' } } }) as Record<string, unknown>;
    const defaults: Array<[section: string, key: string, value: unknown]> = [];
    for (const [section, value] of Object.entries(full)) {
      if (section === 'providers') {
        for (const [key, inner] of Object.entries((value as Record<string, Record<string, unknown>>).p)) if (key !== 'type') defaults.push(['providers', key, inner]);
        continue;
      }
      if (value === null || typeof value !== 'object' || Array.isArray(value)) continue;
      for (const [key, inner] of Object.entries(value)) {
        if (inner !== undefined && (typeof inner !== 'object' || Array.isArray(inner))) defaults.push([section, key, inner]);
      }
    }
    expect(defaults.length).toBeGreaterThan(40);
    const wrong: string[] = [];
    for (const [section, key, value] of defaults) {
      const row = new RegExp(`^\\| \`${key}\` \\| ([^|]*) \\|`, 'm').exec(bySection.get(section) ?? '');
      if (!row) {
        wrong.push(`${section}.${key}: no table row (default ${JSON.stringify(value)})`);
        continue;
      }
      const cell = row[1].trim().replace(/`/g, '');
      const same =
        cell === String(value) ||
        (typeof value === 'number' && parseDuration(cell) === value) ||
        (Array.isArray(value) && plain(cell) === plain(value.join(',')));
      if (!same) wrong.push(`${section}.${key}: the doc says ${cell}, the schema ${JSON.stringify(value)}`);
    }
    expect(wrong).toEqual([]);
  });

  it('lists every key the loader accepts without applying', () => {
    // The loader's own list (src/config/load.ts NOT_APPLIED), read from its source.
    const source = read('src/config/load.ts');
    const list = /const NOT_APPLIED[^=]*=\s*\[([\s\S]*?)\];/.exec(source)?.[1] ?? '';
    const keys = [...list.matchAll(/'([^']+)'/g)].map((m) => m[1]);
    expect(keys.length).toBeGreaterThan(5);
    const section = doc.split('## Accepted but not applied')[1] ?? '';
    expect(keys.filter((key) => !section.includes(`\`${key}\``))).toEqual([]);
  });

  it('shows configs that validate', () => {
    const blocks = [...doc.matchAll(/```yaml\n([\s\S]*?)```/g)].map((m) => m[1]);
    expect(blocks.length).toBeGreaterThanOrEqual(2);
    const complete = blocks.find((b) => b.includes('providers:'));
    const env = { OPENAI_API_KEY: 'x', ANTHROPIC_API_KEY: 'y', MARKETING_KEY: 'z', HAPAX_ADMIN_KEY: 'admin-0123456789abcdef' };
    expect(parseConfig(complete as string, 'docs/configuration.md', env).config.routes?.[0].metrics_labels).toEqual({ department: 'marketing' });
  });
});

describe('docs/configuration.md examples', () => {
  it('every example with providers validates (the per-provider sections included)', () => {
    const doc = read('docs/configuration.md');
    const blocks = [...doc.matchAll(/```yaml\n([\s\S]*?)```/g)].map((m) => m[1]).filter((b) => /^providers:/m.test(b));
    expect(blocks.length).toBeGreaterThanOrEqual(4);
    // Every ${VAR} the examples use, set to something a key check accepts.
    const env = Object.fromEntries([...doc.matchAll(/\$\{([A-Z0-9_]+)\}/g)].map((m) => [m[1], 'example-value-0123456789']));
    for (const block of blocks) expect(() => parseConfig(block, 'docs/configuration.md', env), block).not.toThrow();
  });
});

describe('docs/getting-started.md', () => {
  const doc = read('docs/getting-started.md');
  let gateway: TestGateway | undefined;
  afterAll(async () => gateway?.close());

  it('starts with the two set-up commands of the README', () => {
    expect(doc).toContain('npm ci && npx hapax serve');
    expect(doc).toContain('npm test');
    expect(read('README.md')).toContain('npm ci && npx hapax serve');
  });

  it('tells the failover story that really happens with its config', async () => {
    const yaml = /```yaml\n(# hapax\.yaml[\s\S]*?)```/.exec(doc)?.[1];
    expect(yaml).toBeDefined();
    gateway = await startTestGateway(yaml as string);
    // The health check at start finds the primary down before any request, and says so in the log.
    const started = gateway;
    await expect
      .poll(() => started.logs.find((line) => line.provider === 'primary' && line.healthy === false)?.msg, { timeout: 5000 })
      .toMatch(/^provider primary is unhealthy \(health check: primary connection failed: ECONNREFUSED\); next health check at /);
    expect(doc).toContain('WARN: provider primary is unhealthy (health check: primary connection failed: ECONNREFUSED); next health check at');
    const attempts: string[] = [];
    for (let i = 0; i < 4; i++) {
      const res = await fetch(`${gateway.url}/v1/completions`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ model: 'primary', input: 'hello' }),
      });
      expect(res.status).toBe(200);
      expect(res.headers.get('x-hapax-provider')).toBe('backup');
      attempts.push(res.headers.get('x-hapax-attempts') as string);
    }
    expect(attempts).toEqual(['2', '2', '1', '1']);

    const events: string[] = [];
    let state: any;
    await expect
      .poll(
        async () => {
          state = await (await fetch(`${gateway?.url}/console/api/state`)).json();
          events.splice(0, events.length, ...state.events.map((e: { text: string }) => e.text));
          return events.join('\n');
        },
        { timeout: 5000 },
      )
      .toContain('primary → backup (connect)');
    expect(events).toContain('primary: breaker closed → open');
    expect(gateway.logs.find((line) => line.provider === 'primary' && line.breaker === 'open')?.msg).toMatch(
      /^provider primary: circuit breaker open \(2 consecutive failed requests\); requests skip it until /,
    );
    expect(state.providers.find((p: { name: string }) => p.name === 'primary')).toMatchObject({ healthy: false, breaker: 'open' });
  });
});

describe('docs/api.md and links', () => {
  it('covers every path of the OpenAPI document', () => {
    const api = read('docs/api.md');
    const missing = Object.keys(openapiDocument().paths).filter((path) => !api.includes(path));
    expect(missing).toEqual([]);
  });

  it("has no broken relative links in the docs this project's getting-started path goes through", () => {
    const broken: string[] = [];
    for (const file of ['README.md', 'docs/getting-started.md', 'docs/configuration.md', 'docs/api.md', 'docs/security.md', 'docs/coding-agents.md', 'clients/ts/README.md', 'clients/python/README.md']) {
      for (const [, target] of read(file).matchAll(/\]\(([^)#\s]+)(#[^)]*)?\)/g)) {
        if (/^[a-z]+:/.test(target)) continue;
        if (!existsSync(join(ROOT, dirname(file), target))) broken.push(`${file} → ${target}`);
      }
    }
    expect(broken).toEqual([]);
  });
});
