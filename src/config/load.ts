/**
 * Turns YAML text into a validated HapaxConfig: parse → expand ${ENV} → rename camelCase aliases →
 * validate with zod and cross-check names and paths → fold the original Hapax `llm` block into providers.
 * Every problem is reported at once with its key path; nothing half-valid is ever returned.
 */
import { readFile } from 'node:fs/promises';
import { parseDocument } from 'yaml';
import type { z } from 'zod';
import { expandEnv, type ExpandReport } from './env.ts';
import { ConfigError, didYouMean, formatPath } from './errors.ts';
import { blameUnsetVariables, unreadableFile, yamlErrorLines } from './explain.ts';
import { PRESETS, type Preset } from './presets.ts';
import { canonicalizeKeys, keysAt, snake } from './schema-walk.ts';
import { configSchema, listedModels, normalizeRoutePath, PROVIDER_TYPES, type HapaxConfig, type ProviderType } from './schema.ts';

export interface LoadedConfig {
  config: HapaxConfig;
  /** Keys accepted for compatibility but not acted on, and unset ${ENV} references: one line each. */
  warnings: string[];
  source: string;
}

/**
 * Accepted so that existing configs load, but Hapax does not act on them (yet): one warning each when
 * the file sets them. `[]` means "in any element of the list".
 */
const NOT_APPLIED: readonly string[] = [
  'server.write_timeout',
  // HTTP/3 (src/server/http3): quiche fixes the 0-RTT size limit itself.
  'server.http3.max_0rtt_size',
  'llm.max_context_tokens',
  'llm.options',
  'llm.cache',
  'circuit_breaker.test_mode',
  'queue.enabled',
  'queue.state_path',
  'queue.save_interval',
  'processing',
  'routes[].middleware',
  'routes[].headers',
  'routes[].health_check',
];

type Data = Record<string, unknown>;
const isObject = (value: unknown): value is Data => value !== null && typeof value === 'object' && !Array.isArray(value);
const isProviderType = (value: unknown): value is ProviderType => (PROVIDER_TYPES as readonly unknown[]).includes(value);

export async function loadConfigFile(file: string, env: NodeJS.ProcessEnv = process.env): Promise<LoadedConfig> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (error) {
    throw new ConfigError(file, [unreadableFile(file, error)], { unreadable: true });
  }
  return parseConfig(text, file, env);
}

