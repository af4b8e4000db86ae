/**
 * The pricing and usage commands as a user runs them (bin/hapax.js on Node 24, against dist/): `hapax pricing`
 * says what a model costs and which entry priced it, `hapax validate` warns about models without a price and
 * refuses prices it cannot use by key path, `hapax usage` prints a running gateway's report, and
 * `hapax keys update` changes a key's budgets.
 */
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import OpenAI from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startFakeOpenAI } from './fakes/openai.ts';
import type { FakeProvider } from './fakes/common.ts';
import { startTestGateway, type TestGateway } from './helpers/gateway.ts';
import { ensureBuilt, ROOT } from './helpers/serve.ts';
import { PRICE_SHEETS } from '../src/observability/price-table.ts';

const NODE = join(ROOT, 'node_modules/.bin/node');
const BIN = join(ROOT, 'bin/hapax.js');
const ADMIN = 'admin-secret-0123456789';

function run(args: string[], env: NodeJS.ProcessEnv = {}): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const clean = { ...process.env, ...env };
  for (const name of ['HAPAX_CONFIG', 'CONFIG_PATH', 'HAPAX_ADMIN_KEY']) if (!(name in env)) delete clean[name];
  return new Promise((resolve) => {
    execFile(NODE, [BIN, ...args], { cwd: tmpdir(), env: clean, timeout: 15_000 }, (error, stdout, stderr) => {
      resolve({ code: error ? (typeof error.code === 'number' ? error.code : null) : 0, stdout, stderr });
    });
  });
}

const dir = mkdtempSync(join(tmpdir(), 'hapax-pricing-cli-'));
const write = (name: string, yaml: string) => {
  const path = join(dir, name);
  writeFileSync(path, yaml);
  return path;
};
const shippedSonnet = PRICE_SHEETS.flatMap((s) => Object.entries(s.models)).find(([name]) => name === 'claude-sonnet-4-5')?.[1];

beforeAll(() => ensureBuilt(), 180_000);

