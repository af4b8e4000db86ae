/**
 * `hapax keys create|list|revoke`: managed client keys, stored as hashes in the key file, or in Redis
 * when the config sets `state.redis_url` (then every instance of the fleet sees the change).
 */
import type { Command } from 'commander';
import type { LoadedConfig } from './config/load.ts';
import { publicKeyView } from './server/routes/admin.ts';
import { KeyFile } from './state/keys.ts';
import { createStore } from './state/registry.ts';
import type { KeyStore } from './state/store.ts';

type ConfigResolver = (file: string | undefined) => Promise<LoadedConfig>;

const positiveInt = (value: string): number => {
  const n = Number(value);
  if (!Number.isInteger(n) || n <= 0) throw new Error(`expected a positive whole number, got ${value}`);
  return n;
};

/**
 * `--budget 50/monthly` (US dollars), `--budget 2000000tokens/daily`, `--budget 5/rolling=24h`; the budget
 * itself is checked where keys are made (newKeyRecord), like the admin API's.
 */
const BUDGET = /^(\d+(?:\.\d+)?)(usd|tokens)?\/(daily|weekly|monthly|rolling)(?:=(\S+))?$/;
const budgetOption = (value: string, previous: unknown[] = []): unknown[] => {
  const match = BUDGET.exec(value.trim().toLowerCase());
  if (!match) throw new Error(`expected a budget such as 50/monthly, 2000000tokens/daily or 5/rolling=24h, got ${value}`);
  const [, amount, unit, window, period] = match;
  const budget = { window, [unit === 'tokens' ? 'tokens' : 'usd']: Number(amount), ...(period ? { period } : {}) };
  return [...previous, budget];
};

export function registerKeyCommands(program: Command, resolveConfig: ConfigResolver): void {
  const keys = program.command('keys').description('manage client API keys (stored as SHA-256 hashes)');
  /** Runs `work` on the key store the options name, then lets go of it (a Redis connection ends). */
  const withKeys = async <T>(opts: { config?: string; file?: string }, work: (keys: KeyStore) => Promise<T>): Promise<T> => {
    if (opts.file) return work(new KeyFile(opts.file));
    const { config } = await resolveConfig(opts.config);
    const store = createStore(config.state);
    try {
      await store.start();
      // Never the URL in the message: it may hold a password.
      if (!store.available) throw new Error('state.redis_url: Redis is unreachable');
      return await work(store.keys(config.auth.key_file));
    } finally {
      await store.close();
    }
  };

  keys
    .command('create')
    .description('create a key and print it once')
    .requiredOption('--name <name>', 'who the key is for, e.g. marketing')
    .option('--rpm <n>', 'requests per minute', positiveInt)
    .option('--tpm <n>', 'tokens per minute', positiveInt)
    .option('--budget <budget>', 'a spending cap: 50/monthly (US dollars), 2000000tokens/daily, 5/rolling=24h; repeatable', budgetOption)
    .option('--expires <when>', 'a duration from now (90d) or an ISO date')
    .option('-c, --config <file>', 'config whose key store to use (auth.key_file, or Redis with state.redis_url)')
    .option('--file <path>', 'key file (default: auth.key_file of the config)')
    .action(async (opts: { name: string; rpm?: number; tpm?: number; budget?: unknown[]; expires?: string; config?: string; file?: string }) => {
      const rate_limit = {
        ...(opts.rpm ? { requests_per_minute: opts.rpm } : {}),
        ...(opts.tpm ? { tokens_per_minute: opts.tpm } : {}),
      };
      const { key, record } = await withKeys(opts, (keys) => keys.create({ name: opts.name, rate_limit, budgets: opts.budget, expires: opts.expires }));
      process.stderr.write(`Created key "${record.name}". It is shown once; store it now:\n`);
      process.stdout.write(`${key}\n`);
    });

  keys
    .command('list')
    .description('list keys (never shows the keys themselves)')
    .option('-c, --config <file>', 'config whose key store to use (auth.key_file, or Redis with state.redis_url)')
    .option('--file <path>', 'key file')
    .option('--json', 'print JSON')
    .action(async (opts: { config?: string; file?: string; json?: boolean }) => {
      const records = (await withKeys(opts, (keys) => keys.list())).map(publicKeyView);
      if (opts.json) {
        process.stdout.write(`${JSON.stringify(records, null, 2)}\n`);
        return;
      }
      for (const r of records) {
        const status = r.revoked ? 'revoked' : r.expires && Date.parse(r.expires) < Date.now() ? 'expired' : 'active';
        const limits = r.rate_limit ? ` rpm=${r.rate_limit.requests_per_minute ?? '-'} tpm=${r.rate_limit.tokens_per_minute ?? '-'}` : '';
        const budgets = (r.budgets ?? []).map((b) => ` budget=${b.usd !== undefined ? `$${b.usd}` : `${b.tokens}tokens`}/${b.window}${b.period ? `=${b.period}ms` : ''}`).join('');
        process.stdout.write(`${r.name}\t${status}${limits}${budgets}${r.expires ? ` expires=${r.expires}` : ''}\n`);
      }
    });

  keys
    .command('revoke <name>')
    .description('revoke a key; running gateways refuse it within a second')
    .option('-c, --config <file>', 'config whose key store to use (auth.key_file, or Redis with state.redis_url)')
    .option('--file <path>', 'key file')
    .action(async (name: string, opts: { config?: string; file?: string }) => {
      if (!(await withKeys(opts, (keys) => keys.revoke(name)))) {
        process.stderr.write(`no active key named ${name}\n`);
        process.exitCode = 1;
        return;
      }
      process.stdout.write(`revoked ${name}\n`);
    });
}
