import { execFile } from "node:child_process"
import { mkdtempSync, rmSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { fileURLToPath } from "node:url"
import { afterAll, describe, expect, it } from "vitest"

const preload = fileURLToPath(new URL("../src/SetChurn.ts", import.meta.url))
const dir = mkdtempSync(join(tmpdir(), "set-churn-"))
afterAll(() => rmSync(dir, { recursive: true, force: true }))

/** Runs `script` with the preload; its stderr once it has signalled itself. */
const run = (script: string, env: Record<string, string> = {}) => {
  const file = join(dir, "churny.mjs")
  writeFileSync(file, `${script}\nprocess.kill(process.pid, "SIGUSR2")\nsetTimeout(() => {}, 200)\n`)
  return new Promise<string>((resolve, reject) =>
    execFile(process.execPath, ["--import", preload, file], { env: { ...process.env, ...env } }, (error, _stdout, stderr) =>
      error ? reject(error) : resolve(stderr)
    )
  )
}

describe("SetChurn", () => {
  it("names the Sets and Maps values passed through, busiest first, with their operations, clears and where they were made", async () => {
    const stderr = await run([
      "const busy = new Set()",
      "for (let i = 0; i < 5000; i++) { const value = {}; busy.add(value); busy.delete(value) }",
      "const cleared = new Map()",
      "for (let i = 0; i < 3000; i++) { cleared.set(i, i); if (i % 10 === 9) cleared.clear() }",
      "const quiet = new Set([1]); for (let i = 0; i < 10; i++) quiet.add(i)"
    ].join("\n"))
    const lines = stderr.trim().split("\n")
    expect(lines).toHaveLength(2)
    expect(lines[0]).toMatch(/^churn: 10000 operations, 0 clears, 1 instance\(s\): Set made at .*churny\.mjs:2/)
    expect(lines[1]).toMatch(/^churn: 3300 operations, 300 clears, 1 instance\(s\): Map made at .*churny\.mjs:4/)
  })

  it("says so when no Set or Map reached CHURN_MIN_OPS", async () => {
    const stderr = await run("const few = new Set(); for (let i = 0; i < 50; i++) few.add(i)", { CHURN_MIN_OPS: "100" })
    expect(stderr.trim()).toBe("churn: no Set or Map with 100 operations")
  })
})
