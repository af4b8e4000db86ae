/** Helpers shared by the benchmark's processes: /proc readings, percentiles, free ports, child-process plumbing. */
import { readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createServer } from 'node:net';
import type { ChildProcess } from 'node:child_process';

/** The repository root, the Node 24 the project runs on, and the client key the bench config accepts. */
export const REPO = resolve(dirname(fileURLToPath(import.meta.url)), '..');
export const NODE = join(REPO, 'node_modules/.bin/node');
export const API_KEY = 'hpx-bench-0123456789abcdef0123456789abcdef';

/** Clock ticks per second for /proc/PID/stat's utime and stime (Linux: 100 on every common build). */
export const CLOCK_TICKS = 100;

/** CPU time a process has used so far, user and system (kernel: socket work shows up there), in ms; undefined when the process is gone. */
export function cpuSplitMs(pid: number): { user: number; system: number } | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // The command name (field 2) may contain spaces: count fields after its closing parenthesis.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return { user: (Number(fields[11]) * 1000) / CLOCK_TICKS, system: (Number(fields[12]) * 1000) / CLOCK_TICKS };
  } catch {
    return undefined;
  }
}

/** Current and peak resident set size of a process, in bytes (VmRSS and VmHWM from /proc/PID/status). */
export function rss(pid: number): { rss: number; peak: number } | undefined {
  try {
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    const kb = (name: string) => Number(new RegExp(`^${name}:\\s+(\\d+) kB`, 'm').exec(status)?.[1] ?? NaN) * 1024;
    return { rss: kb('VmRSS'), peak: kb('VmHWM') };
  } catch {
    return undefined;
  }
}

/** Value at quantile q (0..1) of an ascending-sorted array, nearest-rank. */
export function quantile(sorted: ArrayLike<number>, q: number): number {
  if (sorted.length === 0) return NaN;
  const rank = Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1));
  return sorted[rank];
}

export interface LatencySummary {
  count: number;
  mean: number;
  p50: number;
  p90: number;
  p99: number;
  max: number;
}

/** Summary of latencies in ms (the array is sorted in place). */
export function summarize(values: Float64Array): LatencySummary {
  values.sort();
  let sum = 0;
  for (const v of values) sum += v;
  return {
    count: values.length,
    mean: values.length ? sum / values.length : NaN,
    p50: quantile(values, 0.5),
    p90: quantile(values, 0.9),
    p99: quantile(values, 0.99),
    max: values.length ? values[values.length - 1] : NaN,
  };
}

/** A TCP port that was free a moment ago on 127.0.0.1. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.unref();
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
}

/** The first IPC message of a forked child that satisfies `accept`, or a rejection when it exits first. */
export function nextMessage<T>(child: ChildProcess, accept: (message: unknown) => boolean = () => true, timeoutMs = 120_000): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const timer = setTimeout(() => finish(new Error(`no message from child ${child.pid} within ${timeoutMs} ms`)), timeoutMs);
    const onMessage = (message: unknown) => {
      if (accept(message)) finish(undefined, message as T);
    };
    const onExit = (code: number | null, signal: string | null) => finish(new Error(`child ${child.pid} exited (${code ?? signal}) before answering`));
    function finish(error?: Error, value?: T) {
      clearTimeout(timer);
      child.off('message', onMessage);
      child.off('exit', onExit);
      if (error) reject(error);
      else resolve(value as T);
    }
    child.on('message', onMessage);
    child.on('exit', onExit);
  });
}

/** Stops a child: SIGTERM, then SIGKILL after `graceMs`. Resolves when it has exited. */
export function stopChild(child: ChildProcess, graceMs = 5000): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
    child.once('exit', () => {
      clearTimeout(timer);
      resolve();
    });
    child.kill('SIGTERM');
  });
}

export const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/**
 * What bin/hapax.js's shebang (`#!/usr/bin/env -S [NAME=VALUE...] node FLAGS`) runs the gateway with, i.e.
 * what `npx hapax` gets: the environment variables it sets and the node flags.
 */
export function shebang(dir: string): { env: Record<string, string>; flags: string[] } {
  const first = readFileSync(join(dir, 'bin/hapax.js'), 'utf8').split('\n', 1)[0];
  const words = /^#!\S*env\s+-S\s+(.*)$/.exec(first.trim())?.[1].split(/\s+/).filter(Boolean) ?? [];
  const env: Record<string, string> = {};
  let at = 0;
  for (; at < words.length && words[at].includes('='); at++) {
    const [name, ...value] = words[at].split('=');
    env[name] = value.join('=');
  }
  return { env, flags: words[at] === 'node' ? words.slice(at + 1) : [] };
}

/** A full GC in the gateway through its inspector (started with --inspect=127.0.0.1:0). */
export async function collectGarbage(wsUrl: string): Promise<void> {
  const ws = new WebSocket(wsUrl);
  await new Promise<void>((resolve, reject) => {
    ws.addEventListener('open', () => resolve(), { once: true });
    ws.addEventListener('error', () => reject(new Error(`inspector ${wsUrl} refused the connection`)), { once: true });
  });
  const done = new Promise<void>((resolve) => ws.addEventListener('message', () => resolve(), { once: true }));
  ws.send(JSON.stringify({ id: 1, method: 'HeapProfiler.collectGarbage' }));
  await done;
  ws.close();
}

/** The inspector's WebSocket URL, from what a process started with --inspect prints on stderr. */
export async function inspectorUrl(stderr: () => string): Promise<string> {
  for (let i = 0; i < 500; i++) {
    const match = /ws:\/\/[^\s]+/.exec(stderr());
    if (match) return match[0];
    await sleep(10);
  }
  throw new Error(`the gateway printed no inspector URL: ${stderr()}`);
}
