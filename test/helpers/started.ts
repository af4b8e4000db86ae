/**
 * The servers and clients a describe block (or a file) starts before its tests and closes after them, held in
 * one object whose fields are filled when vitest runs the hooks:
 *
 *   const setup = useStarted(fakeOpenAIs('primary', 'backup')).and({
 *     gateway: ({ primary, backup }) => startTestGateway(`...${primary.url}...${backup.url}...`),
 *   });
 *   it('...', () => { setup.primary.fault = ...; ... setup.gateway.url ... });
 *
 * Call it (and `.and`) in the describe callback, where hooks are registered; read the fields inside hooks and
 * tests only: while the describe callback runs, nothing has started yet.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, beforeEach } from 'vitest';
import type { FakeProvider } from '../fakes/common.ts';
import { startFakeOpenAI } from '../fakes/openai.ts';
import { startTestGateway } from './gateway.ts';

/** One start function per field; each sees the fields started before it. */
export type Starters<Before, Added> = { [K in keyof Added]: (started: Before) => Added[K] | Promise<Added[K]> };

export type Started<T> = T & {
  /**
   * More fields, started after the ones so far (their start functions see them) and closed before them.
   * A separate call per level, so that TypeScript knows each level's types when it checks the next.
   */
  and<Added extends object>(starters: Starters<T, Added>): Started<T & Added>;
};

/**
 * Registers the hooks: `beforeAll`/`afterAll`, or `beforeEach`/`afterEach` for a fresh set per test.
 * Fields start one after another in the order written and are closed (those with a `close()`) in reverse,
 * as the hand-written hooks did; what never started because an earlier start threw is not closed.
 */
export function useStarted<T extends object>(starters: Starters<{}, T>, lifetime: 'all' | 'each' = 'all'): Started<T> {
  const steps = Object.entries(starters) as Array<[string, (started: unknown) => unknown]>;
  const holder: Record<string, unknown> = {};
  const running: string[] = [];
  Object.defineProperty(holder, 'and', {
    enumerable: false,
    value(more: object) {
      steps.push(...(Object.entries(more) as typeof steps));
      return holder;
    },
  });
  const [before, after] = lifetime === 'all' ? [beforeAll, afterAll] : [beforeEach, afterEach];
  before(async () => {
    for (const [key, start] of steps) {
      holder[key] = await start(holder);
      running.push(key);
    }
  });
  after(async () => {
    // One close that fails does not leave the others running; its error is reported once all are closed.
    const failures: unknown[] = [];
    for (let key = running.pop(); key !== undefined; key = running.pop()) {
      const value = holder[key] as { close?: () => unknown } | undefined;
      if (typeof value?.close !== 'function') continue;
      try {
        await value.close();
      } catch (error) {
        failures.push(error);
      }
    }
    if (failures.length > 0) throw failures[0];
  });
  return holder as Started<T>;
}

/** Start functions for fake OpenAI providers with default behaviour, each named as its field. */
export function fakeOpenAIs<Name extends string>(...names: Name[]): Starters<{}, Record<Name, FakeProvider>> {
  return Object.fromEntries(names.map((name) => [name, () => startFakeOpenAI({ name })])) as Record<Name, () => Promise<FakeProvider>>;
}

/** A gateway on its own (mock providers, or upstreams the test does not fake), from fixed YAML. */
export const useGateway = (yaml: string) => useStarted({ gateway: () => startTestGateway(yaml) });

/** A fresh directory under the system's temp directory (for key files and the like), removed with its contents on close. */
export async function tempDir(prefix: string): Promise<{ path: string; close(): Promise<void> }> {
  const path = await mkdtemp(join(tmpdir(), prefix));
  return { path, close: () => rm(path, { recursive: true, force: true }) };
}
