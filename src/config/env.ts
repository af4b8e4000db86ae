/**
 * Expands ${VAR}, $VAR and ${VAR:-default} in every string value of parsed YAML.
 * Expansion happens after parsing, so a value can never inject YAML structure. `$$` is a literal `$`.
 */
const REFERENCE = /\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)(?::?-([^}]*))?\}|\$([A-Za-z_][A-Za-z0-9_]*)/g;

export function expandString(text: string, env: NodeJS.ProcessEnv): string {
  if (!text.includes('$')) return text;
  return text.replace(REFERENCE, (whole, braced?: string, fallback?: string, bare?: string) => {
    if (whole === '$$') return '$';
    const value = env[(braced ?? bare) as string];
    if (value !== undefined && value !== '') return value;
    return fallback ?? '';
  });
}

export function expandEnv(value: unknown, env: NodeJS.ProcessEnv): unknown {
  if (typeof value === 'string') return expandString(value, env);
  if (Array.isArray(value)) return value.map((item) => expandEnv(item, env));
  if (value !== null && typeof value === 'object') {
    const out: Record<string, unknown> = {};
    for (const [key, item] of Object.entries(value)) out[key] = expandEnv(item, env);
    return out;
  }
  return value;
}
