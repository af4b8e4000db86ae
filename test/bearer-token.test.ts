/** Bearer tokens from a command (Azure's Entra token command): parsing, sharing one run, refreshing, failing safely. */
import { mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { UpstreamError } from '../src/core/errors.ts';
import { BearerToken, parseTokenOutput } from '../src/providers/bearer-token.ts';

describe('parseTokenOutput', () => {
  const now = 1_000_000;
  it("reads az's JSON, an OAuth-style object and a bare token", () => {
    expect(parseTokenOutput('{"accessToken": "t1", "expires_on": 2000, "expiresOn": "2026-01-01 00:00:00.000000"}', now)).toEqual({ token: 't1', expiresAt: 2_000_000 });
    expect(parseTokenOutput('{"accessToken": "t2", "expiresOn": "2030-01-01T00:00:00Z"}', now)).toEqual({ token: 't2', expiresAt: Date.parse('2030-01-01T00:00:00Z') });
    expect(parseTokenOutput('{"access_token": "t3", "expires_in": 60}', now)).toEqual({ token: 't3', expiresAt: now + 60_000 });
    expect(parseTokenOutput('  t4\n', now)).toEqual({ token: 't4', expiresAt: now + 600_000 });
  });
  it('finds no token in empty output or JSON without one', () => {
    expect(parseTokenOutput('', now)).toBeUndefined();
    expect(parseTokenOutput('{"error": "x"}', now)).toBeUndefined();
    expect(parseTokenOutput('{not json', now)).toBeUndefined();
  });
});

describe('BearerToken', () => {
  it('runs the command once for concurrent callers and again only when the token is about to expire', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'hapax-token-'));
    const counter = join(dir, 'runs');
    // Expires in 90 s: inside the two-minute margin, so every later call refreshes.
    const command = `echo run >> "${counter}"; echo "{\\"accessToken\\": \\"tok\\", \\"expires_in\\": 90}"`;
    const source = new BearerToken('az', { command });
    expect(await Promise.all([source.get(), source.get(), source.get()])).toEqual(['tok', 'tok', 'tok']);
    expect((await readFile(counter, 'utf8')).trim().split('\n')).toHaveLength(1);
    await source.get();
    expect((await readFile(counter, 'utf8')).trim().split('\n')).toHaveLength(2);

    const lasting = new BearerToken('az', { command: `echo run >> "${counter}.2"; echo "{\\"accessToken\\": \\"tok\\", \\"expires_in\\": 3600}"` });
    await lasting.get();
    await lasting.get();
    expect((await readFile(`${counter}.2`, 'utf8')).trim().split('\n')).toHaveLength(1);
  });

  it('a configured token is used as is, with no command', async () => {
    expect(await new BearerToken('az', { token: 'fixed' }).get()).toBe('fixed');
  });

  it("fails as an auth failure that shows neither the command's output nor its errors", async () => {
    const dir = await mkdtemp(join(tmpdir(), 'hapax-token-'));
    const script = join(dir, 'fail.sh');
    await writeFile(script, 'echo "secret-in-stdout"; echo "secret-in-stderr" >&2; exit 3\n');
    const error = await new BearerToken('az', { command: `sh ${script}` }).get().catch((e: unknown) => e);
    expect(error).toBeInstanceOf(UpstreamError);
    expect((error as UpstreamError).kind).toBe('auth');
    expect(String((error as Error).message)).not.toMatch(/secret/);
    const empty = await new BearerToken('az', { command: 'true' }).get().catch((e: unknown) => e);
    expect((empty as UpstreamError).message).toBe('az: the token command printed no token');
  });
});
