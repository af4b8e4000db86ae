/**
 * A copy of the running config that is safe to show: secret values are replaced, never truncated (a
 * prefix of a key is still a leak). What counts as secret:
 * - keys named like a credential: api_key, key, key_sha256, password, secret, token, and names ending in
 *   _key, _secret, _password, _token (so `max_tokens` or `key_file` stay visible);
 * - every value under a `headers` map (providers' extra headers often carry Authorization);
 * - the password in a URL's user-info (`redis://user:pass@host`) and credential-like query parameters.
 */

export const MASK = '********';

const SECRET_NAME = /^(api_?key|key|key_sha256|password|passwd|secret|token|authorization|cookie|passphrase|credentials?)$|_(key|secret|password|token)$/i;
const SECRET_PARAM = /^(api_?key|key|password|secret|token|access_token|auth|sig|signature)$/i;

export function isSecretName(name: string): boolean {
  return SECRET_NAME.test(name);
}

/** Masks the password (and credential query parameters) of a URL; other strings come back unchanged. */
export function maskUrl(text: string): string {
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
  return changed ? url.toString().replaceAll('xxxxx', MASK) : text;
}

/** A deep copy of `value` with secrets masked. */
export function maskSecrets(value: unknown, name = '', underHeaders = false): unknown {
  if (Array.isArray(value)) return value.map((item) => maskSecrets(item, name, underHeaders));
  if (value !== null && typeof value === 'object') {
    const out: Record<string, unknown> = {};
    for (const [key, inner] of Object.entries(value as Record<string, unknown>)) {
      out[key] = maskSecrets(inner, key, name.toLowerCase() === 'headers');
    }
    return out;
  }
  if (typeof value === 'string') {
    if (value === '') return value;
    if (underHeaders || isSecretName(name)) return MASK;
    return maskUrl(value);
  }
  if ((typeof value === 'number' || typeof value === 'boolean') && underHeaders) return MASK;
  if (typeof value === 'number' && isSecretName(name)) return MASK;
  return value;
}
