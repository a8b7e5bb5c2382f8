import { PortError } from "@im/ports/PortError"
import { StoreWrites } from "@im/ports/StoreWrites"
import { Effect, Exit, Layer } from "effect"
import { SqlClient, SqlError } from "effect/sql"

/**
 * The SQL stores' writes in one transaction: every write is started at once, so their
 * statements go out together on the connection (sql-pg pipelines them) between BEGIN and COMMIT,
 * and either all of them are kept or none. A failed write's error is the result, after the
 * others have finished (none is interrupted mid-statement) and the transaction rolled back.
 */
export const layer: Layer.Layer<never, never, SqlClient.SqlClient> = Layer.effect(
  StoreWrites,
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    return StoreWrites.of({
      all: (writes) =>
        Effect.forEach(writes, Effect.exit, { concurrency: "unbounded" }).pipe(
          Effect.flatMap((exits) => {
            const failed = exits.find(Exit.isFailure)
            return failed === undefined ? Effect.void : Effect.failCause(failed.cause)
          }),
          sql.withTransaction,
          // BEGIN, COMMIT or ROLLBACK failed; the writes' own errors are PortErrors already.
          Effect.mapError((error) =>
            SqlError.isSqlError(error)
              ? new PortError({ port: "StoreWrites", operation: "transaction", retryable: error.reason.isRetryable, cause: error })
              : error
          )
        )
    })
  })
)
