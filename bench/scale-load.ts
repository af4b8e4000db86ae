/**
 * The scale scenario's client, in its own process: opens `streams` streamed chat completions at once, or spread
 * evenly over `rampMs` (one connection each, as that many separate clients would), and times each from its own
 * start: time to its first body byte (TTFT) and to its end. While they run it samples the RSS of the process it watches (the proxy under test) every
 * 50 ms, against its RSS just before the burst.
 *
 * scale.ts forks it and sends one ScaleSpec at a time; it answers with a ScaleLoadResult.
 */
import { Pool, type Dispatcher } from 'undici';
import { rss, summarize, type LatencySummary } from './lib.ts';

export interface ScaleSpec {
  origin: string;
  path: string;
  apiKey?: string;
  streams: number;
  /** Arrivals spread evenly over this long (0 or absent: all at once). */
  rampMs?: number;
  /** Chunks each stream asks for (as max_tokens); absent: the upstream's own count. */
  chunks?: number;
  /** Every how-manieth stream its client leaves after the first chunk (the soak: aborts must free everything). */
  leaveEvery?: number;
  /** The proxy process to sample (none for direct). */
  watchPid?: number;
}

export interface ScaleLoadResult {
  streams: number;
  completed: number;
  /** Streams their client left on purpose (leaveEvery). */
  left: number;
  errors: number;
  /** Streams that ended without their [DONE]. */
  incomplete: number;
  errorSamples: string[];
  /** First request sent → last stream ended. */
  wallMs: number;
  ttft: LatencySummary;
  /** Each stream's whole time. */
  duration: LatencySummary;
  rssBaselineBytes: number | null;
  rssPeakBytes: number | null;
}

const DONE = 'data: [DONE]\n\n';
const RUN = Math.random().toString(36).slice(2, 8);
let counter = 0;

class StreamExchange implements Dispatcher.DispatchHandler {
  readonly started = performance.now();
  first = 0;
  ended = 0;
  status = 0;
  tail = '';
  error = '';
  left = false;
  private readonly done: (exchange: StreamExchange) => void;
  private readonly leave: boolean;

  constructor(done: (exchange: StreamExchange) => void, leave = false) {
    this.done = done;
    this.leave = leave;
  }

  get ttftMs(): number {
    return this.first - this.started;
  }

  get durationMs(): number {
    return this.ended - this.started;
  }

  onRequestStart(): void {}

  onResponseStart(_controller: Dispatcher.DispatchController, statusCode: number): void {
    this.status = statusCode;
  }

  onResponseData(controller: Dispatcher.DispatchController, chunk: Buffer): void {
    if (this.first === 0) {
      this.first = performance.now();
      if (this.leave && this.status === 200) {
        this.left = true;
        controller.abort(new Error('the client left'));
        return;
      }
    }
    if (this.status !== 200) {
      if (this.error.length < 300) this.error += chunk.toString('utf8');
    } else this.tail = (this.tail + chunk.toString('latin1')).slice(-DONE.length);
  }

  onResponseEnd(): void {
    this.ended = performance.now();
    if (this.status !== 200) this.error = `${this.status} ${this.error.slice(0, 300)}`;
    this.done(this);
  }

  onResponseError(_controller: Dispatcher.DispatchController, error: Error): void {
    this.ended = performance.now();
    if (!this.left) this.error = `transport: ${error.message}`;
    this.done(this);
  }
}

export async function runScale(spec: ScaleSpec): Promise<ScaleLoadResult> {
  const pool = new Pool(spec.origin, { connections: spec.streams, pipelining: 1, keepAliveTimeout: 60_000, headersTimeout: 120_000, bodyTimeout: 120_000 });
  const headers: Record<string, string> = { 'content-type': 'application/json' };
  if (spec.apiKey) headers.authorization = `Bearer ${spec.apiKey}`;
  const baseline = spec.watchPid ? (rss(spec.watchPid)?.rss ?? null) : null;
  let peak = baseline;
  const sampler = setInterval(() => {
    const now = spec.watchPid ? rss(spec.watchPid)?.rss : undefined;
    if (now !== undefined && (peak === null || now > peak)) peak = now;
  }, 50);

  const exchanges: StreamExchange[] = [];
  const started = performance.now();
  await new Promise<void>((resolve) => {
    let left = spec.streams;
    const done = () => {
      if (--left === 0) resolve();
    };
    const open = () => {
      const exchange = new StreamExchange(done, spec.leaveEvery !== undefined && counter % spec.leaveEvery === 0);
      exchanges.push(exchange);
      counter++;
      const length = spec.chunks === undefined ? '' : `,"max_tokens":${spec.chunks}`;
      const body = `{"model":"gpt-4o-mini","messages":[{"role":"user","content":"scale ${RUN} stream ${counter}"}],"stream":true${length}}`;
      pool.dispatch({ path: spec.path, method: 'POST', headers, body }, exchange);
    };
    const ramp = spec.rampMs ?? 0;
    if (ramp <= 0) {
      for (let i = 0; i < spec.streams; i++) open();
      return;
    }
    // A tick every 10 ms opens the streams due by then: arrivals at an even rate, whatever the timer jitter.
    let opened = 0;
    const tick = setInterval(() => {
      const due = Math.min(spec.streams, Math.ceil(((performance.now() - started) / ramp) * spec.streams));
      while (opened < due) (opened++, open());
      if (opened === spec.streams) clearInterval(tick);
    }, 10);
  });
  const wallMs = performance.now() - started;
  clearInterval(sampler);
  await pool.close();

  const ok = exchanges.filter((e) => !e.error && e.tail === DONE);
  const failed = exchanges.filter((e) => e.error);
  const left = exchanges.filter((e) => e.left).length;
  return {
    streams: spec.streams,
    completed: ok.length,
    left,
    errors: failed.length,
    incomplete: exchanges.length - ok.length - failed.length - left,
    errorSamples: [...new Set(failed.map((e) => e.error))].slice(0, 5),
    wallMs,
    ttft: summarize(Float64Array.from(ok.map((e) => e.ttftMs))),
    duration: summarize(Float64Array.from(ok.map((e) => e.durationMs))),
    rssBaselineBytes: baseline,
    rssPeakBytes: peak,
  };
}

const isMain = process.argv[1] && import.meta.filename === process.argv[1];
if (isMain) {
  process.on('message', (message: { run?: ScaleSpec; exit?: boolean }) => {
    if (message.exit) process.exit(0);
    if (!message.run) return;
    runScale(message.run).then(
      (result) => process.send?.({ result }),
      (error: unknown) => process.send?.({ error: String((error as Error)?.stack ?? error) }),
    );
  });
  process.on('disconnect', () => process.exit(0));
  process.send?.({ ready: true });
}
