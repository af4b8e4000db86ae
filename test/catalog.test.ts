/** Model resolution without sockets: which provider and upstream model a request's `model` reaches, in order. */
import { describe, expect, it } from 'vitest';
import { parseConfig } from '../src/config/load.ts';
import { ModelCatalog, globToRegExp } from '../src/gateway/catalog.ts';
import type { GatewayError } from '../src/core/errors.ts';

const catalogOf = (yaml: string) => new ModelCatalog(parseConfig(yaml, 'test.yaml', {}).config);

/** provider/model (match) per candidate, the shape `hapax validate --resolve` prints. */
const explained = (catalog: ModelCatalog, model: string | undefined) =>
  catalog.explain(model).map((c) => `${c.provider}/${c.model} (${c.pattern ? `pattern ${c.pattern}` : c.match})`);

const AGENT_CONFIG = `
providers:
  anthropic:
    type: anthropic
    model: claude-sonnet-4-5
    models: [claude-sonnet-4-5, "claude-*"]
  openai:
    type: openai
    model: gpt-4o
    models:
      gpt-4o: null
      claude-opus-5-5: gpt-5
      claude-haiku-9: {model: gpt-5-mini, api_key: sk-model-key}
      "gpt-4o*": {}
      "*": {}
  local:
    type: ollama
    model: llama3:8b
    models: {"claude-*-haiku-*": qwen3:4b}
provider_preference: [openai, anthropic, local]
`;

describe('resolving model names', () => {
  const catalog = catalogOf(AGENT_CONFIG);

  it('sends an alias upstream under its target name, before any pattern', () => {
    expect(explained(catalog, 'claude-opus-5-5')).toEqual([
      'openai/gpt-5 (alias)',
      'anthropic/claude-opus-5-5 (pattern claude-*)',
      'local/llama3:8b (default)',
    ]);
    const [first] = catalog.resolve('claude-opus-5-5');
    expect(first).toEqual({ provider: 'openai', model: 'gpt-5', apiKey: undefined });
  });

  it("uses an alias entry's own api_key", () => {
    expect(catalog.resolve('claude-haiku-9')[0]).toEqual({ provider: 'openai', model: 'gpt-5-mini', apiKey: 'sk-model-key' });
  });

  it('prefers providers that list the name exactly, then patterns in preference order', () => {
    // anthropic lists it exactly; openai only matches `*`, local's pattern does not match.
    expect(explained(catalog, 'claude-sonnet-4-5')).toEqual([
      'anthropic/claude-sonnet-4-5 (exact)',
      'openai/claude-sonnet-4-5 (pattern *)',
      'local/llama3:8b (default)',
    ]);
    expect(catalog.resolve('claude-sonnet-4-5').explicit).toBe(2);
  });

  it("takes a provider's first matching pattern, in the file's order, and its rename", () => {
    expect(explained(catalog, 'gpt-4o-mini')).toEqual(['openai/gpt-4o-mini (pattern gpt-4o*)', 'anthropic/claude-sonnet-4-5 (default)', 'local/llama3:8b (default)']);
    expect(explained(catalog, 'claude-3-haiku-2024')).toEqual([
      'openai/claude-3-haiku-2024 (pattern *)',
      'anthropic/claude-3-haiku-2024 (pattern claude-*)',
      'local/qwen3:4b (pattern claude-*-haiku-*)',
    ]);
  });

  it('keeps provider names and provider/model first, renaming a listed alias or pattern there too', () => {
    expect(explained(catalog, 'local')).toEqual(['local/llama3:8b (provider)', 'openai/gpt-4o (default)', 'anthropic/claude-sonnet-4-5 (default)']);
    expect(explained(catalog, 'openai/claude-opus-5-5')[0]).toBe('openai/gpt-5 (alias)');
    expect(explained(catalog, 'local/claude-x-haiku-1')[0]).toBe('local/qwen3:4b (pattern claude-*-haiku-*)');
    expect(explained(catalog, 'anthropic/some-new-model')[0]).toBe('anthropic/some-new-model (provider/model)');
    // Nothing after the slash: the provider's default model, never an empty name sent upstream.
    expect(explained(catalog, 'local/')[0]).toBe('local/llama3:8b (default)');
  });

  it('without a model, tries every provider with its default model', () => {
    expect(explained(catalog, undefined)).toEqual(['openai/gpt-4o (default)', 'anthropic/claude-sonnet-4-5 (default)', 'local/llama3:8b (default)']);
  });

  it('follows a route policy of its own', () => {
    const policy = catalog.policy(['local', 'anthropic'], undefined);
    expect(catalog.explain('claude-opus-5-5', policy).map((c) => `${c.provider}/${c.model}`)).toEqual(['openai/gpt-5', 'anthropic/claude-opus-5-5', 'local/llama3:8b']);
  });

  it('refuses a name nothing serves with a 400 listing the models and the patterns', () => {
    const strict = catalogOf(`
providers:
  anthropic: {type: anthropic, model: claude-sonnet-4-5, models: ["claude-*"]}
  openai: {type: openai, models: {gpt-4o: null, fast: gpt-4o-mini}}
`);
    let error: GatewayError | undefined;
    try {
      strict.resolve('llama-4');
    } catch (e) {
      error = e as GatewayError;
    }
    expect(error?.status).toBe(400);
    expect(error?.message).toBe('model "llama-4" is not served by any configured provider');
    expect(error?.details).toEqual({
      field: 'model',
      known_models: ['anthropic/claude-sonnet-4-5', 'openai/gpt-4o', 'openai/fast'],
      model_patterns: ['anthropic/claude-*'],
    });
    // The default model is the first listed name, an alias included: sent as its target.
    expect(strict.resolve('openai')[0]).toMatchObject({ provider: 'openai', model: 'gpt-4o' });
  });

  it('lists names and aliases, never patterns', () => {
    expect(catalog.list().map((e) => `${e.id} -> ${e.upstream}`)).toEqual([
      'anthropic/claude-sonnet-4-5 -> claude-sonnet-4-5',
      'openai/gpt-4o -> gpt-4o',
      'openai/claude-opus-5-5 -> gpt-5',
      'openai/claude-haiku-9 -> gpt-5-mini',
      'local/llama3:8b -> llama3:8b',
    ]);
    expect(catalog.patterns()).toEqual(['anthropic/claude-*', 'openai/gpt-4o*', 'openai/*', 'local/claude-*-haiku-*']);
  });
});

