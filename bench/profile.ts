/**
 * Summarizes a V8 .cpuprofile (node --cpu-prof): where the busy time goes.
 *
 *  - top self-time functions, each with its module (a Hapax source file, mapped back from dist/ through the
 *    source maps, an npm package, or a node: core module);
 *  - self time by module;
 *  - "charged to": every sample is charged to the nearest Hapax function on its stack (so the time fastify,
 *    pino, zod or node core spend on our behalf lands on the line of ours that asked for it), by function
 *    and by file. Samples with no Hapax frame on the stack are the server and client machinery itself.
 *
 * CLI: node bench/profile.ts FILE.cpuprofile [top N]
 */
import { existsSync, readFileSync } from 'node:fs';
import { SourceMap } from 'node:module';
import { dirname, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { REPO } from './lib.ts';

interface CallFrame {
  functionName: string;
  url: string;
  lineNumber: number;
  columnNumber: number;
}
interface ProfileNode {
  id: number;
  callFrame: CallFrame;
  children?: number[];
}
interface CpuProfile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
  startTime: number;
  endTime: number;
}

export interface Row {
  name: string;
  where: string;
  module: string;
  ms: number;
  pct: number;
}

export interface ProfileSummary {
  file: string;
  wallMs: number;
  busyMs: number;
  idleMs: number;
  gcMs: number;
  topSelf: Row[];
  byModule: { module: string; ms: number; pct: number }[];
  /** Every module, unranked cut: for comparisons. */
  allModules: { module: string; ms: number; pct: number }[];
  chargedToFunction: Row[];
  chargedToFile: { module: string; ms: number; pct: number }[];
}


/** src/… or dist/… for any checkout (this one, or a snapshot run with --hapax-dir). */
function repoRelative(path: string): string {
  const at = Math.max(path.lastIndexOf('/src/'), path.lastIndexOf('/dist/'));
  return at >= 0 ? path.slice(at + 1) : relative(REPO, path);
}

/** Maps dist/ locations back to src/ through the .js.map files tsc writes. */
class SourceMaps {
  private readonly maps = new Map<string, SourceMap | null>();

  original(url: string, line: number, column: number): { file: string; line: number } | undefined {
    if (!url.startsWith('file://')) return undefined;
    const path = fileURLToPath(url);
    let map = this.maps.get(path);
    if (map === undefined) {
      map = null;
      if (existsSync(`${path}.map`)) {
        try {
          map = new SourceMap(JSON.parse(readFileSync(`${path}.map`, 'utf8')));
        } catch {
          map = null;
        }
      }
      this.maps.set(path, map);
    }
    if (!map) return undefined;
    const entry = map.findEntry(line, column) as { originalSource?: string; originalLine?: number };
    if (!entry?.originalSource) return undefined;
    const source = entry.originalSource.startsWith('file://') ? fileURLToPath(entry.originalSource) : resolve(dirname(path), entry.originalSource);
    return { file: repoRelative(source), line: (entry.originalLine ?? 0) + 1 };
  }
}

const SPECIAL = new Set(['(idle)', '(program)', '(garbage collector)', '(root)']);
/** Native frames that are write syscalls (sockets, the log file): a bucket of their own in "charged to". */
const WRITES = new Set(['writev', 'writeUtf8String', 'writeLatin1String', 'writeString', 'writeBuffer', 'writeAsciiString', 'writeUcs2String']);
const WRITE_BUCKET = '(write syscalls: sockets and the log file)';

function moduleOf(frame: CallFrame, maps: SourceMaps): { module: string; where: string; own: boolean } {
  const { url, functionName } = frame;
  if (!url) return { module: SPECIAL.has(functionName) ? functionName : WRITES.has(functionName) ? '(write syscalls)' : '(native/builtin)', where: '', own: false };
  if (url.startsWith('node:')) {
    const parts = url.slice(5).split('/');
    const name = parts[0] === 'internal' ? parts.slice(1, 3).join('/') : parts[0];
    return { module: `node:${name.replace(/\.js$/, '')}`, where: `${url}:${frame.lineNumber + 1}`, own: false };
  }
  const nm = url.lastIndexOf('/node_modules/');
  if (nm >= 0) {
    const rest = url.slice(nm + 14).split('/');
    const pkg = rest[0].startsWith('@') ? `${rest[0]}/${rest[1]}` : rest[0];
    const file = rest.slice(pkg.split('/').length).join('/');
    return { module: pkg, where: `${pkg}/${file}:${frame.lineNumber + 1}`, own: false };
  }
  if (url.includes('/dist/')) {
    const original = maps.original(url, frame.lineNumber, frame.columnNumber);
    if (original) return { module: original.file, where: `${original.file}:${original.line}`, own: true };
    const file = repoRelative(fileURLToPath(url));
    return { module: file, where: `${file}:${frame.lineNumber + 1}`, own: true };
  }
  return { module: url, where: `${url}:${frame.lineNumber + 1}`, own: false };
}

