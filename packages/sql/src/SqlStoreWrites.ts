import { StoreWrites } from "@im/ports/StoreWrites"
import { Effect, Layer } from "effect"
import { SqlClient, SqlError } from "effect/sql"
import { InTransaction, toPortError } from "./SqlErrors.ts"

/**
 * The SQL stores' writes of one unit in one transaction, one after the other as the unit makes
 * them: either all of them are kept or none, and it costs one commit instead of one per write.
 * (sql-pg sends a transaction's statements one at a time whatever the fibers, so running them at
 * once would save nothing, and would let a write's savepoint roll back a neighbour's statement.)
 * Inside it the statements are not retried (`InTransaction`): after a failure PostgreSQL refuses
 * every statement until the rollback, so a retry could only hide the first error behind "current
 * transaction is aborted"; the caller retries the whole save.
 */
export const layer: Layer.Layer<never, never, SqlClient.SqlClient> = Layer.effect(
  StoreWrites,
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    return StoreWrites.of({
      unit: (writes) =>
        writes.pipe(
          Effect.provideService(InTransaction, true),
          sql.withTransaction,
          // BEGIN, COMMIT or ROLLBACK failed; the writes' own errors are PortErrors already.
          Effect.mapError((error) => SqlError.isSqlError(error) ? toPortError("StoreWrites", "transaction")(error) : error)
        )
    })
  })
)
