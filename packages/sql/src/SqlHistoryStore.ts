import type { GroupId, LocalId, ServerId, UserId } from "@im/domain/Ids"
import type { Message, MessageKind, StoredContentType } from "@im/domain/Message"
import { HistoryStore } from "@im/ports/HistoryStore"
import { Effect, Layer } from "effect"
import { SqlClient, type Statement } from "effect/sql"
import { chunks, portCall, toNumber } from "./SqlErrors.ts"

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

/** The first of each server_id. */
const uniqueById = (messages: ReadonlyArray<Message>) => {
  const unique = new Map<ServerId, Message>()
  for (const message of messages) if (!unique.has(message.server_id)) unique.set(message.server_id, message)
  return [...unique.values()]
}

/**
 * `INSERT INTO messages` of these messages (the first of each server_id), a message already
 * stored left as it is, with the rows read from `unnest`: one parameter per column whatever
 * their number, so a batch needs no splitting. (Every element of an array parameter needs one
 * type: numbers go as bigints whatever their size, and a missing id as '', NULL again here.)
 * `where` decides, once for all of them, whether they are inserted (SqlStoreWrites's
 * one-statement save inserts them only when it stores the rest).
 */
export const insertMessages = (
  sql: SqlClient.SqlClient,
  messages: ReadonlyArray<Message>,
  where: Statement.Fragment = sql`true`
) => {
  const rows = uniqueById(messages)
  const column = <A>(f: (message: Message) => A) => rows.map(f)
  return sql`
    INSERT INTO messages (
      server_id, local_id, sender_id, kind, receiver_id, group_id, content_type, content, create_time, send_time, recalled
    )
    SELECT server_id, local_id, sender_id, kind, nullif(receiver_id, ''), nullif(group_id, ''), content_type, content,
      create_time, send_time, recalled
    FROM unnest(
      ${column((m) => m.server_id)}::text[], ${column((m) => m.local_id)}::text[], ${column((m) => m.sender_id)}::text[],
      ${column((m) => m.kind)}::text[], ${column((m) => m.receiver_id ?? "")}::text[], ${column((m) => m.group_id ?? "")}::text[],
      ${column((m) => m.content_type)}::text[], ${column((m) => m.content)}::text[], ${column((m) => BigInt(m.create_time))}::int8[],
      ${column((m) => BigInt(m.send_time))}::int8[], ${column((m) => m.recalled === true)}::bool[]
    ) AS m(server_id, local_id, sender_id, kind, receiver_id, group_id, content_type, content, create_time, send_time, recalled)
    WHERE ${where}
    ON CONFLICT (server_id) DO NOTHING`
}

/** Messages in the `messages` table, keyed by server_id; the first saved version stays. */
export const layer: Layer.Layer<HistoryStore, never, SqlClient.SqlClient> = Layer.effect(
  HistoryStore,
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient

    const save = Effect.fn("SqlHistoryStore.save")(function*(messages: ReadonlyArray<Message>) {
      if (messages.length === 0) return
      yield* insertMessages(sql, messages).pipe(portCall("HistoryStore", "save"))
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
