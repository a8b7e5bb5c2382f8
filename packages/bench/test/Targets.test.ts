import { mkdtempSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { afterAll, describe, expect, it } from "vitest"
import { repoRoot, startStandalone } from "../src/Targets.ts"

// Where the targets' logs go (each target makes its own data folder).
const runDir = mkdtempSync(join(tmpdir(), "im-bench-targets-"))
afterAll(() => rmSync(runDir, { recursive: true, force: true }))

describe("the standalone target the bench starts", () => {
  it("reports a server that ended on its own (a crash), and not one the bench stopped", async () => {
    const crashing = await startStandalone(runDir, undefined, repoRoot)
    process.kill(crashing.gatewayPids[0]!, "SIGKILL")
    await expect.poll(() => crashing.exits(), { timeout: 10_000 }).toEqual([{ name: "standalone", code: null, signal: "SIGKILL" }])
    await crashing.stop()
    expect(crashing.exits()).toHaveLength(1)

    const stopped = await startStandalone(runDir, undefined, repoRoot)
    await stopped.stop()
    expect(stopped.exits()).toEqual([])
  }, 120_000)
})
