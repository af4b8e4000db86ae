/**
 * `hapax usage`: the usage report of a running gateway (GET /admin/usage) as a table, CSV or JSON. It asks
 * the gateway rather than reading state itself, so it reports the same figures with memory state (which
 * only the gateway holds) and with Redis (the whole fleet's).
 */
import { InvalidArgumentError, type Command } from 'commander';
import { CliError, EXIT } from './cli-exit.ts';
import type { LoadedConfig } from './config/load.ts';
import { GROUP_BY, reportColumns, toTable, type GroupBy, type ReportRow } from './observability/usage-report.ts';

interface UsageOptions {
  config?: string;
  url?: string;
  adminKey?: string;
  groupBy?: string;
  from?: string;
  to?: string;
  key?: string;
  format: 'table' | 'csv' | 'json';
}

const format = (value: string): UsageOptions['format'] => {
  if (value !== 'table' && value !== 'csv' && value !== 'json') throw new InvalidArgumentError('expected table, csv or json');
  return value;
};

/** The gateway the config describes, as reached from this host. */
function gatewayUrl(loaded: LoadedConfig): string {
  const { server } = loaded.config;
  const host = server.host === '0.0.0.0' || server.host === '::' || server.host === '' ? '127.0.0.1' : server.host;
  return `${server.tls ? 'https' : 'http'}://${host.includes(':') ? `[${host}]` : host}:${server.port}`;
}

export function registerUsageCommand(program: Command, resolveConfig: (file: string | undefined) => Promise<LoadedConfig>): void {
  program
    .command('usage')
    .description("print a running gateway's usage report: requests, tokens and spend by key, label, route, provider, model, day")
    .option('-c, --config <file>', 'config of the gateway to ask (its server.port and admin.key)')
    .option('--url <url>', 'the gateway to ask (default: server.host and server.port of the config)')
    .option('--admin-key <key>', 'the admin key (default: $HAPAX_ADMIN_KEY, else admin.key of the config)')
    .option('--group-by <dimensions>', `comma-separated, any of ${GROUP_BY.join(', ')} (default: key)`)
    .option('--from <day>', 'first day, YYYY-MM-DD (in budgets.time_zone)')
    .option('--to <day>', 'last day, YYYY-MM-DD')
    .option('--key <name>', "only this key's usage")
    .option('--format <format>', 'table, csv or json', format, 'table')
    .action(async (opts: UsageOptions) => {
      const loaded = opts.url && (opts.adminKey || process.env.HAPAX_ADMIN_KEY) ? undefined : await resolveConfig(opts.config);
      const base = (opts.url ?? gatewayUrl(loaded as LoadedConfig)).replace(/\/+$/, '');
      const adminKey = opts.adminKey || process.env.HAPAX_ADMIN_KEY || loaded?.config.admin.key;
      if (!adminKey) throw new CliError('the usage report needs the admin key: pass --admin-key, set HAPAX_ADMIN_KEY, or set admin.key in the config', EXIT.USAGE);
      const params = new URLSearchParams();
      if (opts.groupBy) params.set('group_by', opts.groupBy);
      if (opts.from) params.set('from', opts.from);
      if (opts.to) params.set('to', opts.to);
      if (opts.key) params.set('key', opts.key);
      if (opts.format === 'csv') params.set('format', 'csv');
      const url = `${base}/admin/usage${params.size ? `?${params}` : ''}`;
      let response: Response;
      try {
        response = await fetch(url, { headers: { 'x-api-key': adminKey } });
      } catch (error) {
        throw new CliError(`cannot reach the gateway at ${base} (${(error as Error).cause instanceof Error ? ((error as Error).cause as Error).message : (error as Error).message}); is it running? pass --url otherwise`);
      }
      const text = await response.text();
      if (!response.ok) {
        let message = text;
        try {
          message = (JSON.parse(text) as { error?: { message?: string } }).error?.message ?? text;
        } catch {
          // not JSON: shown as it came
        }
        throw new CliError(`${base} answered ${response.status}: ${message}`, response.status === 400 ? EXIT.USAGE : EXIT.FAILURE);
      }
      if (opts.format === 'csv') {
        process.stdout.write(text);
        return;
      }
      const body = JSON.parse(text) as { scope: string; report: { group_by: GroupBy[]; from: string | null; to: string | null; time_zone: string; rows: ReportRow[] } };
      if (opts.format === 'json') {
        process.stdout.write(`${JSON.stringify(body.report, null, 2)}\n`);
        return;
      }
      const { report } = body;
      const span = report.from || report.to ? `${report.from ?? 'start'} to ${report.to ?? 'today'}` : 'all days kept';
      process.stderr.write(`Usage of ${body.scope === 'shared' ? 'the fleet (shared Redis)' : 'this gateway instance'}, ${span} (${report.time_zone}):\n`);
      process.stdout.write(toTable(report.rows, reportColumns(report.group_by)));
    });
}
