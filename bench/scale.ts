/**
 * The scale scenario: streams as real models send them (N chunks, gap ms apart), thousands at once. For each
 * count, the same burst goes to the slow upstream directly, through the bare proxy, and through Hapax, back to
 * back: wall time for the whole burst, time to first token (added over direct, p50 and p99), the proxy's peak
 * RSS and RSS per open stream (over its RSS just before the burst), Hapax's event-loop delay (its
 * nodejs_eventloop_lag_* metrics over the burst) and whether any request waited for an upstream connection
 * (hapax_upstream_queued_requests, sampled), and errors.
 *
 * Every process needs a file descriptor per open connection (a proxy two per stream: the client's and the
 * upstream's). A count that would not fit the gateway's open-files limit that way (10,000 streams against this
 * machine's hard limit of 20,000) goes upstream over TLS with HTTP/2, as hosted APIs offer it, 100 streams per
 * connection, for the bare proxy and Hapax alike; the table says which rows did.
 *
 * Each count runs as a burst (every stream opened at once). Two ramped rows open their streams evenly over a
 * while instead, as agents that start at different moments would, and carry the targets: 1,000 streams over
 * one stream's length (all open together at its end), and the largest count of 5,000 or more over count / 500
 * seconds with streams that last the ramp and one stream's length more (all open together at the ramp's end).
 * A burst measures how fast a proxy on two shared cores accepts thousands of requests in the same instant,
 * which the bare proxy does not do within the targets either.
 */
