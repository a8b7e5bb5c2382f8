import type { FileId, FileRecord } from "@im/domain/File"
import type { GroupId, UserId } from "@im/domain/Ids"
import { Context, Effect, Layer, Option } from "effect"
import type { PortError } from "./PortError.ts"

/**
 * A conversation a file was sent into: the receiving user of a one-to-one message, or the
 * group of a group message.
 */
export type FileShare =
  | { readonly user_id: UserId; readonly group_id?: undefined }
  | { readonly group_id: GroupId; readonly user_id?: undefined }

/**
 * What the server knows about files besides their bytes (those are in the FileStore): who
 * announced each, its declared name, type and size, and the conversations it was sent into.
 */
export class FileRecords extends Context.Service<FileRecords, {
  /** Records a file; a second create of the same id keeps the first record. */
  readonly create: (record: FileRecord) => Effect.Effect<void, PortError>
  readonly get: (id: FileId) => Effect.Effect<Option.Option<FileRecord>, PortError>
  /** The files the user announced, oldest first. */
  readonly ownedBy: (owner: UserId) => Effect.Effect<ReadonlyArray<FileRecord>, PortError>
  /** Records that the file was sent into a conversation; recording it again changes nothing. */
  readonly share: (id: FileId, share: FileShare) => Effect.Effect<void, PortError>
  /** The conversations the file was sent into, each once, in no particular order. */
  readonly shares: (id: FileId) => Effect.Effect<ReadonlyArray<FileShare>, PortError>
}>()("@im/ports/FileRecords") {
  static readonly layerMemory = Layer.sync(FileRecords, () => {
    const records = new Map<FileId, FileRecord>()
    const sharesOf = new Map<FileId, Map<string, FileShare>>()
    const shareKey = (share: FileShare) => share.user_id !== undefined ? `u:${share.user_id}` : `g:${share.group_id}`
    return FileRecords.of({
      create: (record) =>
        Effect.sync(() => {
          if (!records.has(record.id)) records.set(record.id, { ...record })
        }),
      get: (id) => Effect.sync(() => Option.fromNullishOr(records.get(id))),
      ownedBy: (owner) =>
        Effect.sync(() =>
          [...records.values()]
            .filter((record) => record.owner_id === owner)
            .sort((a, b) => a.created_at - b.created_at || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0))
        ),
      share: (id, share) =>
        Effect.sync(() => {
          const shares = sharesOf.get(id) ?? new Map<string, FileShare>()
          sharesOf.set(id, shares)
          if (!shares.has(shareKey(share))) {
            shares.set(shareKey(share), share.user_id !== undefined ? { user_id: share.user_id } : { group_id: share.group_id })
          }
        }),
      shares: (id) => Effect.sync(() => [...(sharesOf.get(id)?.values() ?? [])])
    })
  })
}
