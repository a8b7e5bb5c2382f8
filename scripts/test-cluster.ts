/**
 * `npm run test:cluster`: starts a cluster (2 gateways, 2 consumers) on the local stack, with the
 * test settings the end-to-end tests need, runs the same end-to-end test files as standalone
 * against it, and stops it. The local stack must be up (`npm run infra:up`, which the npm
 * script runs first).
 */
import { spawn } from "node:child_process"
import { appendFileSync, mkdirSync } from "node:fs"
import { fileURLToPath } from "node:url"
import { startCluster } from "./cluster.ts"

const repoRoot = fileURLToPath(new URL("..", import.meta.url))
const logDir = `${repoRoot}test-results`
mkdirSync(logDir, { recursive: true })
const logFile = `${logDir}/cluster.log`

const cluster = await startCluster({
  env: { WS_TEST_HOOKS: "true", WS_HEARTBEAT_TIMEOUT: "2 seconds", WS_MAX_FRAME_BYTES: "65536", LOG_FORMAT: "json" },
  onOutput: (name, line) => appendFileSync(logFile, `[${name}] ${line}\n`)
})
console.log(`cluster up (service logs in ${logFile}); running the end-to-end tests against ${cluster.apiUrl}`)

const vitest = spawn(
  process.execPath,
  [`${repoRoot}node_modules/vitest/vitest.mjs`, "run", "--exclude", "**/Restart.e2e.test.ts", "packages/e2e", ...process.argv.slice(2)],
  {
    cwd: repoRoot,
    stdio: "inherit",
    env: { ...process.env, IM_E2E_URL: cluster.apiUrl, IM_E2E_WS_URL: "ws://127.0.0.1:8081/ws" }
  }
)
const code = await new Promise<number | null>((resolve) => vitest.on("exit", resolve))
await cluster.stop()
process.exit(code ?? 1)
