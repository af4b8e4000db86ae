/** A config that failed validation, with one line per problem: `key.path: what is wrong`. */
export class ConfigError extends Error {
  readonly problems: string[];
  /** The file could not be read at all (then the message is that one line, not "invalid config"). */
  readonly unreadable: boolean;
  /**
   * Source lines around the first problem (a YAML syntax error), shown under it in the message for the
   * person at the terminal; kept out of `problems`, which are logged and must hold no values.
   */
  readonly excerpt: string[];
  constructor(source: string, problems: string[], opts: { unreadable?: boolean; excerpt?: string[] } = {}) {
    const shown = opts.excerpt?.length ? [problems[0], ...opts.excerpt, ...problems.slice(1)] : problems;
    super(opts.unreadable ? problems.join('\n') : `invalid config ${source}:\n  ${shown.join('\n  ')}`);
    this.name = 'ConfigError';
    this.problems = problems;
    this.unreadable = opts.unreadable ?? false;
    this.excerpt = opts.excerpt ?? [];
  }
}

export function formatPath(path: readonly PropertyKey[]): string {
  let out = '';
  for (const part of path) {
    if (typeof part === 'number') out += `[${part}]`;
    else out += out === '' ? String(part) : `.${String(part)}`;
  }
  return out || '(root)';
}

/** Closest candidate by edit distance, when it is close enough to be a likely typo. */
export function didYouMean(word: string, candidates: Iterable<string>): string | undefined {
  let best: string | undefined;
  let bestDistance = Infinity;
  const lower = word.toLowerCase();
  for (const candidate of candidates) {
    const distance = editDistance(lower, candidate.toLowerCase());
    if (distance < bestDistance) {
      bestDistance = distance;
      best = candidate;
    }
  }
  return best !== undefined && bestDistance <= Math.max(2, Math.floor(word.length / 3)) ? best : undefined;
}

function editDistance(a: string, b: string): number {
  const row = Array.from({ length: b.length + 1 }, (_, i) => i);
  for (let i = 1; i <= a.length; i++) {
    let diagonal = row[0];
    row[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const above = row[j];
      row[j] = Math.min(row[j] + 1, row[j - 1] + 1, diagonal + (a[i - 1] === b[j - 1] ? 0 : 1));
      diagonal = above;
    }
  }
  return row[b.length];
}
