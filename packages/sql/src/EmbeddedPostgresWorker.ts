/**
 * The worker thread of EmbeddedPostgres (see EmbeddedPostgres.ts): PGlite (PostgreSQL compiled
 * to WASM) and its socket server, so that the database's work (the WASM, the file syncs, the
 * protocol writes) runs on a core of its own instead of the server's event loop.
 *
 * Started with `workerData` {@link WorkerInput}; answers one {@link Started}; on the message
 * `"stop"` it stops the server, closes the database (which flushes it) and answers `"stopped"`
 * (or `{ _tag: "StopFailed", cause }`).
 */
import { PGlite } from "@electric-sql/pglite"
import { PGLiteSocketServer } from "@electric-sql/pglite-socket"
import { parentPort, workerData } from "node:worker_threads"

export interface WorkerInput {
  /** Where the database lives between runs; in memory when undefined. */
  readonly dataDir: string | undefined
  readonly maxConnections: number
  /** The Unix socket the server listens on. */
  readonly socketPath: string
}

export type Started =
  | { readonly _tag: "Listening" }
  | { readonly _tag: "Failed"; readonly message: string; readonly cause: string }

const input = workerData as WorkerInput
const parent = parentPort!

const describe = (cause: unknown) => cause instanceof Error ? cause.stack ?? cause.message : String(cause)

/**
 * PGlite's own start parameters, and new WAL files not filled with zeros first. PGlite is one
 * process without a checkpointer: it recycles WAL files only at a checkpoint, which comes after
 * `max_wal_size` (1 GB) of WAL, so until then every 16 MB of WAL it made a new file and wrote
 * 16 MB of zeros into it, holding every statement meanwhile. In a run of steps of 112
 * messages that was a step of 40–65 ms every 60–90 steps (the others 8.5 ms at the median); the
 * zeros only make a file system allocate the space early, which PGlite's in-memory one does not
 * need and a data folder does not rely on (fsync is off in PGlite anyway).
 */
const startParams = [...PGlite.defaultStartParams, "-c", "wal_init_zero=off"]

let db: PGlite | undefined
let server: PGLiteSocketServer | undefined
try {
  db = await PGlite.create({ ...(input.dataDir === undefined ? {} : { dataDir: input.dataDir }), startParams })
  server = new PGLiteSocketServer({ db, path: input.socketPath, maxConnections: input.maxConnections })
  await server.start()
  parent.postMessage({ _tag: "Listening" } satisfies Started)
} catch (cause) {
  const message = db === undefined
    ? `cannot open PGlite in ${input.dataDir ?? "memory"}`
    : "cannot start the PGlite socket server"
  await db?.close().catch(() => undefined)
  parent.postMessage({ _tag: "Failed", message, cause: describe(cause) } satisfies Started)
  parent.close()
}

parent.on("message", async (message) => {
  if (message !== "stop") return
  try {
    await server?.stop()
    await db?.close()
    parent.postMessage("stopped")
  } catch (cause) {
    parent.postMessage({ _tag: "StopFailed", cause: describe(cause) })
  }
  parent.close()
})
