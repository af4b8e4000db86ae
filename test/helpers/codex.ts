/**
 * Runs the real Codex CLI (`@openai/codex`, installed by `npm ci --prefix test/agents`) headless: one
 * `codex exec --skip-git-repo-check` turn against a base URL, offline, with a fresh CODEX_HOME and working
 * directory, bounded by a timeout.
 *
 * The npm package is a Node wrapper that picks a native binary from a per-platform optional dependency; this
 * helper runs that binary itself (a static executable) so the test does not depend on the machine's Node.
 * The provider is given on the command line as Codex's docs describe (`model_providers.NAME`, wire_api
 * "responses"), so no config file of the person running the tests is read.
 */
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { runCliProcess } from './cli-process.ts';

const AGENTS_PACKAGE = new URL('../agents/package.json', import.meta.url);

/** Rust target triples of the binaries the platform packages ship. */
const TRIPLES: Record<string, string> = {
  'linux-x64': 'x86_64-unknown-linux-musl',
  'linux-arm64': 'aarch64-unknown-linux-musl',
  'darwin-x64': 'x86_64-apple-darwin',
  'darwin-arm64': 'aarch64-apple-darwin',
};

export function codexBinary(): string {
  const platform = `${process.platform}-${process.arch}`;
  const triple = TRIPLES[platform];
  if (!triple) throw new Error(`Codex ships no binary this helper knows for ${platform}`);
  const require = createRequire(AGENTS_PACKAGE);
  const bin = join(dirname(require.resolve(`@openai/codex-${platform}/package.json`)), 'vendor', triple, 'bin', 'codex');
  if (!existsSync(bin)) throw new Error(`${bin} is missing: run npm ci --prefix test/agents`);
  return bin;
}

export function codexInstalled(): boolean {
  try {
    codexBinary();
    return true;
  } catch {
    return false;
  }
}

export interface CodexOptions {
  prompt: string;
  /** The provider's base URL (Hapax /v1). */
  baseUrl: string;
  apiKey: string;
  model: string;
  cwd?: string;
  timeoutMs?: number;
}

export interface CodexRun {
  exitCode: number | null;
  signal: NodeJS.Signals | null;
  timedOut: boolean;
  /** The final message (what `codex exec` prints on stdout). */
  stdout: string;
  /** Progress: the session header, tool calls, errors. */
  stderr: string;
}

/** The run's environment, from nothing: OPENAI_* or CODEX_* variables of whatever runs the tests must not steer it. */
function cliEnv(home: string, opts: CodexOptions): NodeJS.ProcessEnv {
  return {
    PATH: process.env.PATH ?? '/usr/local/bin:/usr/bin:/bin',
    HOME: home,
    CODEX_HOME: home,
    TMPDIR: home,
    LANG: 'C.UTF-8',
    TERM: 'dumb',
    HAPAX_TEST_KEY: opts.apiKey,
  };
}

/** One headless turn. Never throws for the CLI's own failures (the test reads exit code and output). */
export async function runCodex(opts: CodexOptions): Promise<CodexRun> {
  const bin = codexBinary();
  const home = await mkdtemp(join(tmpdir(), 'hapax-codex-home-'));
  const ownCwd = opts.cwd === undefined ? await mkdtemp(join(tmpdir(), 'hapax-codex-cwd-')) : undefined;
  const provider = `{name="Hapax", base_url="${opts.baseUrl}", wire_api="responses", env_key="HAPAX_TEST_KEY", request_max_retries=0, stream_max_retries=0}`;
  const args = [
    'exec',
    '--skip-git-repo-check',
    '-c', 'model_provider="hapax"',
    '-c', `model_providers.hapax=${provider}`,
    // Offline: no update checks or analytics.
    '-c', 'check_for_update_on_startup=false',
    '-c', 'analytics.enabled=false',
    '-m', opts.model,
    // The turn runs a harmless echo; as root the sandbox cannot be set up in a container, so it is off.
    '-s', 'danger-full-access',
    opts.prompt,
  ];
  try {
    return await runCliProcess(bin, args, { cwd: opts.cwd ?? ownCwd, env: cliEnv(home, opts), timeoutMs: opts.timeoutMs ?? 90_000 });
  } finally {
    await rm(home, { recursive: true, force: true });
    if (ownCwd) await rm(ownCwd, { recursive: true, force: true });
  }
}
