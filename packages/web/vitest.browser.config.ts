import { defineConfig } from "vitest/config"

/**
 * `npm run test:browser`: the web client in Chromium (Debian's `chromium`, driven by
 * playwright-core) against a standalone server started in the test process. The client is
 * built first (test/BuildClient.ts); screenshots go to test-results/browser/.
 */
export default defineConfig({
  root: import.meta.dirname,
  test: {
    name: "browser",
    include: ["test/**/*.browser.test.ts"],
    globalSetup: ["test/BuildClient.ts"],
    fileParallelism: false,
    testTimeout: 60_000,
    hookTimeout: 120_000
  }
})
