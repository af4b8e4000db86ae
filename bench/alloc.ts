/**
 * Bytes the gateway allocates per request, and where: V8's sampling heap profiler through the inspector,
 * with objects already collected by minor and major GCs included (so it counts allocation, not what
 * survives). Allocation is what the young generation and the GC pay for, and what RSS under load grows with.
 *
 * Usage: node bench/alloc.ts [--hapax-dir DIR] [--mode json|stream] [--seconds 4] [--top 25]
 */
import { fork, spawn } from 'node:child_process';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { API_KEY, freePort, nextMessage, NODE, REPO, shebang, sleep, stopChild } from './lib.ts';
import { runLoad } from './loadgen.ts';

const { values: args } = parseArgs({
  options: {
    'hapax-dir': { type: 'string' },
    mode: { type: 'string', default: 'json' },
    seconds: { type: 'string', default: '4' },
    top: { type: 'string', default: '25' },
  },
});
const DIR = resolve(args['hapax-dir'] ?? REPO);
const stream = args.mode === 'stream';

interface HeapNode {
  callFrame: { functionName: string; url: string; lineNumber: number };
  selfSize: number;
  children: HeapNode[];
}

function where(url: string): { module: string; file: string } {
  if (!url) return { module: '(native)', file: '' };
  if (url.startsWith('node:')) return { module: url.split('/').slice(0, 3).join('/'), file: url };
  const nm = url.lastIndexOf('/node_modules/');
  if (nm >= 0) {
    const rest = url.slice(nm + 14).split('/');
    return { module: rest[0].startsWith('@') ? `${rest[0]}/${rest[1]}` : rest[0], file: url.slice(nm + 14) };
  }
  const at = url.lastIndexOf('/dist/');
  const file = at >= 0 ? url.slice(at + 1) : url;
  return { module: file, file };
}

const upstream = fork(join(REPO, 'bench/upstream.ts'), [], { execPath: NODE, stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
const { ready } = await nextMessage<{ ready: number }>(upstream, (m) => typeof m === 'object' && m !== null && 'ready' in m);
const port = await freePort();
// With the shebang's flags, as `npx hapax` runs: the young-generation size changes what is collected when.
const launch = shebang(DIR);
const gateway = spawn(NODE, [...launch.flags, '--inspect=127.0.0.1:0', join(DIR, 'bin/hapax.js'), 'serve', '--config', join(REPO, 'bench/hapax-bench.yaml'), '--port', String(port)], {
  cwd: DIR,
  env: { ...process.env, ...launch.env, BENCH_UPSTREAM_PORT: String(ready), BENCH_API_KEY: API_KEY, BENCH_KEY_FILE: join(tmpdir(), `hapax-alloc-keys-${process.pid}.json`) },
  stdio: ['ignore', 'ignore', 'pipe'],
});
try {
  let stderr = '';
  gateway.stderr?.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  let url: string | undefined;
  for (let i = 0; i < 1000 && !url; i++) {
    url = /ws:\/\/\S+/.exec(stderr)?.[0];
    await sleep(10);
  }
  if (!url) throw new Error(`no inspector URL from the gateway: ${stderr}`);
  const origin = `http://127.0.0.1:${port}`;
  for (let i = 0; ; i++) {
    try {
      await runLoad({ origin, path: '/v1/chat/completions', apiKey: API_KEY, stream, connections: 10, warmupMs: 0, durationMs: 2000 });
      break;
    } catch (error) {
      if (i > 100) throw error;
      await sleep(50);
    }
  }
  const ws = new WebSocket(url);
  await new Promise((resolve) => ws.addEventListener('open', resolve, { once: true }));
  let id = 0;
  const waiting = new Map<number, (result: unknown) => void>();
  ws.addEventListener('message', (event) => {
    const message = JSON.parse(String(event.data)) as { id?: number; result?: unknown };
    if (message.id !== undefined) waiting.get(message.id)?.(message.result);
  });
  const call = <T>(method: string, params: object = {}) =>
    new Promise<T>((resolve) => {
      waiting.set(++id, resolve as (result: unknown) => void);
      ws.send(JSON.stringify({ id, method, params }));
    });
  await call('HeapProfiler.enable');
  await call('HeapProfiler.startSampling', { samplingInterval: 4096, includeObjectsCollectedByMajorGC: true, includeObjectsCollectedByMinorGC: true });
  const result = await runLoad({ origin, path: '/v1/chat/completions', apiKey: API_KEY, stream, connections: 10, warmupMs: 0, durationMs: Number(args.seconds) * 1000 });
  const { profile } = await call<{ profile: { head: HeapNode } }>('HeapProfiler.stopSampling');
  ws.close();

  const requests = result.total;
  const byModule = new Map<string, number>();
  const byFunction = new Map<string, number>();
  let total = 0;
  const walk = (node: HeapNode) => {
    const { module, file } = where(node.callFrame.url);
    total += node.selfSize;
    byModule.set(module, (byModule.get(module) ?? 0) + node.selfSize);
    const fn = `${node.callFrame.functionName || '(anonymous)'} ${file}:${node.callFrame.lineNumber + 1}`;
    byFunction.set(fn, (byFunction.get(fn) ?? 0) + node.selfSize);
    for (const child of node.children) walk(child);
  };
  walk(profile.head);
  const kb = (bytes: number) => (bytes / 1024 / requests).toFixed(2);
  const top = Number(args.top);
  const lines = [`${args.mode}: ${requests} requests, ${kb(total)} KB allocated per request (sampled every 4 KB; dist/ locations).`, '', '| KB/request | module |', '| ---: | --- |'];
  for (const [m, b] of [...byModule].sort((a, b) => b[1] - a[1]).slice(0, top)) lines.push(`| ${kb(b)} | ${m} |`);
  lines.push('', '| KB/request | function |', '| ---: | --- |');
  for (const [f, b] of [...byFunction].sort((a, b) => b[1] - a[1]).slice(0, top)) lines.push(`| ${kb(b)} | \`${f}\` |`);
  process.stdout.write(`${lines.join('\n')}\n`);
} finally {
  await stopChild(gateway);
  upstream.kill();
}
