/** The `hapax` command: serve, validate. */
import { existsSync, readFileSync } from 'node:fs';
import { Command, InvalidArgumentError } from 'commander';
import { defaultConfig } from './config/default.ts';
import { ConfigError } from './config/errors.ts';
import { loadConfigFile, type LoadedConfig } from './config/load.ts';
import { startGateway } from './server/start.ts';

const pkg = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string };

/** --config, else $HAPAX_CONFIG, else ./hapax.yaml, else the built-in default. */
async function resolveConfig(file: string | undefined): Promise<LoadedConfig> {
  const chosen = file ?? process.env.HAPAX_CONFIG ?? process.env.CONFIG_PATH ?? (existsSync('hapax.yaml') ? 'hapax.yaml' : undefined);
  return chosen ? loadConfigFile(chosen) : defaultConfig();
}

function port(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0 || n > 65535) throw new InvalidArgumentError('expected a port number 0-65535');
  return n;
}

function reportConfigError(error: unknown): never {
  if (error instanceof ConfigError) {
    process.stderr.write(`${error.message}\n`);
    process.exit(2);
  }
  throw error;
}

const program = new Command()
  .name('hapax')
  .description('LLM gateway: failover, circuit breakers, health checks, auth, rate limits and metrics from one YAML file')
  .version(pkg.version, '-v, --version');

program
  .command('serve')
  .description('start the gateway')
  .option('-c, --config <file>', 'config file (default: $HAPAX_CONFIG, ./hapax.yaml, or the built-in default)')
  .option('-p, --port <port>', 'port to listen on (overrides server.port)', port)
  .option('--host <addr>', 'address to listen on (overrides server.host)')
  .action(async (opts: { config?: string; port?: number; host?: string }) => {
    const loaded = await resolveConfig(opts.config).catch(reportConfigError);
    const gateway = await startGateway({ loaded, port: opts.port, host: opts.host });
    gateway.logger.info({ url: gateway.url, config: loaded.source, providers: [...gateway.holder.current.adapters.keys()] }, 'hapax listening');
    const stop = async (signal: string) => {
      gateway.logger.info({ signal }, 'shutting down');
      await gateway.close();
      process.exit(0);
    };
    process.once('SIGTERM', () => void stop('SIGTERM'));
    process.once('SIGINT', () => void stop('SIGINT'));
  });

program
  .command('validate')
  .description('check a config file and list every problem by key path')
  .option('-c, --config <file>', 'config file to check')
  .action(async (opts: { config?: string }) => {
    const loaded = await resolveConfig(opts.config).catch(reportConfigError);
    for (const warning of loaded.warnings) process.stderr.write(`warning: ${warning}\n`);
    const providers = Object.keys(loaded.config.providers);
    process.stdout.write(`${loaded.source}: valid (${providers.length} provider${providers.length === 1 ? '' : 's'}: ${providers.join(', ')})\n`);
  });

await program.parseAsync(process.argv);