describe('the work done per config load, not per request', () => {
  it('compiles patterns when the catalog is built and memoizes what names resolve to', () => {
    const config = parseConfig(AGENT_CONFIG, 'test.yaml', {}).config;
    // Counts `new RegExp(...)` while the catalog is built and used.
    const Original = globalThis.RegExp;
    let compiled = 0;
    globalThis.RegExp = new Proxy(Original, {
      construct(target, args: [string, string?]) {
        compiled++;
        return Reflect.construct(target, args) as object;
      },
    });
    try {
      const catalog = new ModelCatalog(config);
      // One per pattern: claude-*, gpt-4o*, *, claude-*-haiku-*.
      expect(compiled).toBe(4);
      const first = catalog.resolve('claude-3-haiku-2024');
      for (let i = 0; i < 100; i++) catalog.resolve(`claude-new-${i}`);
      expect(compiled).toBe(4);
      expect(catalog.resolve('claude-3-haiku-2024')).toBe(first);
      expect(Object.isFrozen(first)).toBe(true);
    } finally {
      globalThis.RegExp = Original;
    }
  });

  it('stops memoizing past its bound, and still resolves', () => {
    const catalog = catalogOf('providers:\n  p: {type: openai, model: m, models: ["*"]}\n');
    for (let i = 0; i < 1100; i++) catalog.resolve(`name-${i}`);
    expect(catalog.resolve('name-1')).toBe(catalog.resolve('name-1'));
    const late = catalog.resolve('name-1099');
    expect(late[0]).toMatchObject({ provider: 'p', model: 'name-1099' });
    expect(catalog.resolve('name-1099')).not.toBe(late);
  });
});

describe('model-name globs', () => {
  it('lets * cross / and ?, and nothing else, be a wildcard', () => {
    expect(globToRegExp('meta-llama/*').test('meta-llama/Llama-3.1-8B')).toBe(true);
    expect(globToRegExp('*-8B').test('meta-llama/Llama-3.1-8B')).toBe(true);
    expect(globToRegExp('gpt-4o?').test('gpt-4oX')).toBe(true);
    expect(globToRegExp('gpt-4o?').test('gpt-4o')).toBe(false);
    // Regex syntax in a name is literal.
    expect(globToRegExp('gpt-4.1*').test('gpt-4x1-mini')).toBe(false);
    expect(globToRegExp('a+b(c)|d$^*').test('a+b(c)|d$^tail')).toBe(true);
    expect(globToRegExp('claude-*').test('xclaude-3')).toBe(false);
  });
});
