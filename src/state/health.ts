/**
 * Whether the shared state store can be reached. Every failed operation is counted; the log gets one
 * line when an outage starts and one when it ends, never a line per request.
 */
import type { Logger } from 'pino';
import type { Metrics } from '../observability/metrics.ts';
import { GatewayError } from '../core/errors.ts';

export type StateOperation = 'connection' | 'rate_limit' | 'quota' | 'keys' | 'usage' | 'cache';
export type FailurePolicy = 'open' | 'closed';

export interface StateHealthOptions {
  policy: FailurePolicy;
  logger?: Logger;
  metrics?: Metrics;
}

/** `on_failure: closed` and the shared state is out of reach: the client may retry shortly. */
export function stateUnavailable(): GatewayError {
  return new GatewayError('shared state store unavailable; try again shortly', {
    status: 503,
    type: 'ProcessingError',
    details: { reason: 'state_unavailable' },
    retryAfterSeconds: 1,
  });
}

export class StateHealth {
  private up = true;
  private readonly opts: StateHealthOptions;

  constructor(opts: StateHealthOptions) {
    this.opts = opts;
    opts.metrics?.stateAvailable.set(1);
  }

  get available(): boolean {
    return this.up;
  }

  failed(operation: StateOperation, error?: unknown): void {
    this.opts.metrics?.stateErrors.inc({ operation });
    if (!this.up) return;
    this.up = false;
    this.opts.metrics?.stateAvailable.set(0);
    // Only the message: the connection URL (which may carry a password) is never logged.
    const reason = error instanceof Error ? error.message : undefined;
    const effect = this.opts.policy === 'open' ? 'admitting requests on per-instance limits' : 'refusing requests that need shared state (503)';
    this.opts.logger?.warn({ operation, reason, on_failure: this.opts.policy }, `shared state store unreachable: ${effect}`);
  }

  recovered(): void {
    if (this.up) return;
    this.up = true;
    this.opts.metrics?.stateAvailable.set(1);
    this.opts.logger?.info({ on_failure: this.opts.policy }, 'shared state store reachable again');
  }
}
