import { PgClient, type PgMigrator } from "@effect/sql-pg"
import { PGlite } from "@electric-sql/pglite"
import { PGLiteSocketServer } from "@electric-sql/pglite-socket"
import { Data, Effect, Layer } from "effect"
import type { SqlClient, SqlError } from "effect/sql"
import * as Migrations from "./Migrations.ts"

/** PGlite or its socket server could not start. */
export class EmbeddedPostgresError extends Data.TaggedError("EmbeddedPostgresError")<{
  readonly message: string
  readonly cause?: unknown
}> {}

export interface EmbeddedPostgresOptions {
  /** Where the database lives between runs; in memory, gone at release, when undefined. */
  readonly dataDir: string | undefined
}

/**
 * One pooled connection. PGlite is a single backend: the socket server runs one query at a
 * time whatever the pool, an open transaction holds every other connection, and a pool larger
 * than the server's `maxConnections` gets its extra connections reset.
 */
const POOL_SIZE = 1
/** Room above the pool for a connection being replaced while the old one is still counted. */
const SERVER_MAX_CONNECTIONS = 4

/**
 * PostgreSQL in the process, for standalone mode and tests: PGlite (Postgres compiled to WASM)
 * behind a socket server on a free port of 127.0.0.1, @effect/sql-pg connected to it, the
 * migrations applied. Released in reverse: client, socket server, database.
 */
export const layer = (
  options: EmbeddedPostgresOptions
): Layer.Layer<
  PgClient.PgClient | SqlClient.SqlClient,
  EmbeddedPostgresError | SqlError.SqlError | PgMigrator.MigrationError
> => {
  const client = PgClient.layerFrom(
    Effect.gen(function*() {
      const db = yield* Effect.acquireRelease(
        Effect.tryPromise({
          try: () => options.dataDir === undefined ? PGlite.create() : PGlite.create(options.dataDir),
          catch: (cause) =>
            new EmbeddedPostgresError({ message: `cannot open PGlite in ${options.dataDir ?? "memory"}`, cause })
        }),
        (db) => Effect.promise(() => db.close())
      )
      const server = yield* Effect.acquireRelease(
        Effect.tryPromise({
          try: async () => {
            const server = new PGLiteSocketServer({
              db,
              host: "127.0.0.1",
              port: 0,
              maxConnections: SERVER_MAX_CONNECTIONS
            })
            await server.start()
            return server
          },
          catch: (cause) => new EmbeddedPostgresError({ message: "cannot start the PGlite socket server", cause })
        }),
        (server) => Effect.promise(() => server.stop())
      )
      // With port 0 the OS picks the port; the server learns it on start.
      const port = Number(server.getServerConn().split(":").at(-1))
      if (!Number.isInteger(port) || port <= 0) {
        return yield* new EmbeddedPostgresError({ message: `unexpected server address ${server.getServerConn()}` })
      }
      return yield* PgClient.make({
        host: "127.0.0.1",
        port,
        username: "postgres",
        database: "postgres",
        maxConnections: POOL_SIZE
      })
    }).pipe(Effect.withSpan("EmbeddedPostgres.start"))
  )
  return Migrations.layer.pipe(Layer.provideMerge(client))
}

/** The module as one value, for `import { EmbeddedPostgres } from "@im/sql/EmbeddedPostgres"`. */
export const EmbeddedPostgres = { layer } as const
