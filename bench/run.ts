/**
 * `npm run bench`: Hapax against the same fake upstream reached directly and through a bare proxy, in one run.
 *
 * Processes: the fake upstream (upstream.ts), the bare pass-through proxy (bare-proxy.ts), the built gateway
 * (`node_modules/.bin/node bin/hapax.js serve --config bench/hapax-bench.yaml`) and the load generator
 * (loadgen.ts) each run in their own process; this one only orchestrates and reads /proc.
 *
 * For every mode (JSON, streaming) and connection count (1, 10, 100) the three targets run back to back,
 * each with its own warm-up, so the noise of a shared machine hits them alike. Every figure is also given
 * as a ratio to the bare proxy measured in the same run.
 *
 * Flags: --duration S (per scenario, default 10), --warmup S (default 2), --prime S (every target and mode before any is measured, default 3), --quick (3 s + 1 s),
 *        --connections 1,10,100, --modes json,stream, --targets direct,bare,hapax, --cold-starts N (default 3),
 *        --soak S (10 connections, mixed JSON/stream, RSS and heap over time), --profile (a --cpu-prof run at
 *        10 connections, summarized), --log FILE (gateway request log; default a temp file; /dev/null works),
 *        --out DIR (default bench/results),
 *        --hapax-dir DIR (run another checkout's build, e.g. a snapshot of an older commit, default this one),
 *        --node-flags "..." (extra node flags for the gateway, e.g. V8 heap settings),
 *        --portkey DIR (also measure @portkey-ai/gateway installed in DIR; PORTKEY_NODE picks its node),
 *        --scale 1000,5000,10000 (the scale scenario's stream counts, scale.ts; 0 skips it),
 *        --scale-chunks N (default 10), --scale-gap MS (default 300): the slow upstream's streams,
 *        --scale-ramp MS (the ramped rows' arrival spread; default one stream's length, chunks × gap),
 *        --scale-soak S (after the scale rows, S seconds of long streams on a fresh gateway: heap before and after),
 *        --only-scale (just the scale scenario; writes latest-scale.json and latest-scale.md).
 */
import { fork, spawn, type ChildProcess } from 'node:child_process';
import { closeSync, existsSync, mkdirSync, openSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, release, tmpdir, totalmem } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { execFileSync } from 'node:child_process';
import { request } from 'undici';
import { API_KEY, collectGarbage, freePort, inspectorUrl, nextMessage, NODE, quantile, REPO, rss, shebang, sleep, stopChild } from './lib.ts';
import type { LoadResult, LoadSpec } from './loadgen.ts';
import { compareMarkdown, profileMarkdown, summarizeProfile, type ProfileSummary } from './profile.ts';
import { runScaleScenario, scaleMarkdown, scaleTargets, type ScaleReport } from './scale.ts';

const CHAT_PATH = '/v1/chat/completions';
/** hapax-bench.yaml's route to the same upstream with `lossless: false`: the translated lane's rows. */
const TRANSLATED_PATH = '/translated/v1/chat/completions';
/** The Responses API to the same chat-only upstream (translated: the bench upstream speaks Chat Completions). */
const RESPONSES_PATH = '/v1/responses';
const MB = 1024 * 1024;

const { values: args } = parseArgs({
  options: {
    duration: { type: 'string' },
    warmup: { type: 'string' },
    prime: { type: 'string', default: '3' },
    quick: { type: 'boolean', default: false },
    connections: { type: 'string', default: '1,10,100' },
    modes: { type: 'string', default: 'json,stream' },
    targets: { type: 'string', default: 'direct,bare,hapax,hapax-translated,hapax-responses' },
    'cold-starts': { type: 'string' },
    soak: { type: 'string' },
    profile: { type: 'boolean', default: false },
    log: { type: 'string' },
    out: { type: 'string', default: join(REPO, 'bench/results') },
    'hapax-dir': { type: 'string' },
    'node-flags': { type: 'string', default: '' },
    portkey: { type: 'string' },
    scale: { type: 'string', default: '1000,5000,10000' },
    'scale-chunks': { type: 'string', default: '10' },
    'scale-gap': { type: 'string', default: '300' },
    'scale-ramp': { type: 'string' },
    'scale-soak': { type: 'string' },
    'only-scale': { type: 'boolean', default: false },
  },
  strict: true,
});

const durationS = Number(args.duration ?? (args.quick ? 3 : 10));
const warmupS = Number(args.warmup ?? (args.quick ? 1 : 2));
const coldStarts = Number(args['cold-starts'] ?? (args.quick ? 1 : 3));
const connectionCounts = args.connections.split(',').map(Number);
const modes = args.modes.split(',') as ('json' | 'stream')[];
/** The gateway build to run: this checkout, or another one (e.g. a snapshot of an older commit) to compare. */
const HAPAX_DIR = resolve(args['hapax-dir'] ?? REPO);
/**
 * Node flags and environment for the gateway: those of bin/hapax.js's shebang (`npx hapax` and the image use
 * them, `node bin/hapax.js` would skip them), then --node-flags (to try memory or GC settings).
 */
const { env: GATEWAY_ENV, flags: shebangFlags } = shebang(HAPAX_DIR);
const GATEWAY_FLAGS = [...shebangFlags, ...args['node-flags'].split(' ').filter(Boolean)];
const soakS = args.soak ? Number(args.soak) : 0;
const primeS = Number(args.prime);
/** A directory where `@portkey-ai/gateway` is installed: adds Portkey's gateway as a target, for the side-by-side. */
const PORTKEY_DIR = args.portkey ? resolve(args.portkey) : undefined;
const targetNames = args.targets.split(',');
if (PORTKEY_DIR && !targetNames.includes('portkey')) targetNames.push('portkey');

const log = (line: string) => process.stderr.write(`${line}\n`);
const round = (n: number, digits = 3) => (Number.isFinite(n) ? Math.round(n * 10 ** digits) / 10 ** digits : null);