import { fork, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { request } from 'undici';
import { collectGarbage, inspectorUrl, NODE, REPO, nextMessage, rss, sleep, stopChild } from './lib.ts';
import type { ScaleLoadResult, ScaleSpec } from './scale-load.ts';

const MB = 1024 * 1024;
const round = (n: number | null | undefined, digits = 1) => (n == null || !Number.isFinite(n) ? null : Math.round(n * 10 ** digits) / 10 ** digits);

export interface ScaleTarget {
  wallMs: number | null;
  ttftP50: number | null;
  ttftP99: number | null;
  errors: number;
  incomplete: number;
  errorSamples: string[];
  rssBaselineMB: number | null;
  rssPeakMB: number | null;
  /** (peak − baseline) / streams, in KB. */
  rssPerStreamKB: number | null;
}

export interface ScaleRow {
  streams: number;
  /** Arrivals spread over this long; 0: all at once. */
  rampMs: number;
  /** Chunks per stream. */
  chunks: number;
  /** How the proxies reached the upstream. */
  upstream: 'h1' | 'h2';
  results: Record<string, ScaleTarget>;
  /** Hapax against direct: wall time ratio, TTFT added (ms). */
  hapax: { wallVsDirect: number | null; ttftAddedP50: number | null; ttftAddedP99: number | null; rssPerStreamVsBare: number | null };
  /** Hapax's event-loop delay during the burst (ms), from its /metrics: the worst 250 ms window's p50, p99 and max. */
  eventLoop: { p50: number | null; p99: number | null; max: number | null };
  /** The most requests seen waiting for an upstream connection while the burst ran (sampled every 250 ms). */
  upstreamQueuedMax: number;
}

/** Long streams for a while on a fresh gateway: does anything stay behind? */
export interface SoakReport {
  seconds: number;
  streams: number;
  /** Streams whose client left after the first chunk (one in ten). */
  left: number;
  errors: number;
  /** Live heap after a full GC, once warmed up and again after the soak. */
  heapStartMB: number | null;
  heapEndMB: number | null;
  heapGrowthPct: number | null;
  rssStartMB: number | null;
  rssEndMB: number | null;
}

export interface ScaleReport {
  chunks: number;
  gapMs: number;
  soak?: SoakReport;
  /** The open-files limit the gateway ran with. */
  gatewayFileLimit: number | null;
  rows: ScaleRow[];
}

export interface ScaleOptions {
  counts: number[];
  chunks: number;
  gapMs: number;
  apiKey: string;
  path: string;
  /** The ramped row's arrival spread (default: one stream's length). */
  rampMs?: number;
  /** Seconds of the long-stream soak (0 or absent: none). */
  soakSeconds?: number;
  /** Starts a gateway against the upstream on this port (with this extra environment and node flags); run.ts's own starter. */
  startGateway(upstreamPort: number, env: Record<string, string>, nodeFlags?: string[]): Promise<{ child: ChildProcess; pid: number; port: number; stderr: () => string }>;
  track<T extends ChildProcess>(child: T): T;
  log(line: string): void;
}

async function forkReady(file: string, argv: string[], track: ScaleOptions['track'], env?: Record<string, string>): Promise<{ child: ChildProcess; port: number; tlsPort?: number }> {
  const child = track(fork(join(REPO, 'bench', file), argv, { execPath: NODE, stdio: ['ignore', 'inherit', 'inherit', 'ipc'], ...(env ? { env: { ...process.env, ...env } } : {}) }));
  const { ready, tlsPort } = await nextMessage<{ ready: number; tlsPort?: number }>(child, (m) => typeof m === 'object' && m !== null && 'ready' in m);
  return { child, port: ready, tlsPort };
}

/** A certificate for localhost that the proxies trust through NODE_EXTRA_CA_CERTS. */
async function localCertificate(dir: string): Promise<{ cert: string; key: string }> {
  const { generate } = await import('selfsigned');
  const pems = await generate([{ name: 'commonName', value: 'localhost' }], {
    keyType: 'ec',
    curve: 'P-256',
    algorithm: 'sha256',
    extensions: [{ name: 'subjectAltName', altNames: [{ type: 2, value: 'localhost' }] }],
  });
  const cert = join(dir, 'upstream.crt');
  const key = join(dir, 'upstream.key');
  writeFileSync(cert, pems.cert);
  writeFileSync(key, pems.private);
  return { cert, key };
}

async function metricsText(port: number): Promise<string> {
  try {
    const res = await request(`http://127.0.0.1:${port}/metrics`);
    return await res.body.text();
  } catch {
    return '';
  }
}

function metric(text: string, name: string): number | null {
  const match = new RegExp(`^${name}(?:\\{[^}]*\\})? ([0-9.e+-]+)`, 'm').exec(text);
  return match ? Number(match[1]) : null;
}

/** The largest value of any series of `name`. */
function maxOf(text: string, name: string): number {
  let max = 0;
  for (const match of text.matchAll(new RegExp(`^${name}(?:\\{[^}]*\\})? ([0-9.e+-]+)`, 'gm'))) max = Math.max(max, Number(match[1]));
  return max;
}

function fileLimit(pid: number): number | null {
  try {
    const line = readFileSync(`/proc/${pid}/limits`, 'utf8').split('\n').find((l) => l.startsWith('Max open files'));
    return line ? Number(line.split(/\s+/)[3]) : null;
  } catch {
    return null;
  }
}

export async function runScaleScenario(opts: ScaleOptions): Promise<ScaleReport> {
  const certDir = mkdtempSync(join(tmpdir(), 'hapax-scale-tls-'));
  const tls = await localCertificate(certDir);
  const upstream = await forkReady('upstream.ts', ['--chunks', String(opts.chunks), '--gap', String(opts.gapMs), '--tls-cert', tls.cert, '--tls-key', tls.key], opts.track);
  const h2Origin = `https://localhost:${upstream.tlsPort}`;
  const trust = { NODE_EXTRA_CA_CERTS: tls.cert };
  const bare = await forkReady('bare-proxy.ts', [`http://127.0.0.1:${upstream.port}`], opts.track);
  const bareH2 = await forkReady('bare-proxy.ts', [h2Origin], opts.track, trust);
  const gateway = await opts.startGateway(upstream.port, { ...trust, BENCH_UPSTREAM_H2_ORIGIN: h2Origin });
  const client = opts.track(fork(join(REPO, 'bench/scale-load.ts'), [], { execPath: NODE, stdio: ['ignore', 'inherit', 'inherit', 'ipc'] }));
  await nextMessage(client, (m) => typeof m === 'object' && m !== null && 'ready' in m);
  const burst = async (spec: ScaleSpec): Promise<ScaleLoadResult> => {
    const answer = nextMessage<{ result?: ScaleLoadResult; error?: string }>(client, (m) => typeof m === 'object' && m !== null && ('result' in m || 'error' in m), 600_000);
    client.send({ run: spec });
    const { result, error } = await answer;
    if (error || !result) throw new Error(`scale client failed: ${error}`);
    return result;
  };
  const gatewayFileLimit = fileLimit(gateway.pid);
  // Two descriptors a stream over HTTP/1.1, plus room for the rest: a count past that multiplexes upstream.
  const fitsH1 = (streams: number) => gatewayFileLimit === null || 2 * streams + 200 <= gatewayFileLimit;
  const rampMs = opts.rampMs ?? opts.chunks * opts.gapMs;
  const upstreamOf = (streams: number) => (fitsH1(streams) ? 'h1' : 'h2') as 'h1' | 'h2';
  const plans: { streams: number; rampMs: number; chunks: number; upstream: 'h1' | 'h2' }[] = [];
  for (const streams of opts.counts) {
    plans.push({ streams, rampMs: 0, chunks: opts.chunks, upstream: upstreamOf(streams) });
    if (streams === 1000 && rampMs > 0) plans.push({ streams, rampMs, chunks: opts.chunks, upstream: 'h1' });
  }
  const held = Math.max(...opts.counts);
  if (held >= 5000) {
    // 500 arrivals a second, each stream lasting the ramp and one stream's length more.
    const heldRamp = Math.round((held / 500) * 1000);
    plans.push({ streams: held, rampMs: heldRamp, chunks: Math.ceil(heldRamp / opts.gapMs) + opts.chunks, upstream: upstreamOf(held) });
  }
  const h2Path = opts.path.replace(/^\/v1\//, '/h2/v1/');
  const targetsFor = (h2: boolean): Record<string, { origin: string; pid?: number; path: string }> => ({
    direct: { origin: `http://127.0.0.1:${upstream.port}`, path: opts.path },
    bare: h2 ? { origin: `http://127.0.0.1:${bareH2.port}`, pid: bareH2.child.pid, path: opts.path } : { origin: `http://127.0.0.1:${bare.port}`, pid: bare.child.pid, path: opts.path },
    hapax: { origin: `http://127.0.0.1:${gateway.port}`, pid: gateway.pid, path: h2 ? h2Path : opts.path },
  });
  // A small burst first: JIT, pools and the upstream warmed alike for all of them, on both upstream protocols.
  for (const h2 of [false, true]) {
    for (const [name, { origin, pid, path }] of Object.entries(targetsFor(h2))) if (!(h2 && name === 'direct')) await burst({ origin, path, apiKey: opts.apiKey, streams: 50, watchPid: pid });
  }

  const rows: ScaleRow[] = [];
  let soak: SoakReport | undefined;
  try {
    for (const plan of plans) {
      const { streams } = plan;
      const results: Record<string, ScaleTarget> = {};
      let eventLoop: ScaleRow['eventLoop'] = { p50: null, p99: null, max: null };
      let upstreamQueuedMax = 0;
      const label = `n=${String(streams).padStart(5)}${plan.rampMs ? ` ramp ${plan.rampMs} ms` : ''}${plan.chunks !== opts.chunks ? ` ${plan.chunks} chunks` : ''}${plan.upstream === 'h2' ? ' h2' : ''}`;
      for (const [name, { origin, pid, path }] of Object.entries(targetsFor(plan.upstream === 'h2'))) {
        let sampling: NodeJS.Timeout | undefined;
        if (name === 'hapax') {
          await metricsText(gateway.port); // resets the event-loop histogram: what follows is this burst's
          // Each scrape also resets the event-loop histogram: the figures are the worst 250 ms window's.
          const worst = (v: number | null, seen: number | null) => (v === null ? seen : Math.max(v * 1000, seen ?? 0));
          eventLoop = { p50: null, p99: null, max: null };
          sampling = setInterval(
            () =>
              void metricsText(gateway.port).then((text) => {
                upstreamQueuedMax = Math.max(upstreamQueuedMax, maxOf(text, 'hapax_upstream_queued_requests'));
                eventLoop = {
                  p50: worst(metric(text, 'nodejs_eventloop_lag_p50_seconds'), eventLoop.p50),
                  p99: worst(metric(text, 'nodejs_eventloop_lag_p99_seconds'), eventLoop.p99),
                  max: worst(metric(text, 'nodejs_eventloop_lag_max_seconds'), eventLoop.max),
                };
              }),
            1000,
          );
        }
        const r = await burst({ origin, path, apiKey: opts.apiKey, streams, rampMs: plan.rampMs, chunks: plan.chunks === opts.chunks ? undefined : plan.chunks, watchPid: pid });
        if (sampling) clearInterval(sampling);
        if (name === 'hapax') eventLoop = { p50: round(eventLoop.p50, 2), p99: round(eventLoop.p99, 2), max: round(eventLoop.max, 2) };
        const grown = r.rssPeakBytes !== null && r.rssBaselineBytes !== null ? r.rssPeakBytes - r.rssBaselineBytes : null;
        results[name] = {
          wallMs: round(r.wallMs, 0),
          ttftP50: round(r.ttft.p50, 2),
          ttftP99: round(r.ttft.p99, 2),
          errors: r.errors,
          incomplete: r.incomplete,
          errorSamples: r.errorSamples,
          rssBaselineMB: round(r.rssBaselineBytes === null ? null : r.rssBaselineBytes / MB),
          rssPeakMB: round(r.rssPeakBytes === null ? null : r.rssPeakBytes / MB),
          rssPerStreamKB: round(grown === null ? null : grown / 1024 / streams, 1),
        };
        const t = results[name];
        opts.log(
          `scale ${label} ${name.padEnd(6)} wall ${t.wallMs} ms  ttft p50 ${t.ttftP50} p99 ${t.ttftP99} ms` +
            `${t.rssPeakMB !== null ? `  rss ${t.rssBaselineMB} → ${t.rssPeakMB} MB (${t.rssPerStreamKB} KB/stream)` : ''}${t.errors + t.incomplete ? `  ERRORS ${t.errors + t.incomplete}: ${t.errorSamples[0] ?? ''}` : ''}`,
        );
        // Let the last burst's connections close before the next one.
        await sleep(1000);
      }
      const d = results.direct;
      const h = results.hapax;
      const b = results.bare;
      const minus = (a: number | null, z: number | null) => (a === null || z === null ? null : round(a - z, 2));
      const over = (a: number | null, z: number | null) => (a === null || z === null || z === 0 ? null : round(a / z, 3));
      rows.push({
        streams,
        rampMs: plan.rampMs,
        chunks: plan.chunks,
        upstream: plan.upstream,
        results,
        hapax: { wallVsDirect: over(h.wallMs, d.wallMs), ttftAddedP50: minus(h.ttftP50, d.ttftP50), ttftAddedP99: minus(h.ttftP99, d.ttftP99), rssPerStreamVsBare: over(h.rssPerStreamKB, b.rssPerStreamKB) },
        eventLoop: { p50: round(eventLoop.p50, 2), p99: round(eventLoop.p99, 2), max: round(eventLoop.max, 2) },
        upstreamQueuedMax,
      });
      opts.log(`scale ${label}: hapax wall ×${rows.at(-1)?.hapax.wallVsDirect} of direct, ttft added p50 ${rows.at(-1)?.hapax.ttftAddedP50} p99 ${rows.at(-1)?.hapax.ttftAddedP99} ms, event loop p99 ${rows.at(-1)?.eventLoop.p99} ms, queued for a connection: ${upstreamQueuedMax}`);
    }
    if (opts.soakSeconds) soak = await longStreamSoak(opts, upstream.port, { ...trust, BENCH_UPSTREAM_H2_ORIGIN: h2Origin }, burst);
  } finally {
    client.send({ exit: true });
    await Promise.all([stopChild(gateway.child), stopChild(bare.child), stopChild(bareH2.child), stopChild(upstream.child), stopChild(client)]);
    rmSync(certDir, { recursive: true, force: true });
  }
  return { chunks: opts.chunks, gapMs: opts.gapMs, gatewayFileLimit, rows, ...(soak ? { soak } : {}) };
}

/**
 * Waves of 500 streams, each ramped over one stream's length, on a fresh gateway whose route resumes streams and
 * hedges slow first tokens, with one client in ten leaving after its first chunk; live heap after full GCs (through
 * the inspector) once warmed up and after the soak.
 */
async function longStreamSoak(opts: ScaleOptions, upstreamPort: number, env: Record<string, string>, wave: (spec: ScaleSpec) => Promise<ScaleLoadResult>): Promise<SoakReport> {
  const seconds = opts.soakSeconds as number;
  const gateway = await opts.startGateway(upstreamPort, env, ['--inspect=127.0.0.1:0']);
  try {
    const inspector = await inspectorUrl(gateway.stderr);
    const spec: ScaleSpec = { origin: `http://127.0.0.1:${gateway.port}`, path: opts.path.replace(/^\/v1\//, '/soak/v1/'), apiKey: opts.apiKey, streams: 500, rampMs: opts.chunks * opts.gapMs, leaveEvery: 10 };
    await wave(spec); // warm-up: JIT, pools and the heap's own sizing before the baseline
    await collectGarbage(inspector);
    const heapStart = metric(await metricsText(gateway.port), 'nodejs_heap_size_used_bytes');
    const rssStart = rss(gateway.pid)?.rss ?? null;
    let streams = 0;
    let left = 0;
    let errors = 0;
    const until = performance.now() + seconds * 1000;
    while (performance.now() < until) {
      const r = await wave({ ...spec, watchPid: gateway.pid });
      streams += r.streams;
      left += r.left;
      errors += r.errors + r.incomplete;
      opts.log(`soak: ${streams} streams so far (${left} left by their client, ${errors} errors), rss ${round((rss(gateway.pid)?.rss ?? 0) / MB)} MB`);
    }
    await sleep(1000); // the last wave's connections close
    await collectGarbage(inspector);
    const heapEnd = metric(await metricsText(gateway.port), 'nodejs_heap_size_used_bytes');
    const rssEnd = rss(gateway.pid)?.rss ?? null;
    const mb = (v: number | null) => (v === null ? null : round(v / MB, 2));
    return {
      seconds,
      streams,
      left,
      errors,
      heapStartMB: mb(heapStart),
      heapEndMB: mb(heapEnd),
      heapGrowthPct: heapStart && heapEnd !== null ? round(((heapEnd - heapStart) / heapStart) * 100, 1) : null,
      rssStartMB: mb(rssStart),
      rssEndMB: mb(rssEnd),
    };
  } finally {
    await stopChild(gateway.child);
  }
}

/** The scale scenario's section of latest.md. */
export function scaleMarkdown(report: ScaleReport): string {
  const lines: string[] = [];
  lines.push(
    `## Scale: concurrent slow streams (${report.chunks} chunks, ${report.gapMs} ms apart)`,
    '',
    `One connection each, opened all at once (arrival "burst") or evenly over the ramp. Wall = first request to last stream end. TTFT = time to the first body byte. ` +
      `RSS per stream = (peak − RSS before the burst) / streams. Event loop = Hapax's nodejs_eventloop_lag_* (p99 and max of the worst 250 ms window of the burst). ` +
      `Queued = most requests seen waiting for an upstream connection. Upstream h2: the proxies reached the upstream over TLS with HTTP/2 (100 streams a connection), direct stayed HTTP/1.1. Gateway open-files limit: ${report.gatewayFileLimit ?? '?'}.`,
    '',
    '| streams | arrival | upstream | target | wall ms | ×direct | TTFT p50 | TTFT p99 | +TTFT p50 | +TTFT p99 | RSS before MB | RSS peak MB | KB/stream | ×bare | event loop p99 / max ms | queued | errors |',
    '| ---: | --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |',
  );
  const f = (v: number | null | undefined) => (v == null ? '–' : String(v));
  for (const row of report.rows) {
    for (const [name, r] of Object.entries(row.results)) {
      const hapax = name === 'hapax';
      const d = row.results.direct;
      const added = (a: number | null, z: number | null) => (a === null || z === null ? null : Math.round((a - z) * 100) / 100);
      lines.push(
        `| ${row.streams} | ${row.rampMs ? `ramp ${row.rampMs} ms${row.chunks !== report.chunks ? `, ${row.chunks} chunks` : ''}` : 'burst'} | ${row.upstream ?? 'h1'} | ${name} | ${f(r.wallMs)} | ${name === 'direct' ? '' : f(r.wallMs && d.wallMs ? Math.round((r.wallMs / d.wallMs) * 1000) / 1000 : null)} | ${f(r.ttftP50)} | ${f(r.ttftP99)} | ` +
          `${name === 'direct' ? '' : f(added(r.ttftP50, d.ttftP50))} | ${name === 'direct' ? '' : f(added(r.ttftP99, d.ttftP99))} | ${f(r.rssBaselineMB)} | ${f(r.rssPeakMB)} | ${f(r.rssPerStreamKB)} | ` +
          `${hapax ? f(row.hapax.rssPerStreamVsBare) : ''} | ${hapax ? `${f(row.eventLoop.p99)} / ${f(row.eventLoop.max)}` : ''} | ${hapax ? row.upstreamQueuedMax : ''} | ${r.errors + r.incomplete} |`,
      );
    }
  }
  const soak = report.soak;
  if (soak) {
    lines.push(
      '',
      `Long-stream soak: ${soak.seconds} s of waves of 500 streams (each ramped over one stream's length) on a fresh gateway, route with resume_streams and hedge_after on, one client in ten leaving after its first chunk: ` +
        `${soak.streams} streams, ${soak.left} left by their client, ${soak.errors} errors; live heap after a full GC ${soak.heapStartMB} → ${soak.heapEndMB} MB (${soak.heapGrowthPct}%), RSS ${soak.rssStartMB} → ${soak.rssEndMB} MB.`,
    );
  }
  lines.push('');
  return lines.join('\n');
}

/** The issue's targets for the scale scenario, as the summary table lists them. */
export function scaleTargets(report: ScaleReport | undefined): { name: string; goal: string; measured: string; pass: boolean | null }[] {
  const at = (n: number) => report?.rows.find((r) => r.streams === n && !r.rampMs);
  // 10,000 streams open together: the held row (ramped), else the burst.
  const bigBurst = at(10_000);
  const big = report?.rows.find((r) => r.streams === 10_000 && r.rampMs) ?? bigBurst;
  // The timing targets are read on the ramped row (a thousand streams open together, arriving as agents do);
  // the burst row beside it says what opening them all in the same millisecond costs.
  const burstOne = at(1000);
  const one = report?.rows.find((r) => r.streams === 1000 && r.rampMs) ?? burstOne;
  const arrival = (row: ScaleRow | undefined) => (row?.rampMs ? `ramped over ${row.rampMs} ms` : 'burst');
  const burstNote = (text: (row: ScaleRow) => string) => (burstOne && burstOne !== one ? `; burst: ${text(burstOne)}` : '');
  const notRun = 'not run (--scale 1000,5000,10000)';
  const h = (row: ScaleRow | undefined) => row?.results.hapax;
  const bigErrors = h(big) ? (h(big) as ScaleTarget).errors + (h(big) as ScaleTarget).incomplete : null;
  const soak = report?.soak;
  return [
    {
      name: 'scale: heap after a soak of long streams (after a full GC, against the start)',
      goal: 'within 10% of the start',
      measured: soak ? `${soak.heapStartMB} → ${soak.heapEndMB} MB (${soak.heapGrowthPct}%) over ${soak.seconds} s, ${soak.streams} streams, ${soak.errors} errors` : 'not run (--scale-soak S)',
      pass: soak?.heapGrowthPct == null ? null : Math.abs(soak.heapGrowthPct) <= 10 && soak.errors === 0,
    },
    {
      name: 'scale: 10,000 concurrent slow streams, one process',
      goal: '0 errors, peak RSS ≤ 1 GB',
      measured: big
        ? `${bigErrors} errors, peak RSS ${h(big)?.rssPeakMB} MB (${arrival(big)})${bigBurst && bigBurst !== big ? `; burst: ${(h(bigBurst) as ScaleTarget).errors + (h(bigBurst) as ScaleTarget).incomplete} errors, peak RSS ${h(bigBurst)?.rssPeakMB} MB` : ''}`
        : notRun,
      pass: big ? bigErrors === 0 && (h(big)?.rssPeakMB ?? Infinity) <= 1024 : null,
    },
    {
      name: 'scale: wall time at 1,000 streams',
      goal: 'within 10% of direct',
      measured: one ? `×${one.hapax.wallVsDirect} of direct (${h(one)?.wallMs} vs ${one.results.direct.wallMs} ms, ${arrival(one)})${burstNote((r) => `×${r.hapax.wallVsDirect}`)}` : notRun,
      pass: one?.hapax.wallVsDirect == null ? null : one.hapax.wallVsDirect <= 1.1,
    },
    {
      name: 'scale: TTFT added at 1,000 streams, p99',
      goal: '≤ 50 ms',
      measured: one ? `${one.hapax.ttftAddedP99} ms (p50 ${one.hapax.ttftAddedP50} ms, ${arrival(one)})${burstNote((r) => `${r.hapax.ttftAddedP99} ms`)}` : notRun,
      pass: one?.hapax.ttftAddedP99 == null ? null : one.hapax.ttftAddedP99 <= 50,
    },
    {
      name: 'scale: RSS per open stream (largest count run)',
      goal: '≤ 1.5× the bare proxy',
      measured: report?.rows.length ? `×${report.rows.at(-1)?.hapax.rssPerStreamVsBare} (${h(report.rows.at(-1))?.rssPerStreamKB} vs ${report.rows.at(-1)?.results.bare.rssPerStreamKB} KB) at ${report.rows.at(-1)?.streams}` : notRun,
      pass: report?.rows.at(-1)?.hapax.rssPerStreamVsBare == null ? null : (report.rows.at(-1)?.hapax.rssPerStreamVsBare as number) <= 1.5,
    },
  ];
}
