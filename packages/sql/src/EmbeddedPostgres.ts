import { PgClient, type PgMigrator } from "@effect/sql-pg"
import * as Vital from "@im/ports/Vital"
import { Data, Duration, Effect, Layer } from "effect"
import { SqlClient, type SqlError } from "effect/sql"
import { mkdtempSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { Worker } from "node:worker_threads"
import type { Started, WorkerInput } from "./EmbeddedPostgresWorker.ts"
import * as Migrations from "./Migrations.ts"

/** PGlite or its socket server could not start. */
export class EmbeddedPostgresError extends Data.TaggedError("EmbeddedPostgresError")<{
  readonly message: string
  readonly cause?: unknown
}> {}

export interface EmbeddedPostgresOptions {
  /** Where the database lives between runs; in memory, gone at release, when undefined. */
  readonly dataDir: string | undefined
  /** How often the database is vacuumed (see {@link Vacuum}); the defaults when undefined. */
  readonly vacuum?: Partial<Vacuum> | undefined
}

/**
 * PGlite runs no autovacuum: without a VACUUM, the space of an updated row's old version is
 * never reused, and no row is ever frozen, which PostgreSQL needs before 2 billion transactions.
 * A 1:1 message updates two rows of `conversations` and one of `user_seq` per entry, so under
 * load `conversations` grew without end (docs/benchmarks.md, "Standalone vacuums"). So the layer
 * vacuums, as autovacuum would: the tables updated in place often (vacuumed often, they stay
 * small and quick to vacuum), and the whole database, with the planner's statistics, a minute
 * after the start (a server restarted often still gets it) and then every hour. PGlite is one
 * backend: while a vacuum runs, other statements wait, so a long one is logged, and the whole
 * database goes a table at a time, with a pause between (`vacuuming`).
 */
export interface Vacuum {
  /** How often `conversations` and `user_seq` are vacuumed. */
  readonly tablesEvery: Duration.Input
  /** When the whole database is first vacuumed and analyzed, a table at a time … */
  readonly databaseFirstAfter: Duration.Input
  /** … and how often after that. */
  readonly databaseEvery: Duration.Input
}

export const DEFAULT_VACUUM: Vacuum = {
  tablesEvery: Duration.seconds(2),
  databaseFirstAfter: Duration.minutes(1),
  databaseEvery: Duration.hours(1)
}

/** A vacuum that holds the database longer than this is logged. */
const LONG_VACUUM = Duration.seconds(1)

/** The pause between two tables' vacuums of the whole database's: the statements waiting go first. */
const BETWEEN_TABLES = Duration.millis(50)

/** The statistics target of the whole database's ANALYZE: a sample of 300 × this many rows a table. */
const STATISTICS_TARGET = 10

/**
 * One pooled connection. PGlite is a single backend: the socket server runs one query at a
 * time whatever the pool, an open transaction holds every other connection, and a pool larger
 * than the server's `maxConnections` gets its extra connections reset. The connection is
 * multiplexed: statements of several fibers outside a transaction go out together in one write
 * and need no turn at the pool (1:1 standalone 7,120 → 7,939/s; at 3,000/s p50 33 → 16 ms).
 */
const POOL_SIZE = 1
/** Room above the pool for a connection being replaced while the old one is still counted. */
const SERVER_MAX_CONNECTIONS = 4
/** How long the worker may take to stop its server and flush the database. */
const STOP_TIMEOUT = "30 seconds"

/** The worker's next message; fails if it errs or exits first. */
const nextMessage = (worker: Worker) =>
  Effect.callback<unknown, EmbeddedPostgresError>((resume) => {
    const onMessage = (message: unknown) => {
      cleanUp()
      resume(Effect.succeed(message))
    }
    const onError = (cause: unknown) => {
      cleanUp()
      resume(Effect.fail(new EmbeddedPostgresError({ message: "the PGlite worker failed", cause })))
    }
    const onExit = (code: number) => {
      cleanUp()
      resume(Effect.fail(new EmbeddedPostgresError({ message: `the PGlite worker exited with code ${code}` })))
    }
    const cleanUp = () => {
      worker.off("message", onMessage)
      worker.off("error", onError)
      worker.off("exit", onExit)
    }
    worker.on("message", onMessage)
    worker.on("error", onError)
    worker.on("exit", onExit)
    return Effect.sync(cleanUp)
  })

/**
 * A folder of its own for the server's Unix socket, removed with the scope. A Unix socket rather
 * than TCP on 127.0.0.1: PGlite asks no password, so on a TCP port any local user could read and
 * change the database, while the folder (mode 0700, from mkdtemp) admits only this server's user;
 * and every statement is a write and a read each way between the two threads, which on loopback
 * TCP also runs the receiving side's network stack. A Unix socket's path has at most 103 bytes
 * on every system Node runs on (104 with its terminating zero on macOS, 108 on Linux).
 */
const MAX_SOCKET_PATH_BYTES = 103

const socketPath = Effect.acquireRelease(
  Effect.sync(() => mkdtempSync(join(tmpdir(), "im-pglite-"))),
  (folder) => Effect.sync(() => rmSync(folder, { recursive: true, force: true }))
).pipe(
  Effect.map((folder) => join(folder, "pg.sock")),
  Effect.filterOrFail(
    (path) => Buffer.byteLength(path) <= MAX_SOCKET_PATH_BYTES,
    (path) =>
      new EmbeddedPostgresError({
        message: `the embedded database's socket path ${path} is longer than ${MAX_SOCKET_PATH_BYTES} bytes: set TMPDIR to a shorter folder`
      })
  )
)

/**
 * PGlite and its socket server in a worker thread (EmbeddedPostgresWorker.ts), listening on a
 * Unix socket in a folder of its own. Released by asking the worker to stop and flush, then
 * terminating it.
 */
const startWorker = (options: EmbeddedPostgresOptions, socketPath: string) =>
  Effect.acquireRelease(
    Effect.gen(function*() {
      const worker = new Worker(new URL("./EmbeddedPostgresWorker.ts", import.meta.url), {
        workerData: { dataDir: options.dataDir, maxConnections: SERVER_MAX_CONNECTIONS, socketPath } satisfies WorkerInput
      })
      const started = (yield* nextMessage(worker).pipe(
        Effect.onError(() => Effect.promise(() => worker.terminate()))
      )) as Started
      if (started._tag === "Failed") {
        yield* Effect.promise(() => worker.terminate())
        return yield* new EmbeddedPostgresError({ message: started.message, cause: started.cause })
      }
      // For the worker's whole life: an "error" event nobody listens to would throw in this
      // thread, and a worker that is gone cannot be asked to stop.
      const state: WorkerState = { exited: false, error: undefined }
      worker.on("error", (cause) => void (state.error = cause))
      worker.once("exit", () => void (state.exited = true))
      return { worker, state }
    }),
    ({ state, worker }) =>
      (state.exited ? Effect.void : Effect.sync(() => worker.postMessage("stop")).pipe(
        Effect.andThen(nextMessage(worker)),
        Effect.flatMap((answer) =>
          answer === "stopped"
            ? Effect.void
            : Effect.fail(new EmbeddedPostgresError({ message: "the PGlite worker could not stop", cause: answer }))
        ),
        Effect.timeout(STOP_TIMEOUT),
        Effect.catchCause((cause) => Effect.logError("the PGlite worker did not stop cleanly", cause))
      )).pipe(Effect.andThen(Effect.promise(() => worker.terminate())))
  )

interface WorkerState {
  exited: boolean
  /** What the worker failed with, if it did. */
  error: unknown
}

/**
 * PostgreSQL in the process, for standalone mode and tests: PGlite (Postgres compiled to WASM)
 * in a worker thread, behind a socket server on a Unix socket, @effect/sql-pg connected to it,
 * the migrations applied. The database works on another core than the
 * server's event loop. Released in reverse: client, then the worker (server, database).
 */
export const layer = (
  options: EmbeddedPostgresOptions
): Layer.Layer<
  PgClient.PgClient | SqlClient.SqlClient,
  EmbeddedPostgresError | SqlError.SqlError | PgMigrator.MigrationError
> => {
  const client = PgClient.layerFrom(
    Effect.gen(function*() {
      const path = yield* socketPath
      const { state, worker } = yield* startWorker(options, path)
      // Without its worker the server has no database: it stops (Vital), saying why.
      yield* Vital.forkScoped(
        "the PGlite worker",
        Effect.callback<number>((resume) => {
          const onExit = (code: number) => resume(Effect.succeed(code))
          worker.once("exit", onExit)
          return Effect.sync(() => worker.off("exit", onExit))
        }).pipe(
          Effect.flatMap((code) =>
            Effect.fail(new EmbeddedPostgresError({ message: `the PGlite worker exited with code ${code}; the database is gone`, cause: state.error }))
          )
        )
      )
      return yield* PgClient.make({
        path,
        username: "postgres",
        database: "postgres",
        maxConnections: POOL_SIZE,
        multiplex: true
      })
    }).pipe(Effect.withSpan("EmbeddedPostgres.start"))
  )
  return vacuuming({ ...DEFAULT_VACUUM, ...options.vacuum }).pipe(
    Layer.provideMerge(Migrations.layer),
    Layer.provideMerge(client)
  )
}

/** The vacuums of {@link Vacuum}; a failure is logged, and so is a long one. */
const vacuuming = (vacuum: Vacuum) =>
  Layer.effectDiscard(Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    /** The statement, logged when it held the database long. */
    const timed = (what: string, statement: Effect.Effect<unknown, SqlError.SqlError>) =>
      Effect.timed(statement).pipe(
        Effect.tap(([took]) =>
          Duration.isGreaterThan(took, LONG_VACUUM)
            ? Effect.logInfo(`${what} held the database for ${Duration.format(took)}`)
            : Effect.void
        )
      )
    /** … and a failure logged, to be tried again next time. */
    const run = (what: string, statement: Effect.Effect<unknown, SqlError.SqlError>) =>
      timed(what, statement).pipe(
        Effect.catchCause((cause) => Effect.logWarning(`${what} failed; it runs again later`, cause)),
        Effect.withTracerEnabled(false)
      )
    const tables = run("vacuum of conversations and user_seq", sql`VACUUM conversations, user_seq`)
    yield* tables.pipe(Effect.delay(vacuum.tablesEvery), Effect.forever, Effect.forkScoped)
    /**
     * The whole database, a table at a time: `VACUUM (ANALYZE)` of all of it at once held PGlite
     * 0.5 s with 200,000 messages stored, and every message waited (a standalone run at 5,000/s
     * had a p99 of 1,085 ms in that second). ANALYZE was most of it: a sample of 30,000 rows a
     * table, about 120 ms for each of `messages`, `inbox_fanout` and `inbox_runs` in memory, up
     * to 500 ms from a data folder. So each table goes alone, and its sample is 3,000 rows
     * (statistics target 10: 15–20 ms a table), enough for the planner to choose among the
     * indexes every query here is written for. A last `VACUUM` without ANALYZE does the system
     * catalogs and lets the database's oldest unfrozen transaction move on; the tables left it
     * little to do.
     */
    const database = Effect.gen(function*() {
      const tables = yield* sql<{ readonly name: string }>`
        SELECT tablename AS name FROM pg_tables WHERE schemaname = 'public' ORDER BY tablename`
      yield* sql`SET default_statistics_target = ${sql.literal(String(STATISTICS_TARGET))}`
      // A failure ends the round (one warning, below), not each table's turn.
      for (const { name } of tables) {
        yield* timed(`vacuum of ${name}`, sql`VACUUM (ANALYZE) ${sql(name)}`)
        yield* Effect.sleep(BETWEEN_TABLES)
      }
      yield* timed("vacuum of the database", sql`VACUUM`)
    }).pipe(
      Effect.ensuring(Effect.ignore(sql`RESET default_statistics_target`)),
      Effect.catchCause((cause) => Effect.logWarning("vacuum of the database failed; it runs again later", cause)),
      Effect.withTracerEnabled(false)
    )
    yield* database.pipe(
      Effect.andThen(database.pipe(Effect.delay(vacuum.databaseEvery), Effect.forever)),
      Effect.delay(vacuum.databaseFirstAfter),
      Effect.forkScoped
    )
  }))

/** The module as one value, for `import { EmbeddedPostgres } from "@im/sql/EmbeddedPostgres"`. */
export const EmbeddedPostgres = { layer } as const
