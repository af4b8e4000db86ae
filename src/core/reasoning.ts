/**
 * Reasoning settings across dialects: OpenAI speaks in effort levels, Anthropic in a token budget (or
 * "adaptive"), Ollama in a boolean. The tables below are the one place that maps one to the other
 * (docs/api.md quotes them).
 */
import type { ReasoningEffort, ReasoningRequest } from './canonical.ts';

/** Anthropic's smallest thinking budget. */
export const MIN_THINKING_BUDGET = 1024;

/** Effort level → thinking budget, for an Anthropic upstream. */
export const EFFORT_BUDGET: Readonly<Record<ReasoningEffort, number>> = {
  minimal: 1024,
  low: 2048,
  medium: 8192,
  high: 24576,
  xhigh: 32768,
  max: 32768,
};

/**
 * Thinking budget → effort level, for an OpenAI-type upstream: below 4096 tokens `low`, below 16384 `medium`,
 * `high` from there. Only the three levels every OpenAI reasoning model accepts.
 */
export function budgetEffort(budget: number): 'low' | 'medium' | 'high' {
  if (budget < 4096) return 'low';
  if (budget < 16384) return 'medium';
  return 'high';
}

/** The effort level an OpenAI-type upstream gets; undefined when it should use its default. */
export function openaiEffort(reasoning: ReasoningRequest): string | undefined {
  if (reasoning.off) return undefined;
  // OpenAI's top level is xhigh; Anthropic's `max` means the same.
  if (reasoning.effort) return reasoning.effort === 'max' ? 'xhigh' : reasoning.effort;
  if (reasoning.budgetTokens !== undefined) return budgetEffort(reasoning.budgetTokens);
  return undefined;
}

/** The thinking budget an Anthropic upstream gets for an effort or a budget; undefined for none. */
export function thinkingBudget(reasoning: ReasoningRequest): number | undefined {
  if (reasoning.off) return undefined;
  if (reasoning.budgetTokens !== undefined) return reasoning.budgetTokens;
  if (reasoning.effort) return EFFORT_BUDGET[reasoning.effort];
  return undefined;
}

const EFFORTS = new Set<string>(['minimal', 'low', 'medium', 'high', 'xhigh', 'max']);
export const isEffort = (value: unknown): value is ReasoningEffort => typeof value === 'string' && EFFORTS.has(value);

/**
 * Claude refuses a changed temperature and a top_p under 0.95 while thinking: both are left out of `settings`
 * (named by the keys its format uses) and reported as dropped. Anthropic's API and Bedrock's Converse share it.
 */
export function withoutSamplingWhileThinking(settings: Record<string, unknown>, keys: { temperature: string; topP: string }, dropped: Set<string>): void {
  if (settings[keys.temperature] !== undefined) {
    delete settings[keys.temperature];
    dropped.add('temperature');
  }
  const topP = settings[keys.topP];
  if (typeof topP === 'number' && topP < 0.95) {
    delete settings[keys.topP];
    dropped.add('top_p');
  }
}