/** `window` (monotonic µs, as LoadResult.window) keeps only the samples taken while the load was measured. */
export function summarizeProfile(file: string, top = 25, window?: { fromUs: number; toUs: number }): ProfileSummary {
  const profile = JSON.parse(readFileSync(file, 'utf8')) as CpuProfile;
  const maps = new SourceMaps();
  const byId = new Map<number, ProfileNode>();
  const parent = new Map<number, number>();
  for (const node of profile.nodes) {
    byId.set(node.id, node);
    for (const child of node.children ?? []) parent.set(child, node.id);
  }

  // Self time per node: the interval after each sample is charged to that sample's node.
  const selfUs = new Map<number, number>();
  const { samples, timeDeltas } = profile;
  let at = profile.startTime;
  let first = Infinity;
  let last = -Infinity;
  for (let i = 0; i < samples.length; i++) {
    at += timeDeltas[i];
    if (window && (at < window.fromUs || at > window.toUs)) continue;
    first = Math.min(first, at);
    last = Math.max(last, at);
    const dt = i + 1 < timeDeltas.length ? timeDeltas[i + 1] : 0;
    if (dt > 0) selfUs.set(samples[i], (selfUs.get(samples[i]) ?? 0) + dt);
  }

  const info = new Map<number, ReturnType<typeof moduleOf>>();
  const infoOf = (id: number) => {
    let found = info.get(id);
    if (!found) {
      found = moduleOf((byId.get(id) as ProfileNode).callFrame, maps);
      info.set(id, found);
    }
    return found;
  };
  /** The nearest Hapax frame on a node's stack (itself included), or undefined. */
  const ownFrame = new Map<number, number | undefined>();
  const nearestOwn = (id: number): number | undefined => {
    if (ownFrame.has(id)) return ownFrame.get(id);
    const path: number[] = [];
    let at: number | undefined = id;
    let found: number | undefined;
    while (at !== undefined) {
      if (ownFrame.has(at)) {
        found = ownFrame.get(at);
        break;
      }
      path.push(at);
      if (infoOf(at).own) {
        found = at;
        break;
      }
      at = parent.get(at);
    }
    for (const p of path) ownFrame.set(p, found);
    return found;
  };

  let totalUs = 0;
  let idleUs = 0;
  // (`at` above is the sample clock; below, `us` is a node's self time)
  let gcUs = 0;
  const fnSelf = new Map<string, { name: string; where: string; module: string; us: number }>();
  const modSelf = new Map<string, number>();
  const chargedFn = new Map<string, { name: string; where: string; module: string; us: number }>();
  const chargedFile = new Map<string, number>();
  for (const [id, us] of selfUs) {
    totalUs += us;
    const node = byId.get(id) as ProfileNode;
    const name = node.callFrame.functionName || '(anonymous)';
    if (name === '(idle)') {
      idleUs += us;
      continue;
    }
    if (name === '(garbage collector)') gcUs += us;
    const where = infoOf(id);
    const key = `${name}@${where.where}`;
    const row = fnSelf.get(key) ?? { name, where: where.where, module: where.module, us: 0 };
    row.us += us;
    fnSelf.set(key, row);
    modSelf.set(where.module, (modSelf.get(where.module) ?? 0) + us);

    // Fastify's hooks continue inside our callbacks (done() → the response write, log → sonic-boom → write):
    // charging those syscalls to our frame would hide what our own code costs.
    const isWrite = !node.callFrame.url && WRITES.has(name);
    const own = isWrite ? undefined : nearestOwn(id);
    if (isWrite) {
      chargedFile.set(WRITE_BUCKET, (chargedFile.get(WRITE_BUCKET) ?? 0) + us);
      const c = chargedFn.get(WRITE_BUCKET) ?? { name: WRITE_BUCKET, where: '', module: WRITE_BUCKET, us: 0 };
      c.us += us;
      chargedFn.set(WRITE_BUCKET, c);
      continue;
    }
    if (own === undefined) {
      const bucket = SPECIAL.has(name) ? name : `(no Hapax frame: ${where.module.startsWith('node:') ? 'node core' : where.module})`;
      chargedFile.set(bucket, (chargedFile.get(bucket) ?? 0) + us);
      const c = chargedFn.get(bucket) ?? { name: bucket, where: '', module: bucket, us: 0 };
      c.us += us;
      chargedFn.set(bucket, c);
      continue;
    }
    const ownNode = byId.get(own) as ProfileNode;
    const ownInfo = infoOf(own);
    const ownName = ownNode.callFrame.functionName || '(anonymous)';
    const ownKey = `${ownName}@${ownInfo.where}`;
    const c = chargedFn.get(ownKey) ?? { name: ownName, where: ownInfo.where, module: ownInfo.module, us: 0 };
    c.us += us;
    chargedFn.set(ownKey, c);
    chargedFile.set(ownInfo.module, (chargedFile.get(ownInfo.module) ?? 0) + us);
  }

  const busyUs = totalUs - idleUs;
  const pct = (us: number) => Math.round((us / busyUs) * 1000) / 10;
  const ms = (us: number) => Math.round(us / 100) / 10;
  const rows = (m: Map<string, { name: string; where: string; module: string; us: number }>) =>
    [...m.values()]
      .sort((a, b) => b.us - a.us)
      .slice(0, top)
      .map((r) => ({ name: r.name, where: r.where, module: r.module, ms: ms(r.us), pct: pct(r.us) }));
  const mods = (m: Map<string, number>, limit = top) =>
    [...m.entries()]
      .sort((a, b) => b[1] - a[1])
      .slice(0, limit)
      .map(([module, us]) => ({ module, ms: ms(us), pct: pct(us) }));
  return {
    file,
    wallMs: ms(window ? last - first : profile.endTime - profile.startTime),
    busyMs: ms(busyUs),
    idleMs: ms(idleUs),
    gcMs: ms(gcUs),
    topSelf: rows(fnSelf),
    byModule: mods(modSelf),
    allModules: mods(modSelf, Infinity),
    chargedToFunction: rows(chargedFn),
    chargedToFile: mods(chargedFile),
  };
}

