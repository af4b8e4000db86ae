/**
 * What a request's tokens are called and cost: the bounded `model` label and the price (the config's
 * `pricing` over the shipped table, see pricing.ts). Built once per config load; each target's answer is
 * cached, so the hot path does one WeakMap lookup.
 */
import { listedModels, type HapaxConfig, type PriceConfig } from '../config/schema.ts';
import type { Usage } from '../core/canonical.ts';
import { PriceBook, type PriceMatch } from './pricing.ts';

/** One provider/model pair, as the catalog hands them out (stable objects per config). */
export interface UsageTarget {
  readonly provider: string;
  readonly model: string;
}

export interface Rate {
  /** The configured model name, or "other" for a name the client made up (bounded cardinality). */
  model: string;
  /** USD per million tokens; undefined when neither the config nor the shipped table prices the model. */
  price?: PriceConfig;
  /** Which entry priced it. */
  match?: PriceMatch;
  /** Set once the missing price was logged, so the log says it once per model and config load. */
  unpricedLogged?: boolean;
}

export const OTHER_MODEL = 'other';
const QUARTER_HOUR = 15 * 60_000;

export class UsageMeter {
  /** `provider/model` for every model the config names. */
  private readonly configured = new Set<string>();
  readonly prices: PriceBook;
  private readonly rates = new WeakMap<UsageTarget, Rate>();

  /** Today's date in budgets.time_zone, and until when it holds (see day()). */
  private readonly dayFormat: Intl.DateTimeFormat;
  private today = '';
  private todayUntil = 0;
  private readonly routeLabels = new WeakMap<object, string>();

  constructor(config: Pick<HapaxConfig, 'providers' | 'pricing'> & { budgets?: { time_zone: string } }) {
    // en-CA writes dates as YYYY-MM-DD.
    this.dayFormat = new Intl.DateTimeFormat('en-CA', { timeZone: config.budgets?.time_zone ?? 'UTC', year: 'numeric', month: '2-digit', day: '2-digit' });
    for (const [name, provider] of Object.entries(config.providers)) {
      if (provider.model) this.configured.add(`${name}/${provider.model}`);
      for (const [model, entry] of listedModels(provider)) {
        this.configured.add(`${name}/${model}`);
        // An alias is served (and labelled) as its upstream model, which the config names too.
        if (entry?.model) this.configured.add(`${name}/${entry.model}`);
      }
    }
    this.prices = new PriceBook(config.pricing, Object.keys(config.providers));
  }

  /**
   * The day a usage row is counted under, in budgets.time_zone (as budget windows are). Time zone offsets
   * are whole quarter hours, so the date is recomputed once per quarter hour, not per request.
   */
  day(now = Date.now()): string {
    if (now >= this.todayUntil || now < this.todayUntil - QUARTER_HOUR) {
      this.today = this.dayFormat.format(now);
      this.todayUntil = (Math.floor(now / QUARTER_HOUR) + 1) * QUARTER_HOUR;
    }
    return this.today;
  }

  /** A route's metrics_labels as one report dimension: `department=marketing,team=web`. */
  labelOf(route: { metricsLabels: Readonly<Record<string, string>> }): string {
    let label = this.routeLabels.get(route);
    if (label === undefined) {
      label = Object.entries(route.metricsLabels)
        .sort(([a], [b]) => a.localeCompare(b))
        .map(([name, value]) => `${name}=${value}`)
        .join(',');
      this.routeLabels.set(route, label);
    }
    return label;
  }

  rate(target: UsageTarget): Rate {
    let rate = this.rates.get(target);
    if (!rate) {
      const id = `${target.provider}/${target.model}`;
      const known = this.configured.has(id);
      // A model the config does not name is still priced when a table lists it: the spend is real, only
      // the label is bounded.
      const match = this.prices.lookup(target.provider, target.model);
      rate = { model: known ? target.model : OTHER_MODEL, price: match?.price, match };
      this.rates.set(target, rate);
    }
    return rate;
  }
}

/**
 * US dollars for a request's tokens at a price per million tokens. Cache reads and writes are part of the
 * prompt tokens and are priced apart (at `cached_input` and `cache_write`, each `input` when not given);
 * reasoning tokens are part of the output, priced at `reasoning` when given.
 */
export function costUsd(price: PriceConfig, usage: Usage): number {
  const read = usage.cacheReadTokens ?? 0;
  const written = usage.cacheWriteTokens ?? 0;
  const uncached = Math.max(0, usage.inputTokens - read - written);
  const input = uncached * price.input + read * (price.cached_input ?? price.input) + written * (price.cache_write ?? price.input);
  const reasoning = price.reasoning === undefined ? 0 : Math.min(usage.reasoningTokens ?? 0, usage.outputTokens);
  const output = (usage.outputTokens - reasoning) * price.output + reasoning * (price.reasoning ?? price.output);
  return (input + output) / 1_000_000;
}
