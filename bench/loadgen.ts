/**
 * The load generator, in its own process: a closed loop of `connections` workers on one undici Pool,
 * each sending one chat completion at a time with a unique prompt (so dedup never merges two requests)
 * and timing it with performance.now(): latency to the last body byte, and time to the first body byte
 * (TTFT for streams). autocannon was the obvious choice, but its histogram has 1 ms resolution and it
 * cannot time the first byte, and the targets here are fractions of a millisecond.
 *
 * While it measures it also reads /proc for the processes it is told to watch (the gateway under test):
 * CPU time over the measured window, and RSS sampled every 100 ms.
 *
 * run.ts forks it and sends one LoadSpec at a time; it answers with a LoadResult.
 */
import { Pool, type Dispatcher } from 'undici';
import { cpuSplitMs, rss, summarize, type LatencySummary } from './lib.ts';

export interface LoadSpec {
  origin: string;
  path: string;
  apiKey?: string;
  /** Extra request headers the target needs (e.g. Portkey's routing headers). */
  headers?: Record<string, string>;
  /** 'mixed' alternates JSON and streaming requests (the soak). */
  stream: boolean | 'mixed';
  connections: number;
  warmupMs: number;
  durationMs: number;
  /** Processes to account: name → pid. */
  watch?: Record<string, number>;
}

export interface WatchedProcess {
  cpuMs: number;
  cpuMsPerRequest: number;
  /** Share of that CPU time spent in the kernel (system time), 0 to 1. */
  systemShare: number;
  rssMaxBytes: number;
  rssStartBytes: number;
  rssEndBytes: number;
}

export interface LoadResult {
  /** Answers, warm-up included (for per-request figures over a whole process lifetime, e.g. a profile). */
  total: number;
  requests: number;
  errors: number;
  incomplete: number;
  errorSamples: string[];
  elapsedMs: number;
  rps: number;
  latency: LatencySummary;
  ttft: LatencySummary;
  bytesPerResponse: number;
  loadgenCpuMsPerRequest: number;
  watched: Record<string, WatchedProcess>;
  /** The measured window on the monotonic clock, in µs (the clock V8's .cpuprofile timestamps use). */
  window: { fromUs: number; toUs: number };
}

const monotonicUs = () => Number(process.hrtime.bigint() / 1000n);

const DONE = 'data: [DONE]\n\n';
const RUN = Math.random().toString(36).slice(2, 8);
let counter = 0;

/** The Responses API's last event of a complete stream; the tail kept is long enough to hold its head. */
const COMPLETED = 'event: response.completed';
const RESPONSES_TAIL = 4096;

function body(stream: boolean, responses: boolean): string {
  counter++;
  if (responses) return `{"model":"gpt-4o-mini","instructions":"You are terse.","input":"bench ${RUN} prompt ${counter}","stream":${stream}}`;
  // ~150 bytes, unique per request: the gateway's dedup key differs for every request.
  return `{"model":"gpt-4o-mini","messages":[{"role":"system","content":"You are terse."},{"role":"user","content":"bench ${RUN} prompt ${counter}"}],"stream":${stream}}`;
}

interface Recorder {
  measuring: boolean;
  total: number;
  latencies: number[];
  ttfts: number[];
  requests: number;
  errors: number;
  incomplete: number;
  bytes: number;
  errorSamples: string[];
}

/** One request: a DispatchHandler that times the first and last body byte. */
class Exchange implements Dispatcher.DispatchHandler {
  private readonly started = performance.now();
  private first = 0;
  private status = 0;
  private bytes = 0;
  private tail = '';
  private errorText = '';
  private readonly recorder: Recorder;
  private readonly stream: boolean;
  /** A Responses API stream (ends with response.completed) rather than a Chat Completions one (ends with [DONE]). */
  private readonly responses: boolean;
  private readonly resolve: () => void;

  constructor(recorder: Recorder, stream: boolean, resolve: () => void, responses = false) {
    this.recorder = recorder;
    this.stream = stream;
    this.responses = responses;
    this.resolve = resolve;
  }

  onRequestStart(): void {}

  onResponseStart(_controller: Dispatcher.DispatchController, statusCode: number): void {
    this.status = statusCode;
  }

  onResponseData(_controller: Dispatcher.DispatchController, chunk: Buffer): void {
    if (this.first === 0) this.first = performance.now();
    this.bytes += chunk.length;
    if (this.status !== 200) {
      if (this.errorText.length < 300) this.errorText += chunk.toString('utf8');
    } else if (this.stream) this.tail = (this.tail + chunk.toString('latin1')).slice(-(this.responses ? RESPONSES_TAIL : DONE.length));
  }

  onResponseEnd(): void {
    const end = performance.now();
    const r = this.recorder;
    r.total++;
    if (r.measuring) {
      if (this.status !== 200) {
        r.errors++;
        if (r.errorSamples.length < 5) r.errorSamples.push(`${this.status} ${this.errorText.slice(0, 300)}`);
      } else if (this.stream && (this.responses ? !this.tail.includes(COMPLETED) : this.tail !== DONE)) {
        r.incomplete++;
      } else {
        r.requests++;
        r.bytes += this.bytes;
        r.latencies.push(end - this.started);
        r.ttfts.push((this.first || end) - this.started);
      }
    }
    this.resolve();
  }

