import { Data, Effect, Layer } from "effect"
import { mkdir, readFile, rm, writeFile } from "node:fs/promises"
import { join } from "node:path"

export class DataDirInUse extends Data.TaggedError("DataDirInUse")<{ readonly dataDir: string; readonly pid: number }> {
  override get message() {
    return `DATA_DIR ${this.dataDir} is in use by process ${this.pid}; stop it or choose another DATA_DIR`
  }
}

const isAlive = (pid: number) => {
  try {
    process.kill(pid, 0)
    return true
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === "EPERM"
  }
}

/**
 * Holds `DATA_DIR/lock` (this process's pid) while standalone runs: two processes writing one
 * embedded database would corrupt it. A lock left by a process that died is taken over.
 */
export const layer = (dataDir: string) =>
  Layer.effectDiscard(Effect.acquireRelease(
    Effect.gen(function*() {
      const file = join(dataDir, "lock")
      yield* Effect.promise(() => mkdir(dataDir, { recursive: true }))
      while (true) {
        const created = yield* Effect.promise(() =>
          writeFile(file, String(process.pid), { flag: "wx" }).then(() => true, () => false)
        )
        if (created) return file
        const holder = Number(yield* Effect.promise(() => readFile(file, "utf8").catch(() => "")))
        if (Number.isInteger(holder) && holder > 0 && holder !== process.pid && isAlive(holder)) {
          return yield* new DataDirInUse({ dataDir, pid: holder })
        }
        yield* Effect.logWarning(`taking over the stale lock of process ${holder} in ${dataDir}`)
        yield* Effect.promise(() => rm(file, { force: true }))
      }
    }),
    (file) => Effect.promise(() => rm(file, { force: true }))
  ))
