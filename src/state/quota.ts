/**
 * The quota ledger: counters that a request reserves from before it goes upstream and settles once its
 * real usage is known (tokens-per-minute limits, budgets in dollars or tokens). A reservation over several
 * counters is all or nothing, and happens in one step: in this process (memory) or in one Redis script
 * (a fleet), so a burst of concurrent requests admits exactly what fits.
 *
 * A counter keeps its amounts in buckets (a window's start, or a slice of a rolling window); a reservation
 * counts the buckets from `from` on and drops older ones. Amounts are whole numbers (tokens, nano-dollars).
 */

export interface QuotaCharge {
  /** Names the counter: the same name on every instance is one shared counter. */
  counter: string;
  /** Whole units to reserve (or, in a settle, to add; negative gives back). */
  amount: number;
  /** The most the counted buckets may hold with this charge in. */
  limit: number;
  /** The bucket the amount goes in. */
  bucket: number;
  /** The oldest bucket still counted. */
  from: number;
  /** How long the counter must outlive this charge (its window and then some). */
  ttlMs: number;
}

export interface QuotaEntry {
  counter: string;
  bucket: number;
  delta: number;
  ttlMs: number;
}

/** `ledger`: where the reservation went when it is not the store's own (a Redis outage): settle it there. */
export type ReserveResult =
  /** Reserved: what each counter held before (same order as the charges). */
  | { ok: true; used: number[]; ledger?: QuotaLedger }
  /** Nothing reserved: the charge at `index` did not fit; `used` is what its counter holds. */
  | { ok: false; index: number; used: number; ledger?: QuotaLedger };

export interface QuotaLedger {
  reserve(charges: readonly QuotaCharge[]): Promise<ReserveResult>;
  /** Settles or releases reservations: adds each delta to its bucket. */
  adjust(entries: readonly QuotaEntry[]): Promise<void>;
  /** What the buckets from `from` on hold. */
  used(counter: string, from: number): Promise<number>;
}

/** Counters in this process: exact within it (JavaScript runs each reservation to its end before the next). */
export class MemoryQuota implements QuotaLedger {
  private readonly counters = new Map<string, { buckets: Map<number, number>; expiresAt: number }>();
  private readonly now: () => number;
  private sweepAt = 0;

  constructor(now: () => number = Date.now) {
    this.now = now;
  }

  private counted(counter: string, from: number): number {
    const entry = this.counters.get(counter);
    if (!entry) return 0;
    let sum = 0;
    for (const [bucket, amount] of entry.buckets) {
      if (bucket < from) entry.buckets.delete(bucket);
      else sum += amount;
    }
    return sum;
  }

  private add(counter: string, bucket: number, delta: number, ttlMs: number): void {
    const now = this.now();
    let entry = this.counters.get(counter);
    if (!entry) this.counters.set(counter, (entry = { buckets: new Map(), expiresAt: 0 }));
    entry.buckets.set(bucket, (entry.buckets.get(bucket) ?? 0) + delta);
    entry.expiresAt = Math.max(entry.expiresAt, now + ttlMs);
    if (now >= this.sweepAt) this.sweep(now);
  }

  /** Counters nobody charged for longer than their window go, as Redis would expire them. */
  private sweep(now: number): void {
    this.sweepAt = now + 60_000;
    for (const [counter, entry] of this.counters) if (entry.expiresAt <= now) this.counters.delete(counter);
  }

  async reserve(charges: readonly QuotaCharge[]): Promise<ReserveResult> {
    return this.reserveNow(charges);
  }

  reserveNow(charges: readonly QuotaCharge[]): ReserveResult {
    const used: number[] = [];
    for (let i = 0; i < charges.length; i++) {
      const charge = charges[i];
      const held = this.counted(charge.counter, charge.from);
      if (held + charge.amount > charge.limit) return { ok: false, index: i, used: held };
      used.push(held);
    }
    for (const charge of charges) this.add(charge.counter, charge.bucket, charge.amount, charge.ttlMs);
    return { ok: true, used };
  }

  async adjust(entries: readonly QuotaEntry[]): Promise<void> {
    for (const entry of entries) if (entry.delta !== 0) this.add(entry.counter, entry.bucket, entry.delta, entry.ttlMs);
  }

  async used(counter: string, from: number): Promise<number> {
    return this.counted(counter, from);
  }
}
