/**
 * Request deduplication (the singleflight pattern): concurrent callers with the same key share one upstream
 * call. `SingleFlight` shares one promise; `StreamFlight` shares one upstream stream and gives every caller
 * the whole stream from its first event, however late it joined.
 *
 * Each flight owns an AbortController whose signal goes to the upstream call. A caller may pass its own
 * signal (its client connection); when it aborts, only that caller leaves. The upstream is aborted only
 * once every caller has left, so one impatient client never breaks the answer the others wait for.
 * A flight is forgotten as soon as it settles (or loses its last caller): this is deduplication of
 * concurrent work, not a cache.
 *
 * Shared values are shared objects: callers must treat them as immutable.
 */
import { hash } from 'node:crypto';

export interface FlightOptions {
  /** A flight ended; `callers` includes the first, so `callers - 1` requests were deduplicated. */
  onFlightDone?: (key: string, callers: number) => void;
}

interface UnaryFlight<T> {
  readonly controller: AbortController;
  promise: Promise<T>;
  callers: number;
  /** Callers still waiting for the result. */
  waiting: number;
}

export class SingleFlight<T> {
  private readonly flights = new Map<string, UnaryFlight<T>>();
  private readonly onFlightDone?: (key: string, callers: number) => void;

  constructor(options: FlightOptions = {}) {
    this.onFlightDone = options.onFlightDone;
  }

  /** Keys with a flight in progress. */
  get size(): number {
    return this.flights.size;
  }

  /**
   * Runs `fn` unless a call with this key is already in flight, in which case it waits for that one.
   * Every caller gets the same value or the same error. If `signal` aborts, this caller's promise rejects
   * with its reason; `fn`'s signal aborts once no caller is left waiting.
   */
  do(key: string, fn: (signal: AbortSignal) => Promise<T>, signal?: AbortSignal): Promise<T> {
    if (signal?.aborted) return Promise.reject(signal.reason);
    let flight = this.flights.get(key);
    if (flight) {
      flight.callers++;
      flight.waiting++;
    } else {
      flight = this.start(key, fn);
    }
    return signal ? this.follow(key, flight, signal) : flight.promise;
  }

  private start(key: string, fn: (signal: AbortSignal) => Promise<T>): UnaryFlight<T> {
    const controller = new AbortController();
    const flight: UnaryFlight<T> = { controller, promise: undefined as unknown as Promise<T>, callers: 1, waiting: 1 };
    this.flights.set(key, flight);
    try {
      flight.promise = Promise.resolve(fn(controller.signal));
    } catch (error) {
      flight.promise = Promise.reject(error);
    }
    const done = () => {
      if (this.flights.get(key) === flight) this.flights.delete(key);
      this.onFlightDone?.(key, flight.callers);
    };
    flight.promise.then(done, done);
    return flight;
  }

  /** This caller's view of the flight: the shared result, or its own abort. */
  private follow(key: string, flight: UnaryFlight<T>, signal: AbortSignal): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      const onAbort = () => {
        reject(signal.reason);
        if (--flight.waiting === 0) {
          // Nobody wants the answer any more: stop the upstream, and let new callers start afresh.
          if (this.flights.get(key) === flight) this.flights.delete(key);
          flight.controller.abort(signal.reason);
        }
      };
      signal.addEventListener('abort', onAbort, { once: true });
      flight.promise.then(
        (value) => {
          signal.removeEventListener('abort', onAbort);
          resolve(value);
        },
        (error: unknown) => {
          signal.removeEventListener('abort', onAbort);
          reject(error);
        },
      );
    });
  }
}

const DONE: IteratorReturnResult<undefined> = Object.freeze({ value: undefined, done: true }) as IteratorReturnResult<undefined>;

/** One shared upstream stream: the events seen so far, and how it ended. */
class StreamFlightState<E> {
  readonly controller = new AbortController();
  readonly events: E[] = [];
  ended = false;
  failed = false;
  error: unknown;
  callers = 1;
  /** Subscribers that have not finished or left. */
  listening = 0;
  private changed: Promise<void> | undefined;
  private wake: (() => void) | undefined;

  /** One promise shared by every waiting subscriber, created only when someone waits. */
  waitForChange(): Promise<void> {
    this.changed ??= new Promise<void>((resolve) => {
      this.wake = resolve;
    });
    return this.changed;
  }

  notify(): void {
    const wake = this.wake;
    this.changed = undefined;
    this.wake = undefined;
    wake?.();
  }
}

export class StreamFlight<E> {
  private readonly flights = new Map<string, StreamFlightState<E>>();
  private readonly onFlightDone?: (key: string, callers: number) => void;

  constructor(options: FlightOptions = {}) {
    this.onFlightDone = options.onFlightDone;
  }

  /** Keys with a stream in progress. */
  get size(): number {
    return this.flights.size;
  }

  /**
   * Subscribes to the stream for `key`, starting it with `start(signal)` unless one is in progress.
   * The returned iterator yields every event from the stream's start, then follows live; it throws the
   * upstream's error after the events that preceded it. Calling `return()` (or `break` in for-await), or
   * aborting `signal`, leaves without affecting other subscribers; the last one to leave aborts the upstream.
   * Only the first caller's `start` runs; later callers' `start` is ignored.
   */
  join(key: string, start: (signal: AbortSignal) => AsyncIterable<E>, signal?: AbortSignal): AsyncIterableIterator<E> {
    if (signal?.aborted) return failed<E>(signal.reason);
    let flight = this.flights.get(key);
    if (flight) {
      flight.callers++;
    } else {
      flight = new StreamFlightState<E>();
      this.flights.set(key, flight);
      void this.pump(key, flight, start);
    }
    return new Subscriber(flight, () => this.lastLeft(key, flight), signal);
  }

