/**
 * The prices Hapax ships: US dollars per million tokens for popular models of the providers it speaks, as
 * their pricing pages listed them on AS_OF. Data only; matching lives in pricing.ts. Config `pricing`
 * overrides and extends this table (docs/cost-control.md). Names are the providers' own model ids; Bedrock
 * and Vertex ids of the same models (`us.anthropic.claude-sonnet-4-5-20250929-v1:0`,
 * `claude-sonnet-4-5@20250929`) and dated snapshots are matched to these names by pricing.ts.
 *
 * Standard (pay-as-you-go, non-batch) rates; for models with a long-context tier, the rate for prompts
 * under the threshold. `cache_write` is Anthropic's 5-minute cache write. Providers whose reasoning tokens
 * cost the same as output give no `reasoning` price.
 */
import type { PriceConfig } from '../config/schema.ts';

export const AS_OF = '2026-12-03';

export interface PriceSheet {
  /** Who sells it, as docs and `hapax pricing` name it. */
  vendor: string;
  /** Where the figures were read. */
  source: string;
  models: Readonly<Record<string, PriceConfig>>;
}

const anthropic = (input: number, output: number, cacheRead: number): PriceConfig => ({
  input,
  output,
  cached_input: cacheRead,
  // Anthropic prices a 5-minute cache write at 1.25× the input price on every model.
  cache_write: Math.round(input * 1.25 * 10_000) / 10_000,
});

