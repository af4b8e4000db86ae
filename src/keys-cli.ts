/**
 * `hapax keys create|list|update|revoke`: managed client keys, stored as hashes in the key file, or in Redis
 * when the config sets `state.redis_url` (then every instance of the fleet sees the change).
 */
import { resolve } from 'node:path';
import { InvalidArgumentError, type Command } from 'commander';
import { CliError, EXIT } from './cli-exit.ts';
import type { KeyStoreSettings } from './config/load.ts';
import { publicKeyView } from './server/routes/admin.ts';
import { KeyExistsError, KeyFile, KeyOptionError, type KeyChanges } from './state/keys.ts';
import { createStore } from './state/registry.ts';
import type { KeyStore } from './state/store.ts';

/** Reads only what key management needs of the config, so the rest of the file cannot block it. */
type SettingsResolver = (file: string | undefined) => Promise<KeyStoreSettings>;

const positiveInt = (value: string): number => {
  const n = Number(value);
  if (!/^\d+$/.test(value.trim()) || !Number.isInteger(n) || n <= 0) throw new InvalidArgumentError(`expected a positive whole number, got "${value}"`);
  return n;
};

/**
 * `--budget 50/monthly` (US dollars), `--budget 2000000tokens/daily`, `--budget 5/rolling=24h`; the budget
 * itself is checked where keys are made (newKeyRecord), like the admin API's.
 */
const BUDGET = /^(\d+(?:\.\d+)?)(usd|tokens)?\/(daily|weekly|monthly|rolling)(?:=(\S+))?$/;
const budgetOption = (value: string, previous: unknown[] = []): unknown[] => {
  const match = BUDGET.exec(value.trim().toLowerCase());
  if (!match) throw new InvalidArgumentError(`expected a budget such as 50/monthly, 2000000tokens/daily or 5/rolling=24h, got ${value}`);
  const [, amount, unit, window, period] = match;
  const budget = { window, [unit === 'tokens' ? 'tokens' : 'usd']: Number(amount), ...(period ? { period } : {}) };
  return [...previous, budget];
};

/** Where the keys went, in words: the file (with its absolute path) or the fleet's Redis. */
interface StoreUsed {
  keys: KeyStore;
  where: string;
  settings?: KeyStoreSettings;
}