describe('hapax pricing', () => {
  const config = write(
    'pricing.yaml',
    `
providers:
  anthropic: {type: anthropic, api_key: x, models: [claude-opus-4-5, claude-haiku-4-5]}
  bedrock: {type: bedrock, region: us-east-1, models: [us.anthropic.claude-sonnet-4-5-20250929-v1:0]}
  vertex: {type: vertex, project: p, location: us-east5, models: ["claude-sonnet-4-5@20250929"]}
  local: {type: openai_compatible, base_url: "http://127.0.0.1:9", models: [house-model]}
pricing:
  "claude-opus-*": {input: 4, output: 20}
  "anthropic/claude-haiku-4-5": {input: 0.9, output: 4.5, cached_input: 0.09}
`,
  );

  it('names the entry that priced each model: config pattern, provider/model, or the dated shipped table', async () => {
    const { code, stdout } = await run(['pricing', '-c', config, '--json']);
    expect(code).toBe(0);
    const rows = JSON.parse(stdout) as Array<{ provider: string; model: string; price?: Record<string, number>; priced_by?: Record<string, unknown> }>;
    const of = (provider: string) => rows.find((r) => r.provider === provider);
    expect(of('anthropic')).toMatchObject({ model: 'claude-opus-4-5', price: { input: 4, output: 20 }, priced_by: { origin: 'config', entry: 'claude-opus-*', pattern: true } });
    expect(rows.find((r) => r.model === 'claude-haiku-4-5')).toMatchObject({ priced_by: { origin: 'config', entry: 'anthropic/claude-haiku-4-5', pattern: false } });
    // Cloud ids price as the vendor's model, from the shipped table.
    expect(of('bedrock')).toMatchObject({ price: shippedSonnet, priced_by: { origin: 'shipped', entry: 'claude-sonnet-4-5', vendor: 'Anthropic', as_of: expect.stringMatching(/^\d{4}-\d{2}-\d{2}$/) } });
    expect(of('vertex')).toMatchObject({ price: shippedSonnet, priced_by: { origin: 'shipped', entry: 'claude-sonnet-4-5', matched: 'claude-sonnet-4-5' } });
    expect(of('local')).toMatchObject({ model: 'house-model' });
    expect(of('local')?.price).toBeUndefined();
  });

  it('prints a table for the models asked for, with where a request for each goes', async () => {
    const { code, stdout } = await run(['pricing', '-c', config, 'us.anthropic.claude-sonnet-4-5-20250929-v1:0', 'gpt-4o-mini', 'house-model']);
    expect(code).toBe(0);
    const lines = stdout.split('\n');
    expect(lines[0]).toMatch(/^MODEL\s+PROVIDER\s+INPUT\s+OUTPUT\s+CACHE READ\s+CACHE WRITE\s+REASONING\s+PRICED BY$/);
    const bedrock = lines.find((l) => l.startsWith('us.anthropic.claude-sonnet-4-5-20250929-v1:0'));
    expect(bedrock).toMatch(/bedrock\s+\$3\s+\$15\s+\$0\.3\s+\$3\.75\s+\$15\s+shipped table of \d{4}-\d{2}-\d{2}, entry claude-sonnet-4-5 \(as claude-sonnet-4-5\) \(Anthropic: https:\/\/platform\.claude\.com/);
    // A model no provider of this config serves is still looked up, for one about to be added.
    expect(lines.find((l) => l.startsWith('gpt-4o-mini'))).toMatch(/\(none serves it\)\s+\$0\.15\s+\$0\.6\s+\$0\.075/);
    expect(lines.find((l) => l.startsWith('house-model'))).toContain('NO PRICE: counted in tokens only');
    expect(stdout).toContain('US dollars per million tokens.');
  });

  it('prices dated snapshots as their model unless the snapshot has its own price', async () => {
    const names = ['gpt-4o-2024-08-06', 'gpt-4o-2024-05-13', 'models/gemini-2.5-pro', 'claude-3-5-haiku-latest', 'anthropic.claude-haiku-4-5-20251001-v1:0', 'claude-opus-4-1@20250805'];
    const { code, stdout } = await run(['pricing', ...names, '--json']);
    expect(code).toBe(0);
    const rows = JSON.parse(stdout) as Array<{ model: string; priced_by?: { entry: string; origin: string } }>;
    const entry = (model: string) => rows.find((r) => r.model === model)?.priced_by?.entry;
    expect(entry('gpt-4o-2024-08-06')).toBe('gpt-4o');
    expect(entry('gpt-4o-2024-05-13')).toBe('gpt-4o-2024-05-13');
    expect(entry('models/gemini-2.5-pro')).toBe('gemini-2.5-pro');
    expect(entry('claude-3-5-haiku-latest')).toBe('claude-3-5-haiku');
    expect(entry('anthropic.claude-haiku-4-5-20251001-v1:0')).toBe('claude-haiku-4-5');
    expect(entry('claude-opus-4-1@20250805')).toBe('claude-opus-4-1');
  });
});

describe('hapax validate and prices', () => {
  it('warns about every configured model without a price, and says what it means for dollar budgets', async () => {
    const config = write(
      'unpriced.yaml',
      `
providers:
  local: {type: openai_compatible, base_url: "http://127.0.0.1:9", models: [house-model, gpt-4o]}
budgets: {per_key: [{window: daily, usd: 5}]}
`,
    );
    const { code, stderr } = await run(['validate', config]);
    expect(code).toBe(0);
    expect(stderr).toContain('warning: no price for local/house-model:');
    expect(stderr).not.toContain('local/gpt-4o');
    expect(stderr).toContain('they cost $0 against the dollar budgets this config sets');
    expect(stderr).toContain('hapax_unpriced_requests_total');
  });

  it.each([
    ['a negative price', '{"gpt-4o": {input: -1, output: 2}}', 'pricing.gpt-4o.input: a price cannot be negative'],
    ['a price without units', '{"gpt-4o": 2.5}', 'pricing.gpt-4o: expected {input, output} in US dollars per million tokens'],
    ['a price as text', '{"gpt-4o": {input: "$2.50", output: 10}}', 'pricing.gpt-4o.input: expected US dollars per million tokens'],
    ['an unknown field', '{"gpt-4o": {input: 1, output: 2, per: 1000}}', 'pricing.gpt-4o.per: unknown key'],
    ['a missing output price', '{"gpt-4o": {input: 1}}', 'pricing.gpt-4o.output: required'],
    ['an unsupported wildcard', '{"claude-[0-9]*": {input: 1, output: 2}}', 'only * and ? are wildcards'],
  ])('refuses %s with its key path', async (_what, pricing, message) => {
    const config = write('bad-price.yaml', `providers:\n  openai: {type: openai, api_key: x, models: [gpt-4o]}\npricing: ${pricing}\n`);
    const { code, stderr } = await run(['validate', config]);
    expect(code).toBe(2);
    expect(stderr).toContain(message);
  });
});

describe('hapax usage and hapax keys update', () => {
  let upstream: FakeProvider;
  let gateway: TestGateway;
  const KEY = 'cli-usage-key-0123456789';

  beforeAll(async () => {
    upstream = await startFakeOpenAI({ name: 'openai', reply: () => 'an answer to report' });
    gateway = await startTestGateway(`
providers:
  openai: {type: openai, base_url: "${upstream.url}", api_key: sk-test, models: [gpt-4o-mini]}
routes:
  - {path: /eng/v1/chat/completions, handler: chat, metrics_labels: {department: engineering}}
auth: {enabled: true, keys: [{name: eng, key: ${KEY}}]}
admin: {key: ${ADMIN}}
`);
  });
  afterAll(async () => {
    await gateway?.close();
    await upstream?.close();
  });

  it('prints the running gateway\'s report as a table and as CSV, and refuses an unknown dimension', async () => {
    const client = new OpenAI({ baseURL: `${gateway.url}/eng/v1`, apiKey: KEY, maxRetries: 0 });
    const answer = await client.chat.completions.create({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'report me' }] });
    const table = await run(['usage', '--url', gateway.url, '--group-by', 'key,label,model'], { HAPAX_ADMIN_KEY: ADMIN });
    expect(table.code).toBe(0);
    expect(table.stderr).toContain('Usage of this gateway instance, all days kept (UTC)');
    const [header, row] = table.stdout.trimEnd().split('\n');
    expect(header).toMatch(/^KEY\s+LABEL\s+MODEL\s+REQUESTS\s+INPUT_TOKENS\s+OUTPUT_TOKENS/);
    expect(row).toMatch(new RegExp(`^eng\\s+department=engineering\\s+gpt-4o-mini\\s+1\\s+${answer.usage?.prompt_tokens}\\s+${answer.usage?.completion_tokens}\\s`));

    const csv = await run(['usage', '--url', gateway.url, '--admin-key', ADMIN, '--group-by', 'day,key', '--format', 'csv']);
    expect(csv.code).toBe(0);
    expect(csv.stdout.split('\r\n')[1]).toMatch(new RegExp(`^\\d{4}-\\d{2}-\\d{2},eng,1,${answer.usage?.prompt_tokens},`));

    const bad = await run(['usage', '--url', gateway.url, '--admin-key', ADMIN, '--group-by', 'team']);
    expect(bad.code).toBe(64);
    expect(bad.stderr).toContain('group_by: unknown dimension "team"');
    const unauthorized = await run(['usage', '--url', gateway.url, '--admin-key', 'not-the-admin-key-000']);
    expect(unauthorized.code).toBe(1);
    expect(unauthorized.stderr).toContain('401');
  });

  it('updates a key\'s budgets in the key file, keeping its secret', async () => {
    const file = join(dir, 'keys.json');
    const created = await run(['keys', 'create', '--name', 'intern', '--budget', '5/daily', '--file', file]);
    expect(created.code).toBe(0);
    const before = JSON.parse(readFileSync(file, 'utf8')) as { keys: Array<{ sha256: string }> };
    const updated = await run(['keys', 'update', 'intern', '--budget', '20/monthly', '--budget', '1000000tokens/daily', '--tpm', '5000', '--file', file, '--json']);
    expect(updated.code).toBe(0);
    expect(JSON.parse(updated.stdout)).toMatchObject({ name: 'intern', budgets: [{ window: 'monthly', usd: 20 }, { window: 'daily', tokens: 1000000 }], rate_limit: { tokens_per_minute: 5000 } });
    const after = JSON.parse(readFileSync(file, 'utf8')) as { keys: Array<{ sha256: string; budgets: unknown[] }> };
    expect(after.keys[0].sha256).toBe(before.keys[0].sha256);

    const removed = await run(['keys', 'update', 'intern', '--no-budgets', '--file', file]);
    expect(removed.stdout).toContain('updated intern: budgets none of its own');
    const negative = await run(['keys', 'update', 'intern', '--budget', '-5/daily', '--file', file]);
    expect(negative.code).toBe(64);
    const nothing = await run(['keys', 'update', 'intern', '--file', file]);
    expect(nothing.code).toBe(64);
    expect(nothing.stderr).toContain('nothing to change');
    const missing = await run(['keys', 'update', 'nobody', '--budget', '1/daily', '--file', file]);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toContain('no active key named nobody');
  });
});
