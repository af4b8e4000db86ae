/**
 * What the gateway knows about one provider's health, fed by periodic probes and by live traffic, and a
 * HealthChecker that runs the probes. Shapes follow the spec's /health provider entry.
 *
 * - `failure_threshold` consecutive failures (probe or traffic) mark the provider unhealthy; one success
 *   marks it healthy again, and that recovery resets `error_count` (errors since it last became healthy).
 * - Latency is kept as the last observation (the spec's `latency_ms`) and as an EWMA for least-latency
 *   balancing. Probes feed the EWMA too, which keeps it fresh for providers that get no traffic.
 * - Live traffic outranks a probe: a probe that fails while a real request to the provider succeeds (a probe
 *   starved by a busy event loop, a broken models endpoint in front of a working chat endpoint) is not counted.
 * - A 429 does not make a provider unhealthy (it answered); it sets `rateLimitedUntil`, and the router
 *   avoids the provider until then.
 */

export interface ProviderHealthOptions {
  /** Consecutive failures that mark the provider unhealthy. Default 1 (the spec: "after any failure"). */
  failureThreshold?: number;
  /** Weight of the newest latency sample in the moving average, in (0, 1]. Default 0.3. */
  ewmaAlpha?: number;
  now?: () => number;
  /** Called when `healthy` flips (for the hapax_provider_healthy gauge and logs), with what flipped it. */
  onHealthChange?: (name: string, healthy: boolean, cause: HealthChangeCause) => void;
}

/** What flipped a provider's health: a probe or live traffic, and for a failure why, when known. */
export interface HealthChangeCause {
  source: HealthSource;
  /** The last failure's message (a probe's error); undefined for a recovery or an unexplained failure. */
  reason?: string;
  /** Consecutive failures that made it unhealthy. */
  consecutiveFails: number;
}

/** The /health provider entry, exactly as the spec shows it. */
export interface ProviderHealthReport {
  healthy: boolean;
  /** ISO 8601 time of the last health probe; null before the first. */
  last_check: string | null;
  consecutive_fails: number;
  /** Last observed latency, whole milliseconds. */
  latency_ms: number;
  error_count: number;
  request_count: number;
}

/** Where a result came from: a probe also stamps `last_check`, traffic counts toward `request_count`. */
export type HealthSource = 'probe' | 'traffic';

export class ProviderHealth {
  readonly name: string;
  private failureThreshold: number;
  private readonly alpha: number;
  private readonly now: () => number;
  private readonly onHealthChange?: (name: string, healthy: boolean, cause: HealthChangeCause) => void;

  healthy = true;
  consecutiveFails = 0;
  /** Failures since the provider last became healthy. */
  errorCount = 0;
  /** Requests sent to this provider (live traffic, not probes). */
  requestCount = 0;
  inFlight = 0;
  /** Epoch ms of the last probe result. */
  lastCheckAt: number | undefined;
  /** Last observed latency (ms); 0 before any. */
  lastLatencyMs = 0;
  /** Moving average of latency (ms); undefined until the first sample. */
  ewmaMs: number | undefined;
  /** Epoch ms of the last successful live request; 0 before any. */
  lastTrafficSuccessAt = 0;
  /** Epoch ms until which the provider asked us to back off (429 Retry-After); 0 when not limited. */
  rateLimitedUntil = 0;

  constructor(name: string, options: ProviderHealthOptions = {}) {
    this.name = name;
    this.failureThreshold = Math.max(1, Math.floor(options.failureThreshold ?? 1));
    const alpha = options.ewmaAlpha ?? 0.3;
    this.alpha = alpha > 0 && alpha <= 1 ? alpha : 0.3;
    this.now = options.now ?? Date.now;
    this.onHealthChange = options.onHealthChange;
  }

  /** Config reload with a changed threshold keeps the observed state. */
  setFailureThreshold(threshold: number): void {
    this.failureThreshold = Math.max(1, Math.floor(threshold));
  }

