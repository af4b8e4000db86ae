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
  chargedToFunction: Row[];
  chargedToFile: { module: string; ms: number; pct: number }[];
}

const REPO = resolve(dirname(fileURLToPath(import.meta.url)), '..');

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
    return { file: relative(REPO, source), line: (entry.originalLine ?? 0) + 1 };
  }
}

const SPECIAL = new Set(['(idle)', '(program)', '(garbage collector)', '(root)']);

function moduleOf(frame: CallFrame, maps: SourceMaps): { module: string; where: string; own: boolean } {
  const { url, functionName } = frame;
  if (!url) return { module: SPECIAL.has(functionName) ? functionName : '(native/builtin)', where: '', own: false };
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
    const file = relative(REPO, fileURLToPath(url));
    return { module: file, where: `${file}:${frame.lineNumber + 1}`, own: true };
  }
  return { module: url, where: `${url}:${frame.lineNumber + 1}`, own: false };
}

export function summarizeProfile(file: string, top = 25): ProfileSummary {
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
  for (let i = 0; i < samples.length; i++) {
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

    const own = nearestOwn(id);
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
  const mods = (m: Map<string, number>) =>
    [...m.entries()]
      .sort((a, b) => b[1] - a[1])
      .slice(0, top)
      .map(([module, us]) => ({ module, ms: ms(us), pct: pct(us) }));
  return {
    file,
    wallMs: ms(profile.endTime - profile.startTime),
    busyMs: ms(busyUs),
    idleMs: ms(idleUs),
    gcMs: ms(gcUs),
    topSelf: rows(fnSelf),
    byModule: mods(modSelf),
    chargedToFunction: rows(chargedFn),
    chargedToFile: mods(chargedFile),
  };
}

export function profileMarkdown(s: ProfileSummary, requests?: number): string {
  const lines: string[] = [];
  const perReq = requests ? ` (${((s.busyMs * 1000) / requests).toFixed(1)} µs busy per request over ${requests} requests)` : '';
  lines.push(`Profile \`${s.file}\`: ${s.wallMs} ms wall, ${s.busyMs} ms busy${perReq}, ${s.gcMs} ms GC. Percentages are of busy time.`, '');
  lines.push('Top self time:', '', '| % | ms | function | where | module |', '| ---: | ---: | --- | --- | --- |');
  for (const r of s.topSelf) lines.push(`| ${r.pct} | ${r.ms} | \`${r.name}\` | ${r.where} | ${r.module} |`);
  lines.push('', 'Self time by module:', '', '| % | ms | module |', '| ---: | ---: | --- |');
  for (const r of s.byModule) lines.push(`| ${r.pct} | ${r.ms} | ${r.module} |`);
  lines.push('', 'Charged to the nearest Hapax frame on the stack (self time of everything it called), by file:', '', '| % | ms | file |', '| ---: | ---: | --- |');
  for (const r of s.chargedToFile) lines.push(`| ${r.pct} | ${r.ms} | ${r.module} |`);
  lines.push('', '…and by function:', '', '| % | ms | function | where |', '| ---: | ---: | --- | --- |');
  for (const r of s.chargedToFunction) lines.push(`| ${r.pct} | ${r.ms} | \`${r.name}\` | ${r.where} |`);
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
