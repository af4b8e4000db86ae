/**
 * Problems in the words of the person who wrote the file: which file could not be read and why, where a
 * YAML syntax error is (the line, with a caret), and which unset ${VAR} caused a problem further on.
 */
import { resolve } from 'node:path';
import type { YAMLError } from 'yaml';

export const READ_REASONS: Readonly<Record<string, string>> = {
  ENOENT: 'no such file',
  EACCES: 'permission denied (the gateway user cannot read it)',
  EPERM: 'permission denied',
  EISDIR: 'it is a directory, not a file',
  ENOTDIR: 'a part of the path is not a directory',
  ELOOP: 'too many symbolic links',
};

/** `cannot read config file <file> (<absolute path>): <why>` plus, for a missing file, what to do. */
export function unreadableFile(file: string, error: unknown): string {
  const code = (error as NodeJS.ErrnoException).code;
  const why = (code && READ_REASONS[code]) ?? (error instanceof Error ? error.message : String(error));
  const absolute = resolve(file);
  const shown = absolute === file ? file : `${file} (${absolute})`;
  const hint = code === 'ENOENT' ? '; pass --config <file> or set HAPAX_CONFIG, or omit both to use ./hapax.yaml or the built-in default' : '';
  return `cannot read config file ${shown}: ${why}${code ? ` [${code}]` : ''}${hint}`;
}

/**
 * A `key: value` pair (block or flow style) whose key is named like a secret or a URL (which may hold a
 * password): the value is never shown in an excerpt.
 */
const SECRET_PAIR = /((?:^|[\s{,-])["']?[\w.-]*(?:key|secret|token|password|authorization|url|credential)[\w.-]*["']?\s*:\s*)("[^"]*"?|'[^']*'?|[^\s,}\]][^,}\]]*)/gi;
/** Values shaped like keys whatever their key is called (sk-..., hpx_..., a long base64 run). */
const SECRET_SHAPE = /\b(?:sk-|hpx_|sk_|ghp_|AKIA)[\w-]+|[A-Za-z0-9+/_-]{32,}/g;

/** One source line for an excerpt, secrets hidden, with the column moved to where it now falls. */
function shownLine(line: string, column = 0): { text: string; column: number } {
  const ranges: Array<[number, number]> = [];
  for (const match of line.matchAll(SECRET_PAIR)) {
    const start = (match.index ?? 0) + match[1].length;
    ranges.push([start, start + match[2].trimEnd().length]);
  }
  for (const match of line.matchAll(SECRET_SHAPE)) {
    const start = match.index ?? 0;
    const end = start + match[0].length;
    if (!ranges.some(([a, b]) => start < b && end > a)) ranges.push([start, end]);
  }
  ranges.sort((a, b) => a[0] - b[0]);
  let text = '';
  let last = 0;
  for (const [start, end] of ranges) {
    text += `${line.slice(last, start)}<hidden>`;
    last = end;
  }
  text += line.slice(last);
  // A caret inside a hidden value points at its start.
  const inside = ranges.find(([start, end]) => column > start && column < end);
  const shifted = textIndex(ranges, inside ? inside[0] : column);
  if (text.length > 120) text = `${text.slice(0, 117)}...`;
  return { text, column: Math.min(shifted, text.length) };
}

/** Where position `at` of the original line falls once the ranges before it are replaced by <hidden>. */
function textIndex(ranges: Array<[number, number]>, at: number): number {
  let shift = 0;
  for (const [start, end] of ranges) if (end <= at) shift += end - start - '<hidden>'.length;
  return at - shift;
}

/**
 * The first YAML error as `YAML <what> (line L, column C)`, and an excerpt: the line before it, the
 * line itself and a caret under the column. yaml's own excerpt is not used: it would show any value,
 * keys included; here values of keys named like secrets are replaced by <hidden>.
 */
export function yamlErrorLines(error: YAMLError, text: string): { problem: string; excerpt: string[] } {
  const what = error.message.split('\n')[0].replace(/ at line \d+, column \d+:?$/, '').replace(/:$/, '');
  const at = error.linePos?.[0];
  if (!at) return { problem: `YAML ${what}`, excerpt: [] };
  const lines = text.split(/\r?\n/);
  const excerpt: string[] = [];
  const number = (n: number) => String(n).padStart(String(at.line).length + 1);
  if (at.line >= 2 && lines[at.line - 2]?.trim()) excerpt.push(`${number(at.line - 1)} | ${shownLine(lines[at.line - 2]).text}`);
  const shown = shownLine(lines[at.line - 1] ?? '', at.col - 1);
  excerpt.push(`${number(at.line)} | ${shown.text}`);
  excerpt.push(`${' '.repeat(number(at.line).length)} | ${' '.repeat(Math.max(0, shown.column))}^`);
  return { problem: `YAML ${what} (line ${at.line}, column ${at.col})`, excerpt };
}

const snakePath = (path: string) => path.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`);

/**
 * Each problem at a key path whose value came from an unset ${VAR} (at that path or below it) names the
 * variable first: `admin.key: ${ADMIN_KEY} is not set, so the value is empty (use at least 16 characters)`.
 * Several problems at one such path (the schema's and a cross-check's) become one line.
 */
export function blameUnsetVariables(problems: readonly string[], unset: ReadonlyMap<string, string[]> | undefined): string[] {
  if (!unset || unset.size === 0) return [...problems];
  const entries = [...unset].map(([path, names]) => ({ path: snakePath(path), names }));
  const blamed = new Set<string>();
  const out: string[] = [];
  for (const line of problems) {
    const sep = line.indexOf(': ');
    const where = sep < 0 ? '' : line.slice(0, sep);
    const at = snakePath(where);
    const names = where && where !== '(root)'
      ? [...new Set(entries.filter((e) => e.path === at || e.path.startsWith(`${at}.`) || e.path.startsWith(`${at}[`)).flatMap((e) => e.names))]
      : [];
    if (names.length === 0) {
      out.push(line);
      continue;
    }
    if (blamed.has(where)) continue;
    blamed.add(where);
    const vars = names.map((n) => `\${${n}}`).join(', ');
    out.push(`${where}: ${vars} ${names.length === 1 ? 'is' : 'are'} not set, so the value is empty (${line.slice(sep + 2)}); set ${names.length === 1 ? 'it' : 'them'} in the environment or give a default: \${${names[0]}:-...}`);
  }
  return out;
}
