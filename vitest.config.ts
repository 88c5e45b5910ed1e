import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // Dawn is a native addon: one forked process per file, not worker threads.
    pool: 'forks',
    // Generous: a cold Mesa shader cache on a 2-core software adapter compiles big kernels for seconds each.
    testTimeout: 300_000,
    hookTimeout: 120_000,
  },
});