export const PRICE_SHEETS: readonly PriceSheet[] = [
  {
    vendor: 'OpenAI',
    source: 'https://platform.openai.com/docs/pricing',
    models: {
      'gpt-5.5': { input: 5, output: 30, cached_input: 0.5 },
      'gpt-5.5-pro': { input: 30, output: 180 },
      'gpt-5.4': { input: 2.5, output: 15, cached_input: 0.25 },
      'gpt-5.4-mini': { input: 0.75, output: 4.5, cached_input: 0.075 },
      'gpt-5.4-nano': { input: 0.2, output: 1.25, cached_input: 0.02 },
      'gpt-5.4-pro': { input: 30, output: 180 },
      'gpt-5.2': { input: 1.75, output: 14, cached_input: 0.175 },
      'gpt-5.1': { input: 1.25, output: 10, cached_input: 0.125 },
      'gpt-5': { input: 1.25, output: 10, cached_input: 0.125 },
      'gpt-5-codex': { input: 1.25, output: 10, cached_input: 0.125 },
      'gpt-5-mini': { input: 0.25, output: 2, cached_input: 0.025 },
      'gpt-5-nano': { input: 0.05, output: 0.4, cached_input: 0.005 },
      'gpt-5-pro': { input: 15, output: 120 },
      'gpt-4.1': { input: 2, output: 8, cached_input: 0.5 },
      'gpt-4.1-mini': { input: 0.4, output: 1.6, cached_input: 0.1 },
      'gpt-4.1-nano': { input: 0.1, output: 0.4, cached_input: 0.025 },
      'gpt-4o': { input: 2.5, output: 10, cached_input: 1.25 },
      'gpt-4o-2024-05-13': { input: 5, output: 15 },
      'gpt-4o-mini': { input: 0.15, output: 0.6, cached_input: 0.075 },
      o3: { input: 2, output: 8, cached_input: 0.5 },
      'o3-mini': { input: 1.1, output: 4.4, cached_input: 0.55 },
      'o4-mini': { input: 1.1, output: 4.4, cached_input: 0.275 },
      'text-embedding-3-small': { input: 0.02, output: 0 },
      'text-embedding-3-large': { input: 0.13, output: 0 },
    },
  },
  {
    // Claude on Amazon Bedrock and Google Vertex AI lists the same global-endpoint prices; regional endpoints
    // cost more on some models (docs/cost-control.md says how to price them).
    vendor: 'Anthropic',
    source: 'https://platform.claude.com/docs/en/about-claude/pricing',
    models: {
      'claude-fable-5-1': anthropic(10, 50, 0.25),
      'claude-fable-5': anthropic(10, 50, 1),
      'claude-opus-5-5': anthropic(4, 20, 0.2),
      'claude-opus-5': anthropic(5, 25, 0.5),
      'claude-opus-4-8': anthropic(5, 25, 0.5),
      'claude-opus-4-7': anthropic(5, 25, 0.5),
      'claude-opus-4-6': anthropic(5, 25, 0.5),
      'claude-opus-4-5': anthropic(5, 25, 0.5),
      'claude-opus-4-1': anthropic(15, 75, 1.5),
      'claude-opus-4': anthropic(15, 75, 1.5),
      'claude-opus-4-0': anthropic(15, 75, 1.5),
      'claude-sonnet-5-5': anthropic(2, 10, 0.1),
      'claude-sonnet-5': anthropic(2, 10, 0.2),
      'claude-sonnet-4-6': anthropic(3, 15, 0.3),
      'claude-sonnet-4-5': anthropic(3, 15, 0.3),
      'claude-sonnet-4': anthropic(3, 15, 0.3),
      'claude-sonnet-4-0': anthropic(3, 15, 0.3),
      'claude-3-7-sonnet': anthropic(3, 15, 0.3),
      'claude-haiku-5-5': anthropic(0.1, 0.5, 0.01),
      'claude-haiku-4-5': anthropic(1, 5, 0.1),
      'claude-3-5-haiku': anthropic(0.8, 4, 0.08),
      'claude-3-haiku': { input: 0.25, output: 1.25, cached_input: 0.03, cache_write: 0.3 },
    },
  },
  {
    vendor: 'Google Gemini',
    source: 'https://ai.google.dev/gemini-api/docs/pricing',
    models: {
      'gemini-3.5-flash': { input: 1.5, output: 9, cached_input: 0.15 },
      'gemini-3.1-pro': { input: 2, output: 12, cached_input: 0.2 },
      'gemini-3.1-pro-preview': { input: 2, output: 12, cached_input: 0.2 },
      'gemini-3.1-flash-lite': { input: 0.25, output: 1.5, cached_input: 0.025 },
      'gemini-3-pro-preview': { input: 2, output: 12, cached_input: 0.2 },
      'gemini-3-flash': { input: 0.5, output: 3, cached_input: 0.05 },
      'gemini-3-flash-preview': { input: 0.5, output: 3, cached_input: 0.05 },
      'gemini-2.5-pro': { input: 1.25, output: 10, cached_input: 0.125 },
      'gemini-2.5-flash': { input: 0.3, output: 2.5, cached_input: 0.03 },
      'gemini-2.5-flash-lite': { input: 0.1, output: 0.4, cached_input: 0.01 },
      'gemini-2.0-flash': { input: 0.1, output: 0.4, cached_input: 0.025 },
    },
  },
  {
    vendor: 'Mistral AI',
    source: 'https://mistral.ai/pricing#api-pricing',
    models: {
      'mistral-large-latest': { input: 0.5, output: 1.5 },
      'mistral-medium-latest': { input: 0.4, output: 2 },
      'mistral-small-latest': { input: 0.1, output: 0.3 },
      'magistral-medium-latest': { input: 2, output: 5 },
      'magistral-small-latest': { input: 0.5, output: 1.5 },
      'devstral-medium-latest': { input: 0.4, output: 2 },
      'devstral-small-latest': { input: 0.1, output: 0.3 },
      'codestral-latest': { input: 0.3, output: 0.9 },
    },
  },
  {
    // Off-peak DeepSeek prices are lower; the table holds the standard ones, which are the upper bound.
    vendor: 'DeepSeek',
    source: 'https://api-docs.deepseek.com/quick_start/pricing',
    models: {
      'deepseek-chat': { input: 0.28, output: 0.42, cached_input: 0.028 },
      'deepseek-reasoner': { input: 0.28, output: 0.42, cached_input: 0.028 },
    },
  },
  {
    vendor: 'Groq',
    source: 'https://groq.com/pricing',
    models: {
      'llama-3.3-70b-versatile': { input: 0.59, output: 0.79 },
      'llama-3.1-8b-instant': { input: 0.05, output: 0.08 },
      'openai/gpt-oss-120b': { input: 0.15, output: 0.6, cached_input: 0.075 },
      'openai/gpt-oss-20b': { input: 0.075, output: 0.3, cached_input: 0.0375 },
    },
  },
];
