/**
 * Which provider and model serve a request's `model` field. Built once per config load; lookups for
 * known names are cached, so the hot path does one Map lookup.
 *
 * `model` may be empty (preference order, each provider's default model), a provider name (that provider
 * first), a model some provider lists, or `provider/model`. Failover candidates follow in preference order
 * with their own default models.
 */
import type { HapaxConfig } from '../config/schema.ts';
import type { ModelTarget } from '../providers/adapter.ts';
import { validationError } from '../providers/errors.ts';

interface ProviderModels {
  defaultModel: string;
  /** model name → that model's own API key, when the config gives one */
  models: Map<string, string | undefined>;
  apiKey?: string;
}

/** Ordered failover candidates; the first `explicit` ones are what the client asked for by name. */
export type Candidates = readonly ModelTarget[] & { readonly explicit?: number };

export interface CatalogEntry {
  id: string;
  provider: string;
  model: string;
}

export class ModelCatalog {
  private readonly providers = new Map<string, ProviderModels>();
  /** model name → providers that list it, in declaration order */
  private readonly servedBy = new Map<string, string[]>();
  /** preference list (one array per route, by identity) → requested model → candidates */
  private readonly resolved = new WeakMap<readonly string[], Map<string, Candidates>>();
  readonly preference: readonly string[];

  constructor(config: HapaxConfig) {
    for (const [name, provider] of Object.entries(config.providers)) {
      const models = new Map<string, string | undefined>();
      const defaultModel = provider.model as string;
      models.set(defaultModel, undefined);
      if (Array.isArray(provider.models)) for (const model of provider.models) models.set(model, undefined);
      else for (const [model, entry] of Object.entries(provider.models ?? {})) models.set(model, entry?.api_key || undefined);
      this.providers.set(name, { defaultModel, models, apiKey: provider.api_key });
      for (const model of models.keys()) {
        const list = this.servedBy.get(model) ?? [];
        list.push(name);
        this.servedBy.set(model, list);
      }
    }
    this.preference = config.provider_preference ?? Object.keys(config.providers);
  }

  has(provider: string): boolean {
    return this.providers.has(provider);
  }

  /** Every model a client can ask for, as `provider/model` ids. */
  list(): CatalogEntry[] {
    const out: CatalogEntry[] = [];
    for (const [provider, info] of this.providers) {
      for (const model of info.models.keys()) out.push({ id: `${provider}/${model}`, provider, model });
    }
    return out;
  }

  private target(provider: string, model?: string): ModelTarget {
    const info = this.providers.get(provider) as ProviderModels;
    const chosen = model ?? info.defaultModel;
    return { provider, model: chosen, apiKey: info.models.get(chosen) };
  }

  /** Ordered candidates for a request; throws a 400 naming the known models when nothing serves it. */
  resolve(requested: string | undefined, preference: readonly string[] = this.preference): Candidates {
    const key = requested ?? '';
    let byModel = this.resolved.get(preference);
    if (!byModel) {
      byModel = new Map();
      this.resolved.set(preference, byModel);
    }
    let candidates = byModel.get(key);
    if (!candidates) {
      candidates = this.build(key, preference);
      byModel.set(key, candidates);
    }
    return candidates;
  }

  private build(requested: string, preference: readonly string[]): Candidates {
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
    return Object.freeze(Object.assign([...first, ...rest], { explicit: first.length }));
  }
}

const rank = (preference: readonly string[], name: string) => {
  const i = preference.indexOf(name);
  return i < 0 ? preference.length : i;
};