// ---------- processes ----------

const children: ChildProcess[] = [];
function track<T extends ChildProcess>(child: T): T {
  children.push(child);
  return child;
}
async function cleanup(): Promise<void> {
  await Promise.all(children.map((child) => stopChild(child, 3000)));
}
for (const signal of ['SIGINT', 'SIGTERM'] as const) process.on(signal, () => void cleanup().then(() => process.exit(130)));

async function forkReady(file: string, argv: string[] = []): Promise<{ child: ChildProcess; port: number }> {
  const child = track(fork(join(REPO, 'bench', file), argv, { execPath: NODE, stdio: ['ignore', 'inherit', 'inherit', 'ipc'] }));
  const { ready } = await nextMessage<{ ready: number }>(child, (m) => typeof m === 'object' && m !== null && 'ready' in m);
  return { child, port: ready };
}

interface Gateway {
  child: ChildProcess;
  pid: number;
  port: number;
  coldStartMs: number;
  stderr: () => string;
  /** Set when the process has exited. */
  exited?: { code: number | null; signal: string | null };
}

/** Fails the run when the gateway died under load, with its exit and the last lines it logged. */
function assertAlive(gateway: Gateway, logFile: string, during: string): void {
  if (!gateway.exited) return;
  let tail = '';
  try {
    tail = readFileSync(logFile, 'utf8').split('\n').filter((line) => line && !line.includes('"msg":"request"')).slice(-15).join('\n');
  } catch {
    // no log to show (e.g. /dev/null)
  }
  throw new Error(
    `the gateway (pid ${gateway.pid}) exited during ${during}: code ${gateway.exited.code}, signal ${gateway.exited.signal}\n` +
      `stderr:\n${gateway.stderr()}\nlast log lines other than requests (${logFile}, kept):\n${tail}`,
  );
}

/**
 * Portkey's open-source gateway (`@portkey-ai/gateway`, installed by hand outside this repo: its package runs
 * install scripts), started from its own build on Node 24 in production mode (no UI), routed to the fake
 * upstream by the two headers it reads on every request.
 */
async function startPortkey(dir: string, upstreamPort: number): Promise<{ origin: string; pid: number; child: ChildProcess; headers: Record<string, string> }> {
  const entry = [join(dir, 'node_modules/@portkey-ai/gateway/build/start-server.js'), join(dir, 'build/start-server.js')].find((path) => existsSync(path));
  if (!entry) throw new Error(`--portkey ${dir}: no @portkey-ai/gateway build there (npm install --ignore-scripts @portkey-ai/gateway in that directory)`);
  const port = await freePort();
  // PORTKEY_NODE: another Node for it (its streaming path fails on Node 24's immutable fetch headers).
  const child = track(spawn(process.env.PORTKEY_NODE ?? NODE, [entry, `--port=${port}`, '--headless'], { cwd: dirname(entry), env: { ...process.env, NODE_ENV: 'production' }, stdio: ['ignore', 'ignore', 'inherit'] }));
  const headers = { 'x-portkey-provider': 'openai', 'x-portkey-custom-host': `http://127.0.0.1:${upstreamPort}/v1` };
  const deadline = performance.now() + 30_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`portkey exited with ${child.exitCode}`);
    if (performance.now() > deadline) throw new Error('portkey did not answer within 30 s');
    try {
      const res = await request(`http://127.0.0.1:${port}/`);
      await res.body.dump();
      break;
    } catch {
      await sleep(20);
    }
  }
  return { origin: `http://127.0.0.1:${port}`, pid: child.pid as number, child, headers };
}

/** Spawns the built gateway and times spawn → first answered chat completion. */
async function startHapax(upstreamPort: number, logFile: string, nodeFlags: string[] = [], extraEnv: Record<string, string> = {}): Promise<Gateway> {
  const port = await freePort();
  const out = openSync(logFile, 'a');
  let stderr = '';
  const started = performance.now();
  const child = track(
    spawn(NODE, [...GATEWAY_FLAGS, ...nodeFlags, join(HAPAX_DIR, 'bin/hapax.js'), 'serve', '--config', join(REPO, 'bench/hapax-bench.yaml'), '--port', String(port)], {
      cwd: HAPAX_DIR,
      env: { ...process.env, ...GATEWAY_ENV, BENCH_UPSTREAM_PORT: String(upstreamPort), BENCH_API_KEY: API_KEY, BENCH_KEY_FILE: join(tmpdir(), `hapax-bench-keys-${process.pid}.json`), ...extraEnv },
      stdio: ['ignore', out, 'pipe'],
    }),
  );
  closeSync(out);
  child.stderr?.on('data', (chunk: Buffer) => {
    if (stderr.length < 10_000) stderr += chunk.toString();
  });
  const deadline = started + 30_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`hapax exited with ${child.exitCode}: ${stderr}`);
    if (performance.now() > deadline) throw new Error(`hapax did not answer within 30 s: ${stderr}`);
    try {
      const res = await request(`http://127.0.0.1:${port}${CHAT_PATH}`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', authorization: `Bearer ${API_KEY}` },
        body: JSON.stringify({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: `cold start ${Math.random()}` }] }),
      });
      const text = await res.body.text();
      if (res.statusCode === 200) break;
      throw new Error(`hapax answered ${res.statusCode}: ${text}`);
    } catch (error) {
      if (!/ECONNREFUSED|ECONNRESET|other side closed/.test(String((error as Error).message) + String((error as { code?: string }).code))) throw error;
      await sleep(2);
    }
  }
  const gateway: Gateway = { child, pid: child.pid as number, port, coldStartMs: performance.now() - started, stderr: () => stderr };
  child.once('exit', (code, signal) => (gateway.exited = { code, signal }));
  return gateway;
}

// ---------- load ----------

