/**
 * Which provider and model serve a request's `model` field, and in which order to try them. Built once per
 * config load (patterns compiled here); lookups are memoized, so the hot path does one Map lookup.
 *
 * `model` may be empty (preference order, each provider's default model), and is otherwise resolved in
 * this order: a provider name (that provider first, with its default model); `provider/model`; a name
 * some provider lists, as a model or an alias (every such provider, in preference order); then every
 * provider with a matching pattern (`claude-*`), in preference order. Failover candidates follow in
 * preference order with their own default models. An alias or a renaming pattern says which upstream
 * model the name is sent as; otherwise the requested name goes upstream as it is.
 *
 * A routing policy is a preference (tiers: `[[openai, azure], anthropic]`) plus a load-balancing strategy.
 * Each tier of two or more providers gets one LoadBalancer per policy, built here once; candidates carry
 * the spans of such tiers so the dispatcher can reorder them per request.
 */
import { listedModels, modelPatterns, type HapaxConfig, type LoadBalancingConfig, type PreferenceConfig } from '../config/schema.ts';
import type { ModelTarget } from '../providers/adapter.ts';
import { validationError } from '../core/errors.ts';
import { LoadBalancer, preferenceTiers } from './load-balancer.ts';

/** Resolved model names kept per routing policy; past that, resolving is simply redone per request. */
const MAX_MEMOIZED = 1024;

/** How a name reached a provider, for `hapax validate --resolve`. */
export type MatchKind = 'provider' | 'provider/model' | 'exact' | 'alias' | 'pattern' | 'default';

/** What a listed name or a pattern is sent upstream as. */
interface Serving {
  /** The upstream model; for a pattern without a rename, undefined: the requested name itself. */
  upstream?: string;
  /** That model's own API key, when the config gives one. */
  apiKey?: string;
}

interface ModelPattern extends Serving {
  /** As written in the config. */
  source: string;
  matcher: RegExp;
}

interface ProviderModels {
  defaultModel: string;
  /** listed name (model or alias) → how it is served */
  models: Map<string, Serving>;
  /** in the file's order: the first that matches a name serves it */
  patterns: ModelPattern[];
  apiKey?: string;
}

/** A candidate with how it was chosen. */
export interface ExplainedTarget extends ModelTarget {
  match: MatchKind;
  /** The pattern that matched, as written in the config. */
  pattern?: string;
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
  /** `provider/name`: what a client sends to get this model. */
  id: string;
  provider: string;
  /** The name as the config lists it (an alias's own name). */
  model: string;
  /** The model it is sent upstream as (differs from `model` for an alias). */
  upstream: string;
}

export class ModelCatalog {
  private readonly providers = new Map<string, ProviderModels>();
  /** listed name → providers that list it, in declaration order */
  private readonly servedBy = new Map<string, string[]>();
  /** providers with at least one pattern, in declaration order */
  private readonly withPatterns: string[] = [];
  /** routing policy → requested model → candidates */
  private readonly resolved = new WeakMap<RoutingPolicy, Map<string, Candidates>>();
  private readonly weights = new Map<string, number>();
  /** list(), made once per config load (it answers every /v1/models and /api/tags). */
  private entries: readonly CatalogEntry[] | undefined;
  private entriesById: Map<string, CatalogEntry> | undefined;
  /** The top-level provider_preference and load_balancing. */
  readonly defaultPolicy: RoutingPolicy;

