/**
 * The vocabulary of dispatching: what a caller passes (DispatchContext), what it gets back (DispatchResult,
 * OpenStream), what one upstream attempt is (Attempt) and how it is recorded (AttemptRecord).
 */
import type { AttemptContext, ModelTarget, ProviderAdapter } from '../providers/adapter.ts';
import type { Usage } from '../core/canonical.ts';
import type { UpstreamError } from '../core/errors.ts';
import type { ChatStreamEvent } from '../core/lossless.ts';
import type { Settlement } from './settlement.ts';

export interface DispatchResult<T> {
  value: T;
  target: ModelTarget;
  attempts: number;
  /** True when this caller shared another identical request's upstream call. */
  shared?: boolean;
  /** True when the answer came from the response cache (no upstream call; `attempts` is 0). */
  cached?: boolean;
}

/** An upstream stream whose first event has already arrived. */
export interface OpenStream {
  first: ChatStreamEvent;
  rest: AsyncIterator<ChatStreamEvent>;
}

export interface DispatchContext extends AttemptContext {
  /** Who is calling (key name or IP): fairness in queues, and part of the dedup key. */
  client: string;
  /** Epoch ms after which no new attempt or retry starts. */
  deadlineAt: number;
  /** Share an identical in-flight request's upstream call. */
  dedup: boolean;
  /** False: do not answer from the response cache (Cache-Control: no-cache); the fresh answer is still kept. */
  cache?: boolean;
  /** Time spent waiting on providers (to the answer, or to a stream's first event): the rest is overhead. */
  spent?: { upstreamMs: number };
  /** Every upstream attempt in order, appended as each ends (request log's failover path, trace spans). */
  trail?: AttemptRecord[];
  /** Streams: the route's first_token_timeout, over each provider's. */
  firstTokenTimeoutMs?: number;
  /** Streams: the route's hedge_after (undefined: no hedging). */
  hedgeAfterMs?: number;
  /** Streams: set when the route has resume_streams; a resumed stream records itself here. */
  resume?: StreamResumes;
  /** Streams with resume: how long a continuation may take to open (the route's timeout). */
  resumeWindowMs?: number;
}

/**
 * A stream's resumes (resume_streams): each cut and where the answer went on, and what every attempt that
 * took part spent, at its own provider's price (the usage event the client gets is their sum).
 */
export interface StreamResumes {
  resumes: ResumeRecord[];
  spent: Array<{ target: ModelTarget; usage: Usage; estimated: boolean }>;
}

export interface ResumeRecord {
  /** The provider whose stream was cut, and why. */
  from: string;
  reason: string;
  /** Where the answer went on (undefined: no candidate could take it; the stream ended with an error). */
  to?: string;
  /** Characters of answer (text and reasoning) the client had when the stream was cut. */
  afterChars: number;
}

/** One upstream attempt: which target, when (performance.now()), how long, and how it failed. */
export interface AttemptRecord {
  target: ModelTarget;
  startedAt: number;
  ms: number;
  failure?: UpstreamError;
}

/**
 * One try at one target. It resolves with the answer (and settles the attempt's success itself, now or when a
 * stream ends), or throws: an UpstreamError moves the walk on, a GatewayError goes to the client as is.
 */
export type Attempt<T> = (adapter: ProviderAdapter, target: ModelTarget, ctx: AttemptContext, settlement: Settlement) => Promise<T>;

/** An attempt whose answer arrives whole: a success once it is in, with the time it took. */
export function wholeAnswer<T>(call: (adapter: ProviderAdapter, target: ModelTarget, ctx: AttemptContext) => Promise<T>): Attempt<T> {
  return async (adapter, target, ctx, settlement) => {
    const started = performance.now();
    const value = await call(adapter, target, ctx);
    settlement.success(performance.now() - started);
    return value;
  };
}
