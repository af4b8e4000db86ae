/**
 * The `hapax` command: serve, validate, keys, pricing, usage.
 * Exit codes (src/cli-exit.ts, docs/cli.md): 0 success, 1 the command failed (the gateway could not start
 * or stop cleanly, Redis is down, no such key), 2 the config is invalid or unreadable, 64 a bad command line.
 */
import cluster from 'node:cluster';
import { existsSync } from 'node:fs';
import { Command, InvalidArgumentError } from 'commander';
import { EXIT, exitOnError } from './cli-exit.ts';
import { defaultConfig } from './config/default.ts';
import { loadConfigFile, loadKeyStoreSettings, type KeyStoreSettings, type LoadedConfig } from './config/load.ts';
import { credentialFileProblems } from './config/credential-files.ts';
import { ConfigError } from './config/errors.ts';
import { runPrimary, runWorker, workerCount } from './cluster.ts';
import { ModelCatalog, type ExplainedTarget, type MatchKind } from './gateway/catalog.ts';
import { GatewayError } from './core/errors.ts';
import { registerKeyCommands } from './keys-cli.ts';
import { priceModels, registerPricingCommand } from './pricing-cli.ts';
import { registerUsageCommand } from './usage-cli.ts';
import { applyServeFlags } from './server/tls.ts';
import { createLogger, writesText } from './observability/logger.ts';
import { banner, mockInChainWarning } from './server/banner.ts';
import { handleSignals } from './server/shutdown.ts';
import { startGateway } from './server/start.ts';
import { VERSION } from './version.ts';


/**
 * --config, else $HAPAX_CONFIG (or $CONFIG_PATH, which the original Hapax image used), else
 * ./hapax.yaml, else the built-in default. An empty variable counts as unset.
 */
function configFileFor(file: string | undefined): string | undefined {
  return file || process.env.HAPAX_CONFIG || process.env.CONFIG_PATH || (existsSync('hapax.yaml') ? 'hapax.yaml' : undefined);
}

async function resolveConfig(file: string | undefined): Promise<LoadedConfig> {
  const chosen = configFileFor(file);
  return chosen ? loadConfigFile(chosen) : defaultConfig();
}

function port(value: string): number {
  const n = Number(value);
  if (value.trim() === '' || !Number.isInteger(n) || n < 0 || n > 65535) throw new InvalidArgumentError('expected a port number 0-65535');
  return n;
}

/** `hapax keys` reads only where keys live; without a file, the defaults of those settings. */
async function resolveKeySettings(file: string | undefined): Promise<KeyStoreSettings> {
  const chosen = configFileFor(file);
  if (chosen) return loadKeyStoreSettings(chosen);
  const { config, source } = defaultConfig();
  return { auth: config.auth, state: config.state, source };
}

const program = new Command()
  .name('hapax')
  .description('LLM gateway: failover, circuit breakers, health checks, auth, rate limits and metrics from one YAML file')
  .version(VERSION, '-v, --version')
  .option('--debug', 'print stack traces with errors (also HAPAX_DEBUG=1)')
  .showHelpAfterError('(add --help for usage)')
  // Commander's own errors (unknown option, bad value) end through exitOnError, with the usage exit code.
  .exitOverride();

program
  .command('serve')
  .description('start the gateway')
  .option('-c, --config <file>', 'config file (default: $HAPAX_CONFIG, ./hapax.yaml, or the built-in default)')
  .option('-p, --port <port>', 'port to listen on, 0 for any free port (overrides server.port)', port)
  .option('--host <addr>', 'address to listen on (overrides server.host)')
  .option('--self-signed', 'serve HTTPS (HTTP/2 and HTTP/1.1) with a local certificate kept in .hapax/tls/')
  .option('--http3', 'also serve HTTP/3 over QUIC (UDP, server.http3.port or the same port number)')
  .action(async (opts: { config?: string; port?: number; host?: string; selfSigned?: boolean; http3?: boolean }) => {
    // The file is watched and reloaded (also on SIGHUP and POST /admin/reload); the built-in default is not.
    const configFile = configFileFor(opts.config);
    const loaded = await resolveConfig(opts.config)
      .then((config) => applyServeFlags(config, opts, (line) => cluster.isPrimary && process.stderr.write(`hapax: ${line}\n`)))
      .catch(exitOnError);
    // A credential file the providers cannot read yet is a warning here (it may be mounted later), an error for validate.
    loaded.warnings.push(...(await credentialFileProblems(loaded.config)));
    const { server } = loaded.config;
    if (cluster.isWorker) {
      await runWorker({ loaded, configFile, port: opts.port, host: opts.host }).catch(exitOnError);
      return;
    }
    const workers = workerCount(server.workers);
    if (workers > 1) {
      // The workers run this same command line; the primary only supervises them.
      const logger = createLogger(loaded.config.logging).child({ role: 'primary' });
      const order = new ModelCatalog(loaded.config).defaultPolicy.names;
      runPrimary({ loaded, workers, logger, onListening: (url) => greet(loaded, order, url, (warning) => logger.warn({ providers: order }, warning)) });
      return;
    }
    const gateway = await startGateway({ loaded, configFile, port: opts.port, host: opts.host }).catch(exitOnError);
    // Signals first: whoever reads the 'listening' line may send SIGHUP or SIGTERM at once.
    handleSignals(gateway, { onRepeat: 'exit', shutdownTimeoutMs: server.shutdown_timeout });
    const order = gateway.holder.current.catalog.defaultPolicy.names;
    gateway.logger.info(
      { url: gateway.url, config: loaded.source, providers: [...gateway.holder.current.adapters.keys()] },
      'hapax listening',
    );
    greet(loaded, order, gateway.url, (warning) => gateway.logger.warn({ providers: order }, warning));
    // Request lines are batched; the lines that say the gateway is up go out now.
    gateway.logger.flush();
  });

