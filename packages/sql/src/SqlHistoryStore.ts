import type { GroupId, LocalId, ServerId, UserId } from "@im/domain/Ids"
import type { Message, MessageKind, StoredContentType } from "@im/domain/Message"
import { HistoryStore } from "@im/ports/HistoryStore"
import { Array as Arr, Effect, Layer } from "effect"
import { SqlClient } from "effect/sql"
import { chunks, portCall, toNumber } from "./SqlErrors.ts"

/** Rows per insert: ten parameters each. */
const CHUNK = 2_000
/** Ids per select. */
const ID_CHUNK = 10_000

interface MessageRow {
  readonly server_id: string
  readonly local_id: string
  readonly sender_id: string
  readonly kind: string
  readonly receiver_id: string | null
  readonly group_id: string | null
  readonly content_type: string
  readonly content: string
  readonly create_time: bigint
  readonly send_time: bigint
  readonly recalled: boolean
}

// Rows were written from validated `Message`s only, so they are read back without decoding.
const toMessage = (row: MessageRow): Message => ({
  server_id: row.server_id as ServerId,
  local_id: row.local_id as LocalId,
  sender_id: row.sender_id as UserId,
  kind: row.kind as MessageKind,
  ...(row.receiver_id === null ? {} : { receiver_id: row.receiver_id as UserId }),
  ...(row.group_id === null ? {} : { group_id: row.group_id as GroupId }),
  content_type: row.content_type as StoredContentType,
  content: row.content,
  create_time: toNumber(row.create_time),
  send_time: toNumber(row.send_time),
  ...(row.recalled ? { recalled: true as const } : {})
})

const toRow = (message: Message) => ({
  server_id: message.server_id,
  local_id: message.local_id,
  sender_id: message.sender_id,
  kind: message.kind,
  receiver_id: message.receiver_id ?? null,
  group_id: message.group_id ?? null,
  content_type: message.content_type,
  content: message.content,
  create_time: message.create_time,
  send_time: message.send_time,
  recalled: message.recalled === true
})

/** Messages in the `messages` table, keyed by server_id; the first saved version stays. */
export const layer: Layer.Layer<HistoryStore, never, SqlClient.SqlClient> = Layer.effect(
  HistoryStore,
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient

    const save = Effect.fn("SqlHistoryStore.save")(function*(messages: ReadonlyArray<Message>) {
      const unique = new Map<ServerId, Message>()
      for (const message of messages) if (!unique.has(message.server_id)) unique.set(message.server_id, message)
      yield* Effect.forEach(
        chunks([...unique.values()], CHUNK),
        (part) => sql`INSERT INTO messages ${sql.insert(Arr.map(part, toRow))} ON CONFLICT (server_id) DO NOTHING`,
        { discard: true }
      ).pipe(portCall("HistoryStore", "save"))
    })

    const get = Effect.fn("SqlHistoryStore.get")(function*(ids: ReadonlyArray<ServerId>) {
      const rows = yield* Effect.forEach(
        chunks([...new Set(ids)], ID_CHUNK),
        (part) => sql<MessageRow>`SELECT * FROM messages WHERE server_id IN ${sql.in(part)}`
      ).pipe(portCall("HistoryStore", "get"))
      return rows.flat().map(toMessage)
    })

    const recall = Effect.fn("SqlHistoryStore.recall")(function*(id: ServerId) {
      const rows = yield* sql<{ server_id: string }>`
        UPDATE messages SET recalled = true, content = '' WHERE server_id = ${id} RETURNING server_id
      `.pipe(portCall("HistoryStore", "recall"))
      return rows.length > 0
    })

    return HistoryStore.of({ save, get, recall })
  })
)