  private async pump(key: string, flight: StreamFlightState<E>, start: (signal: AbortSignal) => AsyncIterable<E>): Promise<void> {
    const signal = flight.controller.signal;
    let iterator: AsyncIterator<E> | undefined;
    let exhausted = false;
    try {
      iterator = start(signal)[Symbol.asyncIterator]();
      while (!signal.aborted) {
        const result = await iterator.next();
        if (result.done) {
          exhausted = true;
          break;
        }
        flight.events.push(result.value);
        flight.notify();
      }
    } catch (error) {
      flight.failed = true;
      flight.error = error;
    } finally {
      flight.ended = true;
      if (this.flights.get(key) === flight) this.flights.delete(key);
      flight.notify();
      this.onFlightDone?.(key, flight.callers);
      // Left early (every subscriber gone): let the upstream close its connection.
      if (iterator && !exhausted && !flight.failed) await iterator.return?.().catch(() => undefined);
    }
  }

  private lastLeft(key: string, flight: StreamFlightState<E>): void {
    if (flight.ended) return;
    if (this.flights.get(key) === flight) this.flights.delete(key);
    flight.controller.abort(new DOMException('every deduplicated caller left', 'AbortError'));
  }
}

/** An iterator that throws at once: a caller that had already gone when it joined. */
async function* failed<E>(reason: unknown): AsyncGenerator<E, undefined> {
  throw reason;
}

/** One caller's cursor over a shared stream. */
class Subscriber<E> implements AsyncIterableIterator<E> {
  private readonly flight: StreamFlightState<E>;
  private readonly onLastLeft: () => void;
  private readonly signal: AbortSignal | undefined;
  private index = 0;
  private left = false;
  private readonly onAbort: (() => void) | undefined;

  constructor(flight: StreamFlightState<E>, onLastLeft: () => void, signal: AbortSignal | undefined) {
    this.flight = flight;
    this.onLastLeft = onLastLeft;
    this.signal = signal;
    flight.listening++;
    if (signal) {
      this.onAbort = () => {
        this.leave();
        flight.notify(); // wake this subscriber's pending next() so it can throw
      };
      if (signal.aborted) this.leave();
      else signal.addEventListener('abort', this.onAbort, { once: true });
    }
  }

  [Symbol.asyncIterator](): AsyncIterableIterator<E> {
    return this;
  }

  async next(): Promise<IteratorResult<E, undefined>> {
    const flight = this.flight;
    for (;;) {
      if (this.left) {
        if (this.signal?.aborted) throw this.signal.reason;
        return DONE;
      }
      if (this.index < flight.events.length) return { value: flight.events[this.index++], done: false };
      if (flight.ended) {
        this.leave();
        if (flight.failed) throw flight.error;
        return DONE;
      }
      await flight.waitForChange();
    }
  }

  async return(): Promise<IteratorResult<E, undefined>> {
    this.leave();
    return DONE;
  }

  private leave(): void {
    if (this.left) return;
    this.left = true;
    if (this.onAbort) this.signal?.removeEventListener('abort', this.onAbort);
    if (--this.flight.listening === 0) this.onLastLeft();
  }
}

/**
 * The key identical concurrent requests share a flight under: their JSON, used as the Map key itself (no
 * sorting, no hashing: this runs on every request, and the string lives only while the flight does).
 * Canonical requests are built by our decoders in a fixed key order; objects passed through from clients
 * (tool and response_format schemas) keep the client's order, which can at worst miss a dedup between two
 * clients that order a schema differently, never join two different requests.
 */
export function flightKey(client: string, request: unknown): string {
  return JSON.stringify([client, request]);
}

/**
 * A stable digest for keys that outlive a flight (the response cache, Redis): sha256 (base64url) over a JSON
 * serialization with object keys sorted, so `{a, b}` and `{b, a}` match. Follows JSON rules (undefined
 * members dropped, toJSON honoured, non-finite numbers as null). Plain data only: no cycles.
 */
export function stableKey(parts: readonly unknown[]): string {
  return hash('sha256', stableJson(parts), 'base64url');
}

function stableJson(value: unknown): string {
  switch (typeof value) {
    case 'string':
      return JSON.stringify(value);
    case 'number':
      return Number.isFinite(value) ? String(value) : 'null';
    case 'boolean':
      return value ? 'true' : 'false';
    case 'bigint':
      return `"${value}n"`;
    case 'object': {
      if (value === null) return 'null';
      const withToJson = value as { toJSON?: () => unknown };
      if (typeof withToJson.toJSON === 'function') return stableJson(withToJson.toJSON());
      if (Array.isArray(value)) {
        let out = '[';
        for (let i = 0; i < value.length; i++) {
          if (i > 0) out += ',';
          const item: unknown = value[i];
          out += item === undefined || typeof item === 'function' || typeof item === 'symbol' ? 'null' : stableJson(item);
        }
        return out + ']';
      }
      const record = value as Record<string, unknown>;
      const keys = Object.keys(record).sort();
      let out = '{';
      let first = true;
      for (const key of keys) {
        const item = record[key];
        if (item === undefined || typeof item === 'function' || typeof item === 'symbol') continue;
        if (!first) out += ',';
        first = false;
        out += JSON.stringify(key) + ':' + stableJson(item);
      }
      return out + '}';
    }
    default:
      return 'null'; // undefined, function, symbol at the top level
  }
}