  constructor(config: HapaxConfig) {
    for (const [name, provider] of Object.entries(config.providers)) {
      const models = new Map<string, Serving>();
      const defaultModel = provider.model as string;
      models.set(defaultModel, {});
      for (const [model, entry] of listedModels(provider)) models.set(model, { upstream: entry?.model, apiKey: entry?.api_key || undefined });
      const patterns = modelPatterns(provider).map(([source, entry]) => ({
        source,
        matcher: globToRegExp(source),
        upstream: entry?.model,
        apiKey: entry?.api_key || undefined,
      }));
      this.providers.set(name, { defaultModel, models, patterns, apiKey: provider.api_key });
      if (patterns.length > 0) this.withPatterns.push(name);
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

  /** Every model a client can ask for by name, as `provider/model` ids (aliases too; patterns are not models). */
  list(): readonly CatalogEntry[] {
    if (!this.entries) {
      const out: CatalogEntry[] = [];
      for (const [provider, info] of this.providers) {
        for (const [model, serving] of info.models) out.push({ id: `${provider}/${model}`, provider, model, upstream: serving.upstream ?? model });
      }
      this.entries = Object.freeze(out);
    }
    return this.entries;
  }

  /**
   * The request paths of `GET /v1/models/{id}` → the id they show: every listed `provider/model` id and
   * every listed bare name (served as the default policy's first candidate), each raw and percent-encoded
   * the ways clients write them. Exact paths, because the route table has no path parameters.
   */
  retrievePaths(): Map<string, string> {
    const paths = new Map<string, string>();
    const add = (name: string, id: string) => {
      for (const form of new Set([name, encodePathSegment(name), encodeURIComponent(name)])) paths.set(`/v1/models/${form}`, id);
    };
    for (const entry of this.list()) add(entry.id, entry.id);
    for (const name of this.servedBy.keys()) {
      if (this.providers.has(name) || name.includes('/')) continue; // a provider name or a provider/model id means that instead
      add(name, `${this.resolve(name)[0].provider}/${name}`);
    }
    return paths;
  }

  /** A listed model by its `provider/model` id. */
  entry(id: string): CatalogEntry | undefined {
    this.entriesById ??= new Map(this.list().map((e) => [e.id, e]));
    return this.entriesById.get(id);
  }

  /** Every pattern, as `provider/pattern`, for messages and docs: they are not listed as models. */
  patterns(): string[] {
    return this.withPatterns.flatMap((name) => (this.providers.get(name) as ProviderModels).patterns.map((p) => `${name}/${p.source}`));
  }

  /** The first of a provider's patterns that matches a name. */
  private matchPattern(info: ProviderModels, model: string): ModelPattern | undefined {
    for (const pattern of info.patterns) if (pattern.matcher.test(model)) return pattern;
    return undefined;
  }

  /** A provider's target for a name (its default model when none): a listed name, else a pattern, else as is. */
  private target(provider: string, model?: string): ExplainedTarget {
    const info = this.providers.get(provider) as ProviderModels;
    const chosen = model ?? info.defaultModel;
    const listed = info.models.get(chosen);
    if (listed) {
      const match = model === undefined ? 'default' : listed.upstream !== undefined ? 'alias' : 'exact';
      return { provider, model: listed.upstream ?? chosen, apiKey: listed.apiKey, match };
    }
    const pattern = this.matchPattern(info, chosen);
    if (pattern) return { provider, model: pattern.upstream ?? chosen, apiKey: pattern.apiKey, match: 'pattern', pattern: pattern.source };
    return { provider, model: chosen, match: 'provider/model' };
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

  /**
   * The candidates for a name with how each was chosen, unmemoized (for `hapax validate --resolve`);
   * throws the same 400 as `resolve` when nothing serves it.
   */
  explain(requested: string | undefined, policy: RoutingPolicy = this.defaultPolicy): ExplainedTarget[] {
    return this.choose(requested ?? '', policy).all;
  }

  private build(requested: string, policy: RoutingPolicy): Candidates {
    const { all: explained, explicit } = this.choose(requested, policy);
    // The dispatcher and adapters see plain targets; how each matched is for explain() only.
    const all: ModelTarget[] = explained.map(({ provider, model, apiKey }) => ({ provider, model, apiKey }));
    const spans = [...tierSpans(all, 0, explicit, policy), ...tierSpans(all, explicit, all.length, policy)];
    return Object.freeze(Object.assign(all, spans.length > 0 ? { explicit, spans } : { explicit }));
  }

  private choose(requested: string, policy: RoutingPolicy): { all: ExplainedTarget[]; explicit: number } {
    const preference = policy.names;
    const byPreference = (names: readonly string[]) => [...names].sort((a, b) => rank(preference, a) - rank(preference, b));
    const first: ExplainedTarget[] = [];
    if (requested !== '') {
      const slash = requested.indexOf('/');
      const provider = slash > 0 ? requested.slice(0, slash) : '';
      if (this.providers.has(requested)) first.push({ ...this.target(requested), match: 'provider' });
      // `provider/` with nothing after the slash asks for that provider's default model, as its name alone does.
      else if (provider && this.providers.has(provider)) first.push(this.target(provider, requested.slice(slash + 1) || undefined));
      else {
        for (const name of byPreference(this.servedBy.get(requested) ?? [])) first.push(this.target(name, requested));
        // Patterns come after every exact name or alias: a provider that lists the name is preferred.
        const listing = new Set(first.map((t) => t.provider));
        for (const name of byPreference(this.withPatterns)) {
          if (listing.has(name)) continue;
          const pattern = this.matchPattern(this.providers.get(name) as ProviderModels, requested);
          if (pattern) first.push({ provider: name, model: pattern.upstream ?? requested, apiKey: pattern.apiKey, match: 'pattern', pattern: pattern.source });
        }
        if (first.length === 0) {
          const known = this.list().map((e) => e.id);
          const details: Record<string, unknown> = { known_models: known };
          if (this.withPatterns.length > 0) details.model_patterns = this.patterns();
          throw validationError(`model "${requested}" is not served by any configured provider`, 'model', details);
        }
      }
    }
    const chosen = new Set(first.map((t) => t.provider));
    const rest = preference.filter((name) => !chosen.has(name) && this.providers.has(name)).map((name) => this.target(name));
    return { all: [...first, ...rest], explicit: first.length };
  }
}

/**
 * A model-name glob as a RegExp, compiled once per config load. Hand-written: path globbers (picomatch,
 * minimatch) treat `/` as a separator, but `*` must cross it in names like `meta-llama/Llama-3.1-8B`,
 * and the schema allows only `*` and `?`, which makes the translation two replacements.
 */
export function globToRegExp(pattern: string): RegExp {
  const escaped = pattern.replace(/[.+^${}()|[\]\\]/g, '\\$&');
  return new RegExp(`^${escaped.replace(/\*/g, '.*').replace(/\?/g, '.')}$`, 's');
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

/**
 * Percent-encodes what RFC 3986 does not allow in a path segment (its `pchar`), which is how the openai
 * and Anthropic SDKs put an id in a path: `openai/gpt-4o` becomes `openai%2Fgpt-4o`, `:` and `@` stay.
 */
function encodePathSegment(text: string): string {
  return text.replace(/[^A-Za-z0-9\-._~!$&'()*+,;=:@]+/g, encodeURIComponent);
}
