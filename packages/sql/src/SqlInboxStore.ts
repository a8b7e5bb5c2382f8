import type { ServerId, UserId } from "@im/domain/Ids"
import { entryKey, type InboxRef, InboxStore, type RangeQuery } from "@im/ports/InboxStore"
import { Effect, Layer } from "effect"
import { SqlClient } from "effect/sql"
import { chunks, portCall, toNumber } from "./SqlErrors.ts"

/** Keys per lookup: two parameters each. */
const CHUNK = 5_000
/** Entries per insert (three arrays of them). */
const APPEND_CHUNK = 50_000

interface InboxRow {
  readonly user_id: string
  readonly seq: bigint
  readonly server_id: string
}

const toRef = (row: InboxRow): InboxRef => ({
  user_id: row.user_id as UserId,
  seq: toNumber(row.seq),
  server_id: row.server_id as ServerId
})

/**
 * Inboxes in the `inbox` table: (user_id, seq) is the key, (user_id, server_id) is unique. A
 * replayed entry hits the second and is skipped; a different message under a taken number hits
 * the first and fails the append (a non-retryable PortError), which is a bug upstream.
 */
export const layer: Layer.Layer<InboxStore, never, SqlClient.SqlClient> = Layer.effect(
  InboxStore,
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient

    const append = Effect.fn("SqlInboxStore.append")(function*(entries: ReadonlyArray<InboxRef>) {
      const unique = new Map<string, InboxRef>()
      for (const entry of entries) {
        const key = entryKey(entry.user_id, entry.server_id)
        if (!unique.has(key)) unique.set(key, entry)
      }
      // Three array parameters rather than three per row: a group's step is 10,000 entries, and
      // building, encoding and planning 30,000 parameters cost more than the rows themselves.
      const inserted = yield* Effect.forEach(
        chunks([...unique.values()], APPEND_CHUNK),
        (part) =>
          sql<{ readonly inserted: bigint | number | string }>`
            WITH inserted AS (
              INSERT INTO inbox (user_id, seq, server_id)
              SELECT * FROM unnest(${part.map((entry) => entry.user_id)}::text[], ${part.map((entry) => entry.seq)}::int8[], ${
            part.map((entry) => entry.server_id)
          }::text[])
              ON CONFLICT (user_id, server_id) DO NOTHING
              RETURNING 1
            )
            SELECT count(*) AS inserted FROM inserted`
      ).pipe(portCall("InboxStore", "append"))
      // Usually every entry is new: a count says so without sending the rows back.
      if (inserted.reduce((sum, rows) => sum + Number(rows[0]?.inserted ?? 0), 0) === unique.size) return []
      // Some pairs were stored before: those under another number, as stored.
      return (yield* find([...unique.values()])).filter((ref) => unique.get(entryKey(ref.user_id, ref.server_id))?.seq !== ref.seq)
    })

    const find = Effect.fn("SqlInboxStore.find")(
      function*(keys: ReadonlyArray<Pick<InboxRef, "user_id" | "server_id">>) {
        const rows = yield* Effect.forEach(
          chunks(keys, CHUNK),
          (part) =>
            sql<InboxRow>`
              SELECT user_id, seq, server_id FROM inbox
              WHERE (user_id, server_id) IN (VALUES ${sql.csv(part.map((k) => sql`(${k.user_id}, ${k.server_id})`))})`
        ).pipe(portCall("InboxStore", "find"))
        return rows.flat().map(toRef)
      }
    )

    const range = Effect.fn("SqlInboxStore.range")(function*({ after, limit, until, user }: RangeQuery) {
      const rows = yield* sql<InboxRow>`
        SELECT user_id, seq, server_id FROM inbox
        WHERE ${sql.and([sql`user_id = ${user}`, sql`seq > ${after}`, ...(until === undefined ? [] : [sql`seq <= ${until}`])])}
        ORDER BY seq
        LIMIT ${limit}`.pipe(portCall("InboxStore", "range"))
      return rows.map(toRef)
    })

    const newest = Effect.fn("SqlInboxStore.newest")(function*(user: UserId) {
      const rows = yield* sql<{ readonly newest: bigint | null }>`
        SELECT max(seq) AS newest FROM inbox WHERE user_id = ${user}`.pipe(portCall("InboxStore", "newest"))
      return toNumber(rows[0]?.newest)
    })

    return InboxStore.of({ append, find, range, newest })
  })
)
