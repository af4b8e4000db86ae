/**
 * The built-in config used when no file is given: real providers whose keys are in the environment,
 * followed by the deterministic mock, so a fresh install answers its first request with no key at all.
 */
import { parseConfig, type LoadedConfig } from './load.ts';

export function defaultConfig(env: NodeJS.ProcessEnv = process.env): LoadedConfig {
  const providers: string[] = [];
  const preference: string[] = [];
  if (env.OPENAI_API_KEY) {
    providers.push('  openai: {type: openai, api_key: "${OPENAI_API_KEY}", model: gpt-4o-mini}');
    preference.push('openai');
  }
  if (env.ANTHROPIC_API_KEY) {
    providers.push('  anthropic: {type: anthropic, api_key: "${ANTHROPIC_API_KEY}", model: claude-3-5-haiku-latest}');
    preference.push('anthropic');
  }
  providers.push('  mock: {type: mock, model: mock}');
  preference.push('mock');
  const yaml = `server: {host: 0.0.0.0, port: 8080}\nproviders:\n${providers.join('\n')}\nprovider_preference: [${preference.join(', ')}]\n`;
  return { ...parseConfig(yaml, '(built-in default)', env) };
}