let loadgen: ChildProcess | undefined;
async function load(spec: LoadSpec): Promise<LoadResult> {
  if (!loadgen) throw new Error('the load generator is not running');
  const answer = nextMessage<{ result?: LoadResult; error?: string }>(loadgen, (m) => typeof m === 'object' && m !== null && ('result' in m || 'error' in m), spec.warmupMs + spec.durationMs + 120_000);
  loadgen.send({ run: spec });
  const { result, error } = await answer;
  if (error || !result) throw new Error(`load generator failed: ${error}`);
  return result;
}

/** One request of each kind through a target: the answer must be a real completion. */
async function sanityCheck(name: string, origin: string, extraHeaders: Record<string, string> = {}, path = CHAT_PATH): Promise<void> {
  const responses = path.endsWith('/responses');
  for (const stream of modes.map((mode) => mode === 'stream')) {
    const res = await request(`${origin}${path}`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${API_KEY}`, ...extraHeaders },
      body: JSON.stringify(
        responses
          ? { model: 'gpt-4o-mini', input: `sanity ${name} ${stream}`, stream, store: false }
          : { model: 'gpt-4o-mini', messages: [{ role: 'user', content: `sanity ${name} ${stream}` }], stream },
      ),
    });
    const text = await res.body.text();
    const answered = responses
      ? stream
        ? text.includes('event: response.completed') && text.includes('benchmark')
        : JSON.parse(text).output?.some((item: { type?: string }) => item.type === 'message')
      : stream
        ? text.includes('data: [DONE]') && text.includes('benchmark')
        : Boolean(JSON.parse(text).choices?.[0]?.message?.content);
    const ok = res.statusCode === 200 && answered;
    if (!ok) throw new Error(`sanity check failed for ${name} (${stream ? 'stream' : 'json'}): ${res.statusCode} ${text.slice(0, 500)}`);
  }
}

interface TargetFigures {
  rps: number | null;
  p50: number | null;
  p90: number | null;
  p99: number | null;
  ttftP50: number | null;
  ttftP99: number | null;
  requests: number;
  errors: number;
  incomplete: number;
  errorSamples: string[];
  /** CPU ms per request of the proxy process (hapax or bare); null for direct. */
  cpuMsPerRequest: number | null;
  /** Share of it spent in the kernel (system time), in %. */
  systemPercent: number | null;
  rssMaxMB: number | null;
  upstreamCpuMsPerRequest: number | null;
  loadgenCpuMsPerRequest: number | null;
  /** TCP connections the upstream accepted during the run (warm-up included): a pool that reuses stays near its size. */
  upstreamConnections?: number;
  /** Hapax only: its memory right after the run, from /metrics (MB). */
  memory?: Record<string, number | null>;
}

function figures(result: LoadResult, proxy: string | undefined): TargetFigures {
  const p = proxy ? result.watched[proxy] : undefined;
  return {
    rps: round(result.rps, 1),
    p50: round(result.latency.p50),
    p90: round(result.latency.p90),
    p99: round(result.latency.p99),
    ttftP50: round(result.ttft.p50),
    ttftP99: round(result.ttft.p99),
    requests: result.requests,
    errors: result.errors,
    incomplete: result.incomplete,
    errorSamples: result.errorSamples,
    cpuMsPerRequest: p ? round(p.cpuMsPerRequest, 4) : null,
    systemPercent: p ? round(p.systemShare * 100, 0) : null,
    rssMaxMB: p ? round(p.rssMaxBytes / MB, 1) : null,
    upstreamCpuMsPerRequest: round(result.watched.upstream?.cpuMsPerRequest ?? NaN, 4),
    loadgenCpuMsPerRequest: round(result.loadgenCpuMsPerRequest, 4),
  };
}

interface Scenario {
  mode: 'json' | 'stream';
  connections: number;
  results: Record<string, TargetFigures>;
  /** Each proxy's figures over the bare proxy's (rps, latency, cpu); >1 latency = slower. */
  vsBare: Record<string, Record<string, number | null>>;
  /** Latency each proxy adds over direct, in ms (difference of percentiles). */
  addedOverDirect: Record<string, Record<string, number | null>>;
}

const ratio = (a: number | null | undefined, b: number | null | undefined) => (a == null || b == null || b === 0 ? null : round(a / b, 3));
const minus = (a: number | null | undefined, b: number | null | undefined) => (a == null || b == null ? null : round(a - b));

async function upstreamConnections(child: ChildProcess): Promise<number> {
  const answer = nextMessage<{ stats: { connections: number } }>(child, (m) => typeof m === 'object' && m !== null && 'stats' in m, 10_000);
  child.send({ stats: true });
  return (await answer).stats.connections;
}

// ---------- soak ----------

async function scrape(port: number): Promise<string> {
  try {
    const res = await request(`http://127.0.0.1:${port}/metrics`);
    return await res.body.text();
  } catch {
    return '';
  }
}

function metricValue(text: string, name: string, labels = ''): number | undefined {
  const escaped = `${name}${labels}`.replace(/[{}"=.]/g, (c) => `\\${c}`);
  const match = new RegExp(`^${escaped}${labels ? '' : '(?:\\{[^}]*\\})?'} ([0-9.e+-]+)`, 'm').exec(text);
  return match ? Number(match[1]) : undefined;
}

async function metricsHeap(port: number): Promise<number | undefined> {
  return metricValue(await scrape(port), 'nodejs_heap_size_used_bytes');
}

/** Where the gateway's memory is, from prom-client's default metrics. */
async function memoryBreakdown(port: number): Promise<Record<string, number | null>> {
  const text = await scrape(port);
  const mb = (v: number | undefined) => (v === undefined ? null : round(v / MB, 1));
  return {
    rss: mb(metricValue(text, 'process_resident_memory_bytes')),
    heapTotal: mb(metricValue(text, 'nodejs_heap_size_total_bytes')),
    heapUsed: mb(metricValue(text, 'nodejs_heap_size_used_bytes')),
    external: mb(metricValue(text, 'nodejs_external_memory_bytes')),
    newSpace: mb(metricValue(text, 'nodejs_heap_space_size_total_bytes', '{space="new"}')),
    oldSpace: mb(metricValue(text, 'nodejs_heap_space_size_total_bytes', '{space="old"}')),
  };
}

interface SoakResult {
  seconds: number;
  connections: number;
  requests: number;
  errors: number;
  rps: number | null;
  samples: { t: number; rssMB: number | null; heapMB: number | null }[];
  /** Live heap after a full GC (through the inspector) once warmed up, and again after the soak. */
  heapStartMB: number | null;
  heapEndMB: number | null;
  heapGrowthPct: number | null;
  rssStartMB: number | null;
  rssEndMB: number | null;
  rssGrowthPct: number | null;
  /** Least-squares trend of the sampled heap (garbage included), MB per minute. */
  heapSlopeMBPerMin: number | null;
}

function slopePerMinute(points: { t: number; v: number }[]): number {
  const n = points.length;
  if (n < 2) return NaN;
  const mt = points.reduce((s, p) => s + p.t, 0) / n;
  const mv = points.reduce((s, p) => s + p.v, 0) / n;
  let num = 0;
  let den = 0;
  for (const p of points) {
    num += (p.t - mt) * (p.v - mv);
    den += (p.t - mt) ** 2;
  }
  return (num / den) * 60;
}

/** A fresh gateway under 10 connections of mixed JSON and streams; heap after full GCs at start and end. */
async function soak(upstreamPort: number, logFile: string, seconds: number): Promise<SoakResult> {
  const gateway = await startHapax(upstreamPort, logFile, ['--inspect=127.0.0.1:0']);
  const ws = await inspectorUrl(gateway.stderr);
  const origin = `http://127.0.0.1:${gateway.port}`;
  // Warm up (JIT, pools, V8 heap sizing) before the baseline.
  await load({ origin, path: CHAT_PATH, apiKey: API_KEY, stream: 'mixed', connections: 10, warmupMs: 0, durationMs: Math.min(20_000, (seconds * 1000) / 10) });
  await collectGarbage(ws);
  const heapStart = (await metricsHeap(gateway.port)) ?? NaN;
  const rssStart = rss(gateway.pid)?.rss ?? NaN;
  const every = Math.max(1000, Math.min(5000, (seconds * 1000) / 60));
  const samples: SoakResult['samples'] = [];
  const running = load({ origin, path: CHAT_PATH, apiKey: API_KEY, stream: 'mixed', connections: 10, warmupMs: 0, durationMs: seconds * 1000, watch: { hapax: gateway.pid } });
  let done = false;
  void running.then(
    () => (done = true),
    () => (done = true),
  );
  const t0 = performance.now();
  while (!done) {
    await Promise.race([sleep(every), running.catch(() => undefined)]);
    if (done) break;
    const heap = await metricsHeap(gateway.port);
    const mem = rss(gateway.pid);
    samples.push({ t: round((performance.now() - t0) / 1000, 1) as number, rssMB: mem ? round(mem.rss / MB, 1) : null, heapMB: heap ? round(heap / MB, 2) : null });
    if (samples.length % 12 === 0) log(`  soak ${samples.at(-1)?.t}s: rss ${samples.at(-1)?.rssMB} MB, heap ${samples.at(-1)?.heapMB} MB`);
  }
  const result = await running;
  await collectGarbage(ws);
  const heapEnd = (await metricsHeap(gateway.port)) ?? NaN;
  const rssEnd = rss(gateway.pid)?.rss ?? NaN;
  await stopChild(gateway.child);
  return {
    seconds,
    connections: 10,
    requests: result.requests,
    errors: result.errors + result.incomplete,
    rps: round(result.rps, 1),
    samples,
    heapStartMB: round(heapStart / MB, 2),
    heapEndMB: round(heapEnd / MB, 2),
    heapGrowthPct: round(((heapEnd - heapStart) / heapStart) * 100, 1),
    rssStartMB: round(rssStart / MB, 1),
    rssEndMB: round(rssEnd / MB, 1),
    rssGrowthPct: round(((rssEnd - rssStart) / rssStart) * 100, 1),
    heapSlopeMBPerMin: round(slopePerMinute(samples.filter((s) => s.heapMB != null).map((s) => ({ t: s.t, v: s.heapMB as number }))), 3),
  };
}

// ---------- profile ----------

interface ProfileResult {
  mode: 'json' | 'stream';
  rps: number;
  requests: number;
  file: string;
  summary: ProfileSummary;
  /** The bare proxy under the same load and profiler: the machinery any Node proxy pays. */
  bare?: { rps: number; requests: number; file: string; summary: ProfileSummary };
}

async function profiled(kind: 'hapax' | 'bare', upstreamPort: number, logFile: string, mode: 'json' | 'stream') {
  const dir = join(tmpdir(), `hapax-bench-prof-${kind}-${mode}-${Date.now()}`);
  mkdirSync(dir, { recursive: true });
  const flags = ['--cpu-prof', `--cpu-prof-dir=${dir}`];
  let child: ChildProcess;
  let port: number;
  if (kind === 'hapax') {
    const gateway = await startHapax(upstreamPort, logFile, flags);
    child = gateway.child;
    port = gateway.port;
  } else {
    child = track(fork(join(REPO, 'bench/bare-proxy.ts'), [`http://127.0.0.1:${upstreamPort}`], { execPath: NODE, execArgv: flags, stdio: ['ignore', 'inherit', 'inherit', 'ipc'] }));
    port = (await nextMessage<{ ready: number }>(child, (m) => typeof m === 'object' && m !== null && 'ready' in m)).ready;
  }
  const result = await load({ origin: `http://127.0.0.1:${port}`, path: CHAT_PATH, apiKey: API_KEY, stream: mode === 'stream', connections: 10, warmupMs: warmupS * 1000, durationMs: durationS * 1000 });
  log(`  profile ${kind} ${mode}@10: ${result.rps.toFixed(0)} req/s (under --cpu-prof)`);
  await stopChild(child, 15_000);
  const file = readdirSync(dir).find((f) => f.endsWith('.cpuprofile'));
  if (!file) throw new Error(`no .cpuprofile written in ${dir}`);
  // Only the measured window: startup (module compilation) and warm-up are left out.
  return { rps: round(result.rps, 1) as number, requests: result.requests + result.errors + result.incomplete, file: join(dir, file), summary: summarizeProfile(join(dir, file), 30, result.window) };
}

/** One gateway (and one bare proxy) under --cpu-prof per mode, 10 connections: where the CPU time goes. */
async function profileRun(upstreamPort: number, logFile: string): Promise<ProfileResult[]> {
  const out: ProfileResult[] = [];
  for (const mode of modes) {
    const hapax = await profiled('hapax', upstreamPort, logFile, mode);
    const bare = await profiled('bare', upstreamPort, logFile, mode);
    out.push({ mode, ...hapax, bare });
    log(`  profiles: ${hapax.file} ${bare.file}`);
  }
  return out;
}

// ---------- report ----------

interface Target {
  name: string;
  goal: string;
  measured: string;
  pass: boolean | null;
}

function evaluate(scenarios: Scenario[], peakRssMB: number | null, coldStartMs: number | null, soakResult: SoakResult | undefined): Target[] {
  const find = (mode: string, c: number) => scenarios.find((s) => s.mode === mode && s.connections === c);
  const targets: Target[] = [];
  for (const mode of ['json', 'stream']) {
    const s = find(mode, 10);
    const r = s?.vsBare.hapax?.rps ?? null;
    targets.push({ name: `throughput at 10 connections, ${mode}`, goal: '≥ 80% of the bare proxy', measured: r == null ? 'not measured' : `${(r * 100).toFixed(0)}%`, pass: r == null ? null : r >= 0.8 });
  }
  for (const [name, lane] of [['hapax', 'lossless lane'], ['hapax-translated', 'translated lane']]) {
    const cpu = find('json', 10)?.vsBare[name]?.cpuMsPerRequest ?? null;
    const goal = name === 'hapax' ? 2 : null;
    targets.push({
      name: `CPU per JSON request at 10 connections, ${lane}`,
      goal: goal ? `≤ ${goal}× the bare proxy` : '(reported)',
      measured: cpu == null ? 'not measured' : `${cpu.toFixed(2)}× the bare proxy`,
      pass: cpu == null || goal == null ? null : cpu <= goal,
    });
  }
  const one = find('json', 1)?.addedOverDirect.hapax;
  const bareOne = find('json', 1)?.addedOverDirect.bare;
  const extra = (v: number | null | undefined, b: number | null | undefined) => (v == null ? '' : ` (bare proxy adds ${b ?? '?'} ms; Hapax over bare ${minus(v, b) ?? '?'} ms)`);
  targets.push({ name: 'added latency at 1 connection, p50 (JSON, over direct)', goal: '≤ 0.2 ms', measured: one?.p50 == null ? 'not measured' : `${one.p50} ms${extra(one.p50, bareOne?.p50)}`, pass: one?.p50 == null ? null : one.p50 <= 0.2 });
  targets.push({ name: 'added latency at 1 connection, p99 (JSON, over direct)', goal: '≤ 1 ms', measured: one?.p99 == null ? 'not measured' : `${one.p99} ms${extra(one.p99, bareOne?.p99)}`, pass: one?.p99 == null ? null : one.p99 <= 1 });
  const ttft = find('stream', 1)?.addedOverDirect.hapax;
  const bareTtft = find('stream', 1)?.addedOverDirect.bare;
  targets.push({ name: 'streaming: added time to first token at 1 connection, p50', goal: '≤ 1 ms', measured: ttft?.ttftP50 == null ? 'not measured' : `${ttft.ttftP50} ms (p99 ${ttft.ttftP99} ms)${extra(ttft.ttftP50, bareTtft?.ttftP50)}`, pass: ttft?.ttftP50 == null ? null : ttft.ttftP50 <= 1 });
  targets.push({ name: 'peak RSS of the gateway under load', goal: '≤ 150 MB', measured: peakRssMB == null ? 'not measured' : `${peakRssMB} MB`, pass: peakRssMB == null ? null : peakRssMB <= 150 });
  targets.push({
    name: 'heap after the soak (after a full GC, against the start)',
    goal: 'within 10% of the start',
    measured: soakResult?.heapGrowthPct == null ? 'not run (--soak 300)' : `live heap ${soakResult.heapStartMB} → ${soakResult.heapEndMB} MB (${soakResult.heapGrowthPct}%) over ${soakResult.seconds} s`,
    pass: soakResult?.heapGrowthPct == null ? null : Math.abs(soakResult.heapGrowthPct) <= 10,
  });
  targets.push({ name: 'cold start (spawn → first answered request)', goal: '≤ 500 ms', measured: coldStartMs == null ? 'not measured' : `${coldStartMs} ms (median)`, pass: coldStartMs == null ? null : coldStartMs <= 500 });
  return targets;
}

const fmt = (v: number | null | undefined, digits = 2) => (v == null ? '–' : v.toFixed(digits));

function markdown(report: Report): string {
  const m = report.meta;
  const lines: string[] = [];
  lines.push(`# Hapax benchmark — ${m.date}`, '');
  lines.push(
    `Machine: ${m.machine.cpus} × ${m.machine.cpuModel}, ${m.machine.memoryGB} GB, Linux ${m.machine.kernel}, Node ${m.node}. ` +
      `Hapax ${m.commit} (${launchLine(m.gatewayEnv ?? {}, m.gatewayNodeFlags)}). ${m.durationS} s per scenario after ${m.warmupS} s warm-up. Load average ${m.loadAverageStart.join(' ')} at the start, ${m.loadAverageEnd.join(' ')} at the end.`,
    '',
  );
  lines.push('Targets (compared, not asserted):', '', '| target | goal | measured | |', '| --- | --- | --- | --- |');
  for (const t of report.targets) lines.push(`| ${t.name} | ${t.goal} | ${t.measured} | ${t.pass == null ? '–' : t.pass ? 'pass' : 'FAIL'} |`);
  lines.push('');
  lines.push(
    'Latencies in ms (to the last byte); TTFT = time to the first body byte. "+p50/+p99" = added over direct (difference of percentiles). ' +
      '"CPU/req" = CPU ms per request of the proxy process ("sys" = the share of it spent in the kernel, mostly socket I/O). "×bare" = this figure over the bare proxy\'s in the same scenario. ' +
      '"upstream conns" = TCP connections the upstream accepted during that run, warm-up included (a proxy that reuses its pool stays near the connection count).',
    '',
  );
  lines.push(
    '| mode | conns | target | req/s | ×bare | p50 | p90 | p99 | +p50 | +p99 | TTFT p50 | TTFT p99 | CPU/req | sys | ×bare | RSS max MB | upstream conns | errors |',
    '| --- | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |',
  );
  for (const s of report.scenarios) {
    for (const [name, r] of Object.entries(s.results)) {
      const vs = s.vsBare[name] ?? {};
      const added = s.addedOverDirect[name] ?? {};
      const stream = s.mode === 'stream';
      lines.push(
        `| ${s.mode} | ${s.connections} | ${name} | ${fmt(r.rps, 0)} | ${fmt(vs.rps)} | ${fmt(r.p50, 3)} | ${fmt(r.p90, 3)} | ${fmt(r.p99, 3)} | ${fmt(added.p50, 3)} | ${fmt(added.p99, 3)} | ` +
          `${stream ? fmt(r.ttftP50, 3) : ''} | ${stream ? fmt(r.ttftP99, 3) : ''} | ${fmt(r.cpuMsPerRequest, 3)} | ${r.systemPercent == null ? '–' : `${r.systemPercent}%`} | ${fmt(vs.cpuMsPerRequest)} | ${fmt(r.rssMaxMB, 1)} | ${r.upstreamConnections ?? '–'} | ${r.errors + r.incomplete} |`,
      );
    }
  }
  lines.push('');
  lines.push(
    `Gateway peak RSS over the whole run (VmHWM): ${report.peakRssMB.hapax ?? '–'} MB (bare proxy: ${report.peakRssMB.bare ?? '–'} MB` +
      `${report.peakRssMB.portkey != null ? `; Portkey: ${report.peakRssMB.portkey} MB` : ''}).`,
  );
  lines.push(`Cold start, spawn → first answered chat completion: ${report.coldStart.runsMs.join(', ')} ms (median ${report.coldStart.medianMs} ms).`);
  if (report.soak) {
    const s = report.soak;
    lines.push(
      `Soak: ${s.seconds} s at ${s.connections} connections (JSON and streams alternating), ${s.requests} requests at ${s.rps} req/s, ${s.errors} errors. ` +
        `Live heap after a full GC ${s.heapStartMB} → ${s.heapEndMB} MB (${s.heapGrowthPct}%); sampled heap trend ${s.heapSlopeMBPerMin} MB/min; RSS ${s.rssStartMB} → ${s.rssEndMB} MB (${s.rssGrowthPct}%).`,
    );
  }
  if (report.scale) lines.push('', scaleMarkdown(report.scale));
  for (const p of report.profile ?? []) {
    lines.push('', `## CPU profile: ${p.mode}, 10 connections (${p.rps} req/s under the profiler; measured window only)`, '');
    if (p.bare) lines.push(compareMarkdown(p.summary, p.requests, p.bare.summary, p.bare.requests), '');
    lines.push(profileMarkdown(p.summary, p.requests));
  }
  lines.push('');
  return lines.join('\n');
}

interface Report {
  meta: {
    date: string;
    machine: { cpus: number; cpuModel: string; memoryGB: number; kernel: string };
    node: string;
    commit: string;
    durationS: number;
    warmupS: number;
    connections: number[];
    modes: string[];
    logFile: string;
    gatewayNodeFlags: string[];
    gatewayEnv?: Record<string, string>;
    loadAverageStart: number[];
    loadAverageEnd: number[];
  };
  targets: Target[];
  scenarios: Scenario[];
  peakRssMB: Record<string, number | null>;
  coldStart: { runsMs: number[]; medianMs: number | null };
  soak?: SoakResult;
  profile?: ProfileResult[];
  scale?: ScaleReport;
}

// ---------- main ----------

function gitCommit(): string {
  if (existsSync(join(HAPAX_DIR, 'COMMIT'))) return readFileSync(join(HAPAX_DIR, 'COMMIT'), 'utf8').trim();
  try {
    const sha = execFileSync('git', ['rev-parse', '--short', 'HEAD'], { cwd: HAPAX_DIR, encoding: 'utf8' }).trim();
    const dirty = execFileSync('git', ['status', '--porcelain', '--', 'src'], { cwd: HAPAX_DIR, encoding: 'utf8' }).trim() ? ' (src modified)' : '';
    return sha + dirty;
  } catch {
    return 'unknown';
  }
}

const scaleCounts = args.scale === '0' ? [] : args.scale.split(',').map(Number);

/** The scale scenario on gateways of its own (scale.ts). */
function scale(logFile: string): Promise<ScaleReport> {
  log(`scale: ${scaleCounts.join(', ')} concurrent streams of ${args['scale-chunks']} chunks ${args['scale-gap']} ms apart`);
  return runScaleScenario({
    counts: scaleCounts,
    chunks: Number(args['scale-chunks']),
    gapMs: Number(args['scale-gap']),
    apiKey: API_KEY,
    path: CHAT_PATH,
    rampMs: args['scale-ramp'] === undefined ? undefined : Number(args['scale-ramp']),
    soakSeconds: args['scale-soak'] === undefined ? undefined : Number(args['scale-soak']),
    startGateway: (upstreamPort, env, nodeFlags) => startHapax(upstreamPort, logFile, nodeFlags, env),
    track,
    log,
  });
}

async function main(): Promise<void> {
  if (!existsSync(join(HAPAX_DIR, 'dist/cli.js'))) throw new Error(`${HAPAX_DIR}/dist is missing: run \`npm run build\` first (npm run bench does)`);
  const newestSrc = Math.max(...readdirSync(join(HAPAX_DIR, 'src'), { recursive: true, withFileTypes: true }).filter((e) => e.isFile()).map((e) => statSync(join(e.parentPath, e.name)).mtimeMs));
  if (newestSrc > statSync(join(HAPAX_DIR, 'dist/cli.js')).mtimeMs + 1000) log('warning: src/ is newer than dist/cli.js; the benchmark runs dist/ (npm run build)');

  const loadAverageStart = loadavg().map((v) => round(v, 2) as number);
  const logFile = args.log ?? join(tmpdir(), `hapax-bench-${process.pid}.log`);
  const ownLog = !args.log;
  if (args['only-scale']) {
    const report = { date: new Date().toISOString(), machine: { cpus: cpus().length, cpuModel: cpus()[0]?.model ?? 'unknown', memoryGB: Math.round(totalmem() / 1024 ** 3) }, node: process.version, commit: gitCommit(), scale: await scale(logFile) };
    mkdirSync(args.out, { recursive: true });
    writeFileSync(join(args.out, 'latest-scale.json'), `${JSON.stringify(report, null, 2)}\n`);
    const targets = scaleTargets(report.scale);
    const md = [
      `# Hapax scale scenario — ${report.date}`,
      '',
      `Machine: ${report.machine.cpus} × ${report.machine.cpuModel}, ${report.machine.memoryGB} GB, Node ${report.node}. Hapax ${report.commit}.`,
      '',
      '| target | goal | measured | |',
      '| --- | --- | --- | --- |',
      ...targets.map((t) => `| ${t.name} | ${t.goal} | ${t.measured} | ${t.pass == null ? '–' : t.pass ? 'pass' : 'FAIL'} |`),
      '',
      scaleMarkdown(report.scale),
    ].join('\n');
    writeFileSync(join(args.out, 'latest-scale.md'), md);
    process.stdout.write(md);
    if (ownLog) rmSync(logFile, { force: true });
    return;
  }
  log(`hapax bench: ${durationS} s per scenario + ${warmupS} s warm-up; connections ${connectionCounts.join(',')}; ${modes.join(',')}; log → ${logFile}; gateway launched as: ${launchLine(GATEWAY_ENV, GATEWAY_FLAGS)}`);

  const upstream = await forkReady('upstream.ts');
  const bare = await forkReady('bare-proxy.ts', [`http://127.0.0.1:${upstream.port}`]);
  loadgen = track(fork(join(REPO, 'bench/loadgen.ts'), [], { execPath: NODE, stdio: ['ignore', 'inherit', 'inherit', 'ipc'] }));
  await nextMessage(loadgen, (m) => typeof m === 'object' && m !== null && 'ready' in m);

  // Cold starts: the first gateway stays up for the load runs; the others are stopped right away.
  const coldRuns: number[] = [];
  for (let i = 1; i < coldStarts; i++) {
    const g = await startHapax(upstream.port, logFile);
    coldRuns.push(round(g.coldStartMs, 1) as number);
    await stopChild(g.child);
  }
  const gateway = await startHapax(upstream.port, logFile);
  coldRuns.push(round(gateway.coldStartMs, 1) as number);
  const sortedCold = [...coldRuns].sort((a, b) => a - b);
  const coldMedian = sortedCold.length ? quantile(sortedCold, 0.5) : null;
  log(`cold start: ${coldRuns.join(', ')} ms`);

  // `hapax` is a client of the provider's own dialect (the lossless lane); `hapax-translated` the same traffic
  // through the canonical model (a provider with `lossless: false`).
  const origins: Record<string, { origin: string; pid?: number; headers?: Record<string, string>; path?: string }> = {
    direct: { origin: `http://127.0.0.1:${upstream.port}` },
    bare: { origin: `http://127.0.0.1:${bare.port}`, pid: bare.child.pid },
    hapax: { origin: `http://127.0.0.1:${gateway.port}`, pid: gateway.pid },
    'hapax-translated': { origin: `http://127.0.0.1:${gateway.port}`, pid: gateway.pid, path: TRANSLATED_PATH },
    'hapax-responses': { origin: `http://127.0.0.1:${gateway.port}`, pid: gateway.pid, path: RESPONSES_PATH },
  };
  const portkey = PORTKEY_DIR ? await startPortkey(PORTKEY_DIR, upstream.port) : undefined;
  if (portkey) origins.portkey = portkey;
  for (const name of targetNames) {
    if (!origins[name]) throw new Error(`unknown target ${name}${name === 'portkey' ? ' (pass --portkey DIR)' : ''}`);
    await sanityCheck(name, origins[name].origin, origins[name].headers, origins[name].path);
  }
  // Every target and mode primed before anything is measured: the gateway serves all of Hapax's rows from one
  // process, and the row measured first on it used to pay for the JIT and the heap's growth (about 0.1 ms of CPU
  // a request, whichever lane it was), which its own short warm-up does not cover.
  if (primeS > 0) {
    for (const mode of modes) {
      for (const name of targetNames) {
        const { origin, headers, path } = origins[name];
        await load({ origin, path: path ?? CHAT_PATH, apiKey: API_KEY, headers, stream: mode === 'stream', connections: 10, warmupMs: 0, durationMs: primeS * 1000 });
      }
    }
    log(`primed: ${primeS} s per target and mode at 10 connections`);
  }

  const scenarios: Scenario[] = [];
  for (const mode of modes) {
    for (const connections of connectionCounts) {
      const results: Record<string, TargetFigures> = {};
      for (const name of targetNames) {
        const { origin, pid, headers, path } = origins[name];
        const watch: Record<string, number> = { upstream: upstream.child.pid as number };
        if (pid) watch[name] = pid;
        const before = await upstreamConnections(upstream.child);
        const result = await load({ origin, path: path ?? CHAT_PATH, apiKey: API_KEY, headers, stream: mode === 'stream', connections, warmupMs: warmupS * 1000, durationMs: durationS * 1000, watch });
        // A dead gateway fails the run (and, by throwing, keeps the temp log for its last lines).
        if (name.startsWith('hapax')) assertAlive(gateway, logFile, `${mode} at ${connections} connections`);
        results[name] = { ...figures(result, pid ? name : undefined), upstreamConnections: (await upstreamConnections(upstream.child)) - before };
        if (name === 'hapax') results[name].memory = await memoryBreakdown(gateway.port);
        const r = results[name];
        log(
          `${mode.padEnd(6)} c=${String(connections).padStart(3)} ${name.padEnd(7)} ${fmt(r.rps, 0).padStart(6)} req/s  p50 ${fmt(r.p50, 3)}  p99 ${fmt(r.p99, 3)} ms` +
            `${mode === 'stream' ? `  ttft p50 ${fmt(r.ttftP50, 3)}` : ''}${r.cpuMsPerRequest != null ? `  cpu ${fmt(r.cpuMsPerRequest, 3)} ms/req (sys ${r.systemPercent}%)` : ''}  upstream conns ${r.upstreamConnections}${r.errors + r.incomplete ? `  ERRORS ${r.errors + r.incomplete}: ${r.errorSamples[0] ?? ''}` : ''}`,
        );
      }
      const vsBare: Scenario['vsBare'] = {};
      const addedOverDirect: Scenario['addedOverDirect'] = {};
      const b = results.bare;
      const d = results.direct;
      for (const [name, r] of Object.entries(results)) {
        vsBare[name] = { rps: ratio(r.rps, b?.rps), p50: ratio(r.p50, b?.p50), p99: ratio(r.p99, b?.p99), ttftP50: ratio(r.ttftP50, b?.ttftP50), cpuMsPerRequest: ratio(r.cpuMsPerRequest, b?.cpuMsPerRequest) };
        addedOverDirect[name] = { p50: minus(r.p50, d?.p50), p90: minus(r.p90, d?.p90), p99: minus(r.p99, d?.p99), ttftP50: minus(r.ttftP50, d?.ttftP50), ttftP99: minus(r.ttftP99, d?.ttftP99) };
      }
      scenarios.push({ mode, connections, results, vsBare, addedOverDirect });
    }
  }
  const peakRssMB: Record<string, number | null> = {
    hapax: round((rss(gateway.pid)?.peak ?? NaN) / MB, 1),
    bare: round((rss(bare.child.pid as number)?.peak ?? NaN) / MB, 1),
  };
  if (portkey) {
    peakRssMB.portkey = round((rss(portkey.pid)?.peak ?? NaN) / MB, 1);
    await stopChild(portkey.child);
  }

  const stderr = gateway.stderr();
  await stopChild(gateway.child);
  if (stderr.trim()) log(`gateway stderr:\n${stderr}`);

  let soakResult: SoakResult | undefined;
  if (soakS > 0) {
    log(`soak: ${soakS} s at 10 connections, a fresh gateway`);
    soakResult = await soak(upstream.port, logFile, soakS);
    log(`soak: live heap ${soakResult.heapStartMB} → ${soakResult.heapEndMB} MB (${soakResult.heapGrowthPct}%), rss ${soakResult.rssStartMB} → ${soakResult.rssEndMB} MB`);
  }

  const scaleResult = scaleCounts.length > 0 ? await scale(logFile) : undefined;

  let profile: Report['profile'];
  if (args.profile) {
    log('profile: --cpu-prof runs at 10 connections');
    profile = await profileRun(upstream.port, logFile);
  }

  const report: Report = {
    meta: {
      date: new Date().toISOString(),
      machine: { cpus: cpus().length, cpuModel: cpus()[0]?.model ?? 'unknown', memoryGB: Math.round(totalmem() / 1024 ** 3), kernel: release() },
      node: process.version,
      commit: gitCommit(),
      durationS,
      warmupS,
      connections: connectionCounts,
      modes,
      logFile: ownLog ? '(temp file, deleted)' : logFile,
      gatewayNodeFlags: GATEWAY_FLAGS,
      gatewayEnv: GATEWAY_ENV,
      loadAverageStart,
      loadAverageEnd: loadavg().map((v) => round(v, 2) as number),
    },
    targets: [...evaluate(scenarios, peakRssMB.hapax, coldMedian, soakResult), ...scaleTargets(scaleResult)],
    scenarios,
    peakRssMB,
    coldStart: { runsMs: coldRuns, medianMs: coldMedian },
    soak: soakResult,
    profile,
    scale: scaleResult,
  };
  mkdirSync(args.out, { recursive: true });
  writeFileSync(join(args.out, 'latest.json'), `${JSON.stringify(report, null, 2)}\n`);
  const md = markdown(report);
  writeFileSync(join(args.out, 'latest.md'), md);
  process.stdout.write(md);
  if (ownLog) rmSync(logFile, { force: true });
}

try {
  await main();
} finally {
  loadgen?.send({ exit: true });
  await cleanup();
}

/** How the gateway was started, as a shell line: `MALLOC_ARENA_MAX=2 node --max-semi-space-size=8`. */
function launchLine(env: Record<string, string>, flags: string[]): string {
  return [...Object.entries(env).map(([name, value]) => `${name}=${value}`), 'node', ...flags].join(' ');
}
