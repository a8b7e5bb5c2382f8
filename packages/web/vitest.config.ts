import { defineProject } from "vitest/config"

// `npm test` runs the unit tests here; the browser tests need Chromium: `npm run test:browser`.
export default defineProject({
  test: {
    name: "@im/web",
    include: ["test/**/*.test.ts"],
    exclude: ["test/**/*.browser.test.ts"]
  }
})
