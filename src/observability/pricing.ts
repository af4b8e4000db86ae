/**
 * Which price a provider/model pair is charged at: the config's `pricing` entries first, then the table
 * Hapax ships (price-table.ts). Built once per config load.
 *
 * The rule, in order (docs/cost-control.md):
 *   1. an entry of the config before any shipped one;
 *   2. an entry naming the provider (`openai/gpt-4o`, `ollama/*`) before one that names only the model;
 *   3. an exact name before a pattern;
 *   4. between patterns, the one with more characters that are not wildcards (`claude-opus-*` over `claude-*`),
 *      then the one written first;
 *   5. the name as sent before the forms it is also known by: a cloud id (`us.anthropic.…-v1:0`,
 *      `…@20250929`) as the vendor's model id, a dated snapshot (`-20250929`, `-2024-08-06`, `-latest`) as the
 *      model it snapshots.
 */
import { globToRegExp } from '../gateway/catalog.ts';
import { isModelPattern, type PriceConfig } from '../config/schema.ts';
import { AS_OF, PRICE_SHEETS } from './price-table.ts';

export interface PriceMatch {
  price: PriceConfig;
  /** `config`: the config's `pricing`; `shipped`: Hapax's table of AS_OF. */
  origin: 'config' | 'shipped';
  /** The entry's key as written (`claude-*`, `openai/gpt-4o`). */
  entry: string;
  /** Whether the entry is a pattern. */
  pattern: boolean;
  /** The name the entry matched: the model as sent, or a form of it (see `modelForms`). */
  matched: string;
  /** Shipped entries: who sells it and where the figure was read. */
  vendor?: string;
  source?: string;
}

interface Entry {
  key: string;
  price: PriceConfig;
  origin: PriceMatch['origin'];
  vendor?: string;
  source?: string;
  matcher?: RegExp;
  literal: number;
}

/** Exact entries by key, and the patterns in the order written. */
interface Layer {
  exact: Map<string, Entry>;
  patterns: Entry[];
}

// Bedrock model ids: an optional cross-region prefix, the vendor, the model, a version suffix.
const BEDROCK_ID = /^(?:(?:us|eu|apac|au|jp|ca|us-gov|global)\.)?(?:anthropic|meta|mistral|amazon|cohere|deepseek|openai|ai21|writer|qwen)\.(.+?)(?:-v\d+(?::\d+)?|:\d+)?$/;
const SNAPSHOT = /-(?:\d{8}|\d{4}-\d{2}-\d{2}|latest)$/;

/**
 * The names a model id is also known by, most specific first: the id as sent, without a `models/` prefix
 * (Gemini), as the vendor's id when it is a Bedrock or Vertex one, and without a snapshot date.
 */
export function modelForms(model: string): string[] {
  const forms = [model];
  let name = model.toLowerCase().replace(/^models\//, '');
  forms.push(name);
  const bedrock = BEDROCK_ID.exec(name);
  if (bedrock) forms.push((name = bedrock[1]));
  // Vertex writes the snapshot after an @ (claude-sonnet-4-5@20250929); @latest and @default name no snapshot.
  const at = name.indexOf('@');
  if (at > 0) {
    const version = name.slice(at + 1);
    forms.push((name = /^(latest|default)$/.test(version) ? name.slice(0, at) : `${name.slice(0, at)}-${version}`));
  }
  const undated = name.replace(SNAPSHOT, '');
  if (undated !== name && undated !== '') forms.push(undated);
  return [...new Set(forms)];
}

function layer(entries: Iterable<[string, PriceConfig]>, origin: PriceMatch['origin'], sheet?: { vendor: string; source: string }): Layer {
  const exact = new Map<string, Entry>();
  const patterns: Entry[] = [];
  for (const [key, price] of entries) {
    const pattern = isModelPattern(key);
    const entry: Entry = {
      key,
      price,
      origin,
      vendor: sheet?.vendor,
      source: sheet?.source,
      literal: key.replace(/[*?]/g, '').length,
      matcher: pattern ? globToRegExp(key) : undefined,
    };
    if (pattern) patterns.push(entry);
    else if (!exact.has(key)) exact.set(key, entry);
  }
  return { exact, patterns };
}

export class PriceBook {
  private readonly layers: Layer[];
  /** Every provider name of the config: `openai/gpt-4o` is qualified only when `openai` is one of them. */
  private readonly providers: ReadonlySet<string>;

  constructor(pricing: Readonly<Record<string, PriceConfig>> | undefined, providers: Iterable<string>) {
    this.providers = new Set(providers);
    const shipped: Layer = { exact: new Map(), patterns: [] };
    for (const sheet of PRICE_SHEETS) {
      const part = layer(Object.entries(sheet.models), 'shipped', sheet);
      for (const [key, entry] of part.exact) if (!shipped.exact.has(key)) shipped.exact.set(key, entry);
      shipped.patterns.push(...part.patterns);
    }
    this.layers = [layer(Object.entries(pricing ?? {}), 'config'), shipped];
  }

  /** The date the shipped table was read from the providers' pages. */
  static readonly asOf = AS_OF;

  /** The price of `model` served by `provider`, or undefined when neither the config nor the table has one. */
  lookup(provider: string, model: string): PriceMatch | undefined {
    const forms = modelForms(model);
    for (const layer of this.layers) {
      const found = this.inLayer(layer, provider, forms);
      if (found) return found;
    }
    return undefined;
  }

  private inLayer(layer: Layer, provider: string, forms: readonly string[]): PriceMatch | undefined {
    // Provider-qualified names first (rule 2), then exact before patterns (rule 3), forms in order (rule 5).
    const prefixes = this.providers.has(provider) ? [`${provider}/`, ''] : [''];
    for (const prefix of prefixes) {
      for (const form of forms) {
        const entry = layer.exact.get(prefix + form);
        if (entry) return matchOf(entry, form);
      }
      let best: { entry: Entry; form: string } | undefined;
      for (const entry of layer.patterns) {
        // A qualified pattern (`ollama/*`) is tried on `provider/model`; a bare one on the model alone.
        const qualified = entry.key.includes('/') && this.providers.has(entry.key.slice(0, entry.key.indexOf('/')));
        if (qualified !== (prefix !== '')) continue;
        if (best && best.entry.literal >= entry.literal) continue;
        const form = forms.find((f) => (entry.matcher as RegExp).test(prefix + f));
        if (form !== undefined) best = { entry, form };
      }
      if (best) return matchOf(best.entry, best.form);
    }
    return undefined;
  }
}

function matchOf(entry: Entry, form: string): PriceMatch {
  return {
    price: entry.price,
    origin: entry.origin,
    entry: entry.key,
    pattern: entry.matcher !== undefined,
    matched: form,
    ...(entry.vendor ? { vendor: entry.vendor, source: entry.source } : {}),
  };
}
