import { defineConfig } from "vitest/config"

// vitest 5 ignores vitest.workspace.ts: every package is a project of this root config.
export default defineConfig({
  test: {
    projects: ["packages/*"]
  }
})
