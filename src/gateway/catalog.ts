/**
 * Which provider and model serve a request's `model` field, and in which order to try them. Built once per
 * config load; lookups for known names are cached, so the hot path does one Map lookup.
 *
 * `model` may be empty (preference order, each provider's default model), a provider name (that provider
 * first), a model some provider lists, or `provider/model`. Failover candidates follow in preference order
 * with their own default models.
 *
 * A routing policy is a preference (tiers: `[[openai, azure], anthropic]`) plus a load-balancing strategy.
 * Each tier of two or more providers gets one LoadBalancer per policy, built here once; candidates carry
 * the spans of such tiers so the dispatcher can reorder them per request.
 */
import { listedModels, type HapaxConfig, type LoadBalancingConfig, type PreferenceConfig } from '../config/schema.ts';
import type { ModelTarget } from '../providers/adapter.ts';
import { validationError } from '../providers/errors.ts';
import { LoadBalancer, preferenceTiers } from './load-balancer.ts';

/** Resolved model names kept per routing policy; past that, resolving is simply redone per request. */
const MAX_MEMOIZED = 1024;

interface ProviderModels {
  defaultModel: string;
  /** model name → that model's own API key, when the config gives one */
  models: Map<string, string | undefined>;
  apiKey?: string;
}

/** A tier whose providers share traffic: its balancer and the weights it balances by. */
export interface BalancedTier {
  readonly balancer: LoadBalancer<ModelTarget>;
  readonly weights: ReadonlyMap<string, number>;
}

/** Candidates [start, end) belong to one balanced tier. */
export interface TierSpan {
  readonly start: number;
  readonly end: number;
  readonly tier: BalancedTier;
}

/**
 * Ordered failover candidates; the first `explicit` ones are what the client asked for by name. `spans`
 * (absent for pure failover) mark runs of candidates the dispatcher reorders with their tier's balancer.
 */
export type Candidates = readonly ModelTarget[] & { readonly explicit?: number; readonly spans?: readonly TierSpan[] };

/** One preference with its balancing, shared by every route that uses it (so a tier's rotation is global). */
export interface RoutingPolicy {
  /** Every provider, in preference order (tiers flattened). */
  readonly names: readonly string[];
  /** Provider → index of its tier. */
  readonly tierOf: ReadonlyMap<string, number>;
  /** Tier index → its balancer; only tiers of two or more providers under a strategy other than priority. */
  readonly balanced: ReadonlyMap<number, BalancedTier>;
}

export interface CatalogEntry {
  id: string;
  provider: string;
  model: string;
}

export class ModelCatalog {
  private readonly providers = new Map<string, ProviderModels>();
  /** model name → providers that list it, in declaration order */
  private readonly servedBy = new Map<string, string[]>();
  /** routing policy → requested model → candidates */
  private readonly resolved = new WeakMap<RoutingPolicy, Map<string, Candidates>>();
  private readonly weights = new Map<string, number>();
  /** list(), made once per config load (it answers every /v1/models and /api/tags). */
  private entries: readonly CatalogEntry[] | undefined;
  /** The top-level provider_preference and load_balancing. */
  readonly defaultPolicy: RoutingPolicy;

  constructor(config: HapaxConfig) {
    for (const [name, provider] of Object.entries(config.providers)) {
      const models = new Map<string, string | undefined>();
      const defaultModel = provider.model as string;
      models.set(defaultModel, undefined);
      for (const [model, entry] of listedModels(provider)) models.set(model, entry?.api_key || undefined);
      this.providers.set(name, { defaultModel, models, apiKey: provider.api_key });
      this.weights.set(name, provider.weight);
      for (const model of models.keys()) {
        const list = this.servedBy.get(model) ?? [];
        list.push(name);
        this.servedBy.set(model, list);
      }
    }
    this.defaultPolicy = this.policy(config.provider_preference, config.load_balancing);
  }

