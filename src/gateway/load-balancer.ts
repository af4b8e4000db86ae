/**
 * Orders the providers of one preference tier. The router walks tiers in preference order, asks the tier's
 * LoadBalancer for an order among that tier's available providers, and fails over along the result.
 * Health, breaker and rate-limit filtering happen before this: the balancer only decides the order.
 *
 * Suggested config (a nested list is one tier whose members share traffic; a plain name is a tier of one):
 *
 *   provider_preference: [[openai, azure], anthropic, ollama]
 *   load_balancing:
 *     strategy: weighted          # priority | round_robin | weighted | least_latency | least_busy
 *     weights: {openai: 3, azure: 1}   # optional; defaults to providers.<name>.weight
 *
 * (`load_balancing` may also sit on a route, next to its `provider_preference`.) A flat list keeps today's
 * meaning: every name is its own tier, pure failover.
 *
 * Strategies:
 * - priority: config order.
 * - round_robin: config order rotated by one on every call.
 * - weighted: smooth weighted round robin (nginx): deterministic, interleaved (3:1 gives a a b a, a a b a…),
 *   exact over a cycle. The rest follow in the order the algorithm would pick them next. Weight 0 means
 *   "backup only": never first, always at the end.
 * - least_latency: lowest EWMA latency first; providers with no sample yet go first so they get measured.
 *   Ties keep config order.
 * - least_busy: fewest in flight per unit of weight first (weighted least connections); ties rotate like
 *   round_robin so idle providers share the load.
 */

export type BalanceStrategy = 'priority' | 'round_robin' | 'weighted' | 'least_latency' | 'least_busy';


export interface BalanceStats {
  /** Moving-average latency (ProviderHealth.ewmaMs); undefined before the first sample. */
  ewmaMs: number | undefined;
  inFlight: number;
  weight: number;
}

export interface LoadBalancerOptions<T> {
  strategy: BalanceStrategy;
  /** The provider name of a candidate; identity for string candidates. */
  nameOf?: (candidate: T) => string;
}

export class LoadBalancer<T = string> {
  readonly strategy: BalanceStrategy;
  private readonly nameOf: (candidate: T) => string;
  /** round_robin / least_busy rotation. */
  private turn = 0;
  /** Smooth weighted round robin: each provider's current weight. */
  private readonly currentWeight = new Map<string, number>();

  constructor(options: LoadBalancerOptions<T>) {
    this.strategy = options.strategy;
    this.nameOf = options.nameOf ?? ((candidate: T) => candidate as unknown as string);
  }

  /** A new array with the candidates in the order to try them. `stats` is called once per candidate. */
  order(candidates: readonly T[], stats: (name: string) => BalanceStats): T[] {
    const n = candidates.length;
    if (n <= 1 || this.strategy === 'priority') return candidates.slice();
    switch (this.strategy) {
      case 'round_robin':
        return rotate(candidates, this.turn++ % n);
      case 'weighted':
        return this.weighted(candidates, stats);
      case 'least_latency':
        return this.sortBy(candidates, stats, latencyScore, false);
      case 'least_busy':
        return this.sortBy(candidates, stats, busyScore, true);
    }
  }

  /** nginx smooth weighted round robin over the candidates present this time. */
  private weighted(candidates: readonly T[], stats: (name: string) => BalanceStats): T[] {
    const entries: Array<{ candidate: T; name: string; weight: number; current: number }> = [];
    const backups: T[] = [];
    let total = 0;
    for (const candidate of candidates) {
      const name = this.nameOf(candidate);
      const weight = stats(name).weight;
      if (!(weight > 0)) {
        backups.push(candidate);
        continue;
      }
      const current = (this.currentWeight.get(name) ?? 0) + weight;
      entries.push({ candidate, name, weight, current });
      total += weight;
    }
    if (entries.length === 0) return backups;
    let best = entries[0];
    for (const entry of entries) if (entry.current > best.current) best = entry;
    best.current -= total;
    for (const entry of entries) this.currentWeight.set(entry.name, entry.current);
    // The pick first, then the others by who would be picked next (higher current + weight), config order on ties.
    const out: T[] = [best.candidate];
    const rest = entries.filter((entry) => entry !== best).sort((a, b) => b.current + b.weight - (a.current + a.weight));
    for (const entry of rest) out.push(entry.candidate);
    for (const backup of backups) out.push(backup);
    return out;
  }

  private sortBy(candidates: readonly T[], stats: (name: string) => BalanceStats, score: (s: BalanceStats) => number, rotateTies: boolean): T[] {
    const start = rotateTies ? this.turn++ % candidates.length : 0;
    const scored = rotate(candidates, start).map((candidate, position) => ({ candidate, position, score: score(stats(this.nameOf(candidate))) }));
    scored.sort((a, b) => a.score - b.score || a.position - b.position);
    return scored.map((entry) => entry.candidate);
  }
}

function latencyScore(stats: BalanceStats): number {
  return stats.ewmaMs ?? Number.NEGATIVE_INFINITY;
}

function busyScore(stats: BalanceStats): number {
  return stats.weight > 0 ? stats.inFlight / stats.weight : Number.POSITIVE_INFINITY;
}

function rotate<T>(items: readonly T[], start: number): T[] {
  if (start === 0) return items.slice();
  return items.slice(start).concat(items.slice(0, start));
}

/**
 * Normalizes `provider_preference` into tiers: `[[a, b], c]` → `[[a, b], [c]]`. Duplicates after their
 * first appearance are dropped, so a provider belongs to one tier.
 */
export function preferenceTiers(preference: ReadonlyArray<string | readonly string[]>): string[][] {
  const seen = new Set<string>();
  const tiers: string[][] = [];
  for (const entry of preference) {
    const tier: string[] = [];
    for (const name of typeof entry === 'string' ? [entry] : entry) {
      if (seen.has(name)) continue;
      seen.add(name);
      tier.push(name);
    }
    if (tier.length > 0) tiers.push(tier);
  }
  return tiers;
}
