/**
 * `hapax pricing [model...]`: what each model costs under a config and which entry priced it (the config's
 * `pricing` or the shipped table, and which name or pattern), for the providers a request for it goes to.
 * Without models: every model the config names.
 */
import type { Command } from 'commander';
import { listedModels, type HapaxConfig, type PriceConfig } from './config/schema.ts';
import type { LoadedConfig } from './config/load.ts';
import { GatewayError } from './core/errors.ts';
import { ModelCatalog } from './gateway/catalog.ts';
import { PriceBook, type PriceMatch } from './observability/pricing.ts';

export interface PricedModel {
  model: string;
  /** The provider a request goes to (failover order), or undefined when no provider serves the name. */
  provider?: string;
  /** The model name sent to that provider. */
  upstream_model?: string;
  price?: PriceConfig;
  priced_by?: Omit<PriceMatch, 'price'> & { as_of?: string };
}

/** Every model name a config lists (not patterns), with its provider: what `hapax validate` checks for prices. */
export function configuredModels(config: Pick<HapaxConfig, 'providers'>): Array<{ provider: string; model: string }> {
  const out: Array<{ provider: string; model: string }> = [];
  for (const [name, provider] of Object.entries(config.providers)) {
    // The mock answers locally and costs nothing real.
    if (provider.type === 'mock') continue;
    const models = new Set<string>();
    if (provider.model) models.add(provider.model);
    // An alias is charged as the upstream model it is sent as.
    for (const [model, entry] of listedModels(provider)) models.add(entry?.model ?? model);
    for (const model of models) out.push({ provider: name, model });
  }
  return out;
}

export function priceModels(config: HapaxConfig, names: readonly string[]): PricedModel[] {
  const book = new PriceBook(config.pricing, Object.keys(config.providers));
  const row = (model: string, provider: string | undefined, upstream: string): PricedModel => {
    const match = book.lookup(provider ?? '', upstream);
    if (!match) return { model, provider, upstream_model: provider ? upstream : undefined };
    const { price, ...by } = match;
    return { model, provider, upstream_model: provider ? upstream : undefined, price, priced_by: { ...by, ...(by.origin === 'shipped' ? { as_of: PriceBook.asOf } : {}) } };
  };
  if (names.length === 0) return configuredModels(config).map(({ provider, model }) => row(model, provider, model));
  const catalog = new ModelCatalog(config);
  return names.flatMap((name) => {
    try {
      return catalog.explain(name).map((target) => row(name, target.provider, target.model));
    } catch (error) {
      // No provider serves the name: its price in the tables all the same, for a model about to be added.
      if (error instanceof GatewayError) return [row(name, undefined, name)];
      throw error;
    }
  });
}

const usd = (value: number | undefined) => (value === undefined ? '-' : `$${Number(value.toFixed(6))}`);

function describe(row: PricedModel): string {
  const by = row.priced_by;
  if (!by) return 'NO PRICE: counted in tokens only, spends nothing in dollar budgets (add it under `pricing`)';
  const entry = `${by.pattern ? 'pattern' : 'entry'} ${by.entry}${by.matched !== row.upstream_model && by.matched !== row.model ? ` (as ${by.matched})` : ''}`;
  return by.origin === 'config' ? `config pricing, ${entry}` : `shipped table of ${by.as_of}, ${entry} (${by.vendor}: ${by.source})`;
}

export function formatPricing(rows: readonly PricedModel[]): string {
  const table = [
    ['MODEL', 'PROVIDER', 'INPUT', 'OUTPUT', 'CACHE READ', 'CACHE WRITE', 'REASONING', 'PRICED BY'],
    ...rows.map((r) => [
      r.upstream_model && r.upstream_model !== r.model ? `${r.model} -> ${r.upstream_model}` : r.model,
      r.provider ?? '(none serves it)',
      usd(r.price?.input),
      usd(r.price?.output),
      // What is charged when the price leaves a field out.
      r.price ? usd(r.price.cached_input ?? r.price.input) : '-',
      r.price ? usd(r.price.cache_write ?? r.price.input) : '-',
      r.price ? usd(r.price.reasoning ?? r.price.output) : '-',
      describe(r),
    ]),
  ];
  const widths = table[0].map((_, i) => Math.max(...table.map((line) => line[i].length)));
  const lines = table.map((line) => line.map((cell, i) => (i === line.length - 1 ? cell : cell.padEnd(widths[i]))).join('  '));
  return `${lines.join('\n')}\nUS dollars per million tokens.\n`;
}

export function registerPricingCommand(program: Command, resolveConfig: (file: string | undefined) => Promise<LoadedConfig>): void {
  program
    .command('pricing')
    .description('show what models cost (USD per million tokens) and which price entry applies')
    .argument('[model...]', 'model names as clients send them (default: every model the config names)')
    .option('-c, --config <file>', 'config file (default: $HAPAX_CONFIG, ./hapax.yaml, or the built-in default)')
    .option('--json', 'print JSON')
    .action(async (models: string[], opts: { config?: string; json?: boolean }) => {
      const loaded = await resolveConfig(opts.config);
      const rows = priceModels(loaded.config, models);
      process.stdout.write(opts.json ? `${JSON.stringify(rows, null, 2)}\n` : formatPricing(rows));
    });
}