  /** A live request to this provider starts; pair with requestFinished(). */
  requestStarted(): void {
    this.inFlight++;
    this.requestCount++;
  }

  requestFinished(): void {
    if (this.inFlight > 0) this.inFlight--;
  }

  /**
   * The provider answered. For traffic pass the time to the first byte (headers or first stream event):
   * total completion time mostly measures how long the answer is.
   */
  recordSuccess(latencyMs: number, source: HealthSource = 'traffic'): void {
    if (source === 'probe') this.lastCheckAt = this.now();
    else this.lastTrafficSuccessAt = this.now();
    this.observeLatency(latencyMs);
    this.consecutiveFails = 0;
    if (!this.healthy) {
      this.healthy = true;
      this.errorCount = 0;
      this.onHealthChange?.(this.name, true, { source, consecutiveFails: 0 });
    }
  }

  /**
   * The provider failed (connect, timeout, 5xx, protocol, probe error). Not for 429s: see recordRateLimit.
   * For a probe pass when it started: a live success since then outweighs it. `reason` (the error's
   * message) goes to the health-change log line.
   */
  recordFailure(source: HealthSource = 'traffic', probeStartedAt?: number, reason?: string): void {
    if (source === 'probe') {
      this.lastCheckAt = this.now();
      if (probeStartedAt !== undefined && this.lastTrafficSuccessAt >= probeStartedAt) return;
    }
    this.consecutiveFails++;
    this.errorCount++;
    if (this.healthy && this.consecutiveFails >= this.failureThreshold) {
      this.healthy = false;
      this.onHealthChange?.(this.name, false, { source, reason, consecutiveFails: this.consecutiveFails });
    }
  }

  /** A 429: avoid the provider for `retryAfterSeconds` (default 1 s); never shortens an existing back-off. */
  recordRateLimit(retryAfterSeconds?: number): void {
    const seconds = retryAfterSeconds !== undefined && retryAfterSeconds > 0 ? retryAfterSeconds : 1;
    this.rateLimitedUntil = Math.max(this.rateLimitedUntil, this.now() + seconds * 1000);
  }

  isRateLimited(): boolean {
    return this.rateLimitedUntil > this.now();
  }

  /** Healthy and not backing off: worth routing to in the first pass. */
  isAvailable(): boolean {
    return this.healthy && !this.isRateLimited();
  }

  report(): ProviderHealthReport {
    return {
      healthy: this.healthy,
      last_check: this.lastCheckAt === undefined ? null : new Date(this.lastCheckAt).toISOString(),
      consecutive_fails: this.consecutiveFails,
      latency_ms: Math.round(this.lastLatencyMs),
      error_count: this.errorCount,
      request_count: this.requestCount,
    };
  }

  toJSON(): ProviderHealthReport {
    return this.report();
  }

  private observeLatency(latencyMs: number): void {
    if (!(latencyMs >= 0) || !Number.isFinite(latencyMs)) return;
    this.lastLatencyMs = latencyMs;
    this.ewmaMs = this.ewmaMs === undefined ? latencyMs : this.ewmaMs + this.alpha * (latencyMs - this.ewmaMs);
  }
}

export interface HealthProbeTarget {
  name: string;
  health: ProviderHealth;
  /** One cheap upstream call (list models or a one-token completion); must honour the signal. */
  probe: (signal: AbortSignal) => Promise<void>;
}

export interface HealthCheckerOptions {
  intervalMs: number;
  timeoutMs: number;
  now?: () => number;
  /** For metrics: hapax_health_check_duration_seconds, hapax_health_check_errors_total. */
  onResult?: (name: string, ok: boolean, durationMs: number, error?: unknown) => void;
}

/** The error a probe that outlived `timeoutMs` is recorded with. */
export class HealthProbeTimeoutError extends Error {
  readonly code = 'HEALTH_PROBE_TIMEOUT';
  constructor(name: string, timeoutMs: number) {
    super(`health probe for ${name} timed out after ${timeoutMs}ms`);
    this.name = 'HealthProbeTimeoutError';
  }
}

