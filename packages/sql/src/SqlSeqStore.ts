import type { UserId } from "@im/domain/Ids"
import { type ReservedRange, SeqStore, totalsByUser } from "@im/ports/SeqStore"
import { Array as Arr, Effect, Layer } from "effect"
import { SqlClient } from "effect/sql"
import { chunks, portCall, toNumber } from "./SqlErrors.ts"

/** Users per statement: two parameters each, well under PostgreSQL's 65,535. */
const CHUNK = 10_000

/**
 * Sequences in the `user_seq` table. One upsert hands out every user's block: the row lock
 * makes concurrent calls queue per user, and the counter only ever grows.
 */
export const layer: Layer.Layer<SeqStore, never, SqlClient.SqlClient> = Layer.effect(
  SeqStore,
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient

    const upsert = (totals: Arr.NonEmptyReadonlyArray<readonly [UserId, number]>) =>
      sql<{ readonly user_id: string; readonly seq: bigint }>`
        INSERT INTO user_seq ${sql.insert(Arr.map(totals, ([user_id, seq]) => ({ user_id, seq })))}
        ON CONFLICT (user_id) DO UPDATE SET seq = user_seq.seq + EXCLUDED.seq
        RETURNING user_id, seq`

    const allocate = Effect.fn("SqlSeqStore.allocate")(function*(requests: ReadonlyArray<readonly [UserId, number]>) {
      // One row per user: an upsert may not touch a row twice.
      const totals = yield* totalsByUser(requests)
      const firsts = new Map<UserId, number>()
      if (totals.size === 0) return firsts
      const parts = chunks([...totals], CHUNK)
      const run = Effect.forEach(parts, upsert)
      const results = yield* (parts.length === 1 ? run : sql.withTransaction(run)).pipe(portCall("SeqStore", "allocate"))
      for (const row of results.flat()) {
        const user = row.user_id as UserId
        firsts.set(user, toNumber(row.seq) - totals.get(user)! + 1)
      }
      return firsts
    })

    const current = Effect.fn("SqlSeqStore.current")(function*(user: UserId) {
      const rows = yield* sql<{ readonly seq: bigint }>`SELECT seq FROM user_seq WHERE user_id = ${user}`.pipe(
        portCall("SeqStore", "current")
      )
      return toNumber(rows[0]?.seq)
    })

    const giveBack = Effect.fn("SqlSeqStore.giveBack")(function*(ranges: ReadonlyArray<ReservedRange>) {
      for (const part of chunks(ranges, CHUNK)) {
        yield* sql`
          UPDATE user_seq SET seq = f.handed
          FROM unnest(
            ${part.map((range) => range.user)}::text[], ${part.map((range) => BigInt(range.handedUpTo))}::int8[],
            ${part.map((range) => BigInt(range.reservedUpTo))}::int8[]
          ) AS f(user_id, handed, reserved)
          WHERE user_seq.user_id = f.user_id AND user_seq.seq = f.reserved`.pipe(portCall("SeqStore", "giveBack"))
      }
    })

    return SeqStore.of({ allocate, current, giveBack })
  })
)
