/**
 * Where the cold start goes: the time to import each npm package the built CLI reaches through static imports
 * (each in a fresh process, best of N), and the whole CLI's start (`hapax --version` loads every module)
 * with Node's on-disk compile cache (bin/hapax.js enables it when the build does) and without it
 * (NODE_DISABLE_COMPILE_CACHE=1).
 *
 * Usage: node bench/startup.ts [--hapax-dir DIR] [--runs N]
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { REPO, NODE } from './lib.ts';

const { values: args } = parseArgs({ options: { 'hapax-dir': { type: 'string' }, runs: { type: 'string', default: '3' } } });
const DIR = resolve(args['hapax-dir'] ?? REPO);
const RUNS = Number(args.runs);

/**
 * npm packages reached through static imports (not `import type`, not `import()`) from dist/cli.js: what
 * `hapax serve` loads before it can answer, whatever the config.
 */
function staticImports(): string[] {
  const found = new Set<string>();
  const seen = new Set<string>();
  const queue = [join(DIR, 'dist/cli.js')];
  while (queue.length > 0) {
    const file = queue.pop() as string;
    if (seen.has(file)) continue;
    seen.add(file);
    let text: string;
    try {
      text = readFileSync(file, 'utf8');
    } catch {
      continue;
    }
    for (const m of text.matchAll(/^(?:import|export)\s+(?:[^'"]*?\s+from\s+)?['"]([^'"]+)['"]/gm)) {
      const spec = m[1];
      if (spec.startsWith('node:')) continue;
      if (spec.startsWith('.')) queue.push(resolve(dirname(file), spec));
      else found.add(spec.startsWith('@') ? spec.split('/').slice(0, 2).join('/') : spec.split('/')[0]);
    }
  }
  return [...found].sort();
}

function best(fn: () => number): number {
  let min = Infinity;
  for (let i = 0; i < RUNS; i++) min = Math.min(min, fn());
  return Math.round(min);
}

const importMs = (pkg: string) =>
  best(() => Number(execFileSync(NODE, ['--input-type=module', '-e', `const t = performance.now(); await import(${JSON.stringify(pkg)}); process.stdout.write(String(performance.now() - t));`], { cwd: DIR, encoding: 'utf8' })));

const wallMs = (env: NodeJS.ProcessEnv = process.env) =>
  best(() => {
    const t = performance.now();
    execFileSync(NODE, [join(DIR, 'bin/hapax.js'), '--version'], { cwd: DIR, env, stdio: 'ignore' });
    return performance.now() - t;
  });

const rows = staticImports().map((pkg) => ({ pkg, ms: importMs(pkg) })).sort((a, b) => b.ms - a.ms);
const bare = best(() => {
  const t = performance.now();
  execFileSync(NODE, ['-e', '0']);
  return performance.now() - t;
});
const cache = mkdtempSync(join(tmpdir(), 'hapax-compile-cache-'));
const cached = wallMs({ ...process.env, NODE_COMPILE_CACHE: cache }); // the first run fills the cache; best-of keeps a warm one
rmSync(cache, { recursive: true, force: true });
const uncached = wallMs({ ...process.env, NODE_DISABLE_COMPILE_CACHE: '1' });

const out = ['| package (static import) | import alone, ms |', '| --- | ---: |', ...rows.map((r) => `| ${r.pkg} | ${r.ms} |`)];
out.push('', `node -e 0: ${bare} ms; hapax --version (every module loaded): ${uncached} ms without a compile cache, ${cached} ms with a warm one (best of ${RUNS}).`);
process.stdout.write(`${out.join('\n')}\n`);
