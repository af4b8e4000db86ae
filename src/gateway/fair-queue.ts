/**
 * A provider's `max_concurrency` limiter with a waiting queue that is fair across API keys.
 *
 * Each key has its own FIFO; a freed slot goes to the key at the head of a round-robin rotation, which then
 * moves to the back. So a key with 100 requests queued gets every other slot at most while another key
 * waits, instead of all 100 going first. The queue is bounded in size (rejects at once) and in time (a
 * waiter rejects after `timeoutMs`); both rejections are GatewayErrors (503 with Retry-After) that the
 * router may treat as "try the next provider". A waiter whose AbortSignal fires leaves the queue.
 *
 * Slots are handed directly from the releasing request to the next waiter, so a request arriving at that
 * moment cannot jump the queue.
 */
import { GatewayError } from '../core/errors.ts';

/** Gives the slot back; calling it more than once does nothing. */
export type Release = () => void;

export type QueueOutcome = 'acquired' | 'timeout' | 'aborted' | 'full';

export interface FairQueueOptions {
  /** Requests allowed in flight at once. */
  maxConcurrency: number;
  /** Requests allowed to wait across all keys; 0 means never wait. Default: unbounded. */
  maxSize?: number;
  /** Longest wait before rejecting. Default: no limit. */
  timeoutMs?: number;
  /** Retry-After sent with a rejection. Default 1. */
  retryAfterSeconds?: number;
  /** Names the limited resource in error messages, e.g. the provider. */
  name?: string;
  now?: () => number;
  /** Every acquire attempt ends here once: for a queue wait-time histogram and rejection counters. */
  onWait?: (key: string, waitedMs: number, outcome: QueueOutcome) => void;
}

export type QueueRejection = 'full' | 'timeout';

export class QueueRejectedError extends GatewayError {
  readonly reason: QueueRejection;
  readonly code: 'QUEUE_FULL' | 'QUEUE_TIMEOUT';
  constructor(reason: QueueRejection, name: string, retryAfterSeconds: number) {
    super(reason === 'full' ? `${name} has too many requests waiting` : `${name} is busy: no slot became free in time`, {
      status: 503,
      type: 'ProcessingError',
      retryAfterSeconds,
      details: { reason: reason === 'full' ? 'queue_full' : 'queue_timeout' },
    });
    this.name = 'QueueRejectedError';
    this.reason = reason;
    this.code = reason === 'full' ? 'QUEUE_FULL' : 'QUEUE_TIMEOUT';
  }
}

/** One queued request; a node in its key's doubly linked FIFO so leaving early is O(1). */
interface Waiter {
  readonly key: string;
  readonly enqueuedAt: number;
  readonly resolve: (release: Release) => void;
  readonly reject: (error: unknown) => void;
  readonly signal: AbortSignal | undefined;
  onAbort: (() => void) | undefined;
  timer: ReturnType<typeof setTimeout> | undefined;
  /** False once granted or dropped: a late timer or abort then does nothing. */
  queued: boolean;
  prev: Waiter | undefined;
  next: Waiter | undefined;
}

interface KeyQueue {
  head: Waiter | undefined;
  tail: Waiter | undefined;
}

export class FairQueue {
  readonly maxConcurrency: number;
  private readonly maxSize: number;
  private readonly timeoutMs: number;
  private readonly retryAfterSeconds: number;
  private readonly label: string;
  private readonly now: () => number;
  private readonly onWait?: FairQueueOptions['onWait'];
  private inUse = 0;
  private waiting = 0;
  /** Keys with waiters, in rotation order: Map iteration order is insertion order, the head is next. */
  private readonly rotation = new Map<string, KeyQueue>();

  constructor(options: FairQueueOptions) {
    this.maxConcurrency = Math.max(1, Math.floor(options.maxConcurrency));
    this.maxSize = options.maxSize ?? Number.POSITIVE_INFINITY;
    this.timeoutMs = options.timeoutMs ?? Number.POSITIVE_INFINITY;
    this.retryAfterSeconds = options.retryAfterSeconds ?? 1;
    this.label = options.name ?? 'provider';
    this.now = options.now ?? Date.now;
    this.onWait = options.onWait;
  }

