/**
 * Secrets out of anything Hapax prints or shows: config dumps, logged bodies, the console's view of the
 * running config. Values are replaced, never truncated (a prefix of a key is still a leak). Secret:
 * - keys named like a credential: api_key, key, key_sha256, password, secret, token, authorization, cookie,
 *   and names ending in _key, _secret, _password, _token (so `max_tokens` or `key_file` stay visible), or in
 *   one of those and `_command` (a command that prints a token, `azure.entra_token_command`, often carries a
 *   client secret or a path that says too much on its command line);
 * - every value under a `headers` map (providers' extra headers often carry Authorization);
 * - the password in a URL's user-info (`redis://user:pass@host`) and credential-like query parameters.
 * pino's `redact` paths (logger.ts) are the safety net for log lines of known shape.
 */

export const CENSOR = '[redacted]';
/** How the console shows a secret. */
export const MASK = '********';


const SECRET_NAME = /^(api_?key|key|key_sha256|password|passwd|secret|token|authorization|cookie|passphrase|credentials?|aws_access_key_id)$|_(key|secret|password|token)(_command)?$/i;
const SECRET_PARAM = /^(api_?key|key|password|secret|token|access_token|auth|sig|signature)$/i;

export function isSecretName(name: string): boolean {
  return SECRET_NAME.test(name);
}

/** Masks the password (and credential query parameters) of a URL; other strings come back unchanged. */
export function maskUrl(text: string, censor: string = CENSOR): string {
  if (!/^[a-z][a-z0-9+.-]*:\/\//i.test(text)) return text;
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    return text;
  }
  let changed = false;
  if (url.password) {
    url.password = 'xxxxx';
    changed = true;
  }
  for (const name of [...url.searchParams.keys()]) {
    if (SECRET_PARAM.test(name)) {
      url.searchParams.set(name, 'xxxxx');
      changed = true;
    }
  }
  return changed ? url.toString().replaceAll('xxxxx', censor) : text;
}

/** A deep copy with every secret replaced by `censor`; safe to log, print or show. */
export function redactSecrets(value: unknown, censor: string = CENSOR): unknown {
  return mask(value, censor, '', false);
}

function mask(value: unknown, censor: string, name: string, underHeaders: boolean): unknown {
  if (Array.isArray(value)) return value.map((item) => mask(item, censor, name, underHeaders));
  if (value !== null && typeof value === 'object') {
    const out: Record<string, unknown> = {};
    for (const [key, inner] of Object.entries(value as Record<string, unknown>)) {
      out[key] = mask(inner, censor, key, name.toLowerCase() === 'headers');
    }
    return out;
  }
  if (typeof value === 'string') {
    if (value === '') return value;
    if (underHeaders || isSecretName(name)) return censor;
    return maskUrl(value, censor);
  }
  if ((typeof value === 'number' || typeof value === 'boolean') && underHeaders) return censor;
  if (typeof value === 'number' && isSecretName(name)) return censor;
  return value;
}