program
  .command('validate')
  .description('check a config file and list every problem by key path (exit 2 when invalid)')
  .argument('[file]', 'config file to check (same default as serve)')
  .option('-c, --config <file>', 'config file to check')
  .option('--resolve <model>', 'also show where a request for this model name goes, in failover order')
  .action(async (file: string | undefined, opts: { config?: string; resolve?: string }) => {
    const loaded = await resolveConfig(opts.config ?? file).catch(exitOnError);
    for (const warning of loaded.warnings) process.stderr.write(`warning: ${warning}\n`);
    for (const warning of unpricedWarnings(loaded)) process.stderr.write(`warning: ${warning}\n`);
    // The credential files the providers will read, checked on this machine (their contents are never shown).
    const unreadable = await credentialFileProblems(loaded.config);
    if (unreadable.length > 0) exitOnError(new ConfigError(loaded.source, unreadable));
    // Names only: never print a value from the config, which may hold keys.
    const providers = Object.keys(loaded.config.providers);
    process.stdout.write(`${loaded.source}: valid (${providers.length} provider${providers.length === 1 ? '' : 's'}: ${providers.join(', ')})\n`);
    if (opts.resolve !== undefined) printResolution(loaded, opts.resolve);
  });

/** A model the config serves with no price is counted, but spends nothing in dollar budgets: say so before it runs. */
function unpricedWarnings(loaded: LoadedConfig): string[] {
  const unpriced = priceModels(loaded.config, []).filter((row) => !row.price);
  if (unpriced.length === 0) return [];
  const dollarBudgets = JSON.stringify(loaded.config.budgets).includes('"usd"') || JSON.stringify(loaded.config.routes ?? []).includes('"usd"') || loaded.config.auth.keys.some((k) => k.budgets?.some((b) => b.usd !== undefined));
  const names = unpriced.map((row) => `${row.provider}/${row.model}`);
  return [
    `no price for ${names.join(', ')}: their requests are counted (hapax_unpriced_requests_total) and their tokens charged to token budgets, but they cost $0${dollarBudgets ? ' against the dollar budgets this config sets' : ''}; add them under \`pricing\` (USD per million tokens, e.g. pricing: {"${names[0]}": {input: 1, output: 2}}), see hapax pricing`,
  ];
}

/**
 * Once listening: the warning a newcomer needs (the mock in the failover chain) and, for a person at a
 * terminal, the banner; a pipe or a log collector gets JSON lines only.
 */
function greet(loaded: LoadedConfig, order: readonly string[], url: string, warn: (message: string) => void): void {
  const mockWarning = mockInChainWarning(loaded.config, order);
  if (mockWarning) warn(mockWarning);
  if (writesText(loaded.config.logging.format)) process.stdout.write(`\n${banner({ url, source: loaded.source, config: loaded.config, order })}\n`);
}

/**
 * What `model: <name>` resolves to under the top-level preference: the candidates in failover order and
 * how each was chosen, or the 400 a client would get (exit 1).
 */
function printResolution(loaded: LoadedConfig, name: string): void {
  const catalog = new ModelCatalog(loaded.config);
  let candidates: ExplainedTarget[];
  try {
    candidates = catalog.explain(name === '' ? undefined : name);
  } catch (error) {
    if (!(error instanceof GatewayError)) throw error;
    const { known_models: known, model_patterns: patterns } = (error.details ?? {}) as { known_models?: string[]; model_patterns?: string[] };
    const lines = [`${error.status}: ${error.message}`];
    if (known?.length) lines.push(`  listed models: ${known.join(', ')}`);
    if (patterns?.length) lines.push(`  patterns: ${patterns.join(', ')}`);
    process.stderr.write(`${lines.join('\n')}\n`);
    process.exit(EXIT.FAILURE);
  }
  const width = Math.max(...candidates.map((c) => c.provider.length));
  const lines = candidates.map((c, i) => `  ${i + 1}. ${c.provider.padEnd(width)}  ${c.model}  (${c.pattern ? `pattern ${c.pattern}` : MATCH_WORDS[c.match]})`);
  process.stdout.write(`${name === '' ? 'a request without a model' : `model "${name}"`} resolves to:\n${lines.join('\n')}\n`);
}

const MATCH_WORDS: Record<MatchKind, string> = {
  provider: 'provider name, its default model',
  'provider/model': 'provider/model',
  exact: 'exact',
  alias: 'alias',
  pattern: 'pattern',
  default: 'its default model',
};

registerKeyCommands(program, resolveKeySettings);
registerPricingCommand(program, resolveConfig);
registerUsageCommand(program, resolveConfig);

// A reader that went away (`hapax serve | head`) must not turn a write into a crash or a hang: stop writing.
for (const stream of [process.stdout, process.stderr]) {
  stream.on('error', (error: NodeJS.ErrnoException) => {
    if (error.code !== 'EPIPE') throw error;
    stream.write = () => true;
  });
}

await program.parseAsync(process.argv).catch(exitOnError);