  onResponseError(_controller: Dispatcher.DispatchController, error: Error): void {
    const r = this.recorder;
    r.total++;
    if (r.measuring) {
      r.errors++;
      if (r.errorSamples.length < 5) r.errorSamples.push(`transport: ${error.message}`);
    }
    this.resolve();
  }
}

export async function runLoad(spec: LoadSpec): Promise<LoadResult> {
  const pool = new Pool(spec.origin, { connections: spec.connections, pipelining: 1, keepAliveTimeout: 60_000 });
  const headers: Record<string, string> = { 'content-type': 'application/json', ...spec.headers };
  if (spec.apiKey) headers.authorization = `Bearer ${spec.apiKey}`;
  const recorder: Recorder = { measuring: false, total: 0, latencies: [], ttfts: [], requests: 0, errors: 0, incomplete: 0, bytes: 0, errorSamples: [] };

  const t0 = performance.now();
  const measureFrom = t0 + spec.warmupMs;
  const stopAt = measureFrom + spec.durationMs;
  const watch = Object.entries(spec.watch ?? {});
  const cpuStart: Record<string, { user: number; system: number }> = {};
  const rssSeen: Record<string, { max: number; start: number; end: number }> = {};
  let ownCpuStart = process.cpuUsage();
  let windowFrom = 0;

  // Switch to measuring at measureFrom: requests that start from then on are recorded.
  const startMeasuring = setTimeout(() => {
    recorder.measuring = true;
    windowFrom = monotonicUs();
    ownCpuStart = process.cpuUsage();
    for (const [name, pid] of watch) {
      cpuStart[name] = cpuSplitMs(pid) ?? { user: NaN, system: NaN };
      const now = rss(pid)?.rss ?? NaN;
      rssSeen[name] = { max: now, start: now, end: now };
    }
  }, spec.warmupMs);
  const sampler = setInterval(() => {
    if (!recorder.measuring) return;
    for (const [name, pid] of watch) {
      const now = rss(pid)?.rss;
      if (now !== undefined && rssSeen[name]) rssSeen[name].max = Math.max(rssSeen[name].max, now);
    }
  }, 100);

  let measuredStart = 0;
  const responses = spec.path.endsWith('/responses');
  const worker = async () => {
    for (;;) {
      const now = performance.now();
      if (now >= stopAt) return;
      if (recorder.measuring && measuredStart === 0) measuredStart = now;
      const stream = spec.stream === 'mixed' ? (counter & 1) === 0 : spec.stream;
      await new Promise<void>((resolve) => {
        const exchange = new Exchange(recorder, stream, resolve, responses);
        pool.dispatch({ path: spec.path, method: 'POST', headers, body: body(stream, responses) }, exchange);
      });
    }
  };
  await Promise.all(Array.from({ length: spec.connections }, worker));
  const finished = performance.now();
  const windowTo = monotonicUs();
  clearTimeout(startMeasuring);
  clearInterval(sampler);

  const watched: Record<string, WatchedProcess> = {};
  const completed = recorder.requests + recorder.errors + recorder.incomplete;
  for (const [name, pid] of watch) {
    const now = cpuSplitMs(pid) ?? { user: NaN, system: NaN };
    const start = cpuStart[name] ?? { user: NaN, system: NaN };
    const system = now.system - start.system;
    const used = now.user - start.user + system;
    const end = rss(pid)?.rss ?? NaN;
    const seen = rssSeen[name] ?? { max: end, start: end, end };
    watched[name] = {
      cpuMs: used,
      cpuMsPerRequest: used / Math.max(1, completed),
      systemShare: used > 0 ? system / used : NaN,
      rssMaxBytes: Math.max(seen.max, end),
      rssStartBytes: seen.start,
      rssEndBytes: end,
    };
  }
  const own = process.cpuUsage(ownCpuStart);
  await pool.close();

  const elapsedMs = finished - (measuredStart || measureFrom);
  return {
    total: recorder.total,
    requests: recorder.requests,
    errors: recorder.errors,
    incomplete: recorder.incomplete,
    errorSamples: recorder.errorSamples,
    elapsedMs,
    rps: (recorder.requests * 1000) / elapsedMs,
    latency: summarize(Float64Array.from(recorder.latencies)),
    ttft: summarize(Float64Array.from(recorder.ttfts)),
    bytesPerResponse: recorder.requests ? recorder.bytes / recorder.requests : 0,
    loadgenCpuMsPerRequest: (own.user + own.system) / 1000 / Math.max(1, completed),
    watched,
    window: { fromUs: windowFrom || windowTo, toUs: windowTo },
  };
}

const isMain = process.argv[1] && import.meta.filename === process.argv[1];
if (isMain) {
  process.on('message', (message: { run?: LoadSpec; exit?: boolean }) => {
    if (message.exit) process.exit(0);
    if (!message.run) return;
    runLoad(message.run).then(
      (result) => process.send?.({ result }),
      (error: unknown) => process.send?.({ error: String((error as Error)?.stack ?? error) }),
    );
  });
  process.on('disconnect', () => process.exit(0));
  process.send?.({ ready: true });
}