export function registerKeyCommands(program: Command, resolveSettings: SettingsResolver): void {
  const keys = program.command('keys').description('manage client API keys (stored as SHA-256 hashes)');
  /** Runs `work` on the key store the options name, then lets go of it (a Redis connection ends). */
  const withKeys = async <T>(opts: { config?: string; file?: string }, work: (used: StoreUsed) => Promise<T>): Promise<T> => {
    const inFile = (path: string, settings?: KeyStoreSettings) => ({ keys: new KeyFile(path), where: `the key file ${path}${resolve(path) === path ? '' : ` (${resolve(path)})`}`, settings });
    if (opts.file) return work(inFile(opts.file));
    const settings = await resolveSettings(opts.config);
    if (!settings.state.redis_url) return work(inFile(settings.auth.key_file, settings));
    const store = createStore(settings.state);
    try {
      await store.start();
      // Never the URL in the message: it may hold a password.
      if (!store.available) {
        throw new CliError(`cannot reach Redis at state.redis_url of ${settings.source}; start Redis or fix the URL, or pass --file <path> to manage a key file instead`);
      }
      return await work({ keys: store.keys(settings.auth.key_file), where: `Redis (state.redis_url of ${settings.source}), shared by every gateway using it`, settings });
    } finally {
      await store.close();
    }
  };

  keys
    .command('create')
    .description('create a key and print it once')
    .requiredOption('--name <name>', 'who the key is for, e.g. marketing')
    // The API's field names, and the short forms the first versions had.
    .option('--requests-per-minute <n>', 'rate limit of this key (rate_limit.requests_per_minute; short: --rpm)', positiveInt)
    .option('--tokens-per-minute <n>', 'token limit of this key (rate_limit.tokens_per_minute; short: --tpm)', positiveInt)
    .option('--rpm <n>', 'same as --requests-per-minute', positiveInt)
    .option('--tpm <n>', 'same as --tokens-per-minute', positiveInt)
    .option('--budget <budget>', 'a spending cap: 50/monthly (US dollars), 2000000tokens/daily, 5/rolling=24h; repeatable', budgetOption)
    .option('--expires <when>', 'a duration from now (90d) or an ISO date')
    .option('-c, --config <file>', 'config whose key store to use (auth.key_file, or Redis with state.redis_url)')
    .option('--file <path>', 'key file (default: auth.key_file of the config)')
    .action(async (opts: CreateOptions) => {
      const requests = opts.requestsPerMinute ?? opts.rpm;
      const tokens = opts.tokensPerMinute ?? opts.tpm;
      const rate_limit = { ...(requests ? { requests_per_minute: requests } : {}), ...(tokens ? { tokens_per_minute: tokens } : {}) };
      const { key, record, where, settings } = await withKeys(opts, async ({ keys, where, settings }) => {
        try {
          return { ...(await keys.create({ name: opts.name, rate_limit, budgets: opts.budget, expires: opts.expires })), where, settings };
        } catch (error) {
          throw explainCreateError(error, opts.name);
        }
      });
      process.stderr.write(`Created key "${record.name}" in ${where}.\n`);
      if (settings && !settings.auth.enabled) {
        process.stderr.write(`warning: auth.enabled is not true in ${settings.source}, so the gateway takes requests without any key; set auth.enabled: true for keys to be required\n`);
      }
      process.stderr.write('It is shown once; store it now:\n');
      process.stdout.write(`${key}\n`);
    });

  keys
    .command('list')
    .description('list keys (never shows the keys themselves)')
    .option('-c, --config <file>', 'config whose key store to use (auth.key_file, or Redis with state.redis_url)')
    .option('--file <path>', 'key file')
    .option('--json', 'print JSON')
    .action(async (opts: { config?: string; file?: string; json?: boolean }) => {
      const records = (await withKeys(opts, ({ keys }) => keys.list())).map(publicKeyView);
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
    .command('update <name>')
    .description("change a key's budgets or limits; its secret stays, and what it spent in the current windows still counts")
    .option('--budget <budget>', 'replaces all its budgets: 50/monthly (US dollars), 2000000tokens/daily, 5/rolling=24h; repeatable', budgetOption)
    .option('--no-budgets', 'remove its own budgets (it falls under budgets.per_key again)')
    .option('--requests-per-minute <n>', 'new rate limit (short: --rpm)', positiveInt)
    .option('--tokens-per-minute <n>', 'new token limit (short: --tpm)', positiveInt)
    .option('--rpm <n>', 'same as --requests-per-minute', positiveInt)
    .option('--tpm <n>', 'same as --tokens-per-minute', positiveInt)
    .option('-c, --config <file>', 'config whose key store to use (auth.key_file, or Redis with state.redis_url)')
    .option('--file <path>', 'key file')
    .option('--json', 'print the updated key as JSON')
    .action(async (name: string, opts: UpdateOptions) => {
      const changes: KeyChanges = {};
      // Commander sets `budgets: false` for --no-budgets; --budget collects into `budget`.
      if (opts.budget && opts.budgets === false) throw new CliError('--budget and --no-budgets contradict each other; give one', EXIT.USAGE);
      if (opts.budget) changes.budgets = opts.budget;
      else if (opts.budgets === false) changes.budgets = [];
      const requests = opts.requestsPerMinute ?? opts.rpm;
      const tokens = opts.tokensPerMinute ?? opts.tpm;
      if (requests !== undefined || tokens !== undefined) changes.rate_limit = { ...(requests ? { requests_per_minute: requests } : {}), ...(tokens ? { tokens_per_minute: tokens } : {}) };
      if (Object.keys(changes).length === 0) throw new CliError('nothing to change: give --budget, --no-budgets, --requests-per-minute or --tokens-per-minute', EXIT.USAGE);
      const { updated, where } = await withKeys(opts, async ({ keys, where }) => {
        try {
          return { updated: await keys.update(name, changes), where };
        } catch (error) {
          throw explainCreateError(error, name);
        }
      });
      if (!updated) throw new CliError(`no active key named ${name} in ${where} (hapax keys list shows the names; keys written in the config are changed there)`);
      const view = publicKeyView(updated);
      if (opts.json) {
        process.stdout.write(`${JSON.stringify(view, null, 2)}\n`);
        return;
      }
      const budgets = (view.budgets ?? []).map((b) => `${b.usd !== undefined ? `$${b.usd}` : `${b.tokens}tokens`}/${b.window}`).join(', ') || 'none of its own';
      process.stdout.write(`updated ${name}: budgets ${budgets}; rpm=${view.rate_limit?.requests_per_minute ?? '-'} tpm=${view.rate_limit?.tokens_per_minute ?? '-'}\n`);
    });

  keys
    .command('revoke <name>')
    .description('revoke a key; running gateways refuse it within a second')
    .option('-c, --config <file>', 'config whose key store to use (auth.key_file, or Redis with state.redis_url)')
    .option('--file <path>', 'key file')
    .action(async (name: string, opts: { config?: string; file?: string }) => {
      const { revoked, where } = await withKeys(opts, async ({ keys, where }) => ({ revoked: await keys.revoke(name), where }));
      if (!revoked) throw new CliError(`no active key named ${name} in ${where} (hapax keys list shows the names)`);
      process.stdout.write(`revoked ${name}\n`);
    });
}

interface UpdateOptions {
  budget?: unknown[];
  budgets?: boolean;
  requestsPerMinute?: number;
  tokensPerMinute?: number;
  rpm?: number;
  tpm?: number;
  config?: string;
  file?: string;
  json?: boolean;
}

interface CreateOptions {
  name: string;
  requestsPerMinute?: number;
  tokensPerMinute?: number;
  rpm?: number;
  tpm?: number;
  budget?: unknown[];
  expires?: string;
  config?: string;
  file?: string;
}

/** The store's refusals in terms of the command line: which flag, and what to do about it. */
function explainCreateError(error: unknown, name: string): unknown {
  if (error instanceof KeyExistsError) {
    return new CliError(`a key named ${name} already exists; choose another --name, or revoke it first: hapax keys revoke ${name}`);
  }
  if (error instanceof KeyOptionError) {
    // The message starts with the field name ("expires: ..."); the user typed it as a flag.
    return new CliError(`--${error.field}: ${error.message.replace(new RegExp(`^${error.field}: `), '')}`, EXIT.USAGE);
  }
  return error;
}
