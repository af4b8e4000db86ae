/** Starts a gateway from a YAML string on a free loopback port, capturing its log lines. */
import { Writable } from 'node:stream';
import { parseConfig } from '../../src/config/load.ts';
import { startGateway, type Gateway } from '../../src/server/start.ts';

export interface TestGateway extends Gateway {
  /** Parsed JSON log lines written so far. */
  logs: Record<string, unknown>[];
}

/**
 * Health probes would add requests to the fakes' logs; they are off unless the test's YAML has a
 * `health_check` section of its own.
 */
export async function startTestGateway(yaml: string, env: NodeJS.ProcessEnv = process.env): Promise<TestGateway> {
  if (!/^health_check:/m.test(yaml)) yaml += '\nhealth_check: {enabled: false}\n';
  const logs: Record<string, unknown>[] = [];
  const destination = new Writable({
    write(chunk, _encoding, callback) {
      for (const line of String(chunk).split('\n')) if (line) logs.push(JSON.parse(line));
      callback();
    },
  });
  const loaded = parseConfig(yaml, '(test)', env);
  const gateway = await startGateway({ loaded, port: 0, host: '127.0.0.1', logDestination: destination });
  return Object.assign(gateway, { logs });
}
