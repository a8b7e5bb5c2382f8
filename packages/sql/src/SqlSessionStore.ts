import type { SessionId } from "@im/domain/Ids"
import { type SessionRecord, SessionStore } from "@im/ports/SessionStore"
import { Clock, Effect, Layer } from "effect"
import { SqlClient } from "effect/sql"
import { portCall } from "./SqlErrors.ts"

/**
 * Login sessions in the `sessions` table: a row per live session (deleted when it ends), so
 * every instance of every service sees a logout at once. Each statement is safe to run twice.
 */
export const layer: Layer.Layer<SessionStore, never, SqlClient.SqlClient> = Layer.effect(
  SessionStore,
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient

    const create = Effect.fn("SqlSessionStore.create")(function*(session: SessionRecord) {
      const now = yield* Clock.currentTimeMillis
      // The user's sessions that are over: forgotten here, so rows do not pile up.
      yield* sql`DELETE FROM sessions WHERE user_id = ${session.user} AND expires_at <= ${now}`.pipe(
        portCall("SessionStore", "create")
      )
      yield* sql`
        INSERT INTO sessions ${
        sql.insert({
          id: session.id,
          user_id: session.user,
          refresh_id: session.refresh_id,
          created_at: session.created_at,
          expires_at: session.expires_at
        })
      }
        ON CONFLICT (id) DO NOTHING`.pipe(portCall("SessionStore", "create"))
    })

    const rotate = Effect.fn("SqlSessionStore.rotate")(function*(
      id: SessionId,
      rotation: { readonly from: string; readonly to: string; readonly expires_at: number }
    ) {
      const now = yield* Clock.currentTimeMillis
      const rows = yield* sql<{ readonly id: string }>`
        UPDATE sessions SET refresh_id = ${rotation.to}, expires_at = ${rotation.expires_at}
        WHERE id = ${id} AND expires_at > ${now} AND refresh_id IN (${rotation.from}, ${rotation.to})
        RETURNING id`.pipe(portCall("SessionStore", "rotate"))
      return rows.length > 0
    })

    const revoke = Effect.fn("SqlSessionStore.revoke")(function*(id: SessionId) {
      yield* sql`DELETE FROM sessions WHERE id = ${id}`.pipe(portCall("SessionStore", "revoke"))
    })

    const isActive = Effect.fn("SqlSessionStore.isActive")(function*(id: SessionId) {
      const now = yield* Clock.currentTimeMillis
      const rows = yield* sql<{ readonly id: string }>`
        SELECT id FROM sessions WHERE id = ${id} AND expires_at > ${now}`.pipe(portCall("SessionStore", "isActive"))
      return rows.length > 0
    })

    return SessionStore.of({ create, rotate, revoke, isActive })
  })
)
