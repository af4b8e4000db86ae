/**
 * Secrets out of anything Hapax prints: config dumps and log lines. pino's `redact` paths cover the
 * log lines of known shape; this walks structures of any depth (a config dump), by key name and by
 * value (credentials inside URLs).
 */

export const CENSOR = '[redacted]';

/** Keys whose values are secrets wherever they appear (compared lower-case, `-` read as `_`). */
const SECRET_KEYS = new Set([
  'api_key',
  'apikey',
  'key',
  'key_sha256',
  'password',
  'secret',
  'token',
  'authorization',
  'proxy_authorization',
  'x_api_key',
  'cookie',
  'set_cookie',
]);

/** Header-map keys that hold credentials (provider `headers`, tracing `headers`). */
const SECRET_HEADER = /auth|key|token|secret|cookie|password/i;

/** `scheme://user:password@host` → the password replaced. */
const URL_CREDENTIALS = /^([a-z][a-z0-9+.-]*:\/\/)([^/@\s]*)@/i;

const isSecretKey = (key: string) => SECRET_KEYS.has(key.toLowerCase().replaceAll('-', '_'));

/** A deep copy with every secret replaced by "[redacted]"; safe to log or print. */
export function redactSecrets(value: unknown, parentKey = ''): unknown {
  if (typeof value === 'string') return value.replace(URL_CREDENTIALS, (_all, scheme: string) => `${scheme}${CENSOR}@`);
  if (Array.isArray(value)) return value.map((item) => redactSecrets(item, parentKey));
  if (value === null || typeof value !== 'object') return value;
  const inHeaders = parentKey === 'headers';
  const out: Record<string, unknown> = {};
  for (const [key, item] of Object.entries(value)) {
    if (item !== undefined && item !== null && (isSecretKey(key) || (inHeaders && SECRET_HEADER.test(key)))) out[key] = CENSOR;
    else out[key] = redactSecrets(item, key);
  }
  return out;
}
