/**
 * What a request's tokens are called and cost: the bounded `model` label and the price from the
 * config's `pricing` table. Built once per config load; each target's answer is cached, so the hot
 * path does one WeakMap lookup.
 */
import { listedModels, type HapaxConfig, type PriceConfig } from '../config/schema.ts';
import type { Usage } from '../core/canonical.ts';

/** One provider/model pair, as the catalog hands them out (stable objects per config). */
export interface UsageTarget {
  readonly provider: string;
  readonly model: string;
}

export interface Rate {
  /** The configured model name, or "other" for a name the client made up (bounded cardinality). */
  model: string;
  /** USD per million tokens; undefined when the pricing table does not list the model. */
  price?: PriceConfig;
}

export const OTHER_MODEL = 'other';

export class UsageMeter {
  /** `provider/model` for every model the config names. */
  private readonly configured = new Set<string>();
  private readonly prices: ReadonlyMap<string, PriceConfig>;
  private readonly rates = new WeakMap<UsageTarget, Rate>();

  constructor(config: Pick<HapaxConfig, 'providers' | 'pricing'>) {
    for (const [name, provider] of Object.entries(config.providers)) {
      if (provider.model) this.configured.add(`${name}/${provider.model}`);
      for (const [model, entry] of listedModels(provider)) {
        this.configured.add(`${name}/${model}`);
        // An alias is served (and labelled) as its upstream model, which the config names too.
        if (entry?.model) this.configured.add(`${name}/${entry.model}`);
      }
    }
    this.prices = new Map(Object.entries(config.pricing ?? {}));
  }

  rate(target: UsageTarget): Rate {
    let rate = this.rates.get(target);
    if (!rate) {
      const id = `${target.provider}/${target.model}`;
      const known = this.configured.has(id);
      // `provider/model` is more specific than the bare model name, so it wins. A model the config does
      // not name is still priced when the table lists it: the spend is real, only the label is bounded.
      rate = { model: known ? target.model : OTHER_MODEL, price: this.prices.get(id) ?? this.prices.get(target.model) };
      this.rates.set(target, rate);
    }
    return rate;
  }
}

/**
 * US dollars for a request's tokens at a price per million tokens. Cache reads and writes are part of the
 * prompt tokens and are priced apart (at `cached_input` and `cache_write`, each `input` when not given).
 */
export function costUsd(price: PriceConfig, usage: Usage): number {
  const read = usage.cacheReadTokens ?? 0;
  const written = usage.cacheWriteTokens ?? 0;
  const uncached = Math.max(0, usage.inputTokens - read - written);
  const input = uncached * price.input + read * (price.cached_input ?? price.input) + written * (price.cache_write ?? price.input);
  return (input + usage.outputTokens * price.output) / 1_000_000;
}
