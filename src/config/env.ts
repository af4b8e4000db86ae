/**
 * Expands ${VAR}, $VAR, ${VAR:-default} and ${VAR-default} in every string value of parsed YAML.
 * Expansion happens after parsing, so a value can never inject YAML structure. `$$` is a literal `$`.
 * A default may itself hold references (`${A:-${B}}`). Keys are never expanded.
 */
export interface ExpandReport {
  /** Malformed references, by key path: the config is invalid. */
  problems: string[];
  /** Variables referenced without a default that are unset: the value becomes empty. */
  warnings: string[];
  /** The same, by key path: a problem found later at that path is blamed on the variable. */
  unset?: Map<string, string[]>;
}

const NAME = /[A-Za-z_][A-Za-z0-9_]*/y;
const BRACED = /^([A-Za-z_][A-Za-z0-9_]*)(?:(:?-)([\s\S]*))?$/;

/** Index of the `}` closing the `{` at `open`, counting nested braces; -1 when there is none. */
function closingBrace(text: string, open: number): number {
  let depth = 0;
  for (let i = open; i < text.length; i++) {
    if (text[i] === '{') depth++;
    else if (text[i] === '}' && --depth === 0) return i;
  }
  return -1;
}

/**
 * Expands one string. `onProblem` gets malformed references, `onUnset` the names of unset variables
 * used without a default. Neither ever receives a variable's value.
 */
export function expandString(
  text: string,
  env: NodeJS.ProcessEnv,
  onProblem: (message: string) => void = () => {},
  onUnset: (name: string) => void = () => {},
): string {
  if (!text.includes('$')) return text;
  let out = '';
  let i = 0;
  while (i < text.length) {
    const at = text.indexOf('$', i);
    if (at < 0) {
      out += text.slice(i);
      break;
    }
    out += text.slice(i, at);
    const next = text[at + 1];
    if (next === '$') {
      out += '$';
      i = at + 2;
    } else if (next === '{') {
      const end = closingBrace(text, at + 1);
      if (end < 0) {
        onProblem('unterminated ${ (close it with }, or write $$ for a literal $)');
        out += text.slice(at);
        break;
      }
      const match = BRACED.exec(text.slice(at + 2, end));
      if (!match) {
        onProblem('expected a variable name inside ${...}, optionally followed by :-default');
        out += text.slice(at, end + 1);
      } else {
        const [, name, operator, fallback] = match;
        const value = env[name];
        // POSIX: `:-` replaces unset or empty values, `-` only unset ones.
        const useFallback = operator === ':-' ? !value : operator === '-' ? value === undefined : false;
        if (useFallback) out += expandString(fallback ?? '', env, onProblem, onUnset);
        else {
          if (value === undefined && operator === undefined) onUnset(name);
          out += value ?? '';
        }
      }
      i = end + 1;
    } else {
      NAME.lastIndex = at + 1;
      const name = NAME.exec(text)?.[0];
      if (name === undefined) {
        out += '$'; // a lone `$` (e.g. "$5") stays as written
        i = at + 1;
      } else {
        if (env[name] === undefined) onUnset(name);
        out += env[name] ?? '';
        i = at + 1 + name.length;
      }
    }
  }
  return out;
}

export function expandEnv(
  value: unknown,
  env: NodeJS.ProcessEnv,
  report: ExpandReport = { problems: [], warnings: [] },
  path = '',
): unknown {
  if (typeof value === 'string') {
    const where = path || '(root)';
    return expandString(
      value,
      env,
      (message) => report.problems.push(`${where}: ${message}`),
      (name) => {
        report.warnings.push(`${where}: environment variable ${name} is not set; using an empty value`);
        report.unset ??= new Map();
        report.unset.set(where, [...(report.unset.get(where) ?? []), name]);
      },
    );
  }
  if (Array.isArray(value)) return value.map((item, i) => expandEnv(item, env, report, `${path}[${i}]`));
  if (value !== null && typeof value === 'object') {
    const out: Record<string, unknown> = {};
    for (const [key, item] of Object.entries(value)) out[key] = expandEnv(item, env, report, path ? `${path}.${key}` : key);
    return out;
  }
  return value;
}
