/**
 * Turns YAML text into a validated HapaxConfig: parse → expand ${ENV} → rename camelCase aliases →
 * validate with zod → fold the original Hapax `llm` block into providers → cross-checks.
 * Every problem is reported with its key path; nothing half-valid is ever returned.
 */
import { readFile } from 'node:fs/promises';
import { parseDocument } from 'yaml';
import type { z } from 'zod';
import { expandEnv } from './env.ts';
import { ConfigError, didYouMean, formatPath } from './errors.ts';
import { canonicalizeKeys, keysAt } from './schema-walk.ts';
import { configSchema, PROVIDER_TYPES, type HapaxConfig, type ProviderType } from './schema.ts';

export interface LoadedConfig {
  config: HapaxConfig;
  /** Keys that are accepted for compatibility but not acted on (yet): one warning each at start-up. */
  warnings: string[];
  source: string;
}

/** Accepted so that existing configs load, but Hapax does not act on them yet. */
const NOT_APPLIED: ReadonlyArray<readonly [string, (c: HapaxConfig) => unknown]> = [
  ['server.write_timeout', (c) => c.server.write_timeout],
  ['server.http3', (c) => c.server.http3],
  ['server.tls', (c) => c.server.tls],
  ['server.workers', (c) => c.server.workers],
  ['llm.max_context_tokens', (c) => c.llm?.max_context_tokens],
  ['llm.cache', (c) => c.llm?.cache],
  ['queue', (c) => c.queue],
  ['processing', (c) => c.processing],
  ['cache', (c) => c.cache],
  ['state', (c) => c.state],
  ['pricing', (c) => c.pricing],
  ['tracing', (c) => c.tracing],
  ['routes[].middleware', (c) => c.routes?.some((r) => r.middleware)],
  ['routes[].headers', (c) => c.routes?.some((r) => r.headers)],
  ['routes[].health_check', (c) => c.routes?.some((r) => r.health_check)],
];

export async function loadConfigFile(file: string, env: NodeJS.ProcessEnv = process.env): Promise<LoadedConfig> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (error) {
    throw new ConfigError(file, [`cannot read file: ${(error as NodeJS.ErrnoException).code ?? String(error)}`]);
  }
  return parseConfig(text, file, env);
}

export function parseConfig(text: string, source = '(inline)', env: NodeJS.ProcessEnv = process.env): LoadedConfig {
  const doc = parseDocument(text, { uniqueKeys: true, prettyErrors: true });
  if (doc.errors.length > 0) {
    throw new ConfigError(source, doc.errors.map((e) => `YAML ${e.message.split('\n')[0]}`));
  }
  const raw = expandEnv(doc.toJS() ?? {}, env);
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) {
    throw new ConfigError(source, ['(root): expected a mapping of settings']);
  }

  const problems: string[] = [];
  const canonical = canonicalizeKeys(configSchema, raw, [], problems, formatPath);
  const parsed = configSchema.safeParse(canonical);
  if (!parsed.success) problems.push(...parsed.error.issues.flatMap(describeIssue));
  if (problems.length > 0 || !parsed.success) throw new ConfigError(source, problems);

  const config = parsed.data;
  foldLegacyLlmBlock(config);
  problems.push(...crossCheck(config));
  if (problems.length > 0) throw new ConfigError(source, problems);

  const warnings = NOT_APPLIED.filter(([, present]) => present(config)).map(
    ([key]) => `${key}: accepted but not applied by this version of Hapax`,
  );
  return { config, warnings, source };
}

function describeIssue(issue: z.core.$ZodIssue): string[] {
  if (issue.code === 'unrecognized_keys') {
    const known = keysAt(configSchema, issue.path);
    return issue.keys.map((key) => {
      const hint = didYouMean(key, known);
      return `${formatPath([...issue.path, key])}: unknown key${hint ? ` (did you mean ${hint}?)` : ''}`;
    });
  }
  const where = formatPath(issue.path);
  if (issue.code === 'invalid_value') {
    return [`${where}: expected one of ${issue.values.map(String).join(', ')}`];
  }
  if (issue.code === 'invalid_type' && issue.message.includes('received undefined')) {
    return [`${where}: required (${issue.expected})`];
  }
  return [`${where}: ${issue.message.replace(/^Invalid (input|option): /, '')}`];
}

/**
 * The original Hapax configured one provider under `llm` with `backup_providers`. Each becomes an
 * ordinary provider entry (unless `providers` already names it) and, absent a preference, the order.
 */
function foldLegacyLlmBlock(config: HapaxConfig): void {
  const llm = config.llm;
  if (!llm?.provider) return;
  const entries = [
    { provider: llm.provider, model: llm.model, api_key: llm.api_key, endpoint: llm.endpoint },
    ...(llm.backup_providers ?? []).map((b) => ({ ...b, endpoint: undefined as string | undefined })),
  ];
  for (const entry of entries) {
    if (config.providers[entry.provider]) continue;
    if (!(PROVIDER_TYPES as readonly string[]).includes(entry.provider)) continue; // reported by crossCheck
    config.providers[entry.provider] = {
      type: entry.provider as ProviderType,
      model: entry.model,
      api_key: entry.api_key,
      base_url: entry.endpoint || undefined,
      weight: 1,
    };
  }
  config.provider_preference ??= entries.map((e) => e.provider);
}

const DEFAULT_MODEL: Partial<Record<ProviderType, string>> = { mock: 'mock' };

function crossCheck(config: HapaxConfig): string[] {
  const problems: string[] = [];
  const names = Object.keys(config.providers);
  for (const [name, provider] of Object.entries(config.providers)) {
    const modelNames = Array.isArray(provider.models) ? provider.models : Object.keys(provider.models ?? {});
    provider.model ??= modelNames[0] ?? DEFAULT_MODEL[provider.type];
    if (!provider.model) problems.push(`providers.${name}.model: required (the provider's default model)`);
    if (provider.type === 'openai_compatible' && !provider.base_url) {
      problems.push(`providers.${name}.base_url: required for type openai_compatible`);
    }
  }
  const checkNames = (list: string[] | undefined, key: string) =>
    list?.forEach((name, i) => {
      if (config.providers[name]) return;
      const hint = didYouMean(name, names);
      problems.push(`${key}[${i}]: unknown provider "${name}"${hint ? ` (did you mean ${hint}?)` : ''}`);
    });
  checkNames(config.provider_preference, 'provider_preference');
  config.routes?.forEach((route, i) => checkNames(route.provider_preference, `routes[${i}].provider_preference`));
  const llm = config.llm;
  if (llm?.provider && !config.providers[llm.provider]) {
    problems.push(`llm.provider: expected one of ${PROVIDER_TYPES.join(', ')} or a name under providers`);
  }
  const seen = new Map<string, number>();
  config.routes?.forEach((route, i) => {
    const previous = seen.get(route.path);
    if (previous !== undefined) problems.push(`routes[${i}].path: ${route.path} is already routes[${previous}].path`);
    seen.set(route.path, i);
  });
  return problems;
}
