/**
 * Spawns the real `hapax serve` (bin/hapax.js on Node 24, against dist/) and collects its JSON log
 * lines. For tests of process behaviour: signals, exit codes, worker processes.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readdirSync, statSync } from 'node:fs';
import http from 'node:http';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const NODE = join(ROOT, 'node_modules/.bin/node');
const BIN = join(ROOT, 'bin/hapax.js');

/** dist/ is what bin/hapax.js runs: rebuild it when any source file is newer. */
export function ensureBuilt(): void {
  const built = join(ROOT, 'dist/cli.js');
  const builtAt = existsSync(built) ? statSync(built).mtimeMs : 0;
  const sources = readdirSync(join(ROOT, 'src'), { recursive: true, encoding: 'utf8' }).filter((f) => f.endsWith('.ts'));
  if (sources.every((f) => statSync(join(ROOT, 'src', f)).mtimeMs <= builtAt)) return;
  try {
    execFileSync('npm', ['run', 'build'], { cwd: ROOT, stdio: 'pipe' });
  } catch (error) {
    // tsc still emits on type errors elsewhere in the tree; only a missing dist/ stops these tests.
    if (!existsSync(built)) throw error;
  }
}

export interface Served {
  child: ChildProcess;
  url: string;
  /** Every JSON log line so far (all processes: workers write to the same stdout). */
  logs: Record<string, unknown>[];
  stderr: () => string;
  exited: Promise<number | null>;
}

const running = new Set<ChildProcess>();

/** Ends whatever a test left running, by PID (the primary's workers follow it down). */
export function stopAll(): void {
  for (const child of running) {
    if (child.exitCode === null && child.signalCode === null && child.pid !== undefined) process.kill(child.pid, 'SIGKILL');
  }
  running.clear();
}

/** Starts `hapax serve args...` in cwd; resolves at the 'hapax listening' line. */
export function serve(args: string[], opts: { cwd: string; env?: NodeJS.ProcessEnv }): Promise<Served> {
  const env: NodeJS.ProcessEnv = { ...process.env, ...opts.env };
  for (const name of ['HAPAX_CONFIG', 'CONFIG_PATH', 'OPENAI_API_KEY', 'ANTHROPIC_API_KEY']) if (!opts.env?.[name]) delete env[name];
  const child = spawn(NODE, [BIN, 'serve', ...args], { cwd: opts.cwd, env, stdio: ['ignore', 'pipe', 'pipe'] });
  running.add(child);
  // 'close', not 'exit': by then every log line the process wrote has been read.
  const exited = new Promise<number | null>((resolve) => child.once('close', (code) => resolve(code)));
  const logs: Record<string, unknown>[] = [];
  let pending = '';
  let stderr = '';
  child.stderr?.on('data', (chunk: Buffer) => (stderr += chunk));
  return new Promise((resolve, reject) => {
    child.stdout?.on('data', (chunk: Buffer) => {
      const lines = (pending + chunk).split('\n');
      pending = lines.pop() ?? '';
      for (const line of lines) {
        let entry: Record<string, unknown>;
        try {
          entry = JSON.parse(line) as Record<string, unknown>;
        } catch {
          continue; // not a log line
        }
        logs.push(entry);
        if (entry.msg === 'hapax listening') resolve({ child, url: entry.url as string, logs, stderr: () => stderr, exited });
      }
    });
    void exited.then((code) => reject(new Error(`hapax serve exited with ${code} before listening:\n${stderr}`)));
  });
}

export interface Answer {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: string;
}

/**
 * One request on a connection of its own (no keep-alive), so that each lands wherever the server
 * sends a new connection; rejects when the connection is refused.
 */
export function freshRequest(url: string, opts: { method?: string; headers?: Record<string, string>; body?: unknown } = {}): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const payload = opts.body === undefined ? undefined : JSON.stringify(opts.body);
    const request = http.request(
      url,
      {
        method: opts.method ?? (payload ? 'POST' : 'GET'),
        agent: false,
        headers: { connection: 'close', ...(payload ? { 'content-type': 'application/json' } : {}), ...opts.headers },
      },
      (response) => {
        let body = '';
        response.setEncoding('utf8');
        response.on('data', (chunk: string) => (body += chunk));
        response.on('end', () => resolve({ status: response.statusCode ?? 0, headers: response.headers, body }));
        response.on('error', reject);
      },
    );
    request.on('error', reject);
    request.end(payload);
  });
}

export async function until(check: () => boolean | Promise<boolean>, what: string, timeoutMs = 10_000): Promise<void> {
  const started = Date.now();
  while (!(await check())) {
    if (Date.now() - started > timeoutMs) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}
