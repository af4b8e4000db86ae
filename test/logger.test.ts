import { Writable } from 'node:stream';
import pino from 'pino';
import { describe, expect, it } from 'vitest';
import { createLogger, isoTimestamp, LazyChildLogger } from '../src/observability/logger.ts';
import { CENSOR } from '../src/observability/redact.ts';

function capture(level = 'info') {
  const lines: Array<Record<string, unknown>> = [];
  const destination = new Writable({
    write(chunk: Buffer, _encoding, callback) {
      for (const line of chunk.toString('utf8').split('\n')) if (line) lines.push(JSON.parse(line));
      callback();
    },
  });
  return { lines, logger: createLogger({ level, format: 'json' }, destination) };
}

describe('isoTimestamp', () => {
  it('writes what pino.stdTimeFunctions.isoTime writes, across milliseconds, seconds and days', () => {
    const times = [0, 7, 42, 999, 1000, 1_795_418_873_280, 1_795_418_873_281, 1_795_418_874_005, Date.UTC(2026, 11, 31, 23, 59, 59, 999), Date.UTC(2027, 0, 1)];
    for (const t of times) expect(isoTimestamp(t)).toBe(`,"time":"${new Date(t).toISOString()}"`);
    expect(pino.stdTimeFunctions.isoTime().startsWith(',"time":"')).toBe(true);
  });
});

describe('LazyChildLogger', () => {
  it('makes no pino child until something is logged, then logs with its bindings', async () => {
    const { lines, logger } = capture();
    let children = 0;
    const counting = new Proxy(logger, {
      get(target, property, receiver) {
        if (property === 'child') return (...args: Parameters<typeof logger.child>) => (children++, target.child(...args));
        return Reflect.get(target, property, receiver);
      },
    });
    const lazy = new LazyChildLogger(counting, { request_id: 'r-1' }, {});
    lazy.debug('below the level: dropped');
    expect(lazy.level).toBe('info');
    expect(children).toBe(0);
    lazy.warn({ provider: 'p', api_key: 'sk-secret' }, 'upstream slow');
    lazy.info('second line');
    expect(children).toBe(1);
    await new Promise((r) => setImmediate(r));
    expect(lines).toMatchObject([
      { level: 40, request_id: 'r-1', provider: 'p', api_key: CENSOR, msg: 'upstream slow' },
      { level: 30, request_id: 'r-1', msg: 'second line' },
    ]);
    expect(lines[0].time).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
  });

  it('honours a level of its own (a route log level) in both directions', async () => {
    const { lines, logger } = capture('info');
    const chatty = new LazyChildLogger(logger, { request_id: 'r-2' }, { level: 'debug' });
    chatty.debug('route-level debug');
    const quiet = new LazyChildLogger(logger, { request_id: 'r-3' }, { level: 'error' });
    quiet.info('dropped');
    quiet.error('kept');
    quiet.child({ step: 'x' }).error('from a grandchild');
    await new Promise((r) => setImmediate(r));
    expect(lines.map((l) => [l.request_id, l.msg])).toEqual([
      ['r-2', 'route-level debug'],
      ['r-3', 'kept'],
      ['r-3', 'from a grandchild'],
    ]);
  });
});
