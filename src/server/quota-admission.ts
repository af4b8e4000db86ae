/**
 * Reserve, then settle: before a request goes upstream it reserves its estimated tokens and cost on every
 * counter that applies to it (tokens per minute, budgets), all or nothing; a reservation that does not fit
 * is refused with the window's reset time. When the request ends it is settled to the real usage, or
 * released (nothing was spent: it failed, or its client left before anything came back). This is what
 * holds a limit under a burst of concurrent requests, which charging after the answer cannot.
 */
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { Logger } from 'pino';
import { GatewayError } from '../core/errors.ts';
import { loadedTokenizer, loadTokenizer } from '../gateway/token-count.ts';
import { estimateRequest, type RequestEstimate } from '../gateway/usage-estimate.ts';
import { NANO_PER_USD, type QuotaLine } from '../gateway/quotas.ts';
import type { Metrics } from '../observability/metrics.ts';
import { costUsd } from '../observability/usage.ts';
import type { QuotaCharge, QuotaLedger } from '../state/quota.ts';
import { spentBy, type RequestState } from './context.ts';

export interface Reservation {
  ledger: QuotaLedger;
  lines: readonly QuotaLine[];
  charges: QuotaCharge[];
  estimate: RequestEstimate;
  settled?: boolean;
}

/** Handlers whose answers have no output tokens to reserve for. */
const NO_OUTPUT = new Set(['embeddings', 'ollama_embed']);

/** The lines a request is charged against; none for routes that do not call providers. */
export function quotaLines(state: RequestState): readonly QuotaLine[] {
  const route = state.route;
  if (!route || route.operational || !route.usesProviders) return NONE;
  const plan = state.runtime.quotas;
  const forKey = plan.forKey(state.key);
  const forRoute = plan.forRoute(route);
  if (forKey.length === 0) return forRoute;
  return forRoute.length === 0 ? forKey : [...forKey, ...forRoute];
}
const NONE: readonly QuotaLine[] = [];

export async function reserveQuota(request: FastifyRequest, reply: FastifyReply, state: RequestState, lines: readonly QuotaLine[], metrics: Metrics, logger: Logger): Promise<void> {
  const plan = state.runtime.quotas;
  const route = state.route as NonNullable<RequestState['route']>;
  // Loaded at config load when quotas exist: awaited only in the moments before it is.
  const count = loadedTokenizer() ?? (await loadTokenizer());
  const estimate = estimateRequest(request.body, count, NO_OUTPUT.has(route.handler) ? 0 : plan.reserveOutputTokens);
  if (NO_OUTPUT.has(route.handler)) estimate.outputTokens = 0;
  const tokens = estimate.inputTokens + estimate.outputTokens;
  const nano = lines.some((line) => line.unit === 'nano_usd') ? estimatedNanoUsd(state, estimate) : 0;
  const now = Date.now();
  const charges: QuotaCharge[] = lines.map((line) => {
    const at = line.clock.at(now);
    return {
      counter: line.perClient ? line.counter + state.client : line.counter,
      amount: line.unit === 'tokens' ? tokens : nano,
      limit: line.limit,
      bucket: at.bucket,
      from: at.from,
      ttlMs: at.ttlMs,
    };
  });
  const store = state.runtime.store;
  const result = await store.quota.reserve(charges);
  if (!result.ok) {
    const line = lines[result.index];
    const resetAt = line.clock.at(now).resetAt;
    if (line.kind === 'budget') metrics.budgetRefusals.inc({ scope: line.scope, budget: line.name, window: line.window });
    else metrics.rateLimitHits.inc({ client: state.client });
    throw refusal(reply, line, result.used, charges[result.index].amount, resetAt, now);
  }
  state.reservation = { ledger: result.ledger ?? store.quota, lines, charges, estimate };
  setQuotaHeaders(reply, lines, charges, result.used, now);
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i];
    const before = result.used[i];
    // Past the soft threshold: the one request that crosses it says so (once per window, fleet-wide).
    if (line.softAt !== undefined && before < line.softAt && before + charges[i].amount >= line.softAt) {
      metrics.budgetWarnings.inc({ scope: line.scope, budget: line.name, window: line.window });
      logger.warn({ budget: line.name, scope: line.scope, window: line.window, spent: shown(line, before + charges[i].amount), limit: shown(line, line.limit) }, 'budget past its soft threshold');
    }
  }
}

/**
 * The request's cost at the dearest price among the providers it may go to (failover may pick any); a
 * model without a price reserves nothing in dollars.
 */
function estimatedNanoUsd(state: RequestState, estimate: RequestEstimate): number {
  const route = state.route as NonNullable<RequestState['route']>;
  let input = 0;
  let output = 0;
  try {
    for (const target of state.runtime.catalog.resolve(route.pinnedModel ?? estimate.model, route.routing)) {
      const price = state.runtime.usageMeter.rate(target).price;
      if (!price) continue;
      input = Math.max(input, price.input);
      output = Math.max(output, price.output);
    }
  } catch {
    return 0; // a model nobody serves: the handler refuses it
  }
  // USD per million tokens × tokens × 1000 = nano-dollars.
  return Math.ceil((estimate.inputTokens * input + estimate.outputTokens * output) * 1000);
}

