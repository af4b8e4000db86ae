/** What the stream-resume tests check on every resumed stream: the log's account of the cut, the usage and the metric. */
import { expect } from 'vitest';
import type { TestGateway } from './gateway.ts';
import { scrape, valueOf } from './prometheus.ts';

export const lastRequestLine = (gateway: TestGateway) => gateway.logs.filter((l) => l.msg === 'request').at(-1) as Record<string, any>;

/** The resumes counted so far from `first` to wherever it went on. */
export const resumesFromFirst = async (gateway: TestGateway) => valueOf(await scrape(`${gateway.url}/metrics`), 'hapax_stream_resumes_total', { provider: 'first', outcome: 'resumed' }) ?? 0;

/**
 * One cut from `first`, resumed on `second`: both attempts in the log (the cut one estimated, it was cut before it
 * reported usage), the client's usage and the log's tokens their sum, and the metric one more than `before`.
 */
export async function expectResumedOnce(gateway: TestGateway, got: { usage?: { input: number; output: number } }, before: number, reason: unknown = expect.any(String)): Promise<void> {
  const line = lastRequestLine(gateway);
  expect(line.resumed.at).toEqual([{ from: 'first', to: 'second', reason, after_chars: expect.any(Number) }]);
  const [cut, rest] = line.resumed.spent;
  expect(cut).toMatchObject({ provider: 'first', estimated: true });
  expect(rest).toMatchObject({ provider: 'second', estimated: false });
  expect(got.usage).toEqual({ input: cut.prompt + rest.prompt, output: cut.completion + rest.completion });
  expect(line.tokens).toMatchObject({ prompt: cut.prompt + rest.prompt, completion: cut.completion + rest.completion });
  expect(await resumesFromFirst(gateway)).toBe(before + 1);
}