/**
 * Probes every target in parallel, at start and then `intervalMs` after each round ends (a slow round never
 * overlaps the next). Each probe gets an AbortSignal that fires at `timeoutMs`; a probe that ignores it is
 * still recorded as timed out then. Timers are unref'd so the checker never keeps the process alive.
 */
export class HealthChecker {
  private readonly targets: readonly HealthProbeTarget[];
  private readonly intervalMs: number;
  private readonly timeoutMs: number;
  private readonly now: () => number;
  private readonly onResult?: HealthCheckerOptions['onResult'];
  private timer: ReturnType<typeof setTimeout> | undefined;
  private running = false;
  private stopped = false;
  /** Rounds in progress, aborted by stop(). */
  private readonly rounds = new Set<AbortController>();

  constructor(targets: readonly HealthProbeTarget[], options: HealthCheckerOptions) {
    this.targets = targets;
    this.intervalMs = Math.max(1, options.intervalMs);
    this.timeoutMs = Math.max(1, options.timeoutMs);
    this.now = options.now ?? Date.now;
    this.onResult = options.onResult;
  }

  /** Runs the first round now, then keeps going until stop(). Calling start() twice does nothing. */
  start(): void {
    if (this.running || this.stopped) return;
    this.running = true;
    void this.loop();
  }

  /** Stops scheduling, aborts probes in flight; their late results are dropped. */
  stop(): void {
    this.stopped = true;
    this.running = false;
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.timer = undefined;
    for (const round of this.rounds) round.abort(new Error('health checker stopped'));
    this.rounds.clear();
  }

  /** One round: every probe in parallel; resolves when all have finished or timed out. Never rejects. */
  async runOnce(): Promise<void> {
    const round = new AbortController();
    this.rounds.add(round);
    try {
      await Promise.all(this.targets.map((target) => this.check(target, round.signal)));
    } finally {
      this.rounds.delete(round);
    }
  }

  private async loop(): Promise<void> {
    await this.runOnce();
    if (this.stopped) return;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      void this.loop();
    }, this.intervalMs);
    this.timer.unref?.();
  }

  private async check(target: HealthProbeTarget, roundSignal: AbortSignal): Promise<void> {
    const controller = new AbortController();
    const onRoundAbort = () => controller.abort(roundSignal.reason);
    roundSignal.addEventListener('abort', onRoundAbort, { once: true });
    let timer: ReturnType<typeof setTimeout> | undefined;
    const timedOut = new Promise<never>((_, reject) => {
      timer = setTimeout(() => {
        // After a stall (a busy or descheduled process) timers run before pending I/O is read: give the
        // probe's answer, if it is already here, one turn of the event loop before calling it late.
        setImmediate(() => {
          const error = new HealthProbeTimeoutError(target.name, this.timeoutMs);
          controller.abort(error);
          reject(error);
        });
      }, this.timeoutMs);
      timer.unref?.();
    });
    const started = this.now();
    let ok = true;
    let failure: unknown;
    try {
      // Promise.resolve().then: a probe that throws synchronously is a failed probe, not a crashed round.
      await Promise.race([Promise.resolve().then(() => target.probe(controller.signal)), timedOut]);
    } catch (error) {
      ok = false;
      failure = error;
    } finally {
      clearTimeout(timer);
      roundSignal.removeEventListener('abort', onRoundAbort);
    }
    if (this.stopped) return;
    const durationMs = this.now() - started;
    try {
      if (ok) target.health.recordSuccess(durationMs, 'probe');
      else target.health.recordFailure('probe', started, failure instanceof Error ? failure.message : String(failure));
      this.onResult?.(target.name, ok, durationMs, failure);
    } catch {
      // A throwing hook (metrics, logging) must not stop the checker; the health state is already updated.
    }
  }
}
