import type { ServerId, UserId } from "@im/domain/Ids"
import {
  applyEntries,
  applyRead,
  type ConversationEntry,
  type ConversationState,
  ConversationStore,
  groupEntries,
  type SeqRuns,
  toConversation
} from "@im/ports/ConversationStore"
import { Array as Arr, Effect, Layer, Option } from "effect"
import { SqlClient } from "effect/sql"
import { chunks, portCall, toNumber } from "./SqlErrors.ts"

interface Row {
  readonly user_id: string
  readonly conversation: string
  readonly last_seq: bigint
  readonly last_server_id: string
  readonly read_seq: bigint
  readonly unread_seqs: string
}

/**
 * `unread_seqs` holds the runs as JSON (`[[4,4],[6,90]]`); rows written before runs hold single
 * seqs (`[4,6,7]`), read as runs of one.
 */
const parseUnread = (text: string): SeqRuns => {
  const runs: Array<[number, number]> = []
  for (const item of JSON.parse(text) as Array<number | [number, number]>) {
    const [first, last] = typeof item === "number" ? [item, item] : item
    const newest = runs.at(-1)
    if (newest !== undefined && newest[1] === first - 1) newest[1] = last
    else runs.push([first, last])
  }
  return runs
}

const toState = (row: Row): ConversationState => ({
  last_seq: toNumber(row.last_seq),
  last_server_id: row.last_server_id as ServerId,
  read_seq: toNumber(row.read_seq),
  unread: parseUnread(row.unread_seqs)
})

const toRow = (user_id: string, conversation: string, state: ConversationState) => ({
  user_id,
  conversation,
  last_seq: state.last_seq,
  last_server_id: state.last_server_id,
  read_seq: state.read_seq,
  unread_seqs: JSON.stringify(state.unread)
})

/** Rows per statement. */
const CHUNK = 1_000

/**
 * Conversations in `conversations`, one row per (user, conversation) with the unread seqs as
 * JSON. Each write reads the rows it changes under a lock, applies the shared rules of
 * ConversationStore.ts, and writes them back, in one transaction.
 */
export const layer: Layer.Layer<ConversationStore, never, SqlClient.SqlClient> = Layer.effect(
  ConversationStore,
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient

    const record = Effect.fn("SqlConversationStore.record")(function*(entries: ReadonlyArray<ConversationEntry>) {
      if (entries.length === 0) return
      const groups = groupEntries(entries)
      yield* Effect.forEach(chunks(groups, CHUNK), (part) =>
        Effect.gen(function*() {
          const keys = part.map((group) => sql`(${group.user_id}, ${group.conversation})`)
          const rows = yield* sql<Row>`
            SELECT * FROM conversations WHERE (user_id, conversation) IN (${sql.csv(keys)}) FOR UPDATE`
          const current = new Map(rows.map((row) => [`${row.user_id}\n${row.conversation}`, toState(row)]))
          const changed = part.flatMap((group) => {
            const before = current.get(`${group.user_id}\n${group.conversation}`)
            const after = applyEntries(before, group.entries)
            return after === undefined || after === before ? [] : [toRow(group.user_id, group.conversation, after)]
          })
          if (!Arr.isArrayNonEmpty(changed)) return
          yield* sql`
            INSERT INTO conversations ${sql.insert(changed)}
            ON CONFLICT (user_id, conversation) DO UPDATE SET
              last_seq = EXCLUDED.last_seq,
              last_server_id = EXCLUDED.last_server_id,
              read_seq = EXCLUDED.read_seq,
              unread_seqs = EXCLUDED.unread_seqs`
        }).pipe(sql.withTransaction), { discard: true }).pipe(portCall("ConversationStore", "record"))
    })

    const list = Effect.fn("SqlConversationStore.list")(function*(user: UserId) {
      const rows = yield* sql<Row>`SELECT * FROM conversations WHERE user_id = ${user} ORDER BY last_seq DESC`.pipe(
        portCall("ConversationStore", "list")
      )
      return rows.map((row) => toConversation(row.conversation, toState(row)))
    })

    const markRead = Effect.fn("SqlConversationStore.markRead")(function*(user: UserId, conversation: string, seq: number) {
      return yield* Effect.gen(function*() {
        const rows = yield* sql<Row>`
          SELECT * FROM conversations WHERE user_id = ${user} AND conversation = ${conversation} FOR UPDATE`
        if (rows.length === 0) return Option.none()
        const before = toState(rows[0]!)
        const after = applyRead(before, seq)
        yield* sql`
          UPDATE conversations SET read_seq = ${after.read_seq}, unread_seqs = ${JSON.stringify(after.unread)}
          WHERE user_id = ${user} AND conversation = ${conversation}`
        return Option.some({ before: toConversation(conversation, before), after: toConversation(conversation, after) })
      }).pipe(sql.withTransaction, portCall("ConversationStore", "markRead"))
    })

    return ConversationStore.of({ record, list, markRead })
  })
)
