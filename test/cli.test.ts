/** The real `hapax` command, spawned as a user runs it: bin/hapax.js on Node 24, against dist/. */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import OpenAI from 'openai';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { ensureBuilt, ROOT } from './helpers/serve.ts';
import { PROVIDER_TYPES } from '../src/config/schema.ts';

const NODE = join(ROOT, 'node_modules/.bin/node');
const BIN = join(ROOT, 'bin/hapax.js');
const VERSION = (JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string }).version;

/** The environment of a user who set no Hapax variables and no provider keys. */
function userEnv(extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env };
  for (const name of ['OPENAI_API_KEY', 'ANTHROPIC_API_KEY', 'HAPAX_CONFIG', 'CONFIG_PATH']) delete env[name];
  return { ...env, ...extra };
}

const tempDir = () => mkdtempSync(join(tmpdir(), 'hapax-cli-'));

interface Result {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs a command that ends by itself. */
function run(args: string[], opts: { cwd?: string; env?: NodeJS.ProcessEnv } = {}): Promise<Result> {
  return new Promise((resolve) => {
    execFile(NODE, [BIN, ...args], { cwd: opts.cwd ?? ROOT, env: opts.env ?? userEnv(), timeout: 15_000 }, (error, stdout, stderr) => {
      const code = error ? (typeof error.code === 'number' ? error.code : null) : 0;
      resolve({ code, stdout, stderr });
    });
  });
}

interface Served {
  child: ChildProcess;
  url: string;
  /** The 'hapax listening' log line. */
  listening: Record<string, unknown>;
  stderr: () => string;
  stdout: () => string;
  exited: Promise<number | null>;
}

const running = new Set<ChildProcess>();

async function waitFor(check: () => boolean | Promise<boolean>, timeoutMs: number): Promise<void> {
  const until = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > until) throw new Error('timed out waiting');
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

/** Stops whatever a test left running, by its PID. */
function stopAll(): void {
  for (const child of running) {
    if (child.exitCode === null && child.signalCode === null && child.pid !== undefined) process.kill(child.pid, 'SIGKILL');
  }
  running.clear();
}

function parseLogLine(line: string): Record<string, unknown> | undefined {
  try {
    return JSON.parse(line) as Record<string, unknown>;
  } catch {
    return undefined; // not a JSON log line
  }
}

/**
 * Spawns `hapax serve ...` and resolves once it logs 'hapax listening' (with the URL it listens on).
 * `shebang`: runs bin/hapax.js itself, as npx and npm's bin link do, so its #! line picks node and flags.
 */
function serve(args: string[], opts: { cwd: string; env?: NodeJS.ProcessEnv; shebang?: boolean }): Promise<Served> {
  const env = opts.env ?? userEnv();
  const child = opts.shebang
    ? spawn(BIN, ['serve', ...args], { cwd: opts.cwd, env: { ...env, PATH: `${join(ROOT, 'node_modules/.bin')}:${env.PATH ?? ''}` }, stdio: ['ignore', 'pipe', 'pipe'] })
    : spawn(NODE, [BIN, 'serve', ...args], { cwd: opts.cwd, env, stdio: ['ignore', 'pipe', 'pipe'] });
  running.add(child);
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  let pending = '';
  let stderr = '';
  let stdout = '';
  child.stderr?.on('data', (chunk: Buffer) => (stderr += chunk));
  child.stdout?.on('data', (chunk: Buffer) => (stdout += chunk));
  return new Promise((resolve, reject) => {
    child.stdout?.on('data', (chunk: Buffer) => {
      const lines = (pending + chunk).split('\n');
      pending = lines.pop() ?? '';
      for (const line of lines) {
        const entry = parseLogLine(line);
        if (entry?.msg === 'hapax listening') resolve({ child, url: entry.url as string, listening: entry, stderr: () => stderr, stdout: () => stdout, exited });
      }
    });
    void exited.then((code) => reject(new Error(`hapax serve exited with ${code} before listening:\n${stderr}`)));
  });
}

async function ask(url: string, text: string): Promise<string | null | undefined> {
  const client = new OpenAI({ baseURL: `${url}/v1`, apiKey: 'not-needed', maxRetries: 0 });
  const completion = await client.chat.completions.create({ model: '', messages: [{ role: 'user', content: text }] });
  return completion.choices[0].message.content;
}

beforeAll(ensureBuilt, 120_000);

afterEach(stopAll);
afterAll(stopAll);

describe('hapax --version and --help', () => {
  it('prints the package version', async () => {
    const { code, stdout } = await run(['--version']);
    expect(code).toBe(0);
    expect(stdout.trim()).toBe(VERSION);
  });

  it('lists the commands and their options', async () => {
    const top = await run(['--help']);
    expect(top.code).toBe(0);
    expect(top.stdout).toMatch(/serve \[options\]/);
    expect(top.stdout).toMatch(/validate \[options\] \[file\]/);
    const serveHelp = await run(['serve', '--help']);
    for (const option of ['--config <file>', '--port <port>', '--host <addr>']) expect(serveHelp.stdout).toContain(option);
  });

  it('rejects a bad --port before starting anything', async () => {
    const { code, stderr } = await run(['serve', '--port', 'eighty']);
    expect(code).not.toBe(0);
    expect(stderr).toContain('expected a port number 0-65535');
  });
});

describe('hapax validate', () => {
  it('accepts a good config, says which providers it found and warns about keys it will not act on', async () => {
    const dir = tempDir();
    writeFileSync(
      join(dir, 'good.yaml'),
      'providers:\n  openai: {type: openai, model: gpt-4o-mini, api_key: "${OPENAI_API_KEY}"}\n  mock: {type: mock}\nqueue: {enabled: true}\n',
    );
    const { code, stdout, stderr } = await run(['validate', '--config', 'good.yaml'], { cwd: dir, env: userEnv({ OPENAI_API_KEY: 'sk-live-validate-ok' }) });
    expect(code).toBe(0);
    expect(stdout).toBe('good.yaml: valid (2 providers: openai, mock)\n');
    expect(stderr).toBe('warning: queue.enabled: accepted but not applied by this version of Hapax\n');
    expect(stdout + stderr).not.toContain('sk-live');
  });

  it('rejects a bad config with exit 2, listing every problem by key path and no secret', async () => {
    const dir = tempDir();
    const file = join(dir, 'bad.yaml');
    writeFileSync(
      file,
      `
providers:
  openai: {type: opnai, model: gpt-4o, api_key: sk-live-in-the-file}
  backup: {type: openai, model: gpt-4o-mini, api_key: "\${OPENAI_API_KEY}", timeout: "\${OPENAI_API_KEY}"}
circuit_breaker:
  failure_treshold: 3
provider_preference: [openai, bakup]
`,
    );
    const { code, stdout, stderr } = await run(['validate', file], { env: userEnv({ OPENAI_API_KEY: 'sk-live-from-env' }) });
    expect(code).toBe(2);
    expect(stdout).toBe('');
    expect(stderr.split('\n')).toEqual([
      `invalid config ${file}:`,
      `  providers.openai.type: expected one of ${PROVIDER_TYPES.join(', ')}`,
      '  providers.backup.timeout: expected a duration such as 100ms, 30s or 1m',
      '  circuit_breaker.failure_treshold: unknown key (did you mean failure_threshold?)',
      '  provider_preference[1]: unknown provider "bakup" (did you mean backup?)',
      '',
    ]);
    expect(stderr).not.toContain('sk-live');
  });

  it('names a file it cannot read, with its full path, why, and what to do', async () => {
    const dir = tempDir();
    const { code, stderr } = await run(['validate', '--config', 'no-such-file.yaml'], { cwd: dir });
    expect(code).toBe(2);
    expect(stderr).toBe(
      `cannot read config file no-such-file.yaml (${join(dir, 'no-such-file.yaml')}): no such file [ENOENT]; ` +
        'pass --config <file> or set HAPAX_CONFIG, or omit both to use ./hapax.yaml or the built-in default\n',
    );
    const directory = await run(['validate', dir]);
    expect(directory.code).toBe(2);
    expect(directory.stderr).toBe(`cannot read config file ${dir}: it is a directory, not a file [EISDIR]\n`);
  });

  it('names the unset ${VAR} behind every problem it causes, once per key path', async () => {
    const dir = tempDir();
    writeFileSync(
      join(dir, 'hapax.yaml'),
      `providers:
  vllm: {type: openai_compatible, model: qwen, base_url: "\${VLLM_URL}"}
auth:
  enabled: true
  keys: [{name: app, key: "\${APP_KEY}"}]
admin: {key: "\${ADMIN_KEY}"}
`,
    );
    const { code, stderr } = await run(['validate'], { cwd: dir });
    expect(code).toBe(2);
    expect(stderr.split('\n')).toEqual([
      'invalid config hapax.yaml:',
      '  providers.vllm.base_url: ${VLLM_URL} is not set, so the value is empty (expected an http:// or https:// URL); set it in the environment or give a default: ${VLLM_URL:-...}',
      '  auth.keys[0].key: ${APP_KEY} is not set, so the value is empty (too small: expected string to have >=1 characters); set it in the environment or give a default: ${APP_KEY:-...}',
      '  admin.key: ${ADMIN_KEY} is not set, so the value is empty (use at least 16 characters); set it in the environment or give a default: ${ADMIN_KEY:-...}',
      '',
    ]);
  });

  it('shows a YAML syntax error with its line, a caret under the column, and no secret', async () => {
    const dir = tempDir();
    writeFileSync(join(dir, 'hapax.yaml'), 'providers:\n  openai:\n    type: openai\n    api_key: sk-live-secret\n   model: gpt-4o\n');
    const { code, stderr } = await run(['validate'], { cwd: dir });
    expect(code).toBe(2);
    expect(stderr.split('\n')).toEqual([
      'invalid config hapax.yaml:',
      '  YAML All mapping items must start at the same column (line 5, column 1)',
      '   4 |     api_key: <hidden>',
      '   5 |    model: gpt-4o',
      '     | ^',
      '',
    ]);
    const unclosed = join(dir, 'unclosed.yaml');
    writeFileSync(unclosed, 'server: {port: 8080\nproviders:\n  mock: {type: mock}\n');
    const second = await run(['validate', unclosed]);
    expect(second.code).toBe(2);
    expect(second.stderr).toBe(
      `invalid config ${unclosed}:\n  YAML Flow map in block collection must be sufficiently indented and end with a } (line 2, column 1)\n` +
        '   1 | server: {port: 8080\n   2 | providers:\n     | ^\n',
    );
  });

  it('checks ./hapax.yaml when no file is named, else the built-in default', async () => {
    const dir = tempDir();
    expect((await run(['validate'], { cwd: dir })).stdout).toBe('(built-in default): valid (1 provider: mock)\n');
    writeFileSync(join(dir, 'hapax.yaml'), 'providers:\n  local: {type: mock}\n');
    expect((await run(['validate'], { cwd: dir })).stdout).toBe('hapax.yaml: valid (1 provider: local)\n');
  });

  it('explains a credentials_file it cannot use by its key path, and a Bedrock profile the AWS files lack', async () => {
    const dir = tempDir();
    writeFileSync(join(dir, 'key.json'), '{"type": "service_account", "private_key": "-----BEGIN PRIVATE KEY-----\\nMIIEvQ');
    writeFileSync(join(dir, 'aws-config'), '[profile team]\nregion = eu-west-1\n');
    writeFileSync(
      join(dir, 'hapax.yaml'),
      `providers:
  vx: {type: vertex, project: p, location: us-east5, model: gemini-2.5-flash, credentials_file: ./key.json}
  gone: {type: vertex, project: p, location: us-east5, model: gemini-2.5-flash, credentials_file: /nonexistent/key.json}
  bd: {type: bedrock, region: us-east-1, model: amazon.nova-pro-v1:0, profile: teem}
`,
    );
    const env = userEnv({ AWS_CONFIG_FILE: join(dir, 'aws-config'), AWS_SHARED_CREDENTIALS_FILE: join(dir, 'none') });
    const { code, stdout, stderr } = await run(['validate'], { cwd: dir, env });
    expect(code).toBe(2);
    expect(stdout).toBe('');
    // Price warnings (a model without a price) may come first; the problems are what this test is about.
    expect(stderr.split('\n').filter((line) => !line.startsWith('warning: '))).toEqual([
      'invalid config hapax.yaml:',
      `  providers.vx.credentials_file: ./key.json (${join(dir, 'key.json')}) is not JSON: expected a service-account key or a workload identity federation config from the Cloud console`,
      '  providers.gone.credentials_file: cannot read /nonexistent/key.json: no such file [ENOENT]',
      `  providers.bd.profile: no profile "teem" in ${join(dir, 'aws-config')} or ${join(dir, 'none')}`,
      '',
    ]);
    expect(stderr).not.toContain('PRIVATE KEY');
  });
});

describe('hapax validate --resolve', () => {
  const config = `
providers:
  anthropic: {type: anthropic, model: claude-sonnet-4-5, api_key: sk-ant-in-the-file, models: ["claude-*"]}
  openai:
    type: openai
    model: gpt-4o
    api_key: sk-live-in-the-file
    models:
      claude-opus-5-5: gpt-5
      fast: {model: gpt-4o-mini, api_key: sk-live-model-key}
      "gpt-*": {}
provider_preference: [openai, anthropic]
`;
  const resolve = async (name: string) => {
    const dir = tempDir();
    writeFileSync(join(dir, 'hapax.yaml'), config);
    return run(['validate', '--resolve', name], { cwd: dir });
  };

  it('prints the candidates for a name in failover order, with how each matched, and no secret', async () => {
    const alias = await resolve('claude-opus-5-5');
    expect(alias.code).toBe(0);
    expect(alias.stdout.split('\n')).toEqual([
      'hapax.yaml: valid (2 providers: anthropic, openai)',
      'model "claude-opus-5-5" resolves to:',
      '  1. openai     gpt-5  (alias)',
      '  2. anthropic  claude-opus-5-5  (pattern claude-*)',
      '',
    ]);
    const pattern = await resolve('gpt-5.5');
    expect(pattern.stdout).toContain('  1. openai     gpt-5.5  (pattern gpt-*)\n  2. anthropic  claude-sonnet-4-5  (its default model)\n');
    const exact = await resolve('anthropic');
    expect(exact.stdout).toContain('  1. anthropic  claude-sonnet-4-5  (provider name, its default model)\n  2. openai     gpt-4o  (its default model)\n');
    expect((await resolve('openai/fast')).stdout).toContain('  1. openai     gpt-4o-mini  (alias)\n');
    expect((await resolve('')).stdout).toContain('a request without a model resolves to:\n  1. openai     gpt-4o  (its default model)\n');
    for (const result of [alias, pattern, exact]) expect(result.stdout + result.stderr).not.toContain('sk-');
  });

  it('prints the 400 a client would get when nothing serves the name, and exits 1', async () => {
    const { code, stdout, stderr } = await resolve('llama-4');
    expect(code).toBe(1);
    expect(stdout).toBe('hapax.yaml: valid (2 providers: anthropic, openai)\n');
    expect(stderr.split('\n')).toEqual([
      '400: model "llama-4" is not served by any configured provider',
      '  listed models: anthropic/claude-sonnet-4-5, openai/gpt-4o, openai/claude-opus-5-5, openai/fast',
      '  patterns: anthropic/claude-*, openai/gpt-*',
      '',
    ]);
  });
});

describe('hapax serve', () => {
  it('serves the built-in mock with no config at all, answers the OpenAI SDK, and exits 0 on SIGTERM', async () => {
    const served = await serve(['--port', '0', '--host', '127.0.0.1'], { cwd: tempDir() });
    expect(served.url).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    expect(served.listening).toMatchObject({ config: '(built-in default)', providers: ['mock'] });
    expect(await ask(served.url, 'ping')).toBe('Hello from the Hapax mock provider. You said: ping');
    served.child.kill('SIGTERM');
    expect(await served.exited).toBe(0);
  });

  it('runs through its own #! line on Node 24 with the memory settings for a gateway', async () => {
    const served = await serve(['--port', '0', '--host', '127.0.0.1'], { cwd: tempDir(), shebang: true });
    const pid = served.child.pid as number;
    // env -S execs node in place: the spawned process is the gateway itself.
    const argv = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0');
    expect(argv).toContain('--max-semi-space-size=8');
    expect(readFileSync(`/proc/${pid}/environ`, 'utf8').split('\0')).toContain('MALLOC_ARENA_MAX=2');
    expect(await ask(served.url, 'via the shebang')).toBe('Hello from the Hapax mock provider. You said: via the shebang');
    served.child.kill('SIGTERM');
    expect(await served.exited).toBe(0);
  });

  it('reads ./hapax.yaml from the working directory', async () => {
    const dir = tempDir();
    writeFileSync(join(dir, 'hapax.yaml'), 'server: {host: 127.0.0.1, port: 0}\nproviders:\n  here: {type: mock, reply: from hapax.yaml}\n');
    const served = await serve([], { cwd: dir });
    expect(served.listening).toMatchObject({ config: 'hapax.yaml', providers: ['here'] });
    expect(await ask(served.url, 'hi')).toBe('from hapax.yaml');
  });

  it('prefers $HAPAX_CONFIG to ./hapax.yaml, and --config to both', async () => {
    const dir = tempDir();
    writeFileSync(join(dir, 'hapax.yaml'), 'providers:\n  here: {type: mock, reply: from hapax.yaml}\n');
    const fromEnv = join(dir, 'env.yaml');
    writeFileSync(fromEnv, 'providers:\n  env: {type: mock, reply: from HAPAX_CONFIG}\n');
    writeFileSync(join(dir, 'flag.yaml'), 'providers:\n  flag: {type: mock, reply: from --config}\n');
    const env = userEnv({ HAPAX_CONFIG: fromEnv });

    const byEnv = await serve(['--port', '0', '--host', '127.0.0.1'], { cwd: dir, env });
    expect(byEnv.listening).toMatchObject({ config: fromEnv, providers: ['env'] });
    expect(await ask(byEnv.url, 'hi')).toBe('from HAPAX_CONFIG');

    const byFlag = await serve(['--config', 'flag.yaml', '--port', '0', '--host', '127.0.0.1'], { cwd: dir, env });
    expect(await ask(byFlag.url, 'hi')).toBe('from --config');
  });

  it('refuses to start on an invalid config, with exit 2 and the problems', async () => {
    const dir = tempDir();
    writeFileSync(join(dir, 'hapax.yaml'), 'providers:\n  vllm: {type: openai_compatible, model: qwen}\n');
    const served = serve(['--port', '0'], { cwd: dir });
    await expect(served).rejects.toThrow(/exited with 2 before listening:\ninvalid config hapax\.yaml:\n {2}providers\.vllm\.base_url: required for type openai_compatible/);
  });

  it('exits 1 with one clear line when the port is taken', async () => {
    const first = await serve(['--port', '0', '--host', '127.0.0.1'], { cwd: tempDir() });
    const port = new URL(first.url).port;
    const second = serve(['--port', port, '--host', '127.0.0.1'], { cwd: tempDir() });
    await expect(second).rejects.toThrow(/exited with 1 before listening:\nhapax: listen EADDRINUSE/);
  });
});

describe('hapax serve: what a person and a machine see at start', () => {
  const twoProviders = 'health_check: {enabled: false}\nproviders:\n  openai: {type: openai, model: gpt-4o, api_key: sk-test, base_url: "http://127.0.0.1:9/v1"}\n  mock: {type: mock}\n';

  it('piped: JSON lines only, no banner, and a warning when the mock is in the failover chain', async () => {
    const dir = tempDir();
    writeFileSync(join(dir, 'hapax.yaml'), twoProviders);
    const served = await serve(['--port', '0', '--host', '127.0.0.1'], { cwd: dir });
    served.child.kill('SIGTERM');
    expect(await served.exited).toBe(0);
    const out = served.stdout();
    const lines = out.trim().split('\n');
    for (const line of lines) expect(parseLogLine(line), line).toBeDefined();
    expect(out).not.toContain('is listening on');
    const warning = lines.map(parseLogLine).find((entry) => entry?.level === 40);
    expect(warning).toMatchObject({
      providers: ['openai', 'mock'],
      msg: expect.stringContaining('the mock provider mock is in the failover chain (openai → mock): when openai cannot answer, clients get its canned echo'),
    });
  });

  it('with server.workers the primary gives the same warning, once', async () => {
    const dir = tempDir();
    writeFileSync(join(dir, 'hapax.yaml'), `server: {workers: 2}\n${twoProviders}`);
    const served = await serve(['--port', '0', '--host', '127.0.0.1'], { cwd: dir });
    await waitFor(() => served.stdout().includes('failover chain'), 5_000);
    const warnings = served.stdout().trim().split('\n').map(parseLogLine).filter((entry) => String(entry?.msg).includes('failover chain'));
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toMatchObject({ level: 40, role: 'primary', providers: ['openai', 'mock'] });
    served.child.kill('SIGTERM');
    expect(await served.exited).toBe(0);
  });

  it('on a terminal: a short banner (URL, console, config, providers in order, a curl to try) and readable logs', async () => {
    const dir = tempDir();
    writeFileSync(join(dir, 'hapax.yaml'), twoProviders);
    // script(1) gives the gateway a pseudo-terminal as a user's shell would.
    const command = `exec ${NODE} ${BIN} serve --port 0 --host 127.0.0.1`;
    const child = spawn('script', ['-qfec', command, '/dev/null'], { cwd: dir, env: userEnv(), stdio: ['pipe', 'pipe', 'pipe'] });
    running.add(child);
    let out = '';
    child.stdout.on('data', (chunk: Buffer) => (out += chunk));
    const exited = new Promise((resolve) => child.once('exit', resolve));
    await waitFor(() => out.includes('stop       Ctrl-C'), 15_000);
    const text = out.replace(/\x1b\[[0-9;]*m/g, '').replace(/\r/g, '');
    const url = /is listening on (http:\/\/127\.0\.0\.1:\d+)/.exec(text)?.[1] as string;
    expect(text).toContain(
      [
        `Hapax ${VERSION} is listening on ${url}`,
        `  console    ${url}/console`,
        '  config     hapax.yaml',
        '  providers  openai (openai) → mock (mock)  (failover order)',
        `  try        curl ${url}/v1/chat/completions -H 'content-type: application/json' -d '{"model":"","messages":[{"role":"user","content":"Hello!"}]}'`,
        '  stop       Ctrl-C (finishes requests in flight first)',
      ].join('\n'),
    );
    expect(text).toMatch(/\[\d\d:\d\d:\d\d\.\d{3}\] WARN: the mock provider mock is in the failover chain/);
    expect(text).not.toMatch(/^\{"level"/m);
    // The curl it suggests works.
    const answer = await fetch(`${url}/v1/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"model":"","messages":[{"role":"user","content":"Hello!"}]}' });
    expect(answer.status).toBe(200);
    process.kill(child.pid as number, 'SIGTERM');
    await exited;
  });

  for (const format of ['json', 'text']) {
    it(`stops on SIGTERM when the reader of its stdout has gone (hapax serve | head), with ${format} logs`, async () => {
      const dir = tempDir();
      writeFileSync(join(dir, 'hapax.yaml'), `logging: {format: ${format}}\nhealth_check: {enabled: false}\nproviders:\n  mock: {type: mock}\n`);
      const child = spawn(NODE, [BIN, 'serve', '--port', '0', '--host', '127.0.0.1'], { cwd: dir, env: userEnv(), stdio: ['ignore', 'pipe', 'pipe'] });
      running.add(child);
      const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
      // Like `head -1`: the reader takes what says where the gateway listens, and goes away; later writes get EPIPE.
      let first = '';
      await new Promise<void>((resolve) => {
        const onData = (chunk: Buffer) => {
          first += chunk;
          if (!/http:\/\/127\.0\.0\.1:\d+/.test(first)) return;
          child.stdout.off('data', onData);
          resolve();
        };
        child.stdout.on('data', onData);
      });
      child.stdout.destroy();
      const url = (/http:\/\/127\.0\.0\.1:\d+/.exec(first) as RegExpExecArray)[0];
      await waitFor(async () => (await fetch(`${url}/health`).catch(() => undefined))?.status === 200, 10_000);
      for (let i = 0; i < 40; i++) {
        const response = await fetch(`${url}/v1/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"input":"hi"}' });
        expect(response.status).toBe(200);
      }
      const started = Date.now();
      child.kill('SIGTERM');
      expect(await exited).toBe(0);
      expect(Date.now() - started).toBeLessThan(5_000);
    });
  }
});

describe('docs/http3.md, as written', () => {
  it('its gtlsclient recipe gets the answers and exits by itself, for a GET and a POST', async () => {
    const doc = readFileSync(join(ROOT, 'docs/http3.md'), 'utf8');
    const block = /## Try it in one step\n\n```bash\n([\s\S]*?)```/.exec(doc)?.[1] ?? '';
    // The recipe's own lines after the serve command, as a shell runs them (continuations joined).
    const recipe = block
      .replace(/\\\n\s*/g, ' ')
      .split('\n')
      .filter((line) => /^(mkdir|gtlsclient|cat|echo) /.test(line))
      .map((line) => line.replace(/#.*$/, '').trim());
    expect(recipe.filter((line) => line.startsWith('gtlsclient'))).toHaveLength(2);
    const dir = tempDir();
    const port = 20_000 + Math.floor(Math.random() * 20_000);
    await serve(['--self-signed', '--http3', '--port', String(port), '--host', '127.0.0.1'], { cwd: dir });
    const script = recipe.map((line) => line.replaceAll('8080', String(port))).join('\n');
    const result = await new Promise<Result>((resolve) =>
      execFile('sh', ['-ec', script], { cwd: dir, timeout: 20_000 }, (error, stdout, stderr) => resolve({ code: error ? (typeof error.code === 'number' ? error.code : null) : 0, stdout, stderr })),
    );
    expect(result.code, result.stderr).toBe(0);
    expect(JSON.parse(readFileSync(join(dir, 'h3/health'), 'utf8'))).toMatchObject({ status: { global: true } });
    expect(JSON.parse(readFileSync(join(dir, 'h3/completions'), 'utf8'))).toMatchObject({ provider: 'mock', completion: 'Hello from the Hapax mock provider. You said: hello over HTTP/3' });
  }, 40_000);
});

describe('hapax failures: one line, a documented exit code, a stack only with --debug', () => {
  const keysDir = () => {
    const dir = tempDir();
    writeFileSync(join(dir, 'hapax.yaml'), 'providers:\n  mock: {type: mock}\nauth: {enabled: true}\n');
    return dir;
  };
  const oneLine = (result: Result) => {
    expect(result.stderr.trim().split('\n')).toHaveLength(1);
    expect(result.stderr).not.toMatch(/\n\s+at |node:internal|file:\/\//);
  };

  it('explains each refusal of keys create in one line, with the flag and what to do', async () => {
    const dir = keysDir();
    expect((await run(['keys', 'create', '--name', 'team-a'], { cwd: dir })).code).toBe(0);
    const taken = await run(['keys', 'create', '--name', 'team-a'], { cwd: dir });
    expect(taken).toMatchObject({ code: 1, stdout: '', stderr: 'hapax: a key named team-a already exists; choose another --name, or revoke it first: hapax keys revoke team-a\n' });
    const badName = await run(['keys', 'create', '--name', 'team a/b'], { cwd: dir });
    expect(badName).toMatchObject({ code: 64, stderr: 'hapax: --name: use 1-64 letters, digits, _ . -\n' });
    const badExpiry = await run(['keys', 'create', '--name', 'team-b', '--expires', 'tomorrow'], { cwd: dir });
    expect(badExpiry).toMatchObject({ code: 64, stderr: 'hapax: --expires: expected an ISO date or a duration like 90d, got tomorrow\n' });
    const badRpm = await run(['keys', 'create', '--name', 'team-b', '--rpm', 'abc'], { cwd: dir });
    expect(badRpm.code).toBe(64);
    expect(badRpm.stderr).toContain(`option '--rpm <n>' argument 'abc' is invalid. expected a positive whole number, got "abc"`);
    const unknown = await run(['keys', 'revoke', 'nobody'], { cwd: dir });
    expect(unknown.code).toBe(1);
    expect(unknown.stderr).toBe(`hapax: no active key named nobody in the key file .hapax/keys.json (${join(dir, '.hapax/keys.json')}) (hapax keys list shows the names)\n`);
    for (const result of [taken, badName, badExpiry, unknown]) oneLine(result);
  });

  it('says Redis is unreachable without the URL, exits 1, and shows the stack with --debug', async () => {
    const dir = tempDir();
    writeFileSync(join(dir, 'hapax.yaml'), 'providers:\n  mock: {type: mock}\nstate: {redis_url: "redis://:hunter2-password@127.0.0.1:1"}\n');
    const down = await run(['keys', 'list'], { cwd: dir });
    expect(down).toMatchObject({ code: 1, stdout: '' });
    expect(down.stderr).toBe('hapax: cannot reach Redis at state.redis_url of hapax.yaml; start Redis or fix the URL, or pass --file <path> to manage a key file instead\n');
    const debug = await run(['keys', 'list', '--debug'], { cwd: dir });
    expect(debug.code).toBe(1);
    expect(debug.stderr).toMatch(/^hapax: cannot reach Redis.*\nCliError: cannot reach Redis.*\n\s+at /);
    for (const result of [down, debug]) expect(result.stderr).not.toContain('hunter2');
  });

  it('an invalid config is exit 2 with the problems and no stack, for keys as for serve', async () => {
    const dir = tempDir();
    writeFileSync(join(dir, 'hapax.yaml'), 'providers:\n  mock: {type: mock}\nauth: {key_file: "${KEYS_DIR}/keys.json", enabled: yes-please}\n');
    const result = await run(['keys', 'list'], { cwd: dir });
    expect(result.code).toBe(2);
    expect(result.stderr).toBe('invalid config hapax.yaml:\n  auth.enabled: expected boolean, received string\n');
  });

  it('an unknown command or option is exit 64 with the usage hint', async () => {
    const result = await run(['serve', '--prot', '8080']);
    expect(result.code).toBe(64);
    expect(result.stderr).toContain("error: unknown option '--prot'");
    expect((await run(['frobnicate'])).code).toBe(64);
  });
});

describe('hapax keys (managed keys in the key file)', () => {
  it('needs only auth and state of the config: an unset variable elsewhere does not block it, one in auth.key_file is named', async () => {
    const dir = tempDir();
    writeFileSync(
      join(dir, 'hapax.yaml'),
      'providers:\n  marketing: {type: openai, model: gpt-4o, base_url: "${MARKETING_URL}", api_key: "${MARKETING_KEY}"}\nadmin: {key: "${ADMIN_KEY}"}\nauth: {enabled: true}\n',
    );
    expect((await run(['validate'], { cwd: dir })).code).toBe(2);
    const created = await run(['keys', 'create', '--name', 'marketing'], { cwd: dir });
    expect(created.code).toBe(0);
    expect((await run(['keys', 'revoke', 'marketing'], { cwd: dir })).stdout).toBe('revoked marketing\n');

    writeFileSync(join(dir, 'hapax.yaml'), 'providers:\n  mock: {type: mock}\nauth: {key_file: "${KEYS_FILE}"}\n');
    const blocked = await run(['keys', 'list'], { cwd: dir });
    expect(blocked.code).toBe(2);
    expect(blocked.stderr).toBe(
      'invalid config hapax.yaml:\n  auth.key_file: ${KEYS_FILE} is not set, so the value is empty (expected a file path); set it in the environment or give a default: ${KEYS_FILE:-...}\n',
    );
  });

  it('create says where the key went and warns when the gateway does not check keys; the API field names work as flags', async () => {
    const dir = tempDir();
    writeFileSync(join(dir, 'hapax.yaml'), 'providers:\n  mock: {type: mock}\n');
    const created = await run(['keys', 'create', '--name', 'ops', '--requests-per-minute', '30', '--tokens-per-minute', '5000'], { cwd: dir });
    expect(created.code).toBe(0);
    expect(created.stderr.split('\n')).toEqual([
      `Created key "ops" in the key file .hapax/keys.json (${join(dir, '.hapax/keys.json')}).`,
      'warning: auth.enabled is not true in hapax.yaml, so the gateway takes requests without any key; set auth.enabled: true for keys to be required',
      'It is shown once; store it now:',
      '',
    ]);
    const listed = JSON.parse((await run(['keys', 'list', '--json'], { cwd: dir })).stdout) as Array<{ rate_limit?: unknown }>;
    expect(listed[0].rate_limit).toEqual({ requests_per_minute: 30, tokens_per_minute: 5000 });
  });

  it('a created key works at once on a running gateway, with no wait for its poll', async () => {
    const dir = tempDir();
    writeFileSync(join(dir, 'hapax.yaml'), 'health_check: {enabled: false}\nproviders:\n  mock: {type: mock}\nauth: {enabled: true}\n');
    const gateway = await serve(['--port', '0', '--host', '127.0.0.1'], { cwd: dir });
    for (const name of ['first', 'second', 'third']) {
      const key = (await run(['keys', 'create', '--name', name], { cwd: dir })).stdout.trim();
      const response = await fetch(`${gateway.url}/v1/completions`, { method: 'POST', headers: { 'content-type': 'application/json', 'x-api-key': key }, body: '{"input":"hi"}' });
      expect(response.status).toBe(200);
    }
    const wrong = await fetch(`${gateway.url}/v1/completions`, { method: 'POST', headers: { 'content-type': 'application/json', 'x-api-key': 'hpx_not-a-key' }, body: '{"input":"hi"}' });
    expect(wrong.status).toBe(401);
  });

  it('creates a key shown once, lists it without the key, and revokes it; a running gateway follows within a second', async () => {
    const dir = tempDir();
    const keyFile = join(dir, 'keys.json');
    writeFileSync(join(dir, 'hapax.yaml'), `server: {host: 127.0.0.1, port: 0}\nhealth_check: {enabled: false}\nproviders:\n  mock: {type: mock}\nauth: {enabled: true, key_file: ${keyFile}}\n`);
    const gateway = await serve(['--port', '0', '--host', '127.0.0.1'], { cwd: dir });

    // The same rules as the admin API: a name it would refuse, or an expiry that is not one, is refused here too.
    const badName = await run(['keys', 'create', '--name', 'team a/b'], { cwd: dir });
    expect(badName.code).not.toBe(0);
    expect(badName.stderr).toContain('use 1-64 letters, digits, _ . -');
    const badExpiry = await run(['keys', 'create', '--name', 'team-a', '--expires', 'someday'], { cwd: dir });
    expect(badExpiry.code).not.toBe(0);
    expect(badExpiry.stderr).toContain('expires');

    const created = await run(['keys', 'create', '--name', 'marketing', '--rpm', '60', '--tpm', '100000', '--expires', '90d'], { cwd: dir });
    expect(created.code).toBe(0);
    const key = created.stdout.trim();
    expect(key).toMatch(/^hpx_[A-Za-z0-9_-]{20,}$/);
    expect(readFileSync(keyFile, 'utf8')).not.toContain(key);

    const listed = await run(['keys', 'list', '--json'], { cwd: dir });
    expect(listed.stdout).not.toContain(key);
    expect(JSON.parse(listed.stdout)).toEqual([
      expect.objectContaining({ name: 'marketing', revoked: null, rate_limit: { requests_per_minute: 60, tokens_per_minute: 100000 } }),
    ]);

    const call = (apiKey: string) =>
      fetch(`${gateway.url}/v1/completions`, { method: 'POST', headers: { 'content-type': 'application/json', 'x-api-key': apiKey }, body: '{"input":"hi"}' });
    await new Promise((r) => setTimeout(r, 600));
    expect((await call(key)).status).toBe(200);

    expect((await run(['keys', 'revoke', 'marketing'], { cwd: dir })).code).toBe(0);
    await new Promise((r) => setTimeout(r, 1000));
    expect((await call(key)).status).toBe(401);
    expect((await run(['keys', 'revoke', 'marketing'], { cwd: dir })).code).toBe(1);
  });
});