export function profileMarkdown(s: ProfileSummary, requests?: number): string {
  const lines: string[] = [];
  const perReq = requests ? ` (${((s.busyMs * 1000) / requests).toFixed(1)} µs busy per request over ${requests} requests)` : '';
  lines.push(
    `Profile \`${s.file}\`: ${s.wallMs} ms wall, ${s.busyMs} ms busy${perReq}, ${s.gcMs} ms GC. Percentages are of busy time. ` +
      'Busy time is sampled wall time: on a loaded machine, a syscall that wakes another process (socket and log writes) also carries the time the gateway waited to be scheduled again.',
    '',
  );
  lines.push('Top self time:', '', '| % | ms | function | where | module |', '| ---: | ---: | --- | --- | --- |');
  for (const r of s.topSelf) lines.push(`| ${r.pct} | ${r.ms} | \`${r.name}\` | ${r.where} | ${r.module} |`);
  lines.push('', 'Self time by module:', '', '| % | ms | module |', '| ---: | ---: | --- |');
  for (const r of s.byModule) lines.push(`| ${r.pct} | ${r.ms} | ${r.module} |`);
  lines.push('', 'Charged to the nearest Hapax frame on the stack (self time of everything it called, write syscalls apart), by file:', '', '| % | ms | file |', '| ---: | ---: | --- |');
  for (const r of s.chargedToFile) lines.push(`| ${r.pct} | ${r.ms} | ${r.module} |`);
  lines.push('', '…and by function:', '', '| % | ms | function | where |', '| ---: | ---: | --- | --- |');
  for (const r of s.chargedToFunction) lines.push(`| ${r.pct} | ${r.ms} | \`${r.name}\` | ${r.where} |`);
  return lines.join('\n');
}

/** Busy µs per request by module, Hapax against the bare proxy under the same load: what the gateway adds. */
export function compareMarkdown(hapax: ProfileSummary, hapaxRequests: number, bare: ProfileSummary, bareRequests: number, top = 20): string {
  const per = (ms: number, n: number) => (ms * 1000) / Math.max(1, n);
  const bareBy = new Map(bare.allModules.map((m) => [m.module, m.ms]));
  const rows = hapax.allModules
    .map((m) => ({ module: m.module, h: per(m.ms, hapaxRequests), b: per(bareBy.get(m.module) ?? 0, bareRequests) }))
    .sort((x, y) => y.h - y.b - (x.h - x.b))
    .slice(0, top);
  const lines = [
    `Busy time per request: Hapax ${per(hapax.busyMs, hapaxRequests).toFixed(1)} µs, bare proxy ${per(bare.busyMs, bareRequests).toFixed(1)} µs. Largest differences by module (self time, µs per request):`,
    '',
    '| module | Hapax | bare | added |',
    '| --- | ---: | ---: | ---: |',
  ];
  for (const r of rows) lines.push(`| ${r.module} | ${r.h.toFixed(1)} | ${r.b.toFixed(1)} | ${(r.h - r.b).toFixed(1)} |`);
  return lines.join('\n');
}

const isMain = process.argv[1] && import.meta.filename === process.argv[1];
if (isMain) {
  const file = process.argv[2];
  if (!file) {
    process.stderr.write('usage: node bench/profile.ts FILE.cpuprofile [top]\n');
    process.exit(2);
  }
  process.stdout.write(`${profileMarkdown(summarizeProfile(file, Number(process.argv[3] ?? 30)))}\n`);
}
