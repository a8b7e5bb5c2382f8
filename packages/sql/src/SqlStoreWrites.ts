import { type Save, StoreWrites } from "@im/ports/StoreWrites"
import { Effect, Layer } from "effect"
import { SqlClient, SqlError } from "effect/sql"
import * as SqlConversationStore from "./SqlConversationStore.ts"
import { InTransaction, portCall, toPortError } from "./SqlErrors.ts"
import * as SqlHistoryStore from "./SqlHistoryStore.ts"
import * as SqlInboxStore from "./SqlInboxStore.ts"

/**
 * The SQL stores' writes of one unit in one transaction, one after the other as the unit makes
 * them: either all of them are kept or none, and it costs one commit instead of one per write.
 * (sql-pg sends a transaction's statements one at a time whatever the fibers, so running them at
 * once would save nothing, and would let a write's savepoint roll back a neighbour's statement.)
 * Inside it the statements are not retried (`InTransaction`): after a failure PostgreSQL refuses
 * every statement until the rollback, so a retry could only hide the first error behind "current
 * transaction is aborted"; the caller retries the whole save.
 *
 * A save whose messages have no entry stored yet goes as one statement (`saveAtOnce`): the
 * inbox append's checks decide, once, whether the messages, the entries and the conversations are
 * all inserted; one round trip to the database instead of five (BEGIN, three writes, COMMIT).
 */
export const layerWith = (limits: SqlConversationStore.TextLimits): Layer.Layer<never, never, SqlClient.SqlClient> =>
  Layer.effect(
    StoreWrites,
    Effect.gen(function*() {
      const sql = yield* SqlClient.SqlClient

      const saveAtOnce = Effect.fn("SqlStoreWrites.saveAtOnce")(function*({ conversations, entries, messages }: Save) {
        const pass = SqlInboxStore.firstPass(entries)
        if (pass === undefined) return false
        const go = sql`(SELECT go FROM go)`
        const rows = yield* sql<{ readonly user_id: string | null; readonly conversation: string | null }>`
          WITH ${SqlInboxStore.appendSteps(sql, pass.messages, pass.given, 0, pass.runs)},
          stored_messages AS (${SqlHistoryStore.insertMessages(sql, messages, go)}),
          recorded AS (${SqlConversationStore.recordEntries(sql, limits, conversations, go)})
          SELECT NULL AS user_id, NULL AS conversation FROM go WHERE go
          UNION ALL
          SELECT user_id, conversation FROM recorded WHERE grown`.pipe(portCall("StoreWrites", "save"))
        if (rows.length === 0) return false
        const grown = rows.flatMap(({ conversation, user_id }) => user_id === null || conversation === null ? [] : [{ user_id, conversation }])
        // The save is kept: a fold that fails is logged, and the next save that grows the rows
        // folds them.
        yield* SqlConversationStore.compact(sql, grown).pipe(
          portCall("ConversationStore", "record"),
          Effect.catch((error) => Effect.logWarning("folding grown conversation rows failed; a later save folds them", error))
        )
        return true
      })

      return StoreWrites.of({
        unit: (writes) =>
          writes.pipe(
            Effect.provideService(InTransaction, true),
            sql.withTransaction,
            // BEGIN, COMMIT or ROLLBACK failed; the writes' own errors are PortErrors already.
            Effect.mapError((error) => SqlError.isSqlError(error) ? toPortError("StoreWrites", "transaction")(error) : error)
          ),
        saveAtOnce
      })
    })
  )

export const layer: Layer.Layer<never, never, SqlClient.SqlClient> = layerWith(SqlConversationStore.DEFAULT_LIMITS)