/** Settles the reservation to what was spent: once, whichever way the request ended. */
export function settleQuota(state: RequestState): void {
  const reservation = state.reservation;
  if (!reservation || reservation.settled) return;
  reservation.settled = true;
  // A shared or cached answer spent its tokens on the request that called upstream.
  const usage = state.shared ? undefined : state.usage;
  const tokens = usage ? usage.inputTokens + usage.outputTokens : 0;
  const nano = usage ? spentNanoUsd(state) : 0;
  const entries = reservation.charges.map((charge, i) => ({
    counter: charge.counter,
    bucket: charge.bucket,
    delta: (reservation.lines[i].unit === 'tokens' ? tokens : nano) - charge.amount,
    ttlMs: charge.ttlMs,
  }));
  void reservation.ledger.adjust(entries).catch(() => undefined);
}

/** Every attempt that took part charged once, at its own provider's price (an unpriced one at nothing). */
export function spentNanoUsd(state: RequestState): number {
  let nano = 0;
  for (const part of spentBy(state)) {
    const price = state.runtime.usageMeter.rate(part.target).price;
    if (price) nano += Math.round(costUsd(price, part.usage) * NANO_PER_USD);
  }
  return nano;
}

function shown(line: QuotaLine, amount: number): number {
  return line.unit === 'nano_usd' ? amount / NANO_PER_USD : amount;
}

function refusal(reply: FastifyReply, line: QuotaLine, used: number, amount: number, resetAt: number, now: number): GatewayError {
  const retryAfterSeconds = Math.max(1, Math.ceil((resetAt - now) / 1000));
  const remaining = Math.max(0, line.limit - used);
  if (line.kind === 'tpm') {
    reply.header('x-ratelimit-limit-tokens', line.limit);
    reply.header('x-ratelimit-remaining-tokens', remaining);
    reply.header('x-ratelimit-reset-tokens', retryAfterSeconds);
    return new GatewayError(`rate limit exceeded: ${line.limit} tokens per minute (this request reserves ${amount})`, {
      status: 429,
      type: 'RateLimitError',
      details: { limit: line.limit, window_seconds: 60, reserved_tokens: amount, remaining_tokens: remaining, retry_after_seconds: retryAfterSeconds },
      retryAfterSeconds,
    });
  }
  setBudgetHeaders(reply, line, remaining, resetAt, now);
  const usd = line.unit === 'nano_usd';
  const limitText = usd ? `$${(line.limit / NANO_PER_USD).toFixed(2)}` : `${line.limit} tokens`;
  return new GatewayError(`budget exceeded: ${line.scope} ${line.name}, ${limitText} ${line.window}`, {
    status: line.status,
    type: 'RateLimitError',
    details: {
      reason: 'budget_exceeded',
      scope: line.scope,
      budget: line.name,
      window: line.window,
      ...(usd ? { limit_usd: line.limit / NANO_PER_USD, spent_usd: used / NANO_PER_USD, reserved_usd: amount / NANO_PER_USD } : { limit_tokens: line.limit, spent_tokens: used, reserved_tokens: amount }),
      reset: new Date(resetAt).toISOString(),
      retry_after_seconds: retryAfterSeconds,
    },
    retryAfterSeconds,
  });
}

/** The tightest budget (dollars first, then tokens) and the tightest tokens-per-minute limit, after this reservation. */
function setQuotaHeaders(reply: FastifyReply, lines: readonly QuotaLine[], charges: readonly QuotaCharge[], used: readonly number[], now: number): void {
  let budget = -1;
  let tpm = -1;
  const left = (i: number) => lines[i].limit - used[i] - charges[i].amount;
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i];
    if (line.kind === 'tpm') {
      if (tpm < 0 || left(i) < left(tpm)) tpm = i;
    } else if (budget < 0) budget = i;
    else {
      const best = lines[budget];
      // Dollars before tokens; within a unit, the one with least left.
      if ((line.unit === 'nano_usd' && best.unit === 'tokens') || (line.unit === best.unit && left(i) < left(budget))) budget = i;
    }
  }
  if (tpm >= 0) {
    reply.header('x-ratelimit-limit-tokens', lines[tpm].limit);
    reply.header('x-ratelimit-remaining-tokens', Math.max(0, left(tpm)));
    reply.header('x-ratelimit-reset-tokens', Math.max(1, Math.ceil((lines[tpm].clock.at(now).resetAt - now) / 1000)));
  }
  if (budget >= 0) setBudgetHeaders(reply, lines[budget], Math.max(0, left(budget)), lines[budget].clock.at(now).resetAt, now);
}

function setBudgetHeaders(reply: FastifyReply, line: QuotaLine, remaining: number, resetAt: number, now: number): void {
  if (line.unit === 'nano_usd') reply.header('x-hapax-budget-remaining', (remaining / NANO_PER_USD).toFixed(6));
  else reply.header('x-hapax-budget-remaining-tokens', remaining);
  reply.header('x-hapax-budget-reset', Math.max(1, Math.ceil((resetAt - now) / 1000)));
}
