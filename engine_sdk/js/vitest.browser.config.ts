import { defineConfig } from "vitest/config";

// The console's browser tests: Playwright (playwright-core) driving Debian's Chromium against
// real bridges serving /console. They start their own bridges (no global setup).
export default defineConfig({
  test: {
    include: ["browser/**/*.test.ts"],
    testTimeout: 60_000,
    hookTimeout: 60_000,
    fileParallelism: false,
  },
});
