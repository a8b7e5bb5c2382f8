import type { FileContentType, FileId, FileRecord } from "@im/domain/File"
import type { GroupId, UserId } from "@im/domain/Ids"
import { FileRecords, type FileShare } from "@im/ports/FileRecords"
import { Effect, Layer, Option } from "effect"
import { SqlClient } from "effect/sql"
import { portCall, toNumber } from "./SqlErrors.ts"

interface FileRow {
  readonly id: string
  readonly owner_id: string
  readonly name: string
  readonly content_type: string
  readonly size: bigint
  readonly created_at: bigint
}

interface ShareRow {
  readonly kind: string
  readonly target_id: string
}

const toRecord = (row: FileRow): FileRecord => ({
  id: row.id as FileId,
  owner_id: row.owner_id as UserId,
  name: row.name,
  content_type: row.content_type as FileContentType,
  size: toNumber(row.size),
  created_at: toNumber(row.created_at)
})

const toShare = (row: ShareRow): FileShare =>
  row.kind === "group" ? { group_id: row.target_id as GroupId } : { user_id: row.target_id as UserId }

/** Files in `files`; the conversations they were sent into in `file_shares` (kind `user` or `group`). */
export const layer: Layer.Layer<FileRecords, never, SqlClient.SqlClient> = Layer.effect(
  FileRecords,
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient

    const create = Effect.fn("SqlFileRecords.create")(function*(record: FileRecord) {
      yield* sql`INSERT INTO files ${sql.insert({ ...record })} ON CONFLICT DO NOTHING`.pipe(
        portCall("FileRecords", "create")
      )
    })

    const get = Effect.fn("SqlFileRecords.get")(function*(id: FileId) {
      const rows = yield* sql<FileRow>`
        SELECT id, owner_id, name, content_type, size, created_at FROM files WHERE id = ${id}`.pipe(
        portCall("FileRecords", "get")
      )
      return Option.map(Option.fromNullishOr(rows[0]), toRecord)
    })

    const ownedBy = Effect.fn("SqlFileRecords.ownedBy")(function*(owner: UserId) {
      const rows = yield* sql<FileRow>`
        SELECT id, owner_id, name, content_type, size, created_at FROM files WHERE owner_id = ${owner}
        ORDER BY created_at, id`.pipe(portCall("FileRecords", "ownedBy"))
      return rows.map(toRecord)
    })

    const share = Effect.fn("SqlFileRecords.share")(function*(id: FileId, to: FileShare) {
      const row = to.user_id !== undefined
        ? { file_id: id, kind: "user", target_id: to.user_id }
        : { file_id: id, kind: "group", target_id: to.group_id }
      yield* sql`INSERT INTO file_shares ${sql.insert(row)} ON CONFLICT DO NOTHING`.pipe(portCall("FileRecords", "share"))
    })

    const shares = Effect.fn("SqlFileRecords.shares")(function*(id: FileId) {
      const rows = yield* sql<ShareRow>`SELECT kind, target_id FROM file_shares WHERE file_id = ${id}`.pipe(
        portCall("FileRecords", "shares")
      )
      return rows.map(toShare)
    })

    return FileRecords.of({ create, get, ownedBy, share, shares })
  })
)
