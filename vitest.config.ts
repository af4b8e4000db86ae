import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    testTimeout: 20_000,
    hookTimeout: 20_000,
    // Two cores: a couple of forks keep wall time low without starving the servers under test.
    pool: 'forks',
    maxWorkers: 2,
  },
});