  /** Requests holding a slot. */
  get active(): number {
    return this.inUse;
  }

  /** Requests waiting for a slot, all keys together. */
  get depth(): number {
    return this.waiting;
  }

  /** Waiting requests of one key. */
  depthOf(key: string): number {
    let count = 0;
    for (let w = this.rotation.get(key)?.head; w; w = w.next) count++;
    return count;
  }

  /**
   * Resolves with a release function once a slot is free for `key`. Rejects with QueueRejectedError when
   * the queue is full or the wait times out, or with the signal's reason when it aborts.
   */
  acquire(key: string, signal?: AbortSignal): Promise<Release> {
    if (signal?.aborted) {
      this.onWait?.(key, 0, 'aborted');
      return Promise.reject(signal.reason);
    }
    if (this.inUse < this.maxConcurrency && this.waiting === 0) {
      this.inUse++;
      this.onWait?.(key, 0, 'acquired');
      return Promise.resolve(this.releaser());
    }
    if (this.waiting >= this.maxSize) {
      this.onWait?.(key, 0, 'full');
      return Promise.reject(new QueueRejectedError('full', this.label, this.retryAfterSeconds));
    }
    return new Promise<Release>((resolve, reject) => {
      const waiter: Waiter = { key, enqueuedAt: this.now(), resolve, reject, signal, onAbort: undefined, timer: undefined, queued: false, prev: undefined, next: undefined };
      this.enqueue(waiter);
      if (signal) {
        waiter.onAbort = () => this.drop(waiter, 'aborted', signal.reason);
        signal.addEventListener('abort', waiter.onAbort, { once: true });
      }
      if (Number.isFinite(this.timeoutMs)) {
        waiter.timer = setTimeout(() => this.drop(waiter, 'timeout', new QueueRejectedError('timeout', this.label, this.retryAfterSeconds)), this.timeoutMs);
        waiter.timer.unref?.();
      }
    });
  }

  private releaser(): Release {
    let released = false;
    return () => {
      if (released) return;
      released = true;
      this.handOff();
    };
  }

  /** A slot was freed: give it to the next key in rotation, or return it to the pool. */
  private handOff(): void {
    const first = this.rotation.entries().next();
    if (first.done) {
      this.inUse--;
      return;
    }
    const [key, queue] = first.value;
    const waiter = queue.head as Waiter;
    this.unlink(queue, waiter);
    this.rotation.delete(key);
    if (queue.head) this.rotation.set(key, queue); // back of the rotation
    this.waiting--;
    this.settle(waiter);
    this.onWait?.(key, this.now() - waiter.enqueuedAt, 'acquired');
    waiter.resolve(this.releaser());
  }

  private drop(waiter: Waiter, outcome: 'timeout' | 'aborted', reason: unknown): void {
    const queue = this.rotation.get(waiter.key);
    if (!waiter.queued || !queue) return;
    this.unlink(queue, waiter);
    if (!queue.head) this.rotation.delete(waiter.key);
    this.waiting--;
    this.settle(waiter);
    this.onWait?.(waiter.key, this.now() - waiter.enqueuedAt, outcome);
    waiter.reject(reason);
  }

  private enqueue(waiter: Waiter): void {
    let queue = this.rotation.get(waiter.key);
    if (!queue) {
      queue = { head: undefined, tail: undefined };
      this.rotation.set(waiter.key, queue);
    }
    waiter.prev = queue.tail;
    if (queue.tail) queue.tail.next = waiter;
    else queue.head = waiter;
    queue.tail = waiter;
    waiter.queued = true;
    this.waiting++;
  }

  private unlink(queue: KeyQueue, waiter: Waiter): void {
    if (waiter.prev) waiter.prev.next = waiter.next;
    else queue.head = waiter.next;
    if (waiter.next) waiter.next.prev = waiter.prev;
    else queue.tail = waiter.prev;
    waiter.prev = waiter.next = undefined;
    waiter.queued = false;
  }

  /** The waiter leaves the queue: stop its timer and abort listener. */
  private settle(waiter: Waiter): void {
    if (waiter.timer !== undefined) clearTimeout(waiter.timer);
    if (waiter.onAbort) waiter.signal?.removeEventListener('abort', waiter.onAbort);
  }
}
