/** The open-files limit read at start, and the warning a low one gets. */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { LOW_OPEN_FILES, openFilesLimit, openFilesWarning } from '../src/server/os-limits.ts';
import { tempDir, useStarted } from './helpers/started.ts';

const LIMITS = (soft: string, hard: string) =>
  `Limit                     Soft Limit           Hard Limit           Units     \nMax processes             95000                95000                processes \nMax open files            ${soft.padEnd(20)} ${hard.padEnd(20)} files     \n`;

describe('open-files limit', () => {
  const setup = useStarted({ dir: () => tempDir('hapax-limits-') });

  it("reads this process's own limit on Linux", () => {
    const limit = openFilesLimit();
    if (process.platform === 'linux') expect(limit).toBeGreaterThan(0);
  });

  it('reads the soft limit (what Node raised it to) from a limits file', () => {
    const file = join(setup.dir.path, 'limits');
    writeFileSync(file, LIMITS('1024', '4096'));
    expect(openFilesLimit(file)).toBe(1024);
    writeFileSync(file, LIMITS('unlimited', 'unlimited'));
    expect(openFilesLimit(file)).toBe(Infinity);
    expect(openFilesLimit(join(setup.dir.path, 'missing'))).toBeUndefined();
  });

  it('warns below the threshold, naming how many streams fit and how to raise it', () => {
    expect(openFilesWarning(1024)).toMatch(/1024.*about 512 can be open at once.*ulimit -n/);
    expect(openFilesWarning(LOW_OPEN_FILES)).toBeUndefined();
    expect(openFilesWarning(undefined)).toBeUndefined();
  });
});
