/**
 * Runs the real Claude Code CLI (`@anthropic-ai/claude-code`, installed by `npm ci --prefix test/agents`) headless:
 * one `claude -p` turn against a base URL, offline, with a fresh HOME and working directory, bounded by a timeout.
 *
 * The npm package is a thin wrapper whose postinstall copies a native binary out of a per-platform optional
 * dependency. test/agents denies that script (nothing needs to run at install), so this helper runs the
 * platform package's binary itself; it is a self-contained executable and needs no Node.
 */
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { runCliProcess } from './cli-process.ts';

const AGENTS_PACKAGE = new URL('../agents/package.json', import.meta.url);

export interface ClaudeCodeOptions {
  prompt: string;
  /** ANTHROPIC_BASE_URL: the fake, or a gateway. */
  baseUrl: string;
  /** ANTHROPIC_API_KEY. */
  apiKey: string;
  /** `--model`; pinned by the tests so a new CLI release with a new default model changes nothing. */
  model?: string;
  /** `--allowedTools`: as root the CLI refuses `--dangerously-skip-permissions`, so a tool the turn calls is named here. */
  allowedTools?: string[];
  /** Working directory; a fresh temporary one (removed afterwards) when not given. */
  cwd?: string;
  /** Killed (with everything it started) after this long. */
  timeoutMs?: number;
}

/** The `--output-format json` result object (the fields the tests read; the CLI prints many more). */
export interface ClaudeCodeJson {
  type: 'result';
  subtype: string;
  is_error: boolean;
  result: string;
  num_turns: number;
  session_id: string;
  stop_reason?: string;
  [field: string]: unknown;
}

export interface ClaudeCodeRun {
  /** The parsed result, or undefined when stdout was not one JSON object (then see stdout and stderr). */
  json: ClaudeCodeJson | undefined;
  exitCode: number | null;
  signal: NodeJS.Signals | null;
  timedOut: boolean;
  stdout: string;
  stderr: string;
  durationMs: number;
  /** The run's temporary HOME (removed by now): its path shows in what the CLI sends. */
  home: string;
}

/** The native binary for this machine, from the platform package npm installed beside the wrapper. */
export function claudeCodeBinary(): string {
  const require = createRequire(AGENTS_PACKAGE);
  const wrapper = require.resolve('@anthropic-ai/claude-code/package.json');
  const { optionalDependencies } = require(wrapper) as { optionalDependencies: Record<string, string> };
  const glibc = (process.report.getReport() as { header?: { glibcVersionRuntime?: string } }).header?.glibcVersionRuntime;
  const suffix = process.platform === 'linux' && glibc === undefined ? '-musl' : '';
  const name = `@anthropic-ai/claude-code-${process.platform}-${process.arch}${suffix}`;
  if (!optionalDependencies[name]) throw new Error(`Claude Code ships no native binary for ${process.platform}-${process.arch}${suffix}`);
  const bin = join(dirname(require.resolve(`${name}/package.json`)), process.platform === 'win32' ? 'claude.exe' : 'claude');
  if (!existsSync(bin)) throw new Error(`${bin} is missing: run npm ci --prefix test/agents`);
  return bin;
}

/** Whether test/agents is installed (the tests say so instead of failing obscurely when it is not). */
export function claudeCodeInstalled(): boolean {
  try {
    claudeCodeBinary();
    return true;
  } catch {
    return false;
  }
}

/**
 * The environment of the run, built from nothing rather than from process.env: variables of whatever runs the
 * tests (ANTHROPIC_*, CLAUDE_*, a proxy) must not steer the CLI.
 */
function cliEnv(home: string, opts: ClaudeCodeOptions): NodeJS.ProcessEnv {
  return {
    PATH: process.env.PATH ?? '/usr/local/bin:/usr/bin:/bin',
    HOME: home,
    TMPDIR: home,
    LANG: 'C.UTF-8',
    TERM: 'dumb',
    ANTHROPIC_BASE_URL: opts.baseUrl,
    ANTHROPIC_API_KEY: opts.apiKey,
    // Offline and quiet: no update checks, telemetry, error reports or other background calls to the internet.
    CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC: '1',
    DISABLE_TELEMETRY: '1',
    DISABLE_AUTOUPDATER: '1',
    DISABLE_ERROR_REPORTING: '1',
    // A test's CLI runs only its own turn: no API retries (a failure shows at once) and no terminal niceties.
    CLAUDE_CODE_MAX_RETRIES: '0',
    CLAUDE_CODE_DISABLE_TERMINAL_TITLE: '1',
  };
}

/** One headless turn: `claude -p <prompt> --output-format json`. Never throws for the CLI's own failures. */
export async function runClaudeCode(opts: ClaudeCodeOptions): Promise<ClaudeCodeRun> {
  const bin = claudeCodeBinary();
  const home = await mkdtemp(join(tmpdir(), 'hapax-claude-home-'));
  const ownCwd = opts.cwd === undefined ? await mkdtemp(join(tmpdir(), 'hapax-claude-cwd-')) : undefined;
  const args = ['-p', opts.prompt, '--output-format', 'json'];
  if (opts.model) args.push('--model', opts.model);
  if (opts.allowedTools?.length) args.push('--allowedTools', opts.allowedTools.join(','));
  const started = Date.now();
  try {
    const { exitCode, signal, timedOut, stdout, stderr } = await runCliProcess(bin, args, { cwd: opts.cwd ?? ownCwd, env: cliEnv(home, opts), timeoutMs: opts.timeoutMs ?? 90_000 });
    return { json: parseResult(stdout), exitCode, signal, timedOut, stdout, stderr, durationMs: Date.now() - started, home };
  } finally {
    await rm(home, { recursive: true, force: true });
    if (ownCwd) await rm(ownCwd, { recursive: true, force: true });
  }
}

function parseResult(stdout: string): ClaudeCodeJson | undefined {
  try {
    const value = JSON.parse(stdout) as unknown;
    return value && typeof value === 'object' && (value as { type?: unknown }).type === 'result' ? (value as ClaudeCodeJson) : undefined;
  } catch {
    return undefined;
  }
}
