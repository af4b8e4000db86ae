/**
 * Hapax used as a library from TypeScript: the published declarations (dist/*.d.ts, built by `prepare`)
 * type-check in a strict consumer that does not skip library checks, so they never name a module that
 * ships no types (such as the single undici files Hapax imports at run time).
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ROOT } from './helpers/serve.ts';

describe('the library declarations', () => {
  it('type-check in a strict consumer with skipLibCheck off', () => {
    const dir = mkdtempSync(join(tmpdir(), 'hapax-consumer-'));
    try {
      writeFileSync(
        join(dir, 'consumer.ts'),
        `import { startGateway, parseConfig, type Gateway } from ${JSON.stringify(join(ROOT, 'dist/index.js'))};
export async function start(): Promise<Gateway> {
  const loaded = parseConfig('providers: {m: {type: mock}}', 'inline.yaml', {});
  const gateway = await startGateway({ loaded, port: 0 });
  const url: string = gateway.url;
  void url;
  return gateway;
}
`,
      );
      writeFileSync(
        join(dir, 'tsconfig.json'),
        JSON.stringify({
          compilerOptions: { strict: true, skipLibCheck: false, noEmit: true, module: 'nodenext', moduleResolution: 'nodenext', target: 'es2022', types: ['node'], typeRoots: [join(ROOT, 'node_modules/@types')] },
          files: ['consumer.ts'],
        }),
      );
      const run = spawnSync(join(ROOT, 'node_modules/.bin/tsc'), ['-p', join(dir, 'tsconfig.json')], { encoding: 'utf8' });
      expect(`${run.stdout}${run.stderr}`).toBe('');
      expect(run.status).toBe(0);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }, 60_000);
});