  /**
   * A routing policy for a preference and a balancing setting; absent ones mean the top-level ones (or
   * every provider in declaration order). Call once per config load per route that has its own.
   */
  policy(preference: PreferenceConfig | undefined, balancing: LoadBalancingConfig | undefined): RoutingPolicy {
    const tiers = preferenceTiers(preference ?? [...this.providers.keys()]);
    const strategy = balancing?.strategy ?? 'weighted';
    const tierOf = new Map<string, number>();
    const balanced = new Map<number, BalancedTier>();
    tiers.forEach((tier, index) => {
      for (const name of tier) tierOf.set(name, index);
      if (tier.length < 2 || strategy === 'priority') return;
      const weights = new Map(tier.map((name) => [name, balancing?.weights?.[name] ?? this.weights.get(name) ?? 1]));
      balanced.set(index, { balancer: new LoadBalancer<ModelTarget>({ strategy, nameOf: (target) => target.provider }), weights });
    });
    return { names: tiers.flat(), tierOf, balanced };
  }

  /** Every model a client can ask for, as `provider/model` ids. */
  list(): readonly CatalogEntry[] {
    if (!this.entries) {
      const out: CatalogEntry[] = [];
      for (const [provider, info] of this.providers) {
        for (const model of info.models.keys()) out.push({ id: `${provider}/${model}`, provider, model });
      }
      this.entries = Object.freeze(out);
    }
    return this.entries;
  }

  private target(provider: string, model?: string): ModelTarget {
    const info = this.providers.get(provider) as ProviderModels;
    const chosen = model ?? info.defaultModel;
    return { provider, model: chosen, apiKey: info.models.get(chosen) };
  }

  /** Ordered candidates for a request; throws a 400 naming the known models when nothing serves it. */
  resolve(requested: string | undefined, policy: RoutingPolicy = this.defaultPolicy): Candidates {
    const key = requested ?? '';
    let byModel = this.resolved.get(policy);
    if (!byModel) {
      byModel = new Map();
      this.resolved.set(policy, byModel);
    }
    let candidates = byModel.get(key);
    if (!candidates) {
      candidates = this.build(key, policy);
      // `provider/<any model>` passes through, so clients choose the keys: memoize a bounded number.
      if (byModel.size < MAX_MEMOIZED) byModel.set(key, candidates);
    }
    return candidates;
  }

  private build(requested: string, policy: RoutingPolicy): Candidates {
    const preference = policy.names;
    const first: ModelTarget[] = [];
    if (requested !== '') {
      const slash = requested.indexOf('/');
      const provider = slash > 0 ? requested.slice(0, slash) : '';
      if (this.providers.has(requested)) first.push(this.target(requested));
      else if (provider && this.providers.has(provider)) first.push(this.target(provider, requested.slice(slash + 1)));
      else {
        const serving = this.servedBy.get(requested);
        if (!serving) {
          const known = this.list().map((e) => e.id);
          throw validationError(`model "${requested}" is not served by any configured provider`, 'model', { known_models: known });
        }
        const ordered = [...serving].sort((a, b) => rank(preference, a) - rank(preference, b));
        for (const name of ordered) first.push(this.target(name, requested));
      }
    }
    const chosen = new Set(first.map((t) => t.provider));
    const rest = preference.filter((name) => !chosen.has(name) && this.providers.has(name)).map((name) => this.target(name));
    const all = [...first, ...rest];
    const spans = [...tierSpans(all, 0, first.length, policy), ...tierSpans(all, first.length, all.length, policy)];
    return Object.freeze(Object.assign(all, spans.length > 0 ? { explicit: first.length, spans } : { explicit: first.length }));
  }
}

/** Runs of two or more neighbours in [from, to) that share a balanced tier. */
function tierSpans(targets: readonly ModelTarget[], from: number, to: number, policy: RoutingPolicy): TierSpan[] {
  const spans: TierSpan[] = [];
  let start = from;
  while (start < to) {
    const index = policy.tierOf.get(targets[start].provider);
    let end = start + 1;
    while (end < to && index !== undefined && policy.tierOf.get(targets[end].provider) === index) end++;
    const tier = index === undefined ? undefined : policy.balanced.get(index);
    if (tier && end - start > 1) spans.push({ start, end, tier });
    start = end;
  }
  return spans;
}

const rank = (preference: readonly string[], name: string) => {
  const i = preference.indexOf(name);
  return i < 0 ? preference.length : i;
};