/** The YAML document of a config text, or a ConfigError pointing at the first syntax error. */
function parseYaml(text: string, source: string): unknown {
  // `merge` keeps `<<: *defaults` working, as it did in the original (Go yaml.v3) Hapax.
  const doc = parseDocument(text, { uniqueKeys: true, prettyErrors: true, merge: true });
  if (doc.errors.length === 0) return doc.toJS() ?? {};
  // One syntax error usually cascades, so the first few say all there is; only the first gets an excerpt.
  const first = yamlErrorLines(doc.errors[0], text);
  const lines = [first.problem, ...doc.errors.slice(1, 5).map((e) => `YAML ${e.message.split('\n')[0]}`)];
  if (doc.errors.length > 5) lines.push(`... and ${doc.errors.length - 5} more YAML errors`);
  if (/[{[][^\n]*\$\{/.test(text)) lines.push('hint: inside { } or [ ], quote values that use ${VAR}: {port: "${PORT}"}');
  throw new ConfigError(source, lines, { excerpt: first.excerpt });
}

export function parseConfig(text: string, source = '(inline)', env: NodeJS.ProcessEnv = process.env): LoadedConfig {
  const report: ExpandReport = { problems: [], warnings: [] };
  const raw = expandEnv(parseYaml(text, source), env, report);
  if (!isObject(raw)) throw new ConfigError(source, ['(root): expected a mapping of settings']);

  const problems = [...report.problems];
  const canonical = canonicalizeKeys(configSchema, raw, [], problems, formatPath) as Data;
  const parsed = configSchema.safeParse(canonical);
  if (!parsed.success) problems.push(...parsed.error.issues.flatMap((issue) => describeIssue(issue, canonical)));
  // Cross-checks read the unvalidated data, so they are listed together with the schema's problems.
  problems.push(...crossCheck(canonical));
  if (problems.length > 0 || !parsed.success) throw new ConfigError(source, blameUnsetVariables(problems, report.unset));

  const config = parsed.data;
  const warnings = [...report.warnings];
  foldLegacyLlmBlock(config, canonical, warnings);
  // The original's queue started at `initial_size` and never grew: that is our `max_size`.
  if (config.queue.initial_size !== undefined && !isSet(canonical, ['queue', 'max_size'])) config.queue.max_size = config.queue.initial_size;
  for (const provider of Object.values(config.providers)) {
    provider.model ??= listedModels(provider)[0]?.[0] ?? (provider.type === 'mock' ? 'mock' : undefined);
  }
  for (const key of NOT_APPLIED) {
    if (isSet(canonical, key.split('.'))) warnings.push(`${key}: accepted but not applied by this version of Hapax`);
  }
  return { config, warnings, source };
}

/** What `hapax keys` needs of a config: where managed keys live, and whether the gateway checks keys. */
export interface KeyStoreSettings {
  auth: Pick<HapaxConfig['auth'], 'enabled' | 'key_file'>;
  state: HapaxConfig['state'];
  source: string;
}

const keyStoreSchema = configSchema.pick({ auth: true, state: true });

/**
 * Only `auth.enabled`, `auth.key_file` and `state` of a config file, validated like the whole file would
 * be: a problem elsewhere (an unset ${VAR} under providers, say) does not stop key management. A problem
 * in these settings is reported as `hapax validate` would, naming an unset variable that caused it.
 */
export async function loadKeyStoreSettings(file: string, env: NodeJS.ProcessEnv = process.env): Promise<KeyStoreSettings> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (error) {
    throw new ConfigError(file, [unreadableFile(file, error)], { unreadable: true });
  }
  const document = parseYaml(text, file);
  if (!isObject(document)) throw new ConfigError(file, ['(root): expected a mapping of settings']);
  const problems: string[] = [];
  const canonical = canonicalizeKeys(configSchema, { auth: document.auth, state: document.state }, [], problems, formatPath) as Data;
  const auth = isObject(canonical.auth) ? { enabled: canonical.auth.enabled, key_file: canonical.auth.key_file } : canonical.auth;
  const report: ExpandReport = { problems: [], warnings: [] };
  const wanted = expandEnv({ auth, state: canonical.state }, env, report) as Data;
  problems.push(...report.problems);
  const parsed = keyStoreSchema.safeParse(wanted);
  if (!parsed.success) problems.push(...parsed.error.issues.flatMap((issue) => describeIssue(issue, wanted)));
  if (problems.length > 0 || !parsed.success) throw new ConfigError(file, blameUnsetVariables(problems, report.unset));
  return { auth: parsed.data.auth, state: parsed.data.state, source: file };
}

/** Whether the (canonical, unvalidated) data sets this key path; `name[]` looks into every element. */
function isSet(data: unknown, parts: readonly string[]): boolean {
  if (parts.length === 0) return data !== undefined && data !== null;
  if (!isObject(data)) return false;
  const [head, ...rest] = parts;
  if (head.endsWith('[]')) {
    const list = data[head.slice(0, -2)];
    return Array.isArray(list) && list.some((item) => isSet(item, rest));
  }
  return isSet(data[head], rest);
}

// ---------------------------------------------------------------------------------------------------
// zod issues → one line per problem

const camel = (key: string) => key.replace(/_([a-z0-9])/g, (_, c: string) => c.toUpperCase());

/** zod's type names in the words a YAML author uses. */
function yamlWords(text: string): string {
  return text
    .replace(/\b(record|object)\b/g, 'a mapping')
    .replace(/\barray\b/g, 'a list')
    .replace(/^Invalid (input|option): /, '');
}

/** The value at a key path of the data zod saw; zod's issues do not carry it. */
function valueAt(data: unknown, path: readonly PropertyKey[]): unknown {
  let current = data;
  for (const part of path) {
    if (current === null || typeof current !== 'object') return undefined;
    current = (current as Record<PropertyKey, unknown>)[part];
  }
  return current;
}

function describeIssue(issue: z.core.$ZodIssue, data: unknown, prefix: readonly PropertyKey[] = []): string[] {
  const path = [...prefix, ...issue.path];
  const where = formatPath(path);
  const missing = valueAt(data, path) === undefined;
  switch (issue.code) {
    case 'unrecognized_keys': {
      const known = keysAt(configSchema, path);
      return issue.keys.map((key) => {
        // A camelCase typo (`failureTreshold`) is compared in snake_case and answered in camelCase.
        const isCamel = /[A-Z]/.test(key);
        const hint = didYouMean(isCamel ? snake(key) : key, known);
        const shown = hint && isCamel ? camel(hint) : hint;
        return `${formatPath([...path, key])}: unknown key${shown ? ` (did you mean ${shown}?)` : ''}`;
      });
    }
    case 'invalid_value':
      return [`${where}: ${missing ? 'required, ' : ''}expected one of ${issue.values.map(String).join(', ')}`];
    case 'invalid_type':
      if (missing) return [`${where}: required (${yamlWords(issue.expected)})`];
      return [`${where}: ${yamlWords(issue.message)}`];
    case 'invalid_union': {
      // Each alternative failed on the value itself (e.g. `models: 5`): say what would have been accepted.
      const expected = issue.errors.map((option) =>
        option.length === 1 && option[0].path.length === 0 && (option[0].code === 'invalid_type' || option[0].code === 'invalid_value')
          ? option[0].code === 'invalid_type'
            ? yamlWords(option[0].expected)
            : option[0].values.map((v) => JSON.stringify(v)).join(' or ')
          : undefined,
      );
      if (expected.length > 0 && expected.every((e) => e !== undefined)) return [`${where}: expected ${expected.join(' or ')}`];
      // Otherwise the alternative that got furthest (fewest problems) explains it best.
      const closest = [...issue.errors].sort((a, b) => a.length - b.length)[0] ?? [];
      return closest.length > 0 ? closest.flatMap((inner) => describeIssue(inner, data, path)) : [`${where}: ${issue.message}`];
    }
    case 'invalid_key':
      return [`${where}: ${issue.issues[0]?.message ?? 'invalid name'}`];
    case 'invalid_format':
      if (issue.format === 'url') return [`${where}: expected an http:// or https:// URL`];
      return [`${where}: ${issue.message}`];
    case 'too_small':
    case 'too_big':
      return [`${where}: ${issue.message.charAt(0).toLowerCase()}${issue.message.slice(1)}`];
    default:
      return [`${where}: ${yamlWords(issue.message)}`];
  }
}

// ---------------------------------------------------------------------------------------------------
// The original Hapax `llm` block

interface LegacyEntry {
  /** Key path of the entry, for messages: `llm` or `llm.backup_providers[0]`. */
  at: string;
  provider: unknown;
  model: unknown;
  api_key: unknown;
  endpoint?: unknown;
}

/**
 * The providers an `llm` block names: its own, then `backup_providers`. The original defaulted
 * `provider` to ollama, so a block that sets anything else but no provider still means ollama.
 */
function legacyEntries(llm: unknown): LegacyEntry[] {
  if (!isObject(llm)) return [];
  const entries: LegacyEntry[] = [];
  const configuresOne = ['provider', 'model', 'api_key', 'endpoint'].some((key) => llm[key] !== undefined && llm[key] !== '');
  if (configuresOne) {
    entries.push({ at: 'llm', provider: llm.provider || 'ollama', model: llm.model, api_key: llm.api_key, endpoint: llm.endpoint });
  }
  if (Array.isArray(llm.backup_providers)) {
    llm.backup_providers.forEach((backup, i) => {
      if (isObject(backup)) entries.push({ at: `llm.backup_providers[${i}]`, provider: backup.provider, model: backup.model, api_key: backup.api_key });
    });
  }
  return entries;
}

/**
 * Each provider of the `llm` block becomes an ordinary provider entry (unless `providers` already names
 * it) and, absent a `provider_preference`, they come first in that order. `llm.retry` and
 * `llm.health_check` stand in for the top-level sections when those are not given.
 */
function foldLegacyLlmBlock(config: HapaxConfig, canonical: Data, warnings: string[]): void {
  const llm = config.llm;
  if (!llm) return;
  const entries = legacyEntries(canonical.llm);
  if (entries[0]?.at === 'llm' && !llm.provider) warnings.push('llm.provider: not set; using ollama, as the original Hapax did');
  for (const entry of entries) {
    const name = entry.provider as string; // checked by crossCheck
    if (config.providers[name]) continue;
    config.providers[name] = {
      type: name as ProviderType,
      model: (entry.model as string | undefined) || undefined,
      api_key: (entry.api_key as string | undefined) || undefined,
      base_url: (entry.endpoint as string | undefined) || undefined,
      weight: 1,
      lossless: true,
    };
  }
  if (canonical.provider_preference === undefined && entries.length > 0) {
    const first = entries.map((e) => e.provider as string);
    config.provider_preference = [...new Set([...first, ...Object.keys(config.providers)])];
  }
  const given = <T extends object>(section: T) => Object.fromEntries(Object.entries(section).filter(([, v]) => v !== undefined));
  if (llm.retry && canonical.retry === undefined) config.retry = { ...config.retry, ...given(llm.retry) };
  if (llm.health_check && canonical.health_check === undefined) config.health_check = { ...config.health_check, ...given(llm.health_check) };
}

// ---------------------------------------------------------------------------------------------------
// Checks across keys, on the canonical data before validation (so they run even when it fails)

/** Whether a provider or one of its `models` entries carries an api_key. */
const hasApiKey = (provider: Data) =>
  typeof provider.api_key === 'string' || (isObject(provider.models) && Object.values(provider.models).some((entry) => isObject(entry) && typeof entry.api_key === 'string'));

/** What azure_openai, gemini and preset providers need besides what the schema checks, by key path. */
function cloudProviderProblems(name: string, provider: Data): string[] {
  const problems: string[] = [];
  const at = `providers.${name}`;
  if (provider.preset !== undefined && provider.type !== 'openai_compatible') problems.push(`${at}.preset: only for type openai_compatible`);
  if (provider.azure !== undefined && provider.type !== 'azure_openai') problems.push(`${at}.azure: only for type azure_openai`);
  if (provider.type === 'azure_openai') {
    const azure = isObject(provider.azure) ? provider.azure : {};
    if (!provider.base_url) problems.push(`${at}.base_url: required for type azure_openai (the resource endpoint, https://NAME.openai.azure.com)`);
    const entra = azure.entra_token !== undefined || azure.entra_token_command !== undefined;
    if (azure.entra_token !== undefined && azure.entra_token_command !== undefined) problems.push(`${at}.azure: set entra_token or entra_token_command, not both`);
    if (entra && typeof provider.api_key === 'string') problems.push(`${at}.api_key: set an api_key or an Entra token (azure.entra_token / azure.entra_token_command), not both`);
    if (!entra && !hasApiKey(provider)) problems.push(`${at}.api_key: required for type azure_openai (or azure.entra_token / azure.entra_token_command)`);
  }
  const preset = typeof provider.preset === 'string' ? (PRESETS as Record<string, Preset>)[provider.preset] : undefined;
  if (preset?.needs_key && provider.type === 'openai_compatible' && !hasApiKey(provider)) problems.push(`${at}.api_key: required for preset ${provider.preset} (${preset.title} needs a key)`);
  if (provider.type === 'gemini' && !hasApiKey(provider)) problems.push(`${at}.api_key: required for type gemini (a Google AI Studio key)`);
  return problems;
}

function crossCheck(raw: Data): string[] {
  const problems: string[] = [];
  const providers = isObject(raw.providers) ? raw.providers : {};
  const legacy = legacyEntries(raw.llm);
  const names = new Set(Object.keys(providers));

  for (const entry of legacy) {
    if (typeof entry.provider !== 'string') continue; // the schema reports the type
    if (entry.provider in providers) continue;
    if (!isProviderType(entry.provider)) {
      const hint = didYouMean(entry.provider, [...PROVIDER_TYPES, ...names]);
      problems.push(
        `${entry.at}.provider: expected one of ${PROVIDER_TYPES.join(', ')} or a name under providers${hint ? ` (did you mean ${hint}?)` : ''}`,
      );
      continue;
    }
    names.add(entry.provider);
    if (!entry.model && entry.provider !== 'mock') problems.push(`${entry.at}.model: required`);
  }

  for (const [name, provider] of Object.entries(providers)) {
    if (!isObject(provider)) continue;
    if (provider.type === 'openai_compatible' && !provider.base_url && provider.preset === undefined) {
      problems.push(`providers.${name}.base_url: required for type openai_compatible`);
    }
    problems.push(...cloudProviderProblems(name, provider));
    const listsModels = Array.isArray(provider.models) ? provider.models.length > 0 : isObject(provider.models) && Object.keys(provider.models).length > 0;
    if (isProviderType(provider.type) && provider.type !== 'mock' && provider.model === undefined && !listsModels) {
      problems.push(`providers.${name}.model: required (the provider's default model), or list its models`);
    }
  }
  if (names.size === 0 && legacy.length === 0 && (raw.providers === undefined || raw.providers === null || isObject(raw.providers))) {
    problems.push('providers: no provider configured; add one under providers (or an llm block)');
  }

  const unknownProvider = (name: string, at: string) => {
    const hint = didYouMean(name, names);
    const known = names.size > 0 ? `configured: ${[...names].join(', ')}` : 'no providers are configured';
    problems.push(`${at}: unknown provider "${name}" (${hint ? `did you mean ${hint}?` : known})`);
  };
  // A preference entry is a name or a nested list (one load-balanced tier): provider_preference[0][1].
  const checkNames = (list: unknown, key: string) => {
    if (!Array.isArray(list)) return;
    const seen = new Set<unknown>();
    const check = (name: unknown, at: string) => {
      if (typeof name !== 'string') return;
      if (seen.has(name)) problems.push(`${at}: "${name}" is listed twice`);
      seen.add(name);
      if (!names.has(name)) unknownProvider(name, at);
    };
    list.forEach((entry, i) => {
      if (Array.isArray(entry)) entry.forEach((name, j) => check(name, `${key}[${i}][${j}]`));
      else check(entry, `${key}[${i}]`);
    });
  };
  const checkWeights = (balancing: unknown, key: string) => {
    if (!isObject(balancing) || !isObject(balancing.weights)) return;
    for (const name of Object.keys(balancing.weights)) if (!names.has(name)) unknownProvider(name, `${key}.weights.${name}`);
  };
  checkNames(raw.provider_preference, 'provider_preference');
  checkWeights(raw.load_balancing, 'load_balancing');

  // Every path served from the config: model endpoints and routes. Two owners for one path is a mistake.
  const owners = new Map<string, string>();
  const claim = (path: unknown, at: string) => {
    if (typeof path !== 'string' || !path.startsWith('/')) return; // the schema reports it
    const normalized = normalizeRoutePath(path);
    const previous = owners.get(normalized);
    if (previous) problems.push(`${at}: ${normalized} is already served by ${previous}`);
    else owners.set(normalized, at);
  };
  for (const [name, provider] of Object.entries(providers)) {
    if (!isObject(provider) || !isObject(provider.models)) continue;
    for (const [model, entry] of Object.entries(provider.models)) {
      if (isObject(entry)) claim(entry.endpoint, `providers.${name}.models.${model}.endpoint`);
    }
  }
  if (Array.isArray(raw.routes)) {
    raw.routes.forEach((route, i) => {
      if (!isObject(route)) return;
      claim(route.path, `routes[${i}].path`);
      checkNames(route.provider_preference, `routes[${i}].provider_preference`);
      checkWeights(route.load_balancing, `routes[${i}].load_balancing`);
    });
  }
  return problems;
}
